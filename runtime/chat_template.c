/* runtime/chat_template.c — the chat-template face (runtime.h): parse/render
 * through the Jinja subset (jinja_*.c), built-in named templates, what a GGUF
 * says about chatting, and conversation (MESSAGES.json) validation. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "jinja.h"

void slm_chat_params_init(slm_chat_params *p)
{
    memset(p, 0, sizeof *p);
    p->add_generation_prompt = 1;
    p->now = -1;
}

int slm_chat_template_parse(const char *text, size_t len, slm_chat_template **out, slm_err *err)
{
    *out = NULL;
    if (!text)
        return slm_err_set(err, SLM_EUSAGE, "chat template: no text");
    slm_chat_template *t = calloc(1, sizeof *t);
    if (!t)
        return slm_err_set(err, SLM_EINTERNAL, "chat template: out of memory");
    jj_arena_init(&t->arena, JJ_MAX_ARENA);
    jj_token *toks;
    size_t n;
    int rc = jj_lex(&t->arena, text, len, &toks, &n, err);
    if (!rc)
        rc = jj_parse(&t->arena, toks, n, &t->root, err);
    if (rc) {
        slm_chat_template_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void slm_chat_template_free(slm_chat_template *t)
{
    if (!t)
        return;
    jj_arena_free(&t->arena);
    free(t);
}

int slm_chat_template_render(const slm_chat_template *t, const slm_chat_params *p, char **out, size_t *out_len,
                             slm_err *err)
{
    *out = NULL;
    *out_len = 0;
    if (!t || !p || (p->n_msgs && !p->msgs))
        return slm_err_set(err, SLM_EUSAGE, "chat template: missing template or parameters");
    return jj_render(t->root, p, out, out_len, err);
}

int slm_chat_render(const char *text, size_t len, const slm_chat_params *p, char **out, size_t *out_len,
                    slm_err *err)
{
    slm_chat_template *t;
    *out = NULL;
    *out_len = 0;
    int rc = slm_chat_template_parse(text, len, &t, err);
    if (rc)
        return rc;
    rc = slm_chat_template_render(t, p, out, out_len, err);
    slm_chat_template_free(t);
    return rc;
}

/* ---- built-in templates ------------------------------------------------------------ */
/* Each renders like the family's own template for ordinary conversations
 * (system / user / assistant messages); see docs/chat.md. */
static const struct { const char *name, *text; } BUILTINS[] = {
    {"chatml",
     "{% for message in messages %}"
     "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
     "{% endfor %}"
     "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"},
    {"llama3",
     "{{ bos_token if bos_token is defined }}"
     "{% for message in messages %}"
     "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + "
     "'<|eot_id|>' }}"
     "{% endfor %}"
     "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"},
    {"gemma",
     "{{ bos_token if bos_token is defined }}"
     "{% if messages[0]['role'] == 'system' %}"
     "{% set first_user_prefix = messages[0]['content'] + '\\n\\n' %}{% set loop_messages = messages[1:] %}"
     "{% else %}{% set first_user_prefix = '' %}{% set loop_messages = messages %}{% endif %}"
     "{% for message in loop_messages %}"
     "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
     "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
     "{% endif %}"
     "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
     "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}"
     "{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}"
     "{% endfor %}"
     "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"},
    {"phi3",
     "{% for message in messages %}"
     "{% if message['role'] == 'system' and message['content'] %}"
     "{{ '<|system|>\\n' + message['content'] + '<|end|>\\n' }}"
     "{% elif message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + '<|end|>\\n' }}"
     "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\\n' + message['content'] + '<|end|>\\n' }}"
     "{% endif %}{% endfor %}"
     "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"},
};

const char *slm_chat_builtin(const char *name)
{
    for (size_t i = 0; name && i < sizeof BUILTINS / sizeof BUILTINS[0]; i++)
        if (!strcmp(BUILTINS[i].name, name))
            return BUILTINS[i].text;
    return NULL;
}

const char *slm_chat_builtin_names(void) { return "chatml, llama3, gemma, phi3"; }

