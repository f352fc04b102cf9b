/* api/qsample.h — where --self-calibrate's tokens come from (issue 19, bar 2 study), and
 * the low-rank H experiment of the GPTQ driver (api/gptq.c). */
#ifndef SLM_API_QSAMPLE_H
#define SLM_API_QSAMPLE_H

#include "calib.h"

/* --self-source: generate (the model samples its own text, calib_generate), uniform (tokens
 * drawn i.i.d. uniformly over the vocabulary's normal and byte tokens), unigram (i.i.d. from
 * exp(tokenizer.ggml.scores) when the scores are log-probabilities, else a Zipf law over the
 * score order: see qsample.c) */
enum { QSAMPLE_GENERATE = 0, QSAMPLE_UNIFORM = 1, QSAMPLE_UNIGRAM = 2 };
extern const char *const qsample_source_names[]; /* NULL-terminated, in enum order */

/* n_chunks chunks of n_ctx tokens without running the model: BOS (or EOS when the tokenizer
 * has no BOS) then n_ctx - 1 tokens drawn i.i.d. from the source's distribution. Chunk i has
 * its own generator seeded with seed + i: the tokens depend on nothing else. */
int qsample_iid(const slm_model *m, const slm_tokenizer *tok, int n_ctx, int n_chunks, uint64_t seed, int source,
                calib_text *ct, slm_err *err);

/* Low-rank H experiment (env SLM_GPTQ_RANK=r >= 0; SLM_GPTQ_RANK_MODE=offdiag (default) or
 * full): replaces the symmetric n x n H in place by diag(H) exactly plus the r eigenpairs of
 * largest |lambda| of the off-diagonal remainder H - diag(H) (offdiag), or the off-diagonal
 * part of H's top-r eigenpairs (full); r = 0 keeps the diagonal alone. Returns 0 (also when
 * the switch is off), or SLM_E*. */
int qsample_h_lowrank(float *H, int64_t n, slm_err *err);

#endif
