/* runtime/matmul.c — W (a GGUF weight tensor) times a batch of activations.
 *
 * Every path splits the output rows over the pool's threads (each thread owns
 * a contiguous slice of rows, so no reduction is needed) and accumulates in float.
 *   F32:        OpenBLAS on the thread's slice (sgemm for batches, sgemv for
 *               one token); OpenBLAS runs single-threaded inside our pool.
 *   F16, BF16, one token, a kernel set with gemv_half (AVX2, AVX-512, NEON):
 *               fused widen + FMA dot products (libquant/matmul_<set>.c,
 *               slm_gemv_half_kernel): decode is memory-bound, so the weights are
 *               read once and nothing is written. On AVX-512, F16 weights
 *               meet activations rounded once to F16 (as llama.cpp does):
 *               about 10 % faster decode than F32 activations.
 *   F16, BF16, batches of >= BATCH_HALF tokens, a kernel set with gemm_half
 *               (AVX-512): libquant's GEMM (slm_gemm_half_kernel): each thread widens
 *               32 rows at a time into an F32 panel and runs every token over it,
 *               32 rows x 12 tokens of FMA accumulators in registers; F32 activations,
 *               exact weights (the precision of the sgemm path below).
 *   F16, BF16:  a tile of rows is widened to F32 (libquant's row converters,
 *               SIMD inside), then the same OpenBLAS call: the weights are read
 *               once per batch and the arithmetic stays in sgemm.
 *   other, one token (decode): libquant's traits, as llama.cpp: the
 *               activations are converted once to the type's vec_dot_type, then
 *               one vec_dot per row (reads the compact weights once).
 *   other, batches of >= BATCH_DEQUANT tokens, AVX-512 VNNI or aarch64 (Q4_0, Q5_0,
 *               Q8_0, Q2_K..Q6_K; AVX-512 VNNI also the i-quants and TQ1_0/TQ2_0):
 *               libquant's int8 GEMM (slm_gemm_kernel), as llama.cpp: the activations
 *               are quantized once to vec_dot_type, each thread unpacks 16 rows at a
 *               time (from the x8 copy where the GEMM reads it, slm_gemm_reads_x8, or
 *               the plain rows) into a panel of 8-bit levels and runs every token over it.
 *   other batches: tiles of rows are dequantized to F32 and multiplied with
 *               sgemm (the F32 activations make it slightly more exact than
 *               llama.cpp's quantized-activation products).
 * slm_matmul_ref (tests) is the plain scalar reference for every type. */
#include "runtime.h"
#include "rt_internal.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* F16/BF16 tiles of about 1 MiB of F32: big enough for sgemm to run well */
enum { TILE_FLOATS = 1 << 18, ROW_ALIGN = 16, BATCH_DEQUANT = 8, BATCH_HALF = 2 };

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_init(void) { openblas_set_num_threads(1); }

int slm_matmul_supported(uint32_t type)
{
    if (type == SLM_TYPE_F32 || type == SLM_TYPE_F16 || type == SLM_TYPE_BF16)
        return 1;
    const slm_qtraits *q = slm_qtraits_get(type);
    return q && q->vec_dot && q->dequantize_row && slm_qtraits_get(q->vec_dot_type) &&
           slm_qtraits_get(q->vec_dot_type)->quantize_row;
}

/* rows [r0, r1) of this thread, aligned so slices do not share cache lines */
static void slice(int64_t n_rows, int ith, int nth, int64_t *r0, int64_t *r1)
{
    int64_t per = (n_rows + nth - 1) / nth;
    per = (per + ROW_ALIGN - 1) / ROW_ALIGN * ROW_ALIGN;
    *r0 = per * ith < n_rows ? per * ith : n_rows;
    *r1 = *r0 + per < n_rows ? *r0 + per : n_rows;
}

