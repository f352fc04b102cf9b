/* api/qfree.c — data-free importance for `slm quantize` without calibration data (issue 19, bar 2).
 *
 * The imatrix path weighs each input column j of a product by E[x_j^2] over calibration text.
 * Without text, those second moments are estimated from the weights alone, by pushing per-dimension
 * second moments through a llama-style block stack (independent Gaussian inputs, diagonal moments):
 *
 *   residual s[d]   starts at the mean over the vocabulary of token_embd[t][d]^2;
 *   attn input      xa[j] = g_attn[j]^2 s[j] / mean(s)            (RMSNorm; importance of q, k, v)
 *   v out           v[i]  = sum_j Wv[i][j]^2 xa[j]                (importance of attn_output, per head)
 *   residual        s[d] += sum_c Wo[d][c]^2 v[c]
 *   ffn input       xf[j] = g_ffn[j]^2 s[j] / mean(s)             (importance of gate and up)
 *   hidden          h[i]  = E[silu(a)^2 b^2], (a, b) = (gate_i . x, up_i . x) jointly Gaussian
 *                   (variances and covariance from the rows and xf; importance of ffn_down)
 *   residual        s[d] += sum_i Wd[d][i]^2 h[i]
 *   output          xo[j] = g_out[j]^2 s[j] / mean(s)             (importance of output.weight)
 *
 * (An output-side weight for token_embd's columns, measured for Q4_K_M / Q4_K_S, moved KLD by
 * noise only: not kept; docs/quantization.md.)
 *
 * O(weights) multiply-adds over v, attn_output, gate, up and down, no sampling, no text. Only
 * applied to the llama tensor layout (token_embd, blk.N.{attn_norm,attn_v,attn_output,ffn_norm,
 * ffn_gate,ffn_up,ffn_down}, output_norm); any other model gets no importance (unchanged bytes).
 * Deterministic: one thread, fixed summation order.
 *
 * The second half (slm_qfree_cov) makes the same walk with full d x d second moments: the H with
 * which the flag-free default GPTQ-quantizes q/k/v and gate/up (docs/quantization.md). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib.h"
#include "pipeline.h"
#include "qfree.h"

typedef struct {
    const gguf_file *g;
    float *row;
} ctx_t;

static const gguf_tensor *tensor(const gguf_file *g, const char *name)
{
    int64_t i = gguf_find_tensor(g, name);
    return i < 0 ? NULL : &g->tensors[i];
}

static int64_t rows_of(const gguf_tensor *t)
{
    int64_t r = 1;
    for (uint32_t d = 1; d < t->n_dims; d++) r *= t->ne[d];
    return r;
}

/* blocks blk.0 .. blk.N-1 with an attn_norm: N */
static int count_blocks(const gguf_file *g)
{
    char name[96];
    int nl = 0;
    for (;; nl++) {
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", nl);
        if (gguf_find_tensor(g, name) < 0) return nl;
    }
}

/* One llama block's tensors, checked against each other (d = n_embd): 0, or 1 (not that layout). */
typedef struct qblock {
    const gguf_tensor *an, *wv, *wo, *fn, *wg, *wu, *wd;
    int64_t nvd, nod, nff; /* v rows, attn_output columns, feed-forward width */
} qblock;

static int block_tensors(const gguf_file *g, int l, int64_t d, int64_t n_head, int64_t n_head_kv, qblock *b)
{
    char name[96];
#define QB_GET(f, nm) (snprintf(name, sizeof name, "blk.%d." nm ".weight", l), b->f = tensor(g, name))
    QB_GET(an, "attn_norm"); QB_GET(wv, "attn_v"); QB_GET(wo, "attn_output"); QB_GET(fn, "ffn_norm");
    QB_GET(wg, "ffn_gate"); QB_GET(wu, "ffn_up"); QB_GET(wd, "ffn_down");
#undef QB_GET
    if (!b->an || !b->wv || !b->wo || !b->fn || !b->wg || !b->wu || !b->wd) return 1;
    b->nvd = rows_of(b->wv), b->nod = b->wo->ne[0], b->nff = rows_of(b->wg);
    if (b->wv->ne[0] != d || rows_of(b->wo) != d || b->wg->ne[0] != d || b->wu->ne[0] != d ||
        rows_of(b->wu) != b->nff || b->wd->ne[0] != b->nff || rows_of(b->wd) != d || n_head <= 0 || n_head_kv <= 0 ||
        b->nvd % n_head_kv || b->nod != b->nvd / n_head_kv * n_head)
        return 1;
    return 0;
}

