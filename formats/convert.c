/* formats/convert.c — the HF checkpoint -> GGUF plan that llama.cpp expects.
 *
 * slm_plan_build maps every checkpoint tensor to its llama.cpp name, checks
 * its shape against config.json, and records how its rows are produced:
 * copied, Q/K-permuted (Llama: HF's rotate-half head layout back to the
 * interleaved pairs llama.cpp's RoPE uses), or transposed (GPT-2 Conv1D).
 * slm_plan_describe writes llama.cpp's metadata keys; slm_plan_read_rows
 * produces output rows as float32 for the encoder (see tools/convert.c and
 * formats/convert_run.c).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats.h"

enum { REQUIRED = 1, OPTIONAL = 0 };

typedef struct spec {
    char hf[128];
    char gguf[96];
    int64_t rows, cols;   /* HF shape; cols = 0 for 1-D */
    int xform, heads;
    int required;
} spec;

typedef struct specs {
    spec *v;
    size_t n, cap;
} specs;

static int add_spec(specs *s, const char *hf, const char *gg, int64_t rows, int64_t cols, int xform, int heads,
                    int required)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        spec *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    spec *e = &s->v[s->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->hf, sizeof e->hf, "%s", hf);
    snprintf(e->gguf, sizeof e->gguf, "%s", gg);
    e->rows = rows;
    e->cols = cols;
    e->xform = xform;
    e->heads = heads;
    e->required = required;
    return 0;
}

/* Expected tensors of a Llama-family checkpoint (llama, mistral, qwen2,
 * qwen3, gemma3, phi3), in the order we write them. The names, shapes and
 * transforms are those llama.cpp's convert_hf_to_gguf.py produces. */
