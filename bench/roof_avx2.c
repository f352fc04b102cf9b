/* bench/roof_avx2.c — roofline probes with avx2 vectors: a streaming read (xor of
 * every 32-byte chunk into four accumulators, no software prefetch) and independent
 * FMA chains. */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bench_internal.h"

uint64_t bench_read_avx2(const void *buf, size_t bytes)
{
    const char *p = buf;
    __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256(), c = _mm256_setzero_si256(), d = _mm256_setzero_si256();
    for (size_t i = 0; i + 4 * 32 <= bytes; i += 4 * 32) {
        a = _mm256_xor_si256(a, _mm256_load_si256((const void *)(p + i)));
        b = _mm256_xor_si256(b, _mm256_load_si256((const void *)(p + i + 32)));
        c = _mm256_xor_si256(c, _mm256_load_si256((const void *)(p + i + 2 * 32)));
        d = _mm256_xor_si256(d, _mm256_load_si256((const void *)(p + i + 3 * 32)));
    }
    a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
    uint64_t out[32 / 8], r = 0;
    memcpy(out, &a, sizeof out);
    for (size_t k = 0; k < 32 / 8; k++)
        r ^= out[k];
    return r;
}

float bench_fma_avx2(int64_t iters)
{
    __m256 acc[12];
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int k = 0; k < 12; k++)
        acc[k] = _mm256_set1_ps((float)k);
    for (int64_t i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int k = 0; k < 12; k++)
            acc[k] = _mm256_fmadd_ps(acc[k], m, c);
    }
    float out[8], s = 0;
    for (int k = 1; k < 12; k++)
        acc[0] = acc[0] + acc[k];
    memcpy(out, &acc[0], sizeof out);
    for (int k = 0; k < 8; k++)
        s += out[k];
    return s;
}
