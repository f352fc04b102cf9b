/* serve/http.c — libmicrohttpd glue: routing, limits, authentication, streaming, start/drain.
 * One thread per connection (MHD_USE_THREAD_PER_CONNECTION): a completion's connection thread
 * waits for its job on a condition variable; the scheduler (sched.c) does the model work. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "fallback.h"
#include "openai.h"
#include "pipeline.h"
#include "telemetry.h"

typedef struct conn {
    char *body;
    size_t n, cap;
    int too_big;
    int counted; /* a completion counted in s->inflight */
} conn;

/* Per-stream state, freed by MHD when the response is done (or the client left). */
typedef struct stream {
    srv_server *s;
    srv_job *j;
    size_t b_sent;
    int t_sent, phase; /* 0 first chunk, 1 content, 2 usage, 3 [DONE], 4 end */
    char *pend;
    size_t pend_n, pend_off;
} stream;

void srv_opts_defaults(srv_opts *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->n_parallel = 1;
    o->n_threads = 1;
    o->max_queue = 16;
    o->max_body = 1 << 20;
    o->max_tokens_default = 256;
    o->conn_timeout = 10;
    o->fallback_quantile = 0.1;
    o->fallback_connect_ms = 2000;
    o->fallback_timeout_ms = 30000;
    o->fallback_stream_tokens = 16;
}

static enum MHD_Result reply(struct MHD_Connection *c, int status, const char *ctype, char *body, const char *route,
                             int retry_after)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(body ? strlen(body) : 0, body ? body : (char *)"",
                                                             body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    if (route)
        MHD_add_response_header(r, "X-Slm-Route", route);
    if (retry_after) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", retry_after);
        MHD_add_response_header(r, "Retry-After", ra);
    }
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply_error(srv_server *s, struct MHD_Connection *c, const char *ep, int status,
                                   const char *msg, const char *code)
{
    const char *type = status == 401 ? "authentication_error" : status == 503 ? "server_overloaded"
                     : status >= 500 ? "server_error" : "invalid_request_error";
    srv_metrics_request(s->m, ep, status);
    return reply(c, status, "application/json", srv_json_error(msg, type, code), NULL, status == 503 ? 1 : 0);
}

/* Bearer key check: SHA-256 of both sides compared with CRYPTO_memcmp, so neither the
 * time nor the length of the comparison depends on where a wrong key differs. */
