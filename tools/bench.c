/* tools/bench.c — `slm bench`: model speed like llama-bench (`slm bench -m ...`),
 * kernel speed next to the measured roofline (`slm bench kernels`), and seeded
 * random HF models in real shapes (`slm bench synth`). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>

#include "bench.h"
#include "cli.h"
#include "runtime.h"
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
    bench_e2e_test pgs[MAXL];
    cli_cache_opts kv;
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

static void cpu_name(char *buf, size_t n)
{
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ')
                    c++;
                c[strcspn(c, "\n")] = 0;
                snprintf(buf, n, "%s", c);
            }
            break;
        }
    }
    fclose(f);
}

static int print_json_and_free(cJSON *j, int formatted, const char *cmd)
{
    char *s = formatted ? cJSON_Print(j) : cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s)
        return cli_fail(cmd, SLM_EINTERNAL, "out of memory");
    printf("%s\n", s);
    free(s);
    return SLM_OK;
}

/* ---- slm bench kernels ---------------------------------------------------------------- */

#undef CMD
#define CMD "bench kernels"

static void check_report(void *ctx, int kernel, const char *check, int ok, const char *detail)
{
    int verbose = *(int *)ctx;
    if (!ok || verbose)
        printf("%s %s: %s%s%s\n", ok ? "ok  " : "FAIL", slm_kernel_name(kernel), check, ok ? "" : ": ",
               ok ? "" : detail);
}

/* --check: the self-check of each kernel set (those the CPU runs, or --kernel's) */
static int kernels_check(const int *kernels, int nk, int verbose)
{
    int pass = 0, fail = 0;
    printf("kernel self-check (active set: %s; cpu: %s)\n", slm_kernel_name(slm_kernel_active()), slm_cpu_caps_text());
    for (int i = 0; i < nk; i++) {
        if (kernels[i] == BENCH_KERNEL_BLAS || kernels[i] == SLM_KERNEL_SCALAR)
            continue;
        int p0 = pass, f0 = fail;
        slm_err err = {0};
        if (bench_kernels_check(kernels[i], check_report, &verbose, &pass, &fail, &err))
            return cli_fail_err(CMD, &err);
        if (kernels[i] == SLM_KERNEL_SVE) /* vector-length agnostic: say at which length it ran */
            printf("%s (%d-bit vectors): %d passed, %d failed\n", slm_kernel_name(kernels[i]), slm_sve_bits(), pass - p0,
                   fail - f0);
        else
            printf("%s: %d passed, %d failed\n", slm_kernel_name(kernels[i]), pass - p0, fail - f0);
    }
    printf("%d passed, %d failed\n", pass, fail);
    return fail ? SLM_EVERIFY : SLM_OK;
}

