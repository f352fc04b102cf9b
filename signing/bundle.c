/* signing/bundle.c — bundle files: create, sign in place, verify streaming.
 *
 * Layout (docs/bundles.md): 24-byte header (magic, u32 format, u32 manifest
 * length, u32 signatures length, u32 reserved = 0, little-endian), the manifest
 * bytes (signed exactly as stored), the signature block, then one zstd stream
 * per payload file in manifest order, nothing after. */
#include "sg_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#define WINDOW_LOG_MAX 23 /* 8 MiB: bounds the decoder's memory */

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void fmt_time(int64_t t, char *buf, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, cap, "%lld", (long long)t);
}

static int valid_file_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64 || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return 0;
    }
    return 1;
}

/* "1.2.3" compared numerically; missing parts are 0. */
static int version_cmp(const char *a, const char *b)
{
    for (int i = 0; i < 4; i++) {
        long x = strtol(a, (char **)&a, 10), y = strtol(b, (char **)&b, 10);
        if (x != y)
            return x < y ? -1 : 1;
        if (*a == '.')
            a++;
        if (*b == '.')
            b++;
    }
    return 0;
}

static int valid_version_str(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 31)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] == '.' && i > 0 && s[i - 1] != '.')))
            return 0;
    return s[n - 1] != '.';
}

void slm_manifest_free(slm_manifest *m)
{
    if (!m)
        return;
    free(m->meta_json);
    free(m->canary_text);
    free(m->bytes);
    free(m->sigs);
    free(m);
}

/* ---- manifest ---------------------------------------------------------------- */
static char *manifest_canonical(const slm_bundle_spec *s, const slm_bundle_file *files, cJSON *meta)
{
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    if (!o || !arr) {
        cJSON_Delete(o);
        cJSON_Delete(arr);
        return NULL;
    }
    /* keys inserted in sorted order: one canonical spelling */
    cJSON_AddNumberToObject(o, "created", (double)s->created);
    cJSON_AddNumberToObject(o, "expires", (double)s->expires);
    for (int i = 0; i < s->n_files; i++) {
        char h[65], zh[65];
        slm_hex(files[i].sha256, 32, h);
        slm_hex(files[i].zsha256, 32, zh);
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "name", files[i].name);
        cJSON_AddStringToObject(f, "sha256", h);
        cJSON_AddNumberToObject(f, "size", (double)files[i].size);
        cJSON_AddStringToObject(f, "zsha256", zh);
        cJSON_AddNumberToObject(f, "zsize", (double)files[i].zsize);
        cJSON_AddItemToArray(arr, f);
    }
    cJSON_AddItemToObject(o, "files", arr);
    cJSON_AddNumberToObject(o, "format", SLM_BUNDLE_FORMAT);
    cJSON_AddItemToObject(o, "meta", meta ? cJSON_Duplicate(meta, 1) : cJSON_CreateObject());
    cJSON_AddStringToObject(o, "min_runtime", s->min_runtime ? s->min_runtime : SLM_SIGNING_RUNTIME_VERSION);
    cJSON_AddStringToObject(o, "name", s->name);
    cJSON_AddStringToObject(o, "type", "slm-bundle");
    cJSON_AddNumberToObject(o, "version", (double)s->version);
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

/* Parse authenticated manifest bytes. */
static int manifest_parse(const char *path, slm_manifest *m, uint64_t payload_start, int stored, slm_err *err)
{
    cJSON *o = cJSON_ParseWithLength((const char *)m->bytes, m->len);
    int rc = SLM_OK;
    uint64_t fmt = 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    const cJSON *minrt = cJSON_GetObjectItemCaseSensitive(o, "min_runtime");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(o, "files");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(o, "meta");
#define BAD(...) do { rc = slm_err_set(err, SLM_EINPUT, __VA_ARGS__); goto out; } while (0)
    if (!cJSON_IsObject(o) || !cJSON_IsString(type) || strcmp(type->valuestring, "slm-bundle"))
        BAD("%s: the manifest is not an slm-bundle manifest", path);
    if (sg_json_uint(o, "format", &fmt) || fmt != SLM_BUNDLE_FORMAT)
        BAD("%s: manifest format is not %d", path, SLM_BUNDLE_FORMAT);
    if (!cJSON_IsString(name) || strlen(name->valuestring) < 1 || strlen(name->valuestring) > 128)
        BAD("%s: manifest name must be a string of 1..128 bytes", path);
    strcpy(m->name, name->valuestring);
    if (sg_json_uint(o, "version", &m->version) || m->version < 1)
        BAD("%s: manifest version must be an integer >= 1", path);
    if (sg_json_int(o, "created", &m->created) || sg_json_int(o, "expires", &m->expires))
        BAD("%s: manifest created/expires must be integers (unix seconds)", path);
    if (!cJSON_IsString(minrt) || !valid_version_str(minrt->valuestring))
        BAD("%s: manifest min_runtime must be a version string like \"0.1.0\"", path);
    strcpy(m->min_runtime, minrt->valuestring);
    if (!cJSON_IsArray(files) || cJSON_GetArraySize(files) < 1 || cJSON_GetArraySize(files) > SLM_BUNDLE_MAX_FILES)
        BAD("%s: manifest files must list 1..%d files", path, SLM_BUNDLE_MAX_FILES);
    uint64_t off = payload_start;
    const cJSON *f;
    int i = 0;
    cJSON_ArrayForEach(f, files) {
        slm_bundle_file *bf = &m->files[i];
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(f, "name");
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(f, "sha256");
        const cJSON *zh = cJSON_GetObjectItemCaseSensitive(f, "zsha256");
        if (!cJSON_IsString(fn) || !valid_file_name(fn->valuestring))
            BAD("%s: manifest file #%d: bad name (1..64 of [A-Za-z0-9._-], no leading dot)", path, i + 1);
        strcpy(bf->name, fn->valuestring);
        for (int j = 0; j < i; j++)
            if (!strcmp(m->files[j].name, bf->name))
                BAD("%s: manifest names file '%s' twice", path, bf->name);
        if (sg_json_uint(f, "size", &bf->size) || sg_json_uint(f, "zsize", &bf->zsize) || !cJSON_IsString(h) ||
            !cJSON_IsString(zh) || slm_unhex(h->valuestring, bf->sha256, 32) ||
            slm_unhex(zh->valuestring, bf->zsha256, 32))
            BAD("%s: manifest file '%s': size, zsize, sha256, zsha256 missing or malformed", path, bf->name);
        bf->zoffset = off;
        off += stored ? bf->size : bf->zsize; /* each <= 2^53: no overflow over 16 files */
        i++;
    }
    m->n_files = i;
    m->stored = stored;
    if (meta && !cJSON_IsObject(meta))
        BAD("%s: manifest meta must be an object", path);
    m->meta_json = meta ? cJSON_PrintUnformatted(meta) : strdup("{}");
    if (!m->meta_json)
        BAD("%s: out of memory", path);
    const cJSON *can = meta ? cJSON_GetObjectItemCaseSensitive(meta, "canary") : NULL;
    if (can) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(can, "text");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(can, "ppl");
        if (!cJSON_IsString(t) || !cJSON_IsNumber(p) || !(p->valuedouble > 0))
            BAD("%s: manifest meta.canary needs a text and a positive ppl", path);
        m->canary_text = strdup(t->valuestring);
        m->canary_ppl = p->valuedouble;
        m->has_canary = m->canary_text != NULL;
    }