static int authorized(const srv_server *s, struct MHD_Connection *c)
{
    if (!s->api_key)
        return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncmp(h, "Bearer ", 7))
        return 0;
    unsigned char a[32], b[32];
    unsigned int na = 0, nb = 0;
    if (!EVP_Digest(h + 7, strlen(h + 7), a, &na, EVP_sha256(), NULL) ||
        !EVP_Digest(s->api_key, strlen(s->api_key), b, &nb, EVP_sha256(), NULL))
        return 0;
    return CRYPTO_memcmp(a, b, 32) == 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream *st = cls;
    srv_server *s = st->s;
    srv_job *j = st->j;
    while (st->pend_off == st->pend_n) {
        free(st->pend);
        st->pend = NULL;
        st->pend_n = st->pend_off = 0;
        if (st->phase == 4)
            return MHD_CONTENT_READER_END_OF_STREAM;
        char *ev = NULL;
        if (st->phase == 3) {
            ev = strdup("[DONE]");
            st->phase = 4;
        } else if (st->phase == 2) {
            ev = j->req.include_usage ? srv_json_usage_chunk(s, j) : NULL;
            st->phase = 3;
        } else {
            pthread_mutex_lock(&s->mu);
            while (j->state != JOB_DONE && j->safe == st->b_sent && st->phase == 1) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&j->cv, &s->mu, &ts);
            }
            int done = j->state == JOB_DONE;
            if (done && j->status) {
                pthread_mutex_unlock(&s->mu);
                if (j->cancelled)
                    return MHD_CONTENT_READER_END_WITH_ERROR;
                ev = srv_json_error(j->errmsg, "server_error", NULL);
                st->phase = 3;
            } else {
                size_t b1 = j->safe;
                int t1 = st->t_sent;
                while (t1 < j->n_toks && (done || j->toks[t1].text_end <= b1))
                    t1++;
                ev = srv_json_chunk(s, j, st->b_sent, b1, st->t_sent, t1, st->phase == 0, NULL);
                st->b_sent = b1;
                st->t_sent = t1;
                st->phase = 1;
                if (done) { /* the last chunk carries the finish reason */
                    char *fin = srv_json_chunk(s, j, b1, b1, t1, t1, 0, j->finish);
                    pthread_mutex_unlock(&s->mu);
                    size_t n1 = ev ? strlen(ev) : 0, n2 = fin ? strlen(fin) : 0;
                    char *both = malloc(n1 + n2 + 16);
                    if (both)
                        snprintf(both, n1 + n2 + 16, "%s\n\ndata: %s", ev ? ev : "{}", fin ? fin : "{}");
                    free(ev);
                    free(fin);
                    ev = both;
                    st->phase = 2;
                    goto have;
                }
            }
            pthread_mutex_unlock(&s->mu);
        }
    have:
        if (!ev)
            continue;
        size_t n = strlen(ev);
        st->pend = malloc(n + 9);
        if (!st->pend) {
            free(ev);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        memcpy(st->pend, "data: ", 6);
        memcpy(st->pend + 6, ev, n);
        memcpy(st->pend + 6 + n, "\n\n", 3);
        st->pend_n = n + 8;
        free(ev);
    }
    size_t k = st->pend_n - st->pend_off < max ? st->pend_n - st->pend_off : max;
    memcpy(buf, st->pend + st->pend_off, k);
    st->pend_off += k;
    return (ssize_t)k;
}

static void stream_free(void *cls)
{
    stream *st = cls;
    pthread_mutex_lock(&st->s->mu);
    st->j->cancelled = 1; /* no-op when finished; stops generation when the client left */
    pthread_mutex_unlock(&st->s->mu);
    srv_job_unref(st->s, st->j);
    free(st->pend);
    free(st);
}

static void upstream_of(const srv_server *s, srv_upstream *u)
{
    u->url = s->o.fallback_url;
    u->key = s->o.fallback_key;
    u->connect_ms = s->o.fallback_connect_ms;
    u->timeout_ms = s->o.fallback_timeout_ms;
    u->max_bytes = 8u << 20;
}

/* A stream relayed from the upstream, event by event as they arrive. */
typedef struct relay_stream {
    srv_server *s;
    srv_relay *r;
    int phase; /* 0 relaying, 1 [DONE] after an error event, 2 end */
    char *pend;
    size_t pend_n, pend_off;
} relay_stream;

static int frame_event(char **pend, size_t *pend_n, size_t *pend_off, char *ev)
{
    size_t n = strlen(ev);
    *pend = malloc(n + 9);
    if (!*pend) {
        free(ev);
        return -1;
    }
    memcpy(*pend, "data: ", 6);
    memcpy(*pend + 6, ev, n);
    memcpy(*pend + 6 + n, "\n\n", 3);
    *pend_n = n + 8;
    *pend_off = 0;
    free(ev);
    return 0;
}

/* Every wait is bounded: srv_relay_next returns within a second, and the transfer itself ends
 * within the fallback's timeout, so a stalled upstream ends the stream with an error event. */
