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

