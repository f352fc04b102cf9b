/* libquant/libquant.h — the face of slmkit's quantization library.
 *
 * ggml-compatible quant types (byte-identical block layouts), one traits row
 * per type, quantize / dequantize / vec_dot kernels with a scalar reference
 * and SIMD kernel sets (x86: AVX2, AVX-512; aarch64: NEON, dotprod, i8mm, SVE)
 * chosen at run time from the CPU's features, and calibration math.
 *
 * Rules: uses nothing else of slmkit; never prints, never exits.
 * Type ids are ggml's (0 = F32, 1 = F16, 8 = Q8_0, 12 = Q4_K, 30 = BF16, ...).
 */
#ifndef SLM_LIBQUANT_H
#define SLM_LIBQUANT_H

#include <stddef.h>
#include <stdint.h>

#include "base.h" /* type ids, scalar fp16/bf16 */

/* ---- half precision ------------------------------------------------------ */
/* Round-to-nearest-even conversions, identical to ggml's (F16C semantics;
 * BF16 from float rounds to nearest even and keeps NaN quiet). */
/* Scalar conversions: base.h (slm_fp32_to_fp16, slm_fp16_to_fp32, slm_fp32_to_bf16,
 * slm_bf16_to_fp32, slm_h2f); the rows below use the active kernel set. */
void slm_fp32_to_fp16_row(const float *x, uint16_t *y, int64_t n);
void slm_fp16_to_fp32_row(const uint16_t *x, float *y, int64_t n);
void slm_fp32_to_bf16_row(const float *x, uint16_t *y, int64_t n);
void slm_bf16_to_fp32_row(const uint16_t *x, float *y, int64_t n);

/* ---- kernels and dispatch ------------------------------------------------
 * A kernel set is a table of every dispatched hook (vec_dot, dequantize, activation
 * quantizers, row kernels, x8 decode layouts, batch GEMM, F16/BF16 products and row
 * converters, the quantizer's search helpers); entries a set lacks come from its
 * parent (the next simpler set). The ids name sets, they are never ordered: what a set
 * needs is its capability mask, and a set runs only on a CPU having all of it.
 * x86-64: scalar <- avx2 <- avx512. aarch64: scalar <- neon <- dotprod <- i8mm <- sve. */
enum slm_kernel {
    SLM_KERNEL_SCALAR = 0, SLM_KERNEL_AVX2 = 1, SLM_KERNEL_AVX512 = 2,
    SLM_KERNEL_NEON = 3, SLM_KERNEL_DOTPROD = 4, SLM_KERNEL_I8MM = 5, SLM_KERNEL_SVE = 6,
    SLM_KERNEL_FHM = 7, /* FMLAL F16 products (a feature set beside i8mm / sve: docs/aarch64.md) */
    SLM_KERNEL_COUNT = 8
};
/* CPU capabilities (bits of slm_cpu_caps / slm_kernel_needs). */
enum slm_cap {
    SLM_CAP_AVX2 = 1u << 0,    /* AVX2 + FMA + F16C, YMM state saved by the OS */
    SLM_CAP_AVX512 = 1u << 1,  /* AVX-512 F/BW/VL/DQ + VNNI, ZMM state saved by the OS */
    SLM_CAP_ASIMD = 1u << 8,   /* aarch64 Advanced SIMD (NEON) */
    SLM_CAP_DOTPROD = 1u << 9, /* SDOT/UDOT (HWCAP_ASIMDDP) */
    SLM_CAP_I8MM = 1u << 10,   /* SMMLA/USMMLA (HWCAP2_I8MM) */
    SLM_CAP_SVE = 1u << 11,    /* SVE (HWCAP_SVE) */
    SLM_CAP_FP16 = 1u << 12,   /* half-precision arithmetic (HWCAP_FPHP + ASIMDHP) */
    SLM_CAP_FHM = 1u << 13     /* FMLAL/FMLAL2 widening half products (HWCAP_ASIMDFHM) */
};
unsigned slm_cpu_caps(void);            /* this CPU's capabilities (detected once) */
unsigned slm_kernel_needs(int kernel);  /* what a set needs; 0 for scalar */
int slm_kernel_parent(int kernel);      /* the next simpler set; -1 for scalar / unknown */
int slm_kernel_built(int kernel);       /* 1 if this binary contains the set (target ISA) */
int slm_kernel_by_name(const char *name); /* "scalar", "neon", ... (case-insensitive); -1 */
int slm_sve_bits(void);                 /* SVE vector length in bits (prctl), 0 without SVE */
/* Best set this CPU runs, unless SLM_KERNEL=<name> forces one. A forced set that is
 * unknown, not built or not supported by the CPU is refused by slm_kernel_env_check
 * (the CLI calls it first and exits 2); slm_kernel_active then ignores it. */
