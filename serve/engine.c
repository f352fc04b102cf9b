/* serve/engine.c — srv_engine on runtime/runtime.h: one slm_ctx per slot. */
#include "engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime.h"

enum { SRV_MAX_STEP = 256 }; /* slots in one batched step (more: one by one) */

typedef struct srv_slot {
    slm_ctx *ctx;
    int32_t *cached; /* the tokens in the KV cache, in order */
    int n_cached, cap;
} srv_slot;

struct srv_engine {
    slm_model *model;
    slm_tokenizer *tok;
    int n_ctx, n_vocab, n_slots;
    srv_slot *slots;
    slm_chat_template *tmpl; /* the model's tokenizer.chat_template, else the built-in ChatML */
    slm_chat_info chat;
    int tmpl_builtin;         /* 1: the model has no (usable) template */
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
    if ((rc = slm_model_load(path, &e->model, err)) || (rc = slm_tokenizer_from_gguf(slm_model_gguf(e->model), &e->tok, err)))
        goto fail;
    const slm_hparams *hp = slm_model_hparams(e->model);
    if (slm_tokenizer_n_vocab(e->tok) > hp->n_vocab) {
        rc = slm_err_set(err, SLM_EINPUT, "%s: tokenizer has %d tokens but the embedding only %d rows", path,
                         slm_tokenizer_n_vocab(e->tok), hp->n_vocab);
        goto fail;
    }
    e->n_vocab = slm_tokenizer_n_vocab(e->tok);
    if (n_ctx == 0)
        n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (n_ctx > hp->n_ctx_train) {
        rc = slm_err_set(err, SLM_EINPUT, "-c %d exceeds the model's context length %d", n_ctx, hp->n_ctx_train);
        goto fail;
    }
    e->n_ctx = n_ctx;
    e->n_slots = n_slots;
    if ((rc = slm_chat_info_from_gguf(slm_model_gguf(e->model), &e->chat, err)))
        goto fail;
    slm_err terr = {0};
    if (!e->chat.template_text ||
        slm_chat_template_parse(e->chat.template_text, strlen(e->chat.template_text), &e->tmpl, &terr)) {
        /* no template, or one this renderer cannot read: ChatML, said so by srv_engine_chat_template */
        const char *cm = slm_chat_builtin("chatml");
        e->tmpl_builtin = 1;
        if ((rc = slm_chat_template_parse(cm, strlen(cm), &e->tmpl, err)))
            goto fail;
    }
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
        if ((rc = slm_ctx_new_kv(e->model, n_ctx, 0, s == 0 ? work_threads : n_threads, type_k, type_v,
                                 &e->slots[s].ctx, err)))
            goto fail;
        e->slots[s].cap = n_ctx;
        if (!(e->slots[s].cached = malloc(sizeof(int32_t) * (size_t)n_ctx))) {
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
        slm_ctx_free(e->slots[s].ctx);
        free(e->slots[s].cached);
    }
    free(e->slots);
    slm_chat_template_free(e->tmpl);
    slm_chat_info_free(&e->chat);
    slm_tokenizer_free(e->tok);
    slm_model_free(e->model);
    free(e);
}

int srv_engine_estimate(const char *path, int n_ctx, int n_slots, uint32_t type_k, uint32_t type_v, uint64_t *bytes,
                        slm_err *err)
{
    slm_model *m = NULL;
    int rc = slm_model_load(path, &m, err);
    if (rc)
        return rc;
    const slm_hparams *hp = slm_model_hparams(m);
    if (n_ctx == 0)
        n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    /* K and V: n_layer x n_ctx rows of n_head_kv x head_dim values each, per slot */
    uint64_t kv = slm_kv_cache_bytes(hp, n_ctx, type_k, type_v);
    *bytes = slm_model_weight_bytes(m) + (uint64_t)n_slots * kv;
    slm_model_free(m);
    return 0;
}

/* srv_sampler is runtime's slm_sampler under the engine's name. */
srv_sampler *srv_engine_sampler(const srv_engine *e, double temperature, double top_p, uint64_t seed)
{
    slm_sampler_params sp;
    slm_sampler_defaults(&sp);
    sp.temp = top_p <= 0 ? 0.0f : (float)temperature;
    sp.top_k = 0;
    sp.min_p = 0;
    sp.top_p = (float)top_p;
    sp.repeat_penalty = 1;
    sp.seed = seed;
    return (srv_sampler *)slm_sampler_new(&sp, e->n_vocab);
}

int32_t srv_sampler_sample(srv_sampler *s, const float *logits) { return slm_sampler_sample((slm_sampler *)s, logits); }
void srv_sampler_free(srv_sampler *s) { slm_sampler_free((slm_sampler *)s); }

int srv_engine_n_ctx(const srv_engine *e) { return e->n_ctx; }
int srv_engine_n_vocab(const srv_engine *e) { return e->n_vocab; }
const char *srv_engine_arch(const srv_engine *e) { return slm_model_hparams(e->model)->arch_name; }
uint64_t srv_engine_weight_bytes(const srv_engine *e) { return slm_model_weight_bytes(e->model); }

