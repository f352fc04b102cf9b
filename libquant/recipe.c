/* libquant/recipe.c — quantization recipes (mixes) with llama.cpp's tensor-type rules.
 *
 * The rules follow llama.cpp's llama_tensor_get_type (src/llama-quant.cpp) for the
 * recipes slmkit offers, so a Q4_K_M file from `slm quantize` has the same type per
 * tensor, hence the same size, as llama-quantize's:
 *  - only tensors named "*weight" with 2+ dims are quantized; norms, 1-D tensors,
 *    ffn_gate_inp, position embeddings stay as they are;
 *  - output.weight (and token_embd.weight when the model has no output.weight, tied
 *    embeddings) gets Q6_K unless the base type is Q8_0 (Q8_0 also when the row length
 *    does not fit the base block);
 *  - attn_v and ffn_down get more bits by position (use_more_bits: first and last
 *    eighth of the layers and every third in between), attn_output for Q2_K/Q3_K_M/L;
 *  - when the row length is not a multiple of the chosen type's block, a smaller-block
 *    type: Q2_K/Q3_K/TQ1_0/TQ2_0 -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0,
 *    IQ4_XS / IQ1_S / IQ1_M -> IQ4_NL, and F16 if even 32 does not divide the row;
 *  - IQ1_S / IQ1_M: output Q5_K, token_embd Q2_K, attn_v Q4_K when n_gqa >= 4 else Q2_K,
 *    ffn_down of the first eighth of the layers Q2_K, attn_output IQ2_XXS (once built);
 *  - IQ4_NL / IQ4_XS: attn_v Q5_K when n_gqa >= 4, ffn_down of the first eighth of the
 *    layers Q5_K without an imatrix; TQ1_0 / TQ2_0: token_embd Q4_K; with an imatrix,
 *    Q4_0 / Q5_0 give the first eighth's ffn_down Q4_1 / Q5_1 (llama.cpp's guard);
 *  - IQ3_XXS / IQ3_XS / IQ3_S / IQ3_M (docs/iquants.md): output Q5_K and token_embd IQ3_S
 *    for IQ3_XXS; attn_v Q4_K (IQ3_M always, the others with n_gqa >= 4; IQ3_XXS without
 *    an imatrix IQ3_S); attn_q / attn_k IQ3_XXS (IQ3_XS) or IQ2_S (IQ3_XXS); attn_output
 *    IQ3_S (IQ3_XXS) / Q4_K (IQ3_M); ffn_down Q4_K / Q3_K for IQ3_XXS without an imatrix,
 *    Q4_K in the first eighth for IQ3_M; IQ3_XS's middle ffn_gate / ffn_up IQ3_XXS;
 *    IQ3_XXS / IQ3_S rows not a multiple of 256 fall back to IQ4_NL.
 * The same rules cover the newer families with no architecture-specific case: Phi-3's
 * fused attn_qkv counts as attn_v, its fused ffn_up (gate+up) as ffn_up, the tied
 * token_embd of Llama 3.2 / Qwen / Gemma 3 is the output, Gemma 3's post_attention_norm /
 * post_ffw_norm and the q/k norms stay F32 (tests/test_quantize.c, suite quantize_family,
 * compares every tensor's type with llama-quantize for Q4_K_M, Q6_K, Q8_0, Q4_0).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "qimpl.h"
#include "iquants.h"
#include "iq1.h"

typedef struct { const char *name; int ftype; uint32_t base; } recipe_row;

static const recipe_row g_recipes[] = {
    { "Q4_0", SLM_FTYPE_Q4_0, SLM_T_Q4_0 },     { "Q4_1", SLM_FTYPE_Q4_1, SLM_T_Q4_1 },
    { "Q5_0", SLM_FTYPE_Q5_0, SLM_T_Q5_0 },     { "Q5_1", SLM_FTYPE_Q5_1, SLM_T_Q5_1 },
    { "Q2_K", SLM_FTYPE_Q2_K, SLM_T_Q2_K },     { "Q3_K_S", SLM_FTYPE_Q3_K_S, SLM_T_Q3_K },
    { "Q3_K_M", SLM_FTYPE_Q3_K_M, SLM_T_Q3_K }, { "Q3_K_L", SLM_FTYPE_Q3_K_L, SLM_T_Q3_K },
    { "Q4_K_S", SLM_FTYPE_Q4_K_S, SLM_T_Q4_K }, { "Q4_K_M", SLM_FTYPE_Q4_K_M, SLM_T_Q4_K },
    { "Q5_K_S", SLM_FTYPE_Q5_K_S, SLM_T_Q5_K }, { "Q5_K_M", SLM_FTYPE_Q5_K_M, SLM_T_Q5_K },
    { "Q6_K", SLM_FTYPE_Q6_K, SLM_T_Q6_K },     { "Q8_0", SLM_FTYPE_Q8_0, SLM_T_Q8_0 },
    { "F16", SLM_FTYPE_F16, SLM_T_F16 },        { "BF16", SLM_FTYPE_BF16, SLM_T_BF16 },
    { "F32", SLM_FTYPE_F32, SLM_T_F32 },
    { "IQ4_NL", SLM_FTYPE_IQ4_NL, SLM_T_IQ4_NL }, { "IQ4_XS", SLM_FTYPE_IQ4_XS, SLM_T_IQ4_XS },
    { "TQ1_0", SLM_FTYPE_TQ1_0, SLM_T_TQ1_0 },   { "TQ2_0", SLM_FTYPE_TQ2_0, SLM_T_TQ2_0 },
    { "IQ3_XXS", SLM_FTYPE_IQ3_XXS, SLM_T_IQ3_XXS }, { "IQ3_XS", SLM_FTYPE_IQ3_XS, SLM_T_IQ3_S },
    { "IQ3_S", SLM_FTYPE_IQ3_S, SLM_T_IQ3_S },       { "IQ3_M", SLM_FTYPE_IQ3_M, SLM_T_IQ3_S },
    /* IQ2 (iq2.c): IQ2_S's base type is IQ2_XS and IQ2_M's IQ2_S, as llama.cpp's */
    { "IQ2_XXS", SLM_FTYPE_IQ2_XXS, SLM_T_IQ2_XXS }, { "IQ2_XS", SLM_FTYPE_IQ2_XS, SLM_T_IQ2_XS },
    { "IQ2_S", SLM_FTYPE_IQ2_S, SLM_T_IQ2_XS },      { "IQ2_M", SLM_FTYPE_IQ2_M, SLM_T_IQ2_S },
    { "IQ1_S", SLM_FTYPE_IQ1_S, SLM_T_IQ1_S },   { "IQ1_M", SLM_FTYPE_IQ1_M, SLM_T_IQ1_M },
};
#define N_RECIPES (int)(sizeof g_recipes / sizeof g_recipes[0])