static int llama_specs(const hf_config *c, specs *s)
{
    int64_t E = c->n_embd, hd = c->head_dim, q = (int64_t)c->n_head * hd, kv = (int64_t)c->n_head_kv * hd;
    int gemma = c->arch == SLM_ARCH_GEMMA3, phi3 = c->arch == SLM_ARCH_PHI3;
    int permute = c->arch == SLM_ARCH_LLAMA; /* the others use NEOX rope: rows stay in HF order */
    int px = permute ? SLM_X_PERMUTE_QK : SLM_X_COPY;
    int nx = gemma ? SLM_X_ADD_ONE : SLM_X_COPY; /* Gemma3RMSNorm scales by (1 + w) */
    int rc = 0;
    if (c->rope_scaling == SLM_ROPE_SCALING_LLAMA3) /* llama.cpp's extra tensors come first */
        rc |= add_spec(s, "", "rope_freqs.weight", hd / 2, 0, SLM_X_COMPUTED, 0, REQUIRED);
    rc |= add_spec(s, "model.embed_tokens.weight", "token_embd.weight", c->n_vocab, E, SLM_X_COPY, 0, REQUIRED);
    rc |= add_spec(s, "model.norm.weight", "output_norm.weight", E, 0, nx, 0, REQUIRED);
    rc |= add_spec(s, "lm_head.weight", "output.weight", c->n_vocab, E, SLM_X_COPY, 0,
                   c->tie_embeddings ? OPTIONAL : REQUIRED);
    for (int l = 0; l < c->n_layer; l++) {
        char h[128], g[96];
#define L(hfname, ggname, rows, cols, xf, heads, req)                                                             \
    do {                                                                                                           \
        snprintf(h, sizeof h, "model.layers.%d.%s", l, hfname);                                                     \
        snprintf(g, sizeof g, "blk.%d.%s", l, ggname);                                                              \
        rc |= add_spec(s, h, g, rows, cols, xf, heads, req);                                                        \
    } while (0)
        if (phi3) {
            L("input_layernorm.weight", "attn_norm.weight", E, 0, SLM_X_COPY, 0, REQUIRED);
            L("self_attn.qkv_proj.weight", "attn_qkv.weight", q + 2 * kv, E, SLM_X_COPY, 0, REQUIRED);
            L("self_attn.o_proj.weight", "attn_output.weight", E, q, SLM_X_COPY, 0, REQUIRED);
            L("post_attention_layernorm.weight", "ffn_norm.weight", E, 0, SLM_X_COPY, 0, REQUIRED);
            /* gate and up stay fused (gate first), as llama.cpp keeps them */
            L("mlp.gate_up_proj.weight", "ffn_up.weight", 2LL * c->n_ff, E, SLM_X_COPY, 0, REQUIRED);
            L("mlp.down_proj.weight", "ffn_down.weight", E, c->n_ff, SLM_X_COPY, 0, REQUIRED);
            continue;
        }
        L("self_attn.q_proj.weight", "attn_q.weight", q, E, px, c->n_head, REQUIRED);
        L("self_attn.k_proj.weight", "attn_k.weight", kv, E, px, c->n_head_kv, REQUIRED);
        L("self_attn.v_proj.weight", "attn_v.weight", kv, E, SLM_X_COPY, 0, REQUIRED);
        L("self_attn.o_proj.weight", "attn_output.weight", E, q, SLM_X_COPY, 0, REQUIRED);
        if (c->attn_bias) {
            L("self_attn.q_proj.bias", "attn_q.bias", q, 0, px, c->n_head, REQUIRED);
            L("self_attn.k_proj.bias", "attn_k.bias", kv, 0, px, c->n_head_kv, REQUIRED);
            L("self_attn.v_proj.bias", "attn_v.bias", kv, 0, SLM_X_COPY, 0, REQUIRED);
            /* Llama's attention_bias also covers o_proj; Qwen2 has none there */
            L("self_attn.o_proj.bias", "attn_output.bias", E, 0, SLM_X_COPY, 0,
              c->arch == SLM_ARCH_LLAMA ? REQUIRED : OPTIONAL);
        }
        if (c->arch == SLM_ARCH_QWEN3 || gemma) { /* per-head RMSNorm of q and k */
            L("self_attn.q_norm.weight", "attn_q_norm.weight", hd, 0, nx, 0, REQUIRED);
            L("self_attn.k_norm.weight", "attn_k_norm.weight", hd, 0, nx, 0, REQUIRED);
        }
        L("input_layernorm.weight", "attn_norm.weight", E, 0, nx, 0, REQUIRED);
        L("mlp.gate_proj.weight", "ffn_gate.weight", c->n_ff, E, SLM_X_COPY, 0, REQUIRED);
        L("mlp.down_proj.weight", "ffn_down.weight", E, c->n_ff, SLM_X_COPY, 0, REQUIRED);
        L("mlp.up_proj.weight", "ffn_up.weight", c->n_ff, E, SLM_X_COPY, 0, REQUIRED);
        if (gemma) {
            L("post_attention_layernorm.weight", "post_attention_norm.weight", E, 0, nx, 0, REQUIRED);
            L("pre_feedforward_layernorm.weight", "ffn_norm.weight", E, 0, nx, 0, REQUIRED);
            L("post_feedforward_layernorm.weight", "post_ffw_norm.weight", E, 0, nx, 0, REQUIRED);
        } else {
            L("post_attention_layernorm.weight", "ffn_norm.weight", E, 0, SLM_X_COPY, 0, REQUIRED);
        }
#undef L
    }
    return rc ? -1 : 0;
}

void slm_llama3_rope_factors(const hf_config *c, float *out, int n)
{
    /* float32 throughout, as torch computes it in the converter */
    /* rope_theta absent: LlamaConfig's (and the converter's) 10000 */
    const float base = (float)(c->rope_theta > 0 ? c->rope_theta : 10000.0), dim = (float)c->head_dim;
    const float factor = (float)c->rope_factor, lo = (float)c->rope_low_freq_factor,
                hi = (float)c->rope_high_freq_factor, old_ctx = (float)c->rope_orig_ctx;
    const float lo_wavelen = old_ctx / lo, hi_wavelen = old_ctx / hi;
    for (int i = 0; i < n; i++) {
        /* torch computes `scalar / tensor` as reciprocal(tensor) * scalar */
        float freq = 1.0f / powf(base, (float)(2 * i) / dim);
        float wavelen = (1.0f / freq) * (float)(2.0 * M_PI);
        if (wavelen < hi_wavelen) {
            out[i] = 1.0f;
        } else if (wavelen > lo_wavelen) {
            out[i] = factor;
        } else {
            float smooth = ((1.0f / wavelen) * old_ctx - lo) / (hi - lo);
            out[i] = 1.0f / ((1.0f - smooth) / factor + smooth);
        }
    }
}

