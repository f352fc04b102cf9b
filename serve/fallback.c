/* serve/fallback.c — see fallback.h. */
#include "fallback.h"
#include "request.h"

#include <math.h>
#include <pthread.h>
#include <time.h>
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
    srv_sse p = {0};
    slm_err err = {0};
    int ok = srv_sse_feed(&p, b, n, &err) == 0 && srv_sse_finish(&p, &err) == 0;
    srv_sse_free(&p);
    return ok;
}

/* ---- the event-stream parser (srv_sse_*) --------------------------------------------------- */

static int sse_fail(srv_sse *p, slm_err *err, int code, const char *msg)
{
    p->failed = 1;
    return slm_err_set(err, code, "%s", msg);
}

static int sse_line(srv_sse *p, const char *l, size_t n, slm_err *err)
{
    if (n && l[n - 1] == '\r')
        n--;
    if (n == 0 || l[0] == ':')
        return 0;
    if (n < 6 || strncmp(l, "data: ", 6) || p->done)
        return sse_fail(p, err, SLM_EIO, "upstream answer is not an OpenAI-style event stream");
    const char *d = l + 6;
    size_t dn = n - 6;
    if (dn == 6 && !strncmp(d, "[DONE]", 6)) {
        p->done = 1;
    } else {
        /* JSON text relayed as it is: valid UTF-8, no control bytes (JSON escapes them in strings) */
        for (size_t i = 0; i < dn; i++)
            if ((unsigned char)d[i] < 0x20 && d[i] != '\t')
                return sse_fail(p, err, SLM_EIO, "upstream event has a control byte");
        if (!srv_utf8_valid(d, dn))
            return sse_fail(p, err, SLM_EIO, "upstream event is not valid UTF-8");
        cJSON *j = cJSON_ParseWithLength(d, dn);
        int ok = cJSON_IsObject(j);
        cJSON_Delete(j);
        if (!ok)
            return sse_fail(p, err, SLM_EIO, "upstream answer is not an OpenAI-style event stream");
        p->events++;
    }
    if (p->fn && p->fn(p->user, d, dn))
        return sse_fail(p, err, SLM_EINTERNAL, "out of memory");
    return 0;
}

int srv_sse_feed(srv_sse *p, const char *b, size_t n, slm_err *err)
{
    if (p->failed)
        return slm_err_set(err, SLM_EIO, "upstream answer is not an OpenAI-style event stream");
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(b + i, '\n', n - i);
        size_t k = nl ? (size_t)(nl - (b + i)) : n - i;
        if (p->n + k > SRV_SSE_MAX_LINE)
            return sse_fail(p, err, SLM_EIO, "upstream event stream has a line over 1 MiB");
        if (nl && p->n == 0) { /* a whole line in the buffer: no copy */
            int rc = sse_line(p, b + i, k, err);
            if (rc)
                return rc;
        } else {
            if (p->n + k + 1 > p->cap) {
                size_t nc = (p->n + k + 1) * 2;
                char *t = realloc(p->line, nc);
                if (!t)
                    return sse_fail(p, err, SLM_EINTERNAL, "out of memory");
                p->line = t;
                p->cap = nc;
            }
            memcpy(p->line + p->n, b + i, k);
            p->n += k;
            if (nl) {
                size_t ln = p->n;
                p->n = 0;
                int rc = sse_line(p, p->line, ln, err);
                if (rc)
                    return rc;
            }
        }
        i += k + (nl ? 1 : 0);
    }
    return 0;
}

int srv_sse_finish(srv_sse *p, slm_err *err)
{
    if (p->failed)
        return slm_err_set(err, SLM_EIO, "upstream answer is not an OpenAI-style event stream");
    if (p->n) {
        size_t ln = p->n;
        p->n = 0;
        int rc = sse_line(p, p->line, ln, err);
        if (rc)
            return rc;
    }
    if (!p->done)
        return sse_fail(p, err, SLM_EIO, "upstream event stream ended without data: [DONE]");
    if (!p->events)
        return sse_fail(p, err, SLM_EIO, "upstream event stream is empty");
    return 0;
}

