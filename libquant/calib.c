/* libquant/calib.c — calibration helpers: importance-matrix accumulation,
 * importance-weighted row quantization, and the level grid of a quantized
 * block (decode its scales, re-pack integer levels under fixed scales) that
 * GPTQ needs to round error-compensated values onto a block's grid.
 *
 * Block layouts follow ggml (ggml-common.h / quantize_row_*_ref), as every
 * other file of libquant does; the packers are checked by tests against the
 * quantizers' own bytes (decode -> re-pack -> identical dequantized values).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qimpl.h"
#include "iquants.h"
#include "iq1.h"

void slm_imatrix_accumulate(double *sum2, const float *x, int64_t n_tokens, int64_t n_in)
{
    /* per token in float (as llama-imatrix's accumulation of x*x), summed in double
     * so long calibration runs do not lose the small columns */
    for (int64_t t = 0; t < n_tokens; t++) {
        const float *r = x + t * n_in;
        for (int64_t c = 0; c < n_in; c++)
            sum2[c] += (double)(r[c] * r[c]);
    }
}

/* ---- importance-weighted quantization --------------------------------------- */

/* Per-element weights for one row of a k-quant (Q2_K..Q5_K): imp[j] * (rms + |x[j]|),
 * rms over the super-block: the activation statistic says which columns matter, the
 * second factor (the weighting libquant uses without an imatrix, llama.cpp's
 * av_x + |x| form) keeps large weights from being crushed. Chosen on the calibration
 * text (KLD, stories-llama256, Q3_K_M): 0.01158 against 0.01181 for llama.cpp's
 * imp * sqrt(sigma2 + x^2) and 0.01232 without imatrix. Legacy types, Q6_K and Q8_0
 * use imp alone (the sqrt term made Q4_0 worse: 0.00573 vs 0.00563). `imp_floor` is added
 * to every importance (see slm_quantize_rows_imatrix). */
static void row_weights(uint32_t type, const float *x, int64_t n, const float *imp, float imp_floor, float *w)
{
    const int blk = type == SLM_T_Q2_K || type == SLM_T_Q3_K || type == SLM_T_Q4_K || type == SLM_T_Q5_K ? QK_K : 0;
    if (blk == 0) {
        for (int64_t j = 0; j < n; j++) w[j] = (imp[j] > 0 ? imp[j] : 0) + imp_floor;
        return;
    }
    for (int64_t b = 0; b < n; b += blk) {
        const int64_t e = b + blk < n ? b + blk : n;
        double s = 0;
        for (int64_t j = b; j < e; j++) s += (double)x[j] * x[j];
        const float rms = sqrtf((float)(s / (double)(e - b)));
        for (int64_t j = b; j < e; j++) {
            const float q = (imp[j] > 0 ? imp[j] : 0) + imp_floor;
            w[j] = q * (rms + fabsf(x[j]));
        }
    }
}

/* GPTQ's scale search (calib_gptq.c): the importance as given */
void slm_calib_row_weights(uint32_t type, const float *x, int64_t n, const float *imp, float *w)
{
    row_weights(type, x, n, imp, 0.0f, w);
}

/* The imatrix path adds a floor of IMP_FLOOR x the mean importance of the row's columns,
 * so that a column the calibration text rarely excited still counts for something: the
 * text is a sample, and the weight is also used on text unlike it. Chosen on the
 * calibration text alone (imatrix from its first half, KLD of stories-llama256 on its
 * second half, -c 128), floor 0 / 0.05 / 0.1 / 0.2 / 0.5 / 1: Q4_K_S 0.004082 / 0.004022 /
 * 0.003968 / 0.004034 / 0.004080 / 0.004089, Q4_K_M 0.003854 / 0.003784 / 0.003779 / 0.003831
 * / 0.003863 / 0.003838; other types within +-1 % (Q2_K +1 %). */
#define IMP_FLOOR 0.1

size_t slm_quantize_rows_imatrix(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t ncols,
                                 const float *imp, float *scratch)
{
    const slm_qtraits *q = slm_qtraits_get(type);
    const size_t rb = slm_row_bytes(type, ncols);
    if (!q || !q->quantize_row || !rb) return 0;
    float imp_floor = 0;
    for (int64_t r = 0; r < nrows; r++) {
        const float *x = src + r * ncols;
        unsigned char *y = (unsigned char *)dst + (size_t)r * rb;
        if (imp && scratch && q->is_quant) {
            if (r == 0) {
                double m = 0;
                for (int64_t j = 0; j < ncols; j++) m += imp[j] > 0 && isfinite(imp[j]) ? imp[j] : 0;
                imp_floor = (float)(IMP_FLOOR * m / (double)ncols);
            }
            row_weights(type, x, ncols, imp, imp_floor, scratch);
            q->quantize_row(x, y, ncols, scratch);
        } else {
            q->quantize_row(x, y, ncols, imp);
        }
    }
    return (size_t)nrows * rb;
}

