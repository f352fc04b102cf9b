/* runtime/model.c — bind a GGUF's metadata and tensors to the forward pass, as the
 * architecture's row (runtime/arch.c) describes them (names and keys as llama.cpp's llama-model.cpp uses them).
 * Every tensor's type and shape is checked here, so the forward pass can
 * trust them. */
#include "runtime.h"
#include "rt_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 4096
#define MAX_DIM (1 << 20)

static int get_i(const gguf_file *f, const char *arch, const char *suffix, int64_t *v)
{
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_get_int(f, key, v);
}

static int get_f(const gguf_file *f, const char *arch, const char *suffix, double *v)
{
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_get_float(f, key, v);
}

static const gguf_tensor *find_t(const gguf_file *f, const char *name)
{
    int64_t i = gguf_find_tensor(f, name);
    return i < 0 ? NULL : &f->tensors[i];
}

typedef struct loader {
    slm_model *m;
    slm_err *err;
    const char *path;
} loader;

/* A matrix of ne = {n_in, n_out}; required unless opt. */
static int get_mat(loader *L, const char *name, int64_t n_in, int64_t n_out, int opt, const gguf_tensor **out)
{
    const gguf_tensor *t = find_t(L->m->f, name);
    *out = t;
    if (!t)
        return opt ? SLM_OK : slm_err_set(L->err, SLM_EINPUT, "%s: tensor '%s' is missing", L->path, name);
    if (t->n_dims != 2 || t->ne[0] != n_in || t->ne[1] != n_out)
        return slm_err_set(L->err, SLM_EINPUT, "%s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]",
                           L->path, name, (long long)t->ne[0], (long long)(t->n_dims > 1 ? t->ne[1] : 1),
                           (long long)n_in, (long long)n_out);
    if (!slm_matmul_supported(t->type))
        return slm_err_set(L->err, SLM_EINPUT, "%s: tensor '%s' has type %s, which the runtime cannot multiply",
                           L->path, name, slm_type_name(t->type) ? slm_type_name(t->type) : "(unknown)");
    L->m->weight_bytes += t->nbytes;
    return SLM_OK;
}

/* A vector of n values, copied to float. */
static int get_vec(loader *L, const char *name, int64_t n, int opt, float **out)
{
    *out = NULL;
    const gguf_tensor *t = find_t(L->m->f, name);
    if (!t)
        return opt ? SLM_OK : slm_err_set(L->err, SLM_EINPUT, "%s: tensor '%s' is missing", L->path, name);
    if (t->n_elems != (uint64_t)n || t->ne[0] != n)
        return slm_err_set(L->err, SLM_EINPUT, "%s: tensor '%s' has %llu values, expected %lld", L->path, name,
                           (unsigned long long)t->n_elems, (long long)n);
    if (t->type != SLM_TYPE_F32 && t->type != SLM_TYPE_F16 && t->type != SLM_TYPE_BF16 &&
        !slm_matmul_supported(t->type))
        return slm_err_set(L->err, SLM_EINPUT, "%s: tensor '%s' has unsupported type %u", L->path, name, t->type);
    float *v = malloc(sizeof(float) * (size_t)n);
    if (!v)
        return slm_err_set(L->err, SLM_EINTERNAL, "out of memory");
    gguf_tensor row = *t;
    row.n_dims = 2;
    row.ne[1] = 1;
    slm_tensor_row_f32(&row, 0, v);
    L->m->weight_bytes += t->nbytes;
    *out = v;
    return SLM_OK;
}

