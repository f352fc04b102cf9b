/* runtime/forward.c — inference context (KV cache, scratch) and the one forward
 * pass, read from the model's architecture row (runtime/arch.c): RMSNorm or
 * LayerNorm, optional sandwich norms, split or fused QKV with optional biases,
 * per-head q/k norms, RoPE (adjacent or NEOX pairs, llama3 frequency factors) or
 * learned positions, GQA with optional sliding-window layers, gated / fused-gated /
 * plain FFN with SiLU or GELU, embedding scale and final logit soft-cap.
 *
 * Numerics follow llama.cpp's CPU graph: float activations, norms with a
 * double-precision sum, RoPE angles built by repeated multiplication as ggml
 * does, KQ scaled by 1/sqrt(head_dim), softmax with max subtraction and a
 * double-precision sum. The KV cache is float32 by default (llama.cpp defaults to f16;
 * its interop test runs it with f32 caches to compare like with like); f16, bf16, q8_0 and
 * q4_0 caches (slm_ctx_new_kv, llama.cpp's --cache-type-k/-v) store each position's row
 * in that type, quantized as it is written (blocks never cross a head; before a quantized
 * cache q/k/v are rotated by a Walsh-Hadamard transform as llama.cpp does, rot_chunk), and
 * attention reads it the way llama.cpp's flash-attention path does: K.q by the type's
 * dot product with q converted to its vec_dot_type (Q8_0 for the quantized types), V
 * rows dequantized and accumulated in float (attend()). docs/kvcache.md. */
#include "runtime.h"
#include "rt_internal.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

struct slm_ctx {
    const slm_model *m;
    slm_pool *pool;
    int n_ctx, n_batch, n_past;
    int64_t kv_dim;              /* n_head_kv * head_dim */
    uint32_t type_k, type_v;     /* cache element types (SLM_TYPE_F32: plain floats) */
    size_t k_row, v_row;         /* bytes of one position's row (kv_dim values) */
    size_t k_head, v_head;       /* bytes of one head's part of a row (head_dim values) */
    int rot_k, rot_v;            /* Walsh-Hadamard rotation of q/k (v and the output) in chunks of this
                                    many values before a quantized cache, as llama.cpp; 0: none */
    unsigned char *k_cache, *v_cache; /* [n_layer][n_ctx][k_row / v_row bytes] */
    float *att_tmp;              /* [n_threads][att_tmp_n]: q converted, K / V rows widened (attend) */
    size_t att_tmp_n;            /* head_dim * (1 + KV_VB + n_batch) */
    /* scratch for one batch of up to n_batch tokens */
    float *x;                    /* [B][E] residual stream */
    float *xn;                   /* [B][E] normalised input of a sub-block */
    float *q;                    /* [B][Q] queries (Q = n_head * head_dim) */
    float *qkv;                  /* [B][Q + 2 kv_dim] fused projection */
    float *kv;                   /* [B][kv_dim] keys, then [B][kv_dim] values of the batch */
    float *att;                  /* [B][Q] attention output before W_o */
    float *proj;                 /* [B][E] */
    float *ff_a, *ff_b;          /* [B][n_ff], [B][2 n_ff] (fused gate+up) */
    float *scores;               /* [n_threads][n_batch][n_ctx] attention weights */
    float *logits;               /* [B][n_vocab] or [1][n_vocab] */
    int n_logits;                /* rows in logits from the last decode */
    int all_logits_cap;          /* rows allocated */
    slm_act_observer obs;        /* calibration hook (slm_ctx_set_observer), or NULL */
    void *obs_user;
    int lr_on, lr0, lr1;         /* calibration: blocks [lr0, lr1) only (slm_ctx_set_layer_range) */
    const float *lr_in;          /* residual stream before block lr0, or NULL: embeddings */
    float *lr_out;               /* residual stream after block lr1 - 1, or NULL */
    int bp_from, bp_to;          /* calibration: block lr0 starts at bp_from, block lr1 - 1 stops at bp_to */
    const float *bp_aux;         /* the rows bp_from needs (SLM_BP_ATT, SLM_BP_DOWN) */
    int packs_held;              /* holds the model's x8 copies (slm_packs, shared by its contexts) */
    slm_ctx *const *multi;       /* during slm_decode_multi: the sequence of each token, else NULL */
};

/* ---- repacked weights (performance) --------------------------------------------- */

static size_t pack_slot(const slm_packs *p, const gguf_tensor *W)
{
    size_t h = ((uintptr_t)W >> 4) * 0x9E3779B97F4A7C15ull;
    size_t i = h & (p->cap - 1);
    while (p->slot[i].W && p->slot[i].W != W)
        i = (i + 1) & (p->cap - 1);
    return i;
}

static const void *packed_of(const slm_ctx *c, const gguf_tensor *W)
{
    const slm_packs *p = &c->m->packs;
    if (!p->slot)
        return NULL;
    return p->slot[pack_slot(p, W)].data;
}

/* W itself, or W moved into the packs' arena (its rows in huge pages) */
static const gguf_tensor *weights_of(const slm_ctx *c, const gguf_tensor *W)
{
    const slm_packs *p = &c->m->packs;
    if (!p->slot)
        return W;
    const gguf_tensor *mv = &p->slot[pack_slot(p, W)].moved;
    return mv->data ? mv : W;
}

enum { ARENA_ALIGN = 64 };

/* the matrices a decode step multiplies, each once (-1: the output head) */
static int matrices_of(const slm_model *m, int l, const gguf_tensor *ws[8])
{
    memset(ws, 0, 8 * sizeof *ws);
    if (l < 0) {
        ws[0] = m->output;
        return 1;
    }
    const slm_layer *ly = &m->layers[l];
    const gguf_tensor *t8[8] = {ly->wq, ly->wk, ly->wv, ly->wqkv, ly->wo, ly->ffn_gate, ly->ffn_up, ly->ffn_down};
    memcpy(ws, t8, sizeof t8);
    return 8;
}

