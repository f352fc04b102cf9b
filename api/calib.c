/* api/calib.c — calibration text shared by imatrix and GPTQ (api/calib.h). */
#include <stdlib.h>
#include <string.h>

#include "calib.h"

int calib_prepare(const char *path, const slm_model *m, const slm_tokenizer *tok, int n_ctx, int max_chunks,
                  calib_text *ct, slm_err *err)
{
    memset(ct, 0, sizeof *ct);
    const slm_hparams *hp = slm_model_hparams(m);
    if (n_ctx > hp->n_ctx_train)
        return slm_err_set(err, SLM_EINPUT, "-c %d exceeds the model's context length %d", n_ctx, hp->n_ctx_train);
    size_t len;
    char *text = NULL;
    int rrc = slm_read_text_file(path, (size_t)1 << 30, &text, &len, err);
    if (rrc) return rrc;
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


int calib_self_begin(const slm_model *m, const slm_tokenizer *tok, int n_ctx, int n_chunks, calib_text *ct,
                     int32_t *start, slm_err *err)
{
    memset(ct, 0, sizeof *ct);
    const slm_hparams *hp = slm_model_hparams(m);
    if (n_ctx > hp->n_ctx_train)
        return slm_err_set(err, SLM_EINPUT, "-c %d exceeds the model's context length %d", n_ctx, hp->n_ctx_train);
    if (n_chunks < 1 || n_ctx < 2) return slm_err_set(err, SLM_EUSAGE, "self-calibration needs at least one chunk of 2 tokens");
    ct->add_bos = slm_tokenizer_add_bos(tok);
    ct->bos = slm_tokenizer_bos(tok);
    *start = ct->bos >= 0 ? ct->bos : slm_tokenizer_eos(tok);
    if (*start < 0)
        return slm_err_set(err, SLM_EINPUT, "self-calibration: the tokenizer defines neither BOS nor EOS to start from");
    ct->n_ctx = n_ctx;
    ct->n_chunks = n_chunks;
    ct->n_tokens = (size_t)n_ctx * (size_t)n_chunks;
    ct->tokens = malloc(sizeof(int32_t) * ct->n_tokens);
    if (!ct->tokens) {
        calib_free(ct);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    return SLM_OK;
}

/* Self-calibration: the chunks are sampled from the model itself. Each chunk starts with
 * BOS (when the tokenizer adds one) and continues with tokens drawn at temperature 1
 * (min-p 0.02 drops the noise tail) from the model's own distribution; an end-of-generation
 * token is followed by BOS, as stories are concatenated in training text. Chunk i has its
 * own sampler seeded with seed + i, and slm_decode_multi gives each sequence the logits
 * separate decodes would, so the tokens do not depend on the group size or thread count. */
#define GEN_GROUP 16

int calib_generate(const slm_model *m, const slm_tokenizer *tok, int n_ctx, int n_chunks, uint64_t seed, int threads,
                   calib_text *ct, slm_err *err)
{
    int32_t start;
    int rc = calib_self_begin(m, tok, n_ctx, n_chunks, ct, &start, err);
    if (rc) return rc;
    const slm_hparams *hp = slm_model_hparams(m);
    slm_ctx *work = NULL, *seqs[GEN_GROUP] = {0};
    slm_sampler *smp[GEN_GROUP] = {0};
    const int group = n_chunks < GEN_GROUP ? n_chunks : GEN_GROUP;
    if ((rc = slm_ctx_new(m, n_ctx, group, threads, &work, err))) goto out;
    for (int k = 0; k < group; k++)
        if ((rc = slm_ctx_new(m, n_ctx, 1, 1, &seqs[k], err))) goto out;
    for (int c0 = 0; c0 < n_chunks; c0 += group) {
        const int ng = n_chunks - c0 < group ? n_chunks - c0 : group;
        int32_t cur[GEN_GROUP];
        for (int k = 0; k < ng; k++) {
            slm_sampler_params sp;
            slm_sampler_defaults(&sp);
            sp.temp = 1.0f; sp.top_k = 0; sp.top_p = 1.0f; sp.min_p = 0.02f; sp.repeat_penalty = 1.0f;
            sp.seed = seed + (uint64_t)(c0 + k);
            slm_sampler_free(smp[k]);
            if (!(smp[k] = slm_sampler_new(&sp, hp->n_vocab))) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto out; }
            slm_ctx_clear(seqs[k]);
            cur[k] = start;
            ct->tokens[(size_t)(c0 + k) * n_ctx] = start;
        }
        for (int p = 1; p < n_ctx; p++) {
            if ((rc = slm_decode_multi(work, seqs, cur, ng, err))) goto out;
            for (int k = 0; k < ng; k++) {
                int32_t prev = cur[k];
                cur[k] = ct->bos >= 0 && prev != ct->bos && slm_tokenizer_is_eog(tok, prev)
                             ? ct->bos
                             : slm_sampler_sample(smp[k], slm_ctx_logits(seqs[k], 0));
                ct->tokens[(size_t)(c0 + k) * n_ctx + p] = cur[k];
            }
        }
    }
out:
    for (int k = 0; k < GEN_GROUP; k++) { slm_sampler_free(smp[k]); slm_ctx_free(seqs[k]); }
    slm_ctx_free(work);
    if (rc) calib_free(ct);
    return rc;
}
