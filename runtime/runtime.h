/* runtime/runtime.h — the face of slmkit's minimal runtime.
 *
 * Loads a GGUF (ours or llama.cpp's) by mmap, runs the Llama-family and GPT-2
 * forward passes with a KV cache and a thread pool, tokenizes and detokenizes
 * (SentencePiece-style BPE and GPT-2 byte-level BPE), samples, and computes
 * perplexity / KL-divergence the way llama.cpp does.
 *
 * Uses formats/ (GGUF reader) and libquant/ (kernels). Never prints, never exits.
 */
#ifndef SLM_RUNTIME_H
#define SLM_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "../formats/formats.h"
#include "../libquant/libquant.h"

/* ---- tokenizer ------------------------------------------------------------ */
typedef struct slm_tokenizer slm_tokenizer;
/* Build from the tokenizer.ggml.* metadata of a GGUF ("llama" or "gpt2" model). */
int slm_tokenizer_from_gguf(const gguf_file *f, slm_tokenizer **out, slm_err *err) SLM_MUST_CHECK;
void slm_tokenizer_free(slm_tokenizer *t);
/* Encode text (any bytes; invalid UTF-8 handled like llama.cpp: SPM byte
 * fallback / GPT-2 U+FFFD replacement). add_bos: prepend BOS (and append EOS
 * when the model sets tokenizer.ggml.add_eos_token, as llama.cpp's add_special
 * does). parse_special: recognise control token texts such as "<s>" in the
 * text (user-defined tokens are always recognised). *ids is malloc'd. */
int slm_tokenize(const slm_tokenizer *t, const char *text, size_t len, int add_bos, int parse_special,
                 int32_t **ids, size_t *n_ids, slm_err *err) SLM_MUST_CHECK;
/* slm_tokenize for a prompt to generate from: an empty result becomes one BOS token (EOS
 * for models without one), since generation needs something to condition on. */
int slm_tokenize_prompt(const slm_tokenizer *t, const char *text, size_t len, int add_bos, int parse_special,
                        int32_t **ids, size_t *n_ids, slm_err *err) SLM_MUST_CHECK;
/* Bytes of one token as it appears in text (SPM: "▁" -> " ", <0xNN> -> byte;
 * GPT-2: byte-level mapped back). Control tokens give "" unless special != 0.
 * Returns the byte count (may exceed cap: then nothing is truncated silently,
 * the caller retries with a larger buffer). */
size_t slm_token_to_piece(const slm_tokenizer *t, int32_t id, int special, char *buf, size_t cap);
/* Decode a whole sequence to malloc'd text (NULL when out of memory): the
 * pieces concatenated, except that when the model adds a space prefix (SPM)
 * the very first token loses one leading space, exactly as llama_detokenize
 * does; so a sequence starting with BOS keeps its space (" Once"), one
 * without BOS round-trips ("Once"). Unlike llama_detokenize, no
 * clean_up_tokenization_spaces pass for GPT-2 vocabularies (exact round trip). */
char *slm_detokenize(const slm_tokenizer *t, const int32_t *ids, size_t n, int special);
int32_t slm_tokenizer_n_vocab(const slm_tokenizer *t);
int32_t slm_tokenizer_bos(const slm_tokenizer *t);   /* -1 if none */
int32_t slm_tokenizer_eos(const slm_tokenizer *t);   /* -1 if none */
int slm_tokenizer_add_bos(const slm_tokenizer *t);   /* what llama.cpp would do */
int slm_tokenizer_is_eog(const slm_tokenizer *t, int32_t id); /* end of generation */

/* ---- model, context, sampling, perplexity: see below (runtime owner) ---- */

/* ---- thread pool ----------------------------------------------------------- */
/* A fixed set of worker threads; slm_pool_run calls fn(arg, ith, nth) once on
 * each of the nth threads (the caller is thread 0) and returns when all are done. */
typedef struct slm_pool slm_pool;
typedef void (*slm_task_fn)(void *arg, int ith, int nth);
int slm_pool_new(int n_threads, slm_pool **out, slm_err *err) SLM_MUST_CHECK;
void slm_pool_free(slm_pool *p);
int slm_pool_size(const slm_pool *p);
void slm_pool_run(slm_pool *p, slm_task_fn fn, void *arg);

