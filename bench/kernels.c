/* bench/kernels.c — the machine's roofline (DRAM read bandwidth, FMA peak) and
 * per-type, per-kernel matrix x vector / matrix x matrix timings through the
 * runtime's slm_matmul (or dequantize + OpenBLAS for the "blas" kernel).
 *
 * Decode reads every weight once per token, so matrix x vector is reported in
 * GB/s of weights next to the read bandwidth; batches are compute-bound and
 * reported in GFLOP/s next to the FMA peak. The weights are cycled over enough
 * copies to exceed the last-level cache, as a model's weights do. */
#include "bench.h"
#include "formats.h"
#include "bench_internal.h"
#include "libquant.h"
#include "runtime.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *bench_kernel_label(int kernel)
{
    return kernel == BENCH_KERNEL_BLAS ? "blas" : slm_kernel_name(kernel);
}

/* ---- roofline ------------------------------------------------------------------ */

/* DRAM read, the way STREAM-like read tests do it: a buffer far beyond the last-level
 * cache (READ_BYTES, 16x a 32 MiB L3), every thread streaming its own contiguous part
 * with the widest loads and several accumulators (no software prefetch: it measured
 * slower than the hardware prefetchers on a plain stream), READ_PASSES passes after a
 * warm-up pass. Each pass is timed in steps (at most READ_STEP bytes per thread, all
 * threads at once, one pool hand-off per step as a kernel sample has), and the
 * bandwidth is the median step, the statistic the kernel results use: on a shared
 * machine one long pass is always disturbed somewhere, a step mostly is not (the best
 * step is kept too). The buffer is in 2 MiB pages where the kernel gives them
 * (slm_big_alloc), as the runtime's decode weights are (forward.c): with 4 KiB pages
 * the stream measured 5-30 % slower on this Xeon, and a roofline below what the
 * kernels reach would not be one. The FMA probe runs as short pieces (2^14 rounds), median piece. */
#define READ_BYTES ((size_t)512 << 20)
#define READ_STEP ((size_t)4 << 20) /* at most; at least 32 steps per pass */
enum { READ_PASSES = 3, FMA_PIECES = 64 };

typedef struct roof_job {
    const char *buf;
    size_t part;               /* bytes per thread (a multiple of step) */
    size_t step;               /* bytes per thread per step (multiple of 4096) */
    size_t off;                /* offset of this step in each thread's part */
    int isa;                   /* SLM_KERNEL_* */
    int64_t fma_iters;
    volatile uint64_t sink;
    volatile float fsink;
} roof_job;

/* The probes of a kernel set, by what it needs (the target's files: roof_<isa>.c); none
 * for the scalar set (plain 64-bit reads, no FMA figure). */
typedef struct {
    uint64_t (*read)(const void *buf, size_t bytes);
    float (*fma)(int64_t iters);
    int lanes;
} roof_probe;

static roof_probe probe_for(int kernel)
{
    unsigned needs = slm_kernel_needs(kernel);
    (void)needs;
#if defined(__x86_64__)
    if (needs & SLM_CAP_AVX512)
        return (roof_probe){bench_read_avx512, bench_fma_avx512, 16};
    if (needs & SLM_CAP_AVX2)
        return (roof_probe){bench_read_avx2, bench_fma_avx2, 8};
#elif defined(__aarch64__)
    if (needs & SLM_CAP_ASIMD)
        return (roof_probe){bench_read_neon, bench_fma_neon, 4};
#endif
    return (roof_probe){NULL, NULL, 0};
}

static void read_task(void *arg, int ith, int nth)
{
    roof_job *j = arg;
    (void)nth;
    const char *p = j->buf + (size_t)ith * j->part + j->off;
    uint64_t r;
    roof_probe pr = probe_for(j->isa);
    if (pr.read)
        r = pr.read(p, j->step);
    else {
        const uint64_t *q = (const uint64_t *)p;
        uint64_t r0 = 0, r1 = 0, r2 = 0, r3 = 0;
        for (size_t i = 0; i < j->step / 8; i += 4)
            r0 ^= q[i], r1 ^= q[i + 1], r2 ^= q[i + 2], r3 ^= q[i + 3];
        r = r0 ^ r1 ^ r2 ^ r3;
    }
    if (ith == 0)
        j->sink = r;
}