/* 1-D gain vector of length n, or -1 */
static int get_vec(const gguf_tensor *t, int64_t n, float *dst)
{
    if (!t || t->ne[0] != n || rows_of(t) != 1) return -1;
    return slm_pl_row_f32(t, 0, dst);
}

/* normalized input moments: g^2 s / mean(s) */
static void norm_moments(const float *gain, const double *s, int64_t n, float *out)
{
    double m = 0;
    for (int64_t j = 0; j < n; j++) m += s[j];
    m = m > 0 ? m / (double)n : 1;
    for (int64_t j = 0; j < n; j++) out[j] = (float)((double)gain[j] * gain[j] * s[j] / m);
}

/* y[i] = sum_j W[i][j]^2 x[j] for every row i of t (ne[0] == n) */
static int sq_matvec(const gguf_tensor *t, const float *x, float *row, double *y)
{
    const int64_t n = t->ne[0], nr = rows_of(t);
    for (int64_t r = 0; r < nr; r++) {
        if (slm_pl_row_f32(t, r, row)) return -1;
        float acc[8] = {0};
        int64_t j = 0;
        for (; j + 8 <= n; j += 8)
            for (int k = 0; k < 8; k++) acc[k] += row[j + k] * row[j + k] * x[j + k];
        double a = 0;
        for (int k = 0; k < 8; k++) a += acc[k];
        for (; j < n; j++) a += (double)row[j] * row[j] * x[j];
        y[r] = a;
    }
    return 0;
}

/* E[silu(a)^2] and E[silu(a)^2 a^2] for a ~ N(0, var): trapezoid on z in [-8, 8] (smooth
 * integrand under a Gaussian weight: the rule converges fast) */
#define QN 65
static void silu_moments(double var, double *m0, double *m2)
{
    const double sd = sqrt(var > 0 ? var : 0), h = 16.0 / (QN - 1);
    double s0 = 0, s2 = 0, wsum = 0;
    for (int k = 0; k < QN; k++) {
        const double z = -8 + h * k, w = exp(-0.5 * z * z);
        const double a = sd * z, si = a / (1 + exp(-a)), s = si * si;
        s0 += w * s;
        s2 += w * s * a * a;
        wsum += w;
    }
    *m0 = s0 / wsum;
    *m2 = s2 / wsum;
}

int slm_qfree_importance(const gguf_file *g, int64_t n_head, int64_t n_head_kv, unsigned mask, float **imp)
{
    const gguf_tensor *emb = tensor(g, "token_embd.weight"), *onorm = tensor(g, "output_norm.weight");
    if (!emb || !onorm || emb->n_dims != 2) return 1;
    const int64_t d = emb->ne[0], nv = emb->ne[1];
    const int nl = count_blocks(g);
    char name[96];
    if (nl == 0) return 1;
    int64_t wmax = d;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].ne[0] > wmax) wmax = g->tensors[i].ne[0];
    double *s = calloc((size_t)d, sizeof *s), *y = NULL;
    float *row = malloc((size_t)wmax * 4), *gain = malloc((size_t)d * 4), *xn = malloc((size_t)d * 4);
    float *row2 = malloc((size_t)wmax * 4);
    int rc = 1;
    if (!s || !row || !gain || !xn || !row2) { rc = -1; goto out; }
    /* residual moments from the embeddings: mean over the vocabulary */
    for (int64_t t = 0; t < nv; t++) {
        if (slm_pl_row_f32(emb, t, row)) goto out;
        for (int64_t j = 0; j < d; j++) s[j] += (double)row[j] * row[j];
    }
    for (int64_t j = 0; j < d; j++) s[j] /= (double)nv;

