/* tests/test_hfconfig.c — Hugging Face config.json (formats/hf_config.c). */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "formats.h"
#include "testutil.h"

#define ASSERT_MSG(err, needle) \
    cr_assert(strstr((err).msg, (needle)) != NULL, "message '%s' lacks '%s'", (err).msg, (needle))

/* Load a config.json with the given text from a fresh directory. */
static int load_text(const char *json, hf_config *cfg, slm_err *err)
{
    char *dir = tu_tmpdir("cfg");
    char *p = tu_path(dir, "config.json");
    cr_assert_eq(tu_write_file(p, json, strlen(json)), 0);
    int rc = hf_config_load(dir, cfg, err);
    free(p);
    tu_rmtree(dir);
    free(dir);
    return rc;
}

static slm_err load_fail(const char *json)
{
    hf_config cfg;
    slm_err err = {0};
    int rc = load_text(json, &cfg, &err);
    cr_assert_eq(rc, SLM_EINPUT, "expected SLM_EINPUT for %s (got %d: %s)", json, rc, err.msg);
    ASSERT_MSG(err, "config.json");
    return err;
}

#define LLAMA_BASE \
    "\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":8,\"intermediate_size\":172," \
    "\"max_position_embeddings\":512,\"vocab_size\":512"

Test(hfconfig, stories260k)
{
    hf_config c;
    slm_err err = {0};
    cr_assert_eq(hf_config_load(tu_model("stories260k"), &c, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(c.arch, SLM_ARCH_LLAMA);
    cr_assert_str_eq(c.hf_arch, "LlamaForCausalLM");
    cr_assert_str_eq(c.gguf_arch, "llama");
    cr_assert_eq(c.n_embd, 64);
    cr_assert_eq(c.n_layer, 5);
    cr_assert_eq(c.n_head, 8);
    cr_assert_eq(c.n_head_kv, 4);
    cr_assert_eq(c.head_dim, 8);
    cr_assert_eq(c.n_ff, 172);
    cr_assert_eq(c.n_ctx, 512);
    cr_assert_eq(c.n_vocab, 512);
    cr_assert_float_eq(c.norm_eps, 1e-5, 1e-12);
    cr_assert_float_eq(c.rope_theta, 10000.0, 1e-9);
    cr_assert_eq(c.tie_embeddings, 1);
    cr_assert_eq(c.attn_bias, 0);
    cr_assert_eq(c.sliding_window, 0);
    cr_assert_eq(c.bos_id, 1);
    cr_assert_eq(c.eos_id, 2);
}

Test(hfconfig, stories_llama256_untied_explicit_head_dim)
{
    hf_config c;
    slm_err err = {0};
    cr_assert_eq(hf_config_load(tu_model("stories-llama256"), &c, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(c.n_embd, 256);
    cr_assert_eq(c.n_head, 4);
    cr_assert_eq(c.n_head_kv, 2);
    cr_assert_eq(c.head_dim, 64);
    cr_assert_eq(c.n_ff, 768);
    cr_assert_eq(c.tie_embeddings, 0);
}

Test(hfconfig, tinystories_gpt2)
{
    hf_config c;
    slm_err err = {0};
    cr_assert_eq(hf_config_load(tu_model("tinystories-gpt2"), &c, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(c.arch, SLM_ARCH_GPT2);
    cr_assert_str_eq(c.gguf_arch, "gpt2");
    cr_assert_eq(c.n_embd, 128);
    cr_assert_eq(c.n_layer, 4);
    cr_assert_eq(c.n_head, 4);
    cr_assert_eq(c.n_head_kv, 4);
    cr_assert_eq(c.head_dim, 32);
    cr_assert_eq(c.n_ff, 512); /* n_inner null -> 4 * n_embd */
    cr_assert_eq(c.n_ctx, 256);
    cr_assert_eq(c.n_vocab, 1000);
    cr_assert_float_eq(c.norm_eps, 1e-5, 1e-12);
    cr_assert_eq(c.rope_theta, 0.0);
    cr_assert_eq(c.tie_embeddings, 1);
    cr_assert_eq(c.bos_id, 999);
    cr_assert_eq(c.eos_id, 999);
}

Test(hfconfig, llama_defaults)
{
    hf_config c;
    slm_err err = {0};
    cr_assert_eq(load_text("{\"architectures\":[\"LlamaForCausalLM\"]," LLAMA_BASE "}", &c, &err), SLM_OK, "%s",
                 err.msg);
    cr_assert_eq(c.n_head_kv, 8);  /* = heads */
    cr_assert_eq(c.head_dim, 8);   /* hidden / heads */
    cr_assert_eq(c.tie_embeddings, 0);
    cr_assert_eq(c.rope_theta, 0.0);
    cr_assert_float_eq(c.norm_eps, 1e-6, 1e-15);
    cr_assert_eq(c.bos_id, -1);
    cr_assert_eq(c.eos_id, -1);
    cr_assert_eq(c.attn_bias, 0);
    /* attention_bias honoured; head_dim given makes divisibility moot */
    cr_assert_eq(load_text("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":60,\"num_hidden_layers\":2,"
                           "\"num_attention_heads\":8,\"head_dim\":8,\"intermediate_size\":172,"
                           "\"max_position_embeddings\":512,\"vocab_size\":512,\"attention_bias\":true}",
                           &c, &err),
                 SLM_OK, "%s", err.msg);
    cr_assert_eq(c.attn_bias, 1);
    cr_assert_eq(c.head_dim, 8);
}

Test(hfconfig, mistral)
{
    hf_config c;
    slm_err err = {0};
    cr_assert_eq(load_text("{\"architectures\":[\"MistralForCausalLM\"]," LLAMA_BASE
                           ",\"num_key_value_heads\":2,\"sliding_window\":4096,\"eos_token_id\":[7,8],"
                           "\"bos_token_id\":1,\"rope_theta\":1000000.0}",
                           &c, &err),
                 SLM_OK, "%s", err.msg);
    cr_assert_eq(c.arch, SLM_ARCH_LLAMA);
    cr_assert_str_eq(c.gguf_arch, "llama");
    cr_assert_str_eq(c.hf_arch, "MistralForCausalLM");
    cr_assert_eq(c.sliding_window, 4096);
    cr_assert_eq(c.eos_id, 7); /* first of the array */
    cr_assert_eq(c.n_head_kv, 2);
    cr_assert_float_eq(c.rope_theta, 1e6, 1e-6);
    cr_assert_eq(load_text("{\"architectures\":[\"MistralForCausalLM\"]," LLAMA_BASE ",\"sliding_window\":null}",
                           &c, &err),
                 SLM_OK, "%s", err.msg);
    cr_assert_eq(c.sliding_window, 0);
}

Test(hfconfig, qwen2)
{
    hf_config c;
    slm_err err = {0};
    cr_assert_eq(load_text("{\"architectures\":[\"Qwen2ForCausalLM\"],\"hidden_size\":896,\"num_hidden_layers\":24,"
                           "\"num_attention_heads\":14,\"num_key_value_heads\":2,\"intermediate_size\":4864,"
                           "\"max_position_embeddings\":32768,\"vocab_size\":151936,\"rms_norm_eps\":1e-06,"
                           "\"rope_theta\":1000000.0,\"tie_word_embeddings\":true,\"sliding_window\":32768,"
                           "\"use_sliding_window\":false,\"bos_token_id\":151643,\"eos_token_id\":151645}",
                           &c, &err),
                 SLM_OK, "%s", err.msg);
    cr_assert_eq(c.arch, SLM_ARCH_QWEN2);
    cr_assert_str_eq(c.gguf_arch, "qwen2");
    cr_assert_eq(c.attn_bias, 1);
    cr_assert_eq(c.head_dim, 64);
    cr_assert_eq(c.n_head_kv, 2);
    cr_assert_eq(c.tie_embeddings, 1);
    cr_assert_eq(c.sliding_window, 0); /* use_sliding_window false */
    cr_assert_eq(c.eos_id, 151645);
}

Test(hfconfig, gpt2_variants)
{
    hf_config c;
    slm_err err = {0};
    cr_assert_eq(load_text("{\"architectures\":[\"GPT2LMHeadModel\"],\"n_embd\":64,\"n_layer\":2,\"n_head\":4,"
                           "\"n_inner\":100,\"n_ctx\":128,\"vocab_size\":300,\"tie_word_embeddings\":false}",
                           &c, &err),
                 SLM_OK, "%s", err.msg);
    cr_assert_eq(c.n_ff, 100);
    cr_assert_eq(c.n_ctx, 128); /* n_ctx when n_positions is absent */
    cr_assert_eq(c.tie_embeddings, 0);
    cr_assert_float_eq(c.norm_eps, 1e-5, 1e-12);
    cr_assert_eq(load_text("{\"architectures\":[\"GPT2LMHeadModel\"],\"n_embd\":64,\"n_layer\":2,\"n_head\":4,"
                           "\"n_positions\":1024,\"vocab_size\":300}",
                           &c, &err),
                 SLM_OK, "%s", err.msg);
    cr_assert_eq(c.n_ctx, 1024);
    cr_assert_eq(c.n_ff, 256);
    cr_assert_eq(c.tie_embeddings, 1); /* GPT-2 default */
    slm_err e = load_fail("{\"architectures\":[\"GPT2LMHeadModel\"],\"n_embd\":64,\"n_layer\":2,\"n_head\":5,"
                          "\"n_positions\":1024,\"vocab_size\":300}");
    ASSERT_MSG(e, "'n_head'");
}

Test(hfconfig, unknown_arch_refused_by_name)
{
    slm_err e = load_fail("{\"architectures\":[\"FalconForCausalLM\"]," LLAMA_BASE "}");
    ASSERT_MSG(e, "config.json: architecture 'FalconForCausalLM' is not supported (supported: LlamaForCausalLM, "
                  "MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma3ForCausalLM, Phi3ForCausalLM, "
                  "GPT2LMHeadModel)");
    e = load_fail("{\"architectures\":[]," LLAMA_BASE "}");
    ASSERT_MSG(e, "architectures");
    e = load_fail("{" LLAMA_BASE "}");
    ASSERT_MSG(e, "architectures");
}

Test(hfconfig, malformed_json)
{
    slm_err e = load_fail("{\"architectures\":[\"LlamaForCausalLM\"],\n\"hidden_size\": 64,,}");
    ASSERT_MSG(e, "config.json: malformed JSON near byte ");
    e = load_fail("");
    ASSERT_MSG(e, "malformed JSON");
    e = load_fail("{} {}");
    ASSERT_MSG(e, "malformed JSON");
    e = load_fail("[1]");
    ASSERT_MSG(e, "object");
}

Test(hfconfig, missing_key)
{
    slm_err e = load_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"num_hidden_layers\":2,"
                          "\"num_attention_heads\":8,\"intermediate_size\":172,"
                          "\"max_position_embeddings\":512,\"vocab_size\":512}");
    ASSERT_MSG(e, "'hidden_size'");
    ASSERT_MSG(e, "missing");
    e = load_fail("{\"architectures\":[\"GPT2LMHeadModel\"],\"n_embd\":64,\"n_layer\":2,\"n_head\":4,"
                  "\"vocab_size\":300}");
    ASSERT_MSG(e, "'n_ctx'");
}

Test(hfconfig, bad_types_and_values)
{
    slm_err e = load_fail("{\"architectures\":[\"LlamaForCausalLM\"]," LLAMA_BASE ",\"hidden_size\":\"64\"}");
    ASSERT_MSG(e, "'hidden_size' appears twice"); /* Python would take the last, cJSON the first */
    e = load_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":\"64\",\"num_hidden_layers\":2,"
                  "\"num_attention_heads\":8,\"intermediate_size\":172,\"max_position_embeddings\":512,"
                  "\"vocab_size\":512}");
    ASSERT_MSG(e, "'hidden_size' must be an integer (found string)");
    e = load_fail("{\"architectures\":[\"LlamaForCausalLM\"]," LLAMA_BASE ",\"tie_word_embeddings\":\"yes\"}");
    ASSERT_MSG(e, "'tie_word_embeddings'");
    e = load_fail("{\"architectures\":[\"LlamaForCausalLM\"]," LLAMA_BASE ",\"rms_norm_eps\":-1}");
    ASSERT_MSG(e, "'rms_norm_eps'");
    e = load_fail("{\"architectures\":[\"LlamaForCausalLM\"]," LLAMA_BASE ",\"num_key_value_heads\":3}");
    ASSERT_MSG(e, "'num_key_value_heads'");
    e = load_fail("{\"architectures\":[\"LlamaForCausalLM\"]," LLAMA_BASE ",\"num_key_value_heads\":0}");
    ASSERT_MSG(e, "'num_key_value_heads'");
    e = load_fail("{\"architectures\":[\"LlamaForCausalLM\"]," LLAMA_BASE ",\"eos_token_id\":9999}");
    ASSERT_MSG(e, "'eos_token_id'");
    e = load_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"num_hidden_layers\":2000,"
                  "\"num_attention_heads\":8,\"intermediate_size\":172,\"max_position_embeddings\":512,"
                  "\"vocab_size\":512}");
    ASSERT_MSG(e, "'num_hidden_layers'");
    e = load_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64.5,\"num_hidden_layers\":2,"
                  "\"num_attention_heads\":8,\"intermediate_size\":172,\"max_position_embeddings\":512,"
                  "\"vocab_size\":512}");
    ASSERT_MSG(e, "'hidden_size'");
    e = load_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":1e300,\"num_hidden_layers\":2,"
                  "\"num_attention_heads\":8,\"intermediate_size\":172,\"max_position_embeddings\":512,"
                  "\"vocab_size\":512}");
    ASSERT_MSG(e, "'hidden_size'");
    e = load_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":60,\"num_hidden_layers\":2,"
                  "\"num_attention_heads\":8,\"intermediate_size\":172,\"max_position_embeddings\":512,"
                  "\"vocab_size\":512}");
    ASSERT_MSG(e, "'num_attention_heads' (8) does not divide 'hidden_size' (60)");
}