/* bytes of W's decode copy in the arena: its x8 layout, else its rows (0: none) */
static size_t copy_bytes(const gguf_tensor *W, int moves)
{
    size_t n = slm_matmul_pack_bytes(W);
    if (!n && moves && W->n_dims >= 2 && slm_matmul_supported(W->type))
        n = (size_t)W->nbytes;
    return (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
}

/* arena bytes for every matrix once (the slot table marks them, then is cleared) */
static size_t arena_need(slm_packs *pk, const slm_model *m, int moves)
{
    size_t t = 0;
    for (int l = -1; l < m->hp.n_layer; l++) {
        const gguf_tensor *ws[8];
        int nw = matrices_of(m, l, ws);
        for (int k = 0; k < nw; k++) {
            size_t i;
            if (!ws[k] || pk->slot[i = pack_slot(pk, ws[k])].W)
                continue;
            pk->slot[i].W = ws[k];
            t += copy_bytes(ws[k], moves);
        }
    }
    memset(pk->slot, 0, pk->cap * sizeof *pk->slot);
    return t;
}

/* Copy every matrix a decode step reads into the arena (its x8 layout where it has one, else
 * its rows as they are), one at a time, and let the kernel drop the original pages from memory
 * (MADV_DONTNEED on the read-only file mapping: they are read back from the file if ever
 * touched again, e.g. an embedding row), so the resident weights stay at one copy. Moves
 * (copies without a new layout) only while the arena stays under half of the physical
 * memory: beyond that the file mapping is used as it is. Out of memory: x8 copies
 * malloc'd one by one, the plain layout for the rest. Once per model: every context of
 * the model shares them (slm_ctx_new / slm_ctx_free count). */
static void pack_weights(slm_model *m)
{
    slm_packs *pk = &m->packs;
    size_t n = 1 + (size_t)m->hp.n_layer * 8, cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    pk->slot = calloc(cap, sizeof *pk->slot);
    if (!pk->slot)
        return;
    pk->cap = cap;
    long page = sysconf(_SC_PAGESIZE), phys = sysconf(_SC_PHYS_PAGES);
    size_t with_moves = arena_need(pk, m, 1);
    int moves = page > 0 && phys > 0 && with_moves <= (uint64_t)phys * (uint64_t)page / 2;
    pk->arena_bytes = moves ? with_moves : arena_need(pk, m, 0);
    pk->arena = pk->arena_bytes ? slm_big_alloc(pk->arena_bytes) : NULL;
    if (!pk->arena)
        moves = 0;
    size_t off = 0;
    for (int l = -1; l < m->hp.n_layer; l++) {
        const gguf_tensor *ws[8];
        int nw = matrices_of(m, l, ws);
        for (int k = 0; k < nw; k++) {
            const gguf_tensor *W = ws[k];
            if (!W || pk->slot[pack_slot(pk, W)].W)
                continue;
            size_t i = pack_slot(pk, W), cb = copy_bytes(W, moves);
            pk->slot[i].W = W;
            int done = 0;
            if (pk->arena && cb) {
                uint8_t *dst = (uint8_t *)pk->arena + off;
                off += cb;
                if (slm_matmul_pack_bytes(W)) {
                    if (slm_matmul_pack_into(W, dst) == 0)
                        pk->slot[i].data = dst, done = 1;
                } else {
                    memcpy(dst, W->data, (size_t)W->nbytes);
                    pk->slot[i].moved = *W;
                    pk->slot[i].moved.data = dst;
                    done = 1;
                }
            } else if (!pk->arena && (pk->slot[i].data = slm_matmul_pack(W))) {
                done = 1;
            }
            if (done) /* whole file pages only, and nothing outside the mapping */
                gguf_release_range(m->f, W, 0, W->nbytes);
        }
    }
}

static void free_packs(slm_packs *pk)
{
    for (size_t i = 0; !pk->arena && pk->slot && i < pk->cap; i++)
        free(pk->slot[i].data);
    slm_big_free(pk->arena, pk->arena_bytes);
    free(pk->slot);
    pk->slot = NULL;
    pk->cap = 0;
    pk->arena = NULL;
    pk->arena_bytes = 0;
}

/* The model's packs are a cache of the (const) model, shared by its contexts. */
static void packs_hold(const slm_model *cm)
{
    slm_model *m = (slm_model *)cm;
    pthread_mutex_lock(&m->packs_mu);
    if (m->packs.users++ == 0 && !m->no_packs)
        pack_weights(m);
    pthread_mutex_unlock(&m->packs_mu);
}

static void packs_release(const slm_model *cm)
{
    slm_model *m = (slm_model *)cm;
    pthread_mutex_lock(&m->packs_mu);
    if (--m->packs.users == 0)
        free_packs(&m->packs);
    pthread_mutex_unlock(&m->packs_mu);
}

static void *xcalloc(size_t n, size_t sz, int *fail)
{
    if (*fail)
        return NULL;
    void *p = calloc(n ? n : 1, sz);
    if (!p)
        *fail = 1;
    return p;
}

/* ---- KV cache types ------------------------------------------------------------------ */

enum { KV_VB = 32 }; /* K (f16/bf16) or V rows widened to float per product (attend) */

static const struct { const char *name; uint32_t type; } g_kv_types[] = {
    {"f32", SLM_TYPE_F32}, {"f16", SLM_TYPE_F16}, {"bf16", SLM_TYPE_BF16}, {"q8_0", SLM_TYPE_Q8_0}, {"q4_0", SLM_TYPE_Q4_0},
};

uint32_t slm_kv_type_by_name(const char *name)
{
    for (size_t i = 0; name && i < sizeof g_kv_types / sizeof g_kv_types[0]; i++)
        if (!strcasecmp(name, g_kv_types[i].name))
            return g_kv_types[i].type;
    return UINT32_MAX;
}

const char *slm_kv_type_name(uint32_t type)
{
    for (size_t i = 0; i < sizeof g_kv_types / sizeof g_kv_types[0]; i++)
        if (g_kv_types[i].type == type)
            return g_kv_types[i].name;
    return NULL;
}

const char *slm_kv_type_names(void) { return "f32, f16, bf16, q8_0, q4_0"; }

static int kv_type_check(const slm_hparams *hp, const char *which, uint32_t type, slm_err *err)
{
    const char *nm = slm_kv_type_name(type);
    if (!nm)
        return slm_err_set(err, SLM_EUSAGE, "%s cache type %u is not one of %s", which, (unsigned)type,
                           slm_kv_type_names());
    const slm_qtraits *t = slm_qtraits_get(type);
    if (!t || hp->head_dim % t->blck)
        return slm_err_set(err, SLM_EINPUT,
                           "%s cache type %s stores blocks of %d values per head, which do not divide this model's "
                           "head size %d (use f32, f16 or bf16)",
                           which, nm, t ? t->blck : 0, hp->head_dim);
    return SLM_OK;
}

uint64_t slm_kv_cache_bytes(const slm_hparams *hp, int n_ctx, uint32_t type_k, uint32_t type_v)
{
    if (!slm_kv_type_name(type_k) || !slm_kv_type_name(type_v) || n_ctx < 0)
        return 0;
    int64_t kv = (int64_t)hp->n_head_kv * hp->head_dim;
    size_t k = slm_row_bytes(type_k, kv), v = slm_row_bytes(type_v, kv);
    return (uint64_t)hp->n_layer * (uint64_t)n_ctx * ((uint64_t)k + (uint64_t)v);
}

/* One position's row of n values into the cache as `type` writes it in llama.cpp (ggml's
 * from_float): plain copy (F32), round to nearest even (F16, BF16, and Q8_0 through the
 * activation quantizer), llama.cpp's reference quantizer for Q4_0. */
static void kv_put(uint32_t type, const float *x, void *dst, int64_t n)
{
    if (type == SLM_TYPE_F32)
        memcpy(dst, x, sizeof(float) * (size_t)n);
    else if (slm_quantize_act(type, x, dst, n) != 0)
        slm_quantize_rows_llama_ref(type, x, dst, 1, n);
}

/* llama.cpp rotates what goes into a quantized cache by an orthonormal Walsh-Hadamard matrix (a
 * rotation spreads an outlier over the block, so the block's scale fits the rest better), when
 * the head size is a multiple of 64: q and k in chunks of the largest power of two dividing the
 * head size, v in chunks of 64, and the attention output back (H is its own inverse). q.k is
 * unchanged by the rotation; only the rounding sees it. */
static int rot_chunk(uint32_t type, int head_dim, int is_k)
{
    const slm_qtraits *t = slm_qtraits_get(type);
    if (!t || !t->is_quant || head_dim % 64)
        return 0;
    int n = 64;
    while (is_k && head_dim % (2 * n) == 0)
        n *= 2;
    return n;
}

/* x <- H x in chunks of n values (n a power of two), H the Sylvester-ordered Hadamard
 * matrix scaled by 1/sqrt(n): butterflies (x_i, x_j) -> (x_i + x_j, x_i - x_j). */
static void hadamard(float *x, int64_t len, int n)
{
    const float s = 1.0f / sqrtf((float)n);
    for (int64_t c = 0; c + n <= len; c += n) {
        float *v = x + c;
        for (int h = 1; h < n; h *= 2)
            for (int i = 0; i < n; i += 2 * h)
                for (int j = i; j < i + h; j++) {
                    const float a = v[j], b = v[j + h];
                    v[j] = a + b;
                    v[j + h] = a - b;
                }
        for (int i = 0; i < n; i++)
            v[i] *= s;
    }
}

uint32_t slm_ctx_type_k(const slm_ctx *c) { return c->type_k; }
uint32_t slm_ctx_type_v(const slm_ctx *c) { return c->type_v; }
uint64_t slm_ctx_kv_bytes(const slm_ctx *c) { return slm_kv_cache_bytes(&c->m->hp, c->n_ctx, c->type_k, c->type_v); }

int slm_ctx_new(const slm_model *m, int n_ctx, int n_batch, int n_threads, slm_ctx **out, slm_err *err)
{
    return slm_ctx_new_kv(m, n_ctx, n_batch, n_threads, SLM_TYPE_F32, SLM_TYPE_F32, out, err);
}

int slm_ctx_new_kv(const slm_model *m, int n_ctx, int n_batch, int n_threads, uint32_t type_k, uint32_t type_v,
                   slm_ctx **out, slm_err *err)
{
    *out = NULL;
    const slm_hparams *hp = &m->hp;
    if (n_ctx < 1 || n_ctx > hp->n_ctx_train)
        return slm_err_set(err, SLM_EINPUT, "context size %d is out of range: the model supports 1..%d tokens",
                           n_ctx, hp->n_ctx_train);
    int rc0;
    if ((rc0 = kv_type_check(hp, "K", type_k, err)) || (rc0 = kv_type_check(hp, "V", type_v, err)))
        return rc0;
    if (n_batch <= 0)
        n_batch = n_ctx < 512 ? n_ctx : 512;
    if (n_batch > n_ctx)
        n_batch = n_ctx;
    slm_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    c->m = m;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    c->type_k = type_k;
    c->type_v = type_v;
    c->k_row = slm_row_bytes(type_k, c->kv_dim);
    c->v_row = slm_row_bytes(type_v, c->kv_dim);
    c->k_head = slm_row_bytes(type_k, hp->head_dim);
    c->v_head = slm_row_bytes(type_v, hp->head_dim);
    c->rot_k = rot_chunk(type_k, hp->head_dim, 1);
    c->rot_v = rot_chunk(type_v, hp->head_dim, 0);
    int rc = slm_pool_new(n_threads, &c->pool, err);
    if (rc) {
        free(c);
        return rc;
    }
    size_t B = (size_t)n_batch, E = (size_t)hp->n_embd, KV = (size_t)c->kv_dim, Q = (size_t)hp->n_q;
    size_t kv_pos = (size_t)hp->n_layer * (size_t)n_ctx;
    int fail = 0;
    c->k_cache = xcalloc(kv_pos, c->k_row, &fail);
    c->v_cache = xcalloc(kv_pos, c->v_row, &fail);
    c->att_tmp_n = (size_t)hp->head_dim * (1 + KV_VB + B);
    c->att_tmp = xcalloc((size_t)slm_pool_size(c->pool) * c->att_tmp_n, sizeof(float), &fail);
    c->x = xcalloc(B * E, sizeof(float), &fail);
    c->xn = xcalloc(B * E, sizeof(float), &fail);
    c->q = xcalloc(B * Q, sizeof(float), &fail);
    c->qkv = xcalloc(B * (Q + 2 * KV), sizeof(float), &fail);
    c->kv = xcalloc(B * 2 * KV, sizeof(float), &fail);
    c->att = xcalloc(B * Q, sizeof(float), &fail);
    c->proj = xcalloc(B * E, sizeof(float), &fail);
    c->ff_a = xcalloc(B * (size_t)hp->n_ff, sizeof(float), &fail);
    c->ff_b = xcalloc(B * 2 * (size_t)hp->n_ff, sizeof(float), &fail);
    c->scores = xcalloc((size_t)slm_pool_size(c->pool) * B * (size_t)n_ctx, sizeof(float), &fail);
    c->logits = xcalloc(B * (size_t)hp->n_vocab, sizeof(float), &fail);
    c->all_logits_cap = n_batch;
    if (!fail) {
        packs_hold(m);
        c->packs_held = 1;
    }
    if (fail) {
        slm_ctx_free(c);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory for a context of %d tokens (KV cache %.1f MiB)", n_ctx,
                           (double)kv_pos * (double)(c->k_row + c->v_row) / (1 << 20));
    }
    *out = c;
    return SLM_OK;
}