/* ---- weight x activation products ---------------------------------------- */
/* out[t * n_out + r] = sum_c W[r, c] * x[t * n_in + c] for t < n_tokens, where
 * n_in = W->ne[0] (row length) and n_out = W->ne[1]. Dispatches on W->type:
 * F32/F16/BF16 directly (OpenBLAS sgemm for batches), any other type through
 * libquant's traits (vec_dot against activations converted to vec_dot_type).
 * Output rows are split over the pool's threads. pool may be NULL (1 thread). */
int slm_matmul_supported(uint32_t type);
void slm_matmul(slm_pool *pool, float *out, const gguf_tensor *W, const float *x, int n_tokens);
/* Repacked copy of W for fast decode (libquant's interleaved 8-row "x8" layouts:
 * Q4_0, Q5_0, Q8_0, Q2_K..Q6_K on AVX-512 VNNI and aarch64): malloc'd (free() it), or NULL when W's type,
 * shape or this CPU has none. slm_matmul_packed is the runtime's product, on W or its
 * packed copy (packed may be NULL): as slm_matmul, except that batches (>= 8 tokens) of
 * the types with an int8 GEMM (slm_gemm_kernel: Q4_0, Q5_0, Q8_0, Q2_K..Q6_K on AVX-512
 * VNNI and aarch64) quantize the activations once to the type's vec_dot_type, as llama.cpp does,
 * where slm_matmul keeps them in F32. Contexts repack their model's matrices at
 * creation (slm_ctx_new). */
void *slm_matmul_pack(const gguf_tensor *W);
/* The same in parts: bytes of W's x8 copy (0: none), and the copy written to dst (0, or -1). */
size_t slm_matmul_pack_bytes(const gguf_tensor *W);
int slm_matmul_pack_into(const gguf_tensor *W, void *dst);
void slm_matmul_packed(slm_pool *pool, float *out, const gguf_tensor *W, const void *packed, const float *x,
                       int n_tokens);
/* One token of each of n_tokens different sequences (multi-sequence decode): token t's
 * outputs are bit for bit those of slm_matmul_packed(pool, .., W, packed, x_t, 1), while
 * the weights are read from memory once for all tokens (row blocks that stay in cache, each
 * multiplied by every token with the one-token kernel). */
void slm_matmul_decode(slm_pool *pool, float *out, const gguf_tensor *W, const void *packed, const float *x,
                       int n_tokens);
/* Row `row` of a 2-D tensor (e.g. a token embedding) as float32 (n = ne[0] values). */
void slm_tensor_row_f32(const gguf_tensor *W, int64_t row, float *dst);

/* ---- model ------------------------------------------------------------------ */
/* What the one forward pass reads about an architecture: one row per GGUF
 * general.architecture in runtime/arch.c, so a new family is a row, not new branches. */
enum slm_norm_kind { SLM_NORM_RMS = 0, SLM_NORM_LAYER = 1 /* LayerNorm with bias */ };
enum slm_qkv_kind { SLM_QKV_SPLIT = 0 /* attn_q, attn_k, attn_v */, SLM_QKV_FUSED = 1 /* attn_qkv */,
                    SLM_QKV_ANY = 2 /* either layout (llama.cpp accepts both) */ };
enum slm_ffn_kind { SLM_FFN_GATED = 0 /* down(act(gate x) * up x) */,
                    SLM_FFN_GATED_FUSED = 1 /* ffn_up holds [gate; up]: 2 n_ff rows */,
                    SLM_FFN_PLAIN = 2 /* down(act(up x)) */ };
enum slm_act_kind { SLM_ACT_SILU = 0,
                    SLM_ACT_GELU_TANH = 1 /* tanh form in float, as transformers computes it */,
                    SLM_ACT_GELU_F16 = 2  /* the same through llama.cpp's table of f16 inputs and outputs */ };
enum slm_rope_kind { SLM_ROPE_NONE = 0 /* learned positions */, SLM_ROPE_NORM = 1 /* adjacent pairs */,
                     SLM_ROPE_NEOX = 2 /* pairs (i, i + n_rot/2) */ };
