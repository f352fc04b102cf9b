/* bench/bench.h — the face of slmkit's benchmarking library.
 *
 * Rules: like every slmkit library, bench/ never prints and never exits;
 * functions return an slm status code (0 = OK) and fill an slm_err.
 * bench/ may use formats/, libquant/ and runtime/.
 */
#ifndef SLM_BENCH_H
#define SLM_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "formats.h"

/* ---- synthetic models (bench/synth.c) ----------------------------------
 * Hugging Face model directories with seeded random weights in the shape of
 * a real model, so speed and memory can be measured at realistic sizes
 * without real weights. The output is a complete HF directory (config.json,
 * model.safetensors, tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json, generation_config.json) with a valid synthetic
 * tokenizer: SentencePiece-style BPE with byte fallback for Llama shapes,
 * GPT-2 byte-level BPE for GPT-2 shapes. */
typedef struct synth_shape {
    const char *name;      /* "smollm-135m", ... (also written to the safetensors metadata) */
    int arch;              /* SLM_ARCH_LLAMA or SLM_ARCH_GPT2 */
    int n_embd;            /* hidden_size / n_embd */
    int n_ff;              /* intermediate_size (llama); gpt2 uses 4 * n_embd */
    int n_layer;
    int n_head;
    int n_head_kv;         /* llama; ignored for gpt2 */
    int n_vocab;
    int n_ctx;             /* max_position_embeddings / n_positions */
    double norm_eps;       /* rms_norm_eps / layer_norm_epsilon */
    double rope_theta;     /* llama */
    int tied;              /* tie_word_embeddings: no lm_head.weight written */
} synth_shape;

/* The built-in shapes (smollm-135m, tinyllama-1.1b, gpt2-124m). */
const synth_shape *synth_shapes(size_t *n);
const synth_shape *synth_find_shape(const char *name); /* NULL if unknown */
/* Checks a (custom) shape: sizes positive and bounded, heads divide n_embd,
 * kv heads divide heads, vocab large enough for the tokenizer. */
int synth_shape_check(const synth_shape *s, slm_err *err) SLM_MUST_CHECK;
/* Number of parameters written (tensors in the safetensors file). */
uint64_t synth_param_count(const synth_shape *s);

typedef struct synth_opts {
    uint64_t seed;          /* same seed (and shape, dtype) => byte-identical files */
    uint32_t dtype;         /* SLM_TYPE_F32, SLM_TYPE_F16 or SLM_TYPE_BF16 */
    int n_threads;          /* generator threads; <= 0: 2. Output does not depend on it. */
    int force;              /* allow writing into a non-empty existing directory */
    /* Called from the calling thread after each piece written (may be NULL). */
    void (*progress)(void *ctx, uint64_t done_bytes, uint64_t total_bytes);
    void *progress_ctx;
} synth_opts;

typedef struct synth_result {
    uint64_t n_params;      /* elements written */
    uint64_t n_bytes;       /* bytes of model.safetensors */
    uint64_t n_tensors;
} synth_result;

/* Write the model directory dir (created when missing). Refuses a non-empty
 * existing directory unless opts->force. On failure nothing written by this
 * call is left behind (files removed; the directory too if it was created).
 * res may be NULL. */
int synth_write(const synth_shape *s, const char *dir, const synth_opts *opts,
                synth_result *res, slm_err *err) SLM_MUST_CHECK;

/* The value generator (exposed for tests): element i of tensor number
 * tensor_index in the file, before the dtype conversion, for a tensor of
 * kind 0 (weights: N(0, 0.02)), 1 (norm weights: 1 + N(0, 0.01)), or
 * 2 (biases: N(0, 0.01)). Fills dst[0..n) with elements first..first+n-1. */
enum synth_kind { SYNTH_WEIGHT = 0, SYNTH_NORM = 1, SYNTH_BIAS = 2 };
void synth_values(uint64_t seed, uint32_t tensor_index, int kind, uint64_t first, uint64_t n, float *dst);

#endif /* SLM_BENCH_H */
