/* tools/imatrix.c — `slm imatrix`: the importance matrix of a model over a
 * calibration text, in llama-imatrix's GGUF format. Also the calibration text
 * helpers (tools/calib.h) that `slm quantize --gptq` shares. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "pipeline.h"
#include "cli.h"

#define C "imatrix"

typedef struct imatrix_args {
    const char *model, *text, *out;
    int n_ctx, n_threads, chunks, pout, json;
} imatrix_args;

static const slm_opt imatrix_opts[] = {
    OPT_PATH('m', "model", imatrix_args, model, "FILE", "GGUF model (required)"),
    OPT_PATH('f', "file", imatrix_args, text, "FILE", "calibration text (required; at least one chunk of tokens)"),
    OPT_PATH('o', "output", imatrix_args, out, "FILE", "imatrix to write (required)"),
    OPT_INT('c', "ctx-size", imatrix_args, n_ctx, "N", 16, 1 << 20, "chunk length in tokens (default 512, at most the model's context)"),
    OPT_INT(0, "chunks", imatrix_args, chunks, "N", 1, 1 << 30, "use at most N chunks (default: all)"),
    OPT_INCLUDE(cli_threads_table, imatrix_args, n_threads),
    OPT_FLAG(0, "process-output", imatrix_args, pout, "also collect output.weight (llama-imatrix's --process-output)"),
    OPT_INCLUDE_AS(cli_json_table, imatrix_args, json, "one JSON object on stdout (entries, chunks, tokens, seconds, tokens_per_second)"),
    OPT_END(),
};

const slm_cmd_doc doc_imatrix = {
    .usage =
        "slm imatrix -m MODEL.gguf -f CALIB.txt -o IMATRIX.gguf [-c N] [--chunks N] [-t N]\n"
        "            [--process-output] [--json]",
    .description =
        "Run the model over a calibration text and record, for every weight matrix of the\n"
        "blocks (blk.*), the per-input-column sum of squared activations and the number of\n"
        "tokens: llama.cpp's importance matrix, written in llama-imatrix's GGUF format\n"
        "(<name>.in_sum2, <name>.counts, imatrix.datasets, imatrix.chunk_count,\n"
        "imatrix.chunk_size), so `llama-quantize --imatrix` reads it and `slm quantize\n"
        "--imatrix` reads llama-imatrix's files (GGUF or legacy .dat). The text is tokenized\n"
        "once and cut into chunks of N tokens, each starting with BOS, as llama-imatrix does.\n"
        "Deterministic: the same model and text give the same bytes.\n",
    .opts = imatrix_opts,
    .exit_codes =
        "0 ok, 2 usage, 3 bad input (text shorter than one chunk, -c too large),\n"
        "4 I/O error, 6 internal error",
};

int cmd_imatrix(int argc, char **argv)
{
    imatrix_args a = {.n_ctx = 512, .n_threads = cli_default_threads()};
    int ai = slm_opt_parse(C, imatrix_opts, argc, argv, &a);
    if (ai < 0)
        return -ai;
    const char *model_path = a.model, *text_path = a.text, *out_path = a.out;
    long long n_ctx = a.n_ctx, n_threads = a.n_threads, max_chunks = a.chunks;
    int json = a.json, pout = a.pout;
    if (ai < argc) return cli_usage(C, "unexpected argument '%s'", argv[ai]);
    if (!model_path || !text_path || !out_path)
        return cli_usage(C, "a model (-m), a calibration text (-f) and an output file (-o) are required");

    slm_err err = {0};
    slm_pl_imatrix_info info;
    cli_progress bar = {.label = C};
    double t0 = cli_now();
    int rc = slm_pl_imatrix(model_path, text_path, out_path, (int)n_ctx, (int)n_threads, (int)max_chunks, pout,
                            cli_progress_phase, &bar, &info, &err);
    if (rc)
        return cli_fail_err(C, &err);
    const double secs = cli_now() - t0;
    const double tps = info.run_secs > 0 ? (double)info.chunks * n_ctx / info.run_secs : 0;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "output", out_path);
        cJSON_AddNumberToObject(j, "entries", (double)info.entries);
        cJSON_AddNumberToObject(j, "chunks", info.chunks);
        cJSON_AddNumberToObject(j, "chunk_size", (double)n_ctx);
        cJSON_AddNumberToObject(j, "tokens", (double)info.chunks * n_ctx);
        cJSON_AddNumberToObject(j, "seconds", secs);
        cJSON_AddNumberToObject(j, "tokens_per_second", tps);
        char *s = cJSON_PrintUnformatted(j);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(j);
    } else {
        printf("%s: %zu entries from %d chunks of %lld tokens (%.0f tokens/s), %.2f s\n", out_path, info.entries, info.chunks,
               n_ctx, tps, secs);
    }
    return 0;
}
