/* serve/serve.h — `slm serve`: an OpenAI-compatible HTTP server (libmicrohttpd) over
 * serve/engine.h, with a bounded queue, N slots decoding together, Prometheus metrics.
 * Never prints, never exits: the tool owns signals and messages. */
#ifndef SLM_SERVE_H
#define SLM_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

typedef struct srv_opts {
    const char *model_path;   /* a GGUF path (a verified memfd's /proc/self/fd/N for --bundle/--store) */
    const char *model_name;   /* the id /v1/models lists */
    const char *host;         /* numeric IPv4/IPv6 address; default 127.0.0.1 */
    int port;                 /* 0: any free port (srv_port tells which) */
    int n_parallel;           /* slots (default 1) */
    int n_ctx;                /* per slot; 0: model's, at most 4096 */
    int n_threads;            /* per slot */
    uint32_t type_k, type_v;  /* KV cache types of the slots (0: SLM_TYPE_F32; slm_pl_seq_new) */
    int max_queue;            /* waiting requests beyond the busy slots (default 16) */
    size_t max_body;          /* request body bytes (default 1 MiB) */
    int max_tokens_default;   /* when a request gives none (default 256) */
    const char *api_key;      /* bearer key, or NULL: no authentication */
    int conn_timeout;         /* seconds of client inactivity (slow headers) before closing (default 10) */
    /* cloud fallback (docs/serve.md): off when fallback_url is NULL */
    const char *fallback_url;
    const char *fallback_key;
    double fallback_confidence; /* route after local generation when the confidence is below this; 0: never */
    double fallback_quantile;   /* confidence = this quantile of the per-token probabilities (default 0.1) */
    long fallback_connect_ms;   /* default 2000 */
    long fallback_timeout_ms;   /* default 30000 */
    int fallback_stream_tokens; /* streams: judge the confidence on the first K tokens before sending any (default 16) */
    uint64_t mem_budget;        /* bytes; 0: none. A model that needs more is not loaded (all to fallback) */
    /* telemetry (serve/telemetry.h): a record is spooled (and pushed, with an endpoint) when the
     * server stops, only when telemetry != NULL and its level is not off */
    const struct tel_cfg *telemetry;
    const char *telemetry_dir;
} srv_opts;

typedef struct srv_server srv_server;

void srv_opts_defaults(srv_opts *o);
/* Bind and start answering (503 "loading" until srv_load). */
int srv_start(const srv_opts *o, srv_server **out, slm_err *err) SLM_MUST_CHECK;
/* Then load the model (GET /health answers 503 until it is ready). */
int srv_load(srv_server *s, slm_err *err) SLM_MUST_CHECK;
int srv_port(const srv_server *s);
/* Load another model (e.g. the store's new active slot) and switch to it without dropping a
 * request: running ones finish on the old model, queued ones start on the new one. On error
 * the old model keeps serving. */
int srv_reload(srv_server *s, const char *model_path, slm_err *err) SLM_MUST_CHECK;
/* srv_reload with the active model of an install store, verified again into sealed memory:
 * on success *fd (the descriptor of the model served so far, or -1) is closed and replaced
 * by the new model's; on error nothing changes. */
int srv_reload_store(srv_server *s, const char *store, int *fd, slm_err *err) SLM_MUST_CHECK;
/* Stop accepting connections, let queued and running requests finish (at most timeout_s
 * seconds, then cancel them), stop. Frees s. */
void srv_drain_and_stop(srv_server *s, double timeout_s);

#endif
