/* serve/sched.c — the slot loop: one scheduler thread moves queued jobs into free slots,
 * prefills them (reusing each slot's cached prompt prefix), then runs every busy slot's
 * next token in one srv_engine_step per iteration ("slots decode together"). */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

#include "srv_internal.h"

double srv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

srv_job *srv_job_new(void)
{
    srv_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    pthread_cond_init(&j->cv, NULL);
    j->refs = 1;
    j->fd = -1;
    j->slot = -1;
    return j;
}

static void job_free(srv_job *j)
{
    srv_engine_unref(j->eng);
    pthread_cond_destroy(&j->cv);
    srv_request_free(&j->req);
    srv_sampler_free(j->sampler);
    free(j->ids);
    free(j->text);
    free(j->toks);
    free(j);
}

void srv_job_unref(srv_server *s, srv_job *j)
{
    pthread_mutex_lock(&s->mu);
    int last = --j->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        job_free(j);
}

int srv_job_sampler(srv_job *j, srv_engine *e)
{
    uint64_t seed = j->req.seed;
    if (!j->req.seed_set) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec;
    }
    srv_sampler_free(j->sampler);
    j->sampler = srv_engine_sampler(e, j->req.temperature, j->req.top_p, seed);
    return j->sampler ? 0 : -1;
}

int srv_job_prepare(srv_server *s, srv_job *j, int *over_context)
{
    srv_engine *e = j->eng;
    slm_err err = {0};
    size_t n_ids = 0;
    *over_context = 0;
    free(j->ids);
    j->ids = NULL;
    int rc = j->req.kind == SRV_KIND_CHAT
                 ? srv_engine_tokenize_chat(e, j->req.messages, j->req.n_messages, &j->ids, &n_ids, &err)
                 : srv_engine_tokenize_prompt(e, j->req.prompt, &j->ids, &n_ids, &err);
    if (rc) {
        snprintf(j->errmsg, sizeof j->errmsg, "%.255s", err.msg);
        return rc == SLM_EINPUT ? 400 : 500;
    }
    int n_ctx = srv_engine_n_ctx(e);
    j->n_ids = (int)n_ids;
    if (n_ids >= (size_t)n_ctx || (j->req.max_tokens > 0 && (long)n_ids + j->req.max_tokens > n_ctx)) {
        snprintf(j->errmsg, sizeof j->errmsg,
                 "the prompt (%zu tokens) plus max_tokens (%d) exceeds the context length %d", n_ids,
                 j->req.max_tokens, n_ctx);
        *over_context = 1;
        return 400;
    }
    j->max_tokens = j->req.max_tokens > 0 ? j->req.max_tokens : s->o.max_tokens_default;
    if (j->max_tokens > n_ctx - (int)n_ids)
        j->max_tokens = n_ctx - (int)n_ids;
    if (srv_job_sampler(j, e)) {
        snprintf(j->errmsg, sizeof j->errmsg, "out of memory");
        return 500;
    }
    return 0;
}

