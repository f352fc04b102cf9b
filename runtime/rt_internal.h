/* runtime/rt_internal.h — what the runtime's own files share (not the face). */
#ifndef SLM_RT_INTERNAL_H
#define SLM_RT_INTERNAL_H

#include "runtime.h"

/* One transformer block. Matrices point into the mapping; vectors (norms,
 * biases) are float copies owned by the model (NULL when absent). */
typedef struct slm_layer {
    float *attn_norm, *attn_norm_b;
    const gguf_tensor *wq, *wk, *wv, *wqkv, *wo;
    float *bq, *bk, *bv, *bqkv, *bo;
    float *ffn_norm, *ffn_norm_b;
    const gguf_tensor *ffn_gate, *ffn_up, *ffn_down;
    float *ffn_up_b, *ffn_down_b;
} slm_layer;

struct slm_model {
    gguf_file *f;
    slm_hparams hp;
    const gguf_tensor *tok_embd, *pos_embd, *output;
    float *output_norm, *output_norm_b;
    slm_layer *layers;
    uint64_t weight_bytes;
};

/* Scalar reference of slm_matmul (tests). */
void slm_matmul_ref(float *out, const gguf_tensor *W, const float *x, int n_tokens);
/* slm_matmul's fallback when no scratch memory can be allocated (tests). */
void slm_matmul_nomem(float *out, const gguf_tensor *W, const float *x, int n_tokens);

#endif
