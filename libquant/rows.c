/* libquant/rows.c — multi-row dot products (weight rows x one activation row),
 * the decode kernels: SIMD versions in kernels_x86.inc (vector accumulation,
 * four rows per pass); the scalar version is vec_dot row by row. */
#include "qimpl.h"
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

static slm_rows_fn scalar_rows(uint32_t type)
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
    if (kernel < 0 || kernel > SLM_KERNEL_AVX512 || !slm_cpu_has(kernel))
        return NULL;
    if (kernel == SLM_KERNEL_AVX512)
        return slm_avx512_rows(type);
    if (kernel == SLM_KERNEL_AVX2)
        return slm_avx2_rows(type);
    return scalar_rows(type);
}

/* ---- x8 layouts -------------------------------------------------------------------- */

slm_x8_fn slm_x8_kernel(uint32_t type, int kernel)
{
    if (kernel != SLM_KERNEL_AVX512 || !slm_cpu_has(kernel))
        return NULL;
    return slm_avx512_x8(type);
}

/* bytes per block and where the quants start, for the types with an x8 layout */
static int x8_geom(uint32_t type, size_t *bs, size_t *qoff, size_t *qbytes)
{
    switch (type) {
    case SLM_T_Q4_0: *bs = sizeof(block_q4_0), *qoff = 2, *qbytes = 16; return 1;
    case SLM_T_Q5_0: *bs = sizeof(block_q5_0), *qoff = 6, *qbytes = 16; return 1;
    case SLM_T_Q8_0: *bs = sizeof(block_q8_0), *qoff = 2, *qbytes = 32; return 1;
    default: return 0;
    }
}

slm_x8_gemm_fn slm_x8_gemm_kernel(uint32_t type, int kernel)
{
    if (kernel != SLM_KERNEL_AVX512 || !slm_cpu_has(kernel))
        return NULL;
    return slm_avx512_x8_gemm(type);
}

void slm_x8_act_sums(const void *vy, int64_t n, int32_t *ysum, float *yd)
{
    const block_q8_0 *y = vy;
    for (int64_t b = 0; b < n / 32; b++) {
        int32_t sum = 0;
        for (int i = 0; i < 32; i++)
            sum += y[b].qs[i];
        ysum[b] = sum;
        yd[b] = slm_h2f(y[b].d);
    }
}

size_t slm_x8_pack(uint32_t type, const void *src, void *dst, int64_t nrows, int64_t ncols)
{
    size_t bs, qoff, qbytes;
    if (!x8_geom(type, &bs, &qoff, &qbytes) || nrows % 8 || ncols % 32)
        return 0;
    const int64_t nb = ncols / 32;
    const size_t rb = (size_t)nb * bs;
    uint8_t *o = dst;
    for (int64_t g = 0; g < nrows / 8; g++)
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk[8];
            for (int k = 0; k < 8; k++) {
                blk[k] = (const uint8_t *)src + (size_t)(8 * g + k) * rb + (size_t)b * bs;
                o[2 * k] = blk[k][0]; /* scales */
                o[2 * k + 1] = blk[k][1];
            }
            uint8_t *q = o + 16;
            for (size_t c = 0; c < qbytes / 4; c++)
                for (int k = 0; k < 8; k++, q += 4) {
                    uint32_t v;
                    memcpy(&v, blk[k] + qoff + 4 * c, 4);
                    if (type == SLM_T_Q8_0)
                        v ^= 0x80808080u; /* stored biased: unsigned for vpdpbusd */
                    memcpy(q, &v, 4);
                }
            if (type == SLM_T_Q5_0) /* high bits regrouped per 4-weight chunk */
                for (int k = 0; k < 8; k++) {
                    uint32_t qh;
                    memcpy(&qh, blk[k] + 2, 4);
                    for (int c = 0; c < 4; c++)
                        *q++ = (uint8_t)(((qh >> (4 * c)) & 0xF) | ((qh >> (16 + 4 * c)) & 0xF) << 4);
                }
            o += 8 * bs;
        }
    return rb * (size_t)nrows;
}

void slm_x8_dequant_group(uint32_t type, const void *packed, int64_t g, int64_t ncols, float *dst)
{
    size_t bs, qoff, qbytes;
    if (!x8_geom(type, &bs, &qoff, &qbytes))
        return;
    const int64_t nb = ncols / 32;
    const uint8_t *p = (const uint8_t *)packed + (size_t)g * (size_t)nb * 8 * bs;
    for (int64_t b = 0; b < nb; b++, p += 8 * bs)
        for (int k = 0; k < 8; k++) {
            const float d = slm_h2f((uint16_t)(p[2 * k] | p[2 * k + 1] << 8));
            float *y = dst + (size_t)k * ncols + 32 * b;
            for (size_t c = 0; c < qbytes / 4; c++) {
                const uint8_t hb = type == SLM_T_Q5_0 ? p[144 + 4 * k + c] : 0;
                for (int i = 0; i < 4; i++) {
                    uint8_t v = p[16 + 32 * c + 4 * k + i];
                    if (type == SLM_T_Q8_0) {
                        y[4 * c + i] = (float)(int8_t)(v ^ 0x80) * d;
                    } else if (type == SLM_T_Q4_0) {
                        y[4 * c + i] = (float)((v & 0x0F) - 8) * d;
                        y[16 + 4 * c + i] = (float)((v >> 4) - 8) * d;
                    } else {
                        y[4 * c + i] = (float)(((v & 0x0F) | ((hb >> i) & 1) << 4) - 16) * d;
                        y[16 + 4 * c + i] = (float)(((v >> 4) | ((hb >> (4 + i)) & 1) << 4) - 16) * d;
                    }
                }
            }
        }
}
