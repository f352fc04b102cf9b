/* signing/root.c — the trust root: versioned, expiring, k-of-n signed; TUF-style rotation. */
#include "sg_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROOT_FILE_MAX (1u << 20)

static void fmt_time(int64_t t, char *buf, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, cap, "%lld", (long long)t);
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(((const slm_root_key *)a)->id, ((const slm_root_key *)b)->id);
}

/* Canonical bytes: keys inserted in sorted order, key list sorted by id, compact. */
static char *root_canonical(uint64_t version, int64_t created, int64_t expires, int threshold,
                            const slm_root_key *keys, int n)
{
    slm_root_key *k = malloc(sizeof *k * (size_t)n);
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    if (!k || !o || !arr) {
        free(k);
        cJSON_Delete(o);
        cJSON_Delete(arr);
        return NULL;
    }
    memcpy(k, keys, sizeof *k * (size_t)n);
    qsort(k, (size_t)n, sizeof *k, cmp_key);
    cJSON_AddNumberToObject(o, "created", (double)created);
    cJSON_AddNumberToObject(o, "expires", (double)expires);
    for (int i = 0; i < n; i++) {
        char hex[65];
        slm_hex(k[i].pub, 32, hex);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "id", k[i].id);
        cJSON_AddStringToObject(e, "public", hex);
        cJSON_AddItemToArray(arr, e);
    }
    cJSON_AddItemToObject(o, "keys", arr);
    cJSON_AddNumberToObject(o, "threshold", threshold);
    cJSON_AddStringToObject(o, "type", "slm-root");
    cJSON_AddNumberToObject(o, "version", (double)version);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    free(k);
    return s;
}

static char *root_file_text(const char *signed_bytes, const slm_sig *sigs, int n_sigs)
{
    char *sj = sg_sigs_print(sigs, n_sigs);
    cJSON *arr = sj ? cJSON_Parse(sj) : NULL;
    free(sj);
    cJSON *o = cJSON_CreateObject();
    if (!arr || !o) {
        cJSON_Delete(arr);
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddItemToObject(o, "signatures", arr);
    cJSON_AddStringToObject(o, "signed", signed_bytes);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return NULL;
    }
    t[n] = '\n';
    t[n + 1] = 0;
    return t;
}