void srv_engine_describe(const srv_engine *e, char arch[16], char quant[16])
{
    const slm_arch_desc *d = slm_arch_find(slm_model_hparams(e->model)->arch_name);
    snprintf(arch, 16, "%s", d && strlen(d->name) < 16 ? d->name : "other");
    int64_t ft = -1;
    const char *q = gguf_get_int(slm_model_gguf(e->model), "general.file_type", &ft) == 0 ? slm_recipe_name((int)ft) : NULL;
    snprintf(quant, 16, "%s", q && strlen(q) < 16 ? q : "other");
}

static int tokenize(const srv_engine *e, const char *text, int add_bos, int parse_special, int32_t **ids, size_t *n,
                    slm_err *err)
{
    return slm_tokenize_prompt(e->tok, text, strlen(text), add_bos, parse_special, ids, n, err);
}

int srv_engine_tokenize_prompt(const srv_engine *e, const char *text, int32_t **ids, size_t *n, slm_err *err)
{
    return tokenize(e, text, slm_tokenizer_add_bos(e->tok), 0, ids, n, err);
}

/* The messages rendered by the chat template (add_generation_prompt), tokenized with control
 * tokens parsed; BOS added when the model adds one and the rendered text does not start with it. */
int srv_engine_tokenize_chat(const srv_engine *e, const srv_message *msgs, int n_msgs, int32_t **ids, size_t *n,
                             slm_err *err)
{
    slm_chat_msg *m = calloc((size_t)n_msgs, sizeof *m);
    if (!m)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    for (int i = 0; i < n_msgs; i++) {
        m[i].role = strcmp(msgs[i].role, "developer") ? msgs[i].role : "system";
        m[i].content = msgs[i].content;
        m[i].content_len = strlen(msgs[i].content);
    }
    slm_chat_params p;
    slm_chat_params_init(&p);
    p.msgs = m;
    p.n_msgs = (size_t)n_msgs;
    p.add_generation_prompt = 1;
    p.bos_token = e->chat.bos_token;
    p.eos_token = e->chat.eos_token;
    char *text = NULL;
    size_t len = 0;
    int rc = slm_chat_template_render(e->tmpl, &p, &text, &len, err);
    free(m);
    if (rc)
        return rc;
    int add_bos = slm_tokenizer_add_bos(e->tok);
    if (add_bos && e->chat.bos_token && *e->chat.bos_token && !strncmp(text, e->chat.bos_token, strlen(e->chat.bos_token)))
        add_bos = 0;
    rc = tokenize(e, text, add_bos, 1, ids, n, err);
    free(text);
    return rc;
}

int srv_engine_chat_builtin(const srv_engine *e) { return e->tmpl_builtin; }

size_t srv_engine_piece(const srv_engine *e, int32_t id, char *buf, size_t cap)
{
    return slm_token_to_piece(e->tok, id, 0, buf, cap);
}

int srv_engine_is_eog(const srv_engine *e, int32_t id) { return slm_tokenizer_is_eog(e->tok, id); }

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
    if (p > slm_ctx_n_past(sl->ctx))
        p = slm_ctx_n_past(sl->ctx);
    slm_ctx_rewind(sl->ctx, p);
    sl->n_cached = p;
    int rc = slm_decode(sl->ctx, ids + p, n - p, 0, err);
    if (rc) {
        srv_engine_reset(e, s);
        return rc;
    }
    memcpy(sl->cached + p, ids + p, sizeof *ids * (size_t)(n - p));
    sl->n_cached = n;
    *n_reused = p;
    return 0;
}

/* One slm_decode per slot: a step the batched path refuses (it decodes nothing then), so the
 * failing slot is found and reset as before. */
static int step_each(srv_engine *e, const int *slots, const int32_t *tokens, int n, slm_err *err)
{
    for (int i = 0; i < n; i++) {
        srv_slot *sl = &e->slots[slots[i]];
        int rc = slm_decode(sl->ctx, &tokens[i], 1, 0, err);
        if (rc) {
            srv_engine_reset(e, slots[i]);
            return rc;
        }
        if (sl->n_cached < sl->cap)
            sl->cached[sl->n_cached++] = tokens[i];
    }
    return 0;
}

/* The slots' next tokens in one multi-sequence step (slm_decode_multi): every weight matrix is
 * read once for all of them; slot 0's context lends its threads and scratch. Bit for bit the
 * logits of one slm_decode per slot. */
int srv_engine_step(srv_engine *e, const int *slots, const int32_t *tokens, int n, slm_err *err)
{
    if (n > SRV_MAX_STEP || e->one_by_one)
        return step_each(e, slots, tokens, n, err);
    slm_ctx *seqs[SRV_MAX_STEP] = {0};
    for (int i = 0; i < n; i++)
        seqs[i] = e->slots[slots[i]].ctx;
    slm_err merr = {0};
    if (slm_decode_multi(e->slots[0].ctx, seqs, tokens, n, &merr))
        return step_each(e, slots, tokens, n, err);
    for (int i = 0; i < n; i++) {
        srv_slot *sl = &e->slots[slots[i]];
        if (sl->n_cached < sl->cap)
            sl->cached[sl->n_cached++] = tokens[i];
    }
    return 0;
}

const float *srv_engine_logits(const srv_engine *e, int s) { return slm_ctx_logits(e->slots[s].ctx, 0); }
int srv_engine_n_past(const srv_engine *e, int s) { return slm_ctx_n_past(e->slots[s].ctx); }

void srv_engine_reset(srv_engine *e, int s)
{
    slm_ctx_clear(e->slots[s].ctx);
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
