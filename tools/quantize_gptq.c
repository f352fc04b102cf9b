/* tools/quantize_gptq.c — `slm quantize --gptq`: the layer-by-layer driver.
 *
 * The residual stream of every calibration chunk entering layer N is kept (R:
 * chunks x n_ctx x n_embd floats). For layer N = 0, 1, ...: pass 1 runs block N
 * alone on R (slm_ctx_set_layer_range) and accumulates H = X^T X once per distinct
 * input of the block (q/k/v share one, gate/up share one; the activation observer
 * sees them); the block's weights are GPTQ-quantized (libquant slm_gptq_quantize);
 * pass 2 runs block N again with its quantized weights substituted (the observer
 * returns them) and stores its output in R, the input of layer N + 1 — so every
 * layer is calibrated on what the quantized layers before it really produce.
 * Then output.weight from the final R. Cost: two passes of each block (about two
 * forward passes of the model), not one forward pass per layer. Memory: R plus the
 * H of one block's inputs (dim^2 floats each).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib.h"
#include "cli.h"
#include "formats.h"
#include "libquant.h"
#include "runtime.h"

typedef struct {
    gptq_tensor *t;
    const gguf_tensor *w;    /* the runtime's tensor of the same name */
    int layer;               /* n_layer for output.weight */
    int group;               /* index into the layer's H list */
    int leader;              /* accumulates its group's H */
    gguf_tensor sub;         /* the quantized tensor, once done */
    int done;
} gt_state;

typedef struct {
    gt_state *s;
    size_t n;
    int cur_layer;
    float *H[8];
    int64_t hn[8];
    int n_groups, threads;
    int collect;             /* accumulate H (pass 1) or only substitute (pass 2) */
} driver;

static int layer_of(const char *name, int n_layer)
{
    int l;
    if (sscanf(name, "blk.%d.", &l) == 1 && l >= 0 && l < n_layer) return l;
    if (!strcmp(name, "output.weight")) return n_layer;
    return -1;
}

/* tensors fed by the same activations share one H */
static int input_kind(const char *name)
{
    if (strstr(name, "attn_q.weight") || strstr(name, "attn_k.weight") || strstr(name, "attn_v.weight")) return 1;
    if (strstr(name, "ffn_gate.weight") || strstr(name, "ffn_up.weight")) return 2;
    return 0;
}

static const gguf_tensor *observe(void *user, const gguf_tensor *W, const float *x, int n_tokens)
{
    driver *d = user;
    for (size_t i = 0; i < d->n; i++) {
        gt_state *s = &d->s[i];
        if (s->w != W) continue;
        if (s->done) return &s->sub;
        if (d->collect && s->layer == d->cur_layer && s->leader) slm_gptq_accumulate(d->H[s->group], x, n_tokens, W->ne[0], d->threads);
        return NULL;
    }
    return NULL;
}

static int to_f32(const gguf_tensor *t, float *dst)
{
    const int64_t n = t->ne[0], nrows = (int64_t)(t->n_elems / (uint64_t)n);
    if (t->type == SLM_TYPE_F32) { memcpy(dst, t->data, t->n_elems * 4); return 0; }
    const slm_qtraits *q = slm_qtraits_get(t->type);
    if (!q || !q->dequantize_row) return -1;
    const size_t rb = slm_type_row_bytes(t->type, (uint64_t)n);
    for (int64_t r = 0; r < nrows; r++) q->dequantize_row((const unsigned char *)t->data + (size_t)r * rb, dst + r * n, n);
    return 0;
}

