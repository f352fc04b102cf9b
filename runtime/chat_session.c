/* runtime/chat_session.c — a conversation on a context (see runtime.h, "chat sessions"):
 * render the whole conversation with the chat template, tokenize it, and decode only the
 * tokens after the prefix already in the KV cache. */
#include "runtime.h"

#include <stdlib.h>
#include <string.h>

struct slm_chat {
    const slm_model *m;
    const slm_tokenizer *tok;
    slm_ctx *ctx;
    slm_chat_template *tmpl;
    slm_chat_info info;          /* bos / eos texts (and the model's template text) */
    slm_chat_msg *msgs;          /* role and content strings owned (malloc'd each) */
    size_t n_msgs, cap_msgs;
    int32_t *cached;             /* tokens at positions 0 .. n_cached-1 of the context */
    size_t n_cached, cap_cached;
};

int slm_chat_new(const slm_model *m, const slm_tokenizer *tok, slm_ctx *ctx, const char *template_name,
                 slm_chat **out, slm_err *err)
{
    *out = NULL;
    slm_chat *ch = calloc(1, sizeof *ch);
    if (!ch)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    ch->m = m;
    ch->tok = tok;
    ch->ctx = ctx;
    int rc = slm_chat_info_from_gguf(slm_model_gguf(m), &ch->info, err);
    if (rc) {
        slm_chat_free(ch);
        return rc;
    }
    const char *text = ch->info.template_text;
    if (template_name && !(text = slm_chat_builtin(template_name))) {
        slm_chat_free(ch);
        return slm_err_set(err, SLM_EUSAGE, "unknown chat template '%s' (built-in: %s)", template_name,
                           slm_chat_builtin_names());
    }
    if (!text) {
        slm_chat_free(ch);
        return slm_err_set(err, SLM_EINPUT,
                           "%s: no tokenizer.chat_template in the model; choose one with --chat-template NAME (%s)",
                           slm_model_gguf(m)->path, slm_chat_builtin_names());
    }
    if ((rc = slm_chat_template_parse(text, strlen(text), &ch->tmpl, err))) {
        if (rc == SLM_EINPUT && !template_name) {
            char why[sizeof err->msg];
            memcpy(why, err->msg, sizeof why);
            slm_err_set(err, rc, "%s: its chat template cannot be rendered: %.500s (--chat-template NAME: %s)",
                        slm_model_gguf(m)->path, why, slm_chat_builtin_names());
        }
        slm_chat_free(ch);
        return rc;
    }
    *out = ch;
    return SLM_OK;
}

static void free_msgs(slm_chat *ch, size_t from)
{
    for (size_t i = from; i < ch->n_msgs; i++) {
        free((char *)ch->msgs[i].role);
        free((char *)ch->msgs[i].content);
    }
    ch->n_msgs = from;
}

void slm_chat_free(slm_chat *ch)
{
    if (!ch)
        return;
    free_msgs(ch, 0);
    free(ch->msgs);
    free(ch->cached);
    slm_chat_template_free(ch->tmpl);
    slm_chat_info_free(&ch->info);
    free(ch);
}

