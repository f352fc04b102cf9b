/* libquant/iquants.c — the non-linear 4-bit types (IQ4_NL, IQ4_XS) and the ternary
 * types (TQ1_0, TQ2_0): quantizers, dequantizers, scalar vec_dot.
 *
 * Block layouts and the level table are ggml's (ggml-common.h); dequantize and the
 * scalar vec_dot compute what ggml's reference code computes for the same bytes.
 *
 * The IQ4 quantizer minimises the weighted squared error sum w * (x - s * v[L])^2 over
 * the scale s of each 32-weight group and the level indices L:
 *  - both signs of s (the level table is lopsided: -127 .. 113, so the sign decides
 *    which side holds the extreme weight), the largest weight sent to many points
 *    around each end of the table, each candidate refitted by least squares with its
 *    levels fixed, then Lloyd steps (re-assign, refit) while they help;
 *  - IQ4_NL: the scale rounded to fp16, its neighbouring halves tried with the levels
 *    re-assigned; IQ4_XS: several super-block scales d, and for each group the
 *    6-bit multiplier (ls - 32) at the nearest integer and its two neighbours, the
 *    combination of least error kept.
 * Weights: the importance (imp) as given; without imp, plain squared error. llama.cpp
 * multiplies the importance by sqrt(sigma2 + x^2) (sigma2 twice the block's mean square);
 * on the calibration text (imatrix from it, KLD on its first 150 chunks of 128,
 * stories-llama256, through slm_quantize_rows_imatrix's floor) imp alone gave IQ4_XS
 * 0.004465 / IQ4_NL 0.004273 against 0.004577 / 0.004469 for llama.cpp's form,
 * 0.004564 / 0.004427 for imp * (rms + |x|), 0.004565 / 0.004475 for imp * (sigma2 + x^2).
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "qimpl.h"
#include "iquants.h"

const int8_t slm_kvalues_iq4nl[16] = { -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113 };

#define GROUP_EPS 1e-15f

/* Index of the level nearest to v (ties to the lower one), by table: g_cell[f + 127] is
 * the nearest level of the integer f in [-127, 113]; levels are at least 10 apart, so
 * [f, f + 1) holds at most one midpoint (g_mid) and v past it takes the next level. */
static uint8_t g_cell[241];
static float g_mid[16];
static void nl_init(void)
{
    const int8_t *k = slm_kvalues_iq4nl;
    for (int i = 0; i < 15; i++) g_mid[i] = 0.5f * (float)(k[i] + k[i + 1]);
    g_mid[15] = INFINITY;
    for (int f = -127; f <= 113; f++) {
        int i = 0;
        while (i < 15 && (float)f > g_mid[i]) i++;
        g_cell[f + 127] = (uint8_t)i;
    }
}
static pthread_once_t g_nl_once = PTHREAD_ONCE_INIT;

static inline int nl_index(float v)
{
    if (!(v > -127.0f)) return 0; /* also NaN */
    if (v >= 113.0f) return 15;
    const int f = (int)floorf(v);
    int i = g_cell[f + 127];
    return v > g_mid[i] ? i + 1 : i;
}

/* weighted error of x ~ s * v[L] with L re-assigned for s; fills L (may be NULL) */
static double nl_err(int n, const float *x, const float *w, float s, uint8_t *L)
{
    double e = 0;
    const float is = s != 0 ? 1.0f / s : 0.0f;
    for (int j = 0; j < n; j++) {
        const int l = s != 0 ? nl_index(is * x[j]) : 8;
        if (L) L[j] = (uint8_t)l;
        const double r = (double)x[j] - (double)(s * (float)slm_kvalues_iq4nl[l]);
        e += (double)w[j] * r * r;
    }
    return e;
}

