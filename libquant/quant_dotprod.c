/* libquant/quant_dotprod.c — the dotprod kernel set (ARMv8.2-A SDOT: four int8 products
 * summed into each int32 lane in one instruction); kernel bodies in kernels_arm.inc.
 * Built with +dotprod, selected only when HWCAP_ASIMDDP is set. */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "qimpl.h"
#include "qrows.h"

#define K(name) dotprod_##name
#define DOT16(acc, a, b) vdotq_s32((acc), (a), (b))
#define DOT4L(acc, w, a, lane) vdotq_laneq_s32((acc), (w), (a), (lane))
#define GEMM_MMLA 0
#include "kernels_arm.inc"
#include "gemm_arm.inc"
#include "iquants_arm.inc"
#include "iqgrid_arm.inc"

/* the set's table (table.c fills the rest from the parent: neon) */
void slm_kset_dotprod(slm_kset *k)
{
    dotprod_fill(k->t);
    dotprod_gemm_fill(k);
    dotprod_iq_fill(k->t);
    dotprod_iqgrid_fill(k->t);
}
