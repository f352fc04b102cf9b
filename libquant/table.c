/* libquant/table.c — the traits table (one row per type), run-time kernel
 * sets (one slm_kset per set, missing entries from the parent set), dispatch for
 * dequantize / vec_dot / activation quantization, and the row API. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "qimpl.h"
#include "iquants.h"
#include "iq1.h"

#define ROW(T, nm, blk, btype, isq, t, vdt)                                                  \
    [SLM_T_##T] = { SLM_T_##T, nm, blk, sizeof(btype), isq, slm_quantize_##t, dq_##t, SLM_T_##vdt, vd_##t }

/* The kernel sets this binary holds: one filler per set, chosen by target (the
 * Makefile builds each architecture's files only for it). */
typedef void (*kset_filler)(slm_kset *);
static const kset_filler g_fillers[SLM_KERNEL_COUNT] = {
#if defined(__x86_64__)
    [SLM_KERNEL_AVX2] = slm_kset_avx2,
    [SLM_KERNEL_AVX512] = slm_kset_avx512,
#elif defined(__aarch64__)
    [SLM_KERNEL_NEON] = slm_kset_neon,
    [SLM_KERNEL_DOTPROD] = slm_kset_dotprod,
    [SLM_KERNEL_I8MM] = slm_kset_i8mm,
    [SLM_KERNEL_SVE] = slm_kset_sve,
    [SLM_KERNEL_FHM] = slm_kset_fhm,
#endif
};

static slm_kset g_sets[SLM_KERNEL_COUNT];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* scalar row kernels: vec_dot row by row (rows.c) */
slm_rows_fn slm_scalar_rows(uint32_t type);

static void fill_scalar(slm_kset *k)
{
#define SC(T, s) k->t[SLM_T_##T] = (slm_kernel_fns){ slm_vec_dot_##s, slm_dequantize_##s, NULL, slm_scalar_rows(SLM_T_##T), NULL, NULL };
    SC(F32, f32) SC(F16, f16) SC(BF16, bf16) SC(Q4_0, q4_0) SC(Q4_1, q4_1) SC(Q5_0, q5_0) SC(Q5_1, q5_1)
    SC(Q8_0, q8_0) SC(Q8_1, q8_1) SC(Q2_K, q2_K) SC(Q3_K, q3_K) SC(Q4_K, q4_K) SC(Q5_K, q5_K)
    SC(Q6_K, q6_K) SC(Q8_K, q8_K)
    SC(IQ4_NL, iq4_nl) SC(IQ4_XS, iq4_xs) SC(TQ1_0, tq1_0) SC(TQ2_0, tq2_0)
    SC(IQ3_XXS, iq3_xxs) SC(IQ3_S, iq3_s)
    SC(IQ2_XXS, iq2_xxs) SC(IQ2_XS, iq2_xs) SC(IQ2_S, iq2_s)
    SC(IQ1_S, iq1_s) SC(IQ1_M, iq1_m)
#undef SC
    k->t[SLM_T_Q8_0].quantize_act = (slm_quant_fn)(void (*)(void))slm_quantize_act_q8_0;
    k->t[SLM_T_Q8_1].quantize_act = (slm_quant_fn)(void (*)(void))slm_quantize_act_q8_1;
    k->t[SLM_T_Q8_K].quantize_act = (slm_quant_fn)(void (*)(void))slm_quantize_act_q8_K;
    k->fp32_to_fp16_row = slm_fp32_to_fp16_row_scalar;
    k->fp16_to_fp32_row = slm_fp16_to_fp32_row_scalar;
    k->fp32_to_bf16_row = slm_fp32_to_bf16_row_scalar;
    k->bf16_to_fp32_row = slm_bf16_to_fp32_row_scalar;
}