int slm_kernel_active(void);
/* 0, or 2 with a one-line message naming the problem and the sets that would run. */
int slm_kernel_env_check(char *msg, size_t msg_len);
const char *slm_kernel_name(int kernel);
/* Force a set (tests, bench): the set, or its nearest ancestor this CPU runs. Returns it. */
int slm_kernel_force(int kernel);
int slm_cpu_has(int kernel);            /* built here and every capability present */
/* The CPU's capabilities as text ("avx2 avx512" / "asimd dotprod i8mm sve(256)"). */
const char *slm_cpu_caps_text(void);

/* ---- type traits ------------------------------------------------------------ */
typedef struct slm_qtraits {
    uint32_t type;           /* ggml type id */
    const char *name;        /* ggml name: "q4_K" */
    int blck;                /* elements per block */
    size_t bytes;            /* bytes per block */
    int is_quant;
    /* quantize n values (n % blck == 0); imp: per-column importance (n values) or NULL */
    void (*quantize_row)(const float *x, void *y, int64_t n, const float *imp);
    void (*dequantize_row)(const void *x, float *y, int64_t n);
    uint32_t vec_dot_type;   /* type activations are converted to for vec_dot */
    /* s = dot(x (this type), y (vec_dot_type)), n elements */
    void (*vec_dot)(int64_t n, float *s, const void *x, const void *y);
} slm_qtraits;
const slm_qtraits *slm_qtraits_get(uint32_t type); /* NULL if not implemented */
const slm_qtraits *slm_qtraits_by_name(const char *name); /* case-insensitive */
size_t slm_row_bytes(uint32_t type, int64_t n); /* 0 if n is not a multiple of the block */

/* Quantize nrows rows of ncols floats into dst (rows back to back). Returns bytes written. */
size_t slm_quantize_rows(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t ncols,
                         const float *imp);

/* The traits row of `type` with kernel `kernel`'s functions (no dispatch), copied into
 * *out; NULL if the type is unknown or this CPU lacks the kernel. For tests and bench. */
const slm_qtraits *slm_qtraits_kernel(uint32_t type, int kernel, slm_qtraits *out);
/* Quantize activations for vec_dot: type is a vec_dot_type (Q8_0, Q8_1, Q8_K: fast,
 * round-to-nearest-even, SIMD-dispatched, same bytes on every kernel; F32/F16/BF16 convert).
 * Returns 0, or -1 for an unsupported type / n not a multiple of the block. */
int slm_quantize_act(uint32_t type, const float *x, void *y, int64_t n);
int slm_quantize_act_kernel(uint32_t type, int kernel, const float *x, void *y, int64_t n);
/* llama.cpp's published reference quantizers (quantize_row_*_ref, the no-imatrix path),
 * re-implemented from the algorithm: for comparison, and for what llama.cpp itself writes
 * with them (the runtime's q4_0 KV cache rows). Returns bytes, 0 if unsupported. */
size_t slm_quantize_rows_llama_ref(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t ncols);

/* ---- multi-row decode kernels (rows.c; the bench/perf area) ----------------
 * s[r] = dot(row r of W, y) for r < nrows: rows of `n` values of one quant type
 * `stride` bytes apart, y one activation row in the type's vec_dot_type. The SIMD
 * kernels accumulate in vector registers across blocks (integer block sums exact;
 * float sums in another order than scalar: within 1e-5 of the sum of |terms|). */
