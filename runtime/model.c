/* runtime/model.c — bind a GGUF's metadata and tensors to the Llama / Qwen2 /
 * GPT-2 graphs (names and keys as llama.cpp's llama-model.cpp uses them).
 * Every tensor's type and shape is checked here, so the forward pass can
 * trust them. */
#include "runtime.h"
#include "rt_internal.h"

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
    if (!strcmp(a, "llama"))
        hp->arch = SLM_MODEL_LLAMA;
    else if (!strcmp(a, "qwen2"))
        hp->arch = SLM_MODEL_QWEN2;
    else if (!strcmp(a, "gpt2"))
        hp->arch = SLM_MODEL_GPT2;
    else
        return slm_err_set(L->err, SLM_EINPUT, "%s: unsupported architecture '%s' (supported: llama, qwen2, gpt2)",
                           L->path, a);

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
    if (hp->n_embd % hp->n_head)
        return slm_err_set(L->err, SLM_EINPUT, "%s: embedding length %d is not a multiple of %d heads", L->path,
                           hp->n_embd, hp->n_head);
    hp->head_dim = hp->n_embd / hp->n_head;
    if (!get_i(f, a, "attention.key_length", &v) && v != hp->head_dim)
        return slm_err_set(L->err, SLM_EINPUT, "%s: attention.key_length %lld != embedding/heads %d is not supported",
                           L->path, (long long)v, hp->head_dim);
    hp->n_rot = hp->head_dim;
    if (!get_i(f, a, "rope.dimension_count", &v)) {
        if (v < 0 || v > hp->head_dim || v % 2)
            return slm_err_set(L->err, SLM_EINPUT, "%s: %s.rope.dimension_count = %lld is invalid (head size %d)",
                               L->path, a, (long long)v, hp->head_dim);
        hp->n_rot = (int)v;
    }
    double d;
    hp->rope_freq_base = 10000.0f;
    if (!get_f(f, a, "rope.freq_base", &d)) {
        if (!(d > 0))
            return slm_err_set(L->err, SLM_EINPUT, "%s: %s.rope.freq_base = %g is invalid", L->path, a, d);
        hp->rope_freq_base = (float)d;
    }
    hp->rope_neox = hp->arch == SLM_MODEL_QWEN2;
    const char *eps_key = hp->arch == SLM_MODEL_GPT2 ? "attention.layer_norm_epsilon"
                                                     : "attention.layer_norm_rms_epsilon";
    if (get_f(f, a, eps_key, &d))
        return slm_err_set(L->err, SLM_EINPUT, "%s: missing key %s.%s", L->path, a, eps_key);
    if (!(d >= 0 && d < 1))
        return slm_err_set(L->err, SLM_EINPUT, "%s: %s.%s = %g is invalid", L->path, a, eps_key, d);
    hp->norm_eps = (float)d;
    return SLM_OK;
}

