/* serve/request.c — parse and validate an OpenAI-style request body (see request.h). */
#include "request.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

int srv_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + (size_t)len > n)
            return 0;
        unsigned cp = c & (0x7f >> len);
        for (int k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += (size_t)len;
    }
    return 1;
}

size_t srv_utf8_complete(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    /* walk back over at most 3 continuation bytes to the last lead byte */
    size_t i = n;
    int back = 0;
    while (i > 0 && back < 4 && (p[i - 1] & 0xc0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0)
        return back ? 0 : n;
    unsigned c = p[i - 1];
    if (c < 0x80)
        return n;
    int len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len && back + 1 < len)
        return i - 1; /* incomplete: hold back the lead and its continuations */
    return n;
}

static int bad(slm_err *err, const char *fmt, const char *field)
{
    return slm_err_set(err, SLM_EINPUT, fmt, field);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

/* A UTF-8 string field: 0 ok (copied to *out), else an error set. */
static int get_text(const cJSON *v, const char *field, char **out, slm_err *err)
{
    if (!cJSON_IsString(v) || !v->valuestring)
        return bad(err, "'%s' must be a string", field);
    if (!srv_utf8_valid(v->valuestring, strlen(v->valuestring)))
        return bad(err, "'%s' is not valid UTF-8", field);
    if (!(*out = dup_str(v->valuestring)))
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    return 0;
}

/* An integral number in [lo, hi]. */
static int get_int(const cJSON *v, const char *field, double lo, double hi, double *out, slm_err *err)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble))
        return bad(err, "'%s' must be an integer", field);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return slm_err_set(err, SLM_EINPUT, "'%s' must be in %.0f..%.0f, got %.0f", field, lo, hi, v->valuedouble);
    *out = v->valuedouble;
    return 0;
}

static int get_num(const cJSON *v, const char *field, double lo, double hi, double *out, slm_err *err)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return bad(err, "'%s' must be a number", field);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return slm_err_set(err, SLM_EINPUT, "'%s' must be in [%g, %g]", field, lo, hi);
    *out = v->valuedouble;
    return 0;
}

static int get_bool(const cJSON *v, const char *field, int *out, slm_err *err)
{
    if (cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsBool(v))
        return bad(err, "'%s' must be true or false", field);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* Chat content: a string, null, or an array of {"type": "text", "text": ...} parts. */
static int get_content(const cJSON *v, char **out, slm_err *err)
{
    if (!v || cJSON_IsNull(v)) {
        *out = dup_str("");
        return *out ? 0 : slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    if (cJSON_IsString(v))
        return get_text(v, "content", out, err);
    if (!cJSON_IsArray(v))
        return bad(err, "'%s' must be a string or an array of text parts", "content");
    size_t len = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, v)
    {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *tx = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "text") || !cJSON_IsString(tx))
            return bad(err, "'%s' parts must be {\"type\": \"text\", \"text\": ...} (only text is supported)",
                       "content");
        if (!srv_utf8_valid(tx->valuestring, strlen(tx->valuestring)))
            return bad(err, "'%s' is not valid UTF-8", "content");
        len += strlen(tx->valuestring);
    }
    char *s = malloc(len + 1);
    if (!s)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    size_t o = 0;
    cJSON_ArrayForEach(part, v)
    {
        const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
        size_t k = strlen(t);
        memcpy(s + o, t, k);
        o += k;
    }
    s[o] = 0;
    *out = s;
    return 0;
}

static int parse_messages(const cJSON *v, srv_request *r, slm_err *err)
{
    if (!cJSON_IsArray(v))
        return bad(err, "'%s' must be an array of messages", "messages");
    int n = cJSON_GetArraySize(v);
    if (n < 1)
        return bad(err, "'%s' must hold at least one message", "messages");
    if (n > SRV_MAX_MESSAGES)
        return slm_err_set(err, SLM_EINPUT, "'messages' holds %d messages, at most %d are accepted", n,
                           SRV_MAX_MESSAGES);
    if (!(r->messages = calloc((size_t)n, sizeof *r->messages)))
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    const cJSON *m;
    cJSON_ArrayForEach(m, v)
    {
        if (!cJSON_IsObject(m))
            return bad(err, "each of '%s' must be an object", "messages");
        srv_message *dst = &r->messages[r->n_messages++];
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        int rc = get_text(role, "role", &dst->role, err);
        if (rc)
            return rc;
        static const char *roles[] = {"system", "user", "assistant", "tool", "developer"};
        int known = 0;
        for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
            known |= !strcmp(dst->role, roles[i]);
        if (!known)
            return bad(err, "'role' must be system, user, assistant, tool or developer%s", "");
        if ((rc = get_content(cJSON_GetObjectItemCaseSensitive(m, "content"), &dst->content, err)))
            return rc;
    }
    return 0;
}

static int parse_stop(const cJSON *v, srv_request *r, slm_err *err)
{
    if (cJSON_IsNull(v))
        return 0;
    const cJSON *one = v;
    int n = 1;
    if (cJSON_IsArray(v)) {
        n = cJSON_GetArraySize(v);
        if (n > SRV_MAX_STOP)
            return slm_err_set(err, SLM_EINPUT, "'stop' holds %d sequences, at most %d are accepted", n, SRV_MAX_STOP);
        one = v->child;
    }
    for (int i = 0; i < n; i++, one = one->next) {
        int rc = get_text(one, "stop", &r->stop[r->n_stop], err);
        if (rc)
            return rc;
        size_t len = strlen(r->stop[r->n_stop++]);
        if (len == 0 || len > SRV_MAX_STOP_LEN)
            return slm_err_set(err, SLM_EINPUT, "each 'stop' sequence must be 1..%d bytes", SRV_MAX_STOP_LEN);
    }
    return 0;
}