static int bench_kernels(int argc, char **argv)
{
    kernels_args ka = {.types = "q4_0,q8_0,q4_K,q6_K,q2_K,q3_K,q5_0,f16", .shapes = "4096x4096", .threads = 1,
                       .batch = 128, .seconds = 0.5};
    int ai = slm_opt_parse(CMD, kernels_opts, argc, argv, &ka);
    if (ai < 0)
        return -ai;
    if (ai < argc)
        return cli_usage(CMD, "unknown argument '%s'", argv[ai]);
    const char *types_s = ka.types, *shapes_s = ka.shapes, *kern_s = ka.kern, *fmt = kernels_fmts[ka.fmt];
    int threads = ka.threads, batch = ka.batch, do_mv = !ka.no_mv, do_mm = !ka.no_mm, check = ka.check,
        verbose = ka.verbose;
    double seconds = ka.seconds;
    int out_md = !strcmp(fmt, "md"), out_json = !strcmp(fmt, "json"), out_csv = !strcmp(fmt, "csv");
    if (!out_md && !out_json && !out_csv)
        return cli_usage(CMD, "--output: unknown format '%s' (md, json, csv)", fmt);

    uint32_t types[32];
    int nt = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", types_s);
    for (char *sv = NULL, *tok = strtok_r(buf, ",", &sv); tok; tok = strtok_r(NULL, ",", &sv)) {
        uint32_t t = UINT32_MAX;
        for (uint32_t k = 0; k < SLM_TYPE_COUNT; k++)
            if (slm_type_name(k) && !strcasecmp(slm_type_name(k), tok))
                t = k;
        if (t == UINT32_MAX || !slm_matmul_supported(t) || t == SLM_TYPE_Q8_K || t == SLM_TYPE_Q8_1)
            return cli_usage(CMD, "--types: unknown or unsupported type '%s'", tok);
        if (nt >= 32)
            return cli_usage(CMD, "--types: too many types");
        types[nt++] = t;
    }
    int kernels[SLM_KERNEL_COUNT + 1], nk = 0;
    if (!kern_s) {
        for (int k = SLM_KERNEL_SCALAR; k < SLM_KERNEL_COUNT; k++)
            if (slm_cpu_has(k))
                kernels[nk++] = k;
        kernels[nk++] = BENCH_KERNEL_BLAS;
    } else {
        snprintf(buf, sizeof buf, "%s", kern_s);
        for (char *sv = NULL, *tok = strtok_r(buf, ",", &sv); tok; tok = strtok_r(NULL, ",", &sv)) {
            int k = -1;
            for (int c = 0; c <= BENCH_KERNEL_BLAS; c++)
                if (!strcasecmp(tok, bench_kernel_label(c)))
                    k = c;
            if (k < 0)
                return cli_usage(CMD, "--kernel: unknown kernel '%s' (scalar, avx2, avx512, neon, dotprod, i8mm, sve, blas)", tok);
            if (k != BENCH_KERNEL_BLAS && !slm_cpu_has(k))
                return cli_usage(CMD, "--kernel: this CPU has no %s kernel", tok);
            if (nk >= SLM_KERNEL_COUNT + 1)
                return cli_usage(CMD, "--kernel: too many kernels");
            kernels[nk++] = k;
        }
    }
    if (check)
        return kernels_check(kernels, nk, verbose);
    int64_t shapes[16][2];
    int nsh = 0;
    snprintf(buf, sizeof buf, "%s", shapes_s);
    for (char *sv = NULL, *tok = strtok_r(buf, ",", &sv); tok; tok = strtok_r(NULL, ",", &sv)) {
        long long r, c;
        char tail;
        if (nsh >= 16 || sscanf(tok, "%lldx%lld%c", &r, &c, &tail) != 2 || r < 1 || c < 1 || r > (1 << 20) ||
            c > (1 << 20))
            return cli_usage(CMD, "--shapes: '%s' is not ROWSxCOLS", tok);
        shapes[nsh][0] = r;
        shapes[nsh][1] = c;
        nsh++;
    }

    slm_err err = {0};
    bench_roofline roof;
    int rc = bench_roofline_measure(threads, &roof, &err);
    if (rc)
        return cli_fail_err(CMD, &err);
    char cpu[256];
    cpu_name(cpu, sizeof cpu);
    cJSON *jroot = cJSON_CreateObject(), *jres = cJSON_AddArrayToObject(jroot, "results");
    cJSON_AddStringToObject(jroot, "build_commit", SLM_GIT_COMMIT);
    cJSON_AddStringToObject(jroot, "cpu_info", cpu);
    cJSON_AddNumberToObject(jroot, "n_threads", threads);
    cJSON *jr = cJSON_AddObjectToObject(jroot, "roofline");
    cJSON_AddNumberToObject(jr, "read_gbs", roof.read_gbs);
    cJSON_AddNumberToObject(jr, "read_gbs_best", roof.read_gbs_best);
    cJSON_AddNumberToObject(jr, "fma_gflops", roof.fma_gflops);
    cJSON_AddStringToObject(jr, "isa", roof.isa);
    if (out_md) {
        printf("roofline (%d thread%s, %s): DRAM read %.1f GB/s (median step; best %.1f), FP32 FMA peak %.1f "
               "GFLOP/s\n", threads, threads > 1 ? "s" : "", roof.isa, roof.read_gbs, roof.read_gbs_best,
               roof.fma_gflops);
        printf("cpu: %s; build %s\n\n", cpu, SLM_GIT_COMMIT);
        printf("| type | shape | op | kernel | ms | GB/s | %% of DRAM | GFLOP/s | %% of FMA | speed-up vs scalar | "
               "max rel err |\n|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    } else if (out_csv) {
        printf("type,rows,cols,n_tokens,kernel,threads,ms,gbs,pct_dram,gflops,pct_fma,speedup_vs_scalar,"
               "max_rel_err,read_gbs,fma_gflops\n");
    }
    fflush(stdout);
    for (int si = 0; si < nsh; si++)
        for (int ti = 0; ti < nt; ti++)
            for (int op = 0; op < 2; op++) {
                if ((op == 0 && !do_mv) || (op == 1 && !do_mm))
                    continue;
                int ntok = op == 0 ? 1 : batch;
                double scalar_t = 0;
                for (int ki = 0; ki < nk; ki++) {
                    bench_kernel_result r;
                    rc = bench_kernel_run(types[ti], kernels[ki], shapes[si][0], shapes[si][1], ntok, threads,
                                          seconds, &r, &err);
                    if (rc) {
                        cJSON_Delete(jroot);
                        return cli_fail_err(CMD, &err);
                    }
                    if (kernels[ki] == SLM_KERNEL_SCALAR)
                        scalar_t = r.sec_median;
                    double sp = scalar_t > 0 ? scalar_t / r.sec_median : NAN;
                    double pd = 100 * r.gbs / roof.read_gbs, pf = roof.fma_gflops > 0 ? 100 * r.gflops / roof.fma_gflops : NAN;
                    const char *tn = slm_type_name(types[ti]), *kn = bench_kernel_label(kernels[ki]);
                    if (out_md) {
                        printf("| %s | %lldx%lld | %s | %s | %.3f | %.1f | %.0f%% | %.1f | %.0f%% | ", tn,
                               (long long)r.rows, (long long)r.cols, op == 0 ? "matvec" : "matmul", kn,
                               r.sec_median * 1e3, r.gbs, pd, r.gflops, pf);
                        if (isnan(sp))
                            printf("- | %.1e |\n", r.max_rel_err);
                        else
                            printf("%.1fx | %.1e |\n", sp, r.max_rel_err);
                        fflush(stdout);
                    } else if (out_csv) {
                        printf("%s,%lld,%lld,%d,%s,%d,%.6f,%.3f,%.1f,%.3f,%.1f,%.3f,%.3e,%.3f,%.3f\n", tn,
                               (long long)r.rows, (long long)r.cols, ntok, kn, threads, r.sec_median * 1e3, r.gbs, pd,
                               r.gflops, pf, isnan(sp) ? 0.0 : sp, r.max_rel_err, roof.read_gbs, roof.fma_gflops);
                    }
                    cJSON *o = cJSON_CreateObject();
                    cJSON_AddStringToObject(o, "type", tn);
                    cJSON_AddNumberToObject(o, "rows", (double)r.rows);
                    cJSON_AddNumberToObject(o, "cols", (double)r.cols);
                    cJSON_AddNumberToObject(o, "n_tokens", ntok);
                    cJSON_AddStringToObject(o, "op", op == 0 ? "matvec" : "matmul");
                    cJSON_AddStringToObject(o, "kernel", kn);
                    cJSON_AddNumberToObject(o, "ms_median", r.sec_median * 1e3);
                    cJSON_AddNumberToObject(o, "ms_best", r.sec_best * 1e3);
                    cJSON_AddNumberToObject(o, "samples", r.samples);
                    cJSON_AddNumberToObject(o, "weight_bytes", (double)r.weight_bytes);
                    cJSON_AddNumberToObject(o, "gbs", r.gbs);
                    cJSON_AddNumberToObject(o, "gflops", r.gflops);
                    cJSON_AddNumberToObject(o, "pct_dram", pd);
                    if (!isnan(pf))
                        cJSON_AddNumberToObject(o, "pct_fma", pf);
                    if (!isnan(sp))
                        cJSON_AddNumberToObject(o, "speedup_vs_scalar", sp);
                    cJSON_AddNumberToObject(o, "max_rel_err", r.max_rel_err);
                    cJSON_AddItemToArray(jres, o);
                }
            }
    if (out_json)
        return print_json_and_free(jroot, 1, CMD);
    cJSON_Delete(jroot);
    return SLM_OK;
}


/* ---- slm bench -m MODEL ... (llama-bench's tests and output modes) ---------------------- */

#undef CMD
#define CMD "bench"

typedef struct row_out {
    const char *model_path;
    bench_model_info info;
    bench_e2e_result res;
    long peak_rss_kb;
} row_out;

static void test_name(const bench_e2e_test *t, char *buf, size_t n)
{
    if (t->n_prompt > 0 && t->n_gen > 0)
        snprintf(buf, n, "pp%d+tg%d", t->n_prompt, t->n_gen);
    else if (t->n_prompt > 0)
        snprintf(buf, n, "pp%d", t->n_prompt);
    else
        snprintf(buf, n, "tg%d", t->n_gen);
}

static cJSON *row_json(const row_out *r, const char *cpu)
{
    char tn[64];
    test_name(&r->res.test, tn, sizeof tn);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "build_commit", SLM_GIT_COMMIT);
    cJSON_AddStringToObject(o, "cpu_info", cpu);
    cJSON_AddStringToObject(o, "backends", "CPU");
    cJSON_AddStringToObject(o, "kernel", slm_kernel_name(slm_kernel_active()));
    cJSON_AddStringToObject(o, "model_filename", r->model_path);
    cJSON_AddStringToObject(o, "model_type", r->info.type_label);
    cJSON_AddNumberToObject(o, "model_size", (double)r->info.size_bytes);
    cJSON_AddNumberToObject(o, "model_n_params", (double)r->info.n_params);
    cJSON_AddNumberToObject(o, "n_threads", r->res.n_threads);
    cJSON_AddStringToObject(o, "type_k", slm_kv_type_name(r->res.test.type_k));
    cJSON_AddStringToObject(o, "type_v", slm_kv_type_name(r->res.test.type_v));
    cJSON_AddNumberToObject(o, "n_prompt", r->res.test.n_prompt);
    cJSON_AddNumberToObject(o, "n_gen", r->res.test.n_gen);
    cJSON_AddStringToObject(o, "test", tn);
    cJSON_AddNumberToObject(o, "avg_ns", r->res.avg_ns);
    cJSON_AddNumberToObject(o, "stddev_ns", r->res.stddev_ns);
    cJSON_AddNumberToObject(o, "avg_ts", r->res.avg_ts);
    cJSON_AddNumberToObject(o, "stddev_ts", r->res.stddev_ts);
    cJSON *sn = cJSON_AddArrayToObject(o, "samples_ns"), *st = cJSON_AddArrayToObject(o, "samples_ts");
    for (int i = 0; i < r->res.reps; i++) {
        cJSON_AddItemToArray(sn, cJSON_CreateNumber(round(r->res.samples_ns[i])));
        cJSON_AddItemToArray(st, cJSON_CreateNumber((r->res.test.n_prompt + r->res.test.n_gen) * 1e9 /
                                                    r->res.samples_ns[i]));
    }
    cJSON_AddNumberToObject(o, "load_ms", r->info.load_ms);
    cJSON_AddNumberToObject(o, "peak_rss_kb", (double)r->peak_rss_kb);
    return o;
}

