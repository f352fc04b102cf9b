/* formats/gguf_read.c — GGUF (v2/v3) reader: mmap read-only, validate
 * everything, expose kvs and tensors pointing into the mapping.
 *
 * Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv;
 * n_kv key/value pairs; n_tensors tensor infos; padding to general.alignment;
 * the data section. Every count and length read from the file is checked
 * against the bytes that remain before anything is allocated, so a corrupt
 * or hostile file gives an error, never a huge allocation or a crash.
 * Assumes a little-endian host (as ggml does). */
#include "formats.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The public struct plus lookup tables only the reader needs. */
typedef struct gguf_priv {
    gguf_file pub;
    uint64_t *key_tab;    /* open-addressing hash of kv index + 1 (0 = empty) */
    uint64_t *tensor_tab; /* same for tensor names */
    uint64_t tab_mask_kv, tab_mask_t;
} gguf_priv;

typedef struct cursor {
    const uint8_t *p;
    uint64_t pos, size;
    const char *path;
    slm_err *err;
} cursor;

static const uint32_t k_scalar_size[GGUF_T_COUNT] = {
    [GGUF_T_UINT8] = 1, [GGUF_T_INT8] = 1, [GGUF_T_UINT16] = 2, [GGUF_T_INT16] = 2,
    [GGUF_T_UINT32] = 4, [GGUF_T_INT32] = 4, [GGUF_T_FLOAT32] = 4, [GGUF_T_BOOL] = 1,
    [GGUF_T_STRING] = 0, [GGUF_T_ARRAY] = 0, [GGUF_T_UINT64] = 8, [GGUF_T_INT64] = 8,
    [GGUF_T_FLOAT64] = 8,
};

const char *gguf_vtype_name(uint32_t t)
{
    static const char *names[GGUF_T_COUNT] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
    };
    return t < GGUF_T_COUNT ? names[t] : "unknown";
}

static uint64_t remaining(const cursor *c) { return c->size - c->pos; }

static int truncated(cursor *c, const char *what, uint64_t need)
{
    return slm_err_set(c->err, SLM_EINPUT,
                       "%s: truncated: %s at offset %" PRIu64 " needs %" PRIu64
                       " bytes but the file ends at %" PRIu64,
                       c->path, what, c->pos, need, c->size);
}

static int rd_bytes(cursor *c, void *dst, uint64_t n, const char *what)
{
    if (remaining(c) < n)
        return truncated(c, what, n);
    memcpy(dst, c->p + c->pos, n);
    c->pos += n;
    return 0;
}
static int rd_u32(cursor *c, uint32_t *v, const char *what) { return rd_bytes(c, v, 4, what); }
static int rd_u64(cursor *c, uint64_t *v, const char *what) { return rd_bytes(c, v, 8, what); }

/* A gguf string: u64 length + bytes. Points into the mapping. */
static int rd_str(cursor *c, gguf_str *s, const char *what)
{
    uint64_t len = 0;
    int rc = rd_u64(c, &len, what);
    if (rc)
        return rc;
    if (len > remaining(c))
        return slm_err_set(c->err, SLM_EINPUT,
                           "%s: %s at offset %" PRIu64 " has length %" PRIu64
                           " but only %" PRIu64 " bytes remain (corrupt length or truncated file)",
                           c->path, what, c->pos - 8, len, remaining(c));
    s->len = len;
    s->ptr = (const char *)c->p + c->pos;
    c->pos += len;
    return 0;
}

static uint64_t tab_size_for(uint64_t n)
{
    uint64_t s = 16;
    while (s < 2 * n)
        s <<= 1;
    return s;
}

/* Insert index i (name from names(i)) into tab; returns the index of an
 * existing equal name, or -1 when inserted. */
static int64_t tab_insert(uint64_t *tab, uint64_t mask, const char *name, uint64_t i,
                          const char *(*get)(const gguf_file *, uint64_t), const gguf_file *f)
{
    uint64_t h = slm_fnv1a(name, strlen(name)) & mask;
    while (tab[h]) {
        uint64_t j = tab[h] - 1;
        if (strcmp(get(f, j), name) == 0)
            return (int64_t)j;
        h = (h + 1) & mask;
    }
    tab[h] = i + 1;
    return -1;
}

