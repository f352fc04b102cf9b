/* libquant/quants.c — the traits table, float types, the legacy 32-element block
 * types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1), activation quantizers, row API.
 *
 * Dequantize and the scalar vec_dot compute exactly what ggml's reference code
 * computes for the same bytes (same float operations in the same order).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "qimpl.h"

/* ---------------- float types ---------------- */
void slm_quantize_f32(const float *x, void *y, int64_t n, const float *imp) { (void)imp; memcpy(y, x, n * 4); }
void slm_dequantize_f32(const void *x, float *y, int64_t n) { memcpy(y, x, n * 4); }
void slm_vec_dot_f32(int64_t n, float *s, const void *vx, const void *vy)
{
    const float *x = vx, *y = vy;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)x[i] * y[i];
    *s = (float)sum;
}
void slm_quantize_f16(const float *x, void *y, int64_t n, const float *imp) { (void)imp; slm_fp32_to_fp16_row(x, y, n); }
void slm_dequantize_f16(const void *x, float *y, int64_t n) { slm_fp16_to_fp32_row(x, y, n); }
void slm_vec_dot_f16(int64_t n, float *s, const void *vx, const void *vy)
{
    const uint16_t *x = vx, *y = vy;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)slm_h2f(x[i]) * slm_h2f(y[i]);
    *s = (float)sum;
}
void slm_quantize_bf16(const float *x, void *y, int64_t n, const float *imp) { (void)imp; slm_fp32_to_bf16_row(x, y, n); }
void slm_dequantize_bf16(const void *x, float *y, int64_t n) { slm_bf16_to_fp32_row(x, y, n); }
void slm_vec_dot_bf16(int64_t n, float *s, const void *vx, const void *vy)
{
    const uint16_t *x = vx, *y = vy;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)slm_bf16_to_fp32(x[i]) * slm_bf16_to_fp32(y[i]);
    *s = (float)sum;
}

/* ---------------- symmetric single-scale blocks ---------------- */

/* Search effort: grid candidates per side (see search.c). The exact breakpoint sweep
 * (slm_sym_search) gains little over a dense grid at ~100x the cost. */
#define LEGACY_SYM_CAND 16
#define LEGACY_ASYM_CAND 24

/* Search d, round it to fp16, re-round the levels and try the neighbouring halves. */
static float sym_block(int n, const float *x, const float *w, int qlo, int qhi, int8_t *L)
{
    float d = slm_sym_search_fast(n, x, w, qlo, qhi, LEGACY_SYM_CAND, L);
    if (d == 0) return 0;
    float dh = slm_half_round(d);
    uint16_t hb = slm_fp32_to_fp16(dh);
    double best = slm_sym_eval(n, x, w, qlo, qhi, dh, L);
    for (int k = -2; k <= 2; k++) {
        if (!k) continue;
        uint16_t h2 = (uint16_t)(hb + k);
        if ((h2 & 0x7c00) == 0x7c00 || ((h2 ^ hb) & 0x8000)) continue;
        float d2 = slm_h2f(h2);
        int8_t L2[QK_K];
        double e = slm_sym_eval(n, x, w, qlo, qhi, d2, L2);
        if (e < best) { best = e; dh = d2; memcpy(L, L2, n); }
    }
    return dh;
}

void slm_quantize_q4_0(const float *x, void *vy, int64_t n, const float *imp)
{
    block_q4_0 *y = vy;
    for (int64_t b = 0; b < n / QK4_0; b++) {
        const float *xb = x + b * QK4_0;
        float w[QK4_0]; int8_t L[QK4_0];
        slm_qweights(SLM_T_Q4_0, QK4_0, QK4_0, xb, imp ? imp + b * QK4_0 : NULL, w);
        float d = sym_block(QK4_0, xb, w, -8, 7, L);
        y[b].d = slm_fp32_to_fp16(d);
        for (int j = 0; j < 16; j++) y[b].qs[j] = (uint8_t)((L[j] + 8) | ((L[j + 16] + 8) << 4));
    }
    slm_keep_better_than_ref(SLM_T_Q4_0, x, vy, n, imp);
}

