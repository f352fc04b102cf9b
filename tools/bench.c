/* tools/bench.c — `slm bench`: a small sub-dispatch of benchmark tools.
 * `slm bench synth` writes seeded random HF models in real shapes. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"

const char help_bench[] =
    "usage: slm bench <subcommand> [<args>]\n"
    "\n"
    "Subcommands:\n"
    "  synth    write a Hugging Face model directory with seeded random weights\n"
    "           in the shape of a real model (for speed and memory work)\n"
    "\n"
    "slm bench synth --shape NAME -o DIR [options]\n"
    "  --shape NAME      smollm-135m | tinyllama-1.1b | gpt2-124m\n"
    "  -o, --output DIR  output directory (created; must be empty unless --force)\n"
    "  --seed S          random seed (default 42); the same seed gives identical files\n"
    "  --dtype T         f32 | f16 | bf16 (default bf16)\n"
    "  -t, --threads N   generator threads (default: all cores); output does not depend on it\n"
    "  --force           write into a non-empty existing directory\n"
    "  --json            print a one-line JSON summary on stdout\n"
    "\n"
    "Writes config.json, model.safetensors, tokenizer.json, tokenizer_config.json,\n"
    "special_tokens_map.json and generation_config.json. Weights are N(0, 0.02),\n"
    "norm weights 1 + N(0, 0.01), biases N(0, 0.01). The tokenizer is synthetic\n"
    "but valid: SentencePiece-style BPE with byte fallback for the Llama shapes,\n"
    "GPT-2 byte-level BPE for gpt2-124m.\n"
    "\n"
    "Exit codes: 0 ok, 2 usage (unknown shape, non-empty directory), 4 I/O, 6 internal.\n";

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

/* "--opt value" or "--opt=value"; returns the value or NULL (not this option). */
static const char *opt_value(int argc, char **argv, int *i, const char *lng, const char *shrt, int *missing)
{
    const char *a = argv[*i];
    size_t ll = strlen(lng);
    if (!strncmp(a, lng, ll) && a[ll] == '=')
        return a + ll + 1;
    if (!strcmp(a, lng) || (shrt && !strcmp(a, shrt))) {
        if (*i + 1 >= argc) {
            *missing = 1;
            return NULL;
        }
        return argv[++*i];
    }
    return NULL;
}

static int bench_synth(int argc, char **argv)
{
    const char *shape_name = NULL, *out = NULL;
    unsigned long long seed = 42;
    uint32_t dtype = SLM_TYPE_BF16;
    int threads = cli_default_threads(), force = 0, json = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int missing = 0;
        if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--force")) {
            force = 1;
        } else if ((v = opt_value(argc, argv, &i, "--shape", NULL, &missing))) {
            shape_name = v;
        } else if ((v = opt_value(argc, argv, &i, "--output", "-o", &missing))) {
            out = v;
        } else if ((v = opt_value(argc, argv, &i, "--seed", NULL, &missing))) {
            long long x;
            if (cli_parse_int(v, 0, INT64_MAX, &x))
                return cli_usage(CMD, "--seed: '%s' is not a non-negative integer", v);
            seed = (unsigned long long)x;
        } else if ((v = opt_value(argc, argv, &i, "--dtype", NULL, &missing))) {
            if (!strcmp(v, "f32"))
                dtype = SLM_TYPE_F32;
            else if (!strcmp(v, "f16"))
                dtype = SLM_TYPE_F16;
            else if (!strcmp(v, "bf16"))
                dtype = SLM_TYPE_BF16;
            else
                return cli_usage(CMD, "--dtype: unknown type '%s' (f32, f16 or bf16)", v);
        } else if ((v = opt_value(argc, argv, &i, "--threads", "-t", &missing))) {
            long long x;
            if (cli_parse_int(v, 1, 1024, &x))
                return cli_usage(CMD, "--threads: '%s' is not a thread count (1..1024)", v);
            threads = (int)x;
        } else if (missing) {
            return cli_usage(CMD, "option '%s' needs a value", a);
        } else {
            return cli_usage(CMD, "unknown argument '%s'", a);
        }
    }
    char names[256];
    shape_names(names, sizeof names);
    if (!shape_name)
        return cli_usage(CMD, "--shape is required (%s)", names);
    const synth_shape *shape = synth_find_shape(shape_name);
    if (!shape)
        return cli_usage(CMD, "unknown shape '%s' (known: %s)", shape_name, names);
    if (!out)
        return cli_usage(CMD, "-o DIR is required");

    synth_opts o = {.seed = seed, .dtype = dtype, .n_threads = threads, .force = force};
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

static const bench_sub subs[] = {
    {"synth", bench_synth},
};

int cmd_bench(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage("bench", "a subcommand is required (synth)");
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (!strcmp(argv[1], subs[i].name))
            return subs[i].fn(argc - 1, argv + 1);
    return cli_usage("bench", "unknown subcommand '%s' (synth)", argv[1]);
}
