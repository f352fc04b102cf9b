/* libquant/iq3.c — the 3-bit lattice i-quants IQ3_XXS and IQ3_S: grids, quantizer,
 * dequantizer, scalar vec_dot (x Q8_K).
 *
 * Layouts (ggml-common.h): a super-block of 256 weights is 8 groups of 32, a group 8
 * sub-vectors of 4 weights; a sub-vector is a point of a 4-dimensional grid (an index
 * into iq3xxs_grid / iq3s_grid, see iq3_grids.c) times a sign per weight times the
 * group's scale.
 *  - IQ3_XXS (98 bytes): fp16 d; qs[0..63] one 8-bit grid index per sub-vector; then per
 *    group a little-endian 32-bit word: four 7-bit sign codes (bits 7l..7l+6: the signs
 *    of weights 8l..8l+7, the eighth sign the parity of the seven, so an even number of
 *    negatives) and the 4-bit scale s in bits 28..31; the group scale is d * (2s + 1) / 4.
 *  - IQ3_S (110 bytes): fp16 d; qs[64] the low 8 bits of the 9-bit grid indices, qh[8]
 *    their ninth bits (bit k of qh[g]: sub-vector k of group g), signs[32] one bit per
 *    weight (1 = negative), scales[4] two 4-bit s per byte (group 2i low nibble, 2i + 1
 *    high); the group scale is d * (2s + 1).
 *
 * The quantizer is ours. It minimises the weighted squared error sum w (x - S sgn g)^2
 * group by group, then fits the super-block scale d and the 4-bit s of each group:
 *  - signs: the sign of each weight; for IQ3_XXS an octet with an odd number of
 *    negatives flips the weight of least w |x| (its target becomes -|x|, so the grid
 *    search pushes it to the lowest level);
 *  - the group scale S: a sweep of candidates sending the largest magnitude to points
 *    around the top grid level, each with the weighted-nearest grid point per
 *    sub-vector, refitted by least squares and re-assigned (Lloyd) while it helps;
 *  - weighted-nearest grid point: the per-coordinate nearest levels when that point is on
 *    the grid (then it is exact), else the best of the 16 grid points nearest to that
 *    cell (a table built at init);
 *  - d: candidates around (largest S) / (top multiplier), each rounded to fp16; every
 *    group tries the three s nearest S / d with its points re-assigned; least total
 *    error wins.
 * Weights: the importance as given (through slm_quantize_rows_imatrix and its floor);
 * without it sigma2 + x^2 (sigma2 twice the block's mean square). Chosen on the calibration
 * text (stories-llama256, imatrix from it, --pure, KLD on its first 150 chunks of 128):
 * importance alone IQ3_XXS 0.040942 / IQ3_S 0.018964, llama.cpp's imp * sqrt(sigma2 + x^2)
 * 0.041571 / 0.019075, imp * (sigma2 + x^2) 0.041196 / 0.019987, imp * (rms + |x|)
 * 0.041675 / 0.019330.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "qimpl.h"
#include "iquants.h"
#include "iq2_grids.h"

extern const uint64_t slm_iq3xxs_grid_bits[64];
extern const uint64_t slm_iq3s_grid_bits[64];

uint32_t slm_iq3xxs_grid[256];
uint32_t slm_iq3s_grid[512];

#define NBR 16 /* candidate grid points per cell */

typedef struct {
    int ngrid;
    float lev[8];          /* level values of a coordinate */
    uint16_t code[512];    /* grid index -> 12-bit code */
    int16_t index[4096];   /* code -> grid index, -1 when not on the grid */
    uint16_t nbr[4096][NBR];
} iq3_lattice;

