/* bench/bench.h — the face of slmkit's benchmarking library.
 *
 * Rules: like every slmkit library, bench/ never prints and never exits;
 * functions return an slm status code (0 = OK) and fill an slm_err.
 * bench/ may use formats/, libquant/ and runtime/.
 */
#ifndef SLM_BENCH_H
#define SLM_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "../libquant/libquant.h" /* the kernel set ids (by path: tools include this face) */

/* ---- synthetic models (bench/synth.c) ----------------------------------
 * Hugging Face model directories with seeded random weights in the shape of
 * a real model, so speed and memory can be measured at realistic sizes
 * without real weights. The output is a complete HF directory (config.json,
 * model.safetensors, tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json, generation_config.json) with a valid synthetic
 * tokenizer: SentencePiece-style BPE with byte fallback for Llama shapes,
 * GPT-2 byte-level BPE for GPT-2 shapes. */
typedef struct synth_shape {
    const char *name;      /* "smollm-135m", ... (also written to the safetensors metadata) */
    int arch;              /* enum slm_arch: llama, qwen2, qwen3, gemma3, phi3, gpt2 */
    int n_embd;            /* hidden_size / n_embd */
    int n_ff;              /* intermediate_size (llama); gpt2 uses 4 * n_embd */
    int n_layer;
    int n_head;
    int n_head_kv;         /* llama; ignored for gpt2 */
    int n_vocab;
    int n_ctx;             /* max_position_embeddings / n_positions */
    double norm_eps;       /* rms_norm_eps / layer_norm_epsilon */
    double rope_theta;     /* llama */
    int tied;              /* tie_word_embeddings: no lm_head.weight written */
    /* ---- newer families (zero for the original shapes) ---- */
    int head_dim;          /* 0: n_embd / n_head */
    int decisive;          /* fan-in scaled weights, large embeddings (docs/bench-synth.md) */
    double rope_llama3;    /* Llama 3 rope_scaling factor (0: none); low 1, high 4, original 8192 */
    int window;            /* sliding_window (gemma3 local layers; phi3 carried) */
    int swa_pattern;       /* gemma3: layer i is global iff (i + 1) % swa_pattern == 0 */
    double rope_local_theta; /* gemma3: rope_local_base_freq */
    int orig_ctx;          /* phi3: original_max_position_embeddings */
    int bos_id, eos_id;    /* the family's real tokenizer's ids (used with synth_opts.tokenizer_dir) */
} synth_shape;

/* The built-in shapes (smollm-135m, tinyllama-1.1b, gpt2-124m, llama-3.2-1b,
 * qwen2.5-0.5b, qwen3-0.6b, gemma-3-270m, gemma-3-1b, phi-3-mini). */
const synth_shape *synth_shapes(size_t *n);
const synth_shape *synth_find_shape(const char *name); /* NULL if unknown */
/* Shrink a shape for tests, keeping its family's features (GQA ratio when
 * possible, tied embeddings, the sliding pattern: gemma3 keeps >= 2 local
 * layers and 1 global one). Any argument <= 0 keeps the shape's value; with
 * head_dim <= 0 a derived head size (n_embd / n_head) is re-derived and an
 * explicit one kept. The result's name points into `name_buf`. */
int synth_shrink(const synth_shape *base, int layers, int hidden, int ff, int heads, int kv_heads, int head_dim,
                 int window, int vocab, synth_shape *out, char *name_buf, size_t name_cap, slm_err *err) SLM_MUST_CHECK;
/* Checks a (custom) shape: sizes positive and bounded, heads divide n_embd,
 * kv heads divide heads, vocab large enough for the tokenizer. */
int synth_shape_check(const synth_shape *s, slm_err *err) SLM_MUST_CHECK;
/* Number of parameters written (tensors in the safetensors file). */
uint64_t synth_param_count(const synth_shape *s);

