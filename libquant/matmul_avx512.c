/* libquant/matmul_avx512.c — single-token products with F16 / BF16 weights on
 * AVX-512: 16 weights widened per instruction, row by row (one sequential stream:
 * interleaving two rows, or prefetching ahead, measured slower once the weights
 * come from DRAM). Decode is memory-bound: the weights are read once and nothing
 * is written but the outputs. Rows are reduced 16 at a time (hsum16): a full
 * horizontal sum per row cost ~4 % of tg128 on SmolLM-135M's 576-column rows.
 * The AVX-512 set's gemv_half / gemv_f16x hooks (runtime/matmul.c calls them through
 * slm_gemv_half_kernel / slm_gemv_f16x_kernel). */
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

/* 16 row accumulators -> their 16 horizontal sums in one vector (lane i = sum of v[i]):
 * pairwise unpack/add levels instead of one full reduction per row */
static inline __m512 hsum16(const __m512 v[16])
{
    __m512 a[8], b[4], c[2];
    /* each level halves the vectors: pairs of rows interleaved and added, so that
     * at the end lane i holds row i's 16 partial sums added together */
    for (int i = 0; i < 8; i++)
        a[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++)
        b[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a[2 * i]), _mm512_castps_pd(a[2 * i + 1]))),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a[2 * i]), _mm512_castps_pd(a[2 * i + 1]))));
    for (int i = 0; i < 2; i++)
        c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88), _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xDD));
    __m512 lo = _mm512_shuffle_f32x4(c[0], c[1], 0x88), hi = _mm512_shuffle_f32x4(c[0], c[1], 0xDD);
    return _mm512_add_ps(lo, hi);
}

/* The row loop of both entry points: activations in F32 (x) or, with f16x, already
 * rounded to F16 (xh; F16 weights only). Inlined with constant bf16 / f16x, so each
 * caller gets its own loop without tests inside. */
static inline __attribute__((always_inline)) void gemv_rows(const uint16_t *W, int bf16, int f16x, int64_t n_in,
                                                            int64_t r0, int64_t r1, const float *x,
                                                            const uint16_t *xh, float *out)
{
#define XV(c) (f16x ? load16(xh + (c), 0) : _mm512_loadu_ps(x + (c)))
    int64_t r = r0;
    if (n_in % 64 == 0)
        for (; r + 16 <= r1; r += 16) {
            __m512 acc[16];
            for (int k = 0; k < 16; k++) {
                const uint16_t *w = W + (size_t)(r + k) * (size_t)n_in;
                __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
                for (int64_t c = 0; c < n_in; c += 64) {
                    a0 = _mm512_fmadd_ps(load16(w + c, bf16), XV(c), a0);
                    a1 = _mm512_fmadd_ps(load16(w + c + 16, bf16), XV(c + 16), a1);
                    a2 = _mm512_fmadd_ps(load16(w + c + 32, bf16), XV(c + 32), a2);
                    a3 = _mm512_fmadd_ps(load16(w + c + 48, bf16), XV(c + 48), a3);
                }
                acc[k] = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
            }
            _mm512_storeu_ps(out + r, hsum16(acc));
        }
    for (; r < r1; r++) {
        const uint16_t *w = W + (size_t)r * (size_t)n_in;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int64_t c = 0;
        for (; c + 64 <= n_in; c += 64) {
            a0 = _mm512_fmadd_ps(load16(w + c, bf16), XV(c), a0);
            a1 = _mm512_fmadd_ps(load16(w + c + 16, bf16), XV(c + 16), a1);
            a2 = _mm512_fmadd_ps(load16(w + c + 32, bf16), XV(c + 32), a2);
            a3 = _mm512_fmadd_ps(load16(w + c + 48, bf16), XV(c + 48), a3);
        }
        for (; c + 16 <= n_in; c += 16)
            a0 = _mm512_fmadd_ps(load16(w + c, bf16), XV(c), a0);
        float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
        for (; c < n_in; c++)
            s += widen1(w[c], bf16) * (f16x ? _cvtsh_ss(xh[c]) : x[c]);
        out[r] = s;
    }
#undef XV
}

void slm_gemv_half_avx512(const uint16_t *W, int bf16, int64_t n_in, int64_t r0, int64_t r1, const float *x,
                          float *out)
{
    if (bf16)
        gemv_rows(W, 1, 0, n_in, r0, r1, x, NULL, out);
    else
        gemv_rows(W, 0, 0, n_in, r0, r1, x, NULL, out);
}

/* F16 weights times F16 activations (x converted once per product, as
 * llama.cpp does): both sides widened in registers. Half the activation bytes
 * per row measured 5-10 % faster than F32 activations once the weights stream
 * from DRAM. */
void slm_gemv_f16_f16x_avx512(const uint16_t *W, int64_t n_in, int64_t r0, int64_t r1, const uint16_t *xh,
                              float *out)
{
    gemv_rows(W, 0, 1, n_in, r0, r1, NULL, xh, out);
}