#define SET_IMP(tn, src, n)                                                                                  \
    do {                                                                                                     \
        int64_t ti_ = gguf_find_tensor(g, tn);                                                               \
        if (ti_ >= 0 && g->tensors[ti_].ne[0] == (n) && !imp[ti_]) {                                          \
            imp[ti_] = malloc((size_t)(n) * 4);                                                              \
            if (!imp[ti_]) { rc = -1; goto out; }                                                            \
            for (int64_t k_ = 0; k_ < (n); k_++) imp[ti_][k_] = (src)[k_] > 0 ? (float)(src)[k_] : 0.0f; \
        }                                                                                                    \
    } while (0)

    for (int l = 0; l < nl; l++) {
        qblock b;
        if (block_tensors(g, l, d, n_head, n_head_kv, &b)) goto out;
        const gguf_tensor *an = b.an, *wv = b.wv, *wo = b.wo, *fn = b.fn, *wg = b.wg, *wu = b.wu, *wd = b.wd;
        const int64_t nvd = b.nvd, nod = b.nod, nff = b.nff;
        if (get_vec(an, d, gain)) goto out;
        norm_moments(gain, s, d, xn);
        if (mask & SLM_QFREE_QKV) {
            snprintf(name, sizeof name, "blk.%d.attn_q.weight", l); SET_IMP(name, xn, d);
            snprintf(name, sizeof name, "blk.%d.attn_k.weight", l); SET_IMP(name, xn, d);
            snprintf(name, sizeof name, "blk.%d.attn_v.weight", l); SET_IMP(name, xn, d);
        }
        /* v moments, repeated per query head (GQA) as attn_output's input columns */
        int64_t big = nod > nff ? nod : nff;
        free(y);
        y = malloc((size_t)big * sizeof *y);
        float *vin = malloc((size_t)big * 4);
        if (!y || !vin) { free(vin); rc = -1; goto out; }
        if (sq_matvec(wv, xn, row, y)) { free(vin); goto out; }
        const int64_t hd = nvd / n_head_kv, gq = n_head / n_head_kv;
        for (int64_t h = 0; h < n_head; h++)
            for (int64_t k = 0; k < hd; k++) vin[h * hd + k] = (float)y[(h / gq) * hd + k];
        if (mask & SLM_QFREE_ATTN_OUT) { snprintf(name, sizeof name, "blk.%d.attn_output.weight", l); SET_IMP(name, vin, nod); }
        if (sq_matvec(wo, vin, row, y)) { free(vin); goto out; }
        for (int64_t j = 0; j < d; j++) s[j] += y[j];
        /* ffn */
        if (get_vec(fn, d, gain)) { free(vin); goto out; }
        norm_moments(gain, s, d, xn);
        if (mask & SLM_QFREE_GATE_UP) {
            snprintf(name, sizeof name, "blk.%d.ffn_gate.weight", l); SET_IMP(name, xn, d);
            snprintf(name, sizeof name, "blk.%d.ffn_up.weight", l); SET_IMP(name, xn, d);
        }
        for (int64_t i = 0; i < nff; i++) {
            if (slm_pl_row_f32(wg, i, row) || slm_pl_row_f32(wu, i, row2)) { free(vin); goto out; }
            float fa[8] = {0}, fb[8] = {0}, fc[8] = {0};
            int64_t j = 0;
            for (; j + 8 <= d; j += 8)
                for (int k = 0; k < 8; k++) {
                    const float ga = row[j + k] * xn[j + k];
                    fa[k] += ga * row[j + k];
                    fb[k] += row2[j + k] * row2[j + k] * xn[j + k];
                    fc[k] += ga * row2[j + k];
                }
            double va = 0, vb = 0, c = 0;
            for (int k = 0; k < 8; k++) { va += fa[k]; vb += fb[k]; c += fc[k]; }
            for (; j < d; j++) {
                va += (double)row[j] * row[j] * xn[j];
                vb += (double)row2[j] * row2[j] * xn[j];
                c += (double)row[j] * row2[j] * xn[j];
            }
            double m0, m2;
            silu_moments(va, &m0, &m2);
            /* E[silu(a)^2 b^2] = E[silu(a)^2 (beta^2 a^2 + vb - beta c)], beta = c / va */
            const double beta = va > 0 ? c / va : 0;
            vin[i] = (float)(beta * beta * m2 + (vb - beta * c) * m0);
        }
        if (mask & SLM_QFREE_DOWN) { snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l); SET_IMP(name, vin, nff); }
        if (sq_matvec(wd, vin, row, y)) { free(vin); goto out; }
        for (int64_t j = 0; j < d; j++) s[j] += y[j];
        free(vin);
    }
    if (get_vec(onorm, d, gain)) goto out;
    norm_moments(gain, s, d, xn);
    if (mask & SLM_QFREE_OUTPUT) SET_IMP("output.weight", xn, d);
    rc = 0;
