/* base/base.h — the leaf under every slmkit library: one copy of what they all share.
 *
 * Error codes and messages, ggml quant type ids and their block geometry, the
 * architecture enum, scalar fp16/bf16 conversion, a bounded text-file reader and
 * growable arrays. Uses nothing else of slmkit (the status codes come from the
 * public header include/slm.h, which declares them for API users: one copy), never
 * prints, never exits.
 */
#ifndef SLM_BASE_H
#define SLM_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "slm.h" /* enum slm_status: SLM_OK, SLM_EFAIL .. SLM_EINTERNAL (the exit codes) */

/* ---- errors (the convention of every slmkit library face) ---------------- */
/* Every function that can fail returns an slm_status (0 = OK) and fills an slm_err
 * whose message names the file or request and the problem in one line. */
typedef struct slm_err {
    int code;
    char msg[768];
} slm_err;
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static inline int slm_err_set(slm_err *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}

#if defined(__GNUC__)
#define SLM_MUST_CHECK __attribute__((warn_unused_result))
#else
#define SLM_MUST_CHECK
#endif

/* ---- ggml tensor types (ids as in ggml.h) ------------------------------ */
enum slm_ggml_type {
    SLM_TYPE_F32 = 0, SLM_TYPE_F16 = 1, SLM_TYPE_Q4_0 = 2, SLM_TYPE_Q4_1 = 3,
    SLM_TYPE_Q5_0 = 6, SLM_TYPE_Q5_1 = 7, SLM_TYPE_Q8_0 = 8, SLM_TYPE_Q8_1 = 9,
    SLM_TYPE_Q2_K = 10, SLM_TYPE_Q3_K = 11, SLM_TYPE_Q4_K = 12, SLM_TYPE_Q5_K = 13,
    SLM_TYPE_Q6_K = 14, SLM_TYPE_Q8_K = 15, SLM_TYPE_IQ3_XXS = 18, SLM_TYPE_IQ4_NL = 20,
    SLM_TYPE_IQ3_S = 21, SLM_TYPE_IQ4_XS = 23, SLM_TYPE_I8 = 24, SLM_TYPE_I16 = 25,
    SLM_TYPE_I32 = 26, SLM_TYPE_I64 = 27, SLM_TYPE_F64 = 28, SLM_TYPE_BF16 = 30,
    SLM_TYPE_TQ1_0 = 34, SLM_TYPE_TQ2_0 = 35,
    SLM_TYPE_IQ2_XXS = 16, SLM_TYPE_IQ2_XS = 17, SLM_TYPE_IQ2_S = 22,
    SLM_TYPE_IQ1_S = 19, SLM_TYPE_IQ1_M = 29,
    SLM_TYPE_COUNT = 40
};
/* Block size (elements) and bytes per block of a ggml type id; 0 when the id
 * is unknown or retired. Names are ggml's ("f32", "q4_K", ...). (base/types.c) */
int slm_type_block_size(uint32_t type);
size_t slm_type_block_bytes(uint32_t type);
const char *slm_type_name(uint32_t type); /* NULL if unknown */
/* Bytes of a row of n elements, or 0 when n is not a multiple of the block. */
size_t slm_type_row_bytes(uint32_t type, uint64_t n);

/* ---- architectures ---------------------------------------------------------- */
/* One enum of architectures for the converter, the runtime and bench; gguf names
 * "llama", "qwen2", "gpt2", "qwen3", "gemma3", "phi3". */
enum slm_arch {
    SLM_ARCH_LLAMA = 1, SLM_ARCH_QWEN2 = 2, SLM_ARCH_GPT2 = 3,
    SLM_ARCH_QWEN3 = 4, SLM_ARCH_GEMMA3 = 5, SLM_ARCH_PHI3 = 6
};

/* ---- half precision (scalar; libquant has the SIMD rows) ---------------------
 * Round-to-nearest-even conversions, identical to ggml's (F16C semantics; BF16
 * from float rounds to nearest even and keeps NaN quiet). (base/half.c) */
uint16_t slm_fp32_to_fp16(float f);
float slm_fp16_to_fp32(uint16_t h);
uint16_t slm_fp32_to_bf16(float f);
float slm_bf16_to_fp32(uint16_t h);
/* FNV-1a of n bytes: the string hash of the name tables (GGUF tensors, vocabularies). */
static inline uint64_t slm_fnv1a(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h;
}
/* Inline half -> float (exact; NaN quietened like F16C's vcvtph2ps). */
static inline float slm_h2f(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
    if (e == 0x1f) {
        bits = sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0);
    } else if (e == 0) {
        /* zero or subnormal: m * 2^-24 is exact in float */
        union { float f; uint32_t u; } v = { .f = (float)m * 0x1p-24f };
        bits = sign | v.u;
    } else {
        bits = sign | ((e + 112) << 23) | (m << 13);
    }
    union { uint32_t u; float f; } r = { .u = bits };
    return r.f;
}

/* ---- files ------------------------------------------------------------------- */
/* A whole regular file (a FIFO, device or directory is refused, never waited on), at most
 * cap bytes, NUL-terminated and malloc'd; errors name the file. (base/file.c) */
int slm_read_text_file(const char *path, size_t cap, char **out, size_t *len, slm_err *err) SLM_MUST_CHECK;

/* ---- big buffers (base/bigmem.c) ----------------------------------------------
 * n bytes of zeroed memory, 2 MiB-aligned and marked for transparent huge pages (weights that
 * decode streams once per token: far fewer TLB misses and prefetcher restarts than 4 KiB pages),
 * or NULL; slm_big_free takes the same n. */
void *slm_big_alloc(size_t n);
void slm_big_free(void *p, size_t n);

/* ---- growable arrays -------------------------------------------------------------
 * slm_grow: make room for `need` elements of `elem` bytes in *p (capacity *cap, doubling);
 * 0, or -1 when out of memory (then *p and *cap are unchanged). SLM_PUSH appends one value. */
int slm_grow(void *p, size_t *cap, size_t need, size_t elem) SLM_MUST_CHECK;
#define SLM_PUSH(arr, len, cap, val) \
    (slm_grow(&(arr), &(cap), (len) + 1, sizeof *(arr)) ? -1 : ((arr)[(len)++] = (val), 0))
/* A growable byte string, always NUL-terminated once non-empty. */
typedef struct slm_buf {
    char *p;
    size_t len, cap;
} slm_buf;
int slm_buf_append(slm_buf *b, const void *s, size_t n) SLM_MUST_CHECK; /* 0, or -1: out of memory */
/* printf onto the end of b: 0, or -1 (out of memory, or a bad format; b then holds what it held). */
int slm_buf_printf(slm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3))) SLM_MUST_CHECK;
int slm_buf_vprintf(slm_buf *b, const char *fmt, va_list ap) SLM_MUST_CHECK;
void slm_buf_free(slm_buf *b);

#endif /* SLM_BASE_H */
