/* registry/oci.c — references, OCI manifests, push (blobs with digest check,
 * manifest, referrer with the tag-schema fallback). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "rg_internal.h"

/* ---- references ---------------------------------------------------------------------- */
static int is_hex64(const char *s)
{
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return s[64] == 0;
}

int slm_ref_parse(const char *s, slm_ref *r, slm_err *err)
{
    memset(r, 0, sizeof *r);
    if (!s || !*s)
        return slm_err_set(err, SLM_EUSAGE, "empty registry reference");
    if (strstr(s, "://"))
        return slm_err_set(err, SLM_EUSAGE, "reference '%s': give host/repo:tag without a scheme (--plain-http for http)", s);
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || (size_t)(slash - s) >= sizeof r->host)
        return slm_err_set(err, SLM_EUSAGE, "reference '%s': expected HOST[:PORT]/REPO[:TAG][@sha256:...]", s);
    memcpy(r->host, s, (size_t)(slash - s));
    for (const char *p = r->host; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == ':' || *p == '[' || *p == ']'))
            return slm_err_set(err, SLM_EUSAGE, "reference '%s': bad character in the host", s);
    const char *rest = slash + 1;
    const char *at = strchr(rest, '@');
    size_t name_end = at ? (size_t)(at - rest) : strlen(rest);
    if (at) {
        if (strncmp(at + 1, "sha256:", 7) || !is_hex64(at + 8))
            return slm_err_set(err, SLM_EUSAGE, "reference '%s': the digest must be sha256:<64 lowercase hex>", s);
        snprintf(r->digest, sizeof r->digest, "%s", at + 1);
    }
    /* a tag is after the last ':' of the last path component */
    const char *last = rest;
    for (size_t i = 0; i < name_end; i++)
        if (rest[i] == '/')
            last = rest + i + 1;
    const char *colon = memchr(last, ':', name_end - (size_t)(last - rest));
    size_t repo_len = colon ? (size_t)(colon - rest) : name_end;
    if (!repo_len || repo_len >= sizeof r->repo)
        return slm_err_set(err, SLM_EUSAGE, "reference '%s': missing or too long repository name", s);
    memcpy(r->repo, rest, repo_len);
    for (const char *p = r->repo; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || strchr("._-/", *p)))
            return slm_err_set(err, SLM_EUSAGE, "reference '%s': repository names use a-z 0-9 . _ - /", s);
    if (colon) {
        size_t tl = name_end - (size_t)(colon + 1 - rest);
        if (!tl || tl > 128)
            return slm_err_set(err, SLM_EUSAGE, "reference '%s': a tag has 1..128 characters", s);
        memcpy(r->tag, colon + 1, tl);
        for (const char *p = r->tag; *p; p++)
            if (!(isalnum((unsigned char)*p) || strchr("._-", *p)))
                return slm_err_set(err, SLM_EUSAGE, "reference '%s': tags use A-Z a-z 0-9 . _ -", s);
    }
    if (!r->tag[0] && !r->digest[0])
        snprintf(r->tag, sizeof r->tag, "latest");
    return 0;
}

/* ---- manifests ------------------------------------------------------------------------- */
static int parse_desc(const cJSON *d, slm_oci_layer *l, const char *what, slm_err *err)
{
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(d, "mediaType");
    const cJSON *dg = cJSON_GetObjectItemCaseSensitive(d, "digest");
    const cJSON *sz = cJSON_GetObjectItemCaseSensitive(d, "size");
    if (!cJSON_IsString(mt) || !cJSON_IsString(dg) || !cJSON_IsNumber(sz))
        return slm_err_set(err, SLM_EINPUT, "registry manifest: %s lacks mediaType, digest or size", what);
    if (strlen(mt->valuestring) >= sizeof l->media_type)
        return slm_err_set(err, SLM_EINPUT, "registry manifest: %s media type too long", what);
    if (strncmp(dg->valuestring, "sha256:", 7) || !is_hex64(dg->valuestring + 7))
        return slm_err_set(err, SLM_EINPUT, "registry manifest: %s digest is not sha256:<64 hex>", what);
    double v = sz->valuedouble;
    if (!(v >= 0 && v <= 9007199254740992.0) || v != (double)(uint64_t)v)
        return slm_err_set(err, SLM_EINPUT, "registry manifest: %s size is not an integer in 0..2^53", what);
    strcpy(l->media_type, mt->valuestring);
    strcpy(l->digest, dg->valuestring);
    l->size = (uint64_t)v;
    return 0;
}

