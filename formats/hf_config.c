/* formats/hf_config.c — Hugging Face config.json -> hf_config.
 *
 * Supported architectures: LlamaForCausalLM and MistralForCausalLM (gguf
 * "llama"), Qwen2ForCausalLM ("qwen2"), Qwen3ForCausalLM ("qwen3"),
 * Gemma3ForCausalLM (text-only, "gemma3"), Phi3ForCausalLM ("phi3"),
 * GPT2LMHeadModel ("gpt2"). Key names and defaults follow transformers'
 * configuration classes of those families. A key that changes the math and is
 * not carried into the GGUF (an unknown rope_scaling type, mlp_bias,
 * partial_rotary_factor != 1, ...) is refused by name (docs/formats.md). Every value is type-checked and bounded; each
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

static int get_str(const cfg_ctx *c, const cJSON *obj, const char *key, const char **out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!j || cJSON_IsNull(j))
        return SLM_OK;
    if (!cJSON_IsString(j))
        return slm_err_set(c->err, SLM_EINPUT, "%s: key '%s' must be a string (found %s)", c->file, key,
                           json_kind(j));
    *out = j->valuestring;
    return SLM_OK;
}

/* A key whose value would change the math in a way slmkit does not carry:
 * refused by name, never ignored. */
static int refuse(const cfg_ctx *c, const char *key, const char *why)
{
    return slm_err_set(c->err, SLM_EINPUT, "%s: key '%s' %s (not supported; refusing rather than ignoring it)",
                       c->file, key, why);
}

static int is_true(const cfg_ctx *c, const char *key)
{
    return cJSON_IsTrue(get(c, key));
}

/* The activation key must name the function the family's math uses. */
static int check_act(const cfg_ctx *c, const char *key, const char *want, const char *alt)
{
    const char *a = NULL;
    TRY(get_str(c, c->root, key, &a));
    if (a && strcmp(a, want) && (!alt || strcmp(a, alt))) {
        char why[160];
        snprintf(why, sizeof why, "= '%.40s' (this architecture is converted with '%s' only)", a, want);
        return refuse(c, key, why);
    }
    return SLM_OK;
}

/* Number inside a rope_scaling object (absent: deflt). */
static int rope_num(const cfg_ctx *c, const cJSON *o, const char *key, double deflt, double *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) {
        *out = deflt;
        return SLM_OK;
    }
    if (!cJSON_IsNumber(j) || !(j->valuedouble > 0) || !(j->valuedouble < 1e12))
        return slm_err_set(c->err, SLM_EINPUT, "%s: key 'rope_scaling.%s' must be a positive number", c->file, key);
    *out = j->valuedouble;
    return SLM_OK;
}

/* rope_scaling (or transformers 5's rope_parameters): null, rope_type
 * "default", or (allow_llama3) type "llama3". Every other type is refused by
 * name. */
