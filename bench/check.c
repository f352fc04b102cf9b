/* bench/check.c — the kernel self-check: every hook of a kernel set against the scalar
 * set, as tests/test_libquant.c does for x86 (bit-identical converters, dequantizers,
 * activation quantizers and quantizer output; integer dot products exact, float sums
 * within 1e-5 of the sum of |terms|). It needs no test framework, so it runs where
 * Criterion cannot (aarch64 under qemu-user): `slm bench kernels --check`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "qimpl.h"
#include "iquants.h"
#include "iq1.h"
#include "iq2_grids.h"

typedef struct {
    bench_check_report report;
    void *ctx;
    int kernel;
    int pass, fail;
} chk;

static void note(chk *c, int ok, const char *what, const char *detail)
{
    ok ? c->pass++ : c->fail++;
    if (c->report)
        c->report(c->ctx, c->kernel, what, ok, detail);
}

static uint64_t g_rng;
static uint64_t rnd(void)
{
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float gauss(void)
{
    double u = ((rnd() >> 11) + 0.5) / 9007199254740992.0, v = ((rnd() >> 11) + 0.5) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}
static int exact_vec_dot(int k)
{
    return k == SLM_KERNEL_NEON || k == SLM_KERNEL_DOTPROD || k == SLM_KERNEL_I8MM || k == SLM_KERNEL_SVE || k == SLM_KERNEL_FHM;
}
static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* half / bfloat16 row converters: bit for bit */
static void check_half_rows(chk *c)
{
    enum { N = 1 << 16 };
    uint16_t *h = malloc(N * 2), *b = malloc(N * 2), *h2 = malloc(N * 2);
    float *f = malloc(N * 4), *g = malloc(N * 4), *x = malloc(N * 4);
    char d[160] = "";
    if (!h || !b || !h2 || !f || !g || !x) {
        note(c, 0, "half rows", "out of memory");
        goto out;
    }
    int bad = 0;
    for (int i = 0; i < N; i++)
        h[i] = (uint16_t)i;
    slm_kernel_force(c->kernel);
    slm_fp16_to_fp32_row(h, f, N);
    slm_fp32_to_fp16_row(f, h2, N);
    slm_bf16_to_fp32_row(h, g, N);
    for (int i = 0; i < N && !bad; i++)
        if (f2u(f[i]) != f2u(slm_fp16_to_fp32(h[i])) || h2[i] != slm_fp32_to_fp16(slm_fp16_to_fp32(h[i])) ||
            f2u(g[i]) != (uint32_t)i << 16)
            bad = 1, snprintf(d, sizeof d, "half %04x", i);
    note(c, !bad, "fp16/bf16 rows: every half", d);
    bad = 0;
    g_rng = 42;
    for (int round = 0; round < 3 && !bad; round++) {
        for (int i = 0; i < N; i++) {
            uint32_t u = (uint32_t)rnd();
            if (round == 1) /* the half range incl. subnormals and overflow */
                u = (u & 0x807fffffu) | ((uint32_t)(100 + rnd() % 45) << 23);
            if (round == 2) /* halfway cases */
                u = (u & ~0x1fffu) | 0x1000u | (uint32_t)(rnd() & 1) << 13;
            x[i] = u2f(u);
        }
        slm_fp32_to_fp16_row(x, h, N - 3);
        slm_fp32_to_bf16_row(x, b, N - 3);
        for (int i = 0; i < N - 3 && !bad; i++)
            if (h[i] != slm_fp32_to_fp16(x[i]) || b[i] != slm_fp32_to_bf16(x[i]))
                bad = 1, snprintf(d, sizeof d, "round %d float %08x", round, f2u(x[i]));
    }
    note(c, !bad, "fp16/bf16 rows: random floats", d);
out:
    slm_kernel_force(SLM_KERNEL_SCALAR);
    free(h); free(b); free(h2); free(f); free(g); free(x);
}

static const uint32_t g_types[] = {1, 30, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, /* F16 BF16 Q4_0.. Q6_K */
                                    20, 23, 34, 35, 18, 21,                /* IQ4_NL IQ4_XS TQ1_0 TQ2_0 IQ3_XXS IQ3_S */
                                    16, 17, 22,                           /* IQ2_XXS IQ2_XS IQ2_S */
                                    19, 29};                               /* IQ1_S IQ1_M */

static double mag_of(const slm_qtraits *t, const void *w, const float *a, int64_t n, float *tmp)
{
    t->dequantize_row(w, tmp, n);
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m += fabs((double)tmp[i] * a[i]);
    return m;
}