static int64_t tab_find(const uint64_t *tab, uint64_t mask, const char *name,
                        const char *(*get)(const gguf_file *, uint64_t), const gguf_file *f)
{
    if (!tab || !name)
        return -1;
    uint64_t h = slm_fnv1a(name, strlen(name)) & mask;
    while (tab[h]) {
        uint64_t j = tab[h] - 1;
        if (strcmp(get(f, j), name) == 0)
            return (int64_t)j;
        h = (h + 1) & mask;
    }
    return -1;
}

static const char *kv_name(const gguf_file *f, uint64_t i) { return f->kv[i].key; }
static const char *tensor_name(const gguf_file *f, uint64_t i) { return f->tensors[i].name; }

/* Copy a gguf string into a NUL-terminated heap string, refusing embedded NULs. */
static int dup_name(cursor *c, const gguf_str *s, char **out, const char *what, uint64_t idx)
{
    if (s->len == 0)
        return slm_err_set(c->err, SLM_EINPUT, "%s: %s %" PRIu64 " has an empty name", c->path, what, idx);
    if (memchr(s->ptr, 0, s->len))
        return slm_err_set(c->err, SLM_EINPUT, "%s: %s %" PRIu64 " name contains a NUL byte", c->path,
                           what, idx);
    char *d = malloc(s->len + 1);
    if (!d)
        return slm_err_set(c->err, SLM_EINTERNAL, "%s: out of memory", c->path);
    memcpy(d, s->ptr, s->len);
    d[s->len] = 0;
    *out = d;
    return 0;
}

static int read_kv(cursor *c, gguf_kv *kv, uint64_t idx)
{
    gguf_str key;
    int rc = rd_str(c, &key, "metadata key");
    if (rc)
        return rc;
    if ((rc = dup_name(c, &key, &kv->key, "metadata key", idx)))
        return rc;
    if ((rc = rd_u32(c, &kv->type, "metadata value type")))
        return rc;
    if (kv->type >= GGUF_T_COUNT)
        return slm_err_set(c->err, SLM_EINPUT, "%s: key '%s': unknown value type %" PRIu32, c->path,
                           kv->key, kv->type);
    if (kv->type == GGUF_T_STRING) {
        uint64_t start = c->pos;
        gguf_str v;
        if ((rc = rd_str(c, &v, "string value")))
            return rc;
        kv->raw = c->p + start;
        kv->raw_len = c->pos - start;
        return 0;
    }
    if (kv->type != GGUF_T_ARRAY) {
        uint32_t sz = k_scalar_size[kv->type];
        if (remaining(c) < sz)
            return truncated(c, "metadata value", sz);
        kv->raw = c->p + c->pos;
        kv->raw_len = sz;
        c->pos += sz;
        return 0;
    }
    if ((rc = rd_u32(c, &kv->arr_type, "array element type")) || (rc = rd_u64(c, &kv->arr_n, "array count")))
        return rc;
    if (kv->arr_type >= GGUF_T_COUNT)
        return slm_err_set(c->err, SLM_EINPUT, "%s: key '%s': unknown array element type %" PRIu32,
                           c->path, kv->key, kv->arr_type);
    if (kv->arr_type == GGUF_T_ARRAY)
        return slm_err_set(c->err, SLM_EINPUT, "%s: key '%s': nested arrays are not supported", c->path,
                           kv->key);
    uint64_t elem_min = kv->arr_type == GGUF_T_STRING ? 8 : k_scalar_size[kv->arr_type];
    if (kv->arr_n > remaining(c) / elem_min)
        return slm_err_set(c->err, SLM_EINPUT,
                           "%s: key '%s': array count %" PRIu64 " at offset %" PRIu64
                           " needs at least %" PRIu64 " bytes per element but only %" PRIu64
                           " bytes remain (corrupt count or truncated file)",
                           c->path, kv->key, kv->arr_n, c->pos - 8, elem_min, remaining(c));
    kv->raw = c->p + c->pos;
    if (kv->arr_type != GGUF_T_STRING) {
        kv->raw_len = kv->arr_n * elem_min;
        c->pos += kv->raw_len;
        return 0;
    }
    /* Validate every string now and keep their offsets for O(1) access. */
    uint64_t *offs = malloc((kv->arr_n ? kv->arr_n : 1) * sizeof *offs);
    if (!offs)
        return slm_err_set(c->err, SLM_EINTERNAL, "%s: out of memory", c->path);
    kv->str_offs = offs;
    uint64_t start = c->pos;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        offs[i] = c->pos - start;
        gguf_str s;
        if ((rc = rd_str(c, &s, "array string"))) {
            /* Name the key: the generic message lacks it. */
            char inner[sizeof c->err->msg];
            snprintf(inner, sizeof inner, "%s", c->err ? c->err->msg : "");
            size_t pl = strlen(c->path) + 2;
            return slm_err_set(c->err, SLM_EINPUT, "%s: key '%s' element %" PRIu64 ": %s", c->path,
                               kv->key, i, strlen(inner) > pl ? inner + pl : inner);
        }
    }
    kv->raw_len = c->pos - start;
    return 0;
}

