/* libquant/quant_sve.c — the SVE kernel set (Scalable Vector Extension, vector-length
 * agnostic: one binary runs at 128 … 2048 bits; tested under qemu at 128, 256 and 512).
 * Built with +sve (SVE_FLAGS), selected only when HWCAP_SVE is set and the CPU also runs
 * the parent set (i8mm), whose batch GEMM / decode layouts this set keeps.
 *
 * Each block is walked in segments of 16 (Q4_0..Q5_1) or 32 levels (the rest; per-lane
 * scales where a scale covers 16); a segment is loaded in svcntb()-byte pieces under a
 * whilelt predicate (one piece at 256 bits and more, two at 128), the levels are
 * unpacked in registers and multiplied with SDOT on the SVE registers. Lanes past the segment load as zero from the activations, so they
 * add nothing. The integer block sums are exact, and the float part of each block is the
 * scalar kernel's expression in the scalar order (as kernels_arm.inc), so vec_dot equals
 * the scalar set bit for bit at every vector length. F16 / BF16 products widen to F32
 * and accumulate with FMLA (within the F16 tolerance, as the other sets). */
#include <arm_sve.h>
#include <math.h>
#include <string.h>

#include "qimpl.h"
#include "qrows.h"
#include "rt_simd.h"

#define VB ((int)svcntb())
static inline svbool_t piece(int k, int len) { return svwhilelt_b8_s32(k, len); }
static inline int32_t hsum(svint32_t v) { return (int32_t)svaddv_s32(svptrue_b32(), v); }

/* 0x10 in byte lane l where bit (base + l) of qh is set (Q5_0 / Q5_1 fifth bits) */
static inline svuint8_t hbits(svbool_t pg, uint32_t qh, int base)
{
    const svuint8_t idx = svindex_u8((uint8_t)base, 1);
    const svuint8_t bytes = svtbl_u8(svreinterpret_u8_u32(svdup_n_u32(qh)), svlsr_n_u8_x(pg, idx, 3));
    const svuint8_t bit = svlsl_u8_x(pg, svdup_n_u8(1), svand_n_u8_x(pg, idx, 7));
    const svbool_t set = svcmpne_n_u8(pg, svand_u8_x(pg, bytes, bit), 0);
    return svsel_u8(set, svdup_n_u8(0x10), svdup_n_u8(0));
}

static void sve_vec_dot_q8_0(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q8_0 *x = vx, *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        svint32_t acc = svdup_n_s32(0);
        for (int k = 0; k < QK8_0; k += VB) {
            const svbool_t pg = piece(k, QK8_0);
            acc = svdot_s32(acc, svld1_s8(pg, x[i].qs + k), svld1_s8(pg, y[i].qs + k));
        }
        int sumi = hsum(acc);
        sumf += sumi * (slm_h2f(x[i].d) * slm_h2f(y[i].d));
    }
    *s = sumf;
}

/* Q4_0 / Q4_1 / Q5_0 / Q5_1: element l and l + 16 come from byte l of qs (low, high nibble) */
static inline int32_t dot_q4_block(const uint8_t *qs, const int8_t *yq, int off, uint32_t qh, int q5)
{
    svint32_t acc = svdup_n_s32(0);
    for (int k = 0; k < 16; k += VB) {
        const svbool_t pg = piece(k, 16);
        const svuint8_t v = svld1_u8(pg, qs + k);
        svuint8_t lo = svand_n_u8_x(pg, v, 0x0F), hi = svlsr_n_u8_x(pg, v, 4);
        if (q5) {
            lo = svorr_u8_x(pg, lo, hbits(pg, qh, k));
            hi = svorr_u8_x(pg, hi, hbits(pg, qh, 16 + k));
        }
        const svint8_t a = svsub_n_s8_x(pg, svreinterpret_s8_u8(lo), (int8_t)off);
        const svint8_t b = svsub_n_s8_x(pg, svreinterpret_s8_u8(hi), (int8_t)off);
        acc = svdot_s32(acc, a, svld1_s8(pg, yq + k));
        acc = svdot_s32(acc, b, svld1_s8(pg, yq + 16 + k));
    }
    return hsum(acc);
}

static void sve_vec_dot_q4_0(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sumi = dot_q4_block(x[i].qs, y[i].qs, 8, 0, 0);
        sumf += sumi * slm_h2f(x[i].d) * slm_h2f(y[i].d);
    }
    *s = sumf;
}

static void sve_vec_dot_q4_1(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q4_1 *x = vx;
    const block_q8_1 *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int sumi = dot_q4_block(x[i].qs, y[i].qs, 0, 0, 0);
        sumf += (slm_h2f(x[i].d) * slm_h2f(y[i].d)) * sumi + slm_h2f(x[i].m) * slm_h2f(y[i].s);
    }
    *s = sumf;
}

