/* slm.h — libslm, the embeddable slmkit library: the one public header.
 *
 * Open a GGUF model (a file, a signed bundle checked against a trust root, or the
 * active model of an install store), tokenize and detokenize, render its chat
 * template, generate text streamed token by token (cancellable), read logits and
 * log-probabilities, measure perplexity and KL-divergence, and run the pipelines
 * of the `slm` tools: convert, quantize, verify, install.
 *
 * Conventions
 * - Every function that can fail returns an slm_status: SLM_OK (0) or one of the
 *   documented codes below (they are also the exit codes of the `slm` tools).
 *   The one-line message of the calling thread's last failure is slm_last_error()
 *   (thread-local: calls on other threads do not overwrite it).
 * - Handles are opaque. One slm_lm may be used by one thread at a time, except
 *   slm_lm_cancel, which any thread may call at any time.
 * - Memory the library returns (ids, text) is released with slm_free.
 * - The library never prints and never exits.
 * Build against it with `pkg-config --cflags --libs slm`. Only slm_* symbols are
 * exported from libslm.so.0.
 */
#ifndef SLM_H
#define SLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SLM_API __attribute__((visibility("default")))
#else
#define SLM_API
#endif

/* ---- version --------------------------------------------------------------- */
#define SLM_VERSION_MAJOR 0
#define SLM_VERSION_MINOR 1
#define SLM_VERSION_PATCH 0
#define SLM_VERSION_STRING "0.1.0"
/* major * 10000 + minor * 100 + patch, e.g. 100 for 0.1.0 */
#define SLM_VERSION_NUMBER (SLM_VERSION_MAJOR * 10000 + SLM_VERSION_MINOR * 100 + SLM_VERSION_PATCH)
/* The version of the library linked at run time (compare with SLM_VERSION_NUMBER). */
SLM_API int slm_version(void);
SLM_API const char *slm_version_string(void);

/* ---- errors ------------------------------------------------------------------ */
/* The status codes are also the process exit codes of the `slm` tools. */
enum slm_status {
    SLM_OK = 0,
    SLM_EFAIL = 1,      /* the operation ran but its answer is "no" (e.g. a check failed) */
    SLM_EUSAGE = 2,     /* bad arguments */
    SLM_EINPUT = 3,     /* bad input: malformed, unsupported or inconsistent file */
    SLM_EIO = 4,        /* I/O: cannot open/read/write/sync/rename, disk full */
    SLM_EVERIFY = 5,    /* verification failed: signature, hash, expiry, rollback */
    SLM_EINTERNAL = 6,  /* out of memory or a bug */
};
/* The message of this thread's last failed call ("" when none), valid until the next
 * call of the library on this thread. */
SLM_API const char *slm_last_error(void);
/* "ok", "fail", "usage", "input", "io", "verify", "internal"; "unknown" otherwise. */
SLM_API const char *slm_status_name(int code);
/* Release memory the library returned (token ids, text). */
SLM_API void slm_free(void *p);

/* ---- models ------------------------------------------------------------------ */
typedef struct slm_lm slm_lm; /* a loaded model, its tokenizer and one inference context */
typedef struct slm_lm_params {
    int n_ctx;      /* context length; 0: the model's, at most 4096 */
    int n_threads;  /* 0: the online CPUs (at most 64) */
    int n_batch;    /* most tokens per forward call; 0: min(512, n_ctx) */
    /* KV cache types, as llama.cpp's --cache-type-k/-v: "f32" (NULL: the default), "f16", "bf16",
     * "q8_0", "q4_0" (quantized: the head size must be a multiple of 32). Another name: SLM_EUSAGE. */
    const char *cache_type_k, *cache_type_v;
} slm_lm_params;
SLM_API void slm_lm_params_init(slm_lm_params *p);
/* A GGUF file (written by slm or llama.cpp). p may be NULL (defaults). */
SLM_API int slm_lm_open(const char *gguf_path, const slm_lm_params *p, slm_lm **out);
/* The model of a signed bundle, verified (signatures against the trust root(s) — a
 * rotation chain, oldest first — expiry, every payload byte) into sealed memory that is
 * then mapped: what runs is exactly what was hashed. SLM_EVERIFY when it does not verify. */
SLM_API int slm_lm_open_bundle(const char *bundle_path, const char *const *trust_roots, int n_roots,
                               const slm_lm_params *p, slm_lm **out);
