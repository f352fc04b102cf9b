/* serve/route.c — local answer or cloud fallback for `slm run` and `slm chat` (route.h). */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "route.h"

/* The model needs more than the budget: SLM_OK with *over set when the fallback may answer,
 * else an error naming what stops it (what means "the prompt" or "the conversation"). */
static int over_budget(const char *path, int n_ctx, uint32_t type_k, uint32_t type_v, const srv_route_opts *ro,
                       const char *what, int *over,
                       slm_err *err)
{
    *over = 0;
    if (!ro->mem_budget)
        return SLM_OK;
    uint64_t need = 0;
    int rc = srv_engine_estimate(path, n_ctx, 1, type_k, type_v, &need, err);
    if (rc || need <= ro->mem_budget)
        return rc;
    if (!ro->up.url || ro->priv)
        return slm_err_set(err, SLM_EINPUT, "the model needs %llu bytes, more than --mem-budget %llu%s",
                           (unsigned long long)need, (unsigned long long)ro->mem_budget,
                           ro->up.url ? what : "");
    *over = 1;
    return SLM_OK;
}

/* The local answer's confidence is below the threshold: the fallback's answer replaces
 * *text, unless private or the upstream fails (then the local one stands, upstream says why). */
static void low_confidence(const srv_route_opts *ro, const float *lps, int n, const char **route,
                           const char **reason, slm_err *upstream, char **text, size_t *len,
                           int (*ask)(const void *ctx, char **out, slm_err *err), const void *ctx)
{
    if (!ro->up.url || ro->confidence <= 0 || srv_confidence(lps, sizeof *lps, n, 0.1) >= ro->confidence)
        return;
    char *ft = NULL;
    if (ro->priv) {
        *reason = "private_low_confidence";
    } else if (ask(ctx, &ft, upstream)) {
        *reason = "low_confidence_upstream_failed";
        if (!upstream->code)
            upstream->code = SLM_EIO;
    } else {
        free(*text);
        *text = ft;
        *len = strlen(ft);
        *route = "fallback";
        *reason = "low_confidence";
    }
}

/* ---- slm run ---- */

typedef struct run_sink {
    const srv_run_req *q;
    int collect, oom, n_vocab;
    slm_buf text;
    float *lps;        /* log-probabilities of the sampled tokens (with a fallback) */
    size_t n_lps, cap_lps;
} run_sink;

static int run_token(void *user, const char *piece, size_t len, int32_t tok, const float *logits)
{
    run_sink *o = user;
    if (o->q->ro.up.url) { /* the answer's confidence: its tokens' probabilities under the model */
        float lp = 0;
        srv_logprobs(logits, o->n_vocab, tok, 0, &lp, NULL, NULL);
        if (SLM_PUSH(o->lps, o->n_lps, o->cap_lps, lp))
            return o->oom = 1;
    }
    if (o->collect) {
        if (slm_buf_append(&o->text, piece, len))
            return o->oom = 1;
    } else if (o->q->stream) {
        o->q->stream(o->q->user, piece, len);
    }
    return 0;
}

static int ask_completion(const void *ctx, char **out, slm_err *err)
{
    const srv_run_req *q = ctx;
    return srv_fallback_complete(&q->ro.up, q->prompt, q->n_predict, q->sp.temp, q->sp.top_p, q->sp.seed, out, err);
}

/* Open the model, tokenize the prompt; *fallback set when the fallback must answer instead. */
static int run_prepare(const srv_run_req *q, srv_run_res *r, slm_lm **m, int32_t **ids, size_t *n_ids,
                       const char **fallback, slm_err *err)
{
    int rc = slm_pl_open(q->model_path, q->n_ctx, 0, q->n_threads, q->type_k, q->type_v, m, err);
    if (rc)
        return rc;
    snprintf(r->arch, sizeof r->arch, "%s", slm_lm_arch(*m));
    int n_ctx = r->n_ctx = slm_lm_n_ctx(*m);
    r->kv_bytes = slm_pl_kv_bytes(*m, n_ctx);
    if (!q->msgs && (rc = slm_pl_prompt_ids(*m, q->prompt, q->prompt_len, ids, n_ids, err)))
        return rc;
    if (q->ro.up.url && *n_ids + (size_t)q->n_predict > (size_t)n_ctx) {
        if (q->ro.priv)
            return slm_err_set(err, SLM_EINPUT, "the prompt (%zu tokens) plus -n %d exceeds the context length %d, "
                               "and --private: the prompt never leaves this device", *n_ids, q->n_predict, n_ctx);
        *fallback = "context";
        return SLM_OK;
    }
    return SLM_OK; /* a prompt longer than the context: slm_pl_generate says so */
}

