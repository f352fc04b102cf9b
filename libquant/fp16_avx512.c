/* libquant/fp16_avx512.c — half / bfloat16 rows with AVX-512F/BW.
 * (vcvtneps2bf16 is not used: it flushes subnormals, ggml's rule does not.) */
#include <immintrin.h>

#include "qimpl.h"

void slm_fp32_to_fp16_row_avx512(const float *x, uint16_t *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(y + i), _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    slm_fp32_to_fp16_row_avx2(x + i, y + i, n - i);
}

void slm_fp16_to_fp32_row_avx512(const uint16_t *x, float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))));
    slm_fp16_to_fp32_row_avx2(x + i, y + i, n - i);
}

void slm_fp32_to_bf16_row_avx512(const float *x, uint16_t *y, int64_t n)
{
    int64_t i = 0;
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    for (; i + 16 <= n; i += 16) {
        __m512i u = _mm512_loadu_si512((const void *)(x + i));
        __mmask16 isnan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, absmask), inf);
        __m512i hi = _mm512_srli_epi32(u, 16);
        __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
        r = _mm512_mask_or_epi32(r, isnan, hi, _mm512_set1_epi32(64));
        _mm256_storeu_si256((__m256i *)(y + i), _mm512_cvtepi32_epi16(r));
    }
    slm_fp32_to_bf16_row_avx2(x + i, y + i, n - i);
}

void slm_bf16_to_fp32_row_avx512(const uint16_t *x, float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(x + i)));
        _mm512_storeu_si512((void *)(y + i), _mm512_slli_epi32(v, 16));
    }
    slm_bf16_to_fp32_row_avx2(x + i, y + i, n - i);
}
