/* tests/ref_forward.h — an independent float64 forward pass over a Hugging Face checkpoint
 * (Llama 1-3 with llama3 rope scaling, Mistral, Qwen2/2.5, Qwen3, Gemma 3 text, Phi-3), written
 * from transformers' modeling code; see the comment at the top of ref_forward.c. */
#ifndef SLM_REF_FORWARD_H
#define SLM_REF_FORWARD_H

#include <stddef.h>
#include <stdint.h>

/* Logits of every position, [n][*n_vocab] doubles (malloc'd), of the checkpoint in dir fed the
 * token ids (positions 0..n-1). NULL with a message in msg on failure. */
double *ref_forward(const char *dir, const int32_t *ids, int n, int *n_vocab, char *msg, size_t msg_cap);

/* The same, with a hook that rounds what a KV cache of another type would hold: after RoPE
 * (and q/k norms), round(user, what, vec, D, llama_perm) is called on every head vector of
 * the queries (what 0), keys (1) and values (2) before attention uses them. llama_perm: the
 * family is one whose GGUF holds q/k rows permuted (Llama: llama.cpp's converter turns
 * transformers' rotate_half pairs (i, i + D/2) into adjacent pairs (2i, 2i + 1)), so a
 * cache's blocks of consecutive values hold other elements than the HF order's. */
typedef void (*ref_round_fn)(void *user, int what, double *vec, int D, int llama_perm);
double *ref_forward_round(const char *dir, const int32_t *ids, int n, int *n_vocab, ref_round_fn round, void *user,
                          char *msg, size_t msg_cap);

#endif
