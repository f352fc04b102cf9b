/* api/pipeline.h — the API layer's face for slmkit's own callers (tools/, serve/).
 *
 * include/slm.h is the public face (opaque handles, thread-local last error). These are the
 * same pipelines with an slm_err per call, so a tool prints one line naming the problem:
 * each `cmd_*` is option parsing, one or two calls here, and printing.
 * Uses runtime/, formats/, libquant/, signing/. Never prints, never exits.
 */
#ifndef SLM_PIPELINE_H
#define SLM_PIPELINE_H

#include <stdatomic.h>

#include "slm.h"
#include "../runtime/runtime.h" /* by path: tools/ has no -Iruntime (see the Makefile) */
#include "signing.h"

/* The handle behind slm_lm. */
struct slm_lm {
    slm_model *model;
    slm_tokenizer *tok;
    slm_ctx *ctx;
    int n_threads;
    uint32_t type_k, type_v;  /* KV cache types of the contexts made for it (0: SLM_TYPE_F32) */
    int n_sample;            /* tokens the sampler may choose: min(tokenizer, embedding rows) */
    atomic_int cancel;
    char fd_path[64];        /* "/proc/self/fd/N" of a verified bundle / store model */
    int fd;                  /* its sealed memfd, or -1 */
};

/* The GGUF to load for a model given as a file, a bundle + trust roots, or a store:
 * the file itself, or the verified model in sealed memory (buf receives
 * "/proc/self/fd/N"; *fd the descriptor, -1 for a plain file; the caller owns it). */
int slm_pl_model_path(const char *file, const char *bundle, const char *const *trust, int n_trust,
                      const char *store, char *buf, size_t cap, const char **path, int *fd,
                      slm_err *err) SLM_MUST_CHECK;

/* Load model + tokenizer (tokenizer no larger than the embedding), then a context of
 * n_ctx (0: the model's, at most 4096; more than the model's is refused naming "-c"),
 * n_batch (0: default), n_threads (>= 1), KV cache types type_k / type_v (slm_ctx_new_kv;
 * kept in the handle for the contexts slm_pl_perplexity makes). *out: slm_lm_close. */
int slm_pl_open(const char *path, int n_ctx, int n_batch, int n_threads, uint32_t type_k, uint32_t type_v,
                slm_lm **out, slm_err *err) SLM_MUST_CHECK;
/* Bytes of a KV cache of n_ctx positions with the model's cache types (m->type_k / type_v). */
uint64_t slm_pl_kv_bytes(const slm_lm *m, int n_ctx);
/* Load model + tokenizer only (ctx NULL): slm_pl_open's checks but the context's. */
int slm_pl_load(const char *path, slm_lm **out, slm_err *err) SLM_MUST_CHECK;
/* The token ids `slm run` conditions on: the prompt tokenized (BOS as the model adds it);
 * an empty result starts from BOS (or EOS for models without one). *ids malloc'd. */
int slm_pl_prompt_ids(slm_lm *m, const char *prompt, size_t len, int32_t **ids, size_t *n_ids,
                      slm_err *err) SLM_MUST_CHECK;

/* Called with each sampled token: its text (pieces longer than 256 bytes included) and the
 * logits it was sampled from. Non-zero: stop (SLM_STOP_CANCEL). */
typedef int (*slm_pl_token_fn)(void *user, const char *piece, size_t len, int32_t tok, const float *logits);
typedef struct slm_pl_gen {
    slm_sampler_params sp;
    int max_tokens;
    const int32_t *ids; size_t n_ids;        /* the prompt (slm_pl_prompt_ids), or: */
    const slm_chat_msg *msgs; size_t n_msgs; /* a conversation (chat template) */
    const char *chat_template;               /* with msgs: a built-in template, or NULL */
    /* filled in: */
    int prompt_tokens, generated, n_eval;    /* n_eval: single-token decode steps run */
    int stop;                                /* enum slm_stop */
    double t_setup, t_prompt, t_gen;         /* seconds: chat setup, prompt batch, generation */
} slm_pl_gen;
/* Generate from an empty cache as `slm run` does: prompt (or rendered chat) as one batch,
 * then sample / emit / decode until max_tokens, end of generation, a full context, the
 * callback's stop or slm_lm_cancel. */
