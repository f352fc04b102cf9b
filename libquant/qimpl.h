/* libquant/qimpl.h — internals shared by libquant's files (not part of the face).
 *
 * Block structs are byte-identical to ggml's (ggml-common.h); each has a
 * static_assert on its size. Kernel set tables (slm_kset) are indexed by enum slm_kernel.
 */
#ifndef SLM_QIMPL_H
#define SLM_QIMPL_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "libquant.h"

/* ggml type ids: short names for base.h's SLM_TYPE_* (one list of values) */
enum {
    SLM_T_F32 = SLM_TYPE_F32, SLM_T_F16 = SLM_TYPE_F16, SLM_T_Q4_0 = SLM_TYPE_Q4_0, SLM_T_Q4_1 = SLM_TYPE_Q4_1,
    SLM_T_Q5_0 = SLM_TYPE_Q5_0, SLM_T_Q5_1 = SLM_TYPE_Q5_1, SLM_T_Q8_0 = SLM_TYPE_Q8_0, SLM_T_Q8_1 = SLM_TYPE_Q8_1,
    SLM_T_Q2_K = SLM_TYPE_Q2_K, SLM_T_Q3_K = SLM_TYPE_Q3_K, SLM_T_Q4_K = SLM_TYPE_Q4_K, SLM_T_Q5_K = SLM_TYPE_Q5_K,
    SLM_T_Q6_K = SLM_TYPE_Q6_K, SLM_T_Q8_K = SLM_TYPE_Q8_K, SLM_T_BF16 = SLM_TYPE_BF16, SLM_T_COUNT = SLM_TYPE_COUNT
};

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef uint16_t slm_half;

typedef struct { slm_half d; uint8_t qs[QK4_0 / 2]; } block_q4_0;
static_assert(sizeof(block_q4_0) == 2 + QK4_0 / 2, "block_q4_0 size");
typedef struct { slm_half d, m; uint8_t qs[QK4_1 / 2]; } block_q4_1;
static_assert(sizeof(block_q4_1) == 4 + QK4_1 / 2, "block_q4_1 size");
typedef struct { slm_half d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } block_q5_0;
static_assert(sizeof(block_q5_0) == 2 + 4 + QK5_0 / 2, "block_q5_0 size");
typedef struct { slm_half d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } block_q5_1;
static_assert(sizeof(block_q5_1) == 4 + 4 + QK5_1 / 2, "block_q5_1 size");
typedef struct { slm_half d; int8_t qs[QK8_0]; } block_q8_0;
static_assert(sizeof(block_q8_0) == 2 + QK8_0, "block_q8_0 size");
/* d = scale, s = d * sum(qs) */
typedef struct { slm_half d, s; int8_t qs[QK8_1]; } block_q8_1;
static_assert(sizeof(block_q8_1) == 4 + QK8_1, "block_q8_1 size");

typedef struct {
    uint8_t scales[QK_K / 16]; /* low 4 bits: scale, high 4 bits: min */
    uint8_t qs[QK_K / 4];
    slm_half d, dmin;
} block_q2_K;
static_assert(sizeof(block_q2_K) == 2 * 2 + QK_K / 16 + QK_K / 4, "block_q2_K size");
typedef struct {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12]; /* 16 6-bit scales */
    slm_half d;
} block_q3_K;
static_assert(sizeof(block_q3_K) == 2 + QK_K / 4 + QK_K / 8 + 12, "block_q3_K size");
typedef struct {
    slm_half d, dmin;
    uint8_t scales[K_SCALE_SIZE]; /* 8 6-bit scales and 8 6-bit mins */
    uint8_t qs[QK_K / 2];
} block_q4_K;
static_assert(sizeof(block_q4_K) == 2 * 2 + K_SCALE_SIZE + QK_K / 2, "block_q4_K size");
typedef struct {
    slm_half d, dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} block_q5_K;
static_assert(sizeof(block_q5_K) == 2 * 2 + K_SCALE_SIZE + QK_K / 2 + QK_K / 8, "block_q5_K size");
typedef struct {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    slm_half d;
} block_q6_K;
static_assert(sizeof(block_q6_K) == 2 + QK_K / 16 + 3 * QK_K / 4, "block_q6_K size");
typedef struct {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
} block_q8_K;
static_assert(sizeof(block_q8_K) == 4 + QK_K + QK_K / 16 * 2, "block_q8_K size");

