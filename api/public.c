/* api/public.c — include/slm.h implemented over the pipelines: each call fills the calling
 * thread's last-error message on failure. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pipeline.h"

static _Thread_local char g_last_error[768];

/* Record err's message (or a generic one) for slm_last_error; returns rc. */
static int ret(int rc, const slm_err *err)
{
    if (rc == SLM_OK) {
        g_last_error[0] = 0;
        return rc;
    }
    const char *msg = err && err->msg[0] ? err->msg : slm_status_name(rc);
    snprintf(g_last_error, sizeof g_last_error, "%s", msg);
    return rc;
}
static int usage(const char *what)
{
    snprintf(g_last_error, sizeof g_last_error, "%s", what);
    return SLM_EUSAGE;
}

SLM_API int slm_version(void) { return SLM_VERSION_NUMBER; }
SLM_API const char *slm_version_string(void) { return SLM_VERSION_STRING; }
SLM_API const char *slm_last_error(void) { return g_last_error; }
SLM_API void slm_free(void *p) { free(p); }
SLM_API const char *slm_status_name(int code)
{
    static const char *const k[] = {"ok", "fail", "usage", "input", "io", "verify", "internal"};
    return code >= 0 && code <= SLM_EINTERNAL ? k[code] : "unknown";
}

/* ---- models ---- */
static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n > 64 ? 64 : n) : 1;
}

SLM_API void slm_lm_params_init(slm_lm_params *p)
{
    memset(p, 0, sizeof *p);
}

static int open_path(const char *path, int fd, const slm_lm_params *p, slm_lm **out, slm_err *err)
{
    slm_lm_params d;
    if (!p) {
        slm_lm_params_init(&d);
        p = &d;
    }
    if (p->n_ctx < 0 || p->n_threads < 0 || p->n_batch < 0) {
        if (fd >= 0)
            close(fd);
        return slm_err_set(err, SLM_EUSAGE, "slm_lm_params: negative n_ctx, n_threads or n_batch");
    }
    uint32_t tk = p->cache_type_k ? slm_kv_type_by_name(p->cache_type_k) : SLM_TYPE_F32;
    uint32_t tv = p->cache_type_v ? slm_kv_type_by_name(p->cache_type_v) : SLM_TYPE_F32;
    if (tk == UINT32_MAX || tv == UINT32_MAX) {
        if (fd >= 0)
            close(fd);
        return slm_err_set(err, SLM_EUSAGE, "slm_lm_params: cache type '%s' is not one of %s",
                           tk == UINT32_MAX ? p->cache_type_k : p->cache_type_v, slm_kv_type_names());
    }
    int rc = slm_pl_open(path, p->n_ctx, p->n_batch, p->n_threads ? p->n_threads : default_threads(), tk, tv, out,
                         err);
    if (rc) {
        if (fd >= 0)
            close(fd);
        return rc;
    }
    (*out)->fd = fd;
    return SLM_OK;
}

SLM_API int slm_lm_open(const char *gguf_path, const slm_lm_params *p, slm_lm **out)
{
    slm_err err = {0};
    if (!out || !gguf_path)
        return usage("slm_lm_open: NULL path or handle");
    *out = NULL;
    return ret(open_path(gguf_path, -1, p, out, &err), &err);
}

static int open_verified(const char *bundle, const char *const *trust, int n_trust, const char *store,
                         const slm_lm_params *p, slm_lm **out)
{
    slm_err err = {0};
    char buf[64];
    const char *path = NULL;
    int fd = -1;
    int rc = slm_pl_model_path(NULL, bundle, trust, n_trust, store, buf, sizeof buf, &path, &fd, &err);
    if (!rc)
        rc = open_path(path, fd, p, out, &err);
    return ret(rc, &err);
}

SLM_API int slm_lm_open_bundle(const char *bundle_path, const char *const *trust_roots, int n_roots,
                               const slm_lm_params *p, slm_lm **out)
{
    if (!out || !bundle_path || !trust_roots || n_roots < 1)
        return usage("slm_lm_open_bundle: a bundle and at least one trust root are needed");
    *out = NULL;
    return open_verified(bundle_path, trust_roots, n_roots, NULL, p, out);
}