static void sve_vec_dot_q5_0(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q5_0 *x = vx;
    const block_q8_0 *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        int sumi = dot_q4_block(x[i].qs, y[i].qs, 16, qh, 1);
        sumf += (slm_h2f(x[i].d) * slm_h2f(y[i].d)) * sumi;
    }
    *s = sumf;
}

static void sve_vec_dot_q5_1(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q5_1 *x = vx;
    const block_q8_1 *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        int sumi = dot_q4_block(x[i].qs, y[i].qs, 0, qh, 1);
        sumf += (slm_h2f(x[i].d) * slm_h2f(y[i].d)) * sumi + slm_h2f(x[i].m) * slm_h2f(y[i].s);
    }
    *s = sumf;
}

/* ---- k-quants against Q8_K ----
 * Q2_K, Q3_K and Q6_K have a scale per 16 levels but their bytes run in 32s: a segment of
 * 32 levels is dotted in pieces, and each int32 lane of SDOT's result (four levels) is
 * scaled by its own sub-block's scale, loaded from ls[] (one entry per four levels) under
 * a predicate that stops at the segment's end. */
static inline svint32_t scale_lanes(svint32_t isum, svint32_t t, const int32_t *ls, int k, int len)
{
    const svbool_t p32 = svwhilelt_b32_s32(k / 4, len / 4);
    return svmla_s32_m(p32, isum, t, svld1_s32(p32, ls + k / 4));
}

/* a segment of 32 two-bit levels: (qs[l] >> shift) & 3, less 4 where bit `bit` of hm[l]
 * is clear (Q3_K; hm NULL for Q2_K), times yq[l], scaled per lane from ls */
static inline svint32_t dot_q2_seg(svint32_t isum, const uint8_t *qs, const uint8_t *hm, uint8_t bit, int shift,
                                   const int8_t *yq, const int32_t *ls)
{
    for (int k = 0; k < 32; k += VB) {
        const svbool_t pg = piece(k, 32);
        svuint8_t a = svand_n_u8_x(pg, svlsr_n_u8_x(pg, svld1_u8(pg, qs + k), (uint8_t)shift), 3);
        if (hm) {
            const svbool_t clear = svcmpeq_n_u8(pg, svand_n_u8_x(pg, svld1_u8(pg, hm + k), bit), 0);
            a = svsub_n_u8_m(clear, a, 4);
        }
        isum = scale_lanes(isum, svdot_s32(svdup_n_s32(0), svreinterpret_s8_u8(a), svld1_s8(pg, yq + k)), ls, k, 32);
    }
    return isum;
}

static void sve_vec_dot_q2_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q2_K *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int summs = 0;
        for (int j = 0; j < 16; j++)
            summs += y[i].bsums[j] * (x[i].scales[j] >> 4);
        int32_t ls[QK_K / 4];
        for (int g = 0; g < QK_K / 4; g++)
            ls[g] = x[i].scales[g / 4] & 0xF;
        svint32_t isum = svdup_n_s32(0);
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < 4; j++) /* levels 128h + 32j + (0..31) from qs[32h + (0..31)] */
                isum = dot_q2_seg(isum, x[i].qs + 32 * h, NULL, 0, 2 * j, y[i].qs + 128 * h + 32 * j,
                                  ls + 32 * h + 8 * j);
        const float dall = y[i].d * slm_h2f(x[i].d), dmin = y[i].d * slm_h2f(x[i].dmin);
        sumf += dall * hsum(isum) - dmin * summs;
    }
    *s = sumf;
}

