/* api/lm.c — models in the API layer: open (file, bundle, store), generate, perplexity,
 * as `slm run` and `slm perplexity` run them (the tools call these). */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pipeline.h"
#include "signing.h"

double slm_pl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int slm_pl_model_path(const char *file, const char *bundle, const char *const *trust, int n_trust,
                      const char *store, char *buf, size_t cap, const char **path, int *fd, slm_err *err)
{
    *path = file;
    *fd = -1;
    if (!bundle && !store)
        return SLM_OK;
    /* verify before anything executes; the verified bytes live in a sealed memfd */
    int rc;
    slm_manifest *man = NULL;
    if (bundle) {
        slm_root *root = NULL;
        int64_t now = (int64_t)time(NULL);
        slm_verify_opts vo = {now, SLM_SIGNING_RUNTIME_VERSION, 0, 1};
        rc = slm_trust_chain(trust, n_trust, now, &root, err);
        if (!rc)
            rc = slm_bundle_open_model(bundle, root, &vo, fd, &man, err);
        slm_root_free(root);
    } else {
        rc = slm_store_open_model(store, fd, &man, err);
    }
    slm_manifest_free(man);
    if (rc)
        return rc;
    snprintf(buf, cap, "/proc/self/fd/%d", *fd);
    *path = buf;
    return SLM_OK;
}

int slm_pl_load(const char *path, slm_lm **out, slm_err *err)
{
    *out = NULL;
    slm_lm *m = calloc(1, sizeof *m);
    if (!m)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    m->fd = -1;
    atomic_init(&m->cancel, 0);
    int rc;
    if ((rc = slm_model_load(path, &m->model, err)) ||
        (rc = slm_tokenizer_from_gguf(slm_model_gguf(m->model), &m->tok, err))) {
        slm_lm_close(m);
        return rc;
    }
    const slm_hparams *hp = slm_model_hparams(m->model);
    int nt = slm_tokenizer_n_vocab(m->tok);
    if (nt > hp->n_vocab) {
        rc = slm_err_set(err, SLM_EINPUT, "%s: tokenizer has %d tokens but the embedding only %d rows", path, nt,
                         hp->n_vocab);
        slm_lm_close(m);
        return rc;
    }
    /* embeddings may have padding rows beyond the tokenizer's vocabulary: never sample them */
    m->n_sample = nt < hp->n_vocab ? nt : hp->n_vocab;
    *out = m;
    return SLM_OK;
}

uint64_t slm_pl_kv_bytes(const slm_lm *m, int n_ctx)
{
    return slm_kv_cache_bytes(slm_model_hparams(m->model), n_ctx, m->type_k, m->type_v);
}

int slm_pl_open(const char *path, int n_ctx, int n_batch, int n_threads, uint32_t type_k, uint32_t type_v, slm_lm **out,
                slm_err *err)
{
    int rc = slm_pl_load(path, out, err);
    if (rc)
        return rc;
    slm_lm *m = *out;
    rc = slm_pl_ctx_len(m, n_ctx, &n_ctx, err);
    m->n_threads = n_threads;
    m->type_k = type_k;
    m->type_v = type_v;
    if (!rc)
        rc = slm_ctx_new_kv(m->model, n_ctx, n_batch, n_threads, type_k, type_v, &m->ctx, err);
    if (rc) {
        slm_lm_close(m);
        *out = NULL;
    }
    return rc;
}

int slm_pl_prompt_ids(slm_lm *m, const char *prompt, size_t len, int32_t **ids, size_t *n_ids, slm_err *err)
{
    *ids = NULL;
    *n_ids = 0;
    return slm_tokenize_prompt(m->tok, prompt, len, slm_tokenizer_add_bos(m->tok), 0, ids, n_ids, err);
}