#undef BAD
out:
    cJSON_Delete(o);
    return rc;
}

/* ---- reading the head (header + manifest + signatures) --------------------- */
typedef struct head {
    uint8_t hdr[SLM_BUNDLE_HEADER_LEN];
    uint32_t mlen, slen;
    char *sigs_text;
    uint64_t payload_start;
    int stored; /* header format 2 */
} head;

static int read_head(int fd, const char *path, head *h, slm_manifest *m, slm_err *err)
{
    memset(h, 0, sizeof *h);
    int got = sg_full_read(fd, h->hdr, sizeof h->hdr);
    if (got < 0)
        return slm_err_set(err, SLM_EIO, "%s: read error: %s", path, strerror(errno));
    if (got >= 8 && memcmp(h->hdr, SLM_BUNDLE_MAGIC, 8))
        return slm_err_set(err, SLM_EVERIFY, "%s: not an slm bundle (bad magic)", path);
    if (got < (int)sizeof h->hdr)
        return slm_err_set(err, SLM_EVERIFY, "%s: truncated: %d bytes, shorter than the %d-byte header", path, got,
                           SLM_BUNDLE_HEADER_LEN);
    uint32_t fmt = get_u32(h->hdr + 8);
    h->mlen = get_u32(h->hdr + 12);
    h->slen = get_u32(h->hdr + 16);
    if (fmt != SLM_BUNDLE_FORMAT && fmt != SLM_BUNDLE_FORMAT_STORED)
        return slm_err_set(err, SLM_EVERIFY, "%s: unsupported bundle format %u (this build reads %d and %d)", path, fmt,
                           SLM_BUNDLE_FORMAT, SLM_BUNDLE_FORMAT_STORED);
    h->stored = fmt == SLM_BUNDLE_FORMAT_STORED;
    if (get_u32(h->hdr + 20) != 0)
        return slm_err_set(err, SLM_EVERIFY, "%s: header reserved field is not zero (altered header)", path);
    if (h->mlen < 2 || h->mlen > SLM_MANIFEST_MAX)
        return slm_err_set(err, SLM_EVERIFY, "%s: header declares a %u-byte manifest (allowed 2..%u)", path, h->mlen,
                           SLM_MANIFEST_MAX);
    if (h->slen < 2 || h->slen > SLM_SIGS_MAX)
        return slm_err_set(err, SLM_EVERIFY, "%s: header declares a %u-byte signature block (allowed 2..%u)", path,
                           h->slen, SLM_SIGS_MAX);
    m->bytes = malloc(h->mlen + 1);
    h->sigs_text = malloc(h->slen + 1);
    if (!m->bytes || !h->sigs_text)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    m->len = h->mlen;
    if ((got = sg_full_read(fd, m->bytes, h->mlen)) < 0)
        return slm_err_set(err, SLM_EIO, "%s: read error: %s", path, strerror(errno));
    if ((uint32_t)got < h->mlen)
        return slm_err_set(err, SLM_EVERIFY, "%s: truncated: the file ends inside the manifest (%d of %u bytes)", path,
                           got, h->mlen);
    m->bytes[h->mlen] = 0;
    if ((got = sg_full_read(fd, h->sigs_text, h->slen)) < 0)
        return slm_err_set(err, SLM_EIO, "%s: read error: %s", path, strerror(errno));
    if ((uint32_t)got < h->slen)
        return slm_err_set(err, SLM_EVERIFY, "%s: truncated: the file ends inside the signatures (%d of %u bytes)",
                           path, got, h->slen);
    h->sigs_text[h->slen] = 0;
    h->payload_start = SLM_BUNDLE_HEADER_LEN + (uint64_t)h->mlen + h->slen;
    return SLM_OK;
}

