/* bench/roof_neon.c — the roofline probes for aarch64 Advanced SIMD: a streaming read
 * (xor of every 16-byte chunk into four accumulators) and 12 independent FMA chains of
 * 4-float vectors (12 * 2 * 4 flops per round). */
#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>

#include "bench_internal.h"

uint64_t bench_read_neon(const void *buf, size_t bytes)
{
    const uint8_t *p = buf;
    uint64x2_t a = vdupq_n_u64(0), b = a, c = a, d = a;
    for (size_t i = 0; i + 4 * 16 <= bytes; i += 4 * 16) {
        a = veorq_u64(a, vld1q_u64((const uint64_t *)(p + i)));
        b = veorq_u64(b, vld1q_u64((const uint64_t *)(p + i + 16)));
        c = veorq_u64(c, vld1q_u64((const uint64_t *)(p + i + 32)));
        d = veorq_u64(d, vld1q_u64((const uint64_t *)(p + i + 48)));
    }
    a = veorq_u64(veorq_u64(a, b), veorq_u64(c, d));
    return vgetq_lane_u64(a, 0) ^ vgetq_lane_u64(a, 1);
}

float bench_fma_neon(int64_t iters)
{
    float32x4_t acc[12];
    const float32x4_t m = vdupq_n_f32(0.999999f), c = vdupq_n_f32(1e-7f);
    for (int k = 0; k < 12; k++)
        acc[k] = vdupq_n_f32((float)k);
    for (int64_t i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int k = 0; k < 12; k++)
            acc[k] = vfmaq_f32(c, acc[k], m);
    }
    for (int k = 1; k < 12; k++)
        acc[0] = vaddq_f32(acc[0], acc[k]);
    return vaddvq_f32(acc[0]);
}
