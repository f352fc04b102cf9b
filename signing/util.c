/* signing/util.c — atomic files, signature lists, strict JSON numbers. */
#include "sg_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void sg_step(const sg_fault *f, const char *what)
{
    if (f && f->fn)
        f->fn(f->user, what);
}

static char *dir_of(const char *path)
{
    const char *s = strrchr(path, '/');
    if (!s)
        return strdup(".");
    if (s == path)
        return strdup("/");
    return strndup(path, (size_t)(s - path));
}

int sg_fsync_dir_of(const char *path, const sg_fault *fault, slm_err *err)
{
    char *d = dir_of(path);
    if (!d)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    sg_step(fault, "fsync dir");
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = SLM_OK;
    if (fd < 0 || fsync(fd) != 0)
        rc = slm_err_set(err, SLM_EIO, "%s: cannot fsync the directory: %s", d, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(d);
    return rc;
}

int sg_afile_open(sg_afile *f, const char *path, int mode, const sg_fault *fault, slm_err *err)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->fault = fault;
    char *d = dir_of(path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = (d ? strlen(d) : 0) + strlen(base) + 32;
    f->path = strdup(path);
    f->tmp = malloc(n);
    if (!d || !f->path || !f->tmp) {
        free(d);
        free(f->path);
        free(f->tmp);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    snprintf(f->tmp, n, "%s/.%s.tmp.XXXXXX", d, base);
    free(d);
    f->fd = mkstemp(f->tmp);
    if (f->fd < 0) {
        int e = errno;
        free(f->path);
        free(f->tmp);
        f->path = f->tmp = NULL;
        return slm_err_set(err, SLM_EIO, "%s: cannot create a temp file: %s", path, strerror(e));
    }
    if (fchmod(f->fd, (mode_t)mode) != 0) {
        int e = errno;
        sg_afile_abort(f);
        return slm_err_set(err, SLM_EIO, "%s: chmod: %s", path, strerror(e));
    }
    return SLM_OK;
}

int sg_afile_write(sg_afile *f, const void *p, size_t n, slm_err *err)
{
    if (!f->wrote) {
        sg_step(f->fault, "write");
        f->wrote = 1;
    }
    const char *c = p;
    while (n) {
        ssize_t w = write(f->fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return slm_err_set(err, SLM_EIO, "%s: write failed: %s", f->path, w < 0 ? strerror(errno) : "no progress");
        c += w;
        n -= (size_t)w;
    }
    return SLM_OK;
}

int sg_afile_commit(sg_afile *f, slm_err *err)
{
    if (!f->wrote)
        sg_step(f->fault, "write");
    sg_step(f->fault, "fsync");
    if (fsync(f->fd) != 0) {
        int e = errno;
        sg_afile_abort(f);
        return slm_err_set(err, SLM_EIO, "%s: fsync failed: %s", f->path, strerror(e));
    }
    close(f->fd);
    f->fd = -1;
    sg_step(f->fault, "rename");
    if (rename(f->tmp, f->path) != 0) {
        int e = errno;
        sg_afile_abort(f);
        return slm_err_set(err, SLM_EIO, "%s: rename failed: %s", f->path, strerror(e));
    }
    int rc = sg_fsync_dir_of(f->path, f->fault, err);
    free(f->path);
    free(f->tmp);
    f->path = f->tmp = NULL;
    return rc;
}

void sg_afile_abort(sg_afile *f)
{
    if (f->fd >= 0)
        close(f->fd);
    if (f->tmp)
        unlink(f->tmp);
    free(f->path);
    free(f->tmp);
    f->path = f->tmp = NULL;
    f->fd = -1;
}

int sg_write_atomic(const char *path, const void *p, size_t n, int mode, const sg_fault *fault, slm_err *err)
{
    sg_afile f;
    int rc = sg_afile_open(&f, path, mode, fault, err);
    if (rc)
        return rc;
    if ((rc = sg_afile_write(&f, p, n, err))) {
        sg_afile_abort(&f);
        return rc;
    }
    return sg_afile_commit(&f, err);
}

int sg_full_read(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (int)got;
}

int sg_read_file(const char *path, size_t max, char **buf, size_t *n, slm_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return slm_err_set(err, SLM_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return slm_err_set(err, SLM_EINPUT, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return slm_err_set(err, SLM_EINPUT, "%s: %lld bytes, more than the %zu allowed", path,
                           (long long)st.st_size, max);
    }
    char *b = malloc((size_t)st.st_size + 1);
    if (!b) {
        close(fd);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    int got = sg_full_read(fd, b, (size_t)st.st_size);
    close(fd);
    if (got != (int)st.st_size) {
        free(b);
        return slm_err_set(err, SLM_EIO, "%s: read failed", path);
    }
    b[got] = 0;
    *buf = b;
    *n = (size_t)got;
    return SLM_OK;
}

/* ---- signature lists ------------------------------------------------------ */
static int cmp_sig(const void *a, const void *b)
{
    return strcmp(((const slm_sig *)a)->keyid, ((const slm_sig *)b)->keyid);
}

char *sg_sigs_print(const slm_sig *sigs, int n)
{
    slm_sig *s = malloc(sizeof *s * (size_t)(n ? n : 1));
    cJSON *arr = cJSON_CreateArray();
    if (!s || !arr) {
        free(s);
        cJSON_Delete(arr);
        return NULL;
    }
    memcpy(s, sigs, sizeof *s * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, cmp_sig);
    for (int i = 0; i < n; i++) {
        char hex[2 * SLM_ED25519_SIG_LEN + 1];
        slm_hex(s[i].sig, SLM_ED25519_SIG_LEN, hex);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "keyid", s[i].keyid);
        cJSON_AddStringToObject(o, "sig", hex);
    }
    free(s);
    char *out = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    return out;
}

int sg_sigs_parse(const char *what, const char *s, size_t len, slm_sig **out, int *n, slm_err *err)
{
    *out = NULL;
    *n = 0;
    cJSON *a = cJSON_ParseWithLength(s, len);
    if (!a || !cJSON_IsArray(a)) {
        cJSON_Delete(a);
        return slm_err_set(err, SLM_EVERIFY, "%s: the signature block is not a JSON array (damaged)", what);
    }
    int cnt = cJSON_GetArraySize(a);
    if (cnt > 256) {
        cJSON_Delete(a);
        return slm_err_set(err, SLM_EVERIFY, "%s: %d signatures, more than 256", what, cnt);
    }
    slm_sig *sigs = calloc((size_t)(cnt ? cnt : 1), sizeof *sigs);
    if (!sigs) {
        cJSON_Delete(a);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    int i = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, a) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "keyid");
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(o, "sig");
        uint8_t id[32];
        if (!cJSON_IsObject(o) || cJSON_GetArraySize(o) != 2 || !cJSON_IsString(k) || !cJSON_IsString(g) ||
            slm_unhex(k->valuestring, id, 32) || slm_unhex(g->valuestring, sigs[i].sig, SLM_ED25519_SIG_LEN)) {
            free(sigs);
            cJSON_Delete(a);
            return slm_err_set(err, SLM_EVERIFY, "%s: signature #%d is malformed (damaged signature block)", what,
                               i + 1);
        }
        memcpy(sigs[i].keyid, k->valuestring, SLM_KEYID_HEX_LEN + 1);
        for (int j = 0; j < i; j++)
            if (!strcmp(sigs[j].keyid, sigs[i].keyid)) {
                free(sigs);
                cJSON_Delete(a);
                return slm_err_set(err, SLM_EVERIFY, "%s: key %.16s signed twice", what, sigs[i].keyid);
            }
        i++;
    }
    cJSON_Delete(a);
    /* One spelling only: any change that still parses (spacing, order) is refused. */
    char *canon = sg_sigs_print(sigs, cnt);
    int same = canon && strlen(canon) == len && !memcmp(canon, s, len);
    free(canon);
    if (!same) {
        free(sigs);
        return slm_err_set(err, SLM_EVERIFY, "%s: the signature block is not in canonical form (altered)", what);
    }
    *out = sigs;
    *n = cnt;
    return SLM_OK;
}

const slm_root_key *slm_root_find_key(const slm_root *r, const char *keyid)
{
    for (int i = 0; r && i < r->n_keys; i++)
        if (!strcmp(r->keys[i].id, keyid))
            return &r->keys[i];
    return NULL;
}

int sg_count_valid(const void *msg, size_t len, const slm_sig *sigs, int n_sigs, const slm_root *r)
{
    int c = 0;
    for (int i = 0; i < n_sigs; i++) {
        const slm_root_key *k = slm_root_find_key(r, sigs[i].keyid);
        if (k && slm_ed25519_verify(k->pub, msg, len, sigs[i].sig))
            c++;
    }
    return c;
}

int sg_check_sigs(const char *what, const void *msg, size_t len, const slm_sig *sigs, int n_sigs,
                  const slm_root *root, const slm_root *extra, slm_err *err)
{
    if (n_sigs == 0)
        return slm_err_set(err, SLM_EVERIFY, "%s: not signed (no signatures)", what);
    for (int i = 0; i < n_sigs; i++) {
        const slm_root_key *k = slm_root_find_key(root, sigs[i].keyid);
        if (!k)
            k = slm_root_find_key(extra, sigs[i].keyid);
        if (!k)
            return slm_err_set(err, SLM_EVERIFY, "%s: signed by unknown key %.16s (not in the trust root v%llu)",
                               what, sigs[i].keyid, (unsigned long long)root->version);
        if (!slm_ed25519_verify(k->pub, msg, len, sigs[i].sig))
            return slm_err_set(err, SLM_EVERIFY, "%s: bad signature by key %.16s (content or signature altered)",
                               what, sigs[i].keyid);
    }
    int good = sg_count_valid(msg, len, sigs, n_sigs, root);
    if (good < root->threshold)
        return slm_err_set(err, SLM_EVERIFY, "%s: %d valid signature%s of trust root v%llu keys, below the threshold %d",
                           what, good, good == 1 ? "" : "s", (unsigned long long)root->version, root->threshold);
    return SLM_OK;
}

int sg_json_uint(const cJSON *o, const char *key, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d)
        return -1;
    *out = (uint64_t)d;
    return 0;
}

int sg_json_int(const cJSON *o, const char *key, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (!(d >= -9007199254740992.0) || d > 9007199254740992.0 || floor(d) != d)
        return -1;
    *out = (int64_t)d;
    return 0;
}

int slm_parse_duration(const char *s, int64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return -1;
    long long mul;
    if (!strcmp(end, "d"))
        mul = 86400;
    else if (!strcmp(end, "h"))
        mul = 3600;
    else if (!strcmp(end, "m"))
        mul = 60;
    else if (!strcmp(end, "s") || !*end)
        mul = 1;
    else
        return -1;
    if (v > LLONG_MAX / mul || v * mul > 100LL * 366 * 86400)
        return -1;
    *out = v * mul;
    return 0;
}
