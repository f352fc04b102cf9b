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
 * Deterministic: one thread, fixed summation order. */
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
    int nl = 0;
    char name[96];
    for (;; nl++) {
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", nl);
        if (gguf_find_tensor(g, name) < 0) break;
    }
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
        const gguf_tensor *an, *wv, *wo, *fn, *wg, *wu, *wd;
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l); an = tensor(g, name);
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", l); wv = tensor(g, name);
        snprintf(name, sizeof name, "blk.%d.attn_output.weight", l); wo = tensor(g, name);
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l); fn = tensor(g, name);
        snprintf(name, sizeof name, "blk.%d.ffn_gate.weight", l); wg = tensor(g, name);
        snprintf(name, sizeof name, "blk.%d.ffn_up.weight", l); wu = tensor(g, name);
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l); wd = tensor(g, name);
        if (!an || !wv || !wo || !fn || !wg || !wu || !wd) goto out;
        const int64_t nvd = rows_of(wv), nod = wo->ne[0], nff = rows_of(wg);
        if (wv->ne[0] != d || rows_of(wo) != d || wg->ne[0] != d || wu->ne[0] != d || rows_of(wu) != nff ||
            wd->ne[0] != nff || rows_of(wd) != d || n_head <= 0 || n_head_kv <= 0 || nvd % n_head_kv ||
            nod != nvd / n_head_kv * n_head)
            goto out;
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
