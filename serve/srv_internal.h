/* serve/srv_internal.h — what the server's files share (not a public face). */
#ifndef SLM_SRV_INTERNAL_H
#define SLM_SRV_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "engine.h"
#include "request.h"
#include "serve.h"

enum { JOB_QUEUED = 0, JOB_RUNNING = 1, JOB_DONE = 2 };

typedef struct srv_tokinfo {
    int32_t id;
    float lp;                   /* log-probability of the chosen token */
    size_t text_end;            /* bytes of the generated text after this token */
    int n_top;
    int32_t top[SRV_MAX_TOP_LOGPROBS];
    float top_lp[SRV_MAX_TOP_LOGPROBS];
} srv_tokinfo;

typedef struct srv_job {
    pthread_cond_t cv;          /* signalled (under srv->mu) when the job makes progress */
    int refs;                   /* HTTP side + scheduler side; freed at 0 (under srv->mu) */
    int state;                  /* JOB_* */
    srv_request req;
    int32_t *ids;
    int n_ids, max_tokens;
    int fd;                     /* the client's socket: polled for hang-ups while generating */
    int cancelled;              /* client gone or server stopping */
    int deferred;               /* cancelled because the fallback answers instead (a low-confidence stream) */
    int slot;
    struct srv_job *next;       /* queue link */
    /* output (written by the scheduler under srv->mu) */
    char *text;
    size_t len, cap, safe;      /* safe: bytes that may be sent (no partial stop, complete UTF-8) */
    srv_tokinfo *toks;
    int n_toks, toks_cap;
    const char *finish;         /* "stop" | "length" | NULL while running */
    int status;                 /* HTTP status if it failed (0: ok) */
    char errmsg[256];
    int n_reused, n_gen;        /* prompt tokens taken from the slot's cache; tokens generated */
    double t_enqueue, t_start, t_first, t_end;
    srv_sampler *sampler;
    srv_engine *eng;            /* the engine that tokenized it (a reference) */
    uint64_t id;                /* request number (the answer's id) */
    int64_t created;            /* unix seconds */
} srv_job;

typedef struct srv_metrics srv_metrics;

struct srv_server {
    srv_opts o;
    char *api_key;
    char *model_name;
    srv_engine *eng;            /* the engine new jobs run on (a reference; under mu) */
    srv_engine *pending;        /* loaded by srv_reload: swapped in when no slot is busy */
    int reloads;
    struct MHD_Daemon *mhd;
    int port;
    double t_start;
    pthread_mutex_t mu;
    pthread_cond_t sched_cv;    /* new job queued, or stop */
    pthread_cond_t idle_cv;     /* a job finished (drain waits on it) */
    srv_job *q_head, *q_tail;
    int q_len, n_active, stop, ready, draining;
    int inflight;               /* completion requests not yet answered */
    uint64_t next_id;
    int64_t created;
    pthread_t sched;
    srv_job **active;           /* n_parallel slots */
    srv_metrics *m;
    int mem_fallback;           /* the model exceeds --mem-budget: everything goes to the fallback */
    uint64_t mem_need;          /* its estimated bytes */
    char model_digest[65];      /* for telemetry (when on) */
    char arch[16], quant[16];
};

/* scheduler (sched.c) */
int srv_sched_start(srv_server *s, slm_err *err);
void srv_sched_stop(srv_server *s);
/* Queue a job (takes a reference); 0, or -1 when the queue is full. Under no lock. */
int srv_submit(srv_server *s, srv_job *j);
srv_job *srv_job_new(void);
void srv_job_unref(srv_server *s, srv_job *j);   /* under no lock */

/* metrics (metrics.c) */
srv_metrics *srv_metrics_new(void);
void srv_metrics_free(srv_metrics *m);
void srv_metrics_request(srv_metrics *m, const char *endpoint, int status);
void srv_metrics_route(srv_metrics *m, const char *route, const char *reason);
void srv_metrics_tokens(srv_metrics *m, int prompt, int reused, int gen);
void srv_metrics_latency(srv_metrics *m, double total_s, double ttft_s);
void srv_metrics_rejected(srv_metrics *m, const char *reason);
void srv_metrics_cancelled(srv_metrics *m, const char *reason);
void srv_metrics_timing(srv_metrics *m, int prefill_tokens, double prefill_s, int decode_tokens, double decode_s);
struct tel_snapshot;
void srv_metrics_snapshot(srv_metrics *m, struct tel_snapshot *t);
/* The Prometheus text exposition (malloc'd). */
char *srv_metrics_render(srv_metrics *m, const srv_server *s);

/* A reference to the current engine (under no lock). */
srv_engine *srv_current_engine(srv_server *s);
/* Sampler for a job on engine e (from its request); 0 or -1 (out of memory). */
int srv_job_sampler(srv_job *j, srv_engine *e);
/* Tokenize the job's request on its engine, check the context, set max_tokens. 0, or an HTTP
 * status (400) with j->errmsg set; *over_context 1 when it does not fit. */
int srv_job_prepare(srv_server *s, srv_job *j, int *over_context);

/* utilities */
char *srv_utf8_clean(const char *s, size_t n);   /* invalid sequences -> U+FFFD; malloc'd */
double srv_now(void);

#endif