static void fmt_size(uint64_t b, char *buf, size_t n)
{
    if (b >= (1ull << 30))
        snprintf(buf, n, "%.2f GiB", b / 1073741824.0);
    else
        snprintf(buf, n, "%.2f MiB", b / 1048576.0);
}

static void print_row(const row_out *r, const char *fmt, const char *cpu, int first)
{
    char tn[64], sz[32];
    test_name(&r->res.test, tn, sizeof tn);
    if (!strcmp(fmt, "md")) {
        /* llama-bench's columns type_k / type_v appear when a cache type is not the default */
        const bench_e2e_test *t = &r->res.test;
        int kv = t->type_k != SLM_TYPE_F32 || t->type_v != SLM_TYPE_F32;
        if (first)
            printf("| model | size | params | backend | kernel | threads |%s test | t/s | load ms | peak RSS MiB |\n"
                   "| --- | ---: | ---: | --- | --- | ---: |%s ---: | ---: | ---: | ---: |\n",
                   kv ? " type_k | type_v |" : "", kv ? " --- | --- |" : "");
        fmt_size(r->info.size_bytes, sz, sizeof sz);
        char kvc[64] = "";
        if (kv)
            snprintf(kvc, sizeof kvc, " %s | %s |", slm_kv_type_name(t->type_k), slm_kv_type_name(t->type_v));
        printf("| %s | %s | %.2f M | CPU | %s | %d |%s %s | %.2f ± %.2f | %.0f | %.1f |\n", r->info.type_label, sz,
               r->info.n_params / 1e6, slm_kernel_name(slm_kernel_active()), r->res.n_threads, kvc, tn, r->res.avg_ts,
               r->res.stddev_ts, r->info.load_ms, r->peak_rss_kb / 1024.0);
    } else if (!strcmp(fmt, "csv")) {
        if (first)
            printf("build_commit,cpu_info,kernel,model_filename,model_type,model_size,model_n_params,n_threads,"
                   "n_prompt,n_gen,test,avg_ns,stddev_ns,avg_ts,stddev_ts,load_ms,peak_rss_kb\n");
        printf("\"%s\",\"%s\",%s,\"%s\",\"%s\",%llu,%llu,%d,%d,%d,%s,%.0f,%.0f,%.6f,%.6f,%.1f,%ld\n", SLM_GIT_COMMIT,
               cpu, slm_kernel_name(slm_kernel_active()), r->model_path, r->info.type_label,
               (unsigned long long)r->info.size_bytes, (unsigned long long)r->info.n_params, r->res.n_threads,
               r->res.test.n_prompt, r->res.test.n_gen, tn, r->res.avg_ns, r->res.stddev_ns, r->res.avg_ts,
               r->res.stddev_ts, r->info.load_ms, r->peak_rss_kb);
    } else if (!strcmp(fmt, "sql")) {
        if (first)
            printf("CREATE TABLE IF NOT EXISTS test (\n  build_commit TEXT, cpu_info TEXT, kernel TEXT, "
                   "model_filename TEXT, model_type TEXT, model_size INTEGER, model_n_params INTEGER,\n"
                   "  n_threads INTEGER, n_prompt INTEGER, n_gen INTEGER, test TEXT, avg_ns INTEGER, stddev_ns "
                   "INTEGER,\n  avg_ts REAL, stddev_ts REAL, load_ms REAL, peak_rss_kb INTEGER\n);\n");
        /* single quotes doubled for SQL strings */
        const char *strs[4] = {cpu, r->model_path, r->info.type_label, SLM_GIT_COMMIT};
        char q[4][600];
        for (int k = 0; k < 4; k++) {
            size_t o = 0;
            for (const char *c = strs[k]; *c && o + 3 < sizeof q[k]; c++) {
                if (*c == '\'')
                    q[k][o++] = '\'';
                q[k][o++] = *c;
            }
            q[k][o] = 0;
        }
        printf("INSERT INTO test (build_commit, cpu_info, kernel, model_filename, model_type, model_size, "
               "model_n_params, n_threads, n_prompt, n_gen, test, avg_ns, stddev_ns, avg_ts, stddev_ts, load_ms, "
               "peak_rss_kb) VALUES ('%s', '%s', '%s', '%s', '%s', %llu, %llu, %d, %d, %d, '%s', %.0f, %.0f, %.6f, "
               "%.6f, %.1f, %ld);\n",
               q[3], q[0], slm_kernel_name(slm_kernel_active()), q[1], q[2], (unsigned long long)r->info.size_bytes,
               (unsigned long long)r->info.n_params, r->res.n_threads, r->res.test.n_prompt, r->res.test.n_gen, tn,
               r->res.avg_ns, r->res.stddev_ns, r->res.avg_ts, r->res.stddev_ts, r->info.load_ms, r->peak_rss_kb);
    } else if (!strcmp(fmt, "jsonl")) {
        cJSON *o = row_json(r, cpu);
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (s)
            printf("%s\n", s);
        free(s);
    }
    fflush(stdout);
}

