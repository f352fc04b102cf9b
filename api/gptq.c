/* api/gptq.c — `slm quantize --gptq`: the layer-by-layer driver.
 *
 * The residual stream of every calibration chunk entering block N is kept (R:
 * chunks x n_ctx x n_embd floats). For block N = 0, 1, ...:
 *   pass 1 runs the block alone on R (slm_ctx_set_layer_range) with its original
 *     weights as far as the feed-forward's input: the observer accumulates H = X^T X
 *     once per distinct input (q/k/v share one, attn_output has its own, gate/up
 *     share one) and skips the feed-forward products (SLM_ACT_SKIP), whose outputs
 *     nobody needs in this pass;
 *   the block's weights except ffn_down are GPTQ-quantized (libquant; one factor of
 *     H^-1 per input, shared by the matrices that multiply it);
 *   pass 2 runs the block again with those quantized weights substituted; the input
 *     of ffn_down (computed from the quantized gate/up) is kept for every chunk and the
 *     product skipped, so R receives the residual after attention (+ ffn_down's bias);
 *   ffn_down's H is accumulated from the kept inputs, ffn_down is GPTQ-quantized, and
 *     R += input x quantized ffn_down^T completes block N's output on R.
 * So every matrix is calibrated on what the quantized layers before it produce, and
 * ffn_down even on what the quantized gate/up of its own block produce. Cost: the
 * attention products twice (original and quantized), the feed-forward ones once.
 * Then output.weight from the final R (its input seen, the logits skipped).
 * Memory: R, the ffn_down inputs of every chunk (chunks x n_ctx x n_ff floats) and
 * the H of one block's inputs.
 */
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "calib.h"
#include "pipeline.h"
#include "formats.h"
#include "libquant.h"
#include "runtime.h"

/* process CPU seconds (all threads): the machine is shared, wall time alone says little */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* wall and CPU seconds spent in each phase, for the verbose report */
enum { PH_PASS1, PH_GPTQ, PH_PASS2, PH_DOWN, PH_N };
typedef struct { double wall[PH_N], cpu[PH_N], w0, c0; } phase_clock;
static void ph_start(phase_clock *pc) { pc->w0 = slm_pl_now(); pc->c0 = cpu_now(); }
static void ph_stop(phase_clock *pc, int ph)
{
    pc->wall[ph] += slm_pl_now() - pc->w0;
    pc->cpu[ph] += cpu_now() - pc->c0;
}

/* inputs are gathered into batches of this many tokens before H += X^T X (one sgemm
 * per band of H on a long batch runs faster than one per chunk) */
#define H_BATCH 4096

typedef struct {
    gptq_tensor *t;
    const gguf_tensor *w;    /* the runtime's tensor of the same name */
    int layer;               /* n_layer for output.weight */
    int group;               /* index into the layer's H list */
    int leader;              /* accumulates its group's H */
    int down;                /* ffn_down: input kept in pass 2, applied by the driver */
    gguf_tensor sub;         /* the quantized tensor, once done */
    int done;
    gguf_tensor q8;          /* pass 1: a Q8_0 copy of the original weights, */
    unsigned char *q8buf;    /* its bytes (NULL: none) */
} gt_state;

typedef struct {
    float *H;                /* n x n, upper triangle until symmetrized */
    int64_t n;
    float *buf;              /* inputs not yet in H: nbuf rows of n */
    int64_t nbuf;
    slm_gptq_factor *f;      /* factor of H^-1, made by the group's first matrix */
} hgroup;

enum { MODE_PASS1, MODE_PASS2, MODE_OUTPUT };

typedef struct {
    gt_state *s;
    size_t n;
    int cur_layer, mode, chunk, n_ctx;
    hgroup g[8];
    int n_groups, threads;
    float *Xd;               /* pass 2: ffn_down's input per chunk */
    size_t xd_per;           /* floats per chunk */
    int fail;                /* out of memory or an unexpected batch inside the observer */
    double h_wall, h_cpu;    /* time in the H accumulation (verbose report) */
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
    if (strstr(name, "attn_q.weight") || strstr(name, "attn_k.weight") || strstr(name, "attn_v.weight") ||
        strstr(name, "attn_qkv.weight")) return 1;
    if (strstr(name, "ffn_gate.weight") || strstr(name, "ffn_up.weight")) return 2;
    return 0;
}

