/* signing/tuf.c — TUF-compatible repository metadata for bundles: the four
 * top-level roles (root, targets, snapshot, timestamp) with thresholds,
 * versions and expiries, Ed25519 keys, signatures over canonical JSON as the
 * TUF specification defines it; a publisher (init, add a target) and a
 * client that walks the specification's update workflow over a repository
 * directory (root rotation, timestamp, snapshot, targets, target file). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sg_internal.h"

#define TUF_SPEC "1.0.31"
#define TUF_ROOT_MAX (512u << 10)
#define TUF_TIMESTAMP_MAX (16u << 10)
#define TUF_META_MAX (8u << 20)

static const char *const ROLE[SLM_TUF_NROLES] = {"root", "targets", "snapshot", "timestamp"};

/* ---- canonical JSON (OLPC canonical JSON, as TUF uses it) ---------------------------- */
typedef struct cbuf {
    char *p;
    size_t n, cap;
    int bad;
} cbuf;

static void cb_put(cbuf *b, const char *s, size_t n)
{
    if (b->bad)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap * 2 : 256;
        while (c < b->n + n + 1)
            c *= 2;
        char *q = realloc(b->p, c);
        if (!q) {
            b->bad = 1;
            return;
        }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void cb_str(cbuf *b, const char *s)
{
    cb_put(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            cb_put(b, "\\", 1);
        cb_put(b, p, 1);
    }
    cb_put(b, "\"", 1);
}

static int key_cmp(const void *a, const void *b)
{
    return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

static void cb_json(cbuf *b, const cJSON *j, int depth)
{
    if (depth > 32) {
        b->bad = 1;
        return;
    }
    if (cJSON_IsString(j)) {
        cb_str(b, j->valuestring);
    } else if (cJSON_IsBool(j)) {
        cb_put(b, cJSON_IsTrue(j) ? "true" : "false", cJSON_IsTrue(j) ? 4 : 5);
    } else if (cJSON_IsNull(j)) {
        cb_put(b, "null", 4);
    } else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) || d != (double)(long long)d) {
            b->bad = 1; /* canonical JSON has integers only */
            return;
        }
        char t[32];
        int n = snprintf(t, sizeof t, "%lld", (long long)d);
        cb_put(b, t, (size_t)n);
    } else if (cJSON_IsArray(j)) {
        cb_put(b, "[", 1);
        int first = 1;
        const cJSON *e;
        cJSON_ArrayForEach(e, j)
        {
            if (!first)
                cb_put(b, ",", 1);
            first = 0;
            cb_json(b, e, depth + 1);
        }
        cb_put(b, "]", 1);
    } else if (cJSON_IsObject(j)) {
        int n = cJSON_GetArraySize(j), k = 0;
        const cJSON **kids = malloc(sizeof *kids * (size_t)(n ? n : 1));
        if (!kids) {
            b->bad = 1;
            return;
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, j) kids[k++] = e;
        qsort(kids, (size_t)n, sizeof *kids, key_cmp);
        cb_put(b, "{", 1);
        for (int i = 0; i < n; i++) {
            if (i && !strcmp(kids[i]->string, kids[i - 1]->string))
                b->bad = 1; /* duplicate key: no canonical form */
            if (i)
                cb_put(b, ",", 1);
            cb_str(b, kids[i]->string);
            cb_put(b, ":", 1);
            cb_json(b, kids[i], depth + 1);
        }
        cb_put(b, "}", 1);
        free(kids);
    } else {
        b->bad = 1;
    }
}

char *slm_tuf_canonical(const void *cjson)
{
    cbuf b = {0};
    cb_json(&b, cjson, 0);
    if (b.bad) {
        free(b.p);
        return NULL;
    }
    return b.p ? b.p : strdup("");
}

/* ---- keys, times ------------------------------------------------------------------------ */
static cJSON *key_json(const uint8_t pub[32])
{
    char hex[65];
    slm_hex(pub, 32, hex);
    cJSON *k = cJSON_CreateObject();
    cJSON_AddStringToObject(k, "keytype", "ed25519");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(k, "keyval"), "public", hex);
    cJSON_AddStringToObject(k, "scheme", "ed25519");
    return k;
}

