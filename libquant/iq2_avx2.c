/* libquant/iq2_avx2.c — AVX2 kernels of IQ2_XXS, IQ2_XS, IQ2_S (bodies in iq2_x86.inc;
 * u8 x s8 dot by maddubs + madd: levels <= 43, pair sums fit int16). */
#include <immintrin.h>
#include <pthread.h>
#include <string.h>

#include "qimpl.h"
#include "iquants.h"
#include "iq2_grids.h"

#define K(name) iq2_avx2_##name
#define DOT_U8S8(acc, u, s) \
    _mm256_add_epi32((acc), _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1)))
#include "iq2_x86.inc"

void slm_iq2_kernels_avx2(slm_kernel_fns *tab) { iq2_avx2_iq2_fill(tab); }
