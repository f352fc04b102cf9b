/* libquant/iq1.h — internals of IQ1_S and IQ1_M (not part of the face; needs qimpl.h first).
 *
 * Block structs byte-identical to ggml's (ggml-common.h), a static_assert on each. Both
 * types pick, for every group of 8 weights, one of the 2048 points of ggml's iq1s_grid
 * (8 values in {-1, 0, 1}; slm_iq1s_grid, iq1_grids.c), shifted by +-1/8 (the "delta")
 * and scaled per group of 32 (IQ1_S) or 16 (IQ1_M) by d * (2 l + 1), l in 0..7.
 *
 * IQ1_S: qs[l] low 8 bits of group l's grid index; qh[ib] (sub-block ib of 32): bits 3l..3l+2
 *   the high 3 bits of group 4 ib + l's index, bits 12..14 l, bit 15 the delta's sign (set:
 *   -1/8); value d * (2 l + 1) * (grid + delta).
 * IQ1_M: no d field: the fp16 bits of d are the top nibbles of the four little-endian u16
 *   words of scales[] (word k bits 12..15 = bits 4k..4k+3 of d); word k bits 0..2 / 3..5 /
 *   6..8 / 9..11 are the l of the first / second 16 of sub-block 2k, then of 2k + 1; qh[2 ib
 *   + h] holds, for groups 4 ib + 2 h and 4 ib + 2 h + 1, the high 3 index bits in bits 0..2 /
 *   4..6 and the delta signs in bit 3 / bit 7. */
#ifndef SLM_IQ1_H
#define SLM_IQ1_H

enum { SLM_T_IQ1_S = SLM_TYPE_IQ1_S, SLM_T_IQ1_M = SLM_TYPE_IQ1_M };

#define IQ1_DELTA 0.125f
#define IQ1_NGRID 2048

typedef struct {
    slm_half d;
    uint8_t qs[QK_K / 8];
    uint16_t qh[QK_K / 32];
} block_iq1_s;
static_assert(sizeof(block_iq1_s) == 50, "block_iq1_s size");

typedef struct {
    uint8_t qs[QK_K / 8];
    uint8_t qh[QK_K / 16];
    uint8_t scales[QK_K / 32];
} block_iq1_m;
static_assert(sizeof(block_iq1_m) == 56, "block_iq1_m size");

SLM_DECL_TYPE(iq1_s) SLM_DECL_TYPE(iq1_m)

/* ggml's iq1s_grid: entry g is 8 bytes, each -1, 0 or 1 (as int8), in element order; filled
 * on first use (iq1_grids.c). slm_iq1s_grid_get() returns the table (thread-safe). */
const uint64_t *slm_iq1s_grid_get(void);
/* Index (0..2047) of the grid point with these 8 trits (each -1, 0, 1), or -1 if not on the grid. */
int slm_iq1s_grid_index(const int8_t t[8]);

/* IQ1_M's fp16 super-block scale bits */
static inline uint16_t slm_iq1m_d(const block_iq1_m *x)
{
    uint16_t sc[4];
    __builtin_memcpy(sc, x->scales, 8);
    return (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
}

/* GPTQ (calib.c, calib_gptq.c): slm_qgrid_decode / slm_qgrid_pack of these types (0 / -1 when
 * not one of them), and the level (0..2) of element pos nearest to v (in level units) that
 * keeps pos's group of 8 on the grid, given the levels fixed so far in L (> 2: not fixed). */
int slm_iq1_grid_decode(uint32_t type, const void *blk, float *a, float *b, int *zero, int *qmax);
int slm_iq1_grid_pack(uint32_t type, void *blk, const uint8_t *L);
int slm_iq1_gptq_pick(const uint8_t *L, int pos, float v);
/* the levels L8[0..8) of the grid point nearest to v[0..8) (level units, weights w) */
void slm_iq1_gptq_group(const float *v, const float *w, uint8_t *L8);
static inline int slm_iq1_is(uint32_t type) { return type == SLM_TYPE_IQ1_S || type == SLM_TYPE_IQ1_M; }

/* SIMD sets (iq1_avx2.c, iq1_avx512.c): fill the IQ1 entries of a set's table. */
void slm_iq1_kernels_avx2(slm_kernel_fns *tab);
void slm_iq1_kernels_avx512(slm_kernel_fns *tab);

#endif