static ssize_t relay_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    relay_stream *rs = cls;
    while (rs->pend_off == rs->pend_n) {
        free(rs->pend);
        rs->pend = NULL;
        rs->pend_n = rs->pend_off = 0;
        if (rs->phase == 2)
            return MHD_CONTENT_READER_END_OF_STREAM;
        char *ev = NULL;
        if (rs->phase == 1) {
            ev = strdup("[DONE]");
            rs->phase = 2;
        } else {
            slm_err err = {0};
            int rc = srv_relay_next(rs->r, 1000, &ev, &err);
            if (rc == SRV_RELAY_WAIT)
                continue;
            if (rc == SRV_RELAY_END)
                return MHD_CONTENT_READER_END_OF_STREAM;
            if (rc == SRV_RELAY_EVENT && !strcmp(ev, "[DONE]"))
                rs->phase = 2; /* nothing after it, whatever follows upstream */
            if (rc == SRV_RELAY_FAILED) {
                char msg[1100];
                snprintf(msg, sizeof msg, "the fallback's stream failed: %s", err.msg);
                srv_metrics_rejected(rs->s->m, "upstream_failed");
                ev = srv_json_error(msg, "upstream_error", "upstream_failed");
                rs->phase = 1;
            }
        }
        if (!ev || frame_event(&rs->pend, &rs->pend_n, &rs->pend_off, ev))
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t k = rs->pend_n - rs->pend_off < max ? rs->pend_n - rs->pend_off : max;
    memcpy(buf, rs->pend + rs->pend_off, k);
    rs->pend_off += k;
    return (ssize_t)k;
}

static void relay_stream_free(void *cls)
{
    relay_stream *rs = cls;
    srv_relay_free(rs->r);
    free(rs->pend);
    free(rs);
}

/* Start relaying the client's own body as a stream: 0 with *out once the upstream's first
 * event arrived (within the fallback's timeouts), else SLM_EIO with err saying why. */
static int relay_open(srv_server *s, conn *cs, const char *url, relay_stream **out, slm_err *err)
{
    *out = NULL;
    srv_upstream u;
    upstream_of(s, &u);
    srv_relay *r = NULL;
    int rc = srv_relay_start(&u, url, cs->body, cs->n, &r, err);
    if (rc)
        return rc;
    char *ev = NULL;
    while ((rc = srv_relay_next(r, 1000, &ev, err)) == SRV_RELAY_WAIT)
        ;
    relay_stream *rs = rc == SRV_RELAY_EVENT ? calloc(1, sizeof *rs) : NULL;
    if (!rs || frame_event(&rs->pend, &rs->pend_n, &rs->pend_off, ev)) {
        if (rc == SRV_RELAY_END)
            slm_err_set(err, SLM_EIO, "upstream event stream is empty");
        else if (rc == SRV_RELAY_EVENT)
            slm_err_set(err, SLM_EINTERNAL, "out of memory");
        if (rc == SRV_RELAY_EVENT && !rs)
            free(ev);
        free(rs);
        srv_relay_free(r);
        return err->code ? err->code : SLM_EIO;
    }
    rs->s = s;
    rs->r = r;
    *out = rs;
    return 0;
}

static enum MHD_Result relay_reply(srv_server *s, struct MHD_Connection *c, const char *ep, relay_stream *rs,
                                   const char *route)
{
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, relay_read, rs, relay_stream_free);
    if (!r) {
        relay_stream_free(rs);
        return reply_error(s, c, ep, 500, "out of memory", NULL);
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Slm-Route", route);
    srv_metrics_request(s->m, ep, 200);
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* Send the client's own body to the upstream; relay its answer (a stream event by event), or 502. */
static enum MHD_Result forward(srv_server *s, struct MHD_Connection *c, conn *cs, const char *ep, const char *url,
                               int is_stream, const char *reason)
{
    srv_upstream u;
    upstream_of(s, &u);
    char *out = NULL;
    size_t n = 0;
    slm_err err = {0};
    char route[96];
    snprintf(route, sizeof route, "fallback; reason=%s", reason);
    srv_metrics_route(s->m, "fallback", reason);
    relay_stream *rs = NULL;
    if (is_stream ? relay_open(s, cs, url, &rs, &err) : srv_fallback_post(&u, url, cs->body, cs->n, 0, &out, &n, &err)) {
        srv_metrics_rejected(s->m, "upstream_failed");
        srv_metrics_request(s->m, ep, 502);
        char msg[1100];
        snprintf(msg, sizeof msg, "the local model cannot answer (%s) and the fallback failed: %s", reason, err.msg);
        return reply(c, 502, "application/json", srv_json_error(msg, "upstream_error", "upstream_failed"), route, 0);
    }
    if (rs)
        return relay_reply(s, c, ep, rs, route);
    srv_metrics_request(s->m, ep, 200);
    return reply(c, 200, "application/json", out, route, 0);
}

/* A request marked private (body "private": true or header X-Slm-Private: 1). */
static int is_private(struct MHD_Connection *c, const srv_request *r)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Slm-Private");
    return r->private_ || (h && (!strcmp(h, "1") || !strcasecmp(h, "true")));
}