void slm_ctx_free(slm_ctx *c)
{
    if (!c)
        return;
    slm_pool_free(c->pool);
    if (c->packs_held)
        packs_release(c->m);
    free(c->k_cache);
    free(c->v_cache);
    float *bufs[] = {c->att_tmp, c->x, c->xn, c->q, c->qkv, c->kv, c->att, c->proj,
                     c->ff_a, c->ff_b, c->scores, c->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(c);
}

void slm_ctx_clear(slm_ctx *c) { c->n_past = 0; }
void slm_ctx_rewind(slm_ctx *c, int n_past)
{
    if (n_past >= 0 && n_past < c->n_past)
        c->n_past = n_past;
}
void slm_ctx_set_observer(slm_ctx *c, slm_act_observer fn, void *user)
{
    c->obs = fn;
    c->obs_user = user;
}
void slm_ctx_set_layer_range(slm_ctx *c, int l0, int l1, const float *x_in, float *x_out)
{
    c->lr_on = l0 >= 0;
    c->lr0 = l0 < 0 ? 0 : l0 > c->m->hp.n_layer ? c->m->hp.n_layer : l0;
    c->lr1 = l1 < c->lr0 ? c->lr0 : l1 > c->m->hp.n_layer ? c->m->hp.n_layer : l1;
    c->lr_in = c->lr_on ? x_in : NULL;
    c->lr_out = c->lr_on ? x_out : NULL;
    c->bp_from = SLM_BP_START;
    c->bp_to = SLM_BP_END;
    c->bp_aux = NULL;
}
void slm_ctx_set_block_part(slm_ctx *c, int from, int to, const float *aux_in)
{
    c->bp_from = from <= SLM_BP_QKV || from > SLM_BP_END ? SLM_BP_START : from;
    c->bp_to = to < SLM_BP_START || to > SLM_BP_END ? SLM_BP_END : to;
    c->bp_aux = aux_in;
}
int slm_ctx_n_past(const slm_ctx *c) { return c->n_past; }
int slm_ctx_n_ctx(const slm_ctx *c) { return c->n_ctx; }
int slm_ctx_n_batch(const slm_ctx *c) { return c->n_batch; }
int slm_ctx_n_vocab(const slm_ctx *c) { return c->m->hp.n_vocab; }

const float *slm_ctx_logits(const slm_ctx *c, int i)
{
    if (i < 0 || i >= c->n_logits)
        return NULL;
    return c->logits + (size_t)i * c->m->hp.n_vocab;
}

/* ---- elementwise pieces -------------------------------------------------------- */

static void rms_norm(float *y, const float *x, const float *w, int64_t n, float eps)
{
    double sum = 0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    const float scale = 1.0f / sqrtf((float)(sum / n) + eps);
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] * scale * w[i];
}