/* llama-quantize's aliases */
static const struct { const char *alias, *name; } g_alias[] = {
    { "Q3_K", "Q3_K_M" }, { "Q4_K", "Q4_K_M" }, { "Q5_K", "Q5_K_M" },
};

int slm_recipe_by_name(const char *name)
{
    if (!name) return -1;
    for (size_t i = 0; i < sizeof g_alias / sizeof g_alias[0]; i++)
        if (!strcasecmp(name, g_alias[i].alias)) name = g_alias[i].name;
    for (int i = 0; i < N_RECIPES; i++)
        if (!strcasecmp(name, g_recipes[i].name)) return g_recipes[i].ftype;
    return -1;
}

static const recipe_row *recipe_of(int ftype)
{
    for (int i = 0; i < N_RECIPES; i++)
        if (g_recipes[i].ftype == ftype) return &g_recipes[i];
    return NULL;
}

const char *slm_recipe_name(int ftype)
{
    const recipe_row *r = recipe_of(ftype);
    return r ? r->name : NULL;
}

uint32_t slm_recipe_default_type(int ftype)
{
    const recipe_row *r = recipe_of(ftype);
    return r ? r->base : UINT32_MAX;
}

const char *const *slm_recipe_names(void)
{
    static const char *names[N_RECIPES + 1];
    for (int i = 0; i < N_RECIPES; i++) names[i] = g_recipes[i].name; /* same values every call */
    names[N_RECIPES] = NULL;
    return names;
}