static enum MHD_Result not_routable(srv_server *s, struct MHD_Connection *c, const char *ep, const char *reason,
                                    const char *why)
{
    char msg[300];
    snprintf(msg, sizeof msg, "private request: it never leaves this device, and the local model cannot answer it: %s",
             why);
    srv_metrics_rejected(s->m, "private");
    char route[96];
    snprintf(route, sizeof route, "local; reason=private_%s", reason);
    srv_metrics_request(s->m, ep, 422);
    return reply(c, 422, "application/json", srv_json_error(msg, "invalid_request_error", "private_not_routable"),
                 route, 0);
}

static enum MHD_Result completion(srv_server *s, struct MHD_Connection *c, conn *cs, int kind, const char *url)
{
    const char *ep = kind == SRV_KIND_CHAT ? "chat" : "completions";
    slm_err err = {0};
    srv_job *j = srv_job_new();
    if (!j)
        return reply_error(s, c, ep, 500, "out of memory", NULL);
    enum MHD_Result ret;
    int rc = srv_request_parse(cs->body, cs->n, kind, &j->req, &err);
    if (rc) {
        ret = reply_error(s, c, ep, rc == SLM_EINPUT ? 400 : 500, err.msg, NULL);
        goto out;
    }
    int priv = is_private(c, &j->req);
    if (s->mem_fallback) {
        char why[160];
        snprintf(why, sizeof why, "the model needs %llu bytes, more than --mem-budget %llu",
                 (unsigned long long)s->mem_need, (unsigned long long)s->o.mem_budget);
        ret = priv ? not_routable(s, c, ep, "memory", why) : forward(s, c, cs, ep, url, j->req.stream, "memory");
        goto out;
    }
    j->eng = srv_current_engine(s);
    int over = 0, st_code = srv_job_prepare(s, j, &over);
    if (st_code && over) {
        if (s->o.fallback_url && j->req.max_tokens <= SRV_MAX_TOKENS_HARD)
            ret = priv ? not_routable(s, c, ep, "context", j->errmsg) : forward(s, c, cs, ep, url, j->req.stream, "context");
        else {
            srv_metrics_rejected(s->m, "context");
            ret = reply_error(s, c, ep, 400, j->errmsg, "context_length_exceeded");
        }
        goto out;
    }
    if (st_code) {
        ret = reply_error(s, c, ep, st_code, j->errmsg, NULL);
        goto out;
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->fd = ci ? ci->connect_fd : -1;
    pthread_mutex_lock(&s->mu);
    j->id = ++s->next_id;
    pthread_mutex_unlock(&s->mu);
    j->created = (int64_t)time(NULL);
    if (srv_submit(s, j)) {
        srv_metrics_rejected(s->m, "queue_full");
        ret = reply_error(s, c, ep, 503, "the server is busy (queue full); retry later", "queue_full");
        goto out;
    }
    if (j->req.stream) {
        /* Low confidence for a stream: nothing is sent before the first K tokens (or the whole
         * answer, if shorter) are generated; their confidence decides. Below the threshold the
         * upstream's stream is relayed (the local generation goes on until its first event
         * arrives and is cancelled then), else, or when the upstream fails, the local stream. */
        const char *reason = "ok";
        const int K = s->o.fallback_stream_tokens;
        if (s->o.fallback_url && s->o.fallback_confidence > 0 && K > 0) {
            pthread_mutex_lock(&s->mu);
            while (j->state != JOB_DONE && j->n_toks < K) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&j->cv, &s->mu, &ts);
            }
            int gone = j->cancelled, failed = j->state == JOB_DONE && j->status;
            int nk = j->n_toks < K ? j->n_toks : K;
            double conf = srv_confidence(j->toks ? &j->toks[0].lp : NULL, sizeof(srv_tokinfo), nk, s->o.fallback_quantile);
            pthread_mutex_unlock(&s->mu);
            if (gone) {
                srv_metrics_request(s->m, ep, 499);
                ret = MHD_NO;
                goto out;
            }
            if (!failed && conf < s->o.fallback_confidence) {
                if (priv) {
                    reason = "private_low_confidence";
                } else {
                    relay_stream *rs = NULL;
                    slm_err ferr = {0};
                    if (!relay_open(s, cs, url, &rs, &ferr)) {
                        pthread_mutex_lock(&s->mu);
                        j->deferred = 1;
                        j->cancelled = 1; /* the scheduler frees the slot at its next step */
                        pthread_mutex_unlock(&s->mu);
                        srv_metrics_route(s->m, "fallback", "low_confidence");
                        ret = relay_reply(s, c, ep, rs, "fallback; reason=low_confidence");
                        goto out;
                    }
                    srv_metrics_rejected(s->m, "upstream_failed");
                    reason = "low_confidence_upstream_failed";
                }
            }
        }
        char route[96];
        snprintf(route, sizeof route, "local; reason=%s", reason);
        stream *st = calloc(1, sizeof *st);
        struct MHD_Response *r = st ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st,
                                                                        stream_free) : NULL;
        if (!r) {
            free(st);
            pthread_mutex_lock(&s->mu);
            j->cancelled = 1;
            pthread_mutex_unlock(&s->mu);
            ret = reply_error(s, c, ep, 500, "out of memory", NULL);
            goto out;
        }
        st->s = s;
        st->j = j; /* the stream owns our reference now */
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        MHD_add_response_header(r, "X-Slm-Route", route);
        srv_metrics_request(s->m, ep, 200);
        srv_metrics_route(s->m, "local", reason);
        ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    pthread_mutex_lock(&s->mu);
    while (j->state != JOB_DONE) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&j->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    if (j->cancelled) {
        srv_metrics_request(s->m, ep, 499);
        ret = MHD_NO; /* nobody to answer */
    } else if (j->status) {
        ret = reply_error(s, c, ep, j->status, j->errmsg, NULL);
    } else {
        /* after local generation: defer to the fallback when the answer's confidence is low */
        const char *reason = "ok";
        if (s->o.fallback_url && s->o.fallback_confidence > 0 &&
            srv_confidence(j->toks ? &j->toks[0].lp : NULL, sizeof(srv_tokinfo), j->n_toks, s->o.fallback_quantile) <
                s->o.fallback_confidence) {
            if (priv)
                reason = "private_low_confidence";
            else {
                srv_upstream u;
                upstream_of(s, &u);
                char *out = NULL;
                size_t n = 0;
                slm_err ferr = {0};
                if (!srv_fallback_post(&u, url, cs->body, cs->n, 0, &out, &n, &ferr)) {
                    srv_metrics_request(s->m, ep, 200);
                    srv_metrics_route(s->m, "fallback", "low_confidence");
                    ret = reply(c, 200, "application/json", out, "fallback; reason=low_confidence", 0);
                    goto out;
                }
                srv_metrics_rejected(s->m, "upstream_failed");
                reason = "low_confidence_upstream_failed";
            }
        }
        char route[96];
        snprintf(route, sizeof route, "local; reason=%s", reason);
        srv_metrics_request(s->m, ep, 200);
        srv_metrics_route(s->m, "local", reason);
        ret = reply(c, 200, "application/json", srv_json_result(s, j), route, 0);
    }