out:
    if (rc)
        for (uint64_t i = 0; i < g->n_tensors; i++) { free(imp[i]); imp[i] = NULL; }
    free(s);
    free(y);
    free(row);
    free(row2);
    free(gain);
    free(xn);
    return rc;
}

/* ---- full second-moment estimate (H for GPTQ, issue 19 bar 2) --------------------------------------
 * The same walk as above with d x d matrices instead of diagonals:
 *   C0 = E^T diag(p) E                      (p: token weights, see slm_qfree_cov_opts.tokens)
 *   Cn = diag(g) C diag(g) / (tr C / d)     (RMSNorm; H of q, k, v, gate, up, output)
 *   Cv = Wv Cn Wv^T; attn_output's H: Cv per query head (GQA repeated), blocks of two different
 *        query heads times head_cross; residual C += attn_mix Wo Hao Wo^T
 *   z  = silu(gate x) up x: diagonal E[z^2] (closed form above), and with down_mean the
 *        means E[z_i] E[z_j] off the diagonal; ffn_down's H; residual C += Wd Hz Wd^T.
 * Dense float matrices (sgemm); for small models (cost O(layers d^2 (d + n_ff) + vocab d^2)). */
#define EMB_ROWS 4096
static int load_rows(const gguf_tensor *t, int64_t n, float *dst)
{
    const int64_t nr = rows_of(t);
    for (int64_t r = 0; r < nr; r++)
        if (slm_pl_row_f32(t, r, dst + (size_t)r * n)) return -1;
    return 0;
}

/* E[silu(a)] a-moment: E[silu(a) a] for a ~ N(0, var) */
static double silu_a(double var)
{
    const double sd = sqrt(var > 0 ? var : 0), h = 16.0 / (QN - 1);
    double s = 0, wsum = 0;
    for (int k = 0; k < QN; k++) {
        const double z = -8 + h * k, w = exp(-0.5 * z * z), a = sd * z;
        s += w * a / (1 + exp(-a)) * a;
        wsum += w;
    }
    return s / wsum;
}

static void norm_cov(const float *gain, const float *C, int64_t d, float *out)
{
    double tr = 0;
    for (int64_t j = 0; j < d; j++) tr += C[j * d + j];
    const double m = tr > 0 ? tr / (double)d : 1;
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < d; j++) out[i * d + j] = (float)((double)gain[i] * gain[j] * C[i * d + j] / m);
}

/* C += s * W X W^T: W rows x n (row-major), X n x n; tmp rows x n */
static void add_sandwich(float *C, const float *W, const float *X, int64_t rows, int64_t n, float s, float *tmp)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)n, (int)n, 1.0f, W, (int)n, X, (int)n, 0.0f,
                tmp, (int)n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)rows, (int)n, s, tmp, (int)n, W, (int)n, 1.0f,
                C, (int)rows);
}

static int set_h(const gguf_file *g, const char *name, const float *src, int64_t n, float **H)
{
    int64_t ti = gguf_find_tensor(g, name);
    if (ti < 0 || g->tensors[ti].ne[0] != n || H[ti]) return 0;
    H[ti] = malloc((size_t)n * n * 4);
    if (!H[ti]) return -1;
    memcpy(H[ti], src, (size_t)n * n * 4);
    return 0;
}

