/* api/gptq.c — `slm quantize --gptq`: the layer-by-layer driver.
 *
 * The residual stream of every calibration chunk entering block N is kept (R:
 * chunks x n_ctx x n_embd floats; the embeddings before block 0). Block N runs once,
 * in five stages over all chunks (slm_ctx_set_block_part: each stage runs a part of
 * the block), every matrix quantized before the product that uses it:
 *   1. the attention's norm (no attention): q/k/v's input goes into their H (products
 *      skipped; every H_EVERY-th token, as for the other H of a block); q/k/v are
 *      GPTQ-quantized;
 *   2. the attention with the quantized q/k/v: attn_output's input is kept per chunk and
 *      goes into its H (product skipped); attn_output is GPTQ-quantized;
 *   3. from the kept attention output: the quantized attn_output, the residual after
 *      attention (into R), gate/up's input into their H (products skipped); gate/up
 *      are GPTQ-quantized;
 *   4. from R: the feed-forward with the quantized gate/up; ffn_down's input is kept
 *      per chunk (product skipped); its H from every second token of those (DOWN_EVERY);
 *      ffn_down is GPTQ-quantized;
 *   5. from R and the kept input: the quantized ffn_down, the block's output into R.
 * So every matrix is calibrated on what the quantized matrices before it produce (the
 * standard sequential GPTQ), and every product runs once, on quantized weights.
 * Then output.weight from the final R (its input seen, the logits skipped).
 * Memory: R, the kept inputs of every chunk (chunks x n_ctx x max(attention width,
 * n_ff) floats), the H of one block's inputs and the quantized tensors; no decode copies
 * of the model (slm_model_set_packs) and each F16 tensor's pages dropped once decoded.
 */
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "calib.h"
#include "qsample.h"
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
enum { PH_S1, PH_S2, PH_S3, PH_S4, PH_S5, PH_GPTQ, PH_OUT, PH_N };
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

/* ffn_down's H from every DOWN_EVERY-th token (positions 0, 2, ... of each chunk: n_ctx is
 * even in practice; any n_ctx gives a fixed subset). Its H is n_ff^2 / 2 multiply-adds per
 * token, 70 % of all H work of a Llama block: on the TinyLlama-1.1B shape (n_ff 5632, 64 x 512
 * tokens) ~4 of ~33 CPU s a block saved; the KLD of the figures in docs/calibration.md
 * ("Cost and speed") did not move beyond run-to-run noise. */
#ifndef DOWN_EVERY
#define DOWN_EVERY 2
#endif

/* the other inputs of a block (q/k/v's, attn_output's, gate/up's) also from every
 * H_EVERY-th token of each chunk (positions 0, 2, ...): they are n_embd wide (n_embd^2 / 2
 * multiply-adds per token each, the other ~45 % of the H work on the TinyLlama-1.1B shape);
 * output.weight's H keeps every token. KLD in docs/calibration.md ("Cost and speed"). */
#ifndef H_EVERY
#define H_EVERY 2
#endif

typedef struct {
    gptq_tensor *t;
    const gguf_tensor *w;    /* the runtime's tensor of the same name */
    int layer;               /* n_layer for output.weight */
    int group;               /* index into the layer's H list */
    int leader;              /* accumulates its group's H */
    int down;                /* ffn_down: its H made from the kept inputs at once */
    gguf_tensor sub;         /* the quantized tensor, once done */
    int done;
} gt_state;

typedef struct {
    float *H;                /* n x n, upper triangle until symmetrized */
    int64_t n;
    float *buf;              /* inputs not yet in H: nbuf rows of n */
    int64_t nbuf;
    slm_gptq_factor *f;      /* factor of H^-1, made by the group's first matrix */
} hgroup;

/* the stages of a block (see the top), and the output matrix */
enum { MODE_QKV, MODE_ATT, MODE_ATT_OUT, MODE_FFN, MODE_DOWN, MODE_OUTPUT };