typedef struct mm_job {
    float *out;
    const gguf_tensor *W;
    const float *x;
    int n_tokens;
    int64_t n_in, n_out;
    size_t row_bytes;
    const void *xq;          /* activations in vec_dot_type (quant path) */
    size_t xq_row_bytes;
    const slm_qtraits *qt;
    slm_rows_fn rows;        /* multi-row decode kernel of the active kernel set */
    const uint8_t *packed;   /* x8 copy of W (slm_matmul_pack), or NULL */
    slm_x8_fn x8;            /* its decode kernel */
    size_t x8_gbytes;        /* bytes per group of 8 rows in the x8 copy */
    slm_gemm_fn gemm;        /* batch kernel (quantized activations, int8 dot products), or NULL */
    const void *act;         /* its prepared activations (slm_gemm_act_prep) */
    size_t gemm_scratch;     /* per-thread panel bytes */
    const uint16_t *xh;      /* F16 decode with gemv_f16x: the activations rounded to F16 */
    slm_gemv_half_fn gemv_half;  /* the active set's F16/BF16 single-token product, or NULL */
    slm_gemv_f16x_fn gemv_f16x;  /* the same on F16-rounded activations (AVX-512), or NULL */
    int per_token;           /* slm_matmul_decode: tokens of different sequences, each as a one-token product */
    slm_gemm_half_fn gemm_half; /* F16/BF16 batch kernel (register-tiled F32 FMA), or NULL */
} mm_job;

/* out[:, r0:r0+nr] = x * Wf^T where Wf holds nr F32 rows */
static void blas_block(const mm_job *j, const float *Wf, int64_t r0, int64_t nr)
{
    if (j->n_tokens == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)nr, (int)j->n_in, 1.0f, Wf, (int)j->n_in, j->x, 1,
                    0.0f, j->out + r0, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->n_tokens, (int)nr, (int)j->n_in, 1.0f, j->x,
                    (int)j->n_in, Wf, (int)j->n_in, 0.0f, j->out + r0, (int)j->n_out);
}

/* Without any heap memory: decode one block (or 256 values) at a time on the
 * stack and accumulate. Used only when a tile cannot be allocated. */
static void slow_rows(const mm_job *j, int64_t r0, int64_t r1)
{
    float buf[256];
    uint32_t type = j->W->type;
    int64_t blck = type == SLM_TYPE_F16 || type == SLM_TYPE_BF16 ? 256 : j->qt->blck;
    size_t bbytes = type == SLM_TYPE_F16 || type == SLM_TYPE_BF16 ? 512 : j->qt->bytes;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *wr = (const uint8_t *)j->W->data + (size_t)r * j->row_bytes;
        for (int t = 0; t < j->n_tokens; t++)
            j->out[(size_t)t * j->n_out + r] = 0;
        for (int64_t c0 = 0; c0 < j->n_in; c0 += blck) {
            int64_t nb = j->n_in - c0 < blck ? j->n_in - c0 : blck;
            const void *src = wr + (size_t)(c0 / blck) * bbytes;
            if (type == SLM_TYPE_F16)
                slm_fp16_to_fp32_row(src, buf, nb);
            else if (type == SLM_TYPE_BF16)
                slm_bf16_to_fp32_row(src, buf, nb);
            else
                j->qt->dequantize_row(src, buf, nb);
            for (int t = 0; t < j->n_tokens; t++) {
                const float *xt = j->x + (size_t)t * j->n_in + c0;
                float s = 0;
                for (int64_t c = 0; c < nb; c++)
                    s += buf[c] * xt[c];
                j->out[(size_t)t * j->n_out + r] += s;
            }
        }
    }
}

/* slm_matmul_decode, one thread's rows: blocks of rows small enough to stay in cache, and
 * over each block every token with the kernel a one-token product uses, so each token's
 * outputs are bit for bit those of slm_matmul_packed(.., 1) while the weights are read from
 * memory once for all tokens. */
enum { DECODE_BLOCK_BYTES = 64 << 10 };

