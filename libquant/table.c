/* libquant/table.c — the traits table (one row per type), run-time kernel
 * dispatch for dequantize / vec_dot / activation quantization, and the row API. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "qimpl.h"

#define ROW(T, nm, blk, btype, isq, t, vdt)                                                  \
    [SLM_T_##T] = { SLM_T_##T, nm, blk, sizeof(btype), isq, slm_quantize_##t, dq_##t, SLM_T_##vdt, vd_##t }

/* scalar rows, filled from the per-type functions */
static slm_kernel_fns g_tab[3][SLM_T_COUNT];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_tables(void)
{
#define SC(T, t) g_tab[0][SLM_T_##T] = (slm_kernel_fns){ slm_vec_dot_##t, slm_dequantize_##t, NULL };
    SC(F32, f32) SC(F16, f16) SC(BF16, bf16) SC(Q4_0, q4_0) SC(Q4_1, q4_1) SC(Q5_0, q5_0) SC(Q5_1, q5_1)
    SC(Q8_0, q8_0) SC(Q8_1, q8_1) SC(Q2_K, q2_K) SC(Q3_K, q3_K) SC(Q4_K, q4_K) SC(Q5_K, q5_K)
    SC(Q6_K, q6_K) SC(Q8_K, q8_K)
#undef SC
    g_tab[0][SLM_T_Q8_0].quantize_act = (slm_quant_fn)(void (*)(void))slm_quantize_act_q8_0;
    g_tab[0][SLM_T_Q8_1].quantize_act = (slm_quant_fn)(void (*)(void))slm_quantize_act_q8_1;
    g_tab[0][SLM_T_Q8_K].quantize_act = (slm_quant_fn)(void (*)(void))slm_quantize_act_q8_K;
    slm_avx2_kernels(g_tab[1]);
    slm_avx512_kernels(g_tab[2]);
    for (int k = 1; k < 3; k++)
        for (int t = 0; t < SLM_T_COUNT; t++) {
            if (!g_tab[k][t].vec_dot) g_tab[k][t].vec_dot = g_tab[k - 1][t].vec_dot;
            if (!g_tab[k][t].dequantize) g_tab[k][t].dequantize = g_tab[k - 1][t].dequantize;
            if (!g_tab[k][t].quantize_act) g_tab[k][t].quantize_act = g_tab[k - 1][t].quantize_act;
        }
}

static inline const slm_kernel_fns *fns(uint32_t t)
{
    pthread_once(&g_once, init_tables);
    return &g_tab[slm_kernel_active()][t];
}

#define DISPATCH(T, t)                                                                              \
    static void vd_##t(int64_t n, float *s, const void *x, const void *y) { fns(SLM_T_##T)->vec_dot(n, s, x, y); } \
    static void dq_##t(const void *x, float *y, int64_t n) { fns(SLM_T_##T)->dequantize(x, y, n); }
DISPATCH(F32, f32) DISPATCH(F16, f16) DISPATCH(BF16, bf16) DISPATCH(Q4_0, q4_0) DISPATCH(Q4_1, q4_1)
DISPATCH(Q5_0, q5_0) DISPATCH(Q5_1, q5_1) DISPATCH(Q8_0, q8_0) DISPATCH(Q8_1, q8_1) DISPATCH(Q2_K, q2_K)
DISPATCH(Q3_K, q3_K) DISPATCH(Q4_K, q4_K) DISPATCH(Q5_K, q5_K) DISPATCH(Q6_K, q6_K) DISPATCH(Q8_K, q8_K)

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
    if (!t || kernel < 0 || kernel > SLM_KERNEL_AVX512 || !slm_cpu_has(kernel)) return NULL;
    pthread_once(&g_once, init_tables);
    *out = *t;
    out->vec_dot = g_tab[kernel][type].vec_dot;
    out->dequantize_row = g_tab[kernel][type].dequantize;
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
    if (kernel < 0 || kernel > SLM_KERNEL_AVX512 || !slm_cpu_has(kernel)) return -1;
    pthread_once(&g_once, init_tables);
    g_tab[kernel][type].quantize_act(x, y, n, NULL);
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
    pthread_once(&g_once, init_tables);
    const slm_dequant_fn dq = g_tab[0][type].dequantize;
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
