/* libquant/llama_ref.c — REFERENCE RE-IMPLEMENTATION, for comparison only.
 *
 * llama.cpp's published no-imatrix quantizers (ggml-quants.c quantize_row_*_ref:
 * max/-8 rounding for the legacy types; make_qkx2_quants, make_q3_quants and
 * make_qx_quants for the k-quants), rewritten here from the algorithm description
 * so tests and bench can measure our quantizers against them, and so the
 * quantizers can keep whichever result is better per block. Not used for output
 * on its own.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "qimpl.h"

#define RMAX(a, b) ((a) > (b) ? (a) : (b))
#define RMIN(a, b) ((a) < (b) ? (a) : (b))

static void ref_q4_0(const float *x, block_q4_0 *y, int64_t k)
{
    for (int64_t i = 0; i < k / 32; i++, x += 32) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++) if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        const float d = max / -8, id = d ? 1.0f / d : 0.0f;
        y[i].d = slm_fp32_to_fp16(d);
        for (int j = 0; j < 16; j++) {
            uint8_t a = (uint8_t)RMIN(15, (int8_t)(x[j] * id + 8.5f)), b = (uint8_t)RMIN(15, (int8_t)(x[j + 16] * id + 8.5f));
            y[i].qs[j] = (uint8_t)(a | (b << 4));
        }
    }
}

static void ref_q4_1(const float *x, block_q4_1 *y, int64_t k)
{
    for (int64_t i = 0; i < k / 32; i++, x += 32) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < 32; j++) { if (x[j] < min) min = x[j]; if (x[j] > max) max = x[j]; }
        const float d = (max - min) / 15, id = d ? 1.0f / d : 0.0f;
        y[i].d = slm_fp32_to_fp16(d); y[i].m = slm_fp32_to_fp16(min);
        for (int j = 0; j < 16; j++) {
            uint8_t a = (uint8_t)RMIN(15, (int8_t)((x[j] - min) * id + 0.5f));
            uint8_t b = (uint8_t)RMIN(15, (int8_t)((x[j + 16] - min) * id + 0.5f));
            y[i].qs[j] = (uint8_t)(a | (b << 4));
        }
    }
}

static void ref_q5_0(const float *x, block_q5_0 *y, int64_t k)
{
    for (int64_t i = 0; i < k / 32; i++, x += 32) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++) if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        const float d = max / -16, id = d ? 1.0f / d : 0.0f;
        y[i].d = slm_fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            uint8_t a = (uint8_t)RMIN(31, (int8_t)(x[j] * id + 16.5f)), b = (uint8_t)RMIN(31, (int8_t)(x[j + 16] * id + 16.5f));
            y[i].qs[j] = (uint8_t)((a & 0xF) | ((b & 0xF) << 4));
            qh |= ((a & 0x10u) >> 4) << j; qh |= ((b & 0x10u) >> 4) << (j + 16);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

static void ref_q5_1(const float *x, block_q5_1 *y, int64_t k)
{
    for (int64_t i = 0; i < k / 32; i++, x += 32) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < 32; j++) { if (x[j] < min) min = x[j]; if (x[j] > max) max = x[j]; }
        const float d = (max - min) / 31, id = d ? 1.0f / d : 0.0f;
        y[i].d = slm_fp32_to_fp16(d); y[i].m = slm_fp32_to_fp16(min);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            uint8_t a = (uint8_t)((x[j] - min) * id + 0.5f), b = (uint8_t)((x[j + 16] - min) * id + 0.5f);
            y[i].qs[j] = (uint8_t)((a & 0xF) | ((b & 0xF) << 4));
            qh |= ((a & 0x10u) >> 4) << j; qh |= ((b & 0x10u) >> 4) << (j + 16);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

static void ref_q8_0(const float *x, block_q8_0 *y, int64_t k)
{
    for (int64_t i = 0; i < k / 32; i++, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = RMAX(amax, fabsf(x[j]));
        const float d = amax / 127, id = d ? 1.0f / d : 0.0f;
        y[i].d = slm_fp32_to_fp16(d);
        for (int j = 0; j < 32; j++) {
            /* finite inputs give |v| <= 127 (unchanged results); Inf/NaN would make the cast undefined */
            const float v = x[j] * id;
            y[i].qs[j] = (int8_t)(fabsf(v) <= 127.5f ? roundf(v) : v > 0 ? 127 : v < 0 ? -127 : 0);
        }
    }
}

/* grid search over (scale, min) with weighted least squares per grid point */
static float ref_qkx2(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min, float rmin,
                      float rdelta, int nstep, int use_mad)
{
    uint8_t Laux[32];
    float min = x[0], max = x[0], sum_w = weights[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += weights[i]; sum_x += weights[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) { memset(L, 0, n); *the_min = -min; return 0.f; }
    float iscale = nmax / (max - min), scale = 1 / iscale, best_error = 0;
    for (int i = 0; i < n; i++) {
        int l = slm_qclamp(iscale * (x[i] - min), 0, nmax);
        L[i] = (uint8_t)l;
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = slm_qclamp(iscale * (x[i] - min), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += weights[i] * l; sum_l2 += weights[i] * l * l; sum_xl += weights[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D, this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) { this_min = 0; this_scale = sum_xl / sum_l2; }
            float cur = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur += weights[i] * diff;
            }
            if (cur < best_error) { memcpy(L, Laux, n); best_error = cur; scale = this_scale; min = this_min; }
        }
    }
    *the_min = -min;
    return scale;
}