int slm_pl_sample_loop(slm_lm *m, slm_sampler *smp, slm_chat *conv, slm_pl_gen *g, slm_pl_token_fn fn, void *user,
                       slm_err *err)
{
    char piece[256];
    while (g->generated < g->max_tokens) {
        const float *logits = slm_ctx_logits(m->ctx, 0);
        int32_t next = slm_sampler_sample(smp, logits);
        if (slm_tokenizer_is_eog(m->tok, next)) {
            g->stop = SLM_STOP_EOG;
            break;
        }
        g->generated++;
        size_t pn = slm_token_to_piece(m->tok, next, 0, piece, sizeof piece);
        char *big = NULL;
        const char *pp = piece;
        if (pn > sizeof piece) {
            if (!(big = malloc(pn)))
                return slm_err_set(err, SLM_EINTERNAL, "out of memory");
            slm_token_to_piece(m->tok, next, 0, big, pn);
            pp = big;
        }
        int stop = fn ? fn(user, pp, pn, next, logits) : 0;
        free(big);
        if (stop || atomic_load(&m->cancel)) {
            g->stop = SLM_STOP_CANCEL;
            break;
        }
        if (g->generated == g->max_tokens)
            break;
        if (slm_ctx_n_past(m->ctx) >= slm_ctx_n_ctx(m->ctx)) {
            g->stop = SLM_STOP_CONTEXT;
            break;
        }
        int rc = slm_decode(m->ctx, &next, 1, 0, err);
        if (rc)
            return rc;
        g->n_eval++;
        if (conv && slm_chat_push(conv, next))
            return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    return SLM_OK;
}

int slm_pl_generate(slm_lm *m, slm_pl_gen *g, slm_pl_token_fn fn, void *user, slm_err *err)
{
    int rc = SLM_OK;
    slm_sampler *smp = NULL;
    slm_chat *conv = NULL;
    g->prompt_tokens = g->generated = g->n_eval = 0;
    g->stop = SLM_STOP_LENGTH;
    g->t_setup = g->t_prompt = g->t_gen = 0;
    atomic_store(&m->cancel, 0);
    slm_ctx_clear(m->ctx);
    double t0 = slm_pl_now();
    if (!g->msgs && g->n_ids > (size_t)slm_ctx_n_ctx(m->ctx))
        return slm_err_set(err, SLM_EINPUT, "the prompt has %zu tokens, more than the context length %d (use -c)",
                           g->n_ids, slm_ctx_n_ctx(m->ctx));
    if (!(smp = slm_sampler_new(&g->sp, m->n_sample)))
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    for (size_t i = 0; !g->msgs && i < g->n_ids; i++)
        slm_sampler_accept(smp, g->ids[i]);
    if (g->msgs) {
        if ((rc = slm_chat_new(m->model, m->tok, m->ctx, g->chat_template, &conv, err)))
            goto done;
        for (size_t i = 0; i < g->n_msgs && !rc; i++)
            rc = slm_chat_add(conv, g->msgs[i].role, g->msgs[i].content, g->msgs[i].content_len, err);
        if (rc)
            goto done;
    }
    g->t_setup = slm_pl_now() - t0;

    double t1 = slm_pl_now();
    if (g->msgs) {
        int np = 0;
        if ((rc = slm_chat_prefill(conv, &np, NULL, err)))
            goto done;
        g->prompt_tokens = np;
    } else {
        if ((rc = slm_decode(m->ctx, g->ids, (int)g->n_ids, 0, err)))
            goto done;
        g->prompt_tokens = (int)g->n_ids;
    }
    g->t_prompt = slm_pl_now() - t1;

    double t2 = slm_pl_now();
    rc = slm_pl_sample_loop(m, smp, NULL, g, fn, user, err);
    g->t_gen = slm_pl_now() - t2;
done:
    slm_chat_free(conv);
    slm_sampler_free(smp);
    return rc;
}

int slm_pl_perplexity(slm_lm *m, const char *text, size_t len, const slm_ppl_params *p, int n_batch,
                      slm_ppl_result *res, slm_kld_result *kld, slm_err *err)
{
    slm_ctx *ctx = m->ctx, *own = NULL;
    const slm_hparams *hp = slm_model_hparams(m->model);
    if (p->n_ctx > hp->n_ctx_train)
        return slm_err_set(err, SLM_EINPUT, "-c %d exceeds the model's context length %d", p->n_ctx,
                           hp->n_ctx_train);
    if (!ctx || slm_ctx_n_ctx(ctx) < p->n_ctx) {
        if (n_batch <= 0 || n_batch > p->n_ctx)
            n_batch = p->n_ctx;
        int rc = slm_ctx_new_kv(m->model, p->n_ctx, n_batch, m->n_threads > 0 ? m->n_threads : 1, m->type_k,
                                m->type_v, &own, err);
        if (rc)
            return rc;
        ctx = own;
    } else {
        slm_ctx_clear(ctx);
    }
    int rc = slm_perplexity(ctx, m->tok, text, len, p, res, kld, err);
    slm_ctx_free(own);
    return rc;
}

void slm_lm_close(slm_lm *m)
{
    if (!m)
        return;
    slm_ctx_free(m->ctx);
    slm_tokenizer_free(m->tok);
    slm_model_free(m->model);
    if (m->fd >= 0)
        close(m->fd);
    free(m);
}