/* ---- the int8 batch GEMM's arithmetic in plain C (gemm_x86.inc, gemm_arm.inc), written per
 * element from the block formats: every set's GEMM must give these bits, so a GEMM on one
 * architecture equals the other's. Per (row, token): legacy types acc = fma(isum, d_w * d_a,
 * acc) per 32-block (isum = sum of signed level x activation); k-quants per super-block
 * acc = fma(ai, d * d_a, acc), then acc = fma(-mn, dm * d_a, acc), with u the unsigned level,
 * ai = sum over 16-element groups g of sc(g) * sum(u y), mn = sum_g m(g) * bsum(g). */
static void ref_legacy(uint32_t type, const uint8_t *x, int8_t lv[32], float *d)
{
    *d = slm_h2f((uint16_t)(x[0] | x[1] << 8));
    for (int i = 0; i < 32; i++) {
        if (type == SLM_T_IQ4_NL) {
            lv[i] = slm_kvalues_iq4nl[i < 16 ? x[2 + i] & 15 : x[2 + i - 16] >> 4];
        } else if (type == SLM_T_Q8_0) {
            lv[i] = (int8_t)x[2 + i];
        } else if (type == SLM_T_Q4_0) {
            lv[i] = (int8_t)((i < 16 ? x[2 + i] & 15 : x[2 + i - 16] >> 4) - 8);
        } else {
            uint32_t qh = (uint32_t)x[2] | (uint32_t)x[3] << 8 | (uint32_t)x[4] << 16 | (uint32_t)x[5] << 24;
            int nib = i < 16 ? x[6 + i] & 15 : x[6 + i - 16] >> 4;
            lv[i] = (int8_t)((nib | (int)((qh >> i) & 1) << 4) - 16);
        }
    }
}

/* u[i], and per 16-element group g the scale sc[g] and min factor m[g] */
static void ref_kq(uint32_t type, const void *vx, int u[256], int sc[16], int m[16], float *d, float *dm)
{
    for (int i = 0; i < 256; i++) {
        const int h = i / 128, j = (i % 128) / 32, l = i % 32;
        if (type == SLM_T_Q2_K) {
            const block_q2_K *x = vx;
            u[i] = (x->qs[32 * h + l] >> (2 * j)) & 3;
        } else if (type == SLM_T_Q3_K) {
            const block_q3_K *x = vx;
            u[i] = ((x->qs[32 * h + l] >> (2 * j)) & 3) + ((x->hmask[l] >> (4 * h + j)) & 1) * 4;
        } else if (type == SLM_T_Q4_K || type == SLM_T_Q5_K) {
            const int q = i / 64, hi = (i % 64) / 32;
            const uint8_t *qs = type == SLM_T_Q4_K ? ((const block_q4_K *)vx)->qs : ((const block_q5_K *)vx)->qs;
            u[i] = hi ? qs[32 * q + l] >> 4 : qs[32 * q + l] & 15;
            if (type == SLM_T_Q5_K)
                u[i] |= ((((const block_q5_K *)vx)->qh[l] >> (2 * q + hi)) & 1) << 4;
        } else {
            const block_q6_K *x = vx;
            const uint8_t *ql = x->ql + 64 * h, *qh = x->qh + 32 * h;
            const int lo = j & 1 ? ql[32 + l] : ql[l];
            u[i] = (j < 2 ? lo & 15 : lo >> 4) | ((qh[l] >> (2 * j)) & 3) << 4;
        }
    }
    for (int g = 0; g < 16; g++) {
        if (type == SLM_T_Q2_K) {
            const block_q2_K *x = vx;
            sc[g] = x->scales[g] & 15, m[g] = x->scales[g] >> 4, *d = slm_h2f(x->d), *dm = slm_h2f(x->dmin);
        } else if (type == SLM_T_Q3_K) {
            const block_q3_K *x = vx;
            int lo = g < 8 ? x->scales[g] & 15 : x->scales[g - 8] >> 4;
            sc[g] = (lo | ((x->scales[8 + g % 4] >> (2 * (g / 4))) & 3) << 4) - 32;
            m[g] = 4 * sc[g], *d = *dm = slm_h2f(x->d);
        } else if (type == SLM_T_Q4_K || type == SLM_T_Q5_K) {
            const block_q4_K *x4 = vx;
            const block_q5_K *x5 = vx;
            const uint8_t *scales = type == SLM_T_Q4_K ? x4->scales : x5->scales;
            uint8_t s, mm;
            slm_get_scale_min_k4(g / 2, scales, &s, &mm);
            sc[g] = s, m[g] = mm;
            *d = slm_h2f(type == SLM_T_Q4_K ? x4->d : x5->d), *dm = slm_h2f(type == SLM_T_Q4_K ? x4->dmin : x5->dmin);
        } else {
            const block_q6_K *x = vx;
            sc[g] = x->scales[g], m[g] = 32 * x->scales[g], *d = *dm = slm_h2f(x->d);
        }
    }
}

