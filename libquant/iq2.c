/* libquant/iq2.c — IQ2_XXS, IQ2_XS, IQ2_S: quantizer, dequantizer, scalar vec_dot.
 *
 * Layouts and codebooks are ggml's (iq2.h, iq2_grids.c); dequantize and the scalar
 * vec_dot compute what ggml's reference code computes for the same bytes.
 *
 * Quantizer (weighted squared error sum w (x - v)^2 over a 256-weight block):
 *  - a group of 8 weights with scale s > 0 takes codebook entry g with signs: the signs
 *    are those of x, except that IQ2_XXS / IQ2_XS keep an even number of minus signs, so
 *    with an odd count the element whose flip costs least (smallest w |x| g) is flipped.
 *    Its error is sum w x^2 - 2 s A_g + s^2 B_g with A_g = sum w |x| g (minus twice the
 *    flip's w |x| g), B_g = sum w g^2; so the best entry at s is the minimum over g of
 *    the line B_g s - 2 A_g. The lower envelope of these lines over s in [0, inf) is
 *    built once per group (kinetic sweep: from the best line at s = 0 to the next line of
 *    smaller slope it meets), after which every scale is evaluated exactly in a few steps;
 *  - each scale unit (32 weights in IQ2_XXS, 16 otherwise) gets its exact continuous
 *    optimum (on every interval between breakpoints the entries are fixed and the best s
 *    is sum A / sum B, clamped to the interval);
 *  - the super-block scale d: candidates around the one that puts the largest unit
 *    optimum on the top multiplier (2 * 15 + 1) / 8, each rounded to fp16; for each, every
 *    unit takes the best of the multipliers next to its optimum; then least-squares
 *    refits of d for the chosen entries while they help.
 * Weights: the importance as given (the imatrix path: slm_quantize_rows_imatrix's
 * floored importance); without it, x^2 + the block's mean square (large weights matter
 * most at two bits).
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "qimpl.h"
#include "iquants.h"
#include "iq2_grids.h"

typedef struct {
    const uint64_t *grid;
    const uint16_t *packed; /* level indices, 2 bits an element (iq2_grids.c) */
    int ngrid;
    int unit;   /* weights per scale: 32 (IQ2_XXS) or 16 */
    int parity; /* even number of minus signs per group */
} iq2_kind;

/* one segment of a group's envelope: entry k is best from s0 on */
typedef struct { float s0, m, c; uint16_t k; } seg;
#define MAXSEG 96
/* The envelope of a group starts at ENV_LO x its largest |x| / 43 (the top level): below
 * it the group's entries would overshoot its largest weight threefold, which no scale the
 * block's search tries can ask for; there the first segment stands in. */
#define ENV_LO 0.3f

typedef struct {
    float A[1024], B[1024];
    seg env[32][MAXSEG];
    int nseg[32];
} iq2_work;

static inline uint8_t gval(const uint64_t *grid, int k, int j) { return (uint8_t)(grid[k] >> 8 * j); }

/* lower envelope over s >= s0 of the lines B[k] s - 2 A[k]; slopes only fall along the
 * sweep, so the candidates (lines of smaller slope) are compacted at every step; the
 * crossing x = num / den of a candidate is compared without dividing (den > 0) */
