/* libquant/rows.c — multi-row dot products (weight rows x one activation row),
 * the decode kernels: SIMD versions in kernels_x86.inc (vector accumulation,
 * four rows per pass); the scalar version is vec_dot row by row. */
#include "qimpl.h"
#include "iquants.h"
#include "qrows.h"

#include <string.h>

#define SCALAR_ROWS(t)                                                                           \
    static void rows_scalar_##t(int64_t n, int64_t nr, float *s, const void *w, size_t stride,  \
                                const void *y)                                                   \
    {                                                                                            \
        for (int64_t r = 0; r < nr; r++)                                                         \
            slm_vec_dot_##t(n, &s[r], (const char *)w + (size_t)r * stride, y);                  \
    }
SCALAR_ROWS(q4_0) SCALAR_ROWS(q4_1) SCALAR_ROWS(q5_0) SCALAR_ROWS(q5_1) SCALAR_ROWS(q8_0)
SCALAR_ROWS(q2_K) SCALAR_ROWS(q3_K) SCALAR_ROWS(q4_K) SCALAR_ROWS(q5_K) SCALAR_ROWS(q6_K)

slm_rows_fn slm_scalar_rows(uint32_t type)
{
    switch (type) {
    case SLM_T_Q4_0: return rows_scalar_q4_0;
    case SLM_T_Q4_1: return rows_scalar_q4_1;
    case SLM_T_Q5_0: return rows_scalar_q5_0;
    case SLM_T_Q5_1: return rows_scalar_q5_1;
    case SLM_T_Q8_0: return rows_scalar_q8_0;
    case SLM_T_Q2_K: return rows_scalar_q2_K;
    case SLM_T_Q3_K: return rows_scalar_q3_K;
    case SLM_T_Q4_K: return rows_scalar_q4_K;
    case SLM_T_Q5_K: return rows_scalar_q5_K;
    case SLM_T_Q6_K: return rows_scalar_q6_K;
    default: return NULL;
    }
}

slm_rows_fn slm_rows_kernel(uint32_t type, int kernel)
{
    if (!slm_cpu_has(kernel) || type >= SLM_T_COUNT)
        return NULL;
    return slm_kset_get(kernel)->t[type].rows;
}

/* ---- x8 layouts -------------------------------------------------------------------- */

slm_x8_fn slm_x8_kernel(uint32_t type, int kernel)
{
    if (!slm_cpu_has(kernel) || type >= SLM_T_COUNT)
        return NULL;
    return slm_kset_get(kernel)->t[type].x8;
}

/* The legacy types' x8 layouts (32-weight blocks; slm_x8_pack): per block, the 8 rows' fp16
 * scales d (16 bytes), for Q4_1 / Q5_1 then their fp16 mins m (16 bytes), then the quants in
 * 4-byte chunks interleaved by row (chunk c of rows 0..7, then chunk c + 1), then for Q5_0 /
 * Q5_1 per row 4 bytes of fifth bits, byte c = bits 4c..4c+3 of qh (the low nibbles' of chunk
 * c) | bits 16+4c..16+4c+3 << 4 (the high nibbles'). Geometry: bytes per block, the header
 * (scales, mins) of 8 rows, where the quants start in a block, their bytes, where qh is
 * (0: none). */
typedef struct { size_t bs, hdr, qoff, qbytes, qh; } x8_legacy;
static int x8_geom(uint32_t type, x8_legacy *G)
{
    switch (type) {
    case SLM_T_Q4_0: *G = (x8_legacy){sizeof(block_q4_0), 16, 2, 16, 0}; return 1;
    case SLM_T_Q4_1: *G = (x8_legacy){sizeof(block_q4_1), 32, 4, 16, 0}; return 1;
    case SLM_T_Q5_0: *G = (x8_legacy){sizeof(block_q5_0), 16, 6, 16, 2}; return 1;
    case SLM_T_Q5_1: *G = (x8_legacy){sizeof(block_q5_1), 32, 8, 16, 4}; return 1;
    case SLM_T_Q8_0: *G = (x8_legacy){sizeof(block_q8_0), 16, 2, 32, 0}; return 1;
    case SLM_T_IQ4_NL: *G = (x8_legacy){sizeof(block_iq4_nl), 16, 2, 16, 0}; return 1; /* Q4_0's layout */
    default: return 0;
    }
}

