/* tools/imatrix.c — `slm imatrix`: the importance matrix of a model over a
 * calibration text, in llama-imatrix's GGUF format. Also the calibration text
 * helpers (tools/calib.h) that `slm quantize --gptq` shares. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "calib.h"
#include "cli.h"
#include "formats.h"
#include "libquant.h"
#include "runtime.h"

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

/* ---- calibration text (tools/calib.h) ------------------------------------------- */

char *calib_read_file(const char *path, size_t *n, slm_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        slm_err_set(err, SLM_EIO, "%s: cannot open the text file", path);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0, r;
    char *b = malloc(cap + 1);
    while (b && (r = fread(b + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) {
            char *nb = realloc(b, cap * 2 + 1);
            if (!nb) { free(b); b = NULL; break; }
            b = nb;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!b) { slm_err_set(err, SLM_EINTERNAL, "out of memory reading %s", path); return NULL; }
    if (bad) { free(b); slm_err_set(err, SLM_EIO, "%s: read error", path); return NULL; }
    b[len] = 0;
    *n = len;
    return b;
}

int calib_prepare(const char *path, const slm_model *m, const slm_tokenizer *tok, int n_ctx, int max_chunks,
                  calib_text *ct, slm_err *err)
{
    memset(ct, 0, sizeof *ct);
    const slm_hparams *hp = slm_model_hparams(m);
    if (n_ctx > hp->n_ctx_train)
        return slm_err_set(err, SLM_EINPUT, "-c %d exceeds the model's context length %d", n_ctx, hp->n_ctx_train);
    size_t len;
    char *text = calib_read_file(path, &len, err);
    if (!text) return err->code;
    ct->add_bos = slm_tokenizer_add_bos(tok);
    ct->bos = slm_tokenizer_bos(tok);
    if (ct->add_bos && ct->bos < 0) {
        free(text);
        return slm_err_set(err, SLM_EINPUT, "the tokenizer adds BOS but defines no BOS token");
    }
    int rc = slm_tokenize(tok, text, len, ct->add_bos, 0, &ct->tokens, &ct->n_tokens, err);
    free(text);
    if (rc) return rc;
    ct->n_ctx = n_ctx;
    size_t nc = ct->n_tokens / (size_t)n_ctx;
    if (nc == 0) {
        calib_free(ct);
        return slm_err_set(err, SLM_EINPUT,
                           "%s: the calibration text has %zu tokens, fewer than one chunk of %d (-c): give more text "
                           "or a smaller -c",
                           path, ct->n_tokens, n_ctx);
    }
    if (max_chunks > 0 && nc > (size_t)max_chunks) nc = (size_t)max_chunks;
    if (nc > (1u << 30)) nc = 1u << 30;
    ct->n_chunks = (int)nc;
    return SLM_OK;
}

void calib_free(calib_text *ct)
{
    free(ct->tokens);
    memset(ct, 0, sizeof *ct);
}

int calib_run_chunk(slm_ctx *ctx, const calib_text *ct, int i, int all_logits, slm_err *err)
{
    int32_t *chunk = ct->tokens + (size_t)i * ct->n_ctx;
    int32_t saved = chunk[0];
    if (ct->add_bos) chunk[0] = ct->bos;
    slm_ctx_clear(ctx);
    int rc = slm_decode(ctx, chunk, ct->n_ctx, all_logits, err);
    chunk[0] = saved;
    return rc;
}

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