int slm_type_needs_imatrix(uint32_t type)
{
    switch (type) {
    case SLM_T_IQ3_XXS: case SLM_T_IQ2_XXS: case SLM_T_IQ2_XS: case SLM_T_IQ2_S: case SLM_T_IQ1_S: case SLM_T_IQ1_M:
        return 1;
    default:
        return 0;
    }
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* llama.cpp's tensor_allows_quantization, for the architectures slmkit handles */
static int allows_quant(const char *name, int n_dims)
{
    if (n_dims < 2 || !ends_with(name, "weight")) return 0;
    if (strstr(name, "_norm.weight") || strstr(name, "ffn_gate_inp.weight")) return 0;
    if (!strcmp(name, "position_embd.weight") || !strcmp(name, "token_types.weight")) return 0;
    if (strstr(name, "ssm_conv1d") || strstr(name, "attn_rel_b.weight")) return 0;
    return 1;
}

enum cat { C_OTHER, C_OUTPUT, C_TOKEN_EMBD, C_ATTN_QKV, C_ATTN_KV_B, C_ATTN_V, C_ATTN_K, C_ATTN_Q, C_ATTN_OUT,
           C_FFN_UP, C_FFN_GATE, C_FFN_DOWN };

static enum cat category(const char *n)
{
    if (!strcmp(n, "output.weight")) return C_OUTPUT;
    if (!strcmp(n, "token_embd.weight") || !strcmp(n, "per_layer_token_embd.weight")) return C_TOKEN_EMBD;
    if (strstr(n, "attn_qkv.weight")) return C_ATTN_QKV;
    if (strstr(n, "attn_kv_b.weight")) return C_ATTN_KV_B;
    if (strstr(n, "attn_v.weight")) return C_ATTN_V;
    if (strstr(n, "attn_k.weight")) return C_ATTN_K;
    if (strstr(n, "attn_q.weight")) return C_ATTN_Q;
    if (strstr(n, "attn_output.weight")) return C_ATTN_OUT;
    if (strstr(n, "ffn_up")) return C_FFN_UP;
    if (strstr(n, "ffn_gate")) return C_FFN_GATE;
    if (strstr(n, "ffn_down")) return C_FFN_DOWN;
    return C_OTHER;
}

static int use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static int is_quant(uint32_t t)
{
    const slm_qtraits *q = slm_qtraits_get(t);
    return q && q->is_quant;
}

static int blck(uint32_t t)
{
    const slm_qtraits *q = slm_qtraits_get(t);
    return q ? q->blck : 1;
}

int slm_recipe_is_iq2(int ftype)
{
    return ftype == SLM_FTYPE_IQ2_XXS || ftype == SLM_FTYPE_IQ2_XS || ftype == SLM_FTYPE_IQ2_S || ftype == SLM_FTYPE_IQ2_M;
}

/* llama.cpp's mix of the 2-bit i-quant recipes (not output): IQ2_XXS / IQ2_XS lift
 * token_embd, attn_v and the first eighth's ffn_down to Q2_K, IQ2_S / IQ2_M those and
 * attn_output to IQ3_S; attn_v Q4_K when n_gqa >= 4. */
static uint32_t mix_iq2(const slm_recipe_model *m, enum cat c, int il, int nl, int ftype, uint32_t t, int *attn_v_seen)
{
    const int s = ftype == SLM_FTYPE_IQ2_S || ftype == SLM_FTYPE_IQ2_M;
    const uint32_t up = s ? SLM_TYPE_IQ3_S : SLM_T_Q2_K;
    if (c == C_TOKEN_EMBD) return up;
    if (c == C_ATTN_V || c == C_ATTN_QKV || c == C_ATTN_KV_B) {
        if (attn_v_seen) ++*attn_v_seen;
        return m->n_gqa >= 4 ? SLM_T_Q4_K : up;
    }
    if (c == C_FFN_DOWN) return il < nl / 8 ? up : t;
    if (c == C_ATTN_OUT && s) return SLM_TYPE_IQ3_S;
    return t;
}

/* llama.cpp's per-category mix for quantized base types (non-IQ recipes) */
static uint32_t mix(const slm_recipe_model *m, enum cat c, int64_t nx, int layer, int ftype, uint32_t t, int *attn_v_seen)
{
    const int falcon = m->arch && !strcmp(m->arch, "falcon");
    const int nl = m->n_layers > 0 ? m->n_layers : 1;
    const int il = layer < 0 ? 0 : layer;
    int iv = attn_v_seen ? *attn_v_seen : 0;
    const int iq1 = ftype == SLM_FTYPE_IQ1_S || ftype == SLM_FTYPE_IQ1_M;
    if (c == C_OUTPUT || (!m->has_output && c == C_TOKEN_EMBD)) {
        if (falcon || nx % blck(t) != 0) return SLM_T_Q8_0;
        if (ftype == SLM_FTYPE_IQ3_XXS || slm_recipe_is_iq2(ftype) || iq1) return SLM_T_Q5_K;
        return t != SLM_T_Q8_0 ? SLM_T_Q6_K : t;
    }
    if (slm_recipe_is_iq2(ftype)) return mix_iq2(m, c, il, nl, ftype, t, attn_v_seen);
    if (c == C_TOKEN_EMBD) {
        if (ftype == SLM_FTYPE_IQ3_XXS) return SLM_T_IQ3_S;
        return ftype == SLM_FTYPE_TQ1_0 || ftype == SLM_FTYPE_TQ2_0 ? SLM_T_Q4_K : iq1 ? SLM_T_Q2_K : t;
    }
    if (iq1) { /* llama.cpp's branch for the lowest-bit i-quants */
        if (c == C_ATTN_V || c == C_ATTN_QKV || c == C_ATTN_KV_B) {
            if (attn_v_seen) ++*attn_v_seen;
            return m->n_gqa >= 4 ? SLM_T_Q4_K : SLM_T_Q2_K;
        }
        if (c == C_FFN_DOWN) return il < nl / 8 ? SLM_T_Q2_K : t;
        if (c == C_ATTN_OUT) return SLM_T_IQ2_XXS;
        return t;
    }
    const int iq3 = ftype == SLM_FTYPE_IQ3_XXS || ftype == SLM_FTYPE_IQ3_XS || ftype == SLM_FTYPE_IQ3_S || ftype == SLM_FTYPE_IQ3_M;
    const int iq4 = ftype == SLM_FTYPE_IQ4_NL || ftype == SLM_FTYPE_IQ4_XS;
    if (c == C_ATTN_V || c == C_ATTN_QKV || c == C_ATTN_KV_B) {
        if (ftype == SLM_FTYPE_Q2_K) t = m->n_gqa >= 4 ? SLM_T_Q4_K : SLM_T_Q3_K;
        else if (ftype == SLM_FTYPE_IQ3_XXS)
            t = m->n_gqa >= 4 ? SLM_T_Q4_K : !m->has_imatrix ? SLM_T_IQ3_S : SLM_T_IQ3_XXS;
        else if ((ftype == SLM_FTYPE_IQ3_XS || ftype == SLM_FTYPE_IQ3_S) && m->n_gqa >= 4) t = SLM_T_Q4_K;
        else if (ftype == SLM_FTYPE_IQ3_M) t = SLM_T_Q4_K;
        else if (ftype == SLM_FTYPE_Q3_K_M) t = iv < 2 ? SLM_T_Q5_K : SLM_T_Q4_K;
        else if (ftype == SLM_FTYPE_Q3_K_L) t = SLM_T_Q5_K;
        else if (iq4 && m->n_gqa >= 4) t = SLM_T_Q5_K;
        else if ((ftype == SLM_FTYPE_Q4_K_M || ftype == SLM_FTYPE_Q5_K_M) && use_more_bits(iv, m->n_attn_v))
            t = SLM_T_Q6_K;
        else if (ftype == SLM_FTYPE_Q4_K_S && iv < 4) t = SLM_T_Q5_K;
        if (attn_v_seen) ++*attn_v_seen;
        return t;
    }
    if (c == C_FFN_DOWN) {
        if (ftype == SLM_FTYPE_Q2_K) t = SLM_T_Q3_K;
        else if (ftype == SLM_FTYPE_IQ3_XXS && !m->has_imatrix) t = il < nl / 8 ? SLM_T_Q4_K : SLM_T_Q3_K;
        else if (ftype == SLM_FTYPE_Q3_K_M)
            t = il < nl / 16 ? SLM_T_Q5_K : (!falcon || use_more_bits(il, nl)) ? SLM_T_Q4_K : SLM_T_Q3_K;
        else if (ftype == SLM_FTYPE_IQ3_M && il < nl / 8) t = SLM_T_Q4_K;
        else if (ftype == SLM_FTYPE_Q3_K_L) t = falcon ? SLM_T_Q4_K : SLM_T_Q5_K;
        else if (ftype == SLM_FTYPE_Q4_K_M) {
            if (falcon) t = il < nl / 16 ? SLM_T_Q6_K : use_more_bits(il, nl) ? SLM_T_Q5_K : SLM_T_Q4_K;
            else if (use_more_bits(il, nl)) t = SLM_T_Q6_K;
        } else if (iq4 && il < nl / 8 && !m->has_imatrix) t = SLM_T_Q5_K;
        else if (ftype == SLM_FTYPE_Q5_K_M && use_more_bits(il, nl)) t = SLM_T_Q6_K;
        else if (ftype == SLM_FTYPE_Q4_K_S && !falcon && il < nl / 8) t = SLM_T_Q5_K;
        else if ((ftype == SLM_FTYPE_Q4_0 || ftype == SLM_FTYPE_Q5_0) && m->has_imatrix && il < nl / 8)
            t = ftype == SLM_FTYPE_Q4_0 ? SLM_T_Q4_1 : SLM_T_Q5_1; /* llama.cpp's guard for early ffn_down */
        return t;
    }
    if (c == C_ATTN_OUT) {
        if (!falcon) {
            if (ftype == SLM_FTYPE_Q2_K) t = SLM_T_Q3_K;
            else if (ftype == SLM_FTYPE_IQ3_XXS) t = SLM_T_IQ3_S;
            else if (ftype == SLM_FTYPE_Q3_K_M) t = SLM_T_Q4_K;
            else if (ftype == SLM_FTYPE_Q3_K_L) t = SLM_T_Q5_K;
            else if (ftype == SLM_FTYPE_IQ3_M) t = SLM_T_Q4_K;
        } else if (ftype == SLM_FTYPE_Q3_K_L) t = SLM_T_Q4_K;
        return t;
    }
    /* IQ3_XS / IQ3_XXS: attn_q and attn_k one step down (IQ3_XXS's is IQ2_S);
     * IQ3_XS: ffn_gate / ffn_up of the middle layers IQ3_XXS */
    if (iq3 && (c == C_ATTN_Q || c == C_ATTN_K)) {
        if (ftype == SLM_FTYPE_IQ3_XS) t = SLM_T_IQ3_XXS;
        else if (ftype == SLM_FTYPE_IQ3_XXS) t = SLM_T_IQ2_S;
    }
    if (ftype == SLM_FTYPE_IQ3_XS && (c == C_FFN_GATE || c == C_FFN_UP) && il >= nl / 8 && il < 7 * nl / 8)
        t = SLM_T_IQ3_XXS;
    /* attn_qkv handled with attn_v above (llama.cpp: attn_v-like); others keep the base */
    return t;
}

/* llama.cpp's tensor_type_fallback */
static uint32_t fallback(uint32_t t, int64_t nx, int *flags)
{
    if (nx % blck(t) == 0) return t;
    uint32_t r = t;
    switch (t) {
    case SLM_T_Q2_K: case SLM_T_Q3_K: r = SLM_T_Q4_0; break;
    case SLM_T_Q4_K: r = SLM_T_Q5_0; break;
    case SLM_T_Q5_K: r = SLM_T_Q5_1; break;
    case SLM_T_Q6_K: r = SLM_T_Q8_0; break;
    case SLM_T_IQ4_XS: case SLM_T_IQ3_XXS: case SLM_T_IQ3_S: case SLM_T_IQ1_S: case SLM_T_IQ1_M:
    case SLM_T_IQ2_XXS: case SLM_T_IQ2_XS: case SLM_T_IQ2_S: r = SLM_T_IQ4_NL; break;
    case SLM_T_TQ1_0: case SLM_T_TQ2_0: r = SLM_T_Q4_0; break;
    default: break;
    }
    *flags |= SLM_RECIPE_FALLBACK;
    if (nx % blck(r) != 0) { r = SLM_T_F16; *flags |= SLM_RECIPE_F16_FALLBACK; }
    return r;
}

static int rule_match(const char *pattern, const char *name)
{
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
    if (!re) return 0;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = md ? pcre2_match(re, (PCRE2_SPTR)name, strlen(name), 0, 0, md, NULL) : -1;
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return rc >= 0;
}

int slm_recipe_check_pattern(const char *pattern, char *msg, size_t msg_len)
{
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
    if (re) { pcre2_code_free(re); return 0; }
    char buf[160];
    pcre2_get_error_message(ec, (PCRE2_UCHAR *)buf, sizeof buf);
    if (msg && msg_len) snprintf(msg, msg_len, "%s at offset %zu", buf, (size_t)eo);
    return -1;
}

uint32_t slm_recipe_tensor_type(const slm_recipe_model *m, const char *name, int n_dims, const int64_t *ne,
                                uint32_t cur_type, int layer, int ftype, const slm_recipe_opts *o,
                                int *attn_v_seen, int *flags, int *rule)
{
    static const slm_recipe_opts none = { 0, -1, -1, NULL, 0 };
    int fl = 0;
    if (rule) *rule = -1;
    if (!o) o = &none;
    const uint32_t base = slm_recipe_default_type(ftype);
    uint32_t t = cur_type;
    enum cat c = category(name);
    const int64_t nx = ne[0];
    if (!allows_quant(name, n_dims) || base == UINT32_MAX) {
        fl = SLM_RECIPE_KEEP;
        if (flags) *flags = fl;
        return cur_type;
    }
    /* the explicit token-embedding / output types win over everything */
    if (o->token_embd_type >= 0 && c == C_TOKEN_EMBD) t = (uint32_t)o->token_embd_type;
    else if (o->output_type >= 0 && c == C_OUTPUT) t = (uint32_t)o->output_type;
    else {
        t = base;
        if (is_quant(base)) {
            int manual = 0;
            for (int i = 0; i < o->n_rules; i++)
                if (rule_match(o->rules[i].pattern, name)) {
                    t = o->rules[i].type;
                    manual = 1;
                    if (rule) *rule = i;
                    break;
                }
            /* (llama.cpp counts only the attn_v tensors that go through the mix) */
            if (!manual && !o->pure) {
                if (!m->has_output && c == C_TOKEN_EMBD && o->output_type >= 0) t = (uint32_t)o->output_type;
                else t = mix(m, c, nx, layer, ftype, base, attn_v_seen);
            }
            t = fallback(t, nx, &fl);
        }
    }
    if (flags) *flags = fl;
    return t;
}

