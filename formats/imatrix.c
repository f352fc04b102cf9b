/* formats/imatrix.c — importance-matrix files as llama.cpp writes them.
 *
 * GGUF (llama-imatrix's current format): general.type = "imatrix", keys
 * imatrix.datasets (array of strings), imatrix.chunk_count and
 * imatrix.chunk_size (u32); per weight matrix W two F32 tensors,
 * "<W>.in_sum2" (ne = [n_in, n_mat]: raw sums of x^2 over the tokens) and
 * "<W>.counts" (ne = [1, n_mat]: tokens counted), tensors sorted by name.
 *
 * Legacy .dat (little-endian): int32 n_entries; per entry int32 name length,
 * name bytes, int32 ncall, int32 nval, nval floats holding (sum/count)*ncall;
 * optionally int32 chunk count, int32 length + dataset name.
 * Either way the importance of column i is sum2[i] / counts[mat].
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats.h"

#define IMATRIX_MAX_ENTRIES (1 << 20)
#define IMATRIX_MAX_NAME 4096

void slm_imatrix_free(slm_imatrix *im)
{
    if (!im) return;
    for (size_t i = 0; i < im->n; i++) {
        free(im->e[i].name);
        free(im->e[i].sum2);
        free(im->e[i].counts);
    }
    free(im->e);
    for (size_t i = 0; i < im->n_datasets; i++) free(im->datasets[i]);
    free(im->datasets);
    memset(im, 0, sizeof *im);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const slm_imatrix_entry *)a)->name, ((const slm_imatrix_entry *)b)->name);
}

const slm_imatrix_entry *slm_imatrix_find(const slm_imatrix *im, const char *name)
{
    if (!im || !im->n) return NULL;
    slm_imatrix_entry key = { .name = (char *)name };
    return bsearch(&key, im->e, im->n, sizeof *im->e, cmp_entry);
}

int slm_imatrix_mean(const slm_imatrix_entry *e, float *out)
{
    int any = 0;
    for (int64_t m = 0; m < e->n_mat; m++) {
        const float c = e->counts[m];
        for (int64_t i = 0; i < e->n; i++) {
            const float s = e->sum2[m * e->n + i];
            out[m * e->n + i] = c > 0 ? s / c : 1.0f;
        }
        any |= c > 0;
    }
    return any;
}

static char *dupn(const char *s, size_t n)
{
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, s, n);
        r[n] = 0;
    }
    return r;
}

static int add_dataset(slm_imatrix *im, const char *s, size_t n)
{
    char **nd = realloc(im->datasets, sizeof *nd * (im->n_datasets + 1));
    if (!nd) return -1;
    im->datasets = nd;
    if (!(nd[im->n_datasets] = dupn(s, n))) return -1;
    im->n_datasets++;
    return 0;
}

/* ---- GGUF ---------------------------------------------------------------------- */

static int ends_with(const char *s, const char *suf, size_t *stem)
{
    size_t a = strlen(s), b = strlen(suf);
    if (a <= b || strcmp(s + a - b, suf)) return 0;
    *stem = a - b;
    return 1;
}