static int parse_obj(const cJSON *j, int kind, srv_request *r, slm_err *err)
{
    int rc;
    double d;
    const cJSON *v;
    if (!cJSON_IsObject(j))
        return slm_err_set(err, SLM_EINPUT, "the request body must be a JSON object");
#define FIELD(name) ((v = cJSON_GetObjectItemCaseSensitive(j, name)) != NULL && !cJSON_IsNull(v))
    if (FIELD("model") && (rc = get_text(v, "model", &r->model, err)))
        return rc;
    if (kind == SRV_KIND_CHAT) {
        if ((rc = parse_messages(cJSON_GetObjectItemCaseSensitive(j, "messages"), r, err)))
            return rc;
    } else {
        v = cJSON_GetObjectItemCaseSensitive(j, "prompt");
        if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 1)
            v = v->child;
        if (!v)
            return slm_err_set(err, SLM_EINPUT, "'prompt' is required");
        if (!cJSON_IsString(v))
            return slm_err_set(err, SLM_EINPUT, "'prompt' must be a string (token arrays and batches are not supported)");
        if ((rc = get_text(v, "prompt", &r->prompt, err)))
            return rc;
    }
    if (FIELD("max_tokens") || FIELD("max_completion_tokens")) {
        if ((rc = get_int(v, v->string, 1, SRV_MAX_TOKENS_HARD, &d, err)))
            return rc;
        r->max_tokens = (int)d;
    }
    if (FIELD("temperature")) {
        if ((rc = get_num(v, "temperature", 0, 2, &r->temperature, err)))
            return rc;
    }
    if (FIELD("top_p")) {
        if ((rc = get_num(v, "top_p", 0, 1, &r->top_p, err)))
            return rc;
    }
    if (FIELD("seed")) {
        if ((rc = get_int(v, "seed", -9.2e18, 9.2e18, &d, err)))
            return rc;
        r->seed = (uint64_t)(int64_t)d;
        r->seed_set = 1;
    }
    if (FIELD("n")) {
        if ((rc = get_int(v, "n", 1, 1, &d, err)))
            return slm_err_set(err, SLM_EINPUT, "'n' must be 1 (one choice per request)");
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "stop")) && (rc = parse_stop(v, r, err)))
        return rc;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "stream")) && (rc = get_bool(v, "stream", &r->stream, err)))
        return rc;
    if (FIELD("stream_options")) {
        if (!cJSON_IsObject(v))
            return slm_err_set(err, SLM_EINPUT, "'stream_options' must be an object");
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(v, "include_usage");
        if (u && (rc = get_bool(u, "stream_options.include_usage", &r->include_usage, err)))
            return rc;
    }
    if (kind == SRV_KIND_CHAT) {
        if ((v = cJSON_GetObjectItemCaseSensitive(j, "logprobs")) && (rc = get_bool(v, "logprobs", &r->logprobs, err)))
            return rc;
        if (FIELD("top_logprobs")) {
            if ((rc = get_int(v, "top_logprobs", 0, SRV_MAX_TOP_LOGPROBS, &d, err)))
                return rc;
            if (!r->logprobs)
                return slm_err_set(err, SLM_EINPUT, "'top_logprobs' needs 'logprobs': true");
            r->top_logprobs = (int)d;
        }
    } else if (FIELD("logprobs")) {
        if ((rc = get_int(v, "logprobs", 0, 5, &d, err)))
            return rc;
        r->logprobs = 1;
        r->top_logprobs = (int)d;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "ignore_eos")) && (rc = get_bool(v, "ignore_eos", &r->ignore_eos, err)))
        return rc;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "private")) && (rc = get_bool(v, "private", &r->private_, err)))
        return rc;
#undef FIELD
    return 0;
}

int srv_request_parse(const char *body, size_t n, int kind, srv_request *out, slm_err *err)
{
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->max_tokens = -1;
    out->temperature = 1.0;
    out->top_p = 1.0;
    if (!body || n == 0)
        return slm_err_set(err, SLM_EINPUT, "empty request body (a JSON object is expected)");
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, n, &end, 0);
    if (!j) {
        size_t at = end && end >= body && end <= body + n ? (size_t)(end - body) : 0;
        return slm_err_set(err, SLM_EINPUT, "malformed JSON near byte %zu", at);
    }
    /* only whitespace may follow the object */
    for (const char *p = end; p && p < body + n; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t' && *p != 0) {
            cJSON_Delete(j);
            return slm_err_set(err, SLM_EINPUT, "trailing bytes after the JSON object");
        }
    int rc = parse_obj(j, kind, out, err);
    cJSON_Delete(j);
    if (rc)
        srv_request_free(out);
    return rc;
}

void srv_request_free(srv_request *r)
{
    free(r->prompt);
    for (int i = 0; i < r->n_messages; i++) {
        free(r->messages[i].role);
        free(r->messages[i].content);
    }
    free(r->messages);
    for (int i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    free(r->model);
    memset(r, 0, sizeof *r);
}