void srv_sse_free(srv_sse *p)
{
    free(p->line);
    p->line = NULL;
    p->n = p->cap = 0;
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

/* One non-streamed request: req (taken over) gets the sampling fields, goes to path, and the
 * answer's choices[0].text (chat: choices[0].message.content) comes back malloc'd in *text. */
static int ask_upstream(const srv_upstream *u, const char *path, cJSON *req, int chat, int max_tokens,
                        double temperature, double top_p, uint64_t seed, char **text, slm_err *err)
{
    *text = NULL;
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
    int rc = srv_fallback_post(u, path, body, strlen(body), 0, &out, &n, err);
    free(body);
    if (rc)
        return rc;
    cJSON *j = cJSON_ParseWithLength(out, n);
    free(out);
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    const cJSON *t = chat ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "message"), "content")
                          : cJSON_GetObjectItemCaseSensitive(c, "text");
    if (cJSON_IsString(t))
        *text = strdup(t->valuestring);
    cJSON_Delete(j);
    if (!*text)
        return slm_err_set(err, SLM_EIO, "upstream answer has no choices[0].%s", chat ? "message.content" : "text");
    return 0;
}

int srv_fallback_complete(const srv_upstream *u, const char *prompt, int max_tokens, double temperature, double top_p,
                          uint64_t seed, char **text, slm_err *err)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "prompt", prompt);
    return ask_upstream(u, "/v1/completions", req, 0, max_tokens, temperature, top_p, seed, text, err);
}

int srv_fallback_chat(const srv_upstream *u, const char *const *roles, const char *const *contents, int n_msgs,
                      int max_tokens, double temperature, double top_p, uint64_t seed, char **text, slm_err *err)
{
    cJSON *req = cJSON_CreateObject(), *msgs = cJSON_AddArrayToObject(req, "messages");
    for (int i = 0; msgs && i < n_msgs; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", roles[i]);
        cJSON_AddStringToObject(m, "content", contents[i]);
        cJSON_AddItemToArray(msgs, m);
    }
    return ask_upstream(u, "/v1/chat/completions", req, 1, max_tokens, temperature, top_p, seed, text, err);
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

/* ---- a streamed answer relayed event by event (srv_relay_*) ------------------------------- */

typedef struct relay_ev {
    char *data;
    struct relay_ev *next;
} relay_ev;

struct srv_relay {
    pthread_t th;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    relay_ev *head, *tail;   /* validated events not yet taken */
    int finished;            /* the transfer is over */
    int done;                /* [DONE] was seen */
    int abort;               /* srv_relay_free: stop the transfer */
    slm_err err;             /* why it failed (finished && !done) */
    /* owned by the transfer thread */
    srv_upstream u;
    char *url, *auth, *body;
    size_t body_n, total;
    srv_sse sse;             /* the upstream's events, checked */
    int checked_status, bad;
    CURL *c;
};

static int relay_push(srv_relay *r, char *data)
{
    relay_ev *e = malloc(sizeof *e);
    if (!e) {
        free(data);
        return -1;
    }
    e->data = data;
    e->next = NULL;
    pthread_mutex_lock(&r->mu);
    if (r->tail)
        r->tail->next = e;
    else
        r->head = e;
    r->tail = e;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static int relay_event(void *user, const char *d, size_t n)
{
    srv_relay *r = user;
    char *copy = strndup(d, n);
    return !copy || relay_push(r, copy);
}

static size_t relay_data(char *ptr, size_t size, size_t nmemb, void *user)
{
    srv_relay *r = user;
    size_t k = size * nmemb;
    if (!r->checked_status) {
        long status = 0;
        curl_easy_getinfo(r->c, CURLINFO_RESPONSE_CODE, &status);
        r->checked_status = 1;
        if (status != 200) {
            r->bad = 1;
            slm_err_set(&r->err, SLM_EIO, "upstream answered HTTP %ld", status);
            return 0;
        }
    }
    if (r->total + k > r->u.max_bytes) {
        r->bad = 1;
        slm_err_set(&r->err, SLM_EIO, "upstream answer larger than %zu bytes", r->u.max_bytes);
        return 0;
    }
    r->total += k;
    if (srv_sse_feed(&r->sse, ptr, k, &r->err)) {
        r->bad = 1;
        return 0;
    }
    return k;
}

static int relay_progress(void *user, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    srv_relay *r = user;
    pthread_mutex_lock(&r->mu);
    int stop = r->abort;
    pthread_mutex_unlock(&r->mu);
    return stop; /* non-zero aborts the transfer */
}

static void *relay_main(void *arg)
{
    srv_relay *r = arg;
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    if (r->auth)
        h = curl_slist_append(h, r->auth);
    CURL *c = r->c;
    curl_easy_setopt(c, CURLOPT_URL, r->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_n);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, relay_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, relay_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, r);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, r->u.connect_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, r->u.timeout_ms);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode cr = curl_easy_perform(c);
    int sse_rc = !r->bad && cr == CURLE_OK ? srv_sse_finish(&r->sse, &r->err) : 0;
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    pthread_mutex_lock(&r->mu);
    r->done = r->sse.done;
    if (r->bad || sse_rc)
        r->bad = 1; /* r->err says why */
    else if (cr != CURLE_OK)
        slm_err_set(&r->err, SLM_EIO, "upstream %s: %s", cr == CURLE_OPERATION_TIMEDOUT ? "timed out" : "failed",
                    curl_easy_strerror(cr));
    else if (status != 200)
        slm_err_set(&r->err, SLM_EIO, "upstream answered HTTP %ld", status);
    if (r->bad || cr != CURLE_OK || status != 200)
        r->done = 0; /* a failure, even after [DONE] (e.g. garbage behind it) */
    r->finished = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

void srv_relay_free(srv_relay *r)
{
    if (!r)
        return;
    if (r->started) {
        pthread_mutex_lock(&r->mu);
        r->abort = 1;
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->th, NULL);
    }
    for (relay_ev *e = r->head, *nx; e; e = nx) {
        nx = e->next;
        free(e->data);
        free(e);
    }
    if (r->c)
        curl_easy_cleanup(r->c);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->url);
    free(r->auth);
    free(r->body);
    srv_sse_free(&r->sse);
    free(r);
}

