/* libquant/search_avx2.c — AVX2 versions of the search loops in search.c.
 *
 * The baseline loops work on 4 lanes (one SSE2 register per 4 elements) and sum each
 * lane in element order. Here one 256-bit register holds the SAME 4 elements twice and
 * evaluates two candidate scales at once (low half: candidate a, high half: b), so every
 * lane does exactly the float operations of the baseline in the same order: the results
 * are bit-identical (tests/test_libquant.c checks it). No FMA is used on purpose: a
 * fused multiply-add rounds differently from the baseline's mul + add.
 */
#include <immintrin.h>
#include <string.h>

#include "qimpl.h"

#define RND_MAGIC 12582912.f

/* max_ps(a, b) is a > b ? a : b and min_ps(a, b) a < b ? a : b, so with lo / hi first these
 * are the baseline's v < lo ? lo : v and v > hi ? hi : v exactly (NaN and -0 included). */
static inline __m256 clamp_round(__m256 v, __m256 lo, __m256 hi)
{
    const __m256 magic = _mm256_set1_ps(RND_MAGIC);
    v = _mm256_min_ps(hi, _mm256_max_ps(lo, v));
    return _mm256_sub_ps(_mm256_add_ps(v, magic), magic);
}

/* The baseline's horizontal sum of 4 lanes, (l0 + l2) + (l1 + l3), for each half. */
static inline void hsum_halves(__m256 v, float *a, float *b)
{
    /* in each half: (t0 + t2, t1 + t3, ...), then lane 0 + lane 1 (IEEE addition commutes) */
    const __m256 s = _mm256_add_ps(v, _mm256_permute_ps(v, 0x4E));
    const __m256 r = _mm256_add_ps(s, _mm256_permute_ps(s, 0xB1));
    *a = _mm256_cvtss_f32(r);
    *b = _mm_cvtss_f32(_mm256_extractf128_ps(r, 1));
}

static inline __m256 pair(float a, float b)
{
    return _mm256_setr_ps(a, a, a, a, b, b, b, b);
}

void slm_sym_sums_multi_avx2(int n4, const float *x, const float *w, const float *is, int ncand, float lo, float hi,
                             float *sxq, float *sqq)
{
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    for (int c = 0; c < ncand; c += 2) {
        const int c2 = c + 1 < ncand ? c + 1 : c;
        const __m256 vis = pair(is[c], is[c2]);
        __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
        for (int k = 0; k < n4; k++) {
            const __m256 xv = _mm256_broadcast_ps((const __m128 *)(x + 4 * k));
            const __m256 wv = _mm256_broadcast_ps((const __m128 *)(w + 4 * k));
            const __m256 q = clamp_round(_mm256_mul_ps(xv, vis), vlo, vhi), wq = _mm256_mul_ps(wv, q);
            a = _mm256_add_ps(a, _mm256_mul_ps(wq, xv));
            b = _mm256_add_ps(b, _mm256_mul_ps(wq, q));
        }
        float sa, sb, qa, qb;
        hsum_halves(a, &sa, &sb);
        hsum_halves(b, &qa, &qb);
        sxq[c] = sa; sqq[c] = qa;
        if (c2 != c) { sxq[c2] = sb; sqq[c2] = qb; }
    }
}

void slm_asym_sums_multi_avx2(int n4, const float *x, const float *w, float xmin, const float *is, int ncand,
                              float nmax, float *sq, float *sqq, float *sxq)
{
    const __m256 vlo = _mm256_setzero_ps(), vhi = _mm256_set1_ps(nmax), vmin = _mm256_set1_ps(xmin);
    for (int c = 0; c < ncand; c += 2) {
        const int c2 = c + 1 < ncand ? c + 1 : c;
        const __m256 vis = pair(is[c], is[c2]);
        __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps(), d = _mm256_setzero_ps();
        for (int k = 0; k < n4; k++) {
            const __m256 xv = _mm256_broadcast_ps((const __m128 *)(x + 4 * k));
            const __m256 wv = _mm256_broadcast_ps((const __m128 *)(w + 4 * k));
            const __m256 q = clamp_round(_mm256_mul_ps(_mm256_sub_ps(xv, vmin), vis), vlo, vhi);
            const __m256 wq = _mm256_mul_ps(wv, q);
            a = _mm256_add_ps(a, wq);
            b = _mm256_add_ps(b, _mm256_mul_ps(wq, q));
            d = _mm256_add_ps(d, _mm256_mul_ps(wq, xv));
        }
        float s0, s1;
        hsum_halves(a, &s0, &s1); sq[c] = s0; if (c2 != c) sq[c2] = s1;
        hsum_halves(b, &s0, &s1); sqq[c] = s0; if (c2 != c) sqq[c2] = s1;
        hsum_halves(d, &s0, &s1); sxq[c] = s0; if (c2 != c) sxq[c2] = s1;
    }
}