static int build_env(const float *A, const float *B, int n, float s0, seg *out)
{
    int cur = 0;
    float cv = s0 * B[0] - 2 * A[0];
    for (int k = 1; k < n; k++) {
        const float v = s0 * B[k] - 2 * A[k];
        if (v < cv || (v == cv && B[k] < B[cur])) { cv = v; cur = k; }
    }
    uint16_t cand[1024];
    int nc = 0;
    for (int k = 0; k < n; k++)
        if (B[k] < B[cur]) cand[nc++] = (uint16_t)k;
    int ns = 0;
    float s = s0;
    for (;;) {
        const float mc = B[cur], ac = A[cur];
        out[ns++] = (seg){ s, mc, -2 * ac, (uint16_t)cur };
        if (ns == MAXSEG) break;
        int nx = -1;
        float bn = 1, bd = 0; /* the least crossing so far: bn / bd (none: bd = 0) */
        for (int i = 0; i < nc; i++) {
            const int k = cand[i];
            const float num = 2 * (ac - A[k]), den = mc - B[k];
            if (num < s * den) continue; /* crosses before s */
            const float l = num * bd, r = bn * den;
            if (bd == 0 || l < r || (l == r && B[k] < B[nx])) { bn = num; bd = den; nx = k; }
        }
        if (nx < 0) break;
        s = bn / bd;
        if (!isfinite(s)) break;
        cur = nx;
        int m = 0;
        for (int i = 0; i < nc; i++)
            if (B[cand[i]] < B[cur]) cand[m++] = cand[i];
        nc = m;
    }
    return ns;
}

/* the envelope segment at s */
static inline const seg *env_at(const seg *e, int n, float s)
{
    int i = 0;
    while (i + 1 < n && e[i + 1].s0 <= s) i++;
    return &e[i];
}

/* per-group line coefficients: A[k] = sum w |x| g (minus twice the cheapest flip when the
 * signs must be even and x has an odd number of negatives), B[k] = sum w g^2. A codebook
 * entry is two halves of 4 elements (8 bits of level indices each): the sums and the least
 * flip cost of each half come from tables of the 81 level combinations. */
static void group_lines(const iq2_kind *K, const float *x, const float *w, float *A, float *B)
{
    static const float lev[3] = { 8, 25, 43 };
    float ta[2][256], tb[2][256], tm[2][256];
    int neg = 0;
    for (int j = 0; j < 8; j++) neg += x[j] < 0;
    const int odd = K->parity && (neg & 1);
    for (int h = 0; h < 2; h++)
        for (int c = 0; c < 256; c++) {
            float a = 0, b = 0, mn = INFINITY;
            int ok = 1;
            for (int j = 0; j < 4; j++) {
                const int l = (c >> 2 * j) & 3;
                if (l == 3) { ok = 0; break; }
                const float q = lev[l], t = w[4 * h + j] * fabsf(x[4 * h + j]) * q;
                a += t;
                b += w[4 * h + j] * q * q;
                if (t < mn) mn = t;
            }
            if (!ok) continue;
            ta[h][c] = a; tb[h][c] = b; tm[h][c] = mn;
        }
    const uint16_t *pk = K->packed;
    if (odd)
        for (int k = 0; k < K->ngrid; k++) {
            const int lo = pk[k] & 255, hi = pk[k] >> 8;
            A[k] = ta[0][lo] + ta[1][hi] - 2 * fminf(tm[0][lo], tm[1][hi]);
            B[k] = tb[0][lo] + tb[1][hi];
        }
    else
        for (int k = 0; k < K->ngrid; k++) {
            const int lo = pk[k] & 255, hi = pk[k] >> 8;
            A[k] = ta[0][lo] + ta[1][hi];
            B[k] = tb[0][lo] + tb[1][hi];
        }
}

/* the group's lines and their envelope */
static void group_env(const iq2_kind *K, const float *x, const float *w, iq2_work *W, int g)
{
    float amax = 0;
    for (int j = 0; j < 8; j++) amax = fmaxf(amax, fabsf(x[j]));
    group_lines(K, x, w, W->A, W->B);
    W->nseg[g] = build_env(W->A, W->B, K->ngrid, ENV_LO * amax / 43.0f, W->env[g]);
}

/* the signs of a group of x at entry k: those of x, with the cheapest flip (least
 * w |x| g) when the type keeps an even number of minus signs and x has an odd one */
static uint8_t group_signs(const iq2_kind *K, const float *x, const float *w, int k)
{
    uint8_t sg = 0;
    int neg = 0, jmin = 0;
    float mn = INFINITY;
    for (int j = 0; j < 8; j++) {
        if (x[j] < 0) { sg |= (uint8_t)(1u << j); neg++; }
        const float t = w[j] * fabsf(x[j]) * (float)gval(K->grid, k, j);
        if (t < mn) { mn = t; jmin = j; }
    }
    if (K->parity && (neg & 1)) sg ^= (uint8_t)(1u << jmin);
    return sg;
}

