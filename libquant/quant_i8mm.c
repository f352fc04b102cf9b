/* libquant/quant_i8mm.c — the i8mm kernel set (ARMv8.6-A SMMLA: a 2 x 8 by 8 x 2 int8 matrix
 * product into 2 x 2 int32 per instruction). Built with +i8mm, selected only when
 * HWCAP2_I8MM is set. Its hook is the batch GEMM (gemm_arm.inc): each SMMLA advances 2
 * weight rows x 2 tokens by 8 bytes. Everything else comes from the parent set (dotprod):
 * single-token products (vec_dot, rows, x8 decode) have one token, so SMMLA would waste half
 * its products on a second, absent one and does no more work per instruction than SDOT. */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "qimpl.h"
#include "qrows.h"

#define K(name) i8mm_##name
#define GEMM_MMLA 1
#include "gemm_arm.inc"

/* the set's table (table.c fills the rest from the parent: dotprod) */
void slm_kset_i8mm(slm_kset *k) { i8mm_gemm_fill(k); }