static void sve_vec_dot_q3_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q3_K *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int sc[16];
        const uint8_t *ss = x[i].scales;
        for (int j = 0; j < 16; j++) {
            int lo = j < 8 ? ss[j] & 0xF : ss[j - 8] >> 4;
            sc[j] = (lo | (((ss[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
        }
        int32_t ls[QK_K / 4];
        for (int g = 0; g < QK_K / 4; g++)
            ls[g] = sc[g / 4];
        svint32_t isum = svdup_n_s32(0);
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < 4; j++)
                isum = dot_q2_seg(isum, x[i].qs + 32 * h, x[i].hmask, (uint8_t)(1u << (4 * h + j)), 2 * j,
                                  y[i].qs + 128 * h + 32 * j, ls + 32 * h + 8 * j);
        sumf += slm_h2f(x[i].d) * y[i].d * hsum(isum);
    }
    *s = sumf;
}

/* Q4_K / Q5_K: a sub-block of 32 levels, the low (hi = 0) or high nibbles of qs[0..31],
 * with bit `qbit` of qh[0..31] as the fifth bit (Q5_K; qh NULL for Q4_K) */
static inline int32_t dot_k4_seg(const uint8_t *qs, int hi, const uint8_t *qh, int qbit, const int8_t *yq)
{
    svint32_t t = svdup_n_s32(0);
    for (int k = 0; k < 32; k += VB) {
        const svbool_t pg = piece(k, 32);
        const svuint8_t v = svld1_u8(pg, qs + k);
        svuint8_t a = hi ? svlsr_n_u8_x(pg, v, 4) : svand_n_u8_x(pg, v, 0x0F);
        if (qh) {
            svuint8_t b = svand_n_u8_x(pg, svlsr_n_u8_x(pg, svld1_u8(pg, qh + k), (uint8_t)qbit), 1);
            a = svorr_u8_x(pg, a, svlsl_n_u8_x(pg, b, 4));
        }
        t = svdot_s32(t, svreinterpret_s8_u8(a), svld1_s8(pg, yq + k));
    }
    return hsum(t);
}

static inline float dot_k4_tail(const int32_t *t, const uint8_t *scales, float d, float dmin, const block_q8_K *y)
{
    int sumi = 0, summs = 0;
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        slm_get_scale_min_k4(j, scales, &sc, &m);
        sumi += sc * t[j];
        summs += m * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
    }
    return y->d * d * sumi - y->d * dmin * summs;
}

static void sve_vec_dot_q4_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q4_K *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t t[8];
        for (int j = 0; j < 4; j++) {
            t[2 * j] = dot_k4_seg(x[i].qs + 32 * j, 0, NULL, 0, y[i].qs + 64 * j);
            t[2 * j + 1] = dot_k4_seg(x[i].qs + 32 * j, 1, NULL, 0, y[i].qs + 64 * j + 32);
        }
        sumf += dot_k4_tail(t, x[i].scales, slm_h2f(x[i].d), slm_h2f(x[i].dmin), &y[i]);
    }
    *s = sumf;
}

static void sve_vec_dot_q5_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q5_K *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t t[8];
        for (int j = 0; j < 4; j++) {
            t[2 * j] = dot_k4_seg(x[i].qs + 32 * j, 0, x[i].qh, 2 * j, y[i].qs + 64 * j);
            t[2 * j + 1] = dot_k4_seg(x[i].qs + 32 * j, 1, x[i].qh, 2 * j + 1, y[i].qs + 64 * j + 32);
        }
        sumf += dot_k4_tail(t, x[i].scales, slm_h2f(x[i].d), slm_h2f(x[i].dmin), &y[i]);
    }
    *s = sumf;
}

/* Q6_K: element 128h + 32m + l (l = 0..31) is nibble (m >= 2) of ql[64h + 32(m & 1) + l]
 * with bits 2m, 2m + 1 of qh[32h + l] above it, less 32; sub-block 8h + 2m + l / 16 */
static void sve_vec_dot_q6_K(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q6_K *x = vx;
    const block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t ls[QK_K / 4];
        for (int g = 0; g < QK_K / 4; g++)
            ls[g] = x[i].scales[g / 4];
        svint32_t isum = svdup_n_s32(0);
        for (int h = 0; h < 2; h++)
            for (int m = 0; m < 4; m++) { /* levels 128h + 32m + (0..31) */
                const uint8_t *ql = x[i].ql + 64 * h + 32 * (m & 1), *qh = x[i].qh + 32 * h;
                const int8_t *yq = y[i].qs + 128 * h + 32 * m;
                for (int k = 0; k < 32; k += VB) {
                    const svbool_t pg = piece(k, 32);
                    const svuint8_t l = svld1_u8(pg, ql + k);
                    const svuint8_t lo = m >= 2 ? svlsr_n_u8_x(pg, l, 4) : svand_n_u8_x(pg, l, 0x0F);
                    const svuint8_t hb = svand_n_u8_x(pg, svlsr_n_u8_x(pg, svld1_u8(pg, qh + k), (uint8_t)(2 * m)), 3);
                    const svint8_t q = svsub_n_s8_x(pg, svreinterpret_s8_u8(svorr_u8_x(pg, lo, svlsl_n_u8_x(pg, hb, 4))), 32);
                    isum = scale_lanes(isum, svdot_s32(svdup_n_s32(0), q, svld1_s8(pg, yq + k)), ls + 32 * h + 8 * m, k, 32);
                }
            }
        sumf += slm_h2f(x[i].d) * y[i].d * hsum(isum);
    }
    *s = sumf;
}

/* ---- F16 / BF16 weights: svcntw() weights widened to F32 per step (ld1h into 32-bit
 * containers; fcvt for F16, a 16-bit shift for BF16), two FMLA accumulators ---- */
