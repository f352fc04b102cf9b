/* libquant/iq1.c — IQ1_S and IQ1_M: quantizers, dequantizers, scalar vec_dot (x Q8_K).
 *
 * Layouts (iq1.h) and the grid (iq1_grids.c) are ggml's; dequantize and vec_dot compute
 * what ggml's reference code computes for the same bytes.
 *
 * Quantizer (ours). Every group of 8 weights takes one grid point g (8 values in {-1, 0, 1})
 * at value s * (g + delta), delta = +-1/8, s = d * (2 l + 1). For a fixed s and delta the
 * weighted error is a sum of per-element terms, so the best grid point is exact and cheap:
 * the costs of the 81 settings of elements 0..3 and of elements 4..7 are tabulated and every
 * grid point is the sum of one entry of each (2048 additions; first the per-element best is
 * tried, which is on the grid in most groups). Per scale unit (IQ1_S: 32 weights, one delta;
 * IQ1_M: 16 weights, a delta per 8) a first scale comes from the best unconstrained 3-level
 * fit (weights sorted, every split into three runs tried with prefix sums), then grid search
 * and a least-squares refit of s alternate. The super-block scale d is chosen among
 * candidates max(s) / m by the error of the odd multipliers 2 l + 1 nearest to each unit's
 * fit, then the grid points are searched again at the final scales (both deltas) and d is
 * refitted by least squares (kept when it lowers the error). Weights: the importance vector
 * (`--imatrix`; llama-quantize requires one for IQ1_S / IQ1_M, and so does `slm quantize`);
 * without one, every weight counts the same. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "qimpl.h"
#include "iq1.h"

/* ---------------- grid halves: code of elements 0..3 and 4..7 of each grid point ---------------- */

/* the grid points by their code of elements 0..3 ("lo", 0..80): the points with lo = c are
 * g_by_lo[g_lo_start[c] .. g_lo_start[c + 1]), each with its code of elements 4..7 */
static uint16_t g_lo_start[82];
static struct { uint8_t hi; uint16_t g; } g_by_lo[IQ1_NGRID];
static pthread_once_t g_half_once = PTHREAD_ONCE_INIT;

static void halves_init(void)
{
    const uint64_t *grid = slm_iq1s_grid_get();
    int count[81] = {0}, lo_of[IQ1_NGRID], hi_of[IQ1_NGRID];
    for (int g = 0; g < IQ1_NGRID; g++) {
        int8_t t[8];
        memcpy(t, &grid[g], 8);
        int lo = 0, hi = 0;
        for (int j = 3; j >= 0; j--) lo = lo * 3 + t[j] + 1;
        for (int j = 7; j >= 4; j--) hi = hi * 3 + t[j] + 1;
        lo_of[g] = lo, hi_of[g] = hi;
        count[lo]++;
    }
    g_lo_start[0] = 0;
    for (int c = 0; c < 81; c++) g_lo_start[c + 1] = (uint16_t)(g_lo_start[c] + count[c]);
    int fill[81];
    for (int c = 0; c < 81; c++) fill[c] = g_lo_start[c];
    for (int g = 0; g < IQ1_NGRID; g++) { /* in increasing g within each list */
        const int k = fill[lo_of[g]]++;
        g_by_lo[k].hi = (uint8_t)hi_of[g];
        g_by_lo[k].g = (uint16_t)g;
    }
}

static inline const int8_t *grid_at(const uint64_t *grid, int g) { return (const int8_t *)&grid[g]; }

/* the grid point minimising sum w (x - s (g + delta))^2 over 8 elements (the lowest index
 * among equal errors); its error in *err. The error is A[lo] + B[hi] with A, B the costs
 * of the halves: the list of the cheapest lo first, then only the lists whose A[lo] plus the
 * cheapest B can still win (exact: every skipped point costs at least that). */
