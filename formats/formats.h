/* formats/formats.h — the face of slmkit's file-format library.
 *
 * safetensors (single and sharded), Hugging Face config.json + tokenizer.json,
 * GGUF v3 reading (mmap, fully validated) and streaming writing (temp file,
 * fsync, rename), and the HF -> GGUF conversion plan that llama.cpp expects.
 *
 * Rules: this library uses nothing else of slmkit, never prints and never
 * exits. Every function that can fail returns an slm status code (0 = OK) and
 * fills an slm_err whose message names the file and the problem in one line.
 */
#ifndef SLM_FORMATS_H
#define SLM_FORMATS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base.h" /* slm_err, status codes, type ids and geometry, slm_arch, slm_read_text_file */

/* ---- safetensors ------------------------------------------------------ */
#define SLM_MAX_DIMS 8
typedef struct st_tensor {
    const char *name;
    uint32_t dtype;              /* SLM_TYPE_F32, SLM_TYPE_F16 or SLM_TYPE_BF16 */
    int n_dims;
    int64_t shape[SLM_MAX_DIMS]; /* PyTorch order: shape[0] is the slowest (rows) */
    uint64_t n_elems;
    const void *data;            /* inside the read-only mapping */
    uint64_t nbytes;
    int shard;                   /* index of the shard file */
} st_tensor;
typedef struct st_model st_model;
/* path: a .safetensors file, a model.safetensors.index.json, or an HF model
 * directory (model.safetensors or model.safetensors.index.json inside). */
int st_open(const char *path, st_model **out, slm_err *err) SLM_MUST_CHECK;
void st_close(st_model *m);
size_t st_count(const st_model *m);
const st_tensor *st_get(const st_model *m, size_t i);
const st_tensor *st_find(const st_model *m, const char *name);
const char *st_shard_path(const st_model *m, int shard);
/* Drop the pages of a tensor from this process's resident set (after use). */
void st_release(const st_model *m, const st_tensor *t);
/* The same for bytes [off, off+len) of the tensor's data (whole pages inside it only). */
void st_release_range(const st_tensor *t, uint64_t off, uint64_t len);
/* Drop the whole pages inside [p, p+len) of a read-only file mapping from this
 * process's resident set (the page cache keeps them; a later read maps them again). */
void slm_map_release(const void *p, uint64_t len);
/* Decode n elements starting at element `first` of t into float32. */
void st_read_f32(const st_tensor *t, uint64_t first, uint64_t n, float *dst);

/* safetensors writer (synthetic models, tests): declare every tensor, then
 * stream the data in declaration order; temp file + fsync + rename. */
typedef struct st_writer st_writer;
st_writer *st_writer_new(void);
int st_writer_add(st_writer *w, const char *name, uint32_t dtype, int n_dims, const int64_t *shape);
int st_writer_set_meta(st_writer *w, const char *key, const char *value); /* __metadata__ */
int st_writer_begin(st_writer *w, const char *path, slm_err *err) SLM_MUST_CHECK;
int st_writer_write(st_writer *w, const void *data, size_t n, slm_err *err) SLM_MUST_CHECK;
int st_writer_finish(st_writer *w, slm_err *err) SLM_MUST_CHECK; /* frees w */
void st_writer_free(st_writer *w);                                /* aborts if unfinished */