#define INHERIT(field) if (!k->field) k->field = p->field
static void inherit(slm_kset *k, const slm_kset *p, int parent_is_scalar)
{
    for (int t = 0; t < SLM_T_COUNT; t++) {
        INHERIT(t[t].vec_dot);
        INHERIT(t[t].dequantize);
        INHERIT(t[t].quantize_act);
        /* the scalar rows call the scalar vec_dot: a SIMD set without its own row
         * kernel leaves rows NULL, and the caller loops over the set's vec_dot */
        if (!parent_is_scalar) INHERIT(t[t].rows);
        INHERIT(t[t].x8);
        INHERIT(t[t].gemm);
    }
    if (!k->gemm_prep) k->gemm_prep = p->gemm_prep;
    INHERIT(fp32_to_fp16_row); INHERIT(fp16_to_fp32_row); INHERIT(fp32_to_bf16_row); INHERIT(bf16_to_fp32_row);
    INHERIT(sym_eval4); INHERIT(sym_sums_multi); INHERIT(asym_sums_multi); INHERIT(sym_err2); INHERIT(asym_err2);
    INHERIT(gemv_half); INHERIT(gemv_f16x); INHERIT(gemm_half);
}
#undef INHERIT

/* a set's table: its nearest built ancestor's, then its own entries over it */
static void build(int k, unsigned char *done)
{
    if (done[k]) return;
    int p = slm_kernel_parent(k);
    if (p < 0) {
        fill_scalar(&g_sets[k]);
    } else {
        build(p, done);
        if (g_fillers[k]) {
            g_fillers[k](&g_sets[k]);
            inherit(&g_sets[k], &g_sets[p], p == SLM_KERNEL_SCALAR);
        } else {
            g_sets[k] = g_sets[p];
        }
    }
    done[k] = 1;
}

static void init_tables(void)
{
    unsigned char done[SLM_KERNEL_COUNT] = {0};
    for (int k = 0; k < SLM_KERNEL_COUNT; k++) build(k, done);
}

int slm_kset_built(int kernel)
{
    return kernel == SLM_KERNEL_SCALAR || (kernel > 0 && kernel < SLM_KERNEL_COUNT && g_fillers[kernel]);
}

const slm_kset *slm_kset_get(int kernel)
{
    pthread_once(&g_once, init_tables);
    if (kernel < 0 || kernel >= SLM_KERNEL_COUNT) kernel = SLM_KERNEL_SCALAR;
    return &g_sets[kernel];
}

static inline const slm_kernel_fns *fns(uint32_t t)
{
    return &slm_kset_active()->t[t];
}

#define DISPATCH(T, t)                                                                              \
    static void vd_##t(int64_t n, float *s, const void *x, const void *y) { fns(SLM_T_##T)->vec_dot(n, s, x, y); } \
    static void dq_##t(const void *x, float *y, int64_t n) { fns(SLM_T_##T)->dequantize(x, y, n); }
DISPATCH(F32, f32) DISPATCH(F16, f16) DISPATCH(BF16, bf16) DISPATCH(Q4_0, q4_0) DISPATCH(Q4_1, q4_1)
DISPATCH(Q5_0, q5_0) DISPATCH(Q5_1, q5_1) DISPATCH(Q8_0, q8_0) DISPATCH(Q8_1, q8_1) DISPATCH(Q2_K, q2_K)
DISPATCH(Q3_K, q3_K) DISPATCH(Q4_K, q4_K) DISPATCH(Q5_K, q5_K) DISPATCH(Q6_K, q6_K) DISPATCH(Q8_K, q8_K)
DISPATCH(IQ4_NL, iq4_nl) DISPATCH(IQ4_XS, iq4_xs) DISPATCH(TQ1_0, tq1_0) DISPATCH(TQ2_0, tq2_0)
DISPATCH(IQ3_XXS, iq3_xxs) DISPATCH(IQ3_S, iq3_s)
DISPATCH(IQ2_XXS, iq2_xxs) DISPATCH(IQ2_XS, iq2_xs) DISPATCH(IQ2_S, iq2_s)
DISPATCH(IQ1_S, iq1_s) DISPATCH(IQ1_M, iq1_m)

