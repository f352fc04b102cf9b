/* libquant/fp16_neon.c — half / bfloat16 rows with aarch64 Advanced SIMD (baseline
 * ARMv8: fcvtn / fcvtl round to nearest even and keep NaNs quiet, as F16C does, so the
 * rows equal the scalar ones bit for bit; bf16 in integer lanes with ggml's rule). */
#include <arm_neon.h>

#include "qimpl.h"

void slm_fp32_to_fp16_row_neon(const float *x, uint16_t *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float16x8_t h = vcombine_f16(vcvt_f16_f32(vld1q_f32(x + i)), vcvt_f16_f32(vld1q_f32(x + i + 4)));
        vst1q_u16(y + i, vreinterpretq_u16_f16(h));
    }
    slm_fp32_to_fp16_row_scalar(x + i, y + i, n - i);
}

void slm_fp16_to_fp32_row_neon(const uint16_t *x, float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(x + i));
        vst1q_f32(y + i, vcvt_f32_f16(vget_low_f16(h)));
        vst1q_f32(y + i + 4, vcvt_high_f32_f16(h));
    }
    slm_fp16_to_fp32_row_scalar(x + i, y + i, n - i);
}

/* ggml's bf16 rule: NaN -> (u >> 16) | 64, else round to nearest even on bit 16 */
static inline uint16x4_t bf16_from_4(uint32x4_t u)
{
    uint32x4_t absu = vandq_u32(u, vdupq_n_u32(0x7fffffff));
    uint32x4_t isnan = vcgtq_u32(absu, vdupq_n_u32(0x7f800000));
    uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    uint32x4_t r = vshrq_n_u32(vaddq_u32(u, vaddq_u32(lsb, vdupq_n_u32(0x7fff))), 16);
    uint32x4_t qn = vorrq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(64));
    return vmovn_u32(vbslq_u32(isnan, qn, r));
}

void slm_fp32_to_bf16_row_neon(const float *x, uint16_t *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint16x4_t lo = bf16_from_4(vreinterpretq_u32_f32(vld1q_f32(x + i)));
        uint16x4_t hi = bf16_from_4(vreinterpretq_u32_f32(vld1q_f32(x + i + 4)));
        vst1q_u16(y + i, vcombine_u16(lo, hi));
    }
    slm_fp32_to_bf16_row_scalar(x + i, y + i, n - i);
}

void slm_bf16_to_fp32_row_neon(const uint16_t *x, float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint16x8_t v = vld1q_u16(x + i);
        vst1q_u32((uint32_t *)(y + i), vshll_n_u16(vget_low_u16(v), 16));
        vst1q_u32((uint32_t *)(y + i + 4), vshll_high_n_u16(v, 16));
    }
    slm_bf16_to_fp32_row_scalar(x + i, y + i, n - i);
}