void slm_quantize_q5_0(const float *x, void *vy, int64_t n, const float *imp)
{
    block_q5_0 *y = vy;
    for (int64_t b = 0; b < n / QK5_0; b++) {
        const float *xb = x + b * QK5_0;
        float w[QK5_0]; int8_t L[QK5_0];
        slm_qweights(SLM_T_Q5_0, QK5_0, QK5_0, xb, imp ? imp + b * QK5_0 : NULL, w);
        float d = sym_block(QK5_0, xb, w, -16, 15, L);
        y[b].d = slm_fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int a = L[j] + 16, c = L[j + 16] + 16;
            y[b].qs[j] = (uint8_t)((a & 0xF) | ((c & 0xF) << 4));
            qh |= (uint32_t)(a >> 4) << j;
            qh |= (uint32_t)(c >> 4) << (j + 16);
        }
        memcpy(y[b].qh, &qh, 4);
    }
    slm_keep_better_than_ref(SLM_T_Q5_0, x, vy, n, imp);
}

void slm_quantize_q8_0(const float *x, void *vy, int64_t n, const float *imp)
{
    block_q8_0 *y = vy;
    for (int64_t b = 0; b < n / QK8_0; b++) {
        const float *xb = x + b * QK8_0;
        float w[QK8_0]; int8_t L[QK8_0];
        slm_qweights(SLM_T_Q8_0, QK8_0, QK8_0, xb, imp ? imp + b * QK8_0 : NULL, w);
        /* [-127, 127]: -128 would break the sign trick of SIMD int8 dot products */
        float d = sym_block(QK8_0, xb, w, -127, 127, L);
        y[b].d = slm_fp32_to_fp16(d);
        memcpy(y[b].qs, L, QK8_0);
    }
    slm_keep_better_than_ref(SLM_T_Q8_0, x, vy, n, imp);
}

/* ---------------- d*q + m blocks ---------------- */

/* Search (d, m), round both to fp16 and re-round the levels; try a least-squares refit
 * with the levels fixed and the neighbouring halves of m. */
static void asym_block(int n, const float *x, const float *w, int nmax, float *dout, float *mout, uint8_t *L)
{
    float d, m;
    slm_asym_search_fast(n, x, w, nmax, 0, LEGACY_ASYM_CAND, &d, &m, L);
    float cd[3], cm[3];
    int nc = 0;
    cd[nc] = slm_half_round(d); cm[nc] = slm_half_round(m); nc++;
    /* refit m for the rounded d (m is the offset; its error hits every element) */
    {
        double sw = 0, s = 0;
        float dh = cd[0];
        for (int i = 0; i < n; i++) {
            int q = dh > 0 ? slm_qclamp((x[i] - m) / dh, 0, nmax) : 0;
            sw += w[i]; s += w[i] * ((double)x[i] - (double)(q * dh));
        }
        if (sw > 0) { cd[nc] = dh; cm[nc] = slm_half_round((float)(s / sw)); nc++; }
    }
    double best = INFINITY;
    for (int c = 0; c < nc; c++) {
        for (int k = -1; k <= 1; k++) {
            uint16_t mh = (uint16_t)(slm_fp32_to_fp16(cm[c]) + k);
            if ((mh & 0x7c00) == 0x7c00) continue;
            float mm = slm_h2f(mh), dd = cd[c];
            float id = dd > 0 ? 1.0f / dd : 0.f;
            double err = 0;
            uint8_t L2[QK_K];
            for (int i = 0; i < n; i++) {
                int q = dd > 0 ? slm_qclamp((x[i] - mm) * id, 0, nmax) : 0;
                /* pick the better of the two neighbouring levels under the exact dequant formula */
                float v = q * dd + mm;
                if (q < nmax && fabsf(x[i] - ((q + 1) * dd + mm)) < fabsf(x[i] - v)) { q++; }
                else if (q > 0 && fabsf(x[i] - ((q - 1) * dd + mm)) < fabsf(x[i] - v)) { q--; }
                L2[i] = (uint8_t)q;
                double e = (double)x[i] - (double)(q * dd + mm);
                err += w[i] * e * e;
            }
            if (err < best) { best = err; *dout = dd; *mout = mm; memcpy(L, L2, n); }
        }
    }
}

