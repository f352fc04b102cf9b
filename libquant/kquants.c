/* libquant/kquants.c — k-quants (Q2_K..Q6_K, 256-element super-blocks) and Q8_K:
 * pack / unpack, dequantize (ggml's arithmetic), scalar vec_dot against Q8_K, and
 * the quantizers.
 *
 * Quantizer: (1) each sub-block gets its own least-squares scale (and min) from the
 * searches in search.c; (2) the sub-block scales (and mins) are themselves quantized
 * with the exact symmetric sweep, weighted by how much each sub-block's error grows
 * with a scale error (sum w q^2, sum w); (3) refinement rounds against the real
 * integer sub-scales: every sub-block tries its neighbouring integer scale / min
 * with the levels re-rounded, then the super-block scale (and min scale) are refit by
 * weighted least squares, rounded to fp16, and kept only when the exact error (as
 * dequantize computes it) drops.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qimpl.h"
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* ---------- unpackers to per-element levels (0..nmax or signed) and sub-block scales ---------- */

static void unpack_q2_K(const block_q2_K *b, uint8_t *q)
{
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) q[n * 128 + j * 32 + l] = (b->qs[n * 32 + l] >> (2 * j)) & 3;
}

static void q3_scales(const uint8_t *s, int *sc)
{
    for (int j = 0; j < 16; j++) {
        int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
        sc[j] = (lo | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
    }
}

static void unpack_q3_K(const block_q3_K *b, int8_t *q)
{
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                int e = n * 128 + j * 32 + l;
                int v = (b->qs[n * 32 + l] >> (2 * j)) & 3;
                q[e] = (int8_t)(v - ((b->hmask[l] >> (n * 4 + j)) & 1 ? 0 : 4));
            }
}

static void unpack_q4_K(const block_q4_K *b, uint8_t *q)
{
    for (int j = 0; j < 4; j++)
        for (int l = 0; l < 32; l++) {
            q[j * 64 + l] = b->qs[j * 32 + l] & 0xF;
            q[j * 64 + 32 + l] = b->qs[j * 32 + l] >> 4;
        }
}

static void unpack_q5_K(const block_q5_K *b, uint8_t *q)
{
    for (int j = 0; j < 4; j++)
        for (int l = 0; l < 32; l++) {
            q[j * 64 + l] = (uint8_t)((b->qs[j * 32 + l] & 0xF) | (((b->qh[l] >> (2 * j)) & 1) << 4));
            q[j * 64 + 32 + l] = (uint8_t)((b->qs[j * 32 + l] >> 4) | (((b->qh[l] >> (2 * j + 1)) & 1) << 4));
        }
}