int slm_pl_generate(slm_lm *m, slm_pl_gen *g, slm_pl_token_fn fn, void *user, slm_err *err) SLM_MUST_CHECK;

/* The sampling loop of slm_pl_generate from logits already computed (prompt decoded): sample,
 * stop at end of generation, hand the piece to fn, decode it, until g->max_tokens, a full
 * context (g->stop SLM_STOP_CONTEXT), fn's stop or slm_lm_cancel. Counts into g->generated /
 * g->n_eval; conv (may be NULL): each token decoded is pushed to that conversation's cache. */
int slm_pl_sample_loop(slm_lm *m, slm_sampler *smp, slm_chat *conv, slm_pl_gen *g, slm_pl_token_fn fn, void *user,
                       slm_err *err) SLM_MUST_CHECK;

/* ---- chat sessions (api/chat.c) ---- */
/* A conversation on one context of the model at path (n_ctx as slm_pl_open), rendered with
 * its chat template or the built-in template_name, sampled with sp; the system message (or
 * NULL) first. Each turn decodes only what is not cached yet. */
typedef struct slm_pl_chat slm_pl_chat;
int slm_pl_chat_open(const char *path, int n_ctx, int n_threads, uint32_t type_k, uint32_t type_v,
                     const char *template_name,
                     const slm_sampler_params *sp, const char *system_msg, slm_pl_chat **out,
                     slm_err *err) SLM_MUST_CHECK;
void slm_pl_chat_free(slm_pl_chat *c);
int slm_pl_chat_n_ctx(const slm_pl_chat *c);
int slm_pl_chat_n_vocab(const slm_pl_chat *c);   /* tokens the sampler chooses from */
/* Append a message (role system, user or assistant; text copied). */
int slm_pl_chat_add(slm_pl_chat *c, const char *role, const char *text, size_t len, slm_err *err) SLM_MUST_CHECK;
/* Tokens of the prompt the next reply would start from (nothing decoded). */
int slm_pl_chat_count(const slm_pl_chat *c, int *n_prompt, slm_err *err) SLM_MUST_CHECK;
/* Forget every message but the system one(s), and the cache. */
void slm_pl_chat_clear(slm_pl_chat *c);
typedef struct slm_pl_turn {
    int n_prompt, n_reused;  /* the prompt's tokens; how many came from the cache */
    char *text;              /* the reply (malloc'd, NUL-terminated), len bytes */
    size_t len;
    int stop;                /* enum slm_stop */
} slm_pl_turn;
/* The assistant's reply to the conversation so far: at most max_tokens, until the end-of-turn
 * token or a full context; each piece goes to fn (may be NULL; non-zero stops) as it is
 * sampled. The reply is not added to the conversation (slm_pl_chat_add). */
int slm_pl_chat_reply(slm_pl_chat *c, int max_tokens, slm_pl_token_fn fn, void *user, slm_pl_turn *t,
                      slm_err *err) SLM_MUST_CHECK;

/* ---- a model served to many requests (api/seq.c; what serve/engine.c builds on) ---- */
/* The context length n_ctx means for the model of m (slm_pl_load): 0 the model's, at most
 * 4096; more than the model's is SLM_EINPUT naming "-c". */
int slm_pl_ctx_len(const slm_lm *m, int n_ctx, int *out, slm_err *err) SLM_MUST_CHECK;
uint64_t slm_pl_weight_bytes(const slm_lm *m);
/* For telemetry, fixed words only: the architecture if the runtime knows it, the file type's
 * recipe name (general.file_type), else "other". */
void slm_pl_describe(const slm_lm *m, char arch[16], char quant[16]);
/* Bytes the model at path would need with n_seqs sequences of n_ctx tokens (0: the model's, at
 * most 4096): weights + KV caches of type_k / type_v, read without building contexts. */
int slm_pl_estimate(const char *path, int n_ctx, int n_seqs, uint32_t type_k, uint32_t type_v, uint64_t *bytes,
                    slm_err *err) SLM_MUST_CHECK;