typedef void (*slm_rows_fn)(int64_t n, int64_t nrows, float *s, const void *W, size_t stride, const void *y);
/* The row kernel of a quant type for `kernel`; NULL if none (type without one, or
 * the CPU lacks the kernel). Scalar: vec_dot row by row. */
slm_rows_fn slm_rows_kernel(uint32_t type, int kernel);

/* Interleaved 8-row layouts ("x8") for decode: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q2_K..Q6_K weights
 * repacked so one instruction advances 8 rows (AVX-512 VNNI kernels; the size of the
 * original rows, or a little more (slm_x8_group_bytes); K-quants need ncols a multiple of
 * 256; layouts described in rows.c).
 * slm_x8_kernel: the x8 product for `type` with `kernel`, NULL if none:
 * s[8g + k] = dot(row k of group g, y) for g < ngroups, y one activation row in the
 * type's vec_dot_type; the groups are back to back, slm_x8_group_bytes apart
 * (slm_x8_pack's output). */
typedef void (*slm_x8_fn)(int64_t n, int64_t ngroups, float *s, const void *packed, const void *y);
slm_x8_fn slm_x8_kernel(uint32_t type, int kernel);
/* Bytes of one group of 8 rows of ncols values in the x8 layout: 8 * slm_row_bytes,
 * except Q6_K, whose 8-row super-blocks are padded to whole 64-byte lines (1680 -> 1728
 * bytes, +2.9 %: streamed from DRAM ~20 % faster).
 * 0 if the type has no x8 layout or ncols is not a multiple of its block. */
size_t slm_x8_group_bytes(uint32_t type, int64_t ncols);
/* Repack nrows (a multiple of 8) rows of ncols values; dst holds nrows / 8 *
 * slm_x8_group_bytes bytes (padding zeroed). Returns bytes written, 0 if the type has no
 * x8 layout or the shape does not fit it. */
size_t slm_x8_pack(uint32_t type, const void *src, void *dst, int64_t nrows, int64_t ncols);
/* Dequantize group g (8 rows) of a packed matrix into dst (8 rows of ncols floats). */
void slm_x8_dequant_group(uint32_t type, const void *packed, int64_t g, int64_t ncols, float *dst);

/* ---- batch GEMM (gemm_x86.inc; dispatch in rows.c) -------------------------------
 * out[t * lds + r] = dot(weight row r, activation row t) for r < nrows, t < ntok, the
 * activations quantized once per product to the type's vec_dot_type (the bytes
 * slm_quantize_act gives: Q8_0 or Q8_K), int8 VNNI dot products, exact int32 sums per
 * block (k-quants: per super-block, sub-block scales included), then float scales:
 * within 1e-5 of the sum of |terms| of the type's vec_dot on the same activations, and
 * independent of how the rows are split. Weights w: plain rows (slm_row_bytes apart, any
 * nrows), or with x8 set the x8 layout (slm_x8_pack's output from group r0 / 8; nrows a
 * multiple of 8; groups slm_x8_group_bytes apart). act: slm_gemm_act_prep's output; scratch:
 * slm_gemm_scratch_bytes(type, n) bytes, 64-byte aligned, per calling thread. */
typedef void (*slm_gemm_fn)(int64_t n, int64_t nrows, float *out, int64_t lds, const void *w, int x8,
                            const void *act, int ntok, void *scratch);
/* The GEMM of `type` for `kernel` (AVX-512 VNNI: Q4_0, Q5_0, Q8_0, Q2_K..Q6_K, the i-quants
 * IQ4_NL, IQ4_XS, IQ3_XXS, IQ3_S, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S, IQ1_M and TQ1_0, TQ2_0), or NULL. */
slm_gemm_fn slm_gemm_kernel(uint32_t type, int kernel);
/* 1 if the GEMM of `type` reads its x8 layout (x8 = 1); 0: give it the plain rows. */
int slm_gemm_reads_x8(uint32_t type);
/* Bytes of the prepared activations for ntok rows of n values; 0 if no GEMM for the
 * type, n not a multiple of its block, or overflow. */