static int load_rope_scaling(const cfg_ctx *c, hf_config *cfg, int allow_llama3)
{
    const char *key = "rope_scaling";
    const cJSON *rs = get(c, key);
    if (!rs || cJSON_IsNull(rs)) {
        key = "rope_parameters";
        rs = get(c, key);
    }
    cfg->rope_scaling = SLM_ROPE_SCALING_NONE;
    if (!rs || cJSON_IsNull(rs))
        return SLM_OK;
    if (!cJSON_IsObject(rs))
        return slm_err_set(c->err, SLM_EINPUT, "%s: key '%s' must be an object or null (found %s)", c->file, key,
                           json_kind(rs));
    const cJSON *full = cJSON_GetObjectItemCaseSensitive(rs, "full_attention");
    const cJSON *slid = cJSON_GetObjectItemCaseSensitive(rs, "sliding_attention");
    if (full || slid) {
        /* transformers 5's per-layer-type parameters (Gemma 3): each must be plain rope */
        if (cfg->arch != SLM_ARCH_GEMMA3)
            return refuse(c, key, "has per-attention-type rope parameters");
        const cJSON *parts[2] = {full, slid};
        for (int i = 0; i < 2; i++) {
            if (!parts[i])
                continue;
            const char *type = NULL;
            if (!cJSON_IsObject(parts[i]))
                return slm_err_set(c->err, SLM_EINPUT, "%s: key '%s.%s' must be an object", c->file, key,
                                   i ? "sliding_attention" : "full_attention");
            TRY(get_str(c, parts[i], "rope_type", &type));
            if (type && strcmp(type, "default")) {
                char why[160];
                snprintf(why, sizeof why, "has rope type '%.40s' for %s layers (supported: default)", type,
                         i ? "sliding" : "full");
                return refuse(c, key, why);
            }
            double th;
            TRY(rope_num(c, parts[i], "rope_theta", 0.0, &th));
            if (th > 0)
                *(i ? &cfg->rope_local_theta : &cfg->rope_theta) = th;
        }
        return SLM_OK;
    }
    const char *type = NULL;
    TRY(get_str(c, rs, "rope_type", &type));
    if (!type)
        TRY(get_str(c, rs, "type", &type));
    if (!type || !strcmp(type, "default")) {
        double th;
        TRY(rope_num(c, rs, "rope_theta", 0.0, &th));
        if (th > 0)
            cfg->rope_theta = th;
        if (cJSON_GetObjectItemCaseSensitive(rs, "factor"))
            return refuse(c, key, "has a 'factor' without a rope type");
        return SLM_OK;
    }
    if (allow_llama3 && !strcmp(type, "llama3")) {
        cfg->rope_scaling = SLM_ROPE_SCALING_LLAMA3;
        double orig;
        TRY(rope_num(c, rs, "factor", 8.0, &cfg->rope_factor));
        TRY(rope_num(c, rs, "low_freq_factor", 1.0, &cfg->rope_low_freq_factor));
        TRY(rope_num(c, rs, "high_freq_factor", 4.0, &cfg->rope_high_freq_factor));
        TRY(rope_num(c, rs, "original_max_position_embeddings", 8192.0, &orig));
        if (orig != floor(orig) || orig > CFG_BIG_CAP)
            return slm_err_set(c->err, SLM_EINPUT,
                               "%s: key 'rope_scaling.original_max_position_embeddings' must be an integer", c->file);
        if (!(cfg->rope_high_freq_factor > cfg->rope_low_freq_factor))
            return slm_err_set(c->err, SLM_EINPUT,
                               "%s: key 'rope_scaling.high_freq_factor' must exceed 'low_freq_factor'", c->file);
        cfg->rope_orig_ctx = (int)orig;
        double th;
        TRY(rope_num(c, rs, "rope_theta", 0.0, &th));
        if (th > 0)
            cfg->rope_theta = th;
        return SLM_OK;
    }
    char why[160];
    snprintf(why, sizeof why, "has rope type '%.40s' (supported: %s)", type,
             allow_llama3 ? "llama3, default" : "none for this architecture");
    return refuse(c, key, why);
}

/* Gemma 3's sliding-window layer pattern: from layer_types when present,
 * else sliding_window_pattern (or _sliding_window_pattern), default 6. Only
 * periodic patterns (layer i global iff (i + 1) % p == 0) exist in llama.cpp. */