/* i-quants and ternary types on super-blocks: the signed level v[i], the integer multiplier
 * sc[g] of each 16-element group and the block's float d (the GEMM's: ggml's 1/4 or 1/8
 * folded in). The GEMM's acc = fma(sum_g sc(g) * sum(v y), d * d_a, acc) per super-block. */
static int ref_iq(uint32_t type, const void *vx, int v[256], int sc[16], float *d)
{
    const uint64_t *g1 = slm_iq1_is(type) ? slm_iq1s_grid_get() : NULL;
    slm_iq2_grids_init();
    slm_iq3_init();
    for (int i = 0; i < 256; i++) {
        const int ib = i / 32, j = i % 32, g = i / 8, k = i % 8;
        if (type == SLM_T_IQ4_XS) {
            const block_iq4_xs *x = vx;
            v[i] = slm_kvalues_iq4nl[j < 16 ? x->qs[16 * ib + j] & 15 : x->qs[16 * ib + j - 16] >> 4];
            sc[i / 16] = slm_iq4xs_ls(x, ib) - 32, *d = slm_h2f(x->d);
        } else if (type == SLM_T_IQ3_XXS) {
            const block_iq3_xxs *x = vx;
            const uint32_t aux = (uint32_t)x->qs[64 + 4 * ib] | (uint32_t)x->qs[65 + 4 * ib] << 8 |
                                 (uint32_t)x->qs[66 + 4 * ib] << 16 | (uint32_t)x->qs[67 + 4 * ib] << 24;
            const int q = (int)((slm_iq3xxs_grid[x->qs[8 * ib + j / 4]] >> 8 * (j % 4)) & 255);
            v[i] = (slm_ksigns_iq2xs[(aux >> 7 * (j / 8)) & 127] >> (j % 8)) & 1 ? -q : q;
            sc[i / 16] = 2 * (int)(aux >> 28) + 1, *d = slm_h2f(x->d) * 0.25f;
        } else if (type == SLM_T_IQ3_S) {
            const block_iq3_s *x = vx;
            const int idx = x->qs[8 * ib + j / 4] | ((x->qh[ib] >> (j / 4)) & 1) << 8;
            const int q = (int)((slm_iq3s_grid[idx] >> 8 * (j % 4)) & 255);
            v[i] = (x->signs[i / 8] >> (i % 8)) & 1 ? -q : q;
            sc[i / 16] = 2 * ((x->scales[ib / 2] >> 4 * (ib % 2)) & 15) + 1, *d = slm_h2f(x->d);
        } else if (type == SLM_T_IQ2_XXS) {
            const block_iq2_xxs *x = vx;
            const uint32_t a0 = x->qs[4 * ib] | (uint32_t)x->qs[4 * ib + 1] << 16;
            const uint32_t a1 = x->qs[4 * ib + 2] | (uint32_t)x->qs[4 * ib + 3] << 16;
            const int q = (int)((slm_iq2xxs_grid[(a0 >> 8 * (j / 8)) & 255] >> 8 * k) & 255);
            v[i] = (slm_ksigns_iq2xs[(a1 >> 7 * (j / 8)) & 127] >> k) & 1 ? -q : q;
            sc[i / 16] = 2 * (int)(a1 >> 28) + 1, *d = slm_h2f(x->d) * 0.125f;
        } else if (type == SLM_T_IQ2_XS) {
            const block_iq2_xs *x = vx;
            const int q = (int)((slm_iq2xs_grid[x->qs[g] & 511] >> 8 * k) & 255);
            v[i] = (slm_ksigns_iq2xs[x->qs[g] >> 9] >> k) & 1 ? -q : q;
            sc[i / 16] = 2 * ((x->scales[ib] >> 4 * ((i / 16) % 2)) & 15) + 1, *d = slm_h2f(x->d) * 0.125f;
        } else if (type == SLM_T_IQ2_S) {
            const block_iq2_s *x = vx;
            const int q = (int)((slm_iq2s_grid[x->qs[g] | ((x->qh[g / 4] >> 2 * (g % 4)) & 3) << 8] >> 8 * k) & 255);
            v[i] = (x->qs[32 + g] >> k) & 1 ? -q : q;
            sc[i / 16] = 2 * ((x->scales[ib] >> 4 * ((i / 16) % 2)) & 15) + 1, *d = slm_h2f(x->d) * 0.125f;
        } else if (type == SLM_T_IQ1_S) { /* 8 (t + delta): delta +-1/8 */
            const block_iq1_s *x = vx;
            const unsigned h = x->qh[ib];
            const int t = (int8_t)(g1[x->qs[g] | ((h >> 3 * (g % 4)) & 7) << 8] >> 8 * k);
            v[i] = 8 * t + (h & 0x8000 ? -1 : 1);
            sc[i / 16] = 2 * (int)((h >> 12) & 7) + 1, *d = slm_h2f(x->d) * 0.125f;
        } else if (type == SLM_T_IQ1_M) {
            const block_iq1_m *x = vx;
            const unsigned h = x->qh[g / 2], w = (unsigned)(x->scales[2 * (ib / 2)] | x->scales[2 * (ib / 2) + 1] << 8);
            const int t = (int8_t)(g1[x->qs[g] | (g % 2 ? (h >> 4) & 7 : h & 7) << 8] >> 8 * k);
            v[i] = 8 * t + (h & (g % 2 ? 0x80 : 0x08) ? -1 : 1);
            sc[i / 16] = 2 * (int)((w >> (6 * (ib % 2) + 3 * ((i / 16) % 2))) & 7) + 1;
            *d = slm_h2f(slm_iq1m_d(x)) * 0.125f;
        } else if (type == SLM_T_TQ2_0) {
            const block_tq2_0 *x = vx;
            v[i] = ((x->qs[32 * (i / 128) + j] >> 2 * ((i % 128) / 32)) & 3) - 1;
            sc[i / 16] = 1, *d = slm_h2f(x->d);
        } else if (type == SLM_T_TQ1_0) { /* trit n of a byte: ((uint8_t)(b * 3^n) * 3) >> 8 */
            static const int pw[5] = {1, 3, 9, 27, 81};
            const block_tq1_0 *x = vx;
            const int b = i < 160 ? x->qs[i % 32] : i < 240 ? x->qs[32 + (i - 160) % 16] : x->qh[(i - 240) % 4];
            const int n = i < 160 ? i / 32 : i < 240 ? (i - 160) / 16 : (i - 240) / 4;
            v[i] = (((b * pw[n]) & 255) * 3 >> 8) - 1;
            sc[i / 16] = 1, *d = slm_h2f(x->d);
        } else {
            return 0;
        }
    }
    return 1;
}

