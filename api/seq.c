/* api/seq.c — what a server needs of a model beyond `slm run` / `slm chat`: several sequences
 * (contexts) on one loaded model, decoded one by one or in one multi-sequence step, rewound to
 * a cached prefix; the chat template kept parsed; an OpenAI-style sampler; the memory a model
 * would take. Thin on purpose: serve/ owns the policy (slots, prefix reuse, batching). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

int slm_pl_ctx_len(const slm_lm *m, int n_ctx, int *out, slm_err *err)
{
    const slm_hparams *hp = slm_model_hparams(m->model);
    if (n_ctx == 0)
        n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (n_ctx > hp->n_ctx_train)
        return slm_err_set(err, SLM_EINPUT, "-c %d exceeds the model's context length %d", n_ctx, hp->n_ctx_train);
    *out = n_ctx;
    return SLM_OK;
}

uint64_t slm_pl_weight_bytes(const slm_lm *m) { return slm_model_weight_bytes(m->model); }

void slm_pl_describe(const slm_lm *m, char arch[16], char quant[16])
{
    const slm_arch_desc *d = slm_arch_find(slm_model_hparams(m->model)->arch_name);
    snprintf(arch, 16, "%s", d && strlen(d->name) < 16 ? d->name : "other");
    int64_t ft = -1;
    const char *q = gguf_get_int(slm_model_gguf(m->model), "general.file_type", &ft) == 0 ? slm_recipe_name((int)ft) : NULL;
    snprintf(quant, 16, "%s", q && strlen(q) < 16 ? q : "other");
}

int slm_pl_estimate(const char *path, int n_ctx, int n_seqs, uint32_t type_k, uint32_t type_v, uint64_t *bytes,
                    slm_err *err)
{
    slm_model *m = NULL;
    int rc = slm_model_load(path, &m, err);
    if (rc)
        return rc;
    const slm_hparams *hp = slm_model_hparams(m);
    if (n_ctx == 0)
        n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    /* K and V: n_layer x n_ctx rows of n_head_kv x head_dim values each, per sequence */
    *bytes = slm_model_weight_bytes(m) + (uint64_t)n_seqs * slm_kv_cache_bytes(hp, n_ctx, type_k, type_v);
    slm_model_free(m);
    return SLM_OK;
}

/* ---- sequences (an slm_pl_seq is runtime's slm_ctx under the API's name) ---- */
int slm_pl_seq_new(slm_lm *m, int n_ctx, int n_threads, uint32_t type_k, uint32_t type_v, slm_pl_seq **out,
                   slm_err *err)
{
    return slm_ctx_new_kv(m->model, n_ctx, 0, n_threads, type_k, type_v, out, err);
}

void slm_pl_seq_free(slm_pl_seq *s) { slm_ctx_free(s); }

int slm_pl_seq_decode(slm_pl_seq *s, const int32_t *ids, int n, slm_err *err)
{
    return slm_decode(s, ids, n, 0, err);
}

int slm_pl_seq_step(slm_pl_seq *work, slm_pl_seq *const *seqs, const int32_t *tokens, int n, slm_err *err)
{
    return slm_decode_multi(work, seqs, tokens, n, err);
}

void slm_pl_seq_rewind(slm_pl_seq *s, int n_past) { slm_ctx_rewind(s, n_past); }
void slm_pl_seq_clear(slm_pl_seq *s) { slm_ctx_clear(s); }
int slm_pl_seq_n_past(const slm_pl_seq *s) { return slm_ctx_n_past(s); }
const float *slm_pl_seq_logits(const slm_pl_seq *s) { return slm_ctx_logits(s, 0); }

/* ---- the chat template, parsed once ---- */
struct slm_pl_chat_fmt {
    slm_chat_template *tmpl; /* the model's tokenizer.chat_template, else the built-in ChatML */
    slm_chat_info info;
    int builtin;             /* 1: the model has no (usable) template */
};

int slm_pl_chat_fmt_open(const slm_lm *m, slm_pl_chat_fmt **out, slm_err *err)
{
    *out = NULL;
    slm_pl_chat_fmt *f = calloc(1, sizeof *f);
    if (!f)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    int rc = slm_chat_info_from_gguf(slm_model_gguf(m->model), &f->info, err);
    slm_err terr = {0};
    if (!rc && (!f->info.template_text ||
                slm_chat_template_parse(f->info.template_text, strlen(f->info.template_text), &f->tmpl, &terr))) {
        /* no template, or one this renderer cannot read: ChatML */
        const char *cm = slm_chat_builtin("chatml");
        f->builtin = 1;
        rc = slm_chat_template_parse(cm, strlen(cm), &f->tmpl, err);
    }
    if (rc) {
        slm_pl_chat_fmt_free(f);
        return rc;
    }
    *out = f;
    return SLM_OK;
}

void slm_pl_chat_fmt_free(slm_pl_chat_fmt *f)
{
    if (!f)
        return;
    slm_chat_template_free(f->tmpl);
    slm_chat_info_free(&f->info);
    free(f);
}

int slm_pl_chat_fmt_builtin(const slm_pl_chat_fmt *f) { return f->builtin; }

int slm_pl_chat_fmt_ids(const slm_lm *m, const slm_pl_chat_fmt *f, const slm_message *msgs, size_t n_msgs,
                        int32_t **ids, size_t *n_ids, slm_err *err)
{
    slm_chat_msg *cm = slm_pl_chat_msgs(msgs, n_msgs);
    if (!cm)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    int rc = slm_chat_tokens(f->tmpl, &f->info, m->tok, cm, n_msgs, 1, ids, n_ids, err);
    free(cm);
    return rc;
}

/* ---- sampling as the OpenAI API means it ---- */
slm_pl_sampler *slm_pl_sampler_openai(const slm_lm *m, double temperature, double top_p, uint64_t seed)
{
    slm_sampler_params sp;
    slm_sampler_defaults(&sp);
    sp.temp = top_p <= 0 ? 0.0f : (float)temperature;
    sp.top_k = 0;
    sp.min_p = 0;
    sp.top_p = (float)top_p;
    sp.repeat_penalty = 1;
    sp.seed = seed;
    return slm_sampler_new(&sp, m->n_sample);
}

int32_t slm_pl_sample(slm_pl_sampler *s, const float *logits) { return slm_sampler_sample(s, logits); }
void slm_pl_sampler_free(slm_pl_sampler *s) { slm_sampler_free(s); }