/* error (minus sum w x^2) of scale unit u (groups g0..g0+ng-1) at scale s; sums of A, B */
static double unit_err(const iq2_work *W, int g0, int ng, float s, double *sa, double *sb)
{
    double a = 0, b = 0;
    for (int g = g0; g < g0 + ng; g++) {
        const seg *e = env_at(W->env[g], W->nseg[g], s);
        b += e->m;
        a += -0.5 * e->c;
    }
    if (sa) { *sa = a; *sb = b; }
    return (double)s * s * b - 2.0 * s * a;
}

static int cmp_float(const void *pa, const void *pb)
{
    const float a = *(const float *)pa, b = *(const float *)pb;
    return a < b ? -1 : a > b;
}

/* exact continuous optimum of a unit's scale */
static float unit_best(const iq2_work *W, int g0, int ng)
{
    float bp[4 * MAXSEG + 1];
    int n = 0;
    for (int g = g0; g < g0 + ng; g++)
        for (int i = 1; i < W->nseg[g]; i++) bp[n++] = W->env[g][i].s0;
    bp[n++] = 0;
    qsort(bp, (size_t)n, sizeof bp[0], cmp_float);
    double best = 0;
    float bs = 0;
    for (int i = 0; i < n; i++) {
        const float lo = bp[i], hi = i + 1 < n ? bp[i + 1] : INFINITY;
        if (i + 1 < n && !(hi > lo)) continue;
        const float mid = isfinite(hi) ? 0.5f * (lo + hi) : lo * 2 + 1e-30f;
        double sa, sb;
        unit_err(W, g0, ng, mid, &sa, &sb);
        if (!(sb > 0)) continue;
        double s = sa / sb;
        if (s < lo) s = lo;
        if (s > hi) s = hi;
        const double e = s * s * sb - 2 * s * sa;
        if (e < best) { best = e; bs = (float)s; }
    }
    return bs;
}

/* the weights of one block */
static void block_weights(const float *x, const float *imp, float *w)
{
    double s2 = 0;
    for (int j = 0; j < QK_K; j++) s2 += (double)x[j] * x[j];
    const float sigma2 = (float)(s2 / QK_K);
    if (imp) {
        double sw = 0;
        for (int j = 0; j < QK_K; j++) {
            const float q = imp[j] > 0 && isfinite(imp[j]) ? imp[j] : 0.0f;
            w[j] = q * sqrtf(sigma2 + x[j] * x[j]);
            sw += w[j];
        }
        if (sw > 0) return;
    }
    for (int j = 0; j < QK_K; j++) w[j] = sqrtf(sigma2 + x[j] * x[j]);
}

/* the scale of unit u: d * (0.5 + ls) / 4, computed as ggml does */
static inline float unit_scale(float d, int ls) { return d * (0.5f + (float)ls) * 0.25f; }

/* for d, the best ls of every unit near its optimum; the total error */
static double pick_ls(const iq2_work *W, const iq2_kind *K, float d, const float *sopt, int *ls)
{
    const int nu = QK_K / K->unit, ng = K->unit / 8;
    double tot = 0;
    for (int u = 0; u < nu; u++) {
        const int l0 = slm_qclamp(4.0f * sopt[u] / d - 0.5f, 0, 15);
        double be = INFINITY;
        for (int l = l0 - 1; l <= l0 + 1; l++) {
            if (l < 0 || l > 15) continue;
            const double e = unit_err(W, u * ng, ng, unit_scale(d, l), NULL, NULL);
            if (e < be) { be = e; ls[u] = l; }
        }
        tot += be;
    }
    return tot;
}