typedef struct {
    gt_state *s;
    size_t n;
    int cur_layer, mode, chunk, n_ctx;
    hgroup g[8];
    int n_groups, threads;
    const gguf_file *gf;     /* the runtime's model file (its pages released once read) */
    float *X;                /* kept inputs: attn_output's (stage 2), then ffn_down's (stage 4) */
    size_t x_per;            /* floats per chunk of the one being kept */
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

/* H += x^T x for n_tokens rows ld floats apart, timed for the verbose report */
static void h_accumulate_ld(driver *d, hgroup *g, const float *x, int64_t n_tokens, int64_t ld)
{
    const double w0 = slm_pl_now(), c0 = cpu_now();
    slm_gptq_accumulate_ld(g->H, x, n_tokens, g->n, ld, d->threads);
    d->h_wall += slm_pl_now() - w0;
    d->h_cpu += cpu_now() - c0;
}

static void h_flush(driver *d, hgroup *g)
{
    if (!g->nbuf) return;
    h_accumulate_ld(d, g, g->buf, g->nbuf, g->n);
    g->nbuf = 0;
}

/* rows 0, every, 2 every, ... of x (n_tokens rows of g->n floats) into H */
static void h_add(driver *d, hgroup *g, const float *x, int64_t n_tokens, int every)
{
    const int64_t rows = (n_tokens + every - 1) / every;
    if (g->nbuf + rows > H_BATCH) h_flush(d, g);
    if (!g->buf || rows > H_BATCH) {
        h_accumulate_ld(d, g, x, rows, (int64_t)every * g->n);
        return;
    }
    for (int64_t r = 0; r < rows; r++)
        memcpy(g->buf + (g->nbuf + r) * g->n, x + r * every * g->n, sizeof(float) * (size_t)g->n);
    g->nbuf += rows;
}

/* which input a product of a block takes */
enum { IN_QKV, IN_ATT, IN_FFN, IN_DOWN, IN_OTHER };
static int input_of(const char *name)
{
    if (input_kind(name) == 1) return IN_QKV;
    if (strstr(name, "attn_output.weight")) return IN_ATT;
    if (strstr(name, "ffn_down.weight")) return IN_DOWN;
    if (is_ffn(name)) return IN_FFN;
    return IN_OTHER;
}

/* keep one chunk's input of the product skipped at this stage */
static void keep(driver *d, const float *x, int n_tokens, int64_t n)
{
    if (n_tokens != d->n_ctx || (size_t)n_tokens * (size_t)n != d->x_per) { d->fail = 1; return; }
    memcpy(d->X + (size_t)d->chunk * d->x_per, x, sizeof(float) * d->x_per);
}

static const gguf_tensor *observe(void *user, const gguf_tensor *W, const float *x, int n_tokens)
{
    driver *d = user;
    gt_state *s = NULL;
    for (size_t i = 0; i < d->n && !s; i++)
        if (d->s[i].w == W) s = &d->s[i];
    const int here = s && s->layer == d->cur_layer;
    const gguf_tensor *use = s && s->done ? &s->sub : NULL; /* quantized already, or the original */
    if (d->mode == MODE_OUTPUT) { /* the output matrix: only its input matters */
        if (here && s->leader) h_add(d, &d->g[s->group], x, n_tokens, 1);
        return SLM_ACT_SKIP;
    }
    const int in = input_of(W->name);
    /* each stage ends at the product whose weights are not quantized yet: its input is
     * observed (and kept where a later stage starts from it), the product skipped */
    const int stop = d->mode == MODE_QKV ? IN_QKV : d->mode == MODE_ATT ? IN_ATT : d->mode == MODE_ATT_OUT ? IN_FFN
                   : d->mode == MODE_FFN ? IN_DOWN : -1;
    if (in != stop) return use;
    if (in == IN_ATT || in == IN_DOWN) keep(d, x, n_tokens, W->ne[0]);
    if (here && s->leader && !s->down) h_add(d, &d->g[s->group], x, n_tokens, H_EVERY);
    return SLM_ACT_SKIP;
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
    /* its file pages are not read again here (the product runs on the quantized copy): out
     * of the resident set, so the mapped model does not add up to its whole size */
    gguf_release_range(d->gf, t, 0, t->nbytes);
    s->t->out = malloc(rb * (size_t)nrows);
    if (!s->t->out) return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    int q = 0;
    if (!g->f || !slm_gptq_factor_fits(g->f, s->t->type, n)) {
        slm_gptq_factor_free(g->f);
        g->f = NULL;
        /* the factorisation on all threads (the same bytes for any -t) */
        q = slm_gptq_factor_new(s->t->type, g->H, n, &o->p, o->threads, &g->f);
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
    calib_text ct = {0};
    driver d = {0};
    float *W = NULL, *R = NULL;
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
    const double src_w0 = slm_pl_now(), src_c0 = cpu_now();
    if (o->calib ? (rc = calib_prepare(o->calib, m, tok, o->n_ctx, o->max_chunks, &ct, err))
        : o->self_source ? (rc = qsample_iid(m, tok, o->n_ctx, o->self_chunks, o->self_seed, o->self_source, &ct, err))
                         : (rc = calib_generate(m, tok, o->n_ctx, o->self_chunks, o->self_seed, o->threads, &ct, err)))
        goto out;
    /* no decode copies of the weights: every product of the passes below runs on a
     * quantized substitute or is skipped, and the copies (one more resident copy of the
     * whole F16 model, besides the file pages the GPTQ reads) were a third of the peak memory */
    slm_model_set_packs(m, 0);
    if (o->verbose && o->log && !o->calib) {
        char line[160];
        snprintf(line, sizeof line, "self-calibration tokens (%s, %d chunks of %d): wall/CPU s %.2f/%.2f\n",
                 qsample_source_names[o->self_source], ct.n_chunks, ct.n_ctx, slm_pl_now() - src_w0, cpu_now() - src_c0);
        o->log(o->log_user, line);
    }
    if ((rc = slm_ctx_new(m, o->n_ctx, o->n_ctx, o->threads, &ctx, err))) goto out;

    /* the runtime's own tensors (same names as the input file's) */
    d.s = calloc(nts ? nts : 1, sizeof *d.s);
    if (!d.s) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto out; }
    for (size_t i = 0; i < nts; i++) {
        int64_t k = gguf_find_tensor(g, ts[i].src->name);
        if (k < 0) { rc = slm_err_set(err, SLM_EINTERNAL, "%s: tensor '%s' vanished", model_path, ts[i].src->name); goto out; }
        gt_state *s = &d.s[d.n++];
        *s = (gt_state){ .t = &ts[i], .w = &g->tensors[k], .layer = layer_of(ts[i].src->name, hp->n_layer) };
        s->down = s->layer < hp->n_layer && strstr(s->w->name, "ffn_down.weight") != NULL;
    }
    d.threads = o->threads;
    d.gf = g;
    d.n_ctx = ct.n_ctx;
    slm_ctx_set_observer(ctx, observe, &d);
    size_t maxel = 0;
    for (size_t i = 0; i < d.n; i++)
        if (d.s[i].w->n_elems > maxel) maxel = d.s[i].w->n_elems;
    W = malloc(sizeof(float) * (maxel ? maxel : 1));
    if (!W) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto out; }

    /* layers after the last one holding a selected tensor need no pass */
    int last_layer = -1;
    for (size_t i = 0; i < d.n; i++)
        if (d.s[i].layer > last_layer) last_layer = d.s[i].layer;
    const size_t per = (size_t)ct.n_ctx * (size_t)hp->n_embd;
    const size_t x_max = (size_t)ct.n_ctx * (size_t)(hp->n_q > hp->n_ff ? hp->n_q : hp->n_ff);
    if (per > SIZE_MAX / sizeof(float) / (size_t)ct.n_chunks ||
        !(R = malloc(sizeof(float) * per * (size_t)ct.n_chunks))) {
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory for the residual stream of %d chunks of %d tokens (%.1f GiB)",
                         ct.n_chunks, ct.n_ctx, (double)per * ct.n_chunks * 4 / (1 << 30));
        goto out;
    }
    int any_block = 0; /* the kept inputs are needed only for the blocks' matrices */
    for (size_t i = 0; i < d.n; i++) any_block |= d.s[i].layer < hp->n_layer;
    if (any_block &&
        (x_max > SIZE_MAX / sizeof(float) / (size_t)ct.n_chunks || !(d.X = malloc(sizeof(float) * x_max * (size_t)ct.n_chunks)))) {
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory for the kept inputs of %d chunks of %d tokens (%.1f GiB)",
                         ct.n_chunks, ct.n_ctx, (double)x_max * ct.n_chunks * 4 / (1 << 30));
        goto out;
    }
    double t0 = slm_pl_now();
    phase_clock pc = {0};
    /* R starts as the embeddings (a range of no blocks) */
    ph_start(&pc);
    for (int c = 0; c < ct.n_chunks && last_layer >= 0; c++) {
        slm_ctx_set_layer_range(ctx, 0, 0, NULL, R + (size_t)c * per);
        if ((rc = calib_run_chunk(ctx, &ct, c, 0, err))) goto out;
    }
    ph_stop(&pc, PH_OUT);
    for (int L = 0; L <= last_layer; L++) {
        const int out_layer = L == hp->n_layer;
        /* this layer's groups */
        d.cur_layer = L;
        free_groups(&d);
        int kind_group[3] = { -1, -1, -1 }, any = 0;
        for (size_t i = 0; i < d.n; i++) {
            gt_state *s = &d.s[i];
            if (s->layer != L) continue;
            any = 1;
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
        }
        if (out_layer) {
            ph_start(&pc);
            d.mode = MODE_OUTPUT;
            for (int c = 0; c < ct.n_chunks; c++) {
                slm_ctx_set_layer_range(ctx, L, L, R + (size_t)c * per, NULL);
                if ((rc = calib_run_chunk(ctx, &ct, c, 1, err))) goto out;
            }
            for (int gi = 0; gi < d.n_groups; gi++) h_flush(&d, &d.g[gi]);
            ph_stop(&pc, PH_OUT);
            ph_start(&pc);
            for (int gi = 0; gi < d.n_groups; gi++) slm_gptq_symmetrize(d.g[gi].H, d.g[gi].n);
            for (size_t i = 0; i < d.n; i++)
                if (d.s[i].layer == L && (rc = quantize_one(&d, &d.s[i], o, W, model_path, err))) goto out;
            ph_stop(&pc, PH_GPTQ);
            break;
        }
        if (!any) { /* nothing to calibrate here: the block as it is */
            ph_start(&pc);
            d.mode = MODE_DOWN;
            for (int c = 0; c < ct.n_chunks; c++) {
                float *r = R + (size_t)c * per;
                slm_ctx_set_layer_range(ctx, L, L + 1, r, r);
                if ((rc = calib_run_chunk(ctx, &ct, c, 0, err))) goto out;
            }
            ph_stop(&pc, PH_S5);
            continue;
        }
        /* the five stages; after each (but the last) the matrices whose input it ended at */
        static const int stage_from[5] = { SLM_BP_START, SLM_BP_START, SLM_BP_ATT, SLM_BP_FFN, SLM_BP_DOWN };
        static const int stage_to[5] = { SLM_BP_QKV, SLM_BP_FFN, SLM_BP_DOWN, SLM_BP_END, SLM_BP_END };
        const int need_r = L < last_layer;
        for (int st = 0; st < 5; st++) {
            const int mode = MODE_QKV + st, stop = st; /* IN_QKV .. IN_DOWN, -1 after the last */
            if (st == 4 && !need_r) break;
            ph_start(&pc);
            d.mode = mode;
            d.x_per = (size_t)ct.n_ctx * (size_t)(st == 1 || st == 2 ? hp->n_q : hp->n_ff);
            for (int c = 0; c < ct.n_chunks; c++) {
                float *r = R + (size_t)c * per;
                d.chunk = c;
                /* stages 3 and 5 write R: the residual after attention, then the block's output */
                slm_ctx_set_layer_range(ctx, L, L + 1, r, st == 2 || st == 4 ? r : NULL);
                slm_ctx_set_block_part(ctx, stage_from[st], stage_to[st],
                                       st == 2 || st == 4 ? d.X + (size_t)c * d.x_per : NULL);
                if ((rc = calib_run_chunk(ctx, &ct, c, 0, err))) goto out;
            }
            ph_stop(&pc, PH_S1 + st);
            if (d.fail) { rc = slm_err_set(err, SLM_EINTERNAL, "GPTQ: an unexpected batch in layer %d", L); goto out; }
            if (st == 4) break;
            ph_start(&pc);
            for (size_t i = 0; i < d.n; i++) {
                gt_state *s = &d.s[i];
                if (s->layer != L || input_of(s->w->name) != stop) continue;
                hgroup *hg = &d.g[s->group];
                if (s->leader) {
                    if (s->down) { /* every DOWN_EVERY-th token of all chunks (see DOWN_EVERY) */
                        const int64_t rows = (int64_t)ct.n_chunks * ct.n_ctx;
                        h_accumulate_ld(&d, hg, d.X, (rows + DOWN_EVERY - 1) / DOWN_EVERY, DOWN_EVERY * hg->n);
                    }
                    else h_flush(&d, hg);
                    slm_gptq_symmetrize(hg->H, hg->n);
                }
                if ((rc = quantize_one(&d, s, o, W, model_path, err))) goto out;
            }
            ph_stop(&pc, PH_GPTQ);
        }
        free_groups(&d);
        if (o->verbose && o->log) {
            char line[640];
            snprintf(line, sizeof line,
                    "GPTQ layer %d/%d done (%d chunks of %d tokens), %.1f s; so far wall/CPU s: "
                    "norm %.1f/%.1f, attention %.1f/%.1f, attn_output %.1f/%.1f, ffn %.1f/%.1f, ffn_down %.1f/%.1f, "
                    "GPTQ (with ffn_down's H) %.1f/%.1f, H in all %.1f/%.1f\n",
                    L, hp->n_layer, ct.n_chunks, ct.n_ctx, slm_pl_now() - t0, pc.wall[PH_S1], pc.cpu[PH_S1],
                    pc.wall[PH_S2], pc.cpu[PH_S2], pc.wall[PH_S3], pc.cpu[PH_S3], pc.wall[PH_S4], pc.cpu[PH_S4],
                    pc.wall[PH_S5], pc.cpu[PH_S5], pc.wall[PH_GPTQ], pc.cpu[PH_GPTQ], d.h_wall, d.h_cpu);
            o->log(o->log_user, line);
        }
    }
    if (o->verbose && o->log && last_layer >= 0) {
        char line[256];
        snprintf(line, sizeof line, "GPTQ done in %.1f s; embeddings + output.weight wall/CPU s: %.1f/%.1f\n",
                 slm_pl_now() - t0, pc.wall[PH_OUT], pc.cpu[PH_OUT]);
        o->log(o->log_user, line);
    }
    rc = SLM_OK;
out:
    free_groups(&d);
    free(d.s);
    free(d.X);
    free(W);
    free(R);
    calib_free(&ct);
    slm_ctx_free(ctx);
    slm_tokenizer_free(tok);
    slm_model_free(m);
    return rc;
}