/* ---- Hugging Face config.json ------------------------------------------ */
/* rope_scaling types the converter carries (anything else is refused by name) */
enum slm_rope_scaling { SLM_ROPE_SCALING_NONE = 0, SLM_ROPE_SCALING_LLAMA3 = 1 };
typedef struct hf_config {
    int arch;                 /* enum slm_arch */
    char hf_arch[64];         /* "LlamaForCausalLM", ... */
    const char *gguf_arch;    /* "llama", "qwen2", "gpt2" */
    int n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx, n_vocab;
    double norm_eps;          /* rms_norm_eps (llama) or layer_norm_epsilon (gpt2) */
    double rope_theta;        /* 0 when absent */
    int tie_embeddings;
    int attn_bias;            /* q/k/v biases (qwen2 always, llama attention_bias) */
    int sliding_window;       /* 0 when none (gemma3: local layers' window; phi3: carried, see docs) */
    int bos_id, eos_id;       /* -1 when absent */
    /* ---- newer families (0 when not applicable) ---- */
    int has_head_dim;         /* config.json states head_dim (llama.cpp then writes key/value_length) */
    int rope_dim;             /* rotary dimensions (head_dim; phi3: partial_rotary_factor 1 only) */
    int rope_scaling;         /* enum slm_rope_scaling */
    double rope_factor;       /* llama3: factor */
    double rope_low_freq_factor, rope_high_freq_factor; /* llama3 */
    int rope_orig_ctx;        /* llama3 / phi3: original_max_position_embeddings */
    double rope_local_theta;  /* gemma3: rope_local_base_freq (sliding-window layers) */
    double query_pre_attn_scalar; /* gemma3 (must equal head_dim: llama.cpp scales by 1/sqrt(head_dim)) */
    int swa_pattern;          /* gemma3: layer i is global iff (i + 1) % swa_pattern == 0 */
    double final_logit_softcap; /* gemma3: final_logit_softcapping, 0 when null */
} hf_config;
/* dir: HF model directory holding config.json. */
int hf_config_load(const char *dir, hf_config *cfg, slm_err *err) SLM_MUST_CHECK;

/* ---- Hugging Face tokenizer -> llama.cpp tokenizer metadata ----------- */
enum slm_tok_type { /* llama.cpp token types */
    SLM_TOK_NORMAL = 1, SLM_TOK_UNKNOWN = 2, SLM_TOK_CONTROL = 3,
    SLM_TOK_USER_DEFINED = 4, SLM_TOK_UNUSED = 5, SLM_TOK_BYTE = 6
};
typedef struct hf_tokenizer {
    char model[16];          /* tokenizer.ggml.model: "llama" or "gpt2" */
    char pre[32];            /* tokenizer.ggml.pre ("default", "gpt-2", "qwen2", ...) */
    uint32_t n_tokens;
    char **tokens;           /* n_tokens UTF-8 strings */
    float *scores;           /* n_tokens, or NULL (gpt2) */
    int32_t *types;          /* n_tokens, enum slm_tok_type */
    uint32_t n_merges;
    char **merges;           /* "a b" strings (gpt2), or NULL */
    int64_t bos_id, eos_id, unk_id, pad_id; /* -1 when absent */
    int64_t sep_id, cls_id, mask_id;        /* -1 when absent */
    int add_bos, add_eos, add_sep;           /* -1 when unspecified */
    int add_space_prefix;    /* -1 unspecified (llama.cpp's default), 0 Gemma 3's SentencePiece */
    char *chat_template;     /* tokenizer_config.json chat_template (or chat_template.jinja), or NULL */
} hf_tokenizer;
/* Reads tokenizer.json (+ tokenizer_config.json, special_tokens_map.json,
 * generation_config.json when present) from dir. cfg may be NULL. */
int hf_tokenizer_load(const char *dir, const hf_config *cfg, hf_tokenizer *tok, slm_err *err) SLM_MUST_CHECK;
void hf_tokenizer_free(hf_tokenizer *tok);
typedef struct gguf_writer gguf_writer; /* (also below; C11 allows the repeat) */
/* Writes the tokenizer.* keys llama.cpp's converter writes for tok (tokenizer.ggml.model, pre,
 * tokens, scores, token_type, merges, special ids, add_* flags, tokenizer.chat_template).
 * Returns 0, or -1 when the writer refused a key (out of memory). */
int hf_tokenizer_describe(const hf_tokenizer *tok, gguf_writer *w);