static void sig_summary(slm_manifest *m)
{
    size_t o = 0;
    m->sig_keyids[0] = 0;
    for (int i = 0; i < m->n_sigs && o + 18 < sizeof m->sig_keyids; i++)
        o += (size_t)snprintf(m->sig_keyids + o, sizeof m->sig_keyids - o, "%s%.16s", i ? "," : "", m->sigs[i].keyid);
}

/* Signatures first (over the raw manifest bytes), then the manifest checks. */
static int check_head(const char *path, head *h, slm_manifest *m, const slm_root *root, const slm_verify_opts *o,
                      slm_err *err)
{
    int rc = sg_sigs_parse(path, h->sigs_text, h->slen, &m->sigs, &m->n_sigs, err);
    if (rc)
        return rc;
    sig_summary(m);
    char what[600];
    snprintf(what, sizeof what, "%s: manifest", path);
    if ((rc = sg_check_sigs(what, m->bytes, m->len, m->sigs, m->n_sigs, root, NULL, err)))
        return rc;
    if ((rc = manifest_parse(path, m, h->payload_start, h->stored, err)))
        return rc;
    if (o->check_expiry && o->now >= m->expires) {
        char t[64];
        fmt_time(m->expires, t, sizeof t);
        return slm_err_set(err, SLM_EVERIFY, "%s: bundle '%s' v%llu expired at %s", path, m->name,
                           (unsigned long long)m->version, t);
    }
    const char *rt = o->runtime_version ? o->runtime_version : SLM_SIGNING_RUNTIME_VERSION;
    if (version_cmp(m->min_runtime, rt) > 0)
        return slm_err_set(err, SLM_EVERIFY, "%s: bundle needs runtime %s or newer; this is %s", path, m->min_runtime,
                           rt);
    if (m->version <= o->floor)
        return slm_err_set(err, SLM_EVERIFY,
                           "%s: version %llu is not above the committed version %llu (rollback/replay refused)", path,
                           (unsigned long long)m->version, (unsigned long long)o->floor);
    return SLM_OK;
}

/* ---- streaming payload verification ------------------------------------------ */
static int check_trailing(int fd, const char *path, slm_err *err)
{
    uint8_t extra;
    ssize_t r;
    do
        r = read(fd, &extra, 1);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return slm_err_set(err, SLM_EIO, "%s: read error: %s", path, strerror(errno));
    if (r > 0)
        return slm_err_set(err, SLM_EVERIFY, "%s: trailing bytes after the last payload file (refused)", path);
    return SLM_OK;
}

/* Format 2: each file is its `size` bytes as they are, hashed against `sha256`. */
static int verify_stored(int fd, const char *path, slm_manifest *m, const slm_bundle_sink *sink, slm_err *err)
{
    size_t cap = 128u << 10;
    uint8_t *buf = malloc(cap);
    slm_sha256_ctx *h = NULL;
    int rc = buf ? SLM_OK : slm_err_set(err, SLM_EINTERNAL, "out of memory");
    for (int i = 0; i < m->n_files && !rc; i++) {
        const slm_bundle_file *f = &m->files[i];
        if (!(h = slm_sha256_new())) {
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
            break;
        }
        if (sink && sink->begin && (rc = sink->begin(sink->user, i, f, err)))
            break;
        uint64_t left = f->size;
        while (left > 0 && !rc) {
            ssize_t r = read(fd, buf, left < cap ? (size_t)left : cap);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                rc = slm_err_set(err, SLM_EIO, "%s: read error: %s", path, strerror(errno));
            else if (r == 0 && left == f->size)
                rc = slm_err_set(err, SLM_EVERIFY,
                                 "%s: the manifest names file '%s' (%d of %d) but the payload ends before it "
                                 "(missing file or truncated bundle)", path, f->name, i + 1, m->n_files);
            else if (r == 0)
                rc = slm_err_set(err, SLM_EVERIFY, "%s: truncated: payload file '%s' ends after %llu of its %llu bytes",
                                 path, f->name, (unsigned long long)(f->size - left), (unsigned long long)f->size);
            else if (slm_sha256_update(h, buf, (size_t)r))
                rc = slm_err_set(err, SLM_EINTERNAL, "SHA-256 failed");
            else if (sink && sink->write)
                rc = sink->write(sink->user, buf, (size_t)r, err);
            if (!rc)
                left -= (uint64_t)r;
        }
        uint8_t d[32];
        if (!rc && slm_sha256_final(h, d))
            rc = slm_err_set(err, SLM_EINTERNAL, "SHA-256 failed");
        if (!rc && memcmp(d, f->sha256, 32))
            rc = slm_err_set(err, SLM_EVERIFY,
                             "%s: payload file '%s': SHA-256 does not match the manifest (payload altered or from "
                             "another bundle)", path, f->name);
        if (!rc && sink && sink->end)
            rc = sink->end(sink->user, i, err);
        slm_sha256_free(h);
        h = NULL;
    }
    slm_sha256_free(h);
    free(buf);
    return rc ? rc : check_trailing(fd, path, err);
}