static void decode_rows(const mm_job *j, int64_t r0, int64_t r1)
{
    const uint8_t *wb = j->W->data;
    uint32_t type = j->W->type;
    size_t blk_bytes = j->packed ? j->x8_gbytes / 8 : j->row_bytes;
    int64_t blk = blk_bytes ? (int64_t)(DECODE_BLOCK_BYTES / blk_bytes) / ROW_ALIGN * ROW_ALIGN : ROW_ALIGN;
    if (blk < ROW_ALIGN)
        blk = ROW_ALIGN;
    int half = type == SLM_TYPE_F16 || type == SLM_TYPE_BF16;
    float *tile = NULL;
    if (half && !j->gemv_half && !(tile = malloc(sizeof(float) * (size_t)blk * (size_t)j->n_in))) {
        slow_rows(j, r0, r1);
        return;
    }
    for (int64_t r = r0; r < r1; r += blk) {
        int64_t nr = r1 - r < blk ? r1 - r : blk;
        if (tile) { /* F16/BF16 without a gemv kernel: widen once, sgemv per token */
            if (type == SLM_TYPE_F16)
                slm_fp16_to_fp32_row((const uint16_t *)(wb + (size_t)r * j->row_bytes), tile, nr * j->n_in);
            else
                slm_bf16_to_fp32_row((const uint16_t *)(wb + (size_t)r * j->row_bytes), tile, nr * j->n_in);
        }
        for (int t = 0; t < j->n_tokens; t++) {
            float *out = j->out + (size_t)t * j->n_out;
            const float *x = j->x + (size_t)t * j->n_in;
            if (type == SLM_TYPE_F32 || tile) {
                const float *Wf = tile ? tile : (const float *)(wb + (size_t)r * j->row_bytes);
                cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)nr, (int)j->n_in, 1.0f, Wf, (int)j->n_in, x, 1, 0.0f,
                            out + r, 1);
            } else if (half) {
                if (j->gemv_f16x && j->xh)
                    j->gemv_f16x(j->W->data, j->n_in, r, r + nr, j->xh + (size_t)t * j->n_in, out);
                else
                    j->gemv_half(j->W->data, type == SLM_TYPE_BF16, j->n_in, r, r + nr, x, out);
            } else {
                const uint8_t *xq = (const uint8_t *)j->xq + (size_t)t * j->xq_row_bytes;
                if (j->packed && j->x8)
                    j->x8(j->n_in, nr / 8, out + r, j->packed + (size_t)(r / 8) * j->x8_gbytes, xq);
                else if (j->rows)
                    j->rows(j->n_in, nr, out + r, wb + (size_t)r * j->row_bytes, j->row_bytes, xq);
                else
                    for (int64_t i = r; i < r + nr; i++)
                        j->qt->vec_dot(j->n_in, &out[i], wb + (size_t)i * j->row_bytes, xq);
            }
        }
    }
    free(tile);
}