size_t slm_gemm_act_bytes(uint32_t type, int64_t n, int ntok);
size_t slm_gemm_scratch_bytes(uint32_t type, int64_t n); /* 0: as above */
/* Quantize ntok rows of n floats (x, row-major) into act for the GEMM of `kernel`. 0, or -1. */
int slm_gemm_act_prep(uint32_t type, int kernel, const float *x, int64_t n, int ntok, void *act);

/* ---- F16 / BF16 single-token products (the runtime's matmul) -----------------------
 * out[r] = dot(W row r, x) for r in [r0, r1); W holds F16 (bf16 = 0) or BF16 values,
 * rows of n_in back to back (matmul_avx2.c, matmul_avx512.c, the NEON set). */
typedef void (*slm_gemv_half_fn)(const uint16_t *W, int bf16, int64_t n_in, int64_t r0, int64_t r1, const float *x,
                                 float *out);
/* F16 weights, activations already rounded to F16 (xh), as llama.cpp does on AVX-512. */
typedef void (*slm_gemv_f16x_fn)(const uint16_t *W, int64_t n_in, int64_t r0, int64_t r1, const uint16_t *xh,
                                 float *out);
/* The set's product, or NULL (none, or the CPU lacks the set): the caller widens tiles. */
slm_gemv_half_fn slm_gemv_half_kernel(int kernel);
slm_gemv_f16x_fn slm_gemv_f16x_kernel(int kernel);

/* ---- F16 / BF16 batch GEMM (gemm_half_avx512.c) ------------------------------------
 * out[t * lds + r] = dot(W row r, x row t) for r in [r0, r1), t < ntok. W holds F16
 * (bf16 = 0) or BF16 rows of n_in values back to back (widened exactly), x ntok F32 rows
 * of n_in; products and sums in F32, each row summed column by column (FMA):
 * within 1e-5 of the sum of |terms| of slm_gemm_half_ref, and independent of how the rows
 * are split. scratch: slm_gemm_half_scratch_bytes(n_in) bytes, 64-byte aligned, per
 * calling thread. */
typedef void (*slm_gemm_half_fn)(const uint16_t *W, int bf16, int64_t n_in, int64_t r0, int64_t r1, const float *x,
                                 int ntok, float *out, int64_t lds, void *scratch);
/* The set's GEMM, or NULL (none, or this CPU lacks the set). */
slm_gemm_half_fn slm_gemm_half_kernel(int kernel);
size_t slm_gemm_half_scratch_bytes(int64_t n_in); /* 0 if n_in <= 0 or too large */
/* The scalar reference of the same contract (tests, bench check). */
void slm_gemm_half_ref(const uint16_t *W, int bf16, int64_t n_in, int64_t r0, int64_t r1, const float *x, int ntok,
                       float *out, int64_t lds, void *scratch);

/* ---- recipes (recipe.c) -------------------------------------------------------
 * llama.cpp's quantization mixes ("Q4_K_M", ...): which type each tensor gets, with
 * llama.cpp's rules (llama-quant.cpp llama_tensor_get_type) so file sizes compare. */
/* llama_ftype values (general.file_type) of the recipes slmkit offers. */
enum slm_ftype {
    SLM_FTYPE_F32 = 0, SLM_FTYPE_F16 = 1, SLM_FTYPE_Q4_0 = 2, SLM_FTYPE_Q4_1 = 3, SLM_FTYPE_Q8_0 = 7,
    SLM_FTYPE_Q5_0 = 8, SLM_FTYPE_Q5_1 = 9, SLM_FTYPE_Q2_K = 10, SLM_FTYPE_Q3_K_S = 11, SLM_FTYPE_Q3_K_M = 12,
    SLM_FTYPE_Q3_K_L = 13, SLM_FTYPE_Q4_K_S = 14, SLM_FTYPE_Q4_K_M = 15, SLM_FTYPE_Q5_K_S = 16,
    SLM_FTYPE_Q5_K_M = 17, SLM_FTYPE_Q6_K = 18, SLM_FTYPE_BF16 = 32,
    SLM_FTYPE_IQ4_NL = 25, SLM_FTYPE_IQ4_XS = 30, SLM_FTYPE_TQ1_0 = 36, SLM_FTYPE_TQ2_0 = 37,
    SLM_FTYPE_IQ3_XS = 22, SLM_FTYPE_IQ3_XXS = 23, SLM_FTYPE_IQ3_S = 26, SLM_FTYPE_IQ3_M = 27,
    SLM_FTYPE_IQ2_XXS = 19, SLM_FTYPE_IQ2_XS = 20, SLM_FTYPE_IQ2_S = 28, SLM_FTYPE_IQ2_M = 29,
    SLM_FTYPE_IQ1_S = 24, SLM_FTYPE_IQ1_M = 31
};
/* 1 for the types llama-quantize will not write without importance data (IQ3_XXS, IQ2_XXS,
 * IQ2_XS, IQ2_S, IQ1_S, IQ1_M): every tensor but token_embd / output. */
