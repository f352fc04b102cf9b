/* formats/safetensors.c — read-only, validated access to safetensors files.
 *
 * A model is one file, or several shards listed by a
 * model.safetensors.index.json. Every shard is mmap'ed read-only; tensor
 * data is never copied. The header is untrusted: its length is bounded by the
 * file size and a cap, every tensor's dtype/shape/offsets are checked against
 * each other and against the data area, and ranges may not overlap.
 *
 * File layout (safetensors spec): u64 little-endian header length N, N bytes
 * of JSON (an object: tensor name -> {dtype, shape, data_offsets}, plus an
 * optional "__metadata__" object of strings), then the data area; offsets
 * are relative to the start of the data area. */
#include "formats.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_HEADER_CAP (100u * 1024u * 1024u) /* bytes of JSON header we accept */
#define ST_INDEX_CAP (64u * 1024u * 1024u)   /* bytes of index json we accept */
#define ST_MAX_INT 9007199254740992.0        /* 2^53: larger JSON numbers are not exact */

typedef struct st_shard {
    char *path;
    const uint8_t *map; /* whole file */
    size_t size;
    const uint8_t *data; /* start of the data area */
    uint64_t data_size;
} st_shard;

struct st_model {
    st_shard *shards;
    int n_shards;
    st_tensor *tensors; /* in file order, shard by shard */
    size_t n, cap;
    size_t *by_name;    /* indices into tensors, sorted by name */
};

/* ---- small helpers ------------------------------------------------------ */

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static char *join_path(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/')
        p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static uint64_t rd_u64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* A JSON number that is an exact non-negative integer below 2^53. */
static int json_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j))
        return 0;
    double d = j->valuedouble;
    if (!(d >= 0.0) || d >= ST_MAX_INT || d != (double)(uint64_t)d)
        return 0;
    *out = (uint64_t)d;
    return 1;
}

static int is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Parse exactly [text, text+n) as one JSON value followed only by whitespace.
 * On failure *bad_at is the byte offset of the problem. */
static cJSON *parse_json(const char *text, size_t n, size_t *bad_at)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!j) {
        *bad_at = (end && end >= text && end <= text + n) ? (size_t)(end - text) : 0;
        return NULL;
    }
    for (const char *p = end; p && p < text + n; p++) {
        if (!is_json_space(*p)) {
            *bad_at = (size_t)(p - text);
            cJSON_Delete(j);
            return NULL;
        }
    }
    return j;
}

/* ---- dtypes ---------------------------------------------------------------- */

static int dtype_from_name(const char *s, uint32_t *out)
{
    if (strcmp(s, "F32") == 0) { *out = SLM_TYPE_F32; return 1; }
    if (strcmp(s, "F16") == 0) { *out = SLM_TYPE_F16; return 1; }
    if (strcmp(s, "BF16") == 0) { *out = SLM_TYPE_BF16; return 1; }
    return 0;
}

/* dtypes of the safetensors spec that slmkit knows but does not read. */
static int dtype_known_other(const char *s)
{
    static const char *const names[] = {
        "BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64", "F64",
        "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i]) == 0)
            return 1;
    return 0;
}

static size_t dtype_size(uint32_t dtype)
{
    return dtype == SLM_TYPE_F32 ? 4 : 2;
}

/* ---- model building -------------------------------------------------------- */

static int push_tensor(st_model *m, st_tensor *t, slm_err *err)
{
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 64;
        st_tensor *nt = realloc(m->tensors, nc * sizeof *nt);
        if (!nt)
            return slm_err_set(err, SLM_EINTERNAL, "out of memory");
        m->tensors = nt;
        m->cap = nc;
    }
    m->tensors[m->n++] = *t;
    return SLM_OK;
}

static int add_shard(st_model *m, const char *path, slm_err *err)
{
    st_shard *ns = realloc(m->shards, (size_t)(m->n_shards + 1) * sizeof *ns);
    if (!ns)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    m->shards = ns;
    st_shard *s = &m->shards[m->n_shards];
    memset(s, 0, sizeof *s);
    s->path = dup_str(path);
    if (!s->path)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    m->n_shards++;
    return SLM_OK;
}

typedef struct range { uint64_t begin, end; size_t tensor; } range;