/* K-quant x8 layouts: per 256-element super-block, byte ranges ("fields") of the block
 * are stored for the 8 rows of the group in turn, interleaved by `chunk` bytes (chunk i
 * of rows 0..7, then chunk i+1), fields in the order listed: the order in which the
 * decode kernel reads them, so the weights stream strictly forward (a kernel hopping
 * between parts of a super-block measured 4-5x slower from DRAM). Same size as the 8
 * blocks, except that Q6_K's are padded with zeros to 1728 bytes (slm_x8_ksb) so that
 * every super-block starts on a cache line: streamed from DRAM by one thread, 1680-byte
 * steps ran at 77-83 % of the read bandwidth, 1728-byte steps at 85-102 % (4096 x 4096);
 * Q2_K's 672 and Q3_K's 880 measured the same either way and are not padded. So the fp16
 * scales of 8 rows are one 16-byte vector, word i of the packed scales is one 8-lane
 * vector, and every 4-byte chunk of quants is one vpdpbusd operand for 8 rows (one lane
 * per row). Q4_K (1152 bytes per group): d[8] at 0, dmin[8] at 16,
 * scale words 0,1,2 at 32/64/96, then 32 chunks of 4 qs bytes at 128 + 32 c. Q6_K (1680 + 48):
 * d[8] at 0, scale words 0..3 at 16 + 32 w, then for half h and c < 8 at
 * 144 + 96 (8h + c): ql[64h + 4c..], ql[64h + 32 + 4c..], qh[32h + 4c..]. Q3_K (880):
 * d[8] at 0, scale words 0..2 at 16 + 32 w, then for c < 8 at 112 + 96 c: hmask[4c..],
 * qs[4c..], qs[32 + 4c..]. Q5_K (1408): as Q4_K up to 128, then for c < 8 at 128 + 160 c:
 * qh[4c..], qs[4c..], qs[32 + 4c..], qs[64 + 4c..], qs[96 + 4c..]. Q2_K (672): d[8] at 0,
 * dmin[8] at 16, scale words 0..3 at 32 + 32 w, then for c < 8 at 160 + 64 c: qs[4c..],
 * qs[32 + 4c..]. */
typedef struct { uint16_t off, size, chunk; } x8_field;
enum { X8_MAX_FIELDS = 50 };
typedef struct { uint32_t type; size_t bs; x8_field f[X8_MAX_FIELDS]; } x8_klayout;
#define Q5_STEP(c) {16 + 4 * (c), 4, 4}, {48 + 4 * (c), 4, 4}, {80 + 4 * (c), 4, 4}, {112 + 4 * (c), 4, 4}, \
                   {144 + 4 * (c), 4, 4}
#define Q2_STEP(c) {16 + 4 * (c), 4, 4}, {48 + 4 * (c), 4, 4}
#define Q3_STEP(c) {4 * (c), 4, 4}, {32 + 4 * (c), 4, 4}, {64 + 4 * (c), 4, 4}
#define Q6_STEP(h, c) {64 * (h) + 4 * (c), 4, 4}, {64 * (h) + 32 + 4 * (c), 4, 4}, {128 + 32 * (h) + 4 * (c), 4, 4}
#define Q6_HALF(h) Q6_STEP(h, 0), Q6_STEP(h, 1), Q6_STEP(h, 2), Q6_STEP(h, 3), Q6_STEP(h, 4), Q6_STEP(h, 5), \
                   Q6_STEP(h, 6), Q6_STEP(h, 7)
/* IQ3_XXS group g: its sign/scale word, then its 8 grid indices; IQ3_S group g: its 32 sign
 * bits, then its 8 index low bytes (iq3_x86.inc) */