static iq3_lattice g_lat[2]; /* 0: IQ3_XXS, 1: IQ3_S */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void build_lattice(iq3_lattice *L, const uint64_t *bits, const int *lev, uint32_t *grid)
{
    for (int i = 0; i < 8; i++) L->lev[i] = (float)lev[i];
    int n = 0;
    for (int c = 0; c < 4096; c++) {
        L->index[c] = -1;
        if (!((bits[c / 64] >> (c % 64)) & 1)) continue;
        L->code[n] = (uint16_t)c;
        L->index[c] = (int16_t)n;
        uint32_t g = 0;
        for (int k = 0; k < 4; k++) g |= (uint32_t)lev[(c >> 3 * k) & 7] << 8 * k;
        grid[n++] = g;
    }
    L->ngrid = n;
    /* for each cell (a point of the full 8^4 lattice) the NBR grid points nearest to it */
    float *dist = malloc(sizeof(float) * (size_t)n);
    for (int c = 0; c < 4096; c++) {
        for (int i = 0; i < n; i++) {
            float d = 0;
            for (int k = 0; k < 4; k++) {
                const float t = L->lev[(c >> 3 * k) & 7] - L->lev[(L->code[i] >> 3 * k) & 7];
                d += t * t;
            }
            dist[i] = d;
        }
        for (int m = 0; m < NBR; m++) { /* selection: NBR smallest, ties to the lower index */
            int b = -1;
            for (int i = 0; i < n; i++)
                if (dist[i] >= 0 && (b < 0 || dist[i] < dist[b])) b = i;
            L->nbr[c][m] = (uint16_t)b;
            dist[b] = -1;
        }
    }
    free(dist);
}

static void iq3_init(void)
{
    static const int lx[8] = { 4, 12, 20, 28, 36, 44, 52, 62 }, ls[8] = { 1, 3, 5, 7, 9, 11, 13, 15 };
    build_lattice(&g_lat[0], slm_iq3xxs_grid_bits, lx, slm_iq3xxs_grid);
    build_lattice(&g_lat[1], slm_iq3s_grid_bits, ls, slm_iq3s_grid);
    slm_iq2_grids_init(); /* ggml's ksigns_iq2xs (slm_ksigns_iq2xs), shared with IQ2 */
}

void slm_iq3_init(void) { pthread_once(&g_once, iq3_init); }

/* ---------------- quantizer ---------------- */

/* nearest level index of a coordinate value v (in level units) */
static inline int lev_index(const iq3_lattice *L, int s_type, float v)
{
    int i;
    if (s_type) i = (int)lrintf((v - 1.0f) * 0.5f);
    else {
        i = (int)lrintf((v - 4.0f) * 0.125f);
        if (i >= 6) i = v > 57.0f ? 7 : 6;
    }
    (void)L;
    return i < 0 ? 0 : i > 7 ? 7 : i;
}

/* weighted-nearest grid point of z[4] (level units); returns the grid index */
static int nearest_point(const iq3_lattice *L, int s_type, const float *z, const float *w)
{
    int c = 0;
    for (int k = 0; k < 4; k++) c |= lev_index(L, s_type, z[k]) << 3 * k;
    if (L->index[c] >= 0) return L->index[c];
    int best = L->nbr[c][0];
    float be = INFINITY;
    for (int m = 0; m < NBR; m++) {
        const int g = L->nbr[c][m], code = L->code[g];
        float e = 0;
        for (int k = 0; k < 4; k++) {
            const float t = z[k] - L->lev[(code >> 3 * k) & 7];
            e += w[k] * t * t;
        }
        if (e < be) { be = e; best = g; }
    }
    return best;
}

static inline float grid_val(const iq3_lattice *L, int g, int k) { return L->lev[(L->code[g] >> 3 * k) & 7]; }

/* assign the 8 sub-vectors of a group for scale S; returns sum w y g and sum w g^2 */
static void assign(const iq3_lattice *L, int s_type, const float *y, const float *w, float S, uint16_t *G,
                   double *sxg, double *sgg)
{
    const float iS = 1.0f / S;
    double a = 0, b = 0;
    for (int v = 0; v < 8; v++) {
        float z[4];
        for (int k = 0; k < 4; k++) z[k] = y[4 * v + k] * iS;
        const int g = nearest_point(L, s_type, z, w + 4 * v);
        G[v] = (uint16_t)g;
        for (int k = 0; k < 4; k++) {
            const float q = grid_val(L, g, k);
            a += (double)w[4 * v + k] * y[4 * v + k] * q;
            b += (double)w[4 * v + k] * q * q;
        }
    }
    *sxg = a;
    *sgg = b;
}

/* error of a group at a fixed scale S, points into G */
static double group_err(const iq3_lattice *L, int s_type, const float *y, const float *w, float S, uint16_t *G)
{
    double e = 0;
    if (S == 0) {
        for (int j = 0; j < 32; j++) e += (double)w[j] * y[j] * y[j];
        for (int v = 0; v < 8; v++) G[v] = 0;
        return e;
    }
    double a, b;
    assign(L, s_type, y, w, S, G, &a, &b);
    for (int v = 0; v < 8; v++)
        for (int k = 0; k < 4; k++) {
            const double r = (double)y[4 * v + k] - (double)S * grid_val(L, G[v], k);
            e += (double)w[4 * v + k] * r * r;
        }
    return e;
}