static int cmp_range(const void *a, const void *b)
{
    const range *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Validate one tensor entry of a header and append it to the model. */
static int parse_tensor(st_model *m, int shard, const cJSON *item, slm_err *err)
{
    const st_shard *s = &m->shards[shard];
    const char *name = item->string;
    const char *file = s->path;
    if (!cJSON_IsObject(item))
        return slm_err_set(err, SLM_EINPUT, "%s: tensor '%s': entry is not a JSON object", file, name);
    if (name[0] == '\0')
        return slm_err_set(err, SLM_EINPUT, "%s: a tensor has an empty name", file);

    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(jd))
        return slm_err_set(err, SLM_EINPUT, "%s: tensor '%s': missing or non-string \"dtype\"", file, name);
    if (!cJSON_IsArray(js))
        return slm_err_set(err, SLM_EINPUT, "%s: tensor '%s': missing or non-array \"shape\"", file, name);
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return slm_err_set(err, SLM_EINPUT, "%s: tensor '%s': \"data_offsets\" must be an array [begin, end]",
                           file, name);

    st_tensor t;
    memset(&t, 0, sizeof t);
    t.shard = shard;
    if (!dtype_from_name(jd->valuestring, &t.dtype)) {
        if (dtype_known_other(jd->valuestring))
            return slm_err_set(err, SLM_EINPUT, "%s: tensor '%s' has dtype %s; slmkit reads F32, F16, BF16",
                               file, name, jd->valuestring);
        return slm_err_set(err, SLM_EINPUT, "%s: tensor '%s' has unknown dtype '%.32s'", file, name,
                           jd->valuestring);
    }

    int nd = cJSON_GetArraySize(js);
    if (nd > SLM_MAX_DIMS)
        return slm_err_set(err, SLM_EINPUT, "%s: tensor '%s': %d dimensions (at most %d supported)", file, name,
                           nd, SLM_MAX_DIMS);
    t.n_dims = nd;
    uint64_t n_elems = 1;
    int d = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, js) {
        uint64_t v;
        if (!json_uint(dim, &v))
            return slm_err_set(err, SLM_EINPUT, "%s: tensor '%s': shape[%d] is not a non-negative integer", file,
                               name, d);
        t.shape[d++] = (int64_t)v;
        if (__builtin_mul_overflow(n_elems, v, &n_elems) || n_elems > (uint64_t)INT64_MAX)
            return slm_err_set(err, SLM_EINPUT, "%s: tensor '%s': shape element count overflows", file, name);
    }
    t.n_elems = n_elems;
    uint64_t want;
    if (__builtin_mul_overflow(n_elems, (uint64_t)dtype_size(t.dtype), &want))
        return slm_err_set(err, SLM_EINPUT, "%s: tensor '%s': shape byte size overflows", file, name);

    uint64_t begin, end;
    if (!json_uint(cJSON_GetArrayItem(jo, 0), &begin) || !json_uint(cJSON_GetArrayItem(jo, 1), &end))
        return slm_err_set(err, SLM_EINPUT, "%s: tensor '%s': data_offsets are not non-negative integers", file,
                           name);
    if (begin > end)
        return slm_err_set(err, SLM_EINPUT, "%s: tensor '%s': data range [%llu, %llu) is reversed", file, name,
                           (unsigned long long)begin, (unsigned long long)end);
    if (end > s->data_size)
        return slm_err_set(err, SLM_EINPUT,
                           "%s: tensor '%s': data range [%llu, %llu) extends past the end of the data area "
                           "(%llu bytes)",
                           file, name, (unsigned long long)begin, (unsigned long long)end,
                           (unsigned long long)s->data_size);
    if (end - begin != want)
        return slm_err_set(err, SLM_EINPUT,
                           "%s: tensor '%s': data range holds %llu bytes but its shape needs %llu (%llu %s "
                           "elements)", file, name, (unsigned long long)(end - begin), (unsigned long long)want,
                           (unsigned long long)n_elems, jd->valuestring);
    t.nbytes = want;
    t.data = s->data + begin;
    t.name = item->string; /* replaced by an owned copy by the caller */
    return push_tensor(m, &t, err);
}

