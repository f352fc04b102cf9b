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

#endif
