/* tools/perplexity.c — `slm perplexity`: llama.cpp's perplexity and KL-divergence. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "pipeline.h"

const char help_perplexity[] =
    "usage: slm perplexity -m MODEL.gguf -f TEXT [-c N] [--chunks N] [-b N] [-t N] [--json]\n"
    "       slm perplexity -m MODEL.gguf -f TEXT [-c N] --kl-divergence-base BASE [--kl-divergence]\n"
    "\n"
    "Perplexity computed exactly as llama.cpp's llama-perplexity does: the text is\n"
    "tokenized once (BOS first when the model adds BOS) and cut into non-overlapping\n"
    "chunks of N tokens (the text must hold at least 2N tokens); each chunk is\n"
    "evaluated from an empty cache with its first token replaced by BOS (when the\n"
    "model adds BOS), and only its second half is scored. Prints the running\n"
    "estimate per chunk ([1]x,[2]y,...) on stderr and 'Final estimate: PPL = x +/- y'\n"
    "(standard error) on stdout.\n"
    "\n"
    "KL-divergence (against a base model, usually the F32 one):\n"
    "  --kl-divergence-base FILE alone   run the base model and save its log-probabilities\n"
    "                                    (llama.cpp's file format, interchangeable with it)\n"
    "  --kl-divergence-base FILE --kl-divergence\n"
    "                                    compare this model with the saved base: PPL ratio,\n"
    "                                    delta PPL, mean/median/99%/max KLD, RMS delta p,\n"
    "                                    same top token. A base file made from other text,\n"
    "                                    another -c, --chunks or vocabulary is refused.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE      GGUF model (required)\n"
    "  -f, --file FILE       text to score (required)\n"
    "  -c, --ctx-size N      chunk length in tokens (default 512, at most the model's context)\n"
    "      --chunks N        score at most N chunks (default: all)\n"
    "  -b, --batch-size N    tokens per forward call (default: N of -c)\n"
    "  -t, --threads N       threads (default: physical cores)\n"
    "      --json            print one JSON object on stdout: ppl, ppl_stderr, tokens, chunks,\n"
    "                        n_ctx, seconds (and a \"kld\" object when comparing)\n"
    "  -h, --help            this help\n"
    "\n"
    "exit codes: 0 ok, 2 usage, 3 bad input (text too short, -c too large, base mismatch), 4 I/O, 6 internal\n";

enum { OPT_CHUNKS = 1000, OPT_JSON, OPT_KLD_BASE, OPT_KLD };

static void progress(void *user, int chunk, int n_chunks, double ppl)
{
    (void)user;
    fprintf(stderr, "[%d]%.4f,", chunk, ppl);
    if (chunk == n_chunks)
        fputc('\n', stderr);
    fflush(stderr);
}

int cmd_perplexity(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},       {"file", required_argument, 0, 'f'},
        {"ctx-size", required_argument, 0, 'c'},    {"batch-size", required_argument, 0, 'b'},
        {"threads", required_argument, 0, 't'},     {"chunks", required_argument, 0, OPT_CHUNKS},
        {"json", no_argument, 0, OPT_JSON},         {"kl-divergence-base", required_argument, 0, OPT_KLD_BASE},
        {"kl-divergence", no_argument, 0, OPT_KLD}, {0, 0, 0, 0},
    };
    const char *C = "perplexity";
    const char *model_path = NULL, *text_path = NULL, *kld_base = NULL;
    long long n_ctx = 512, n_batch = 0, n_threads = cli_default_threads(), n_chunks = 0;
    int json = 0, kld = 0;
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, ":m:f:c:b:t:", opts, NULL)) != -1) {
        switch (o) {
        case 'm': model_path = optarg; break;
        case 'f': text_path = optarg; break;
        case 'c':
            if (cli_parse_int(optarg, 4, 1 << 24, &n_ctx))
                return cli_usage(C, "-c wants a chunk length >= 4, got '%s'", optarg);
            break;
        case 'b':
            if (cli_parse_int(optarg, 1, 1 << 24, &n_batch))
                return cli_usage(C, "-b wants a positive batch size, got '%s'", optarg);
            break;
        case 't':
            if (cli_parse_int(optarg, 1, 1024, &n_threads))
                return cli_usage(C, "-t wants a thread count in 1..1024, got '%s'", optarg);
            break;
        case OPT_CHUNKS:
            if (cli_parse_int(optarg, 1, 1 << 30, &n_chunks))
                return cli_usage(C, "--chunks wants a positive count, got '%s'", optarg);
            break;
        case OPT_JSON: json = 1; break;
        case OPT_KLD_BASE: kld_base = optarg; break;
        case OPT_KLD: kld = 1; break;
        case ':': return cli_usage(C, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage(C, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage(C, "unexpected argument '%s'", argv[optind]);
    if (!model_path || !text_path)
        return cli_usage(C, "both a model (-m) and a text file (-f) are required");
    if (kld && !kld_base)
        return cli_usage(C, "--kl-divergence needs --kl-divergence-base FILE (the saved base log-probabilities)");

    slm_err err = {0};
    int rc;
    size_t len = 0;
    char *text = NULL;
    slm_lm *m = NULL;
    double t0 = cli_now();
    if (!(text = cli_read_file(text_path, (size_t)1 << 30, &len, &err))) {
        rc = err.code;
        goto fail;
    }
    if ((rc = slm_pl_load(model_path, &m, &err)))
        goto fail;
    m->n_threads = (int)n_threads;
    slm_ppl_params pp = {
        .n_ctx = (int)n_ctx, .n_chunks = (int)n_chunks, .progress = progress,
        .kld_base_out = kld_base && !kld ? kld_base : NULL, .kld_base_in = kld ? kld_base : NULL,
    };
    slm_ppl_result r;
    slm_kld_result kr;
    memset(&kr, 0, sizeof kr);
    if ((rc = slm_pl_perplexity(m, text, len, &pp, (int)n_batch, &r, kld ? &kr : NULL, &err)))
        goto fail;
    double secs = cli_now() - t0;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "ppl", r.ppl);
        cJSON_AddNumberToObject(j, "ppl_stderr", r.ppl_stderr);
        cJSON_AddNumberToObject(j, "tokens", (double)r.n_tokens);
        cJSON_AddNumberToObject(j, "scored", (double)r.count);
        cJSON_AddNumberToObject(j, "chunks", r.chunks);
        cJSON_AddNumberToObject(j, "n_ctx", r.n_ctx);
        cJSON_AddNumberToObject(j, "seconds", secs);
        if (kld) {
            cJSON *k = cJSON_AddObjectToObject(j, "kld");
            cJSON_AddNumberToObject(k, "ppl_base", kr.ppl_base);
            cJSON_AddNumberToObject(k, "ppl_ratio", kr.ppl_ratio);
            cJSON_AddNumberToObject(k, "dppl", kr.dppl);
            cJSON_AddNumberToObject(k, "dppl_stderr", kr.dppl_stderr);
            cJSON_AddNumberToObject(k, "mean", kr.kld_mean);
            cJSON_AddNumberToObject(k, "mean_stderr", kr.kld_stderr);
            cJSON_AddNumberToObject(k, "median", kr.kld_median);
            cJSON_AddNumberToObject(k, "p99", kr.kld_p99);
            cJSON_AddNumberToObject(k, "max", kr.kld_max);
            cJSON_AddNumberToObject(k, "rms_dp", kr.rms_dp);
            cJSON_AddNumberToObject(k, "same_top", kr.same_top);
        }
        char *s = cJSON_PrintUnformatted(j);
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(j);
    } else {
        if (kld) {
            printf("Mean PPL(Q)/PPL(base)   : %10.6f\n", kr.ppl_ratio);
            printf("Mean PPL(Q)-PPL(base)   : %10.6f +/- %10.6f  (base %.6f)\n", kr.dppl, kr.dppl_stderr, kr.ppl_base);
            printf("Mean    KLD             : %10.6f +/- %10.6f\n", kr.kld_mean, kr.kld_stderr);
            printf("Median  KLD             : %10.6f\n", kr.kld_median);
            printf("99.0%%   KLD             : %10.6f\n", kr.kld_p99);
            printf("Maximum KLD             : %10.6f\n", kr.kld_max);
            printf("RMS delta p             : %9.3f +/- %.3f %%\n", 100 * kr.rms_dp, 100 * kr.rms_dp_stderr);
            printf("Same top p              : %9.3f +/- %.3f %%\n", 100 * kr.same_top, 100 * kr.same_top_stderr);
        } else if (kld_base) {
            printf("saved base log-probabilities of %lld tokens to %s\n", (long long)r.count, kld_base);
        }
        printf("Final estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_stderr);
        fprintf(stderr, "slm perplexity: %lld tokens, %d chunks of %d, %.2f s\n", (long long)r.n_tokens, r.chunks,
                r.n_ctx, secs);
    }
    rc = 0;
    goto done;
fail:
    cli_fail_err(C, &err);
done:
    slm_lm_close(m);
    free(text);
    return rc;
}
