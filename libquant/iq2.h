/* libquant/iq2.h — IQ2_XXS, IQ2_XS, IQ2_S: block structs byte-identical to ggml's
 * (ggml-common.h), a static_assert on each; included by iquants.h (needs qimpl.h).
 *
 * Every type: 256 weights in 32 groups of 8; a group is an entry of a codebook of
 * 8 unsigned levels out of {8, 25, 43} (iq2_grids.c) with 8 signs, times a scale.
 *  - IQ2_XXS: per 32 weights two u32 words in qs: the first holds the 4 group indices
 *    (8 bits each), the second 4 x 7 sign bits (bit 7 of a group's signs is the parity
 *    of the 7: an even number of minus signs) and the 4-bit scale ls in bits 28..31;
 *    value d * (0.5 + ls) / 4 * grid * sign.
 *  - IQ2_XS: qs[i] = 9-bit index | 7 sign bits << 9; scales[ib32]: one 4-bit ls per 16
 *    weights (low nibble first).
 *  - IQ2_S: qs[0..31] low 8 bits of the 10-bit indices, qs[32..63] full 8-bit signs,
 *    qh[ib32] the index high bits (2 per group), scales as IQ2_XS.
 */
#ifndef SLM_IQ2_H
#define SLM_IQ2_H

enum { SLM_T_IQ2_XXS = SLM_TYPE_IQ2_XXS, SLM_T_IQ2_XS = SLM_TYPE_IQ2_XS, SLM_T_IQ2_S = SLM_TYPE_IQ2_S };

typedef struct { slm_half d; uint16_t qs[QK_K / 8]; } block_iq2_xxs;
static_assert(sizeof(block_iq2_xxs) == 66, "block_iq2_xxs size");
typedef struct { slm_half d; uint16_t qs[QK_K / 8]; uint8_t scales[QK_K / 32]; } block_iq2_xs;
static_assert(sizeof(block_iq2_xs) == 74, "block_iq2_xs size");
typedef struct { slm_half d; uint8_t qs[QK_K / 4]; uint8_t qh[QK_K / 32]; uint8_t scales[QK_K / 32]; } block_iq2_s;
static_assert(sizeof(block_iq2_s) == 82, "block_iq2_s size");

SLM_DECL_TYPE(iq2_xxs) SLM_DECL_TYPE(iq2_xs) SLM_DECL_TYPE(iq2_s)

/* SIMD sets (iq2_avx2.c, iq2_avx512.c): fill the IQ2 entries of a set's table. */
void slm_iq2_kernels_avx2(slm_kernel_fns *tab);
void slm_iq2_kernels_avx512(slm_kernel_fns *tab);

/* GPTQ on the grid (iq2.c): level L = level index (0..2: 8, 25, 43) + 4 for a negative sign;
 * element j of a block dequantizes to a[j] * slm_iq2_level_value(L). slm_iq2_round_group
 * fixes a group of 8 values w8 (unit scale a) at the entry and signs of least
 * sum wt (w8 / a - value)^2. */
int slm_iq2_is(uint32_t type);
float slm_iq2_level_value(int l);
void slm_iq2_round_group(uint32_t type, float a, const float *w8, const float *wt, uint8_t *L8);
int slm_iq2_grid_decode(uint32_t type, const void *blk, float *a, float *b, int *zero, int *qmax);
int slm_iq2_grid_pack(uint32_t type, void *blk, const uint8_t *L);

#endif