SLM_API int slm_lm_open_store(const char *store_dir, const slm_lm_params *p, slm_lm **out)
{
    if (!out || !store_dir)
        return usage("slm_lm_open_store: NULL store or handle");
    *out = NULL;
    return open_verified(NULL, NULL, 0, store_dir, p, out);
}

SLM_API int slm_lm_n_vocab(const slm_lm *m) { return slm_tokenizer_n_vocab(m->tok); }
SLM_API int slm_lm_n_ctx(const slm_lm *m) { return slm_ctx_n_ctx(m->ctx); }
SLM_API const char *slm_lm_arch(const slm_lm *m) { return slm_model_hparams(m->model)->arch_name; }
SLM_API int32_t slm_lm_bos(const slm_lm *m) { return slm_tokenizer_bos(m->tok); }
SLM_API int32_t slm_lm_eos(const slm_lm *m) { return slm_tokenizer_eos(m->tok); }
SLM_API int slm_lm_is_eog(const slm_lm *m, int32_t id) { return slm_tokenizer_is_eog(m->tok, id); }

/* ---- tokens ---- */
SLM_API int slm_lm_tokenize(slm_lm *m, const char *text, size_t len, int add_bos, int parse_special,
                            int32_t **ids, size_t *n_ids)
{
    slm_err err = {0};
    if (!m || !ids || !n_ids || (!text && len))
        return usage("slm_lm_tokenize: NULL argument");
    int bos = add_bos < 0 ? slm_tokenizer_add_bos(m->tok) : !!add_bos;
    return ret(slm_tokenize(m->tok, text ? text : "", len, bos, parse_special, ids, n_ids, &err), &err);
}

SLM_API int slm_lm_detokenize(slm_lm *m, const int32_t *ids, size_t n, int special, char **text)
{
    slm_err err = {0};
    if (!m || !text || (!ids && n))
        return usage("slm_lm_detokenize: NULL argument");
    int nv = slm_tokenizer_n_vocab(m->tok);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= nv)
            return ret(slm_err_set(&err, SLM_EINPUT, "token id %d at position %zu is out of range (vocabulary %d)",
                                   (int)ids[i], i, nv), &err);
    if (!(*text = slm_detokenize(m->tok, ids, n, special)))
        return ret(slm_err_set(&err, SLM_EINTERNAL, "out of memory"), &err);
    return ret(SLM_OK, NULL);
}

SLM_API size_t slm_lm_token_piece(slm_lm *m, int32_t id, char *buf, size_t cap)
{
    if (!m || id < 0 || id >= slm_tokenizer_n_vocab(m->tok))
        return 0;
    return slm_token_to_piece(m->tok, id, 0, buf, cap);
}

/* ---- chat ---- */
SLM_API int slm_lm_chat_apply(slm_lm *m, const slm_message *msgs, size_t n_msgs, int add_generation_prompt,
                              const char *template_name, char **out)
{
    slm_err err = {0};
    if (!m || !out || (!msgs && n_msgs))
        return usage("slm_lm_chat_apply: NULL argument");
    *out = NULL;
    slm_chat_info ci = {0};
    int rc = slm_chat_info_from_gguf(slm_model_gguf(m->model), &ci, &err);
    if (rc)
        return ret(rc, &err);
    const char *tmpl = template_name ? slm_chat_builtin(template_name) : ci.template_text;
    if (!tmpl) {
        rc = template_name ? slm_err_set(&err, SLM_EUSAGE, "unknown chat template '%s' (built-ins: %s)",
                                         template_name, slm_chat_builtin_names())
                           : slm_err_set(&err, SLM_EINPUT, "the model has no chat template (name a built-in one)");
        slm_chat_info_free(&ci);
        return ret(rc, &err);
    }
    slm_chat_msg *cm = slm_pl_chat_msgs(msgs, n_msgs);
    if (!cm) {
        slm_chat_info_free(&ci);
        return ret(slm_err_set(&err, SLM_EINTERNAL, "out of memory"), &err);
    }
    slm_chat_params cp;
    slm_chat_params_init(&cp);
    cp.msgs = cm;
    cp.n_msgs = n_msgs;
    cp.add_generation_prompt = add_generation_prompt;
    cp.bos_token = ci.bos_token;
    cp.eos_token = ci.eos_token;
    size_t len = 0;
    rc = slm_chat_render(tmpl, strlen(tmpl), &cp, out, &len, &err);
    free(cm);
    slm_chat_info_free(&ci);
    return ret(rc, &err);
}

