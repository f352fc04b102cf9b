/* tools/imatrix.c — `slm imatrix`: the importance matrix of a model over a
 * calibration text, in llama-imatrix's GGUF format. Also the calibration text
 * helpers (tools/calib.h) that `slm quantize --gptq` shares. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "calib.h"
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

/* ---- the collector ------------------------------------------------------------------ */

typedef struct {
    const gguf_tensor *w;
    double *sum2;
    int64_t count;
} acc_t;

typedef struct {
    acc_t *a;
    size_t n;
    int process_output;
    int fail;
} collector;

static const gguf_tensor *observe(void *user, const gguf_tensor *W, const float *x, int n_tokens)
{
    collector *c = user;
    /* llama-imatrix skips products of fewer than 16 tokens (generation steps) */
    if (n_tokens < 16) return NULL;
    if (strncmp(W->name, "blk.", 4) && !(c->process_output && !strcmp(W->name, "output.weight"))) return NULL;
    acc_t *a = NULL;
    for (size_t i = 0; i < c->n; i++)
        if (c->a[i].w == W) { a = &c->a[i]; break; }
    if (!a) {
        acc_t *na = realloc(c->a, sizeof *na * (c->n + 1));
        if (!na) { c->fail = 1; return NULL; }
        c->a = na;
        a = &c->a[c->n];
        *a = (acc_t){ W, calloc((size_t)W->ne[0], sizeof(double)), 0 };
        if (!a->sum2) { c->fail = 1; return NULL; }
        c->n++;
    }
    slm_imatrix_accumulate(a->sum2, x, n_tokens, W->ne[0]);
    a->count += n_tokens;
    return NULL;
}

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
    int rc;
    slm_model *m = NULL;
    slm_tokenizer *tok = NULL;
    slm_ctx *ctx = NULL;
    calib_text ct = {0};
    collector col = {0};
    slm_imatrix im = {0};
    col.process_output = pout;
    double t0 = cli_now();
    if ((rc = slm_model_load(model_path, &m, &err)) || (rc = slm_tokenizer_from_gguf(slm_model_gguf(m), &tok, &err)))
        goto fail;
    if ((rc = calib_prepare(text_path, m, tok, (int)n_ctx, (int)max_chunks, &ct, &err))) goto fail;
    if ((rc = slm_ctx_new(m, (int)n_ctx, (int)n_ctx, (int)n_threads, &ctx, &err))) goto fail;
    slm_ctx_set_observer(ctx, observe, &col);
    cli_progress bar;
    cli_progress_start(&bar, C, (uint64_t)ct.n_chunks);
    double t1 = cli_now();
    for (int i = 0; i < ct.n_chunks; i++) {
        if ((rc = calib_run_chunk(ctx, &ct, i, pout, &err))) { cli_progress_end(&bar); goto fail; }
        if (col.fail) { cli_progress_end(&bar); rc = slm_err_set(&err, SLM_EINTERNAL, "out of memory"); goto fail; }
        cli_progress_update(&bar, (uint64_t)i + 1);
    }
    cli_progress_end(&bar);
    const double run_secs = cli_now() - t1;

    /* to the file format: raw sums and counts as float */
    im.e = calloc(col.n ? col.n : 1, sizeof *im.e);
    char *ds[1] = { (char *)text_path };
    im.datasets = ds;
    im.n_datasets = 1;
    im.chunk_count = (uint32_t)ct.n_chunks;
    im.chunk_size = (uint32_t)n_ctx;
    if (!im.e) { rc = slm_err_set(&err, SLM_EINTERNAL, "out of memory"); goto fail; }
    for (size_t i = 0; i < col.n; i++) {
        slm_imatrix_entry *e = &im.e[im.n++];
        const int64_t n = col.a[i].w->ne[0];
        e->name = col.a[i].w->name;
        e->n = n;
        e->n_mat = 1;
        e->sum2 = malloc(sizeof(float) * (size_t)n);
        e->counts = malloc(sizeof(float));
        if (!e->sum2 || !e->counts) { rc = slm_err_set(&err, SLM_EINTERNAL, "out of memory"); break; }
        for (int64_t k = 0; k < n; k++) e->sum2[k] = (float)col.a[i].sum2[k];
        e->counts[0] = (float)col.a[i].count;
    }
    if (!rc) rc = slm_imatrix_write(out_path, &im, &err);
    for (size_t i = 0; i < im.n; i++) { free(im.e[i].sum2); free(im.e[i].counts); }
    free(im.e);
    if (rc) goto fail;
    const double secs = cli_now() - t0;
    const double tps = run_secs > 0 ? (double)ct.n_chunks * n_ctx / run_secs : 0;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "output", out_path);
        cJSON_AddNumberToObject(j, "entries", (double)col.n);
        cJSON_AddNumberToObject(j, "chunks", ct.n_chunks);
        cJSON_AddNumberToObject(j, "chunk_size", (double)n_ctx);
        cJSON_AddNumberToObject(j, "tokens", (double)ct.n_chunks * n_ctx);
        cJSON_AddNumberToObject(j, "seconds", secs);
        cJSON_AddNumberToObject(j, "tokens_per_second", tps);
        char *s = cJSON_PrintUnformatted(j);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(j);
    } else {
        printf("%s: %zu entries from %d chunks of %lld tokens (%.0f tokens/s), %.2f s\n", out_path, col.n, ct.n_chunks,
               n_ctx, tps, secs);
    }
    rc = 0;
    goto done;
fail:
    cli_fail_err(C, &err);
done:
    for (size_t i = 0; i < col.n; i++) free(col.a[i].sum2);
    free(col.a);
    calib_free(&ct);
    slm_ctx_free(ctx);
    slm_tokenizer_free(tok);
    slm_model_free(m);
    return rc;
}
