/* libquant/matmul_avx2.c — single-token products with F16 / BF16 weights
 * (AVX2 + FMA + F16C). Decode is memory-bound: widening the weights in
 * registers and multiplying at once reads each weight byte once and writes
 * nothing, where the tile path (widen to a buffer, then sgemv) moves 3x the bytes.
 * The AVX2 set's gemv_half hook (runtime/matmul.c calls it through slm_gemv_half_kernel). */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_simd.h"

static inline float hsum(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

static inline __m256 load8(const uint16_t *p, int bf16)
{
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (!bf16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static inline float widen1(uint16_t h, int bf16)
{
    if (bf16) {
        union { uint32_t u; float f; } v = {(uint32_t)h << 16};
        return v.f;
    }
    return _cvtsh_ss(h);
}

void slm_gemv_half_avx2(const uint16_t *W, int bf16, int64_t n_in, int64_t r0, int64_t r1, const float *x,
                        float *out)
{
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *w = W + (size_t)r * (size_t)n_in;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
               a3 = _mm256_setzero_ps();
        int64_t c = 0;
        for (; c + 32 <= n_in; c += 32) {
            a0 = _mm256_fmadd_ps(load8(w + c, bf16), _mm256_loadu_ps(x + c), a0);
            a1 = _mm256_fmadd_ps(load8(w + c + 8, bf16), _mm256_loadu_ps(x + c + 8), a1);
            a2 = _mm256_fmadd_ps(load8(w + c + 16, bf16), _mm256_loadu_ps(x + c + 16), a2);
            a3 = _mm256_fmadd_ps(load8(w + c + 24, bf16), _mm256_loadu_ps(x + c + 24), a3);
        }
        for (; c + 8 <= n_in; c += 8)
            a0 = _mm256_fmadd_ps(load8(w + c, bf16), _mm256_loadu_ps(x + c), a0);
        float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        for (; c < n_in; c++)
            s += widen1(w[c], bf16) * x[c];
        out[r] = s;
    }
}