static void unpack_q6_K(const block_q6_K *b, int8_t *q)
{
    for (int n = 0; n < 2; n++) {
        const uint8_t *ql = b->ql + 64 * n, *qh = b->qh + 32 * n;
        for (int l = 0; l < 32; l++) {
            q[n * 128 + l + 0] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            q[n * 128 + l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            q[n * 128 + l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            q[n * 128 + l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

/* ---------- dequantize ---------- */

void slm_dequantize_q2_K(const void *vx, float *y, int64_t n)
{
    const block_q2_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = slm_h2f(x[i].d), min = slm_h2f(x[i].dmin);
        uint8_t q[QK_K];
        unpack_q2_K(&x[i], q);
        for (int e = 0; e < QK_K; e++) {
            const uint8_t sc = x[i].scales[e / 16];
            const float dl = d * (sc & 0xF), ml = min * (sc >> 4);
            *y++ = dl * q[e] - ml;
        }
    }
}

void slm_dequantize_q3_K(const void *vx, float *y, int64_t n)
{
    const block_q3_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = slm_h2f(x[i].d);
        int sc[16];
        int8_t q[QK_K];
        q3_scales(x[i].scales, sc);
        unpack_q3_K(&x[i], q);
        for (int e = 0; e < QK_K; e++) {
            const float dl = d * sc[e / 16];
            *y++ = dl * q[e];
        }
    }
}

void slm_dequantize_q4_K(const void *vx, float *y, int64_t n)
{
    const block_q4_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = slm_h2f(x[i].d), min = slm_h2f(x[i].dmin);
        uint8_t q[QK_K];
        unpack_q4_K(&x[i], q);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            slm_get_scale_min_k4(j, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * q[j * 32 + l] - m1;
        }
    }
}

void slm_dequantize_q5_K(const void *vx, float *y, int64_t n)
{
    const block_q5_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = slm_h2f(x[i].d), min = slm_h2f(x[i].dmin);
        uint8_t q[QK_K];
        unpack_q5_K(&x[i], q);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            slm_get_scale_min_k4(j, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * q[j * 32 + l] - m1;
        }
    }
}

void slm_dequantize_q6_K(const void *vx, float *y, int64_t n)
{
    const block_q6_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = slm_h2f(x[i].d);
        int8_t q[QK_K];
        unpack_q6_K(&x[i], q);
        for (int e = 0; e < QK_K; e++) *y++ = d * x[i].scales[e / 16] * q[e];
    }
}

void slm_dequantize_q8_K(const void *vx, float *y, int64_t n)
{
    const block_q8_K *x = vx;
    for (int64_t i = 0; i < n / QK_K; i++)
        for (int j = 0; j < QK_K; j++) *y++ = x[i].d * x[i].qs[j];
}

/* ---------- scalar vec_dot against Q8_K ---------- */

void slm_vec_dot_q2_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q2_K *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t q[QK_K];
        unpack_q2_K(&x[i], q);
        int summs = 0, isum = 0;
        for (int j = 0; j < 16; j++) {
            summs += y[i].bsums[j] * (x[i].scales[j] >> 4);
            int t = 0;
            for (int l = 0; l < 16; l++) t += q[16 * j + l] * y[i].qs[16 * j + l];
            isum += (x[i].scales[j] & 0xF) * t;
        }
        const float dall = y[i].d * slm_h2f(x[i].d), dmin = y[i].d * slm_h2f(x[i].dmin);
        sumf += dall * isum - dmin * summs;
    }
    *s = sumf;
}

void slm_vec_dot_q3_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q3_K *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        int sc[16];
        unpack_q3_K(&x[i], q);
        q3_scales(x[i].scales, sc);
        int isum = 0;
        for (int j = 0; j < 16; j++) {
            int t = 0;
            for (int l = 0; l < 16; l++) t += q[16 * j + l] * y[i].qs[16 * j + l];
            isum += sc[j] * t;
        }
        sumf += slm_h2f(x[i].d) * y[i].d * isum;
    }
    *s = sumf;
}

static float dot_k4(const uint8_t *q, const uint8_t *scales, float d, float dmin, const block_q8_K *y)
{
    int sumi = 0, summs = 0;
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        slm_get_scale_min_k4(j, scales, &sc, &m);
        int t = 0;
        for (int l = 0; l < 32; l++) t += q[32 * j + l] * y->qs[32 * j + l];
        sumi += sc * t;
        summs += m * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
    }
    return y->d * d * sumi - y->d * dmin * summs;
}

void slm_vec_dot_q4_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t q[QK_K];
        unpack_q4_K(&x[i], q);
        sumf += dot_k4(q, x[i].scales, slm_h2f(x[i].d), slm_h2f(x[i].dmin), &y[i]);
    }
    *s = sumf;
}

void slm_vec_dot_q5_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q5_K *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint8_t q[QK_K];
        unpack_q5_K(&x[i], q);
        sumf += dot_k4(q, x[i].scales, slm_h2f(x[i].d), slm_h2f(x[i].dmin), &y[i]);
    }
    *s = sumf;
}

void slm_vec_dot_q6_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q6_K *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        unpack_q6_K(&x[i], q);
        int isum = 0;
        for (int j = 0; j < 16; j++) {
            int t = 0;
            for (int l = 0; l < 16; l++) t += q[16 * j + l] * y[i].qs[16 * j + l];
            isum += x[i].scales[j] * t;
        }
        sumf += slm_h2f(x[i].d) * y[i].d * isum;
    }
    *s = sumf;
}