static void fma_task(void *arg, int ith, int nth)
{
    (void)nth;
    roof_job *j = arg;
    roof_probe pr = probe_for(j->isa);
    float r = pr.fma ? pr.fma(j->fma_iters) : 0.f;
    if (ith == 0)
        j->fsink = r;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int bench_roofline_measure(int n_threads, bench_roofline *out, slm_err *err)
{
    memset(out, 0, sizeof *out);
    if (n_threads < 1 || n_threads > 1024)
        return slm_err_set(err, SLM_EINPUT, "%d threads: out of range (1..1024)", n_threads);
    slm_pool *pool;
    int rc = slm_pool_new(n_threads, &pool, err);
    if (rc)
        return rc;
    size_t step = READ_BYTES / (size_t)n_threads / 32 / 4096 * 4096;
    if (step > READ_STEP)
        step = READ_STEP;
    const size_t steps = READ_BYTES / (size_t)n_threads / step, part = steps * step;
    char *buf = slm_big_alloc(READ_BYTES);
    double *t = malloc(sizeof(double) * (steps * READ_PASSES + FMA_PIECES));
    if (!buf || !t) {
        slm_big_free(buf, READ_BYTES);
        free(t);
        slm_pool_free(pool);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory for the %zu MiB bandwidth buffer", READ_BYTES >> 20);
    }
    for (size_t i = 0; i < READ_BYTES; i += 4096) /* touch every page, non-zero */
        memset(buf + i, (int)(i >> 12) | 1, 4096);
    roof_job j = {.buf = buf, .part = part, .step = step, .isa = slm_kernel_active()};
    size_t ns = 0;
    for (int pass = 0; pass <= READ_PASSES; pass++)
        for (size_t k = 0; k < steps; k++) {
            j.off = k * step;
            double t0 = bench_now();
            slm_pool_run(pool, read_task, &j);
            if (pass > 0) /* pass 0 warms up (page tables, threads) */
                t[ns++] = bench_now() - t0;
        }
    qsort(t, ns, sizeof *t, cmp_d);
    out->read_gbs = (double)(step * (size_t)n_threads) / t[ns / 2] / 1e9;
    out->read_gbs_best = (double)(step * (size_t)n_threads) / t[0] / 1e9;
    slm_big_free(buf, READ_BYTES);
    if (probe_for(j.isa).fma) {
        int lanes = probe_for(j.isa).lanes;
        j.fma_iters = 1 << 14;
        slm_pool_run(pool, fma_task, &j);
        ns = 0;
        for (int k = 0; k < FMA_PIECES; k++) {
            double t0 = bench_now();
            slm_pool_run(pool, fma_task, &j);
            t[ns++] = bench_now() - t0;
        }
        qsort(t, ns, sizeof *t, cmp_d);
        out->fma_gflops = (double)j.fma_iters * 12 * 2 * lanes * n_threads / t[ns / 2] / 1e9;
    }
    free(t);
    out->n_threads = n_threads;
    out->isa = slm_kernel_name(j.isa);
    slm_pool_free(pool);
    return SLM_OK;
}

/* ---- kernels ----------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float rng_gauss(uint64_t *s) /* sum of 4 uniforms: cheap, roughly normal */
{
    float a = 0;
    for (int k = 0; k < 4; k++)
        a += (float)(rng_next(s) >> 40) / (float)(1 << 24);
    return (a - 2.0f) * 1.7f;
}

typedef struct blas_job {
    const gguf_tensor *W;
    const float *x;
    float *out;
    int n_tokens;
    float **tiles;
} blas_job;

/* dequantize this thread's rows tile by tile, then sgemv / sgemm */
static void blas_task(void *arg, int ith, int nth)
{
    blas_job *j = arg;
    int64_t n_in = j->W->ne[0], n_out = j->W->ne[1];
    int64_t per = (n_out + nth - 1) / nth, r0 = per * ith, r1 = r0 + per < n_out ? r0 + per : n_out;
    int64_t tile_rows = (1 << 18) / n_in < 1 ? 1 : (1 << 18) / n_in;
    float *tile = j->tiles[ith];
    for (int64_t r = r0; r < r1; r += tile_rows) {
        int64_t nr = r1 - r < tile_rows ? r1 - r : tile_rows;
        for (int64_t k = 0; k < nr; k++)
            slm_tensor_row_f32(j->W, r + k, tile + k * n_in);
        if (j->n_tokens == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)nr, (int)n_in, 1.0f, tile, (int)n_in, j->x, 1, 0.0f,
                        j->out + r, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->n_tokens, (int)nr, (int)n_in, 1.0f, j->x,
                        (int)n_in, tile, (int)n_in, 0.0f, j->out + r, (int)n_out);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The weights of successive samples cycle over copies filling COLD_BYTES (8x a 32 MiB
 * L3, as a model's weights exceed it), so each product reads its weights from DRAM.
 * Building with -DCOLD_BYTES=1 measures the kernels on cache-resident weights instead
 * (how fast they compute, apart from memory). */
#ifndef COLD_BYTES
#define COLD_BYTES ((size_t)256 << 20)
#endif
enum { MAX_SAMPLES = 4096 };

int bench_kernel_run(uint32_t type, int kernel, int64_t rows, int64_t cols, int n_tokens, int n_threads,
                     double min_seconds, bench_kernel_result *res, slm_err *err)
{
    memset(res, 0, sizeof *res);
    const char *tn = slm_type_name(type);
    if (!tn || !slm_matmul_supported(type))
        return slm_err_set(err, SLM_EINPUT, "type %u is not supported by the runtime", type);
    if (rows < 1 || cols < 1 || rows > (1 << 20) || cols > (1 << 20) || n_tokens < 1 || n_tokens > 4096)
        return slm_err_set(err, SLM_EINPUT, "shape %lldx%lld x %d tokens is out of range", (long long)rows,
                           (long long)cols, n_tokens);
    size_t rb = slm_type_row_bytes(type, (uint64_t)cols);
    if (!rb)
        return slm_err_set(err, SLM_EINPUT, "%s: %lld columns are not a multiple of the block size", tn,
                           (long long)cols);
    if (kernel != BENCH_KERNEL_BLAS && (kernel < 0 || kernel >= SLM_KERNEL_COUNT))
        return slm_err_set(err, SLM_EINPUT, "unknown kernel %d", kernel);
    if (kernel != BENCH_KERNEL_BLAS && !slm_cpu_has(kernel))
        return slm_err_set(err, SLM_EINPUT, "this CPU has no %s kernel", slm_kernel_name(kernel));
    size_t wbytes = rb * (size_t)rows;
    if (wbytes > (size_t)1 << 31)
        return slm_err_set(err, SLM_EINPUT, "matrix of %zu bytes is too large for the bench", wbytes);
    slm_pool *pool = NULL;
    int rc = slm_pool_new(n_threads, &pool, err);
    if (rc)
        return rc;
    float *src = malloc(sizeof(float) * (size_t)cols * (size_t)rows);
    float *x = malloc(sizeof(float) * (size_t)cols * (size_t)n_tokens);
    float *out = malloc(sizeof(float) * (size_t)rows * (size_t)n_tokens);
    float *ref = malloc(sizeof(float) * (size_t)rows * (size_t)n_tokens);
    char *wmem = malloc(wbytes), *cold = NULL; /* the rows; the cycled copies (below) */
    size_t cbytes = wbytes, copies = 0;
    float **tiles = calloc((size_t)n_threads, sizeof *tiles);
    double *samples = malloc(sizeof(double) * MAX_SAMPLES);
    void *packed = NULL;         /* x8 copy (decode layout), or NULL */
    int fail = !src || !x || !out || !ref || !wmem || !tiles || !samples;
    for (int t = 0; !fail && t < n_threads; t++) {
        int64_t tr = (1 << 18) / cols < 1 ? 1 : (1 << 18) / cols;
        tiles[t] = malloc(sizeof(float) * (size_t)tr * (size_t)cols);
        fail |= !tiles[t];
    }
    if (fail) {
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory for a %lldx%lld %s bench", (long long)rows,
                         (long long)cols, tn);
        goto done;
    }
    uint64_t seed = 42 + type;
    for (size_t i = 0; i < (size_t)cols * (size_t)rows; i++)
        src[i] = 0.02f * rng_gauss(&seed);
    for (size_t i = 0; i < (size_t)cols * (size_t)n_tokens; i++)
        x[i] = rng_gauss(&seed);
    if (type == SLM_TYPE_F32)
        memcpy(wmem, src, wbytes);
    else if (type == SLM_TYPE_F16)
        slm_fp32_to_fp16_row(src, (uint16_t *)wmem, cols * rows);
    else if (type == SLM_TYPE_BF16)
        slm_fp32_to_bf16_row(src, (uint16_t *)wmem, cols * rows);
    else {
        /* the runtime's quantizer is slow for big matrices; use llama.cpp's reference
         * rounding when there is one (the kernels do not care how levels were chosen) */
        if (!slm_quantize_rows_llama_ref(type, src, wmem, rows, cols))
            slm_quantize_rows(type, src, wmem, rows, cols, NULL);
    }
    /* what decode uses: the repacked (x8) layout where the kernel has one, as the
     * runtime packs it at context creation */
    if (kernel != BENCH_KERNEL_BLAS) {
        int saved_k = slm_kernel_active();
        slm_kernel_force(kernel);
        gguf_tensor W0 = {.name = "bench", .type = type, .n_dims = 2, .ne = {cols, rows, 1, 1},
                          .n_elems = (uint64_t)cols * (uint64_t)rows, .nbytes = wbytes, .data = wmem};
        packed = slm_matmul_pack(&W0);
        slm_kernel_force(saved_k);
    }
    /* bytes of one cycled copy: the rows, or the x8 copy (a little larger for some types;
     * GB/s is still counted on the rows' bytes, the file's) */
    if (packed)
        cbytes = slm_x8_group_bytes(type, cols) * (size_t)(rows / 8);
    copies = (COLD_BYTES + cbytes - 1) / cbytes;
    if (!(cold = slm_big_alloc(cbytes * copies))) { /* 2 MiB pages, as the runtime's copies */
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory for a %lldx%lld %s bench", (long long)rows,
                         (long long)cols, tn);
        goto done;
    }
    for (size_t c = 0; c < copies; c++)
        memcpy(cold + c * cbytes, packed ? packed : wmem, cbytes);

    gguf_tensor W = {.name = "bench", .type = type, .n_dims = 2, .ne = {cols, rows, 1, 1},
                     .n_elems = (uint64_t)cols * (uint64_t)rows, .nbytes = wbytes, .data = wmem};
    int saved = slm_kernel_active();
    /* reference: rows decoded to float, dot in double, on the first rows of copy 0 */
    int64_t check_rows = rows < 64 ? rows : 64;
    for (int64_t r = 0; r < check_rows; r++) {
        slm_tensor_row_f32(&W, r, src);
        for (int t = 0; t < n_tokens; t++) {
            double s = 0;
            for (int64_t c = 0; c < cols; c++)
                s += (double)src[c] * x[(size_t)t * cols + c];
            ref[(size_t)t * rows + r] = (float)s;
        }
    }
    if (kernel != BENCH_KERNEL_BLAS)
        slm_kernel_force(kernel);
    blas_job bj = {.W = &W, .x = x, .out = out, .n_tokens = n_tokens, .tiles = tiles};
    if (kernel == BENCH_KERNEL_BLAS)
        slm_pool_run(pool, blas_task, &bj);
    else
        slm_matmul_packed(pool, out, &W, packed, x, n_tokens);
    double maxref = 0, maxdiff = 0;
    for (int t = 0; t < n_tokens; t++)
        for (int64_t r = 0; r < check_rows; r++) {
            size_t i = (size_t)t * rows + r;
            maxref = fmax(maxref, fabs(ref[i]));
            maxdiff = fmax(maxdiff, fabs((double)out[i] - ref[i]));
        }
    res->max_rel_err = maxref > 0 ? maxdiff / maxref : maxdiff;
    int ns = 0;
    double t_start = bench_now();
    for (int it = 0; ns < MAX_SAMPLES && (ns < 3 || bench_now() - t_start < min_seconds); it++) {
        char *copy = cold + (size_t)it % copies * cbytes;
        if (!packed)
            W.data = copy;
        double t0 = bench_now();
        if (kernel == BENCH_KERNEL_BLAS)
            slm_pool_run(pool, blas_task, &bj);
        else
            slm_matmul_packed(pool, out, &W, packed ? copy : NULL, x, n_tokens);
        samples[ns++] = bench_now() - t0;
    }
    slm_kernel_force(saved);
    qsort(samples, (size_t)ns, sizeof *samples, cmp_double);
    res->type = type;
    res->kernel = kernel;
    res->rows = rows;
    res->cols = cols;
    res->n_tokens = n_tokens;
    res->n_threads = n_threads;
    res->weight_bytes = wbytes;
    res->samples = ns;
    res->sec_best = samples[0];
    res->sec_median = samples[ns / 2];
    res->gbs = (double)wbytes / res->sec_median / 1e9;
    res->gflops = 2.0 * (double)rows * (double)cols * n_tokens / res->sec_median / 1e9;
    rc = SLM_OK;
done:
    free(packed);
    slm_big_free(cold, cbytes * copies);
    if (tiles)
        for (int t = 0; t < n_threads; t++)
            free(tiles[t]);
    free(tiles);
    free(samples);
    free(src);
    free(x);
    free(out);
    free(ref);
    free(wmem);
    slm_pool_free(pool);
    return rc;
}
