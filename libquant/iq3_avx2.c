/* libquant/iq3_avx2.c — AVX2 kernels of IQ3_XXS and IQ3_S (bodies in iq3_x86.inc;
 * u8 x s8 dot by maddubs + madd). */
#include <immintrin.h>
#include <string.h>

#include "qimpl.h"
#include "iquants.h"
#include "iq2_grids.h"

#define K(name) iq3_avx2_##name
#define DOT_U8S8(acc, u, s) \
    _mm256_add_epi32((acc), _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1)))
#include "iq3_x86.inc"

void slm_iq3_kernels_avx2(slm_kernel_fns *tab) { iq3_avx2_iq3_fill(tab); }