/* ---- dispatch internals (cpu.c, table.c) ---- */
typedef void (*slm_vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);
typedef void (*slm_dequant_fn)(const void *x, float *y, int64_t n);
typedef void (*slm_quant_fn)(const float *x, void *y, int64_t n, const float *imp);

/* One kernel set's functions for one type; NULL entries come from the parent set. */
typedef struct {
    slm_vec_dot_fn vec_dot;
    slm_dequant_fn dequantize;
    slm_quant_fn quantize_act; /* fast activation quantizer (Q8_0/Q8_1/Q8_K rows) */
    slm_rows_fn rows;          /* multi-row decode kernel (not inherited from scalar: see table.c) */
    slm_x8_fn x8;              /* x8 layout decode */
    slm_gemm_fn gemm;          /* batch GEMM (with the set's gemm_prep) */
} slm_kernel_fns;

/* A kernel set: every dispatched hook. Fillers set what the set has; table.c fills the
 * rest from the parent (slm_kernel_parent). A NULL search / gemv hook after that means
 * "the baseline C code" (the scalar set has none). */
typedef struct slm_kset {
    slm_kernel_fns t[SLM_T_COUNT];
    int (*gemm_prep)(uint32_t type, const float *x, int64_t n, int ntok, void *act);
    void (*fp32_to_fp16_row)(const float *x, uint16_t *y, int64_t n);
    void (*fp16_to_fp32_row)(const uint16_t *x, float *y, int64_t n);
    void (*fp32_to_bf16_row)(const float *x, uint16_t *y, int64_t n);
    void (*bf16_to_fp32_row)(const uint16_t *x, float *y, int64_t n);
    /* quantizer search (bit-identical to the baseline loops in search.c) */
    void (*sym_eval4)(int n4, const float *x, const float *w, int qlo, int qhi, float d, float id, double lane[4],
                      int8_t *L);
    void (*sym_sums_multi)(int n4, const float *x, const float *w, const float *is, int ncand, float lo, float hi,
                           float *sxq, float *sqq);
    void (*asym_sums_multi)(int n4, const float *x, const float *w, float xmin, const float *is, int ncand,
                            float nmax, float *sq, float *sqq, float *sxq);
    void (*sym_err2)(int len, const float *x, const float *w, float d1a, float d1b, int qlo, int qhi, float *ea,
                     float *eb);
    void (*asym_err2)(int len, const float *x, const float *w, float d1a, float m1a, float d1b, float m1b, int nmax,
                      float *ea, float *eb);
    /* F16 / BF16 single-token products (the runtime's matmul) */
    slm_gemv_half_fn gemv_half;
    slm_gemv_f16x_fn gemv_f16x;
    /* F16 / BF16 batch GEMM (the runtime's prompts) */
    slm_gemm_half_fn gemm_half;
} slm_kset;

/* The filled table of a set (an unbuilt set gives its nearest built ancestor's). */
const slm_kset *slm_kset_get(int kernel);
static inline const slm_kset *slm_kset_active(void) { return slm_kset_get(slm_kernel_active()); }
int slm_kset_built(int kernel);
/* CPU capabilities (cpu_x86.c, cpu_arm.c; cpu.c for other targets). */
unsigned slm_cpu_detect(int *sve_bits);

/* Fillers of the sets, one per set (quant_<set>.c), registered in table.c by target. */
void slm_kset_avx2(slm_kset *k);
void slm_kset_avx512(slm_kset *k);
void slm_kset_neon(slm_kset *k);
void slm_kset_dotprod(slm_kset *k);
void slm_kset_i8mm(slm_kset *k);
void slm_kset_sve(slm_kset *k);
void slm_kset_fhm(slm_kset *k);

/* Filled by quant_avx2.c / quant_avx512.c: table indexed by type id. */
void slm_avx2_kernels(slm_kernel_fns *tab);
void slm_avx512_kernels(slm_kernel_fns *tab);