/* A sequence: one context (KV cache + scratch) of n_ctx tokens on m's model, n_threads threads. */
typedef struct slm_ctx slm_pl_seq;
int slm_pl_seq_new(slm_lm *m, int n_ctx, int n_threads, uint32_t type_k, uint32_t type_v, slm_pl_seq **out,
                   slm_err *err) SLM_MUST_CHECK;
void slm_pl_seq_free(slm_pl_seq *s);
/* Append ids[0..n) (one batch at most n_ctx); slm_pl_seq_logits: those of the last one. */
int slm_pl_seq_decode(slm_pl_seq *s, const int32_t *ids, int n, slm_err *err) SLM_MUST_CHECK;
/* One token for each of n sequences in one step (every weight read once), work lending its
 * threads and scratch; bit for bit n slm_pl_seq_decode calls. On error nothing is decoded. */
int slm_pl_seq_step(slm_pl_seq *work, slm_pl_seq *const *seqs, const int32_t *tokens, int n,
                    slm_err *err) SLM_MUST_CHECK;
void slm_pl_seq_rewind(slm_pl_seq *s, int n_past); /* keep the first n_past tokens */
void slm_pl_seq_clear(slm_pl_seq *s);
int slm_pl_seq_n_past(const slm_pl_seq *s);
const float *slm_pl_seq_logits(const slm_pl_seq *s);
/* The model's chat template parsed once, or the built-in ChatML when it has none or one the
 * renderer refuses (slm_pl_chat_fmt_builtin 1). */
typedef struct slm_pl_chat_fmt slm_pl_chat_fmt;
int slm_pl_chat_fmt_open(const slm_lm *m, slm_pl_chat_fmt **out, slm_err *err) SLM_MUST_CHECK;
void slm_pl_chat_fmt_free(slm_pl_chat_fmt *f);
int slm_pl_chat_fmt_builtin(const slm_pl_chat_fmt *f);
/* msgs rendered (add_generation_prompt, the model's BOS/EOS texts), tokenized with control
 * tokens parsed; BOS added when the model adds one and the text does not start with it. */
int slm_pl_chat_fmt_ids(const slm_lm *m, const slm_pl_chat_fmt *f, const slm_message *msgs, size_t n_msgs,
                        int32_t **ids, size_t *n_ids, slm_err *err) SLM_MUST_CHECK;
/* A sampler over the tokens m may sample, with OpenAI's semantics: temperature and top_p only
 * (top-k, min-p, repeat penalty off); top_p <= 0 or temperature 0: greedy. NULL: out of memory. */
typedef struct slm_sampler slm_pl_sampler;
slm_pl_sampler *slm_pl_sampler_openai(const slm_lm *m, double temperature, double top_p, uint64_t seed);
int32_t slm_pl_sample(slm_pl_sampler *s, const float *logits);
void slm_pl_sampler_free(slm_pl_sampler *s);

/* Perplexity / KLD of an open model over text (len bytes), on the model's context (its n_ctx
 * at least p->n_ctx) or, when m->ctx is NULL, a context of p->n_ctx tokens and n_batch
 * (0: n_ctx) made for the call, with m->type_k / m->type_v caches. kld may be NULL unless p->kld_base_in is set. */
int slm_pl_perplexity(slm_lm *m, const char *text, size_t len, const slm_ppl_params *p, int n_batch,
                      slm_ppl_result *res, slm_kld_result *kld, slm_err *err) SLM_MUST_CHECK;

/* ---- convert (api/convert.c) ---- */
/* --outtype names: "f32", "f16", "bf16", "q8_0" -> type id; UINT32_MAX if unknown. */
uint32_t slm_pl_outtype(const char *name);
typedef struct slm_pl_convert_info {
    char arch[32];           /* general.architecture written */
    size_t tensors;
    uint64_t params, bytes;  /* parameters; bytes of the output file (0 if it cannot be reopened) */
} slm_pl_convert_info;
/* Plan, then write out (temp file, fsync, rename) on `threads` threads. */
int slm_pl_convert(const char *dir, const char *out, uint32_t type, int threads, slm_progress_fn progress,
                   void *progress_ctx, slm_pl_convert_info *info, slm_err *err) SLM_MUST_CHECK;