static int read_hparams(loader *L)
{
    const gguf_file *f = L->m->f;
    slm_hparams *hp = &L->m->hp;
    gguf_str s;
    if (gguf_get_str(f, "general.architecture", &s))
        return slm_err_set(L->err, SLM_EINPUT, "%s: no general.architecture key", L->path);
    if (s.len >= sizeof hp->arch_name)
        return slm_err_set(L->err, SLM_EINPUT, "%s: unsupported architecture (name of %llu bytes)", L->path,
                           (unsigned long long)s.len);
    memcpy(hp->arch_name, s.ptr, s.len);
    hp->arch_name[s.len] = 0;
    const char *a = hp->arch_name;
    const slm_arch_desc *d = slm_arch_find(a);
    if (!d)
        return slm_err_set(L->err, SLM_EINPUT,
                           "%s: unsupported architecture '%s' (supported: llama, qwen2, qwen3, gemma3, phi3, gpt2)",
                           L->path, a);
    hp->desc = d;
    hp->arch = d->arch;

    int64_t v;
    struct { const char *key; int *dst; int required; } ints[] = {
        {"block_count", &hp->n_layer, 1},      {"embedding_length", &hp->n_embd, 1},
        {"attention.head_count", &hp->n_head, 1}, {"feed_forward_length", &hp->n_ff, 0},
        {"context_length", &hp->n_ctx_train, 0},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        *ints[i].dst = 0;
        if (get_i(f, a, ints[i].key, &v)) {
            if (ints[i].required)
                return slm_err_set(L->err, SLM_EINPUT, "%s: missing key %s.%s", L->path, a, ints[i].key);
            continue;
        }
        if (v < 1 || v > (i == 4 ? (1 << 24) : MAX_DIM))
            return slm_err_set(L->err, SLM_EINPUT, "%s: %s.%s = %lld is out of range", L->path, a, ints[i].key,
                               (long long)v);
        *ints[i].dst = (int)v;
    }
    if (hp->n_layer > MAX_LAYERS)
        return slm_err_set(L->err, SLM_EINPUT, "%s: %s.block_count = %d is out of range", L->path, a, hp->n_layer);
    hp->n_head_kv = hp->n_head;
    if (!get_i(f, a, "attention.head_count_kv", &v)) {
        if (v < 1 || v > hp->n_head || hp->n_head % v)
            return slm_err_set(L->err, SLM_EINPUT, "%s: %s.attention.head_count_kv = %lld does not divide %d heads",
                               L->path, a, (long long)v, hp->n_head);
        hp->n_head_kv = (int)v;
    }
    /* head size: attention.key_length, else embedding / heads */
    if (!get_i(f, a, "attention.key_length", &v)) {
        if (v < 1 || v > 4096)
            return slm_err_set(L->err, SLM_EINPUT, "%s: %s.attention.key_length = %lld is out of range", L->path, a,
                               (long long)v);
        hp->head_dim = (int)v;
    } else {
        if (hp->n_embd % hp->n_head)
            return slm_err_set(L->err, SLM_EINPUT, "%s: embedding length %d is not a multiple of %d heads", L->path,
                               hp->n_embd, hp->n_head);
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    if (hp->head_dim > 4096)
        return slm_err_set(L->err, SLM_EINPUT, "%s: head size %d is out of range (at most 4096)", L->path,
                           hp->head_dim);
    if (!get_i(f, a, "attention.value_length", &v) && v != hp->head_dim)
        return slm_err_set(L->err, SLM_EINPUT, "%s: %s.attention.value_length %lld != key_length %d is not supported",
                           L->path, a, (long long)v, hp->head_dim);
    if ((int64_t)hp->n_head * hp->head_dim > MAX_DIM)
        return slm_err_set(L->err, SLM_EINPUT, "%s: %d heads of %d are too wide", L->path, hp->n_head, hp->head_dim);
    hp->n_q = hp->n_head * hp->head_dim;
    if (d->rope == SLM_ROPE_NONE && hp->n_q != hp->n_embd)
        return slm_err_set(L->err, SLM_EINPUT, "%s: attention width %d != embedding length %d", L->path, hp->n_q,
                           hp->n_embd);
    hp->n_rot = hp->head_dim;
    if (!get_i(f, a, "rope.dimension_count", &v)) {
        if (v < 0 || v > hp->head_dim || v % 2)
            return slm_err_set(L->err, SLM_EINPUT, "%s: %s.rope.dimension_count = %lld is invalid (head size %d)",
                               L->path, a, (long long)v, hp->head_dim);
        hp->n_rot = (int)v;
    }
    double dv;
    hp->rope_freq_base = 10000.0f;
    if (!get_f(f, a, "rope.freq_base", &dv)) {
        if (!(dv > 0))
            return slm_err_set(L->err, SLM_EINPUT, "%s: %s.rope.freq_base = %g is invalid", L->path, a, dv);
        hp->rope_freq_base = (float)dv;
    }
    hp->rope_freq_base_swa = d->rope_base_swa > 0 ? d->rope_base_swa : hp->rope_freq_base;
    if (!get_f(f, a, "rope.freq_base_swa", &dv)) {
        if (!(dv > 0))
            return slm_err_set(L->err, SLM_EINPUT, "%s: %s.rope.freq_base_swa = %g is invalid", L->path, a, dv);
        hp->rope_freq_base_swa = (float)dv;
    }
    /* RoPE scaling the runtime does not implement is refused, never ignored (llama3's
     * scaling arrives as the rope_freqs tensor instead) */
    char key[160];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    if (!gguf_get_str(f, key, &s) && !(s.len == 4 && !memcmp(s.ptr, "none", 4)))
        return slm_err_set(L->err, SLM_EINPUT, "%s: %s = '%.*s' is not supported (slmkit runs unscaled RoPE and "
                           "llama3 frequency factors)", L->path, key, (int)(s.len > 40 ? 40 : s.len), s.ptr);
    if (!get_f(f, a, "rope.scaling.factor", &dv) && dv != 1.0 && dv != 0.0)
        return slm_err_set(L->err, SLM_EINPUT, "%s: %s.rope.scaling.factor = %g is not supported", L->path, a, dv);
    if (!get_f(f, a, "attn_logit_softcapping", &dv) && dv != 0.0)
        return slm_err_set(L->err, SLM_EINPUT, "%s: %s.attn_logit_softcapping = %g is not supported", L->path, a, dv);
    hp->logit_softcap = 0;
    if (!get_f(f, a, "final_logit_softcapping", &dv)) {
        if (!(dv >= 0 && dv < 1e6))
            return slm_err_set(L->err, SLM_EINPUT, "%s: %s.final_logit_softcapping = %g is invalid", L->path, a, dv);
        hp->logit_softcap = (float)dv;
    }
    hp->n_swa = 0;
    if (d->swa && !get_i(f, a, "attention.sliding_window", &v)) {
        if (v < 0 || v > (1 << 24))
            return slm_err_set(L->err, SLM_EINPUT, "%s: %s.attention.sliding_window = %lld is out of range", L->path,
                               a, (long long)v);
        hp->n_swa = (int)v;
    }
    hp->rope_neox = d->rope == SLM_ROPE_NEOX;
    if (get_f(f, a, d->eps_key, &dv))
        return slm_err_set(L->err, SLM_EINPUT, "%s: missing key %s.%s", L->path, a, d->eps_key);
    if (!(dv >= 0 && dv < 1))
        return slm_err_set(L->err, SLM_EINPUT, "%s: %s.%s = %g is invalid", L->path, a, d->eps_key, dv);
    hp->norm_eps = (float)dv;
    hp->embd_scale = d->embd_scale ? sqrtf((float)hp->n_embd) : 1.0f;
    /* llama.cpp scales Gemma 3 27B (62 layers) by its embedding per head instead (gemma_pytorch) */
    hp->attn_scale = d->arch == SLM_ARCH_GEMMA3 && hp->n_layer == 62
                         ? 1.0f / sqrtf((float)(hp->n_embd / hp->n_head))
                         : 1.0f / sqrtf((float)hp->head_dim);
    return SLM_OK;
}

/* Which layers use the sliding window: <arch>.attention.sliding_window_pattern as an array of
 * booleans (one per layer) or a period p (layer il is local unless il % p == p - 1), else the
 * architecture's period. */
static int read_swa_layers(loader *L)
{
    slm_model *m = L->m;
    const slm_hparams *hp = &m->hp;
    if (!hp->n_swa)
        return SLM_OK;
    char key[160];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", hp->arch_name);
    int64_t ki = gguf_find_key(m->f, key);
    int period = hp->desc->swa_pattern;
    if (ki >= 0) {
        const gguf_kv *kv = &m->f->kv[ki];
        if (kv->type == GGUF_T_ARRAY) {
            if (kv->arr_type != GGUF_T_BOOL || kv->arr_n != (uint64_t)hp->n_layer)
                return slm_err_set(L->err, SLM_EINPUT, "%s: %s is not %d booleans", L->path, key, hp->n_layer);
            for (int il = 0; il < hp->n_layer; il++)
                m->layers[il].swa = gguf_arr_num(kv, (uint64_t)il) != 0;
            return SLM_OK;
        }
        int64_t p;
        if (gguf_get_int(m->f, key, &p) || p < 0 || p > MAX_LAYERS)
            return slm_err_set(L->err, SLM_EINPUT, "%s: %s is invalid", L->path, key);
        period = (int)p;
    }
    for (int il = 0; il < hp->n_layer; il++)
        m->layers[il].swa = period == 0 || il % period < period - 1;
    return SLM_OK;
}

static int bind_tensors(loader *L)
{
    slm_model *m = L->m;
    slm_hparams *hp = &m->hp;
    const slm_arch_desc *d = hp->desc;
    const gguf_file *f = m->f;
    int rc;
    m->tok_embd = find_t(f, "token_embd.weight");
    if (!m->tok_embd)
        return slm_err_set(L->err, SLM_EINPUT, "%s: tensor 'token_embd.weight' is missing", L->path);
    if (m->tok_embd->n_dims != 2 || m->tok_embd->ne[0] != hp->n_embd || m->tok_embd->ne[1] < 1)
        return slm_err_set(L->err, SLM_EINPUT, "%s: tensor 'token_embd.weight' does not have %d columns", L->path,
                           hp->n_embd);
    hp->n_vocab = (int)m->tok_embd->ne[1];
    if ((rc = get_mat(L, "token_embd.weight", hp->n_embd, hp->n_vocab, 0, &m->tok_embd)))
        return rc;
    if ((rc = get_mat(L, "output.weight", hp->n_embd, hp->n_vocab, 1, &m->output)))
        return rc;
    if (!m->output)
        m->output = m->tok_embd; /* tied */
    const int ab = !d->all_bias; /* biases optional unless the architecture has them everywhere */
    if ((rc = get_vec(L, "output_norm.weight", hp->n_embd, 0, &m->output_norm)) ||
        (rc = get_vec(L, "output_norm.bias", hp->n_embd, ab, &m->output_norm_b)))
        return rc;
    if (d->rope == SLM_ROPE_NONE) {
        const gguf_tensor *pe = find_t(f, "position_embd.weight");
        if (!pe || pe->n_dims != 2 || pe->ne[0] != hp->n_embd)
            return slm_err_set(L->err, SLM_EINPUT, "%s: tensor 'position_embd.weight' is missing or not [%d, n]",
                               L->path, hp->n_embd);
        if ((rc = get_mat(L, "position_embd.weight", hp->n_embd, pe->ne[1], 0, &m->pos_embd)))
            return rc;
        if (hp->n_ctx_train == 0 || hp->n_ctx_train > pe->ne[1])
            hp->n_ctx_train = (int)pe->ne[1];
    } else {
        if ((rc = get_vec(L, "rope_freqs.weight", hp->n_rot / 2, 1, &m->rope_freqs)))
            return rc;
        hp->has_rope_freqs = m->rope_freqs != NULL;
        for (int i = 0; m->rope_freqs && i < hp->n_rot / 2; i++)
            if (!(m->rope_freqs[i] > 0) || !isfinite(m->rope_freqs[i]))
                return slm_err_set(L->err, SLM_EINPUT, "%s: rope_freqs.weight[%d] = %g is not a positive factor",
                                   L->path, i, m->rope_freqs[i]);
    }
    if (hp->n_ctx_train == 0)
        hp->n_ctx_train = 2048;

    int64_t E = hp->n_embd, D = hp->head_dim, Q = hp->n_q, KV = (int64_t)hp->n_head_kv * D;
    const int ff_mul = d->ffn == SLM_FFN_GATED_FUSED ? 2 : 1;
    if (!hp->n_ff) {
        const gguf_tensor *up = find_t(f, "blk.0.ffn_up.weight");
        if (!up || up->n_dims != 2 || up->ne[1] < ff_mul || up->ne[1] > MAX_DIM)
            return slm_err_set(L->err, SLM_EINPUT, "%s: no feed_forward_length and no usable blk.0.ffn_up.weight",
                               L->path);
        hp->n_ff = (int)(up->ne[1] / ff_mul);
    }
    int64_t FF = hp->n_ff;
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers)
        return slm_err_set(L->err, SLM_EINTERNAL, "out of memory");
    char nm[128];
#define NM(s) (snprintf(nm, sizeof nm, "blk.%d." s, i), nm)
    for (int i = 0; i < hp->n_layer; i++) {
        slm_layer *ly = &m->layers[i];
        if ((rc = get_vec(L, NM("attn_norm.weight"), E, 0, &ly->attn_norm)) ||
            (rc = get_vec(L, NM("attn_norm.bias"), E, ab, &ly->attn_norm_b)) ||
            (rc = get_vec(L, NM("ffn_norm.weight"), E, 0, &ly->ffn_norm)) ||
            (rc = get_vec(L, NM("ffn_norm.bias"), E, ab, &ly->ffn_norm_b)) ||
            (rc = get_mat(L, NM("attn_output.weight"), Q, E, 0, &ly->wo)) ||
            (rc = get_vec(L, NM("attn_output.bias"), E, ab, &ly->bo)) ||
            (rc = get_mat(L, NM("ffn_up.weight"), E, ff_mul * FF, 0, &ly->ffn_up)) ||
            (rc = get_vec(L, NM("ffn_up.bias"), ff_mul * FF, ab, &ly->ffn_up_b)) ||
            (rc = get_mat(L, NM("ffn_down.weight"), FF, E, 0, &ly->ffn_down)) ||
            (rc = get_vec(L, NM("ffn_down.bias"), E, ab, &ly->ffn_down_b)))
            return rc;
        if (d->ffn == SLM_FFN_GATED && (rc = get_mat(L, NM("ffn_gate.weight"), E, FF, 0, &ly->ffn_gate)))
            return rc;
        int fused = d->qkv == SLM_QKV_FUSED || (d->qkv == SLM_QKV_ANY && find_t(f, NM("attn_qkv.weight")));
        if (fused) {
            if ((rc = get_mat(L, NM("attn_qkv.weight"), E, Q + 2 * KV, 0, &ly->wqkv)) ||
                (rc = get_vec(L, NM("attn_qkv.bias"), Q + 2 * KV, ab, &ly->bqkv)))
                return rc;
        } else {
            const int ob = !d->qkv_bias && ab;
            if ((rc = get_mat(L, NM("attn_q.weight"), E, Q, 0, &ly->wq)) ||
                (rc = get_mat(L, NM("attn_k.weight"), E, KV, 0, &ly->wk)) ||
                (rc = get_mat(L, NM("attn_v.weight"), E, KV, 0, &ly->wv)) ||
                (rc = get_vec(L, NM("attn_q.bias"), Q, ob, &ly->bq)) ||
                (rc = get_vec(L, NM("attn_k.bias"), KV, ob, &ly->bk)) ||
                (rc = get_vec(L, NM("attn_v.bias"), KV, ob, &ly->bv)))
                return rc;
        }
        if (d->qk_norm && ((rc = get_vec(L, NM("attn_q_norm.weight"), D, 0, &ly->q_norm)) ||
                           (rc = get_vec(L, NM("attn_k_norm.weight"), D, 0, &ly->k_norm))))
            return rc;
        if (d->sandwich && ((rc = get_vec(L, NM("post_attention_norm.weight"), E, 0, &ly->attn_post_norm)) ||
                            (rc = get_vec(L, NM("post_ffw_norm.weight"), E, 0, &ly->ffn_post_norm))))
            return rc;
    }
#undef NM
    return read_swa_layers(L);
}