/* Row helpers per SIMD level (fp16_avx2.c / fp16_avx512.c). */
void slm_fp32_to_fp16_row_avx2(const float *x, uint16_t *y, int64_t n);
void slm_fp16_to_fp32_row_avx2(const uint16_t *x, float *y, int64_t n);
void slm_fp32_to_bf16_row_avx2(const float *x, uint16_t *y, int64_t n);
void slm_bf16_to_fp32_row_avx2(const uint16_t *x, float *y, int64_t n);
void slm_fp32_to_fp16_row_avx512(const float *x, uint16_t *y, int64_t n);
void slm_fp16_to_fp32_row_avx512(const uint16_t *x, float *y, int64_t n);
void slm_fp32_to_bf16_row_avx512(const float *x, uint16_t *y, int64_t n);
void slm_bf16_to_fp32_row_avx512(const uint16_t *x, float *y, int64_t n);
void slm_fp32_to_fp16_row_neon(const float *x, uint16_t *y, int64_t n);
void slm_fp16_to_fp32_row_neon(const uint16_t *x, float *y, int64_t n);
void slm_fp32_to_bf16_row_neon(const float *x, uint16_t *y, int64_t n);
void slm_bf16_to_fp32_row_neon(const uint16_t *x, float *y, int64_t n);

/* Scalar row versions (fp16.c), also the tails of the SIMD ones. */
void slm_fp32_to_fp16_row_scalar(const float *x, uint16_t *y, int64_t n);
void slm_fp16_to_fp32_row_scalar(const uint16_t *x, float *y, int64_t n);
void slm_fp32_to_bf16_row_scalar(const float *x, uint16_t *y, int64_t n);
void slm_bf16_to_fp32_row_scalar(const uint16_t *x, float *y, int64_t n);

/* slm_h2f (inline half -> float) is base.h's. */
#define SLM_H2F(h) slm_h2f(h)
#define SLM_F2H(f) slm_fp32_to_fp16(f)

#endif

/* ---- search helpers (search.c) ---- */
/* Exact RNE rounding for |v| < 2^22 (same trick as ggml's nearest_int). */
static inline int slm_nearest_int(float v)
{
    float t = v + 12582912.f;
    int32_t i;
    __builtin_memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}
/* Round and clamp q = round(v) to [lo, hi], safe for any finite or infinite v. */
static inline int slm_qclamp(float v, int lo, int hi)
{
    if (!(v > lo)) return lo;   /* also catches NaN */
    if (v >= hi) return hi;
    return slm_nearest_int(v);
}
/* Round a positive scale to fp16 and back, capped at the largest finite half. */
float slm_half_round(float d);
/* Weighted error of x ~ d*q, q = clamp(round(x/d)) in [qlo, qhi]; fills L (may be NULL). */
double slm_sym_eval(int n, const float *x, const float *w, int qlo, int qhi, float d, int8_t *L);
/* The same on the baseline path only (tests), and the AVX2 body: the first n4 (a
 * multiple of 4, at most QK_K) elements into lane[0..3] (lane = i % 4), levels into L. */
double slm_sym_eval_base(int n, const float *x, const float *w, int qlo, int qhi, float d, int8_t *L);
void slm_sym_eval4_avx2(int n4, const float *x, const float *w, int qlo, int qhi, float d, float id, double lane[4],
                        int8_t *L);
/* Per-element weights of one row's squared error from an importance vector (calib.c):
 * imp[j] * (rms of the super-block + |x[j]|) for Q2_K..Q5_K, imp alone for the other
 * types. Used by GPTQ's scale search (calib_gptq.c). */
void slm_calib_row_weights(uint32_t type, const float *x, int64_t n, const float *imp, float *w);
/* Best d for x ~ d*q, q in [qlo, qhi] (qlo < 0 < qhi or qlo == 0): exhaustive over all
 * roundings when the level count is small, grid + refinement otherwise. d may be negative
 * (the sign that uses the longer side of the range). Returns d; L gets the levels. */
float slm_sym_search(int n, const float *x, const float *w, int qlo, int qhi, int8_t *L);
/* Best (d >= 0, m) for x ~ d*q + m, q in [0, nmax]; if mneg, m <= 0. Returns the weighted error. */
double slm_asym_search(int n, const float *x, const float *w, int nmax, int mneg, float *d, float *m,
                       uint8_t *L);