static float ref_q3(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }
    if (amax < 1e-15f) { memset(L, 0, n); return 0.f; }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = RMAX(-nmax, RMIN(nmax - 1, slm_nearest_int(iscale * x[i])));
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l; suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i], slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int nl = RMAX(-nmax, RMIN(nmax - 1, slm_nearest_int(x[i] * sl2 / slx)));
                if (nl != L[i]) {
                    slx += w * x[i] * nl; sl2 += w * nl * nl;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) { L[i] = (int8_t)nl; sumlx = slx; suml2 = sl2; changed++; }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0 ? sumlx / suml2 : 0.f;
}

static float ref_qx(int n, int nmax, const float *x, int8_t *L)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }
    if (amax < 1e-15f) { memset(L, 0, n); return 0.f; }
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = RMAX(-nmax, RMIN(nmax - 1, slm_nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l; suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (!is) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = RMAX(-nmax, RMIN(nmax - 1, slm_nearest_int(iscale * x[i])));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l; suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + RMAX(-nmax, RMIN(nmax - 1, slm_nearest_int(iscale * x[i]))));
            scale = sumlx / suml2; best = scale * sumlx;
        }
    }
    return scale;
}

static void pack2(const uint8_t *L, uint8_t *qs)
{
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

static void ref_q2_K(const float *x, block_q2_K *y, int64_t k)
{
    uint8_t L[QK_K];
    float w[16], mins[16], scales[16];
    for (int64_t i = 0; i < k / QK_K; i++, x += QK_K) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
            scales[j] = ref_qkx2(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, 1);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            float is = 15.f / max_scale;
            for (int j = 0; j < 16; j++) y[i].scales[j] = (uint8_t)slm_nearest_int(is * scales[j]);
            y[i].d = slm_fp32_to_fp16(max_scale / 15.f);
        } else {
            memset(y[i].scales, 0, 16); y[i].d = slm_fp32_to_fp16(0.f);
        }
        if (max_min > 0) {
            float is = 15.f / max_min;
            for (int j = 0; j < 16; j++) y[i].scales[j] |= (uint8_t)(slm_nearest_int(is * mins[j]) << 4);
            y[i].dmin = slm_fp32_to_fp16(max_min / 15.f);
        } else {
            y[i].dmin = slm_fp32_to_fp16(0.f);
        }
        for (int j = 0; j < 16; j++) {
            const float d = slm_h2f(y[i].d) * (y[i].scales[j] & 0xF);
            if (!d) continue;
            const float dm = slm_h2f(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++) L[16 * j + l] = (uint8_t)RMAX(0, RMIN(3, slm_nearest_int((x[16 * j + l] + dm) / d)));
        }
        pack2(L, y[i].qs);
    }
}

