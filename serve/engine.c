/* serve/engine.c — srv_engine on the API layer (api/pipeline.h): one loaded slm_lm, one
 * sequence (slm_pl_seq) per slot, the chat template parsed once. */
#include "engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline.h"

enum { SRV_MAX_STEP = 256 }; /* slots in one batched step (more: one by one) */

typedef struct srv_slot {
    slm_pl_seq *seq;
    int32_t *cached; /* the tokens in the KV cache, in order */
    int n_cached, cap;
} srv_slot;

struct srv_engine {
    slm_lm *lm;
    int n_ctx, n_vocab, n_slots;
    srv_slot *slots;
    slm_pl_chat_fmt *chat;    /* the model's chat template, else the built-in ChatML */
    int refs;
    int one_by_one;           /* SLM_SERVE_BATCH=0 (benchmarks' baseline): slots decoded one after another */
};

srv_engine *srv_engine_ref(srv_engine *e)
{
    if (e)
        __atomic_add_fetch(&e->refs, 1, __ATOMIC_ACQ_REL);
    return e;
}

void srv_engine_unref(srv_engine *e)
{
    if (e && __atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0)
        srv_engine_free(e);
}

int srv_engine_load(const char *path, int n_ctx, int n_threads, int n_slots, uint32_t type_k, uint32_t type_v,
                    srv_engine **out, slm_err *err)
{
    *out = NULL;
    srv_engine *e = calloc(1, sizeof *e);
    if (!e)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    int rc;
    /* model + tokenizer (no larger than the embedding), the context length as `slm run` takes it */
    if ((rc = slm_pl_load(path, &e->lm, err)) || (rc = slm_pl_ctx_len(e->lm, n_ctx, &e->n_ctx, err)) ||
        (rc = slm_pl_chat_fmt_open(e->lm, &e->chat, err)))
        goto fail;
    e->n_vocab = slm_lm_n_vocab(e->lm);
    e->n_slots = n_slots;
    if (!(e->slots = calloc((size_t)n_slots, sizeof *e->slots))) {
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
        goto fail;
    }
    /* Slot 0 also runs the batched steps of every slot (srv_engine_step), all model work being on
     * the scheduler thread: it gets the threads of all slots, up to the CPUs online. */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int work_threads = n_threads * n_slots;
    if (ncpu > 0 && work_threads > ncpu)
        work_threads = ncpu > n_threads ? (int)ncpu : n_threads;
    for (int s = 0; s < n_slots; s++) {
        if ((rc = slm_pl_seq_new(e->lm, e->n_ctx, s == 0 ? work_threads : n_threads, type_k, type_v,
                                 &e->slots[s].seq, err)))
            goto fail;
        e->slots[s].cap = e->n_ctx;
        if (!(e->slots[s].cached = malloc(sizeof(int32_t) * (size_t)e->n_ctx))) {
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
            goto fail;
        }
    }
    const char *sb = getenv("SLM_SERVE_BATCH");
    e->one_by_one = sb && !strcmp(sb, "0");
    e->refs = 1;
    *out = e;
    return 0;
fail:
    srv_engine_free(e);
    return rc;
}

void srv_engine_free(srv_engine *e)
{
    if (!e)
        return;
    for (int s = 0; e->slots && s < e->n_slots; s++) {
        slm_pl_seq_free(e->slots[s].seq);
        free(e->slots[s].cached);
    }
    free(e->slots);
    slm_pl_chat_fmt_free(e->chat);
    slm_lm_close(e->lm);
    free(e);
}

int srv_engine_estimate(const char *path, int n_ctx, int n_slots, uint32_t type_k, uint32_t type_v, uint64_t *bytes,
                        slm_err *err)
{
    return slm_pl_estimate(path, n_ctx, n_slots, type_k, type_v, bytes, err);
}

/* srv_sampler is the API's OpenAI-style sampler under the engine's name. */
srv_sampler *srv_engine_sampler(const srv_engine *e, double temperature, double top_p, uint64_t seed)
{
    return (srv_sampler *)slm_pl_sampler_openai(e->lm, temperature, top_p, seed);
}

int32_t srv_sampler_sample(srv_sampler *s, const float *logits) { return slm_pl_sample((slm_pl_sampler *)s, logits); }
void srv_sampler_free(srv_sampler *s) { slm_pl_sampler_free((slm_pl_sampler *)s); }

int srv_engine_n_ctx(const srv_engine *e) { return e->n_ctx; }
int srv_engine_n_vocab(const srv_engine *e) { return e->n_vocab; }
const char *srv_engine_arch(const srv_engine *e) { return slm_lm_arch(e->lm); }
uint64_t srv_engine_weight_bytes(const srv_engine *e) { return slm_pl_weight_bytes(e->lm); }
void srv_engine_describe(const srv_engine *e, char arch[16], char quant[16]) { slm_pl_describe(e->lm, arch, quant); }

int srv_engine_tokenize_prompt(const srv_engine *e, const char *text, int32_t **ids, size_t *n, slm_err *err)
{
    return slm_pl_prompt_ids(e->lm, text, strlen(text), ids, n, err);
}