/* Fast grid + Lloyd versions (k-quants): ncand candidate scales per side. */
float slm_sym_search_fast(int n, const float *x, const float *w, int qlo, int qhi, int ncand, int8_t *L);
double slm_asym_search_fast(int n, const float *x, const float *w, int nmax, int mneg, int ncand, float *d, float *m,
                            uint8_t *L);
/* Weighted error of a sub-block at a fixed scale (and min), len % 4 == 0, levels re-rounded. */
float slm_sym_err_fast(int len, const float *x, const float *w, float d1, int qlo, int qhi, int8_t *L);
float slm_asym_err_fast(int len, const float *x, const float *w, float d1, float m1, int nmax, uint8_t *L);
/* AVX2 versions (search_avx2.c), bit-identical to the baseline loops: per-candidate sums
 * of the sym / asym grids (x, w: n4 groups of 4 floats, 16-byte aligned) and the errors
 * of one sub-block at two nonzero scales (len % 4 == 0). */
void slm_sym_sums_multi_avx2(int n4, const float *x, const float *w, const float *is, int ncand, float lo, float hi,
                             float *sxq, float *sqq);
void slm_asym_sums_multi_avx2(int n4, const float *x, const float *w, float xmin, const float *is, int ncand,
                              float nmax, float *sq, float *sqq, float *sxq);
void slm_sym_err2_avx2(int len, const float *x, const float *w, float d1a, float d1b, int qlo, int qhi, float *ea,
                       float *eb);
void slm_asym_err2_avx2(int len, const float *x, const float *w, float d1a, float m1a, float d1b, float m1b, int nmax,
                        float *ea, float *eb);
/* Baseline (SSE2) references of the same, for tests. */
void slm_sym_sums_multi_base(int n4, const float *x, const float *w, const float *is, int ncand, float lo, float hi,
                             float *sxq, float *sqq);
void slm_asym_sums_multi_base(int n4, const float *x, const float *w, float xmin, const float *is, int ncand,
                              float nmax, float *sq, float *sqq, float *sxq);
/* Weights for one block: imp (offset to the block) or 1; uniform if all zero. */
void slm_block_weights(int n, const float *imp, float *w);
/* imp (or 1) times the type's function of x (sub-block length sub). */
void slm_qweights(uint32_t type, int n, int sub, const float *x, const float *imp, float *w);

/* llama.cpp's published reference quantizers (imp == NULL path), re-implemented for
 * comparison only (llama_ref.c). Returns 0 if the type has no reference. */
int slm_llama_ref_quantize_row(uint32_t type, const float *x, void *y, int64_t n);

/* ---- per-type kernels (quants.c, kquants.c) ---- */
#define SLM_DECL_TYPE(t)                                                          \
    void slm_quantize_##t(const float *x, void *y, int64_t n, const float *imp);  \
    void slm_dequantize_##t(const void *x, float *y, int64_t n);                 \
    void slm_vec_dot_##t(int64_t n, float *s, const void *x, const void *y);
SLM_DECL_TYPE(q4_0) SLM_DECL_TYPE(q4_1) SLM_DECL_TYPE(q5_0) SLM_DECL_TYPE(q5_1) SLM_DECL_TYPE(q8_0)
SLM_DECL_TYPE(q8_1) SLM_DECL_TYPE(q2_K) SLM_DECL_TYPE(q3_K) SLM_DECL_TYPE(q4_K) SLM_DECL_TYPE(q5_K)
SLM_DECL_TYPE(q6_K) SLM_DECL_TYPE(q8_K) SLM_DECL_TYPE(f32) SLM_DECL_TYPE(f16) SLM_DECL_TYPE(bf16)
/* Fast activation quantizers (ggml's reference rounding, RNE); SIMD versions give the same bytes. */
void slm_quantize_act_q8_0(const float *x, void *y, int64_t n);
void slm_quantize_act_q8_1(const float *x, void *y, int64_t n);
void slm_quantize_act_q8_K(const float *x, void *y, int64_t n);
/* After the search: per block, keep llama.cpp's reference result if it has lower weighted error. */
void slm_keep_better_than_ref(uint32_t type, const float *x, void *y, int64_t n, const float *imp);
/* Pack helpers for k-quant 6-bit scale/min pairs. */
static inline void slm_get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63; *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
    }
}