typedef struct slm_arch_desc {
    int arch;               /* enum slm_arch (formats.h) */
    const char *name;       /* general.architecture */
    int norm;               /* enum slm_norm_kind, for every norm of the model */
    int sandwich;           /* norms after attention and FFN too (attn_post_norm, ffn_post_norm) */
    int qk_norm;            /* per-head RMSNorm of q and k before RoPE (attn_q_norm, attn_k_norm) */
    int qkv;                /* enum slm_qkv_kind */
    int qkv_bias;           /* q/k/v biases required (qwen2); else optional */
    int all_bias;           /* every norm and projection has a bias (gpt2) */
    int ffn, act, rope;     /* enum slm_ffn_kind, slm_act_kind, slm_rope_kind */
    int embd_scale;         /* token embeddings scaled by sqrt(n_embd) (gemma) */
    int swa;                /* reads <arch>.attention.sliding_window */
    int swa_pattern;        /* with a sliding window: layer il is local unless il % p == p - 1 (0: all) */
    float rope_base_swa;    /* RoPE base of the local layers (0: the global base) */
    const char *eps_key;    /* <arch>.<eps_key> */
} slm_arch_desc;
/* The row of general.architecture `name`, or NULL. */
const slm_arch_desc *slm_arch_find(const char *name);
typedef struct slm_hparams {
    int arch;               /* enum slm_arch (formats.h) */
    char arch_name[32];     /* general.architecture */
    const slm_arch_desc *desc;
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff;
    int n_q;                /* n_head * head_dim (may differ from n_embd: gemma3, qwen3) */
    int n_ctx_train;        /* <arch>.context_length */
    int n_rot;              /* rope.dimension_count (default head_dim) */
    int rope_neox;          /* 1: pairs (i, i + n_rot/2) (qwen2); 0: adjacent pairs (llama) */
    float rope_freq_base;   /* default 10000 */
    float rope_freq_base_swa; /* local (sliding-window) layers */
    int has_rope_freqs;     /* rope_freqs.weight divides the rotation frequencies (llama3 scaling) */
    int n_swa;              /* attention.sliding_window (0: none) */
    float norm_eps;
    float embd_scale;       /* 1, or sqrt(n_embd) */
    float attn_scale;       /* KQ scale: 1/sqrt(head_dim) */
    float logit_softcap;    /* final_logit_softcapping (0: off) */
} slm_hparams;
typedef struct slm_model slm_model;
/* mmap a GGUF and bind its tensors (every shape checked against the hparams). */
int slm_model_load(const char *path, slm_model **out, slm_err *err) SLM_MUST_CHECK;
void slm_model_free(slm_model *m);
const slm_hparams *slm_model_hparams(const slm_model *m);
const gguf_file *slm_model_gguf(const slm_model *m);
/* Bytes of all weight tensors (for reports). */
uint64_t slm_model_weight_bytes(const slm_model *m);
/* Decode copies of the weights (the packs: x8 layouts and huge-page copies, made by the
 * first context, one more resident copy of every matrix) on (1, the default) or off (0:
 * products read the file's weights as they are, slower for decode). Takes effect when
 * the model has no context. GPTQ turns them off: it substitutes every matrix it multiplies,
 * and the copies of the F16 weights it never reads were 2.2 GB of its peak memory. */
void slm_model_set_packs(slm_model *m, int on);

/* ---- inference context (KV cache + scratch) -------------------------------- */
typedef struct slm_ctx slm_ctx;
/* n_ctx: KV cache length (1..n_ctx_train); n_batch: most tokens per forward
 * call (0 = min(512, n_ctx)); n_threads >= 1. */
int slm_ctx_new(const slm_model *m, int n_ctx, int n_batch, int n_threads, slm_ctx **out,
                slm_err *err) SLM_MUST_CHECK;