/* one (row, token): w a plain row, y its activations as the type's vec_dot_type row */
static float ref_gemm(uint32_t type, int64_t n, const uint8_t *w, const void *y)
{
    float acc = 0;
    const size_t bsz = slm_qtraits_get(type)->bytes;
    int v[256], scg[16];
    float dd;
    if (n % QK_K == 0 && ref_iq(type, w, v, scg, &dd)) {
        const block_q8_K *a = y;
        for (int64_t B = 0; B < n / QK_K; B++) {
            ref_iq(type, w + (size_t)B * bsz, v, scg, &dd);
            int64_t isum = 0;
            for (int i = 0; i < 256; i++) isum += (int64_t)scg[i / 16] * v[i] * a[B].qs[i];
            acc = fmaf((float)(int32_t)isum, dd * a[B].d, acc);
        }
        return acc;
    }
    if (type == SLM_T_Q4_0 || type == SLM_T_Q5_0 || type == SLM_T_Q8_0 || type == SLM_T_IQ4_NL) {
        const size_t bs = slm_qtraits_get(type)->bytes;
        const block_q8_0 *a = y;
        for (int64_t b = 0; b < n / 32; b++) {
            int8_t lv[32];
            float d;
            ref_legacy(type, w + (size_t)b * bs, lv, &d);
            int32_t isum = 0;
            for (int i = 0; i < 32; i++) isum += lv[i] * a[b].qs[i];
            acc = fmaf((float)isum, d * slm_h2f(a[b].d), acc);
        }
        return acc;
    }
    const size_t bs = slm_qtraits_get(type)->bytes;
    const block_q8_K *a = y;
    for (int64_t B = 0; B < n / QK_K; B++) {
        int u[256], sc[16], m[16];
        float d, dm;
        ref_kq(type, w + (size_t)B * bs, u, sc, m, &d, &dm);
        int64_t ai = 0, mn = 0;
        for (int g = 0; g < 16; g++) {
            int64_t s = 0;
            for (int i = 16 * g; i < 16 * g + 16; i++) s += (int64_t)u[i] * a[B].qs[i];
            ai += sc[g] * s;
            mn += (int64_t)m[g] * a[B].bsums[g];
        }
        acc = fmaf((float)(int32_t)ai, d * a[B].d, acc);
        acc = fmaf(-(float)(int32_t)mn, dm * a[B].d, acc);
    }
    return acc;
}