static int read_tensor_info(cursor *c, gguf_tensor *t, uint64_t idx)
{
    gguf_str name;
    int rc = rd_str(c, &name, "tensor name");
    if (rc)
        return rc;
    if ((rc = dup_name(c, &name, &t->name, "tensor", idx)))
        return rc;
    if ((rc = rd_u32(c, &t->n_dims, "tensor n_dims")))
        return rc;
    if (t->n_dims < 1 || t->n_dims > 4)
        return slm_err_set(c->err, SLM_EINPUT, "%s: tensor '%s': n_dims %" PRIu32 " is not in 1..4",
                           c->path, t->name, t->n_dims);
    uint64_t n = 1;
    int overflow = 0;
    for (uint32_t d = 0; d < 4; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t v;
        if ((rc = rd_u64(c, &v, "tensor dimension")))
            return rc;
        if (v > (uint64_t)INT64_MAX)
            return slm_err_set(c->err, SLM_EINPUT, "%s: tensor '%s': dimension %" PRIu32 " is negative",
                               c->path, t->name, d);
        t->ne[d] = (int64_t)v;
        overflow |= __builtin_mul_overflow(n, v, &n);
    }
    if (overflow || n > (uint64_t)INT64_MAX)
        return slm_err_set(c->err, SLM_EINPUT, "%s: tensor '%s': element count overflows", c->path, t->name);
    t->n_elems = n;
    if ((rc = rd_u32(c, &t->type, "tensor type")))
        return rc;
    int bs = slm_type_block_size(t->type);
    if (bs == 0)
        return slm_err_set(c->err, SLM_EINPUT, "%s: tensor '%s': unknown ggml type %" PRIu32, c->path,
                           t->name, t->type);
    if ((uint64_t)t->ne[0] % (uint64_t)bs != 0)
        return slm_err_set(c->err, SLM_EINPUT,
                           "%s: tensor '%s': row length %" PRId64 " is not a multiple of the %s block size %d",
                           c->path, t->name, t->ne[0], slm_type_name(t->type), bs);
    uint64_t rows = t->ne[0] ? n / (uint64_t)t->ne[0] : 0;
    uint64_t row_bytes;
    if (__builtin_mul_overflow((uint64_t)t->ne[0] / (uint64_t)bs, (uint64_t)slm_type_block_bytes(t->type),
                               &row_bytes) ||
        __builtin_mul_overflow(row_bytes, rows, &t->nbytes))
        return slm_err_set(c->err, SLM_EINPUT, "%s: tensor '%s': byte size overflows", c->path, t->name);
    if ((rc = rd_u64(c, &t->offset, "tensor offset")))
        return rc;
    return 0;
}

static int cmp_by_offset(const void *a, const void *b, void *arg)
{
    const gguf_tensor *t = arg;
    uint64_t x = t[*(const uint64_t *)a].offset, y = t[*(const uint64_t *)b].offset;
    return x < y ? -1 : x > y;
}

