/* tests/ref_forward.c — an independent float64 forward pass over a Hugging Face checkpoint,
 * written from transformers' modeling code (modeling_llama.py, modeling_qwen2.py,
 * modeling_qwen3.py, modeling_gemma3.py, modeling_phi3.py), not from slmkit's runtime:
 *
 * - it reads config.json itself (cJSON) and the checkpoint's tensors in HF order (no Q/K
 *   permutation, no +1 folded into Gemma's norms, fused Phi-3 projections split here);
 * - RoPE is transformers' rotate_half form with inv_freq = theta^(-2i/d) computed in double,
 *   llama3 scaling applied to inv_freq as _compute_llama3_parameters does;
 * - RMSNorm x / sqrt(mean(x^2) + eps) * w (Gemma: * (1 + w)); attention softmax(q k^T * scale)
 *   with a causal mask (and the sliding window where the layer has one: key j is visible from
 *   query i when i - j < window); GQA by sharing each k/v head among its group;
 * - activations exact: SiLU x / (1 + e^-x); GELU tanh form (gelu_pytorch_tanh).
 * Everything is double; the inputs are the checkpoint's float values. Slow and simple on purpose. */
#include "ref_forward.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"
#include "testutil.h"

typedef struct ref {
    st_model *st;
    const cJSON *cfg;
    char *msg;
    size_t cap;
    int fail;
} ref;

static void fail(ref *r, const char *fmt, ...)
{
    if (r->fail)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, r->cap, fmt, ap);
    va_end(ap);
    r->fail = 1;
}

static double num(ref *r, const char *key, double deflt)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(r->cfg, key);
    return cJSON_IsNumber(j) ? j->valuedouble : deflt;
}

/* A tensor as doubles (malloc'd), checked to have n elements. */
static double *tensor(ref *r, const char *name, size_t n)
{
    const st_tensor *t = st_find(r->st, name);
    if (!t) {
        fail(r, "ref: tensor %s missing", name);
        return NULL;
    }
    if (t->n_elems != n) {
        fail(r, "ref: tensor %s has %llu elements, want %zu", name, (unsigned long long)t->n_elems, n);
        return NULL;
    }
    float *f = malloc(n * sizeof *f);
    double *d = malloc(n * sizeof *d);
    st_read_f32(t, 0, n, f);
    for (size_t i = 0; i < n; i++)
        d[i] = f[i];
    free(f);
    return d;
}

/* y[t][o] = sum_i W[o][i] x[t][i] (+ b[o]); W is [out][in] as nn.Linear stores it. */
static void linear(double *y, const double *W, const double *b, const double *x, int n, int in, int out)
{
    for (int t = 0; t < n; t++)
        for (int o = 0; o < out; o++) {
            double s = b ? b[o] : 0;
            const double *w = W + (size_t)o * in, *xt = x + (size_t)t * in;
            for (int i = 0; i < in; i++)
                s += w[i] * xt[i];
            y[(size_t)t * out + o] = s;
        }
}

static void rmsnorm(double *y, const double *x, const double *w, int n, double eps, int one_plus)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    double k = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++)
        y[i] = x[i] * k * (one_plus ? 1.0 + w[i] : w[i]);
}

