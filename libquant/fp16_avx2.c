/* libquant/fp16_avx2.c — half / bfloat16 rows with AVX2 + F16C. */
#include <immintrin.h>

#include "qimpl.h"

void slm_fp32_to_fp16_row_avx2(const float *x, uint16_t *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    slm_fp32_to_fp16_row_scalar(x + i, y + i, n - i);
}

void slm_fp16_to_fp32_row_avx2(const uint16_t *x, float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    slm_fp16_to_fp32_row_scalar(x + i, y + i, n - i);
}

/* ggml's bf16 rule in integer lanes: NaN -> (u >> 16) | 64, else RNE. */
static inline __m128i bf16_from_8(__m256i u)
{
    __m256i absu = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
    __m256i isnan = _mm256_cmpgt_epi32(absu, _mm256_set1_epi32(0x7f800000));
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    __m256i qn = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64));
    r = _mm256_blendv_epi8(r, qn, isnan);
    /* pack 8 x u32 (all < 65536) to 8 x u16 */
    __m256i p = _mm256_packus_epi32(r, r); /* lanes: [0..3 0..3 | 4..7 4..7] */
    p = _mm256_permute4x64_epi64(p, 0x08); /* qwords 0, 2 */
    return _mm256_castsi256_si128(p);
}

void slm_fp32_to_bf16_row_avx2(const float *x, uint16_t *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), bf16_from_8(_mm256_loadu_si256((const __m256i *)(x + i))));
    slm_fp32_to_bf16_row_scalar(x + i, y + i, n - i);
}

void slm_bf16_to_fp32_row_avx2(const uint16_t *x, float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_si256((__m256i *)(y + i), _mm256_slli_epi32(v, 16));
    }
    slm_bf16_to_fp32_row_scalar(x + i, y + i, n - i);
}
