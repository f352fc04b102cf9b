/* serve/engine.h — every model call of the server, behind one small interface.
 *
 * It sits on the API layer (api/pipeline.h: one slm_lm, one slm_pl_seq per slot), as `slm run`
 * and `slm chat` do. A "slot" is one sequence with its own KV cache; srv_engine_step decodes
 * one token for each of several slots in one multi-sequence step. Never prints, never exits. */
#ifndef SLM_SERVE_ENGINE_H
#define SLM_SERVE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "request.h"

typedef struct srv_engine srv_engine;

/* Load the GGUF at path, with n_slots sequences of n_ctx tokens each (n_ctx 0: the
 * model's training context, at most 4096), n_threads threads per slot, KV caches of
 * type_k / type_v (slm_pl_seq_new; 0 is F32). */
int srv_engine_load(const char *path, int n_ctx, int n_threads, int n_slots, uint32_t type_k, uint32_t type_v,
                    srv_engine **out, slm_err *err) SLM_MUST_CHECK;
void srv_engine_free(srv_engine *e);
/* References (the server swaps engines on reload while requests still hold the old one):
 * a new engine holds one; srv_engine_unref frees at zero. */
srv_engine *srv_engine_ref(srv_engine *e);
void srv_engine_unref(srv_engine *e);
int srv_engine_n_ctx(const srv_engine *e);
int srv_engine_n_vocab(const srv_engine *e);   /* tokens that may be sampled */
const char *srv_engine_arch(const srv_engine *e);
/* Bytes of the weights (what --mem-budget is compared with). */
uint64_t srv_engine_weight_bytes(const srv_engine *e);
/* For telemetry, fixed words only: the architecture if the runtime knows it, the file type's
 * recipe name (general.file_type), else "other". */
void srv_engine_describe(const srv_engine *e, char arch[16], char quant[16]);

/* Bytes the model would need with n_slots contexts of n_ctx tokens (weights + KV caches of
 * type_k / type_v), read from the GGUF without building contexts. */
int srv_engine_estimate(const char *path, int n_ctx, int n_slots, uint32_t type_k, uint32_t type_v, uint64_t *bytes,
                        slm_err *err) SLM_MUST_CHECK;

/* Completions: the prompt as `slm run` tokenizes it (BOS when the model adds it, control
 * token texts not parsed). Chat: the messages rendered by the chat template, then tokenized
 * with control tokens parsed. An empty result starts from BOS (or EOS). *ids is malloc'd. */
int srv_engine_tokenize_prompt(const srv_engine *e, const char *text, int32_t **ids, size_t *n,
                               slm_err *err) SLM_MUST_CHECK;
int srv_engine_tokenize_chat(const srv_engine *e, const srv_message *msgs, int n_msgs, int32_t **ids, size_t *n,
                             slm_err *err) SLM_MUST_CHECK;
/* 1 when chat requests use the built-in ChatML template (the model has none, or one the
 * renderer refuses). */
int srv_engine_chat_builtin(const srv_engine *e);
/* Text of one token (control tokens: ""); returns the byte count, which may exceed cap. */
size_t srv_engine_piece(const srv_engine *e, int32_t id, char *buf, size_t cap);
int srv_engine_is_eog(const srv_engine *e, int32_t id);

/* Put prompt ids[0..n) into slot s, reusing the slot's cached prefix: only the tokens after
 * the longest common prefix with what the slot last held are decoded. *n_reused gets how
 * many were kept. After it, srv_engine_logits(e, s) are those of the prompt's last token. */
int srv_engine_prefill(srv_engine *e, int s, const int32_t *ids, int n, int *n_reused, slm_err *err) SLM_MUST_CHECK;
/* One decode step for n slots together: token tokens[i] appended to slot slots[i]. */
int srv_engine_step(srv_engine *e, const int *slots, const int32_t *tokens, int n, slm_err *err) SLM_MUST_CHECK;
const float *srv_engine_logits(const srv_engine *e, int s);
int srv_engine_n_past(const srv_engine *e, int s);
/* Forget what slot s holds (after an error). */
void srv_engine_reset(srv_engine *e, int s);

/* A sampler for one request over the tokens the engine may sample: temperature and top_p only
 * (OpenAI semantics; top-k, min-p and repeat penalty off), temperature 0 or top_p <= 0: greedy.
 * NULL when out of memory. */
typedef struct srv_sampler srv_sampler;
srv_sampler *srv_engine_sampler(const srv_engine *e, double temperature, double top_p, uint64_t seed);
int32_t srv_sampler_sample(srv_sampler *s, const float *logits);
void srv_sampler_free(srv_sampler *s);

/* Log-softmax over the first n_vocab logits: *lp_chosen gets chosen's log-probability and
 * top[0..k) / top_lp[0..k) the k most likely tokens (descending), k <= 20. */
void srv_logprobs(const float *logits, int n_vocab, int32_t chosen, int k, float *lp_chosen, int32_t *top,
                  float *top_lp);

#endif