/* best scale of one group (n weights), before rounding; 0 for a negligible group */
static float nl_group(int n, const float *x, const float *w)
{
    float amax = 0, max = 0;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); max = x[j]; }
    if (!(amax >= GROUP_EPS) || !isfinite(amax)) return 0;
    double best = 0; /* sumqx^2 / sumq2: the error removed by the scale */
    float bd = 0;
    for (int sgn = 0; sgn < 2; sgn++) {
        for (int t = -12; t <= 12; t++) {
            const float target = (sgn ? 113.0f : -127.0f) + 0.75f * (float)t;
            const float id = target / max;
            double sqx = 0, sq2 = 0;
            for (int j = 0; j < n; j++) {
                const float q = slm_kvalues_iq4nl[nl_index(id * x[j])];
                sqx += (double)w[j] * q * x[j];
                sq2 += (double)w[j] * q * q;
            }
            if (sq2 > 0 && sqx * sqx > best * sq2) { best = sqx * sqx / sq2; bd = (float)(sqx / sq2); }
        }
    }
    /* Lloyd: re-assign the levels for the scale, refit the scale */
    for (int it = 0; it < 4 && bd != 0; it++) {
        const float id = 1.0f / bd;
        double sqx = 0, sq2 = 0;
        for (int j = 0; j < n; j++) {
            const float q = slm_kvalues_iq4nl[nl_index(id * x[j])];
            sqx += (double)w[j] * q * x[j];
            sq2 += (double)w[j] * q * q;
        }
        if (!(sq2 > 0) || !(sqx * sqx > best * sq2 * (1 + 1e-7))) break;
        best = sqx * sqx / sq2;
        bd = (float)(sqx / sq2);
    }
    return bd;
}

/* per-element weights of a block of n (imp: offset to the block, or NULL) */
static void iq_weights(int n, const float *x, const float *imp, float *w)
{
    if (!imp) {
        for (int j = 0; j < n; j++) w[j] = 1.0f;
        return;
    }
    double sw = 0;
    for (int j = 0; j < n; j++) {
        const float q = imp[j] > 0 && isfinite(imp[j]) ? imp[j] : 0.0f;
        w[j] = q;
        sw += w[j];
    }
    if (!(sw > 0))
        for (int j = 0; j < n; j++) w[j] = 1.0f;
}

static void pack_nibbles(const uint8_t *L, uint8_t *qs)
{
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
}

/* ---------------- IQ4_NL ---------------- */

void slm_quantize_iq4_nl(const float *x, void *vy, int64_t n, const float *imp)
{
    pthread_once(&g_nl_once, nl_init);
    block_iq4_nl *y = vy;
    for (int64_t b = 0; b < n / QK4_NL; b++) {
        const float *xb = x + b * QK4_NL;
        float w[QK4_NL];
        uint8_t L[QK4_NL], L2[QK4_NL];
        iq_weights(QK4_NL, xb, imp ? imp + b * QK4_NL : NULL, w);
        const float s = nl_group(QK4_NL, xb, w);
        float dh = slm_half_round(s);
        double best = nl_err(QK4_NL, xb, w, dh, L);
        if (dh != 0) {
            const uint16_t hb = slm_fp32_to_fp16(dh);
            for (int k = -2; k <= 2; k++) {
                const uint16_t h2 = (uint16_t)(hb + k);
                if (!k || (h2 & 0x7c00) == 0x7c00 || ((h2 ^ hb) & 0x8000)) continue;
                const double e = nl_err(QK4_NL, xb, w, slm_h2f(h2), L2);
                if (e < best) { best = e; dh = slm_h2f(h2); memcpy(L, L2, sizeof L); }
            }
        }
        y[b].d = slm_fp32_to_fp16(dh);
        pack_nibbles(L, y[b].qs);
    }
}

void slm_dequantize_iq4_nl(const void *vx, float *y, int64_t n)
{
    const block_iq4_nl *x = vx;
    for (int64_t b = 0; b < n / QK4_NL; b++) {
        const float d = slm_h2f(x[b].d);
        for (int j = 0; j < 16; j++) {
            y[j] = d * slm_kvalues_iq4nl[x[b].qs[j] & 0xf];
            y[j + 16] = d * slm_kvalues_iq4nl[x[b].qs[j] >> 4];
        }
        y += QK4_NL;
    }
}

void slm_vec_dot_iq4_nl(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_iq4_nl *x = vx;
    const block_q8_0 *y = vy;
    float sumf = 0;
    for (int64_t b = 0; b < n / QK4_NL; b++) {
        const float d = slm_h2f(y[b].d) * slm_h2f(x[b].d);
        int s1 = 0, s2 = 0;
        for (int j = 0; j < 16; j++) {
            s1 += y[b].qs[j] * slm_kvalues_iq4nl[x[b].qs[j] & 0xf];
            s2 += y[b].qs[j + 16] * slm_kvalues_iq4nl[x[b].qs[j] >> 4];
        }
        sumf += d * (float)(s1 + s2);
    }
    *s = sumf;
}