/* Quantize one block: d (fp16 bits), ls per unit, entry and 8-bit signs per group. */
static uint16_t quant_block(const iq2_kind *K, const float *x, const float *imp, iq2_work *W, int *ls, uint16_t *idx,
                            uint8_t *sgn)
{
    float w[QK_K];
    block_weights(x, imp, w);
    const int nu = QK_K / K->unit, ng = K->unit / 8;
    float amax = 0;
    for (int j = 0; j < QK_K; j++) amax = fmaxf(amax, fabsf(x[j]));
    if (!(amax >= 1e-15f) || !isfinite(amax)) {
        for (int u = 0; u < nu; u++) ls[u] = 0;
        memset(idx, 0, 32 * sizeof *idx);
        memset(sgn, 0, 32);
        return 0;
    }
    for (int g = 0; g < 32; g++) group_env(K, x + 8 * g, w + 8 * g, W, g);
    float sopt[16], smax = 0;
    for (int u = 0; u < nu; u++) {
        sopt[u] = unit_best(W, u * ng, ng);
        smax = fmaxf(smax, sopt[u]);
    }
    float bestd = 0;
    double best = INFINITY;
    int lsc[16];
    if (smax > 0) {
        static const float fac[] = { 0.70f, 0.76f, 0.82f, 0.87f, 0.91f, 0.95f, 1.0f, 1.05f };
        for (size_t f = 0; f < sizeof fac / sizeof fac[0]; f++) {
            const float d = slm_half_round(fac[f] * smax * 4.0f / 15.5f);
            if (!(d > 0)) continue;
            const double e = pick_ls(W, K, d, sopt, lsc);
            if (e < best) { best = e; bestd = d; memcpy(ls, lsc, sizeof(int) * (size_t)nu); }
        }
        /* least-squares refit of d for the chosen multipliers and entries */
        for (int it = 0; it < 3 && bestd > 0; it++) {
            double num = 0, den = 0;
            for (int u = 0; u < nu; u++) {
                double sa, sb;
                unit_err(W, u * ng, ng, unit_scale(bestd, ls[u]), &sa, &sb);
                const double m = (0.5 + ls[u]) * 0.25;
                num += m * sa;
                den += m * m * sb;
            }
            if (!(den > 0)) break;
            const float d = slm_half_round((float)(num / den));
            if (!(d > 0) || d == bestd) break;
            const double e = pick_ls(W, K, d, sopt, lsc);
            if (!(e < best)) break;
            best = e;
            bestd = d;
            memcpy(ls, lsc, sizeof(int) * (size_t)nu);
        }
    }
    if (!(bestd > 0)) {
        for (int u = 0; u < nu; u++) ls[u] = 0;
        memset(idx, 0, 32 * sizeof *idx);
        memset(sgn, 0, 32);
        return 0;
    }
    for (int g = 0; g < 32; g++) {
        const float s = unit_scale(bestd, ls[g / ng]);
        const int k = env_at(W->env[g], W->nseg[g], s)->k;
        idx[g] = (uint16_t)k;
        sgn[g] = group_signs(K, x + 8 * g, w + 8 * g, k);
    }
    /* the least-squares fit shrinks the block (its energy sum w v^2 falls below sum w x^2);
     * d times sum w x^2 / sum w v^2 undoes that (see the head of the file) */
    double sxx = 0, syy = 0;
    for (int g = 0; g < 32; g++) {
        const float s = unit_scale(bestd, ls[g / ng]);
        for (int j = 0; j < 8; j++) {
            const float v = s * (float)gval(K->grid, idx[g], j);
            sxx += (double)w[8 * g + j] * x[8 * g + j] * x[8 * g + j];
            syy += (double)w[8 * g + j] * v * v;
        }
    }
    if (syy > 0 && sxx > syy) bestd *= (float)(sxx / syy);
    return slm_fp32_to_fp16(bestd);
}

static const iq2_kind *kind_of(uint32_t type)
{
    static const iq2_kind k[3] = { /* constant: threads read it, nobody writes it */
        { slm_iq2xxs_grid, slm_iq2xxs_packed, 256, 32, 1 },
        { slm_iq2xs_grid, slm_iq2xs_packed, 512, 16, 1 },
        { slm_iq2s_grid, slm_iq2s_packed, 1024, 16, 0 },
    };
    slm_iq2_grids_init();
    return type == SLM_T_IQ2_XXS ? &k[0] : type == SLM_T_IQ2_XS ? &k[1] : &k[2];
}