#define IQ3XXS_G(g) {66 + 4 * (g), 4, 4}, {2 + 8 * (g), 8, 4}
#define IQ3S_G(g) {74 + 4 * (g), 4, 4}, {2 + 8 * (g), 8, 4}
static const x8_klayout x8_klayouts[] = {
    {SLM_T_Q4_K, sizeof(block_q4_K), {{0, 2, 2}, {2, 2, 2}, {4, 12, 4}, {16, 128, 4}}},
    {SLM_T_Q6_K, sizeof(block_q6_K), {{208, 2, 2}, {192, 16, 4}, Q6_HALF(0), Q6_HALF(1)}},
    {SLM_T_Q3_K, sizeof(block_q3_K), {{108, 2, 2}, {96, 12, 4}, Q3_STEP(0), Q3_STEP(1), Q3_STEP(2), Q3_STEP(3),
                                      Q3_STEP(4), Q3_STEP(5), Q3_STEP(6), Q3_STEP(7)}},
    {SLM_T_Q5_K, sizeof(block_q5_K), {{0, 2, 2}, {2, 2, 2}, {4, 12, 4}, Q5_STEP(0), Q5_STEP(1), Q5_STEP(2), Q5_STEP(3),
                                      Q5_STEP(4), Q5_STEP(5), Q5_STEP(6), Q5_STEP(7)}},
    {SLM_T_Q2_K, sizeof(block_q2_K), {{80, 2, 2}, {82, 2, 2}, {0, 16, 4}, Q2_STEP(0), Q2_STEP(1), Q2_STEP(2), Q2_STEP(3),
                                      Q2_STEP(4), Q2_STEP(5), Q2_STEP(6), Q2_STEP(7)}},
    /* i-quants (iquants_x86.inc): the same kind of byte shuffle, so slm_x8_kunshuffle and
     * slm_x8_dequant_group serve them too */
    {SLM_T_IQ4_XS, sizeof(block_iq4_xs), {{0, 2, 2}, {2, 2, 2}, {4, 4, 4}, {8, 128, 4}}},
    {SLM_T_IQ3_XXS, sizeof(block_iq3_xxs), {{0, 2, 2}, IQ3XXS_G(0), IQ3XXS_G(1), IQ3XXS_G(2), IQ3XXS_G(3), IQ3XXS_G(4),
                                            IQ3XXS_G(5), IQ3XXS_G(6), IQ3XXS_G(7)}},
    {SLM_T_IQ3_S, sizeof(block_iq3_s), {{0, 2, 2}, {106, 4, 4}, {66, 8, 4}, IQ3S_G(0), IQ3S_G(1), IQ3S_G(2), IQ3S_G(3),
                                        IQ3S_G(4), IQ3S_G(5), IQ3S_G(6), IQ3S_G(7)}},
};
#undef IQ3XXS_G
#undef IQ3S_G
#undef Q2_STEP
#undef Q6_HALF
#undef Q6_STEP
#undef Q3_STEP
#undef Q5_STEP

static const x8_klayout *x8_klayout_of(uint32_t type)
{
    for (size_t i = 0; i < sizeof x8_klayouts / sizeof x8_klayouts[0]; i++)
        if (x8_klayouts[i].type == type)
            return &x8_klayouts[i];
    return NULL;
}

/* one super-block of 8 rows: blk[k] -> o (the way back: slm_x8_kunshuffle) */
static void x8_kshuffle(const x8_klayout *L, uint8_t *const blk[8], uint8_t *o)
{
    for (int f = 0; f < X8_MAX_FIELDS && L->f[f].size; f++)
        for (unsigned c = 0; c < L->f[f].size; c += L->f[f].chunk)
            for (int k = 0; k < 8; k++, o += L->f[f].chunk) {
                const uint8_t *b = blk[k] + L->f[f].off + c;
                if (L->f[f].chunk == 4) /* fixed sizes: inlined moves (4x faster packing) */
                    memcpy(o, b, 4);
                else
                    memcpy(o, b, 2);
            }
}

static size_t x8_kpack(const x8_klayout *L, const void *src, void *dst, int64_t nrows, int64_t ncols)
{
    const int64_t nb = ncols / QK_K;
    const size_t rb = (size_t)nb * L->bs, sb = slm_x8_ksb(L->type, L->bs);
    uint8_t *o = dst;
    for (int64_t g = 0; g < nrows / 8; g++)
        for (int64_t b = 0; b < nb; b++, o += sb) {
            uint8_t *blk[8];
            for (int k = 0; k < 8; k++)
                blk[k] = (uint8_t *)src + (size_t)(8 * g + k) * rb + (size_t)b * L->bs;
            x8_kshuffle(L, blk, o);
            memset(o + 8 * L->bs, 0, sb - 8 * L->bs);
        }
    return (size_t)(nrows / 8) * (size_t)nb * sb;
}