int slm_oci_manifest_parse(const char *json, size_t n, slm_oci_manifest *m, slm_err *err)
{
    memset(m, 0, sizeof *m);
    cJSON *j = cJSON_ParseWithLength(json, n);
    int rc = 0;
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return slm_err_set(err, SLM_EINPUT, "registry manifest is not a JSON object");
    }
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(j, "schemaVersion");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "mediaType");
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(j, "artifactType");
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(j, "config");
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(j, "layers");
    if (!cJSON_IsNumber(sv) || sv->valuedouble != 2)
        rc = slm_err_set(err, SLM_EINPUT, "registry manifest: schemaVersion is not 2");
    else if (cJSON_IsString(mt) && strcmp(mt->valuestring, SLM_OCI_MANIFEST_MT))
        rc = slm_err_set(err, SLM_EINPUT, "registry manifest: media type '%.100s' is not an OCI image manifest",
                         mt->valuestring);
    else if (!cJSON_IsObject(cfg) || !cJSON_IsArray(ls))
        rc = slm_err_set(err, SLM_EINPUT, "registry manifest: no config or no layers");
    if (!rc && cJSON_IsString(at)) {
        if (strlen(at->valuestring) >= sizeof m->artifact_type)
            rc = slm_err_set(err, SLM_EINPUT, "registry manifest: artifactType too long");
        else
            strcpy(m->artifact_type, at->valuestring);
    }
    if (!rc)
        rc = parse_desc(cfg, &m->config, "config", err);
    int nl = rc ? 0 : cJSON_GetArraySize(ls);
    if (!rc && (nl < 1 || nl > SLM_OCI_MAX_LAYERS))
        rc = slm_err_set(err, SLM_EINPUT, "registry manifest: %d layers (1..%d allowed)", nl, SLM_OCI_MAX_LAYERS);
    for (int i = 0; !rc && i < nl; i++) {
        char what[32];
        snprintf(what, sizeof what, "layer %d", i);
        rc = parse_desc(cJSON_GetArrayItem(ls, i), &m->layers[i], what, err);
    }
    if (!rc)
        m->n_layers = nl;
    cJSON_Delete(j);
    return rc;
}

/* ---- the bundle as layers -------------------------------------------------------------- */
typedef struct bundle_parts {
    int fd;
    int stored;         /* the file is format 2 (payload stored uncompressed) */
    uint64_t head_len, total;
    char name[129];
    uint64_t version;
    int n_files;
    struct {
        char name[65];
        uint64_t off, zsize, size; /* off: where the file's bytes start in the bundle file */
        char diff_id[72];          /* sha256:<hex> of the plain file = its layer digest */
    } f[SLM_BUNDLE_MAX_FILES];
    uint8_t *head;      /* the head as layer 0 carries it: header (format 2), manifest, signatures */
    char head_digest[72];
    char *manifest;     /* signed manifest bytes (NUL-terminated) */
    char *sigs;         /* signature block */
} bundle_parts;

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

static int read_at(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* Structure only (the signatures are the installer's business; a publisher
 * runs `slm verify` before pushing). Reads format 1 (zstd payload) and 2. */
static int parts_open(const char *path, bundle_parts *b, slm_err *err)
{
    memset(b, 0, sizeof *b);
    b->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (b->fd < 0)
        return slm_err_set(err, SLM_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    uint8_t h[SLM_BUNDLE_HEADER_LEN];
    if (fstat(b->fd, &sb) || !S_ISREG(sb.st_mode))
        return slm_err_set(err, SLM_EIO, "%s: not a regular file", path);
    b->total = (uint64_t)sb.st_size;
    if (read_at(b->fd, h, sizeof h, 0) || memcmp(h, SLM_BUNDLE_MAGIC, 8) ||
        (le32(h + 8) != SLM_BUNDLE_FORMAT && le32(h + 8) != SLM_BUNDLE_FORMAT_STORED))
        return slm_err_set(err, SLM_EINPUT, "%s: not a bundle (format %d or %d)", path, SLM_BUNDLE_FORMAT,
                           SLM_BUNDLE_FORMAT_STORED);
    b->stored = le32(h + 8) == SLM_BUNDLE_FORMAT_STORED;
    uint32_t ml = le32(h + 12), sl = le32(h + 16);
    if (ml < 2 || ml > SLM_MANIFEST_MAX || sl < 2 || sl > SLM_SIGS_MAX)
        return slm_err_set(err, SLM_EINPUT, "%s: bad manifest/signature lengths in the header", path);
    b->head_len = SLM_BUNDLE_HEADER_LEN + (uint64_t)ml + sl;
    if (b->head_len > b->total)
        return slm_err_set(err, SLM_EINPUT, "%s: truncated inside its head", path);
    b->manifest = malloc(ml + 1);
    b->sigs = malloc(sl + 1);
    b->head = malloc(b->head_len);
    if (!b->manifest || !b->sigs || !b->head)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    if (read_at(b->fd, b->head, b->head_len, 0))
        return slm_err_set(err, SLM_EIO, "%s: read failed", path);
    memcpy(b->manifest, b->head + SLM_BUNDLE_HEADER_LEN, ml);
    b->manifest[ml] = 0;
    memcpy(b->sigs, b->head + SLM_BUNDLE_HEADER_LEN + ml, sl);
    b->sigs[sl] = 0;
    /* the registry keeps the payload stored: layer 0 is a format-2 head (the header is not signed) */
    b->head[8] = SLM_BUNDLE_FORMAT_STORED, b->head[9] = b->head[10] = b->head[11] = 0;
    rg_digest(b->head, b->head_len, b->head_digest);
    cJSON *j = cJSON_ParseWithLength(b->manifest, ml);
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "name");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "version");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(j, "files");
    int rc = 0;
    if (!cJSON_IsString(nm) || strlen(nm->valuestring) >= sizeof b->name || !cJSON_IsNumber(ver) ||
        !cJSON_IsArray(files) || cJSON_GetArraySize(files) < 1 || cJSON_GetArraySize(files) > SLM_BUNDLE_MAX_FILES)
        rc = slm_err_set(err, SLM_EINPUT, "%s: the bundle manifest lacks name, version or files", path);
    uint64_t off = b->head_len;
    for (int i = 0; !rc && i < cJSON_GetArraySize(files); i++) {
        const cJSON *f = cJSON_GetArrayItem(files, i);
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(f, "name");
        const cJSON *zs = cJSON_GetObjectItemCaseSensitive(f, "zsize");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(f, "size");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(f, "sha256");
        if (!cJSON_IsString(fn) || strlen(fn->valuestring) > 64 || !cJSON_IsNumber(zs) || !cJSON_IsNumber(s) ||
            !cJSON_IsString(sh) || !is_hex64(sh->valuestring) || zs->valuedouble < 0 ||
            zs->valuedouble > 9007199254740992.0 || s->valuedouble < 0 || s->valuedouble > 9007199254740992.0) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: file %d of the bundle manifest is malformed", path, i);
            break;
        }
        strcpy(b->f[i].name, fn->valuestring);
        b->f[i].zsize = (uint64_t)zs->valuedouble;
        b->f[i].size = (uint64_t)s->valuedouble;
        b->f[i].off = off;
        snprintf(b->f[i].diff_id, sizeof b->f[i].diff_id, "sha256:%s", sh->valuestring);
        off += b->stored ? b->f[i].size : b->f[i].zsize;
        b->n_files = i + 1;
    }
    if (!rc && off != b->total)
        rc = slm_err_set(err, SLM_EINPUT, "%s: the payload is %llu bytes, the manifest declares %llu", path,
                         (unsigned long long)(b->total - b->head_len), (unsigned long long)(off - b->head_len));
    if (!rc) {
        strcpy(b->name, nm->valuestring);
        b->version = (uint64_t)ver->valuedouble;
    }
    cJSON_Delete(j);
    return rc;
}

