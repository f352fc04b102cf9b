/* bench/roof_avx2.c — the roofline probes of bench/roof_x86.inc for AVX2 (256-bit FMA chains). */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bench_internal.h"

#define K(name) name##_avx2
#define VF __m256
#define VF_SET1 _mm256_set1_ps
#define VF_FMADD _mm256_fmadd_ps
#include "roof_x86.inc"