/* ---- generation ---- */
SLM_API void slm_gen_params_init(slm_gen_params *p)
{
    memset(p, 0, sizeof *p);
    slm_sampler_params sp;
    slm_sampler_defaults(&sp);
    p->max_tokens = 128;
    p->temperature = sp.temp;
    p->top_k = sp.top_k;
    p->top_p = sp.top_p;
    p->min_p = sp.min_p;
    p->repeat_penalty = sp.repeat_penalty;
    p->repeat_last_n = sp.repeat_last_n;
    p->seed = sp.seed;
}

typedef struct pub_cb {
    slm_piece_fn fn;
    void *user;
} pub_cb;
static int pub_token(void *user, const char *piece, size_t len, int32_t tok, const float *logits)
{
    pub_cb *c = user;
    return c->fn ? c->fn(c->user, piece, len, tok) : 0;
}

SLM_API int slm_lm_generate(slm_lm *m, const char *prompt, size_t prompt_len, const slm_gen_params *p,
                            slm_piece_fn cb, void *user, slm_gen_result *res)
{
    slm_err err = {0};
    if (!m || (!prompt && prompt_len))
        return usage("slm_lm_generate: NULL argument");
    slm_gen_params d;
    if (!p) {
        slm_gen_params_init(&d);
        p = &d;
    }
    if (p->max_tokens < 0)
        return usage("slm_lm_generate: max_tokens < 0");
    slm_pl_gen g;
    memset(&g, 0, sizeof g);
    slm_sampler_defaults(&g.sp);
    g.sp.temp = p->temperature;
    g.sp.top_k = p->top_k;
    g.sp.top_p = p->top_p;
    g.sp.min_p = p->min_p;
    g.sp.repeat_penalty = p->repeat_penalty;
    g.sp.repeat_last_n = p->repeat_last_n;
    g.sp.seed = p->seed;
    g.max_tokens = p->max_tokens;
    g.chat_template = p->chat_template;
    int32_t *ids = NULL;
    slm_chat_msg *msgs = NULL;
    int rc;
    if (p->chat)
        rc = slm_chat_messages_parse(prompt ? prompt : "", prompt_len, "messages", &msgs, &g.n_msgs, &err);
    else
        rc = slm_pl_prompt_ids(m, prompt ? prompt : "", prompt_len, &ids, &g.n_ids, &err);
    g.ids = ids;
    g.msgs = msgs;
    pub_cb c = {cb, user};
    if (!rc)
        rc = slm_pl_generate(m, &g, pub_token, &c, &err);
    free(ids);
    free(msgs);
    if (res) {
        res->prompt_tokens = g.prompt_tokens;
        res->generated_tokens = g.generated;
        res->stop = g.stop;
        res->prompt_ms = g.t_prompt * 1e3;
        res->gen_ms = g.t_gen * 1e3;
    }
    return ret(rc, &err);
}

static int collect(void *user, const char *piece, size_t len, int32_t tok)
{
    return slm_buf_append(user, piece, len) ? 1 : 0;
}

SLM_API int slm_lm_generate_text(slm_lm *m, const char *prompt, size_t prompt_len, const slm_gen_params *p,
                                 char **text, slm_gen_result *res)
{
    if (!text)
        return usage("slm_lm_generate_text: NULL text");
    slm_buf b = {0};
    slm_gen_result r;
    int rc = slm_lm_generate(m, prompt, prompt_len, p, collect, &b, &r);
    if (!rc && r.stop == SLM_STOP_CANCEL && (!m || !atomic_load(&m->cancel))) {
        slm_buf_free(&b);
        slm_err err = {0};
        return ret(slm_err_set(&err, SLM_EINTERNAL, "out of memory"), &err);
    }
    if (rc) {
        slm_buf_free(&b);
        return rc;
    }
    if (!b.p && slm_buf_append(&b, "", 0)) {
        slm_err err = {0};
        return ret(slm_err_set(&err, SLM_EINTERNAL, "out of memory"), &err);
    }
    *text = b.p;
    if (res)
        *res = r;
    return SLM_OK;
}

