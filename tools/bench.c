/* tools/bench.c — `slm bench`: model speed like llama-bench (`slm bench -m ...`),
 * kernel speed next to the measured roofline (`slm bench kernels`), and seeded
 * random HF models in real shapes (`slm bench synth`). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"
#include "version.h"

#define CMD "bench synth"

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    (void)total;
    cli_progress_update(ctx, done);
}

static const char *dtype_label(uint32_t dt)
{
    return dt == SLM_TYPE_F32 ? "f32" : dt == SLM_TYPE_F16 ? "f16" : "bf16";
}

static void shape_names(char *buf, size_t n)
{
    size_t ns;
    const synth_shape *s = synth_shapes(&ns);
    buf[0] = 0;
    for (size_t i = 0; i < ns; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, "%s%s", i ? ", " : "", s[i].name);
    }
}

/* ---- option tables: `slm bench -m`, `slm bench kernels`, `slm bench synth` ---- */

enum { MAXL = 32 };

typedef struct synth_args {
    const char *shape, *out, *tok_dir;
    uint64_t seed;
    int dtype, threads, force, json;
    int dims[8]; /* layers hidden ff heads kv-heads head-dim window vocab */
} synth_args;

static const char *const synth_dtypes[] = {"f32", "f16", "bf16", NULL};
static const uint32_t synth_dtype_ids[] = {SLM_TYPE_F32, SLM_TYPE_F16, SLM_TYPE_BF16};

#define DIM_OPT(nm, k) OPT_INT(0, nm, synth_args, dims[k], "N", 1, 1 << 24, "")
static const slm_opt synth_table[] = {
    OPT_STRING(0, "shape", synth_args, shape, "NAME",
               "smollm-135m | tinyllama-1.1b | gpt2-124m | llama-3.2-1b | qwen2.5-0.5b |\n"
               "qwen3-0.6b | gemma-3-270m | gemma-3-1b | phi-3-mini"),
    OPT_DIR('o', "output", synth_args, out, "DIR", "output directory (created; must be empty unless --force)"),
    OPT_U64(0, "seed", synth_args, seed, "S", "random seed (default 42); the same seed gives identical files"),
    OPT_ENUM(0, "dtype", synth_args, dtype, "T", synth_dtypes, "f32 | f16 | bf16 (default bf16)"),
    OPT_INCLUDE_AS(cli_threads_table, synth_args, threads, "generator threads (default: all cores); output does not depend on it"),
    OPT_FLAG(0, "force", synth_args, force, "write into a non-empty existing directory"),
    OPT_INCLUDE_AS(cli_json_table, synth_args, json, "print a one-line JSON summary on stdout"),
    OPT_DIR(0, "tokenizer", synth_args, tok_dir, "DIR",
            "copy DIR's real tokenizer.json + tokenizer_config.json instead of the\n"
            "synthetic tokenizer (phi3: a Llama 2 tokenizer gets Phi-3's added tokens)"),
    OPT_INT(0, "layers", synth_args, dims[0], "N", 1, 1 << 24,
            "shrink the shape for tests, keeping the family's features (GQA, tied\n"
            "embeddings; gemma3 keeps >= 2 local layers and a global one); so do:"),
    OPT_INT(0, "hidden", synth_args, dims[1], "N", 1, 1 << 24, "hidden size"),
    OPT_INT(0, "ff", synth_args, dims[2], "N", 1, 1 << 24, "feed-forward size"),
    OPT_INT(0, "heads", synth_args, dims[3], "N", 1, 1 << 24, "attention heads"),
    OPT_INT(0, "kv-heads", synth_args, dims[4], "N", 1, 1 << 24, "key/value heads"),
    OPT_INT(0, "head-dim", synth_args, dims[5], "N", 1, 1 << 24, "head size"),
    OPT_INT(0, "window", synth_args, dims[6], "N", 1, 1 << 24, "sliding window"),
    OPT_INT(0, "vocab", synth_args, dims[7], "N", 1, 1 << 24, "vocabulary size"),
    OPT_END(),
};
#undef DIM_OPT

typedef struct kernels_args {
    const char *types, *shapes, *kern;
    int fmt, threads, batch, no_mv, no_mm, check, verbose;
    double seconds;
} kernels_args;

static const char *const kernels_fmts[] = {"md", "json", "csv", NULL};