static int grid_best(const float *x, const float *w, float s, float delta, float *err)
{
    float c[8][3];
    int8_t t[8];
    for (int j = 0; j < 8; j++) {
        int bt = 0;
        for (int k = 0; k < 3; k++) {
            const float e = x[j] - s * ((float)(k - 1) + delta);
            c[j][k] = w[j] * e * e;
            if (c[j][k] < c[j][bt]) bt = k;
        }
        t[j] = (int8_t)(bt - 1);
    }
    const int gi = slm_iq1s_grid_index(t);
    if (gi >= 0) {
        float e = 0;
        for (int j = 0; j < 8; j++) e += c[j][t[j] + 1];
        *err = e;
        return gi;
    }
    float A[81], B[81], minB = INFINITY;
    int lo0 = 0;
    for (int a = 0; a < 81; a++) {
        const int d0 = a % 3, d1 = a / 3 % 3, d2 = a / 9 % 3, d3 = a / 27;
        A[a] = (c[0][d0] + c[1][d1]) + (c[2][d2] + c[3][d3]);
        B[a] = (c[4][d0] + c[5][d1]) + (c[6][d2] + c[7][d3]);
        if (B[a] < minB) minB = B[a];
        if (A[a] < A[lo0]) lo0 = a;
    }
    int best = -1;
    float be = INFINITY;
    for (int pass = 0; pass < 2; pass++)
        for (int lo = pass ? 0 : lo0; lo < (pass ? 81 : lo0 + 1); lo++) {
            if (pass && (lo == lo0 || !(A[lo] + minB <= be))) continue;
            for (int k = g_lo_start[lo]; k < g_lo_start[lo + 1]; k++) {
                const float e = A[lo] + B[g_by_lo[k].hi];
                if (e < be || (e == be && g_by_lo[k].g < best)) be = e, best = g_by_lo[k].g;
            }
        }
    *err = be;
    return best;
}

/* sums of one group at its grid point: bx = sum w x (g + delta), bc = sum w (g + delta)^2 */
static void group_sums(const uint64_t *grid, const float *x, const float *w, int g, float delta, double *bx, double *bc)
{
    const int8_t *t = grid_at(grid, g);
    for (int j = 0; j < 8; j++) {
        const double v = (double)t[j] + delta;
        *bx += (double)w[j] * x[j] * v;
        *bc += (double)w[j] * v * v;
    }
}

/* the best unconstrained fit of n (16 or 32) values to s * {-1 + delta, delta, 1 + delta}
 * with s > 0: the scale (0 if none fits) */
static float split_scale(int n, const float *x, const float *w, float delta)
{
    int idx[32];
    for (int i = 0; i < n; i++) idx[i] = i;
    for (int i = 1; i < n; i++) { /* insertion sort by x (n <= 32) */
        const int v = idx[i];
        int j = i - 1;
        while (j >= 0 && x[idx[j]] > x[v]) idx[j + 1] = idx[j], j--;
        idx[j + 1] = v;
    }
    double W[33], X[33];
    W[0] = X[0] = 0;
    for (int i = 0; i < n; i++) {
        W[i + 1] = W[i] + w[idx[i]];
        X[i + 1] = X[i] + (double)w[idx[i]] * x[idx[i]];
    }
    const double l0 = -1.0 + delta, l1 = delta, l2 = 1.0 + delta;
    double best = 0, bs = 0;
    for (int i = 0; i <= n; i++)
        for (int j = i; j <= n; j++) {
            const double sxl = l0 * X[i] + l1 * (X[j] - X[i]) + l2 * (X[n] - X[j]);
            const double sll = l0 * l0 * W[i] + l1 * l1 * (W[j] - W[i]) + l2 * l2 * (W[n] - W[j]);
            if (sxl > 0 && sll > 0 && sxl * sxl > best * sll) best = sxl * sxl / sll, bs = sxl / sll;
        }
    return (float)bs;
}

/* per-element weights of a block (imp: offset to the block, or NULL) and sanitized values */
/* Weights imp * sqrt(sigma2 + x^2), sigma2 = 2 * mean x^2 of the block (llama.cpp's choice for
 * these types): on the calibration text this beat importance alone (KLD 0.208 vs 0.25 at IQ1_S)
 * and imp * (sigma2 + x^2) (0.239). */