int srv_submit(srv_server *s, srv_job *j)
{
    pthread_mutex_lock(&s->mu);
    if (s->stop || s->draining || s->q_len + s->n_active >= s->o.max_queue + s->o.n_parallel) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    j->refs++;
    j->state = JOB_QUEUED;
    j->t_enqueue = srv_now();
    j->next = NULL;
    if (s->q_tail)
        s->q_tail->next = j;
    else
        s->q_head = j;
    s->q_tail = j;
    s->q_len++;
    pthread_cond_signal(&s->sched_cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* The client hung up (its socket reads EOF or errors)? */
static int client_gone(int fd)
{
    if (fd < 0)
        return 0;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Under s->mu: the job leaves its slot (if any), wakes its HTTP side, drops the scheduler's ref. */
static void finish_locked(srv_server *s, srv_job *j, int status, const char *msg)
{
    if (status) {
        j->status = status;
        if (msg != j->errmsg)
            snprintf(j->errmsg, sizeof j->errmsg, "%.255s", msg);
    }
    if (!j->finish)
        j->finish = status ? "error" : "stop";
    if (j->cancelled)
        srv_metrics_cancelled(s->m, s->stop ? "server_stopping" : j->deferred ? "deferred_to_fallback" : "client_gone");
    j->safe = j->len;
    j->state = JOB_DONE;
    j->t_end = srv_now();
    /* counted before anyone is woken: a client that reads /metrics after its answer sees it */
    srv_metrics_tokens(s->m, j->slot >= 0 ? j->n_ids : 0, j->n_reused, j->n_gen);
    if (!j->cancelled && !status)
        srv_metrics_latency(s->m, j->t_end - j->t_enqueue, j->t_first ? j->t_first - j->t_enqueue : -1);
    if (j->slot >= 0 && s->active[j->slot] == j) {
        s->active[j->slot] = NULL;
        s->n_active--;
    }
    pthread_cond_broadcast(&j->cv);
    pthread_cond_broadcast(&s->idle_cv);
    if (--j->refs == 0)
        job_free(j);
}

static int append(srv_job *j, const char *p, size_t n)
{
    if (j->len + n + 1 > j->cap) {
        size_t nc = (j->len + n + 1) * 2;
        char *t = realloc(j->text, nc);
        if (!t)
            return -1;
        j->text = t;
        j->cap = nc;
    }
    memcpy(j->text + j->len, p, n);
    j->len += n;
    j->text[j->len] = 0;
    return 0;
}

/* Under s->mu: add a sampled token's text; apply stop sequences; advance `safe`.
 * Returns 1 when the job is finished (stop sequence hit). */
static int add_token_locked(srv_server *s, srv_job *j, const srv_tokinfo *ti)
{
    char piece[256], *big = NULL;
    const char *pp = piece;
    size_t pn = srv_engine_piece(j->eng, ti->id, piece, sizeof piece);
    if (pn > sizeof piece) {
        if (!(big = malloc(pn)))
            return -1;
        srv_engine_piece(j->eng, ti->id, big, pn);
        pp = big;
    }
    size_t before = j->len;
    int rc = append(j, pp, pn);
    free(big);
    if (rc)
        return -1;
    if (j->n_toks == j->toks_cap) {
        int nc = j->toks_cap ? j->toks_cap * 2 : 64;
        srv_tokinfo *t = realloc(j->toks, sizeof *t * (size_t)nc);
        if (!t)
            return -1;
        j->toks = t;
        j->toks_cap = nc;
    }
    j->toks[j->n_toks] = *ti;
    j->toks[j->n_toks++].text_end = j->len;
    /* the earliest stop sequence that ends in the new text cuts the output there */
    size_t cut = (size_t)-1;
    for (int k = 0; k < j->req.n_stop; k++) {
        size_t L = strlen(j->req.stop[k]);
        size_t from = before + 1 >= L ? before + 1 - L : 0;
        if (j->len - from < L)
            continue;
        char *hit = memmem(j->text + from, j->len - from, j->req.stop[k], L);
        if (hit && (size_t)(hit - j->text) < cut)
            cut = (size_t)(hit - j->text);
    }
    if (cut != (size_t)-1) {
        j->len = cut;
        j->text[cut] = 0;
        while (j->n_toks > 0 && (j->n_toks > 1 ? j->toks[j->n_toks - 2].text_end : 0) >= cut)
            j->n_toks--; /* tokens that start at or after the cut are not part of the answer */
        if (j->n_toks && j->toks[j->n_toks - 1].text_end > cut)
            j->toks[j->n_toks - 1].text_end = cut;
        j->finish = "stop";
        j->safe = j->len;
        return 1;
    }
    /* hold back a tail that may be the start of a stop sequence, and an incomplete UTF-8 sequence */
    size_t hold = 0;
    for (int k = 0; k < j->req.n_stop; k++) {
        size_t L = strlen(j->req.stop[k]);
        for (size_t m = L - 1 < j->len ? L - 1 : j->len; m > hold; m--)
            if (!memcmp(j->text + j->len - m, j->req.stop[k], m)) {
                hold = m;
                break;
            }
    }
    j->safe = srv_utf8_complete(j->text, j->len - hold);
    return 0;
}

static void *sched_main(void *arg)
{
    srv_server *s = arg;
    int N = s->o.n_parallel;
    srv_job **act = calloc((size_t)N, sizeof *act);
    int *step_slot = calloc((size_t)N, sizeof *step_slot), *prefilled = calloc((size_t)N, sizeof *prefilled);
    int32_t *step_tok = calloc((size_t)N, sizeof *step_tok);
    slm_err err;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->pending && !s->n_active) { /* reload: no slot busy, switch engines */
            srv_engine *old = s->eng;
            s->eng = s->pending;
            s->pending = NULL;
            s->reloads++;
            pthread_mutex_unlock(&s->mu);
            srv_engine_unref(old);
            pthread_mutex_lock(&s->mu);
        }
        srv_engine *E = s->eng;
        for (int k = 0; k < N && s->q_head && !s->pending; k++) {
            if (s->active[k])
                continue;
            srv_job *j = s->q_head;
            s->q_head = j->next;
            if (!s->q_head)
                s->q_tail = NULL;
            s->q_len--;
            if (j->cancelled || s->stop || client_gone(j->fd)) {
                j->cancelled = 1;
                finish_locked(s, j, 499, "cancelled");
                k--;
                continue;
            }
            if (j->eng != E) { /* queued before a reload: tokenize again for the new model */
                srv_engine_unref(j->eng);
                j->eng = srv_engine_ref(E);
                int over = 0, st = srv_job_prepare(s, j, &over);
                if (st) {
                    finish_locked(s, j, st, j->errmsg);
                    k--;
                    continue;
                }
            }
            j->state = JOB_RUNNING;
            j->slot = k;
            j->t_start = srv_now();
            s->active[k] = j;
            s->n_active++;
            prefilled[k] = 0;
        }
        if (!s->n_active) {
            if (s->stop)
                break;
            pthread_cond_wait(&s->sched_cv, &s->mu);
            continue;
        }
        memcpy(act, s->active, sizeof *act * (size_t)N);
        int stopping = s->stop;
        pthread_mutex_unlock(&s->mu);

        int n_step = 0;
        for (int k = 0; k < N; k++) {
            srv_job *j = act[k];
            if (!j)
                continue;
            memset(&err, 0, sizeof err);
            int gone = stopping || j->cancelled || client_gone(j->fd);
            int rc = 0;
            if (!gone && !prefilled[k]) {
                double tp = srv_now();
                rc = srv_engine_prefill(E, k, j->ids, j->n_ids, &j->n_reused, &err);
                prefilled[k] = 1;
                if (!rc)
                    srv_metrics_timing(s->m, j->n_ids - j->n_reused, srv_now() - tp, 0, 0);
            }
            srv_tokinfo ti = {0};
            int done = 0;
            if (!gone && !rc) {
                const float *logits = srv_engine_logits(E, k);
                ti.id = srv_sampler_sample(j->sampler, logits);
                if (!j->req.ignore_eos && srv_engine_is_eog(E, ti.id)) {
                    done = 1;
                } else {
                    ti.n_top = j->req.logprobs ? j->req.top_logprobs : 0;
                    srv_logprobs(logits, srv_engine_n_vocab(E), ti.id, ti.n_top, &ti.lp, ti.top, ti.top_lp);
                }
            }
            pthread_mutex_lock(&s->mu);
            if (gone) {
                j->cancelled = 1;
                finish_locked(s, j, 499, "cancelled: the client disconnected or the server is stopping");
            } else if (rc) {
                finish_locked(s, j, rc == SLM_EINPUT ? 400 : 500, err.msg);
            } else if (done) {
                j->finish = "stop";
                finish_locked(s, j, 0, NULL);
            } else {
                if (!j->t_first)
                    j->t_first = srv_now();
                j->n_gen++;
                int r = add_token_locked(s, j, &ti);
                if (r < 0)
                    finish_locked(s, j, 500, "out of memory");
                else if (r > 0)
                    finish_locked(s, j, 0, NULL);
                else if (j->n_gen >= j->max_tokens || srv_engine_n_past(E, k) >= srv_engine_n_ctx(E)) {
                    j->finish = "length";
                    finish_locked(s, j, 0, NULL);
                } else {
                    pthread_cond_broadcast(&j->cv);
                    step_slot[n_step] = k;
                    step_tok[n_step++] = ti.id;
                }
            }
            pthread_mutex_unlock(&s->mu);
        }
        double ts = srv_now();
        int rc = n_step ? srv_engine_step(E, step_slot, step_tok, n_step, &err) : 0;
        if (n_step && !rc)
            srv_metrics_timing(s->m, 0, 0, n_step, srv_now() - ts);
        pthread_mutex_lock(&s->mu);
        if (rc)
            for (int i = 0; i < n_step; i++)
                if (s->active[step_slot[i]]) {
                    srv_engine_reset(E, step_slot[i]);
                    finish_locked(s, s->active[step_slot[i]], 500, err.msg);
                }
    }
    pthread_mutex_unlock(&s->mu);
    free(act);
    free(step_slot);
    free(step_tok);
    free(prefilled);
    return NULL;
}

int srv_sched_start(srv_server *s, slm_err *err)
{
    if (!(s->active = calloc((size_t)s->o.n_parallel, sizeof *s->active)))
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    if (pthread_create(&s->sched, NULL, sched_main, s))
        return slm_err_set(err, SLM_EINTERNAL, "cannot start the scheduler thread");
    return 0;
}

/* Cancels whatever still runs or waits, joins the thread. */
void srv_sched_stop(srv_server *s)
{
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->sched_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->sched, NULL);
    free(s->active);
    s->active = NULL;
}