/* TUF key id: SHA-256 of the canonical JSON of the key object. */
static int tuf_keyid(const uint8_t pub[32], char out[65])
{
    cJSON *k = key_json(pub);
    char *c = slm_tuf_canonical(k);
    cJSON_Delete(k);
    uint8_t h[32];
    int rc = !c || slm_sha256(c, strlen(c), h);
    free(c);
    if (!rc)
        slm_hex(h, 32, out);
    return rc;
}

static void iso_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int parse_time(const char *s, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *e = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!e || *e)
        return -1;
    *out = (int64_t)timegm(&tm);
    return 0;
}

/* ---- signing ------------------------------------------------------------------------------- */
/* {"signatures":[...],"signed":signed} with each key's signature over canonical(signed). */
static int sign_meta(cJSON *signed_, const slm_key *const *keys, int n, char **out, slm_err *err)
{
    char *c = slm_tuf_canonical(signed_);
    if (!c) {
        cJSON_Delete(signed_);
        return slm_err_set(err, SLM_EINTERNAL, "TUF metadata has no canonical form (float or duplicate key)");
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON *sigs = cJSON_AddArrayToObject(doc, "signatures");
    int rc = 0;
    for (int i = 0; !rc && i < n; i++) {
        uint8_t sig[64];
        char kid[65], hex[129];
        if ((rc = slm_key_sign(keys[i], c, strlen(c), sig, err)))
            break;
        if (tuf_keyid(slm_key_public(keys[i]), kid)) {
            rc = slm_err_set(err, SLM_EINTERNAL, "key id");
            break;
        }
        slm_hex(sig, 64, hex);
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "keyid", kid);
        cJSON_AddStringToObject(s, "sig", hex);
        cJSON_AddItemToArray(sigs, s);
    }
    free(c);
    cJSON_AddItemToObject(doc, "signed", signed_);
    if (!rc) {
        *out = cJSON_Print(doc); /* readable; signatures cover the canonical form of "signed" */
        if (!*out)
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    cJSON_Delete(doc);
    return rc;
}

static cJSON *meta_head(const char *type, uint64_t version, int64_t expires)
{
    char t[32];
    iso_time(expires, t);
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "_type", type);
    cJSON_AddStringToObject(s, "spec_version", TUF_SPEC);
    cJSON_AddNumberToObject(s, "version", (double)version);
    cJSON_AddStringToObject(s, "expires", t);
    return s;
}