int srv_relay_start(const srv_upstream *u, const char *path, const char *body, size_t n, srv_relay **out, slm_err *err)
{
    *out = NULL;
    srv_relay *r = calloc(1, sizeof *r);
    if (!r)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->u = *u;
    size_t ul = strlen(u->url);
    while (ul && u->url[ul - 1] == '/')
        ul--;
    r->url = malloc(ul + strlen(path) + 1);
    r->body = malloc(n + 1);
    r->c = curl_easy_init();
    if (u->key) {
        size_t kn = strlen(u->key) + 32;
        if ((r->auth = malloc(kn)))
            snprintf(r->auth, kn, "Authorization: Bearer %s", u->key);
    }
    if (!r->url || !r->body || !r->c || (u->key && !r->auth)) {
        srv_relay_free(r);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    memcpy(r->url, u->url, ul);
    strcpy(r->url + ul, path);
    memcpy(r->body, body, n);
    r->body[n] = 0;
    r->body_n = n;
    r->sse.fn = relay_event;
    r->sse.user = r;
    if (pthread_create(&r->th, NULL, relay_main, r)) {
        srv_relay_free(r);
        return slm_err_set(err, SLM_EINTERNAL, "cannot start the fallback relay thread");
    }
    r->started = 1;
    *out = r;
    return 0;
}

int srv_relay_next(srv_relay *r, int wait_ms, char **ev, slm_err *err)
{
    *ev = NULL;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->mu);
    while (!r->head && !r->finished)
        if (pthread_cond_timedwait(&r->cv, &r->mu, &until))
            break;
    int rc;
    if (r->head) {
        relay_ev *e = r->head;
        r->head = e->next;
        if (!r->head)
            r->tail = NULL;
        *ev = e->data;
        free(e);
        rc = SRV_RELAY_EVENT;
    } else if (r->finished) {
        rc = r->done ? SRV_RELAY_END : SRV_RELAY_FAILED;
        if (!r->done)
            *err = r->err;
    } else {
        rc = SRV_RELAY_WAIT;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}