int slm_model_load(const char *path, slm_model **out, slm_err *err)
{
    *out = NULL;
    slm_model *m = calloc(1, sizeof *m);
    if (!m)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    pthread_mutex_init(&m->packs_mu, NULL);
    int rc = gguf_open(path, &m->f, err);
    if (rc) {
        pthread_mutex_destroy(&m->packs_mu);
        free(m);
        return rc;
    }
    loader L = {m, err, path};
    if ((rc = read_hparams(&L)) || (rc = bind_tensors(&L))) {
        slm_model_free(m);
        return rc;
    }
    *out = m;
    return SLM_OK;
}

void slm_model_free(slm_model *m)
{
    if (!m)
        return;
    if (m->layers) {
        for (int i = 0; i < m->hp.n_layer; i++) {
            slm_layer *ly = &m->layers[i];
            float *v[] = {ly->attn_norm, ly->attn_norm_b, ly->bq, ly->bk, ly->bv, ly->bqkv, ly->bo,
                          ly->q_norm, ly->k_norm, ly->attn_post_norm, ly->ffn_post_norm,
                          ly->ffn_norm, ly->ffn_norm_b, ly->ffn_up_b, ly->ffn_down_b};
            for (size_t k = 0; k < sizeof v / sizeof v[0]; k++)
                free(v[k]);
        }
        free(m->layers);
    }
    free(m->output_norm);
    free(m->output_norm_b);
    free(m->rope_freqs);
    gguf_close(m->f);
    pthread_mutex_destroy(&m->packs_mu);
    free(m);
}

const slm_hparams *slm_model_hparams(const slm_model *m) { return &m->hp; }
const gguf_file *slm_model_gguf(const slm_model *m) { return m->f; }
uint64_t slm_model_weight_bytes(const slm_model *m) { return m->weight_bytes; }
void slm_model_set_packs(slm_model *m, int on)
{
    pthread_mutex_lock(&m->packs_mu);
    if (!m->packs.users)
        m->no_packs = !on;
    pthread_mutex_unlock(&m->packs_mu);
}
