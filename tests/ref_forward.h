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

#endif