static int verify_payload(int fd, const char *path, slm_manifest *m, const slm_bundle_sink *sink, slm_err *err)
{
    if (m->stored)
        return verify_stored(fd, path, m, sink, err);
    size_t in_cap = ZSTD_DStreamInSize(), out_cap = ZSTD_DStreamOutSize();
    uint8_t *in = malloc(in_cap), *outb = malloc(out_cap);
    ZSTD_DStream *ds = ZSTD_createDStream();
    slm_sha256_ctx *zh = NULL, *h = NULL;
    int rc = SLM_OK;
    if (!in || !outb || !ds || ZSTD_isError(ZSTD_DCtx_setParameter(ds, ZSTD_d_windowLogMax, WINDOW_LOG_MAX))) {
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
        goto done;
    }
    for (int i = 0; i < m->n_files && !rc; i++) {
        const slm_bundle_file *f = &m->files[i];
        zh = slm_sha256_new();
        h = slm_sha256_new();
        if (!zh || !h) {
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
            break;
        }
        ZSTD_DCtx_reset(ds, ZSTD_reset_session_only);
        if (sink && sink->begin && (rc = sink->begin(sink->user, i, f, err)))
            break;
        uint64_t zleft = f->zsize, produced = 0;
        size_t last = 1;
        while (zleft > 0 && !rc) {
            size_t want = zleft < in_cap ? (size_t)zleft : in_cap;
            ssize_t r = read(fd, in, want);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                rc = slm_err_set(err, SLM_EIO, "%s: read error: %s", path, strerror(errno));
                break;
            }
            if (r == 0) {
                if (zleft == f->zsize)
                    rc = slm_err_set(err, SLM_EVERIFY,
                                     "%s: the manifest names file '%s' (%d of %d) but the payload ends before it "
                                     "(missing file or truncated bundle)",
                                     path, f->name, i + 1, m->n_files);
                else
                    rc = slm_err_set(err, SLM_EVERIFY,
                                     "%s: truncated: payload file '%s' ends after %llu of its %llu compressed bytes",
                                     path, f->name, (unsigned long long)(f->zsize - zleft),
                                     (unsigned long long)f->zsize);
                break;
            }
            zleft -= (uint64_t)r;
            if (slm_sha256_update(zh, in, (size_t)r)) {
                rc = slm_err_set(err, SLM_EINTERNAL, "SHA-256 failed");
                break;
            }
            ZSTD_inBuffer ib = {in, (size_t)r, 0};
            while ((ib.pos < ib.size || last != 0) && !rc) {
                ZSTD_outBuffer ob = {outb, out_cap, 0};
                last = ZSTD_decompressStream(ds, &ob, &ib);
                if (ZSTD_isError(last)) {
                    rc = slm_err_set(err, SLM_EVERIFY, "%s: payload file '%s': corrupt compressed data (zstd: %s)",
                                     path, f->name, ZSTD_getErrorName(last));
                    break;
                }
                if (ob.pos > 0) {
                    if (ob.pos > f->size - produced) {
                        rc = slm_err_set(err, SLM_EVERIFY,
                                         "%s: payload file '%s' decompresses to more than its declared %llu bytes "
                                         "(refused, reading stopped)",
                                         path, f->name, (unsigned long long)f->size);
                        break;
                    }
                    produced += ob.pos;
                    if (slm_sha256_update(h, outb, ob.pos)) {
                        rc = slm_err_set(err, SLM_EINTERNAL, "SHA-256 failed");
                        break;
                    }
                    if (sink && sink->write && (rc = sink->write(sink->user, outb, ob.pos, err)))
                        break;
                }
                if (ib.pos == ib.size && ob.pos < out_cap)
                    break; /* needs more input (or the frame is complete) */
            }
        }
        if (rc)
            break;
        uint8_t d1[32], d2[32];
        if (slm_sha256_final(zh, d1) || slm_sha256_final(h, d2)) {
            rc = slm_err_set(err, SLM_EINTERNAL, "SHA-256 failed");
            break;
        }
        if (memcmp(d1, f->zsha256, 32))
            rc = slm_err_set(err, SLM_EVERIFY,
                             "%s: payload file '%s': SHA-256 of the compressed bytes does not match the manifest "
                             "(payload altered or from another bundle)",
                             path, f->name);
        else if (last != 0)
            rc = slm_err_set(err, SLM_EVERIFY, "%s: payload file '%s': the zstd stream is incomplete", path, f->name);
        else if (produced != f->size)
            rc = slm_err_set(err, SLM_EVERIFY, "%s: payload file '%s' decompresses to %llu bytes, the manifest says %llu",
                             path, f->name, (unsigned long long)produced, (unsigned long long)f->size);
        else if (memcmp(d2, f->sha256, 32))
            rc = slm_err_set(err, SLM_EVERIFY,
                             "%s: payload file '%s': SHA-256 does not match the manifest (payload altered or from "
                             "another bundle)",
                             path, f->name);
        if (!rc && sink && sink->end)
            rc = sink->end(sink->user, i, err);
        slm_sha256_free(zh);
        slm_sha256_free(h);
        zh = h = NULL;
    }
    if (!rc)
        rc = check_trailing(fd, path, err);
done:
    slm_sha256_free(zh);
    slm_sha256_free(h);
    ZSTD_freeDStream(ds);
    free(in);
    free(outb);
    return rc;
}

static int verify_fd(int fd, const char *path, const slm_root *root, const slm_verify_opts *o,
                     const slm_bundle_sink *sink, int head_only, slm_manifest **out, slm_err *err)
{
    slm_manifest *m = calloc(1, sizeof *m);
    if (!m)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    head h;
    int rc = read_head(fd, path, &h, m, err);
    if (!rc)
        rc = check_head(path, &h, m, root, o, err);
    free(h.sigs_text);
    if (!rc && !head_only)
        rc = verify_payload(fd, path, m, sink, err);
    if (rc || !out)
        slm_manifest_free(m);
    else
        *out = m;
    return rc;
}