size_t slm_x8_group_bytes(uint32_t type, int64_t ncols)
{
    x8_legacy G;
    const x8_klayout *L = x8_klayout_of(type);
    if (L)
        return ncols > 0 && ncols % QK_K == 0 ? (size_t)(ncols / QK_K) * slm_x8_ksb(L->type, L->bs) : 0;
    if (!x8_geom(type, &G) || ncols <= 0 || ncols % 32)
        return 0;
    return (size_t)(ncols / 32) * 8 * G.bs;
}

size_t slm_x8_pack(uint32_t type, const void *src, void *dst, int64_t nrows, int64_t ncols)
{
    x8_legacy G;
    const x8_klayout *L = x8_klayout_of(type);
    if (L)
        return nrows % 8 || ncols % QK_K ? 0 : x8_kpack(L, src, dst, nrows, ncols);
    if (!x8_geom(type, &G) || nrows % 8 || ncols % 32)
        return 0;
    const int64_t nb = ncols / 32;
    const size_t rb = (size_t)nb * G.bs;
    uint8_t *o = dst;
    for (int64_t g = 0; g < nrows / 8; g++)
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk[8];
            for (int k = 0; k < 8; k++) {
                blk[k] = (const uint8_t *)src + (size_t)(8 * g + k) * rb + (size_t)b * G.bs;
                memcpy(o + 2 * k, blk[k], 2); /* scales */
                if (G.hdr == 32)
                    memcpy(o + 16 + 2 * k, blk[k] + 2, 2); /* mins */
            }
            uint8_t *q = o + G.hdr;
            for (size_t c = 0; c < G.qbytes / 4; c++)
                for (int k = 0; k < 8; k++, q += 4) {
                    uint32_t v;
                    memcpy(&v, blk[k] + G.qoff + 4 * c, 4);
                    if (type == SLM_T_Q8_0)
                        v ^= 0x80808080u; /* stored biased: unsigned for vpdpbusd */
                    memcpy(q, &v, 4);
                }
            if (G.qh) /* high bits regrouped per 4-weight chunk */
                for (int k = 0; k < 8; k++) {
                    uint32_t qh;
                    memcpy(&qh, blk[k] + G.qh, 4);
                    for (int c = 0; c < 4; c++)
                        *q++ = (uint8_t)(((qh >> (4 * c)) & 0xF) | ((qh >> (16 + 4 * c)) & 0xF) << 4);
                }
            o += 8 * G.bs;
        }
    return rb * (size_t)nrows;
}