/* The active model of an install store (re-verified against the store's pinned root). */
SLM_API int slm_lm_open_store(const char *store_dir, const slm_lm_params *p, slm_lm **out);
SLM_API void slm_lm_close(slm_lm *m);
SLM_API int slm_lm_n_vocab(const slm_lm *m);   /* tokens the tokenizer knows */
SLM_API int slm_lm_n_ctx(const slm_lm *m);
SLM_API const char *slm_lm_arch(const slm_lm *m); /* general.architecture: "llama", "gpt2", ... */
SLM_API int32_t slm_lm_bos(const slm_lm *m);      /* -1 if none */
SLM_API int32_t slm_lm_eos(const slm_lm *m);      /* -1 if none */
SLM_API int slm_lm_is_eog(const slm_lm *m, int32_t id); /* end-of-generation token */

/* ---- tokens -------------------------------------------------------------------- */
/* add_bos: 1 yes, 0 no, -1 what the model does (as llama.cpp). parse_special: recognise
 * control-token texts such as "<s>". *ids: slm_free. */
SLM_API int slm_lm_tokenize(slm_lm *m, const char *text, size_t len, int add_bos, int parse_special,
                            int32_t **ids, size_t *n_ids);
/* The text of a token sequence (*text NUL-terminated, slm_free); special: render control tokens. */
SLM_API int slm_lm_detokenize(slm_lm *m, const int32_t *ids, size_t n, int special, char **text);
/* Bytes of one token as text; returns the byte count (may exceed cap: nothing is written
 * then beyond cap; retry with a larger buffer). */
SLM_API size_t slm_lm_token_piece(slm_lm *m, int32_t id, char *buf, size_t cap);

/* ---- chat template ---------------------------------------------------------------- */
typedef struct slm_message {
    const char *role;     /* "system", "user", "assistant" */
    const char *content;  /* NUL-terminated UTF-8 */
} slm_message;
/* The prompt the model receives for a conversation: its GGUF's chat template (template_name
 * NULL) or a built-in one ("chatml", "llama3", "gemma", "phi3"). *out: slm_free. */
SLM_API int slm_lm_chat_apply(slm_lm *m, const slm_message *msgs, size_t n_msgs, int add_generation_prompt,
                              const char *template_name, char **out);

/* ---- generation ----------------------------------------------------------------------- */
/* Called with each generated piece of text as soon as its token is sampled (len may be 0
 * for a control token). Return 0 to go on, non-zero to stop (SLM_STOP_CANCEL). */
typedef int (*slm_piece_fn)(void *user, const char *piece, size_t len, int32_t token);
enum slm_stop { SLM_STOP_LENGTH = 0, SLM_STOP_EOG = 1, SLM_STOP_CONTEXT = 2, SLM_STOP_CANCEL = 3 };
typedef struct slm_gen_params {
    int max_tokens;        /* default 128 */
    float temperature;     /* <= 0: greedy; default 0.8 */
    int top_k;             /* default 40; <= 0 off */
    float top_p;           /* default 0.95; >= 1 off */
    float min_p;           /* default 0.05; <= 0 off */
    float repeat_penalty;  /* default 1 (off) */
    int repeat_last_n;     /* default 64 */
    uint64_t seed;         /* default 0 */
    int chat;              /* the prompt is a JSON array of {"role", "content"} rendered with the chat template */
    const char *chat_template; /* with chat: a built-in template instead of the model's, or NULL */
} slm_gen_params;
typedef struct slm_gen_result {
    int prompt_tokens, generated_tokens;
    int stop;              /* enum slm_stop */
    double prompt_ms, gen_ms;
} slm_gen_result;
SLM_API void slm_gen_params_init(slm_gen_params *p);
/* Generate from an empty cache: the prompt (BOS first when the model adds one; an empty
 * prompt starts from BOS) as one batch, then one token at a time until max_tokens, an
 * end-of-generation token, a full context, the callback's stop or slm_lm_cancel. The
 * prompt is not echoed. cb, res may be NULL. With temperature 0 the text equals
 * `slm run --temp 0`'s. */
SLM_API int slm_lm_generate(slm_lm *m, const char *prompt, size_t prompt_len, const slm_gen_params *p,
                            slm_piece_fn cb, void *user, slm_gen_result *res);