static void block_prep(const float *x, const float *imp, float *xs, float *w)
{
    double sw = 0, sx2 = 0;
    for (int j = 0; j < QK_K; j++) {
        xs[j] = isfinite(x[j]) ? x[j] : 0.0f;
        sx2 += (double)xs[j] * xs[j];
    }
    const float s2 = (float)(2 * sx2 / QK_K);
    for (int j = 0; j < QK_K; j++) {
        w[j] = (imp ? (imp[j] > 0 && isfinite(imp[j]) ? imp[j] : 0.0f) : 1.0f) * sqrtf(s2 + xs[j] * xs[j]);
        sw += w[j];
    }
    if (!(sw > 0))
        for (int j = 0; j < QK_K; j++) w[j] = 1.0f;
}

/* A scale unit: n = 8 * ng values (ng groups of 8), one scale; per_group: each group picks
 * its own delta sign (IQ1_M), else one sign for the unit (IQ1_S). Fills neg[] (1: delta
 * -1/8) and g[] at scale s; returns the error. */
static float unit_at_scale(const float *x, const float *w, int ng, int per_group, float s, uint8_t *neg, int *g)
{
    if (per_group) {
        float tot = 0;
        for (int k = 0; k < ng; k++) {
            float ep, en;
            const int gp = grid_best(x + 8 * k, w + 8 * k, s, IQ1_DELTA, &ep);
            const int gn = grid_best(x + 8 * k, w + 8 * k, s, -IQ1_DELTA, &en);
            if (en < ep) g[k] = gn, neg[k] = 1, tot += en;
            else g[k] = gp, neg[k] = 0, tot += ep;
        }
        return tot;
    }
    float tp = 0, tn = 0;
    int gp[4], gn[4];
    for (int k = 0; k < ng; k++) {
        float e;
        gp[k] = grid_best(x + 8 * k, w + 8 * k, s, IQ1_DELTA, &e);
        tp += e;
        gn[k] = grid_best(x + 8 * k, w + 8 * k, s, -IQ1_DELTA, &e);
        tn += e;
    }
    const int useneg = tn < tp;
    for (int k = 0; k < ng; k++) g[k] = useneg ? gn[k] : gp[k], neg[k] = (uint8_t)useneg;
    return useneg ? tn : tp;
}

/* the unit's least-squares scale for fixed grid points (0 if none) */
static float unit_refit(const uint64_t *grid, const float *x, const float *w, int ng, const uint8_t *neg, const int *g,
                        double *bx, double *bc)
{
    *bx = *bc = 0;
    for (int k = 0; k < ng; k++) group_sums(grid, x + 8 * k, w + 8 * k, g[k], neg[k] ? -IQ1_DELTA : IQ1_DELTA, bx, bc);
    return *bc > 0 && *bx > 0 ? (float)(*bx / *bc) : 0.0f;
}

/* the best scale, grid points and signs of one unit (free scale) */
static float unit_fit(const uint64_t *grid, const float *x, const float *w, int ng, int per_group, uint8_t *neg, int *g)
{
    float best_s = 0, best_e = INFINITY;
    uint8_t tn[4];
    int tg[4];
    for (int sg = 0; sg < 2; sg++) {
        float s = split_scale(8 * ng, x, w, sg ? -IQ1_DELTA : IQ1_DELTA);
        if (!(s > 0)) continue;
        for (int it = 0; it < 3; it++) {
            const float e = unit_at_scale(x, w, ng, per_group, s, tn, tg);
            if (e < best_e) {
                best_e = e, best_s = s;
                memcpy(neg, tn, (size_t)ng);
                memcpy(g, tg, sizeof(int) * (size_t)ng);
            }
            double bx, bc;
            const float s2 = unit_refit(grid, x, w, ng, tn, tg, &bx, &bc);
            if (!(s2 > 0) || s2 == s) break;
            s = s2;
        }
    }
    if (!(best_s > 0)) { /* nothing positive to fit: zeros */
        for (int k = 0; k < ng; k++) neg[k] = 0, g[k] = 0;
    }
    return best_s;
}

/* The least-squares scale shrinks the weights (at three levels, |q| is smaller than |x| on
 * average), and the model's outputs shrink with them: the final d is raised by 1/8, tuned on
 * the calibration text (KLD vs F32 on tinystories-calib.txt, imatrix from it: 1.0, 1.06,
 * 1.125, 1.18, 1.25 tried; 1.125 best for both types, which is also llama.cpp's factor). */