/* ---------------- IQ4_XS ---------------- */

/* error of sub-block ib at multiplier l (scale dh * l), levels into L */
static double xs_sub_err(const float *x, const float *w, float dh, int l, uint8_t *L)
{
    return nl_err(32, x, w, dh * (float)l, L);
}

void slm_quantize_iq4_xs(const float *x, void *vy, int64_t n, const float *imp)
{
    pthread_once(&g_nl_once, nl_init);
    block_iq4_xs *y = vy;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *xb = x + b * QK_K;
        float w[QK_K], sc[8];
        uint8_t L[QK_K], Lt[32];
        int ls[8];
        iq_weights(QK_K, xb, imp ? imp + b * QK_K : NULL, w);
        float amax = 0, smax = 0;
        for (int ib = 0; ib < 8; ib++) {
            sc[ib] = nl_group(32, xb + 32 * ib, w + 32 * ib);
            if (fabsf(sc[ib]) > amax) { amax = fabsf(sc[ib]); smax = sc[ib]; }
        }
        memset(&y[b], 0, sizeof y[b]);
        if (!(amax > 0)) {
            /* every group negligible: d = 0, multipliers 0 (ls = 32) */
            for (int ib = 0; ib < 8; ib++) ls[ib] = 32;
            memset(L, 8, sizeof L);
        } else {
            /* super-block scale candidates: the largest group scale onto -32 (llama.cpp's
             * choice) or +31, and points a little inside */
            const float cand[6] = { -smax / 32.f, -smax / 31.5f, -smax / 31.f, smax / 31.f, smax / 30.5f, -smax / 30.5f };
            double best = INFINITY;
            float bestd = 0;
            for (int c = 0; c < 6; c++) {
                const float dh = slm_half_round(cand[c]);
                if (dh == 0) continue;
                double tot = 0;
                int lsc[8];
                uint8_t Lc[QK_K];
                for (int ib = 0; ib < 8 && tot < best; ib++) {
                    const float *xs = xb + 32 * ib, *ws = w + 32 * ib;
                    const int l0 = slm_qclamp(sc[ib] / dh, -32, 31);
                    double be = INFINITY;
                    for (int l = l0 - 1; l <= l0 + 1; l++) {
                        if (l < -32 || l > 31) continue;
                        const double e = xs_sub_err(xs, ws, dh, l, Lt);
                        if (e < be) { be = e; lsc[ib] = l; memcpy(Lc + 32 * ib, Lt, 32); }
                    }
                    tot += be;
                }
                if (tot < best) {
                    best = tot;
                    bestd = dh;
                    for (int ib = 0; ib < 8; ib++) ls[ib] = lsc[ib] + 32;
                    memcpy(L, Lc, sizeof L);
                }
            }
            if (bestd == 0) { /* every candidate rounded to zero */
                for (int ib = 0; ib < 8; ib++) ls[ib] = 32;
                memset(L, 8, sizeof L);
            }
            y[b].d = slm_fp32_to_fp16(bestd);
        }
        for (int ib = 0; ib < 8; ib++) {
            y[b].scales_l[ib / 2] |= (uint8_t)((ls[ib] & 0xf) << 4 * (ib % 2));
            y[b].scales_h |= (uint16_t)((ls[ib] >> 4) << 2 * ib);
            pack_nibbles(L + 32 * ib, y[b].qs + 16 * ib);
        }
    }
}

void slm_dequantize_iq4_xs(const void *vx, float *y, int64_t n)
{
    const block_iq4_xs *x = vx;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = slm_h2f(x[b].d);
        const uint8_t *qs = x[b].qs;
        for (int ib = 0; ib < 8; ib++) {
            const float dl = d * (float)(slm_iq4xs_ls(&x[b], ib) - 32);
            for (int j = 0; j < 16; j++) {
                y[j] = dl * slm_kvalues_iq4nl[qs[j] & 0xf];
                y[j + 16] = dl * slm_kvalues_iq4nl[qs[j] >> 4];
            }
            y += 32;
            qs += 16;
        }
    }
}

