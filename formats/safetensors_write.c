/* formats/safetensors_write.c — streaming safetensors writer.
 *
 * Declare every tensor (name, dtype, shape), optionally __metadata__ strings,
 * then begin(): the JSON header is built with cJSON in declaration order,
 * data offsets are contiguous, and the header is padded with spaces to a
 * multiple of 8 bytes (as the reference implementation does, so the data
 * area starts 8-aligned). Data is then streamed straight through to an
 * atomic output file, never buffered whole: models of several GB are written
 * this way. finish() checks that exactly the declared byte count arrived. */
#include "formats.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

typedef struct st_wtensor {
    char *name;
    uint32_t dtype;
    int n_dims;
    int64_t shape[SLM_MAX_DIMS];
    uint64_t nbytes;
} st_wtensor;

typedef struct st_wmeta {
    char *key, *value;
} st_wmeta;

struct st_writer {
    st_wtensor *t;
    size_t n, cap;
    st_wmeta *meta;
    size_t n_meta;
    uint64_t total;   /* bytes of tensor data declared */
    slm_afile *out;   /* non-NULL between begin and finish */
    uint64_t data_written;
    int begun;
};

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

st_writer *st_writer_new(void)
{
    return calloc(1, sizeof(st_writer));
}

int st_writer_add(st_writer *w, const char *name, uint32_t dtype, int n_dims, const int64_t *shape)
{
    if (!w || w->begun || !name || !*name || strcmp(name, "__metadata__") == 0)
        return SLM_EUSAGE;
    size_t esize;
    switch (dtype) {
    case SLM_TYPE_F32: esize = 4; break;
    case SLM_TYPE_F16:
    case SLM_TYPE_BF16: esize = 2; break;
    default: return SLM_EINPUT;
    }
    if (n_dims < 0 || n_dims > SLM_MAX_DIMS || (n_dims > 0 && !shape))
        return SLM_EINPUT;
    uint64_t ne = 1;
    for (int d = 0; d < n_dims; d++) {
        if (shape[d] < 0 || __builtin_mul_overflow(ne, (uint64_t)shape[d], &ne))
            return SLM_EINPUT;
    }
    uint64_t nbytes, total;
    if (__builtin_mul_overflow(ne, (uint64_t)esize, &nbytes) ||
        __builtin_add_overflow(w->total, nbytes, &total) || total >= (1ull << 53))
        return SLM_EINPUT;
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return SLM_EINPUT; /* duplicate names would make an unreadable file */
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 32;
        st_wtensor *nt = realloc(w->t, nc * sizeof *nt);
        if (!nt)
            return SLM_EINTERNAL;
        w->t = nt;
        w->cap = nc;
    }
    st_wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = dup_str(name);
    if (!t->name)
        return SLM_EINTERNAL;
    t->dtype = dtype;
    t->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++)
        t->shape[d] = shape[d];
    t->nbytes = nbytes;
    w->total = total;
    w->n++;
    return SLM_OK;
}

int st_writer_set_meta(st_writer *w, const char *key, const char *value)
{
    if (!w || w->begun || !key || !value)
        return SLM_EUSAGE;
    for (size_t i = 0; i < w->n_meta; i++) {
        if (strcmp(w->meta[i].key, key) == 0) {
            char *v = dup_str(value);
            if (!v)
                return SLM_EINTERNAL;
            free(w->meta[i].value);
            w->meta[i].value = v;
            return SLM_OK;
        }
    }
    st_wmeta *nm = realloc(w->meta, (w->n_meta + 1) * sizeof *nm);
    if (!nm)
        return SLM_EINTERNAL;
    w->meta = nm;
    char *k = dup_str(key), *v = dup_str(value);
    if (!k || !v) {
        free(k);
        free(v);
        return SLM_EINTERNAL;
    }
    w->meta[w->n_meta].key = k;
    w->meta[w->n_meta].value = v;
    w->n_meta++;
    return SLM_OK;
}

static const char *dtype_name(uint32_t dtype)
{
    return dtype == SLM_TYPE_F32 ? "F32" : dtype == SLM_TYPE_F16 ? "F16" : "BF16";
}

/* Integers as raw JSON text so large offsets print exactly (cJSON prints
 * doubles with %g above INT_MAX). */
static cJSON *json_u64(uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return cJSON_CreateRaw(buf);
}

