/* libquant/qrows.h — the SIMD row kernels' entry points (quant_avx2.c,
 * quant_avx512.c), used by rows.c. Internal to libquant. */
#ifndef SLM_QROWS_H
#define SLM_QROWS_H

#include "libquant.h"

slm_rows_fn slm_avx2_rows(uint32_t type);
slm_rows_fn slm_avx512_rows(uint32_t type);
slm_x8_fn slm_avx2_x8(uint32_t type);
slm_x8_fn slm_avx512_x8(uint32_t type);
slm_gemm_fn slm_avx512_gemm(uint32_t type);
int slm_avx512_gemm_prep(uint32_t type, const float *x, int64_t n, int ntok, void *act);
/* the scalar set's row kernels: vec_dot row by row (rows.c) */
slm_rows_fn slm_scalar_rows(uint32_t type);
/* k-quant x8 layout: one group's super-block (8 blocks interleaved) back to 8 blocks,
 * block k at dst + k * dst_stride (rows.c) */
void slm_x8_kunshuffle(uint32_t type, const void *src, void *dst, size_t dst_stride);
/* k-quant x8 layout: bytes of one group's super-block (8 blocks of bs bytes; Q6_K's
 * padded to whole 64-byte lines so that every super-block starts on a cache line: 1680
 * -> 1728; see rows.c) */
static inline size_t slm_x8_ksb(uint32_t type, size_t bs) { return type == SLM_T_Q6_K ? (8 * bs + 63) / 64 * 64 : 8 * bs; }

#endif