static int bind_tensors(loader *L)
{
    slm_model *m = L->m;
    slm_hparams *hp = &m->hp;
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
    int gpt2 = hp->arch == SLM_MODEL_GPT2;
    if ((rc = get_vec(L, "output_norm.weight", hp->n_embd, 0, &m->output_norm)) ||
        (rc = get_vec(L, "output_norm.bias", hp->n_embd, !gpt2, &m->output_norm_b)))
        return rc;
    if (gpt2) {
        const gguf_tensor *pe = find_t(f, "position_embd.weight");
        if (!pe || pe->n_dims != 2 || pe->ne[0] != hp->n_embd)
            return slm_err_set(L->err, SLM_EINPUT, "%s: tensor 'position_embd.weight' is missing or not [%d, n]",
                               L->path, hp->n_embd);
        if ((rc = get_mat(L, "position_embd.weight", hp->n_embd, pe->ne[1], 0, &m->pos_embd)))
            return rc;
        if (hp->n_ctx_train == 0 || hp->n_ctx_train > pe->ne[1])
            hp->n_ctx_train = (int)pe->ne[1];
    }
    if (hp->n_ctx_train == 0)
        hp->n_ctx_train = 2048;

    int64_t E = hp->n_embd, D = hp->head_dim, KV = (int64_t)hp->n_head_kv * D;
    if (!hp->n_ff) {
        const gguf_tensor *up = find_t(f, "blk.0.ffn_up.weight");
        if (!up || up->n_dims != 2 || up->ne[1] < 1 || up->ne[1] > MAX_DIM)
            return slm_err_set(L->err, SLM_EINPUT, "%s: no feed_forward_length and no usable blk.0.ffn_up.weight",
                               L->path);
        hp->n_ff = (int)up->ne[1];
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
            (rc = get_vec(L, NM("attn_norm.bias"), E, !gpt2, &ly->attn_norm_b)) ||
            (rc = get_vec(L, NM("ffn_norm.weight"), E, 0, &ly->ffn_norm)) ||
            (rc = get_vec(L, NM("ffn_norm.bias"), E, !gpt2, &ly->ffn_norm_b)) ||
            (rc = get_mat(L, NM("attn_output.weight"), E, E, 0, &ly->wo)) ||
            (rc = get_vec(L, NM("attn_output.bias"), E, !gpt2, &ly->bo)) ||
            (rc = get_mat(L, NM("ffn_up.weight"), E, FF, 0, &ly->ffn_up)) ||
            (rc = get_vec(L, NM("ffn_up.bias"), FF, !gpt2, &ly->ffn_up_b)) ||
            (rc = get_mat(L, NM("ffn_down.weight"), FF, E, 0, &ly->ffn_down)) ||
            (rc = get_vec(L, NM("ffn_down.bias"), E, !gpt2, &ly->ffn_down_b)))
            return rc;
        if (gpt2) {
            if ((rc = get_mat(L, NM("attn_qkv.weight"), E, E + 2 * KV, 0, &ly->wqkv)) ||
                (rc = get_vec(L, NM("attn_qkv.bias"), E + 2 * KV, 0, &ly->bqkv)))
                return rc;
        } else {
            int need_b = hp->arch == SLM_MODEL_QWEN2;
            if ((rc = get_mat(L, NM("attn_q.weight"), E, E, 0, &ly->wq)) ||
                (rc = get_mat(L, NM("attn_k.weight"), E, KV, 0, &ly->wk)) ||
                (rc = get_mat(L, NM("attn_v.weight"), E, KV, 0, &ly->wv)) ||
                (rc = get_vec(L, NM("attn_q.bias"), E, !need_b, &ly->bq)) ||
                (rc = get_vec(L, NM("attn_k.bias"), KV, !need_b, &ly->bk)) ||
                (rc = get_vec(L, NM("attn_v.bias"), KV, !need_b, &ly->bv)) ||
                (rc = get_mat(L, NM("ffn_gate.weight"), E, FF, 0, &ly->ffn_gate)))
                return rc;
        }
    }
#undef NM
    return SLM_OK;
}

int slm_model_load(const char *path, slm_model **out, slm_err *err)
{
    *out = NULL;
    slm_model *m = calloc(1, sizeof *m);
    if (!m)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    int rc = gguf_open(path, &m->f, err);
    if (rc) {
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
                          ly->ffn_norm, ly->ffn_norm_b, ly->ffn_up_b, ly->ffn_down_b};
            for (size_t k = 0; k < sizeof v / sizeof v[0]; k++)
                free(v[k]);
        }
        free(m->layers);
    }
    free(m->output_norm);
    free(m->output_norm_b);
    gguf_close(m->f);
    free(m);
}

const slm_hparams *slm_model_hparams(const slm_model *m) { return &m->hp; }
const gguf_file *slm_model_gguf(const slm_model *m) { return m->f; }
uint64_t slm_model_weight_bytes(const slm_model *m) { return m->weight_bytes; }