int slm_qfree_cov(const gguf_file *g, int64_t n_head, int64_t n_head_kv, unsigned mask, const slm_qfree_cov_opts *o,
                  float **H)
{
    const gguf_tensor *emb = tensor(g, "token_embd.weight"), *onorm = tensor(g, "output_norm.weight");
    if (!emb || !onorm || emb->n_dims != 2) return 1;
    const int64_t d = emb->ne[0], nv = emb->ne[1];
    const int nl = count_blocks(g);
    char name[96];
    if (nl == 0 || n_head <= 0 || n_head_kv <= 0 || (o->max_d > 0 && d > o->max_d)) return 1;
    int64_t wmax = d;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].ne[0] > wmax) wmax = g->tensors[i].ne[0];
    const size_t big = (size_t)wmax * (size_t)wmax, wsz = big > (size_t)EMB_ROWS * d ? big : (size_t)EMB_ROWS * d;
    float *C = malloc((size_t)d * d * 4), *Cn = malloc((size_t)d * d * 4), *W = malloc(wsz * 4), *W2 = NULL;
    float *T = malloc(big * 4), *X = NULL, *gain = malloc((size_t)d * 4), *p = malloc((size_t)nv * 4);
    int rc = 1;
    if (!C || !Cn || !W || !T || !gain || !p) { rc = -1; goto out; }
    /* token weights */
    {
        const int64_t kt = gguf_find_key(g, "tokenizer.ggml.token_type"), ks = gguf_find_key(g, "tokenizer.ggml.scores");
        double sum = 0;
        for (int64_t t = 0; t < nv; t++) {
            double w = 1;
            if (o->tokens >= 1 && kt >= 0 && (uint64_t)t < g->kv[kt].arr_n)
                w = gguf_arr_num(&g->kv[kt], (uint64_t)t) == 1 ? 1 : 0;
            if (o->tokens == 2 && ks >= 0 && w > 0) {
                /* rank among the merges: score -k for the k-th merge */
                double s = gguf_arr_num(&g->kv[ks], (uint64_t)t);
                w = 1.0 / (1.0 + (s < 0 ? -s : 0) + o->zipf_k);
            }
            p[t] = (float)w;
            sum += w;
        }
        if (sum <= 0) for (int64_t t = 0; t < nv; t++) p[t] = 1, sum = (double)nv;
        for (int64_t t = 0; t < nv; t++) p[t] = (float)(p[t] / sum);
    }
    /* C0 = E^T diag(p) E, EMB_ROWS tokens at a time */
    for (int64_t t0 = 0; t0 < nv; t0 += EMB_ROWS) {
        const int64_t nt = nv - t0 < EMB_ROWS ? nv - t0 : EMB_ROWS;
        for (int64_t t = 0; t < nt; t++) {
            if (slm_pl_row_f32(emb, t0 + t, W + (size_t)t * d)) goto out;
            const float sp = sqrtf(p[t0 + t]);
            for (int64_t j = 0; j < d; j++) W[t * d + j] *= sp;
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)d, (int)nt, 1.0f, W, (int)d, W, (int)d,
                    t0 ? 1.0f : 0.0f, C, (int)d);
    }

    for (int l = 0; l < nl; l++) {
        qblock b;
        if (block_tensors(g, l, d, n_head, n_head_kv, &b)) goto out;
        const gguf_tensor *an = b.an, *wv = b.wv, *wo = b.wo, *fn = b.fn, *wg = b.wg, *wu = b.wu, *wd = b.wd;
        const int64_t nvd = b.nvd, nod = b.nod, nff = b.nff;
        if (get_vec(an, d, gain)) goto out;
        norm_cov(gain, C, d, Cn);
        if (mask & SLM_QFREE_QKV) {
            const char *qkv[3] = { "attn_q", "attn_k", "attn_v" };
            for (int k = 0; k < 3; k++) {
                snprintf(name, sizeof name, "blk.%d.%s.weight", l, qkv[k]);
                if (set_h(g, name, Cn, d, H)) { rc = -1; goto out; }
            }
        }
        /* Cv = Wv Cn Wv^T, then per query head */
        float *Cv = calloc((size_t)nvd * nvd, 4), *Co = malloc((size_t)nod * nod * 4);
        if (!Cv || !Co) { free(Cv); free(Co); rc = -1; goto out; }
        if (load_rows(wv, d, W)) { free(Cv); free(Co); goto out; }
        add_sandwich(Cv, W, Cn, nvd, d, 1.0f, T);
        const int64_t hd = nvd / n_head_kv, gq = n_head / n_head_kv;
        for (int64_t i = 0; i < nod; i++)
            for (int64_t j = 0; j < nod; j++) {
                const int64_t hi = i / hd, hj = j / hd;
                const float f = hi == hj ? 1.0f : o->head_cross;
                Co[i * nod + j] = f * Cv[((hi / gq) * hd + i % hd) * nvd + (hj / gq) * hd + j % hd];
            }
        free(Cv);
        if (mask & SLM_QFREE_ATTN_OUT) {
            snprintf(name, sizeof name, "blk.%d.attn_output.weight", l);
            if (set_h(g, name, Co, nod, H)) { free(Co); rc = -1; goto out; }
        }
        if (load_rows(wo, nod, W)) { free(Co); goto out; }
        add_sandwich(C, W, Co, d, nod, o->attn_mix, T);
        free(Co);
        /* ffn */
        if (get_vec(fn, d, gain)) goto out;
        norm_cov(gain, C, d, Cn);
        if (mask & SLM_QFREE_GATE_UP) {
            snprintf(name, sizeof name, "blk.%d.ffn_gate.weight", l);
            if (set_h(g, name, Cn, d, H)) { rc = -1; goto out; }
            snprintf(name, sizeof name, "blk.%d.ffn_up.weight", l);
            if (set_h(g, name, Cn, d, H)) { rc = -1; goto out; }
        }
        W2 = malloc((size_t)nff * d * 4);
        float *Hz = calloc((size_t)nff * nff, 4), *mz = malloc((size_t)nff * 8);
        if (!W2 || !Hz || !mz) { free(Hz); free(mz); rc = -1; goto out; }
        if (load_rows(wg, d, W) || load_rows(wu, d, W2)) { free(Hz); free(mz); goto out; }
        /* T = Wg Cn, X rows: Wu Cn (into the second half of T) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nff, (int)d, (int)d, 1.0f, W, (int)d, Cn, (int)d,
                    0.0f, T, (int)d);
        X = malloc((size_t)nff * d * 4);
        if (!X) { free(Hz); free(mz); rc = -1; goto out; }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nff, (int)d, (int)d, 1.0f, W2, (int)d, Cn, (int)d,
                    0.0f, X, (int)d);
        double *m = (double *)mz;
        for (int64_t i = 0; i < nff; i++) {
            double va = 0, vb = 0, c = 0;
            for (int64_t j = 0; j < d; j++) {
                va += (double)T[i * d + j] * W[i * d + j];
                c += (double)T[i * d + j] * W2[i * d + j];
                vb += (double)X[i * d + j] * W2[i * d + j];
            }
            double m0, m2;
            silu_moments(va, &m0, &m2);
            const double beta = va > 0 ? c / va : 0;
            const double ez2 = beta * beta * m2 + (vb - beta * c) * m0;
            m[i] = o->down_mean ? beta * silu_a(va) : 0;
            Hz[i * nff + i] = (float)(ez2 - m[i] * m[i]);
        }
        for (int64_t i = 0; i < nff; i++)
            for (int64_t j = 0; j < nff; j++) Hz[i * nff + j] += (float)(m[i] * m[j]);
        free(X); X = NULL;
        free(W2); W2 = NULL;
        free(mz);
        if (mask & SLM_QFREE_DOWN) {
            snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
            if (set_h(g, name, Hz, nff, H)) { free(Hz); rc = -1; goto out; }
        }
        if (load_rows(wd, nff, W)) { free(Hz); goto out; }
        add_sandwich(C, W, Hz, d, nff, 1.0f, T);
        free(Hz);
    }
    if (get_vec(onorm, d, gain)) goto out;
    norm_cov(gain, C, d, Cn);
    if ((mask & SLM_QFREE_OUTPUT) && set_h(g, "output.weight", Cn, d, H)) { rc = -1; goto out; }
    rc = 0;
out:
    if (rc)
        for (uint64_t i = 0; i < g->n_tensors; i++) { free(H[i]); H[i] = NULL; }
    free(C); free(Cn); free(W); free(W2); free(T); free(X); free(gain); free(p);
    return rc;
}
