/* formats/hf_config.c — Hugging Face config.json -> hf_config.
 *
 * Supported architectures: LlamaForCausalLM and MistralForCausalLM (gguf
 * "llama"), Qwen2ForCausalLM ("qwen2"), GPT2LMHeadModel ("gpt2"). Key names
 * and defaults follow transformers' LlamaConfig / MistralConfig /
 * Qwen2Config / GPT2Config. Every value is type-checked and bounded; each
 * problem is reported as one line naming config.json and the key. */
#include "formats.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CFG_FILE_CAP (16u * 1024u * 1024u)
#define CFG_DIM_CAP (1 << 20)     /* widths, heads, FFN size */
#define CFG_BIG_CAP (1 << 24)     /* vocab, context length */
#define CFG_LAYER_CAP 1024

typedef struct cfg_ctx {
    const char *file; /* path of config.json, for messages */
    const cJSON *root;
    slm_err *err;
} cfg_ctx;

static const char *json_kind(const cJSON *j)
{
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsBool(j)) return "boolean";
    if (cJSON_IsNumber(j)) return "number";
    if (cJSON_IsString(j)) return "string";
    if (cJSON_IsArray(j)) return "array";
    if (cJSON_IsObject(j)) return "object";
    return "invalid";
}

static const cJSON *get(const cfg_ctx *c, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(c->root, key);
}

/* Integer key in [lo, hi]. Absent or null: *out = deflt, or an error when
 * required. */
static int get_int(const cfg_ctx *c, const char *key, int required, int deflt, long lo, long hi, int *out)
{
    const cJSON *j = get(c, key);
    if (!j || cJSON_IsNull(j)) {
        if (required)
            return slm_err_set(c->err, SLM_EINPUT, "%s: required key '%s' is missing", c->file, key);
        *out = deflt;
        return SLM_OK;
    }
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble))
        return slm_err_set(c->err, SLM_EINPUT, "%s: key '%s' must be an integer (found %s)", c->file, key,
                           cJSON_IsNumber(j) ? "a fraction" : json_kind(j));
    double d = j->valuedouble;
    if (d < (double)lo || d > (double)hi)
        return slm_err_set(c->err, SLM_EINPUT, "%s: key '%s' = %.0f is out of range [%ld, %ld]", c->file, key, d,
                           lo, hi);
    *out = (int)d;
    return SLM_OK;
}

/* Positive float key below hi; absent or null gives deflt. */
static int get_double(const cfg_ctx *c, const char *key, double deflt, double hi, double *out)
{
    const cJSON *j = get(c, key);
    if (!j || cJSON_IsNull(j)) {
        *out = deflt;
        return SLM_OK;
    }
    if (!cJSON_IsNumber(j))
        return slm_err_set(c->err, SLM_EINPUT, "%s: key '%s' must be a number (found %s)", c->file, key,
                           json_kind(j));
    double d = j->valuedouble;
    if (!(d > 0.0) || !(d < hi))
        return slm_err_set(c->err, SLM_EINPUT, "%s: key '%s' = %g is out of range (0, %g)", c->file, key, d, hi);
    *out = d;
    return SLM_OK;
}

static int get_bool(const cfg_ctx *c, const char *key, int deflt, int *out)
{
    const cJSON *j = get(c, key);
    if (!j || cJSON_IsNull(j)) {
        *out = deflt;
        return SLM_OK;
    }
    if (!cJSON_IsBool(j))
        return slm_err_set(c->err, SLM_EINPUT, "%s: key '%s' must be true or false (found %s)", c->file, key,
                           json_kind(j));
    *out = cJSON_IsTrue(j) ? 1 : 0;
    return SLM_OK;
}