void slm_sym_err2_avx2(int len, const float *x, const float *w, float d1a, float d1b, int qlo, int qhi, float *ea,
                       float *eb)
{
    const __m256 vlo = _mm256_set1_ps((float)qlo), vhi = _mm256_set1_ps((float)qhi);
    const __m256 vid = pair(d1a != 0 ? 1.0f / d1a : 0.0f, d1b != 0 ? 1.0f / d1b : 0.0f), vd = pair(d1a, d1b);
    __m256 acc = _mm256_setzero_ps();
    for (int k = 0; k < len; k += 4) {
        const __m256 xv = _mm256_broadcast_ps((const __m128 *)(x + k));
        const __m256 wv = _mm256_broadcast_ps((const __m128 *)(w + k));
        const __m256 q = clamp_round(_mm256_mul_ps(xv, vid), vlo, vhi);
        const __m256 e = _mm256_sub_ps(xv, _mm256_mul_ps(vd, q));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_mul_ps(wv, e), e));
    }
    hsum_halves(acc, ea, eb);
}

void slm_asym_err2_avx2(int len, const float *x, const float *w, float d1a, float m1a, float d1b, float m1b, int nmax,
                        float *ea, float *eb)
{
    const __m256 vlo = _mm256_setzero_ps(), vhi = _mm256_set1_ps((float)nmax);
    const __m256 vid = pair(d1a > 0 ? 1.0f / d1a : 0.0f, d1b > 0 ? 1.0f / d1b : 0.0f), vd = pair(d1a, d1b);
    const __m256 vm = pair(m1a, m1b);
    __m256 acc = _mm256_setzero_ps();
    for (int k = 0; k < len; k += 4) {
        const __m256 xv = _mm256_broadcast_ps((const __m128 *)(x + k));
        const __m256 wv = _mm256_broadcast_ps((const __m128 *)(w + k));
        const __m256 q = clamp_round(_mm256_mul_ps(_mm256_add_ps(xv, vm), vid), vlo, vhi);
        const __m256 e = _mm256_sub_ps(xv, _mm256_sub_ps(_mm256_mul_ps(vd, q), vm));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_mul_ps(wv, e), e));
    }
    hsum_halves(acc, ea, eb);
}

/* slm_sym_eval's four-lane sum (search.c), four elements per step: x * id in float,
 * the baseline's clamp-then-round (values not above lo, NaN included, give lo;
 * values at or above hi give hi; else round half to even), d * q in float, then
 * e = x - dq and w * e * e in double, separate multiplies and adds (no FMA). */
void slm_sym_eval4_avx2(int n4, const float *x, const float *w, int qlo, int qhi, float d, float id, double lane[4],
                        int8_t *L)
{
    const __m128 vid = _mm_set1_ps(id), vd = _mm_set1_ps(d), lo = _mm_set1_ps((float)qlo), hi = _mm_set1_ps((float)qhi);
    const __m128 magic = _mm_set1_ps(RND_MAGIC), zero = _mm_setzero_ps();
    const int dz = d == 0;
    __m256d acc = _mm256_setzero_pd();
    for (int i = 0; i < n4; i += 4) {
        __m128 xv = _mm_loadu_ps(x + i);
        __m128 q;
        if (dz) {
            q = zero;
        } else {
            __m128 v = _mm_mul_ps(xv, vid);
            v = _mm_blendv_ps(lo, v, _mm_cmp_ps(v, lo, _CMP_GT_OQ));  /* !(v > lo) -> lo */
            v = _mm_blendv_ps(v, hi, _mm_cmp_ps(v, hi, _CMP_GE_OQ));  /* v >= hi -> hi */
            q = _mm_sub_ps(_mm_add_ps(v, magic), magic);
        }
        __m128i qi = _mm_cvtps_epi32(q); /* exact: q holds an integer */
        qi = _mm_packs_epi32(qi, qi);
        qi = _mm_packs_epi16(qi, qi);
        int32_t packed = _mm_cvtsi128_si32(qi);
        memcpy(L + i, &packed, 4);
        __m256d e = _mm256_sub_pd(_mm256_cvtps_pd(xv), _mm256_cvtps_pd(_mm_mul_ps(vd, q)));
        __m256d t = _mm256_mul_pd(_mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(w + i)), e), e);
        acc = _mm256_add_pd(acc, t);
    }
    _mm256_storeu_pd(lane, acc);
}