static int read_gguf(const char *path, slm_imatrix *im, slm_err *err)
{
    gguf_file *g = NULL;
    int rc = gguf_open(path, &g, err);
    if (rc) return rc;
    im->e = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *im->e);
    if (!im->e) { gguf_close(g); return slm_err_set(err, SLM_EINTERNAL, "out of memory"); }
    /* pair every .in_sum2 with its .counts */
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        size_t stem;
        if (!ends_with(t->name, ".in_sum2", &stem)) {
            if (!ends_with(t->name, ".counts", &stem)) {
                rc = slm_err_set(err, SLM_EINPUT, "%s: tensor '%s' is neither <name>.in_sum2 nor <name>.counts: not an imatrix file",
                                 path, t->name);
                goto fail;
            }
            char *base = dupn(t->name, stem), sname[1024];
            if (!base) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto fail; }
            snprintf(sname, sizeof sname, "%s.in_sum2", base);
            free(base);
            if (gguf_find_tensor(g, sname) < 0) {
                rc = slm_err_set(err, SLM_EINPUT, "%s: tensor '%s' has no matching '%s'", path, t->name, sname);
                goto fail;
            }
            continue;
        }
        char cname[1024];
        snprintf(cname, sizeof cname, "%.*s.counts", (int)stem, t->name);
        int64_t ci = gguf_find_tensor(g, cname);
        if (ci < 0) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: tensor '%s' has no matching '%s'", path, t->name, cname);
            goto fail;
        }
        const gguf_tensor *c = &g->tensors[ci];
        if (t->type != SLM_TYPE_F32 || c->type != SLM_TYPE_F32) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: '%s' and '%s' must be F32", path, t->name, c->name);
            goto fail;
        }
        const int64_t n = t->ne[0], nmat = t->n_dims >= 2 ? t->ne[1] : 1;
        if (t->n_dims > 2 || n < 1 || nmat < 1 || c->n_elems != (uint64_t)nmat || c->ne[0] != 1) {
            rc = slm_err_set(err, SLM_EINPUT,
                             "%s: '%s' has %" PRIu64 " values for %" PRId64 " matrices of %" PRId64
                             " columns: the shapes of .in_sum2 [n, n_mat] and .counts [1, n_mat] disagree",
                             path, c->name, c->n_elems, nmat, n);
            goto fail;
        }
        slm_imatrix_entry *e = &im->e[im->n];
        e->name = dupn(t->name, stem);
        e->n = n;
        e->n_mat = nmat;
        e->sum2 = malloc(sizeof(float) * t->n_elems);
        e->counts = malloc(sizeof(float) * (size_t)nmat);
        im->n++;
        if (!e->name || !e->sum2 || !e->counts) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto fail; }
        memcpy(e->sum2, t->data, sizeof(float) * t->n_elems);
        memcpy(e->counts, c->data, sizeof(float) * (size_t)nmat);
        for (uint64_t k = 0; k < t->n_elems; k++)
            if (!(e->sum2[k] >= 0) || e->sum2[k] > 3.0e38f) {
                rc = slm_err_set(err, SLM_EINPUT, "%s: '%s' value %" PRIu64 " is negative or not finite", path,
                                 t->name, k);
                goto fail;
            }
        for (int64_t k = 0; k < nmat; k++)
            if (!(e->counts[k] >= 0) || e->counts[k] > 3.0e38f) {
                rc = slm_err_set(err, SLM_EINPUT, "%s: '%s' holds a negative or non-finite count", path, c->name);
                goto fail;
            }
    }
    if (im->n == 0) {
        rc = slm_err_set(err, SLM_EINPUT, "%s: no <name>.in_sum2 tensors: not an imatrix file", path);
        goto fail;
    }
    int64_t v;
    if (!gguf_get_int(g, "imatrix.chunk_count", &v) && v >= 0 && v <= UINT32_MAX) im->chunk_count = (uint32_t)v;
    if (!gguf_get_int(g, "imatrix.chunk_size", &v) && v >= 0 && v <= UINT32_MAX) im->chunk_size = (uint32_t)v;
    int64_t k = gguf_find_key(g, "imatrix.datasets");
    if (k >= 0 && g->kv[k].type == GGUF_T_ARRAY && g->kv[k].arr_type == GGUF_T_STRING) {
        for (uint64_t i = 0; i < g->kv[k].arr_n; i++) {
            gguf_str s;
            if (!gguf_arr_str(&g->kv[k], i, &s) && add_dataset(im, s.ptr, s.len)) {
                rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
                goto fail;
            }
        }
    }
    gguf_close(g);
    return SLM_OK;
fail:
    gguf_close(g);
    slm_imatrix_free(im);
    return rc;
}

/* ---- legacy .dat ----------------------------------------------------------------- */

static int rd(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n ? 0 : -1; }

static int read_dat(const char *path, FILE *f, uint64_t size, slm_imatrix *im, slm_err *err)
{
    int32_t n_entries;
    int rc;
    if (rd(f, &n_entries, 4) || n_entries < 1 || n_entries > IMATRIX_MAX_ENTRIES || (uint64_t)n_entries * 12 > size)
        return slm_err_set(err, SLM_EINPUT, "%s: not an imatrix file (neither GGUF nor a legacy .dat with a valid entry count)",
                           path);
    im->e = calloc((size_t)n_entries, sizeof *im->e);
    if (!im->e) return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    uint64_t pos = 4;
    for (int32_t i = 0; i < n_entries; i++) {
        int32_t len, ncall, nval;
        if (rd(f, &len, 4) || len < 1 || len > IMATRIX_MAX_NAME || pos + 4 + (uint64_t)len + 8 > size) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: entry %d of %d: bad name length or the file is truncated", path,
                             i + 1, n_entries);
            goto fail;
        }
        slm_imatrix_entry *e = &im->e[im->n++];
        e->name = malloc((size_t)len + 1);
        if (!e->name) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto fail; }
        if (rd(f, e->name, (size_t)len) || rd(f, &ncall, 4) || rd(f, &nval, 4)) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: entry %d: truncated", path, i + 1);
            goto fail;
        }
        e->name[len] = 0;
        pos += 4 + (uint64_t)len + 8;
        if (strlen(e->name) != (size_t)len) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: entry %d: name contains a NUL byte", path, i + 1);
            goto fail;
        }
        if (nval < 1 || ncall < 0 || pos + (uint64_t)nval * 4 > size) {
            rc = slm_err_set(err, SLM_EINPUT,
                             "%s: entry '%s': %d values (%" PRIu64 " bytes) do not fit in the rest of the file "
                             "(%" PRIu64 " bytes): truncated or corrupt",
                             path, e->name, nval, (uint64_t)(nval > 0 ? nval : 0) * 4, size - pos);
            goto fail;
        }
        e->n = nval;
        e->n_mat = 1;
        e->sum2 = malloc(sizeof(float) * (size_t)nval);
        e->counts = malloc(sizeof(float));
        if (!e->sum2 || !e->counts) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto fail; }
        if (rd(f, e->sum2, sizeof(float) * (size_t)nval)) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: entry '%s': truncated", path, e->name);
            goto fail;
        }
        pos += (uint64_t)nval * 4;
        for (int32_t k = 0; k < nval; k++)
            if (!(e->sum2[k] >= 0) || e->sum2[k] > 3.0e38f) {
                rc = slm_err_set(err, SLM_EINPUT, "%s: entry '%s': value %d is negative or not finite", path, e->name, k);
                goto fail;
            }
        /* sums are (sum/count)*ncall: dividing by ncall gives the mean, as for GGUF */
        e->counts[0] = (float)ncall;
    }
    /* optional trailer: chunk count, dataset name */
    int32_t n_calls, dlen;
    if (pos < size) {
        if (rd(f, &n_calls, 4) || n_calls < 0) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: bad trailer after the last entry", path);
            goto fail;
        }
        im->chunk_count = (uint32_t)n_calls;
        pos += 4;
        if (pos + 4 <= size && !rd(f, &dlen, 4) && dlen > 0 && dlen <= IMATRIX_MAX_NAME && pos + 4 + (uint64_t)dlen <= size) {
            char buf[IMATRIX_MAX_NAME];
            if (!rd(f, buf, (size_t)dlen) && add_dataset(im, buf, (size_t)dlen)) {
                rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
                goto fail;
            }
        }
    }
    im->legacy = 1;
    qsort(im->e, im->n, sizeof *im->e, cmp_entry);
    for (size_t i = 1; i < im->n; i++)
        if (!strcmp(im->e[i].name, im->e[i - 1].name)) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: entry '%s' appears twice", path, im->e[i].name);
            goto fail;
        }
    return SLM_OK;
