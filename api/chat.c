/* api/chat.c — a conversation with a chat model held on one context (what `slm chat` runs):
 * messages in, each reply sampled and streamed through a callback, the KV cache reused from
 * turn to turn (runtime's slm_chat renders and caches; this adds the model and the sampler). */
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

struct slm_pl_chat {
    slm_lm *lm;
    slm_chat *ch;
    slm_sampler *smp;
};

int slm_pl_chat_open(const char *path, int n_ctx, int n_threads, uint32_t type_k, uint32_t type_v,
                     const char *template_name,
                     const slm_sampler_params *sp, const char *system_msg, slm_pl_chat **out, slm_err *err)
{
    *out = NULL;
    slm_pl_chat *c = calloc(1, sizeof *c);
    if (!c)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    int rc = slm_pl_open(path, n_ctx, 0, n_threads, type_k, type_v, &c->lm, err);
    if (!rc)
        rc = slm_chat_new(c->lm->model, c->lm->tok, c->lm->ctx, template_name, &c->ch, err);
    if (!rc && !(c->smp = slm_sampler_new(sp, c->lm->n_sample)))
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    if (!rc && system_msg)
        rc = slm_chat_add(c->ch, "system", system_msg, strlen(system_msg), err);
    if (rc) {
        slm_pl_chat_free(c);
        return rc;
    }
    *out = c;
    return SLM_OK;
}

void slm_pl_chat_free(slm_pl_chat *c)
{
    if (!c)
        return;
    slm_chat_free(c->ch);
    slm_sampler_free(c->smp);
    slm_lm_close(c->lm);
    free(c);
}

int slm_pl_chat_n_ctx(const slm_pl_chat *c) { return slm_ctx_n_ctx(c->lm->ctx); }
int slm_pl_chat_n_vocab(const slm_pl_chat *c) { return c->lm->n_sample; }

int slm_pl_chat_add(slm_pl_chat *c, const char *role, const char *text, size_t len, slm_err *err)
{
    return slm_chat_add(c->ch, role, text, len, err);
}

int slm_pl_chat_count(const slm_pl_chat *c, int *n_prompt, slm_err *err)
{
    return slm_chat_count(c->ch, n_prompt, err);
}

void slm_pl_chat_clear(slm_pl_chat *c)
{
    slm_chat_reset(c->ch);
}

/* The reply's text is collected on the way to the caller's callback. */
typedef struct reply_tee {
    slm_buf text;
    int oom;
    slm_pl_token_fn fn;
    void *user;
} reply_tee;

static int tee_token(void *user, const char *piece, size_t len, int32_t tok, const float *logits)
{
    reply_tee *t = user;
    if (slm_buf_append(&t->text, piece, len))
        return t->oom = 1;
    return t->fn ? t->fn(t->user, piece, len, tok, logits) : 0;
}

int slm_pl_chat_reply(slm_pl_chat *c, int max_tokens, slm_pl_token_fn fn, void *user, slm_pl_turn *t, slm_err *err)
{
    memset(t, 0, sizeof *t);
    int rc = slm_chat_prefill(c->ch, &t->n_prompt, &t->n_reused, err);
    if (rc)
        return rc;
    reply_tee tee = {.fn = fn, .user = user};
    slm_pl_gen g = {.max_tokens = max_tokens, .stop = SLM_STOP_LENGTH};
    atomic_store(&c->lm->cancel, 0);
    rc = slm_pl_sample_loop(c->lm, c->smp, c->ch, &g, tee_token, &tee, err);
    if (!rc && tee.oom)
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    if (!rc && slm_buf_append(&tee.text, "", 0)) /* allocated and NUL-terminated even when empty */
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    if (rc) {
        slm_buf_free(&tee.text);
        return rc;
    }
    t->text = tee.text.p;
    t->len = tee.text.len;
    t->stop = g.stop;
    return SLM_OK;
}