static void layer_norm(float *y, const float *x, const float *w, const float *b, int64_t n, float eps)
{
    double sum = 0;
    for (int64_t i = 0; i < n; i++)
        sum += x[i];
    const float mean = (float)(sum / n);
    double var = 0;
    for (int64_t i = 0; i < n; i++) {
        float d = x[i] - mean;
        var += (double)(d * d);
    }
    const float scale = 1.0f / sqrtf((float)(var / n) + eps);
    for (int64_t i = 0; i < n; i++)
        y[i] = (x[i] - mean) * scale * w[i] + b[i];
}

static void add_bias(float *y, const float *b, int n_tokens, int64_t n)
{
    if (!b)
        return;
    for (int t = 0; t < n_tokens; t++)
        for (int64_t i = 0; i < n; i++)
            y[(size_t)t * n + i] += b[i];
}

/* GELU, tanh form (GPT-2's "gelu_new"). llama.cpp's CPU backend evaluates it
 * through a table indexed by the input rounded to f16 and stores the result
 * rounded to f16 (inputs in (-10, 10)); we do the same so our logits agree
 * with llama.cpp's to ~1e-6 instead of ~1e-4. */
static float gelu_exact(float x)
{
    const float k = 0.79788456080286535588f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * x * (1.0f + 0.044715f * x * x)));
}

static uint16_t gelu_table[1 << 16];
static pthread_once_t gelu_once = PTHREAD_ONCE_INIT;

static void gelu_init(void)
{
    for (uint32_t i = 0; i < (1u << 16); i++)
        gelu_table[i] = slm_fp32_to_fp16(gelu_exact(slm_fp16_to_fp32((uint16_t)i)));
}

static float gelu(float x)
{
    if (x <= -10.0f)
        return 0.0f;
    if (x >= 10.0f)
        return x;
    return slm_fp16_to_fp32(gelu_table[slm_fp32_to_fp16(x)]);
}

static float silu(float x) { return x / (1.0f + expf(-x)); }

/* Rotate the first n_rot dims of each of n_heads heads of one token at pos. The angle of
 * pair i is pos * base^(-2i/n_rot), built by repeated multiplication as ggml does, divided
 * by ff[i] when the model has frequency factors (llama3 rope scaling). */
static void rope(float *v, int n_heads, int head_dim, int n_rot, int neox, float base, const float *ff, int pos)
{
    const float theta_scale = powf(base, -2.0f / n_rot);
    float cs[4096]; /* cos, sin per pair, the same for every head: n_rot <= head size <= 4096 (model.c) */
    float theta = (float)pos;
    for (int i0 = 0; i0 < n_rot; i0 += 2) {
        const float th = ff ? theta / ff[i0 / 2] : theta;
        cs[i0] = cosf(th);
        cs[i0 + 1] = sinf(th);
        theta *= theta_scale;
    }
    for (int h = 0; h < n_heads; h++) {
        float *x = v + (size_t)h * head_dim;
        for (int i0 = 0; i0 < n_rot; i0 += 2) {
            const float c = cs[i0], s = cs[i0 + 1];
            int a = neox ? i0 / 2 : i0;
            int b = neox ? i0 / 2 + n_rot / 2 : i0 + 1;
            const float x0 = x[a], x1 = x[b];
            x[a] = x0 * c - x1 * s;
            x[b] = x0 * s + x1 * c;
        }
    }
}

/* ---- attention: one task per (token, head), spread over the pool ------------------ */

typedef struct att_job {
    slm_ctx *c;
    int layer, n_tokens, pos0;
    const float *q;     /* [n_tokens][E] (rotated) */
    int64_t q_stride;
    atomic_int next;    /* next work item (att_task) */
} att_job;

/* the element-wise loops' AVX-512 versions (vec_avx512.c) with the AVX-512 kernel set */
static inline int vec_avx512(void) { return slm_kernel_active() == SLM_KERNEL_AVX512; }

/* Causal softmax of one row of NK scores: keys [k0, n_keys) visible (k0 > 0 with a
 * sliding window of win), the others 0. */
void rt_softmax_row(float *row, int n_keys, int NK, int win)
{
    const int k0 = win && n_keys > win ? n_keys - win : 0;
    float mx = -INFINITY;
    for (int p = k0; p < n_keys; p++)
        if (row[p] > mx)
            mx = row[p];
    double sum = 0;
    for (int p = k0; p < n_keys; p++) {
        float e = expf(row[p] - mx);
        row[p] = e;
        sum += e;
    }
    const float inv = (float)(1.0 / sum);
    for (int p = 0; p < k0; p++)
        row[p] = 0;
    for (int p = k0; p < n_keys; p++)
        row[p] *= inv;
    for (int p = n_keys; p < NK; p++)
        row[p] = 0;
}

