/* tools/imatrix.c — `slm imatrix`: the importance matrix of a model over a
 * calibration text, in llama-imatrix's GGUF format. Also the calibration text
 * helpers (tools/calib.h) that `slm quantize --gptq` shares. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "pipeline.h"
#include "cli.h"
#include "formats.h"
#include "libquant.h"
#include "runtime.h"

#define C "imatrix"

const char help_imatrix[] =
    "usage: slm imatrix -m MODEL.gguf -f CALIB.txt -o IMATRIX.gguf [-c N] [--chunks N] [-t N]\n"
    "                   [--process-output] [--json]\n"
    "\n"
    "Run the model over a calibration text and record, for every weight matrix of the\n"
    "blocks (blk.*), the per-input-column sum of squared activations and the number of\n"
    "tokens: llama.cpp's importance matrix, written in llama-imatrix's GGUF format\n"
    "(<name>.in_sum2, <name>.counts, imatrix.datasets, imatrix.chunk_count,\n"
    "imatrix.chunk_size), so `llama-quantize --imatrix` reads it and `slm quantize\n"
    "--imatrix` reads llama-imatrix's files (GGUF or legacy .dat). The text is tokenized\n"
    "once and cut into chunks of N tokens, each starting with BOS, as llama-imatrix does.\n"
    "Deterministic: the same model and text give the same bytes.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE      GGUF model (required)\n"
    "  -f, --file FILE       calibration text (required; at least one chunk of tokens)\n"
    "  -o, --output FILE     imatrix to write (required)\n"
    "  -c, --ctx-size N      chunk length in tokens (default 512, at most the model's context)\n"
    "      --chunks N        use at most N chunks (default: all)\n"
    "  -t, --threads N       threads (default: physical cores)\n"
    "      --process-output  also collect output.weight (llama-imatrix's --process-output)\n"
    "      --json            one JSON object on stdout (entries, chunks, tokens, seconds, tokens_per_second)\n"
    "  -h, --help            this help\n"
    "\n"
    "exit codes: 0 ok, 2 usage, 3 bad input (text shorter than one chunk, -c too large),\n"
    "            4 I/O error, 6 internal error\n";

int cmd_imatrix(int argc, char **argv)
{
    enum { O_CHUNKS = 256, O_JSON, O_POUT };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},  {"file", required_argument, 0, 'f'},
        {"output", required_argument, 0, 'o'}, {"ctx-size", required_argument, 0, 'c'},
        {"threads", required_argument, 0, 't'}, {"chunks", required_argument, 0, O_CHUNKS},
        {"json", no_argument, 0, O_JSON},      {"process-output", no_argument, 0, O_POUT},
        {0, 0, 0, 0}};
    const char *model_path = NULL, *text_path = NULL, *out_path = NULL;
    long long n_ctx = 512, n_threads = cli_default_threads(), max_chunks = 0;
    int json = 0, pout = 0, o;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":m:f:o:c:t:", opts, NULL)) != -1) {
        switch (o) {
        case 'm': model_path = optarg; break;
        case 'f': text_path = optarg; break;
        case 'o': out_path = optarg; break;
        case 'c':
            if (cli_parse_int(optarg, 16, 1 << 20, &n_ctx))
                return cli_usage(C, "-c wants a chunk length from 16 to 1048576, got '%s'", optarg);
            break;
        case 't':
            if (cli_parse_int(optarg, 1, 1024, &n_threads))
                return cli_usage(C, "-t wants a thread count in 1..1024, got '%s'", optarg);
            break;
        case O_CHUNKS:
            if (cli_parse_int(optarg, 1, 1 << 30, &max_chunks))
                return cli_usage(C, "--chunks wants a positive count, got '%s'", optarg);
            break;
        case O_JSON: json = 1; break;
        case O_POUT: pout = 1; break;
        case ':': return cli_usage(C, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage(C, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage(C, "unexpected argument '%s'", argv[optind]);
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