#define IQ1_SCALE_UP 1.125f

/* one super-block: nu units of ng groups. Out: d (fp16-rounded), l[nu] in 0..7, neg[4 nu], g[4 nu] */
static float block_fit(const float *x, const float *w, int nu, int ng, int per_group, uint8_t *l, uint8_t *neg, int *g)
{
    const uint64_t *grid = slm_iq1s_grid_get();
    pthread_once(&g_half_once, halves_init);
    const int n = nu * ng * 8;
    float s[16];
    double bx[16], bc[16];
    float smax = 0;
    for (int u = 0; u < nu; u++) {
        s[u] = unit_fit(grid, x + 8 * ng * u, w + 8 * ng * u, ng, per_group, neg + ng * u, g + ng * u);
        unit_refit(grid, x + 8 * ng * u, w + 8 * ng * u, ng, neg + ng * u, g + ng * u, &bx[u], &bc[u]);
        if (s[u] > smax) smax = s[u];
    }
    if (!(smax > 0)) {
        memset(l, 0, (size_t)nu);
        return 0.0f;
    }
    /* d among max(s) / m: for each, every unit's odd multiplier of least error (grids fixed) */
    float best_d = 0, best_e = INFINITY;
    for (int m2 = 30; m2 >= 18; m2--) { /* m = m2 / 2 = 15 .. 9 */
        const float d = slm_half_round(smax * 2.0f / (float)m2);
        if (!(d > 0)) continue;
        double e = 0;
        for (int u = 0; u < nu; u++) {
            double be = INFINITY;
            for (int k = 0; k < 8; k++) {
                const double sc = (double)d * (2 * k + 1);
                const double ek = sc * sc * bc[u] - 2 * sc * bx[u];
                if (ek < be) be = ek;
            }
            e += be;
        }
        if (e < best_e) best_e = e, best_d = d;
    }
    const float d = best_d;
    for (int u = 0; u < nu; u++) {
        double be = INFINITY;
        int bk = 0;
        for (int k = 0; k < 8; k++) {
            const double sc = (double)d * (2 * k + 1);
            const double ek = sc * sc * bc[u] - 2 * sc * bx[u];
            if (ek < be) be = ek, bk = k;
        }
        l[u] = (uint8_t)bk;
        /* grid points again at the final scale */
        unit_at_scale(x + 8 * ng * u, w + 8 * ng * u, ng, per_group, d * (float)(2 * bk + 1), neg + ng * u, g + ng * u);
    }
    /* d refitted by least squares with the multipliers and grid points fixed */
    double num = 0, den = 0, e0 = 0, e1 = 0;
    for (int u = 0; u < nu; u++) {
        double ux = 0, uc = 0;
        unit_refit(grid, x + 8 * ng * u, w + 8 * ng * u, ng, neg + ng * u, g + ng * u, &ux, &uc);
        const double m = 2 * l[u] + 1;
        num += m * ux, den += m * m * uc;
        bx[u] = ux, bc[u] = uc;
    }
    const float d2 = den > 0 && num > 0 ? slm_half_round((float)(num / den)) : d;
    for (int u = 0; u < nu; u++) {
        const double m = 2 * l[u] + 1, a = (double)d * m, b = (double)d2 * m;
        e0 += a * a * bc[u] - 2 * a * bx[u];
        e1 += b * b * bc[u] - 2 * b * bx[u];
    }
    (void)n;
    if (e1 < e0) /* the grid points again at the refitted scale */
        for (int u = 0; u < nu; u++)
            unit_at_scale(x + 8 * ng * u, w + 8 * ng * u, ng, per_group, d2 * (float)(2 * l[u] + 1), neg + ng * u,
                          g + ng * u);
    return slm_half_round((e1 < e0 ? d2 : d) * IQ1_SCALE_UP);
}

/* ---------------- IQ1_S ---------------- */