/* The same with the KV cache's element types (llama.cpp's --cache-type-k / --cache-type-v):
 * SLM_TYPE_F32 (slm_ctx_new's), SLM_TYPE_F16, SLM_TYPE_BF16, SLM_TYPE_Q8_0 or SLM_TYPE_Q4_0. Each position's
 * K and V rows are converted as they are written, one block per 32 values of a head (a
 * quantized type needs head_dim % 32 == 0, as llama.cpp: else SLM_EINPUT); attention takes
 * K.q with the type's dot product (q converted to its vec_dot_type, Q8_0 for q8_0/q4_0) and
 * accumulates dequantized V rows in float (docs/kvcache.md). SLM_EUSAGE: another type. */
int slm_ctx_new_kv(const slm_model *m, int n_ctx, int n_batch, int n_threads, uint32_t type_k, uint32_t type_v,
                   slm_ctx **out, slm_err *err) SLM_MUST_CHECK;
/* Cache type names "f32", "f16", "bf16", "q8_0", "q4_0" (case-insensitive) -> type id,
 * UINT32_MAX if not one of them; the name of a cache type (NULL if not one); the list for messages. */
uint32_t slm_kv_type_by_name(const char *name);
const char *slm_kv_type_name(uint32_t type);
const char *slm_kv_type_names(void);
/* Bytes of the K and V caches of n_ctx positions (all layers); 0 for a type that is not a cache type. */
uint64_t slm_kv_cache_bytes(const slm_hparams *hp, int n_ctx, uint32_t type_k, uint32_t type_v);
uint32_t slm_ctx_type_k(const slm_ctx *c);
uint32_t slm_ctx_type_v(const slm_ctx *c);
uint64_t slm_ctx_kv_bytes(const slm_ctx *c);
void slm_ctx_free(slm_ctx *c);
void slm_ctx_clear(slm_ctx *c);            /* empty the KV cache */
/* Keep only the first n_past tokens of the cache (0 <= n_past <= slm_ctx_n_past), e.g. the
 * common prefix of a conversation re-rendered after a turn; later decodes overwrite the rest. */
void slm_ctx_rewind(slm_ctx *c, int n_past);
int slm_ctx_n_past(const slm_ctx *c);      /* tokens in the cache */
int slm_ctx_n_ctx(const slm_ctx *c);
int slm_ctx_n_batch(const slm_ctx *c);
int slm_ctx_n_vocab(const slm_ctx *c);
/* Run n tokens at positions n_past .. n_past+n-1 and append them to the cache
 * (split into batches of n_batch internally). all_logits: keep the logits of
 * every token (then n <= n_batch), else only those of the last token.
 * Fails (SLM_EINPUT) when the cache would overflow or an id is out of range. */
int slm_decode(slm_ctx *c, const int32_t *tokens, int n, int all_logits, slm_err *err) SLM_MUST_CHECK;
/* Logits (n_vocab floats) of token i of the last slm_decode (i = 0 when only
 * the last token's logits were kept). */
const float *slm_ctx_logits(const slm_ctx *c, int i);
/* Multi-sequence decode step: token tokens[i] appended to sequence seqs[i] (its own KV cache
 * and position), for n distinct contexts of one model. Every weight matrix runs once for all
 * n tokens (slm_matmul_decode), attention runs per sequence; afterwards slm_ctx_logits(seqs[i], 0)
 * holds sequence i's logits, bit for bit those n separate slm_decode(seqs[i], &tokens[i], 1, 0)
 * calls would give. `work` (one of seqs or another context of the model) lends its threads,
 * scratch and repacked weights; n <= slm_ctx_n_batch(work), and no sequence may be longer than
 * n_batch x n_ctx of work. Each sequence's cache keeps its own types (slm_ctx_new_kv).
 * work's observer and layer range are not used. Fails (SLM_EINPUT,
 * nothing decoded) on a full cache, an id out of range, another model or a repeated context. */
int slm_decode_multi(slm_ctx *work, slm_ctx *const *seqs, const int32_t *tokens, int n, slm_err *err) SLM_MUST_CHECK;

/* ---- activation observer (calibration: slm imatrix, GPTQ) ------------------ */
/* Called (on the decoding thread) before each weight matrix product with the
 * weight tensor W (W->name is its GGUF name) and the activations x it
 * multiplies: n_tokens rows of W->ne[0] floats. Returns the tensor to use
 * instead of W (same shape; any supported type; multiplied like the model's own
 * weights, slm_matmul_packed without a packed copy), or NULL to use W. */
