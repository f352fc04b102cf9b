/* runtime/matmul_avx512.c — single-token products with F16 / BF16 weights on
 * AVX-512: 16 weights widened per instruction, row by row (one sequential stream:
 * interleaving two rows, or prefetching ahead, measured slower once the weights
 * come from DRAM). Decode is memory-bound: the weights are read once and nothing
 * is written but the outputs. Chosen at run time by matmul.c when
 * slm_kernel_active() is AVX512. */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_simd.h"

static inline __m512 load16(const uint16_t *p, int bf16)
{
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    if (!bf16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static inline float widen1(uint16_t h, int bf16)
{
    if (bf16) {
        union { uint32_t u; float f; } v = {(uint32_t)h << 16};
        return v.f;
    }
    return _cvtsh_ss(h);
}

void slm_gemv_half_avx512(const uint16_t *W, int bf16, int64_t n_in, int64_t r0, int64_t r1, const float *x,
                          float *out)
{
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *w = W + (size_t)r * (size_t)n_in;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int64_t c = 0;
        for (; c + 64 <= n_in; c += 64) {
            a0 = _mm512_fmadd_ps(load16(w + c, bf16), _mm512_loadu_ps(x + c), a0);
            a1 = _mm512_fmadd_ps(load16(w + c + 16, bf16), _mm512_loadu_ps(x + c + 16), a1);
            a2 = _mm512_fmadd_ps(load16(w + c + 32, bf16), _mm512_loadu_ps(x + c + 32), a2);
            a3 = _mm512_fmadd_ps(load16(w + c + 48, bf16), _mm512_loadu_ps(x + c + 48), a3);
        }
        for (; c + 16 <= n_in; c += 16)
            a0 = _mm512_fmadd_ps(load16(w + c, bf16), _mm512_loadu_ps(x + c), a0);
        float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
        for (; c < n_in; c++)
            s += widen1(w[c], bf16) * x[c];
        out[r] = s;
    }
}

/* F16 weights times F16 activations (x converted once per product, as
 * llama.cpp does): both sides widened in registers. Half the activation bytes
 * per row measured 5-10 % faster than F32 activations once the weights stream
 * from DRAM. */
void slm_gemv_f16_f16x_avx512(const uint16_t *W, int64_t n_in, int64_t r0, int64_t r1, const uint16_t *xh,
                              float *out)
{
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *w = W + (size_t)r * (size_t)n_in;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int64_t c = 0;
        for (; c + 64 <= n_in; c += 64) {
            a0 = _mm512_fmadd_ps(load16(w + c, 0), load16(xh + c, 0), a0);
            a1 = _mm512_fmadd_ps(load16(w + c + 16, 0), load16(xh + c + 16, 0), a1);
            a2 = _mm512_fmadd_ps(load16(w + c + 32, 0), load16(xh + c + 32, 0), a2);
            a3 = _mm512_fmadd_ps(load16(w + c + 48, 0), load16(xh + c + 48, 0), a3);
        }
        for (; c + 16 <= n_in; c += 16)
            a0 = _mm512_fmadd_ps(load16(w + c, 0), load16(xh + c, 0), a0);
        float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
        for (; c < n_in; c++)
            s += _cvtsh_ss(w[c]) * _cvtsh_ss(xh[c]);
        out[r] = s;
    }
}