/* one type: dequantize, vec_dot, activation quantizer, quantizer output, rows, x8, GEMM */
static void check_type(chk *c, uint32_t type)
{
    enum { N = 512, R = 16, T = 5 }; /* T odd: SMMLA's token pairs have a tail */
    const slm_qtraits *base = slm_qtraits_get(type);
    slm_qtraits ks, kk;
    const slm_qtraits *s = slm_qtraits_kernel(type, SLM_KERNEL_SCALAR, &ks);
    const slm_qtraits *v = slm_qtraits_kernel(type, c->kernel, &kk);
    char what[96], d[200] = "";
    const char *tn = base->name;
    float *x = malloc(sizeof(float) * N * R), *a = malloc(sizeof(float) * N * T), *y0 = malloc(sizeof(float) * N),
          *y1 = malloc(sizeof(float) * N), *imp = malloc(sizeof(float) * N), *out = malloc(sizeof(float) * (R * T + 1));
    size_t rb = slm_row_bytes(type, N), ab = slm_row_bytes(base->vec_dot_type, N);
    unsigned char *w = malloc(rb * R), *w2 = malloc(rb * R), *qa = malloc(ab * T), *qb = malloc(ab * T);
    if (!x || !a || !y0 || !y1 || !imp || !out || !w || !w2 || !qa || !qb || !s || !v) {
        snprintf(what, sizeof what, "%s: setup", tn);
        note(c, 0, what, "out of memory or no table");
        goto out;
    }
    g_rng = 1000 + type;
    for (int i = 0; i < N * R; i++)
        x[i] = gauss() * (i % 7 == 0 ? 5.f : 1.f);
    for (int i = 0; i < N * T; i++)
        a[i] = gauss();
    for (int i = 0; i < N; i++)
        imp[i] = 0.1f + (float)(rnd() % 1000) / 100.f;

    /* quantizer output: the set's search helpers must give the scalar bytes */
    for (int wi = 0; wi < 2; wi++) {
        slm_kernel_force(SLM_KERNEL_SCALAR);
        slm_quantize_rows(type, x, w, R, N, wi ? imp : NULL);
        slm_kernel_force(c->kernel);
        slm_quantize_rows(type, x, w2, R, N, wi ? imp : NULL);
        slm_kernel_force(SLM_KERNEL_SCALAR);
        snprintf(what, sizeof what, "%s: quantize%s", tn, wi ? " (importance)" : "");
        note(c, !memcmp(w, w2, rb * R), what, "bytes differ from the scalar set's");
    }
    /* activations: the same bytes on every set */
    int act_ok = 1;
    for (int t = 0; t < T; t++) {
        if (base->is_quant) {
            act_ok &= slm_quantize_act_kernel(base->vec_dot_type, SLM_KERNEL_SCALAR, a + t * N, qa + t * ab, N) == 0 &&
                      slm_quantize_act_kernel(base->vec_dot_type, c->kernel, a + t * N, qb + t * ab, N) == 0;
        } else {
            slm_quantize_act(base->vec_dot_type, a + t * N, qa + t * ab, N);
            memcpy(qb + t * ab, qa + t * ab, ab);
        }
    }
    snprintf(what, sizeof what, "%s: activation quantizer", tn);
    note(c, act_ok && !memcmp(qa, qb, ab * T), what, "bytes differ from the scalar set's");

    /* dequantize and vec_dot, on quantized rows and (quant types) on random bytes */
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            if (!base->is_quant)
                break;
            for (size_t i = 0; i < rb * R; i++)
                w[i] = (unsigned char)rnd();
            /* finite fp16 scales: clear the exponent's top bit of any Inf/NaN half */
            uint16_t *hh = (uint16_t *)w;
            for (size_t i = 0; i < rb * R / 2; i++)
                if ((hh[i] & 0x7c00) == 0x7c00)
                    hh[i] &= 0xbfff;
            /* IQ1_M keeps its fp16 scale in the top nibbles of its four scale words: its
             * bit 14 (the exponent's top bit) is bit 6 of the block's last byte, cleared */
            if (type == 29)
                for (size_t i = 0; i < rb * R / 56; i++) w[56 * i + 55] &= 0xbf;
        }
        int dq_ok = 1, vd_ok = 1;
        for (int r = 0; r < R && dq_ok && vd_ok; r++) {
            const unsigned char *wr = w + r * rb;
            s->dequantize_row(wr, y0, N);
            v->dequantize_row(wr, y1, N);
            for (int i = 0; i < N && dq_ok; i++)
                if (f2u(y0[i]) != f2u(y1[i]))
                    dq_ok = 0, snprintf(d, sizeof d, "row %d i=%d: %.9g vs %.9g", r, i, y1[i], y0[i]);
            float ds, dv;
            double m = mag_of(s, wr, a, N, y0);
            s->vec_dot(N, &ds, wr, qa);
            v->vec_dot(N, &dv, wr, qa);
            if (!(fabs((double)dv - ds) <= 1e-5 * m + 1e-30))
                vd_ok = 0, snprintf(d, sizeof d, "row %d: %.9g vs %.9g (sum |terms| %g)", r, dv, ds, m);
            /* the aarch64 sets' quantized vec_dot (and x8 decode, below): exact integer sums, the scalar float order */
            if (vd_ok && base->is_quant && exact_vec_dot(c->kernel) && f2u(dv) != f2u(ds))
                vd_ok = 0, snprintf(d, sizeof d, "row %d: %.9g vs %.9g (not bit-identical)", r, dv, ds);
        }
        snprintf(what, sizeof what, "%s: dequantize%s", tn, round ? " (random bytes)" : "");
        note(c, dq_ok, what, d);
        snprintf(what, sizeof what, "%s: vec_dot%s", tn, round ? " (random bytes)" : "");
        note(c, vd_ok, what, d);
    }
    slm_quantize_rows(type, x, w, R, N, NULL);

    /* multi-row decode kernel: against scalar vec_dot row by row; nothing written past */
    slm_rows_fn rows = slm_rows_kernel(type, c->kernel);
    if (rows) {
        int ok = 1;
        out[R] = 12345.f;
        rows(N, R, out, w, rb, qa);
        ok &= out[R] == 12345.f;
        for (int r = 0; r < R && ok; r++) {
            float want;
            s->vec_dot(N, &want, w + r * rb, qa);
            double m = mag_of(s, w + r * rb, a, N, y0);
            if (!(fabs((double)out[r] - want) <= 1e-5 * m + 1e-30))
                ok = 0, snprintf(d, sizeof d, "row %d: %.9g vs %.9g", r, out[r], want);
        }
        snprintf(what, sizeof what, "%s: row kernel", tn);
        note(c, ok, what, d);
    }
    /* x8 layout decode */
    slm_x8_fn x8 = slm_x8_kernel(type, c->kernel);
    for (int round = 0; x8 && round < 2; round++) {
        const char *rn = round ? " (random bytes)" : "";
        if (round) { /* every level, finite scales */
            for (size_t i = 0; i < rb * R; i++)
                w[i] = (unsigned char)rnd();
            uint16_t *hh = (uint16_t *)w;
            for (size_t i = 0; i < rb * R / 2; i++)
                if ((hh[i] & 0x7c00) == 0x7c00)
                    hh[i] &= 0xbfff;
        }
        size_t gb = slm_x8_group_bytes(type, N);
        unsigned char *p = gb ? malloc(gb * (R / 8)) : NULL;
        int ok = p && slm_x8_pack(type, w, p, R, N);
        /* the aarch64 sets' x8 products are the scalar vec_dot's bits (gemm_arm.inc) */
        const int bits = exact_vec_dot(c->kernel);
        int exact = ok;
        char d2[200] = "";
        if (ok) {
            x8(N, R / 8, out, p, qa);
            for (int r = 0; r < R && ok; r++) {
                float want;
                s->vec_dot(N, &want, w + r * rb, qa);
                double m = mag_of(s, w + r * rb, a, N, y0);
                if (!(fabs((double)out[r] - want) <= 1e-5 * m + 1e-30))
                    ok = 0, snprintf(d, sizeof d, "row %d: %.9g vs %.9g", r, out[r], want);
                if (exact && f2u(out[r]) != f2u(want))
                    exact = 0, snprintf(d2, sizeof d2, "row %d: %.9g vs %.9g", r, out[r], want);
            }
        }
        free(p);
        snprintf(what, sizeof what, "%s: x8 decode%s", tn, rn);
        note(c, ok, what, d);
        if (bits) {
            snprintf(what, sizeof what, "%s: x8 decode = scalar vec_dot (bits)%s", tn, rn);
            note(c, exact, what, d2);
        }
    }
    slm_quantize_rows(type, x, w, R, N, NULL);
    /* batch GEMM: every (row, token) against scalar vec_dot (1e-5 of the sum of |terms|) and,
     * bit for bit, against the int8 GEMM's arithmetic (ref_gemm: what x86 and ARM both
     * compute); on the x8 layout the same bits as on the plain rows; a partial panel (13
     * rows) gives the same bits and writes nothing past its rows */
    slm_gemm_fn gemm = slm_gemm_kernel(type, c->kernel);
    for (int round = 0; gemm && round < 2; round++) {
        const char *rn = round ? " (random bytes)" : "";
        if (round) { /* every level, finite scales (as for vec_dot above) */
            for (size_t i = 0; i < rb * R; i++)
                w[i] = (unsigned char)rnd();
            uint16_t *hh = (uint16_t *)w;
            for (size_t i = 0; i < rb * R / 2; i++)
                if ((hh[i] & 0x7c00) == 0x7c00)
                    hh[i] &= 0xbfff;
            if (type == 29) /* IQ1_M's scale (as above) */
                for (size_t i = 0; i < rb * R / 56; i++) w[56 * i + 55] &= 0xbf;
        }
        size_t gab = slm_gemm_act_bytes(type, N, T), sb = slm_gemm_scratch_bytes(type, N), gb = slm_x8_group_bytes(type, N);
        void *act = gab ? malloc(gab) : NULL, *scr = sb ? aligned_alloc(64, (sb + 63) / 64 * 64) : NULL;
        float *o2 = malloc(sizeof(float) * R * T);
        unsigned char *p = gb ? malloc(gb * (R / 8)) : NULL;
        int ok = act && scr && o2 && (!gb || p) && slm_gemm_act_prep(type, c->kernel, a, N, T, act) == 0;
        int exact = ok, x8ok = ok, part = ok;
        char d2[200] = "", d3[200] = "", d4[200] = "";
        if (ok) {
            gemm(N, R, out, R, w, 0, act, T, scr);
            for (int t = 0; t < T; t++)
                for (int r = 0; r < R; r++) {
                    float want, ref = ref_gemm(type, N, w + r * rb, qa + t * ab);
                    s->vec_dot(N, &want, w + r * rb, qa + t * ab);
                    double m = mag_of(s, w + r * rb, a + t * N, N, y0);
                    if (ok && !(fabs((double)out[t * R + r] - want) <= 1e-5 * m + 1e-30))
                        ok = 0, snprintf(d, sizeof d, "row %d token %d: %.9g vs %.9g", r, t, out[t * R + r], want);
                    if (exact && f2u(out[t * R + r]) != f2u(ref))
                        exact = 0, snprintf(d2, sizeof d2, "row %d token %d: %.9g vs %.9g", r, t, out[t * R + r], ref);
                }
            if (gb && slm_gemm_reads_x8(type) && slm_x8_pack(type, w, p, R, N) == gb * (R / 8)) {
                gemm(N, R, o2, R, p, 1, act, T, scr);
                for (int i = 0; i < R * T && x8ok; i++)
                    if (f2u(o2[i]) != f2u(out[i]))
                        x8ok = 0, snprintf(d3, sizeof d3, "row %d token %d: %.9g vs %.9g", i % R, i / R, o2[i], out[i]);
            } else if (gb && slm_gemm_reads_x8(type)) {
                x8ok = 0, snprintf(d3, sizeof d3, "slm_x8_pack failed");
            }
            for (int i = 0; i < R * T; i++)
                o2[i] = 12345.f;
            gemm(N, 13, o2, R, w, 0, act, T, scr);
            for (int i = 0; i < R * T && part; i++)
                if (i % R < 13 ? f2u(o2[i]) != f2u(out[i]) : o2[i] != 12345.f)
                    part = 0, snprintf(d4, sizeof d4, "row %d token %d: %.9g (plain: %.9g)", i % R, i / R, o2[i], out[i]);
        }
        free(act);
        free(scr);
        free(o2);
        free(p);
        snprintf(what, sizeof what, "%s: batch GEMM%s", tn, rn);
        note(c, ok, what, d);
        snprintf(what, sizeof what, "%s: batch GEMM = int8 reference (bits)%s", tn, rn);
        note(c, exact, what, d2);
        if (gb) {
            snprintf(what, sizeof what, "%s: batch GEMM on x8 = plain rows (bits)%s", tn, rn);
            note(c, x8ok, what, d3);
        }
        snprintf(what, sizeof what, "%s: batch GEMM, 13 rows%s", tn, rn);
        note(c, part, what, d4);
    }
    /* F16 / BF16 single-token products (gemv_half on F32 activations; gemv_f16x: F16 weights
     * times activations rounded to F16), at the block length and at a length that leaves a
     * tail after every vector step (the same bytes read as rows of n_in halves) */
    slm_gemv_half_fn gh = type == 1 || type == 30 ? slm_gemv_half_kernel(c->kernel) : NULL;
    slm_gemv_f16x_fn gx = type == 1 ? slm_gemv_f16x_kernel(c->kernel) : NULL;
    uint16_t *ah = gh || gx ? malloc(sizeof(uint16_t) * N) : NULL;
    for (int f16x = 0; ah && f16x < 2; f16x++) {
        if (f16x ? !gx : !gh)
            continue;
        for (int i = 0; i < N; i++)
            ah[i] = slm_fp32_to_fp16(a[i]);
        int ok = 1;
        for (int tail = 0; tail < 2 && ok; tail++) {
            const int n_in = tail ? N - 23 : N;
            const uint16_t *hw = (const uint16_t *)w;
            if (f16x)
                gx(hw, n_in, 0, R, ah, out);
            else
                gh(hw, type == 30, n_in, 0, R, a, out);
            for (int r = 0; r < R && ok; r++) {
                double want = 0, m = 0;
                for (int i = 0; i < n_in; i++) {
                    uint16_t h = hw[(size_t)r * n_in + i];
                    double p = (double)(type == 30 ? slm_bf16_to_fp32(h) : slm_fp16_to_fp32(h)) *
                               (f16x ? slm_fp16_to_fp32(ah[i]) : a[i]);
                    want += p, m += fabs(p);
                }
                if (!(fabs(out[r] - want) <= 1e-5 * m + 1e-30))
                    ok = 0, snprintf(d, sizeof d, "n %d row %d: %.9g vs %.9g", n_in, r, out[r], want);
            }
        }
        snprintf(what, sizeof what, "%s: gemv%s", tn, f16x ? " on F16 activations" : "");
        note(c, ok, what, d);
    }
    free(ah);
    /* F16 / BF16 batch GEMM (gemm_half: T tokens of F32 activations), full rows and a
     * length with a column tail, all rows and a slice of them */
    slm_gemm_half_fn gg = type == 1 || type == 30 ? slm_gemm_half_kernel(c->kernel) : NULL;
    void *gs = gg ? aligned_alloc(64, (slm_gemm_half_scratch_bytes(N) + 63) / 64 * 64) : NULL;
    if (gg) {
        int ok = gs != NULL;
        snprintf(d, sizeof d, "out of memory");
        for (int tail = 0; tail < 2 && ok; tail++) {
            const int n_in = tail ? N - 23 : N;
            const uint16_t *hw = (const uint16_t *)w;
            for (int i = 0; i < R * T; i++)
                out[i] = -1;
            gg(hw, type == 30, n_in, tail ? 3 : 0, tail ? 13 : R, a, T, out, R, gs);
            for (int t = 0; t < T && ok; t++)
                for (int r = tail ? 3 : 0; r < (tail ? 13 : R) && ok; r++) {
                    double want = 0, m = 0;
                    for (int i = 0; i < n_in; i++) {
                        uint16_t h = hw[(size_t)r * n_in + i];
                        double p = (double)(type == 30 ? slm_bf16_to_fp32(h) : slm_fp16_to_fp32(h)) *
                                   a[(size_t)t * n_in + i];
                        want += p, m += fabs(p);
                    }
                    if (!(fabs(out[t * R + r] - want) <= 1e-5 * m + 1e-30))
                        ok = 0, snprintf(d, sizeof d, "n %d token %d row %d: %.9g vs %.9g", n_in, t, r,
                                         out[t * R + r], want);
                }
        }
        snprintf(what, sizeof what, "%s: gemm of %d tokens", tn, (int)T);
        note(c, ok, what, d);
    }
    free(gs);
out:
    slm_kernel_force(SLM_KERNEL_SCALAR);
    free(x); free(a); free(y0); free(y1); free(imp); free(out); free(w); free(w2); free(qa); free(qb);
}

int bench_kernels_check(int kernel, bench_check_report report, void *ctx, int *n_pass, int *n_fail, slm_err *err)
{
    if (kernel < 0 || kernel >= SLM_KERNEL_COUNT)
        return slm_err_set(err, SLM_EUSAGE, "unknown kernel set %d", kernel);
    if (!slm_cpu_has(kernel))
        return slm_err_set(err, SLM_EUSAGE, "this CPU cannot run the %s kernel set", slm_kernel_name(kernel));
    int was = slm_kernel_active();
    chk c = {report, ctx, kernel, 0, 0};
    check_half_rows(&c);
    for (size_t i = 0; i < sizeof g_types / sizeof g_types[0]; i++)
        check_type(&c, g_types[i]);
    slm_kernel_force(was);
    *n_pass += c.pass;
    *n_fail += c.fail;
    return SLM_OK;
}