int sg_verify_head_fd(int fd, const char *path, const slm_root *root, const slm_verify_opts *o, slm_manifest **out,
                      slm_err *err)
{
    return verify_fd(fd, path, root, o, NULL, 1, out, err);
}

int sg_head_bytes(const slm_manifest *m, uint8_t **out, size_t *n)
{
    char *sj = sg_sigs_print(m->sigs, m->n_sigs);
    if (!sj)
        return SLM_EINTERNAL;
    size_t slen = strlen(sj), total = SLM_BUNDLE_HEADER_LEN + m->len + slen;
    uint8_t *b = malloc(total);
    if (!b) {
        free(sj);
        return SLM_EINTERNAL;
    }
    memcpy(b, SLM_BUNDLE_MAGIC, 8);
    put_u32(b + 8, SLM_BUNDLE_FORMAT);
    put_u32(b + 12, (uint32_t)m->len);
    put_u32(b + 16, (uint32_t)slen);
    put_u32(b + 20, 0);
    memcpy(b + SLM_BUNDLE_HEADER_LEN, m->bytes, m->len);
    memcpy(b + SLM_BUNDLE_HEADER_LEN + m->len, sj, slen);
    free(sj);
    *out = b;
    *n = total;
    return SLM_OK;
}

static int open_ro(const char *path, int *fd, slm_err *err)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return slm_err_set(err, SLM_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(*fd, &st) != 0 || S_ISDIR(st.st_mode)) {
        close(*fd);
        return slm_err_set(err, SLM_EINPUT, "%s: not a file", path);
    }
    posix_fadvise(*fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return SLM_OK;
}

int slm_bundle_verify(const char *path, const slm_root *root, const slm_verify_opts *o, const slm_bundle_sink *sink,
                      slm_manifest **out, slm_err *err)
{
    int fd, rc = open_ro(path, &fd, err);
    if (rc)
        return rc;
    rc = verify_fd(fd, path, root, o, sink, 0, out, err);
    close(fd);
    return rc;
}

int slm_bundle_verify_head(const char *path, const slm_root *root, const slm_verify_opts *o, slm_manifest **out,
                           slm_err *err)
{
    int fd, rc = open_ro(path, &fd, err);
    if (rc)
        return rc;
    rc = verify_fd(fd, path, root, o, NULL, 1, out, err);
    close(fd);
    return rc;
}

int slm_bundle_unpack(const char *path, const slm_bundle_sink *sink, slm_manifest **out, slm_err *err)
{
    int fd, rc = open_ro(path, &fd, err);
    if (rc)
        return rc;
    slm_manifest *m = calloc(1, sizeof *m);
    head h;
    memset(&h, 0, sizeof h);
    if (!m)
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    if (!rc)
        rc = read_head(fd, path, &h, m, err);
    if (!rc)
        rc = manifest_parse(path, m, h.payload_start, h.stored, err);
    free(h.sigs_text);
    if (!rc)
        rc = verify_payload(fd, path, m, sink, err);
    close(fd);
    if (rc || !out)
        slm_manifest_free(m);
    else
        *out = m;
    return rc;
}

static int af_write(void *u, const void *p, size_t n, slm_err *err) { return sg_afile_write(u, p, n, err); }

int slm_bundle_store(const char *in, const char *out, slm_err *err)
{
    int fd, rc = open_ro(in, &fd, err);
    if (rc)
        return rc;
    slm_manifest *m = calloc(1, sizeof *m);
    head h;
    memset(&h, 0, sizeof h);
    sg_afile f;
    int opened = 0;
    if (!m)
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    if (!rc)
        rc = read_head(fd, in, &h, m, err);
    if (!rc)
        rc = manifest_parse(in, m, h.payload_start, h.stored, err);
    if (!rc)
        opened = !(rc = sg_afile_open(&f, out, 0644, NULL, err));
    put_u32(h.hdr + 8, SLM_BUNDLE_FORMAT_STORED);
    if (!rc && !(rc = sg_afile_write(&f, h.hdr, sizeof h.hdr, err)) && !(rc = sg_afile_write(&f, m->bytes, m->len, err)))
        rc = sg_afile_write(&f, h.sigs_text, h.slen, err);
    slm_bundle_sink sink = {NULL, af_write, NULL, &f};
    if (!rc)
        rc = verify_payload(fd, in, m, &sink, err);
    if (!rc)
        rc = sg_afile_commit(&f, err);
    else if (opened)
        sg_afile_abort(&f);
    free(h.sigs_text);
    slm_manifest_free(m);
    close(fd);
    return rc;
}

/* ---- sealed memfd sink (run --bundle / --store) ------------------------------ */
typedef struct memfd_sink {
    int fd;
    int active; /* writing file 0 */
} memfd_sink;

static int mf_write_all(int fd, const void *p, size_t n, slm_err *err)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return slm_err_set(err, SLM_EIO, "memfd write failed: %s", w < 0 ? strerror(errno) : "no progress");
        c += w;
        n -= (size_t)w;
    }
    return SLM_OK;
}

static int mf_begin(void *u, int i, const slm_bundle_file *f, slm_err *err)
{
    ((memfd_sink *)u)->active = i == 0;
    return SLM_OK;
}

