/* api/qfree.h — data-free column importance for `slm quantize` without calibration data (api/qfree.c). */
#ifndef SLM_API_QFREE_H
#define SLM_API_QFREE_H
#include <stdint.h>

#include "pipeline.h"

/* which products get an estimate (bits of `mask`) */
enum {
    SLM_QFREE_QKV = 1,      /* attn_q, attn_k, attn_v */
    SLM_QFREE_ATTN_OUT = 2, /* attn_output */
    SLM_QFREE_GATE_UP = 4,  /* ffn_gate, ffn_up */
    SLM_QFREE_DOWN = 8,     /* ffn_down */
    SLM_QFREE_OUTPUT = 16,  /* output.weight */
    SLM_QFREE_ALL = 31      /* the products above */
};

/* Row r of t as float32 (any type libquant can dequantize): 0, or -1 (no dequantizer). In api/quantize.c. */
int slm_pl_row_f32(const gguf_tensor *t, int64_t r, float *dst);

/* For a llama-layout model: imp[i] (tensor index i of g; NULL on entry) gets a malloc'd per-column
 * importance (estimated E[x_j^2] of the product's input) for the tensors `mask` selects.
 * 0 done, 1 not a layout it knows (imp left all NULL), -1 out of memory (imp left all NULL). */
int slm_qfree_importance(const gguf_file *g, int64_t n_head, int64_t n_head_kv, unsigned mask, float **imp);

/* Full second-moment estimates of each product's input (api/qfree.c, for GPTQ without calibration
 * data): H[i] (tensor index i; NULL on entry) gets a malloc'd ncols x ncols row-major matrix for the
 * tensors `mask` selects. Dense, cost O(layers d^2 (d + n_ff)): `slm quantize --data-free auto` (the default)
 * runs it only for n_embd <= SLM_QFREE_COV_MAX_D, `--data-free on` at any width (o->max_d 0). */
typedef struct slm_qfree_cov_opts {
    int tokens;        /* token weights of C0: 0 uniform, 1 uniform over normal tokens (token_type 1),
                        * 2 Zipf over merge rank (score -k) among normal tokens: 1 / (1 + k + zipf_k) */
    float zipf_k;
    float attn_mix;    /* residual gets attn_mix * Wo H_ao Wo^T (tokens' v averaged) */
    float head_cross;  /* H_ao blocks between two different query heads times this */
    int down_mean;     /* ffn_down's H: diag(var z) + E[z] E[z]^T (else diag E[z^2]) */
    int64_t max_d;     /* n_embd above this: no estimate (returns 1); 0: any width */
} slm_qfree_cov_opts;
#ifndef SLM_QFREE_COV_MAX_D
#define SLM_QFREE_COV_MAX_D 512 /* widest n_embd `--data-free auto` estimates H for */
#endif
/* what the flag-free default uses (chosen on the calibration text, docs/quantization.md) */
#define SLM_QFREE_COV_DEFAULTS { 1, 0.0f, 0.1f, 0.0f, 1, SLM_QFREE_COV_MAX_D }
#define SLM_QFREE_COV_MASK (SLM_QFREE_QKV | SLM_QFREE_GATE_UP)
/* 0 done, 1 not a layout it knows or wider than o->max_d (H all NULL), -1 out of memory. */
int slm_qfree_cov(const gguf_file *g, int64_t n_head, int64_t n_head_kv, unsigned mask, const slm_qfree_cov_opts *o,
                  float **H);

#endif