void slm_vec_dot_q8_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q8_K *x = vx, *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int isum = 0;
        for (int j = 0; j < QK_K; j++) isum += x[i].qs[j] * y[i].qs[j];
        sumf += x[i].d * y[i].d * isum;
    }
    *s = sumf;
}

/* Search effort (speed vs error; see docs/quantization.md). */
#define KQ_SCALE_CAND 12 /* candidate scales for the scale-of-scales */
#define KQ_ASYM_CAND 16  /* candidate scales per d*q+m sub-block */
#define KQ_SYM_CAND 8    /* candidate scales per side per symmetric sub-block */
#define KQ_SYM6_CAND 6   /* same for Q6_K: with 64 levels more candidates gain little */
#define KQ_ROUNDS 2      /* refinement rounds (neighbouring integer scales + super-scale refit) */
#define KQ_NB 1          /* neighbourhood of integer scales tried per round */

/* ---------- quantizer: asymmetric types (value = (D*ls)*q - Dm*lm) ---------- */

typedef struct {
    int nsub, sub, nmax, lsmax;
} asym_shape;

/* Exact error of one sub-block with integer scale/min, levels re-rounded. */
static double asym_sub_err(const float *x, const float *w, int len, int nmax, float D, float Dm, int ls, int lm,
                           uint8_t *L)
{
    const float d1 = D * ls, m1 = Dm * lm;
    if (len % 4 == 0 && d1 > 0) return slm_asym_err_fast(len, x, w, d1, m1, nmax, L);
    const float id = d1 > 0 ? 1.0f / d1 : 0.0f;
    double err = 0;
    for (int i = 0; i < len; i++) {
        int q = d1 > 0 ? slm_qclamp((x[i] + m1) * id, 0, nmax) : 0;
        if (L) L[i] = (uint8_t)q;
        double e = (double)x[i] - (double)(d1 * q - m1);
        err += w[i] * e * e;
    }
    return err;
}

/* Error of every sub-block at (D, Dm, ls, lm): per-sub-block errors in ej, levels in L;
 * returns their sum (in sub-block order). */
static double asym_all_err(const asym_shape *sh, const float *x, const float *w, float D, float Dm, const uint8_t *ls,
                           const uint8_t *lm, uint8_t *L, double *ej)
{
    double err = 0;
    for (int j = 0; j < sh->nsub; j++) {
        ej[j] = asym_sub_err(x + j * sh->sub, w + j * sh->sub, sh->sub, sh->nmax, D, Dm, ls[j], lm[j],
                             L + j * sh->sub);
        err += ej[j];
    }
    return err;
}

/* Quantize a positive vector v to D*l, l in [0, lmax] with weights, returns D as fp16 value. */
static float quant_scales(int n, const float *v, const float *wv, int lmax, uint8_t *l)
{
    int8_t Lq[QK_K];
    int lo = 0, hi = lmax;
    float D;
    if (lmax > 127) { lo = 0; hi = 127; }
    D = slm_sym_search_fast(n, v, wv, lo, hi, KQ_SCALE_CAND, Lq);
    D = slm_half_round(fabsf(D));
    for (int j = 0; j < n; j++) l[j] = (uint8_t)(D > 0 ? slm_qclamp(v[j] / D, 0, lmax) : 0);
    return D;
}

typedef float v4f __attribute__((vector_size(16)));

/* four levels as floats (exact: small integers) */
static inline v4f levels_u8(const uint8_t *L)
{
#ifdef __SSE2__
    int32_t b;
    memcpy(&b, L, 4);
    const __m128i z = _mm_setzero_si128();
    __m128i v = _mm_unpacklo_epi8(_mm_cvtsi32_si128(b), z);
    return (v4f)_mm_cvtepi32_ps(_mm_unpacklo_epi16(v, z));
#else
    return (v4f){ L[0], L[1], L[2], L[3] };
#endif
}