/* GPT-2: Conv1D weights are stored [in, out]; llama.cpp stores them [out, in]. */
static int gpt2_specs(const hf_config *c, const char *pfx, specs *s)
{
    int64_t E = c->n_embd, F = c->n_ff;
    int rc = 0;
    char h[128], g[96];
#define T(hfname, ggname, rows, cols, xf, req)                                                                     \
    do {                                                                                                           \
        snprintf(h, sizeof h, "%s%s", pfx, hfname);                                                                 \
        rc |= add_spec(s, h, ggname, rows, cols, xf, 0, req);                                                       \
    } while (0)
    T("wte.weight", "token_embd.weight", c->n_vocab, E, SLM_X_COPY, REQUIRED);
    T("wpe.weight", "position_embd.weight", c->n_ctx, E, SLM_X_COPY, REQUIRED);
    T("ln_f.weight", "output_norm.weight", E, 0, SLM_X_COPY, REQUIRED);
    T("ln_f.bias", "output_norm.bias", E, 0, SLM_X_COPY, REQUIRED);
#undef T
    rc |= add_spec(s, "lm_head.weight", "output.weight", c->n_vocab, E, SLM_X_COPY, 0,
                   c->tie_embeddings ? OPTIONAL : REQUIRED);
    for (int l = 0; l < c->n_layer; l++) {
#define L(hfname, ggname, rows, cols, xf)                                                                          \
    do {                                                                                                           \
        snprintf(h, sizeof h, "%sh.%d.%s", pfx, l, hfname);                                                         \
        snprintf(g, sizeof g, "blk.%d.%s", l, ggname);                                                              \
        rc |= add_spec(s, h, g, rows, cols, xf, 0, REQUIRED);                                                       \
    } while (0)
        L("ln_1.weight", "attn_norm.weight", E, 0, SLM_X_COPY);
        L("ln_1.bias", "attn_norm.bias", E, 0, SLM_X_COPY);
        L("attn.c_attn.weight", "attn_qkv.weight", E, 3 * E, SLM_X_TRANSPOSE);
        L("attn.c_attn.bias", "attn_qkv.bias", 3 * E, 0, SLM_X_COPY);
        L("attn.c_proj.weight", "attn_output.weight", E, E, SLM_X_TRANSPOSE);
        L("attn.c_proj.bias", "attn_output.bias", E, 0, SLM_X_COPY);
        L("ln_2.weight", "ffn_norm.weight", E, 0, SLM_X_COPY);
        L("ln_2.bias", "ffn_norm.bias", E, 0, SLM_X_COPY);
        L("mlp.c_fc.weight", "ffn_up.weight", E, F, SLM_X_TRANSPOSE);
        L("mlp.c_fc.bias", "ffn_up.bias", F, 0, SLM_X_COPY);
        L("mlp.c_proj.weight", "ffn_down.weight", F, E, SLM_X_TRANSPOSE);
        L("mlp.c_proj.bias", "ffn_down.bias", E, 0, SLM_X_COPY);
#undef L
    }
    return rc ? -1 : 0;
}

/* Checkpoint entries that are not weights (buffers some exporters save). */
static int ignorable(const char *name)
{
    static const char *const suffixes[] = {"rotary_emb.inv_freq", ".attn.bias", ".attn.masked_bias"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        size_t k = strlen(suffixes[i]);
        if (n >= k && !strcmp(name + n - k, suffixes[i]))
            return 1;
    }
    return 0;
}

