/* libquant/quant_neon.c — the NEON kernel set (aarch64 Advanced SIMD, baseline ARMv8-A):
 * every aarch64 CPU runs it. Kernel bodies are in kernels_arm.inc. */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "qimpl.h"
#include "qrows.h"

/* the set's table (table.c fills the rest from the parent: scalar) */
void slm_kset_neon(slm_kset *k)
{
    k->fp32_to_fp16_row = slm_fp32_to_fp16_row_neon;
    k->fp16_to_fp32_row = slm_fp16_to_fp32_row_neon;
    k->fp32_to_bf16_row = slm_fp32_to_bf16_row_neon;
    k->bf16_to_fp32_row = slm_bf16_to_fp32_row_neon;
}