static inline v4f levels_s8(const int8_t *L)
{
#ifdef __SSE2__
    int32_t b;
    memcpy(&b, L, 4);
    __m128i v = _mm_cvtsi32_si128(b);
    v = _mm_srai_epi16(_mm_unpacklo_epi8(v, v), 8);
    return (v4f)_mm_cvtepi32_ps(_mm_srai_epi32(_mm_unpacklo_epi16(v, v), 16));
#else
    return (v4f){ L[0], L[1], L[2], L[3] };
#endif
}

/* Per sub-block sums of w L^2, w L, w x L (and w, w x when sw != NULL) on 4 lanes, summed
 * as (l0 + l2) + (l1 + l3): the same code on every kernel set. len % 4 == 0. */
static void sub_sums(int len, const float *x, const float *w, const uint8_t *L, float *swll, float *swl, float *swxl,
                     float *sw, float *swx)
{
    v4f a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 }, e = { 0 };
    for (int k = 0; k < len; k += 4) {
        v4f xv, wv, lv = levels_u8(L + k);
        memcpy(&xv, x + k, sizeof xv);
        memcpy(&wv, w + k, sizeof wv);
        v4f wl = wv * lv;
        a += wl * lv; b += wl; c += wl * xv; d += wv; e += wv * xv;
    }
    *swll = (a[0] + a[2]) + (a[1] + a[3]);
    *swl = (b[0] + b[2]) + (b[1] + b[3]);
    *swxl = (c[0] + c[2]) + (c[1] + c[3]);
    if (sw) {
        *sw = (d[0] + d[2]) + (d[1] + d[3]);
        *swx = (e[0] + e[2]) + (e[1] + e[3]);
    }
}

