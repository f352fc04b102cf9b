/* libquant/quant_avx2.c — AVX2 kernels (vec_dot, dequantize, activation quantizers);
 * the bodies are in kernels_x86.inc, with the u8 x s8 dot done by maddubs + madd. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "qimpl.h"
#include "qrows.h"

#define K(name) avx2_##name
#define DOT_U8S8(acc, u, s) \
    _mm256_add_epi32((acc), _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1)))
#include "kernels_x86.inc"

void slm_avx2_kernels(slm_kernel_fns *tab) { avx2_fill(tab); }
slm_rows_fn slm_avx2_rows(uint32_t type) { return avx2_rows_for(type); }
slm_x8_fn slm_avx2_x8(uint32_t type) { return avx2_x8_for(type); }