Test(hfconfig, missing_config_file)
{
    char *dir = tu_tmpdir("cfg");
    hf_config c;
    slm_err err = {0};
    cr_assert_eq(hf_config_load(dir, &c, &err), SLM_EIO);
    ASSERT_MSG(err, "config.json");
    tu_rmtree(dir);
    free(dir);
}

/* ---- the newer families (issue 14) ---------------------------------------- */

/* meta-llama/Llama-3.2-1B-Instruct's config.json (the keys that matter) */
#define LLAMA32 \
    "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":2048,\"num_hidden_layers\":16," \
    "\"num_attention_heads\":32,\"num_key_value_heads\":8,\"head_dim\":64,\"intermediate_size\":8192," \
    "\"max_position_embeddings\":131072,\"vocab_size\":128256,\"rms_norm_eps\":1e-05,\"rope_theta\":500000.0," \
    "\"hidden_act\":\"silu\",\"mlp_bias\":false,\"tie_word_embeddings\":true,\"bos_token_id\":128000," \
    "\"eos_token_id\":[128001,128008,128009]"
#define LLAMA3_ROPE \
    "\"rope_scaling\":{\"factor\":32.0,\"high_freq_factor\":4.0,\"low_freq_factor\":1.0," \
    "\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"}"

Test(hfconfig, llama32_rope_llama3_tied)
{
    hf_config c;
    slm_err err = {0};
    cr_assert_eq(load_text(LLAMA32 "," LLAMA3_ROPE "}", &c, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(c.arch, SLM_ARCH_LLAMA);
    cr_assert_eq(c.tie_embeddings, 1);
    cr_assert_eq(c.rope_scaling, SLM_ROPE_SCALING_LLAMA3);
    cr_assert_float_eq(c.rope_factor, 32.0, 1e-12);
    cr_assert_float_eq(c.rope_low_freq_factor, 1.0, 1e-12);
    cr_assert_float_eq(c.rope_high_freq_factor, 4.0, 1e-12);
    cr_assert_eq(c.rope_orig_ctx, 8192);
    cr_assert_eq(c.head_dim, 64);
    cr_assert_eq(c.has_head_dim, 1);
    /* llama.cpp's converter (LlamaModel.generate_extra_tensors), in float32:
     * wavelengths below 8192/4 keep 1, above 8192/1 get the factor 32, the
     * band between is smoothed */
    float f[32];
    slm_llama3_rope_factors(&c, f, 32);
    cr_assert_eq(f[0], 1.0f);
    cr_assert_eq(f[31], 32.0f);
    int smooth = 0;
    for (int i = 0; i < 32; i++) {
        cr_assert(f[i] >= 1.0f && f[i] <= 32.0f);
        if (i)
            cr_assert(f[i] >= f[i - 1], "factors grow with the wavelength");
        smooth += f[i] > 1.0f && f[i] < 32.0f;
    }
    cr_assert_gt(smooth, 0, "some frequencies fall in the smoothed band");
    /* rope_type default / null: none */
    cr_assert_eq(load_text(LLAMA32 ",\"rope_scaling\":null}", &c, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(c.rope_scaling, SLM_ROPE_SCALING_NONE);
}

Test(hfconfig, refused_by_name)
{
    /* every config key or rope type that changes the math and is not carried: one line naming it */
    slm_err e = load_fail(LLAMA32 ",\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4.0}}");
    ASSERT_MSG(e, "'rope_scaling'");
    ASSERT_MSG(e, "yarn");
    e = load_fail(LLAMA32 ",\"rope_scaling\":{\"type\":\"linear\",\"factor\":2.0}}");
    ASSERT_MSG(e, "linear");
    e = load_fail(LLAMA32 ",\"rope_scaling\":{\"type\":\"dynamic\",\"factor\":2.0}}");
    ASSERT_MSG(e, "dynamic");
    e = load_fail("{\"architectures\":[\"LlamaForCausalLM\"]," LLAMA_BASE ",\"mlp_bias\":true}");
    ASSERT_MSG(e, "'mlp_bias'");
    e = load_fail("{\"architectures\":[\"LlamaForCausalLM\"]," LLAMA_BASE ",\"hidden_act\":\"gelu\"}");
    ASSERT_MSG(e, "'hidden_act'");
    e = load_fail("{\"architectures\":[\"LlamaForCausalLM\"]," LLAMA_BASE ",\"partial_rotary_factor\":0.5}");
    ASSERT_MSG(e, "'partial_rotary_factor'");
    /* mistral: rope scaling of any type */
    e = load_fail("{\"architectures\":[\"MistralForCausalLM\"]," LLAMA_BASE ",\"rope_scaling\":{\"rope_type\":\"llama3\"}}");
    ASSERT_MSG(e, "'rope_scaling'");
    /* qwen: sliding window (llama.cpp's qwen2/qwen3 have none), rope scaling */
    e = load_fail("{\"architectures\":[\"Qwen2ForCausalLM\"]," LLAMA_BASE ",\"use_sliding_window\":true,\"sliding_window\":64}");
    ASSERT_MSG(e, "'use_sliding_window'");
    e = load_fail("{\"architectures\":[\"Qwen3ForCausalLM\"]," LLAMA_BASE ",\"rope_scaling\":{\"rope_type\":\"yarn\","
                  "\"factor\":4.0,\"original_max_position_embeddings\":32768}}");
    ASSERT_MSG(e, "'rope_scaling'");
    e = load_fail("{\"architectures\":[\"Qwen3ForCausalLM\"]," LLAMA_BASE ",\"attention_bias\":true}");
    ASSERT_MSG(e, "'attention_bias'");
}

#define GEMMA3_270M GEMMA3_CFG("18")
#define GEMMA3_CFG(layers) \
    "{\"architectures\":[\"Gemma3ForCausalLM\"],\"model_type\":\"gemma3_text\",\"hidden_size\":640," \
    "\"num_hidden_layers\":" layers ",\"num_attention_heads\":4,\"num_key_value_heads\":1,\"head_dim\":256," \
    "\"intermediate_size\":2048,\"max_position_embeddings\":32768,\"vocab_size\":262144,\"rms_norm_eps\":1e-06," \
    "\"rope_theta\":1000000.0,\"rope_local_base_freq\":10000.0,\"query_pre_attn_scalar\":256," \
    "\"sliding_window\":512,\"hidden_activation\":\"gelu_pytorch_tanh\",\"attn_logit_softcapping\":null," \
    "\"final_logit_softcapping\":null,\"rope_scaling\":null,\"bos_token_id\":2,\"eos_token_id\":1"

Test(hfconfig, gemma3)
{
    hf_config c;
    slm_err err = {0};
    cr_assert_eq(load_text(GEMMA3_270M ",\"_sliding_window_pattern\":6}", &c, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(c.arch, SLM_ARCH_GEMMA3);
    cr_assert_str_eq(c.gguf_arch, "gemma3");
    cr_assert_eq(c.tie_embeddings, 1); /* Gemma3TextConfig ties by default */
    cr_assert_eq(c.head_dim, 256);
    cr_assert_eq(c.sliding_window, 512);
    cr_assert_eq(c.swa_pattern, 6);
    cr_assert_float_eq(c.rope_theta, 1e6, 1e-6);
    cr_assert_float_eq(c.rope_local_theta, 1e4, 1e-6);
    cr_assert_eq(c.final_logit_softcap, 0.0);
    /* layer_types gives the pattern */
    cr_assert_eq(load_text(GEMMA3_CFG("3") ",\"layer_types\":[\"sliding_attention\","
                           "\"sliding_attention\",\"full_attention\"]}", &c, &err),
                 SLM_OK, "%s", err.msg);
    cr_assert_eq(c.swa_pattern, 3);
    cr_assert_eq(c.n_layer, 3);
    /* model_type alone */
    cr_assert_eq(load_text("{\"model_type\":\"gemma3_text\",\"hidden_size\":64,\"num_hidden_layers\":2,"
                           "\"num_attention_heads\":2,\"intermediate_size\":128,\"max_position_embeddings\":64,"
                           "\"vocab_size\":300,\"sliding_window\":8,\"final_logit_softcapping\":30.0}",
                           &c, &err),
                 SLM_OK, "%s", err.msg);
    cr_assert_eq(c.arch, SLM_ARCH_GEMMA3);
    cr_assert_eq(c.head_dim, 256); /* Gemma3TextConfig's default */
    cr_assert_float_eq(c.final_logit_softcap, 30.0, 1e-9);

    /* transformers 5's rope_parameters per layer type */
    cr_assert_eq(load_text(GEMMA3_CFG("18") ",\"rope_parameters\":{\"full_attention\":{\"rope_type\":\"default\","
                           "\"rope_theta\":2000000.0},\"sliding_attention\":{\"rope_type\":\"default\","
                           "\"rope_theta\":20000.0}}}",
                           &c, &err),
                 SLM_OK, "%s", err.msg);
    cr_assert_float_eq(c.rope_theta, 2e6, 1e-6);
    cr_assert_float_eq(c.rope_local_theta, 2e4, 1e-6);

    slm_err e = load_fail(GEMMA3_CFG("18") ",\"rope_parameters\":{\"full_attention\":{\"rope_type\":\"linear\","
                  "\"factor\":8.0,\"rope_theta\":1000000.0},\"sliding_attention\":{\"rope_type\":\"default\"}}}");
    ASSERT_MSG(e, "'rope_parameters'");
    ASSERT_MSG(e, "linear");
    e = load_fail(GEMMA3_270M ",\"query_pre_attn_scalar\":144}");
    ASSERT_MSG(e, "'query_pre_attn_scalar'");
    e = load_fail(GEMMA3_270M ",\"attn_logit_softcapping\":50.0}");
    ASSERT_MSG(e, "'attn_logit_softcapping'");
    e = load_fail(GEMMA3_270M ",\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":8.0}}");
    ASSERT_MSG(e, "'rope_scaling'");
    e = load_fail(GEMMA3_270M ",\"hidden_activation\":\"gelu\"}");
    ASSERT_MSG(e, "'hidden_activation'");
    e = load_fail(GEMMA3_270M ",\"use_bidirectional_attention\":true}");
    ASSERT_MSG(e, "'use_bidirectional_attention'");
    e = load_fail(GEMMA3_CFG("3") ",\"layer_types\":[\"full_attention\",\"sliding_attention\","
                  "\"full_attention\"]}");
    ASSERT_MSG(e, "'layer_types'");
}

#define PHI3_MINI \
    "{\"architectures\":[\"Phi3ForCausalLM\"],\"hidden_size\":3072,\"num_hidden_layers\":32," \
    "\"num_attention_heads\":32,\"num_key_value_heads\":32,\"intermediate_size\":8192," \
    "\"max_position_embeddings\":4096,\"original_max_position_embeddings\":4096,\"vocab_size\":32064," \
    "\"rms_norm_eps\":1e-05,\"rope_theta\":10000.0,\"sliding_window\":2047,\"hidden_act\":\"silu\"," \
    "\"tie_word_embeddings\":false,\"bos_token_id\":1,\"eos_token_id\":32000"

Test(hfconfig, phi3_and_qwen3)
{
    hf_config c;
    slm_err err = {0};
    cr_assert_eq(load_text(PHI3_MINI ",\"rope_scaling\":null}", &c, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(c.arch, SLM_ARCH_PHI3);
    cr_assert_str_eq(c.gguf_arch, "phi3");
    cr_assert_eq(c.head_dim, 96);
    cr_assert_eq(c.rope_dim, 96);
    cr_assert_eq(c.rope_orig_ctx, 4096);
    cr_assert_eq(c.sliding_window, 2047);
    slm_err e = load_fail(PHI3_MINI ",\"rope_scaling\":{\"type\":\"longrope\",\"long_factor\":[1],\"short_factor\":[1]}}");
    ASSERT_MSG(e, "'rope_scaling'");
    ASSERT_MSG(e, "longrope");
    e = load_fail(PHI3_MINI ",\"partial_rotary_factor\":0.75}");
    ASSERT_MSG(e, "'partial_rotary_factor'");
    /* llama.cpp's converter needs original_max_position_embeddings */
    e = load_fail("{\"architectures\":[\"Phi3ForCausalLM\"]," LLAMA_BASE "}");
    ASSERT_MSG(e, "'original_max_position_embeddings'");

    cr_assert_eq(load_text("{\"architectures\":[\"Qwen3ForCausalLM\"],\"hidden_size\":1024,\"num_hidden_layers\":28,"
                           "\"num_attention_heads\":16,\"num_key_value_heads\":8,\"head_dim\":128,"
                           "\"intermediate_size\":3072,\"max_position_embeddings\":40960,\"vocab_size\":151936,"
                           "\"rms_norm_eps\":1e-06,\"rope_theta\":1000000,\"rope_scaling\":null,"
                           "\"tie_word_embeddings\":true,\"attention_bias\":false,\"use_sliding_window\":false,"
                           "\"sliding_window\":null,\"max_window_layers\":28,\"hidden_act\":\"silu\"}",
                           &c, &err),
                 SLM_OK, "%s", err.msg);
    cr_assert_eq(c.arch, SLM_ARCH_QWEN3);
    cr_assert_str_eq(c.gguf_arch, "qwen3");
    cr_assert_eq(c.head_dim, 128); /* 16 x 128 = 2048 != hidden 1024 */
    cr_assert_eq(c.attn_bias, 0);
    cr_assert_eq(c.tie_embeddings, 1);
}