static void mm_task(void *arg, int ith, int nth)
{
    const mm_job *j = arg;
    int64_t r0, r1;
    slice(j->n_out, ith, nth, &r0, &r1);
    if (r0 >= r1)
        return;
    const uint8_t *wb = j->W->data;
    uint32_t type = j->W->type;
    if (j->per_token && (j->qt == NULL || j->xq)) {
        decode_rows(j, r0, r1);
        return;
    }
    if (type == SLM_TYPE_F32) {
        blas_block(j, (const float *)(wb + (size_t)r0 * j->row_bytes), r0, r1 - r0);
        return;
    }
    if ((type == SLM_TYPE_F16 || type == SLM_TYPE_BF16) && j->n_tokens == 1 && j->gemv_half) {
        if (j->gemv_f16x && j->xh)
            j->gemv_f16x(j->W->data, j->n_in, r0, r1, j->xh, j->out);
        else
            j->gemv_half(j->W->data, type == SLM_TYPE_BF16, j->n_in, r0, r1, j->x, j->out);
        return;
    }
    if (j->gemm_half) { /* F16/BF16 batch: widened 32-row panels, every token over each */
        size_t sb = slm_gemm_half_scratch_bytes(j->n_in);
        void *scratch = aligned_alloc(64, (sb + 63) / 64 * 64);
        if (scratch) {
            j->gemm_half(j->W->data, type == SLM_TYPE_BF16, j->n_in, r0, r1, j->x, j->n_tokens, j->out, j->n_out,
                         scratch);
            free(scratch);
            return;
        } /* out of memory: the widening path below */
    }
    if (j->gemm) { /* batch: int8 GEMM on 16-row panels (x8 copy or plain rows) */
        void *scratch = aligned_alloc(64, (j->gemm_scratch + 63) / 64 * 64);
        if (scratch) {
            const int x8 = j->packed && slm_gemm_reads_x8(type);
            const void *w = x8 ? (const void *)(j->packed + (size_t)(r0 / 8) * j->x8_gbytes)
                               : (const void *)(wb + (size_t)r0 * j->row_bytes);
            j->gemm(j->n_in, r1 - r0, j->out + r0, j->n_out, w, x8, j->act, j->n_tokens, scratch);
            free(scratch);
            return;
        } /* out of memory: the dequantizing paths below */
    }
    if (j->packed && j->x8 && j->xq) { /* decode on the x8 copy: 8 rows per group */
        for (int t = 0; t < j->n_tokens; t++)
            j->x8(j->n_in, (r1 - r0) / 8, j->out + (size_t)t * j->n_out + r0, j->packed + (size_t)(r0 / 8) * j->x8_gbytes,
                  (const uint8_t *)j->xq + (size_t)t * j->xq_row_bytes);
        return;
    }
    if (j->packed) { /* batch on the x8 copy: dequantize groups of 8 rows, then sgemm */
        int64_t tile_rows = TILE_FLOATS / j->n_in / 8 * 8;
        if (tile_rows < 16)
            tile_rows = 16;
        if (tile_rows > r1 - r0)
            tile_rows = r1 - r0;
        float *tile = malloc(sizeof(float) * (size_t)tile_rows * (size_t)j->n_in);
        if (!tile) {
            slow_rows(j, r0, r1);
            return;
        }
        for (int64_t r = r0; r < r1; r += tile_rows) {
            int64_t nr = r1 - r < tile_rows ? r1 - r : tile_rows;
            for (int64_t g = 0; g < nr / 8; g++)
                slm_x8_dequant_group(type, j->packed, r / 8 + g, j->n_in, tile + (size_t)g * 8 * j->n_in);
            blas_block(j, tile, r, nr);
        }
        free(tile);
        return;
    }
    if (type == SLM_TYPE_F16 || type == SLM_TYPE_BF16 || !j->xq) {
        int64_t tile_rows = TILE_FLOATS / j->n_in < 16 ? 16 : TILE_FLOATS / j->n_in;
        if (tile_rows > r1 - r0)
            tile_rows = r1 - r0;
        float *tile = malloc(sizeof(float) * (size_t)tile_rows * (size_t)j->n_in);
        if (!tile) {
            slow_rows(j, r0, r1); /* out of memory: still answer, block by block */
            return;
        }
        for (int64_t r = r0; r < r1; r += tile_rows) {
            int64_t nr = r1 - r < tile_rows ? r1 - r : tile_rows;
            const void *src = wb + (size_t)r * j->row_bytes;
            if (type == SLM_TYPE_F16)
                slm_fp16_to_fp32_row(src, tile, nr * j->n_in);
            else if (type == SLM_TYPE_BF16)
                slm_bf16_to_fp32_row(src, tile, nr * j->n_in);
            else
                j->qt->dequantize_row(src, tile, nr * j->n_in);
            blas_block(j, tile, r, nr);
        }
        free(tile);
        return;
    }
    /* quantized: the multi-row kernel per token over this thread's rows */
    if (j->rows) {
        for (int t = 0; t < j->n_tokens; t++)
            j->rows(j->n_in, r1 - r0, j->out + (size_t)t * j->n_out + r0, wb + (size_t)r0 * j->row_bytes, j->row_bytes,
                    (const uint8_t *)j->xq + (size_t)t * j->xq_row_bytes);
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        const void *wr = wb + (size_t)r * j->row_bytes;
        for (int t = 0; t < j->n_tokens; t++) {
            float s;
            j->qt->vec_dot(j->n_in, &s, wr, (const uint8_t *)j->xq + (size_t)t * j->xq_row_bytes);
            j->out[(size_t)t * j->n_out + r] = s;
        }
    }
}

size_t slm_matmul_pack_bytes(const gguf_tensor *W)
{
    if (W->n_dims < 2 || W->ne[1] % 16 || !slm_x8_kernel(W->type, slm_kernel_active()))
        return 0;
    size_t gb = slm_x8_group_bytes(W->type, W->ne[0]);
    if (!gb || (uint64_t)W->ne[1] / 8 > SIZE_MAX / gb)
        return 0;
    return gb * (size_t)(W->ne[1] / 8);
}

int slm_matmul_pack_into(const gguf_tensor *W, void *dst)
{
    return slm_matmul_pack_bytes(W) && slm_x8_pack(W->type, W->data, dst, W->ne[1], W->ne[0]) ? 0 : -1;
}

void *slm_matmul_pack(const gguf_tensor *W)
{
    size_t n = slm_matmul_pack_bytes(W);
    void *p = n ? malloc(n) : NULL;
    if (p && slm_matmul_pack_into(W, p)) {
        free(p);
        p = NULL;
    }
    return p;
}

/* The GEMM's activations, each thread a slice of the tokens (rows are independent: the bytes
 * are those of one call over all tokens). */