typedef const gguf_tensor *(*slm_act_observer)(void *user, const gguf_tensor *W, const float *x, int n_tokens);
void slm_ctx_set_observer(slm_ctx *c, slm_act_observer fn, void *user); /* fn NULL: off */
/* An observer may return SLM_ACT_SKIP instead: the product is not computed and its
 * output is zero (calibration passes that need only a product's input, e.g. GPTQ's). */
extern const gguf_tensor slm_act_skip;
#define SLM_ACT_SKIP (&slm_act_skip)
/* Calibration (layer-by-layer GPTQ): the next decodes run only blocks [l0, l1).
 * x_in (n_tokens x n_embd, or NULL: the token embeddings) is the residual stream
 * entering block l0; x_out (or NULL) receives the one leaving block l1 - 1. With
 * l1 < n_layer no logits are computed. Both need one batch (n <= n_batch).
 * l0 < 0: off (the whole model). */
void slm_ctx_set_layer_range(slm_ctx *c, int l0, int l1, const float *x_in, float *x_out);
/* Calibration (one-pass GPTQ): with a layer range set, the next decodes start block l0
 * at point `from` and stop block l1 - 1 at point `to` (slm_ctx_set_layer_range resets
 * them to START / END). The points of a block, in order: SLM_BP_START (its input),
 * SLM_BP_QKV (after the q/k/v products, before the attention: only a stop; as a start it
 * is START), SLM_BP_ATT (the attention's output, the input of attn_output), SLM_BP_FFN
 * (the residual after attention, before the feed-forward's norm), SLM_BP_DOWN (the input
 * of ffn_down), SLM_BP_END (its output). x_in of the layer range is the residual at
 * `from`; aux_in the rows that point needs besides it (ATT: n_tokens x the attention's
 * width n_head x head_dim; DOWN: n_tokens x n_ff; NULL otherwise); x_out receives the
 * residual at `to`. Used with l1 = l0 + 1 and from < to. The products of the skipped
 * parts are not observed; the KV cache of a block entered after START or stopped at QKV
 * is left as it was. */
enum { SLM_BP_START, SLM_BP_QKV, SLM_BP_ATT, SLM_BP_FFN, SLM_BP_DOWN, SLM_BP_END };
void slm_ctx_set_block_part(slm_ctx *c, int from, int to, const float *aux_in);

/* ---- sampling ----------------------------------------------------------------- */
typedef struct slm_sampler_params {
    float temp;             /* <= 0: greedy (argmax) */
    int top_k;              /* <= 0: off */
    float top_p;            /* >= 1: off */
    float min_p;            /* <= 0: off */
    float repeat_penalty;   /* 1: off (llama.cpp rule: logit>0 ? /r : *r) */
    int repeat_last_n;      /* window of recent tokens the penalty looks at */
    uint64_t seed;
} slm_sampler_params;
typedef struct slm_sampler slm_sampler;
void slm_sampler_defaults(slm_sampler_params *p);
slm_sampler *slm_sampler_new(const slm_sampler_params *p, int n_vocab); /* NULL: out of memory */
void slm_sampler_free(slm_sampler *s);
/* Choose the next token from logits (not modified); remembers it for the penalty. */
int32_t slm_sampler_sample(slm_sampler *s, const float *logits);
/* Remember a token for the repetition penalty (e.g. the prompt's). */
void slm_sampler_accept(slm_sampler *s, int32_t tok);
/* The sampler's PRNG (xoshiro256** seeded by splitmix64): uniform in [0, 1). */
double slm_rng_uniform(uint64_t st[4]);
void slm_rng_seed(uint64_t st[4], uint64_t seed);