/* The same, collecting the text (*text NUL-terminated, slm_free). */
SLM_API int slm_lm_generate_text(slm_lm *m, const char *prompt, size_t prompt_len, const slm_gen_params *p,
                                 char **text, slm_gen_result *res);
/* Ask a running generation (on another thread) to stop after the current token; the
 * next generation starts uncancelled. Safe from any thread and from a signal handler. */
SLM_API void slm_lm_cancel(slm_lm *m);

/* ---- logits and log-probabilities -------------------------------------------------------- */
/* Run ids (from an empty cache) and copy the logits after the last token into out
 * (slm_lm_n_vocab floats). */
SLM_API int slm_lm_logits(slm_lm *m, const int32_t *ids, size_t n, float *out);
/* out[i] = log p(ids[i + 1] | ids[0..i]) for i < n - 1 (natural log), from an empty cache. */
SLM_API int slm_lm_logprobs(slm_lm *m, const int32_t *ids, size_t n, float *out);

/* ---- perplexity and KL-divergence (llama.cpp's method) --------------------------------------- */
typedef struct slm_ppl_options {
    int n_ctx;                 /* chunk length (default 512) */
    int n_batch;               /* 0: n_ctx */
    int n_chunks;              /* <= 0: all */
    const char *kld_base_out;  /* save the base log-probabilities here (or NULL) */
    const char *kld_base_in;   /* compare against this saved base (or NULL) */
    void (*progress)(void *user, int chunk, int n_chunks, double ppl_so_far);
    void *user;
} slm_ppl_options;
typedef struct slm_ppl_stats {
    double ppl, ppl_stderr;
    int64_t tokens, scored;
    int chunks, n_ctx;
    /* with kld_base_in: */
    double ppl_base, ppl_ratio, dppl, dppl_stderr;
    double kld_mean, kld_stderr, kld_median, kld_p99, kld_max;
    double rms_dp, rms_dp_stderr, same_top, same_top_stderr;
} slm_ppl_stats;
SLM_API void slm_ppl_options_init(slm_ppl_options *o);
/* Perplexity of the model over a text file (its own context of n_ctx tokens). */
SLM_API int slm_lm_perplexity(slm_lm *m, const char *text_path, const slm_ppl_options *o, slm_ppl_stats *out);

/* ---- pipelines ------------------------------------------------------------------------------- */
/* A Hugging Face directory to GGUF: outtype "f32", "f16", "bf16" or "q8_0"; written to a temp
 * file, synced, renamed (nothing partial is left on failure). n_threads 0: the online CPUs. */
SLM_API int slm_convert(const char *hf_dir, const char *out_gguf, const char *outtype, int n_threads);
typedef struct slm_quantize_options {
    int n_threads;            /* 0: the online CPUs (at most 64) */
    const char *imatrix;      /* importance matrix file (slm imatrix / llama-imatrix), or NULL */
    int pure;                 /* every quantizable tensor gets the recipe's base type */
    int allow_requantize;     /* accept an already quantized input */
    /* GPTQ (as `slm quantize --gptq -f CALIB -c N --chunks N`): the layer-by-layer error
     * compensation on the activations of calibration text; NULL: none */
    const char *gptq_calib;   /* calibration text file */
    int gptq_ctx;             /* tokens per chunk (0: 512) */
    int gptq_chunks;          /* chunks used at most (0: all of the text) */
} slm_quantize_options;
/* Quantize a GGUF with a llama.cpp recipe ("Q4_K_M", "Q8_0", "Q6_K", ...), as `slm quantize IN OUT
 * TYPE`: written to a temp file, synced, renamed. o may be NULL (defaults). */
SLM_API int slm_quantize(const char *in_gguf, const char *out_gguf, const char *recipe,
                         const slm_quantize_options *o);
/* Verify a bundle against trust root(s) (a rotation chain, oldest first): signatures,
 * threshold, expiry, every payload byte. SLM_EVERIFY when it does not verify. */
SLM_API int slm_verify_bundle(const char *bundle_path, const char *const *trust_roots, int n_roots);
/* Install a bundle into an A/B store (created with its trust root on first use): trial in
 * the inactive slot, health check (finite logits of the model), commit or revert. The health
 * check runs in a forked child process (a model that crashes cannot take the caller or the
 * store's lock down): call it where fork() is safe for your process. */
SLM_API int slm_install_bundle(const char *store_dir, const char *bundle_path, const char *trust_root);

#ifdef __cplusplus
}
#endif
#endif /* SLM_H */