void slm_quantize_iq1_s(const float *x, void *vy, int64_t n, const float *imp)
{
    block_iq1_s *y = vy;
    for (int64_t b = 0; b < n / QK_K; b++) {
        float xs[QK_K], w[QK_K];
        block_prep(x + b * QK_K, imp ? imp + b * QK_K : NULL, xs, w);
        uint8_t l[8], neg[32];
        int g[32];
        const float d = block_fit(xs, w, 8, 4, 0, l, neg, g);
        memset(&y[b], 0, sizeof y[b]);
        y[b].d = slm_fp32_to_fp16(d);
        for (int ib = 0; ib < 8; ib++) {
            uint16_t h = (uint16_t)(l[ib] << 12 | (neg[4 * ib] ? 0x8000 : 0));
            for (int k = 0; k < 4; k++) {
                y[b].qs[4 * ib + k] = (uint8_t)(g[4 * ib + k] & 0xff);
                h |= (uint16_t)((g[4 * ib + k] >> 8) << 3 * k);
            }
            y[b].qh[ib] = h;
        }
    }
}

void slm_dequantize_iq1_s(const void *vx, float *y, int64_t n)
{
    const block_iq1_s *x = vx;
    const uint64_t *grid = slm_iq1s_grid_get();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = slm_h2f(x[b].d);
        for (int ib = 0; ib < 8; ib++) {
            const uint16_t h = x[b].qh[ib];
            const float dl = d * (float)(2 * ((h >> 12) & 7) + 1);
            const float delta = h & 0x8000 ? -IQ1_DELTA : IQ1_DELTA;
            for (int k = 0; k < 4; k++) {
                const int8_t *t = grid_at(grid, x[b].qs[4 * ib + k] | ((h >> 3 * k) & 7) << 8);
                for (int j = 0; j < 8; j++) y[j] = dl * ((float)t[j] + delta);
                y += 8;
            }
        }
    }
}

void slm_vec_dot_iq1_s(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_iq1_s *x = vx;
    const block_q8_K *y = vy;
    const uint64_t *grid = slm_iq1s_grid_get();
    float sumf = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const int8_t *q8 = y[b].qs;
        int sumi = 0, sumi1 = 0;
        for (int ib = 0; ib < 8; ib++) {
            const uint16_t h = x[b].qh[ib];
            const int ls = 2 * ((h >> 12) & 7) + 1;
            int lsum = 0;
            for (int k = 0; k < 4; k++) {
                const int8_t *t = grid_at(grid, x[b].qs[4 * ib + k] | ((h >> 3 * k) & 7) << 8);
                for (int j = 0; j < 8; j++) lsum += q8[j] * t[j];
                q8 += 8;
            }
            sumi += ls * lsum;
            sumi1 += ls * (h & 0x8000 ? -1 : 1) * (y[b].bsums[2 * ib] + y[b].bsums[2 * ib + 1]);
        }
        sumf += slm_h2f(x[b].d) * y[b].d * ((float)sumi + IQ1_DELTA * (float)sumi1);
    }
    *s = sumf;
}

/* ---------------- IQ1_M ---------------- */

void slm_quantize_iq1_m(const float *x, void *vy, int64_t n, const float *imp)
{
    block_iq1_m *y = vy;
    for (int64_t b = 0; b < n / QK_K; b++) {
        float xs[QK_K], w[QK_K];
        block_prep(x + b * QK_K, imp ? imp + b * QK_K : NULL, xs, w);
        uint8_t l[16], neg[32];
        int g[32];
        const float d = block_fit(xs, w, 16, 2, 1, l, neg, g);
        const uint16_t dh = slm_fp32_to_fp16(d);
        memset(&y[b], 0, sizeof y[b]);
        uint16_t sc[4];
        for (int k = 0; k < 4; k++)
            sc[k] = (uint16_t)(l[4 * k] | l[4 * k + 1] << 3 | l[4 * k + 2] << 6 | l[4 * k + 3] << 9 |
                               ((dh >> 4 * k) & 0xf) << 12);
        memcpy(y[b].scales, sc, 8);
        for (int q = 0; q < 32; q++) y[b].qs[q] = (uint8_t)(g[q] & 0xff);
        for (int p = 0; p < 16; p++) /* groups 2p, 2p + 1 */
            y[b].qh[p] = (uint8_t)((g[2 * p] >> 8) | (neg[2 * p] ? 0x08 : 0) | (g[2 * p + 1] >> 8) << 4 |
                                   (neg[2 * p + 1] ? 0x80 : 0));
    }
}