/* The 32 groups' codebook indices and sign bytes into a block of `type`; the block's d and
 * scales are left as they are (IQ2_XXS keeps each scale nibble, bits 28..31 of its sign word). */
static void put_groups(uint32_t type, void *blk, const uint16_t *idx, const uint8_t *sg)
{
    if (type == SLM_T_IQ2_XXS) {
        block_iq2_xxs *y = blk;
        for (int ib = 0; ib < 8; ib++) {
            uint32_t a0 = 0, a1;
            memcpy(&a1, y->qs + 4 * ib + 2, 4);
            a1 &= 0xf0000000u;
            for (int l = 0; l < 4; l++) {
                a0 |= (uint32_t)idx[4 * ib + l] << 8 * l;
                a1 |= (uint32_t)(sg[4 * ib + l] & 127) << 7 * l;
            }
            memcpy(y->qs + 4 * ib, &a0, 4);
            memcpy(y->qs + 4 * ib + 2, &a1, 4);
        }
    } else if (type == SLM_T_IQ2_XS) {
        block_iq2_xs *y = blk;
        for (int g = 0; g < 32; g++) y->qs[g] = (uint16_t)(idx[g] | (sg[g] & 127) << 9);
    } else {
        block_iq2_s *y = blk;
        memset(y->qh, 0, sizeof y->qh);
        for (int g = 0; g < 32; g++) {
            y->qs[g] = (uint8_t)(idx[g] & 255);
            y->qs[32 + g] = sg[g];
            y->qh[g / 4] |= (uint8_t)((idx[g] >> 8) << 2 * (g % 4));
        }
    }
}

/* The block's scale nibbles: IQ2_XXS one per 32 weights (ls[0..8), bits 28..31 of each sign
 * word, written before put_groups adds the signs), IQ2_XS / IQ2_S one per 16 (ls[0..16)). */
static void put_scales(uint32_t type, void *blk, const int *ls)
{
    if (type == SLM_T_IQ2_XXS) {
        block_iq2_xxs *y = blk;
        for (int ib = 0; ib < 8; ib++) {
            const uint32_t a1 = (uint32_t)ls[ib] << 28;
            memcpy(y->qs + 4 * ib + 2, &a1, 4);
        }
    } else {
        uint8_t *sc = type == SLM_T_IQ2_XS ? ((block_iq2_xs *)blk)->scales : ((block_iq2_s *)blk)->scales;
        for (int ib = 0; ib < 8; ib++) sc[ib] = (uint8_t)(ls[2 * ib] | ls[2 * ib + 1] << 4);
    }
}

/* The scale nibble of 16-weight unit u (0..15) of a block of `type`. */
static int get_scale(uint32_t type, const void *blk, int u)
{
    if (type == SLM_T_IQ2_XXS) {
        uint32_t a1;
        memcpy(&a1, ((const block_iq2_xxs *)blk)->qs + 4 * (u / 2) + 2, 4);
        return (int)(a1 >> 28);
    }
    const uint8_t *sc = type == SLM_T_IQ2_XS ? ((const block_iq2_xs *)blk)->scales : ((const block_iq2_s *)blk)->scales;
    return (sc[u / 2] >> 4 * (u % 2)) & 15;
}

static inline int iq2s_index(const block_iq2_s *x, int g)
{
    return x->qs[g] | ((x->qh[g / 4] >> 2 * (g % 4)) & 3) << 8;
}

