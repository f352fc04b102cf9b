/* api/qsample.h — where --self-calibrate's tokens come from (issue 19, bar 2 study). */
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

#endif
