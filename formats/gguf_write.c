/* formats/gguf_write.c — streaming GGUF v3 writer.
 *
 * All metadata and tensor infos are declared first, so the layout (header
 * size, each tensor's aligned offset, the final size) is known before a byte
 * is written. begin() writes header + infos + padding to an atomic temp file;
 * write() takes tensor data in any pieces and inserts the zero padding after
 * each tensor (llama.cpp pads after every tensor, the last included), so a
 * file copied kv-by-kv and tensor-by-tensor is byte-identical to its source. */
#include "formats.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_WRITE_VERSION 3
#define GGUF_MAX_NAME 64 /* llama.cpp's GGML_MAX_NAME, NUL included */

typedef struct wkv {
    char *key;
    uint32_t type;
    uint8_t *val; /* serialized value as it follows the type field in the file */
    size_t val_len;
} wkv;

typedef struct wtensor {
    char *name;
    uint32_t type, n_dims;
    int64_t ne[4];
    uint64_t nbytes;
    uint64_t offset; /* relative to the data section; set by layout() */
} wtensor;

struct gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
    /* layout */
    uint32_t alignment;
    uint64_t data_offset, total;
    /* streaming state */
    slm_afile *out;
    char *path;
    int state;            /* 0 declaring, 1 writing, 2 finished/aborted */
    size_t cur;           /* tensor being written */
    uint64_t cur_done;    /* bytes of it written */
};

static const uint8_t k_zeros[256];

static uint64_t align_up(uint64_t x, uint64_t a) { return x + (a - x % a) % a; }

gguf_writer *gguf_writer_new(void) { return calloc(1, sizeof(gguf_writer)); }

void gguf_writer_abort(gguf_writer *w)
{
    if (!w)
        return;
    if (w->out)
        slm_afile_abort(w->out);
    w->out = NULL;
    if (w->state == 1)
        w->state = 2;
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w)
        return;
    gguf_writer_abort(w);
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w->path);
    free(w);
}

static int64_t find_kv(const gguf_writer *w, const char *key)
{
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0)
            return (int64_t)i;
    return -1;
}

/* Store a serialized value under key (replacing an existing one in place). Takes ownership of val. */
static int put_kv(gguf_writer *w, const char *key, uint32_t type, uint8_t *val, size_t len)
{
    if (!w || !key || !*key || w->state != 0) {
        free(val);
        return SLM_EUSAGE;
    }
    int64_t i = find_kv(w, key);
    if (i >= 0) {
        free(w->kv[i].val);
        w->kv[i].type = type;
        w->kv[i].val = val;
        w->kv[i].val_len = len;
        return SLM_OK;
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
        wkv *nk = realloc(w->kv, cap * sizeof *nk);
        if (!nk) {
            free(val);
            return SLM_EINTERNAL;
        }
        w->kv = nk;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(val);
        return SLM_EINTERNAL;
    }
    w->kv[w->n_kv++] = (wkv){k, type, val, len};
    return SLM_OK;
}

static int put_scalar(gguf_writer *w, const char *key, uint32_t type, const void *v, size_t n)
{
    uint8_t *b = malloc(n);
    if (!b)
        return SLM_EINTERNAL;
    memcpy(b, v, n);
    return put_kv(w, key, type, b, n);
}

int gguf_set_u32(gguf_writer *w, const char *key, uint32_t v) { return put_scalar(w, key, GGUF_T_UINT32, &v, 4); }
int gguf_set_i32(gguf_writer *w, const char *key, int32_t v) { return put_scalar(w, key, GGUF_T_INT32, &v, 4); }
int gguf_set_u64(gguf_writer *w, const char *key, uint64_t v) { return put_scalar(w, key, GGUF_T_UINT64, &v, 8); }
int gguf_set_f32(gguf_writer *w, const char *key, float v) { return put_scalar(w, key, GGUF_T_FLOAT32, &v, 4); }
int gguf_set_bool(gguf_writer *w, const char *key, int v)
{
    uint8_t b = v ? 1 : 0;
    return put_scalar(w, key, GGUF_T_BOOL, &b, 1);
}