fail:
    slm_imatrix_free(im);
    return rc;
}

int slm_imatrix_read(const char *path, slm_imatrix *im, slm_err *err)
{
    memset(im, 0, sizeof *im);
    FILE *f = fopen(path, "rb");
    if (!f) return slm_err_set(err, SLM_EIO, "%s: cannot open the imatrix file", path);
    struct stat st;
    char magic[4];
    if (fstat(fileno(f), &st) || st.st_size < 4 || rd(f, magic, 4)) {
        fclose(f);
        return slm_err_set(err, SLM_EINPUT, "%s: too short to be an imatrix file", path);
    }
    int rc;
    if (!memcmp(magic, "GGUF", 4)) {
        fclose(f);
        rc = read_gguf(path, im, err);
        if (!rc) qsort(im->e, im->n, sizeof *im->e, cmp_entry);
        return rc;
    }
    rewind(f);
    rc = read_dat(path, f, (uint64_t)st.st_size, im, err);
    fclose(f);
    return rc;
}

int slm_imatrix_write(const char *path, const slm_imatrix *im, slm_err *err)
{
    slm_imatrix_entry *e = malloc(sizeof *e * (im->n ? im->n : 1));
    if (!e) return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    memcpy(e, im->e, sizeof *e * im->n);
    qsort(e, im->n, sizeof *e, cmp_entry); /* llama-imatrix's deterministic order */
    gguf_writer *w = gguf_writer_new();
    int bad = !w;
    if (!bad) {
        bad |= gguf_set_str(w, "general.type", "imatrix");
        bad |= gguf_set_arr_str(w, "imatrix.datasets", (const char *const *)im->datasets, im->n_datasets);
        bad |= gguf_set_u32(w, "imatrix.chunk_count", im->chunk_count);
        bad |= gguf_set_u32(w, "imatrix.chunk_size", im->chunk_size);
    }
    char name[1100];
    for (size_t i = 0; i < im->n && !bad; i++) {
        int64_t ne1[2] = { e[i].n, e[i].n_mat }, ne2[2] = { 1, e[i].n_mat };
        snprintf(name, sizeof name, "%s.in_sum2", e[i].name);
        bad |= gguf_add_tensor(w, name, SLM_TYPE_F32, 2, ne1) < 0;
        snprintf(name, sizeof name, "%s.counts", e[i].name);
        bad |= gguf_add_tensor(w, name, SLM_TYPE_F32, 2, ne2) < 0;
    }
    int rc;
    if (bad) {
        rc = slm_err_set(err, SLM_EINTERNAL, "%s: cannot describe the imatrix (out of memory or bad names)", path);
        goto out;
    }
    slm_afile_clean_stale(path);
    if ((rc = gguf_writer_begin(w, path, err))) goto out;
    for (size_t i = 0; i < im->n && !rc; i++) {
        rc = gguf_writer_write(w, e[i].sum2, sizeof(float) * (size_t)(e[i].n * e[i].n_mat), err);
        if (!rc) rc = gguf_writer_write(w, e[i].counts, sizeof(float) * (size_t)e[i].n_mat, err);
    }
    if (!rc) rc = gguf_writer_finish(w, err);
out:
    gguf_writer_free(w);
    free(e);
    return rc;
}
