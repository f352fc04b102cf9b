/* runtime/perplexity.c — perplexity exactly as llama.cpp's llama-perplexity
 * computes it (tools/perplexity/perplexity.cpp, default mode):
 *   - the whole text is tokenized once, BOS first when the model adds BOS;
 *   - it needs at least 2 * n_ctx tokens; n_chunks = n_tokens / n_ctx
 *     non-overlapping chunks of n_ctx tokens, each evaluated from an empty cache;
 *   - the first token of each chunk is replaced by BOS when the model adds BOS;
 *   - only the second half is scored: the logits at positions
 *     first = n_ctx/2 .. n_ctx-2 predict the next token;
 *   - nll per token = log(sum exp(l - max)) - (l[tok] - max) with a double sum,
 *     PPL = exp(mean nll), its standard error = ppl * sqrt((E[nll^2] - E[nll]^2) / (count - 1)).
 * KL-divergence mode (kld.c) shares the chunk loop. */
#include "runtime.h"
#include "rt_kld.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* -log softmax(logits)[tok], llama.cpp's arithmetic */
double slm_nll_of(const float *logits, int n_vocab, int tok)
{
    float mx = logits[0];
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double sum_exp = 0;
    for (int i = 0; i < n_vocab; i++)
        sum_exp += expf(logits[i] - mx);
    return -((double)(logits[tok] - mx) - log(sum_exp));
}

int slm_perplexity(slm_ctx *c, const slm_tokenizer *tok, const char *text, size_t len, const slm_ppl_params *p,
                   slm_ppl_result *res, slm_kld_result *kld, slm_err *err)
{
    memset(res, 0, sizeof *res);
    const int n_ctx = p->n_ctx;
    if (n_ctx < 4)
        return slm_err_set(err, SLM_EINPUT, "perplexity needs a context of at least 4 tokens (got %d)", n_ctx);
    if (n_ctx > slm_ctx_n_ctx(c))
        return slm_err_set(err, SLM_EINPUT, "chunk length %d exceeds the context size %d", n_ctx, slm_ctx_n_ctx(c));
    if (p->kld_base_in && !kld)
        return slm_err_set(err, SLM_EINTERNAL, "KL-divergence requested without a result struct");
    const int add_bos = slm_tokenizer_add_bos(tok);
    const int32_t bos = slm_tokenizer_bos(tok);
    if (add_bos && bos < 0)
        return slm_err_set(err, SLM_EINPUT, "the tokenizer adds BOS but defines no BOS token");
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int rc = slm_tokenize(tok, text, len, add_bos, 0, &ids, &n_ids, err);
    if (rc)
        return rc;
    if (n_ids < 2 * (size_t)n_ctx) {
        free(ids);
        return slm_err_set(err, SLM_EINPUT,
                           "the text tokenizes to only %zu tokens; perplexity with a context of %d needs at least %d",
                           n_ids, n_ctx, 2 * n_ctx);
    }
    int n_chunk = (int)(n_ids / (size_t)n_ctx);
    if (p->n_chunks > 0 && p->n_chunks < n_chunk)
        n_chunk = p->n_chunks;
    const int V = slm_ctx_n_vocab(c);
    const int first = n_ctx / 2, n_scored = n_ctx - 1 - first;
    const int n_batch = slm_ctx_n_batch(c);
    float *lg = malloc(sizeof(float) * (size_t)n_scored * (size_t)V);
    int32_t *chunk = malloc(sizeof(int32_t) * (size_t)n_ctx);
    slm_kld_state *ks = NULL;
    if (!lg || !chunk) {
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
        goto done;
    }
    if (p->kld_base_out || p->kld_base_in) {
        rc = slm_kld_begin(&ks, p, ids, n_ids, n_ctx, n_chunk, V, err);
        if (rc)
            goto done;
    }

    double nll = 0, nll2 = 0;
    int64_t count = 0;
    for (int i = 0; i < n_chunk; i++) {
        const int32_t *src = ids + (size_t)i * n_ctx;
        memcpy(chunk, src, sizeof(int32_t) * (size_t)n_ctx);
        if (add_bos)
            chunk[0] = bos;
        slm_ctx_clear(c);
        for (int b0 = 0; b0 < n_ctx; b0 += n_batch) {
            int nb = n_ctx - b0 < n_batch ? n_ctx - b0 : n_batch;
            if ((rc = slm_decode(c, chunk + b0, nb, 1, err)))
                goto done;
            /* keep the logits of positions first .. n_ctx-2 */
            for (int k = 0; k < nb; k++) {
                int pos = b0 + k;
                if (pos >= first && pos < n_ctx - 1)
                    memcpy(lg + (size_t)(pos - first) * V, slm_ctx_logits(c, k), sizeof(float) * (size_t)V);
            }
        }
        for (int j = 0; j < n_scored; j++) {
            const float *l = lg + (size_t)j * V;
            int next = src[first + j + 1];
            double v = slm_nll_of(l, V, next);
            nll += v;
            nll2 += v * v;
        }
        count += n_scored;
        if (ks && (rc = slm_kld_chunk(ks, lg, src + first, n_scored, err)))
            goto done;
        if (p->progress)
            p->progress(p->user, i + 1, n_chunk, exp(nll / count));
    }
    double mean = nll / count, mean2 = nll2 / count;
    res->ppl = exp(mean);
    res->nll = mean;
    double var = mean2 - mean * mean;
    res->nll_stderr = var > 0 && count > 1 ? sqrt(var / (count - 1)) : 0;
    res->ppl_stderr = res->nll_stderr * res->ppl;
    res->count = count;
    res->chunks = n_chunk;
    res->n_ctx = n_ctx;
    res->n_tokens = (int64_t)n_ids;
    if (ks)
        rc = slm_kld_finish(ks, kld, err);
done:
    slm_kld_free(ks);
    free(lg);
    free(chunk);
    free(ids);
    return rc;
}