SLM_API void slm_lm_cancel(slm_lm *m)
{
    if (m)
        atomic_store(&m->cancel, 1);
}

/* ---- logits ---- */
/* Run ids from an empty cache in batches; after each batch fn sees the logits of its tokens. */
static int run_ids(slm_lm *m, const int32_t *ids, size_t n, int all, float *out, slm_err *err)
{
    if (n == 0)
        return slm_err_set(err, SLM_EUSAGE, "no tokens");
    if (n > (size_t)slm_ctx_n_ctx(m->ctx))
        return slm_err_set(err, SLM_EINPUT, "%zu tokens are more than the context length %d", n,
                           slm_ctx_n_ctx(m->ctx));
    slm_ctx_clear(m->ctx);
    int nb = slm_ctx_n_batch(m->ctx), nv = slm_ctx_n_vocab(m->ctx);
    for (size_t i0 = 0; i0 < n; i0 += (size_t)nb) {
        int k = (int)(n - i0 < (size_t)nb ? n - i0 : (size_t)nb);
        int rc = slm_decode(m->ctx, ids + i0, k, all, err);
        if (rc)
            return rc;
        if (!all) {
            if (i0 + (size_t)k == n)
                memcpy(out, slm_ctx_logits(m->ctx, 0), sizeof *out * (size_t)nv);
            continue;
        }
        for (int t = 0; t < k; t++) {
            size_t i = i0 + (size_t)t;
            if (i + 1 >= n)
                break;
            const float *l = slm_ctx_logits(m->ctx, t);
            double mx = -INFINITY, s = 0;
            for (int v = 0; v < m->n_sample; v++)
                mx = l[v] > mx ? l[v] : mx;
            for (int v = 0; v < m->n_sample; v++)
                s += exp((double)l[v] - mx);
            int32_t nx = ids[i + 1];
            out[i] = nx >= 0 && nx < m->n_sample ? (float)((double)l[nx] - mx - log(s)) : -INFINITY;
        }
    }
    return SLM_OK;
}

SLM_API int slm_lm_logits(slm_lm *m, const int32_t *ids, size_t n, float *out)
{
    slm_err err = {0};
    if (!m || !ids || !out)
        return usage("slm_lm_logits: NULL argument");
    return ret(run_ids(m, ids, n, 0, out, &err), &err);
}

SLM_API int slm_lm_logprobs(slm_lm *m, const int32_t *ids, size_t n, float *out)
{
    slm_err err = {0};
    if (!m || !ids || (!out && n > 1))
        return usage("slm_lm_logprobs: NULL argument");
    return ret(run_ids(m, ids, n, 1, out, &err), &err);
}

/* ---- perplexity ---- */
SLM_API void slm_ppl_options_init(slm_ppl_options *o)
{
    memset(o, 0, sizeof *o);
    o->n_ctx = 512;
}

SLM_API int slm_lm_perplexity(slm_lm *m, const char *text_path, const slm_ppl_options *o, slm_ppl_stats *out)
{
    slm_err err = {0};
    slm_ppl_options d;
    if (!o) {
        slm_ppl_options_init(&d);
        o = &d;
    }
    if (!m || !text_path || !out)
        return usage("slm_lm_perplexity: NULL argument");
    if (o->n_ctx < 4)
        return usage("slm_lm_perplexity: n_ctx must be >= 4");
    char *text = NULL;
    size_t len = 0;
    int rc = slm_read_text_file(text_path, (size_t)1 << 30, &text, &len, &err);
    if (rc)
        return ret(rc, &err);
    slm_ppl_params pp = {
        .n_ctx = o->n_ctx, .n_chunks = o->n_chunks, .kld_base_out = o->kld_base_out,
        .kld_base_in = o->kld_base_in, .progress = o->progress, .user = o->user,
    };
    slm_ppl_result r;
    slm_kld_result k;
    memset(&r, 0, sizeof r);
    memset(&k, 0, sizeof k);
    /* a context of exactly n_ctx, as slm perplexity makes */
    slm_ctx *keep = m->ctx;
    m->ctx = NULL;
    rc = slm_pl_perplexity(m, text, len, &pp, o->n_batch, &r, o->kld_base_in ? &k : NULL, &err);
    m->ctx = keep;
    free(text);
    if (!rc) {
        memset(out, 0, sizeof *out);
        out->ppl = r.ppl;
        out->ppl_stderr = r.ppl_stderr;
        out->tokens = r.n_tokens;
        out->scored = r.count;
        out->chunks = r.chunks;
        out->n_ctx = r.n_ctx;
        out->ppl_base = k.ppl_base;
        out->ppl_ratio = k.ppl_ratio;
        out->dppl = k.dppl;
        out->dppl_stderr = k.dppl_stderr;
        out->kld_mean = k.kld_mean;
        out->kld_stderr = k.kld_stderr;
        out->kld_median = k.kld_median;
        out->kld_p99 = k.kld_p99;
        out->kld_max = k.kld_max;
        out->rms_dp = k.rms_dp;
        out->rms_dp_stderr = k.rms_dp_stderr;
        out->same_top = k.same_top;
        out->same_top_stderr = k.same_top_stderr;
    }
    return ret(rc, &err);
}