static double silu(double x) { return x / (1.0 + exp(-x)); }
static double gelu_tanh(double x)
{
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

/* rotate_half RoPE on one head vector of size d, positions pos, inv_freq[d/2]. */
static void rope_half(double *v, int d, const double *inv_freq, int pos)
{
    int h = d / 2;
    for (int i = 0; i < h; i++) {
        double a = pos * inv_freq[i], c = cos(a), s = sin(a);
        double x0 = v[i], x1 = v[i + h];
        v[i] = x0 * c - x1 * s;
        v[i + h] = x1 * c + x0 * s;
    }
}

/* transformers' default inv_freq, and the llama3 rescaling (_compute_llama3_parameters). */
static void inv_freqs(ref *r, double *inv, int d, double theta, const cJSON *scaling)
{
    for (int i = 0; i < d / 2; i++)
        inv[i] = 1.0 / pow(theta, (2.0 * i) / d);
    if (!scaling || cJSON_IsNull(scaling))
        return;
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(scaling, "rope_type");
    if (!cJSON_IsString(ty))
        ty = cJSON_GetObjectItemCaseSensitive(scaling, "type");
    if (!cJSON_IsString(ty) || !strcmp(ty->valuestring, "default"))
        return;
    if (strcmp(ty->valuestring, "llama3")) {
        fail(r, "ref: rope_scaling type %s not implemented", ty->valuestring);
        return;
    }
    double factor = cJSON_GetObjectItemCaseSensitive(scaling, "factor")->valuedouble;
    double lo = cJSON_GetObjectItemCaseSensitive(scaling, "low_freq_factor")->valuedouble;
    double hi = cJSON_GetObjectItemCaseSensitive(scaling, "high_freq_factor")->valuedouble;
    double old = cJSON_GetObjectItemCaseSensitive(scaling, "original_max_position_embeddings")->valuedouble;
    double lo_wl = old / lo, hi_wl = old / hi;
    for (int i = 0; i < d / 2; i++) {
        double wl = 2 * M_PI / inv[i];
        double f = wl > lo_wl ? inv[i] / factor : inv[i];
        if (!(wl < hi_wl) && !(wl > lo_wl)) {
            double sm = (old / wl - lo) / (hi - lo);
            f = (1 - sm) * f / factor + sm * f;
        }
        inv[i] = f;
    }
}

enum { F_LLAMA, F_QWEN2, F_QWEN3, F_GEMMA3, F_PHI3 };

double *ref_forward(const char *dir, const int32_t *ids, int n, int *n_vocab, char *msg, size_t msg_cap)
{
    return ref_forward_round(dir, ids, n, n_vocab, NULL, NULL, msg, msg_cap);
}

double *ref_forward_round(const char *dir, const int32_t *ids, int n, int *n_vocab, ref_round_fn round, void *user,
                          char *msg, size_t msg_cap)
{
    ref R = {.msg = msg, .cap = msg_cap}, *r = &R;
    char *cfgpath = tu_path(dir, "config.json");
    char *text = tu_read_file(cfgpath, NULL);
    free(cfgpath);
    cJSON *cfg = text ? cJSON_Parse(text) : NULL;
    free(text);
    slm_err err = {0};
    if (!cfg || st_open(dir, &R.st, &err)) {
        snprintf(msg, msg_cap, "ref: cannot read %s: %s", dir, cfg ? err.msg : "config.json");
        cJSON_Delete(cfg);
        return NULL;
    }
    R.cfg = cfg;
    const char *an = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(cfg, "architectures"), 0)->valuestring;
    int fam = !strcmp(an, "Qwen2ForCausalLM")    ? F_QWEN2
              : !strcmp(an, "Qwen3ForCausalLM")  ? F_QWEN3
              : !strcmp(an, "Gemma3ForCausalLM") ? F_GEMMA3
              : !strcmp(an, "Phi3ForCausalLM")   ? F_PHI3
                                                 : F_LLAMA;
    const int E = (int)num(r, "hidden_size", 0), L = (int)num(r, "num_hidden_layers", 0);
    const int H = (int)num(r, "num_attention_heads", 0), HKV = (int)num(r, "num_key_value_heads", H);
    const int D = (int)num(r, "head_dim", E / H), FF = (int)num(r, "intermediate_size", 0);
    const int V = (int)num(r, "vocab_size", 0), Q = H * D, KV = HKV * D;
    const double eps = num(r, "rms_norm_eps", 1e-6);
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings");
    int tied = tie ? cJSON_IsTrue(tie) : fam == F_GEMMA3; /* Gemma3TextConfig ties by default */
    const int gemma = fam == F_GEMMA3;
    const double scale = gemma ? 1.0 / sqrt(num(r, "query_pre_attn_scalar", D)) : 1.0 / sqrt((double)D);
    const double theta = num(r, "rope_theta", gemma ? 1e6 : 10000.0);
    const double theta_local = num(r, "rope_local_base_freq", 10000.0);
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    /* sliding window per layer */
    int window = 0;
    int *local = calloc((size_t)L, sizeof *local);
    if (gemma || fam == F_PHI3 || (fam == F_QWEN2 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "use_sliding_window"))))
        window = (int)num(r, "sliding_window", 0);
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(cfg, "layer_types");
    for (int l = 0; l < L && window; l++) {
        if (gemma) {
            if (cJSON_IsArray(lt))
                local[l] = !strcmp(cJSON_GetArrayItem(lt, l)->valuestring, "sliding_attention");
            else
                local[l] = (l + 1) % (int)num(r, "sliding_window_pattern", 6) != 0;
        } else {
            local[l] = 1;
        }
    }
    double *inv_g = malloc(sizeof(double) * (size_t)D), *inv_l = malloc(sizeof(double) * (size_t)D);
    inv_freqs(r, inv_g, D, theta, scaling);
    inv_freqs(r, inv_l, D, theta_local, NULL);

    double *emb = tensor(r, "model.embed_tokens.weight", (size_t)V * E);
    double *x = calloc((size_t)n * E, sizeof *x), *h = calloc((size_t)n * E, sizeof *h);
    double *q = calloc((size_t)n * Q, sizeof *q), *k = calloc((size_t)n * KV, sizeof *k);
    double *v = calloc((size_t)n * KV, sizeof *v), *att = calloc((size_t)n * Q, sizeof *att);
    double *qkv = calloc((size_t)n * (Q + 2 * KV), sizeof *qkv), *o = calloc((size_t)n * E, sizeof *o);
    double *g = calloc((size_t)n * 2 * FF, sizeof *g), *u = calloc((size_t)n * FF, sizeof *u);
    double *p = calloc((size_t)n, sizeof *p), *logits = NULL;
    for (int t = 0; t < n && emb; t++)
        for (int i = 0; i < E; i++)
            x[(size_t)t * E + i] = emb[(size_t)ids[t] * E + i] * (gemma ? sqrt((double)E) : 1.0);

    char nm[160];