/* best continuous scale of a group (0 for a negligible group) */
static float group_scale(const iq3_lattice *L, int s_type, const float *y, const float *w)
{
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, y[j]);
    if (!(amax >= 1e-15f) || !isfinite(amax)) return 0;
    const float top = L->lev[7], lo = L->lev[3];
    double best = 0; /* sxg^2 / sgg: error removed */
    float bS = 0;
    uint16_t G[8];
    enum { NC = 24, NLOW = 3 };
    for (int c = -NLOW; c < NC; c++) {
        /* NC points from the fourth level to half a step past the top, and the three lowest
         * levels themselves (a flat group fits a constant grid point there: IQ3_S's are few) */
        const float target = c < 0 ? L->lev[c + NLOW] : lo + (top + 0.5f * (top - L->lev[6]) - lo) * (float)c / (NC - 1);
        float S = amax / target;
        double prev = -1;
        for (int it = 0; it < 4; it++) {
            double a, b;
            assign(L, s_type, y, w, S, G, &a, &b);
            if (!(b > 0) || !(a > 0)) break;
            const double gain = a * a / b;
            if (gain > best) { best = gain; bS = (float)(a / b); }
            if (gain <= prev * (1 + 1e-7)) break;
            prev = gain;
            S = (float)(a / b);
        }
    }
    return bS;
}

/* per-weight weights of a block (256) */
static void block_weights(const float *x, const float *imp, float *w)
{
    double s2 = 0;
    for (int j = 0; j < QK_K; j++) s2 += (double)x[j] * x[j];
    const float sigma2 = (float)(2 * s2 / QK_K);
    int any = 0;
    if (imp)
        for (int j = 0; j < QK_K; j++)
            if (imp[j] > 0 && isfinite(imp[j])) { any = 1; break; }
    for (int j = 0; j < QK_K; j++) {
        if (any) {
            const float q = imp[j] > 0 && isfinite(imp[j]) ? imp[j] : 0.0f;
            w[j] = q;
        } else {
            w[j] = sigma2 + x[j] * x[j];
        }
        if (!isfinite(w[j])) w[j] = 1.0f;
    }
}

/* signs of a group: neg[j] set for a negative weight; y = |x| (or -|x| for a weight
 * forced to the wrong sign by the parity rule) */
static void group_signs(int s_type, const float *x, const float *w, uint8_t *neg, float *y)
{
    for (int j = 0; j < 32; j++) { neg[j] = x[j] < 0; y[j] = fabsf(x[j]); }
    if (s_type) return;
    for (int o = 0; o < 4; o++) {
        int cnt = 0;
        for (int j = 0; j < 8; j++) cnt += neg[8 * o + j];
        if (!(cnt & 1)) continue;
        int m = 8 * o;
        for (int j = 8 * o + 1; j < 8 * o + 8; j++)
            if (w[j] * y[j] < w[m] * y[m]) m = j;
        neg[m] ^= 1;
        y[m] = -y[m];
    }
}