static const slm_qtraits g_traits[SLM_T_COUNT] = {
    ROW(F32, "f32", 1, float, 0, f32, F32),
    ROW(F16, "f16", 1, uint16_t, 0, f16, F16),
    ROW(BF16, "bf16", 1, uint16_t, 0, bf16, BF16),
    ROW(Q4_0, "q4_0", QK4_0, block_q4_0, 1, q4_0, Q8_0),
    ROW(Q4_1, "q4_1", QK4_1, block_q4_1, 1, q4_1, Q8_1),
    ROW(Q5_0, "q5_0", QK5_0, block_q5_0, 1, q5_0, Q8_0),
    ROW(Q5_1, "q5_1", QK5_1, block_q5_1, 1, q5_1, Q8_1),
    ROW(Q8_0, "q8_0", QK8_0, block_q8_0, 1, q8_0, Q8_0),
    ROW(Q8_1, "q8_1", QK8_1, block_q8_1, 1, q8_1, Q8_1),
    ROW(Q2_K, "q2_K", QK_K, block_q2_K, 1, q2_K, Q8_K),
    ROW(Q3_K, "q3_K", QK_K, block_q3_K, 1, q3_K, Q8_K),
    ROW(Q4_K, "q4_K", QK_K, block_q4_K, 1, q4_K, Q8_K),
    ROW(Q5_K, "q5_K", QK_K, block_q5_K, 1, q5_K, Q8_K),
    ROW(Q6_K, "q6_K", QK_K, block_q6_K, 1, q6_K, Q8_K),
    ROW(Q8_K, "q8_K", QK_K, block_q8_K, 1, q8_K, Q8_K),
    /* i-quants and ternary types (iquants.c) */
    ROW(IQ4_NL, "iq4_nl", QK4_NL, block_iq4_nl, 1, iq4_nl, Q8_0),
    ROW(IQ4_XS, "iq4_xs", QK_K, block_iq4_xs, 1, iq4_xs, Q8_K),
    ROW(TQ1_0, "tq1_0", QK_K, block_tq1_0, 1, tq1_0, Q8_K),
    ROW(TQ2_0, "tq2_0", QK_K, block_tq2_0, 1, tq2_0, Q8_K),
    ROW(IQ3_XXS, "iq3_xxs", QK_K, block_iq3_xxs, 1, iq3_xxs, Q8_K), /* iq3.c */
    ROW(IQ3_S, "iq3_s", QK_K, block_iq3_s, 1, iq3_s, Q8_K),
    /* IQ2 (iq2.c) */
    ROW(IQ2_XXS, "iq2_xxs", QK_K, block_iq2_xxs, 1, iq2_xxs, Q8_K),
    ROW(IQ2_XS, "iq2_xs", QK_K, block_iq2_xs, 1, iq2_xs, Q8_K),
    ROW(IQ2_S, "iq2_s", QK_K, block_iq2_s, 1, iq2_s, Q8_K),
    ROW(IQ1_S, "iq1_s", QK_K, block_iq1_s, 1, iq1_s, Q8_K), /* iq1.c */
    ROW(IQ1_M, "iq1_m", QK_K, block_iq1_m, 1, iq1_m, Q8_K),
};

const slm_qtraits *slm_qtraits_get(uint32_t type)
{
    if (type >= SLM_T_COUNT || !g_traits[type].name) return NULL;
    return &g_traits[type];
}

const slm_qtraits *slm_qtraits_by_name(const char *name)
{
    if (!name) return NULL;
    for (int t = 0; t < SLM_T_COUNT; t++)
        if (g_traits[t].name && !strcasecmp(g_traits[t].name, name)) return &g_traits[t];
    return NULL;
}