int slm_root_create(const char *out_path, uint64_t version, int64_t created, int64_t expires, int threshold,
                    const slm_key *const *keys, int n_keys, const slm_key *const *signers, int n_signers,
                    slm_err *err)
{
    if (n_keys < 1 || n_keys > SLM_ROOT_MAX_KEYS)
        return slm_err_set(err, SLM_EUSAGE, "a trust root needs 1..%d keys (got %d)", SLM_ROOT_MAX_KEYS, n_keys);
    if (threshold < 1 || threshold > n_keys)
        return slm_err_set(err, SLM_EUSAGE, "threshold %d is not in 1..%d (the number of keys)", threshold, n_keys);
    if (version < 1 || version > (1ull << 53))
        return slm_err_set(err, SLM_EUSAGE, "root version must be in 1..2^53");
    slm_root_key rk[SLM_ROOT_MAX_KEYS];
    for (int i = 0; i < n_keys; i++) {
        memcpy(rk[i].id, slm_key_id(keys[i]), sizeof rk[i].id);
        memcpy(rk[i].pub, slm_key_public(keys[i]), 32);
        for (int j = 0; j < i; j++)
            if (!strcmp(rk[i].id, rk[j].id))
                return slm_err_set(err, SLM_EUSAGE, "key %.16s is listed twice", rk[i].id);
    }
    char *canon = root_canonical(version, created, expires, threshold, rk, n_keys);
    slm_sig *sigs = calloc((size_t)(n_signers ? n_signers : 1), sizeof *sigs);
    if (!canon || !sigs) {
        free(canon);
        free(sigs);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    int rc = SLM_OK;
    for (int i = 0; i < n_signers && !rc; i++) {
        for (int j = 0; j < i; j++)
            if (!strcmp(slm_key_id(signers[i]), slm_key_id(signers[j])))
                rc = slm_err_set(err, SLM_EUSAGE, "key %.16s given twice to sign", slm_key_id(signers[i]));
        if (!rc) {
            memcpy(sigs[i].keyid, slm_key_id(signers[i]), SLM_KEYID_HEX_LEN + 1);
            rc = slm_key_sign(signers[i], canon, strlen(canon), sigs[i].sig, err);
        }
    }
    char *text = rc ? NULL : root_file_text(canon, sigs, n_signers);
    if (!rc && !text)
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    if (!rc)
        rc = sg_write_atomic(out_path, text, strlen(text), 0644, NULL, err);
    free(text);
    free(canon);
    free(sigs);
    return rc;
}

void slm_root_free(slm_root *r)
{
    if (!r)
        return;
    free(r->signed_bytes);
    free(r->sigs);
    free(r->path);
    free(r);
}

static int parse_signed(slm_root *r, const char *path, slm_err *err)
{
    cJSON *o = cJSON_ParseWithLength(r->signed_bytes, r->signed_len);
    int rc = SLM_OK;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(o, "keys");
    uint64_t thr = 0;
    if (!cJSON_IsObject(o) || !cJSON_IsString(type) || strcmp(type->valuestring, "slm-root"))
        rc = slm_err_set(err, SLM_EINPUT, "%s: not a trust root (type is not \"slm-root\")", path);
    else if (sg_json_uint(o, "version", &r->version) || r->version < 1 || sg_json_int(o, "created", &r->created) ||
             sg_json_int(o, "expires", &r->expires) || sg_json_uint(o, "threshold", &thr))
        rc = slm_err_set(err, SLM_EINPUT, "%s: version, created, expires and threshold must be integers", path);
    else if (!cJSON_IsArray(keys) || cJSON_GetArraySize(keys) < 1 || cJSON_GetArraySize(keys) > SLM_ROOT_MAX_KEYS)
        rc = slm_err_set(err, SLM_EINPUT, "%s: keys must be an array of 1..%d keys", path, SLM_ROOT_MAX_KEYS);
    if (!rc) {
        r->n_keys = cJSON_GetArraySize(keys);
        if (thr < 1 || thr > (uint64_t)r->n_keys)
            rc = slm_err_set(err, SLM_EINPUT, "%s: threshold %llu is not in 1..%d", path, (unsigned long long)thr,
                             r->n_keys);
        r->threshold = (int)thr;
    }
    int i = 0;
    const cJSON *k;
    if (!rc)
        cJSON_ArrayForEach(k, keys) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(k, "id");
            const cJSON *pub = cJSON_GetObjectItemCaseSensitive(k, "public");
            uint8_t h[32];
            char hex[65];
            if (!cJSON_IsString(id) || !cJSON_IsString(pub) || slm_unhex(pub->valuestring, r->keys[i].pub, 32) ||
                slm_sha256(r->keys[i].pub, 32, h)) {
                rc = slm_err_set(err, SLM_EINPUT, "%s: key #%d is malformed", path, i + 1);
                break;
            }
            slm_hex(h, 32, hex);
            if (strcmp(hex, id->valuestring)) {
                rc = slm_err_set(err, SLM_EINPUT, "%s: key #%d: id is not the SHA-256 of its public key", path, i + 1);
                break;
            }
            memcpy(r->keys[i].id, hex, sizeof hex);
            for (int j = 0; j < i && !rc; j++)
                if (!strcmp(r->keys[j].id, hex))
                    rc = slm_err_set(err, SLM_EINPUT, "%s: key %.16s listed twice", path, hex);
            if (rc)
                break;
            i++;
        }
    cJSON_Delete(o);
    return rc;
}

int slm_root_load(const char *path, slm_root **out, slm_err *err)
{
    char *text;
    size_t n;
    int rc = sg_read_file(path, ROOT_FILE_MAX, &text, &n, err);
    if (rc)
        return rc;
    slm_root *r = calloc(1, sizeof *r);
    cJSON *o = cJSON_ParseWithLength(text, n);
    free(text);
    if (!r) {
        cJSON_Delete(o);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "signed");
    const cJSON *sigs = cJSON_GetObjectItemCaseSensitive(o, "signatures");
    if (!cJSON_IsObject(o) || !cJSON_IsString(s) || !cJSON_IsArray(sigs)) {
        rc = slm_err_set(err, SLM_EINPUT, "%s: not a trust root file ({\"signed\": \"...\", \"signatures\": [...]})",
                         path);
    } else {
        r->signed_bytes = strdup(s->valuestring);
        r->signed_len = strlen(s->valuestring);
        r->path = strdup(path);
        char *sj = cJSON_PrintUnformatted(sigs);
        if (!r->signed_bytes || !r->path || !sj)
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
        else if (!(rc = sg_sigs_parse(path, sj, strlen(sj), &r->sigs, &r->n_sigs, err)))
            rc = parse_signed(r, path, err);
        free(sj);
    }
    cJSON_Delete(o);
    if (rc) {
        slm_root_free(r);
        return rc;
    }
    *out = r;
    return SLM_OK;
}