void slm_vec_dot_iq4_xs(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_iq4_xs *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d4d8 = slm_h2f(x[b].d) * y[b].d;
        const uint8_t *qs = x[b].qs;
        const int8_t *q8 = y[b].qs;
        for (int ib = 0; ib < 8; ib++) {
            const float dl = d4d8 * (float)(slm_iq4xs_ls(&x[b], ib) - 32);
            int s1 = 0, s2 = 0;
            for (int j = 0; j < 16; j++) {
                s1 += q8[j] * slm_kvalues_iq4nl[qs[j] & 0xf];
                s2 += q8[j + 16] * slm_kvalues_iq4nl[qs[j] >> 4];
            }
            sumf += dl * (float)(s1 + s2);
            qs += 16;
            q8 += 32;
        }
    }
    *s = sumf;
}

/* ---------------- ternary: TQ1_0, TQ2_0 ----------------
 * Levels T in {0, 1, 2} meaning -1, 0, +1 times d. The quantizer picks d exactly:
 * for levels {-d, 0, d} the best set of nonzero weights is a top-k of |x| (sorted),
 * and for it d = sum w|x| / sum w; the k of least error wins, then d is rounded to
 * fp16 (its neighbouring halves tried) with the levels re-assigned. A ternary-trained
 * block (values -a, 0, a) comes back exactly. */

static int cmp_abs_desc(const void *pa, const void *pb)
{
    const float a = *(const float *)pa, b = *(const float *)pb;
    return a < b ? 1 : a > b ? -1 : 0;
}

static double tern_err(const float *x, const float *w, float d, uint8_t *T)
{
    double e = 0;
    for (int j = 0; j < QK_K; j++) {
        int t = 1;
        if (d > 0) {
            const float v = x[j] / d;
            t = v > 0.5f ? 2 : v < -0.5f ? 0 : 1;
        }
        if (T) T[j] = (uint8_t)t;
        const double r = (double)x[j] - (double)(d * (float)(t - 1));
        e += (double)w[j] * r * r;
    }
    return e;
}

/* one super-block: scale (fp16 bits) and levels */
static uint16_t tern_block(const float *x, const float *imp, uint8_t *T)
{
    float w[QK_K];
    if (imp) {
        double sw = 0;
        for (int j = 0; j < QK_K; j++) { w[j] = imp[j] > 0 && isfinite(imp[j]) ? imp[j] : 0; sw += w[j]; }
        if (!(sw > 0)) for (int j = 0; j < QK_K; j++) w[j] = 1;
    } else {
        for (int j = 0; j < QK_K; j++) w[j] = 1;
    }
    /* (|x|, w) pairs sorted by |x| descending */
    float pr[QK_K][2];
    for (int j = 0; j < QK_K; j++) { pr[j][0] = fabsf(x[j]); pr[j][1] = w[j]; }
    qsort(pr, QK_K, sizeof pr[0], cmp_abs_desc);
    if (!(pr[0][0] >= GROUP_EPS) || !isfinite(pr[0][0])) {
        memset(T, 1, QK_K);
        return 0;
    }
    double sa = 0, sw = 0, best = -1;
    float d = 0;
    for (int k = 0; k < QK_K; k++) {
        sa += (double)pr[k][1] * pr[k][0];
        sw += pr[k][1];
        if (sw > 0 && sa * sa / sw > best) { best = sa * sa / sw; d = (float)(sa / sw); }
    }
    float dh = slm_half_round(d);
    double be = tern_err(x, w, dh, T);
    const uint16_t hb = slm_fp32_to_fp16(dh);
    uint8_t T2[QK_K];
    for (int k = -2; k <= 2; k++) {
        const uint16_t h2 = (uint16_t)(hb + k);
        if (!k || (h2 & 0x7c00) == 0x7c00 || (h2 & 0x8000)) continue;
        const double e = tern_err(x, w, slm_h2f(h2), T2);
        if (e < be) { be = e; dh = slm_h2f(h2); memcpy(T, T2, QK_K); }
    }
    return slm_fp32_to_fp16(dh);
}

