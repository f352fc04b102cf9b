/* bench/roof_avx512.c — the roofline probes of bench/roof_x86.inc for AVX-512 (512-bit FMA chains). */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bench_internal.h"

#define K(name) name##_avx512
#define VF __m512
#define VF_SET1 _mm512_set1_ps
#define VF_FMADD _mm512_fmadd_ps
#include "roof_x86.inc"