int gguf_set_str(gguf_writer *w, const char *key, const char *v)
{
    if (!v)
        return SLM_EUSAGE;
    uint64_t len = strlen(v);
    uint8_t *b = malloc(8 + len);
    if (!b)
        return SLM_EINTERNAL;
    memcpy(b, &len, 8);
    memcpy(b + 8, v, len);
    return put_kv(w, key, GGUF_T_STRING, b, 8 + len);
}

/* Array header (elem type, count) followed by `body` bytes. */
static uint8_t *arr_buf(uint32_t elem_type, uint64_t n, size_t body)
{
    if (body > SIZE_MAX - 12)
        return NULL;
    uint8_t *b = malloc(12 + body);
    if (b) {
        memcpy(b, &elem_type, 4);
        memcpy(b + 4, &n, 8);
    }
    return b;
}

int gguf_set_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n)
{
    if (n && !v)
        return SLM_EUSAGE;
    size_t body = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (!v[i])
            return SLM_EUSAGE;
        body += 8 + strlen(v[i]);
    }
    uint8_t *b = arr_buf(GGUF_T_STRING, n, body);
    if (!b)
        return SLM_EINTERNAL;
    uint8_t *p = b + 12;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = strlen(v[i]);
        memcpy(p, &len, 8);
        memcpy(p + 8, v[i], len);
        p += 8 + len;
    }
    return put_kv(w, key, GGUF_T_ARRAY, b, 12 + body);
}

static int set_arr_fixed(gguf_writer *w, const char *key, uint32_t et, const void *v, uint64_t n, size_t esz)
{
    if (n && !v)
        return SLM_EUSAGE;
    if (n > (SIZE_MAX - 12) / esz)
        return SLM_EINTERNAL;
    uint8_t *b = arr_buf(et, n, (size_t)n * esz);
    if (!b)
        return SLM_EINTERNAL;
    if (n)
        memcpy(b + 12, v, (size_t)n * esz);
    return put_kv(w, key, GGUF_T_ARRAY, b, 12 + (size_t)n * esz);
}

int gguf_set_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n)
{
    return set_arr_fixed(w, key, GGUF_T_FLOAT32, v, n, 4);
}

int gguf_set_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n)
{
    return set_arr_fixed(w, key, GGUF_T_INT32, v, n, 4);
}

int gguf_copy_kv(gguf_writer *w, const gguf_file *src, uint64_t kv_index)
{
    if (!src || kv_index >= src->n_kv)
        return SLM_EUSAGE;
    const gguf_kv *kv = &src->kv[kv_index];
    size_t hdr = kv->type == GGUF_T_ARRAY ? 12 : 0;
    if (kv->raw_len > SIZE_MAX - hdr)
        return SLM_EINTERNAL;
    uint8_t *b = malloc(hdr + kv->raw_len + 1);
    if (!b)
        return SLM_EINTERNAL;
    if (hdr) {
        memcpy(b, &kv->arr_type, 4);
        memcpy(b + 4, &kv->arr_n, 8);
    }
    memcpy(b + hdr, kv->raw, kv->raw_len);
    return put_kv(w, kv->key, kv->type, b, hdr + kv->raw_len);
}

int gguf_remove_key(gguf_writer *w, const char *key)
{
    if (!w || !key || w->state != 0)
        return SLM_EUSAGE;
    int64_t i = find_kv(w, key);
    if (i < 0)
        return SLM_EINPUT;
    free(w->kv[i].key);
    free(w->kv[i].val);
    memmove(&w->kv[i], &w->kv[i + 1], (w->n_kv - (size_t)i - 1) * sizeof *w->kv);
    w->n_kv--;
    return SLM_OK;
}

int64_t gguf_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne)
{
    if (!w || w->state != 0 || !name || !*name || strlen(name) >= GGUF_MAX_NAME || n_dims < 1 || n_dims > 4 ||
        !ne)
        return -1;
    int bs = slm_type_block_size(type);
    if (bs == 0)
        return -1;
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return -1;
    wtensor t = {0};
    t.type = type;
    t.n_dims = n_dims;
    uint64_t n = 1;
    for (uint32_t d = 0; d < 4; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] < 0 || __builtin_mul_overflow(n, (uint64_t)t.ne[d], &n))
            return -1;
    }
    if (t.ne[0] % bs != 0 || n > (uint64_t)INT64_MAX)
        return -1;
    uint64_t rows = t.ne[0] ? n / (uint64_t)t.ne[0] : 0;
    uint64_t row_bytes = (uint64_t)t.ne[0] / (uint64_t)bs * slm_type_block_bytes(type);
    if (__builtin_mul_overflow(row_bytes, rows, &t.nbytes))
        return -1;
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 64;
        wtensor *nt = realloc(w->t, cap * sizeof *nt);
        if (!nt)
            return -1;
        w->t = nt;
        w->cap_t = cap;
    }
    if (!(t.name = strdup(name)))
        return -1;
    w->t[w->n_t] = t;
    return (int64_t)w->n_t++;
}