/* TQ2_0: element 128 * h + 32 * l + k is bits 2l of qs[32 * h + k] */
void slm_quantize_tq2_0(const float *x, void *vy, int64_t n, const float *imp)
{
    block_tq2_0 *y = vy;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t T[QK_K];
        y[b].d = tern_block(x + b * QK_K, imp ? imp + b * QK_K : NULL, T);
        memset(y[b].qs, 0, sizeof y[b].qs);
        for (int e = 0; e < QK_K; e++) y[b].qs[32 * (e / 128) + e % 32] |= (uint8_t)(T[e] << 2 * ((e % 128) / 32));
    }
}

static void tq2_levels(const block_tq2_0 *x, int8_t *v)
{
    for (int e = 0; e < QK_K; e++) v[e] = (int8_t)(((x->qs[32 * (e / 128) + e % 32] >> 2 * ((e % 128) / 32)) & 3) - 1);
}

void slm_dequantize_tq2_0(const void *vx, float *y, int64_t n)
{
    const block_tq2_0 *x = vx;
    int8_t v[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = slm_h2f(x[b].d);
        tq2_levels(&x[b], v);
        for (int e = 0; e < QK_K; e++) y[b * QK_K + e] = (float)v[e] * d;
    }
}

void slm_vec_dot_tq2_0(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_tq2_0 *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    int8_t v[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++) {
        tq2_levels(&x[b], v);
        int32_t sumi = 0;
        for (int e = 0; e < QK_K; e++) sumi += y[b].qs[e] * v[e];
        sumf += (float)sumi * (y[b].d * slm_h2f(x[b].d));
    }
    *s = sumf;
}

/* TQ1_0: 5 trits per byte, the first the most significant base-3 digit, the byte
 * ceil(q * 256 / 243); trit n of byte b is ((uint8_t)(b * 3^n) * 3) >> 8. Elements
 * 0..159: trit n of qs[m] (m < 32) is element 32n + m; 160..239: trit n of qs[32 + m]
 * (m < 16) is 160 + 16n + m; 240..255: trit n (n < 4) of qh[j] is 240 + 4n + j. */
static const uint8_t POW3[6] = { 1, 3, 9, 27, 81, 243 };

static uint8_t trits_byte(const uint8_t *t, int cnt)
{
    unsigned q = 0;
    for (int i = 0; i < cnt; i++) q = q * 3 + t[i];
    for (int i = cnt; i < 5; i++) q *= 3;
    return (uint8_t)((q * 256 + 242) / 243);
}

static inline int trit_of(uint8_t byte, int n)
{
    const uint8_t q = (uint8_t)(byte * POW3[n]);
    return ((uint16_t)q * 3) >> 8;
}

void slm_quantize_tq1_0(const float *x, void *vy, int64_t n, const float *imp)
{
    block_tq1_0 *y = vy;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint8_t T[QK_K], t[5];
        y[b].d = tern_block(x + b * QK_K, imp ? imp + b * QK_K : NULL, T);
        for (int m = 0; m < 32; m++) {
            for (int k = 0; k < 5; k++) t[k] = T[32 * k + m];
            y[b].qs[m] = trits_byte(t, 5);
        }
        for (int m = 0; m < 16; m++) {
            for (int k = 0; k < 5; k++) t[k] = T[160 + 16 * k + m];
            y[b].qs[32 + m] = trits_byte(t, 5);
        }
        for (int j = 0; j < 4; j++) {
            for (int k = 0; k < 4; k++) t[k] = T[240 + 4 * k + j];
            y[b].qh[j] = trits_byte(t, 4);
        }
    }
}

static void tq1_levels(const block_tq1_0 *x, int8_t *v)
{
    for (int k = 0; k < 5; k++)
        for (int m = 0; m < 32; m++) v[32 * k + m] = (int8_t)(trit_of(x->qs[m], k) - 1);
    for (int k = 0; k < 5; k++)
        for (int m = 0; m < 16; m++) v[160 + 16 * k + m] = (int8_t)(trit_of(x->qs[32 + m], k) - 1);
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 4; j++) v[240 + 4 * k + j] = (int8_t)(trit_of(x->qh[j], k) - 1);
}