int slm_chat_add(slm_chat *ch, const char *role, const char *content, size_t len, slm_err *err)
{
    if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant"))
        return slm_err_set(err, SLM_EUSAGE, "chat: unknown role '%.40s'", role);
    if (ch->n_msgs == ch->cap_msgs) {
        size_t cap = ch->cap_msgs ? ch->cap_msgs * 2 : 16;
        slm_chat_msg *v = realloc(ch->msgs, cap * sizeof *v);
        if (!v)
            return slm_err_set(err, SLM_EINTERNAL, "out of memory");
        ch->msgs = v;
        ch->cap_msgs = cap;
    }
    char *r = strdup(role), *c = malloc(len + 1);
    if (!r || !c) {
        free(r);
        free(c);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    memcpy(c, content, len);
    c[len] = 0;
    ch->msgs[ch->n_msgs++] = (slm_chat_msg){r, c, len};
    return SLM_OK;
}

void slm_chat_reset(slm_chat *ch)
{
    size_t keep = 0;
    for (size_t i = 0; i < ch->n_msgs; i++) {
        if (!strcmp(ch->msgs[i].role, "system"))
            ch->msgs[keep++] = ch->msgs[i];
        else {
            free((char *)ch->msgs[i].role);
            free((char *)ch->msgs[i].content);
        }
    }
    ch->n_msgs = keep;
    ch->n_cached = 0;
    slm_ctx_clear(ch->ctx);
}

int slm_chat_push(slm_chat *ch, int32_t tok)
{
    if (ch->n_cached == ch->cap_cached) {
        size_t cap = ch->cap_cached ? ch->cap_cached * 2 : 256;
        int32_t *v = realloc(ch->cached, cap * sizeof *v);
        if (!v)
            return SLM_EINTERNAL;
        ch->cached = v;
        ch->cap_cached = cap;
    }
    ch->cached[ch->n_cached++] = tok;
    return SLM_OK;
}

int slm_chat_tokens(const slm_chat_template *t, const slm_chat_info *ci, const slm_tokenizer *tok,
                    const slm_chat_msg *msgs, size_t n_msgs, int as_prompt, int32_t **ids, size_t *n_ids, slm_err *err)
{
    *ids = NULL;
    *n_ids = 0;
    slm_chat_params p;
    slm_chat_params_init(&p);
    p.msgs = msgs;
    p.n_msgs = n_msgs;
    p.add_generation_prompt = 1;
    p.bos_token = ci->bos_token;
    p.eos_token = ci->eos_token;
    char *text = NULL;
    size_t len = 0;
    int rc = slm_chat_template_render(t, &p, &text, &len, err);
    if (rc)
        return rc;
    /* a template that writes the BOS text itself gets no second BOS */
    const char *bos = ci->bos_token;
    int add_bos = slm_tokenizer_add_bos(tok) && !(bos && *bos && !strncmp(text, bos, strlen(bos)));
    rc = as_prompt ? slm_tokenize_prompt(tok, text, len, add_bos, 1, ids, n_ids, err)
                   : slm_tokenize(tok, text, len, add_bos, 1, ids, n_ids, err);
    free(text);
    return rc;
}

/* the conversation rendered with the generation prompt and tokenized (*ids malloc'd) */
static int render_ids(const slm_chat *ch, int32_t **out, size_t *n_out, slm_err *err)
{
    int rc = slm_chat_tokens(ch->tmpl, &ch->info, ch->tok, ch->msgs, ch->n_msgs, 0, out, n_out, err);
    if (rc)
        return rc;
    if (*n_out == 0) {
        free(*out);
        *out = NULL;
        return slm_err_set(err, SLM_EINPUT, "chat: the rendered conversation is empty");
    }
    return SLM_OK;
}

int slm_chat_count(const slm_chat *ch, int *n_prompt, slm_err *err)
{
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = render_ids(ch, &ids, &n, err);
    free(ids);
    if (!rc)
        *n_prompt = n > (size_t)INT32_MAX ? INT32_MAX : (int)n;
    return rc;
}

int slm_chat_prefill(slm_chat *ch, int *n_prompt, int *n_reused, slm_err *err)
{
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = render_ids(ch, &ids, &n, err);
    if (rc)
        return rc;
    if (n > (size_t)slm_ctx_n_ctx(ch->ctx)) {
        free(ids);
        return slm_err_set(err, SLM_EINPUT, "chat: the conversation has %zu tokens, more than the context of %d "
                           "(start over, or use a larger -c)", n, slm_ctx_n_ctx(ch->ctx));
    }
    /* the cached prefix it shares; at least the last token is decoded again for its logits */
    size_t keep = 0;
    while (keep < ch->n_cached && keep < n && ch->cached[keep] == ids[keep])
        keep++;
    if (keep == n)
        keep = n - 1;
    slm_ctx_rewind(ch->ctx, (int)keep);
    ch->n_cached = keep;
    rc = slm_decode(ch->ctx, ids + keep, (int)(n - keep), 0, err);
    for (size_t i = keep; !rc && i < n; i++)
        if (slm_chat_push(ch, ids[i]))
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    if (rc) { /* the cache no longer matches what we know of it */
        slm_ctx_clear(ch->ctx);
        ch->n_cached = 0;
    }
    if (n_prompt)
        *n_prompt = (int)n;
    if (n_reused)
        *n_reused = (int)keep;
    free(ids);
    return rc;
}