out:
    srv_job_unref(s, j);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    srv_server *s = cls;
    conn *cs = *con_cls;
    int is_post = !strcmp(method, "POST");
    int kind = !strcmp(url, "/v1/chat/completions") ? SRV_KIND_CHAT : !strcmp(url, "/v1/completions") ? SRV_KIND_COMPLETION : -1;
    const char *ep = kind == SRV_KIND_CHAT ? "chat" : kind == SRV_KIND_COMPLETION ? "completions" : "other";
    if (!cs) {
        if (!(cs = calloc(1, sizeof *cs)))
            return MHD_NO;
        *con_cls = cs;
        if (kind >= 0 && is_post) {
            /* refuse early, before reading a body we would not use */
            if (!authorized(s, c))
                return reply_error(s, c, ep, 401, "missing or wrong API key (Authorization: Bearer ...)", "invalid_api_key");
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl && strtoull(cl, NULL, 10) > s->o.max_body) {
                cs->too_big = 1;
                return reply_error(s, c, ep, 413, "request body too large", "request_too_large");
            }
            pthread_mutex_lock(&s->mu);
            s->inflight++;
            pthread_mutex_unlock(&s->mu);
            cs->counted = 1;
            return MHD_YES;
        }
    }
    if (*upload_size) {
        if (cs->too_big || cs->n + *upload_size > s->o.max_body) {
            cs->too_big = 1;
            *upload_size = 0;
            return reply_error(s, c, ep, 413, "request body too large", "request_too_large");
        }
        if (cs->n + *upload_size + 1 > cs->cap) {
            size_t nc = (cs->n + *upload_size + 1) * 2;
            if (nc > s->o.max_body + 1)
                nc = s->o.max_body + 1;
            char *b = realloc(cs->body, nc);
            if (!b)
                return MHD_NO;
            cs->body = b;
            cs->cap = nc;
        }
        memcpy(cs->body + cs->n, upload_data, *upload_size);
        cs->n += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    if (cs->too_big)
        return MHD_YES;
    if (!strcmp(url, "/health")) {
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
            return reply_error(s, c, "health", 405, "use GET", NULL);
        int ready = __atomic_load_n(&s->ready, __ATOMIC_ACQUIRE);
        srv_metrics_request(s->m, "health", ready ? 200 : 503);
        return reply(c, ready ? 200 : 503, "application/json",
                     strdup(ready ? "{\"status\":\"ok\"}" : "{\"status\":\"loading\"}"), NULL, ready ? 0 : 1);
    }
    if (!authorized(s, c))
        return reply_error(s, c, ep, 401, "missing or wrong API key (Authorization: Bearer ...)", "invalid_api_key");
    if (kind >= 0) {
        if (!is_post)
            return reply_error(s, c, ep, 405, "use POST", NULL);
        if (!__atomic_load_n(&s->ready, __ATOMIC_ACQUIRE))
            return reply_error(s, c, ep, 503, "the model is loading; retry later", "loading");
        return completion(s, c, cs, kind, url);
    }
    if (!strcmp(url, "/v1/models") || !strcmp(url, "/metrics")) {
        if (strcmp(method, "GET"))
            return reply_error(s, c, "other", 405, "use GET", NULL);
        if (url[1] == 'm') {
            if (!__atomic_load_n(&s->ready, __ATOMIC_ACQUIRE))
                return reply_error(s, c, "metrics", 503, "the model is loading; retry later", "loading");
            srv_metrics_request(s->m, "metrics", 200);
            return reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", srv_metrics_render(s->m, s), NULL, 0);
        }
        cJSON *list = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(list, "data"), *mo = cJSON_CreateObject();
        cJSON_AddStringToObject(list, "object", "list");
        cJSON_AddStringToObject(mo, "id", s->model_name);
        cJSON_AddStringToObject(mo, "object", "model");
        cJSON_AddNumberToObject(mo, "created", (double)s->created);
        cJSON_AddStringToObject(mo, "owned_by", "slmkit");
        cJSON_AddItemToArray(data, mo);
        char *body = cJSON_PrintUnformatted(list);
        cJSON_Delete(list);
        if (!body)
            return MHD_NO;
        srv_metrics_request(s->m, "models", 200);
        return reply(c, 200, "application/json", body, NULL, 0);
    }
    return reply_error(s, c, "other", 404, "no such endpoint", NULL);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    srv_server *s = cls;
    conn *cs = *con_cls;
    if (!cs)
        return;
    if (cs->counted) {
        pthread_mutex_lock(&s->mu);
        s->inflight--;
        pthread_cond_broadcast(&s->idle_cv);
        pthread_mutex_unlock(&s->mu);
    }
    free(cs->body);
    free(cs);
    *con_cls = NULL;
}