static void parts_close(bundle_parts *b)
{
    if (b->fd >= 0)
        close(b->fd);
    free(b->head);
    free(b->manifest);
    free(b->sigs);
}

/* ---- push ---------------------------------------------------------------------------------- */
#define RG_CHUNK (32ull << 20) /* blobs above this go up in PATCH chunks */

static int status_err(const char *what, const rg_resp *r, slm_err *err)
{
    char body[200] = "";
    if (r->body)
        snprintf(body, sizeof body, ": %.180s", r->body);
    for (char *p = body; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return slm_err_set(err, SLM_EIO, "%s: the registry answered %ld%s", what, r->status, body);
}

static int next_location(rg_client *c, const rg_resp *r, char *out, size_t cap, slm_err *err)
{
    if (!r->location[0])
        return slm_err_set(err, SLM_EIO, "%s: upload answer without a Location", c->ref.host);
    if (r->location[0] == '/')
        snprintf(out, cap, "%s%s", c->base, r->location);
    else
        snprintf(out, cap, "%s", r->location);
    return 0;
}

/* Does the registry have this blob? (HEAD) */
static int blob_exists(rg_client *c, const char *digest, int *exists, slm_err *err)
{
    char path[1024];
    rg_resp r = {0};
    snprintf(path, sizeof path, "/v2/%s/blobs/%s", c->ref.repo, digest);
    int rc = rg_request(c, "HEAD", path, NULL, NULL, &r, err);
    *exists = !rc && r.status == 200;
    rg_resp_free(&r);
    return rc;
}

/* Upload one blob unless the registry has it. *existed = 1 when it had. */
static int push_blob(rg_client *c, const char *digest, rg_upload *src, int *existed, slm_err *err)
{
    char path[1024], loc[4096], url[4200];
    rg_resp r = {0};
    int rc = blob_exists(c, digest, existed, err);
    if (rc || *existed)
        return rc;
    snprintf(path, sizeof path, "/v2/%s/blobs/uploads/", c->ref.repo);
    if (!rc)
        rc = rg_request(c, "POST", path, NULL, NULL, &r, err);
    if (!rc && r.status != 202)
        rc = status_err("blob upload start", &r, err);
    if (!rc)
        rc = next_location(c, &r, loc, sizeof loc, err);
    uint64_t done = 0;
    while (!rc && src->len - done > RG_CHUNK) { /* chunked: PATCH with Content-Range */
        rg_upload part = *src;
        part.off += done;
        part.len = RG_CHUNK;
        if (part.mem)
            part.mem = (const char *)part.mem + done;
        char cr[96];
        snprintf(cr, sizeof cr, "Content-Range: %llu-%llu", (unsigned long long)done,
                 (unsigned long long)(done + part.len - 1));
        const char *hs[] = {"Content-Type: application/octet-stream", cr, NULL};
        rc = rg_request(c, "PATCH", loc, hs, &part, &r, err);
        if (!rc && r.status != 202)
            rc = status_err("blob chunk upload", &r, err);
        if (!rc)
            rc = next_location(c, &r, loc, sizeof loc, err);
        done += part.len;
    }
    rg_upload last = *src;
    last.off += done;
    last.len -= done;
    if (last.mem)
        last.mem = (const char *)last.mem + done;
    snprintf(url, sizeof url, "%s%sdigest=%s", loc, strchr(loc, '?') ? "&" : "?", digest);
    const char *hs[] = {"Content-Type: application/octet-stream", NULL};
    if (!rc)
        rc = rg_request(c, "PUT", url, hs, &last, &r, err);
    if (!rc && r.status != 201)
        rc = r.status == 400 ? slm_err_set(err, SLM_EVERIFY, "blob %s: the registry refused it (400: digest check "
                                           "failed?): %.150s", digest, r.body ? r.body : "")
                             : status_err("blob upload", &r, err);
    if (!rc && r.digest[0] && strcmp(r.digest, digest))
        rc = slm_err_set(err, SLM_EVERIFY, "blob upload: the registry stored %s, expected %s", r.digest, digest);
    rg_resp_free(&r);
    return rc;
}

static int put_manifest(rg_client *c, const char *ref, const char *mt, const char *body, char *digest_out,
                        char *subject_out, slm_err *err)
{
    char path[1024], ct[200];
    snprintf(path, sizeof path, "/v2/%s/manifests/%s", c->ref.repo, ref);
    snprintf(ct, sizeof ct, "Content-Type: %s", mt);
    const char *hs[] = {ct, NULL};
    rg_upload up = {body, -1, 0, strlen(body), 0};
    rg_resp r = {0};
    char dg[72];
    rg_digest(body, strlen(body), dg);
    int rc = rg_request(c, "PUT", path, hs, &up, &r, err);
    if (!rc && r.status != 201)
        rc = status_err("manifest upload", &r, err);
    if (!rc && r.digest[0] && strcmp(r.digest, dg))
        rc = slm_err_set(err, SLM_EVERIFY, "manifest upload: the registry reports digest %s, expected %s", r.digest, dg);
    if (!rc && digest_out)
        strcpy(digest_out, dg);
    if (!rc && subject_out)
        snprintf(subject_out, 72, "%.71s", r.oci_subject);
    rg_resp_free(&r);
    return rc;
}

static cJSON *desc(const char *mt, const char *digest, uint64_t size)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "mediaType", mt);
    cJSON_AddStringToObject(d, "digest", digest);
    cJSON_AddNumberToObject(d, "size", (double)size);
    return d;
}