/* ---- GGUF ---------------------------------------------------------------------------- */
static int token_text(const gguf_file *f, const char *id_key, char **out, slm_err *err)
{
    *out = NULL;
    int64_t k = gguf_find_key(f, id_key);
    if (k < 0)
        return 0;
    int64_t id;
    if (gguf_get_int(f, id_key, &id))
        return slm_err_set(err, SLM_EINPUT, "%s: %s is not an integer", f->path, id_key);
    int64_t tk = gguf_find_key(f, "tokenizer.ggml.tokens");
    if (tk < 0)
        return slm_err_set(err, SLM_EINPUT, "%s: %s is set but tokenizer.ggml.tokens is missing", f->path, id_key);
    const gguf_kv *kv = &f->kv[tk];
    if (kv->type != GGUF_T_ARRAY || kv->arr_type != GGUF_T_STRING)
        return slm_err_set(err, SLM_EINPUT, "%s: tokenizer.ggml.tokens is not an array of strings", f->path);
    if (id < 0 || (uint64_t)id >= kv->arr_n)
        return slm_err_set(err, SLM_EINPUT, "%s: %s = %lld is outside the vocabulary (%llu tokens)", f->path, id_key,
                           (long long)id, (unsigned long long)kv->arr_n);
    gguf_str s;
    if (gguf_arr_str(kv, (uint64_t)id, &s))
        return slm_err_set(err, SLM_EINPUT, "%s: cannot read token %lld", f->path, (long long)id);
    if (!(*out = strndup(s.ptr, s.len)))
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    return 0;
}

int slm_chat_info_from_gguf(const gguf_file *f, slm_chat_info *out, slm_err *err)
{
    memset(out, 0, sizeof *out);
    int64_t k = gguf_find_key(f, "tokenizer.chat_template");
    if (k >= 0) {
        gguf_str s;
        if (f->kv[k].type != GGUF_T_STRING || gguf_get_str(f, "tokenizer.chat_template", &s))
            return slm_err_set(err, SLM_EINPUT, "%s: tokenizer.chat_template is not a string", f->path);
        if (!(out->template_text = strndup(s.ptr, s.len)))
            return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    int rc = token_text(f, "tokenizer.ggml.bos_token_id", &out->bos_token, err);
    if (!rc)
        rc = token_text(f, "tokenizer.ggml.eos_token_id", &out->eos_token, err);
    if (rc)
        slm_chat_info_free(out);
    return rc;
}

void slm_chat_info_free(slm_chat_info *ci)
{
    if (!ci)
        return;
    free(ci->template_text);
    free(ci->bos_token);
    free(ci->eos_token);
    memset(ci, 0, sizeof *ci);
}

/* ---- MESSAGES.json --------------------------------------------------------------------- */
int slm_chat_messages_parse(const char *json, size_t len, const char *name, slm_chat_msg **msgs, size_t *n_msgs,
                            slm_err *err)
{
    *msgs = NULL;
    *n_msgs = 0;
    if (!name)
        name = "messages";
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root)
        return slm_err_set(err, SLM_EINPUT, "%s: not valid JSON", name);
    int rc = 0;
    size_t n = 0, bytes = 0;
    if (!cJSON_IsArray(root)) {
        rc = slm_err_set(err, SLM_EINPUT, "%s: expected a JSON array of {\"role\", \"content\"} objects", name);
        goto out;
    }
    n = (size_t)cJSON_GetArraySize(root);
    if (n == 0) {
        rc = slm_err_set(err, SLM_EINPUT, "%s: the conversation has no messages", name);
        goto out;
    }
    size_t i = 0;
    for (cJSON *m = root->child; m; m = m->next, i++) {
        if (!cJSON_IsObject(m)) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: message %zu is not an object", name, i);
            goto out;
        }
        cJSON *role = NULL, *content = NULL;
        for (cJSON *f = m->child; f; f = f->next) {
            if (f->string && !strcmp(f->string, "role") && !role)
                role = f;
            else if (f->string && !strcmp(f->string, "content") && !content)
                content = f;
            else {
                rc = slm_err_set(err, SLM_EINPUT, "%s: message %zu: unexpected key \"%.64s\" (only \"role\" and "
                                 "\"content\" are supported)", name, i, f->string ? f->string : "");
                goto out;
            }
        }
        if (!cJSON_IsString(role) || !cJSON_IsString(content)) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: message %zu: \"role\" and \"content\" must both be strings", name, i);
            goto out;
        }
        const char *r = role->valuestring;
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant")) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: message %zu: role \"%.32s\" is not system, user or assistant", name,
                             i, r);
            goto out;
        }
        bytes += strlen(r) + 1 + strlen(content->valuestring) + 1;
    }
    slm_chat_msg *block = malloc(n * sizeof *block + bytes);
    if (!block) {
        rc = slm_err_set(err, SLM_EINTERNAL, "%s: out of memory", name);
        goto out;
    }
    char *s = (char *)(block + n);
    i = 0;
    for (cJSON *m = root->child; m; m = m->next, i++) {
        const char *r = cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring;
        const char *c = cJSON_GetObjectItemCaseSensitive(m, "content")->valuestring;
        size_t rl = strlen(r), cl = strlen(c);
        memcpy(s, r, rl + 1);
        block[i].role = s;
        s += rl + 1;
        memcpy(s, c, cl + 1);
        block[i].content = s;
        block[i].content_len = cl;
        s += cl + 1;
    }
    *msgs = block;
    *n_msgs = n;
out:
    cJSON_Delete(root);
    return rc;
}