/* ---- GGUF v3 reader ------------------------------------------------------ */
enum gguf_vtype {
    GGUF_T_UINT8 = 0, GGUF_T_INT8 = 1, GGUF_T_UINT16 = 2, GGUF_T_INT16 = 3,
    GGUF_T_UINT32 = 4, GGUF_T_INT32 = 5, GGUF_T_FLOAT32 = 6, GGUF_T_BOOL = 7,
    GGUF_T_STRING = 8, GGUF_T_ARRAY = 9, GGUF_T_UINT64 = 10, GGUF_T_INT64 = 11,
    GGUF_T_FLOAT64 = 12, GGUF_T_COUNT = 13
};
#define GGUF_DEFAULT_ALIGNMENT 32
typedef struct gguf_str { uint64_t len; const char *ptr; } gguf_str; /* not NUL-terminated */
typedef struct gguf_kv {
    char *key;               /* NUL-terminated copy */
    uint32_t type;           /* enum gguf_vtype */
    uint32_t arr_type;       /* element type when type == GGUF_T_ARRAY */
    uint64_t arr_n;          /* element count when type == GGUF_T_ARRAY */
    const uint8_t *raw;      /* value bytes in the mapping (scalars, array data, string length prefix) */
    uint64_t raw_len;        /* bytes of the value in the file */
    const uint64_t *str_offs; /* reader-internal: offset in raw of each string of a string array */
} gguf_kv;
typedef struct gguf_tensor {
    char *name;              /* NUL-terminated copy */
    uint32_t type;           /* ggml type id */
    uint32_t n_dims;
    int64_t ne[4];           /* ggml order: ne[0] is the row length (fastest) */
    uint64_t n_elems;
    uint64_t offset;         /* relative to the data section */
    uint64_t nbytes;
    const void *data;        /* inside the mapping */
} gguf_tensor;
typedef struct gguf_file {
    char *path;
    uint32_t version;
    uint64_t n_kv, n_tensors;
    gguf_kv *kv;
    gguf_tensor *tensors;
    uint32_t alignment;
    uint64_t data_offset;    /* file offset of the data section */
    const uint8_t *map;
    uint64_t size;
} gguf_file;
int gguf_open(const char *path, gguf_file **out, slm_err *err) SLM_MUST_CHECK;
void gguf_close(gguf_file *f);
/* Bytes [off, off+len) of a tensor's data are read: drop their pages
 * (slm_map_release); nothing unless the data lies in f's file mapping. */
void gguf_release_range(const gguf_file *f, const gguf_tensor *t, uint64_t off, uint64_t len);
int64_t gguf_find_key(const gguf_file *f, const char *key);      /* -1 if absent */
int64_t gguf_find_tensor(const gguf_file *f, const char *name);  /* -1 if absent */
/* Typed scalar getters: return 0 and set *out when key exists with a
 * compatible type (any integer type that fits, float32/float64 for doubles). */
int gguf_get_int(const gguf_file *f, const char *key, int64_t *out);
int gguf_get_float(const gguf_file *f, const char *key, double *out);
int gguf_get_bool(const gguf_file *f, const char *key, int *out);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);
/* Element i of an array kv, or the value of a scalar kv as element 0
 * (strings: gguf_str; numbers and bools: as a double, NAN if not numeric). */
int gguf_arr_str(const gguf_kv *kv, uint64_t i, gguf_str *out);
/* For arrays of strings, element access is O(1) after the first call builds
 * an index; the reader validates every string length at open time. */
double gguf_arr_num(const gguf_kv *kv, uint64_t i);
const char *gguf_vtype_name(uint32_t t);