/* ---- perplexity (llama.cpp's method) ------------------------------------------ */
typedef struct slm_ppl_result {
    double ppl, ppl_stderr;  /* exp(mean nll) and its standard error */
    double nll, nll_stderr;  /* mean negative log-likelihood (nats) */
    int64_t count;           /* scored tokens */
    int chunks, n_ctx;
    int64_t n_tokens;        /* tokens of the whole text */
} slm_ppl_result;
/* Called after each chunk with the running estimate. */
typedef void (*slm_ppl_progress)(void *user, int chunk, int n_chunks, double ppl_so_far);
/* KL-divergence against saved base logits (llama.cpp's quantities). */
typedef struct slm_kld_result {
    double ppl_base, ppl_base_stderr, dppl, dppl_stderr, ppl_ratio;
    double kld_mean, kld_stderr, kld_median, kld_p99, kld_max;
    double rms_dp, rms_dp_stderr, same_top, same_top_stderr;
    int64_t count;
} slm_kld_result;
typedef struct slm_ppl_params {
    int n_ctx;               /* chunk length */
    int n_chunks;            /* <= 0: all */
    const char *kld_base_out;/* write base log-probabilities here, or NULL */
    const char *kld_base_in; /* compare against this base file, or NULL */
    slm_ppl_progress progress;
    void *user;
} slm_ppl_params;
/* Tokenize text once (BOS first when the model adds BOS), split into n_ctx
 * chunks, replace the first token of each chunk by BOS (when adding BOS),
 * score positions n_ctx/2 .. n_ctx-2. The context's n_ctx must be >= p->n_ctx.
 * kld may be NULL unless kld_base_in is set. */
int slm_perplexity(slm_ctx *c, const slm_tokenizer *tok, const char *text, size_t len,
                   const slm_ppl_params *p, slm_ppl_result *res, slm_kld_result *kld,
                   slm_err *err) SLM_MUST_CHECK;

/* ---- chat templates ----------------------------------------------------------
 * A Jinja subset interpreter for the chat templates models ship
 * (tokenizer.chat_template), rendering what transformers' apply_chat_template
 * renders: trim_blocks + lstrip_blocks, Python semantics for strings, numbers,
 * tests and filters. See docs/chat.md for the supported subset. Rendering is
 * bounded (template size, nesting, loop iterations, evaluation steps, memory,
 * output size): any template and any input give a result or one error line. */
typedef struct slm_chat_msg {
    const char *role;        /* "system", "user", "assistant" (NUL-terminated) */
    const char *content;     /* content bytes (UTF-8; need not be NUL-terminated) */
    size_t content_len;
} slm_chat_msg;
typedef struct slm_chat_params {
    const slm_chat_msg *msgs;
    size_t n_msgs;
    int add_generation_prompt;
    const char *bos_token;   /* NULL: the variable is undefined in the template */
    const char *eos_token;   /* NULL: undefined */
    /* "now" for strftime_now(): now >= 0 is a Unix time rendered in UTC; now < 0
     * (slm_chat_params_init's default) takes SOURCE_DATE_EPOCH (UTC) when it is
     * set, else the clock (local time, as transformers' datetime.now()). */
    int64_t now;
} slm_chat_params;
void slm_chat_params_init(slm_chat_params *p);
typedef struct slm_chat_template slm_chat_template;
/* Parse a template once (text of len bytes). SLM_EINPUT with one line naming
 * the problem (syntax error, unsupported tag) and its line. */
int slm_chat_template_parse(const char *text, size_t len, slm_chat_template **out, slm_err *err) SLM_MUST_CHECK;
void slm_chat_template_free(slm_chat_template *t);
/* Render with transformers' variables: messages (list of {"role", "content"}),
 * add_generation_prompt, bos_token / eos_token (when not NULL), tools = None,
 * documents = None, and the globals raise_exception, strftime_now, namespace,
 * range, dict. The same template may be rendered any number of times, also
 * from several threads at once (rendering does not modify it).
 * Render: *out is malloc'd, NUL-terminated, *out_len bytes. Errors: SLM_EINPUT
 * (raise_exception's message, an unsupported filter/test/method/operation, a
 * limit reached), SLM_EINTERNAL (out of memory). */
int slm_chat_template_render(const slm_chat_template *t, const slm_chat_params *p, char **out, size_t *out_len,
                             slm_err *err) SLM_MUST_CHECK;
/* parse + render + free */
int slm_chat_render(const char *text, size_t len, const slm_chat_params *p, char **out, size_t *out_len,
                    slm_err *err) SLM_MUST_CHECK;
