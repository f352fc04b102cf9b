/* runtime/rt_internal.h — what the runtime's own files share (not the face). */
#ifndef SLM_RT_INTERNAL_H
#define SLM_RT_INTERNAL_H

#include "runtime.h"

#include <pthread.h>

/* One transformer block. Matrices point into the mapping; vectors (norms,
 * biases) are float copies owned by the model (NULL when absent). */
typedef struct slm_layer {
    float *attn_norm, *attn_norm_b;                /* [n_embd] */
    const gguf_tensor *wq, *wk, *wv;               /* [n_embd -> n_q], [n_embd -> kv], [n_embd -> kv] */
    const gguf_tensor *wqkv;                       /* fused: [n_embd -> n_q + 2 kv] (q, k, v rows) */
    const gguf_tensor *wo;                         /* [n_q -> n_embd] */
    float *bq, *bk, *bv, *bqkv, *bo;
    float *q_norm, *k_norm;                        /* [head_dim], per head (qk_norm) */
    float *attn_post_norm, *ffn_post_norm;         /* [n_embd] (sandwich) */
    float *ffn_norm, *ffn_norm_b;                  /* [n_embd] */
    const gguf_tensor *ffn_gate, *ffn_up, *ffn_down; /* [n_embd -> n_ff] (fused up: -> 2 n_ff), [n_ff -> n_embd] */
    float *ffn_up_b, *ffn_down_b;
    int swa;                                       /* local layer: sliding-window attention */
} slm_layer;

/* The decode copies of a model's weight matrices, by tensor (open addressing on the tensor
 * pointer): the x8 layout (slm_matmul_pack) where W has one, else W's rows as they are (`moved`:
 * W with data pointing at the copy). Both live in one arena of 2 MiB pages (slm_big_alloc):
 * decode streams every weight once per token, and from huge pages it does so with far fewer
 * TLB misses and prefetcher restarts than from the file mapping's 4 KiB pages. Built by the
 * model's first context, shared read-only by all its contexts, freed with the last one
 * (forward.c). Without the arena (out of memory): x8 copies malloc'd one by one, no moves. */
typedef struct slm_packs {
    struct { const gguf_tensor *W; void *data; gguf_tensor moved; } *slot;
    size_t cap;
    int users;                                     /* contexts holding them */
    void *arena;                                   /* slm_big_alloc'd, or NULL */
    size_t arena_bytes;
} slm_packs;

struct slm_model {
    gguf_file *f;
    slm_hparams hp;
    const gguf_tensor *tok_embd, *pos_embd, *output;
    float *output_norm, *output_norm_b;
    float *rope_freqs;                             /* [n_rot / 2] frequency divisors, or NULL */
    slm_layer *layers;
    uint64_t weight_bytes;
    pthread_mutex_t packs_mu;                      /* guards packs.users and their building */
    slm_packs packs;
    int no_packs;                                  /* slm_model_set_packs(m, 0) */
};

/* Scalar reference of slm_matmul (tests). */
void slm_matmul_ref(float *out, const gguf_tensor *W, const float *x, int n_tokens);
/* slm_matmul's fallback when no scratch memory can be allocated (tests). */
void slm_matmul_nomem(float *out, const gguf_tensor *W, const float *x, int n_tokens);

/* forward.c's element-wise loops (scalar): the causal softmax of one attention row (keys
 * [k0, n_keys) visible, k0 from the window win, the rest of the NK zeroed) and
 * a[i] = silu(g[i]) * (u ? u[i] : 1) (u may alias a). */
void rt_softmax_row(float *row, int n_keys, int NK, int win);
void rt_silu_mul(float *a, const float *g, const float *u, size_t n);
/* AVX-512 versions of forward.c's element-wise loops (vec_avx512.c; x86-64 builds only), used
 * when the active kernel set is AVX-512: softmax_row and SiLU(g) * u of act_mul. */
#if defined(__x86_64__)
void rt_softmax_row_avx512(float *row, int n_keys, int NK, int win);
void rt_silu_mul_avx512(float *a, const float *g, const float *u, size_t n);
#endif

#endif