/* Attention of one query head h over the cache of sequence sq at layer l: n query rows
 * (q, q_stride apart) at positions pos0 .. pos0+n-1 against keys 0 .. pos0+n-1, the output
 * rows (out, out_stride apart). S: [n][pos0+n] scores, tmp: head_dim * (1 + KV_VB + n)
 * floats, both the calling thread's. The one path for every cache type:
 *   scores: F32 keys, one sgemm over the cached rows (scale as alpha); quantized keys, each
 *           visible key by the type's vec_dot against q converted once per row to its
 *           vec_dot_type (Q8_0: integer dot products), times the scale; F16 / BF16 keys, q
 *           rounded through the type, KV_VB key rows widened to float at a time, one sgemm
 *           each (the products of two halves are exact in float: the type's dot product,
 *           summed in float);
 *   softmax per row with the causal mask and the layer's window;
 *   output: F32 values, one sgemm; other types, KV_VB rows at a time dequantized into tmp,
 *           accumulated by sgemm (beta 1), from the first key any row can see. */
static void attend(const slm_ctx *sq, const slm_hparams *hp, int l, int win, int h, const float *q, int64_t q_stride,
                   int n, int pos0, float *out, int64_t out_stride, float *S, float *tmp)
{
    const int D = hp->head_dim, kvh = h / (hp->n_head / hp->n_head_kv), NK = pos0 + n;
    const float scale = hp->attn_scale;
    const unsigned char *kc = sq->k_cache + (size_t)l * sq->n_ctx * sq->k_row + (size_t)kvh * sq->k_head;
    const unsigned char *vc = sq->v_cache + (size_t)l * sq->n_ctx * sq->v_row + (size_t)kvh * sq->v_head;
    if (sq->type_k == SLM_TYPE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, NK, D, scale, q, (int)q_stride, (const float *)kc,
                    (int)sq->kv_dim, 0.0f, S, NK);
    } else if (!slm_qtraits_get(sq->type_k)->is_quant) {
        const slm_qtraits *tk = slm_qtraits_get(sq->type_k);
        float *kb = tmp + D, *qf = tmp + (size_t)D * (1 + KV_VB);
        for (int t = 0; t < n; t++) {
            slm_quantize_act(sq->type_k, q + (size_t)t * q_stride, tmp, D);
            tk->dequantize_row(tmp, qf + (size_t)t * D, D);
        }
        for (int p0 = win && pos0 + 1 > win ? pos0 + 1 - win : 0; p0 < NK; p0 += KV_VB) {
            const int nb = NK - p0 < KV_VB ? NK - p0 : KV_VB;
            for (int i = 0; i < nb; i++)
                tk->dequantize_row(kc + (size_t)(p0 + i) * sq->k_row, kb + (size_t)i * D, D);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nb, D, scale, qf, D, kb, D, 0.0f, S + p0, NK);
        }
    } else {
        const slm_qtraits *tk = slm_qtraits_get(sq->type_k);
        for (int t = 0; t < n; t++) {
            const int last = pos0 + t, k0 = win && last + 1 > win ? last + 1 - win : 0;
            float *row = S + (size_t)t * NK;
            slm_quantize_act(tk->vec_dot_type, q + (size_t)t * q_stride, tmp, D);
            for (int p = k0; p <= last; p++) {
                float s;
                tk->vec_dot(D, &s, kc + (size_t)p * sq->k_row, tmp);
                row[p] = s * scale;
            }
        }
    }
    for (int t = 0; t < n; t++) {
#if defined(__x86_64__)
        if (vec_avx512()) {
            rt_softmax_row_avx512(S + (size_t)t * NK, pos0 + t + 1, NK, win);
            continue;
        }
#endif
        rt_softmax_row(S + (size_t)t * NK, pos0 + t + 1, NK, win);
    }
    if (sq->type_v == SLM_TYPE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, NK, 1.0f, S, NK, (const float *)vc,
                    (int)sq->kv_dim, 0.0f, out, (int)out_stride);
        return;
    }
    const slm_qtraits *tv = slm_qtraits_get(sq->type_v);
    float *vb = tmp + D;
    for (int t = 0; t < n; t++)
        memset(out + (size_t)t * out_stride, 0, sizeof(float) * (size_t)D);
    for (int p0 = win && pos0 + 1 > win ? pos0 + 1 - win : 0; p0 < NK; p0 += KV_VB) {
        const int nb = NK - p0 < KV_VB ? NK - p0 : KV_VB;
        for (int i = 0; i < nb; i++)
            tv->dequantize_row(vc + (size_t)(p0 + i) * sq->v_row, vb + (size_t)i * D, D);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, nb, 1.0f, S + p0, NK, vb, D, 1.0f, out,
                    (int)out_stride);
    }
}

/* One batch of one sequence: work items (head, block of ATT_QB query rows), each query
 * block against only the keys it can see (causal: pos0 + its last row + 1), taken from a
 * shared counter, the most expensive (the last blocks) first, so the threads stay balanced
 * whatever the head count. Each item writes its own output rows: the result does not
 * depend on which thread ran it. */
enum { ATT_QB = 64 };

static void att_task(void *arg, int ith, int nth)
{
    att_job *j = arg;
    slm_ctx *c = j->c;
    const slm_hparams *hp = &c->m->hp;
    const int win = c->m->layers[j->layer].swa ? hp->n_swa : 0; /* key p visible from pos when pos - p < win */
    float *S = c->scores + (size_t)ith * c->n_batch * c->n_ctx; /* [n][NK] */
    float *tmp = c->att_tmp + (size_t)ith * c->att_tmp_n;
    const int nqb = (j->n_tokens + ATT_QB - 1) / ATT_QB, items = nqb * hp->n_head;
    (void)nth;
    for (;;) {
        const int i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (i >= items)
            break;
        const int qb = nqb - 1 - i / hp->n_head, h = i % hp->n_head, t0 = qb * ATT_QB;
        const int nq = j->n_tokens - t0 < ATT_QB ? j->n_tokens - t0 : ATT_QB;
        attend(c, hp, j->layer, win, h, j->q + (size_t)t0 * j->q_stride + (size_t)h * hp->head_dim, j->q_stride, nq,
               j->pos0 + t0, c->att + (size_t)t0 * hp->n_q + (size_t)h * hp->head_dim, hp->n_q, S, tmp);
    }
}

/* Multi-sequence decode: token t of the batch belongs to sequence seqs[t] (its own cache,
 * position n_past); one task per (token, head), each the one-token case of att_task. */