static void shape_str(const st_tensor *t, char *buf, size_t cap)
{
    size_t o = snprintf(buf, cap, "[");
    for (int i = 0; i < t->n_dims && o < cap; i++)
        o += snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
}

static const char *base_name(const char *dir)
{
    static __thread char buf[256];
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/')
        b--;
    size_t len = n - b < sizeof buf - 1 ? n - b : sizeof buf - 1;
    memcpy(buf, dir + b, len);
    buf[len] = 0;
    return buf;
}

int slm_plan_build(const char *dir, uint32_t out_type, slm_plan *p, slm_err *err)
{
    memset(p, 0, sizeof *p);
    int rc = hf_config_load(dir, &p->cfg, err);
    if (rc)
        return rc;
    /* the tokenizer travels inside the GGUF: its files are part of the input
     * (tokenizer_config.json too for the newer families: special tokens,
     * add_bos, chat template) */
    {
        const char *need[2] = {"tokenizer.json", p->cfg.arch >= SLM_ARCH_QWEN3 ? "tokenizer_config.json" : NULL};
        for (int i = 0; i < 2 && need[i]; i++) {
            char path[4096];
            struct stat sb;
            snprintf(path, sizeof path, "%s/%s", dir, need[i]);
            if (stat(path, &sb) != 0 && errno == ENOENT)
                return slm_err_set(err, SLM_EINPUT, "%s: missing %s (a %s model directory needs it)", dir, need[i],
                                   p->cfg.hf_arch);
        }
    }
    rc = st_open(dir, &p->st, err);
    if (rc)
        return rc;
    rc = hf_tokenizer_load(dir, &p->cfg, &p->tok, err);
    if (rc) {
        slm_plan_free(p);
        return rc;
    }
    snprintf(p->name, sizeof p->name, "%.127s", base_name(dir));
    p->out_type = out_type;

    const char *stname = st_shard_path(p->st, 0);
    specs s = {0};
    const char *gpt2_pfx = "transformer.";
    if (p->cfg.arch == SLM_ARCH_GPT2) {
        /* checkpoints saved from GPT2Model (not the LM head model) lack the prefix */
        if (!st_find(p->st, "transformer.wte.weight") && st_find(p->st, "wte.weight"))
            gpt2_pfx = "";
        rc = gpt2_specs(&p->cfg, gpt2_pfx, &s);
    } else {
        rc = llama_specs(&p->cfg, &s);
    }
    if (rc) {
        free(s.v);
        slm_plan_free(p);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }

    p->t = calloc(s.n, sizeof *p->t);
    if (!p->t) {
        free(s.v);
        slm_plan_free(p);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    size_t used = 0;
    for (size_t i = 0; i < s.n; i++) {
        const spec *e = &s.v[i];
        if (e->xform == SLM_X_COMPUTED) {
            slm_plan_tensor *o = &p->t[p->n++];
            snprintf(o->name, sizeof o->name, "%s", e->gguf);
            o->xform = SLM_X_COMPUTED;
            o->n_dims = 1;
            o->ne[0] = e->rows;
            o->ne[1] = o->ne[2] = o->ne[3] = 1;
            o->n_elems = (uint64_t)e->rows;
            o->out_type = SLM_TYPE_F32;
            float *g = malloc((size_t)e->rows * sizeof *g);
            if (!g) {
                rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
                goto fail;
            }
            slm_llama3_rope_factors(&p->cfg, g, (int)e->rows);
            free(p->gen); /* one computed tensor per plan (rope_freqs) */
            p->gen = g;
            o->gen = g;
            continue;
        }
        const st_tensor *t = st_find(p->st, e->hf);
        if (!t) {
            if (e->required) {
                rc = slm_err_set(err, SLM_EINPUT, "%s: missing tensor '%s' (required by %s with %d layers)",
                                 stname, e->hf, p->cfg.hf_arch, p->cfg.n_layer);
                goto fail;
            }
            continue;
        }
        used++;
        int want_dims = e->cols ? 2 : 1;
        int ok = t->n_dims == want_dims && t->shape[0] == e->rows && (!e->cols || t->shape[1] == e->cols);
        if (!ok) {
            char got[96];
            shape_str(t, got, sizeof got);
            if (e->cols)
                rc = slm_err_set(err, SLM_EINPUT, "%s: tensor '%s' has shape %s; config.json implies [%lld, %lld]",
                                 st_shard_path(p->st, t->shard), e->hf, got, (long long)e->rows,
                                 (long long)e->cols);
            else
                rc = slm_err_set(err, SLM_EINPUT, "%s: tensor '%s' has shape %s; config.json implies [%lld]",
                                 st_shard_path(p->st, t->shard), e->hf, got, (long long)e->rows);
            goto fail;
        }
        if (e->xform == SLM_X_PERMUTE_QK && (e->heads <= 0 || e->rows % (2LL * e->heads))) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: tensor '%s': %lld rows cannot be split into %d heads of even size",
                             st_shard_path(p->st, t->shard), e->hf, (long long)e->rows, e->heads);
            goto fail;
        }
        slm_plan_tensor *o = &p->t[p->n++];
        snprintf(o->name, sizeof o->name, "%s", e->gguf);
        o->src = t;
        o->xform = e->xform;
        o->perm_heads = e->heads;
        if (e->cols) {
            /* GPT-2 Conv1D [in, out] becomes ggml ne = [in, out] after the transpose */
            o->n_dims = 2;
            o->ne[0] = e->xform == SLM_X_TRANSPOSE ? e->rows : e->cols;
            o->ne[1] = e->xform == SLM_X_TRANSPOSE ? e->cols : e->rows;
        } else {
            o->n_dims = 1;
            o->ne[0] = e->rows;
            o->ne[1] = 1;
        }
        o->ne[2] = o->ne[3] = 1;
        o->n_elems = (uint64_t)o->ne[0] * (uint64_t)o->ne[1];
        /* llama.cpp keeps 1-D tensors and norms in F32 */
        int keep_f32 = o->n_dims < 2 || strstr(o->name, "_norm.") != NULL;
        o->out_type = keep_f32 ? SLM_TYPE_F32 : out_type;
    }

    /* every checkpoint tensor must have been used (or be a known buffer) */
    if (used != st_count(p->st)) {
        for (size_t i = 0; i < st_count(p->st); i++) {
            const st_tensor *t = st_get(p->st, i);
            if (ignorable(t->name))
                continue;
            int found = 0;
            for (size_t k = 0; k < p->n && !found; k++)
                found = p->t[k].src == t;
            if (!found) {
                rc = slm_err_set(err, SLM_EINPUT, "%s: tensor '%s' is not part of a %s checkpoint as slmkit knows it",
                                 st_shard_path(p->st, t->shard), t->name, p->cfg.hf_arch);
                goto fail;
            }
        }
    }
    free(s.v);
    return SLM_OK;