/* ---- verify (api/install.c) ---- */
/* The trust chain (roots oldest first) at the current time, then the whole bundle against it
 * (signatures, threshold, expiry, runtime version, version above floor, every payload byte).
 * root, man (may be NULL): the root and the manifest verified, for the caller to free. */
int slm_pl_verify(const char *bundle, const char *const *trust, int n_trust, uint64_t floor, slm_root **root,
                  slm_manifest **man, slm_err *err) SLM_MUST_CHECK;

/* ---- install (api/install.c) ---- */
/* Mean next-token perplexity of text under the model, one forward pass over
 * min(tokens, context, 1024) tokens; also fails (SLM_EFAIL) when any logit is not finite. */
int slm_pl_canary_ppl(const char *model_path, const char *text, double *ppl, slm_err *err) SLM_MUST_CHECK;
/* The store's health check (an slm_health_fn; user: slm_pl_health): the model loads, every
 * F32/F16 weight is finite, the canary's logits are finite and its perplexity is within
 * tolerance of the manifest's. Runs in a child process (a crash cannot take the installer
 * and its lock down); slm_pl_health_peak_kb: that child's peak RSS. */
typedef struct slm_pl_health {
    double tolerance;        /* relative, e.g. 0.05 */
    /* filled by slm_pl_health_forked for opt-in telemetry (fixed words and numbers only):
     * whether it ran and passed, the model file's signed sha256 (hex), the manifest's
     * "supersedes", the GGUF's file type as a recipe name (read in the child: the trial
     * model is parsed only there) or "other" */
    int ran, ok, supersedes;
    char digest[65], quant[16];
} slm_pl_health;
int slm_pl_health_forked(void *user, const char *path, const slm_manifest *man, slm_err *err);
long slm_pl_health_peak_kb(void);
/* A GGUF's general.file_type as a recipe name ("Q4_K_M"), else "other". */
void slm_pl_model_quant(const char *path, char quant[16]);

/* ---- quantize (api/quantize.c, api/gptq.c) ---- */
#include "calib.h"
/* slm_pl_quant_opts.data_free: the data-free estimates (api/qfree.c) when no calibration is given:
 * AUTO the GPTQ H only for n_embd <= SLM_QFREE_COV_MAX_D, ON at any width, OFF none (weight-only) */
enum { SLM_DATA_FREE_AUTO = 0, SLM_DATA_FREE_ON = 1, SLM_DATA_FREE_OFF = 2 };
typedef struct slm_pl_quant_opts {
    const char *in, *out;
    int ftype;                     /* enum slm_ftype (slm_recipe_by_name) */
    int threads, pure, requant, dry, stats;
    slm_recipe_opts ro;            /* --tensor-type rules, output / token-embedding types (pure: from above) */
    const char *imatrix;           /* or NULL */
    const char *const *incw, *const *excw; /* --include-weights / --exclude-weights substrings */
    int n_incw, n_excw;
    int gptq;                      /* GPTQ with go (calibration text, chunks, params) */
    int data_free;                 /* without calibration: SLM_DATA_FREE_AUTO/ON/OFF (api/qfree.c) */
    gptq_opts go;
    /* a note (warning 0: e.g. a block-size fallback) or a warning (1) line, without "slm quantize: " */
    void (*note)(void *user, int warning, const char *msg);
    void *note_user;
    /* phase 0: start, v = total elements; 1: v elements done; 2: end */
    void (*progress)(void *user, int phase, uint64_t v);
    void *progress_user;
} slm_pl_quant_opts;
typedef struct slm_pl_quant_tensor {
    const gguf_tensor *src;
    uint32_t type;                 /* chosen type */
    int flags, rule;               /* SLM_RECIPE_* flags; index of the matching rule or -1 */
    uint64_t new_bytes;
    float *imp;                    /* importance from --imatrix, or NULL */
    unsigned char *pre;            /* bytes already quantized (GPTQ), or NULL */
    double rmse, maxerr, werr;     /* with stats */
} slm_pl_quant_tensor;
typedef struct slm_pl_quant_result {
    gguf_file *g;                  /* the input (tensor names, shapes, types) */
    slm_pl_quant_tensor *t;        /* one per input tensor, in file order */
    uint64_t out_size, total_old, total_new, n_quant;
} slm_pl_quant_result;
int slm_pl_quantize(const slm_pl_quant_opts *o, slm_pl_quant_result *res, slm_err *err) SLM_MUST_CHECK;
void slm_pl_quant_result_free(slm_pl_quant_result *r);