typedef struct att_multi_job {
    slm_ctx *c;                /* scratch owner */
    slm_ctx *const *seqs;
    int layer, n_tokens;
} att_multi_job;

static void att_multi_task(void *arg, int ith, int nth)
{
    const att_multi_job *j = arg;
    slm_ctx *c = j->c;
    const slm_hparams *hp = &c->m->hp;
    const int H = hp->n_head, D = hp->head_dim;
    const int64_t Q = hp->n_q;
    const int win = c->m->layers[j->layer].swa ? hp->n_swa : 0;
    float *S = c->scores + (size_t)ith * c->n_batch * c->n_ctx;
    float *tmp = c->att_tmp + (size_t)ith * c->att_tmp_n;
    for (int i = ith; i < j->n_tokens * H; i += nth) {
        const int t = i / H, h = i % H;
        const slm_ctx *sq = j->seqs[t];
        attend(sq, hp, j->layer, win, h, c->q + (size_t)t * Q + (size_t)h * D, Q, 1, sq->n_past,
               c->att + (size_t)t * Q + (size_t)h * D, Q, S, tmp);
    }
}

/* ---- one batch ------------------------------------------------------------------ */

/* Every weight product goes through here so a calibration observer can see its
 * input (and substitute the weights, e.g. already quantized layers for GPTQ). */
const gguf_tensor slm_act_skip;

static void mm(slm_ctx *c, float *out, const gguf_tensor *W, const float *x, int n)
{
    if (c->multi) {
        slm_matmul_decode(c->pool, out, weights_of(c, W), packed_of(c, W), x, n);
        return;
    }
    if (c->obs) {
        const gguf_tensor *sub = c->obs(c->obs_user, W, x, n);
        if (sub == SLM_ACT_SKIP) {
            memset(out, 0, sizeof(float) * (size_t)n * (size_t)W->ne[1]);
            return;
        }
        if (sub && sub != W) {
            slm_matmul_packed(c->pool, out, sub, NULL, x, n); /* the runtime's own path, as for W */
            return;
        }
    }
    slm_matmul_packed(c->pool, out, weights_of(c, W), packed_of(c, W), x, n);
}

static void norm_rows(const slm_hparams *hp, float *y, const float *x, const float *w, const float *b, int n,
                      int64_t E)
{
    for (int t = 0; t < n; t++) {
        if (hp->desc->norm == SLM_NORM_LAYER)
            layer_norm(y + (size_t)t * E, x + (size_t)t * E, w, b, E, hp->norm_eps);
        else
            rms_norm(y + (size_t)t * E, x + (size_t)t * E, w, E, hp->norm_eps);
    }
}

void rt_silu_mul(float *a, const float *g, const float *u, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = silu(g[i]) * (u ? u[i] : 1.0f);
}

/* a[i] = act(g[i]) * (u ? u[i] : 1) for i < n, u may alias a (the branch on kind stays outside the loops) */
static void act_mul(int kind, float *a, const float *g, const float *u, size_t n)
{
#if defined(__x86_64__)
    if (kind == SLM_ACT_SILU && vec_avx512()) {
        rt_silu_mul_avx512(a, g, u, n);
        return;
    }
#endif
    if (kind == SLM_ACT_SILU) {
        rt_silu_mul(a, g, u, n);
    } else if (kind == SLM_ACT_GELU_TANH) {
        for (size_t i = 0; i < n; i++)
            a[i] = gelu_exact(g[i]) * (u ? u[i] : 1.0f);
    } else {
        for (size_t i = 0; i < n; i++)
            a[i] = gelu(g[i]) * (u ? u[i] : 1.0f);
    }
}

/* ---- the per-token steps between the products, over the pool's threads ---------- */

/* One layer's step over tokens [t0, t1): each token's rows only, so the threads' slices
 * never touch the same floats and the result is the one a single thread computes. */
typedef struct tok_job {
    slm_ctx *c;
    const slm_layer *ly;
    int l, n, pos0, step;
    float *kb, *vb;            /* the batch's k and v rows */
    unsigned char *kc, *vc;    /* this layer's cache rows from pos0 (one sequence) */
} tok_job;

enum { STEP_ATTN_NORM, STEP_QKV, STEP_ATT_OUT, STEP_FFN_NORM, STEP_FFN_ACT, STEP_FFN_OUT };