fail:
    free(s.v);
    slm_plan_free(p);
    return rc;
}

void slm_plan_free(slm_plan *p)
{
    if (!p)
        return;
    free(p->t);
    free(p->gen);
    hf_tokenizer_free(&p->tok);
    st_close(p->st);
    memset(p, 0, sizeof *p);
}

/* llama_ftype of a single output type, as llama.cpp's converter sets it. */
static uint32_t file_type_of(uint32_t t)
{
    switch (t) {
    case SLM_TYPE_F32: return 0;
    case SLM_TYPE_F16: return 1;
    case SLM_TYPE_Q8_0: return 7;
    case SLM_TYPE_BF16: return 32;
    default: return 0;
    }
}

int slm_plan_describe(const slm_plan *p, gguf_writer *w, slm_err *err)
{
    const hf_config *c = &p->cfg;
    const char *a = c->gguf_arch;
    char k[128];
    int rc = 0;
#define KEY(suffix) (snprintf(k, sizeof k, "%s.%s", a, suffix), k)
    rc |= gguf_set_str(w, "general.architecture", a);
    rc |= gguf_set_str(w, "general.type", "model");
    rc |= gguf_set_str(w, "general.name", p->name);
    rc |= gguf_set_u32(w, KEY("block_count"), (uint32_t)c->n_layer);
    rc |= gguf_set_u32(w, KEY("context_length"), (uint32_t)c->n_ctx);
    rc |= gguf_set_u32(w, KEY("embedding_length"), (uint32_t)c->n_embd);
    rc |= gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)c->n_ff);
    rc |= gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)c->n_head);
    if (c->arch == SLM_ARCH_GPT2) {
        rc |= gguf_set_f32(w, KEY("attention.layer_norm_epsilon"), (float)c->norm_eps);
    } else if (c->arch == SLM_ARCH_QWEN3 || c->arch == SLM_ARCH_GEMMA3) {
        /* the keys llama.cpp's converter writes for these (TextModel + Gemma3Model) */
        rc |= gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_head_kv);
        if (c->rope_theta > 0)
            rc |= gguf_set_f32(w, KEY("rope.freq_base"), (float)c->rope_theta);
        if (c->arch == SLM_ARCH_GEMMA3)
            rc |= gguf_set_f32(w, KEY("rope.freq_base_swa"), (float)c->rope_local_theta);
        rc |= gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)c->norm_eps);
        if (c->has_head_dim || c->arch == SLM_ARCH_GEMMA3) {
            rc |= gguf_set_u32(w, KEY("attention.key_length"), (uint32_t)c->head_dim);
            rc |= gguf_set_u32(w, KEY("attention.value_length"), (uint32_t)c->head_dim);
        }
        if (c->arch == SLM_ARCH_GEMMA3) {
            if (c->final_logit_softcap > 0)
                rc |= gguf_set_f32(w, KEY("final_logit_softcapping"), (float)c->final_logit_softcap);
            if (c->swa_pattern != 1) /* pattern 1: every layer global, no window */
                rc |= gguf_set_u32(w, KEY("attention.sliding_window"), (uint32_t)c->sliding_window);
            /* llama.cpp's gemma3 assumes 5 local layers then 1 global; any
             * other period is stated (llama.cpp reads this key too) */
            if (c->swa_pattern != 6 && c->swa_pattern != 1)
                rc |= gguf_set_u32(w, KEY("attention.sliding_window_pattern"), (uint32_t)c->swa_pattern);
        }
    } else if (c->arch == SLM_ARCH_PHI3) {
        /* Phi3MiniModel.set_gguf_parameters */
        rc |= gguf_set_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)c->rope_orig_ctx);
        rc |= gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_head_kv);
        rc |= gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)c->norm_eps);
        rc |= gguf_set_u32(w, KEY("rope.dimension_count"), (uint32_t)c->rope_dim);
        rc |= gguf_set_f32(w, KEY("rope.freq_base"), (float)c->rope_theta);
        rc |= gguf_set_u32(w, KEY("attention.sliding_window"), (uint32_t)c->sliding_window);
    } else {
        rc |= gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_head_kv);
        if (c->rope_theta > 0)
            rc |= gguf_set_f32(w, KEY("rope.freq_base"), (float)c->rope_theta);
        rc |= gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)c->norm_eps);
        if (c->has_head_dim) { /* as llama.cpp: only when config.json states head_dim */
            rc |= gguf_set_u32(w, KEY("attention.key_length"), (uint32_t)c->head_dim);
            rc |= gguf_set_u32(w, KEY("attention.value_length"), (uint32_t)c->head_dim);
        }
        if (c->arch == SLM_ARCH_LLAMA) {
            rc |= gguf_set_u32(w, KEY("vocab_size"), (uint32_t)c->n_vocab);
            rc |= gguf_set_u32(w, KEY("rope.dimension_count"), (uint32_t)c->head_dim);
        }
    }