void slm_quantize_q4_1(const float *x, void *vy, int64_t n, const float *imp)
{
    block_q4_1 *y = vy;
    for (int64_t b = 0; b < n / QK4_1; b++) {
        const float *xb = x + b * QK4_1;
        float w[QK4_1], d, m; uint8_t L[QK4_1];
        slm_qweights(SLM_T_Q4_1, QK4_1, QK4_1, xb, imp ? imp + b * QK4_1 : NULL, w);
        asym_block(QK4_1, xb, w, 15, &d, &m, L);
        y[b].d = slm_fp32_to_fp16(d);
        y[b].m = slm_fp32_to_fp16(m);
        for (int j = 0; j < 16; j++) y[b].qs[j] = (uint8_t)(L[j] | (L[j + 16] << 4));
    }
    slm_keep_better_than_ref(SLM_T_Q4_1, x, vy, n, imp);
}

void slm_quantize_q5_1(const float *x, void *vy, int64_t n, const float *imp)
{
    block_q5_1 *y = vy;
    for (int64_t b = 0; b < n / QK5_1; b++) {
        const float *xb = x + b * QK5_1;
        float w[QK5_1], d, m; uint8_t L[QK5_1];
        slm_qweights(SLM_T_Q5_1, QK5_1, QK5_1, xb, imp ? imp + b * QK5_1 : NULL, w);
        asym_block(QK5_1, xb, w, 31, &d, &m, L);
        y[b].d = slm_fp32_to_fp16(d);
        y[b].m = slm_fp32_to_fp16(m);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            y[b].qs[j] = (uint8_t)((L[j] & 0xF) | ((L[j + 16] & 0xF) << 4));
            qh |= (uint32_t)(L[j] >> 4) << j;
            qh |= (uint32_t)(L[j + 16] >> 4) << (j + 16);
        }
        memcpy(y[b].qh, &qh, 4);
    }
    slm_keep_better_than_ref(SLM_T_Q5_1, x, vy, n, imp);
}

/* ---------------- activation quantizers ---------------- */

void slm_quantize_act_q8_0(const float *x, void *vy, int64_t n)
{
    block_q8_0 *y = vy;
    for (int64_t b = 0; b < n / QK8_0; b++, x += QK8_0) {
        float amax = 0;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.f, id = d ? 1.0f / d : 0.0f;
        y[b].d = slm_fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) y[b].qs[j] = (int8_t)slm_nearest_int(x[j] * id);
    }
}

void slm_quantize_act_q8_1(const float *x, void *vy, int64_t n)
{
    block_q8_1 *y = vy;
    for (int64_t b = 0; b < n / QK8_1; b++, x += QK8_1) {
        float amax = 0;
        for (int j = 0; j < QK8_1; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.f, id = d ? 1.0f / d : 0.0f;
        y[b].d = slm_fp32_to_fp16(d);
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) { y[b].qs[j] = (int8_t)slm_nearest_int(x[j] * id); sum += y[b].qs[j]; }
        y[b].s = slm_fp32_to_fp16((float)sum * d);
    }
}

void slm_quantize_act_q8_K(const float *x, void *vy, int64_t n)
{
    block_q8_K *y = vy;
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        float max = 0, amax = 0;
        for (int j = 0; j < QK_K; j++)
            if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); max = x[j]; }
        if (!amax) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; j++) {
            int v = slm_nearest_int(iscale * x[j]);
            y[b].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int i = 0; i < 16; i++) sum += y[b].qs[16 * j + i];
            y[b].bsums[j] = (int16_t)sum;
        }
        y[b].d = 1 / iscale;
    }
}

/* As weights, Q8_1 / Q8_K are only activation types: their quantize is the activation one. */
void slm_quantize_q8_1(const float *x, void *y, int64_t n, const float *imp) { (void)imp; slm_quantize_act_q8_1(x, y, n); }
void slm_quantize_q8_K(const float *x, void *y, int64_t n, const float *imp) { (void)imp; slm_quantize_act_q8_K(x, y, n); }

/* ---------------- dequantize (ggml's arithmetic) ---------------- */