void slm_dequantize_iq1_m(const void *vx, float *y, int64_t n)
{
    const block_iq1_m *x = vx;
    const uint64_t *grid = slm_iq1s_grid_get();
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint16_t sc[4];
        memcpy(sc, x[b].scales, 8);
        const float d = slm_h2f(slm_iq1m_d(&x[b]));
        for (int ib = 0; ib < 8; ib++) {
            for (int k = 0; k < 4; k++) {
                const float dl = d * (float)(2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3 * (k / 2))) & 7) + 1);
                const uint8_t h = x[b].qh[2 * ib + k / 2];
                const int hi = k % 2 ? (h >> 4) & 7 : h & 7;
                const float delta = h & (k % 2 ? 0x80 : 0x08) ? -IQ1_DELTA : IQ1_DELTA;
                const int8_t *t = grid_at(grid, x[b].qs[4 * ib + k] | hi << 8);
                for (int j = 0; j < 8; j++) y[j] = dl * ((float)t[j] + delta);
                y += 8;
            }
        }
    }
}

void slm_vec_dot_iq1_m(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_iq1_m *x = vx;
    const block_q8_K *y = vy;
    const uint64_t *grid = slm_iq1s_grid_get();
    float sumf = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        uint16_t sc[4];
        memcpy(sc, x[b].scales, 8);
        const int8_t *q8 = y[b].qs;
        int sumi1 = 0, sumi2 = 0;
        for (int ib = 0; ib < 8; ib++) {
            int s1[2] = { 0, 0 }, s2[2] = { 0, 0 };
            for (int k = 0; k < 4; k++) {
                const uint8_t h = x[b].qh[2 * ib + k / 2];
                const int hi = k % 2 ? (h >> 4) & 7 : h & 7;
                const int delta = h & (k % 2 ? 0x80 : 0x08) ? -1 : 1;
                const int8_t *t = grid_at(grid, x[b].qs[4 * ib + k] | hi << 8);
                int ls = 0, lq = 0;
                for (int j = 0; j < 8; j++) ls += q8[j] * t[j], lq += q8[j];
                q8 += 8;
                s1[k / 2] += ls;
                s2[k / 2] += lq * delta;
            }
            const int ls1 = 2 * ((sc[ib / 2] >> (6 * (ib % 2))) & 7) + 1;
            const int ls2 = 2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3)) & 7) + 1;
            sumi1 += s1[0] * ls1 + s1[1] * ls2;
            sumi2 += s2[0] * ls1 + s2[1] * ls2;
        }
        sumf += slm_h2f(slm_iq1m_d(&x[b])) * y[b].d * ((float)sumi1 + IQ1_DELTA * (float)sumi2);
    }
    *s = sumf;
}

/* ---------------- GPTQ on the grid (calib.c, calib_gptq.c) ----------------
 * Element j of a block dequantizes to a[j] * (L - 1) + b[j], L in 0..2 (the trit + 1), with
 * a = d * (2 l + 1) and b = a * delta of its group. GPTQ fixes the elements one at a time (in
 * its column order, any order inside a group of 8) and takes the nearest level that keeps the
 * group on the grid: a partial group (each element -1, 0, 1 or not yet fixed) is feasible when
 * some grid point agrees with it; the 4^8 partial states are tabulated once. */

static uint8_t g_feas[65536 / 8];
static pthread_once_t g_feas_once = PTHREAD_ONCE_INIT;

static void feas_init(void)
{
    const uint64_t *grid = slm_iq1s_grid_get();
    for (int g = 0; g < IQ1_NGRID; g++) {
        const int8_t *t = grid_at(grid, g);
        for (int mask = 0; mask < 256; mask++) { /* mask bit e: element e fixed */
            unsigned st = 0;
            for (int e = 7; e >= 0; e--) st = st * 4 + (mask >> e & 1 ? (unsigned)(t[e] + 1) : 3u);
            g_feas[st >> 3] |= (uint8_t)(1u << (st & 7));
        }
    }
}

