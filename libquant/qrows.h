/* libquant/qrows.h — the SIMD row kernels' entry points (quant_avx2.c,
 * quant_avx512.c), used by rows.c. Internal to libquant. */
#ifndef SLM_QROWS_H
#define SLM_QROWS_H

#include "libquant.h"

slm_rows_fn slm_avx2_rows(uint32_t type);
slm_rows_fn slm_avx512_rows(uint32_t type);
slm_x8_fn slm_avx2_x8(uint32_t type);
slm_x8_fn slm_avx512_x8(uint32_t type);
slm_x8_gemm_fn slm_avx512_x8_gemm(uint32_t type);

#endif