static char *build_header(const st_writer *w)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    if (w->n_meta) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        if (!meta)
            goto fail;
        for (size_t i = 0; i < w->n_meta; i++)
            if (!cJSON_AddStringToObject(meta, w->meta[i].key, w->meta[i].value))
                goto fail;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const st_wtensor *t = &w->t[i];
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToObject(root, t->name, o))
            goto fail_o;
        if (!cJSON_AddStringToObject(o, "dtype", dtype_name(t->dtype)))
            goto fail;
        cJSON *shape = cJSON_AddArrayToObject(o, "shape");
        cJSON *offs = cJSON_AddArrayToObject(o, "data_offsets");
        if (!shape || !offs)
            goto fail;
        for (int d = 0; d < t->n_dims; d++) {
            cJSON *v = json_u64((uint64_t)t->shape[d]);
            if (!v || !cJSON_AddItemToArray(shape, v))
                goto fail;
        }
        cJSON *b = json_u64(off), *e = json_u64(off + t->nbytes);
        if (!b || !e || !cJSON_AddItemToArray(offs, b) || !cJSON_AddItemToArray(offs, e)) {
            cJSON_Delete(e);
            goto fail;
        }
        off += t->nbytes;
        continue;
    fail_o:
        cJSON_Delete(o);
        goto fail;
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
fail:
    cJSON_Delete(root);
    return NULL;
}

int st_writer_begin(st_writer *w, const char *path, slm_err *err)
{
    if (!w || w->begun)
        return slm_err_set(err, SLM_EINTERNAL, "%s: st_writer_begin called twice", path ? path : "?");
    char *json = build_header(w);
    if (!json)
        return slm_err_set(err, SLM_EINTERNAL, "%s: out of memory building the safetensors header", path);
    size_t len = strlen(json);
    size_t padded = (len + 7) & ~(size_t)7;
    char *hdr = malloc(8 + padded);
    if (!hdr) {
        cJSON_free(json);
        return slm_err_set(err, SLM_EINTERNAL, "%s: out of memory", path);
    }
    uint64_t n = padded;
    for (int i = 0; i < 8; i++)
        hdr[i] = (char)(uint8_t)(n >> (8 * i));
    memcpy(hdr + 8, json, len);
    memset(hdr + 8 + len, ' ', padded - len);
    cJSON_free(json);

    int rc = slm_afile_open(path, &w->out, err);
    if (rc) {
        free(hdr);
        w->out = NULL;
        return rc;
    }
    w->begun = 1;
    rc = slm_afile_write(w->out, hdr, 8 + padded, err);
    free(hdr);
    if (rc) {
        slm_afile_abort(w->out);
        w->out = NULL;
    }
    return rc;
}

int st_writer_write(st_writer *w, const void *data, size_t n, slm_err *err)
{
    if (!w || !w->out)
        return slm_err_set(err, SLM_EINTERNAL, "st_writer_write: writer not open");
    if (n > w->total - w->data_written)
        return slm_err_set(err, SLM_EINTERNAL,
                           "st_writer_write: %zu more bytes than the %llu declared (already %llu written)", n,
                           (unsigned long long)w->total, (unsigned long long)w->data_written);
    int rc = slm_afile_write(w->out, data, n, err);
    if (rc)
        return rc;
    w->data_written += n;
    return SLM_OK;
}

static void writer_release(st_writer *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->t[i].name);
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->t);
    free(w->meta);
    free(w);
}

int st_writer_finish(st_writer *w, slm_err *err)
{
    if (!w)
        return slm_err_set(err, SLM_EINTERNAL, "st_writer_finish: no writer");
    int rc;
    if (!w->out) {
        rc = slm_err_set(err, SLM_EINTERNAL, "st_writer_finish: writer was not begun (or failed)");
    } else if (w->data_written != w->total) {
        rc = slm_err_set(err, SLM_EINTERNAL, "st_writer_finish: %llu of %llu declared data bytes written",
                         (unsigned long long)w->data_written, (unsigned long long)w->total);
        slm_afile_abort(w->out);
    } else {
        rc = slm_afile_commit(w->out, err);
    }
    w->out = NULL;
    writer_release(w);
    return rc;
}

void st_writer_free(st_writer *w)
{
    if (!w)
        return;
    if (w->out)
        slm_afile_abort(w->out);
    writer_release(w);
}