static void asym_super(const asym_shape *sh, const float *x, const float *w, float *Dout, float *Dmout, uint8_t *ls,
                       uint8_t *lm, uint8_t *L)
{
    float sc[16], mn[16], wsc[16], wmn[16], sw_[16], swx_[16];
    for (int j = 0; j < sh->nsub; j++) {
        const float *xs = x + j * sh->sub, *ws = w + j * sh->sub;
        float d, m;
        slm_asym_search_fast(sh->sub, xs, ws, sh->nmax, 1, KQ_ASYM_CAND, &d, &m, L + j * sh->sub);
        sc[j] = d; mn[j] = -m;
        float a, b, c_, e_;
        sub_sums(sh->sub, xs, ws, L + j * sh->sub, &a, &e_, &c_, &sw_[j], &swx_[j]);
        b = sw_[j];
        wsc[j] = a > 0 ? a : 1e-30f; wmn[j] = b > 0 ? b : 1e-30f;
    }
    float D = quant_scales(sh->nsub, sc, wsc, sh->lsmax, ls);
    float Dm = quant_scales(sh->nsub, mn, wmn, sh->lsmax, lm);
    /* Invariant through the rounds: L and ej hold the levels and errors of (D, Dm, ls, lm),
     * so no configuration is evaluated twice (sums run in the same order as a fresh pass). */
    double ej[16], ej2[16];
    enum { NB2 = (2 * KQ_NB + 1) * (2 * KQ_NB + 1) - 1 };
    void (*const err2)(int, const float *, const float *, float, float, float, float, int, float *, float *) =
        slm_kset_active()->asym_err2;
    double best = asym_all_err(sh, x, w, D, Dm, ls, lm, L, ej);
    /* dirty[j]: sub-block j's neighbourhood at the current (D, Dm) has not been tried yet
     * (a sub-block that kept its scales under an unchanged D would only see the same
     * errors again and keep them again) */
    uint8_t dirty[16];
    memset(dirty, 1, sizeof dirty);
    for (int it = 0; it < KQ_ROUNDS; it++) {
        double start = best;
        /* (a) neighbouring integer scale / min per sub-block */
        for (int j = 0; j < sh->nsub; j++) {
            if (!dirty[j]) continue;
            dirty[j] = 0;
            const float *xs = x + j * sh->sub, *ws = w + j * sh->sub;
            double e0 = ej[j];
            int bl = ls[j], bm = lm[j], ca[NB2], cb[NB2], nc = 0;
            double ec[NB2];
            for (int a = ls[j] - KQ_NB; a <= ls[j] + KQ_NB; a++)
                for (int b = lm[j] - KQ_NB; b <= lm[j] + KQ_NB; b++)
                    if (a >= 0 && b >= 0 && a <= sh->lsmax && b <= sh->lsmax && (a != ls[j] || b != lm[j])) {
                        ca[nc] = a; cb[nc++] = b;
                    }
            for (int c = 0; c < nc; c++) {
                const float da = D * ca[c], db = c + 1 < nc ? D * ca[c + 1] : 0.f;
                if (c + 1 < nc && err2 && sh->sub % 4 == 0 && da > 0 && db > 0) {
                    float ea, eb; /* two neighbours at once, same values as asym_sub_err */
                    err2(sh->sub, xs, ws, da, Dm * cb[c], db, Dm * cb[c + 1], sh->nmax, &ea, &eb);
                    ec[c] = ea; ec[c + 1] = eb; c++;
                } else {
                    ec[c] = asym_sub_err(xs, ws, sh->sub, sh->nmax, D, Dm, ca[c], cb[c], NULL);
                }
            }
            for (int c = 0; c < nc; c++)
                if (ec[c] < e0) { e0 = ec[c]; bl = ca[c]; bm = cb[c]; }
            if (bl != ls[j] || bm != lm[j]) {
                dirty[j] = 1;
                ls[j] = (uint8_t)bl; lm[j] = (uint8_t)bm;
                ej[j] = asym_sub_err(xs, ws, sh->sub, sh->nmax, D, Dm, bl, bm, L + j * sh->sub);
            }
        }
        best = 0;
        for (int j = 0; j < sh->nsub; j++) best += ej[j];
        /* (b) least-squares refit of (D, Dm) with levels and integer scales fixed */
        double s_aa = 0, s_ab = 0, s_bb = 0, s_xa = 0, s_xb = 0;
        for (int j = 0; j < sh->nsub; j++) {
            float wll, wl, wxl;
            sub_sums(sh->sub, x + j * sh->sub, w + j * sh->sub, L + j * sh->sub, &wll, &wl, &wxl, NULL, NULL);
            const double a = ls[j], b = -(double)lm[j];
            s_aa += a * a * wll; s_ab += a * b * wl; s_bb += b * b * sw_[j]; s_xa += a * wxl; s_xb += b * swx_[j];
        }
        double det = s_aa * s_bb - s_ab * s_ab;
        float nD = D, nDm = Dm;
        if (det > 1e-30 * s_aa * s_bb && s_aa > 0) {
            nD = slm_half_round((float)((s_xa * s_bb - s_xb * s_ab) / det));
            nDm = slm_half_round((float)((s_aa * s_xb - s_ab * s_xa) / det));
            if (!(nD >= 0 && nDm >= 0)) { nD = D; nDm = Dm; }
        } else if (s_aa > 0) {
            nD = slm_half_round((float)(s_xa / s_aa));
        }
        if (nD != D || nDm != Dm) {
            uint8_t L2[QK_K];
            double e = asym_all_err(sh, x, w, nD, nDm, ls, lm, L2, ej2);
            if (e < best) {
                best = e; D = nD; Dm = nDm;
                memcpy(L, L2, sh->nsub * sh->sub);
                memcpy(ej, ej2, sizeof(double) * sh->nsub);
                memset(dirty, 1, sizeof dirty);
            }
        }
        if (!(best < start * (1 - 1e-7))) break;
    }
    *Dout = D; *Dmout = Dm;
}

/* ---------- quantizer: symmetric types (value = (D*ls)*q) ---------- */

typedef struct {
    int nsub, sub, qlo, qhi, lslo, lshi, ncand;
} sym_shape;

