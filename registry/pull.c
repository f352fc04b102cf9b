/* registry/pull.c — pull: every byte hashed as it arrives, resumed with HTTP
 * Range after a cut, bounded memory, atomic landing (temp, fsync, rename). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "rg_internal.h"

#define RG_BUF (256u << 10)

typedef struct layer_sink {
    int fd;
    uint64_t base, size, have; /* layer start in the file, declared size, bytes held */
    slm_sha256_ctx *ctx;
    const char *digest;
    int range_sent, checked;
    rg_resp *resp;
    slm_err *err;
    uint64_t downloaded;
} layer_sink;

static int pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
    const char *c = p;
    while (n) {
        ssize_t w = pwrite(fd, c, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

static int restart_layer(layer_sink *s)
{
    slm_sha256_free(s->ctx);
    s->ctx = slm_sha256_new();
    s->have = 0;
    if (!s->ctx || ftruncate(s->fd, (off_t)s->base))
        return slm_err_set(s->err, SLM_EIO, "cannot restart the download of %s", s->digest);
    return 0;
}

static int sink_write(void *user, const void *p, size_t n)
{
    layer_sink *s = user;
    if (!s->checked) { /* first body bytes: did the server honour our Range? */
        s->checked = 1;
        if (s->range_sent) {
            unsigned long long a = 0;
            if (!s->resp->content_range[0]) {
                if (restart_layer(s)) /* the server sends the whole blob: start over */
                    return 1;
            } else if (sscanf(s->resp->content_range, "bytes %llu-", &a) != 1 || a != s->have) {
                slm_err_set(s->err, SLM_EIO, "blob %s: the registry answered range '%s', asked from %llu", s->digest,
                            s->resp->content_range, (unsigned long long)s->have);
                return 1;
            }
        }
    }
    if (n > s->size - s->have) {
        slm_err_set(s->err, SLM_EVERIFY, "blob %s: the registry sends more than the %llu bytes the manifest declares "
                    "(endless data refused)", s->digest, (unsigned long long)s->size);
        return 1;
    }
    if (slm_sha256_update(s->ctx, p, n) || pwrite_all(s->fd, p, n, s->base + s->have)) {
        slm_err_set(s->err, SLM_EIO, "blob %s: cannot write the download: %s", s->digest, strerror(errno));
        return 1;
    }
    s->have += n;
    s->downloaded += n;
    return 0;
}

static int finish_hash(layer_sink *s, int *match)
{
    uint8_t h[SLM_SHA256_LEN];
    char hex[2 * SLM_SHA256_LEN + 1];
    int rc = slm_sha256_final(s->ctx, h);
    slm_sha256_free(s->ctx);
    s->ctx = NULL;
    if (rc)
        return slm_err_set(s->err, SLM_EINTERNAL, "sha256 failed");
    slm_hex(h, sizeof h, hex);
    *match = !strcmp(hex, s->digest + 7);
    return 0;
}

/* Re-hash the bytes of this layer already in the file (from an earlier run). */
static int rehash_existing(layer_sink *s, uint64_t file_size, uint8_t *buf)
{
    uint64_t held = file_size > s->base ? file_size - s->base : 0;
    if (held > s->size)
        held = s->size;
    for (uint64_t off = 0; off < held;) {
        size_t n = held - off < RG_BUF ? (size_t)(held - off) : RG_BUF;
        ssize_t r = pread(s->fd, buf, n, (off_t)(s->base + off));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return slm_err_set(s->err, SLM_EIO, "cannot read the partial download: %s", strerror(errno));
        if (slm_sha256_update(s->ctx, buf, (size_t)r))
            return slm_err_set(s->err, SLM_EINTERNAL, "sha256 failed");
        off += (uint64_t)r;
    }
    s->have = held;
    return 0;
}

static int retryable(int curl_code)
{
    return curl_code == CURLE_PARTIAL_FILE || curl_code == CURLE_RECV_ERROR || curl_code == CURLE_GOT_NOTHING ||
           curl_code == CURLE_SEND_ERROR;
}

static int fetch_layer(rg_client *c, layer_sink *s, int idx, uint64_t file_size, uint8_t *buf, slm_pull_result *res)
{
    slm_err *err = s->err;
    if (!(s->ctx = slm_sha256_new()))
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    int rc = rehash_existing(s, file_size, buf);
    uint64_t prior = s->have; /* bytes kept from an earlier run */
    char path[1024];
again:
    snprintf(path, sizeof path, "/v2/%s/blobs/%s", c->ref.repo, s->digest);
    for (int attempt = 0; !rc && s->have < s->size; attempt++) {
        char range[80];
        const char *hs[2] = {NULL, NULL};
        s->range_sent = s->have > 0;
        s->checked = 0;
        if (s->range_sent) {
            snprintf(range, sizeof range, "Range: bytes=%llu-", (unsigned long long)s->have);
            hs[0] = range;
            if (!res->resumes)
                res->resumed_from = s->base + s->have;
            res->resumes++;
        }
        rg_resp r = {0};
        r.sink = sink_write;
        r.sink_user = s;
        s->resp = &r;
        uint64_t before = s->have;
        rc = rg_request(c, "GET", path, hs, NULL, &r, err);
        if (!rc && r.status == 404)
            rc = slm_err_set(err, SLM_EIO, "blob %s (layer %d) is not in the registry (404)", s->digest, idx);
        else if (!rc && r.status != 200 && r.status != 206)
            rc = slm_err_set(err, SLM_EIO, "blob %s (layer %d): the registry answered %ld", s->digest, idx, r.status);
        else if (!rc && s->have < s->size) /* clean end of a short body */
            rc = slm_err_set(err, SLM_EIO, "blob %s: truncated: the body ended after %llu of %llu bytes", s->digest,
                             (unsigned long long)s->have, (unsigned long long)s->size);
        int cut = rc == SLM_EIO && (retryable(r.curl_code) || (r.curl_code == 0 && r.status / 100 == 2));
        rg_resp_free(&r);
        if (rc && cut && s->have > before && attempt < c->o.retries)
            rc = 0; /* progress was made: resume from where it stopped */
    }
    int match = 0;
    if (!rc)
        rc = finish_hash(s, &match);
    if (!rc && !match && prior) { /* a bad prefix from an earlier run (e.g. a broken server): once more, whole */
        prior = 0;
        if (!(rc = restart_layer(s)))
            goto again;
    }
    if (!rc && !match) {
        if (ftruncate(s->fd, (off_t)s->base)) { /* never keep bytes that failed their digest */
        }
        rc = slm_err_set(err, SLM_EVERIFY, "blob %s (layer %d) does not match its digest: tampered or corrupt; "
                         "nothing was installed", s->digest, idx);
    }
    slm_sha256_free(s->ctx);
    s->ctx = NULL;
    return rc;
}

static int fsync_dir(const char *path)
{
    char *d = strdup(path);
    if (!d)
        return -1;
    int fd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(d);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

static int write_small(const char *path, const char *text)
{
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    int bad = pwrite_all(fd, text, strlen(text), 0) || fsync(fd);
    close(fd);
    if (bad || rename(tmp, path))
        return -1;
    return 0;
}

int slm_registry_pull(const char *refs, const char *out_path, const slm_registry_opts *o, slm_pull_result *res,
                      slm_err *err)
{
    slm_ref ref;
    slm_pull_result dummy;
    if (!res)
        res = &dummy;
    memset(res, 0, sizeof *res);
    int rc = slm_ref_parse(refs, &ref, err);
    if (rc)
        return rc;
    rg_client c;
    if ((rc = rg_client_init(&c, &ref, o, 0, err))) {
        rg_client_free(&c);
        return rc;
    }
    /* 1. the manifest (by digest when given: then the bytes must hash to it) */
    char path[1024];
    snprintf(path, sizeof path, "/v2/%s/manifests/%s", ref.repo, ref.digest[0] ? ref.digest : ref.tag);
    const char *hs[] = {"Accept: " SLM_OCI_MANIFEST_MT, NULL};
    rg_resp r = {0};
    rc = rg_request(&c, "GET", path, hs, NULL, &r, err);
    if (!rc && r.status == 404)
        rc = slm_err_set(err, SLM_EIO, "%s: no such manifest in the registry (404)", refs);
    else if (!rc && r.status != 200)
        rc = slm_err_set(err, SLM_EIO, "%s: the registry answered %ld to the manifest request", refs, r.status);
    slm_oci_manifest m;
    if (!rc) {
        rg_digest(r.body ? r.body : "", r.len, res->manifest_digest);
        if (ref.digest[0] && strcmp(ref.digest, res->manifest_digest))
            rc = slm_err_set(err, SLM_EVERIFY, "%s: the registry's manifest hashes to %s, not the requested digest",
                             refs, res->manifest_digest);
    }
    if (!rc)
        rc = slm_oci_manifest_parse(r.body ? r.body : "", r.len, &m, err);
    rg_resp_free(&r);
    if (!rc && (strcmp(m.artifact_type, SLM_MODEL_ARTIFACT_TYPE) || strcmp(m.layers[0].media_type, SLM_BUNDLE_HEAD_MT)))
        rc = slm_err_set(err, SLM_EINPUT, "%s: not an slmkit model bundle (artifactType '%s', layer 0 '%s')", refs,
                         m.artifact_type, m.layers[0].media_type);
    for (int i = 1; !rc && i < m.n_layers; i++)
        if (strcmp(m.layers[i].media_type, i == 1 ? SLM_MODEL_WEIGHT_RAW_MT : SLM_MODEL_FILE_RAW_MT))
            rc = slm_err_set(err, SLM_EINPUT, "%s: layer %d has media type '%s'", refs, i, m.layers[i].media_type);
    if (!rc && (m.layers[0].size < SLM_BUNDLE_HEADER_LEN || m.layers[0].size > SLM_BUNDLE_HEADER_LEN + SLM_MANIFEST_MAX + SLM_SIGS_MAX))
        rc = slm_err_set(err, SLM_EINPUT, "%s: the head layer declares %llu bytes", refs,
                         (unsigned long long)m.layers[0].size);
    if (rc) {
        rg_client_free(&c);
        return rc;
    }
    /* 2. the partial file: resumed only when it belongs to this very manifest */
    char part[4200], meta[4300];
    snprintf(part, sizeof part, "%s.part", out_path);
    snprintf(meta, sizeof meta, "%s.part.ref", out_path);
    char old[100] = "";
    FILE *mf = fopen(meta, "r");
    if (mf) {
        if (!fgets(old, sizeof old, mf))
            old[0] = 0;
        fclose(mf);
        old[strcspn(old, "\n")] = 0;
    }
    int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        rg_client_free(&c);
        return slm_err_set(err, SLM_EIO, "%s: cannot create: %s", part, strerror(errno));
    }
    if (strcmp(old, res->manifest_digest)) {
        if (ftruncate(fd, 0) || write_small(meta, res->manifest_digest))
            rc = slm_err_set(err, SLM_EIO, "%s: cannot start the download: %s", part, strerror(errno));
    }
    uint8_t *buf = malloc(RG_BUF);
    if (!rc && !buf)
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    slm_verify_opts vo = {o && o->now ? o->now : (int64_t)time(NULL), NULL, o ? o->floor : 0, 1};
    uint64_t base = 0;
    for (int i = 0; i < m.n_layers; i++)
        res->bytes_total += m.layers[i].size;
    for (int i = 0; !rc && i < m.n_layers; i++) {
        struct stat sb;
        if (fstat(fd, &sb)) {
            rc = slm_err_set(err, SLM_EIO, "%s: %s", part, strerror(errno));
            break;
        }
        layer_sink s = {fd, base, m.layers[i].size, 0, NULL, m.layers[i].digest, 0, 0, NULL, err, 0};
        rc = fetch_layer(&c, &s, i, (uint64_t)sb.st_size, buf, res);
        res->bytes_downloaded += s.downloaded;
        base += m.layers[i].size;
        if (!rc && i == 0 && o && o->root) {
            /* the signed head before any payload byte: signatures, expiry, version above the floor */
            slm_manifest *sm = NULL;
            rc = slm_bundle_verify_head(part, o->root, &vo, &sm, err);
            if (!rc && !sm->stored)
                rc = slm_err_set(err, SLM_EINPUT, "%s: the head layer is not a format-%d (stored payload) head", refs,
                                 SLM_BUNDLE_FORMAT_STORED);
            if (!rc && sm->n_files != m.n_layers - 1)
                rc = slm_err_set(err, SLM_EVERIFY, "%s: the signed manifest names %d files, the registry manifest has "
                                 "%d payload layers (mix-and-match)", refs, sm->n_files, m.n_layers - 1);
            for (int k = 0; !rc && k < sm->n_files; k++) {
                char hex[72] = "sha256:"; /* the layer is the plain file: the signed sha256 binds it */
                slm_hex(sm->files[k].sha256, SLM_SHA256_LEN, hex + 7);
                if (strcmp(hex, m.layers[k + 1].digest) || sm->files[k].size != m.layers[k + 1].size)
                    rc = slm_err_set(err, SLM_EVERIFY, "%s: payload layer %d (%s) is not the file the signed manifest "
                                     "names (mix-and-match)", refs, k + 1, m.layers[k + 1].digest);
            }
            if (!rc) {
                res->version = sm->version;
                snprintf(res->name, sizeof res->name, "%s", sm->name);
            }
            slm_manifest_free(sm);
        }
    }
    if (!rc && ftruncate(fd, (off_t)res->bytes_total))
        rc = slm_err_set(err, SLM_EIO, "%s: %s", part, strerror(errno));
    if (!rc && fsync(fd))
        rc = slm_err_set(err, SLM_EIO, "%s: fsync: %s", part, strerror(errno));
    close(fd);
    free(buf);
    rg_client_free(&c);
    if (!rc && o && o->root) { /* the whole bundle, as install will see it */
        slm_manifest *sm = NULL;
        rc = slm_bundle_verify(part, o->root, &vo, NULL, &sm, err);
        slm_manifest_free(sm);
    }
    if (rc == SLM_EVERIFY || rc == SLM_EINPUT) { /* refused: nothing of it is kept */
        unlink(part);
        unlink(meta);
    }
    if (rc)
        return rc;
    if (rename(part, out_path) || fsync_dir(out_path))
        return slm_err_set(err, SLM_EIO, "%s: cannot land the download: %s", out_path, strerror(errno));
    unlink(meta);
    return 0;
}