int slm_type_needs_imatrix(uint32_t type);
/* Recipe by name (case-insensitive: "Q4_K_M", "q4_k", "f16", ...; llama-quantize's
 * names and aliases). Returns the ftype, or -1 if unknown. */
int slm_recipe_by_name(const char *name);
const char *slm_recipe_name(int ftype);             /* canonical name, NULL if unknown */
uint32_t slm_recipe_default_type(int ftype);         /* base tensor type, UINT32_MAX if unknown */
/* 1 for the IQ2_XXS, IQ2_XS, IQ2_S, IQ2_M recipes */
int slm_recipe_is_iq2(int ftype);
/* All recipe names, NULL-terminated (for help and errors). */
const char *const *slm_recipe_names(void);

/* A --tensor-type rule: the first rule whose pattern (a regular expression, searched
 * anywhere in the tensor name, as llama.cpp's std::regex_search) matches wins. */
typedef struct slm_tensor_rule { const char *pattern; uint32_t type; } slm_tensor_rule;
/* Facts about the whole model the rules depend on. */
typedef struct slm_recipe_model {
    const char *arch;     /* general.architecture ("llama", "falcon", ...) */
    int n_layers;         /* block_count */
    int n_gqa;            /* head_count / head_count_kv (1 when unknown) */
    int n_attn_v;         /* tensors named *attn_v.weight / attn_qkv / attn_kv_b */
    int has_output;       /* 0: output.weight absent (tied): token_embd follows the output rule */
    int has_imatrix;      /* quantizing with importance data (llama-quantize's has_imatrix: IQ4 ffn_down,
                             Q4_0/Q5_0 ffn_down depend on it) */
} slm_recipe_model;
typedef struct slm_recipe_opts {
    int pure;                         /* no per-tensor mix: every quantizable tensor gets the base type */
    int64_t output_type;              /* -1, or a type id for output.weight */
    int64_t token_embd_type;          /* -1, or a type id for token_embd.weight */
    const slm_tensor_rule *rules; int n_rules;
} slm_recipe_opts;
enum { SLM_RECIPE_KEEP = 1, SLM_RECIPE_FALLBACK = 2, SLM_RECIPE_F16_FALLBACK = 4 };
/* Target type of one tensor. name: GGUF name; ne: ggml dims (ne[0] = row length);
 * layer: the N of "blk.N." or -1; cur_type: its type in the input. Returns the type;
 * *flags (may be NULL) gets SLM_RECIPE_KEEP (not quantizable: kept as it is),
 * SLM_RECIPE_FALLBACK (row length not a multiple of the chosen type's block: a
 * smaller-block type, llama.cpp's tensor_type_fallback), SLM_RECIPE_F16_FALLBACK (none
 * fits: F16); *rule (may be NULL) gets the index of the matching rule or -1.
 * Call in file order: attn_v bumps count attn_v tensors through *attn_v_seen (start at 0). */
uint32_t slm_recipe_tensor_type(const slm_recipe_model *m, const char *name, int n_dims, const int64_t *ne,
                                uint32_t cur_type, int layer, int ftype, const slm_recipe_opts *o,
                                int *attn_v_seen, int *flags, int *rule);
/* Check a --tensor-type pattern compiles; 0, or -1 with a one-line reason in msg. */
int slm_recipe_check_pattern(const char *pattern, char *msg, size_t msg_len);

/* ---- calibration (calib.c, calib_gptq.c) ------------------------------------------
 * Importance matrix (llama.cpp's imatrix: per input column, the mean of x^2 over the
 * calibration tokens) and GPTQ error compensation writing standard ggml blocks. */