int srv_start(const srv_opts *o, srv_server **out, slm_err *err)
{
    *out = NULL;
    srv_server *s = calloc(1, sizeof *s);
    if (!s)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    s->o = *o;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->sched_cv, NULL);
    pthread_cond_init(&s->idle_cv, NULL);
    s->t_start = srv_now();
    s->created = (int64_t)time(NULL);
    s->model_name = strdup(o->model_name ? o->model_name : "slm");
    s->api_key = o->api_key ? strdup(o->api_key) : NULL;
    s->m = srv_metrics_new();
    int rc = 0;
    if ((o->fallback_url || o->telemetry) && (rc = srv_fallback_global_init(err)))
        goto fail;
    if (!s->model_name || !s->m || (o->api_key && !s->api_key)) {
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
        goto fail;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC;
    if (inet_pton(AF_INET, o->host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)o->port);
    } else if (inet_pton(AF_INET6, o->host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)o->port);
        flags |= MHD_USE_IPv6;
    } else {
        rc = slm_err_set(err, SLM_EUSAGE, "--host wants a numeric IPv4 or IPv6 address, got '%s'", o->host);
        goto fail;
    }
    s->mhd = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, &ss,
                              MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
                              (unsigned)o->conn_timeout, MHD_OPTION_CONNECTION_LIMIT,
                              (unsigned)(64 + o->max_queue + o->n_parallel), MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                              (unsigned)0, MHD_OPTION_END);
    if (!s->mhd) {
        rc = slm_err_set(err, SLM_EIO, "cannot listen on %s port %d: %s", o->host, o->port, strerror(errno));
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    *out = s;
    return 0;
fail:
    srv_drain_and_stop(s, 0);
    return rc;
}