/* GET a manifest or index by tag/digest into memory (bounded). 404 -> *found = 0. */
static int get_manifest(rg_client *c, const char *ref, const char *accept, rg_resp *r, int *found, slm_err *err)
{
    char path[1024], acc[300];
    snprintf(path, sizeof path, "/v2/%s/manifests/%s", c->ref.repo, ref);
    snprintf(acc, sizeof acc, "Accept: %s", accept);
    const char *hs[] = {acc, NULL};
    int rc = rg_request(c, "GET", path, hs, NULL, r, err);
    if (rc)
        return rc;
    *found = r->status == 200;
    if (r->status == 404)
        return 0;
    if (r->status != 200)
        return status_err("manifest fetch", r, err);
    return 0;
}

/* The referrer: the signed manifest + signatures as an artifact whose subject
 * is the model manifest. Referrers API when the registry has it (it answers
 * OCI-Subject), else the tag schema: index "sha256-<hex>" listing referrers. */
static int push_referrer(rg_client *c, const bundle_parts *b, const char *subj_digest, uint64_t subj_size,
                         slm_push_result *res, slm_err *err)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "manifest", b->manifest);
    cJSON_AddStringToObject(doc, "signatures", b->sigs);
    char *docs = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (!docs)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    char doc_dg[72], empty_dg[72];
    rg_digest(docs, strlen(docs), doc_dg);
    rg_digest("{}", 2, empty_dg);
    int existed;
    rg_upload u1 = {docs, -1, 0, strlen(docs), 0}, u2 = {"{}", -1, 0, 2, 0};
    int rc = push_blob(c, doc_dg, &u1, &existed, err);
    if (!rc)
        rc = push_blob(c, empty_dg, &u2, &existed, err);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddNumberToObject(m, "schemaVersion", 2);
    cJSON_AddStringToObject(m, "mediaType", SLM_OCI_MANIFEST_MT);
    cJSON_AddStringToObject(m, "artifactType", SLM_SIGNATURE_ARTIFACT_TYPE);
    cJSON_AddItemToObject(m, "config", desc(SLM_OCI_EMPTY_MT, empty_dg, 2));
    cJSON *ls = cJSON_AddArrayToObject(m, "layers");
    cJSON_AddItemToArray(ls, desc("application/vnd.slmkit.bundle.manifest.v1+json", doc_dg, strlen(docs)));
    cJSON_AddItemToObject(m, "subject", desc(SLM_OCI_MANIFEST_MT, subj_digest, subj_size));
    cJSON *an = cJSON_AddObjectToObject(m, "annotations");
    cJSON_AddStringToObject(an, "org.slmkit.bundle.name", b->name);
    char *ms = cJSON_PrintUnformatted(m);
    cJSON_Delete(m);
    free(docs);
    if (!ms)
        return rc ? rc : slm_err_set(err, SLM_EINTERNAL, "out of memory");
    char ref_dg[72], subject_hdr[72] = "";
    rg_digest(ms, strlen(ms), ref_dg);
    if (!rc)
        rc = put_manifest(c, ref_dg, SLM_OCI_MANIFEST_MT, ms, NULL, subject_hdr, err);
    if (!rc)
        strcpy(res->referrer_digest, ref_dg);
    uint64_t ms_len = strlen(ms);
    free(ms);
    if (rc)
        return rc;
    if (subject_hdr[0]) {
        res->referrers_api = 1;
        return 0;
    }
    /* tag-schema fallback: <alg>-<hex> tag holding an index of referrers */
    char tag[80];
    snprintf(tag, sizeof tag, "sha256-%s", subj_digest + 7);
    rg_resp r = {0};
    int found = 0;
    rc = get_manifest(c, tag, SLM_OCI_INDEX_MT, &r, &found, err);
    cJSON *idx = NULL;
    if (!rc && found) {
        idx = cJSON_ParseWithLength(r.body ? r.body : "", r.len);
        if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(idx, "manifests"))) {
            cJSON_Delete(idx);
            idx = NULL; /* not an index: replaced */
        }
    }
    rg_resp_free(&r);
    if (rc)
        return rc;
    if (!idx) {
        idx = cJSON_CreateObject();
        cJSON_AddNumberToObject(idx, "schemaVersion", 2);
        cJSON_AddStringToObject(idx, "mediaType", SLM_OCI_INDEX_MT);
        cJSON_AddArrayToObject(idx, "manifests");
    }
    cJSON *list = cJSON_GetObjectItemCaseSensitive(idx, "manifests"), *e;
    int have = 0;
    cJSON_ArrayForEach(e, list)
    {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(e, "digest");
        have |= cJSON_IsString(d) && !strcmp(d->valuestring, ref_dg);
    }
    if (!have) {
        cJSON *d = desc(SLM_OCI_MANIFEST_MT, ref_dg, ms_len);
        cJSON_AddStringToObject(d, "artifactType", SLM_SIGNATURE_ARTIFACT_TYPE);
        cJSON_AddItemToArray(list, d);
    }
    char *is = cJSON_PrintUnformatted(idx);
    cJSON_Delete(idx);
    if (!is)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    rc = put_manifest(c, tag, SLM_OCI_INDEX_MT, is, NULL, NULL, err);
    free(is);
    res->referrers_api = 0;
    return rc;
}