uint64_t gguf_writer_tensor_nbytes(const gguf_writer *w, uint64_t i) { return w && i < w->n_t ? w->t[i].nbytes : 0; }

/* Alignment from general.alignment (must be a u32 power of two); 0 if invalid. */
static uint32_t writer_alignment(const gguf_writer *w)
{
    int64_t i = find_kv(w, "general.alignment");
    if (i < 0)
        return GGUF_DEFAULT_ALIGNMENT;
    if (w->kv[i].type != GGUF_T_UINT32)
        return 0;
    uint32_t a;
    memcpy(&a, w->kv[i].val, 4);
    return (a && (a & (a - 1)) == 0) ? a : 0;
}

/* Compute the alignment, data offset and total size; store each tensor's
 * offset when `store` is set (not for the read-only size query). */
static int compute_layout(const gguf_writer *w, int store, uint32_t *align, uint64_t *data_offset, uint64_t *total)
{
    uint32_t a = writer_alignment(w);
    if (!a)
        return -1;
    uint64_t h = 4 + 4 + 8 + 8;
    for (size_t i = 0; i < w->n_kv; i++)
        h += 8 + strlen(w->kv[i].key) + 4 + w->kv[i].val_len;
    for (size_t i = 0; i < w->n_t; i++)
        h += 8 + strlen(w->t[i].name) + 4 + 8 * (uint64_t)w->t[i].n_dims + 4 + 8;
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        if (store)
            w->t[i].offset = off;
        if (__builtin_add_overflow(off, w->t[i].nbytes, &off) || off > UINT64_MAX / 2)
            return -1;
        off = align_up(off, a);
    }
    *align = a;
    *data_offset = align_up(h, a);
    *total = *data_offset + off;
    return 0;
}

static int layout(gguf_writer *w) { return compute_layout(w, 1, &w->alignment, &w->data_offset, &w->total); }

uint64_t gguf_writer_total_size(const gguf_writer *w)
{
    uint32_t a;
    uint64_t d, total;
    return w && compute_layout(w, 0, &a, &d, &total) == 0 ? total : 0;
}

static int wr(gguf_writer *w, const void *p, size_t n, slm_err *err) { return slm_afile_write(w->out, p, n, err); }

static int wr_zeros(gguf_writer *w, uint64_t n, slm_err *err)
{
    while (n > 0) {
        size_t k = n < sizeof k_zeros ? (size_t)n : sizeof k_zeros;
        int rc = wr(w, k_zeros, k, err);
        if (rc)
            return rc;
        n -= k;
    }
    return SLM_OK;
}

static int wr_gstr(gguf_writer *w, const char *s, slm_err *err)
{
    uint64_t len = strlen(s);
    int rc = wr(w, &len, 8, err);
    return rc ? rc : wr(w, s, (size_t)len, err);
}

/* Move past finished tensors (including empty ones), writing their padding. */
static int settle(gguf_writer *w, slm_err *err)
{
    while (w->cur < w->n_t && w->cur_done == w->t[w->cur].nbytes) {
        uint64_t nb = w->t[w->cur].nbytes;
        int rc = wr_zeros(w, align_up(nb, w->alignment) - nb, err);
        if (rc)
            return rc;
        w->cur++;
        w->cur_done = 0;
    }
    return SLM_OK;
}

