/* libquant/iquants_avx512.c — AVX-512 (VNNI) kernels of the i-quant and ternary types
 * (bodies in iquants_x86.inc; u8 x s8 dot by vpdpbusd, exact int32). */
#include <immintrin.h>
#include <string.h>

#include "qimpl.h"
#include "iquants.h"

#define K(name) iq_avx512_##name
#define DOT_U8S8(acc, u, s) _mm256_dpbusd_epi32((acc), (u), (s))
#include "iquants_x86.inc"

void slm_iq_kernels_avx512(slm_kernel_fns *tab) { iq_avx512_iq_fill(tab); }