static int mf_write(void *u, const void *p, size_t n, slm_err *err)
{
    memfd_sink *s = u;
    return s->active ? mf_write_all(s->fd, p, n, err) : SLM_OK;
}

int sg_memfd_new(int *fd, slm_err *err)
{
    *fd = memfd_create("slm-verified-model", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (*fd < 0)
        return slm_err_set(err, SLM_EIO, "memfd_create failed: %s", strerror(errno));
    return SLM_OK;
}

int sg_memfd_seal(int fd, slm_err *err)
{
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0)
        return slm_err_set(err, SLM_EIO, "cannot seal the verified model memfd: %s", strerror(errno));
    if (lseek(fd, 0, SEEK_SET) != 0)
        return slm_err_set(err, SLM_EIO, "lseek on memfd failed: %s", strerror(errno));
    return SLM_OK;
}

int slm_bundle_open_model(const char *path, const slm_root *root, const slm_verify_opts *o, int *fd,
                          slm_manifest **out, slm_err *err)
{
    *fd = -1;
    memfd_sink ms = {-1, 0};
    int rc = sg_memfd_new(&ms.fd, err);
    if (rc)
        return rc;
    slm_bundle_sink sink = {mf_begin, mf_write, NULL, &ms};
    slm_manifest *m = NULL;
    rc = slm_bundle_verify(path, root, o, &sink, &m, err);
    if (!rc)
        rc = sg_memfd_seal(ms.fd, err);
    if (rc) {
        close(ms.fd);
        slm_manifest_free(m);
        return rc;
    }
    *fd = ms.fd;
    if (out)
        *out = m;
    else
        slm_manifest_free(m);
    return SLM_OK;
}