static void ref_q3_K(const float *x, block_q3_K *y, int64_t k)
{
    int8_t L[QK_K];
    float scales[16];
    for (int64_t i = 0; i < k / QK_K; i++, x += QK_K) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = ref_q3(16, 4, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) { amax = fabsf(scales[j]); max_scale = scales[j]; }
        }
        memset(y[i].scales, 0, 12);
        if (max_scale) {
            float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                int l = RMAX(-32, RMIN(31, (int8_t)slm_nearest_int(iscale * scales[j]))) + 32;
                if (j < 8) y[i].scales[j] = (uint8_t)(l & 0xF);
                else y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                y[i].scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            y[i].d = slm_fp32_to_fp16(1 / iscale);
        } else {
            y[i].d = slm_fp32_to_fp16(0.f);
        }
        for (int j = 0; j < 16; j++) {
            int sc = j < 8 ? y[i].scales[j] & 0xF : y[i].scales[j - 8] >> 4;
            sc = (sc | (((y[i].scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
            float d = slm_h2f(y[i].d) * sc;
            if (!d) continue;
            for (int l = 0; l < 16; l++) L[16 * j + l] = (int8_t)(RMAX(-4, RMIN(3, slm_nearest_int(x[16 * j + l] / d))) + 4);
        }
        memset(y[i].hmask, 0, 32);
        uint8_t U[QK_K];
        for (int e = 0; e < QK_K; e++) {
            int v = L[e];
            if (v > 3) { y[i].hmask[e % 32] |= (uint8_t)(1 << (e / 32)); v -= 4; }
            U[e] = (uint8_t)v;
        }
        pack2(U, y[i].qs);
    }
}

static void ref_k4(const float *x, int nmax, float rmin, float rdelta, int nstep, uint8_t *scales_out, uint16_t *d_out,
                   uint16_t *dmin_out, uint8_t *L)
{
    float w[32], mins[8], scales[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float s2 = 0;
        for (int l = 0; l < 32; l++) s2 += x[32 * j + l] * x[32 * j + l];
        float av = sqrtf(s2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av + fabsf(x[32 * j + l]);
        scales[j] = ref_qkx2(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], rmin, rdelta, nstep, 0);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_s = max_scale > 0 ? 63.f / max_scale : 0.f, inv_m = max_min > 0 ? 63.f / max_min : 0.f;
    memset(scales_out, 0, 12);
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)RMIN(63, (uint8_t)slm_nearest_int(inv_s * scales[j]));
        uint8_t lm = (uint8_t)RMIN(63, (uint8_t)slm_nearest_int(inv_m * mins[j]));
        if (j < 4) { scales_out[j] = ls; scales_out[j + 4] = lm; }
        else {
            scales_out[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            scales_out[j - 4] |= (uint8_t)((ls >> 4) << 6);
            scales_out[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *d_out = slm_fp32_to_fp16(max_scale / 63.f);
    *dmin_out = slm_fp32_to_fp16(max_min / 63.f);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        slm_get_scale_min_k4(j, scales_out, &sc, &m);
        const float d = slm_h2f(*d_out) * sc;
        if (!d) continue;
        const float dm = slm_h2f(*dmin_out) * m;
        for (int l = 0; l < 32; l++) L[32 * j + l] = (uint8_t)RMAX(0, RMIN(nmax, slm_nearest_int((x[32 * j + l] + dm) / d)));
    }
}

static void ref_q4_K(const float *x, block_q4_K *y, int64_t k)
{
    uint8_t L[QK_K];
    for (int64_t i = 0; i < k / QK_K; i++, x += QK_K) {
        ref_k4(x, 15, -1.f, 0.1f, 20, y[i].scales, &y[i].d, &y[i].dmin, L);
        for (int j = 0; j < QK_K; j += 64)
            for (int l = 0; l < 32; l++) y[i].qs[j / 2 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

static void ref_q5_K(const float *x, block_q5_K *y, int64_t k)
{
    uint8_t L[QK_K];
    for (int64_t i = 0; i < k / QK_K; i++, x += QK_K) {
        ref_k4(x, 31, -0.5f, 0.1f, 15, y[i].scales, &y[i].d, &y[i].dmin, L);
        memset(y[i].qh, 0, 32);
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                int a = L[64 * j + l], b = L[64 * j + 32 + l];
                y[i].qs[32 * j + l] = (uint8_t)((a & 0xF) | ((b & 0xF) << 4));
                y[i].qh[l] |= (uint8_t)(((a >> 4) << (2 * j)) | ((b >> 4) << (2 * j + 1)));
            }
    }
}

static void ref_q6_K(const float *x, block_q6_K *y, int64_t k)
{
    int8_t L[QK_K];
    float scales[16];
    for (int64_t i = 0; i < k / QK_K; i++, x += QK_K) {
        float max_scale = 0, max_abs = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = ref_qx(16, 32, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > max_abs) { max_abs = fabsf(scales[j]); max_scale = scales[j]; }
        }
        if (max_abs < 1e-15f) { memset(&y[i], 0, sizeof y[i]); continue; }
        float iscale = -128.f / max_scale;
        y[i].d = slm_fp32_to_fp16(1 / iscale);
        for (int j = 0; j < 16; j++) y[i].scales[j] = (int8_t)RMIN(127, slm_nearest_int(iscale * scales[j]));
        for (int j = 0; j < 16; j++) {
            float d = slm_h2f(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int l = 0; l < 16; l++) L[16 * j + l] = (int8_t)(RMAX(-32, RMIN(31, slm_nearest_int(x[16 * j + l] / d))) + 32);
        }
        for (int h = 0; h < 2; h++) {
            uint8_t *ql = y[i].ql + 64 * h, *qh = y[i].qh + 32 * h;
            const int8_t *u = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((u[l] & 0xF) | ((u[l + 64] & 0xF) << 4));
                ql[l + 32] = (uint8_t)((u[l + 32] & 0xF) | ((u[l + 96] & 0xF) << 4));
                qh[l] = (uint8_t)((u[l] >> 4) | ((u[l + 32] >> 4) << 2) | ((u[l + 64] >> 4) << 4) | ((u[l + 96] >> 4) << 6));
            }
        }
    }
}

int slm_llama_ref_quantize_row(uint32_t type, const float *x, void *y, int64_t n)
{
    switch (type) {
    case SLM_T_Q4_0: ref_q4_0(x, y, n); return 1;
    case SLM_T_Q4_1: ref_q4_1(x, y, n); return 1;
    case SLM_T_Q5_0: ref_q5_0(x, y, n); return 1;
    case SLM_T_Q5_1: ref_q5_1(x, y, n); return 1;
    case SLM_T_Q8_0: ref_q8_0(x, y, n); return 1;
    case SLM_T_Q2_K: ref_q2_K(x, y, n); return 1;
    case SLM_T_Q3_K: ref_q3_K(x, y, n); return 1;
    case SLM_T_Q4_K: ref_q4_K(x, y, n); return 1;
    case SLM_T_Q5_K: ref_q5_K(x, y, n); return 1;
    case SLM_T_Q6_K: ref_q6_K(x, y, n); return 1;
    default: return 0;
    }
}
