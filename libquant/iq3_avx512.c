/* libquant/iq3_avx512.c — AVX-512 (VNNI) kernels of IQ3_XXS and IQ3_S (bodies in
 * iq3_x86.inc; u8 x s8 dot by vpdpbusd, exact int32). */
#include <immintrin.h>
#include <string.h>

#include "qimpl.h"
#include "iquants.h"
#include "iq2_grids.h"

#define K(name) iq3_avx512_##name
#define DOT_U8S8(acc, u, s) _mm256_dpbusd_epi32((acc), (u), (s))
#include "iq3_x86.inc"

void slm_iq3_kernels_avx512(slm_kernel_fns *tab) { iq3_avx512_iq3_fill(tab); }