#undef KEY
    rc |= gguf_set_u32(w, "general.file_type", file_type_of(p->out_type));
    rc |= gguf_set_u32(w, "general.quantization_version", 2);

    /* tokenizer.* keys (formats/hf_tokenizer.c) */
    rc |= hf_tokenizer_describe(&p->tok, w);

    for (size_t i = 0; i < p->n && !rc; i++) {
        const slm_plan_tensor *o = &p->t[i];
        if (gguf_add_tensor(w, o->name, o->out_type, o->n_dims, o->ne) < 0)
            rc = -1;
    }
    if (rc)
        return slm_err_set(err, SLM_EINTERNAL, "%s: cannot describe the GGUF (out of memory or bad tensor row length)",
                           p->name);
    return SLM_OK;
}

uint32_t slm_plan_file_type(uint32_t out_type)
{
    return file_type_of(out_type);
}

void slm_plan_read_rows(const slm_plan_tensor *t, int64_t r0, int64_t nr, float *dst)
{
    const st_tensor *s = t->src;
    int64_t cols = t->ne[0];
    if (t->xform == SLM_X_COMPUTED) {
        memcpy(dst, t->gen + r0 * cols, (size_t)(nr * cols) * sizeof *dst);
        return;
    }
    if (t->xform == SLM_X_ADD_ONE) {
        /* llama.cpp adds 1 in the checkpoint's dtype after widening BF16 to
         * F32; an F16 checkpoint's sum is rounded to F16 (nearest even) */
        st_read_f32(s, (uint64_t)(r0 * cols), (uint64_t)(nr * cols), dst);
        for (int64_t i = 0; i < nr * cols; i++) {
            dst[i] += 1.0f;
            if (s->dtype == SLM_TYPE_F16 && fabsf(dst[i]) >= 6.103515625e-05f && fabsf(dst[i]) < 65504.0f) {
                uint32_t u;
                memcpy(&u, &dst[i], 4);
                u += 0xfffu + ((u >> 13) & 1u);
                u &= ~0x1fffu;
                memcpy(&dst[i], &u, 4);
            }
        }
        return;
    }
    if (t->n_dims == 1 && t->xform == SLM_X_PERMUTE_QK) {
        /* a permuted bias: the same row mapping, one element per row */
        int64_t hd = t->ne[0] / t->perm_heads, half = hd / 2;
        for (int64_t i = 0; i < t->ne[0]; i++) {
            int64_t h = i / hd, rem = i % hd;
            st_read_f32(s, (uint64_t)(h * hd + (rem % 2) * half + rem / 2), 1, dst + i);
        }
        return;
    }
    switch (t->xform) {
    case SLM_X_PERMUTE_QK: {
        /* output row (h, j, b) <- HF row (h, b, j): HF keeps the two halves of
         * each head apart (rotate_half), llama.cpp interleaves them */
        int64_t rows = t->ne[1], hd = rows / t->perm_heads, half = hd / 2;
        for (int64_t r = r0; r < r0 + nr; r++) {
            int64_t h = r / hd, rem = r % hd, j = rem / 2, b = rem % 2;
            int64_t src = h * hd + b * half + j;
            st_read_f32(s, (uint64_t)(src * cols), (uint64_t)cols, dst + (r - r0) * cols);
        }
        break;
    }
    case SLM_X_TRANSPOSE: {
        /* HF [in, out] -> output row r = column r of the source */
        int64_t in = cols, out = t->ne[1];
        float tmp[256];
        for (int64_t c = 0; c < in; c++) {
            for (int64_t r = r0; r < r0 + nr; r += 256) {
                int64_t m = r0 + nr - r < 256 ? r0 + nr - r : 256;
                st_read_f32(s, (uint64_t)(c * out + r), (uint64_t)m, tmp);
                for (int64_t i = 0; i < m; i++)
                    dst[(r - r0 + i) * in + c] = tmp[i];
            }
        }
        break;
    }
    default:
        st_read_f32(s, (uint64_t)(r0 * cols), (uint64_t)(nr * cols), dst);
        break;
    }
}