static int parse(gguf_priv *pv, slm_err *err)
{
    gguf_file *f = &pv->pub;
    cursor cur = {f->map, 0, f->size, f->path, err}, *c = &cur;
    int rc;
    char magic[4];
    if ((rc = rd_bytes(c, magic, 4, "magic")))
        return rc;
    if (memcmp(magic, "GGUF", 4) != 0)
        return slm_err_set(err, SLM_EINPUT, "%s: not a GGUF file (magic is %02x %02x %02x %02x, expected \"GGUF\")",
                           f->path, (uint8_t)magic[0], (uint8_t)magic[1], (uint8_t)magic[2], (uint8_t)magic[3]);
    if ((rc = rd_u32(c, &f->version, "version")))
        return rc;
    if (f->version != 2 && f->version != 3)
        return slm_err_set(err, SLM_EINPUT, "%s: unsupported GGUF version %" PRIu32 "%s (2 and 3 are supported)",
                           f->path, f->version,
                           (f->version & 0xffff) == 0 ? ", maybe a big-endian file" : "");
    if ((rc = rd_u64(c, &f->n_tensors, "tensor count")) || (rc = rd_u64(c, &f->n_kv, "kv count")))
        return rc;
    /* Smallest possible kv: 8-byte key length, 1 key byte, 4-byte type, 1-byte value. */
    if (f->n_kv > remaining(c) / 14)
        return slm_err_set(err, SLM_EINPUT,
                           "%s: n_kv %" PRIu64 " cannot fit in the %" PRIu64
                           " bytes after the header (corrupt count or truncated file)",
                           f->path, f->n_kv, remaining(c));
    /* Smallest tensor info: 8+1 name, 4 n_dims, 8 ne, 4 type, 8 offset. */
    if (f->n_tensors > remaining(c) / 33)
        return slm_err_set(err, SLM_EINPUT,
                           "%s: n_tensors %" PRIu64 " cannot fit in the %" PRIu64
                           " bytes after the header (corrupt count or truncated file)",
                           f->path, f->n_tensors, remaining(c));
    f->kv = calloc(f->n_kv ? f->n_kv : 1, sizeof *f->kv);
    f->tensors = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *f->tensors);
    pv->tab_mask_kv = tab_size_for(f->n_kv) - 1;
    pv->tab_mask_t = tab_size_for(f->n_tensors) - 1;
    pv->key_tab = calloc(pv->tab_mask_kv + 1, sizeof *pv->key_tab);
    pv->tensor_tab = calloc(pv->tab_mask_t + 1, sizeof *pv->tensor_tab);
    if (!f->kv || !f->tensors || !pv->key_tab || !pv->tensor_tab)
        return slm_err_set(err, SLM_EINTERNAL, "%s: out of memory", f->path);

    for (uint64_t i = 0; i < f->n_kv; i++) {
        if ((rc = read_kv(c, &f->kv[i], i)))
            return rc;
        int64_t dup = tab_insert(pv->key_tab, pv->tab_mask_kv, f->kv[i].key, i, kv_name, f);
        if (dup >= 0)
            return slm_err_set(err, SLM_EINPUT, "%s: duplicate metadata key '%s' (entries %" PRId64 " and %" PRIu64 ")",
                               f->path, f->kv[i].key, dup, i);
    }

    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = tab_find(pv->key_tab, pv->tab_mask_kv, "general.alignment", kv_name, f);
    if (ai >= 0) {
        const gguf_kv *kv = &f->kv[ai];
        if (kv->type != GGUF_T_UINT32)
            return slm_err_set(err, SLM_EINPUT, "%s: general.alignment has type %s, expected u32", f->path,
                               gguf_vtype_name(kv->type));
        uint32_t a;
        memcpy(&a, kv->raw, 4);
        if (a == 0 || (a & (a - 1)) != 0)
            return slm_err_set(err, SLM_EINPUT, "%s: general.alignment %" PRIu32 " is not a power of two",
                               f->path, a);
        f->alignment = a;
    }

    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if ((rc = read_tensor_info(c, t, i)))
            return rc;
        int64_t dup = tab_insert(pv->tensor_tab, pv->tab_mask_t, t->name, i, tensor_name, f);
        if (dup >= 0)
            return slm_err_set(err, SLM_EINPUT, "%s: duplicate tensor name '%s' (tensors %" PRId64 " and %" PRIu64 ")",
                               f->path, t->name, dup, i);
        if (t->offset % f->alignment != 0)
            return slm_err_set(err, SLM_EINPUT,
                               "%s: tensor '%s': offset %" PRIu64 " is not a multiple of the alignment %" PRIu32,
                               f->path, t->name, t->offset, f->alignment);
    }

    uint64_t data = c->pos + (f->alignment - c->pos % f->alignment) % f->alignment;
    if (f->n_tensors > 0 && data > f->size)
        return slm_err_set(err, SLM_EINPUT,
                           "%s: truncated: the data section should start at offset %" PRIu64
                           " but the file ends at %" PRIu64,
                           f->path, data, f->size);
    f->data_offset = data <= f->size ? data : f->size;
    uint64_t data_len = f->size - f->data_offset;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (t->offset > data_len || t->nbytes > data_len - t->offset)
            return slm_err_set(err, SLM_EINPUT,
                               "%s: tensor '%s': data [%" PRIu64 ", %" PRIu64 ") extends past the end of the data "
                               "section (%" PRIu64 " bytes; truncated file?)",
                               f->path, t->name, t->offset, t->offset + t->nbytes, data_len);
        t->data = f->map + f->data_offset + t->offset;
    }

    /* Overlap check: sort by offset, every tensor must start at or after the end of all before it. */
    if (f->n_tensors > 1) {
        uint64_t *order = malloc(f->n_tensors * sizeof *order);
        if (!order)
            return slm_err_set(err, SLM_EINTERNAL, "%s: out of memory", f->path);
        for (uint64_t i = 0; i < f->n_tensors; i++)
            order[i] = i;
        qsort_r(order, f->n_tensors, sizeof *order, cmp_by_offset, f->tensors);
        uint64_t end = 0, owner = order[0];
        rc = 0;
        for (uint64_t k = 0; k < f->n_tensors && !rc; k++) {
            const gguf_tensor *t = &f->tensors[order[k]];
            if (t->nbytes == 0)
                continue;
            if (t->offset < end)
                rc = slm_err_set(err, SLM_EINPUT,
                                 "%s: tensor '%s' [%" PRIu64 ", %" PRIu64 ") overlaps tensor '%s' (ends at %" PRIu64 ")",
                                 f->path, t->name, t->offset, t->offset + t->nbytes, f->tensors[owner].name, end);
            if (t->offset + t->nbytes > end) {
                end = t->offset + t->nbytes;
                owner = order[k];
            }
        }
        free(order);
        if (rc)
            return rc;
    }
    return 0;
}