static char *pjoin(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

static int write_meta(const char *repo, const char *name, const char *text, slm_err *err)
{
    char *md = pjoin(repo, "metadata"), *p = md ? pjoin(md, name) : NULL;
    int rc = !p ? slm_err_set(err, SLM_EINTERNAL, "out of memory")
                : sg_write_atomic(p, text, strlen(text), 0644, NULL, err);
    free(md);
    free(p);
    return rc;
}

static int mkdirs(const char *repo, slm_err *err)
{
    char *md = pjoin(repo, "metadata"), *tg = pjoin(repo, "targets");
    int rc = 0;
    if ((mkdir(repo, 0755) && errno != EEXIST) || (mkdir(md, 0755) && errno != EEXIST) ||
        (mkdir(tg, 0755) && errno != EEXIST))
        rc = slm_err_set(err, SLM_EIO, "%s: cannot create the repository directories: %s", repo, strerror(errno));
    free(md);
    free(tg);
    return rc;
}

int slm_tuf_init(const char *repo, const slm_tuf_role_keys roles[SLM_TUF_NROLES], int64_t now, int64_t expires,
                 slm_err *err)
{
    (void)now;
    int rc = mkdirs(repo, err);
    if (rc)
        return rc;
    cJSON *s = meta_head("root", 1, expires);
    cJSON_AddBoolToObject(s, "consistent_snapshot", 0);
    cJSON *keys = cJSON_AddObjectToObject(s, "keys"), *rl = cJSON_AddObjectToObject(s, "roles");
    for (int r = 0; r < SLM_TUF_NROLES; r++) {
        const slm_tuf_role_keys *rk = &roles[r];
        if (rk->n < 1 || rk->threshold < 1 || rk->threshold > rk->n) {
            cJSON_Delete(s);
            return slm_err_set(err, SLM_EUSAGE, "TUF role %s: %d keys, threshold %d (need 1 <= threshold <= keys)",
                               ROLE[r], rk->n, rk->threshold);
        }
        cJSON *o = cJSON_AddObjectToObject(rl, ROLE[r]), *ids = cJSON_AddArrayToObject(o, "keyids");
        for (int i = 0; i < rk->n; i++) {
            char kid[65];
            if (tuf_keyid(slm_key_public(rk->keys[i]), kid)) {
                cJSON_Delete(s);
                return slm_err_set(err, SLM_EINTERNAL, "key id");
            }
            cJSON_AddItemToArray(ids, cJSON_CreateString(kid));
            if (!cJSON_GetObjectItemCaseSensitive(keys, kid))
                cJSON_AddItemToObject(keys, kid, key_json(slm_key_public(rk->keys[i])));
        }
        cJSON_AddNumberToObject(o, "threshold", rk->threshold);
    }
    char *text = NULL;
    if ((rc = sign_meta(s, roles[SLM_TUF_ROOT].keys, roles[SLM_TUF_ROOT].n, &text, err)))
        return rc;
    rc = write_meta(repo, "1.root.json", text, err);
    if (!rc)
        rc = write_meta(repo, "root.json", text, err);
    free(text);
    return rc;
}

/* version of a role's current metadata file in the repository (0: none) */
static uint64_t current_version(const char *repo, const char *file, cJSON **out_signed)
{
    char *md = pjoin(repo, "metadata"), *p = md ? pjoin(md, file) : NULL, *buf = NULL;
    size_t n;
    slm_err e;
    uint64_t v = 0;
    if (p && !sg_read_file(p, TUF_META_MAX, &buf, &n, &e)) {
        cJSON *j = cJSON_ParseWithLength(buf, n);
        cJSON *s = cJSON_DetachItemFromObjectCaseSensitive(j, "signed");
        if (sg_json_uint(s, "version", &v))
            v = 0;
        if (out_signed)
            *out_signed = s;
        else
            cJSON_Delete(s);
        cJSON_Delete(j);
    }
    free(buf);
    free(md);
    free(p);
    return v;
}

static int copy_file(const char *src, const char *dst, uint64_t *len, uint8_t sha[32], slm_err *err)
{
    FILE *in = fopen(src, "rb");
    if (!in)
        return slm_err_set(err, SLM_EIO, "%s: cannot open: %s", src, strerror(errno));
    sg_afile f;
    memset(&f, 0, sizeof f);
    int rc = sg_afile_open(&f, dst, 0644, NULL, err), opened = !rc;
    slm_sha256_ctx *c = slm_sha256_new();
    char *buf = malloc(1 << 16);
    *len = 0;
    if (!rc && (!c || !buf))
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    size_t r;
    while (!rc && (r = fread(buf, 1, 1 << 16, in)) > 0) {
        if (slm_sha256_update(c, buf, r))
            rc = slm_err_set(err, SLM_EINTERNAL, "sha256");
        else
            rc = sg_afile_write(&f, buf, r, err);
        *len += r;
    }
    if (!rc && ferror(in))
        rc = slm_err_set(err, SLM_EIO, "%s: read failed", src);
    if (!rc && slm_sha256_final(c, sha))
        rc = slm_err_set(err, SLM_EINTERNAL, "sha256");
    if (!rc)
        rc = sg_afile_commit(&f, err);
    else if (opened)
        sg_afile_abort(&f);
    slm_sha256_free(c);
    free(buf);
    fclose(in);
    return rc;
}

int slm_tuf_add(const char *repo, const char *file, const char *name, const slm_tuf_role_keys roles[SLM_TUF_NROLES],
                int64_t now, const int64_t expires[SLM_TUF_NROLES], const char *custom_json, slm_err *err)
{
    (void)now;
    if (!name[0] || strchr(name, '/') || name[0] == '.' || strlen(name) > 128)
        return slm_err_set(err, SLM_EUSAGE, "target name '%s': one path component, not starting with '.'", name);
    for (int r = SLM_TUF_TARGETS; r < SLM_TUF_NROLES; r++)
        if (roles[r].n < 1)
            return slm_err_set(err, SLM_EUSAGE, "publishing needs a %s key", ROLE[r]);
    int rc = mkdirs(repo, err);
    if (rc)
        return rc;
    char *tg = pjoin(repo, "targets"), *dst = tg ? pjoin(tg, name) : NULL;
    uint64_t len = 0;
    uint8_t sha[32];
    char hex[65];
    rc = dst ? copy_file(file, dst, &len, sha, err) : slm_err_set(err, SLM_EINTERNAL, "out of memory");
    free(tg);
    free(dst);
    if (rc)
        return rc;
    slm_hex(sha, 32, hex);
    /* targets: the previous list plus this target */
    cJSON *old = NULL;
    uint64_t tv = current_version(repo, "targets.json", &old) + 1;
    cJSON *ts = meta_head("targets", tv, expires[SLM_TUF_TARGETS]);
    cJSON *list = cJSON_DetachItemFromObjectCaseSensitive(old, "targets");
    cJSON_Delete(old);
    if (!cJSON_IsObject(list)) {
        cJSON_Delete(list);
        list = cJSON_CreateObject();
    }
    cJSON_DeleteItemFromObjectCaseSensitive(list, name);
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "length", (double)len);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(t, "hashes"), "sha256", hex);
    if (custom_json) {
        cJSON *cj = cJSON_Parse(custom_json);
        if (cJSON_IsObject(cj))
            cJSON_AddItemToObject(t, "custom", cj);
        else
            cJSON_Delete(cj);
    }
    cJSON_AddItemToObject(list, name, t);
    cJSON_AddItemToObject(ts, "targets", list);
    char *text = NULL;
    if ((rc = sign_meta(ts, roles[SLM_TUF_TARGETS].keys, roles[SLM_TUF_TARGETS].n, &text, err)))
        return rc;
    rc = write_meta(repo, "targets.json", text, err);
    free(text);
    if (rc)
        return rc;
    /* snapshot: the targets version */
    uint64_t sv = current_version(repo, "snapshot.json", NULL) + 1;
    cJSON *ss = meta_head("snapshot", sv, expires[SLM_TUF_SNAPSHOT]);
    cJSON *m = cJSON_AddObjectToObject(cJSON_AddObjectToObject(ss, "meta"), "targets.json");
    cJSON_AddNumberToObject(m, "version", (double)tv);
    if ((rc = sign_meta(ss, roles[SLM_TUF_SNAPSHOT].keys, roles[SLM_TUF_SNAPSHOT].n, &text, err)))
        return rc;
    uint8_t sh[32];
    char shx[65];
    if (slm_sha256(text, strlen(text), sh)) {
        free(text);
        return slm_err_set(err, SLM_EINTERNAL, "sha256");
    }
    slm_hex(sh, 32, shx);
    size_t slen = strlen(text);
    rc = write_meta(repo, "snapshot.json", text, err);
    free(text);
    if (rc)
        return rc;
    /* timestamp: the snapshot version, length and hash */
    uint64_t tsv = current_version(repo, "timestamp.json", NULL) + 1;
    cJSON *st = meta_head("timestamp", tsv, expires[SLM_TUF_TIMESTAMP]);
    m = cJSON_AddObjectToObject(cJSON_AddObjectToObject(st, "meta"), "snapshot.json");
    cJSON_AddNumberToObject(m, "version", (double)sv);
    cJSON_AddNumberToObject(m, "length", (double)slen);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(m, "hashes"), "sha256", shx);
    if ((rc = sign_meta(st, roles[SLM_TUF_TIMESTAMP].keys, roles[SLM_TUF_TIMESTAMP].n, &text, err)))
        return rc;
    rc = write_meta(repo, "timestamp.json", text, err);
    free(text);
    return rc;
}

