/* api/calib.h — calibration text shared by `slm imatrix` and `slm quantize --gptq`:
 * the text tokenized once (BOS first when the model adds one) and cut into chunks of
 * n_ctx tokens whose first token is BOS, exactly as llama-imatrix and llama-perplexity do. */
#ifndef SLM_API_CALIB_H
#define SLM_API_CALIB_H

#include "../runtime/runtime.h"

typedef struct calib_text {
    int32_t *tokens;
    size_t n_tokens;
    int n_ctx, n_chunks, add_bos;
    int32_t bos;
} calib_text;
/* Read and tokenize path; n_chunks = min(tokens / n_ctx, max_chunks (if > 0)).
 * Fails (SLM_EINPUT) when the text holds less than one chunk. */
int calib_prepare(const char *path, const slm_model *m, const slm_tokenizer *tok, int n_ctx, int max_chunks,
                  calib_text *ct, slm_err *err);
void calib_free(calib_text *ct);
/* The start of every self-calibration source: checks n_ctx / n_chunks against the model, sets
 * ct's shape and allocates its tokens; *start = the token each chunk begins with (BOS, else EOS).
 * 0, or SLM_E* with ct freed. */
int calib_self_begin(const slm_model *m, const slm_tokenizer *tok, int n_ctx, int n_chunks, calib_text *ct,
                     int32_t *start, slm_err *err);
/* Self-calibration: n_chunks chunks of n_ctx tokens sampled from the model itself (BOS, then
 * temperature-1 sampling with min-p 0.02, chunk i seeded with seed + i; deterministic). */
int calib_generate(const slm_model *m, const slm_tokenizer *tok, int n_ctx, int n_chunks, uint64_t seed, int threads,
                   calib_text *ct, slm_err *err);
/* Evaluate chunk i from an empty cache (the context's observer sees every product). */
int calib_run_chunk(slm_ctx *ctx, const calib_text *ct, int i, int all_logits, slm_err *err);

/* ---- GPTQ driver (api/gptq.c) ---- */
typedef struct gptq_tensor {
    const gguf_tensor *src;   /* in the input file */
    uint32_t type;            /* target type (a legacy or k-quant type) */
    const float *imp;         /* per-column importance from --imatrix, or NULL */
    unsigned char *out;       /* filled: the quantized bytes (malloc'd) */
} gptq_tensor;
typedef struct gptq_opts {
    const char *calib;        /* calibration text, or NULL: self_chunks chunks sampled from the model */
    int n_ctx, max_chunks, threads, verbose;
    slm_gptq_params p;
    void (*log)(void *user, const char *line); /* with verbose: a progress line per layer */
    void *log_user;
    int self_chunks;          /* with calib NULL: chunks to generate (calib_generate) */
    uint64_t self_seed;
    int self_source;          /* QSAMPLE_* (api/qsample.h): generate (0) or i.i.d. tokens */
} gptq_opts;
/* Quantize ts[] (weights of products: blk.N.* and output.weight) with GPTQ, layer by
 * layer: H of layer N's inputs is accumulated with layers < N already quantized. */
int gptq_run(const char *model_path, const gptq_opts *o, gptq_tensor *ts, size_t nts, slm_err *err);

#endif