/* one super-block: d (fp16 bits), the 4-bit s of each group, the grid points, signs */
static uint16_t quant_block(int s_type, const float *x, const float *imp, int *sc, uint16_t *G, uint8_t *neg)
{
    const iq3_lattice *L = &g_lat[s_type];
    float w[QK_K], y[QK_K], S[8];
    block_weights(x, imp, w);
    float smax = 0;
    for (int ib = 0; ib < 8; ib++) {
        group_signs(s_type, x + 32 * ib, w + 32 * ib, neg + 32 * ib, y + 32 * ib);
        S[ib] = group_scale(L, s_type, y + 32 * ib, w + 32 * ib);
        smax = fmaxf(smax, S[ib]);
    }
    for (int ib = 0; ib < 8; ib++) sc[ib] = 0;
    memset(G, 0, 64 * sizeof *G);
    if (!(smax > 0)) return 0;
    /* multiplier of s: (2s + 1) / 4 (XXS) or 2s + 1 (S) */
    const float mul = s_type ? 1.0f : 0.25f;
    static const float fr[7] = { 1.0f, 0.985f, 0.97f, 0.95f, 0.93f, 1.015f, 0.9f };
    double best = INFINITY;
    float bestd = 0;
    for (int c = 0; c < 7; c++) {
        const float d = slm_half_round(smax / (31.0f * mul) * fr[c]);
        if (!(d > 0)) continue;
        double tot = 0;
        int scc[8];
        uint16_t Gc[64], Gt[8];
        for (int ib = 0; ib < 8 && tot < best; ib++) {
            const float *yb = y + 32 * ib, *wb = w + 32 * ib;
            const int s0 = (int)lrintf((S[ib] / (d * mul) - 1.0f) * 0.5f);
            double be = INFINITY;
            for (int s = s0 - 1; s <= s0 + 1; s++) {
                if (s < 0 || s > 15) continue;
                const double e = group_err(L, s_type, yb, wb, d * mul * (float)(2 * s + 1), Gt);
                if (e < be) { be = e; scc[ib] = s; memcpy(Gc + 8 * ib, Gt, sizeof Gt); }
            }
            if (!(be < INFINITY)) { /* s0 far outside 0..15: clamp */
                const int s = s0 < 0 ? 0 : 15;
                be = group_err(L, s_type, yb, wb, d * mul * (float)(2 * s + 1), Gt);
                scc[ib] = s;
                memcpy(Gc + 8 * ib, Gt, sizeof Gt);
            }
            tot += be;
        }
        if (tot < best) {
            best = tot;
            bestd = d;
            memcpy(sc, scc, sizeof scc);
            memcpy(G, Gc, sizeof Gc);
        }
    }
    return slm_fp32_to_fp16(bestd);
}

/* packing */
static void pack_xxs(block_iq3_xxs *b, uint16_t d, const int *sc, const uint16_t *G, const uint8_t *neg)
{
    b->d = d;
    for (int i = 0; i < 64; i++) b->qs[i] = (uint8_t)G[i];
    for (int ib = 0; ib < 8; ib++) {
        uint32_t aux = (uint32_t)sc[ib] << 28;
        for (int l = 0; l < 4; l++) {
            uint32_t s7 = 0;
            for (int j = 0; j < 7; j++) s7 |= (uint32_t)neg[32 * ib + 8 * l + j] << j;
            aux |= s7 << 7 * l;
        }
        memcpy(b->qs + 64 + 4 * ib, &aux, 4);
    }
}

static void pack_s(block_iq3_s *b, uint16_t d, const int *sc, const uint16_t *G, const uint8_t *neg)
{
    memset(b, 0, sizeof *b);
    b->d = d;
    for (int i = 0; i < 64; i++) {
        b->qs[i] = (uint8_t)(G[i] & 0xff);
        b->qh[i / 8] |= (uint8_t)(((G[i] >> 8) & 1) << (i % 8));
    }
    for (int i = 0; i < 256; i++) b->signs[i / 8] |= (uint8_t)(neg[i] << (i % 8));
    for (int ib = 0; ib < 8; ib++) b->scales[ib / 2] |= (uint8_t)(sc[ib] << 4 * (ib % 2));
}

void slm_quantize_iq3_xxs(const float *x, void *vy, int64_t n, const float *imp)
{
    slm_iq3_init();
    block_iq3_xxs *y = vy;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int sc[8];
        uint16_t G[64];
        uint8_t neg[QK_K];
        const uint16_t d = quant_block(0, x + b * QK_K, imp ? imp + b * QK_K : NULL, sc, G, neg);
        pack_xxs(&y[b], d, sc, G, neg);
    }
}

void slm_quantize_iq3_s(const float *x, void *vy, int64_t n, const float *imp)
{
    slm_iq3_init();
    block_iq3_s *y = vy;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int sc[8];
        uint16_t G[64];
        uint8_t neg[QK_K];
        const uint16_t d = quant_block(1, x + b * QK_K, imp ? imp + b * QK_K : NULL, sc, G, neg);
        pack_s(&y[b], d, sc, G, neg);
    }
}

/* ---------------- decoding ---------------- */

/* the 256 signed grid values (level units) of a block, and the 8 group multipliers */
static void levels_xxs(const block_iq3_xxs *b, int8_t *v, int *m)
{
    for (int ib = 0; ib < 8; ib++) {
        uint32_t aux;
        memcpy(&aux, b->qs + 64 + 4 * ib, 4);
        m[ib] = 2 * (int)(aux >> 28) + 1;
        for (int l = 0; l < 4; l++) {
            const uint8_t sg = slm_ksigns_iq2xs[(aux >> 7 * l) & 127];
            for (int h = 0; h < 2; h++) {
                const uint32_t g = slm_iq3xxs_grid[b->qs[8 * ib + 2 * l + h]];
                for (int k = 0; k < 4; k++) {
                    const int q = (int)((g >> 8 * k) & 0xff);
                    v[32 * ib + 8 * l + 4 * h + k] = (int8_t)((sg >> (4 * h + k)) & 1 ? -q : q);
                }
            }
        }
    }
}