void slm_dequantize_tq1_0(const void *vx, float *y, int64_t n)
{
    const block_tq1_0 *x = vx;
    int8_t v[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = slm_h2f(x[b].d);
        tq1_levels(&x[b], v);
        for (int e = 0; e < QK_K; e++) y[b * QK_K + e] = (float)v[e] * d;
    }
}

void slm_vec_dot_tq1_0(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_tq1_0 *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    int8_t v[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++) {
        tq1_levels(&x[b], v);
        int sum = 0;
        for (int e = 0; e < QK_K; e++) sum += v[e] * y[b].qs[e];
        sumf += (float)sum * (slm_h2f(x[b].d) * y[b].d);
    }
    *s = sumf;
}

/* ---------------- level grids for GPTQ (calib.c) ----------------
 * Element j of a block dequantizes to a[j] * levels[L] (IQ4: the 16 non-linear levels;
 * ternary: a[j] * (L - 1)). */
int slm_iq_grid_decode(uint32_t type, const void *blk, float *a, float *b, int *zero, int *qmax)
{
    switch (type) {
    case SLM_T_IQ4_NL: {
        const float d = slm_h2f(((const block_iq4_nl *)blk)->d);
        for (int j = 0; j < QK4_NL; j++) { a[j] = d; b[j] = 0; }
        *zero = 0; *qmax = 15;
        return QK4_NL;
    }
    case SLM_T_IQ4_XS: {
        const block_iq4_xs *x = blk;
        const float d = slm_h2f(x->d);
        for (int j = 0; j < QK_K; j++) { a[j] = d * (float)(slm_iq4xs_ls(x, j / 32) - 32); b[j] = 0; }
        *zero = 0; *qmax = 15;
        return QK_K;
    }
    case SLM_T_TQ1_0: case SLM_T_TQ2_0: {
        const float d = slm_h2f(type == SLM_T_TQ1_0 ? ((const block_tq1_0 *)blk)->d : ((const block_tq2_0 *)blk)->d);
        for (int j = 0; j < QK_K; j++) { a[j] = d; b[j] = 0; }
        *zero = 1; *qmax = 2;
        return QK_K;
    }
    default:
        return 0;
    }
}

int slm_iq_grid_pack(uint32_t type, void *blk, const uint8_t *L)
{
    switch (type) {
    case SLM_T_IQ4_NL:
        pack_nibbles(L, ((block_iq4_nl *)blk)->qs);
        return 0;
    case SLM_T_IQ4_XS:
        for (int ib = 0; ib < 8; ib++) pack_nibbles(L + 32 * ib, ((block_iq4_xs *)blk)->qs + 16 * ib);
        return 0;
    case SLM_T_TQ2_0: {
        block_tq2_0 *y = blk;
        memset(y->qs, 0, sizeof y->qs);
        for (int e = 0; e < QK_K; e++) y->qs[32 * (e / 128) + e % 32] |= (uint8_t)((L[e] & 3) << 2 * ((e % 128) / 32));
        return 0;
    }
    case SLM_T_TQ1_0: {
        block_tq1_0 *y = blk;
        uint8_t t[5];
        for (int m = 0; m < 32; m++) {
            for (int k = 0; k < 5; k++) t[k] = L[32 * k + m] % 3;
            y->qs[m] = trits_byte(t, 5);
        }
        for (int m = 0; m < 16; m++) {
            for (int k = 0; k < 5; k++) t[k] = L[160 + 16 * k + m] % 3;
            y->qs[32 + m] = trits_byte(t, 5);
        }
        for (int j = 0; j < 4; j++) {
            for (int k = 0; k < 4; k++) t[k] = L[240 + 4 * k + j] % 3;
            y->qh[j] = trits_byte(t, 4);
        }
        return 0;
    }
    default:
        return -1;
    }
}

const int8_t *slm_qgrid_levels(uint32_t type, int *nlevels)
{
    if (type == SLM_T_IQ4_NL || type == SLM_T_IQ4_XS) {
        if (nlevels) *nlevels = 16;
        return slm_kvalues_iq4nl;
    }
    return NULL;
}

int slm_qgrid_nearest(const int8_t *levels, int nlevels, float v)
{
    (void)levels; (void)nlevels; /* the IQ4 table: 16 levels */
    pthread_once(&g_nl_once, nl_init);
    return nl_index(v);
}