/* mmap one shard, parse and validate its header, append its tensors. */
static int load_shard(st_model *m, int shard, slm_err *err)
{
    st_shard *s = &m->shards[shard];
    const char *file = s->path;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below) */
    int fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return slm_err_set(err, SLM_EIO, "%s: cannot open: %s", file, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return slm_err_set(err, SLM_EIO, "%s: cannot stat: %s", file, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return slm_err_set(err, SLM_EIO, "%s: not a regular file", file);
    }
    if (sb.st_size < 8) {
        close(fd);
        return slm_err_set(err, SLM_EINPUT, "%s: truncated: %lld bytes, shorter than the 8-byte header length",
                           file, (long long)sb.st_size);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return slm_err_set(err, SLM_EINPUT, "%s: file too large to map", file);
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return slm_err_set(err, SLM_EIO, "%s: cannot mmap: %s", file, strerror(e));
    s->map = map;
    s->size = (size_t)sb.st_size;

    uint64_t hlen = rd_u64le(s->map);
    if (hlen > s->size - 8)
        return slm_err_set(err, SLM_EINPUT, "%s: truncated: header length %llu extends past the end of the file "
                           "(%zu bytes)", file, (unsigned long long)hlen, s->size);
    if (hlen > ST_HEADER_CAP)
        return slm_err_set(err, SLM_EINPUT, "%s: header length %llu exceeds the %u-byte cap", file,
                           (unsigned long long)hlen, ST_HEADER_CAP);
    if (hlen < 2)
        return slm_err_set(err, SLM_EINPUT, "%s: header of %llu bytes cannot hold a JSON object", file,
                           (unsigned long long)hlen);
    s->data = s->map + 8 + hlen;
    s->data_size = s->size - 8 - hlen;

    size_t bad_at = 0;
    cJSON *root = parse_json((const char *)s->map + 8, (size_t)hlen, &bad_at);
    if (!root)
        return slm_err_set(err, SLM_EINPUT, "%s: header is not valid JSON (near byte %zu of the header)", file,
                           bad_at);
    int rc = SLM_OK;
    if (!cJSON_IsObject(root)) {
        rc = slm_err_set(err, SLM_EINPUT, "%s: header is not a JSON object", file);
        goto out;
    }
    size_t first = m->n;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        if (strcmp(item->string, "__metadata__") == 0) {
            const cJSON *kv;
            if (!cJSON_IsObject(item)) {
                rc = slm_err_set(err, SLM_EINPUT, "%s: \"__metadata__\" is not a JSON object", file);
                goto out;
            }
            cJSON_ArrayForEach(kv, item) {
                if (!cJSON_IsString(kv)) {
                    rc = slm_err_set(err, SLM_EINPUT, "%s: \"__metadata__\" value '%s' is not a string", file,
                                     kv->string);
                    goto out;
                }
            }
            continue;
        }
        rc = parse_tensor(m, shard, item, err);
        if (rc)
            goto out;
        /* the JSON tree dies below: keep our own copy of the name */
        st_tensor *t = &m->tensors[m->n - 1];
        t->name = dup_str(item->string);
        if (!t->name) {
            m->n--;
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
            goto out;
        }
    }

    /* no two tensors of this shard may share bytes */
    size_t cnt = m->n - first;
    if (cnt > 1) {
        range *r = malloc(cnt * sizeof *r);
        if (!r) {
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
            goto out;
        }
        size_t k = 0;
        for (size_t i = first; i < m->n; i++) {
            const st_tensor *t = &m->tensors[i];
            if (t->nbytes == 0)
                continue; /* empty ranges cannot overlap anything */
            uint64_t b = (uint64_t)((const uint8_t *)t->data - s->data);
            r[k++] = (range){ b, b + t->nbytes, i };
        }
        qsort(r, k, sizeof *r, cmp_range);
        for (size_t i = 1; i < k; i++) {
            if (r[i].begin < r[i - 1].end) {
                rc = slm_err_set(err, SLM_EINPUT,
                                 "%s: tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap", file,
                                 m->tensors[r[i - 1].tensor].name, (unsigned long long)r[i - 1].begin,
                                 (unsigned long long)r[i - 1].end, m->tensors[r[i].tensor].name,
                                 (unsigned long long)r[i].begin, (unsigned long long)r[i].end);
                break;
            }
        }
        free(r);
    }
out:
    cJSON_Delete(root);
    return rc;
}

static const st_model *g_sort_model; /* qsort has no context argument in C11 */
static pthread_mutex_t g_sort_lock = PTHREAD_MUTEX_INITIALIZER;

static int cmp_by_name(const void *a, const void *b)
{
    const st_tensor *t = g_sort_model->tensors;
    return strcmp(t[*(const size_t *)a].name, t[*(const size_t *)b].name);
}