int gguf_writer_begin(gguf_writer *w, const char *path, slm_err *err)
{
    if (!w || !path || w->state != 0)
        return slm_err_set(err, SLM_EINTERNAL, "%s: gguf writer used out of order", path ? path : "(null)");
    if (layout(w) != 0) {
        int64_t i = find_kv(w, "general.alignment");
        if (i >= 0 && w->kv[i].type != GGUF_T_UINT32)
            return slm_err_set(err, SLM_EINPUT, "%s: general.alignment must be a u32", path);
        if (i >= 0 && !writer_alignment(w)) {
            uint32_t a;
            memcpy(&a, w->kv[i].val, 4);
            return slm_err_set(err, SLM_EINPUT, "%s: general.alignment %" PRIu32 " is not a power of two", path, a);
        }
        return slm_err_set(err, SLM_EINPUT, "%s: tensor data too large", path);
    }
    if (!(w->path = strdup(path)))
        return slm_err_set(err, SLM_EINTERNAL, "%s: out of memory", path);
    slm_afile_clean_stale(path);
    int rc = slm_afile_open(path, &w->out, err);
    if (rc)
        return rc;
    w->state = 1;
    uint32_t version = GGUF_WRITE_VERSION;
    uint64_t nt = w->n_t, nkv = w->n_kv;
    if ((rc = wr(w, "GGUF", 4, err)) || (rc = wr(w, &version, 4, err)) || (rc = wr(w, &nt, 8, err)) ||
        (rc = wr(w, &nkv, 8, err)))
        goto fail;
    for (size_t i = 0; i < w->n_kv; i++) {
        const wkv *kv = &w->kv[i];
        if ((rc = wr_gstr(w, kv->key, err)) || (rc = wr(w, &kv->type, 4, err)) ||
            (rc = wr(w, kv->val, kv->val_len, err)))
            goto fail;
    }
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        if ((rc = wr_gstr(w, t->name, err)) || (rc = wr(w, &t->n_dims, 4, err)) ||
            (rc = wr(w, t->ne, 8 * (size_t)t->n_dims, err)) || (rc = wr(w, &t->type, 4, err)) ||
            (rc = wr(w, &t->offset, 8, err)))
            goto fail;
    }
    if ((rc = wr_zeros(w, w->data_offset - slm_afile_written(w->out), err)))
        goto fail;
    w->cur = 0;
    w->cur_done = 0;
    if ((rc = settle(w, err)))
        goto fail;
    return SLM_OK;
fail:
    gguf_writer_abort(w);
    return rc;
}

int gguf_writer_write(gguf_writer *w, const void *data, size_t n, slm_err *err)
{
    if (!w || w->state != 1 || !w->out)
        return slm_err_set(err, SLM_EINTERNAL, "%s: gguf_writer_write outside begin/finish",
                           w && w->path ? w->path : "gguf");
    const uint8_t *p = data;
    while (n > 0) {
        if (w->cur >= w->n_t) {
            gguf_writer_abort(w);
            return slm_err_set(err, SLM_EINTERNAL, "%s: %zu bytes of tensor data beyond the last tensor", w->path, n);
        }
        uint64_t left = w->t[w->cur].nbytes - w->cur_done;
        size_t k = n < left ? n : (size_t)left;
        int rc = wr(w, p, k, err);
        if (!rc) {
            w->cur_done += k;
            rc = settle(w, err);
        }
        if (rc) {
            gguf_writer_abort(w);
            return rc;
        }
        p += k;
        n -= k;
    }
    return SLM_OK;
}

int gguf_writer_finish(gguf_writer *w, slm_err *err)
{
    if (!w || w->state != 1 || !w->out)
        return slm_err_set(err, SLM_EINTERNAL, "%s: gguf_writer_finish without begin",
                           w && w->path ? w->path : "gguf");
    if (w->cur < w->n_t) {
        const wtensor *t = &w->t[w->cur];
        int rc = slm_err_set(err, SLM_EINTERNAL,
                             "%s: tensor '%s' incomplete: %" PRIu64 " of %" PRIu64 " bytes written (%zu of %zu tensors done)",
                             w->path, t->name, w->cur_done, t->nbytes, w->cur, w->n_t);
        gguf_writer_abort(w);
        return rc;
    }
    if (slm_afile_written(w->out) != w->total) {
        int rc = slm_err_set(err, SLM_EINTERNAL, "%s: wrote %" PRIu64 " bytes, expected %" PRIu64, w->path,
                             slm_afile_written(w->out), w->total);
        gguf_writer_abort(w);
        return rc;
    }
    slm_afile *out = w->out;
    w->out = NULL;
    w->state = 2;
    return slm_afile_commit(out, err);
}
