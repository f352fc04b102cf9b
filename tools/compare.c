/* tools/compare.c — `slm compare`: the quantization sweep an ML engineer runs.
 * For each type: quantize, measure file size and bits per weight, perplexity and
 * KL-divergence against the base, prompt and generation speed; then one table and an
 * SVG chart of quality vs size with the Pareto front marked. The resumable step loop is
 * the API layer's (api/compare.c, slm_pl_compare); the speed test and the report writer
 * bench/'s. This file parses options and prints. */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "cli.h"
#include "pipeline.h"

#define CMD "compare"

typedef struct compare_args {
    const char *eval, *types, *imatrix, *dir, *svg;
    int fmt, ctx, chunks, threads, pp, tg;
} compare_args;

static const char *const compare_fmts[] = {"md", "json", "csv", "svg", NULL};

static const slm_opt compare_opts[] = {
    OPT_PATH('f', "file", compare_args, eval, "EVAL.txt", "evaluation text (required)"),
    OPT_STRING(0, "types", compare_args, types, "LIST", "default Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q4_0,Q3_K_M,Q2_K"),
    OPT_PATH(0, "imatrix", compare_args, imatrix, "FILE", "importance matrix passed to slm quantize"),
    OPT_INT('c', "ctx", compare_args, ctx, "N", 8, 1 << 20, "perplexity chunk length (default 128)"),
    OPT_INT(0, "chunks", compare_args, chunks, "N", 1, 1 << 20, "perplexity chunks (default: all)"),
    OPT_INCLUDE(cli_threads_table, compare_args, threads),
    OPT_INT('p', "n-prompt", compare_args, pp, "N", 0, 1 << 16, "speed test: pp N tokens (default 64; 0 skips)"),
    OPT_INT('n', "n-gen", compare_args, tg, "N", 0, 1 << 16, "speed test: tg N tokens (default 32; 0 skips)"),
    OPT_DIR('d', "dir", compare_args, dir, "DIR", "work directory for the files and results (default compare-<model>)"),
    OPT_ENUM('o', "output", compare_args, fmt, "FMT", compare_fmts, "md (default) | json | csv | svg"),
    OPT_PATH(0, "svg", compare_args, svg, "FILE", "also write the chart (quality vs size, Pareto front) to FILE"),
    OPT_END(),
};

const slm_cmd_doc doc_compare = {
    .usage =
        "slm compare MODEL_DIR_OR_GGUF -f EVAL.txt [options]",
    .description =
        "Quantize a model to each type and measure, side by side: file size, bits per weight,\n"
        "perplexity, KL-divergence against the base (mean, 99th percentile, same top token),\n"
        "prompt (pp) and generation (tg) speed. A Hugging Face directory is first converted to\n"
        "an F32 GGUF, which is the base; a GGUF input is the base itself.\n",
    .opts = compare_opts,
    .notes =
        "Quality numbers are deterministic (same input, same numbers); speeds are measured.\n"
        "Rows already in DIR/results.jsonl with the same settings are not measured again.\n",
    .exit_codes =
        "0 ok, 2 usage, 3 bad input, 4 I/O, 6 internal.",
    .examples = "slm compare ./SmolLM-135M -f wiki.test.txt --types Q8_0,Q4_K_M,Q4_0 --svg chart.svg",
};

static void on_step(void *user, const char *msg)
{
    (void)user;
    fprintf(stderr, "compare: %s\n", msg);
}

int cmd_compare(int argc, char **argv)
{
    compare_args a = {.types = "Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q4_0,Q3_K_M,Q2_K", .ctx = 128,
                      .threads = cli_default_threads(), .pp = 64, .tg = 32};
    int ai = slm_opt_parse(CMD, compare_opts, argc, argv, &a);
    if (ai < 0)
        return -ai;
    if (argc - ai > 1)
        return cli_usage(CMD, "unexpected argument '%s' (one model)", argv[ai + 1]);
    const char *model = ai < argc ? argv[ai] : NULL;
    if (!model)
        return cli_usage(CMD, "MODEL_DIR_OR_GGUF is required");
    if (!a.eval)
        return cli_usage(CMD, "-f EVAL.txt is required");
    slm_pl_compare_opts o = {.model = model, .eval = a.eval, .types = a.types, .imatrix = a.imatrix, .dir = a.dir,
                             .ctx = a.ctx, .chunks = a.chunks, .threads = a.threads, .pp = a.pp, .tg = a.tg,
                             .fmt = compare_fmts[a.fmt], .svg_path = a.svg, .speed = bench_compare_speed,
                             .format = bench_compare_format, .step = on_step};
    slm_pl_compare_result r;
    slm_err err = {0};
    if (slm_pl_compare(&o, &r, &err))
        return err.code == SLM_EUSAGE ? cli_usage(CMD, "%s", err.msg) : cli_fail_err(CMD, &err);
    fputs(r.report, stdout);
    if (!strcmp(o.fmt, "md"))
        printf("\nbase: %s; eval: %s, -c %d%s; files and results.jsonl in %s\n", r.base, a.eval, a.ctx,
               a.chunks ? ", chunks limited" : "", r.dir);
    slm_pl_compare_result_free(&r);
    return SLM_OK;
}