typedef struct prep_job {
    uint32_t type;
    const float *x;
    int64_t n;
    int ntok;
    uint8_t *act;
    size_t per_tok;
    atomic_int fail;
} prep_job;

static void prep_task(void *arg, int ith, int nth)
{
    prep_job *p = arg;
    const int per = (p->ntok + nth - 1) / nth, t0 = per * ith < p->ntok ? per * ith : p->ntok;
    const int t1 = t0 + per < p->ntok ? t0 + per : p->ntok;
    if (t0 < t1 && slm_gemm_act_prep(p->type, slm_kernel_active(), p->x + (size_t)t0 * (size_t)p->n, p->n, t1 - t0,
                                     p->act + (size_t)t0 * p->per_tok) != 0)
        atomic_store(&p->fail, 1);
}

static int act_prep(slm_pool *pool, uint32_t type, const float *x, int64_t n, int ntok, void *act)
{
    if (ntok < 32 || slm_pool_size(pool) < 2)
        return slm_gemm_act_prep(type, slm_kernel_active(), x, n, ntok, act);
    prep_job p = {type, x, n, ntok, act, slm_gemm_act_bytes(type, n, 1), 0};
    slm_pool_run(pool, prep_task, &p);
    return atomic_load(&p.fail) ? -1 : 0;
}

static void matmul_run(slm_pool *pool, float *out, const gguf_tensor *W, const void *packed, const float *x,
                       int n_tokens, int int8_batches);
static void matmul_tokens(slm_pool *pool, float *out, const gguf_tensor *W, const void *packed, const float *x,
                          int n_tokens, int per_token);

/* F32 activations for batches (the reference-accuracy path) */
void slm_matmul(slm_pool *pool, float *out, const gguf_tensor *W, const float *x, int n_tokens)
{
    matmul_run(pool, out, W, NULL, x, n_tokens, 0);
}

/* the runtime's path: batches through the int8 GEMM where there is one */
void slm_matmul_packed(slm_pool *pool, float *out, const gguf_tensor *W, const void *packed, const float *x,
                       int n_tokens)
{
    matmul_run(pool, out, W, packed, x, n_tokens, 1);
}

/* n tokens of n different sequences (multi-sequence decode) */
void slm_matmul_decode(slm_pool *pool, float *out, const gguf_tensor *W, const void *packed, const float *x,
                       int n_tokens)
{
    matmul_tokens(pool, out, W, packed, x, n_tokens, 1);
}

static void matmul_run(slm_pool *pool, float *out, const gguf_tensor *W, const void *packed, const float *x,
                       int n_tokens, int int8_batches)
{
    matmul_tokens(pool, out, W, packed, x, n_tokens, int8_batches ? 2 : 0);
}