void slm_dequantize_q4_0(const void *vx, float *y, int64_t n)
{
    const block_q4_0 *x = vx;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const float d = slm_h2f(x[i].d);
        for (int j = 0; j < 16; j++) {
            y[i * 32 + j] = ((x[i].qs[j] & 0x0F) - 8) * d;
            y[i * 32 + j + 16] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void slm_dequantize_q4_1(const void *vx, float *y, int64_t n)
{
    const block_q4_1 *x = vx;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        const float d = slm_h2f(x[i].d), m = slm_h2f(x[i].m);
        for (int j = 0; j < 16; j++) {
            y[i * 32 + j] = (x[i].qs[j] & 0x0F) * d + m;
            y[i * 32 + j + 16] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

void slm_dequantize_q5_0(const void *vx, float *y, int64_t n)
{
    const block_q5_0 *x = vx;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        const float d = slm_h2f(x[i].d);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < 16; j++) {
            const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
            y[i * 32 + j] = (((x[i].qs[j] & 0x0F) | h0) - 16) * d;
            y[i * 32 + j + 16] = (((x[i].qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

void slm_dequantize_q5_1(const void *vx, float *y, int64_t n)
{
    const block_q5_1 *x = vx;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        const float d = slm_h2f(x[i].d), m = slm_h2f(x[i].m);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < 16; j++) {
            const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
            y[i * 32 + j] = ((x[i].qs[j] & 0x0F) | h0) * d + m;
            y[i * 32 + j + 16] = ((x[i].qs[j] >> 4) | h1) * d + m;
        }
    }
}

void slm_dequantize_q8_0(const void *vx, float *y, int64_t n)
{
    const block_q8_0 *x = vx;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float d = slm_h2f(x[i].d);
        for (int j = 0; j < QK8_0; j++) y[i * 32 + j] = x[i].qs[j] * d;
    }
}

void slm_dequantize_q8_1(const void *vx, float *y, int64_t n)
{
    const block_q8_1 *x = vx;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        const float d = slm_h2f(x[i].d);
        for (int j = 0; j < QK8_1; j++) y[i * 32 + j] = x[i].qs[j] * d;
    }
}

/* ---------------- scalar vec_dot ---------------- */

void slm_vec_dot_q4_0(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q4_0 *x = vx;
    const block_q8_0 *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++)
            sumi += ((x[i].qs[j] & 0x0F) - 8) * y[i].qs[j] + ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
        sumf += sumi * slm_h2f(x[i].d) * slm_h2f(y[i].d);
    }
    *s = sumf;
}

void slm_vec_dot_q4_1(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q4_1 *x = vx;
    const block_q8_1 *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++)
            sumi += (x[i].qs[j] & 0x0F) * y[i].qs[j] + (x[i].qs[j] >> 4) * y[i].qs[j + 16];
        sumf += (slm_h2f(x[i].d) * slm_h2f(y[i].d)) * sumi + slm_h2f(x[i].m) * slm_h2f(y[i].s);
    }
    *s = sumf;
}

void slm_vec_dot_q5_0(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q5_0 *x = vx;
    const block_q8_0 *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
            sumi += (((x[i].qs[j] & 0x0F) | h0) - 16) * y[i].qs[j] + (((x[i].qs[j] >> 4) | h1) - 16) * y[i].qs[j + 16];
        }
        sumf += (slm_h2f(x[i].d) * slm_h2f(y[i].d)) * sumi;
    }
    *s = sumf;
}

void slm_vec_dot_q5_1(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q5_1 *x = vx;
    const block_q8_1 *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
            sumi += ((x[i].qs[j] & 0x0F) | h0) * y[i].qs[j] + ((x[i].qs[j] >> 4) | h1) * y[i].qs[j + 16];
        }
        sumf += (slm_h2f(x[i].d) * slm_h2f(y[i].d)) * sumi + slm_h2f(x[i].m) * slm_h2f(y[i].s);
    }
    *s = sumf;
}

void slm_vec_dot_q8_0(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q8_0 *x = vx, *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_0; j++) sumi += x[i].qs[j] * y[i].qs[j];
        sumf += sumi * (slm_h2f(x[i].d) * slm_h2f(y[i].d));
    }
    *s = sumf;
}

void slm_vec_dot_q8_1(int64_t n, float *s, const void *vx, const void *vy)
{
    const block_q8_1 *x = vx, *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_1; j++) sumi += x[i].qs[j] * y[i].qs[j];
        sumf += sumi * (slm_h2f(x[i].d) * slm_h2f(y[i].d));
    }
    *s = sumf;
}
