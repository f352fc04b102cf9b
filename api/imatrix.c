/* api/imatrix.c — the importance matrix pipeline (`slm imatrix`): the runtime over calibration
 * chunks, the per-column mean of squared activations of every weight product (llama-imatrix's
 * rule: products of >= 16 tokens, blk.* and, on request, output.weight), written in llama.cpp's
 * imatrix format. */
#include <stdlib.h>
#include <string.h>

#include "calib.h"
#include "pipeline.h"

/* ---- the collector ------------------------------------------------------------------ */

typedef struct {
    const gguf_tensor *w;
    double *sum2;
    int64_t count;
} acc_t;

typedef struct {
    acc_t *a;
    size_t n;
    int process_output;
    int fail;
} collector;

static const gguf_tensor *observe(void *user, const gguf_tensor *W, const float *x, int n_tokens)
{
    collector *c = user;
    /* llama-imatrix skips products of fewer than 16 tokens (generation steps) */
    if (n_tokens < 16) return NULL;
    if (strncmp(W->name, "blk.", 4) && !(c->process_output && !strcmp(W->name, "output.weight"))) return NULL;
    acc_t *a = NULL;
    for (size_t i = 0; i < c->n; i++)
        if (c->a[i].w == W) { a = &c->a[i]; break; }
    if (!a) {
        acc_t *na = realloc(c->a, sizeof *na * (c->n + 1));
        if (!na) { c->fail = 1; return NULL; }
        c->a = na;
        a = &c->a[c->n];
        *a = (acc_t){ W, calloc((size_t)W->ne[0], sizeof(double)), 0 };
        if (!a->sum2) { c->fail = 1; return NULL; }
        c->n++;
    }
    slm_imatrix_accumulate(a->sum2, x, n_tokens, W->ne[0]);
    a->count += n_tokens;
    return NULL;
}

int slm_pl_imatrix(const char *model_path, const char *text_path, const char *out_path, int n_ctx, int n_threads,
                   int max_chunks, int process_output, void (*progress)(void *user, int phase, uint64_t v),
                   void *progress_user, slm_pl_imatrix_info *info, slm_err *err)
{
    int rc;
    slm_model *m = NULL;
    slm_tokenizer *tok = NULL;
    slm_ctx *ctx = NULL;
    calib_text ct = {0};
    collector col = {0};
    slm_imatrix im = {0};
    memset(info, 0, sizeof *info);
    col.process_output = process_output;
    if ((rc = slm_model_load(model_path, &m, err)) || (rc = slm_tokenizer_from_gguf(slm_model_gguf(m), &tok, err)))
        goto done;
    if ((rc = calib_prepare(text_path, m, tok, n_ctx, max_chunks, &ct, err))) goto done;
    if ((rc = slm_ctx_new(m, n_ctx, n_ctx, n_threads, &ctx, err))) goto done;
    slm_ctx_set_observer(ctx, observe, &col);
    if (progress) progress(progress_user, 0, (uint64_t)ct.n_chunks);
    double t1 = slm_pl_now();
    for (int i = 0; i < ct.n_chunks; i++) {
        if ((rc = calib_run_chunk(ctx, &ct, i, process_output, err))) break;
        if (col.fail) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); break; }
        if (progress) progress(progress_user, 1, (uint64_t)i + 1);
    }
    if (progress) progress(progress_user, 2, 0);
    if (rc) goto done;
    info->run_secs = slm_pl_now() - t1;

    /* to the file format: raw sums and counts as float */
    im.e = calloc(col.n ? col.n : 1, sizeof *im.e);
    char *ds[1] = { (char *)text_path };
    im.datasets = ds;
    im.n_datasets = 1;
    im.chunk_count = (uint32_t)ct.n_chunks;
    im.chunk_size = (uint32_t)n_ctx;
    if (!im.e) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto done; }
    for (size_t i = 0; i < col.n; i++) {
        slm_imatrix_entry *e = &im.e[im.n++];
        const int64_t n = col.a[i].w->ne[0];
        e->name = col.a[i].w->name;
        e->n = n;
        e->n_mat = 1;
        e->sum2 = malloc(sizeof(float) * (size_t)n);
        e->counts = malloc(sizeof(float));
        if (!e->sum2 || !e->counts) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); break; }
        for (int64_t k = 0; k < n; k++) e->sum2[k] = (float)col.a[i].sum2[k];
        e->counts[0] = (float)col.a[i].count;
    }
    if (!rc) rc = slm_imatrix_write(out_path, &im, err);
    for (size_t i = 0; i < im.n; i++) { free(im.e[i].sum2); free(im.e[i].counts); }
    free(im.e);
    info->entries = col.n;
    info->chunks = ct.n_chunks;
done:
    for (size_t i = 0; i < col.n; i++) free(col.a[i].sum2);
    free(col.a);
    calib_free(&ct);
    slm_ctx_free(ctx);
    slm_tokenizer_free(tok);
    slm_model_free(m);
    return rc;
}
