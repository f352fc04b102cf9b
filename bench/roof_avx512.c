/* bench/roof_avx512.c — roofline probes with avx512 vectors: a streaming read
 * (xor of every 64-byte line chunk) and independent FMA chains. */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bench_internal.h"

uint64_t bench_read_avx512(const void *buf, size_t bytes)
{
    const char *p = buf;
    __m512i a = _mm512_setzero_si512(), b = _mm512_setzero_si512(), c = _mm512_setzero_si512(), d = _mm512_setzero_si512();
    for (size_t i = 0; i + 4 * 64 <= bytes; i += 4 * 64) {
        _mm_prefetch(p + i + 2048, _MM_HINT_T0); /* as the kernels do: ahead of the stream */
        a = _mm512_xor_si512(a, _mm512_load_si512((const void *)(p + i)));
        b = _mm512_xor_si512(b, _mm512_load_si512((const void *)(p + i + 64)));
        c = _mm512_xor_si512(c, _mm512_load_si512((const void *)(p + i + 2 * 64)));
        d = _mm512_xor_si512(d, _mm512_load_si512((const void *)(p + i + 3 * 64)));
    }
    a = _mm512_xor_si512(_mm512_xor_si512(a, b), _mm512_xor_si512(c, d));
    uint64_t out[64 / 8], r = 0;
    memcpy(out, &a, sizeof out);
    for (size_t k = 0; k < 64 / 8; k++)
        r ^= out[k];
    return r;
}

float bench_fma_avx512(int64_t iters)
{
    __m512 acc[12];
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int k = 0; k < 12; k++)
        acc[k] = _mm512_set1_ps((float)k);
    for (int64_t i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int k = 0; k < 12; k++)
            acc[k] = _mm512_fmadd_ps(acc[k], m, c);
    }
    float out[16], s = 0;
    for (int k = 1; k < 12; k++)
        acc[0] = acc[0] + acc[k];
    memcpy(out, &acc[0], sizeof out);
    for (int k = 0; k < 16; k++)
        s += out[k];
    return s;
}