int slm_iq1_gptq_pick(const uint8_t *L, int pos, float v)
{
    pthread_once(&g_feas_once, feas_init);
    const int grp = pos / 8, el = pos % 8;
    unsigned st = 0;
    for (int e = 7; e >= 0; e--) st = st * 4 + (e == el || L[8 * grp + e] > 2 ? 3u : L[8 * grp + e]);
    const int q0 = slm_qclamp(v, 0, 2);
    /* candidates by distance to v: q0, then the nearer neighbour, then the other */
    int cand[3] = { q0, q0 == 0 ? 1 : q0 == 2 ? 1 : (v >= (float)q0 ? 2 : 0), 0 };
    cand[2] = 3 - cand[0] - cand[1];
    for (int k = 0; k < 3; k++) {
        const unsigned s = st - (3u << 2 * el) + ((unsigned)cand[k] << 2 * el);
        if (g_feas[s >> 3] >> (s & 7) & 1) return cand[k];
    }
    return q0; /* unreachable: the state before was feasible */
}

int slm_iq1_grid_decode(uint32_t type, const void *blk, float *a, float *b, int *zero, int *qmax)
{
    if (type == SLM_T_IQ1_S) {
        const block_iq1_s *x = blk;
        const float d = slm_h2f(x->d);
        for (int j = 0; j < QK_K; j++) {
            const uint16_t h = x->qh[j / 32];
            a[j] = d * (float)(2 * ((h >> 12) & 7) + 1);
            b[j] = a[j] * (h & 0x8000 ? -IQ1_DELTA : IQ1_DELTA);
        }
    } else if (type == SLM_T_IQ1_M) {
        const block_iq1_m *x = blk;
        uint16_t sc[4];
        memcpy(sc, x->scales, 8);
        const float d = slm_h2f(slm_iq1m_d(x));
        for (int j = 0; j < QK_K; j++) {
            const int ib = j / 32, k = j % 32 / 8;
            a[j] = d * (float)(2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3 * (k / 2))) & 7) + 1);
            b[j] = a[j] * (x->qh[2 * ib + k / 2] & (k % 2 ? 0x80 : 0x08) ? -IQ1_DELTA : IQ1_DELTA);
        }
    } else {
        return 0;
    }
    *zero = 1;
    *qmax = 2;
    return QK_K;
}

int slm_iq1_grid_pack(uint32_t type, void *blk, const uint8_t *L)
{
    if (type != SLM_T_IQ1_S && type != SLM_T_IQ1_M) return -1;
    pthread_once(&g_half_once, halves_init);
    int rc = 0;
    for (int grp = 0; grp < 32; grp++) {
        int8_t t[8];
        for (int e = 0; e < 8; e++) t[e] = (int8_t)((L[8 * grp + e] > 2 ? 1 : L[8 * grp + e]) - 1);
        int g = slm_iq1s_grid_index(t);
        if (g < 0) { /* not from slm_iq1_gptq_pick: the nearest grid point */
            float xf[8], wf[8], e;
            for (int k = 0; k < 8; k++) xf[k] = t[k], wf[k] = 1.0f;
            g = grid_best(xf, wf, 1.0f, 0.0f, &e);
            rc = 1;
        }
        if (type == SLM_T_IQ1_S) {
            block_iq1_s *y = blk;
            y->qs[grp] = (uint8_t)(g & 0xff);
            y->qh[grp / 4] = (uint16_t)((y->qh[grp / 4] & ~(7u << 3 * (grp % 4))) | (unsigned)(g >> 8) << 3 * (grp % 4));
        } else {
            block_iq1_m *y = blk;
            y->qs[grp] = (uint8_t)(g & 0xff);
            const int sh = grp % 2 ? 4 : 0;
            y->qh[grp / 2] = (uint8_t)((y->qh[grp / 2] & ~(7u << sh)) | (unsigned)(g >> 8) << sh);
        }
    }
    (void)rc; /* a group fixed off the grid (not by slm_iq1_gptq_pick) went to its nearest point */
    return 0;
}

void slm_iq1_gptq_group(const float *v, const float *w, uint8_t *L8)
{
    pthread_once(&g_half_once, halves_init);
    float e;
    const int g = grid_best(v, w, 1.0f, 0.0f, &e);
    const int8_t *t = grid_at(slm_iq1s_grid_get(), g);
    for (int k = 0; k < 8; k++) L8[k] = (uint8_t)(t[k] + 1);
}