static const slm_opt kernels_opts[] = {
    OPT_STRING(0, "types", kernels_args, types, "LIST", "types (default q4_0,q8_0,q4_K,q6_K,q2_K,q3_K,q5_0,f16)"),
    OPT_STRING(0, "shapes", kernels_args, shapes, "RxC,...", "matrix shapes (default 4096x4096)"),
    OPT_STRING(0, "kernel", kernels_args, kern, "LIST",
               "kernel sets: scalar, avx2, avx512, neon, dotprod, i8mm, sve; blas =\n"
               "dequantize + OpenBLAS (default: every set the CPU runs, and blas)"),
    OPT_INT('t', "threads", kernels_args, threads, "N", 1, 1024, "threads (default 1)"),
    OPT_INT('b', "batch", kernels_args, batch, "N", 2, 4096, "tokens of the matrix x matrix test (default 128)"),
    OPT_DOUBLE(0, "seconds", kernels_args, seconds, "S", 0, 600, 0, "time per measurement (default 0.5)"),
    OPT_ENUM('o', "output", kernels_args, fmt, "FMT", kernels_fmts, "md (default) | json | csv"),
    OPT_FLAG(0, "no-matmul", kernels_args, no_mm, "skip matrix x matrix"),
    OPT_FLAG(0, "no-matvec", kernels_args, no_mv, "skip matrix x vector"),
    OPT_FLAG(0, "check", kernels_args, check,
             "no timing; the self-check of each kernel set (--kernel's, default every\n"
             "set the CPU runs) against the scalar set for every type: converters,\n"
             "dequantizers, activation and weight quantizers bit for bit; vec_dot, row,\n"
             "x8, GEMM and F16/BF16 kernels within 1e-5 of the sum of |terms|. Prints\n"
             "failures and 'N passed, N failed'; exit 5 if any failed"),
    OPT_FLAG('v', "verbose", kernels_args, verbose, "(--check) print every check"),
    OPT_END(),
};

typedef struct models_args {
    const char *models[MAXL];
    char *model_buf[MAXL];
    int nm, nbuf, pp[MAXL], np, tg[MAXL], ng, th[MAXL], nth, reps, progress, npg, pp_set, tg_set, fmt;
    cli_cache_opts kv;
    bench_e2e_test pgs[MAXL];
} models_args;

static int parse_int_list(const char *s, long long lo, long long hi, int *out, int cap);

