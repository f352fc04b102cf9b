/* libquant/fp16.c — float <-> half / bfloat16 rows (scalar and dispatched).
 *
 * Half: round to nearest even, overflow to Inf, subnormals exact, NaN kept
 * (quiet bit set, top payload bits kept) — the bits F16C's vcvtps2ph gives with
 * rounding mode 0, so scalar and SIMD rows agree bit for bit.
 * BF16: ggml's rule — NaN -> quiet NaN (upper 16 bits | 0x40), otherwise
 * round to nearest even on the upper 16 bits (no flushing of subnormals).
 */
#include <string.h>

#include "qimpl.h"

/* The scalar conversions are base/half.c's; these are the rows. */

void slm_fp32_to_fp16_row_scalar(const float *x, uint16_t *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = slm_fp32_to_fp16(x[i]);
}
void slm_fp16_to_fp32_row_scalar(const uint16_t *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = slm_h2f(x[i]);
}
void slm_fp32_to_bf16_row_scalar(const float *x, uint16_t *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = slm_fp32_to_bf16(x[i]);
}
void slm_bf16_to_fp32_row_scalar(const uint16_t *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = slm_bf16_to_fp32(x[i]);
}

/* Dispatched rows: the active kernel set's converters. */
#define ROW_DISPATCH(name, tin, tout)                                              \
    void slm_##name##_row(const tin *x, tout *y, int64_t n)                         \
    {                                                                              \
        slm_kset_active()->name##_row(x, y, n);                                    \
    }
ROW_DISPATCH(fp32_to_fp16, float, uint16_t)
ROW_DISPATCH(fp16_to_fp32, uint16_t, float)
ROW_DISPATCH(fp32_to_bf16, float, uint16_t)
ROW_DISPATCH(bf16_to_fp32, uint16_t, float)
