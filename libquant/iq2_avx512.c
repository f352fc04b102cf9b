/* libquant/iq2_avx512.c — AVX512 kernels of IQ2_XXS, IQ2_XS, IQ2_S (bodies in iq2_x86.inc;
 * u8 x s8 dot by vpdpbusd). */
#include <immintrin.h>
#include <pthread.h>
#include <string.h>

#include "qimpl.h"
#include "iquants.h"
#include "iq2_grids.h"

#define K(name) iq2_avx512_##name
#define DOT_U8S8(acc, u, s) _mm256_dpbusd_epi32((acc), (u), (s))
#include "iq2_x86.inc"

void slm_iq2_kernels_avx512(slm_kernel_fns *tab) { iq2_avx512_iq2_fill(tab); }