/* Group g (0..31, 8 weights) of a block of `type`: its codebook entry and its sign byte. */
static void get_group(uint32_t type, const void *blk, int g, uint64_t *gv, uint8_t *sg)
{
    if (type == SLM_T_IQ2_XXS) {
        const block_iq2_xxs *x = blk;
        uint32_t a0, a1;
        memcpy(&a0, x->qs + 4 * (g / 4), 4);
        memcpy(&a1, x->qs + 4 * (g / 4) + 2, 4);
        *gv = slm_iq2xxs_grid[(a0 >> 8 * (g % 4)) & 255];
        *sg = slm_ksigns_iq2xs[(a1 >> 7 * (g % 4)) & 127];
    } else if (type == SLM_T_IQ2_XS) {
        const block_iq2_xs *x = blk;
        *gv = slm_iq2xs_grid[x->qs[g] & 511];
        *sg = slm_ksigns_iq2xs[x->qs[g] >> 9];
    } else {
        const block_iq2_s *x = blk;
        *gv = slm_iq2s_grid[iq2s_index(x, g)];
        *sg = x->qs[32 + g];
    }
}

/* d leads every IQ2 block (read and written as the block's first two bytes) */
static_assert(offsetof(block_iq2_xxs, d) == 0 && offsetof(block_iq2_xs, d) == 0 && offsetof(block_iq2_s, d) == 0,
              "IQ2 blocks start with d");

static size_t block_size(uint32_t type)
{
    return type == SLM_T_IQ2_XXS ? sizeof(block_iq2_xxs) : type == SLM_T_IQ2_XS ? sizeof(block_iq2_xs)
                                                                                : sizeof(block_iq2_s);
}

/* n weights of x (importance imp, or NULL) into blocks of `type`. */
static void quant_rows(uint32_t type, const float *x, void *vy, int64_t n, const float *imp)
{
    const iq2_kind *K = kind_of(type);
    iq2_work *W = malloc(sizeof *W);
    if (!W) return; /* the row stays as the caller left it */
    for (int64_t b = 0; b < n / QK_K; b++) {
        void *blk = (char *)vy + b * block_size(type);
        int ls[16];
        uint16_t idx[32];
        uint8_t sg[32];
        const uint16_t d = quant_block(K, x + b * QK_K, imp ? imp + b * QK_K : NULL, W, ls, idx, sg);
        memcpy(blk, &d, sizeof d);
        put_scales(type, blk, ls);
        put_groups(type, blk, idx, sg);
    }
    free(W);
}

static void dequant_rows(uint32_t type, const void *vx, float *y, int64_t n)
{
    slm_iq2_grids_init();
    for (int64_t b = 0; b < n / QK_K; b++) {
        const void *blk = (const char *)vx + b * block_size(type);
        slm_half h;
        memcpy(&h, blk, sizeof h);
        const float d = slm_h2f(h);
        for (int g = 0; g < 32; g++) {
            const float db = unit_scale(d, get_scale(type, blk, g / 2));
            uint64_t gv;
            uint8_t s;
            get_group(type, blk, g, &gv, &s);
            for (int j = 0; j < 8; j++) y[j] = db * (float)(uint8_t)(gv >> 8 * j) * (s >> j & 1 ? -1.f : 1.f);
            y += 8;
        }
    }
}

/* ---------------- IQ2_XXS ---------------- */

void slm_quantize_iq2_xxs(const float *x, void *vy, int64_t n, const float *imp)
{
    quant_rows(SLM_T_IQ2_XXS, x, vy, n, imp);
}

void slm_dequantize_iq2_xxs(const void *vx, float *y, int64_t n) { dequant_rows(SLM_T_IQ2_XXS, vx, y, n); }

/* integer dot of one group of 8 */
static inline int dot8(uint64_t g, uint8_t s, const int8_t *q8)
{
    int sum = 0;
    for (int j = 0; j < 8; j++) {
        const int v = (int)(uint8_t)(g >> 8 * j) * q8[j];
        sum += s >> j & 1 ? -v : v;
    }
    return sum;
}