static void tok_step(const tok_job *j, int t0, int t1)
{
    slm_ctx *c = j->c;
    const slm_model *m = c->m;
    const slm_hparams *hp = &m->hp;
    const slm_arch_desc *d = hp->desc;
    const slm_layer *ly = j->ly;
    const int64_t E = hp->n_embd, KV = c->kv_dim, FF = hp->n_ff, Q = hp->n_q, D = hp->head_dim;
    slm_ctx *const *ms = c->multi;
    const int nt = t1 - t0;
    switch (j->step) {
    case STEP_ATTN_NORM:
        norm_rows(hp, c->xn + (size_t)t0 * E, c->x + (size_t)t0 * E, ly->attn_norm, ly->attn_norm_b, nt, E);
        return;
    case STEP_QKV: /* biases, q/k norms, RoPE, the cache's rotation, k and v into the cache */
        for (int t = t0; t < t1; t++) {
            float *q = c->q + (size_t)t * Q, *k = j->kb + (size_t)t * KV, *v = j->vb + (size_t)t * KV;
            if (ly->wqkv) {
                const int64_t QKV = Q + 2 * KV;
                float *row = c->qkv + (size_t)t * QKV;
                add_bias(row, ly->bqkv, 1, QKV);
                memcpy(q, row, sizeof(float) * Q);
                memcpy(k, row + Q, sizeof(float) * KV);
                memcpy(v, row + Q + KV, sizeof(float) * KV);
            } else {
                add_bias(q, ly->bq, 1, Q);
                add_bias(k, ly->bk, 1, KV);
                add_bias(v, ly->bv, 1, KV);
            }
            if (ly->q_norm) {
                for (int64_t h = 0; h < hp->n_head; h++)
                    rms_norm(q + h * D, q + h * D, ly->q_norm, D, hp->norm_eps);
                for (int64_t h = 0; h < hp->n_head_kv; h++)
                    rms_norm(k + h * D, k + h * D, ly->k_norm, D, hp->norm_eps);
            }
            if (d->rope != SLM_ROPE_NONE) {
                const float base = ly->swa ? hp->rope_freq_base_swa : hp->rope_freq_base;
                const int pos = ms ? ms[t]->n_past : j->pos0 + t;
                rope(q, hp->n_head, hp->head_dim, hp->n_rot, hp->rope_neox, base, m->rope_freqs, pos);
                rope(k, hp->n_head_kv, hp->head_dim, hp->n_rot, hp->rope_neox, base, m->rope_freqs, pos);
            }
            const slm_ctx *st = ms ? ms[t] : c; /* a quantized cache's rotation (rot_chunk), per token's sequence */
            if (st->rot_k) {
                hadamard(q, Q, st->rot_k);
                hadamard(k, KV, st->rot_k);
            }
            if (st->rot_v)
                hadamard(v, KV, st->rot_v);
            if (ms) { /* each token's k and v into its own sequence's cache */
                size_t pos = (size_t)j->l * st->n_ctx + (size_t)st->n_past;
                kv_put(st->type_k, k, st->k_cache + pos * st->k_row, KV);
                kv_put(st->type_v, v, st->v_cache + pos * st->v_row, KV);
            } else {
                kv_put(c->type_k, k, j->kc + (size_t)t * c->k_row, KV);
                kv_put(c->type_v, v, j->vc + (size_t)t * c->v_row, KV);
            }
        }
        return;
    case STEP_ATT_OUT: /* attention block's output into the residual, then the FFN's norm */
        add_bias(c->proj + (size_t)t0 * E, ly->bo, nt, E);
        if (ly->attn_post_norm)
            norm_rows(hp, c->proj + (size_t)t0 * E, c->proj + (size_t)t0 * E, ly->attn_post_norm, NULL, nt, E);
        for (size_t i = (size_t)t0 * E; i < (size_t)t1 * E; i++)
            c->x[i] += c->proj[i];
        norm_rows(hp, c->xn + (size_t)t0 * E, c->x + (size_t)t0 * E, ly->ffn_norm, ly->ffn_norm_b, nt, E);
        return;
    case STEP_FFN_NORM: /* a block entered at the feed-forward (slm_ctx_set_block_part) */
        norm_rows(hp, c->xn + (size_t)t0 * E, c->x + (size_t)t0 * E, ly->ffn_norm, ly->ffn_norm_b, nt, E);
        return;
    case STEP_FFN_ACT:
        if (d->ffn == SLM_FFN_GATED_FUSED) {
            add_bias(c->ff_b + (size_t)t0 * 2 * FF, ly->ffn_up_b, nt, 2 * FF);
            for (int t = t0; t < t1; t++) {
                const float *g = c->ff_b + (size_t)t * 2 * FF;
                act_mul(d->act, c->ff_a + (size_t)t * FF, g, g + FF, (size_t)FF);
            }
        } else {
            float *a = c->ff_a + (size_t)t0 * FF;
            add_bias(a, ly->ffn_up_b, nt, FF);
            if (d->ffn == SLM_FFN_PLAIN)
                act_mul(d->act, a, a, NULL, (size_t)nt * FF);
            else
                act_mul(d->act, a, c->ff_b + (size_t)t0 * FF, a, (size_t)nt * FF);
        }
        return;
    default: /* STEP_FFN_OUT */
        add_bias(c->proj + (size_t)t0 * E, ly->ffn_down_b, nt, E);
        if (ly->ffn_post_norm)
            norm_rows(hp, c->proj + (size_t)t0 * E, c->proj + (size_t)t0 * E, ly->ffn_post_norm, NULL, nt, E);
        for (size_t i = (size_t)t0 * E; i < (size_t)t1 * E; i++)
            c->x[i] += c->proj[i];
        return;
    }
}

static void tok_task(void *arg, int ith, int nth)
{
    const tok_job *j = arg;
    const int per = (j->n + nth - 1) / nth, t0 = per * ith < j->n ? per * ith : j->n;
    const int t1 = t0 + per < j->n ? t0 + per : j->n;
    if (t0 < t1)
        tok_step(j, t0, t1);
}

/* step over the batch: on the pool for prompts, on the calling thread for a few tokens */
static void tok_run(tok_job *j, int step)
{
    j->step = step;
    if (j->n >= 16 && slm_pool_size(j->c->pool) > 1)
        slm_pool_run(j->c->pool, tok_task, j);
    else
        tok_step(j, 0, j->n);
}