/* Built-in named templates for models whose own template is missing or cannot
 * be rendered: "chatml", "llama3", "gemma", "phi3" (docs/chat.md). NULL if the
 * name is unknown. slm_chat_builtin_names: the names, comma separated. */
const char *slm_chat_builtin(const char *name);
const char *slm_chat_builtin_names(void);
/* What a GGUF says about chatting: its tokenizer.chat_template (NULL when
 * absent) and the texts of its BOS / EOS tokens (NULL when not set). All
 * strings are malloc'd copies; free with slm_chat_info_free. Does not touch
 * tensor data. SLM_EINPUT when a key has the wrong type or an id is out of range. */
typedef struct slm_chat_info {
    char *template_text;
    char *bos_token, *eos_token;
} slm_chat_info;
int slm_chat_info_from_gguf(const gguf_file *f, slm_chat_info *out, slm_err *err) SLM_MUST_CHECK;
void slm_chat_info_free(slm_chat_info *ci);
/* msgs rendered by t with the generation prompt and ci's BOS / EOS texts, then tokenized with
 * control tokens parsed; BOS added when the tokenizer adds one and the text does not start with
 * the BOS text (a template that writes it gets no second). as_prompt: an empty result starts
 * from BOS (or EOS), as slm_tokenize_prompt. *ids malloc'd. */
int slm_chat_tokens(const slm_chat_template *t, const slm_chat_info *ci, const slm_tokenizer *tok,
                    const slm_chat_msg *msgs, size_t n_msgs, int as_prompt, int32_t **ids, size_t *n_ids,
                    slm_err *err) SLM_MUST_CHECK;
/* Parse and validate a conversation (JSON array of {"role", "content"} objects,
 * role one of system/user/assistant, content a string). name labels errors.
 * *msgs (and the strings) are one malloc'd block: free(*msgs). */
int slm_chat_messages_parse(const char *json, size_t len, const char *name, slm_chat_msg **msgs, size_t *n_msgs,
                            slm_err *err) SLM_MUST_CHECK;

/* ---- chat sessions (runtime/chat_session.c) ------------------------------------
 * A conversation held on a context: the model's chat template (or a built-in one), the
 * messages so far and the tokens in the KV cache. Every turn renders the whole conversation
 * again, exactly as transformers would, and decodes only what differs from the cached
 * tokens (multi-turn chat without re-reading the history). */
typedef struct slm_chat slm_chat;
/* template_name NULL: the model's tokenizer.chat_template (SLM_EINPUT when it has none or it
 * cannot be parsed: the message names --chat-template); else a built-in (slm_chat_builtin). */
int slm_chat_new(const slm_model *m, const slm_tokenizer *tok, slm_ctx *ctx, const char *template_name,
                 slm_chat **out, slm_err *err) SLM_MUST_CHECK;
void slm_chat_free(slm_chat *ch);
/* Append a message (role: system, user or assistant; content copied). */
int slm_chat_add(slm_chat *ch, const char *role, const char *content, size_t len, slm_err *err) SLM_MUST_CHECK;
/* Forget every message but the system ones, and the cached tokens. */
void slm_chat_reset(slm_chat *ch);
/* Render the conversation with the generation prompt, tokenize it (special tokens recognised;
 * BOS added when the model adds one and the rendering does not already start with it), keep
 * the cached prefix it shares and decode the rest: then slm_ctx_logits(ctx, 0) is the
 * distribution of the reply's first token. SLM_EINPUT when it does not fit the context.
 * n_prompt / n_reused (may be NULL): tokens of the prompt and how many came from the cache. */
int slm_chat_prefill(slm_chat *ch, int *n_prompt, int *n_reused, slm_err *err) SLM_MUST_CHECK;
/* Tokens of the prompt slm_chat_prefill would decode now (rendered and tokenized, nothing
 * decoded), e.g. to route a conversation that does not fit elsewhere. */
int slm_chat_count(const slm_chat *ch, int *n_prompt, slm_err *err) SLM_MUST_CHECK;
/* A sampled token was decoded into the context: it is cached now (SLM_EINTERNAL: no memory). */
int slm_chat_push(slm_chat *ch, int32_t tok) SLM_MUST_CHECK;

#endif /* SLM_RUNTIME_H */