typedef struct synth_opts {
    uint64_t seed;          /* same seed (and shape, dtype) => byte-identical files */
    uint32_t dtype;         /* SLM_TYPE_F32, SLM_TYPE_F16 or SLM_TYPE_BF16 */
    int n_threads;          /* generator threads; <= 0: 2. Output does not depend on it. */
    int force;              /* allow writing into a non-empty existing directory */
    /* A directory holding a real tokenizer.json + tokenizer_config.json to
     * copy instead of the synthetic tokenizer (NULL: synthetic). For phi3 a
     * Llama 2 tokenizer gets Phi-3's added tokens 32000..32010. */
    const char *tokenizer_dir;
    /* Called from the calling thread after each piece written (may be NULL). */
    void (*progress)(void *ctx, uint64_t done_bytes, uint64_t total_bytes);
    void *progress_ctx;
} synth_opts;

typedef struct synth_result {
    uint64_t n_params;      /* elements written */
    uint64_t n_bytes;       /* bytes of model.safetensors */
    uint64_t n_tensors;
} synth_result;

/* Write the model directory dir (created when missing). Refuses a non-empty
 * existing directory unless opts->force. On failure nothing written by this
 * call is left behind (files removed; the directory too if it was created).
 * res may be NULL. */
int synth_write(const synth_shape *s, const char *dir, const synth_opts *opts,
                synth_result *res, slm_err *err) SLM_MUST_CHECK;

/* The value generator (exposed for tests): element i of tensor number
 * tensor_index in the file, before the dtype conversion, for a tensor of
 * kind 0 (weights: N(0, 0.02)), 1 (norm weights: 1 + N(0, 0.01)), or
 * 2 (biases: N(0, 0.01)). Fills dst[0..n) with elements first..first+n-1. */
enum synth_kind { SYNTH_WEIGHT = 0, SYNTH_NORM = 1, SYNTH_BIAS = 2 };
void synth_values(uint64_t seed, uint32_t tensor_index, int kind, uint64_t first, uint64_t n, float *dst);

/* ---- speed benchmarks (bench/kernels.c, bench/e2e.c, bench/svg.c) ----------------
 * Time is wall-clock (CLOCK_MONOTONIC); every result keeps its samples. */

/* The machine's roofline, measured: DRAM read bandwidth (a 512 MiB buffer, 16x the
 * last-level cache, streamed with the widest loads by n_threads readers, each its own
 * part; timed in steps of 4 MiB per thread) and the FP32 FMA peak (independent FMA
 * chains, per thread, summed over threads). */
typedef struct bench_roofline {
    double read_gbs;         /* GB/s (1e9 bytes), median step (as kernel results) */
    double read_gbs_best;    /* GB/s, best step */
    double fma_gflops;       /* GFLOP/s (an FMA = 2 flops) */
    int n_threads;
    const char *isa;         /* widest vectors used: "avx512", "avx2", "scalar" */
} bench_roofline;
int bench_roofline_measure(int n_threads, bench_roofline *out, slm_err *err) SLM_MUST_CHECK;

/* One kernel measurement: `rows` x `cols` weights of `type` times n_tokens activation
 * rows (1: matrix x vector, the decode case; > 1: matrix x matrix) through
 * slm_matmul with `kernel` forced (SLM_KERNEL_*), or BENCH_KERNEL_BLAS: the weights
 * dequantized to F32 tile by tile, then OpenBLAS (sgemv / sgemm). Enough copies of
 * the matrix are cycled that the weights come from DRAM, not the cache. */
enum { BENCH_KERNEL_BLAS = SLM_KERNEL_COUNT }; /* after every kernel set id */
const char *bench_kernel_label(int kernel); /* "scalar", "avx2", "neon", ..., "blas" */
typedef struct bench_kernel_result {
    uint32_t type;
    int kernel;
    int64_t rows, cols;
    int n_tokens, n_threads;
    uint64_t weight_bytes;   /* one copy of the matrix */
    double sec_median, sec_best; /* per product */
    int samples;
    double gbs;              /* weight bytes / median time (GB/s) */
    double gflops;           /* 2 rows cols n_tokens / median time */
    double max_rel_err;      /* |out - scalar reference| / max |reference| on a check product */
} bench_kernel_result;
/* min_seconds: keep repeating until this much time is spent (at least 3 samples). */
int bench_kernel_run(uint32_t type, int kernel, int64_t rows, int64_t cols, int n_tokens, int n_threads,
                     double min_seconds, bench_kernel_result *res, slm_err *err) SLM_MUST_CHECK;