/* ---- create ------------------------------------------------------------------ */
static int compress_file(const char *src, int dst_fd, int level, slm_bundle_file *bf, slm_err *err)
{
    int in_fd = open(src, O_RDONLY | O_CLOEXEC);
    if (in_fd < 0)
        return slm_err_set(err, SLM_EIO, "%s: cannot open: %s", src, strerror(errno));
    struct stat st;
    if (fstat(in_fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(in_fd);
        return slm_err_set(err, SLM_EINPUT, "%s: not a regular file", src);
    }
    size_t in_cap = ZSTD_CStreamInSize(), out_cap = ZSTD_CStreamOutSize();
    uint8_t *in = malloc(in_cap), *outb = malloc(out_cap);
    ZSTD_CStream *cs = ZSTD_createCStream();
    slm_sha256_ctx *h = slm_sha256_new(), *zh = slm_sha256_new();
    int rc = SLM_OK;
    if (!in || !outb || !cs || !h || !zh) {
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
        goto done;
    }
    ZSTD_CCtx_setParameter(cs, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(cs, ZSTD_c_checksumFlag, 1);
    /* levels 1..19 use windows of at most 2^23 bytes: the verifier's cap */
    ZSTD_CCtx_setPledgedSrcSize(cs, (unsigned long long)st.st_size);
    uint64_t total = 0, ztotal = 0;
    for (;;) {
        ssize_t r = read(in_fd, in, in_cap);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = slm_err_set(err, SLM_EIO, "%s: read error: %s", src, strerror(errno));
            break;
        }
        total += (uint64_t)r;
        if (total > (uint64_t)st.st_size) {
            rc = slm_err_set(err, SLM_EIO, "%s: the file grew while being packed", src);
            break;
        }
        if (r > 0 && slm_sha256_update(h, in, (size_t)r)) {
            rc = slm_err_set(err, SLM_EINTERNAL, "SHA-256 failed");
            break;
        }
        ZSTD_EndDirective mode = r == 0 ? ZSTD_e_end : ZSTD_e_continue;
        ZSTD_inBuffer ib = {in, (size_t)r, 0};
        size_t remaining;
        do {
            ZSTD_outBuffer ob = {outb, out_cap, 0};
            remaining = ZSTD_compressStream2(cs, &ob, &ib, mode);
            if (ZSTD_isError(remaining)) {
                rc = slm_err_set(err, SLM_EINTERNAL, "%s: zstd: %s", src, ZSTD_getErrorName(remaining));
                break;
            }
            if (ob.pos && (rc = mf_write_all(dst_fd, outb, ob.pos, err)))
                break;
            if (ob.pos && slm_sha256_update(zh, outb, ob.pos)) {
                rc = slm_err_set(err, SLM_EINTERNAL, "SHA-256 failed");
                break;
            }
            ztotal += ob.pos;
        } while (!rc && (mode == ZSTD_e_end ? remaining != 0 : ib.pos < ib.size));
        if (rc || r == 0)
            break;
    }
    if (!rc && total != (uint64_t)st.st_size)
        rc = slm_err_set(err, SLM_EIO, "%s: the file changed size while being packed", src);
    if (!rc && (slm_sha256_final(h, bf->sha256) || slm_sha256_final(zh, bf->zsha256)))
        rc = slm_err_set(err, SLM_EINTERNAL, "SHA-256 failed");
    bf->size = total;
    bf->zsize = ztotal;
done:
    slm_sha256_free(h);
    slm_sha256_free(zh);
    ZSTD_freeCStream(cs);
    free(in);
    free(outb);
    close(in_fd);
    return rc;
}

static int copy_fd(int from, sg_afile *to, uint64_t n, slm_err *err)
{
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    int rc = SLM_OK;
    while (n > 0 && !rc) {
        size_t want = n < cap ? (size_t)n : cap;
        int got = sg_full_read(from, buf, want);
        if (got != (int)want)
            rc = slm_err_set(err, SLM_EIO, "read error while copying the payload");
        else
            rc = sg_afile_write(to, buf, want, err);
        n -= want;
    }
    free(buf);
    return rc;
}

static int write_bundle(const char *out_path, uint32_t format, const char *manifest, size_t mlen, const char *sigs,
                        size_t slen, int payload_fd, uint64_t payload_len, int mode, slm_err *err)
{
    if (mlen > SLM_MANIFEST_MAX || slen > SLM_SIGS_MAX)
        return slm_err_set(err, SLM_EINPUT, "%s: manifest or signature block too large", out_path);
    uint8_t hdr[SLM_BUNDLE_HEADER_LEN];
    memcpy(hdr, SLM_BUNDLE_MAGIC, 8);
    put_u32(hdr + 8, format);
    put_u32(hdr + 12, (uint32_t)mlen);
    put_u32(hdr + 16, (uint32_t)slen);
    put_u32(hdr + 20, 0);
    sg_afile f;
    int rc = sg_afile_open(&f, out_path, mode, NULL, err);
    if (rc)
        return rc;
    if ((rc = sg_afile_write(&f, hdr, sizeof hdr, err)) || (rc = sg_afile_write(&f, manifest, mlen, err)) ||
        (rc = sg_afile_write(&f, sigs, slen, err)) || (rc = copy_fd(payload_fd, &f, payload_len, err))) {
        sg_afile_abort(&f);
        return rc;
    }
    return sg_afile_commit(&f, err);
}

static char *dir_tmpl(const char *path)
{
    const char *s = strrchr(path, '/');
    size_t dn = s ? (size_t)(s - path) : 1;
    char *t = malloc(dn + 32);
    if (!t)
        return NULL;
    if (s)
        memcpy(t, path, dn);
    else
        t[0] = '.';
    if (s && dn == 0)
        t[dn++] = '/'; /* path in / */
    strcpy(t + dn, "/.slm-payload.XXXXXX");
    return t;
}

int slm_bundle_create(const char *out_path, const slm_bundle_spec *s, const slm_key *const *signers, int n_signers,
                      slm_err *err)
{
    if (!s->name || !*s->name || strlen(s->name) > 128)
        return slm_err_set(err, SLM_EUSAGE, "bundle name must be 1..128 bytes");
    if (s->version < 1 || s->version > (1ull << 53))
        return slm_err_set(err, SLM_EUSAGE, "bundle version must be an integer in 1..2^53");
    if (s->n_files < 1 || s->n_files > SLM_BUNDLE_MAX_FILES)
        return slm_err_set(err, SLM_EUSAGE, "a bundle holds 1..%d files", SLM_BUNDLE_MAX_FILES);
    if (s->min_runtime && !valid_version_str(s->min_runtime))
        return slm_err_set(err, SLM_EUSAGE, "min runtime '%s' is not a version like 0.1.0", s->min_runtime);
    int level = s->level ? s->level : 3;
    if (level < 1 || level > 19)
        return slm_err_set(err, SLM_EUSAGE, "zstd level %d is not in 1..19", level);
    cJSON *meta = NULL;
    if (s->meta_json) {
        meta = cJSON_Parse(s->meta_json);
        if (!cJSON_IsObject(meta)) {
            cJSON_Delete(meta);
            return slm_err_set(err, SLM_EUSAGE, "bundle metadata is not a JSON object");
        }
    }
    slm_bundle_file files[SLM_BUNDLE_MAX_FILES];
    memset(files, 0, sizeof files);
    for (int i = 0; i < s->n_files; i++) {
        const char *nm = s->names && s->names[i] ? s->names[i] : strrchr(s->paths[i], '/');
        nm = nm ? (nm[0] == '/' ? nm + 1 : nm) : s->paths[i];
        if (!valid_file_name(nm)) {
            cJSON_Delete(meta);
            return slm_err_set(err, SLM_EUSAGE, "payload name '%s': use 1..64 of [A-Za-z0-9._-], no leading dot", nm);
        }
        snprintf(files[i].name, sizeof files[i].name, "%s", nm);
        for (int j = 0; j < i; j++)
            if (!strcmp(files[j].name, files[i].name)) {
                cJSON_Delete(meta);
                return slm_err_set(err, SLM_EUSAGE, "payload name '%s' given twice", nm);
            }
    }
    /* Compress into an unlinked temp file beside the output: sizes and hashes
     * must be in the manifest, which precedes the payload. */
    char *tmpl = dir_tmpl(out_path);
    int pfd = tmpl ? mkstemp(tmpl) : -1;
    if (pfd < 0) {
        int e = errno;
        free(tmpl);
        cJSON_Delete(meta);
        return slm_err_set(err, SLM_EIO, "%s: cannot create a temp file beside it: %s", out_path, strerror(e));
    }
    unlink(tmpl);
    free(tmpl);
    int rc = SLM_OK;
    uint64_t plen = 0;
    for (int i = 0; i < s->n_files && !rc; i++) {
        rc = compress_file(s->paths[i], pfd, level, &files[i], err);
        plen += files[i].zsize;
    }
    char *manifest = rc ? NULL : manifest_canonical(s, files, meta);
    cJSON_Delete(meta);
    if (!rc && !manifest)
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    slm_sig *sigs = calloc((size_t)(n_signers ? n_signers : 1), sizeof *sigs);
    if (!rc && !sigs)
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    for (int i = 0; i < n_signers && !rc; i++) {
        for (int j = 0; j < i; j++)
            if (!strcmp(slm_key_id(signers[i]), slm_key_id(signers[j])))
                rc = slm_err_set(err, SLM_EUSAGE, "key %.16s given twice", slm_key_id(signers[i]));
        memcpy(sigs[i].keyid, slm_key_id(signers[i]), SLM_KEYID_HEX_LEN + 1);
        if (!rc)
            rc = slm_key_sign(signers[i], manifest, strlen(manifest), sigs[i].sig, err);
    }
    char *sj = rc ? NULL : sg_sigs_print(sigs, n_signers);
    if (!rc && !sj)
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    if (!rc && lseek(pfd, 0, SEEK_SET) != 0)
        rc = slm_err_set(err, SLM_EIO, "lseek failed: %s", strerror(errno));
    if (!rc)
        rc = write_bundle(out_path, SLM_BUNDLE_FORMAT, manifest, strlen(manifest), sj, strlen(sj), pfd, plen, 0644, err);
    close(pfd);
    free(sj);
    free(sigs);
    free(manifest);
    return rc;
}

/* ---- sign in place -------------------------------------------------------------- */
static int sign_root_file(const char *path, const slm_key *k, slm_err *err)
{
    slm_root *r;
    int rc = slm_root_load(path, &r, err);
    if (rc)
        return rc;
    for (int i = 0; i < r->n_sigs; i++)
        if (!strcmp(r->sigs[i].keyid, slm_key_id(k))) {
            slm_root_free(r);
            return slm_err_set(err, SLM_EUSAGE, "%s: already signed by key %.16s", path, slm_key_id(k));
        }
    slm_sig *ns = realloc(r->sigs, sizeof *ns * (size_t)(r->n_sigs + 1));
    if (!ns) {
        slm_root_free(r);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    r->sigs = ns;
    memcpy(ns[r->n_sigs].keyid, slm_key_id(k), SLM_KEYID_HEX_LEN + 1);
    if (!(rc = slm_key_sign(k, r->signed_bytes, r->signed_len, ns[r->n_sigs].sig, err))) {
        r->n_sigs++;
        char *sj = sg_sigs_print(r->sigs, r->n_sigs);
        cJSON *arr = sj ? cJSON_Parse(sj) : NULL, *o = cJSON_CreateObject();
        free(sj);
        char *text = NULL;
        if (arr && o) {
            cJSON_AddItemToObject(o, "signatures", arr);
            arr = NULL;
            cJSON_AddStringToObject(o, "signed", r->signed_bytes);
            text = cJSON_Print(o);
        }
        cJSON_Delete(arr);
        cJSON_Delete(o);
        if (!text)
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
        else {
            size_t n = strlen(text);
            char *t2 = realloc(text, n + 2);
            if (t2) {
                text = t2;
                text[n++] = '\n';
                text[n] = 0;
            }
            rc = sg_write_atomic(path, text, n, 0644, NULL, err);
            free(text);
        }
    }
    slm_root_free(r);
    return rc;
}

int slm_sign_file(const char *path, const slm_key *k, slm_err *err)
{
    if (!slm_key_has_private(k))
        return slm_err_set(err, SLM_EUSAGE, "signing needs a private key");
    int fd, rc = open_ro(path, &fd, err);
    if (rc)
        return rc;
    char magic[8];
    if (sg_full_read(fd, magic, 8) != 8 || memcmp(magic, SLM_BUNDLE_MAGIC, 8)) {
        close(fd);
        return sign_root_file(path, k, err);
    }
    lseek(fd, 0, SEEK_SET);
    slm_manifest *m = calloc(1, sizeof *m);
    head h;
    struct stat st;
    if (!m) {
        close(fd);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    rc = read_head(fd, path, &h, m, err);
    if (!rc)
        rc = sg_sigs_parse(path, h.sigs_text, h.slen, &m->sigs, &m->n_sigs, err);
    if (!rc && fstat(fd, &st) != 0)
        rc = slm_err_set(err, SLM_EIO, "%s: stat failed", path);
    if (!rc && (uint64_t)st.st_size < h.payload_start)
        rc = slm_err_set(err, SLM_EINPUT, "%s: truncated", path);
    for (int i = 0; !rc && i < m->n_sigs; i++)
        if (!strcmp(m->sigs[i].keyid, slm_key_id(k)))
            rc = slm_err_set(err, SLM_EUSAGE, "%s: already signed by key %.16s", path, slm_key_id(k));
    slm_sig *ns = rc ? NULL : realloc(m->sigs, sizeof *ns * (size_t)(m->n_sigs + 1));
    if (!rc && !ns)
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    char *sj = NULL;
    if (!rc) {
        m->sigs = ns;
        memcpy(ns[m->n_sigs].keyid, slm_key_id(k), SLM_KEYID_HEX_LEN + 1);
        rc = slm_key_sign(k, m->bytes, m->len, ns[m->n_sigs].sig, err);
    }
    if (!rc) {
        m->n_sigs++;
        sj = sg_sigs_print(m->sigs, m->n_sigs);
        if (!sj)
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    if (!rc)
        rc = write_bundle(path, h.stored ? SLM_BUNDLE_FORMAT_STORED : SLM_BUNDLE_FORMAT, (const char *)m->bytes, m->len, sj, strlen(sj), fd,
                          (uint64_t)st.st_size - h.payload_start, st.st_mode & 0777, err);
    free(sj);
    free(h.sigs_text);
    slm_manifest_free(m);
    close(fd);
    return rc;
}