#define W(fmt, size) (snprintf(nm, sizeof nm, "model.layers.%d." fmt, l), tensor(r, nm, (size_t)(size)))
#define OPT(fmt, size) (snprintf(nm, sizeof nm, "model.layers.%d." fmt, l), st_find(R.st, nm) ? tensor(r, nm, (size_t)(size)) : NULL)
    for (int l = 0; l < L && !R.fail; l++) {
        double *ln1 = W("input_layernorm.weight", E);
        for (int t = 0; t < n && ln1; t++)
            rmsnorm(h + (size_t)t * E, x + (size_t)t * E, ln1, E, eps, gemma);
        if (fam == F_PHI3) {
            double *wqkv = W("self_attn.qkv_proj.weight", (size_t)(Q + 2 * KV) * E);
            if (wqkv)
                linear(qkv, wqkv, NULL, h, n, E, Q + 2 * KV);
            for (int t = 0; t < n; t++) {
                memcpy(q + (size_t)t * Q, qkv + (size_t)t * (Q + 2 * KV), sizeof(double) * Q);
                memcpy(k + (size_t)t * KV, qkv + (size_t)t * (Q + 2 * KV) + Q, sizeof(double) * KV);
                memcpy(v + (size_t)t * KV, qkv + (size_t)t * (Q + 2 * KV) + Q + KV, sizeof(double) * KV);
            }
            free(wqkv);
        } else {
            double *wq = W("self_attn.q_proj.weight", (size_t)Q * E), *wk = W("self_attn.k_proj.weight", (size_t)KV * E);
            double *wv = W("self_attn.v_proj.weight", (size_t)KV * E);
            double *bq = OPT("self_attn.q_proj.bias", Q), *bk = OPT("self_attn.k_proj.bias", KV);
            double *bv = OPT("self_attn.v_proj.bias", KV);
            if (wq && wk && wv) {
                linear(q, wq, bq, h, n, E, Q);
                linear(k, wk, bk, h, n, E, KV);
                linear(v, wv, bv, h, n, E, KV);
            }
            free(wq), free(wk), free(wv), free(bq), free(bk), free(bv);
        }
        if (fam == F_QWEN3 || gemma) {
            double *qn = W("self_attn.q_norm.weight", D), *kn = W("self_attn.k_norm.weight", D);
            for (int i = 0; i < n * H && qn; i++)
                rmsnorm(q + (size_t)i * D, q + (size_t)i * D, qn, D, eps, gemma);
            for (int i = 0; i < n * HKV && kn; i++)
                rmsnorm(k + (size_t)i * D, k + (size_t)i * D, kn, D, eps, gemma);
            free(qn), free(kn);
        }
        const double *inv = gemma && local[l] ? inv_l : inv_g;
        for (int t = 0; t < n; t++) {
            for (int hh = 0; hh < H; hh++)
                rope_half(q + (size_t)t * Q + (size_t)hh * D, D, inv, t);
            for (int hh = 0; hh < HKV; hh++)
                rope_half(k + (size_t)t * KV + (size_t)hh * D, D, inv, t);
        }
        for (int i = 0; round && i < n * H; i++)
            round(user, 0, q + (size_t)i * D, D, fam == F_LLAMA);
        for (int i = 0; round && i < n * HKV; i++) {
            round(user, 1, k + (size_t)i * D, D, fam == F_LLAMA);
            round(user, 2, v + (size_t)i * D, D, fam == F_LLAMA);
        }
        for (int hh = 0; hh < H; hh++) {
            int kh = hh / (H / HKV);
            for (int i = 0; i < n; i++) {
                int j0 = local[l] && i - window + 1 > 0 ? i - window + 1 : 0;
                double mx = -INFINITY;
                for (int j = j0; j <= i; j++) {
                    double s = 0;
                    for (int c = 0; c < D; c++)
                        s += q[(size_t)i * Q + (size_t)hh * D + c] * k[(size_t)j * KV + (size_t)kh * D + c];
                    p[j] = s * scale;
                    mx = fmax(mx, p[j]);
                }
                double sum = 0;
                for (int j = j0; j <= i; j++)
                    sum += (p[j] = exp(p[j] - mx));
                for (int c = 0; c < D; c++) {
                    double a = 0;
                    for (int j = j0; j <= i; j++)
                        a += p[j] / sum * v[(size_t)j * KV + (size_t)kh * D + c];
                    att[(size_t)i * Q + (size_t)hh * D + c] = a;
                }
            }
        }
        double *wo = W("self_attn.o_proj.weight", (size_t)E * Q), *bo = OPT("self_attn.o_proj.bias", E);
        if (wo)
            linear(o, wo, bo, att, n, Q, E);
        free(wo), free(bo);
        double *ln2 = NULL;
        if (gemma) {
            double *pa = W("post_attention_layernorm.weight", E);
            for (int t = 0; t < n && pa; t++)
                rmsnorm(o + (size_t)t * E, o + (size_t)t * E, pa, E, eps, 1);
            free(pa);
            ln2 = W("pre_feedforward_layernorm.weight", E);
        } else {
            ln2 = W("post_attention_layernorm.weight", E);
        }
        for (size_t i = 0; i < (size_t)n * E; i++)
            x[i] += o[i];
        for (int t = 0; t < n && ln2; t++)
            rmsnorm(h + (size_t)t * E, x + (size_t)t * E, ln2, E, eps, gemma);
        if (fam == F_PHI3) {
            double *gu = W("mlp.gate_up_proj.weight", (size_t)2 * FF * E);
            if (gu)
                linear(g, gu, NULL, h, n, E, 2 * FF);
            for (int t = 0; t < n; t++)
                for (int i = 0; i < FF; i++)
                    u[(size_t)t * FF + i] = silu(g[(size_t)t * 2 * FF + i]) * g[(size_t)t * 2 * FF + FF + i];
            free(gu);
        } else {
            double *wg = W("mlp.gate_proj.weight", (size_t)FF * E), *wu = W("mlp.up_proj.weight", (size_t)FF * E);
            if (wg && wu) {
                linear(g, wg, NULL, h, n, E, FF);
                linear(u, wu, NULL, h, n, E, FF);
            }
            for (size_t i = 0; i < (size_t)n * FF; i++)
                u[i] *= gemma ? gelu_tanh(g[i]) : silu(g[i]);
            free(wg), free(wu);
        }
        double *wd = W("mlp.down_proj.weight", (size_t)E * FF);
        if (wd)
            linear(o, wd, NULL, u, n, FF, E);
        free(wd);
        if (gemma) {
            double *pf = W("post_feedforward_layernorm.weight", E);
            for (int t = 0; t < n && pf; t++)
                rmsnorm(o + (size_t)t * E, o + (size_t)t * E, pf, E, eps, 1);
            free(pf);
        }
        for (size_t i = 0; i < (size_t)n * E; i++)
            x[i] += o[i];
        free(ln1), free(ln2);
    }
#undef W
#undef OPT
    double *fn = tensor(r, "model.norm.weight", E);
    double *head = tied ? emb : tensor(r, "lm_head.weight", (size_t)V * E);
    if (!R.fail && fn && head) {
        for (int t = 0; t < n; t++)
            rmsnorm(h + (size_t)t * E, x + (size_t)t * E, fn, E, eps, gemma);
        logits = malloc(sizeof(double) * (size_t)n * V);
        linear(logits, head, NULL, h, n, E, V);
        double cap = num(r, "final_logit_softcapping", 0);
        for (size_t i = 0; cap > 0 && i < (size_t)n * V; i++)
            logits[i] = cap * tanh(logits[i] / cap);
        *n_vocab = V;
    }
    if (head != emb)
        free(head);
    free(fn), free(emb), free(x), free(h), free(q), free(k), free(v), free(att), free(qkv), free(o), free(g),
        free(u), free(p), free(local), free(inv_g), free(inv_l);
    st_close(R.st);
    cJSON_Delete(cfg);
    return logits;
}