/* Kernel self-check (check.c): every hook of kernel set `kernel` against the scalar set
 * for every type (F16, BF16, Q4_0..Q8_0, Q2_K..Q6_K): half/bf16 converters, dequantize,
 * activation quantizers and quantizer output bit for bit; vec_dot, row kernels, x8
 * decode, batch GEMM and F16/BF16 products within 1e-5 of the sum of |terms|. Each check
 * goes to report (may be NULL); the counts are added to *n_pass / *n_fail. */
typedef void (*bench_check_report)(void *ctx, int kernel, const char *check, int ok, const char *detail);
int bench_kernels_check(int kernel, bench_check_report report, void *ctx, int *n_pass, int *n_fail,
                        slm_err *err) SLM_MUST_CHECK;

/* End-to-end model speed, llama-bench's tests: pp (n_prompt tokens in one batch from
 * an empty cache), tg (n_gen tokens one by one from an empty cache), pg (both). One
 * warm-up run per test, then `reps` timed runs. Token ids are seeded random. type_k / type_v:
 * the KV cache types (slm_ctx_new_kv; 0 is F32, llama-bench's -ctk / -ctv). */
typedef struct bench_e2e_test { int n_prompt, n_gen; uint32_t type_k, type_v; } bench_e2e_test;
typedef struct bench_e2e_result {
    bench_e2e_test test;
    int n_threads, reps;
    double *samples_ns;      /* reps values (malloc'd; bench_e2e_result_free) */
    double avg_ns, stddev_ns, avg_ts, stddev_ts; /* t/s over the reps (llama-bench's definition) */
} bench_e2e_result;
typedef struct bench_model_info {
    char arch[32];
    char ftype[32];          /* "Q4_0", "Q4_K - Medium", ... from general.file_type */
    char type_label[96];     /* llama-bench's model_type: "llama 135M Q4_0" */
    uint64_t size_bytes;     /* weights */
    uint64_t n_params;
    double load_ms;
} bench_model_info;
typedef struct slm_model slm_model;
int bench_model_info_get(const slm_model *m, double load_ms, bench_model_info *out);
int bench_e2e_run(const slm_model *m, bench_e2e_test test, int n_threads, int reps, bench_e2e_result *res,
                  slm_err *err) SLM_MUST_CHECK;
void bench_e2e_result_free(bench_e2e_result *r);

/* A small SVG chart (well-formed XML, labelled axes) as a malloc'd string (NULL: out of
 * memory). Scatter: points (x, y) with labels; pareto: also draw the lower-left front
 * (smaller x and smaller y both better) and mark its points. Bars: one bar per label. */
typedef struct bench_point { double x, y; const char *label; } bench_point;
char *bench_svg_scatter(const char *title, const char *x_label, const char *y_label, const bench_point *pts,
                        int n, int pareto, int log_y);
char *bench_svg_bars(const char *title, const char *y_label, const bench_point *bars, int n);
/* Indices of the Pareto-optimal points (no other point has x <= and y <= with one <). */
int bench_pareto(const bench_point *pts, int n, int *idx_out);

/* ---- the runs behind `slm bench` (bench/run.c) -------------------------------------------
 * Each writes its output text, piece by piece as it is measured, through emit (the caller
 * prints it); a failure part-way returns its status after the pieces already emitted. */
typedef void (*bench_emit_fn)(void *user, const char *text);
/* /proc/cpuinfo's "model name", else "unknown". */
void bench_cpu_name(char *buf, size_t n);
/* llama-bench's test names: "pp512", "tg128", "pp512+tg128". */
void bench_test_name(bench_e2e_test t, char *buf, size_t n);