/* ---- imatrix (api/imatrix.c) ---- */
typedef struct slm_pl_imatrix_info {
    size_t entries;          /* tensors with an entry */
    int chunks;
    double run_secs;         /* time in the forward passes */
} slm_pl_imatrix_info;
/* Run the model over the calibration text in chunks of n_ctx (at most max_chunks; 0: all) and
 * write the importance matrix to out_path. progress: phase 0 start (v = chunks), 1 (v done), 2 end. */
int slm_pl_imatrix(const char *model_path, const char *text_path, const char *out_path, int n_ctx, int n_threads,
                   int max_chunks, int process_output, void (*progress)(void *user, int phase, uint64_t v),
                   void *progress_user, slm_pl_imatrix_info *info, slm_err *err) SLM_MUST_CHECK;

/* ---- compare (api/compare.c) ---- */
/* `slm compare`: quantize the base to each type and measure file size, bits per weight,
 * perplexity, KL-divergence against the base, prompt and generation speed. A directory model
 * is first converted to DIR/base-f32.gguf (the base); a GGUF is the base itself. Resumable:
 * each row is appended to DIR/results.jsonl with a key of everything it depends on (model and
 * text with their mtimes, ctx, chunks, imatrix, pp, tg; not threads), and a rerun skips the
 * rows it finds (the base row only while DIR/base.kld exists). Step failures are logged to
 * DIR/log.txt (SLM_EINPUT "slm quantize failed (details in DIR/log.txt)"); --types names
 * unknown to the recipes are SLM_EUSAGE. api/ does not link bench/ (libslm leaves it out), so
 * the caller hands in bench's speed test and report writer. */
struct cJSON;
typedef struct slm_pl_compare_opts {
    const char *model, *eval;      /* HF directory or GGUF; evaluation text */
    const char *types;             /* comma-separated recipe names (at most 32) */
    const char *imatrix;           /* passed to each quantization, or NULL */
    const char *dir;               /* work directory; NULL: compare-<model's base name> */
    int ctx, chunks, threads, pp, tg;
    const char *fmt;               /* the report: "md", "json", "csv" or "svg" */
    const char *svg_path;          /* also the chart, written atomically, or NULL */
    /* bench_compare_speed and bench_compare_format (bench/bench.h) */
    int (*speed)(const char *path, int n_threads, int pp, int tg, struct cJSON *row, slm_err *err);
    char *(*format)(const struct cJSON *rows, const char *fmt, int pp, int tg, const char *svg_title);
    /* each step as it starts: "quantizing to Q4_0", "Q4_0: speed", ... (may be NULL) */
    void (*step)(void *user, const char *msg);
    void *user;
} slm_pl_compare_opts;
typedef struct slm_pl_compare_result {
    char dir[1024];                /* the work directory */
    char base[1200];               /* the base GGUF */
    char *report;                  /* the report in fmt (malloc'd) */
} slm_pl_compare_result;
int slm_pl_compare(const slm_pl_compare_opts *o, slm_pl_compare_result *res, slm_err *err) SLM_MUST_CHECK;
void slm_pl_compare_result_free(slm_pl_compare_result *r);
/* ---- tokenizer and chat template from GGUF metadata (api/text.c) ---- */
/* The tokens of text under the GGUF's tokenizer (tokenizer.* metadata only): BOS/EOS as the
 * model asks unless no_bos; special: parse special-token texts. pieces[i]: each token's text
 * with specials shown and NUL bytes as spaces (NUL-terminated). slm_pl_tokens_free. */
typedef struct slm_pl_tokens {
    int32_t *ids;
    char **pieces;
    size_t n;
} slm_pl_tokens;
int slm_pl_tokenize_gguf(const char *path, const char *text, size_t len, int no_bos, int special,
                         slm_pl_tokens *out, slm_err *err) SLM_MUST_CHECK;
