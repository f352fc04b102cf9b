/* libquant/quant_avx512.c — AVX-512 kernels: the x86 kernel bodies (kernels_x86.inc)
 * with the u8 x s8 dot done by VNNI vpdpbusd (exact int32, no int16 stage), plus
 * 512-bit converts for the float types. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "qimpl.h"
#include "iquants.h"
#include "iq1.h"
#include "qrows.h"
#include "rt_simd.h"

#define K(name) avx512_##name
#define DOT_U8S8(acc, u, s) _mm256_dpbusd_epi32((acc), (u), (s))
#include "kernels_x86.inc"

void slm_avx512_kernels(slm_kernel_fns *tab) { avx512_fill(tab); }
slm_rows_fn slm_avx512_rows(uint32_t type) { return avx512_rows_for(type); }
slm_x8_fn slm_avx512_x8(uint32_t type) { return avx512_x8_for(type); }
slm_gemm_fn slm_avx512_gemm(uint32_t type) { return avx512_gemm_for(type); }
int slm_avx512_gemm_prep(uint32_t type, const float *x, int64_t n, int ntok, void *act)
{
    return avx512_gemm_prep(type, x, n, ntok, act);
}

/* the set's table (table.c fills the rest from the parent) */
void slm_kset_avx512(slm_kset *k)
{
    avx512_fill(k->t);
    for (uint32_t t = 0; t < SLM_T_COUNT; t++) {
        k->t[t].rows = avx512_rows_for(t);
        k->t[t].x8 = avx512_x8_for(t);
        k->t[t].gemm = avx512_gemm_for(t);
    }
    slm_iq_kernels_avx512(k->t); /* i-quants, ternary (iquants_avx512.c), after the rows loop */
    slm_iq3_kernels_avx512(k->t); /* IQ3_XXS, IQ3_S (iq3_avx512.c) */
    slm_iq2_kernels_avx512(k->t); /* IQ2_XXS, IQ2_XS, IQ2_S (iq2_avx512.c) */
    slm_iq1_kernels_avx512(k->t); /* IQ1_S, IQ1_M (iq1_avx512.c) */
    k->gemm_prep = avx512_gemm_prep;
    k->fp32_to_fp16_row = slm_fp32_to_fp16_row_avx512;
    k->fp16_to_fp32_row = slm_fp16_to_fp32_row_avx512;
    k->fp32_to_bf16_row = slm_fp32_to_bf16_row_avx512;
    k->bf16_to_fp32_row = slm_bf16_to_fp32_row_avx512;
    k->gemv_half = slm_gemv_half_avx512;
    k->gemv_f16x = slm_gemv_f16_f16x_avx512;
    k->gemm_half = slm_gemm_half_avx512;
    /* the quantizer's search helpers: the AVX2 ones (inherited) */
}