/* ---- the client ------------------------------------------------------------------------------ */
typedef struct tuf_doc {
    cJSON *json;          /* whole document */
    const cJSON *signed_; /* its "signed" */
    char *bytes;          /* the file as read */
    size_t len;
    uint64_t version;
    int64_t expires;
} tuf_doc;

static void doc_free(tuf_doc *d)
{
    cJSON_Delete(d->json);
    free(d->bytes);
    memset(d, 0, sizeof *d);
}

/* Read + parse + check type and fields (no signatures yet). Oversized: endless data. */
static int doc_load(const char *path, const char *type, size_t max, tuf_doc *d, slm_err *err)
{
    memset(d, 0, sizeof *d);
    int rc = sg_read_file(path, max, &d->bytes, &d->len, err);
    if (rc == SLM_EINPUT && strstr(err->msg, "more than"))
        return slm_err_set(err, SLM_EVERIFY, "%s: over %zu bytes: endless data refused", path, max);
    if (rc)
        return rc;
    d->json = cJSON_ParseWithLength(d->bytes, d->len);
    d->signed_ = cJSON_GetObjectItemCaseSensitive(d->json, "signed");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(d->signed_, "_type");
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(d->signed_, "spec_version");
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(d->signed_, "expires");
    if (!cJSON_IsObject(d->signed_) || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(d->json, "signatures")))
        return slm_err_set(err, SLM_EVERIFY, "%s: not TUF metadata (no signed / signatures)", path);
    if (!cJSON_IsString(t) || strcmp(t->valuestring, type))
        return slm_err_set(err, SLM_EVERIFY, "%s: _type is not '%s'", path, type);
    if (!cJSON_IsString(sv) || strncmp(sv->valuestring, "1.", 2))
        return slm_err_set(err, SLM_EVERIFY, "%s: unsupported spec_version", path);
    if (sg_json_uint(d->signed_, "version", &d->version) || d->version < 1)
        return slm_err_set(err, SLM_EVERIFY, "%s: version is not an integer >= 1", path);
    if (!cJSON_IsString(ex) || parse_time(ex->valuestring, &d->expires))
        return slm_err_set(err, SLM_EVERIFY, "%s: expires is not YYYY-MM-DDTHH:MM:SSZ", path);
    return 0;
}