/* sum2[c] += sum over tokens of x[t][c]^2 (x: n_tokens rows of n_in floats). */
void slm_imatrix_accumulate(double *sum2, const float *x, int64_t n_tokens, int64_t n_in);
/* Quantize rows with an importance vector imp (ncols values, the imatrix means) turned
 * into per-element weights i[j] * (rms + |x[j]|) for Q2_K..Q5_K (rms of the super-block;
 * i alone for the other types), i[j] = imp[j] + 0.1 x the mean of imp (a floor: see
 * calib.c), then the type's quantize_row.
 * scratch: ncols floats. imp NULL: plain quantize_row. Returns bytes written, 0 if unsupported. */
size_t slm_quantize_rows_imatrix(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t ncols,
                                 const float *imp, float *scratch);
/* The level grid of one quantized block: element j dequantizes to a[j] * (L - zero) + b[j]
 * for an integer level L in [0, qmax]. Returns the block length (0: type not supported). */
int slm_qgrid_supported(uint32_t type);
int slm_qgrid_decode(uint32_t type, const void *block, float *a, float *b, int *zero, int *qmax);
/* Write levels L[0..blck) into a block, keeping its scales. 0, or -1 if unsupported. */
int slm_qgrid_pack(uint32_t type, void *block, const uint8_t *L);

typedef struct slm_gptq_params {
    float damp;      /* lambda = damp * mean(diag H) added to the diagonal (0: 0.01, IQ1_S / IQ1_M 0.1) */
    int block;       /* lazy-update block in columns (default 128; rounded up to the type's block) */
    int act_order;   /* quantization blocks in decreasing diag(H), columns inside too */
} slm_gptq_params;
enum { SLM_GPTQ_EUNSUPPORTED = -1, SLM_GPTQ_ENOMEM = -2, SLM_GPTQ_ENOTPD = -3 };
/* H (ncols x ncols, symmetric, row-major) += X^T X for x: n_tokens rows of n_in = ncols
 * floats, on n_threads threads. Only the upper triangle is updated; call
 * slm_gptq_symmetrize before use. */
void slm_gptq_accumulate(float *H, const float *x, int64_t n_tokens, int64_t n_in, int n_threads);
/* The same for rows ld >= n_in floats apart (ld = 2 n_in: every second token of x). */
void slm_gptq_accumulate_ld(float *H, const float *x, int64_t n_tokens, int64_t n_in, int64_t ld, int n_threads);
void slm_gptq_symmetrize(float *H, int64_t n);
/* GPTQ-quantize W (nrows x ncols, row-major, unchanged) given H = X^T X into dst (nrows
 * rows of `type`: any legacy or k-quant type). imp: per-column importance for the scale
 * search (NULL: diag H). Deterministic for any n_threads. 0, or SLM_GPTQ_E*. */
int slm_gptq_quantize(uint32_t type, const float *W, int64_t nrows, int64_t ncols, const float *H,
                      const float *imp, const slm_gptq_params *p, int n_threads, void *dst);
/* The same in two steps, for matrices multiplying the same activations (q/k/v, gate/up):
 * the factor of H^-1 (and the column order) once, then each matrix. A factor serves
 * every type with the block size it was made for (slm_gptq_factor_fits; any type
 * without act-order). slm_gptq_factor_new, on n_threads threads (the bytes do not depend on
 * it): 0 or SLM_GPTQ_E* (*out NULL on error). */
typedef struct slm_gptq_factor slm_gptq_factor;
int slm_gptq_factor_new(uint32_t type, const float *H, int64_t ncols, const slm_gptq_params *p, int n_threads,
                        slm_gptq_factor **out);
int slm_gptq_factor_fits(const slm_gptq_factor *f, uint32_t type, int64_t ncols);
int slm_gptq_quantize_factored(const slm_gptq_factor *f, uint32_t type, const float *W, int64_t nrows,
                               const float *imp, int n_threads, void *dst);
void slm_gptq_factor_free(slm_gptq_factor *f);

#endif /* SLM_LIBQUANT_H */