int gguf_open(const char *path, gguf_file **out, slm_err *err)
{
    *out = NULL;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below) */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return slm_err_set(err, SLM_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return slm_err_set(err, SLM_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return slm_err_set(err, SLM_EIO, "%s: is a directory, not a GGUF file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return slm_err_set(err, SLM_EIO, "%s: not a regular file", path);
    }
    gguf_priv *pv = calloc(1, sizeof *pv);
    if (!pv || !(pv->pub.path = strdup(path))) {
        free(pv);
        close(fd);
        return slm_err_set(err, SLM_EINTERNAL, "%s: out of memory", path);
    }
    gguf_file *f = &pv->pub;
    f->size = (uint64_t)st.st_size;
    if (f->size > 0) {
        void *m = mmap(NULL, (size_t)f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            gguf_close(f);
            return slm_err_set(err, SLM_EIO, "%s: cannot mmap: %s", path, strerror(e));
        }
        f->map = m;
    }
    close(fd);
    if (f->size == 0) {
        gguf_close(f);
        return slm_err_set(err, SLM_EINPUT, "%s: truncated: the file is empty", path);
    }
    int rc = parse(pv, err);
    if (rc) {
        gguf_close(f);
        return rc;
    }
    *out = f;
    return SLM_OK;
}

void gguf_release_range(const gguf_file *f, const gguf_tensor *t, uint64_t off, uint64_t len)
{
    if (!f || !t || !f->map || !t->data || off >= t->nbytes)
        return;
    const uint8_t *p = (const uint8_t *)t->data;
    if (p < f->map || p + t->nbytes > f->map + f->size)
        return; /* not file pages: never madvise anything else */
    slm_map_release(p + off, len > t->nbytes - off ? t->nbytes - off : len);
}

void gguf_close(gguf_file *f)
{
    if (!f)
        return;
    gguf_priv *pv = (gguf_priv *)f;
    if (f->kv) {
        for (uint64_t i = 0; i < f->n_kv; i++) {
            free(f->kv[i].key);
            free((void *)f->kv[i].str_offs);
        }
        free(f->kv);
    }
    if (f->tensors) {
        for (uint64_t i = 0; i < f->n_tensors; i++)
            free(f->tensors[i].name);
        free(f->tensors);
    }
    if (f->map)
        munmap((void *)f->map, (size_t)f->size);
    free(pv->key_tab);
    free(pv->tensor_tab);
    free(f->path);
    free(pv);
}

int64_t gguf_find_key(const gguf_file *f, const char *key)
{
    const gguf_priv *pv = (const gguf_priv *)f;
    return f ? tab_find(pv->key_tab, pv->tab_mask_kv, key, kv_name, f) : -1;
}

int64_t gguf_find_tensor(const gguf_file *f, const char *name)
{
    const gguf_priv *pv = (const gguf_priv *)f;
    return f ? tab_find(pv->tensor_tab, pv->tab_mask_t, name, tensor_name, f) : -1;
}

/* Numeric value of type t at p as int64 (ok=0 if it doesn't fit or isn't an integer). */
static int int_of(uint32_t t, const uint8_t *p, int64_t *out)
{
    switch (t) {
    case GGUF_T_UINT8: { uint8_t v; memcpy(&v, p, 1); *out = v; return 0; }
    case GGUF_T_INT8: { int8_t v; memcpy(&v, p, 1); *out = v; return 0; }
    case GGUF_T_UINT16: { uint16_t v; memcpy(&v, p, 2); *out = v; return 0; }
    case GGUF_T_INT16: { int16_t v; memcpy(&v, p, 2); *out = v; return 0; }
    case GGUF_T_UINT32: { uint32_t v; memcpy(&v, p, 4); *out = v; return 0; }
    case GGUF_T_INT32: { int32_t v; memcpy(&v, p, 4); *out = v; return 0; }
    case GGUF_T_INT64: { int64_t v; memcpy(&v, p, 8); *out = v; return 0; }
    case GGUF_T_UINT64: {
        uint64_t v;
        memcpy(&v, p, 8);
        if (v > (uint64_t)INT64_MAX)
            return -1;
        *out = (int64_t)v;
        return 0;
    }
    default: return -1;
    }
}

static int float_of(uint32_t t, const uint8_t *p, double *out)
{
    if (t == GGUF_T_FLOAT32) {
        float v;
        memcpy(&v, p, 4);
        *out = v;
        return 0;
    }
    if (t == GGUF_T_FLOAT64) {
        memcpy(out, p, 8);
        return 0;
    }
    return -1;
}

static const gguf_kv *kv_get(const gguf_file *f, const char *key)
{
    int64_t i = gguf_find_key(f, key);
    return i < 0 ? NULL : &f->kv[i];
}

int gguf_get_int(const gguf_file *f, const char *key, int64_t *out)
{
    const gguf_kv *kv = kv_get(f, key);
    int64_t v;
    if (!kv || int_of(kv->type, kv->raw, &v) != 0)
        return -1;
    *out = v;
    return 0;
}

int gguf_get_float(const gguf_file *f, const char *key, double *out)
{
    const gguf_kv *kv = kv_get(f, key);
    return kv ? float_of(kv->type, kv->raw, out) : -1;
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out)
{
    const gguf_kv *kv = kv_get(f, key);
    if (!kv || kv->type != GGUF_T_BOOL)
        return -1;
    *out = kv->raw[0] != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out)
{
    const gguf_kv *kv = kv_get(f, key);
    if (!kv || kv->type != GGUF_T_STRING)
        return -1;
    memcpy(&out->len, kv->raw, 8);
    out->ptr = (const char *)kv->raw + 8;
    return 0;
}

int gguf_arr_str(const gguf_kv *kv, uint64_t i, gguf_str *out)
{
    const uint8_t *p;
    if (kv && kv->type == GGUF_T_STRING && i == 0)
        p = kv->raw; /* a scalar string is its own element 0 */
    else if (!kv || kv->type != GGUF_T_ARRAY || kv->arr_type != GGUF_T_STRING || i >= kv->arr_n || !kv->str_offs)
        return -1;
    else
        p = kv->raw + kv->str_offs[i];
    memcpy(&out->len, p, 8);
    out->ptr = (const char *)p + 8;
    return 0;
}

double gguf_arr_num(const gguf_kv *kv, uint64_t i)
{
    if (!kv)
        return NAN;
    /* a scalar is its own element 0 */
    uint32_t t = kv->type == GGUF_T_ARRAY ? kv->arr_type : kv->type;
    uint64_t n = kv->type == GGUF_T_ARRAY ? kv->arr_n : 1;
    if (i >= n || t == GGUF_T_STRING || t == GGUF_T_ARRAY)
        return NAN;
    const uint8_t *p = kv->raw + i * k_scalar_size[t];
    double d;
    int64_t v;
    if (float_of(t, p, &d) == 0)
        return d;
    if (t == GGUF_T_BOOL)
        return p[0] != 0;
    if (t == GGUF_T_UINT64) {
        uint64_t u;
        memcpy(&u, p, 8);
        return (double)u;
    }
    if (int_of(t, p, &v) == 0)
        return (double)v;
    return NAN;
}
