/* serve/fallback.c — see fallback.h. */
#include "fallback.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

int srv_fallback_global_init(slm_err *err)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return slm_err_set(err, SLM_EINTERNAL, "libcurl initialisation failed");
    return 0;
}

typedef struct sink {
    char *p;
    size_t n, cap, max;
    int overflow;
} sink;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *user)
{
    sink *s = user;
    size_t k = size * nmemb;
    if (s->n + k > s->max) {
        s->overflow = 1;
        return 0; /* aborts the transfer */
    }
    if (s->n + k + 1 > s->cap) {
        size_t nc = (s->n + k + 1) * 2;
        char *t = realloc(s->p, nc);
        if (!t)
            return 0;
        s->p = t;
        s->cap = nc;
    }
    memcpy(s->p + s->n, ptr, k);
    s->n += k;
    s->p[s->n] = 0;
    return k;
}

/* Does the answer look like an OpenAI answer? */
static int plausible(const char *b, size_t n, int stream)
{
    if (!stream) {
        cJSON *j = cJSON_ParseWithLength(b, n);
        int ok = cJSON_IsObject(j) && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "choices"));
        cJSON_Delete(j);
        return ok;
    }
    const char *p = b, *end = b + n;
    int done = 0, events = 0;
    while (p < end) {
        while (p < end && (*p == '\n' || *p == '\r'))
            p++;
        if (p >= end)
            break;
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e)
            e = end;
        if ((size_t)(e - p) < 6 || strncmp(p, "data: ", 6) || done)
            return 0;
        const char *d = p + 6;
        size_t dn = (size_t)(e - d);
        if (dn && d[dn - 1] == '\r')
            dn--;
        if (dn == 6 && !strncmp(d, "[DONE]", 6))
            done = 1;
        else {
            cJSON *j = cJSON_ParseWithLength(d, dn);
            int ok = cJSON_IsObject(j);
            cJSON_Delete(j);
            if (!ok)
                return 0;
            events++;
        }
        p = e;
    }
    return done && events > 0;
}

int srv_fallback_post(const srv_upstream *u, const char *path, const char *body, size_t n, int stream, char **out,
                      size_t *out_n, slm_err *err)
{
    *out = NULL;
    *out_n = 0;
    CURL *c = curl_easy_init();
    if (!c)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory (libcurl)");
    size_t ul = strlen(u->url);
    char *url = malloc(ul + strlen(path) + 1);
    struct curl_slist *h = NULL;
    char *auth = NULL;
    sink s = {.max = u->max_bytes};
    int rc = 0;
    if (!url) {
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
        goto done;
    }
    while (ul && u->url[ul - 1] == '/')
        ul--;
    memcpy(url, u->url, ul);
    strcpy(url + ul, path);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    if (u->key) {
        size_t kn = strlen(u->key) + 32;
        if ((auth = malloc(kn))) {
            snprintf(auth, kn, "Authorization: Bearer %s", u->key);
            h = curl_slist_append(h, auth);
        }
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, u->connect_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, u->timeout_ms);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode cr = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (s.overflow)
        rc = slm_err_set(err, SLM_EIO, "upstream answer larger than %zu bytes", u->max_bytes);
    else if (cr != CURLE_OK)
        rc = slm_err_set(err, SLM_EIO, "upstream %s: %s", cr == CURLE_OPERATION_TIMEDOUT ? "timed out" : "failed",
                         curl_easy_strerror(cr));
    else if (status != 200)
        rc = slm_err_set(err, SLM_EIO, "upstream answered HTTP %ld", status);
    else if (!s.p || !plausible(s.p, s.n, stream))
        rc = slm_err_set(err, SLM_EIO, "upstream answer is not an OpenAI-style %s",
                         stream ? "event stream" : "JSON completion");
done:
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(url);
    free(auth);
    if (rc) {
        free(s.p);
        return rc;
    }
    *out = s.p;
    *out_n = s.n;
    return 0;
}

int srv_fallback_complete(const srv_upstream *u, const char *prompt, int max_tokens, double temperature, double top_p,
                          uint64_t seed, char **text, slm_err *err)
{
    *text = NULL;
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "prompt", prompt);
    cJSON_AddNumberToObject(req, "max_tokens", max_tokens > 0 ? max_tokens : 1);
    cJSON_AddNumberToObject(req, "temperature", temperature);
    cJSON_AddNumberToObject(req, "top_p", top_p);
    cJSON_AddNumberToObject(req, "seed", (double)(seed & ((1ull << 53) - 1)));
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (!body)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    char *out = NULL;
    size_t n = 0;
    int rc = srv_fallback_post(u, "/v1/completions", body, strlen(body), 0, &out, &n, err);
    free(body);
    if (rc)
        return rc;
    cJSON *j = cJSON_ParseWithLength(out, n);
    free(out);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0), "text");
    if (cJSON_IsString(t))
        *text = strdup(t->valuestring);
    cJSON_Delete(j);
    if (!*text)
        return slm_err_set(err, SLM_EIO, "upstream answer has no choices[0].text");
    return 0;
}

int srv_fallback_chat(const srv_upstream *u, const char *const *roles, const char *const *contents, int n_msgs,
                      int max_tokens, double temperature, double top_p, uint64_t seed, char **text, slm_err *err)
{
    *text = NULL;
    cJSON *req = cJSON_CreateObject(), *msgs = cJSON_AddArrayToObject(req, "messages");
    for (int i = 0; msgs && i < n_msgs; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", roles[i]);
        cJSON_AddStringToObject(m, "content", contents[i]);
        cJSON_AddItemToArray(msgs, m);
    }
    cJSON_AddNumberToObject(req, "max_tokens", max_tokens > 0 ? max_tokens : 1);
    cJSON_AddNumberToObject(req, "temperature", temperature);
    cJSON_AddNumberToObject(req, "top_p", top_p);
    cJSON_AddNumberToObject(req, "seed", (double)(seed & ((1ull << 53) - 1)));
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (!body)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    char *out = NULL;
    size_t n = 0;
    int rc = srv_fallback_post(u, "/v1/chat/completions", body, strlen(body), 0, &out, &n, err);
    free(body);
    if (rc)
        return rc;
    cJSON *j = cJSON_ParseWithLength(out, n);
    free(out);
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "message"), "content");
    if (cJSON_IsString(t))
        *text = strdup(t->valuestring);
    cJSON_Delete(j);
    if (!*text)
        return slm_err_set(err, SLM_EIO, "upstream answer has no choices[0].message.content");
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double srv_confidence(const float *lp, size_t stride_bytes, int n, double q)
{
    if (n <= 0)
        return 1;
    double *p = malloc(sizeof *p * (size_t)n);
    if (!p)
        return 1;
    for (int i = 0; i < n; i++)
        p[i] = exp(*(const float *)((const char *)lp + stride_bytes * (size_t)i));
    qsort(p, (size_t)n, sizeof *p, cmp_d);
    int k = (int)floor(q * (n - 1) + 0.5); /* nearest rank */
    double v = p[k < 0 ? 0 : k >= n ? n - 1 : k];
    free(p);
    return v;
}