/* ---- GGUF v3 streaming writer ----------------------------------------- */
typedef struct gguf_writer gguf_writer;
gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w); /* aborts (unlinks the temp file) if not finished */
/* Metadata, kept in insertion order; setting an existing key replaces it. */
int gguf_set_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_set_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_set_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_set_f32(gguf_writer *w, const char *key, float v);
int gguf_set_bool(gguf_writer *w, const char *key, int v);
int gguf_set_str(gguf_writer *w, const char *key, const char *v);
int gguf_set_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n);
int gguf_set_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n);
int gguf_set_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
/* Copy a kv from a reader unchanged (used by quantize). */
int gguf_copy_kv(gguf_writer *w, const gguf_file *src, uint64_t kv_index);
int gguf_remove_key(gguf_writer *w, const char *key);
/* Tensor infos, in file order; ne in ggml order. Returns the tensor index or -1. */
int64_t gguf_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne);
uint64_t gguf_writer_tensor_nbytes(const gguf_writer *w, uint64_t i);
uint64_t gguf_writer_total_size(const gguf_writer *w); /* final file size */
/* Opens a temp file beside path, writes header + tensor infos + padding. */
int gguf_writer_begin(gguf_writer *w, const char *path, slm_err *err) SLM_MUST_CHECK;
/* Tensor data, in order, in any number of pieces; padding between tensors is
 * written automatically once a tensor's bytes are complete. */
int gguf_writer_write(gguf_writer *w, const void *data, size_t n, slm_err *err) SLM_MUST_CHECK;
/* Checks every tensor was written, fsyncs, renames onto path, fsyncs the dir. */
int gguf_writer_finish(gguf_writer *w, slm_err *err) SLM_MUST_CHECK;
void gguf_writer_abort(gguf_writer *w);

/* ---- atomic output file -------------------------------------------------- */
/* Write to "<dir>/.<name>.tmp.XXXXXX", fsync, rename, fsync dir. The writes are
 * buffered; writeback is started early (sync_file_range) so the final fsync
 * is short. */
typedef struct slm_afile slm_afile;
int slm_afile_open(const char *path, slm_afile **out, slm_err *err) SLM_MUST_CHECK;
int slm_afile_write(slm_afile *f, const void *data, size_t n, slm_err *err) SLM_MUST_CHECK;
uint64_t slm_afile_written(const slm_afile *f);
int slm_afile_commit(slm_afile *f, slm_err *err) SLM_MUST_CHECK; /* frees f */
void slm_afile_abort(slm_afile *f);                                /* unlinks, frees */
/* Remove stale temp files of earlier killed runs for this destination. */
void slm_afile_clean_stale(const char *path);

/* ---- HF -> GGUF conversion --------------------------------------------- */
/* One output tensor of the plan: where its rows come from and how. */
/* COPY, PERMUTE_QK (Llama's rotate-half rows -> interleaved pairs), TRANSPOSE
 * (GPT-2 Conv1D), ADD_ONE (Gemma 3 norms: llama.cpp stores 1 + w), COMPUTED
 * (no source tensor: the values are in `gen`, e.g. Llama 3's rope_freqs). */
enum slm_xform { SLM_X_COPY = 0, SLM_X_PERMUTE_QK = 1, SLM_X_TRANSPOSE = 2, SLM_X_ADD_ONE = 3, SLM_X_COMPUTED = 4 };
typedef struct slm_plan_tensor {
    char name[96];            /* GGUF name, e.g. "blk.0.attn_q.weight" */
    const st_tensor *src;     /* NULL for SLM_X_COMPUTED */
    const float *gen;         /* SLM_X_COMPUTED: n_elems values, owned by the plan */
    int xform;                /* enum slm_xform */
    int perm_heads;           /* heads for SLM_X_PERMUTE_QK */
    uint32_t out_type;        /* ggml type id chosen for the output */
    uint32_t n_dims;
    int64_t ne[4];            /* output dims, ggml order */
    uint64_t n_elems;
} slm_plan_tensor;
typedef struct slm_plan {
    hf_config cfg;
    hf_tokenizer tok;
    st_model *st;
    size_t n;
    slm_plan_tensor *t;
    char name[128];           /* general.name */
    uint32_t out_type;        /* requested type of the matrices */
    float *gen;               /* storage of the computed tensors' values */
} slm_plan;
/* Llama 3 rope scaling ("rope_type": "llama3"): the n = head_dim / 2
 * frequency divisors llama.cpp's converter stores as rope_freqs.weight,
 * computed in float32 as it computes them. */