/* Token id: integer, or an array of integers (first one used); -1 if absent. */
static int get_token_id(const cfg_ctx *c, const char *key, int n_vocab, int *out)
{
    const cJSON *j = get(c, key);
    *out = -1;
    if (!j || cJSON_IsNull(j))
        return SLM_OK;
    if (cJSON_IsArray(j)) {
        j = cJSON_GetArrayItem(j, 0);
        if (!j)
            return SLM_OK;
    }
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble))
        return slm_err_set(c->err, SLM_EINPUT, "%s: key '%s' must be an integer token id (found %s)", c->file, key,
                           json_kind(j));
    if (j->valuedouble < 0)
        return SLM_OK; /* some configs spell "none" as -1 */
    if (j->valuedouble >= (double)n_vocab)
        return slm_err_set(c->err, SLM_EINPUT, "%s: key '%s' = %.0f is not a token id below vocab_size %d",
                           c->file, key, j->valuedouble, n_vocab);
    *out = (int)j->valuedouble;
    return SLM_OK;
}

#define TRY(x) do { int rc_ = (x); if (rc_) return rc_; } while (0)

static int load_llama_like(const cfg_ctx *c, hf_config *cfg)
{
    TRY(get_int(c, "hidden_size", 1, 0, 1, CFG_DIM_CAP - 1, &cfg->n_embd));
    TRY(get_int(c, "num_hidden_layers", 1, 0, 1, CFG_LAYER_CAP, &cfg->n_layer));
    TRY(get_int(c, "num_attention_heads", 1, 0, 1, CFG_DIM_CAP - 1, &cfg->n_head));
    TRY(get_int(c, "num_key_value_heads", 0, cfg->n_head, 1, CFG_DIM_CAP - 1, &cfg->n_head_kv));
    TRY(get_int(c, "intermediate_size", 1, 0, 1, CFG_DIM_CAP - 1, &cfg->n_ff));
    TRY(get_int(c, "max_position_embeddings", 1, 0, 1, CFG_BIG_CAP, &cfg->n_ctx));
    TRY(get_int(c, "vocab_size", 1, 0, 1, CFG_BIG_CAP, &cfg->n_vocab));
    const cJSON *hd = get(c, "head_dim");
    if (!hd || cJSON_IsNull(hd)) {
        if (cfg->n_embd % cfg->n_head != 0)
            return slm_err_set(c->err, SLM_EINPUT,
                               "%s: key 'num_attention_heads' (%d) does not divide 'hidden_size' (%d)", c->file,
                               cfg->n_head, cfg->n_embd);
        cfg->head_dim = cfg->n_embd / cfg->n_head;
    } else {
        TRY(get_int(c, "head_dim", 1, 0, 1, CFG_DIM_CAP - 1, &cfg->head_dim));
        if ((long)cfg->head_dim * cfg->n_head >= CFG_DIM_CAP)
            return slm_err_set(c->err, SLM_EINPUT, "%s: key 'head_dim' (%d) x 'num_attention_heads' (%d) is too large",
                               c->file, cfg->head_dim, cfg->n_head);
    }
    if (cfg->n_head_kv > cfg->n_head || cfg->n_head % cfg->n_head_kv != 0)
        return slm_err_set(c->err, SLM_EINPUT,
                           "%s: key 'num_key_value_heads' (%d) does not divide 'num_attention_heads' (%d)", c->file,
                           cfg->n_head_kv, cfg->n_head);
    TRY(get_double(c, "rms_norm_eps", 1e-6, 1.0, &cfg->norm_eps));
    TRY(get_double(c, "rope_theta", 0.0, 1e12, &cfg->rope_theta));
    /* LlamaConfig, MistralConfig and Qwen2Config all default to untied. */
    TRY(get_bool(c, "tie_word_embeddings", 0, &cfg->tie_embeddings));
    if (cfg->arch == SLM_ARCH_QWEN2) {
        cfg->attn_bias = 1;
        int use_sw = 0;
        TRY(get_bool(c, "use_sliding_window", 0, &use_sw));
        cfg->sliding_window = 0;
        if (use_sw)
            TRY(get_int(c, "sliding_window", 0, 0, 0, CFG_BIG_CAP, &cfg->sliding_window));
    } else {
        TRY(get_bool(c, "attention_bias", 0, &cfg->attn_bias));
        cfg->sliding_window = 0;
        if (strcmp(cfg->hf_arch, "MistralForCausalLM") == 0)
            TRY(get_int(c, "sliding_window", 0, 0, 0, CFG_BIG_CAP, &cfg->sliding_window));
    }
    return SLM_OK;
}