/* Decompress the payload files the registry lacks (have[i] == 0) into one
 * unlinked temp file beside the bundle (else in $TMPDIR), every byte checked
 * against the manifest's size and SHA-256 (slm_bundle_unpack). */
typedef struct extract_sink {
    int fd, on;
    const int *have;
    uint64_t *off, pos;
} extract_sink;

static int ex_begin(void *u, int i, const slm_bundle_file *f, slm_err *err)
{
    extract_sink *s = u;
    s->on = !s->have[i];
    s->off[i] = s->pos;
    (void)f, (void)err;
    return 0;
}

static int ex_write(void *u, const void *p, size_t n, slm_err *err)
{
    extract_sink *s = u;
    if (!s->on)
        return 0;
    const char *c = p;
    while (n) {
        ssize_t w = write(s->fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return slm_err_set(err, SLM_EIO, "cannot write the unpacked payload: %s", w < 0 ? strerror(errno) : "disk full");
        c += w, n -= (size_t)w, s->pos += (uint64_t)w;
    }
    return 0;
}

static int temp_beside(const char *path)
{
    char t[4200];
    const char *sl = strrchr(path, '/'), *td = getenv("TMPDIR");
    snprintf(t, sizeof t, "%.*s/.slm-push.XXXXXX", sl ? (int)(sl - path) : 1, sl ? path : ".");
    if (sl == path)
        snprintf(t, sizeof t, "/.slm-push.XXXXXX");
    int fd = mkstemp(t);
    if (fd < 0) {
        snprintf(t, sizeof t, "%s/.slm-push.XXXXXX", td && *td ? td : "/tmp");
        fd = mkstemp(t);
    }
    if (fd >= 0)
        unlink(t);
    return fd;
}

static int extract_missing(const char *bundle_path, const bundle_parts *b, const int *have, int *tfd, uint64_t *toff,
                           slm_err *err)
{
    if ((*tfd = temp_beside(bundle_path)) < 0)
        return slm_err_set(err, SLM_EIO, "%s: cannot create a temp file to unpack the model: %s", bundle_path,
                           strerror(errno));
    extract_sink es = {*tfd, 0, have, toff, 0};
    slm_bundle_sink sink = {ex_begin, ex_write, NULL, &es};
    slm_manifest *m = NULL;
    int rc = slm_bundle_unpack(bundle_path, &sink, &m, err);
    if (!rc && m->n_files != b->n_files)
        rc = slm_err_set(err, SLM_EINPUT, "%s: inconsistent manifest", bundle_path);
    slm_manifest_free(m);
    return rc;
}

int slm_registry_push(const char *bundle_path, const char *refs, const slm_registry_opts *o, slm_push_result *res,
                      slm_err *err)
{
    slm_ref ref;
    int rc = slm_ref_parse(refs, &ref, err);
    if (rc)
        return rc;
    if (!ref.tag[0] || ref.digest[0])
        return slm_err_set(err, SLM_EUSAGE, "push: give a tag (HOST/REPO:TAG), not a digest");
    memset(res, 0, sizeof *res);
    bundle_parts b;
    rc = parts_open(bundle_path, &b, err);
    rg_client c;
    memset(&c, 0, sizeof c);
    if (!rc)
        rc = rg_client_init(&c, &ref, o, 1, err);
    /* ModelPack config: what the model is, and the uncompressed digests (diffIds) */
    cJSON *cfg = cJSON_CreateObject();
    cJSON *dsc = cJSON_AddObjectToObject(cfg, "descriptor");
    cJSON_AddStringToObject(dsc, "name", b.name);
    char vs[32];
    snprintf(vs, sizeof vs, "%llu", (unsigned long long)b.version);
    cJSON_AddStringToObject(dsc, "version", vs);
    cJSON *cc = cJSON_AddObjectToObject(cfg, "config");
    cJSON_AddStringToObject(cc, "format", "gguf");
    cJSON *mfs = cJSON_AddObjectToObject(cfg, "modelfs");
    cJSON_AddStringToObject(mfs, "type", "layers");
    cJSON *diff = cJSON_AddArrayToObject(mfs, "diffIds");
    for (int i = 0; i < b.n_files; i++)
        cJSON_AddItemToArray(diff, cJSON_CreateString(b.f[i].diff_id));
    char *cfgs = cJSON_PrintUnformatted(cfg);
    cJSON_Delete(cfg);
    char cfg_dg[72];
    if (!rc && !cfgs)
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    if (!rc)
        rg_digest(cfgs, strlen(cfgs), cfg_dg);
    int existed = 0;
    if (!rc) {
        rg_upload u = {cfgs, -1, 0, strlen(cfgs), 0};
        rc = push_blob(&c, cfg_dg, &u, &existed, err);
    }
    if (!rc) {
        rg_upload u = {b.head, -1, 0, b.head_len, 0};
        rc = push_blob(&c, b.head_digest, &u, &existed, err);
        existed ? res->blobs_existing++ : res->blobs_uploaded++;
    }
    /* the payload layers are the plain files: the ones the registry lacks come from
     * the bundle as they are (format 2) or decompressed into a temp file first */
    int have[SLM_BUNDLE_MAX_FILES] = {0}, missing = 0, tfd = -1;
    uint64_t toff[SLM_BUNDLE_MAX_FILES] = {0};
    for (int i = 0; !rc && i < b.n_files; i++) {
        rc = blob_exists(&c, b.f[i].diff_id, &have[i], err);
        missing += !have[i];
    }
    if (!rc && missing && !b.stored)
        rc = extract_missing(bundle_path, &b, have, &tfd, toff, err);
    for (int i = 0; !rc && i < b.n_files; i++) {
        rg_upload u = {NULL, b.stored ? b.fd : tfd, b.stored ? b.f[i].off : toff[i], b.f[i].size, 0};
        rc = have[i] ? 0 : push_blob(&c, b.f[i].diff_id, &u, &existed, err);
        have[i] || existed ? res->blobs_existing++ : res->blobs_uploaded++;
    }
    if (tfd >= 0)
        close(tfd);
    char *ms = NULL;
    if (!rc) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddNumberToObject(m, "schemaVersion", 2);
        cJSON_AddStringToObject(m, "mediaType", SLM_OCI_MANIFEST_MT);
        cJSON_AddStringToObject(m, "artifactType", SLM_MODEL_ARTIFACT_TYPE);
        cJSON_AddItemToObject(m, "config", desc(SLM_MODEL_CONFIG_MT, cfg_dg, strlen(cfgs)));
        cJSON *ls = cJSON_AddArrayToObject(m, "layers");
        cJSON *hd = desc(SLM_BUNDLE_HEAD_MT, b.head_digest, b.head_len);
        cJSON_AddItemToArray(ls, hd);
        for (int i = 0; i < b.n_files; i++) {
            cJSON *d = desc(i == 0 ? SLM_MODEL_WEIGHT_RAW_MT : SLM_MODEL_FILE_RAW_MT, b.f[i].diff_id, b.f[i].size);
            cJSON *an = cJSON_AddObjectToObject(d, "annotations");
            cJSON_AddStringToObject(an, "org.cncf.model.filepath", b.f[i].name);
            cJSON_AddItemToArray(ls, d);
        }
        cJSON *an = cJSON_AddObjectToObject(m, "annotations");
        cJSON_AddStringToObject(an, "org.opencontainers.image.title", b.name);
        cJSON_AddStringToObject(an, "org.opencontainers.image.version", vs);
        ms = cJSON_PrintUnformatted(m);
        cJSON_Delete(m);
        if (!ms)
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    if (!rc)
        rc = put_manifest(&c, ref.tag, SLM_OCI_MANIFEST_MT, ms, res->manifest_digest, NULL, err);
    if (!rc) {
        res->manifest_size = strlen(ms);
        res->n_layers = 1 + b.n_files;
        strcpy(res->payload_digest, b.f[0].diff_id);
        rc = push_referrer(&c, &b, res->manifest_digest, res->manifest_size, res, err);
    }
    free(ms);
    free(cfgs);
    rg_client_free(&c);
    parts_close(&b);
    return rc;
}

/* ---- TUF metadata through the registry ------------------------------------------------------- */
/* A TUF metadata file name the client reads: N.root.json, targets/snapshot/timestamp.json. */
static int tuf_name_ok(const char *s)
{
    if (!strcmp(s, "targets.json") || !strcmp(s, "snapshot.json") || !strcmp(s, "timestamp.json"))
        return 1;
    size_t d = strspn(s, "0123456789");
    return d >= 1 && d <= 9 && s[0] != '0' && !strcmp(s + d, ".root.json");
}

int slm_registry_push_tuf(const char *repo_dir, const char *refs, const slm_registry_opts *o, char digest_out[72],
                          slm_err *err)
{
    slm_ref ref;
    int rc = slm_ref_parse(refs, &ref, err);
    if (rc)
        return rc;
    if (!ref.tag[0] || ref.digest[0])
        return slm_err_set(err, SLM_EUSAGE, "TUF metadata: give a tag (HOST/REPO:TAG), not a digest");
    /* the files: 1.root.json .. N.root.json (the rotation chain), then the three top-level roles */
    char names[SLM_OCI_MAX_LAYERS][32];
    int n = 0;
    char path[4400];
    for (int v = 1; n < SLM_OCI_MAX_LAYERS - 3; v++) {
        snprintf(path, sizeof path, "%s/metadata/%d.root.json", repo_dir, v);
        if (access(path, F_OK))
            break;
        snprintf(names[n++], sizeof names[0], "%d.root.json", v);
    }
    if (!n)
        return slm_err_set(err, SLM_EINPUT, "%s: no metadata/1.root.json (run slm tuf init)", repo_dir);
    snprintf(path, sizeof path, "%s/metadata/%d.root.json", repo_dir, n + 1);
    if (!access(path, F_OK))
        return slm_err_set(err, SLM_EINPUT, "%s: more than %d root versions", repo_dir, SLM_OCI_MAX_LAYERS - 3);
    const char *roles[] = {"targets.json", "snapshot.json", "timestamp.json"};
    for (int i = 0; i < 3; i++)
        snprintf(names[n++], sizeof names[0], "%s", roles[i]);
    rg_client c;
    if ((rc = rg_client_init(&c, &ref, o, 1, err))) {
        rg_client_free(&c);
        return rc;
    }
    char empty_dg[72];
    rg_digest("{}", 2, empty_dg);
    int existed;
    rg_upload ue = {"{}", -1, 0, 2, 0};
    rc = push_blob(&c, empty_dg, &ue, &existed, err);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddNumberToObject(m, "schemaVersion", 2);
    cJSON_AddStringToObject(m, "mediaType", SLM_OCI_MANIFEST_MT);
    cJSON_AddStringToObject(m, "artifactType", SLM_TUF_ARTIFACT_TYPE);
    cJSON_AddItemToObject(m, "config", desc(SLM_OCI_EMPTY_MT, empty_dg, 2));
    cJSON *ls = cJSON_AddArrayToObject(m, "layers");
    for (int i = 0; !rc && i < n; i++) {
        snprintf(path, sizeof path, "%s/metadata/%s", repo_dir, names[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat sb;
        if (fd < 0 || fstat(fd, &sb) || !S_ISREG(sb.st_mode) || sb.st_size > (off_t)RG_BODY_MAX) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: missing, not a file or over %u bytes", path, RG_BODY_MAX);
            if (fd >= 0)
                close(fd);
            break;
        }
        char *buf = malloc((size_t)sb.st_size + 1);
        if (!buf || read_at(fd, buf, (size_t)sb.st_size, 0))
            rc = slm_err_set(err, SLM_EIO, "%s: cannot read", path);
        close(fd);
        char dg[72];
        if (!rc) {
            rg_digest(buf, (size_t)sb.st_size, dg);
            rg_upload u = {buf, -1, 0, (uint64_t)sb.st_size, 0};
            rc = push_blob(&c, dg, &u, &existed, err);
        }
        if (!rc) {
            cJSON *d = desc(SLM_TUF_METADATA_MT, dg, (uint64_t)sb.st_size);
            cJSON_AddStringToObject(cJSON_AddObjectToObject(d, "annotations"), "org.opencontainers.image.title",
                                    names[i]);
            cJSON_AddItemToArray(ls, d);
        }
        free(buf);
    }
    char *ms = rc ? NULL : cJSON_PrintUnformatted(m);
    cJSON_Delete(m);
    if (!rc && !ms)
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    if (!rc)
        rc = put_manifest(&c, ref.tag, SLM_OCI_MANIFEST_MT, ms, digest_out, NULL, err);
    free(ms);
    rg_client_free(&c);
    return rc;
}

int slm_oci_tuf_manifest_parse(const char *json, size_t n, slm_oci_manifest *m, char names[][32], slm_err *err)
{
    int rc = slm_oci_manifest_parse(json, n, m, err);
    if (rc)
        return rc;
    if (strcmp(m->artifact_type, SLM_TUF_ARTIFACT_TYPE))
        return slm_err_set(err, SLM_EINPUT, "not TUF metadata (artifactType is not %s)", SLM_TUF_ARTIFACT_TYPE);
    cJSON *j = cJSON_ParseWithLength(json, n);
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(j, "layers");
    for (int i = 0; !rc && i < m->n_layers; i++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ls, i), "annotations"), "org.opencontainers.image.title");
        if (strcmp(m->layers[i].media_type, SLM_TUF_METADATA_MT) || !cJSON_IsString(t) || !tuf_name_ok(t->valuestring))
            rc = slm_err_set(err, SLM_EINPUT, "layer %d is not a TUF metadata file (N.root.json, targets.json, "
                             "snapshot.json or timestamp.json)", i);
        else if (m->layers[i].size > RG_BODY_MAX)
            rc = slm_err_set(err, SLM_EVERIFY, "%s declares %llu bytes (over %u: endless data refused)", t->valuestring,
                             (unsigned long long)m->layers[i].size, RG_BODY_MAX);
        else
            snprintf(names[i], 32, "%s", t->valuestring);
        for (int k = 0; !rc && k < i; k++)
            if (!strcmp(names[k], names[i]))
                rc = slm_err_set(err, SLM_EINPUT, "%s is listed twice", names[i]);
    }
    cJSON_Delete(j);
    return rc;
}