static double sym_sub_err(const float *x, const float *w, int len, int qlo, int qhi, float D, int ls, int8_t *L)
{
    const float d1 = D * ls;
    if (len % 4 == 0 && d1 != 0) return slm_sym_err_fast(len, x, w, d1, qlo, qhi, L);
    const float id = d1 != 0 ? 1.0f / d1 : 0.0f;
    double err = 0;
    for (int i = 0; i < len; i++) {
        int q = d1 != 0 ? slm_qclamp(x[i] * id, qlo, qhi) : 0;
        if (L) L[i] = (int8_t)q;
        double e = (double)x[i] - (double)(d1 * q);
        err += w[i] * e * e;
    }
    return err;
}

/* Error of every sub-block at (D, ls): per-sub-block errors in ej, levels in L; returns
 * their sum (in sub-block order). */
static double sym_all_err(const sym_shape *sh, const float *x, const float *w, float D, const int *ls, int8_t *L,
                          double *ej)
{
    double err = 0;
    for (int j = 0; j < sh->nsub; j++) {
        ej[j] = sym_sub_err(x + j * sh->sub, w + j * sh->sub, sh->sub, sh->qlo, sh->qhi, D, ls[j], L + j * sh->sub);
        err += ej[j];
    }
    return err;
}

/* Per sub-block sums of w L^2 and w x L for signed levels, as sub_sums. len % 4 == 0. */
static void sub_sums_s(int len, const float *x, const float *w, const int8_t *L, float *swll, float *swxl)
{
    v4f a = { 0 }, c = { 0 };
    for (int k = 0; k < len; k += 4) {
        v4f xv, wv, lv = levels_s8(L + k);
        memcpy(&xv, x + k, sizeof xv);
        memcpy(&wv, w + k, sizeof wv);
        v4f wl = wv * lv;
        a += wl * lv; c += wl * xv;
    }
    *swll = (a[0] + a[2]) + (a[1] + a[3]);
    *swxl = (c[0] + c[2]) + (c[1] + c[3]);
}

/* Invariant through the rounds: L and ej hold the levels and errors of (D, ls), so no
 * configuration is evaluated twice (the sums run in the same order as a fresh pass). */