void slm_x8_dequant_group(uint32_t type, const void *packed, int64_t g, int64_t ncols, float *dst)
{
    const x8_klayout *L = x8_klayout_of(type);
    if (L) { /* back to the 8 original blocks, then the type's dequantizer */
        const slm_qtraits *q = slm_qtraits_get(type);
        const int64_t nb = ncols / QK_K;
        const size_t sb = slm_x8_ksb(L->type, L->bs);
        const uint8_t *p = (const uint8_t *)packed + (size_t)g * (size_t)nb * sb;
        _Alignas(16) uint8_t tmp[8][256];
        for (int64_t b = 0; b < nb; b++, p += sb) {
            slm_x8_kunshuffle(type, p, tmp, sizeof tmp[0]);
            for (int k = 0; k < 8; k++)
                q->dequantize_row(tmp[k], dst + (size_t)k * ncols + QK_K * b, QK_K);
        }
        return;
    }
    x8_legacy G;
    if (!x8_geom(type, &G))
        return;
    const size_t bs = G.bs;
    const int64_t nb = ncols / 32;
    const uint8_t *p = (const uint8_t *)packed + (size_t)g * (size_t)nb * 8 * bs;
    if (type == SLM_T_IQ4_NL) { /* back to plain blocks, 64 at a time, then the set's dequantizer */
        const slm_qtraits *q = slm_qtraits_get(type);
        uint8_t tmp[8][64 * sizeof(block_iq4_nl)];
        for (int64_t b0 = 0; b0 < nb; b0 += 64) {
            const int64_t ne = nb - b0 < 64 ? nb - b0 : 64;
            for (int64_t b = 0; b < ne; b++, p += 8 * bs)
                for (int k = 0; k < 8; k++) {
                    uint8_t *blk = tmp[k] + (size_t)b * bs;
                    blk[0] = p[2 * k], blk[1] = p[2 * k + 1];
                    for (int c = 0; c < 4; c++) memcpy(blk + 2 + 4 * c, p + 16 + 32 * c + 4 * k, 4);
                }
            for (int k = 0; k < 8; k++) q->dequantize_row(tmp[k], dst + (size_t)k * ncols + 32 * b0, 32 * ne);
        }
        return;
    }
    for (int64_t b = 0; b < nb; b++, p += 8 * bs)
        for (int k = 0; k < 8; k++) {
            const float d = slm_h2f((uint16_t)(p[2 * k] | p[2 * k + 1] << 8));
            const float m = G.hdr == 32 ? slm_h2f((uint16_t)(p[16 + 2 * k] | p[16 + 2 * k + 1] << 8)) : 0;
            float *y = dst + (size_t)k * ncols + 32 * b;
            for (size_t c = 0; c < G.qbytes / 4; c++) {
                const uint8_t hb = G.qh ? p[G.hdr + 128 + 4 * k + c] : 0;
                for (int i = 0; i < 4; i++) {
                    uint8_t v = p[G.hdr + 32 * c + 4 * k + i];
                    const int lo = (v & 0x0F) | ((hb >> i) & 1) << 4, hi = (v >> 4) | ((hb >> (4 + i)) & 1) << 4;
                    if (type == SLM_T_Q8_0) {
                        y[4 * c + i] = (float)(int8_t)(v ^ 0x80) * d;
                    } else if (type == SLM_T_Q4_0) {
                        y[4 * c + i] = (float)(lo - 8) * d;
                        y[16 + 4 * c + i] = (float)(hi - 8) * d;
                    } else if (type == SLM_T_Q5_0) {
                        y[4 * c + i] = (float)(lo - 16) * d;
                        y[16 + 4 * c + i] = (float)(hi - 16) * d;
                    } else { /* Q4_1 / Q5_1: the scalar dequantizer's q * d + m */
                        y[4 * c + i] = (float)lo * d + m;
                        y[16 + 4 * c + i] = (float)hi * d + m;
                    }
                }
            }
        }
}

/* ---- batch GEMM ---------------------------------------------------------------------- */

slm_gemm_fn slm_gemm_kernel(uint32_t type, int kernel)
{
    if (!slm_cpu_has(kernel) || type >= SLM_T_COUNT)
        return NULL;
    return slm_kset_get(kernel)->t[type].gemm;
}

/* x8_kshuffle backwards, with fixed-size moves (the GEMM runs it for every panel) */
void slm_x8_kunshuffle(uint32_t type, const void *src, void *dst, size_t dst_stride)
{
    const x8_klayout *L = x8_klayout_of(type);
    const uint8_t *o = src;
    uint8_t *d = dst;
    for (int f = 0; L && f < X8_MAX_FIELDS && L->f[f].size; f++) {
        const unsigned off = L->f[f].off, size = L->f[f].size, ch = L->f[f].chunk;
        for (unsigned c = 0; c < size; c += ch)
            for (int k = 0; k < 8; k++, o += ch) {
                uint8_t *b = d + (size_t)k * dst_stride + off + c;
                if (ch == 4)
                    memcpy(b, o, 4);
                else if (ch == 2)
                    memcpy(b, o, 2);
                else
                    memcpy(b, o, ch);
            }
    }
}