/* The model generates; then the fallback may replace a low-confidence answer. */
static int run_local(const srv_run_req *q, slm_lm *m, const int32_t *ids, size_t n_ids, srv_run_res *r, slm_err *err)
{
    run_sink o = {.q = q, .collect = q->collect || q->ro.up.url, .n_vocab = m->n_sample};
    slm_pl_gen g = {.sp = q->sp, .max_tokens = q->n_predict, .ids = ids, .n_ids = n_ids, .msgs = q->msgs,
                    .n_msgs = q->n_msgs, .chat_template = q->chat_template};
    r->local = 1;
    int rc = slm_pl_generate(m, &g, run_token, &o, err);
    r->t_load = slm_pl_now() - q->t_start - g.t_prompt - g.t_gen;
    r->prompt_tokens = g.prompt_tokens;
    r->generated = g.generated;
    r->n_eval = g.n_eval;
    r->t_prompt = g.t_prompt;
    r->t_gen = g.t_gen;
    r->stop = g.stop;
    if (!rc && o.oom)
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    r->text = o.text.p;
    r->len = o.text.len;
    if (!rc)
        low_confidence(&q->ro, o.lps, r->generated, &r->route, &r->reason, &r->upstream, &r->text, &r->len,
                       ask_completion, q);
    free(o.lps);
    return rc;
}

int srv_run(const srv_run_req *q, srv_run_res *r, slm_err *err)
{
    memset(r, 0, sizeof *r);
    r->route = "local";
    r->reason = "ok";
    r->stop = SLM_STOP_LENGTH;
    slm_lm *m = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    const char *fallback = NULL;
    int over = 0;
    int rc = over_budget(q->model_path, q->n_ctx, q->type_k, q->type_v, &q->ro, " (and --private: the prompt never leaves this device)",
                         &over, err);
    if (!rc && over)
        fallback = "memory";
    if (!rc && !fallback)
        rc = run_prepare(q, r, &m, &ids, &n_ids, &fallback, err);
    if (!rc && fallback) { /* the local model cannot answer: the upstream does, or a clear error */
        r->route = "fallback";
        r->reason = fallback;
        if (!(rc = ask_completion(q, &r->text, err)))
            r->len = strlen(r->text);
    } else if (!rc) {
        rc = run_local(q, m, ids, n_ids, r, err);
    }
    slm_lm_close(m);
    free(ids);
    return rc;
}

void srv_run_res_free(srv_run_res *r)
{
    free(r->text);
    r->text = NULL;
}

/* ---- slm chat ---- */

struct srv_chat {
    slm_pl_chat *pc;               /* NULL: only the fallback answers */
    srv_route_opts ro;
    slm_sampler_params sp;
    const char *system_msg;
    /* the conversation as the fallback gets it (with a fallback) */
    const char **roles;
    char **contents;
    int n_hist, cap_hist;
};

int srv_chat_open(const char *path, int n_ctx, int n_threads, uint32_t type_k, uint32_t type_v,
                  const char *template_name,
                  const slm_sampler_params *sp, const char *system_msg, const srv_route_opts *ro, srv_chat **out,
                  slm_err *err)
{
    *out = NULL;
    srv_chat *c = calloc(1, sizeof *c);
    if (!c)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    c->ro = *ro;
    c->sp = *sp;
    c->system_msg = system_msg;
    int over = 0; /* as slm run: a model over the budget is not loaded; the fallback answers */
    int rc = over_budget(path, n_ctx, type_k, type_v, ro, " (and --private: the conversation never leaves this device)", &over, err);
    if (!rc && !over)
        rc = slm_pl_chat_open(path, n_ctx, n_threads, type_k, type_v, template_name, sp, system_msg, &c->pc, err);
    if (rc) {
        srv_chat_free(c);
        return rc;
    }
    *out = c;
    return SLM_OK;
}

int srv_chat_remote(const srv_chat *c) { return !c->pc; }

static void history_clear(srv_chat *c)
{
    for (int i = 0; i < c->n_hist; i++)
        free(c->contents[i]);
    c->n_hist = 0;
}

void srv_chat_free(srv_chat *c)
{
    if (!c)
        return;
    history_clear(c);
    free(c->contents);
    free(c->roles);
    slm_pl_chat_free(c->pc);
    free(c);
}

void srv_chat_clear(srv_chat *c)
{
    if (c->pc)
        slm_pl_chat_clear(c->pc);
    history_clear(c);
}

/* One message onto the fallback's copy of the conversation (text copied). */
static int history_add(srv_chat *c, const char *role, const char *text, size_t len, slm_err *err)
{
    if (c->n_hist == c->cap_hist) {
        int cap = c->cap_hist ? 2 * c->cap_hist : 8;
        const char **nr = realloc(c->roles, sizeof *nr * (size_t)cap);
        if (nr)
            c->roles = nr;
        char **nc = nr ? realloc(c->contents, sizeof *nc * (size_t)cap) : NULL;
        if (!nc)
            return slm_err_set(err, SLM_EINTERNAL, "out of memory");
        c->contents = nc;
        c->cap_hist = cap;
    }
    if (!(c->contents[c->n_hist] = strndup(text, len)))
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    c->roles[c->n_hist++] = role;
    return SLM_OK;
}