/* A threshold of `role`'s keys (as `root` lists them) signed d. */
static int verify_role(const char *path, const tuf_doc *d, const tuf_doc *root, const char *role, slm_err *err)
{
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root->signed_, "keys");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root->signed_, "roles"), role);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(r, "keyids");
    uint64_t thr = 0;
    if (!cJSON_IsObject(keys) || !cJSON_IsArray(ids) || sg_json_uint(r, "threshold", &thr) || thr < 1)
        return slm_err_set(err, SLM_EVERIFY, "root v%llu: role %s is malformed", (unsigned long long)root->version, role);
    char *c = slm_tuf_canonical(d->signed_);
    if (!c)
        return slm_err_set(err, SLM_EVERIFY, "%s: no canonical form (floats or duplicate keys)", path);
    const cJSON *s;
    char seen[64][65];
    int n_seen = 0;
    uint64_t valid = 0;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(d->json, "signatures"))
    {
        const cJSON *kid = cJSON_GetObjectItemCaseSensitive(s, "keyid");
        const cJSON *sig = cJSON_GetObjectItemCaseSensitive(s, "sig");
        if (!cJSON_IsString(kid) || !cJSON_IsString(sig) || strlen(kid->valuestring) != 64)
            continue;
        int in_role = 0, dup = 0;
        const cJSON *id;
        cJSON_ArrayForEach(id, ids) in_role |= cJSON_IsString(id) && !strcmp(id->valuestring, kid->valuestring);
        for (int i = 0; i < n_seen; i++)
            dup |= !strcmp(seen[i], kid->valuestring);
        if (!in_role || dup || n_seen == 64)
            continue; /* keys outside the role do not count (TUF) */
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(keys, kid->valuestring);
        const cJSON *kt = cJSON_GetObjectItemCaseSensitive(k, "keytype");
        const cJSON *pub = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(k, "keyval"), "public");
        uint8_t pk[32], sg[64];
        if (!cJSON_IsString(kt) || strcmp(kt->valuestring, "ed25519") || !cJSON_IsString(pub) ||
            slm_unhex(pub->valuestring, pk, 32) || slm_unhex(sig->valuestring, sg, 64))
            continue;
        /* a key id must be the hash of its key: the canonical form of the key object as the root lists it
         * (other publishers add fields such as keyid_hash_algorithms, which the hash then covers) */
        char *kc = slm_tuf_canonical(k), want[65];
        uint8_t kh[32];
        int kbad = !kc || slm_sha256(kc, strlen(kc), kh);
        free(kc);
        if (kbad)
            continue;
        slm_hex(kh, 32, want);
        if (strcmp(want, kid->valuestring))
            continue;
        if (slm_ed25519_verify(pk, c, strlen(c), sg)) {
            strcpy(seen[n_seen++], kid->valuestring);
            valid++;
        }
    }
    free(c);
    if (valid < thr)
        return slm_err_set(err, SLM_EVERIFY, "%s: %llu valid signatures by %s keys of root v%llu, below the threshold %llu",
                           path, (unsigned long long)valid, role, (unsigned long long)root->version,
                           (unsigned long long)thr);
    return 0;
}