static int opt_models(const char *cmd, const char *v, void *field, void *base)
{
    models_args *a = base;
    (void)field;
    if (a->nbuf >= MAXL || !(a->model_buf[a->nbuf] = strdup(v)))
        return cli_usage(cmd, "too many -m options");
    char *save = NULL;
    for (char *tok = strtok_r(a->model_buf[a->nbuf++], ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (a->nm >= MAXL)
            return cli_usage(cmd, "too many models (at most %d)", MAXL);
        a->models[a->nm++] = tok;
    }
    return 0;
}

static int opt_pp(const char *cmd, const char *v, void *field, void *base)
{
    models_args *a = base;
    (void)field;
    if ((a->np = parse_int_list(v, 0, 1 << 16, a->pp, MAXL)) < 0)
        return cli_usage(cmd, "-p: '%s' is not a list of token counts", v);
    a->pp_set = 1;
    return 0;
}

static int opt_tg(const char *cmd, const char *v, void *field, void *base)
{
    models_args *a = base;
    (void)field;
    if ((a->ng = parse_int_list(v, 0, 1 << 16, a->tg, MAXL)) < 0)
        return cli_usage(cmd, "-n: '%s' is not a list of token counts", v);
    a->tg_set = 1;
    return 0;
}

static int opt_pg(const char *cmd, const char *v, void *field, void *base)
{
    models_args *a = base;
    int two[2];
    (void)field;
    if (a->npg >= MAXL || parse_int_list(v, 0, 1 << 16, two, 2) != 2 || two[0] + two[1] < 1)
        return cli_usage(cmd, "-pg: '%s' is not P,N", v);
    a->pgs[a->npg].n_prompt = two[0];
    a->pgs[a->npg++].n_gen = two[1];
    return 0;
}

static int opt_threads_list(const char *cmd, const char *v, void *field, void *base)
{
    models_args *a = base;
    (void)field;
    if ((a->nth = parse_int_list(v, 1, 1024, a->th, MAXL)) <= 0)
        return cli_usage(cmd, "-t: '%s' is not a list of thread counts (1..1024)", v);
    return 0;
}

static const char *const models_fmts[] = {"md", "json", "jsonl", "csv", "sql", "svg", NULL};

static const slm_opt models_opts[] = {
    OPT_CALLBACK('m', "model", models_args, models, "LIST", opt_models, "GGUF files (comma-separated; -m may repeat)"),
    OPT_CALLBACK('p', "n-prompt", models_args, pp, "LIST", opt_pp, "prompt lengths (pp tests; default 512; 0 = none)"),
    OPT_CALLBACK('n', "n-gen", models_args, tg, "LIST", opt_tg, "generated tokens (tg tests; default 128; 0 = none)"),
    {.kind = SLM_OPT_CALLBACK, .name = "pg", .argname = "P,N", .off = offsetof(models_args, pgs), .cb = opt_pg,
     .flags = SLM_OPT_DASH1, .help = "a prompt of P then N generated tokens (pg test; may repeat)"},
    OPT_CALLBACK(0, "n-prompt-gen", models_args, pgs, "P,N", opt_pg, "the same as -pg"),
    OPT_CALLBACK('t', "threads", models_args, th, "LIST", opt_threads_list, "thread counts (default: physical cores)"),
    OPT_INT('r', "repetitions", models_args, reps, "N", 1, 1000, "timed runs per test (default 5), after one warm-up run"),
    OPT_ENUM('o', "output", models_args, fmt, "FMT", models_fmts, "md (default) | json | jsonl | csv | sql | svg"),
    OPT_FLAG(0, "progress", models_args, progress, "progress lines on stderr"),
    OPT_INCLUDE(cli_cache_table, models_args, kv),
    OPT_END(),
};

/* documentation only: the three tables one after the other */
static const slm_opt bench_doc_opts[] = {
    OPT_GROUP("slm bench -m MODEL.gguf[,MODEL2.gguf...] [options]:"),
    OPT_INCLUDE(models_opts, models_args, models),
    OPT_TEXT("Lists are comma-separated. t/s is the mean over the runs of tokens / second\n"
             "(stddev too), as llama-bench reports it; JSON also has samples_ns, the build\n"
             "commit, CPU, kernel, model type / size / parameters, load time and peak RSS."),
    OPT_GROUP("slm bench kernels [options]:"),
    OPT_TEXT("matrix x vector (decode) and matrix x matrix (-b tokens) per type and kernel\n"
             "set, in GB/s of weights read and GFLOP/s, next to the measured roofline (DRAM\n"
             "read bandwidth, FP32 FMA peak)."),
    OPT_INCLUDE(kernels_opts, kernels_args, types),
    OPT_GROUP("slm bench synth --shape NAME -o DIR [options]:"),
    OPT_INCLUDE(synth_table, synth_args, shape),
    OPT_END(),
};

static const char *const bench_subs[] = {"kernels", "synth", NULL};

const slm_cmd_doc doc_bench = {
    .usage = "slm bench -m MODEL.gguf[,...] [options]     model speed (llama-bench's tests)\n"
             "slm bench kernels [options]                  kernel speed next to the roofline\n"
             "slm bench synth --shape NAME -o DIR          seeded random model directory",
    .opts = bench_doc_opts,
    .notes = "bench synth writes config.json, model.safetensors, tokenizer.json, tokenizer_config.json,\n"
             "special_tokens_map.json and generation_config.json. Weights are N(0, 0.02),\n"
             "norm weights 1 + N(0, 0.01), biases N(0, 0.01); the newer families' shapes are\n"
             "decisive instead (matrices N(0, 1/fan_in), embeddings N(0, 16/hidden), norms\n"
             "1 + N(0, 0.1); docs/bench-synth.md). The tokenizer is synthetic but valid:\n"
             "SentencePiece-style BPE with byte fallback for the Llama, Gemma and Phi shapes,\n"
             "GPT-2 byte-level BPE for gpt2 and Qwen (or --tokenizer).\n",
    .exit_codes = "0 ok, 2 usage (unknown shape, non-empty directory), 4 I/O,\n"
                  "5 (kernels --check) a kernel disagrees with the scalar one, 6 internal.",
    .examples = "slm bench -m smol-q4_0.gguf,smol-q8_0.gguf -p 512 -n 128 -t 1,2\n"
                "slm bench kernels --types q4_K,q8_0 -t 1\n"
                "slm bench synth --shape smollm-135m -o ./smol --dtype f16",
    .subcommands = bench_subs,
};

static int bench_synth(int argc, char **argv)
{
    synth_args a = {.seed = 42, .dtype = 2, .threads = cli_default_threads()};
    int ai = slm_opt_parse(CMD, synth_table, argc, argv, &a);
    if (ai < 0)
        return -ai;
    if (ai < argc)
        return cli_usage(CMD, "unknown argument '%s'", argv[ai]);
    const char *shape_name = a.shape, *out = a.out, *tok_dir = a.tok_dir;
    unsigned long long seed = a.seed;
    uint32_t dtype = synth_dtype_ids[a.dtype];
    int threads = a.threads, force = a.force, json = a.json;
    const int *dims = a.dims;
    char names[512];
    shape_names(names, sizeof names);
    if (!shape_name)
        return cli_usage(CMD, "--shape is required (%s)", names);
    const synth_shape *shape = synth_find_shape(shape_name);
    if (!shape)
        return cli_usage(CMD, "unknown shape '%s' (known: %s)", shape_name, names);
    if (!out)
        return cli_usage(CMD, "-o DIR is required");
    if (tok_dir && dims[7])
        return cli_usage(CMD, "--vocab and --tokenizer exclude each other (the tokenizer sets the vocabulary)");
    synth_shape custom;
    char custom_name[160];
    int shrink = 0;
    for (int k = 0; k < 8; k++)
        shrink |= dims[k] != 0;
    if (shrink) {
        slm_err serr = {0};
        if (synth_shrink(shape, dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6], dims[7], &custom,
                         custom_name, sizeof custom_name, &serr))
            return cli_usage(CMD, "%s", serr.msg);
        shape = &custom;
    }

    synth_opts o = {.seed = seed, .dtype = dtype, .n_threads = threads, .force = force, .tokenizer_dir = tok_dir};
    cli_progress prog;
    cli_progress_start(&prog, "synth", synth_param_count(shape) * (dtype == SLM_TYPE_F32 ? 4 : 2));
    o.progress = on_progress;
    o.progress_ctx = &prog;
    double t0 = cli_now();
    synth_result r;
    slm_err err = {0};
    int rc = synth_write(shape, out, &o, &r, &err);
    cli_progress_end(&prog);
    if (rc) {
        if (rc == SLM_EUSAGE)
            return cli_usage(CMD, "%s", err.msg);
        return cli_fail_err(CMD, &err);
    }
    double secs = cli_now() - t0;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "shape", shape->name);
        cJSON_AddStringToObject(j, "dtype", dtype_label(dtype));
        cJSON_AddNumberToObject(j, "seed", (double)seed);
        cJSON_AddNumberToObject(j, "parameters", (double)r.n_params);
        cJSON_AddNumberToObject(j, "tensors", (double)r.n_tensors);
        cJSON_AddNumberToObject(j, "bytes", (double)r.n_bytes);
        cJSON_AddNumberToObject(j, "seconds", secs);
        cJSON_AddNumberToObject(j, "threads", threads);
        cJSON_AddNumberToObject(j, "peak_rss_kb", (double)cli_peak_rss_kb());
        cJSON_AddStringToObject(j, "path", out);
        char *s = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        if (!s)
            return cli_fail(CMD, SLM_EINTERNAL, "out of memory");
        printf("%s\n", s);
        free(s);
    } else {
        printf("wrote %s: %s, %s, seed %llu, %.1fM parameters, %.1f MB in %.2f s (%.0f MB/s)\n", out,
               shape->name, dtype_label(dtype), seed, r.n_params / 1e6, r.n_bytes / 1e6, secs,
               secs > 0 ? r.n_bytes / 1e6 / secs : 0.0);
    }
    return SLM_OK;
}

