/* serve/metrics.c — counters, gauges and histograms of the server, rendered in the
 * Prometheus text exposition format (checked by `promtool check metrics` in the tests).
 * Label values are only fixed words of the server (endpoints, codes, routes, reasons) and
 * the model's name and architecture: never anything a client sent. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv_internal.h"
#include "telemetry.h"

#define MAX_SERIES 64
#define N_BUCKETS 12
static const double buckets[N_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

typedef struct series {
    const char *name; /* one of the counter names below */
    char labels[128];
    double v;
} series;

typedef struct histo {
    double count, sum;
    double b[N_BUCKETS];
} histo;

struct srv_metrics {
    pthread_mutex_t mu;
    series s[MAX_SERIES];
    int n;
    double prompt_tokens, cached_tokens, gen_tokens;
    double requests, errors, health, prefill_tokens, prefill_s, decode_tokens, decode_s, decode_steps;
    histo latency, ttft;
};

srv_metrics *srv_metrics_new(void)
{
    srv_metrics *m = calloc(1, sizeof *m);
    if (m)
        pthread_mutex_init(&m->mu, NULL);
    return m;
}

void srv_metrics_free(srv_metrics *m)
{
    if (m) {
        pthread_mutex_destroy(&m->mu);
        free(m);
    }
}