static int load_swa_pattern(const cfg_ctx *c, hf_config *cfg)
{
    int p = 0;
    const char *pk = get(c, "sliding_window_pattern") ? "sliding_window_pattern" : "_sliding_window_pattern";
    TRY(get_int(c, pk, 0, 0, 1, CFG_LAYER_CAP + 1, &p));
    const cJSON *lt = get(c, "layer_types");
    if (lt && !cJSON_IsNull(lt)) {
        if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != cfg->n_layer)
            return slm_err_set(c->err, SLM_EINPUT, "%s: key 'layer_types' must be an array of %d strings", c->file,
                               cfg->n_layer);
        int first_full = -1, i = 0;
        for (const cJSON *e = lt->child; e; e = e->next, i++) {
            if (!cJSON_IsString(e) || (strcmp(e->valuestring, "sliding_attention") &&
                                       strcmp(e->valuestring, "full_attention")))
                return slm_err_set(c->err, SLM_EINPUT,
                                   "%s: key 'layer_types'[%d] must be \"sliding_attention\" or \"full_attention\"",
                                   c->file, i);
            if (first_full < 0 && !strcmp(e->valuestring, "full_attention"))
                first_full = i;
        }
        int lp = first_full >= 0 ? first_full + 1 : (p ? p : 6);
        if (first_full < 0 && lp <= cfg->n_layer)
            lp = cfg->n_layer + 1;
        if (p && first_full >= 0 && p != lp)
            return refuse(c, "layer_types", "disagrees with 'sliding_window_pattern'");
        i = 0;
        for (const cJSON *e = lt->child; e; e = e->next, i++) {
            int full = (i + 1) % lp == 0;
            if (full != !strcmp(e->valuestring, "full_attention"))
                return refuse(c, "layer_types", "is not a periodic pattern of local layers closed by one global layer");
        }
        p = lp;
    }
    cfg->swa_pattern = p ? p : 6;
    return SLM_OK;
}

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
    if ((!hd || cJSON_IsNull(hd)) && cfg->arch == SLM_ARCH_GEMMA3) {
        cfg->head_dim = 256; /* Gemma3TextConfig's default */
    } else if (!hd || cJSON_IsNull(hd)) {
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
        cfg->has_head_dim = 1;
    }
    if (cfg->n_head_kv > cfg->n_head || cfg->n_head % cfg->n_head_kv != 0)
        return slm_err_set(c->err, SLM_EINPUT,
                           "%s: key 'num_key_value_heads' (%d) does not divide 'num_attention_heads' (%d)", c->file,
                           cfg->n_head_kv, cfg->n_head);
    cfg->rope_dim = cfg->head_dim;
    TRY(get_double(c, "rms_norm_eps", 1e-6, 1.0, &cfg->norm_eps));
    TRY(get_double(c, "rope_theta", 0.0, 1e12, &cfg->rope_theta));
    /* LlamaConfig, MistralConfig, Qwen2/3Config and Phi3Config default to untied; Gemma3 ties. */
    TRY(get_bool(c, "tie_word_embeddings", cfg->arch == SLM_ARCH_GEMMA3, &cfg->tie_embeddings));
    /* keys that change the math and that no supported family carries */
    if (is_true(c, "mlp_bias"))
        return refuse(c, "mlp_bias", "is true");
    const cJSON *prf = get(c, "partial_rotary_factor");
    if (prf && !cJSON_IsNull(prf) && !(cJSON_IsNumber(prf) && prf->valuedouble == 1.0))
        return refuse(c, "partial_rotary_factor", "is not 1");
    if (cfg->arch == SLM_ARCH_GEMMA3) {
        TRY(check_act(c, "hidden_activation", "gelu_pytorch_tanh", NULL));
        TRY(check_act(c, "hidden_act", "gelu_pytorch_tanh", NULL));
    } else {
        TRY(check_act(c, "hidden_act", "silu", NULL));
    }
    const cJSON *alc = get(c, "attn_logit_softcapping");
    if (alc && !cJSON_IsNull(alc))
        return refuse(c, "attn_logit_softcapping", "is set");
    const cJSON *flc = get(c, "final_logit_softcapping");
    if (flc && !cJSON_IsNull(flc) && cfg->arch != SLM_ARCH_GEMMA3)
        return refuse(c, "final_logit_softcapping", "is set");
    if (is_true(c, "use_bidirectional_attention"))
        return refuse(c, "use_bidirectional_attention", "is true");

    switch (cfg->arch) {
    case SLM_ARCH_QWEN2:
    case SLM_ARCH_QWEN3: {
        cfg->attn_bias = cfg->arch == SLM_ARCH_QWEN2;
        if (cfg->arch == SLM_ARCH_QWEN3 && is_true(c, "attention_bias"))
            return refuse(c, "attention_bias", "is true");
        int use_sw = 0;
        TRY(get_bool(c, "use_sliding_window", 0, &use_sw));
        if (use_sw) /* llama.cpp's qwen2/qwen3 have no sliding window */
            return refuse(c, "use_sliding_window", "is true");
        cfg->sliding_window = 0;
        TRY(load_rope_scaling(c, cfg, 0));
        break;
    }
    case SLM_ARCH_GEMMA3: {
        if (is_true(c, "attention_bias"))
            return refuse(c, "attention_bias", "is true");
        if (!cfg->rope_theta)
            cfg->rope_theta = 1000000.0;
        TRY(get_double(c, "rope_local_base_freq", 10000.0, 1e12, &cfg->rope_local_theta));
        TRY(get_double(c, "query_pre_attn_scalar", (double)cfg->head_dim, 1e12, &cfg->query_pre_attn_scalar));
        if (cfg->query_pre_attn_scalar != (double)cfg->head_dim)
            return refuse(c, "query_pre_attn_scalar", "differs from head_dim (llama.cpp scales by 1/sqrt(head_dim))");
        if (flc && !cJSON_IsNull(flc))
            TRY(get_double(c, "final_logit_softcapping", 0.0, 1e6, &cfg->final_logit_softcap));
        TRY(get_int(c, "sliding_window", 1, 0, 1, CFG_BIG_CAP, &cfg->sliding_window));
        TRY(load_swa_pattern(c, cfg));
        TRY(load_rope_scaling(c, cfg, 0));
        break;
    }
    case SLM_ARCH_PHI3: {
        if (is_true(c, "attention_bias"))
            return refuse(c, "attention_bias", "is true");
        const cJSON *rs = get(c, "rope_scaling");
        if (rs && !cJSON_IsNull(rs)) {
            const char *type = NULL;
            if (cJSON_IsObject(rs)) {
                TRY(get_str(c, rs, "type", &type));
                if (!type)
                    TRY(get_str(c, rs, "rope_type", &type));
            }
            char why[160];
            snprintf(why, sizeof why, "has rope type '%.40s' (Phi-3 long-context rope factors are not carried)",
                     type ? type : "?");
            return refuse(c, "rope_scaling", why);
        }
        if (!cfg->rope_theta)
            cfg->rope_theta = 10000.0;
        TRY(get_int(c, "original_max_position_embeddings", 1, 0, 1, CFG_BIG_CAP, &cfg->rope_orig_ctx));
        TRY(get_int(c, "sliding_window", 0, 0, 0, CFG_BIG_CAP, &cfg->sliding_window));
        if (cfg->has_head_dim && cfg->head_dim * cfg->n_head != cfg->n_embd)
            return refuse(c, "head_dim", "times the heads differs from hidden_size (Phi-3's fused projection)");
        break;
    }
    default: /* llama, mistral */
        TRY(get_bool(c, "attention_bias", 0, &cfg->attn_bias));
        cfg->sliding_window = 0;
        if (strcmp(cfg->hf_arch, "MistralForCausalLM") == 0)
            TRY(get_int(c, "sliding_window", 0, 0, 0, CFG_BIG_CAP, &cfg->sliding_window));
        TRY(load_rope_scaling(c, cfg, strcmp(cfg->hf_arch, "LlamaForCausalLM") == 0));
        break;
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
    { "Qwen3ForCausalLM", SLM_ARCH_QWEN3, "qwen3", "qwen3" },
    { "Gemma3ForCausalLM", SLM_ARCH_GEMMA3, "gemma3", "gemma3_text" },
    { "Phi3ForCausalLM", SLM_ARCH_PHI3, "phi3", "phi3" },
};
#define N_ARCHS (sizeof k_archs / sizeof k_archs[0])

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
    int rc = slm_read_text_file(path, CFG_FILE_CAP, &text, &len, err);
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
                         "MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma3ForCausalLM, "
                         "Phi3ForCausalLM, GPT2LMHeadModel)",
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