static int not_expired(const char *path, const tuf_doc *d, int64_t now, slm_err *err)
{
    if (now >= d->expires) {
        char t[32];
        iso_time(d->expires, t);
        return slm_err_set(err, SLM_EVERIFY, "%s: v%llu expired at %s (freeze attack or stale repository)", path,
                           (unsigned long long)d->version, t);
    }
    return 0;
}

static int meta_version(const tuf_doc *d, const char *file, uint64_t *v, const cJSON **entry)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(d->signed_, "meta"), file);
    if (entry)
        *entry = e;
    return sg_json_uint(e, "version", v);
}

static int persist(const char *state, const char *file, const tuf_doc *d, slm_err *err)
{
    char *p = pjoin(state, file);
    int rc = p ? sg_write_atomic(p, d->bytes, d->len, 0644, NULL, err) : slm_err_set(err, SLM_EINTERNAL, "oom");
    free(p);
    return rc;
}

/* the trusted copy of file in state (absent: d->json NULL, 0) */
static int trusted(const char *state, const char *file, const char *type, tuf_doc *d, slm_err *err)
{
    char *p = pjoin(state, file);
    memset(d, 0, sizeof *d);
    int rc = 0;
    if (access(p, F_OK) == 0)
        rc = doc_load(p, type, TUF_META_MAX, d, err);
    free(p);
    return rc;
}

/* Steps 1-5, then the target: read from REPO/targets/<target> and written to
 * out_path, or (check_path) a file already here compared with it. */