static void levels_s(const block_iq3_s *b, int8_t *v, int *m)
{
    for (int ib = 0; ib < 8; ib++) {
        m[ib] = 2 * ((b->scales[ib / 2] >> 4 * (ib % 2)) & 0xf) + 1;
        for (int s = 0; s < 8; s++) {
            const int idx = b->qs[8 * ib + s] | (((b->qh[ib] >> s) & 1) << 8);
            const uint32_t g = slm_iq3s_grid[idx];
            for (int k = 0; k < 4; k++) {
                const int e = 32 * ib + 4 * s + k, q = (int)((g >> 8 * k) & 0xff);
                v[e] = (int8_t)((b->signs[e / 8] >> (e % 8)) & 1 ? -q : q);
            }
        }
    }
}

void slm_dequantize_iq3_xxs(const void *vx, float *y, int64_t n)
{
    slm_iq3_init();
    const block_iq3_xxs *x = vx;
    int8_t v[QK_K];
    int m[8];
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = slm_h2f(x[b].d);
        levels_xxs(&x[b], v, m);
        for (int ib = 0; ib < 8; ib++) {
            /* ggml: d * (0.5 + s) * 0.5 */
            const float db = d * (0.5f + (float)((m[ib] - 1) / 2)) * 0.5f;
            for (int j = 0; j < 32; j++) y[32 * ib + j] = db * (float)v[32 * ib + j];
        }
        y += QK_K;
    }
}

void slm_dequantize_iq3_s(const void *vx, float *y, int64_t n)
{
    slm_iq3_init();
    const block_iq3_s *x = vx;
    int8_t v[QK_K];
    int m[8];
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = slm_h2f(x[b].d);
        levels_s(&x[b], v, m);
        for (int ib = 0; ib < 8; ib++) {
            const float db = d * (float)m[ib];
            for (int j = 0; j < 32; j++) y[32 * ib + j] = db * (float)v[32 * ib + j];
        }
        y += QK_K;
    }
}

/* integer sums per group times the odd multiplier, as ggml (IQ3_XXS's float sum is then taken
 * times 1/4); s: the blocks are IQ3_S, else IQ3_XXS */
static float dot_blocks(int s, const void *vx, const block_q8_K *y, int64_t n)
{
    int8_t v[QK_K];
    int m[8];
    float sumf = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        slm_half d;
        if (s) {
            const block_iq3_s *x = (const block_iq3_s *)vx + b;
            levels_s(x, v, m);
            d = x->d;
        } else {
            const block_iq3_xxs *x = (const block_iq3_xxs *)vx + b;
            levels_xxs(x, v, m);
            d = x->d;
        }
        int32_t bsum = 0;
        for (int ib = 0; ib < 8; ib++) {
            int32_t si = 0;
            for (int j = 0; j < 32; j++) si += v[32 * ib + j] * y[b].qs[32 * ib + j];
            bsum += si * m[ib];
        }
        sumf += slm_h2f(d) * y[b].d * (float)bsum;
    }
    return sumf;
}

void slm_vec_dot_iq3_xxs(int64_t n, float *s, const void *vx, const void *vy)
{
    slm_iq3_init();
    *s = 0.25f * dot_blocks(0, vx, vy, n);
}

void slm_vec_dot_iq3_s(int64_t n, float *s, const void *vx, const void *vy)
{
    slm_iq3_init();
    *s = dot_blocks(1, vx, vy, n);
}

/* ---------------- GPTQ (calib_gptq.c) ----------------
 * The grid is 4-dimensional, so GPTQ rounds an octet (two sub-vectors, one sign byte) at a
 * time: when the first column of an octet is reached, its 8 current (compensated) values
 * go to the nearest representable point under the group's scale — signs (IQ3_XXS: even
 * parity, the weight of least |x| flipped), then the nearest grid point of each half — and
 * each of the 8 columns then pushes its own error on as usual. An element's level L is the
 * level index (0..7) plus 8 for a negative sign; element j dequantizes to a[j] * value(L). */