void slm_vec_dot_iq2_xxs(int64_t n, float *s, const void *vx, const void *vy)
{
    slm_iq2_grids_init();
    const block_iq2_xxs *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = slm_h2f(x[b].d) * y[b].d;
        const int8_t *q8 = y[b].qs;
        int32_t bsum = 0;
        for (int ib = 0; ib < 8; ib++) {
            uint32_t a0, a1;
            memcpy(&a0, x[b].qs + 4 * ib, 4);
            memcpy(&a1, x[b].qs + 4 * ib + 2, 4);
            int32_t sumi = 0;
            for (int l = 0; l < 4; l++, q8 += 8)
                sumi += dot8(slm_iq2xxs_grid[(a0 >> 8 * l) & 255], slm_ksigns_iq2xs[(a1 >> 7 * l) & 127], q8);
            bsum += sumi * (int32_t)(2 * (a1 >> 28) + 1);
        }
        sumf += d * (float)bsum;
    }
    *s = 0.125f * sumf;
}

/* ---------------- IQ2_XS ---------------- */

void slm_quantize_iq2_xs(const float *x, void *vy, int64_t n, const float *imp)
{
    quant_rows(SLM_T_IQ2_XS, x, vy, n, imp);
}

void slm_dequantize_iq2_xs(const void *vx, float *y, int64_t n) { dequant_rows(SLM_T_IQ2_XS, vx, y, n); }

void slm_vec_dot_iq2_xs(int64_t n, float *s, const void *vx, const void *vy)
{
    slm_iq2_grids_init();
    const block_iq2_xs *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = slm_h2f(x[b].d) * y[b].d;
        const int8_t *q8 = y[b].qs;
        int32_t bsum = 0;
        for (int h = 0; h < 16; h++) { /* 16 weights per scale */
            const int ls = 2 * ((x[b].scales[h / 2] >> 4 * (h % 2)) & 15) + 1;
            int32_t sumi = 0;
            for (int l = 0; l < 2; l++, q8 += 8) {
                const uint16_t q = x[b].qs[2 * h + l];
                sumi += dot8(slm_iq2xs_grid[q & 511], slm_ksigns_iq2xs[q >> 9], q8);
            }
            bsum += sumi * ls;
        }
        sumf += d * (float)bsum;
    }
    *s = 0.125f * sumf;
}

/* ---------------- IQ2_S ---------------- */

void slm_quantize_iq2_s(const float *x, void *vy, int64_t n, const float *imp)
{
    quant_rows(SLM_T_IQ2_S, x, vy, n, imp);
}

void slm_dequantize_iq2_s(const void *vx, float *y, int64_t n) { dequant_rows(SLM_T_IQ2_S, vx, y, n); }

void slm_vec_dot_iq2_s(int64_t n, float *s, const void *vx, const void *vy)
{
    slm_iq2_grids_init();
    const block_iq2_s *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = slm_h2f(x[b].d) * y[b].d;
        const int8_t *q8 = y[b].qs;
        int32_t bsum = 0;
        for (int h = 0; h < 16; h++) {
            const int ls = 2 * ((x[b].scales[h / 2] >> 4 * (h % 2)) & 15) + 1;
            int32_t sumi = 0;
            for (int l = 0; l < 2; l++, q8 += 8) {
                const int g = 2 * h + l;
                sumi += dot8(slm_iq2s_grid[iq2s_index(&x[b], g)], x[b].qs[32 + g], q8);
            }
            bsum += sumi * ls;
        }
        sumf += d * (float)bsum;
    }
    *s = 0.125f * sumf;
}

/* ---------------- GPTQ on the grid (calib.c, calib_gptq.c) ----------------
 * The codebook is 8-dimensional, so GPTQ rounds a group of 8 at a time, as it does IQ3's
 * octets and IQ1's groups: when the first column of a group comes up, its 8 current
 * (compensated) values, divided by the unit's scale a, go to the entry and signs nearest
 * to them under per-element weights (the minimum of B_k - 2 A_k over the codebook: the
 * quantizer's error at scale 1), and each column then pushes its own error on as usual.
 * An element's level L is the level index (0, 1, 2 for 8, 25, 43) plus 4 for a negative
 * sign; element j dequantizes to a[j] * value(L), a[j] = d * (0.5 + ls) / 4. */