int srv_load(srv_server *s, slm_err *err)
{
    if (s->o.mem_budget) {
        int erc = srv_engine_estimate(s->o.model_path, s->o.n_ctx, s->o.n_parallel, s->o.type_k, s->o.type_v, &s->mem_need, err);
        if (erc)
            return erc;
        if (s->mem_need > s->o.mem_budget) {
            if (!s->o.fallback_url)
                return slm_err_set(err, SLM_EINPUT, "the model needs %llu bytes, more than --mem-budget %llu (and no --fallback)",
                                   (unsigned long long)s->mem_need, (unsigned long long)s->o.mem_budget);
            s->mem_fallback = 1; /* serve through the fallback only */
            __atomic_store_n(&s->ready, 1, __ATOMIC_RELEASE);
            return 0;
        }
    }
    if (s->o.telemetry && tel_effective(s->o.telemetry) == TEL_ALL) {
        slm_err derr = {0};
        if (tel_file_digest(s->o.model_path, s->model_digest, &derr))
            s->model_digest[0] = 0;
    }
    int rc = srv_engine_load(s->o.model_path, s->o.n_ctx, s->o.n_threads, s->o.n_parallel, s->o.type_k, s->o.type_v, &s->eng,
                             err);
    s->o.model_path = NULL; /* the caller's buffer: not kept */
    if (!rc) {
        srv_engine_describe(s->eng, s->arch, s->quant);
        rc = srv_sched_start(s, err);
    }
    if (!rc)
        __atomic_store_n(&s->ready, 1, __ATOMIC_RELEASE);
    return rc;
}