/* mode 0: slm_matmul; 2: slm_matmul_packed; 1: slm_matmul_decode */
static void matmul_tokens(slm_pool *pool, float *out, const gguf_tensor *W, const void *packed, const float *x,
                          int n_tokens, int mode)
{
    const int int8_batches = mode == 2, per_token = mode == 1;
    pthread_once(&blas_once, blas_init);
    mm_job j = {
        .out = out, .W = W, .x = x, .n_tokens = n_tokens, .n_in = W->ne[0], .n_out = W->ne[1],
        .row_bytes = slm_type_row_bytes(W->type, (uint64_t)W->ne[0]),
        .gemv_half = slm_gemv_half_kernel(slm_kernel_active()),
        .gemv_f16x = slm_gemv_f16x_kernel(slm_kernel_active()),
        .packed = packed,
        .x8 = packed ? slm_x8_kernel(W->type, slm_kernel_active()) : NULL,
        .x8_gbytes = packed ? slm_x8_group_bytes(W->type, W->ne[0]) : 0,
        .per_token = per_token,
    };
    void *xq = NULL, *xh = NULL;
    if (W->type != SLM_TYPE_F32 && W->type != SLM_TYPE_F16 && W->type != SLM_TYPE_BF16) {
        j.qt = slm_qtraits_get(W->type);
    }
    if (j.qt && n_tokens >= BATCH_DEQUANT && int8_batches && !per_token)
        j.gemm = slm_gemm_kernel(W->type, slm_kernel_active());
    if (j.gemm) {
        /* batch: activations quantized once (as llama.cpp does), then the int8 GEMM */
        size_t ab = slm_gemm_act_bytes(W->type, j.n_in, n_tokens);
        j.gemm_scratch = slm_gemm_scratch_bytes(W->type, j.n_in);
        xq = ab && j.gemm_scratch ? malloc(ab) : NULL;
        if (xq && act_prep(pool, W->type, x, j.n_in, n_tokens, xq) == 0) {
            j.act = xq;
        } else { /* out of memory: the dequantizing path */
            free(xq);
            xq = NULL;
            j.gemm = NULL;
        }
    } else if (j.qt && (n_tokens < BATCH_DEQUANT || per_token)) {
        j.xq_row_bytes = slm_row_bytes(j.qt->vec_dot_type, j.n_in);
        xq = malloc(j.xq_row_bytes * (size_t)n_tokens);
        /* out of memory: fall back to the dequantizing path (no xq) */
        for (int t = 0; xq && t < n_tokens; t++)
            slm_quantize_act(j.qt->vec_dot_type, x + (size_t)t * j.n_in, (uint8_t *)xq + (size_t)t * j.xq_row_bytes,
                             j.n_in);
        j.xq = xq;
        j.rows = slm_rows_kernel(W->type, slm_kernel_active());
    }
    if (W->type == SLM_TYPE_F16 && (n_tokens == 1 || per_token) && j.gemv_half && j.gemv_f16x &&
        (xh = malloc(sizeof(uint16_t) * (size_t)j.n_in * (size_t)n_tokens))) {
        for (int t = 0; t < n_tokens; t++) /* row by row, as one token at a time rounds it */
            slm_fp32_to_fp16_row(x + (size_t)t * j.n_in, (uint16_t *)xh + (size_t)t * j.n_in, j.n_in);
        j.xh = xh; /* out of memory: F32 activations */
    }
    if ((W->type == SLM_TYPE_F16 || W->type == SLM_TYPE_BF16) && !per_token && n_tokens >= BATCH_HALF)
        j.gemm_half = slm_gemm_half_kernel(slm_kernel_active());
    slm_pool_run(pool, mm_task, &j);
    free(xq);
    free(xh);
}

void slm_tensor_row_f32(const gguf_tensor *W, int64_t row, float *dst)
{
    int64_t n = W->ne[0];
    size_t rb = slm_type_row_bytes(W->type, (uint64_t)n);
    const uint8_t *src = (const uint8_t *)W->data + (size_t)row * rb;
    switch (W->type) {
    case SLM_TYPE_F32: memcpy(dst, src, sizeof(float) * (size_t)n); break;
    case SLM_TYPE_F16: slm_fp16_to_fp32_row((const uint16_t *)src, dst, n); break;
    case SLM_TYPE_BF16: slm_bf16_to_fp32_row((const uint16_t *)src, dst, n); break;
    default: slm_qtraits_get(W->type)->dequantize_row(src, dst, n); break;
    }
}

/* Scalar reference: each weight row decoded to float, dot in float. */
void slm_matmul_ref(float *out, const gguf_tensor *W, const float *x, int n_tokens)
{
    int64_t n_in = W->ne[0], n_out = W->ne[1];
    float *row = malloc(sizeof(float) * (size_t)n_in);
    if (!row)
        abort(); /* test-only reference */
    for (int64_t r = 0; r < n_out; r++) {
        slm_tensor_row_f32(W, r, row);
        for (int t = 0; t < n_tokens; t++) {
            const float *xt = x + (size_t)t * n_in;
            float s = 0;
            for (int64_t c = 0; c < n_in; c++)
                s += row[c] * xt[c];
            out[(size_t)t * n_out + r] = s;
        }
    }
    free(row);
}

/* The out-of-memory path on its own (tests). */
void slm_matmul_nomem(float *out, const gguf_tensor *W, const float *x, int n_tokens)
{
    mm_job j = {
        .out = out, .W = W, .x = x, .n_tokens = n_tokens, .n_in = W->ne[0], .n_out = W->ne[1],
        .row_bytes = slm_type_row_bytes(W->type, (uint64_t)W->ne[0]),
    };
    if (W->type != SLM_TYPE_F32 && W->type != SLM_TYPE_F16 && W->type != SLM_TYPE_BF16)
        j.qt = slm_qtraits_get(W->type);
    if (W->type == SLM_TYPE_F32)
        blas_block(&j, W->data, 0, j.n_out);
    else
        slow_rows(&j, 0, j.n_out);
}