typedef struct bench_sub {
    const char *name;
    int (*fn)(int argc, char **argv);
} bench_sub;

static int bench_kernels(int argc, char **argv);
static int bench_models(int argc, char **argv);

static const bench_sub subs[] = {
    {"synth", bench_synth},
    {"kernels", bench_kernels},
};

int cmd_bench(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage("bench", "-m MODEL or a subcommand is required (kernels, synth)");
    if (argv[1][0] == '-')
        return bench_models(argc, argv);
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (!strcmp(argv[1], subs[i].name))
            return subs[i].fn(argc - 1, argv + 1);
    return cli_usage("bench", "unknown subcommand '%s' (kernels, synth; or -m MODEL)", argv[1]);
}

/* ---- shared helpers -------------------------------------------------------------- */

/* Split a comma list of non-negative integers; returns the count or -1. */
static int parse_int_list(const char *s, long long lo, long long hi, int *out, int cap)
{
    int n = 0;
    char buf[512];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long long v;
        if (n >= cap || cli_parse_int(tok, lo, hi, &v))
            return -1;
        out[n++] = (int)v;
    }
    return n;
}

/* bench/'s output pieces go straight to stdout (rows appear as they are measured) */
static void emit_stdout(void *user, const char *text)
{
    (void)user;
    fputs(text, stdout);
    fflush(stdout);
}

/* a library status: usage errors with the usage hint, the rest as one error line */
static int fail_lib(const char *cmd, const slm_err *err)
{
    return err->code == SLM_EUSAGE ? cli_usage(cmd, "%s", err->msg) : cli_fail_err(cmd, err);
}