/* Sort the name index and refuse duplicate names (within or across shards). */
static int build_index(st_model *m, slm_err *err)
{
    m->by_name = malloc((m->n ? m->n : 1) * sizeof *m->by_name);
    if (!m->by_name)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    for (size_t i = 0; i < m->n; i++)
        m->by_name[i] = i;
    pthread_mutex_lock(&g_sort_lock);
    g_sort_model = m;
    qsort(m->by_name, m->n, sizeof *m->by_name, cmp_by_name);
    g_sort_model = NULL;
    pthread_mutex_unlock(&g_sort_lock);
    for (size_t i = 1; i < m->n; i++) {
        const st_tensor *a = &m->tensors[m->by_name[i - 1]], *b = &m->tensors[m->by_name[i]];
        if (strcmp(a->name, b->name) == 0) {
            if (a->shard == b->shard)
                return slm_err_set(err, SLM_EINPUT, "%s: tensor '%s' appears twice", m->shards[a->shard].path,
                                   a->name);
            return slm_err_set(err, SLM_EINPUT, "tensor '%s' appears in both %s and %s", a->name,
                               m->shards[a->shard].path, m->shards[b->shard].path);
        }
    }
    return SLM_OK;
}


/* Shard names in an index must stay inside the index's directory. */
static int safe_shard_name(const char *s)
{
    if (!*s || s[0] == '/')
        return 0;
    for (const char *p = s; *p;) {
        const char *q = strchr(p, '/');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if ((n == 2 && p[0] == '.' && p[1] == '.') || n == 0)
            return 0;
        p += n + (q ? 1 : 0);
    }
    return 1;
}

static int open_index(st_model *m, const char *index_path, slm_err *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = slm_read_text_file(index_path, ST_INDEX_CAP, &text, &len, err);
    if (rc)
        return rc;
    size_t bad_at = 0;
    cJSON *root = parse_json(text, len, &bad_at);
    free(text);
    if (!root)
        return slm_err_set(err, SLM_EINPUT, "%s: malformed JSON near byte %zu", index_path, bad_at);

    /* directory of the index: shard names are relative to it */
    char *dir = dup_str(index_path);
    if (!dir) {
        cJSON_Delete(root);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir ? 1 : 0] = '\0';
    else
        strcpy(dir, ".");

    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    const cJSON *e;
    int *map_shard = NULL;
    int n_map = 0;
    if (!cJSON_IsObject(wm)) {
        rc = slm_err_set(err, SLM_EINPUT, "%s: missing or non-object \"weight_map\"", index_path);
        goto out;
    }
    n_map = cJSON_GetArraySize(wm);
    if (n_map == 0) {
        rc = slm_err_set(err, SLM_EINPUT, "%s: \"weight_map\" is empty", index_path);
        goto out;
    }
    map_shard = malloc((size_t)n_map * sizeof *map_shard);
    if (!map_shard) {
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
        goto out;
    }
    /* distinct shard files, in order of first mention */
    int k = 0;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e)) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: weight_map entry '%s' is not a string", index_path, e->string);
            goto out;
        }
        if (!safe_shard_name(e->valuestring)) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: weight_map entry '%s' names shard '%s' outside the model "
                             "directory", index_path, e->string, e->valuestring);
            goto out;
        }
        char *p = join_path(dir, e->valuestring);
        if (!p) {
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
            goto out;
        }
        int found = -1;
        for (int s = 0; s < m->n_shards; s++)
            if (strcmp(m->shards[s].path, p) == 0) {
                found = s;
                break;
            }
        if (found < 0) {
            if (!file_exists(p)) {
                rc = slm_err_set(err, SLM_EIO, "%s: shard '%s' (for tensor '%s') does not exist", index_path,
                                 e->valuestring, e->string);
                free(p);
                goto out;
            }
            rc = add_shard(m, p, err);
            found = m->n_shards - 1;
        }
        free(p);
        if (rc)
            goto out;
        map_shard[k++] = found;
    }
    for (int s = 0; s < m->n_shards; s++) {
        rc = load_shard(m, s, err);
        if (rc)
            goto out;
    }
    rc = build_index(m, err);
    if (rc)
        goto out;
    /* every mapped tensor must be in the shard the index names */
    k = 0;
    cJSON_ArrayForEach(e, wm) {
        const st_tensor *t = st_find(m, e->string);
        int s = map_shard[k++];
        if (!t || t->shard != s) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: tensor '%s' is mapped to %s but is not in that file",
                             index_path, e->string, m->shards[s].path);
            goto out;
        }
    }
out:
    free(map_shard);
    free(dir);
    cJSON_Delete(root);
    return rc;
}

