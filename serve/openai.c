/* serve/openai.c — the bodies of OpenAI-style answers: a whole completion / chat completion,
 * or one server-sent event of a stream. Text is cleaned to valid UTF-8 before it goes into
 * JSON (a byte-level token may end mid-character). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "openai.h"

char *srv_utf8_clean(const char *s, size_t n)
{
    char *o = malloc(n * 3 + 1);
    if (!o)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        size_t k = 1;
        while (k <= 4 && i + k <= n && !srv_utf8_valid(s + i, k))
            k++;
        if (k <= 4 && i + k <= n) {
            memcpy(o + j, s + i, k);
            j += k;
            i += k;
        } else {
            memcpy(o + j, "\xef\xbf\xbd", 3);
            j += 3;
            i++;
        }
    }
    o[j] = 0;
    return o;
}

static void add_clean(cJSON *obj, const char *key, const char *s, size_t n)
{
    char *c = srv_utf8_clean(s, n);
    cJSON_AddStringToObject(obj, key, c ? c : "");
    free(c);
}

static void add_bytes(cJSON *obj, const char *p, size_t n)
{
    cJSON *a = cJSON_AddArrayToObject(obj, "bytes");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((unsigned char)p[i]));
}

/* The text of token id (for logprobs). */
static size_t piece(const srv_job *j, int32_t id, char *buf, size_t cap)
{
    size_t n = srv_engine_piece(j->eng, id, buf, cap);
    return n > cap ? 0 : n;
}

/* Logprobs of tokens [t0, t1): chat style ({"content": [...]}) or completions style. */
static cJSON *logprobs_json(const srv_server *s, const srv_job *j, int t0, int t1)
{
    cJSON *lp = cJSON_CreateObject();
    char buf[256];
    if (j->req.kind == SRV_KIND_CHAT) {
        cJSON *content = cJSON_AddArrayToObject(lp, "content");
        for (int i = t0; i < t1; i++) {
            const srv_tokinfo *t = &j->toks[i];
            cJSON *e = cJSON_CreateObject();
            size_t n = piece(j, t->id, buf, sizeof buf);
            add_clean(e, "token", buf, n);
            cJSON_AddNumberToObject(e, "logprob", t->lp);
            add_bytes(e, buf, n);
            cJSON *tops = cJSON_AddArrayToObject(e, "top_logprobs");
            for (int k = 0; k < t->n_top; k++) {
                cJSON *a = cJSON_CreateObject();
                size_t m = piece(j, t->top[k], buf, sizeof buf);
                add_clean(a, "token", buf, m);
                cJSON_AddNumberToObject(a, "logprob", t->top_lp[k]);
                add_bytes(a, buf, m);
                cJSON_AddItemToArray(tops, a);
            }
            cJSON_AddItemToArray(content, e);
        }
        return lp;
    }
    cJSON *toks = cJSON_AddArrayToObject(lp, "tokens");
    cJSON *tlp = cJSON_AddArrayToObject(lp, "token_logprobs");
    cJSON *top = cJSON_AddArrayToObject(lp, "top_logprobs");
    cJSON *off = cJSON_AddArrayToObject(lp, "text_offset");
    for (int i = t0; i < t1; i++) {
        const srv_tokinfo *t = &j->toks[i];
        size_t n = piece(j, t->id, buf, sizeof buf);
        char *c = srv_utf8_clean(buf, n);
        cJSON_AddItemToArray(toks, cJSON_CreateString(c ? c : ""));
        free(c);
        cJSON_AddItemToArray(tlp, cJSON_CreateNumber(t->lp));
        cJSON *alt = cJSON_CreateObject();
        for (int k = 0; k < t->n_top; k++) {
            size_t m = piece(j, t->top[k], buf, sizeof buf);
            char *ck = srv_utf8_clean(buf, m);
            if (ck && !cJSON_GetObjectItemCaseSensitive(alt, ck))
                cJSON_AddNumberToObject(alt, ck, t->top_lp[k]);
            free(ck);
        }
        cJSON_AddItemToArray(top, alt);
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(i ? j->toks[i - 1].text_end : 0)));
    }
    return lp;
}

static cJSON *envelope(const srv_server *s, const srv_job *j, const char *object)
{
    cJSON *o = cJSON_CreateObject();
    char id[64];
    snprintf(id, sizeof id, "%s-%llu", j->req.kind == SRV_KIND_CHAT ? "chatcmpl" : "cmpl", (unsigned long long)j->id);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", s->model_name);
    cJSON_AddStringToObject(o, "system_fingerprint", "slmkit");
    return o;
}

static cJSON *usage_json(const srv_job *j)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", j->n_ids);
    cJSON_AddNumberToObject(u, "completion_tokens", j->n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", j->n_ids + j->n_gen);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", j->n_reused);
    return u;
}

static char *print(cJSON *o)
{
    char *p = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return p;
}

char *srv_json_result(const srv_server *s, const srv_job *j)
{
    int chat = j->req.kind == SRV_KIND_CHAT;
    cJSON *o = envelope(s, j, chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    if (chat) {
        cJSON *m = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        add_clean(m, "content", j->text ? j->text : "", j->len);
    } else {
        add_clean(c, "text", j->text ? j->text : "", j->len);
    }
    if (j->req.logprobs)
        cJSON_AddItemToObject(c, "logprobs", logprobs_json(s, j, 0, j->n_toks));
    else
        cJSON_AddNullToObject(c, "logprobs");
    cJSON_AddStringToObject(c, "finish_reason", j->finish ? j->finish : "stop");
    cJSON_AddItemToArray(choices, c);
    cJSON_AddItemToObject(o, "usage", usage_json(j));
    return print(o);
}

char *srv_json_chunk(const srv_server *s, const srv_job *j, size_t b0, size_t b1, int t0, int t1, int first,
                     const char *finish)
{
    int chat = j->req.kind == SRV_KIND_CHAT;
    cJSON *o = envelope(s, j, chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    if (chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (first)
            cJSON_AddStringToObject(d, "role", "assistant");
        if (b1 > b0 || first)
            add_clean(d, "content", j->text ? j->text + b0 : "", b1 - b0);
    } else {
        add_clean(c, "text", j->text ? j->text + b0 : "", b1 - b0);
    }
    if (j->req.logprobs && t1 > t0)
        cJSON_AddItemToObject(c, "logprobs", logprobs_json(s, j, t0, t1));
    else
        cJSON_AddNullToObject(c, "logprobs");
    if (finish)
        cJSON_AddStringToObject(c, "finish_reason", finish);
    else
        cJSON_AddNullToObject(c, "finish_reason");
    cJSON_AddItemToArray(choices, c);
    return print(o);
}

char *srv_json_usage_chunk(const srv_server *s, const srv_job *j)
{
    int chat = j->req.kind == SRV_KIND_CHAT;
    cJSON *o = envelope(s, j, chat ? "chat.completion.chunk" : "text_completion");
    cJSON_AddArrayToObject(o, "choices");
    cJSON_AddItemToObject(o, "usage", usage_json(j));
    return print(o);
}

char *srv_json_error(const char *msg, const char *type, const char *code)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    char *c = srv_utf8_clean(msg, strlen(msg));
    cJSON_AddStringToObject(e, "message", c ? c : "error");
    free(c);
    cJSON_AddStringToObject(e, "type", type);
    if (code)
        cJSON_AddStringToObject(e, "code", code);
    else
        cJSON_AddNullToObject(e, "code");
    return print(o);
}
