/* serve/route.h — who answers `slm run` and `slm chat`: the local model, or the cloud fallback
 * (serve/fallback.h) when the model does not fit the memory budget, the prompt and the reply
 * do not fit its context, or the local answer's confidence is low; never the fallback for
 * private prompts. Local generation goes through the API layer (api/pipeline.h). The tools
 * print; this never prints, never exits. See docs/serve.md. */
#ifndef SLM_SERVE_ROUTE_H
#define SLM_SERVE_ROUTE_H

#include "fallback.h"
#include "pipeline.h"

typedef struct srv_route_opts {
    srv_upstream up;          /* up.url NULL: no fallback */
    double confidence;        /* ask the fallback when the local answer's confidence (the 0.1-quantile
                               * of its tokens' probabilities) is below it; 0: never */
    uint64_t mem_budget;      /* bytes the model may need (weights + KV cache); 0: no limit */
    int priv;                 /* never send anything upstream: fail (or keep the local answer) instead */
} srv_route_opts;

/* Called with each piece of a local answer that is streamed (not collected). */
typedef void (*srv_piece_fn)(void *user, const char *piece, size_t len);

/* ---- slm run ---- */
typedef struct srv_run_req {
    const char *model_path;
    const char *prompt;               /* the prompt ("" for none), prompt_len bytes; or: */
    size_t prompt_len;
    const slm_chat_msg *msgs;         /* a conversation (no fallback), with chat_template or NULL */
    size_t n_msgs;
    const char *chat_template;
    int n_predict, n_ctx, n_threads;  /* n_ctx 0: the model's, at most 4096 */
    uint32_t type_k, type_v;          /* KV cache types (SLM_TYPE_F32, F16, BF16, Q8_0, Q4_0) */
    slm_sampler_params sp;
    int collect;                      /* collect the answer in res->text instead of streaming it */
    srv_piece_fn stream;              /* without collect and without a fallback */
    void *user;
    double t_start;                   /* slm_pl_now() when the command began: load time counts from it */
    srv_route_opts ro;
} srv_run_req;
typedef struct srv_run_res {
    int local;                        /* the local model generated; the statistics below are its */
    char *text;                       /* the collected answer (malloc'd) or NULL, len bytes */
    size_t len;
    const char *route, *reason;       /* "local" / "fallback"; "ok", "memory", "context", "low_confidence",
                                       * "low_confidence_upstream_failed", "private_low_confidence" */
    slm_err upstream;                 /* code != 0: the fallback failed, the local answer stands */
    char arch[32];
    int prompt_tokens, generated, n_eval, n_ctx, stop; /* stop: enum slm_stop */
    uint64_t kv_bytes;                /* the local context's KV cache */
    double t_load, t_prompt, t_gen;   /* seconds */
} srv_run_res;
/* Answer the prompt (or conversation) as `slm run` does. On error the streamed part stays
 * streamed. srv_run_res_free after either. */
int srv_run(const srv_run_req *q, srv_run_res *res, slm_err *err) SLM_MUST_CHECK;
void srv_run_res_free(srv_run_res *r);

/* ---- slm chat ---- */
typedef struct srv_chat srv_chat;
/* The conversation of `slm chat`: the model at path (n_ctx as slm_pl_open; template_name
 * NULL: the model's; KV cache types type_k / type_v), sampled with sp, the system message
 * first (or NULL). A model over
 * ro->mem_budget is not loaded: the fallback answers every turn (an error without one). */
int srv_chat_open(const char *path, int n_ctx, int n_threads, uint32_t type_k, uint32_t type_v,
                  const char *template_name,
                  const slm_sampler_params *sp, const char *system_msg, const srv_route_opts *ro, srv_chat **out,
                  slm_err *err) SLM_MUST_CHECK;
void srv_chat_free(srv_chat *c);
/* 1 when only the fallback answers (the model was over the memory budget). */
int srv_chat_remote(const srv_chat *c);
/* Forget the conversation but the system message. */
void srv_chat_clear(srv_chat *c);
typedef struct srv_chat_turn {
    const char *route, *reason;       /* as srv_run_res */
    int n_prompt, n_reused;           /* local: the prompt's tokens, how many came from the cache */
    char *text;                       /* the reply (malloc'd), len bytes */
    size_t len;
    slm_err upstream;                 /* code != 0: the fallback failed, the local answer stands */
} srv_chat_turn;
/* The user says text (len bytes): the reply, added to the conversation. Without a fallback
 * it streams to fn as it is sampled; with one it is only collected (the route is known at the
 * end). srv_chat_turn_free after either. */
int srv_chat_say(srv_chat *c, const char *text, size_t len, int n_predict, srv_piece_fn fn, void *user,
                 srv_chat_turn *t, slm_err *err) SLM_MUST_CHECK;
void srv_chat_turn_free(srv_chat_turn *t);

#endif