/* Telemetry at stop: one record of this run's counters to the spool, pushed when an endpoint is set. */
static void telemetry_flush(srv_server *s)
{
    const tel_cfg *c = s->o.telemetry;
    int level = c ? tel_effective(c) : TEL_OFF;
    if (level == TEL_OFF || !s->o.telemetry_dir)
        return;
    tel_snapshot t;
    memset(&t, 0, sizeof t);
    srv_metrics_snapshot(s->m, &t);
    memcpy(t.model_digest, s->model_digest, sizeof t.model_digest);
    snprintf(t.arch, sizeof t.arch, "%s", s->arch[0] ? s->arch : "other");
    snprintf(t.quant, sizeof t.quant, "%s", s->quant[0] ? s->quant : "other");
    char *line = tel_record(&t, c, level);
    slm_err err = {0};
    if (line && !tel_spool_append(s->o.telemetry_dir, line, &err) && c->endpoint[0]) {
        char *body = tel_otlp(line, strlen(line), c);
        if (body && tel_push(c->endpoint, body, &err)) {
            /* a failed push is not retried here: the record stays in the spool (slm telemetry push) */
        }
        free(body);
    }
    free(line);
}

int srv_port(const srv_server *s) { return s->port; }

srv_engine *srv_current_engine(srv_server *s)
{
    pthread_mutex_lock(&s->mu);
    srv_engine *e = srv_engine_ref(s->eng);
    pthread_mutex_unlock(&s->mu);
    return e;
}

int srv_reload(srv_server *s, const char *model_path, slm_err *err)
{
    if (s->mem_fallback || !s->eng)
        return slm_err_set(err, SLM_EUSAGE, "no local model is being served: nothing to reload");
    srv_engine *e = NULL;
    int rc = srv_engine_load(model_path, s->o.n_ctx, s->o.n_threads, s->o.n_parallel, s->o.type_k, s->o.type_v, &e, err);
    if (rc)
        return rc; /* the old model keeps serving */
    char digest[65] = "";
    if (s->o.telemetry && tel_effective(s->o.telemetry) == TEL_ALL) {
        slm_err derr = {0};
        if (tel_file_digest(model_path, digest, &derr))
            digest[0] = 0;
    }
    pthread_mutex_lock(&s->mu);
    srv_engine *old_pending = s->pending;
    s->pending = e; /* the scheduler swaps it in once no slot is busy */
    memcpy(s->model_digest, digest, sizeof digest);
    srv_engine_describe(e, s->arch, s->quant);
    pthread_cond_signal(&s->sched_cv);
    pthread_mutex_unlock(&s->mu);
    srv_engine_unref(old_pending);
    return 0;
}

int srv_reload_store(srv_server *s, const char *store, int *fd, slm_err *err)
{
    char buf[64];
    const char *path = NULL;
    int nfd = -1;
    int rc = slm_pl_model_path(NULL, NULL, NULL, 0, store, buf, sizeof buf, &path, &nfd, err);
    if (!rc)
        rc = srv_reload(s, path, err);
    if (rc) {
        if (nfd >= 0)
            close(nfd);
        return rc;
    }
    if (*fd >= 0)
        close(*fd); /* the old model stays mapped until its last request ends */
    *fd = nfd;
    return SLM_OK;
}

void srv_drain_and_stop(srv_server *s, double timeout_s)
{
    if (!s)
        return;
    if (s->mhd) {
        MHD_socket ls = MHD_quiesce_daemon(s->mhd); /* no new connections */
        if (ls != MHD_INVALID_SOCKET)
            close(ls);
    }
    pthread_mutex_lock(&s->mu);
    s->draining = 1;
    double t_end = srv_now() + timeout_s;
    while ((s->inflight > 0 || s->q_len > 0 || s->n_active > 0) && srv_now() < t_end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->idle_cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    if (s->active)
        srv_sched_stop(s); /* cancels what is left */
    if (s->m && s->ready)
        telemetry_flush(s);
    if (s->mhd)
        MHD_stop_daemon(s->mhd);
    srv_engine_unref(s->eng);
    srv_engine_unref(s->pending);
    srv_metrics_free(s->m);
    free(s->model_name);
    free(s->api_key);
    pthread_cond_destroy(&s->sched_cv);
    pthread_cond_destroy(&s->idle_cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