int st_open(const char *path, st_model **out, slm_err *err)
{
    *out = NULL;
    if (!path || !*path)
        return slm_err_set(err, SLM_EUSAGE, "st_open: empty path");
    st_model *m = calloc(1, sizeof *m);
    if (!m)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    int rc;
    char *file = NULL;
    if (is_dir(path)) {
        char *idx = join_path(path, "model.safetensors.index.json");
        char *one = join_path(path, "model.safetensors");
        if (!idx || !one) {
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
        } else if (file_exists(idx)) {
            file = idx;
            idx = NULL;
        } else if (file_exists(one)) {
            file = one;
            one = NULL;
        } else {
            rc = slm_err_set(err, SLM_EIO, "%s: no model.safetensors or model.safetensors.index.json in this "
                             "directory", path);
        }
        free(idx);
        free(one);
        if (!file) {
            free(m);
            return rc;
        }
    } else {
        file = dup_str(path);
        if (!file) {
            free(m);
            return slm_err_set(err, SLM_EINTERNAL, "out of memory");
        }
    }

    if (ends_with(file, ".json")) {
        rc = open_index(m, file, err);
    } else {
        rc = add_shard(m, file, err);
        if (!rc)
            rc = load_shard(m, 0, err);
        if (!rc)
            rc = build_index(m, err);
    }
    free(file);
    if (rc) {
        st_close(m);
        return rc;
    }
    *out = m;
    return SLM_OK;
}

void st_close(st_model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free((char *)m->tensors[i].name);
    for (int s = 0; s < m->n_shards; s++) {
        if (m->shards[s].map)
            munmap((void *)m->shards[s].map, m->shards[s].size);
        free(m->shards[s].path);
    }
    free(m->shards);
    free(m->tensors);
    free(m->by_name);
    free(m);
}

size_t st_count(const st_model *m) { return m ? m->n : 0; }

const st_tensor *st_get(const st_model *m, size_t i)
{
    return (m && i < m->n) ? &m->tensors[i] : NULL;
}

const st_tensor *st_find(const st_model *m, const char *name)
{
    if (!m || !name || !m->by_name)
        return NULL;
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const st_tensor *t = &m->tensors[m->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *st_shard_path(const st_model *m, int shard)
{
    return (m && shard >= 0 && shard < m->n_shards) ? m->shards[shard].path : NULL;
}

void st_release_range(const st_tensor *t, uint64_t off, uint64_t len)
{
    if (!t || !t->data || off >= t->nbytes)
        return;
    slm_map_release((const uint8_t *)t->data + off, len > t->nbytes - off ? t->nbytes - off : len);
}

void slm_map_release(const void *ptr, uint64_t len)
{
    long pg = sysconf(_SC_PAGESIZE);
    if (!ptr || pg <= 0 || len == 0)
        return;
    uintptr_t p = (uintptr_t)ptr, e = p + (uintptr_t)len;
    /* only whole pages inside the range: neighbours keep theirs */
    uintptr_t a = (p + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    uintptr_t b = e & ~((uintptr_t)pg - 1);
    if (b > a)
        (void)madvise((void *)a, b - a, MADV_DONTNEED);
}

void st_release(const st_model *m, const st_tensor *t)
{
    (void)m;
    if (t)
        st_release_range(t, 0, t->nbytes);
}

/* ---- decoding -------------------------------------------------------------- */

static float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static float g_half_table[65536];
static pthread_once_t g_half_once = PTHREAD_ONCE_INIT;

static void build_half_table(void)
{
    for (uint32_t i = 0; i < 65536; i++)
        g_half_table[i] = slm_h2f((uint16_t)i);
}

void st_read_f32(const st_tensor *t, uint64_t first, uint64_t n, float *dst)
{
    if (!t || n == 0)
        return;
    /* bounds: callers index within the tensor; clamp defensively */
    if (first >= t->n_elems)
        return;
    if (n > t->n_elems - first)
        n = t->n_elems - first;
    const uint8_t *src = (const uint8_t *)t->data;
    switch (t->dtype) {
    case SLM_TYPE_F32:
        memcpy(dst, src + first * 4, n * 4);
        break;
    case SLM_TYPE_F16: {
        pthread_once(&g_half_once, build_half_table);
        const uint8_t *p = src + first * 2;
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + i * 2, 2); /* data may be unaligned; little-endian host */
            dst[i] = g_half_table[h];
        }
        break;
    }
    case SLM_TYPE_BF16: {
        const uint8_t *p = src + first * 2;
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + i * 2, 2);
            dst[i] = bits_to_float((uint32_t)h << 16);
        }
        break;
    }
    default:
        break;
    }
}