typedef struct chat_sink {
    srv_piece_fn fn;
    void *user;
    int n_vocab, oom;
    float *lps;        /* with a fallback: log-probabilities of the reply's tokens (not streamed) */
    size_t n_lps, cap_lps;
    int collect_lps;
} chat_sink;

static int chat_token(void *user, const char *piece, size_t len, int32_t tok, const float *logits)
{
    chat_sink *s = user;
    if (s->collect_lps) {
        float lp = 0;
        srv_logprobs(logits, s->n_vocab, tok, 0, &lp, NULL, NULL);
        if (SLM_PUSH(s->lps, s->n_lps, s->cap_lps, lp))
            return s->oom = 1;
    } else if (s->fn) {
        s->fn(s->user, piece, len);
    }
    return 0;
}

typedef struct chat_ask {
    const srv_chat *c;
    int n_predict;
} chat_ask;

static int ask_chat(const void *ctx, char **out, slm_err *err)
{
    const chat_ask *a = ctx;
    const srv_chat *c = a->c;
    return srv_fallback_chat(&c->ro.up, c->roles, (const char *const *)c->contents, c->n_hist, a->n_predict,
                             c->sp.temp, c->sp.top_p, c->sp.seed, out, err);
}

/* The local reply; a low-confidence one may be replaced by the fallback's. */
static int chat_local(srv_chat *c, int n_predict, srv_piece_fn fn, void *user, srv_chat_turn *t, slm_err *err)
{
    chat_sink s = {.fn = fn, .user = user, .n_vocab = slm_pl_chat_n_vocab(c->pc), .collect_lps = !!c->ro.up.url};
    slm_pl_turn pt;
    int rc = slm_pl_chat_reply(c->pc, n_predict, chat_token, &s, &pt, err);
    if (!rc && s.oom) {
        free(pt.text);
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    if (!rc) {
        t->n_prompt = pt.n_prompt;
        t->n_reused = pt.n_reused;
        t->text = pt.text;
        t->len = pt.len;
        chat_ask a = {c, n_predict};
        low_confidence(&c->ro, s.lps, (int)s.n_lps, &t->route, &t->reason, &t->upstream, &t->text, &t->len,
                       ask_chat, &a);
    }
    free(s.lps);
    return rc;
}

/* Where the turn goes before anything is generated: "memory" / "context" for the fallback, or NULL. */
static int chat_pre_route(srv_chat *c, int n_predict, const char **fallback, slm_err *err)
{
    *fallback = NULL;
    if (!c->pc) {
        *fallback = "memory";
        return SLM_OK;
    }
    if (!c->ro.up.url)
        return SLM_OK;
    int np = 0, n_ctx = slm_pl_chat_n_ctx(c->pc); /* prompt + -n over the context: the fallback, as slm run */
    int rc = slm_pl_chat_count(c->pc, &np, err);
    if (rc)
        return rc;
    if ((long long)np + n_predict > n_ctx) {
        if (c->ro.priv)
            return slm_err_set(err, SLM_EINPUT, "the conversation (%d tokens) plus -n %d exceeds the context "
                               "length %d, and --private: it never leaves this device", np, n_predict, n_ctx);
        *fallback = "context";
    }
    return SLM_OK;
}

int srv_chat_say(srv_chat *c, const char *text, size_t len, int n_predict, srv_piece_fn fn, void *user,
                 srv_chat_turn *t, slm_err *err)
{
    memset(t, 0, sizeof *t);
    t->route = "local";
    t->reason = "ok";
    int rc = SLM_OK;
    if (c->ro.up.url) { /* the history, with the system message first */
        if (c->n_hist == 0 && c->system_msg)
            rc = history_add(c, "system", c->system_msg, strlen(c->system_msg), err);
        if (!rc)
            rc = history_add(c, "user", text, len, err);
    }
    if (!rc && c->pc)
        rc = slm_pl_chat_add(c->pc, "user", text, len, err);
    const char *fallback = NULL;
    if (!rc)
        rc = chat_pre_route(c, n_predict, &fallback, err);
    if (!rc && fallback) {
        t->route = "fallback";
        t->reason = fallback;
        chat_ask a = {c, n_predict};
        if (!(rc = ask_chat(&a, &t->text, err)))
            t->len = strlen(t->text);
    } else if (!rc) {
        rc = chat_local(c, n_predict, fn, user, t, err);
    }
    if (!rc && c->ro.up.url)
        rc = history_add(c, "assistant", t->text, t->len, err);
    if (!rc && c->pc)
        rc = slm_pl_chat_add(c->pc, "assistant", t->text, t->len, err);
    return rc;
}

void srv_chat_turn_free(srv_chat_turn *t)
{
    free(t->text);
    t->text = NULL;
}
