/* libquant/iq1_avx512.c — AVX-512 (VNNI) kernels of IQ1_S and IQ1_M (bodies in iq1_x86.inc;
 * u8 x s8 dot by vpdpbusd, exact int32). */
#include <immintrin.h>
#include <string.h>

#include "qimpl.h"
#include "iq1.h"

#define K(name) iq1_avx512_##name
#define DOT_U8S8(acc, u, s) _mm256_dpbusd_epi32((acc), (u), (s))
#include "iq1_x86.inc"

void slm_iq1_kernels_avx512(slm_kernel_fns *tab) { iq1_avx512_iq1_fill(tab); }