void slm_pl_tokens_free(slm_pl_tokens *t);
/* NULL or a built-in template's name (chatml, llama3, gemma, phi3); else SLM_EUSAGE naming them. */
int slm_pl_template_name_check(const char *name, slm_err *err) SLM_MUST_CHECK;
/* A conversation file (JSON array of {"role", "content"}; at most max bytes) parsed;
 * *msgs is one malloc'd block (free(*msgs)); errors name the file. */
#define SLM_PL_MAX_MESSAGES_BYTES ((size_t)64 << 20)
int slm_pl_messages_load(const char *path, size_t max, slm_chat_msg **msgs, size_t *n_msgs,
                         slm_err *err) SLM_MUST_CHECK;
/* The public API's messages as the chat template's (a NULL role or content: ""), pointing into
 * msgs; one malloc'd array (free; NULL: out of memory). */
slm_chat_msg *slm_pl_chat_msgs(const slm_message *msgs, size_t n);
/* The prompt a chat model receives for the conversation in messages_path (at most
 * SLM_PL_MAX_MESSAGES_BYTES), rendered with the GGUF's tokenizer.chat_template, or the
 * built-in template name (not NULL), with the model's BOS/EOS texts. slm_pl_prompt_free. */
typedef struct slm_pl_prompt {
    char *text;
    size_t len;
    size_t n_msgs;
    int builtin;                   /* rendered with a built-in template */
    char *bos_token, *eos_token;   /* the model's, or NULL */
} slm_pl_prompt;
int slm_pl_template(const char *path, const char *messages_path, const char *name, int add_gen,
                    slm_pl_prompt *out, slm_err *err) SLM_MUST_CHECK;
void slm_pl_prompt_free(slm_pl_prompt *p);

/* ---- inspect (api/inspect.c) ---- */
/* What FILE holds (a GGUF, a .safetensors file or index .json, or an HF model directory):
 * metadata (arrays abbreviated to 8 elements unless all), tensor table and totals, as text
 * or (json) one JSON object and a newline; *out malloc'd, *len bytes. Structures are
 * validated first: a bad file gives one line naming the problem. */
int slm_pl_inspect(const char *path, int all, int json, char **out, size_t *len, slm_err *err) SLM_MUST_CHECK;

/* ---- names and facts for the tools (api/names.c) ---- */
void slm_pl_sampler_defaults(slm_sampler_params *p);
/* SLM_KERNEL names a kernel set this CPU cannot run: 2 with a one-line message, else 0. */
int slm_pl_kernel_env_check(char *msg, size_t cap);
/* The kernel set in use: "scalar", "avx2", "avx512", "neon", ... */
const char *slm_pl_kernel_name(void);
/* The kernel set in use and the CPU's features: "avx2 (cpu: ...)", "sve (256-bit vectors; cpu: ...)". */
void slm_pl_kernels_text(char *buf, size_t cap);
/* KV cache type ids by llama.cpp's names (f32, f16, bf16, q8_0, q4_0) and back (slm_kv_type_*). */
uint32_t slm_pl_kv_type_by_name(const char *name);
const char *slm_pl_kv_type_name(uint32_t type);
/* A storage type name (case-insensitive; not the q8_1 / q8_K dot-product helpers) -> *out; -1 if unknown. */
int slm_pl_tensor_type(const char *name, uint32_t *out);
/* Recipes (enum slm_ftype): by name (-1 if unknown), canonical name (NULL), all names (NULL-ended),
 * a --tensor-type pattern's syntax (0, or non-zero with msg). */
int slm_pl_recipe_by_name(const char *name);
const char *slm_pl_recipe_name(int ftype);
const char *const *slm_pl_recipe_names(void);
int slm_pl_recipe_check_pattern(const char *pattern, char *msg, size_t cap);
/* text and a newline written to path atomically (temp file, fsync, rename). */
int slm_pl_write_line(const char *path, const char *text, slm_err *err) SLM_MUST_CHECK;

/* Seconds on a monotonic clock. */
double slm_pl_now(void);

#endif /* SLM_PIPELINE_H */