/* ---- pipelines ---- */
SLM_API int slm_convert(const char *hf_dir, const char *out_gguf, const char *outtype, int n_threads)
{
    slm_err err = {0};
    if (!hf_dir || !out_gguf || !outtype || n_threads < 0)
        return usage("slm_convert: NULL argument or negative thread count");
    uint32_t type = slm_pl_outtype(outtype);
    if (type == UINT32_MAX)
        return ret(slm_err_set(&err, SLM_EUSAGE, "unknown outtype '%s' (f32, f16, bf16, q8_0)", outtype), &err);
    slm_pl_convert_info info;
    return ret(slm_pl_convert(hf_dir, out_gguf, type, n_threads ? n_threads : default_threads(), NULL, NULL,
                              &info, &err), &err);
}

SLM_API int slm_verify_bundle(const char *bundle_path, const char *const *trust_roots, int n_roots)
{
    slm_err err = {0};
    if (!bundle_path || !trust_roots || n_roots < 1)
        return usage("slm_verify_bundle: a bundle and at least one trust root are needed");
    int rc = slm_pl_verify(bundle_path, trust_roots, n_roots, 0, NULL, NULL, &err);
    return ret(rc, &err);
}

SLM_API int slm_install_bundle(const char *store_dir, const char *bundle_path, const char *trust_root)
{
    slm_err err = {0};
    if (!store_dir || !bundle_path || !trust_root)
        return usage("slm_install_bundle: NULL argument");
    slm_pl_health hc = {.tolerance = 0.05};
    slm_install_opts io = {(int64_t)time(NULL), SLM_SIGNING_RUNTIME_VERSION, slm_pl_health_forked, &hc, NULL, NULL, 1};
    slm_store_status st;
    const char *trust[1] = {trust_root};
    return ret(slm_store_install(store_dir, bundle_path, trust, 1, &io, &st, &err), &err);
}

SLM_API int slm_quantize(const char *in_gguf, const char *out_gguf, const char *recipe,
                         const slm_quantize_options *o)
{
    slm_err err = {0};
    if (!in_gguf || !out_gguf || !recipe)
        return usage("slm_quantize: NULL argument");
    slm_quantize_options d = {0};
    if (!o)
        o = &d;
    int ftype = slm_recipe_by_name(recipe);
    if (ftype < 0)
        return ret(slm_err_set(&err, SLM_EUSAGE, "unknown quantization type '%s'", recipe), &err);
    int threads = o->n_threads > 0 ? o->n_threads : default_threads();
    slm_pl_quant_opts qo = {
        .in = in_gguf, .out = out_gguf, .ftype = ftype, .threads = threads, .pure = o->pure,
        .requant = o->allow_requantize, .ro = {0, -1, -1, NULL, 0}, .imatrix = o->imatrix,
        .gptq = o->gptq_calib != NULL,
        .go = {o->gptq_calib, o->gptq_ctx > 0 ? o->gptq_ctx : 512, o->gptq_chunks, threads, 0, {0, 128, 0}, NULL, NULL},
    };
    slm_pl_quant_result res;
    int rc = slm_pl_quantize(&qo, &res, &err);
    if (!rc)
        slm_pl_quant_result_free(&res);
    return ret(rc, &err);
}
