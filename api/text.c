/* api/text.c — tokenizer and chat template of a GGUF, read from its metadata only
 * (what `slm tokenize` and `slm template` show; the tensors are never read). */
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

int slm_pl_template_name_check(const char *name, slm_err *err)
{
    if (name && !slm_chat_builtin(name))
        return slm_err_set(err, SLM_EUSAGE, "unknown chat template '%s' (built-in: %s)", name,
                           slm_chat_builtin_names());
    return SLM_OK;
}

int slm_pl_messages_load(const char *path, size_t max, slm_chat_msg **msgs, size_t *n_msgs, slm_err *err)
{
    *msgs = NULL;
    *n_msgs = 0;
    char *text = NULL;
    size_t len = 0;
    int rc = slm_read_text_file(path, max, &text, &len, err);
    if (!rc)
        rc = slm_chat_messages_parse(text, len, path, msgs, n_msgs, err);
    free(text);
    return rc;
}

slm_chat_msg *slm_pl_chat_msgs(const slm_message *msgs, size_t n)
{
    slm_chat_msg *cm = calloc(n ? n : 1, sizeof *cm);
    for (size_t i = 0; cm && i < n; i++) {
        cm[i].role = msgs[i].role ? msgs[i].role : "";
        cm[i].content = msgs[i].content ? msgs[i].content : "";
        cm[i].content_len = strlen(cm[i].content);
    }
    return cm;
}

/* The text of token id with specials shown, NUL bytes as spaces (a C string cannot hold them). */
static char *piece_text(const slm_tokenizer *t, int32_t id)
{
    char small[64];
    size_t k = slm_token_to_piece(t, id, 1, small, sizeof small);
    char *p = malloc(k + 1);
    if (!p)
        return NULL;
    if (k <= sizeof small)
        memcpy(p, small, k);
    else
        slm_token_to_piece(t, id, 1, p, k);
    for (size_t i = 0; i < k; i++)
        if (!p[i])
            p[i] = ' ';
    p[k] = 0;
    return p;
}

int slm_pl_tokenize_gguf(const char *path, const char *text, size_t len, int no_bos, int special,
                         slm_pl_tokens *out, slm_err *err)
{
    memset(out, 0, sizeof *out);
    gguf_file *gf = NULL;
    slm_tokenizer *t = NULL;
    int rc = gguf_open(path, &gf, err);
    if (!rc)
        rc = slm_tokenizer_from_gguf(gf, &t, err);
    if (!rc)
        rc = slm_tokenize(t, text, len, !no_bos && slm_tokenizer_add_bos(t), special, &out->ids, &out->n, err);
    if (!rc && out->n && !(out->pieces = calloc(out->n, sizeof *out->pieces)))
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    for (size_t i = 0; !rc && i < out->n; i++)
        if (!(out->pieces[i] = piece_text(t, out->ids[i])))
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    slm_tokenizer_free(t);
    gguf_close(gf);
    if (rc)
        slm_pl_tokens_free(out);
    return rc;
}

void slm_pl_tokens_free(slm_pl_tokens *t)
{
    for (size_t i = 0; t->pieces && i < t->n; i++)
        free(t->pieces[i]);
    free(t->pieces);
    free(t->ids);
    memset(t, 0, sizeof *t);
}

/* Render msgs with the built-in template or the model's (ci). */
static int render(const char *path, const char *builtin, const slm_chat_info *ci, const slm_chat_msg *msgs,
                  size_t n_msgs, int add_gen, slm_pl_prompt *out, slm_err *err)
{
    const char *tmpl = builtin ? builtin : ci->template_text;
    if (!tmpl)
        return slm_err_set(err, SLM_EINPUT, "%s: no tokenizer.chat_template in the model; choose one with "
                           "--chat-template NAME (%s)", path, slm_chat_builtin_names());
    slm_chat_params p;
    slm_chat_params_init(&p);
    p.msgs = msgs;
    p.n_msgs = n_msgs;
    p.add_generation_prompt = add_gen;
    p.bos_token = ci->bos_token;
    p.eos_token = ci->eos_token;
    int rc = slm_chat_render(tmpl, strlen(tmpl), &p, &out->text, &out->len, err);
    if (rc && !builtin && rc == SLM_EINPUT) {
        slm_err e = *err;
        return slm_err_set(err, rc, "%s: %s (--chat-template NAME renders with a built-in template: %s)", path,
                           e.msg, slm_chat_builtin_names());
    }
    if (rc) {
        slm_err e = *err;
        return slm_err_set(err, rc, "%s: %s", path, e.msg);
    }
    return SLM_OK;
}

int slm_pl_template(const char *path, const char *messages_path, const char *name, int add_gen,
                    slm_pl_prompt *out, slm_err *err)
{
    memset(out, 0, sizeof *out);
    const char *builtin = name ? slm_chat_builtin(name) : NULL;
    if (name && !builtin)
        return slm_pl_template_name_check(name, err);
    slm_chat_msg *msgs = NULL;
    int rc = slm_pl_messages_load(messages_path, SLM_PL_MAX_MESSAGES_BYTES, &msgs, &out->n_msgs, err);
    if (rc)
        return rc;
    gguf_file *f = NULL;
    slm_chat_info ci = {0};
    if (!(rc = gguf_open(path, &f, err)) && !(rc = slm_chat_info_from_gguf(f, &ci, err)))
        rc = render(path, builtin, &ci, msgs, out->n_msgs, add_gen, out, err);
    out->builtin = !!builtin;
    out->bos_token = ci.bos_token;
    out->eos_token = ci.eos_token;
    ci.bos_token = ci.eos_token = NULL;
    slm_chat_info_free(&ci);
    if (f)
        gguf_close(f);
    free(msgs);
    if (rc)
        slm_pl_prompt_free(out);
    return rc;
}

void slm_pl_prompt_free(slm_pl_prompt *p)
{
    free(p->text);
    free(p->bos_token);
    free(p->eos_token);
    memset(p, 0, sizeof *p);
}