static int load_gpt2(const cfg_ctx *c, hf_config *cfg)
{
    TRY(get_int(c, "n_embd", 1, 0, 1, CFG_DIM_CAP - 1, &cfg->n_embd));
    TRY(get_int(c, "n_layer", 1, 0, 1, CFG_LAYER_CAP, &cfg->n_layer));
    TRY(get_int(c, "n_head", 1, 0, 1, CFG_DIM_CAP - 1, &cfg->n_head));
    if (cfg->n_embd % cfg->n_head != 0)
        return slm_err_set(c->err, SLM_EINPUT, "%s: key 'n_head' (%d) does not divide 'n_embd' (%d)", c->file,
                           cfg->n_head, cfg->n_embd);
    cfg->n_head_kv = cfg->n_head;
    cfg->head_dim = cfg->n_embd / cfg->n_head;
    int def_ff = cfg->n_embd * 4;
    TRY(get_int(c, "n_inner", 0, def_ff, 1, CFG_DIM_CAP - 1, &cfg->n_ff));
    const cJSON *np = get(c, "n_positions");
    if (np && !cJSON_IsNull(np))
        TRY(get_int(c, "n_positions", 1, 0, 1, CFG_BIG_CAP, &cfg->n_ctx));
    else
        TRY(get_int(c, "n_ctx", 1, 0, 1, CFG_BIG_CAP, &cfg->n_ctx));
    TRY(get_int(c, "vocab_size", 1, 0, 1, CFG_BIG_CAP, &cfg->n_vocab));
    TRY(get_double(c, "layer_norm_epsilon", 1e-5, 1.0, &cfg->norm_eps));
    cfg->rope_theta = 0.0;
    /* GPT-2 ties lm_head to wte unless the config says otherwise. */
    TRY(get_bool(c, "tie_word_embeddings", 1, &cfg->tie_embeddings));
    cfg->attn_bias = 1; /* c_attn always has a bias */
    cfg->sliding_window = 0;
    return SLM_OK;
}

static const struct {
    const char *hf;
    int arch;
    const char *gguf;
    const char *model_type;
} k_archs[] = {
    { "LlamaForCausalLM", SLM_ARCH_LLAMA, "llama", "llama" },
    { "MistralForCausalLM", SLM_ARCH_LLAMA, "llama", "mistral" },
    { "Qwen2ForCausalLM", SLM_ARCH_QWEN2, "qwen2", "qwen2" },
    { "GPT2LMHeadModel", SLM_ARCH_GPT2, "gpt2", "gpt2" },
};
#define N_ARCHS (sizeof k_archs / sizeof k_archs[0])