/* ---- level grids ------------------------------------------------------------------ */

int slm_qgrid_supported(uint32_t type)
{
    switch (type) {
    case SLM_T_Q4_0: case SLM_T_Q4_1: case SLM_T_Q5_0: case SLM_T_Q5_1: case SLM_T_Q8_0:
    case SLM_T_Q2_K: case SLM_T_Q3_K: case SLM_T_Q4_K: case SLM_T_Q5_K: case SLM_T_Q6_K:
    case SLM_T_IQ4_NL: case SLM_T_IQ4_XS: case SLM_T_TQ1_0: case SLM_T_TQ2_0: /* iquants.c */
    case SLM_T_IQ3_XXS: case SLM_T_IQ3_S:                                   /* iq3.c */
    case SLM_T_IQ1_S: case SLM_T_IQ1_M: /* iq1.c */
    case SLM_T_IQ2_XXS: case SLM_T_IQ2_XS: case SLM_T_IQ2_S: /* iq2.c */
        return 1;
    default:
        return 0;
    }
}

static int q3_scale(const uint8_t *s, int j)
{
    int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
    int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | hi << 4) - 32;
}

int slm_qgrid_decode(uint32_t type, const void *blk, float *a, float *b, int *zero, int *qmax)
{
    switch (type) {
    case SLM_T_Q4_0: case SLM_T_Q5_0: case SLM_T_Q8_0: {
        const float d = slm_h2f(*(const slm_half *)blk);
        for (int j = 0; j < 32; j++) { a[j] = d; b[j] = 0; }
        *zero = type == SLM_T_Q4_0 ? 8 : type == SLM_T_Q5_0 ? 16 : 127;
        *qmax = type == SLM_T_Q4_0 ? 15 : type == SLM_T_Q5_0 ? 31 : 254;
        return 32;
    }
    case SLM_T_Q4_1: case SLM_T_Q5_1: {
        const slm_half *h = blk;
        const float d = slm_h2f(h[0]), m = slm_h2f(h[1]);
        for (int j = 0; j < 32; j++) { a[j] = d; b[j] = m; }
        *zero = 0;
        *qmax = type == SLM_T_Q4_1 ? 15 : 31;
        return 32;
    }
    case SLM_T_Q2_K: {
        const block_q2_K *x = blk;
        const float d = slm_h2f(x->d), dm = slm_h2f(x->dmin);
        for (int j = 0; j < QK_K; j++) {
            const uint8_t s = x->scales[j / 16];
            a[j] = d * (s & 0xF);
            b[j] = -(dm * (s >> 4));
        }
        *zero = 0;
        *qmax = 3;
        return QK_K;
    }
    case SLM_T_Q3_K: {
        const block_q3_K *x = blk;
        const float d = slm_h2f(x->d);
        for (int j = 0; j < QK_K; j++) { a[j] = d * q3_scale(x->scales, j / 16); b[j] = 0; }
        *zero = 4;
        *qmax = 7;
        return QK_K;
    }
    case SLM_T_Q4_K: case SLM_T_Q5_K: {
        const slm_half *h = blk;
        const uint8_t *sc = (const uint8_t *)blk + 4;
        const float d = slm_h2f(h[0]), dm = slm_h2f(h[1]);
        for (int s = 0; s < 8; s++) {
            uint8_t ls, lm;
            slm_get_scale_min_k4(s, sc, &ls, &lm);
            for (int j = 32 * s; j < 32 * s + 32; j++) { a[j] = d * ls; b[j] = -(dm * lm); }
        }
        *zero = 0;
        *qmax = type == SLM_T_Q4_K ? 15 : 31;
        return QK_K;
    }
    case SLM_T_Q6_K: {
        const block_q6_K *x = blk;
        const float d = slm_h2f(x->d);
        for (int j = 0; j < QK_K; j++) { a[j] = d * x->scales[j / 16]; b[j] = 0; }
        *zero = 32;
        *qmax = 63;
        return QK_K;
    }
    default:
        if (slm_iq3_is_vector(type)) return slm_iq3_grid_decode(type, blk, a, b, zero, qmax);
        if (slm_iq1_is(type)) return slm_iq1_grid_decode(type, blk, a, b, zero, qmax);
        if (slm_iq2_is(type)) return slm_iq2_grid_decode(type, blk, a, b, zero, qmax);
        return slm_iq_grid_decode(type, blk, a, b, zero, qmax);
    }
}