/* per token: bytes of prepared activations per block of `blck` values */
static size_t gemm_act_block(uint32_t type, int64_t *blck)
{
    switch (type) {
    case SLM_T_Q4_0: case SLM_T_Q5_0: case SLM_T_Q8_0: case SLM_TYPE_IQ4_NL:
        *blck = 32;
        return 40; /* levels, -bias * their sum, fp32 scale */
    case SLM_T_Q2_K: case SLM_T_Q3_K: case SLM_T_Q4_K: case SLM_T_Q5_K: case SLM_T_Q6_K:
    case SLM_TYPE_IQ4_XS: case SLM_TYPE_IQ3_XXS: case SLM_TYPE_IQ3_S: case SLM_TYPE_IQ2_XXS: case SLM_TYPE_IQ2_XS:
    case SLM_TYPE_IQ2_S: case SLM_TYPE_IQ1_S: case SLM_TYPE_IQ1_M: case SLM_TYPE_TQ1_0: case SLM_TYPE_TQ2_0:
        *blck = QK_K;
        return sizeof(block_q8_K);
    default: return 0;
    }
}

size_t slm_gemm_act_bytes(uint32_t type, int64_t n, int ntok)
{
    int64_t blck = 0;
    size_t bb = gemm_act_block(type, &blck);
    if (!bb || n <= 0 || n % blck || ntok <= 0)
        return 0;
    size_t per = (size_t)(n / blck) * bb;
    if (per > SIZE_MAX / (size_t)ntok)
        return 0;
    return per * (size_t)ntok;
}

size_t slm_gemm_scratch_bytes(uint32_t type, int64_t n)
{
    int64_t blck = 0;
    if (!gemm_act_block(type, &blck) || n <= 0 || n % blck)
        return 0;
    size_t per = blck == 32 ? 576 : 5760; /* panel bytes per block of 16 rows (gemm_x86.inc) */
    if ((size_t)(n / blck) > SIZE_MAX / per)
        return 0;
    return (size_t)(n / blck) * per;
}

int slm_gemm_reads_x8(uint32_t type)
{
    x8_legacy G;
    int64_t blck;
    /* the legacy types' x8 blocks (gemmA_panel: Q4_0, Q5_0, Q8_0, IQ4_NL in Q4_0's layout) and
     * the super-block layouts of the x8 table (gemmB_panel_block puts the blocks back together
     * with slm_x8_kunshuffle) */
    return gemm_act_block(type, &blck) &&
           (x8_geom(type, &G) || x8_klayout_of(type));
}

int slm_gemm_act_prep(uint32_t type, int kernel, const float *x, int64_t n, int ntok, void *act)
{
    if (!slm_gemm_kernel(type, kernel) || !slm_gemm_act_bytes(type, n, ntok))
        return -1;
    return slm_kset_get(kernel)->gemm_prep(type, x, n, ntok, act);
}

/* ---- F16 / BF16 single-token products ------------------------------------------------ */

slm_gemv_half_fn slm_gemv_half_kernel(int kernel)
{
    return slm_cpu_has(kernel) ? slm_kset_get(kernel)->gemv_half : NULL;
}

slm_gemv_f16x_fn slm_gemv_f16x_kernel(int kernel)
{
    return slm_cpu_has(kernel) ? slm_kset_get(kernel)->gemv_f16x : NULL;
}

/* ---- F16 / BF16 batch GEMM -------------------------------------------------------------- */

slm_gemm_half_fn slm_gemm_half_kernel(int kernel)
{
    return slm_cpu_has(kernel) ? slm_kset_get(kernel)->gemm_half : NULL;
}

/* the panel: 32 rows of n_in widened (gemm_half_avx512.c) */
size_t slm_gemm_half_scratch_bytes(int64_t n_in)
{
    if (n_in <= 0 || (uint64_t)n_in > SIZE_MAX / sizeof(float) / 32)
        return 0;
    return (size_t)n_in * sizeof(float) * 32;
}

void slm_gemm_half_ref(const uint16_t *W, int bf16, int64_t n_in, int64_t r0, int64_t r1, const float *x, int ntok,
                       float *out, int64_t lds, void *scratch)
{
    (void)scratch;
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *w = W + (size_t)r * (size_t)n_in;
        for (int t = 0; t < ntok; t++) {
            const float *xt = x + (size_t)t * (size_t)n_in;
            float s = 0;
            for (int64_t c = 0; c < n_in; c++)
                s += (bf16 ? slm_bf16_to_fp32(w[c]) : slm_fp16_to_fp32(w[c])) * xt[c];
            out[(size_t)t * (size_t)lds + (size_t)r] = s;
        }
    }
}
