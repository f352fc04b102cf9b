/* libquant/rt_simd.h — the F16 / BF16 single-token products of the kernel sets
 * (matmul_<set>.c, built with the set's flags), reached by the runtime through
 * slm_gemv_half_kernel / slm_gemv_f16x_kernel, and the F16 / BF16 batch GEMM
 * (gemm_half_avx512.c, slm_gemm_half_kernel). Internal to libquant. */
#ifndef SLM_RT_SIMD_H
#define SLM_RT_SIMD_H

#include <stdint.h>

/* out[r] = dot(W row r, x) for r in [r0, r1); W holds F16 (bf16 = 0) or BF16
 * values, rows of n_in back to back. */
void slm_gemv_half_avx2(const uint16_t *W, int bf16, int64_t n_in, int64_t r0, int64_t r1, const float *x,
                        float *out);
/* The same with AVX-512 (matmul_avx512.c). */
void slm_gemv_half_avx512(const uint16_t *W, int bf16, int64_t n_in, int64_t r0, int64_t r1, const float *x,
                          float *out);

/* The same with aarch64 Advanced SIMD (matmul_neon.c). */
void slm_gemv_half_neon(const uint16_t *W, int bf16, int64_t n_in, int64_t r0, int64_t r1, const float *x,
                        float *out);

/* F16 weights, activations already rounded to F16 (xh): AVX-512; aarch64 FMLAL
 * (matmul_fhm.c, needs FEAT_FHM: a set may take it only if it needs SLM_CAP_FHM). */
void slm_gemv_f16_f16x_avx512(const uint16_t *W, int64_t n_in, int64_t r0, int64_t r1, const uint16_t *xh,
                              float *out);
void slm_gemv_f16x_fhm(const uint16_t *W, int64_t n_in, int64_t r0, int64_t r1, const uint16_t *xh, float *out);

/* F16 / BF16 batch GEMM, F32 FMA on AVX-512 (gemm_half_avx512.c; contract: slm_gemm_half_fn) */
void slm_gemm_half_avx512(const uint16_t *W, int bf16, int64_t n_in, int64_t r0, int64_t r1, const float *x, int ntok,
                          float *out, int64_t lds, void *scratch);

#endif