static int is_ffn(const char *name) { return strstr(name, ".ffn_") != NULL; }

/* H += x^T x for n_tokens rows, timed for the verbose report */
static void h_accumulate(driver *d, hgroup *g, const float *x, int64_t n_tokens)
{
    const double w0 = slm_pl_now(), c0 = cpu_now();
    slm_gptq_accumulate(g->H, x, n_tokens, g->n, d->threads);
    d->h_wall += slm_pl_now() - w0;
    d->h_cpu += cpu_now() - c0;
}

static void h_flush(driver *d, hgroup *g)
{
    if (!g->nbuf) return;
    h_accumulate(d, g, g->buf, g->nbuf);
    g->nbuf = 0;
}

static void h_add(driver *d, hgroup *g, const float *x, int64_t n_tokens)
{
    if (g->nbuf + n_tokens > H_BATCH) h_flush(d, g);
    if (!g->buf || n_tokens > H_BATCH) {
        h_accumulate(d, g, x, n_tokens);
        return;
    }
    memcpy(g->buf + g->nbuf * g->n, x, sizeof(float) * (size_t)n_tokens * (size_t)g->n);
    g->nbuf += n_tokens;
}

static const gguf_tensor *observe(void *user, const gguf_tensor *W, const float *x, int n_tokens)
{
    driver *d = user;
    gt_state *s = NULL;
    for (size_t i = 0; i < d->n && !s; i++)
        if (d->s[i].w == W) s = &d->s[i];
    const int here = s && s->layer == d->cur_layer;
    switch (d->mode) {
    case MODE_PASS1:
        if (here && s->leader && !s->down) h_add(d, &d->g[s->group], x, n_tokens);
        /* nothing after the feed-forward's input is needed in this pass */
        if (is_ffn(W->name)) return SLM_ACT_SKIP;
        if (here && s->q8buf) return &s->q8;
        return s && s->done ? &s->sub : NULL;
    case MODE_PASS2:
        if (here && s->down) {
            if (n_tokens != d->n_ctx) { d->fail = 1; return SLM_ACT_SKIP; }
            memcpy(d->Xd + (size_t)d->chunk * d->xd_per, x, sizeof(float) * d->xd_per);
            return SLM_ACT_SKIP;
        }
        return s && s->done ? &s->sub : NULL;
    default: /* the output matrix: only its input matters */
        if (here && s->leader) h_add(d, &d->g[s->group], x, n_tokens);
        return SLM_ACT_SKIP;
    }
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

/* GPTQ of one matrix against its group's H (factor made once per group) */
static int quantize_one(driver *d, gt_state *s, const gptq_opts *o, float *W, const char *model_path, slm_err *err)
{
    const gguf_tensor *t = s->w;
    hgroup *g = &d->g[s->group];
    const int64_t n = t->ne[0], nrows = (int64_t)(t->n_elems / (uint64_t)n);
    const size_t rb = slm_row_bytes(s->t->type, n);
    if (to_f32(t, W)) return slm_err_set(err, SLM_EINPUT, "%s: tensor '%s': cannot decode its type", model_path, t->name);
    s->t->out = malloc(rb * (size_t)nrows);
    if (!s->t->out) return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    int q = 0;
    if (!g->f || !slm_gptq_factor_fits(g->f, s->t->type, n)) {
        slm_gptq_factor_free(g->f);
        g->f = NULL;
        q = slm_gptq_factor_new(s->t->type, g->H, n, &o->p, &g->f);
    }
    if (!q) q = slm_gptq_quantize_factored(g->f, s->t->type, W, nrows, s->t->imp, o->threads, s->t->out);
    if (q)
        return slm_err_set(err, q == SLM_GPTQ_ENOMEM ? SLM_EINTERNAL : SLM_EINPUT, "%s: tensor '%s': GPTQ failed (%s)",
                           model_path, t->name,
                           q == SLM_GPTQ_ENOMEM ? "out of memory"
                           : q == SLM_GPTQ_ENOTPD ? "H is not positive definite even with strong damping"
                                                  : "type not supported");
    s->sub = *t;
    s->sub.type = s->t->type;
    s->sub.data = s->t->out;
    s->sub.nbytes = rb * (size_t)nrows;
    s->done = 1;
    return SLM_OK;
}

static void free_groups(driver *d)
{
    for (int gi = 0; gi < 8; gi++) {
        free(d->g[gi].H);
        free(d->g[gi].buf);
        slm_gptq_factor_free(d->g[gi].f);
        memset(&d->g[gi], 0, sizeof d->g[gi]);
    }
    d->n_groups = 0;
}

int gptq_run(const char *model_path, const gptq_opts *o, gptq_tensor *ts, size_t nts, slm_err *err)
{
    slm_model *m = NULL;
    slm_tokenizer *tok = NULL;
    slm_ctx *ctx = NULL;
    slm_pool *pool = NULL;
    calib_text ct = {0};
    driver d = {0};
    float *W = NULL, *R = NULL, *tmp = NULL;
    int rc;
    /* Every block allocates and frees the same large buffers (H, factors, the dequantized
     * weights: ~0.6 GB for a 1.1B model); served by mmap, each came back as fresh pages
     * to fault in and zero (3.5 M minor faults, ~30 s of system time over 22 blocks).
     * Kept in the heap instead, they are reused. */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    if ((rc = slm_model_load(model_path, &m, err)) || (rc = slm_tokenizer_from_gguf(slm_model_gguf(m), &tok, err)))
        goto out;
    const slm_hparams *hp = slm_model_hparams(m);
    const gguf_file *g = slm_model_gguf(m);
    if (o->calib ? (rc = calib_prepare(o->calib, m, tok, o->n_ctx, o->max_chunks, &ct, err))
                 : (rc = calib_generate(m, tok, o->n_ctx, o->self_chunks, o->self_seed, o->threads, &ct, err)))
        goto out;
    if ((rc = slm_ctx_new(m, o->n_ctx, o->n_ctx, o->threads, &ctx, err))) goto out;
    if ((rc = slm_pool_new(o->threads, &pool, err))) goto out;

    /* the runtime's own tensors (same names as the input file's) */
    d.s = calloc(nts ? nts : 1, sizeof *d.s);
    if (!d.s) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto out; }
    int64_t down_cols = 0;
    for (size_t i = 0; i < nts; i++) {
        int64_t k = gguf_find_tensor(g, ts[i].src->name);
        if (k < 0) { rc = slm_err_set(err, SLM_EINTERNAL, "%s: tensor '%s' vanished", model_path, ts[i].src->name); goto out; }
        gt_state *s = &d.s[d.n++];
        *s = (gt_state){ .t = &ts[i], .w = &g->tensors[k], .layer = layer_of(ts[i].src->name, hp->n_layer) };
        s->down = s->layer < hp->n_layer && strstr(s->w->name, "ffn_down.weight") != NULL;
        if (s->down && s->w->ne[0] > down_cols) down_cols = s->w->ne[0];
    }
    d.threads = o->threads;
    d.n_ctx = ct.n_ctx;
    slm_ctx_set_observer(ctx, observe, &d);
    size_t maxel = 0;
    for (size_t i = 0; i < d.n; i++)
        if (d.s[i].w->n_elems > maxel) maxel = d.s[i].w->n_elems;
    W = malloc(sizeof(float) * (maxel ? maxel : 1));
    if (!W) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto out; }

    const size_t per = (size_t)ct.n_ctx * (size_t)hp->n_embd;
    if (per > SIZE_MAX / sizeof(float) / (size_t)ct.n_chunks ||
        !(R = malloc(sizeof(float) * per * (size_t)ct.n_chunks)) || !(tmp = malloc(sizeof(float) * per))) {
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory for the residual stream of %d chunks of %d tokens (%.1f GiB)",
                         ct.n_chunks, ct.n_ctx, (double)per * ct.n_chunks * 4 / (1 << 30));
        goto out;
    }
    if (down_cols) {
        d.xd_per = (size_t)ct.n_ctx * (size_t)down_cols;
        if (d.xd_per > SIZE_MAX / sizeof(float) / (size_t)ct.n_chunks ||
            !(d.Xd = malloc(sizeof(float) * d.xd_per * (size_t)ct.n_chunks))) {
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory for the ffn_down inputs of %d chunks of %d tokens (%.1f GiB)",
                             ct.n_chunks, ct.n_ctx, (double)d.xd_per * ct.n_chunks * 4 / (1 << 30));
            goto out;
        }
    }
    /* layers after the last one holding a selected tensor need no pass */
    int last_layer = -1;
    for (size_t i = 0; i < d.n; i++)
        if (d.s[i].layer > last_layer) last_layer = d.s[i].layer;
    double t0 = slm_pl_now();
    phase_clock pc = {0};
    const int pass1_exact = o->exact_pass1; /* --gptq-exact-pass1 */
    for (int L = 0; L <= last_layer; L++) {
        const int out_layer = L == hp->n_layer;
        /* this layer's groups */
        d.cur_layer = L;
        free_groups(&d);
        int kind_group[3] = { -1, -1, -1 }, pass1 = 0;
        gt_state *down = NULL;
        for (size_t i = 0; i < d.n; i++) {
            gt_state *s = &d.s[i];
            if (s->layer != L) continue;
            if (s->down) down = s;
            int k = input_kind(s->w->name);
            if (k && kind_group[k] >= 0) { s->group = kind_group[k]; s->leader = 0; continue; }
            if (d.n_groups == 8) { rc = slm_err_set(err, SLM_EINTERNAL, "too many inputs in layer %d", L); goto out; }
            hgroup *hg = &d.g[d.n_groups];
            const int64_t n = s->w->ne[0];
            hg->n = n;
            hg->H = calloc((size_t)n * (size_t)n, sizeof(float));
            if (!hg->H) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory for H (%" PRId64 "^2 floats)", n); goto out; }
            hg->buf = s->down ? NULL : malloc(sizeof(float) * H_BATCH * (size_t)n); /* NULL: no batching */
            s->group = d.n_groups++;
            s->leader = 1;
            if (k) kind_group[k] = s->group;
            if (!s->down) pass1 = 1;
        }
        ph_start(&pc);
        /* Pass 1 multiplies by Q8_0 copies of the attention weights: the runtime's int8
         * GEMM runs about twice as fast as the F16 one, and 8-bit weights change the
         * activations H is made of very little (KLD measured in docs/calibration.md). */
        for (size_t i = 0; i < d.n && pass1 && !out_layer && !pass1_exact; i++) {
            gt_state *s = &d.s[i];
            const gguf_tensor *t = s->w;
            if (s->layer != L || is_ffn(t->name) || (t->type != SLM_TYPE_F16 && t->type != SLM_TYPE_BF16 && t->type != SLM_TYPE_F32))
                continue;
            const int64_t n = t->ne[0], nrows = (int64_t)(t->n_elems / (uint64_t)n);
            const size_t rb = slm_row_bytes(SLM_TYPE_Q8_0, n);
            unsigned char *q = rb ? malloc(rb * (size_t)nrows) : NULL;
            if (!q || to_f32(t, W)) { free(q); continue; } /* no copy: the original weights */
            slm_quantize_rows(SLM_TYPE_Q8_0, W, q, nrows, n, NULL);
            s->q8 = *t;
            s->q8.type = SLM_TYPE_Q8_0;
            s->q8.data = s->q8buf = q;
            s->q8.nbytes = rb * (size_t)nrows;
        }
        if (pass1) {
            d.mode = out_layer ? MODE_OUTPUT : MODE_PASS1;
            for (int c = 0; c < ct.n_chunks; c++) {
                slm_ctx_set_layer_range(ctx, L, out_layer ? L : L + 1, L ? R + (size_t)c * per : NULL, NULL);
                if ((rc = calib_run_chunk(ctx, &ct, c, out_layer, err))) goto out;
            }
            for (int gi = 0; gi < d.n_groups; gi++) h_flush(&d, &d.g[gi]);
        }
        for (size_t i = 0; i < d.n; i++) { free(d.s[i].q8buf); d.s[i].q8buf = NULL; }
        ph_stop(&pc, PH_PASS1);
        ph_start(&pc);
        for (int gi = 0; gi < d.n_groups; gi++)
            if (!(down && gi == down->group)) slm_gptq_symmetrize(d.g[gi].H, d.g[gi].n);
        for (size_t i = 0; i < d.n; i++) {
            gt_state *s = &d.s[i];
            if (s->layer == L && !s->down && (rc = quantize_one(&d, s, o, W, model_path, err))) goto out;
        }
        ph_stop(&pc, PH_GPTQ);
        ph_start(&pc);
        /* pass 2: the quantized block's output is the next block's input (ffn_down's
         * input kept, its product left to the driver) */
        const int need_r = L < last_layer && !out_layer;
        if (need_r || down) {
            d.mode = MODE_PASS2;
            for (int c = 0; c < ct.n_chunks; c++) {
                d.chunk = c;
                slm_ctx_set_layer_range(ctx, L, L + 1, L ? R + (size_t)c * per : NULL, R + (size_t)c * per);
                if ((rc = calib_run_chunk(ctx, &ct, c, 0, err))) goto out;
            }
        }
        ph_stop(&pc, PH_PASS2);
        if (d.fail) { rc = slm_err_set(err, SLM_EINTERNAL, "GPTQ: out of memory or an unexpected batch in layer %d", L); goto out; }
        if (down) {
            ph_start(&pc);
            hgroup *hg = &d.g[down->group];
            h_accumulate(&d, hg, d.Xd, (int64_t)ct.n_chunks * ct.n_ctx);
            slm_gptq_symmetrize(hg->H, hg->n);
            if ((rc = quantize_one(&d, down, o, W, model_path, err))) goto out;
            const int64_t E = hp->n_embd;
            for (int c = 0; c < ct.n_chunks && need_r; c++) {
                slm_matmul_packed(pool, tmp, &down->sub, NULL, d.Xd + (size_t)c * d.xd_per, ct.n_ctx);
                float *r = R + (size_t)c * per;
                for (size_t k = 0; k < (size_t)ct.n_ctx * (size_t)E; k++) r[k] += tmp[k];
            }
            ph_stop(&pc, PH_DOWN);
        }
        free_groups(&d);
        if (o->verbose && o->log) {
            char line[512];
            snprintf(line, sizeof line,
                    "GPTQ layer %d/%d done (%d chunks of %d tokens), %.1f s; so far wall/CPU s: "
                    "pass 1 %.1f/%.1f, GPTQ %.1f/%.1f, pass 2 %.1f/%.1f, ffn_down %.1f/%.1f (H in all: %.1f/%.1f)\n",
                    L, hp->n_layer, ct.n_chunks, ct.n_ctx, slm_pl_now() - t0, pc.wall[PH_PASS1], pc.cpu[PH_PASS1],
                    pc.wall[PH_GPTQ], pc.cpu[PH_GPTQ], pc.wall[PH_PASS2], pc.cpu[PH_PASS2], pc.wall[PH_DOWN],
                    pc.cpu[PH_DOWN], d.h_wall, d.h_cpu);
            o->log(o->log_user, line);
        }
    }
    rc = SLM_OK;
out:
    free_groups(&d);
    for (size_t i = 0; d.s && i < d.n; i++) free(d.s[i].q8buf);
    free(d.s);
    free(d.Xd);
    free(W);
    free(R);
    free(tmp);
    calib_free(&ct);
    slm_pool_free(pool);
    slm_ctx_free(ctx);
    slm_tokenizer_free(tok);
    slm_model_free(m);
    return rc;
}
