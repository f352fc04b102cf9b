/* libquant/gemm_half_avx512.c — F16 / BF16 weights times a batch of F32 activations
 * (the prompt path of the runtime's matmul), F32 FMA on AVX-512.
 *
 * Each call widens its rows, 32 at a time, into a panel where one 64-byte line holds
 * column c of 16 rows (exact: every F16 / BF16 value is an F32 value; 16 x 16 blocks
 * transposed in registers). The panel stays in L1/L2 while every token runs over it, NT
 * tokens per register tile: per column 2 panel loads, NT broadcasts of x[t][c] and 2 x NT
 * FMAs into 2 x NT accumulators (lane k of accumulator (g, t) is the dot product of row
 * 16g + k with token t, summed column by column, so no horizontal sums). The widening is
 * one pass over the rows per product; the previous path widened tiles of rows and called
 * OpenBLAS's sgemm, which copied and re-packed both operands again.
 *
 * Measured here (AVX-512 with BF16 and FP16 arithmetic, 1 thread, docs/bench.md):
 * vfmadd*ps zmm runs 2 per cycle, vdpbf16ps zmm one per 2 cycles, so BF16 dot products
 * (ik_llama.cpp's repacked F16) give half the FMA's products per cycle on this CPU: F32
 * FMA on exact weights is both the faster and the more precise choice here. */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "qimpl.h"

enum { RG = 2, NT = 12 }; /* row groups of 16 and tokens per register tile: 24 accumulators */

static inline __m512 widen16(const uint16_t *p, int bf16)
{
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    return bf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)) : _mm512_cvtph_ps(h);
}

/* 16 rows x 16 columns (r[k] = row k) -> o[j] = column j (lane k = row k) */
static inline void transpose16(const __m512 r[16], __m512 o[16])
{
    __m512 t[16], u[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* u[4q + j], 128-bit lane L: rows 4q..4q+3 at column 4L + j */
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        __m512d a = _mm512_castps_pd(t[4 * q]), b = _mm512_castps_pd(t[4 * q + 1]);
        __m512d c = _mm512_castps_pd(t[4 * q + 2]), d = _mm512_castps_pd(t[4 * q + 3]);
        u[4 * q + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* a 4 x 4 transpose of 128-bit lanes for each j */
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        __m512 s0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x44), s1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xEE);
        __m512 s2 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x44), s3 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xEE);
        o[j] = _mm512_shuffle_f32x4(s0, s2, 0x88);
        o[4 + j] = _mm512_shuffle_f32x4(s0, s2, 0xDD);
        o[8 + j] = _mm512_shuffle_f32x4(s1, s3, 0x88);
        o[12 + j] = _mm512_shuffle_f32x4(s1, s3, 0xDD);
    }
}

/* panel of rows [r, r + nr) (nr <= 16 * RG): row 16g + k, column c at float (g * n + c) * 16 + k;
 * rows past nr are zero */
static void build_panel(const uint16_t *W, int bf16, int64_t n, int64_t r, int nr, float *panel)
{
    for (int g = 0; g < RG; g++) {
        float *pg = panel + (size_t)g * (size_t)n * 16;
        int rows = nr - 16 * g < 0 ? 0 : nr - 16 * g > 16 ? 16 : nr - 16 * g;
        const uint16_t *wg = W + (size_t)(r + 16 * g) * (size_t)n;
        int64_t c = 0;
        if (rows == 16)
            for (; c + 16 <= n; c += 16) {
                __m512 v[16], o[16];
#pragma GCC unroll 16
                for (int k = 0; k < 16; k++)
                    v[k] = widen16(wg + (size_t)k * (size_t)n + c, bf16);
                transpose16(v, o);
#pragma GCC unroll 16
                for (int j = 0; j < 16; j++)
                    _mm512_store_ps(pg + (size_t)(c + j) * 16, o[j]);
            }
        for (; c < n; c++) /* tail columns, or a group with missing rows */
            for (int k = 0; k < 16; k++) {
                uint16_t h = k < rows ? wg[(size_t)k * (size_t)n + c] : 0;
                pg[(size_t)c * 16 + k] = bf16 ? slm_bf16_to_fp32(h) : slm_fp16_to_fp32(h);
            }
    }
}

/* tokens [0, nt) (nt <= NT, a constant after inlining) over ng (1 or RG, constant) groups */
static inline __attribute__((always_inline)) void tile(const float *panel, int64_t n, int ng, const float *x, int nt,
                                                       float *out, int64_t lds, __mmask16 m0, __mmask16 m1)
{
    __m512 acc[RG][NT];
#pragma GCC unroll 16
    for (int g = 0; g < RG; g++)
#pragma GCC unroll 16
        for (int t = 0; t < NT; t++)
            acc[g][t] = _mm512_setzero_ps();
    const float *p0 = panel, *p1 = panel + (size_t)n * 16;
    for (int64_t c = 0; c < n; c++) {
        __m512 w0 = _mm512_load_ps(p0 + (size_t)c * 16);
        __m512 w1 = ng > 1 ? _mm512_load_ps(p1 + (size_t)c * 16) : w0;
#pragma GCC unroll 16
        for (int t = 0; t < NT; t++) {
            if (t >= nt)
                continue;
            __m512 xv = _mm512_set1_ps(x[(size_t)t * (size_t)n + (size_t)c]);
            acc[0][t] = _mm512_fmadd_ps(w0, xv, acc[0][t]);
            if (ng > 1)
                acc[1][t] = _mm512_fmadd_ps(w1, xv, acc[1][t]);
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < NT; t++) {
        if (t >= nt)
            continue;
        _mm512_mask_storeu_ps(out + (size_t)t * (size_t)lds, m0, acc[0][t]);
        if (ng > 1)
            _mm512_mask_storeu_ps(out + (size_t)t * (size_t)lds + 16, m1, acc[1][t]);
    }
}

#define TILE_CASE(N)                                                                                                   \
    case N:                                                                                                            \
        if (ng > 1)                                                                                                    \
            tile(panel, n, 2, x, N, out, lds, m0, m1);                                                                 \
        else                                                                                                           \
            tile(panel, n, 1, x, N, out, lds, m0, m1);                                                                 \
        break;

static void run_tile(const float *panel, int64_t n, int ng, const float *x, int nt, float *out, int64_t lds,
                     __mmask16 m0, __mmask16 m1)
{
    switch (nt) {
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6)
        TILE_CASE(7) TILE_CASE(8) TILE_CASE(9) TILE_CASE(10) TILE_CASE(11) TILE_CASE(12)
    default: break;
    }
}
#undef TILE_CASE

void slm_gemm_half_avx512(const uint16_t *W, int bf16, int64_t n_in, int64_t r0, int64_t r1, const float *x, int ntok,
                          float *out, int64_t lds, void *scratch)
{
    float *panel = scratch;
    for (int64_t r = r0; r < r1; r += 16 * RG) {
        int nr = r1 - r < 16 * RG ? (int)(r1 - r) : 16 * RG;
        build_panel(W, bf16, n_in, r, nr, panel);
        int ng = nr > 16 ? 2 : 1;
        __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
        __mmask16 m1 = nr >= 32 ? 0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
        for (int t = 0; t < ntok; t += NT) {
            int nt = ntok - t < NT ? ntok - t : NT;
            run_tile(panel, n_in, ng, x + (size_t)t * (size_t)n_in, nt, out + (size_t)t * (size_t)lds + r, lds, m0,
                     m1);
        }
    }
}
