/* libquant/matmul_neon.c — single-token products with F16 / BF16 weights on aarch64
 * Advanced SIMD: 16 weights widened to float per step (fcvtl / shll), four independent
 * FMA accumulators per row, the tail in scalar. The NEON set's gemv_half hook. */
#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>

#include "qimpl.h"
#include "rt_simd.h"

static inline float32x4_t widen_lo(uint16x8_t h, int bf16)
{
    return bf16 ? vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16))
                : vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h)));
}
static inline float32x4_t widen_hi(uint16x8_t h, int bf16)
{
    return bf16 ? vreinterpretq_f32_u32(vshll_high_n_u16(h, 16)) : vcvt_high_f32_f16(vreinterpretq_f16_u16(h));
}

void slm_gemv_half_neon(const uint16_t *W, int bf16, int64_t n_in, int64_t r0, int64_t r1, const float *x,
                        float *out)
{
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *w = W + (size_t)r * (size_t)n_in;
        float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;
        int64_t i = 0;
        for (; i + 16 <= n_in; i += 16) {
            uint16x8_t h0 = vld1q_u16(w + i), h1 = vld1q_u16(w + i + 8);
            a0 = vfmaq_f32(a0, widen_lo(h0, bf16), vld1q_f32(x + i));
            a1 = vfmaq_f32(a1, widen_hi(h0, bf16), vld1q_f32(x + i + 4));
            a2 = vfmaq_f32(a2, widen_lo(h1, bf16), vld1q_f32(x + i + 8));
            a3 = vfmaq_f32(a3, widen_hi(h1, bf16), vld1q_f32(x + i + 12));
        }
        float s = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
        for (; i < n_in; i++)
            s += (bf16 ? slm_bf16_to_fp32(w[i]) : slm_h2f(w[i])) * x[i];
        out[r] = s;
    }
}
