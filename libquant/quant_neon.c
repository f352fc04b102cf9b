/* libquant/quant_neon.c — the NEON kernel set (aarch64 Advanced SIMD, baseline ARMv8-A:
 * every aarch64 CPU runs it). int8 products by smull + sadalp (exact: |q| * |y| <= 128 *
 * 127 fits int16); kernel bodies in kernels_arm.inc. */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "qimpl.h"
#include "qrows.h"
#include "rt_simd.h"

static inline int32x4_t dot16_neon(int32x4_t acc, int8x16_t a, int8x16_t b)
{
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
}
/* 4 rows (lanes of w) x the same 4 bytes of b each, for the GEMM and x8 kernels */
static inline int32x4_t dot4_neon(int32x4_t acc, int8x16_t w, int8x16_t b)
{
    const int32x4_t lo = vpaddlq_s16(vmull_s8(vget_low_s8(w), vget_low_s8(b)));
    const int32x4_t hi = vpaddlq_s16(vmull_high_s8(w, b));
    return vaddq_s32(acc, vpaddq_s32(lo, hi));
}
#define K(name) neon_##name
#define DOT16(acc, a, b) dot16_neon((acc), (a), (b))
#define DOT4L(acc, w, a, lane) dot4_neon((acc), (w), vreinterpretq_s8_s32(vdupq_laneq_s32(vreinterpretq_s32_s8(a), (lane))))
#define GEMM_MMLA 0
#include "kernels_arm.inc"
#include "gemm_arm.inc"
#include "iquants_arm.inc"
#include "iqgrid_arm.inc"

/* the set's table (table.c fills the rest from the parent: scalar) */
void slm_kset_neon(slm_kset *k)
{
    neon_fill(k->t);
    neon_gemm_fill(k);
    neon_iq_fill(k->t);
    neon_iqgrid_fill(k->t);
    k->fp32_to_fp16_row = slm_fp32_to_fp16_row_neon;
    k->fp16_to_fp32_row = slm_fp16_to_fp32_row_neon;
    k->fp32_to_bf16_row = slm_fp32_to_bf16_row_neon;
    k->bf16_to_fp32_row = slm_bf16_to_fp32_row_neon;
    k->gemv_half = slm_gemv_half_neon;
}
