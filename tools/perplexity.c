/* tools/perplexity.c — `slm perplexity`: llama.cpp's perplexity and KL-divergence. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "pipeline.h"

typedef struct perplexity_args {
    const char *model, *text, *kld_base;
    int n_ctx, n_batch, n_threads, n_chunks, json, kld;
    cli_cache_opts kv;
} perplexity_args;

static const slm_opt perplexity_opts[] = {
    OPT_PATH('m', "model", perplexity_args, model, "FILE", "GGUF model (required)"),
    OPT_PATH('f', "file", perplexity_args, text, "FILE", "text to score (required)"),
    OPT_INT('c', "ctx-size", perplexity_args, n_ctx, "N", 4, 1 << 24, "chunk length in tokens (default 512, at most the model's context)"),
    OPT_INT(0, "chunks", perplexity_args, n_chunks, "N", 1, 1 << 30, "score at most N chunks (default: all)"),
    OPT_INT('b', "batch-size", perplexity_args, n_batch, "N", 1, 1 << 24, "tokens per forward call (default: N of -c)"),
    OPT_INCLUDE(cli_threads_table, perplexity_args, n_threads),
    OPT_INCLUDE(cli_cache_table, perplexity_args, kv),
    OPT_INCLUDE_AS(cli_json_table, perplexity_args, json,
                   "print one JSON object on stdout: ppl, ppl_stderr, tokens, chunks,\n"
                   "n_ctx, seconds (and a \"kld\" object when comparing)"),
    OPT_GROUP("KL-divergence (against a base model, usually the F32 one):"),
    OPT_PATH(0, "kl-divergence-base", perplexity_args, kld_base, "FILE",
             "alone: run the base model and save its log-probabilities\n"
             "(llama.cpp's file format, interchangeable with it)"),
    OPT_FLAG(0, "kl-divergence", perplexity_args, kld,
             "with --kl-divergence-base: compare this model with the saved base:\n"
             "PPL ratio, delta PPL, mean/median/99%/max KLD, RMS delta p, same top\n"
             "token. A base file made from other text, another -c, --chunks or\n"
             "vocabulary is refused."),
    OPT_END(),
};

const slm_cmd_doc doc_perplexity = {
    .usage =
        "slm perplexity -m MODEL.gguf -f TEXT [-c N] [--chunks N] [-b N] [-t N] [--json]\n"
        "slm perplexity -m MODEL.gguf -f TEXT [-c N] --kl-divergence-base BASE [--kl-divergence]",
    .description =
        "Perplexity computed exactly as llama.cpp's llama-perplexity does: the text is\n"
        "tokenized once (BOS first when the model adds BOS) and cut into non-overlapping\n"
        "chunks of N tokens (the text must hold at least 2N tokens); each chunk is\n"
        "evaluated from an empty cache with its first token replaced by BOS (when the\n"
        "model adds BOS), and only its second half is scored. Prints the running\n"
        "estimate per chunk ([1]x,[2]y,...) on stderr and 'Final estimate: PPL = x +/- y'\n"
        "(standard error) on stdout.\n",
    .opts = perplexity_opts,
    .exit_codes =
        "0 ok, 2 usage, 3 bad input (text too short, -c too large, base mismatch), 4 I/O, 6 internal",
};


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
    const char *C = "perplexity";
    perplexity_args a = {.n_ctx = 512, .n_threads = cli_default_threads()};
    int ai = slm_opt_parse(C, perplexity_opts, argc, argv, &a);
    if (ai < 0)
        return -ai;
    const char *model_path = a.model, *text_path = a.text, *kld_base = a.kld_base;
    long long n_ctx = a.n_ctx, n_batch = a.n_batch, n_threads = a.n_threads, n_chunks = a.n_chunks;
    int json = a.json, kld = a.kld;
    if (ai < argc)
        return cli_usage(C, "unexpected argument '%s'", argv[ai]);
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
    m->type_k = cli_cache_type(a.kv.k);
    m->type_v = cli_cache_type(a.kv.v);
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
        cJSON_AddStringToObject(j, "cache_type_k", slm_pl_kv_type_name(m->type_k));
        cJSON_AddStringToObject(j, "cache_type_v", slm_pl_kv_type_name(m->type_v));
        cJSON_AddNumberToObject(j, "kv_bytes", (double)slm_pl_kv_bytes(m, r.n_ctx));
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
