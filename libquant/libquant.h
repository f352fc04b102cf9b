/* libquant/libquant.h — the face of slmkit's quantization library.
 *
 * ggml-compatible quant types (byte-identical block layouts), one traits row
 * per type, quantize / dequantize / vec_dot kernels with a scalar reference
 * and AVX2 / AVX-512 versions chosen at run time (cpuid), and calibration math.
 *
 * Rules: uses nothing else of slmkit; never prints, never exits.
 * Type ids are ggml's (0 = F32, 1 = F16, 8 = Q8_0, 12 = Q4_K, 30 = BF16, ...).
 */
#ifndef SLM_LIBQUANT_H
#define SLM_LIBQUANT_H

#include <stddef.h>
#include <stdint.h>

/* ---- half precision ------------------------------------------------------ */
/* Round-to-nearest-even conversions, identical to ggml's (F16C semantics;
 * BF16 from float rounds to nearest even and keeps NaN quiet). */
uint16_t slm_fp32_to_fp16(float f);
float slm_fp16_to_fp32(uint16_t h);
uint16_t slm_fp32_to_bf16(float f);
float slm_bf16_to_fp32(uint16_t h);
void slm_fp32_to_fp16_row(const float *x, uint16_t *y, int64_t n);
void slm_fp16_to_fp32_row(const uint16_t *x, float *y, int64_t n);
void slm_fp32_to_bf16_row(const float *x, uint16_t *y, int64_t n);
void slm_bf16_to_fp32_row(const uint16_t *x, float *y, int64_t n);

/* ---- kernels and dispatch ------------------------------------------------ */
enum slm_kernel { SLM_KERNEL_SCALAR = 0, SLM_KERNEL_AVX2 = 1, SLM_KERNEL_AVX512 = 2 };
/* Best kernel this CPU supports, unless SLM_KERNEL=scalar|avx2|avx512 forces one
 * (a forced kernel the CPU lacks falls back to the best available). */
int slm_kernel_active(void);
const char *slm_kernel_name(int kernel);
/* Force a kernel (tests, bench). Returns the kernel actually in effect. */
int slm_kernel_force(int kernel);
int slm_cpu_has(int kernel);

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
/* For comparison only: llama.cpp's published reference quantizers (quantize_row_*_ref,
 * the no-imatrix path), re-implemented from the algorithm. Returns bytes, 0 if unsupported. */
size_t slm_quantize_rows_llama_ref(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t ncols);

#endif /* SLM_LIBQUANT_H */
