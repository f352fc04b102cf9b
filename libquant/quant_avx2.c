/* libquant/quant_avx2.c — AVX2 kernels (vec_dot, dequantize, activation quantizers);
 * the bodies are in kernels_x86.inc, with the u8 x s8 dot done by maddubs + madd. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "qimpl.h"
#include "iquants.h"
#include "iq1.h"
#include "qrows.h"
#include "rt_simd.h"

#define K(name) avx2_##name
#define DOT_U8S8(acc, u, s) \
    _mm256_add_epi32((acc), _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1)))
#include "kernels_x86.inc"

void slm_avx2_kernels(slm_kernel_fns *tab) { avx2_fill(tab); }
slm_rows_fn slm_avx2_rows(uint32_t type) { return avx2_rows_for(type); }
slm_x8_fn slm_avx2_x8(uint32_t type) { return avx2_x8_for(type); }

/* the set's table (table.c fills the rest from the parent) */
void slm_kset_avx2(slm_kset *k)
{
    avx2_fill(k->t);
    for (uint32_t t = 0; t < SLM_T_COUNT; t++)
        k->t[t].rows = avx2_rows_for(t);
    slm_iq_kernels_avx2(k->t); /* i-quants, ternary (iquants_avx2.c), after the rows loop */
    slm_iq3_kernels_avx2(k->t); /* IQ3_XXS, IQ3_S (iq3_avx2.c) */
    slm_iq2_kernels_avx2(k->t); /* IQ2_XXS, IQ2_XS, IQ2_S (iq2_avx2.c) */
    slm_iq1_kernels_avx2(k->t); /* IQ1_S, IQ1_M (iq1_avx2.c) */
    k->fp32_to_fp16_row = slm_fp32_to_fp16_row_avx2;
    k->fp16_to_fp32_row = slm_fp16_to_fp32_row_avx2;
    k->fp32_to_bf16_row = slm_fp32_to_bf16_row_avx2;
    k->bf16_to_fp32_row = slm_bf16_to_fp32_row_avx2;
    k->sym_eval4 = slm_sym_eval4_avx2;
    k->sym_sums_multi = slm_sym_sums_multi_avx2;
    k->asym_sums_multi = slm_asym_sums_multi_avx2;
    k->sym_err2 = slm_sym_err2_avx2;
    k->asym_err2 = slm_asym_err2_avx2;
    k->gemv_half = slm_gemv_half_avx2;
}