static inline svfloat32_t widen(svbool_t pg, const uint16_t *p, int bf16)
{
    const svuint32_t h = svld1uh_u32(pg, p);
    return bf16 ? svreinterpret_f32_u32(svlsl_n_u32_x(pg, h, 16)) : svcvt_f32_f16_x(pg, svreinterpret_f16_u32(h));
}

static inline float gemv_row(const uint16_t *w, int bf16, int64_t n, const float *x, const uint16_t *xh)
{
    const int64_t vw = (int64_t)svcntw();
    svfloat32_t a0 = svdup_n_f32(0), a1 = svdup_n_f32(0);
    int64_t i = 0;
    for (; i + 2 * vw <= n; i += 2 * vw) {
        const svbool_t pg = svptrue_b32();
        a0 = svmla_f32_x(pg, a0, widen(pg, w + i, bf16), xh ? widen(pg, xh + i, 0) : svld1_f32(pg, x + i));
        a1 = svmla_f32_x(pg, a1, widen(pg, w + i + vw, bf16), xh ? widen(pg, xh + i + vw, 0) : svld1_f32(pg, x + i + vw));
    }
    for (; i < n; i += vw) {
        const svbool_t pg = svwhilelt_b32_s64(i, n);
        a0 = svmla_f32_m(pg, a0, widen(pg, w + i, bf16), xh ? widen(pg, xh + i, 0) : svld1_f32(pg, x + i));
    }
    return svaddv_f32(svptrue_b32(), svadd_f32_x(svptrue_b32(), a0, a1));
}

static void sve_gemv_half(const uint16_t *W, int bf16, int64_t n_in, int64_t r0, int64_t r1, const float *x, float *out)
{
    for (int64_t r = r0; r < r1; r++)
        out[r] = gemv_row(W + (size_t)r * (size_t)n_in, bf16, n_in, x, NULL);
}

/* F16 weights times activations already rounded to F16 (the runtime's F16 decode, as
 * llama.cpp does on ARM): each product of two halves is exact in F32. The activations
 * are widened once per column chunk (not once per row), then the F32 path runs. */
static void sve_gemv_f16x(const uint16_t *W, int64_t n_in, int64_t r0, int64_t r1, const uint16_t *xh, float *out)
{
    enum { CHUNK = 256 }; /* small enough that the self-check (rows of 512 and 489) crosses chunks */
    float xf[CHUNK];
    for (int64_t c = 0; c < n_in; c += CHUNK) {
        const int64_t len = n_in - c < CHUNK ? n_in - c : CHUNK;
        for (int64_t i = 0; i < len; i += (int64_t)svcntw()) {
            const svbool_t pg = svwhilelt_b32_s64(i, len);
            svst1_f32(pg, xf + i, widen(pg, xh + c + i, 0));
        }
        for (int64_t r = r0; r < r1; r++) {
            const float p = gemv_row(W + (size_t)r * (size_t)n_in + c, 0, len, xf, NULL);
            out[r] = c ? out[r] + p : p;
        }
    }
}

/* row kernels: this set's vec_dot row by row (the parent's rows would call its own vec_dot) */
#define SVE_ROWS(t)                                                                                      \
    static void sve_rows_##t(int64_t n, int64_t nr, float *s, const void *w, size_t stride, const void *y) \
    {                                                                                                    \
        for (int64_t r = 0; r < nr; r++)                                                                 \
            sve_vec_dot_##t(n, &s[r], (const char *)w + (size_t)r * stride, y);                          \
    }
SVE_ROWS(q4_0) SVE_ROWS(q4_1) SVE_ROWS(q5_0) SVE_ROWS(q5_1) SVE_ROWS(q8_0)
SVE_ROWS(q2_K) SVE_ROWS(q3_K) SVE_ROWS(q4_K) SVE_ROWS(q5_K) SVE_ROWS(q6_K)
#undef SVE_ROWS

/* the set's table (table.c fills the rest from the parent: i8mm, then dotprod, neon) */
void slm_kset_sve(slm_kset *k)
{
#define SET(T, nm) k->t[SLM_T_##T].vec_dot = sve_vec_dot_##nm, k->t[SLM_T_##T].rows = sve_rows_##nm;
    SET(Q4_0, q4_0) SET(Q4_1, q4_1) SET(Q5_0, q5_0) SET(Q5_1, q5_1) SET(Q8_0, q8_0)
    SET(Q2_K, q2_K) SET(Q3_K, q3_K) SET(Q4_K, q4_K) SET(Q5_K, q5_K) SET(Q6_K, q6_K)
#undef SET
    k->gemv_half = sve_gemv_half;
    k->gemv_f16x = sve_gemv_f16x;
}