int slm_iq3_is_vector(uint32_t type) { return type == SLM_T_IQ3_XXS || type == SLM_T_IQ3_S; }

void slm_iq3_round_octet(uint32_t type, float a, const float *w8, uint8_t *L8)
{
    slm_iq3_init();
    const int s_type = type == SLM_T_IQ3_S;
    const iq3_lattice *L = &g_lat[s_type];
    uint8_t neg[8];
    float y[8], one[4] = { 1, 1, 1, 1 };
    for (int j = 0; j < 8; j++) { neg[j] = w8[j] < 0; y[j] = fabsf(w8[j]); }
    if (!s_type) {
        int cnt = 0, m = 0;
        for (int j = 0; j < 8; j++) { cnt += neg[j]; if (y[j] < y[m]) m = j; }
        if (cnt & 1) { neg[m] ^= 1; y[m] = -y[m]; }
    }
    for (int h = 0; h < 2; h++) {
        int code = 0;
        if (a > 0 && isfinite(a)) {
            float z[4];
            for (int k = 0; k < 4; k++) z[k] = y[4 * h + k] / a;
            code = L->code[nearest_point(L, s_type, z, one)];
        } else {
            code = L->code[0];
        }
        for (int k = 0; k < 4; k++) L8[4 * h + k] = (uint8_t)(((code >> 3 * k) & 7) | neg[4 * h + k] << 3);
    }
}

float slm_iq3_level_value(uint32_t type, int l)
{
    const float v = g_lat[type == SLM_T_IQ3_S].lev[l & 7];
    return l & 8 ? -v : v;
}

int slm_iq3_grid_decode(uint32_t type, const void *blk, float *a, float *b, int *zero, int *qmax)
{
    if (!slm_iq3_is_vector(type)) return 0;
    slm_iq3_init();
    for (int ib = 0; ib < 8; ib++) {
        float s;
        if (type == SLM_T_IQ3_XXS) {
            const block_iq3_xxs *x = blk;
            uint32_t aux;
            memcpy(&aux, x->qs + 64 + 4 * ib, 4);
            s = slm_h2f(x->d) * (0.5f + (float)(aux >> 28)) * 0.5f;
        } else {
            const block_iq3_s *x = blk;
            s = slm_h2f(x->d) * (float)(2 * ((x->scales[ib / 2] >> 4 * (ib % 2)) & 0xf) + 1);
        }
        for (int j = 0; j < 32; j++) { a[32 * ib + j] = s; b[32 * ib + j] = 0; }
    }
    *zero = 0;
    *qmax = 15;
    return QK_K;
}

int slm_iq3_grid_pack(uint32_t type, void *blk, const uint8_t *Lv)
{
    if (!slm_iq3_is_vector(type)) return -1;
    slm_iq3_init();
    const int s_type = type == SLM_T_IQ3_S;
    const iq3_lattice *L = &g_lat[s_type];
    uint16_t G[64];
    uint8_t neg[QK_K];
    for (int e = 0; e < QK_K; e++) neg[e] = (Lv[e] >> 3) & 1;
    for (int v = 0; v < 64; v++) {
        int code = 0;
        for (int k = 0; k < 4; k++) code |= (Lv[4 * v + k] & 7) << 3 * k;
        int g = L->index[code];
        if (g < 0) g = L->nbr[code][0]; /* not a grid point (never from slm_iq3_round_octet) */
        G[v] = (uint16_t)g;
    }
    if (!s_type) /* even parity per octet: the format cannot hold an odd one */
        for (int o = 0; o < 32; o++) {
            int cnt = 0;
            for (int j = 0; j < 8; j++) cnt += neg[8 * o + j];
            if (cnt & 1) return -1;
        }
    int sc[8];
    if (type == SLM_T_IQ3_XXS) {
        block_iq3_xxs *x = blk;
        for (int ib = 0; ib < 8; ib++) {
            uint32_t aux;
            memcpy(&aux, x->qs + 64 + 4 * ib, 4);
            sc[ib] = (int)(aux >> 28);
        }
        pack_xxs(x, x->d, sc, G, neg);
    } else {
        block_iq3_s *x = blk;
        for (int ib = 0; ib < 8; ib++) sc[ib] = (x->scales[ib / 2] >> 4 * (ib % 2)) & 0xf;
        pack_s(x, x->d, sc, G, neg);
    }
    return 0;
}