const slm_qtraits *slm_qtraits_kernel(uint32_t type, int kernel, slm_qtraits *out)
{
    const slm_qtraits *t = slm_qtraits_get(type);
    if (!t || !slm_cpu_has(kernel)) return NULL;
    const slm_kset *k = slm_kset_get(kernel);
    *out = *t;
    out->vec_dot = k->t[type].vec_dot;
    out->dequantize_row = k->t[type].dequantize;
    return out;
}

size_t slm_row_bytes(uint32_t type, int64_t n)
{
    const slm_qtraits *t = slm_qtraits_get(type);
    if (!t || n < 0 || n % t->blck) return 0;
    int64_t nb = n / t->blck;
    if (nb > (int64_t)(SIZE_MAX / t->bytes)) return 0;
    return (size_t)nb * t->bytes;
}

size_t slm_quantize_rows(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t ncols, const float *imp)
{
    size_t rb = slm_row_bytes(type, ncols);
    if (!rb || nrows < 0) return 0;
    const slm_qtraits *t = slm_qtraits_get(type);
    for (int64_t r = 0; r < nrows; r++)
        t->quantize_row(src + r * ncols, (char *)dst + r * rb, ncols, imp);
    return rb * (size_t)nrows;
}

int slm_quantize_act(uint32_t type, const float *x, void *y, int64_t n)
{
    if (type != SLM_T_Q8_0 && type != SLM_T_Q8_1 && type != SLM_T_Q8_K) {
        const slm_qtraits *t = slm_qtraits_get(type);
        if (!t || t->is_quant || n % t->blck) return -1;
        t->quantize_row(x, y, n, NULL);
        return 0;
    }
    if (!slm_row_bytes(type, n)) return -1;
    fns(type)->quantize_act(x, y, n, NULL);
    return 0;
}

int slm_quantize_act_kernel(uint32_t type, int kernel, const float *x, void *y, int64_t n)
{
    if ((type != SLM_T_Q8_0 && type != SLM_T_Q8_1 && type != SLM_T_Q8_K) || !slm_row_bytes(type, n)) return -1;
    if (!slm_cpu_has(kernel)) return -1;
    slm_kset_get(kernel)->t[type].quantize_act(x, y, n, NULL);
    return 0;
}

size_t slm_quantize_rows_llama_ref(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t ncols)
{
    size_t rb = slm_row_bytes(type, ncols);
    if (!rb || nrows < 0) return 0;
    for (int64_t r = 0; r < nrows; r++)
        if (!slm_llama_ref_quantize_row(type, src + r * ncols, (char *)dst + r * rb, ncols)) return 0;
    return rb * (size_t)nrows;
}

/* Blockwise safety net: our search is an optimiser of the weighted error, but keep the
 * reference result wherever it happens to be better (never worse than llama.cpp per block). */
void slm_keep_better_than_ref(uint32_t type, const float *x, void *y, int64_t n, const float *imp)
{
    const slm_qtraits *t = slm_qtraits_get(type);
    size_t rb = slm_row_bytes(type, n);
    unsigned char *ref = malloc(rb);
    if (!ref) return;
    if (!slm_llama_ref_quantize_row(type, x, ref, n)) { free(ref); return; }
    const slm_dequant_fn dq = slm_kset_get(SLM_KERNEL_SCALAR)->t[type].dequantize;
    float a[QK_K], b[QK_K];
    for (int64_t blk = 0; blk < n / t->blck; blk++) {
        unsigned char *yo = (unsigned char *)y + blk * t->bytes, *yr = ref + blk * t->bytes;
        dq(yo, a, t->blck);
        dq(yr, b, t->blck);
        double eo = 0, er = 0;
        for (int i = 0; i < t->blck; i++) {
            int64_t c = blk * t->blck + i;
            double w = imp ? imp[c] : 1.0, xo = x[c];
            eo += w * (xo - a[i]) * (xo - a[i]);
            er += w * (xo - b[i]) * (xo - b[i]);
        }
        if (er < eo || !isfinite(eo)) memcpy(yo, yr, t->bytes);
    }
    free(ref);
}