int slm_qgrid_pack(uint32_t type, void *blk, const uint8_t *L)
{
    switch (type) {
    case SLM_T_Q4_0: case SLM_T_Q4_1: {
        uint8_t *qs = (uint8_t *)blk + (type == SLM_T_Q4_0 ? 2 : 4);
        for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((L[j] & 0xF) | (L[j + 16] & 0xF) << 4);
        return 0;
    }
    case SLM_T_Q5_0: case SLM_T_Q5_1: {
        uint8_t *p = (uint8_t *)blk + (type == SLM_T_Q5_0 ? 2 : 4);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            p[4 + j] = (uint8_t)((L[j] & 0xF) | (L[j + 16] & 0xF) << 4);
            qh |= (uint32_t)((L[j] >> 4) & 1) << j;
            qh |= (uint32_t)((L[j + 16] >> 4) & 1) << (j + 16);
        }
        memcpy(p, &qh, 4);
        return 0;
    }
    case SLM_T_Q8_0: {
        int8_t *qs = (int8_t *)((uint8_t *)blk + 2);
        for (int j = 0; j < 32; j++) qs[j] = (int8_t)((int)L[j] - 127);
        return 0;
    }
    case SLM_T_Q2_K: {
        block_q2_K *x = blk;
        for (int j = 0; j < QK_K; j += 128)
            for (int l = 0; l < 32; l++)
                x->qs[j / 4 + l] = (uint8_t)((L[j + l] & 3) | (L[j + l + 32] & 3) << 2 | (L[j + l + 64] & 3) << 4 |
                                             (L[j + l + 96] & 3) << 6);
        return 0;
    }
    case SLM_T_Q3_K: {
        block_q3_K *x = blk;
        uint8_t l2[QK_K];
        memset(x->hmask, 0, sizeof x->hmask);
        for (int j = 0; j < QK_K; j++) {
            l2[j] = L[j] & 7;
            if (l2[j] > 3) {
                x->hmask[j % 32] |= (uint8_t)(1u << (j / 32));
                l2[j] -= 4;
            }
        }
        for (int j = 0; j < QK_K; j += 128)
            for (int l = 0; l < 32; l++)
                x->qs[j / 4 + l] =
                    (uint8_t)(l2[j + l] | l2[j + l + 32] << 2 | l2[j + l + 64] << 4 | l2[j + l + 96] << 6);
        return 0;
    }
    case SLM_T_Q4_K: {
        block_q4_K *x = blk;
        uint8_t *q = x->qs;
        for (int j = 0; j < QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; l++) q[l] = (uint8_t)((L[j + l] & 0xF) | (L[j + l + 32] & 0xF) << 4);
        return 0;
    }
    case SLM_T_Q5_K: {
        block_q5_K *x = blk;
        uint8_t *ql = x->qs;
        memset(x->qh, 0, sizeof x->qh);
        uint8_t m1 = 1, m2 = 2;
        for (int n = 0; n < QK_K; n += 64, ql += 32, m1 <<= 2, m2 <<= 2) {
            for (int j = 0; j < 32; j++) {
                int l1 = L[n + j] & 31, l2 = L[n + j + 32] & 31;
                if (l1 > 15) { l1 -= 16; x->qh[j] |= m1; }
                if (l2 > 15) { l2 -= 16; x->qh[j] |= m2; }
                ql[j] = (uint8_t)(l1 | l2 << 4);
            }
        }
        return 0;
    }
    case SLM_T_Q6_K: {
        block_q6_K *x = blk;
        uint8_t *ql = x->ql, *qh = x->qh;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                const uint8_t q1 = L[j + l] & 63, q2 = L[j + l + 32] & 63, q3 = L[j + l + 64] & 63,
                              q4 = L[j + l + 96] & 63;
                ql[l] = (uint8_t)((q1 & 0xF) | (q3 & 0xF) << 4);
                ql[l + 32] = (uint8_t)((q2 & 0xF) | (q4 & 0xF) << 4);
                qh[l] = (uint8_t)((q1 >> 4) | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6);
            }
        }
        return 0;
    }
    default:
        if (slm_iq3_is_vector(type)) return slm_iq3_grid_pack(type, blk, L);
        if (slm_iq1_is(type)) return slm_iq1_grid_pack(type, blk, L);
        if (slm_iq2_is(type)) return slm_iq2_grid_pack(type, blk, L);
        return slm_iq_grid_pack(type, blk, L);
    }
}