void slm_llama3_rope_factors(const hf_config *c, float *out, int n);
/* Build the plan for an HF directory: every checkpoint tensor mapped to its
 * llama.cpp name (unknown or missing tensors refused by name); out_type is the
 * requested type for 2-D weights (1-D tensors and norms stay F32). */
int slm_plan_build(const char *dir, uint32_t out_type, slm_plan *p, slm_err *err) SLM_MUST_CHECK;
void slm_plan_free(slm_plan *p);
/* Fill a writer with the plan's metadata and tensor infos (llama.cpp keys). */
int slm_plan_describe(const slm_plan *p, gguf_writer *w, slm_err *err) SLM_MUST_CHECK;
/* general.file_type (llama_ftype) of a plan whose matrices are all out_type. */
uint32_t slm_plan_file_type(uint32_t out_type);
/* Encoder supplied by the caller (libquant): nrows rows of ncols floats -> dst
 * in `type`; returns bytes written. */
typedef size_t (*slm_encode_fn)(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t ncols,
                                void *ctx);
typedef void (*slm_progress_fn)(uint64_t done_bytes, uint64_t total_bytes, void *ctx);
/* Write the plan as a GGUF at path: metadata, then every tensor streamed
 * through a ring of chunk buffers that nthreads workers fill (read, permute,
 * encode) while the calling thread writes them in order. Peak memory is a few
 * chunks, not the model; source pages are dropped once written. */
int slm_plan_write(const slm_plan *p, const char *path, int nthreads, slm_encode_fn enc, void *enc_ctx,
                   slm_progress_fn progress, void *progress_ctx, slm_err *err) SLM_MUST_CHECK;
/* Rows [r0, r0+nr) of output tensor t (row length ne[0]) as float32, with
 * the permutation/transposition applied. */
void slm_plan_read_rows(const slm_plan_tensor *t, int64_t r0, int64_t nr, float *dst);

/* ---- imatrix (imatrix.c): llama.cpp's importance-matrix files ------------- */
/* One weight matrix's statistics: sum2[m * n + i] = sum over counted tokens of x_i^2
 * for matrix m (experts; n_mat = 1 for dense), counts[m] = tokens counted. The
 * importance of column i is sum2 / counts (slm_imatrix_mean). */
typedef struct slm_imatrix_entry {
    char *name;              /* weight name, e.g. "blk.0.attn_q.weight" */
    int64_t n, n_mat;
    float *sum2;             /* n * n_mat */
    float *counts;           /* n_mat */
} slm_imatrix_entry;
typedef struct slm_imatrix {
    slm_imatrix_entry *e;    /* sorted by name */
    size_t n;
    char **datasets;         /* imatrix.datasets */
    size_t n_datasets;
    uint32_t chunk_count, chunk_size;
    int legacy;              /* read from a legacy .dat file */
} slm_imatrix;
/* Read a GGUF imatrix (<name>.in_sum2 + <name>.counts, F32) or a legacy .dat;
 * every length is checked against the file size. */
int slm_imatrix_read(const char *path, slm_imatrix *im, slm_err *err) SLM_MUST_CHECK;
/* Write llama-imatrix's GGUF layout (general.type = "imatrix", imatrix.datasets,
 * imatrix.chunk_count, imatrix.chunk_size; tensors sorted by name). Atomic. */
int slm_imatrix_write(const char *path, const slm_imatrix *im, slm_err *err) SLM_MUST_CHECK;
void slm_imatrix_free(slm_imatrix *im);
const slm_imatrix_entry *slm_imatrix_find(const slm_imatrix *im, const char *name); /* NULL if absent */
/* out[m * n + i] = sum2 / counts (1 where a count is 0, as llama-quantize). Returns 0 if no count > 0. */
int slm_imatrix_mean(const slm_imatrix_entry *e, float *out);

#endif /* SLM_FORMATS_H */
