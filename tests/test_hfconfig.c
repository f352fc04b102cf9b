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
                  "MistralForCausalLM, Qwen2ForCausalLM, GPT2LMHeadModel)");
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