int slm_iq2_is(uint32_t type) { return type == SLM_T_IQ2_XXS || type == SLM_T_IQ2_XS || type == SLM_T_IQ2_S; }

float slm_iq2_level_value(int l)
{
    static const float lev[4] = { 8, 25, 43, 0 };
    return l & 4 ? -lev[l & 3] : lev[l & 3];
}

/* codebook index of each packed code (-1: not an entry), per type */
static int16_t g_rev[3][65536];
static pthread_once_t g_rev_once = PTHREAD_ONCE_INIT;

static void rev_init(void)
{
    const uint16_t *pk[3] = { slm_iq2xxs_packed, slm_iq2xs_packed, slm_iq2s_packed };
    const int ng[3] = { 256, 512, 1024 };
    for (int t = 0; t < 3; t++) {
        for (int c = 0; c < 65536; c++) g_rev[t][c] = -1;
        for (int k = ng[t] - 1; k >= 0; k--) g_rev[t][pk[t][k]] = (int16_t)k;
    }
}

static int kind_idx(uint32_t type) { return type == SLM_T_IQ2_XXS ? 0 : type == SLM_T_IQ2_XS ? 1 : 2; }

void slm_iq2_round_group(uint32_t type, float a, const float *w8, const float *wt, uint8_t *L8)
{
    const iq2_kind *K = kind_of(type);
    float z[8], A[1024], B[1024];
    int best = 0;
    if (a > 0 && isfinite(a)) {
        for (int j = 0; j < 8; j++) z[j] = w8[j] / a;
        group_lines(K, z, wt, A, B);
        float be = B[0] - 2 * A[0];
        for (int k = 1; k < K->ngrid; k++) {
            const float e = B[k] - 2 * A[k];
            if (e < be) { be = e; best = k; }
        }
    } else {
        for (int j = 0; j < 8; j++) z[j] = 0;
    }
    const uint8_t sg = group_signs(K, z, wt, best);
    for (int j = 0; j < 8; j++) L8[j] = (uint8_t)(((K->packed[best] >> 2 * j) & 3) | ((sg >> j) & 1) << 2);
}

int slm_iq2_grid_decode(uint32_t type, const void *blk, float *a, float *b, int *zero, int *qmax)
{
    if (!slm_iq2_is(type)) return 0;
    slm_half h;
    memcpy(&h, blk, sizeof h);
    const float d = slm_h2f(h);
    for (int u = 0; u < 16; u++) {
        const int ls = get_scale(type, blk, u);
        const float db = unit_scale(d, ls);
        for (int j = 16 * u; j < 16 * u + 16; j++) { a[j] = db; b[j] = 0; }
    }
    *zero = 0;
    *qmax = 6;
    return QK_K;
}

int slm_iq2_grid_pack(uint32_t type, void *blk, const uint8_t *L)
{
    if (!slm_iq2_is(type)) return -1;
    pthread_once(&g_rev_once, rev_init);
    const iq2_kind *K = kind_of(type);
    const int16_t *rev = g_rev[kind_idx(type)];
    uint16_t idx[32];
    uint8_t sg[32];
    int rc = 0;
    for (int g = 0; g < 32; g++) {
        unsigned code = 0, s = 0, neg = 0;
        for (int j = 0; j < 8; j++) {
            const unsigned l = L[8 * g + j] & 3u;
            code |= (l > 2 ? 2u : l) << 2 * j;
            s |= (L[8 * g + j] >> 2 & 1u) << j;
        }
        for (int j = 0; j < 8; j++) neg += s >> j & 1;
        int k = rev[code];
        if (k < 0 || (K->parity && (neg & 1))) { /* never from slm_iq2_round_group */
            rc = -1;
            k = k < 0 ? 0 : k;
            if (K->parity && (neg & 1)) s ^= 0x80;
        }
        idx[g] = (uint16_t)k;
        sg[g] = (uint8_t)s;
    }
    put_groups(type, blk, idx, sg);
    return rc;
}
