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
#include "runtime.h"
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
typedef struct slm_pl_quant_opts {
    const char *in, *out;
    int ftype;                     /* enum slm_ftype (slm_recipe_by_name) */
    int threads, pure, requant, dry, stats;
    slm_recipe_opts ro;            /* --tensor-type rules, output / token-embedding types (pure: from above) */
    const char *imatrix;           /* or NULL */
    const char *const *incw, *const *excw; /* --include-weights / --exclude-weights substrings */
    int n_incw, n_excw;
    int gptq;                      /* GPTQ with go (calibration text, chunks, params) */
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

/* Seconds on a monotonic clock. */
double slm_pl_now(void);

#endif /* SLM_PIPELINE_H */