static int read_file_text(const char *path, char **out, size_t *len, slm_err *err)
{
    /* O_NONBLOCK + S_ISREG: a FIFO, device or directory is refused, never waited on */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return slm_err_set(err, SLM_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return slm_err_set(err, SLM_EIO, "%s: not a regular file", path);
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= CFG_FILE_CAP) {
                free(buf);
                fclose(f);
                return slm_err_set(err, SLM_EINPUT, "%s: larger than the %u-byte cap", path, CFG_FILE_CAP);
            }
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return slm_err_set(err, SLM_EINTERNAL, "out of memory");
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return slm_err_set(err, SLM_EIO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return SLM_OK;
}

int hf_config_load(const char *dir, hf_config *cfg, slm_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->bos_id = cfg->eos_id = -1;
    if (!dir || !*dir)
        return slm_err_set(err, SLM_EUSAGE, "hf_config_load: empty directory path");
    size_t dl = strlen(dir);
    char *path = malloc(dl + sizeof "/config.json");
    if (!path)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    memcpy(path, dir, dl);
    strcpy(path + dl, dl && dir[dl - 1] == '/' ? "config.json" : "/config.json");

    char *text = NULL;
    size_t len = 0;
    int rc = read_file_text(path, &text, &len, err);
    if (rc) {
        free(path);
        return rc;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t at = (end && end >= text && end <= text + len) ? (size_t)(end - text) : 0;
        rc = slm_err_set(err, SLM_EINPUT, "%s: malformed JSON near byte %zu", path, at);
        goto out;
    }
    for (const char *p = end; p < text + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            rc = slm_err_set(err, SLM_EINPUT, "%s: malformed JSON near byte %zu (text after the object)", path,
                             (size_t)(p - text));
            goto out;
        }
    }
    if (!cJSON_IsObject(root)) {
        rc = slm_err_set(err, SLM_EINPUT, "%s: top level is not a JSON object", path);
        goto out;
    }
    /* Python's json keeps the last of duplicate keys, cJSON the first:
     * refuse them rather than read a different model than transformers. */
    if (cJSON_GetArraySize(root) > 4096) {
        rc = slm_err_set(err, SLM_EINPUT, "%s: more than 4096 top-level keys", path);
        goto out;
    }
    for (const cJSON *a = root->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (strcmp(a->string, b->string) == 0) {
                rc = slm_err_set(err, SLM_EINPUT, "%s: key '%.80s' appears twice", path, a->string);
                goto out;
            }
    cfg_ctx c = { path, root, err };

    /* architecture: "architectures"[0], else "model_type" */
    const cJSON *archs = get(&c, "architectures");
    const char *name = NULL;
    if (archs && !cJSON_IsNull(archs)) {
        const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
        if (!cJSON_IsString(a0)) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: key 'architectures' must be a non-empty array of strings", path);
            goto out;
        }
        name = a0->valuestring;
        for (size_t i = 0; i < N_ARCHS; i++)
            if (strcmp(name, k_archs[i].hf) == 0) {
                cfg->arch = k_archs[i].arch;
                cfg->gguf_arch = k_archs[i].gguf;
                snprintf(cfg->hf_arch, sizeof cfg->hf_arch, "%s", k_archs[i].hf);
            }
    } else {
        const cJSON *mt = get(&c, "model_type");
        if (!cJSON_IsString(mt)) {
            rc = slm_err_set(err, SLM_EINPUT, "%s: required key 'architectures' is missing", path);
            goto out;
        }
        name = mt->valuestring;
        for (size_t i = 0; i < N_ARCHS; i++)
            if (strcmp(name, k_archs[i].model_type) == 0) {
                cfg->arch = k_archs[i].arch;
                cfg->gguf_arch = k_archs[i].gguf;
                snprintf(cfg->hf_arch, sizeof cfg->hf_arch, "%s", k_archs[i].hf);
            }
    }
    if (!cfg->arch) {
        rc = slm_err_set(err, SLM_EINPUT,
                         "%s: architecture '%.80s' is not supported (supported: LlamaForCausalLM, "
                         "MistralForCausalLM, Qwen2ForCausalLM, GPT2LMHeadModel)",
                         path, name);
        goto out;
    }

    rc = cfg->arch == SLM_ARCH_GPT2 ? load_gpt2(&c, cfg) : load_llama_like(&c, cfg);
    if (rc)
        goto out;
    rc = get_token_id(&c, "bos_token_id", cfg->n_vocab, &cfg->bos_id);
    if (!rc)
        rc = get_token_id(&c, "eos_token_id", cfg->n_vocab, &cfg->eos_id);
out:
    cJSON_Delete(root);
    free(text);
    free(path);
    if (rc) { /* no half-filled config on failure */
        memset(cfg, 0, sizeof *cfg);
        cfg->bos_id = cfg->eos_id = -1;
    }
    return rc;
}