/* ---- slm bench kernels ---------------------------------------------------------------- */

#undef CMD
#define CMD "bench kernels"

static int bench_kernels(int argc, char **argv)
{
    kernels_args ka = {.types = "q4_0,q8_0,q4_K,q6_K,q2_K,q3_K,q5_0,f16", .shapes = "4096x4096", .threads = 1,
                       .batch = 128, .seconds = 0.5};
    int ai = slm_opt_parse(CMD, kernels_opts, argc, argv, &ka);
    if (ai < 0)
        return -ai;
    if (ai < argc)
        return cli_usage(CMD, "unknown argument '%s'", argv[ai]);
    bench_kernels_spec spec;
    slm_err err = {0};
    /* --check times nothing: --shapes is not read */
    if (bench_kernels_parse(ka.types, ka.kern, ka.check ? NULL : ka.shapes, &spec, &err))
        return fail_lib(CMD, &err);
    if (ka.check) {
        int n_fail = 0;
        if (bench_kernels_selfcheck(&spec, ka.verbose, emit_stdout, NULL, &n_fail, &err))
            return fail_lib(CMD, &err);
        return n_fail ? SLM_EVERIFY : SLM_OK;
    }
    bench_kernels_opts o = {ka.threads, ka.batch, !ka.no_mv, !ka.no_mm, ka.seconds, kernels_fmts[ka.fmt],
                            SLM_GIT_COMMIT};
    return bench_kernels_table(&spec, &o, emit_stdout, NULL, &err) ? fail_lib(CMD, &err) : SLM_OK;
}


/* ---- slm bench -m MODEL ... (llama-bench's tests and output modes) ---------------------- */

#undef CMD
#define CMD "bench"

static void on_test_start(void *user, const char *model, int n_threads, const char *test, int reps)
{
    if (*(const int *)user)
        fprintf(stderr, "bench: %s, %d thread%s, %s (%d runs)\n", model, n_threads, n_threads > 1 ? "s" : "", test,
                reps);
}

static int bench_models(int argc, char **argv)
{
    models_args *ma = calloc(1, sizeof *ma);
    if (!ma)
        return cli_fail(CMD, SLM_EINTERNAL, "out of memory");
    ma->reps = 5;
    int rc = SLM_OK;
    int ai = slm_opt_parse(CMD, models_opts, argc, argv, ma);
    if (ai < 0) {
        rc = -ai;
        goto out;
    }
    if (ai < argc) {
        rc = cli_usage(CMD, "unknown argument '%s'", argv[ai]);
        goto out;
    }
    if (ma->nm == 0) {
        rc = cli_usage(CMD, "-m MODEL.gguf is required");
        goto out;
    }
    if (!ma->pp_set)
        ma->pp[ma->np++] = 512;
    if (!ma->tg_set)
        ma->tg[ma->ng++] = 128;
    if (ma->nth == 0)
        ma->th[ma->nth++] = cli_default_threads();
    /* the tests: each pp, each tg, each pg */
    bench_e2e_test tests[3 * MAXL];
    int ntests = 0;
    for (int k = 0; k < ma->np; k++)
        if (ma->pp[k] > 0)
            tests[ntests++] = (bench_e2e_test){.n_prompt = ma->pp[k]};
    for (int k = 0; k < ma->ng; k++)
        if (ma->tg[k] > 0)
            tests[ntests++] = (bench_e2e_test){.n_gen = ma->tg[k]};
    for (int k = 0; k < ma->npg; k++)
        tests[ntests++] = ma->pgs[k];
    if (ntests == 0) {
        rc = cli_usage(CMD, "no tests (all of -p, -n are 0 and no -pg)");
        goto out;
    }
    for (int k = 0; k < ntests; k++) {
        tests[k].type_k = cli_cache_type(ma->kv.k);
        tests[k].type_v = cli_cache_type(ma->kv.v);
    }
    slm_err err = {0};
    bench_models_opts o = {.models = ma->models, .n_models = ma->nm, .tests = tests, .n_tests = ntests,
                           .threads = ma->th, .n_threads = ma->nth, .reps = ma->reps, .fmt = models_fmts[ma->fmt],
                           .build = SLM_GIT_COMMIT, .emit = emit_stdout, .start = on_test_start,
                           .user = &ma->progress};
    if (bench_models_run(&o, &err))
        rc = fail_lib(CMD, &err);
out:
    for (int k = 0; k < ma->nbuf; k++)
        free(ma->model_buf[k]);
    free(ma);
    return rc;
}