static void bump(srv_metrics *m, const char *name, const char *fmt, ...)
{
    char labels[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(labels, sizeof labels, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&m->mu);
    int i;
    for (i = 0; i < m->n; i++)
        if (m->s[i].name == name && !strcmp(m->s[i].labels, labels))
            break;
    if (i == m->n && m->n < MAX_SERIES) {
        m->s[i].name = name;
        memcpy(m->s[i].labels, labels, sizeof labels);
        m->n++;
    }
    if (i < m->n)
        m->s[i].v += 1;
    pthread_mutex_unlock(&m->mu);
}

static const char REQ[] = "slm_http_requests_total", ROUTE[] = "slm_route_total", REJ[] = "slm_rejected_total",
                  CANC[] = "slm_cancelled_total";

void srv_metrics_request(srv_metrics *m, const char *endpoint, int status)
{
    bump(m, REQ, "endpoint=\"%s\",code=\"%d\"", endpoint, status);
    pthread_mutex_lock(&m->mu);
    m->requests += 1;
    m->errors += status >= 400 && status != 499;
    m->health += !strcmp(endpoint, "health");
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_timing(srv_metrics *m, int prefill_tokens, double prefill_s, int decode_tokens, double decode_s)
{
    pthread_mutex_lock(&m->mu);
    m->prefill_tokens += prefill_tokens;
    m->prefill_s += prefill_s;
    m->decode_tokens += decode_tokens;
    m->decode_steps += decode_tokens > 0;
    m->decode_s += decode_s;
    pthread_mutex_unlock(&m->mu);
}

static double series_value(const srv_metrics *m, const char *name, const char *labels)
{
    for (int i = 0; i < m->n; i++)
        if (m->s[i].name == name && !strcmp(m->s[i].labels, labels))
            return m->s[i].v;
    return 0;
}
void srv_metrics_route(srv_metrics *m, const char *route, const char *reason)
{
    bump(m, ROUTE, "route=\"%s\",reason=\"%s\"", route, reason);
}
void srv_metrics_rejected(srv_metrics *m, const char *reason) { bump(m, REJ, "reason=\"%s\"", reason); }
void srv_metrics_cancelled(srv_metrics *m, const char *reason) { bump(m, CANC, "reason=\"%s\"", reason); }

void srv_metrics_tokens(srv_metrics *m, int prompt, int reused, int gen)
{
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += prompt;
    m->cached_tokens += reused;
    m->gen_tokens += gen;
    pthread_mutex_unlock(&m->mu);
}

static void observe(histo *h, double v)
{
    h->count += 1;
    h->sum += v;
    for (int i = 0; i < N_BUCKETS; i++)
        if (v <= buckets[i])
            h->b[i] += 1;
}

void srv_metrics_latency(srv_metrics *m, double total_s, double ttft_s)
{
    pthread_mutex_lock(&m->mu);
    observe(&m->latency, total_s);
    if (ttft_s >= 0)
        observe(&m->ttft, ttft_s);
    pthread_mutex_unlock(&m->mu);
}

/* the exposition text; a line that does not fit in memory is left out */
typedef slm_buf sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int rc = slm_buf_vprintf(b, fmt, ap); /* out of memory: the scrape gets what fitted */
    va_end(ap);
    (void)rc;
}

/* A label value as the exposition format wants it: \\, \" and \n escaped. */
static void label_escape(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (; *in && o + 3 < cap; in++) {
        if (*in == '\\' || *in == '"') {
            out[o++] = '\\';
            out[o++] = *in;
        } else if (*in == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else
            out[o++] = *in;
    }
    out[o] = 0;
}

static void put_histo(sbuf *b, const char *name, const char *help, const histo *h)
{
    put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (int i = 0; i < N_BUCKETS; i++)
        put(b, "%s_bucket{le=\"%g\"} %.0f\n", name, buckets[i], h->b[i]);
    put(b, "%s_bucket{le=\"+Inf\"} %.0f\n%s_sum %.6f\n%s_count %.0f\n", name, h->count, name, h->sum, name,
        h->count);
}

static void put_family(sbuf *b, const srv_metrics *m, const char *name, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (int i = 0; i < m->n; i++)
        if (m->s[i].name == name)
            put(b, "%s{%s} %.0f\n", name, m->s[i].labels, m->s[i].v);
}

void srv_metrics_snapshot(srv_metrics *m, tel_snapshot *t)
{
    pthread_mutex_lock(&m->mu);
    t->requests = m->requests;
    t->errors = m->errors;
    t->health_checks = m->health;
    t->prompt_tokens = m->prompt_tokens;
    t->generated_tokens = m->gen_tokens;
    t->prefill_tokens = m->prefill_tokens;
    t->prefill_seconds = m->prefill_s;
    t->decode_tokens = m->decode_tokens;
    t->decode_seconds = m->decode_s;
    t->fb_context = series_value(m, ROUTE, "route=\"fallback\",reason=\"context\"");
    t->fb_memory = series_value(m, ROUTE, "route=\"fallback\",reason=\"memory\"");
    t->fb_low_confidence = series_value(m, ROUTE, "route=\"fallback\",reason=\"low_confidence\"");
    t->fb_upstream_failed = series_value(m, REJ, "reason=\"upstream_failed\"");
    for (int i = 0; i < N_BUCKETS && i < TEL_N_BUCKETS; i++) {
        t->ttft_le[i] = buckets[i];
        t->ttft_counts[i] = m->ttft.b[i];
    }
    t->ttft_sum = m->ttft.sum;
    t->ttft_count = m->ttft.count;
    pthread_mutex_unlock(&m->mu);
}

char *srv_metrics_render(srv_metrics *m, const srv_server *s)
{
    sbuf b = {0};
    char name[256], arch[64];
    label_escape(s->model_name, name, sizeof name);
    pthread_mutex_lock((pthread_mutex_t *)&s->mu);
    label_escape(s->arch[0] ? s->arch : "none", arch, sizeof arch);
    int q = s->q_len, busy = s->n_active, reloads = s->reloads;
    pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
    pthread_mutex_lock(&m->mu);
    put(&b, "# HELP slm_model_info The model being served.\n# TYPE slm_model_info gauge\n");
    put(&b, "slm_model_info{model=\"%s\",arch=\"%s\"} 1\n", name, arch);
    put(&b, "# HELP slm_slots Generation slots (--parallel).\n# TYPE slm_slots gauge\nslm_slots %d\n",
        s->o.n_parallel);
    put(&b, "# HELP slm_slots_busy Slots generating now.\n# TYPE slm_slots_busy gauge\nslm_slots_busy %d\n", busy);
    put(&b, "# HELP slm_queue_depth Requests waiting for a slot.\n# TYPE slm_queue_depth gauge\nslm_queue_depth %d\n",
        q);
    put(&b, "# HELP slm_queue_capacity Most requests that may wait (--max-queue).\n# TYPE slm_queue_capacity gauge\n"
            "slm_queue_capacity %d\n", s->o.max_queue);
    put(&b, "# HELP slm_model_reloads_total Models switched in by SIGHUP.\n# TYPE slm_model_reloads_total counter\n"
            "slm_model_reloads_total %d\n", reloads);
    put(&b, "# HELP slm_uptime_seconds Seconds since the server started.\n# TYPE slm_uptime_seconds gauge\n"
            "slm_uptime_seconds %.3f\n", srv_now() - s->t_start);
    put_family(&b, m, REQ, "HTTP requests by endpoint and status code.");
    put_family(&b, m, ROUTE, "Completions by who answered (local, fallback) and why.");
    put_family(&b, m, REJ, "Requests refused before generation, by reason.");
    put_family(&b, m, CANC, "Generations stopped before their end (client gone, server stopping).");
    put(&b, "# HELP slm_prompt_tokens_total Prompt tokens of finished requests.\n# TYPE slm_prompt_tokens_total counter\n"
            "slm_prompt_tokens_total %.0f\n", m->prompt_tokens);
    put(&b, "# HELP slm_prompt_tokens_cached_total Prompt tokens reused from a slot's KV cache.\n"
            "# TYPE slm_prompt_tokens_cached_total counter\nslm_prompt_tokens_cached_total %.0f\n", m->cached_tokens);
    put(&b, "# HELP slm_generated_tokens_total Tokens generated.\n# TYPE slm_generated_tokens_total counter\n"
            "slm_generated_tokens_total %.0f\n", m->gen_tokens);
    put(&b, "# HELP slm_prefill_tokens_total Prompt tokens decoded (not taken from a cache).\n"
            "# TYPE slm_prefill_tokens_total counter\nslm_prefill_tokens_total %.0f\n", m->prefill_tokens);
    put(&b, "# HELP slm_prefill_seconds_total Time spent decoding prompts.\n# TYPE slm_prefill_seconds_total counter\n"
            "slm_prefill_seconds_total %.6f\n", m->prefill_s);
    put(&b, "# HELP slm_decode_tokens_total Tokens decoded one step at a time.\n# TYPE slm_decode_tokens_total counter\n"
            "slm_decode_tokens_total %.0f\n", m->decode_tokens);
    put(&b, "# HELP slm_decode_steps_total Decode steps, each one batched step for every busy slot.\n"
            "# TYPE slm_decode_steps_total counter\nslm_decode_steps_total %.0f\n", m->decode_steps);
    put(&b, "# HELP slm_decode_seconds_total Time spent in decode steps.\n# TYPE slm_decode_seconds_total counter\n"
            "slm_decode_seconds_total %.6f\n", m->decode_s);
    put_histo(&b, "slm_request_duration_seconds", "Time from queueing to the last token.", &m->latency);
    put_histo(&b, "slm_time_to_first_token_seconds", "Time from queueing to the first token.", &m->ttft);
    pthread_mutex_unlock(&m->mu);
    return b.p;
}