/* `slm bench -m`: each model (loaded once) x thread count x test, one warm-up and `reps` timed
 * runs each, one row per test with llama-bench's fields (build_commit, cpu_info, kernel,
 * model_*, n_*, test, avg/stddev ns and t/s, samples, load_ms, peak_rss_kb). fmt: "md" (the
 * table, then "build: ...; cpu: ..."), "csv", "sql", "jsonl" (a row as it is measured), "json"
 * (one array at the end), "svg" (t/s bars at the end). */
typedef struct bench_models_opts {
    const char *const *models;
    int n_models;
    const bench_e2e_test *tests;
    int n_tests;
    const int *threads;
    int n_threads;
    int reps;
    const char *fmt;
    const char *build;       /* the rows' build_commit */
    bench_emit_fn emit;
    /* before each test (may be NULL): the model, thread count, test name and runs */
    void (*start)(void *user, const char *model, int n_threads, const char *test, int reps);
    void *user;
} bench_models_opts;
int bench_models_run(const bench_models_opts *o, slm_err *err) SLM_MUST_CHECK;

/* `slm bench kernels`' lists: types (names; those slm_matmul runs), kernel sets (labels as
 * bench_kernel_label; NULL: every set the CPU runs, then blas), shapes "RxC,..." (NULL: not
 * parsed). SLM_EUSAGE with a message naming the option (--types, --kernel, --shapes). */
enum { BENCH_MAX_TYPES = 32, BENCH_MAX_SHAPES = 16 };
typedef struct bench_kernels_spec {
    uint32_t types[BENCH_MAX_TYPES];
    int n_types;
    int kernels[SLM_KERNEL_COUNT + 1];
    int n_kernels;
    int64_t shapes[BENCH_MAX_SHAPES][2];
    int n_shapes;
} bench_kernels_spec;
int bench_kernels_parse(const char *types, const char *kernels, const char *shapes, bench_kernels_spec *out,
                        slm_err *err) SLM_MUST_CHECK;
/* The self-check (bench_kernels_check) of each of the spec's sets but scalar and blas: failures
 * (every check when verbose), a count per set, then "N passed, N failed". *n_fail: failures. */
int bench_kernels_selfcheck(const bench_kernels_spec *s, int verbose, bench_emit_fn emit, void *user, int *n_fail,
                            slm_err *err) SLM_MUST_CHECK;
/* The kernel table: the roofline, then every shape x type x op (matvec, matmul of `batch`
 * tokens) x kernel set, timed by bench_kernel_run, as fmt "md" (rows as measured), "csv" or
 * "json" (at the end). */
typedef struct bench_kernels_opts {
    int threads, batch, matvec, matmul;
    double seconds;
    const char *fmt;
    const char *build;       /* build_commit */
} bench_kernels_opts;
int bench_kernels_table(const bench_kernels_spec *s, const bench_kernels_opts *o, bench_emit_fn emit, void *user,
                        slm_err *err) SLM_MUST_CHECK;

/* ---- `slm compare`'s rows and report (bench/report.c; also `slm sweep merge`) ----------
 * A row is a cJSON object: "type" ("base" or the recipe), "path", "file_bytes" (set by the
 * caller), the quality figures of `slm perplexity --json` (bench_compare_quality: ppl,
 * ppl_stderr, kld_mean, kld_p99, same_top, ppl_ratio) and size and speed
 * (bench_compare_speed: weight_bytes, n_params, bpw, pp_ts, tg_ts; llama-bench's pp/tg
 * tests, 3 repetitions). */
struct cJSON;
void bench_compare_quality(struct cJSON *row, const struct cJSON *perplexity_json);
int bench_compare_speed(const char *path, int n_threads, int pp, int tg, struct cJSON *row, slm_err *err) SLM_MUST_CHECK;
/* The report of rows (base first, then the types in order) as fmt "md" (the table), "csv",
 * "json" (the rows without "key", each with "pareto") or "svg" (quality vs size, Pareto front;
 * svg_title NULL: compare's title). malloc'd; NULL when out of memory. */
char *bench_compare_format(const struct cJSON *rows, const char *fmt, int pp, int tg, const char *svg_title);

#endif /* SLM_BENCH_H */