static float sym_super(const sym_shape *sh, const float *x, const float *w, int *ls, int8_t *L)
{
    float sc[16], wsc[16];
    for (int j = 0; j < sh->nsub; j++) {
        const float *xs = x + j * sh->sub, *ws = w + j * sh->sub;
        sc[j] = slm_sym_search_fast(sh->sub, xs, ws, sh->qlo, sh->qhi, sh->ncand, L + j * sh->sub);
        float a, b_;
        sub_sums_s(sh->sub, xs, ws, L + j * sh->sub, &a, &b_);
        wsc[j] = a > 0 ? a : 1e-30f;
    }
    int8_t Ls[16];
    float D = slm_sym_search_fast(sh->nsub, sc, wsc, sh->lslo, sh->lshi, KQ_SCALE_CAND, Ls);
    D = slm_half_round(D);
    for (int j = 0; j < sh->nsub; j++) ls[j] = D != 0 ? slm_qclamp(sc[j] / D, sh->lslo, sh->lshi) : 0;
    double ej[16], ej2[16];
    void (*const err2)(int, const float *, const float *, float, float, int, int, float *, float *) =
        slm_kset_active()->sym_err2;
    double best = sym_all_err(sh, x, w, D, ls, L, ej);
    uint8_t dirty[16]; /* as in asym_super */
    memset(dirty, 1, sizeof dirty);
    for (int it = 0; it < KQ_ROUNDS; it++) {
        double start = best;
        /* (a) neighbouring integer scale per sub-block */
        for (int j = 0; j < sh->nsub; j++) {
            if (!dirty[j]) continue;
            dirty[j] = 0;
            const float *xs = x + j * sh->sub, *ws = w + j * sh->sub;
            double e0 = ej[j];
            int bl = ls[j], cand[2 * KQ_NB], nc = 0;
            double ec[2 * KQ_NB];
            for (int a = ls[j] - KQ_NB; a <= ls[j] + KQ_NB; a++)
                if (a >= sh->lslo && a <= sh->lshi && a != ls[j]) cand[nc++] = a;
            for (int c = 0; c < nc; c++) {
                const float da = D * cand[c], db = c + 1 < nc ? D * cand[c + 1] : 0.f;
                if (c + 1 < nc && err2 && sh->sub % 4 == 0 && da != 0 && db != 0) {
                    float ea, eb; /* two neighbours at once, same values as sym_sub_err */
                    err2(sh->sub, xs, ws, da, db, sh->qlo, sh->qhi, &ea, &eb);
                    ec[c] = ea; ec[c + 1] = eb; c++;
                } else {
                    ec[c] = sym_sub_err(xs, ws, sh->sub, sh->qlo, sh->qhi, D, cand[c], NULL);
                }
            }
            for (int c = 0; c < nc; c++)
                if (ec[c] < e0) { e0 = ec[c]; bl = cand[c]; }
            if (bl != ls[j]) {
                dirty[j] = 1;
                ls[j] = bl;
                ej[j] = sym_sub_err(xs, ws, sh->sub, sh->qlo, sh->qhi, D, bl, L + j * sh->sub);
            }
        }
        best = 0;
        for (int j = 0; j < sh->nsub; j++) best += ej[j];
        /* (b) least-squares refit of D with levels and integer scales fixed */
        double s_aa = 0, s_xa = 0;
        for (int j = 0; j < sh->nsub; j++) {
            float wll, wxl;
            sub_sums_s(sh->sub, x + j * sh->sub, w + j * sh->sub, L + j * sh->sub, &wll, &wxl);
            s_aa += (double)ls[j] * ls[j] * wll; s_xa += (double)ls[j] * wxl;
        }
        if (s_aa > 0) {
            float nD = slm_half_round((float)(s_xa / s_aa));
            int8_t L2[QK_K];
            double e = nD == D ? best : sym_all_err(sh, x, w, nD, ls, L2, ej2);
            if (e < best) {
                best = e; D = nD;
                memcpy(L, L2, sh->nsub * sh->sub);
                memcpy(ej, ej2, sizeof(double) * sh->nsub);
                memset(dirty, 1, sizeof dirty);
            }
        }
        if (!(best < start * (1 - 1e-7))) break;
    }
    return D;
}

/* ---------- packers ---------- */

static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