static void forward_batch(slm_ctx *c, const int32_t *tok, int n, int all_logits)
{
    const slm_model *m = c->m;
    const slm_hparams *hp = &m->hp;
    const slm_arch_desc *d = hp->desc;
    const int64_t E = hp->n_embd, KV = c->kv_dim, Q = hp->n_q;
    const int pos0 = c->n_past;
    slm_ctx *const *ms = c->multi; /* multi-sequence step: token t at seqs[t]'s position */
    float *tmp = c->proj;
    if (d->act == SLM_ACT_GELU_F16)
        pthread_once(&gelu_once, gelu_init);

    /* embeddings (or, for calibration, a given residual stream) */
    if (c->lr_in)
        memcpy(c->x, c->lr_in, sizeof(float) * (size_t)n * E);
    for (int t = 0; t < n && !c->lr_in; t++) {
        float *xt = c->x + (size_t)t * E;
        slm_tensor_row_f32(m->tok_embd, tok[t], xt);
        if (m->pos_embd) {
            slm_tensor_row_f32(m->pos_embd, ms ? ms[t]->n_past : pos0 + t, tmp);
            for (int64_t i = 0; i < E; i++)
                xt[i] += tmp[i];
        }
        if (hp->embd_scale != 1.0f)
            for (int64_t i = 0; i < E; i++)
                xt[i] *= hp->embd_scale;
    }

    const int l_end = c->lr_on ? c->lr1 : hp->n_layer;
    for (int l = c->lr_on ? c->lr0 : 0; l < l_end; l++) {
        const slm_layer *ly = &m->layers[l];
        tok_job tj = {
            .c = c, .ly = ly, .l = l, .n = n, .pos0 = pos0, .kb = c->kv, .vb = c->kv + (size_t)n * KV,
            .kc = c->k_cache + ((size_t)l * c->n_ctx + pos0) * c->k_row,
            .vc = c->v_cache + ((size_t)l * c->n_ctx + pos0) * c->v_row,
        };
        /* calibration may run only part of a block (slm_ctx_set_block_part) */
        const int from = c->lr_on && l == c->lr0 ? c->bp_from : SLM_BP_START;
        const int to = c->lr_on && l == l_end - 1 ? c->bp_to : SLM_BP_END;
        if (from == SLM_BP_START && to > SLM_BP_START) {
            tok_run(&tj, STEP_ATTN_NORM);

            /* q [n][Q], k and v [n][KV] (biases, norms, RoPE in STEP_QKV, which also fills the cache) */
            if (ly->wqkv) {
                mm(c, c->qkv, ly->wqkv, c->xn, n);
            } else {
                mm(c, c->q, ly->wq, c->xn, n);
                mm(c, tj.kb, ly->wk, c->xn, n);
                mm(c, tj.vb, ly->wv, c->xn, n);
            }
            if (to == SLM_BP_QKV) /* calibration: only the products' inputs were wanted */
                goto block_done;
            tok_run(&tj, STEP_QKV);
            if (ms) { /* attention per sequence */
                att_multi_job amj = {c, ms, l, n};
                slm_pool_run(c->pool, att_multi_task, &amj);
            } else {
                att_job aj = {c, l, n, pos0, c->q, Q, 0};
                slm_pool_run(c->pool, att_task, &aj);
            }
            for (int t = 0; t < n; t++) {
                const slm_ctx *st = ms ? ms[t] : c;
                if (st->rot_v)
                    hadamard(c->att + (size_t)t * Q, Q, st->rot_v);
            }
        }
        if (from == SLM_BP_ATT)
            memcpy(c->att, c->bp_aux, sizeof(float) * (size_t)n * (size_t)Q);
        if (from <= SLM_BP_ATT && to > SLM_BP_ATT) {
            mm(c, c->proj, ly->wo, c->att, n);
            tok_run(&tj, STEP_ATT_OUT);
        }
        if (from == SLM_BP_FFN)
            tok_run(&tj, STEP_FFN_NORM);

        /* feed-forward */
        if (from <= SLM_BP_FFN && to > SLM_BP_FFN) {
            if (d->ffn == SLM_FFN_GATED_FUSED) {
                mm(c, c->ff_b, ly->ffn_up, c->xn, n);
            } else {
                mm(c, c->ff_a, ly->ffn_up, c->xn, n);
                if (d->ffn != SLM_FFN_PLAIN)
                    mm(c, c->ff_b, ly->ffn_gate, c->xn, n);
            }
            tok_run(&tj, STEP_FFN_ACT);
        }
        if (from == SLM_BP_DOWN)
            memcpy(c->ff_a, c->bp_aux, sizeof(float) * (size_t)n * (size_t)hp->n_ff);
        if (from <= SLM_BP_DOWN && to > SLM_BP_DOWN) {
            mm(c, c->proj, ly->ffn_down, c->ff_a, n);
            tok_run(&tj, STEP_FFN_OUT);
        }
    block_done:;
    }

    if (c->lr_out)
        memcpy(c->lr_out, c->x, sizeof(float) * (size_t)n * E);
    if (l_end < hp->n_layer) { /* calibration stopped early: no logits */
        c->n_logits = 0;
        c->n_past += n;
        return;
    }
    /* output head: every token, or only the last */
    int first = all_logits ? 0 : n - 1, n_out = n - first;
    norm_rows(hp, c->xn, c->x + (size_t)first * E, m->output_norm, m->output_norm_b, n_out, E);
    mm(c, c->logits, m->output, c->xn, n_out);
    if (hp->logit_softcap > 0) {
        const float cap = hp->logit_softcap;
        for (size_t i = 0; i < (size_t)n_out * hp->n_vocab; i++)
            c->logits[i] = cap * tanhf(c->logits[i] / cap);
    }
    if (ms) { /* row t to sequence t's logits (work's own row, if it is one, last: row 0 may be another's) */
        const size_t V = (size_t)hp->n_vocab;
        int self = -1;
        c->n_logits = 0;
        for (int t = 0; t < n; t++) {
            if (ms[t] == c) {
                self = t;
                continue;
            }
            memcpy(ms[t]->logits, c->logits + (size_t)t * V, sizeof(float) * V);
            ms[t]->n_logits = 1;
            ms[t]->n_past++;
        }
        if (self >= 0) {
            memmove(c->logits, c->logits + (size_t)self * V, sizeof(float) * V);
            c->n_logits = 1;
            c->n_past++;
        }
        return;
    }
    c->n_logits = n_out;
    c->n_past += n;
}

int slm_decode(slm_ctx *c, const int32_t *tokens, int n, int all_logits, slm_err *err)
{
    if (n < 1)
        return slm_err_set(err, SLM_EINPUT, "nothing to decode (0 tokens)");
    if (n > c->n_ctx - c->n_past)
        return slm_err_set(err, SLM_EINPUT, "%d tokens do not fit in the context: %d of %d positions are used", n,
                           c->n_past, c->n_ctx);
    if (all_logits && n > c->n_batch)
        return slm_err_set(err, SLM_EINPUT, "logits of %d tokens requested, more than the batch size %d", n,
                           c->n_batch);
    if ((c->lr_in || c->lr_out) && n > c->n_batch)
        return slm_err_set(err, SLM_EINPUT, "a layer range with a given residual needs one batch (%d > %d tokens)", n,
                           c->n_batch);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->m->hp.n_vocab)
            return slm_err_set(err, SLM_EINPUT, "token id %d at position %d is outside the vocabulary (%d tokens)",
                               tokens[i], i, c->m->hp.n_vocab);
    for (int done = 0; done < n;) {
        int b = n - done < c->n_batch ? n - done : c->n_batch;
        forward_batch(c, tokens + done, b, all_logits);
        done += b;
    }
    return SLM_OK;
}

int slm_decode_multi(slm_ctx *work, slm_ctx *const *seqs, const int32_t *tokens, int n, slm_err *err)
{
    if (n < 1)
        return slm_err_set(err, SLM_EINPUT, "nothing to decode (0 sequences)");
    if (n > work->n_batch)
        return slm_err_set(err, SLM_EINPUT, "%d sequences in one step, more than the batch size %d", n, work->n_batch);
    if (work->lr_on)
        return slm_err_set(err, SLM_EINPUT, "a multi-sequence step cannot run with a calibration layer range");
    for (int i = 0; i < n; i++) {
        const slm_ctx *s = seqs[i];
        if (s->m != work->m)
            return slm_err_set(err, SLM_EINPUT, "sequence %d belongs to another model", i);
        for (int k = 0; k < i; k++)
            if (seqs[k] == s)
                return slm_err_set(err, SLM_EINPUT, "sequence %d is sequence %d again", i, k);
        if (s->n_past >= s->n_ctx)
            return slm_err_set(err, SLM_EINPUT, "sequence %d is full: %d of %d positions are used", i, s->n_past,
                               s->n_ctx);
        if ((int64_t)s->n_past + 1 > (int64_t)work->n_batch * work->n_ctx)
            return slm_err_set(err, SLM_EINPUT, "sequence %d (%d tokens) is longer than the work context's scratch", i,
                               s->n_past + 1);
        if (tokens[i] < 0 || tokens[i] >= work->m->hp.n_vocab)
            return slm_err_set(err, SLM_EINPUT, "token id %d of sequence %d is outside the vocabulary (%d tokens)",
                               tokens[i], i, work->m->hp.n_vocab);
    }
    work->multi = seqs;
    forward_batch(work, tokens, n, 1);
    work->multi = NULL;
    return SLM_OK;
}