static int tuf_client(const char *repo, const char *root_path, const char *state, const char *target,
                      const char *out_path, const char *check_path, int64_t now, slm_tuf_result *res, slm_err *err)
{
    memset(res, 0, sizeof *res);
    tuf_doc root = {0}, next = {0}, ts = {0}, old_ts = {0}, snap = {0}, old_snap = {0}, tg = {0};
    char *md = pjoin(repo, "metadata"), path[4300];
    int rc = (mkdir(state, 0755) && errno != EEXIST)
                 ? slm_err_set(err, SLM_EIO, "%s: cannot create the client state: %s", state, strerror(errno))
                 : 0;
    /* 1. trusted root: the state's, else the one given (trust on first use of a pinned file) */
    if (!rc) {
        char *sp = pjoin(state, "root.json");
        rc = doc_load(access(sp, F_OK) == 0 ? sp : root_path, "root", TUF_ROOT_MAX, &root, err);
        if (!rc)
            rc = verify_role(access(sp, F_OK) == 0 ? sp : root_path, &root, &root, "root", err);
        free(sp);
        if (!rc)
            rc = persist(state, "root.json", &root, err);
    }
    /* 2. root rotation: N+1.root.json signed by a threshold of the old AND of the new root keys */
    for (int i = 0; !rc && i < 1024; i++) {
        snprintf(path, sizeof path, "%s/%llu.root.json", md, (unsigned long long)root.version + 1);
        if (access(path, F_OK) != 0)
            break;
        rc = doc_load(path, "root", TUF_ROOT_MAX, &next, err);
        if (!rc)
            rc = verify_role(path, &next, &root, "root", err);
        if (!rc)
            rc = verify_role(path, &next, &next, "root", err);
        if (!rc && next.version != root.version + 1)
            rc = slm_err_set(err, SLM_EVERIFY, "%s: claims version %llu", path, (unsigned long long)next.version);
        if (!rc) {
            doc_free(&root);
            root = next;
            memset(&next, 0, sizeof next);
            rc = persist(state, "root.json", &root, err);
            /* new root keys: older timestamp/snapshot may no longer be trusted; they are re-checked below */
        }
    }
    if (!rc)
        rc = not_expired("root", &root, now, err);
    /* 3. timestamp: signatures, no rollback, not expired */
    snprintf(path, sizeof path, "%s/timestamp.json", md);
    if (!rc)
        rc = doc_load(path, "timestamp", TUF_TIMESTAMP_MAX, &ts, err);
    if (!rc)
        rc = verify_role(path, &ts, &root, "timestamp", err);
    if (!rc)
        rc = trusted(state, "timestamp.json", "timestamp", &old_ts, err);
    uint64_t snap_v = 0, old_snap_v = 0;
    const cJSON *snap_meta = NULL;
    if (!rc && meta_version(&ts, "snapshot.json", &snap_v, &snap_meta))
        rc = slm_err_set(err, SLM_EVERIFY, "%s: no snapshot.json version", path);
    if (!rc && old_ts.json) {
        if (ts.version < old_ts.version)
            rc = slm_err_set(err, SLM_EVERIFY, "%s: version %llu is below the trusted %llu (rollback attack)", path,
                             (unsigned long long)ts.version, (unsigned long long)old_ts.version);
        else if (!meta_version(&old_ts, "snapshot.json", &old_snap_v, NULL) && snap_v < old_snap_v)
            rc = slm_err_set(err, SLM_EVERIFY, "%s: names snapshot v%llu, below the trusted v%llu (rollback attack)",
                             path, (unsigned long long)snap_v, (unsigned long long)old_snap_v);
    }
    if (!rc)
        rc = not_expired(path, &ts, now, err);
    if (!rc)
        rc = persist(state, "timestamp.json", &ts, err);
    /* 4. snapshot: exactly the bytes the timestamp names, signatures, version, no rollback, not expired */
    snprintf(path, sizeof path, "%s/snapshot.json", md);
    uint64_t slen = TUF_META_MAX;
    if (!rc && snap_meta && cJSON_GetObjectItemCaseSensitive(snap_meta, "length") && sg_json_uint(snap_meta, "length", &slen))
        rc = slm_err_set(err, SLM_EVERIFY, "timestamp: bad snapshot length");
    if (!rc)
        rc = doc_load(path, "snapshot", slen, &snap, err);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(snap_meta, "hashes"), "sha256");
    if (!rc && cJSON_IsString(h)) {
        uint8_t dg[32];
        char hex[65];
        if (slm_sha256(snap.bytes, snap.len, dg))
            rc = slm_err_set(err, SLM_EINTERNAL, "sha256");
        slm_hex(dg, 32, hex);
        if (!rc && strcmp(hex, h->valuestring))
            rc = slm_err_set(err, SLM_EVERIFY, "%s: SHA-256 differs from the timestamp's (mix-and-match)", path);
    }
    if (!rc)
        rc = verify_role(path, &snap, &root, "snapshot", err);
    if (!rc && snap.version != snap_v)
        rc = slm_err_set(err, SLM_EVERIFY, "%s: version %llu, the timestamp names %llu (mix-and-match)", path,
                         (unsigned long long)snap.version, (unsigned long long)snap_v);
    if (!rc)
        rc = trusted(state, "snapshot.json", "snapshot", &old_snap, err);
    uint64_t tv = 0, old_tv = 0;
    if (!rc && meta_version(&snap, "targets.json", &tv, NULL))
        rc = slm_err_set(err, SLM_EVERIFY, "%s: no targets.json version", path);
    if (!rc && old_snap.json && !meta_version(&old_snap, "targets.json", &old_tv, NULL) && tv < old_tv)
        rc = slm_err_set(err, SLM_EVERIFY, "%s: names targets v%llu, below the trusted v%llu (rollback attack)", path,
                         (unsigned long long)tv, (unsigned long long)old_tv);
    if (!rc)
        rc = not_expired(path, &snap, now, err);
    if (!rc)
        rc = persist(state, "snapshot.json", &snap, err);
    /* 5. targets: the version the snapshot names, signatures, not expired */
    snprintf(path, sizeof path, "%s/targets.json", md);
    if (!rc)
        rc = doc_load(path, "targets", TUF_META_MAX, &tg, err);
    if (!rc)
        rc = verify_role(path, &tg, &root, "targets", err);
    if (!rc && tg.version != tv)
        rc = slm_err_set(err, SLM_EVERIFY, "%s: version %llu, the snapshot names %llu (mix-and-match)", path,
                         (unsigned long long)tg.version, (unsigned long long)tv);
    if (!rc)
        rc = not_expired(path, &tg, now, err);
    if (!rc)
        rc = persist(state, "targets.json", &tg, err);
    /* 6. the target: at most its signed length read, SHA-256 compared, then it lands */
    const cJSON *t = rc ? NULL : cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(tg.signed_, "targets"), target);
    uint64_t tlen = 0;
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "hashes"), "sha256");
    uint8_t want[32];
    if (!rc && (!t || sg_json_uint(t, "length", &tlen) || !cJSON_IsString(th) || slm_unhex(th->valuestring, want, 32)))
        rc = slm_err_set(err, SLM_EVERIFY, "%s: no target '%s' with a length and a sha256", path, target);
    if (!rc)
        res->length = tlen;
    if (!rc && (out_path || check_path)) {
        if (check_path)
            snprintf(path, sizeof path, "%s", check_path);
        else
            snprintf(path, sizeof path, "%s/targets/%s", repo, target);
        FILE *in = fopen(path, "rb");
        sg_afile f;
        memset(&f, 0, sizeof f);
        int opened = 0;
        slm_sha256_ctx *c = slm_sha256_new();
        char *buf = malloc(1 << 16);
        if (!in)
            rc = slm_err_set(err, SLM_EIO, "%s: cannot open: %s", path, strerror(errno));
        if (!rc && (!c || !buf))
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
        if (!rc && out_path)
            opened = !(rc = sg_afile_open(&f, out_path, 0644, NULL, err));
        uint64_t got = 0;
        size_t r;
        while (!rc && (r = fread(buf, 1, 1 << 16, in)) > 0) {
            if (got + r > tlen) {
                rc = slm_err_set(err, SLM_EVERIFY, "%s: longer than the %llu bytes targets.json signs (endless data)",
                                 path, (unsigned long long)tlen);
                break;
            }
            got += r;
            if (slm_sha256_update(c, buf, r))
                rc = slm_err_set(err, SLM_EINTERNAL, "sha256");
            else if (opened)
                rc = sg_afile_write(&f, buf, r, err);
        }
        uint8_t dg[32];
        if (!rc && got != tlen)
            rc = slm_err_set(err, SLM_EVERIFY, "%s: %llu bytes, targets.json signs %llu", path,
                             (unsigned long long)got, (unsigned long long)tlen);
        if (!rc && (slm_sha256_final(c, dg) || memcmp(dg, want, 32)))
            rc = slm_err_set(err, SLM_EVERIFY, "%s: SHA-256 does not match targets.json (tampered target)", path);
        if (!rc && opened)
            rc = sg_afile_commit(&f, err);
        else if (opened)
            sg_afile_abort(&f);
        if (in)
            fclose(in);
        slm_sha256_free(c);
        free(buf);
        res->length = tlen;
    }
    if (!rc) {
        res->root_version = root.version;
        res->timestamp_version = ts.version;
        res->snapshot_version = snap.version;
        res->targets_version = tg.version;
    }
    doc_free(&root);
    doc_free(&next);
    doc_free(&ts);
    doc_free(&old_ts);
    doc_free(&snap);
    doc_free(&old_snap);
    doc_free(&tg);
    free(md);
    return rc;
}

int slm_tuf_fetch(const char *repo, const char *root_path, const char *state, const char *target,
                  const char *out_path, int64_t now, slm_tuf_result *res, slm_err *err)
{
    return tuf_client(repo, root_path, state, target, out_path, NULL, now, res, err);
}

int slm_tuf_check_file(const char *repo, const char *root_path, const char *state, const char *target,
                       const char *file, int64_t now, slm_tuf_result *res, slm_err *err)
{
    return tuf_client(repo, root_path, state, target, NULL, file, now, res, err);
}