/* The messages ("developer" read as "system") through the chat template, tokenized. */
int srv_engine_tokenize_chat(const srv_engine *e, const srv_message *msgs, int n_msgs, int32_t **ids, size_t *n,
                             slm_err *err)
{
    slm_message *m = calloc(n_msgs > 0 ? (size_t)n_msgs : 1, sizeof *m);
    if (!m)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    for (int i = 0; i < n_msgs; i++) {
        m[i].role = strcmp(msgs[i].role, "developer") ? msgs[i].role : "system";
        m[i].content = msgs[i].content;
    }
    int rc = slm_pl_chat_fmt_ids(e->lm, e->chat, m, (size_t)n_msgs, ids, n, err);
    free(m);
    return rc;
}

int srv_engine_chat_builtin(const srv_engine *e) { return slm_pl_chat_fmt_builtin(e->chat); }

size_t srv_engine_piece(const srv_engine *e, int32_t id, char *buf, size_t cap)
{
    return slm_lm_token_piece(e->lm, id, buf, cap);
}

int srv_engine_is_eog(const srv_engine *e, int32_t id) { return slm_lm_is_eog(e->lm, id); }

int srv_engine_prefill(srv_engine *e, int s, const int32_t *ids, int n, int *n_reused, slm_err *err)
{
    srv_slot *sl = &e->slots[s];
    if (n < 1 || n > e->n_ctx)
        return slm_err_set(err, SLM_EINPUT, "prompt of %d tokens does not fit the context of %d", n, e->n_ctx);
    int p = 0;
    while (p < sl->n_cached && p < n && sl->cached[p] == ids[p])
        p++;
    if (p == n)
        p = n - 1; /* decode at least the last token: its logits are needed */
    if (p > slm_pl_seq_n_past(sl->seq))
        p = slm_pl_seq_n_past(sl->seq);
    slm_pl_seq_rewind(sl->seq, p);
    sl->n_cached = p;
    int rc = slm_pl_seq_decode(sl->seq, ids + p, n - p, err);
    if (rc) {
        srv_engine_reset(e, s);
        return rc;
    }
    memcpy(sl->cached + p, ids + p, sizeof *ids * (size_t)(n - p));
    sl->n_cached = n;
    *n_reused = p;
    return 0;
}

/* One decode per slot: a step the batched path refuses (it decodes nothing then), so the
 * failing slot is found and reset as before. */
static int step_each(srv_engine *e, const int *slots, const int32_t *tokens, int n, slm_err *err)
{
    for (int i = 0; i < n; i++) {
        srv_slot *sl = &e->slots[slots[i]];
        int rc = slm_pl_seq_decode(sl->seq, &tokens[i], 1, err);
        if (rc) {
            srv_engine_reset(e, slots[i]);
            return rc;
        }
        if (sl->n_cached < sl->cap)
            sl->cached[sl->n_cached++] = tokens[i];
    }
    return 0;
}

/* The slots' next tokens in one multi-sequence step (slm_pl_seq_step): every weight matrix is
 * read once for all of them; slot 0's sequence lends its threads and scratch. Bit for bit the
 * logits of one decode per slot. */
int srv_engine_step(srv_engine *e, const int *slots, const int32_t *tokens, int n, slm_err *err)
{
    if (n > SRV_MAX_STEP || e->one_by_one)
        return step_each(e, slots, tokens, n, err);
    slm_pl_seq *seqs[SRV_MAX_STEP] = {0};
    for (int i = 0; i < n; i++)
        seqs[i] = e->slots[slots[i]].seq;
    slm_err merr = {0};
    if (slm_pl_seq_step(e->slots[0].seq, seqs, tokens, n, &merr))
        return step_each(e, slots, tokens, n, err);
    for (int i = 0; i < n; i++) {
        srv_slot *sl = &e->slots[slots[i]];
        if (sl->n_cached < sl->cap)
            sl->cached[sl->n_cached++] = tokens[i];
    }
    return 0;
}

const float *srv_engine_logits(const srv_engine *e, int s) { return slm_pl_seq_logits(e->slots[s].seq); }
int srv_engine_n_past(const srv_engine *e, int s) { return slm_pl_seq_n_past(e->slots[s].seq); }

void srv_engine_reset(srv_engine *e, int s)
{
    slm_pl_seq_clear(e->slots[s].seq);
    e->slots[s].n_cached = 0;
}

void srv_logprobs(const float *logits, int n_vocab, int32_t chosen, int k, float *lp_chosen, int32_t *top,
                  float *top_lp)
{
    float mx = -INFINITY;
    for (int i = 0; i < n_vocab; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double sum = 0;
    for (int i = 0; i < n_vocab; i++)
        sum += exp((double)logits[i] - mx);
    double lse = mx + log(sum);
    *lp_chosen = (float)(logits[chosen] - lse);
    if (k > 20)
        k = 20;
    if (k > n_vocab)
        k = n_vocab;
    if (k <= 0)
        return;
    int m = 0; /* insertion into a sorted list of k */
    for (int i = 0; i < n_vocab; i++) {
        float v = logits[i];
        if (m == k && v <= logits[top[m - 1]])
            continue;
        int j = m < k ? m++ : k - 1;
        while (j > 0 && logits[top[j - 1]] < v) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = i;
    }
    for (int i = 0; i < m; i++)
        top_lp[i] = (float)(logits[top[i]] - lse);
}