int slm_registry_pull_tuf(const char *refs, const char *dir, const slm_registry_opts *o, int *found, slm_err *err)
{
    slm_ref ref;
    *found = 0;
    int rc = slm_ref_parse(refs, &ref, err);
    if (rc)
        return rc;
    rg_client c;
    if ((rc = rg_client_init(&c, &ref, o, 0, err))) {
        rg_client_free(&c);
        return rc;
    }
    rg_resp r = {0};
    rc = get_manifest(&c, ref.digest[0] ? ref.digest : ref.tag, SLM_OCI_MANIFEST_MT, &r, found, err);
    slm_oci_manifest m;
    char names[SLM_OCI_MAX_LAYERS][32];
    if (!rc && *found) {
        char dg[72];
        rg_digest(r.body ? r.body : "", r.len, dg);
        if (ref.digest[0] && strcmp(dg, ref.digest))
            rc = slm_err_set(err, SLM_EVERIFY, "%s: the registry's manifest hashes to %s, not the requested digest", refs, dg);
        slm_err pe = {0};
        if (!rc && (rc = slm_oci_tuf_manifest_parse(r.body ? r.body : "", r.len, &m, names, &pe)))
            slm_err_set(err, rc, "%s: %s", refs, pe.msg);
    }
    rg_resp_free(&r);
    char md[4200];
    snprintf(md, sizeof md, "%s/metadata", dir);
    if (!rc && *found && ((mkdir(dir, 0755) && errno != EEXIST) || (mkdir(md, 0755) && errno != EEXIST)))
        rc = slm_err_set(err, SLM_EIO, "%s: cannot create: %s", md, strerror(errno));
    for (int i = 0; !rc && *found && i < m.n_layers; i++) {
        char path[4400];
        snprintf(path, sizeof path, "/v2/%s/blobs/%s", ref.repo, m.layers[i].digest);
        rg_resp b = {0};
        rc = rg_request(&c, "GET", path, NULL, NULL, &b, err);
        char dg[72];
        if (!rc && b.status != 200)
            rc = status_err(names[i], &b, err);
        if (!rc) {
            rg_digest(b.body ? b.body : "", b.len, dg);
            if (strcmp(dg, m.layers[i].digest) || b.len != m.layers[i].size)
                rc = slm_err_set(err, SLM_EVERIFY, "%s: %s does not match its digest", refs, names[i]);
        }
        if (!rc) {
            char fp[4300];
            snprintf(fp, sizeof fp, "%s/%.31s", md, names[i]);
            int fd = open(fp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            ssize_t w = fd < 0 ? -1 : write(fd, b.body ? b.body : "", b.len);
            if (fd < 0 || w != (ssize_t)b.len || fsync(fd))
                rc = slm_err_set(err, SLM_EIO, "%.300s: cannot write: %s", fp, strerror(errno));
            if (fd >= 0)
                close(fd);
        }
        rg_resp_free(&b);
    }
    rg_client_free(&c);
    return rc;
}