int gptq_run(const char *model_path, const gptq_opts *o, gptq_tensor *ts, size_t nts, slm_err *err)
{
    slm_model *m = NULL;
    slm_tokenizer *tok = NULL;
    slm_ctx *ctx = NULL;
    calib_text ct = {0};
    driver d = {0};
    float *W = NULL, *R = NULL;
    int rc;
    if ((rc = slm_model_load(model_path, &m, err)) || (rc = slm_tokenizer_from_gguf(slm_model_gguf(m), &tok, err)))
        goto out;
    const slm_hparams *hp = slm_model_hparams(m);
    const gguf_file *g = slm_model_gguf(m);
    if ((rc = calib_prepare(o->calib, m, tok, o->n_ctx, o->max_chunks, &ct, err))) goto out;
    if ((rc = slm_ctx_new(m, o->n_ctx, o->n_ctx, o->threads, &ctx, err))) goto out;

    /* the runtime's own tensors (same names as the input file's) */
    d.s = calloc(nts ? nts : 1, sizeof *d.s);
    if (!d.s) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto out; }
    for (size_t i = 0; i < nts; i++) {
        int64_t k = gguf_find_tensor(g, ts[i].src->name);
        if (k < 0) { rc = slm_err_set(err, SLM_EINTERNAL, "%s: tensor '%s' vanished", model_path, ts[i].src->name); goto out; }
        d.s[d.n++] = (gt_state){ .t = &ts[i], .w = &g->tensors[k], .layer = layer_of(ts[i].src->name, hp->n_layer) };
    }
    d.threads = o->threads;
    slm_ctx_set_observer(ctx, observe, &d);
    size_t maxel = 0;
    for (size_t i = 0; i < d.n; i++)
        if (d.s[i].w->n_elems > maxel) maxel = d.s[i].w->n_elems;
    W = malloc(sizeof(float) * (maxel ? maxel : 1));
    if (!W) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto out; }

    const size_t per = (size_t)ct.n_ctx * (size_t)hp->n_embd;
    if (per > SIZE_MAX / sizeof(float) / (size_t)ct.n_chunks ||
        !(R = malloc(sizeof(float) * per * (size_t)ct.n_chunks))) {
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory for the residual stream of %d chunks of %d tokens (%.1f GiB)",
                         ct.n_chunks, ct.n_ctx, (double)per * ct.n_chunks * 4 / (1 << 30));
        goto out;
    }
    double t0 = cli_now();
    for (int L = 0; L <= hp->n_layer; L++) {
        /* this layer's groups */
        d.cur_layer = L;
        d.n_groups = 0;
        int kind_group[3] = { -1, -1, -1 };
        for (size_t i = 0; i < d.n; i++) {
            gt_state *s = &d.s[i];
            if (s->layer != L) continue;
            int k = input_kind(s->w->name);
            if (k && kind_group[k] >= 0) { s->group = kind_group[k]; s->leader = 0; continue; }
            if (d.n_groups == 8) { rc = slm_err_set(err, SLM_EINTERNAL, "too many inputs in layer %d", L); goto out; }
            const int64_t n = s->w->ne[0];
            d.H[d.n_groups] = calloc((size_t)n * (size_t)n, sizeof(float));
            if (!d.H[d.n_groups]) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory for H (%" PRId64 "^2 floats)", n); goto out; }
            d.hn[d.n_groups] = n;
            s->group = d.n_groups++;
            s->leader = 1;
            if (k) kind_group[k] = s->group;
        }
        const int last = L == hp->n_layer;
        if (d.n_groups) {
            d.collect = 1;
            for (int c = 0; c < ct.n_chunks; c++) {
                slm_ctx_set_layer_range(ctx, L, last ? L : L + 1, L ? R + (size_t)c * per : NULL, NULL);
                if ((rc = calib_run_chunk(ctx, &ct, c, last, err))) goto out;
            }
            d.collect = 0;
        }
        for (int gi = 0; gi < d.n_groups; gi++) slm_gptq_symmetrize(d.H[gi], d.hn[gi]);
        for (size_t i = 0; i < d.n; i++) {
            gt_state *s = &d.s[i];
            if (s->layer != L) continue;
            const gguf_tensor *t = s->w;
            const int64_t n = t->ne[0], nrows = (int64_t)(t->n_elems / (uint64_t)n);
            const size_t rb = slm_row_bytes(s->t->type, n);
            if (to_f32(t, W)) { rc = slm_err_set(err, SLM_EINPUT, "%s: tensor '%s': cannot decode its type", model_path, t->name); goto out; }
            s->t->out = malloc(rb * (size_t)nrows);
            if (!s->t->out) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto out; }
            int q = slm_gptq_quantize(s->t->type, W, nrows, n, d.H[s->group], s->t->imp, &o->p, o->threads, s->t->out);
            if (q) {
                rc = slm_err_set(err, q == SLM_GPTQ_ENOMEM ? SLM_EINTERNAL : SLM_EINPUT,
                                 "%s: tensor '%s': GPTQ failed (%s)", model_path, t->name,
                                 q == SLM_GPTQ_ENOMEM ? "out of memory"
                                 : q == SLM_GPTQ_ENOTPD ? "H is not positive definite even with strong damping"
                                                        : "type not supported");
                goto out;
            }
            s->sub = *t;
            s->sub.type = s->t->type;
            s->sub.data = s->t->out;
            s->sub.nbytes = rb * (size_t)nrows;
            s->done = 1;
        }
        for (int gi = 0; gi < d.n_groups; gi++) { free(d.H[gi]); d.H[gi] = NULL; }
        /* pass 2: the quantized block's output is the next block's input */
        for (int c = 0; c < ct.n_chunks && !last; c++) {
            slm_ctx_set_layer_range(ctx, L, L + 1, L ? R + (size_t)c * per : NULL, R + (size_t)c * per);
            if ((rc = calib_run_chunk(ctx, &ct, c, 0, err))) goto out;
        }
        if (o->verbose)
            fprintf(stderr, "slm quantize: GPTQ layer %d/%d done (%d chunks of %d tokens), %.1f s\n", L, hp->n_layer,
                    ct.n_chunks, ct.n_ctx, cli_now() - t0);
    }
    rc = SLM_OK;
out:
    for (int gi = 0; gi < 8; gi++) free(d.H[gi]);
    free(d.s);
    free(W);
    free(R);
    calib_free(&ct);
    slm_ctx_free(ctx);
    slm_tokenizer_free(tok);
    slm_model_free(m);
    return rc;
}