int slm_root_verify_self(const slm_root *r, slm_err *err)
{
    /* Signatures by keys outside r are expected on a rotated root (its
     * predecessor's keys signed it too); those of r's own keys must be valid. */
    const char *p = r->path ? r->path : "root";
    for (int i = 0; i < r->n_sigs; i++) {
        const slm_root_key *k = slm_root_find_key(r, r->sigs[i].keyid);
        if (k && !slm_ed25519_verify(k->pub, r->signed_bytes, r->signed_len, r->sigs[i].sig))
            return slm_err_set(err, SLM_EVERIFY, "%s: trust root v%llu: bad signature by key %.16s (altered)", p,
                               (unsigned long long)r->version, r->sigs[i].keyid);
    }
    int good = sg_count_valid(r->signed_bytes, r->signed_len, r->sigs, r->n_sigs, r);
    if (good < r->threshold)
        return slm_err_set(err, SLM_EVERIFY, "%s: trust root v%llu: %d valid signature%s of its keys, below the threshold %d",
                           p, (unsigned long long)r->version, good, good == 1 ? "" : "s", r->threshold);
    return SLM_OK;
}

int slm_root_verify_successor(const slm_root *old, const slm_root *next, slm_err *err)
{
    const char *p = next->path ? next->path : "root";
    if (next->version != old->version + 1)
        return slm_err_set(err, SLM_EVERIFY,
                           "%s: root rotation from v%llu to v%llu: a new root must be exactly version %llu "
                           "(verifiers walk the chain one version at a time)",
                           p, (unsigned long long)old->version, (unsigned long long)next->version,
                           (unsigned long long)old->version + 1);
    for (int i = 0; i < next->n_sigs; i++) {
        const slm_root_key *k = slm_root_find_key(next, next->sigs[i].keyid);
        if (!k)
            k = slm_root_find_key(old, next->sigs[i].keyid);
        if (!k)
            return slm_err_set(err, SLM_EVERIFY, "%s: trust root v%llu signed by unknown key %.16s (in neither v%llu nor v%llu)",
                               p, (unsigned long long)next->version, next->sigs[i].keyid,
                               (unsigned long long)old->version, (unsigned long long)next->version);
        if (!slm_ed25519_verify(k->pub, next->signed_bytes, next->signed_len, next->sigs[i].sig))
            return slm_err_set(err, SLM_EVERIFY, "%s: trust root v%llu: bad signature by key %.16s (altered)", p,
                               (unsigned long long)next->version, next->sigs[i].keyid);
    }
    int by_old = sg_count_valid(next->signed_bytes, next->signed_len, next->sigs, next->n_sigs, old);
    int by_new = sg_count_valid(next->signed_bytes, next->signed_len, next->sigs, next->n_sigs, next);
    if (by_old < old->threshold)
        return slm_err_set(err, SLM_EVERIFY,
                           "%s: root rotation to v%llu lacks the old root's threshold: %d of v%llu's keys signed, %d needed",
                           p, (unsigned long long)next->version, by_old, (unsigned long long)old->version,
                           old->threshold);
    if (by_new < next->threshold)
        return slm_err_set(err, SLM_EVERIFY,
                           "%s: root rotation to v%llu lacks its own threshold: %d of its keys signed, %d needed", p,
                           (unsigned long long)next->version, by_new, next->threshold);
    return SLM_OK;
}

int slm_trust_chain(const char *const *paths, int n, int64_t now, slm_root **out, slm_err *err)
{
    if (n < 1)
        return slm_err_set(err, SLM_EUSAGE, "no trust root given");
    slm_root *cur = NULL;
    int rc = slm_root_load(paths[0], &cur, err);
    if (rc)
        return rc;
    if ((rc = slm_root_verify_self(cur, err))) {
        slm_root_free(cur);
        return rc;
    }
    for (int i = 1; i < n; i++) {
        slm_root *next = NULL;
        if ((rc = slm_root_load(paths[i], &next, err)) || (rc = slm_root_verify_successor(cur, next, err))) {
            slm_root_free(next);
            slm_root_free(cur);
            return rc;
        }
        slm_root_free(cur);
        cur = next;
    }
    if (now >= cur->expires) {
        char t[64];
        fmt_time(cur->expires, t, sizeof t);
        rc = slm_err_set(err, SLM_EVERIFY, "%s: trust root v%llu expired at %s", cur->path,
                         (unsigned long long)cur->version, t);
        slm_root_free(cur);
        return rc;
    }
    *out = cur;
    return SLM_OK;
}