static int bench_models(int argc, char **argv)
{
    models_args *ma = calloc(1, sizeof *ma);
    if (!ma)
        return cli_fail(CMD, SLM_EINTERNAL, "out of memory");
    ma->reps = 5;
    int rc = SLM_OK;
    int ai = slm_opt_parse(CMD, models_opts, argc, argv, ma);
    const char **models = ma->models, *fmt = models_fmts[ma->fmt];
    char **model_buf = ma->model_buf;
    int nm = ma->nm, *pp = ma->pp, np = ma->np, *tg = ma->tg, ng = ma->ng, *th = ma->th, nth = ma->nth,
        reps = ma->reps, progress = ma->progress, npg = ma->npg, pp_set = ma->pp_set, tg_set = ma->tg_set,
        nbuf = ma->nbuf;
    bench_e2e_test *pgs = ma->pgs;
    if (ai < 0) {
        rc = -ai;
        goto out;
    }
    if (ai < argc) {
        rc = cli_usage(CMD, "unknown argument '%s'", argv[ai]);
        goto out;
    }
    if (nm == 0) {
        rc = cli_usage(CMD, "-m MODEL.gguf is required");
        goto out;
    }
    if (!pp_set)
        pp[np++] = 512;
    if (!tg_set)
        tg[ng++] = 128;
    if (nth == 0)
        th[nth++] = cli_default_threads();
    bench_e2e_test tests[3 * MAXL];
    int ntests = 0;
    for (int k = 0; k < np; k++)
        if (pp[k] > 0)
            tests[ntests++] = (bench_e2e_test){.n_prompt = pp[k]};
    for (int k = 0; k < ng; k++)
        if (tg[k] > 0)
            tests[ntests++] = (bench_e2e_test){.n_gen = tg[k]};
    for (int k = 0; k < npg; k++)
        tests[ntests++] = pgs[k];
    if (ntests == 0) {
        rc = cli_usage(CMD, "no tests (all of -p, -n are 0 and no -pg)");
        goto out;
    }
    for (int k = 0; k < ntests; k++) {
        tests[k].type_k = cli_cache_type(ma->kv.k);
        tests[k].type_v = cli_cache_type(ma->kv.v);
    }

    char cpu[256];
    cpu_name(cpu, sizeof cpu);
    cJSON *jall = cJSON_CreateArray();
    bench_point *bars = calloc((size_t)nm * nth * ntests, sizeof *bars);
    char (*labels)[160] = calloc((size_t)nm * nth * ntests, sizeof *labels);
    int nbars = 0, first = 1;
    if (!jall || !bars || !labels) {
        cJSON_Delete(jall);
        free(bars);
        free(labels);
        rc = cli_fail(CMD, SLM_EINTERNAL, "out of memory");
        goto out;
    }
    for (int mi = 0; mi < nm && rc == SLM_OK; mi++) {
        slm_err err = {0};
        slm_model *m;
        double t0 = cli_now();
        rc = slm_model_load(models[mi], &m, &err);
        if (rc) {
            rc = cli_fail_err(CMD, &err);
            break;
        }
        double load_ms = (cli_now() - t0) * 1e3;
        row_out r = {.model_path = models[mi]};
        bench_model_info_get(m, load_ms, &r.info);
        for (int ti = 0; ti < nth && rc == SLM_OK; ti++)
            for (int k = 0; k < ntests && rc == SLM_OK; k++) {
                char tn[64];
                test_name(&tests[k], tn, sizeof tn);
                if (progress)
                    fprintf(stderr, "bench: %s, %d thread%s, %s (%d runs)\n", models[mi], th[ti], th[ti] > 1 ? "s" : "",
                            tn, reps);
                rc = bench_e2e_run(m, tests[k], th[ti], reps, &r.res, &err);
                if (rc) {
                    rc = cli_fail_err(CMD, &err);
                    break;
                }
                r.peak_rss_kb = cli_peak_rss_kb();
                print_row(&r, fmt, cpu, first);
                first = 0;
                cJSON_AddItemToArray(jall, row_json(&r, cpu));
                snprintf(labels[nbars], sizeof labels[nbars], "%s t%d %s", r.info.ftype, th[ti], tn);
                bars[nbars].label = labels[nbars];
                bars[nbars].y = r.res.avg_ts;
                nbars++;
                bench_e2e_result_free(&r.res);
            }
        slm_model_free(m);
    }
    if (rc == SLM_OK && !strcmp(fmt, "md"))
        printf("\nbuild: %s; cpu: %s\n", SLM_GIT_COMMIT, cpu);
    if (rc == SLM_OK && !strcmp(fmt, "json")) {
        rc = print_json_and_free(jall, 1, CMD);
        jall = NULL;
    } else if (rc == SLM_OK && !strcmp(fmt, "svg")) {
        char *svg = bench_svg_bars("slm bench: tokens per second", "t/s", bars, nbars);
        if (!svg)
            rc = cli_fail(CMD, SLM_EINTERNAL, "out of memory");
        else
            fputs(svg, stdout);
        free(svg);
    }
    cJSON_Delete(jall);
    free(bars);
    free(labels);
out:
    for (int k = 0; k < nbuf; k++)
        free(model_buf[k]);
    free(ma);
    return rc;
}