static void pack_k4_scales(const uint8_t *ls, const uint8_t *lm, uint8_t *s)
{
    memset(s, 0, K_SCALE_SIZE);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            s[j] = ls[j]; s[j + 4] = lm[j];
        } else {
            s[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            s[j - 0] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

void slm_quantize_q2_K(const float *x, void *vy, int64_t n, const float *imp)
{
    block_q2_K *y = vy;
    static const asym_shape sh = { 16, 16, 3, 15 };
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float w[QK_K], D, Dm;
        uint8_t ls[16], lm[16], L[QK_K];
        slm_qweights(SLM_T_Q2_K, QK_K, 16, x, imp ? imp + i * QK_K : NULL, w);
        asym_super(&sh, x, w, &D, &Dm, ls, lm, L);
        y[i].d = slm_fp32_to_fp16(D);
        y[i].dmin = slm_fp32_to_fp16(Dm);
        for (int j = 0; j < 16; j++) y[i].scales[j] = (uint8_t)(ls[j] | (lm[j] << 4));
        pack_2bit(L, y[i].qs);
    }
}

void slm_quantize_q4_K(const float *x, void *vy, int64_t n, const float *imp)
{
    block_q4_K *y = vy;
    static const asym_shape sh = { 8, 32, 15, 63 };
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float w[QK_K], D, Dm;
        uint8_t ls[16], lm[16], L[QK_K];
        slm_qweights(SLM_T_Q4_K, QK_K, 32, x, imp ? imp + i * QK_K : NULL, w);
        asym_super(&sh, x, w, &D, &Dm, ls, lm, L);
        y[i].d = slm_fp32_to_fp16(D);
        y[i].dmin = slm_fp32_to_fp16(Dm);
        pack_k4_scales(ls, lm, y[i].scales);
        for (int j = 0; j < QK_K; j += 64)
            for (int l = 0; l < 32; l++) y[i].qs[j / 2 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

void slm_quantize_q5_K(const float *x, void *vy, int64_t n, const float *imp)
{
    block_q5_K *y = vy;
    static const asym_shape sh = { 8, 32, 31, 63 };
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float w[QK_K], D, Dm;
        uint8_t ls[16], lm[16], L[QK_K];
        slm_qweights(SLM_T_Q5_K, QK_K, 32, x, imp ? imp + i * QK_K : NULL, w);
        asym_super(&sh, x, w, &D, &Dm, ls, lm, L);
        y[i].d = slm_fp32_to_fp16(D);
        y[i].dmin = slm_fp32_to_fp16(Dm);
        pack_k4_scales(ls, lm, y[i].scales);
        memset(y[i].qh, 0, QK_K / 8);
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                int a = L[64 * j + l], b = L[64 * j + 32 + l];
                y[i].qs[32 * j + l] = (uint8_t)((a & 0xF) | ((b & 0xF) << 4));
                y[i].qh[l] |= (uint8_t)(((a >> 4) << (2 * j)) | ((b >> 4) << (2 * j + 1)));
            }
    }
}

void slm_quantize_q3_K(const float *x, void *vy, int64_t n, const float *imp)
{
    block_q3_K *y = vy;
    static const sym_shape sh = { 16, 16, -4, 3, -32, 31, KQ_SYM_CAND };
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float w[QK_K];
        int ls[16];
        int8_t L[QK_K];
        slm_qweights(SLM_T_Q3_K, QK_K, 16, x, imp ? imp + i * QK_K : NULL, w);
        float D = sym_super(&sh, x, w, ls, L);
        y[i].d = slm_fp32_to_fp16(D);
        memset(y[i].scales, 0, 12);
        for (int j = 0; j < 16; j++) {
            int l = ls[j] + 32;
            if (j < 8) y[i].scales[j] = (uint8_t)(l & 0xF);
            else y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
            y[i].scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
        }
        memset(y[i].hmask, 0, QK_K / 8);
        uint8_t U[QK_K];
        for (int e = 0; e < QK_K; e++) {
            int v = L[e] + 4;
            if (v > 3) { y[i].hmask[e % 32] |= (uint8_t)(1 << (e / 32)); v -= 4; }
            U[e] = (uint8_t)v;
        }
        pack_2bit(U, y[i].qs);
    }
}

void slm_quantize_q6_K(const float *x, void *vy, int64_t n, const float *imp)
{
    block_q6_K *y = vy;
    static const sym_shape sh = { 16, 16, -32, 31, -128, 127, KQ_SYM6_CAND };
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float w[QK_K];
        int ls[16];
        int8_t L[QK_K];
        slm_qweights(SLM_T_Q6_K, QK_K, 16, x, imp ? imp + i * QK_K : NULL, w);
        float D = sym_super(&sh, x, w, ls, L);
        y[i].d = slm_fp32_to_fp16(D);
        for (int j = 0; j < 16; j++) y[i].scales[j] = (int8_t)ls[j];
        uint8_t U[QK_K];
        for (int e = 0; e < QK_K; e++) U[e] = (uint8_t)(L[e] + 32);
        for (int h = 0; h < 2; h++) {
            uint8_t *ql = y[i].ql + 64 * h, *qh = y[i].qh + 32 * h;
            const uint8_t *u = U + 128 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((u[l] & 0xF) | ((u[l + 64] & 0xF) << 4));
                ql[l + 32] = (uint8_t)((u[l + 32] & 0xF) | ((u[l + 96] & 0xF) << 4));
                qh[l] = (uint8_t)((u[l] >> 4) | ((u[l + 32] >> 4) << 2) | ((u[l + 64] >> 4) << 4) | ((u[l + 96] >> 4) << 6));
            }
        }
    }
}
