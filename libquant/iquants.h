/* libquant/iquants.h — internals of the i-quant and ternary types (not part of the face).
 *
 * Block structs byte-identical to ggml's (ggml-common.h), a static_assert on each;
 * the non-linear level table of IQ4_NL / IQ4_XS is ggml's kvalues_iq4nl (data that
 * must not change: files depend on it). Included by table.c, calib.c and the
 * per-set kernel files (iquants_<set>.c).
 */
#ifndef SLM_IQUANTS_H
#define SLM_IQUANTS_H

/* needs qimpl.h first (its guard does not cover all of it) */

/* ggml type ids (base.h's, under qimpl.h's short names) */
enum {
    SLM_T_IQ3_XXS = SLM_TYPE_IQ3_XXS, SLM_T_IQ4_NL = SLM_TYPE_IQ4_NL, SLM_T_IQ3_S = SLM_TYPE_IQ3_S,
    SLM_T_IQ4_XS = SLM_TYPE_IQ4_XS, SLM_T_TQ1_0 = SLM_TYPE_TQ1_0, SLM_T_TQ2_0 = SLM_TYPE_TQ2_0
};

#define QK4_NL 32

/* IQ4_NL: 32 weights, one fp16 scale, 4-bit indices into kvalues_iq4nl;
 * element j < 16 in the low nibble of qs[j], element j + 16 in its high nibble. */
typedef struct { slm_half d; uint8_t qs[QK4_NL / 2]; } block_iq4_nl;
static_assert(sizeof(block_iq4_nl) == 2 + QK4_NL / 2, "block_iq4_nl size");

/* IQ4_XS: 256 weights in 8 sub-blocks of 32; sub-block scale ls in [0, 63]
 * (low 4 bits in scales_l nibbles, high 2 bits in scales_h), value
 * d * (ls - 32) * kvalues_iq4nl[index]; nibbles as IQ4_NL per sub-block. */
typedef struct {
    slm_half d;
    uint16_t scales_h;
    uint8_t scales_l[QK_K / 64];
    uint8_t qs[QK_K / 2];
} block_iq4_xs;
static_assert(sizeof(block_iq4_xs) == 2 + 2 + QK_K / 64 + QK_K / 2, "block_iq4_xs size");

/* TQ1_0: ternary, 5 trits per byte (base-3 digits scaled into a byte), then 4 per byte in qh. */
typedef struct {
    uint8_t qs[(QK_K - 4 * QK_K / 64) / 5]; /* 48 bytes: 240 trits */
    uint8_t qh[QK_K / 64];                  /* 4 bytes: 16 trits */
    slm_half d;
} block_tq1_0;
static_assert(sizeof(block_tq1_0) == 2 + 4 + 48, "block_tq1_0 size");

/* TQ2_0: ternary, 2 bits per weight (0, 1, 2 meaning -1, 0, +1). */
typedef struct {
    uint8_t qs[QK_K / 4];
    slm_half d;
} block_tq2_0;
static_assert(sizeof(block_tq2_0) == 2 + QK_K / 4, "block_tq2_0 size");

/* ggml's kvalues_iq4nl (ggml-common.h) */
extern const int8_t slm_kvalues_iq4nl[16];

SLM_DECL_TYPE(iq4_nl) SLM_DECL_TYPE(iq4_xs) SLM_DECL_TYPE(tq1_0) SLM_DECL_TYPE(tq2_0)

/* IQ3_XXS / IQ3_S (iq3.c; grids in iq3_grids.c): layouts in iq3.c's header comment. */
typedef struct { slm_half d; uint8_t qs[3 * QK_K / 8]; } block_iq3_xxs;
static_assert(sizeof(block_iq3_xxs) == 2 + 3 * QK_K / 8, "block_iq3_xxs size");
typedef struct {
    slm_half d;
    uint8_t qs[QK_K / 4];
    uint8_t qh[QK_K / 32];
    uint8_t signs[QK_K / 8];
    uint8_t scales[QK_K / 64];
} block_iq3_s;
static_assert(sizeof(block_iq3_s) == 2 + 13 * (QK_K / 32) + QK_K / 64, "block_iq3_s size");
SLM_DECL_TYPE(iq3_xxs) SLM_DECL_TYPE(iq3_s)
/* ggml's iq3xxs_grid and iq3s_grid (and ksigns_iq2xs, iq2_grids.h), filled by slm_iq3_init (idempotent) */
extern uint32_t slm_iq3xxs_grid[256];
extern uint32_t slm_iq3s_grid[512];
void slm_iq3_init(void);
void slm_iq3_kernels_avx2(slm_kernel_fns *tab);
/* GPTQ on the 4-d grids (iq3.c): level L = level index + 8 for a negative sign */
int slm_iq3_is_vector(uint32_t type);
void slm_iq3_round_octet(uint32_t type, float a, const float *w8, uint8_t *L8);
float slm_iq3_level_value(uint32_t type, int l);
int slm_iq3_grid_decode(uint32_t type, const void *blk, float *a, float *b, int *zero, int *qmax);
int slm_iq3_grid_pack(uint32_t type, void *blk, const uint8_t *L);
void slm_iq3_kernels_avx512(slm_kernel_fns *tab);
#include "iq2.h" /* IQ2_XXS, IQ2_XS, IQ2_S */

/* The sub-block scale index (0..63) of IQ4_XS sub-block ib. */
static inline int slm_iq4xs_ls(const block_iq4_xs *x, int ib)
{
    return ((x->scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) | (((x->scales_h >> 2 * ib) & 3) << 4);
}

/* SIMD sets (iquants_avx2.c, iquants_avx512.c): fill the i-quant entries of a set's table. */
void slm_iq_kernels_avx2(slm_kernel_fns *tab);
void slm_iq_kernels_avx512(slm_kernel_fns *tab);

/* GPTQ on a non-linear grid (calib.c): the level values of `type` (16 for IQ4), NULL
 * for types whose levels are uniform (slm_qgrid_decode's a * (L - zero) + b). */
const int8_t *slm_qgrid_levels(uint32_t type, int *nlevels);
/* index of the level nearest to v */
int slm_qgrid_nearest(const int8_t *levels, int nlevels, float v);
/* slm_qgrid_decode / slm_qgrid_pack for these types (0 / -1 when not one of them) */
int slm_iq_grid_decode(uint32_t type, const void *blk, float *a, float *b, int *zero, int *qmax);
int slm_iq_grid_pack(uint32_t type, void *blk, const uint8_t *L);

#endif
