/* runtime/rt_kld.h — KL-divergence state shared by perplexity.c and kld.c. */
#ifndef SLM_RT_KLD_H
#define SLM_RT_KLD_H

#include "runtime.h"

typedef struct slm_kld_state slm_kld_state;
/* Open the base file for writing (p->kld_base_out) or reading and checking
 * (p->kld_base_in: same n_ctx, vocabulary, chunk count and token ids). */
int slm_kld_begin(slm_kld_state **out, const slm_ppl_params *p, const int32_t *ids, size_t n_ids, int n_ctx,
                  int n_chunk, int n_vocab, slm_err *err) SLM_MUST_CHECK;
/* One chunk: n_scored rows of logits; toks[j + 1] is the token row j predicts. */
int slm_kld_chunk(slm_kld_state *s, const float *logits, const int32_t *toks, int n_scored, slm_err *err) SLM_MUST_CHECK;
int slm_kld_finish(slm_kld_state *s, slm_kld_result *r, slm_err *err) SLM_MUST_CHECK;
void slm_kld_free(slm_kld_state *s);
double slm_nll_of(const float *logits, int n_vocab, int tok);

#endif
