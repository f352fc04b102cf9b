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
#define K(name) neon_##name
#define DOT16(acc, a, b) dot16_neon((acc), (a), (b))
#include "kernels_arm.inc"

/* the set's table (table.c fills the rest from the parent: scalar) */
void slm_kset_neon(slm_kset *k)
{
    neon_fill(k->t);
    k->fp32_to_fp16_row = slm_fp32_to_fp16_row_neon;
    k->fp16_to_fp32_row = slm_fp16_to_fp32_row_neon;
    k->fp32_to_bf16_row = slm_fp32_to_bf16_row_neon;
    k->bf16_to_fp32_row = slm_bf16_to_fp32_row_neon;
    k->gemv_half = slm_gemv_half_neon;
}
