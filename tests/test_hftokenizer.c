/* tests/test_hftokenizer.c — tokenizer.json -> llama.cpp tokenizer metadata
 * (formats/hf_tokenizer.c), checked against llama.cpp's own conversion of
 * stories260K and against the GPT-2 "slow" tokenizer files (vocab.json,
 * merges.txt) that ship beside tokenizer.json. */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"
#include "testutil.h"

/* ---- helpers --------------------------------------------------------------- */

static char *write_dir(const char *tag, const char *tokenizer_json, const char *tokenizer_config)
{
    char *dir = tu_tmpdir(tag);
    if (tokenizer_json) {
        char *p = tu_path(dir, "tokenizer.json");
        cr_assert_eq(tu_write_file(p, tokenizer_json, strlen(tokenizer_json)), 0);
        free(p);
    }
    if (tokenizer_config) {
        char *p = tu_path(dir, "tokenizer_config.json");
        cr_assert_eq(tu_write_file(p, tokenizer_config, strlen(tokenizer_config)), 0);
        free(p);
    }
    return dir;
}

/* Loads tokenizer_json (+ config) from a temp dir; returns the status. */
static int load_text(const char *tokenizer_json, const char *tokenizer_config, const hf_config *cfg,
                     hf_tokenizer *tok, slm_err *err)
{
    char *dir = write_dir("hftok", tokenizer_json, tokenizer_config);
    int rc = hf_tokenizer_load(dir, cfg, tok, err);
    tu_rmtree(dir);
    free(dir);
    return rc;
}

/* A small byte-level tokenizer; MERGES and PRE are spliced in. */
#define GPT2_JSON(MERGES, PRE)                                                                                 \
    "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":6,\"content\":\"<|endoftext|>\",\"special\":true},"        \
    "{\"id\":7,\"content\":\"<extra>\",\"special\":false}],"                                                  \
    "\"normalizer\":null,\"pre_tokenizer\":" PRE ",\"post_processor\":null,"                                    \
    "\"decoder\":{\"type\":\"ByteLevel\"},"                                                                    \
    "\"model\":{\"type\":\"BPE\",\"byte_fallback\":false,\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"\\u0120\":3,"  \
    "\"\\u0120a\":4,\"a b\":5},\"merges\":" MERGES "}}"
#define BYTELEVEL_PRE "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}"

/* ---- stories260K vs llama.cpp's GGUF ------------------------------------- */

static const gguf_kv *kv_arr(const gguf_file *g, const char *key, uint32_t arr_type)
{
    int64_t k = gguf_find_key(g, key);
    cr_assert_geq(k, 0, "%s missing from the GGUF", key);
    const gguf_kv *kv = &g->kv[k];
    cr_assert_eq(kv->type, GGUF_T_ARRAY, "%s", key);
    cr_assert_eq(kv->arr_type, arr_type, "%s", key);
    return kv;
}

static int64_t kv_int(const gguf_file *g, const char *key)
{
    int64_t v;
    cr_assert_eq(gguf_get_int(g, key, &v), 0, "%s", key);
    return v;
}

Test(hftokenizer, stories260k_matches_llamacpp_gguf)
{
    gguf_file *g;
    slm_err err = {0};
    cr_assert_eq(gguf_open(tu_model("gguf/stories260K.gguf"), &g, &err), SLM_OK, "%s", err.msg);

    hf_tokenizer tok;
    cr_assert_eq(hf_tokenizer_load(tu_model("stories260k"), NULL, &tok, &err), SLM_OK, "%s", err.msg);
    cr_assert_str_eq(tok.model, "llama");
    cr_assert_str_eq(tok.pre, "default");
    cr_assert_eq(tok.n_tokens, 512);
    cr_assert_null(tok.merges);
    cr_assert_eq(tok.n_merges, 0);
    cr_assert_not_null(tok.scores);

    gguf_str model;
    cr_assert_eq(gguf_get_str(g, "tokenizer.ggml.model", &model), 0);
    cr_assert(model.len == strlen(tok.model) && !memcmp(model.ptr, tok.model, model.len));

    const gguf_kv *kt = kv_arr(g, "tokenizer.ggml.tokens", GGUF_T_STRING);
    const gguf_kv *ks = kv_arr(g, "tokenizer.ggml.scores", GGUF_T_FLOAT32);
    const gguf_kv *ky = kv_arr(g, "tokenizer.ggml.token_type", GGUF_T_INT32);
    cr_assert_eq(kt->arr_n, 512);
    cr_assert_eq(ks->arr_n, 512);
    cr_assert_eq(ky->arr_n, 512);
    for (uint32_t i = 0; i < 512; i++) {
        gguf_str s;
        cr_assert_eq(gguf_arr_str(kt, i, &s), 0);
        cr_assert_eq(strlen(tok.tokens[i]), s.len, "token %u length", i);
        cr_assert(memcmp(tok.tokens[i], s.ptr, s.len) == 0, "token %u: '%s'", i, tok.tokens[i]);
        float want = (float)gguf_arr_num(ks, i);
        cr_assert_eq(tok.scores[i], want, "token %u score %g, llama.cpp %g", i, tok.scores[i], want);
        int32_t want_type = (int32_t)gguf_arr_num(ky, i);
        cr_assert_eq(tok.types[i], want_type, "token %u type %d, llama.cpp %d", i, tok.types[i], want_type);
    }
    /* The spot checks of the brief, independent of the loop above. */
    cr_assert_str_eq(tok.tokens[259], "\xe2\x96\x81t");
    cr_assert(tok.scores[259] == 0.0f && signbit(tok.scores[259]), "first normal piece scores -0.0");
    cr_assert_eq(tok.scores[260], -1.0f);
    cr_assert_eq(tok.scores[511], -252.0f);
    cr_assert_eq(tok.types[0], SLM_TOK_UNKNOWN);
    cr_assert_eq(tok.types[1], SLM_TOK_CONTROL);
    cr_assert_eq(tok.types[3], SLM_TOK_BYTE);

    cr_assert_eq(tok.bos_id, kv_int(g, "tokenizer.ggml.bos_token_id"));
    cr_assert_eq(tok.eos_id, kv_int(g, "tokenizer.ggml.eos_token_id"));
    cr_assert_eq(tok.unk_id, kv_int(g, "tokenizer.ggml.unknown_token_id"));
    cr_assert_eq(tok.bos_id, 1);
    cr_assert_eq(tok.eos_id, 2);
    cr_assert_eq(tok.unk_id, 0);
    cr_assert_eq(tok.pad_id, -1);
    cr_assert_eq(tok.add_bos, 1);
    cr_assert_eq(tok.add_eos, 0);
    hf_tokenizer_free(&tok);
    gguf_close(g);
}

Test(hftokenizer, stories260k_add_bos_from_template_when_config_silent)
{
    /* Without tokenizer_config.json, add_bos comes from the TemplateProcessing
     * post-processor and bos/eos from generation_config.json. */
    size_t n;
    char *json = tu_read_file(tu_model("stories260k/tokenizer.json"), &n);
    cr_assert_not_null(json);
    char *dir = write_dir("hftok", json, NULL);
    char *gp = tu_path(dir, "generation_config.json");
    const char *gen = "{\"bos_token_id\": 1, \"eos_token_id\": [2, 1]}";
    cr_assert_eq(tu_write_file(gp, gen, strlen(gen)), 0);
    hf_tokenizer tok;
    slm_err err = {0};
    cr_assert_eq(hf_tokenizer_load(dir, NULL, &tok, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(tok.add_bos, 1);
    cr_assert_eq(tok.add_eos, -1);
    cr_assert_eq(tok.bos_id, 1);
    cr_assert_eq(tok.eos_id, 2);
    cr_assert_eq(tok.unk_id, 0); /* model.unk_token */
    hf_tokenizer_free(&tok);
    tu_rmtree(dir);
    free(dir);
    free(gp);
    free(json);
}

Test(hftokenizer, padded_embedding_gets_pad_tokens)
{
    hf_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.n_vocab = 515;
    cfg.bos_id = cfg.eos_id = -1;
    hf_tokenizer tok;
    slm_err err = {0};
    cr_assert_eq(hf_tokenizer_load(tu_model("stories260k"), &cfg, &tok, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(tok.n_tokens, 515);
    cr_assert_str_eq(tok.tokens[512], "[PAD512]");
    cr_assert_str_eq(tok.tokens[514], "[PAD514]");
    cr_assert_eq(tok.types[514], SLM_TOK_UNUSED);
    cr_assert_eq(tok.scores[511], -252.0f);
    hf_tokenizer_free(&tok);

    cfg.n_vocab = 500; /* smaller than the tokenizer: refused */
    cr_assert_eq(hf_tokenizer_load(tu_model("stories260k"), &cfg, &tok, &err), SLM_EINPUT);
    cr_assert(strstr(err.msg, "vocab_size"), "%s", err.msg);
    cr_assert_null(tok.tokens);
}

/* ---- tinystories-gpt2 vs its slow-tokenizer files -------------------------- */

Test(hftokenizer, tinystories_gpt2)
{
    hf_tokenizer tok;
    slm_err err = {0};
    cr_assert_eq(hf_tokenizer_load(tu_model("tinystories-gpt2"), NULL, &tok, &err), SLM_OK, "%s", err.msg);
    cr_assert_str_eq(tok.model, "gpt2");
    cr_assert_str_eq(tok.pre, "gpt-2");
    cr_assert_eq(tok.n_tokens, 1000);
    cr_assert_null(tok.scores);
    cr_assert_eq(tok.n_merges, 743);
    cr_assert_str_eq(tok.tokens[999], "<|endoftext|>");
    cr_assert_eq(tok.types[999], SLM_TOK_CONTROL);
    for (int i = 0; i < 999; i++)
        cr_assert_eq(tok.types[i], SLM_TOK_NORMAL, "token %d", i);
    cr_assert_eq(tok.bos_id, 999);
    cr_assert_eq(tok.eos_id, 999);
    cr_assert_eq(tok.unk_id, 999);
    cr_assert_eq(tok.pad_id, -1);
    cr_assert_eq(tok.add_bos, 0); /* tokenizer_config.json says false */
    cr_assert_eq(tok.add_eos, -1);

    /* Every merge equals merges.txt line i+2 (line 1 is "#version"). */
    size_t n;
    char *txt = tu_read_file(tu_model("tinystories-gpt2/merges.txt"), &n);
    cr_assert_not_null(txt);
    char *save = NULL, *line = strtok_r(txt, "\n", &save);
    cr_assert(line && !strncmp(line, "#version", 8));
    uint32_t k = 0;
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        cr_assert_lt(k, tok.n_merges);
        cr_assert_str_eq(tok.merges[k], line, "merge %u", k);
        k++;
    }
    cr_assert_eq(k, 743);
    cr_assert_str_eq(tok.merges[0], "\xc4\xa0 t"); /* "Ġ t" */
    free(txt);

    /* Every token equals vocab.json's string for that id. */
    char *vj = tu_read_file(tu_model("tinystories-gpt2/vocab.json"), &n);
    cr_assert_not_null(vj);
    cJSON *v = cJSON_Parse(vj);
    cr_assert_not_null(v);
    int seen = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        int id = it->valueint;
        cr_assert(id >= 0 && id < 1000);
        cr_assert_str_eq(tok.tokens[id], it->string, "token %d", id);
        seen++;
    }
    cr_assert_eq(seen, 1000);
    cJSON_Delete(v);
    free(vj);
    hf_tokenizer_free(&tok);
}

/* ---- synthetic tokenizers ---------------------------------------------------- */

Test(hftokenizer, both_merge_encodings_accepted)
{
    hf_tokenizer t1, t2;
    slm_err err = {0};
    cr_assert_eq(load_text(GPT2_JSON("[\"a b\",\"\\u0120 a\"]", BYTELEVEL_PRE), NULL, NULL, &t1, &err), SLM_OK,
                 "%s", err.msg);
    cr_assert_eq(load_text(GPT2_JSON("[[\"a\",\"b\"],[\"\\u0120\",\"a\"]]", BYTELEVEL_PRE), NULL, NULL, &t2, &err),
                 SLM_OK, "%s", err.msg);
    cr_assert_eq(t1.n_merges, 2);
    cr_assert_eq(t2.n_merges, 2);
    for (int i = 0; i < 2; i++)
        cr_assert_str_eq(t1.merges[i], t2.merges[i]);
    cr_assert_str_eq(t1.merges[1], "\xc4\xa0 a");
    cr_assert_eq(t1.n_tokens, 8);
    cr_assert_eq(t1.types[6], SLM_TOK_CONTROL);
    cr_assert_eq(t1.types[7], SLM_TOK_USER_DEFINED);
    cr_assert_eq(t1.types[5], SLM_TOK_NORMAL);
    hf_tokenizer_free(&t1);
    hf_tokenizer_free(&t2);

    /* A pair whose part holds a space is written with U+0120, like llama.cpp. */
    cr_assert_eq(load_text(GPT2_JSON("[[\"a b\",\"\\u0120a\"]]", BYTELEVEL_PRE), NULL, NULL, &t1, &err),
                 SLM_EINPUT); /* "a bĠa" is not in the vocab */
    cr_assert(strstr(err.msg, "merge 0"), "%s", err.msg);
}

Test(hftokenizer, merge_with_space_in_part)
{
    const char *json =
        "{\"added_tokens\":[],\"pre_tokenizer\":" BYTELEVEL_PRE ",\"decoder\":{\"type\":\"ByteLevel\"},"
        "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\" \":1,\"a \":2,\"b\":3,\"a b\":4},"
        "\"merges\":[[\"a\",\" \"],[\"a \",\"b\"]]}}";
    hf_tokenizer tok;
    slm_err err = {0};
    cr_assert_eq(load_text(json, NULL, NULL, &tok, &err), SLM_OK, "%s", err.msg);
    cr_assert_str_eq(tok.merges[0], "a \xc4\xa0");
    cr_assert_str_eq(tok.merges[1], "a\xc4\xa0 b");
    hf_tokenizer_free(&tok);
}

Test(hftokenizer, special_ids_from_objects_and_maps)
{
    const char *cfgj = "{\"bos_token\":{\"content\":\"<|endoftext|>\",\"lstrip\":false},"
                       "\"eos_token\":\"ab\",\"pad_token\":null,\"add_eos_token\":true}";
    hf_tokenizer tok;
    slm_err err = {0};
    cr_assert_eq(load_text(GPT2_JSON("[\"a b\"]", BYTELEVEL_PRE), cfgj, NULL, &tok, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(tok.bos_id, 6);
    cr_assert_eq(tok.eos_id, 2); /* found through the vocabulary */
    cr_assert_eq(tok.pad_id, -1);
    cr_assert_eq(tok.unk_id, -1);
    cr_assert_eq(tok.add_bos, -1);
    cr_assert_eq(tok.add_eos, 1);
    hf_tokenizer_free(&tok);

    /* special_tokens_map.json fills what tokenizer_config.json leaves out. */
    char *dir = write_dir("hftok", GPT2_JSON("[\"a b\"]", BYTELEVEL_PRE), "{\"eos_token\":\"ab\"}");
    char *p = tu_path(dir, "special_tokens_map.json");
    const char *map = "{\"bos_token\":\"<extra>\",\"eos_token\":\"a\",\"pad_token\":{\"content\":\"b\"}}";
    cr_assert_eq(tu_write_file(p, map, strlen(map)), 0);
    cr_assert_eq(hf_tokenizer_load(dir, NULL, &tok, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(tok.bos_id, 7);
    cr_assert_eq(tok.eos_id, 2);
    cr_assert_eq(tok.pad_id, 1);
    hf_tokenizer_free(&tok);
    tu_rmtree(dir);
    free(dir);
    free(p);
}

Test(hftokenizer, pre_tokenizer_names)
{
    hf_tokenizer tok;
    slm_err err = {0};
    const char *qwen = "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
                       "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}"
                       "\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":\"Isolated\","
                       "\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":false,"
                       "\"use_regex\":false}]}";
    char *json = malloc(4096);
    snprintf(json, 4096, GPT2_JSON("[\"a b\"]", "%s"), qwen);
    cr_assert_eq(load_text(json, NULL, NULL, &tok, &err), SLM_OK, "%s", err.msg);
    cr_assert_str_eq(tok.pre, "qwen2");
    hf_tokenizer_free(&tok);

    const char *smol = "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true},"
                       "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}]}";
    snprintf(json, 4096, GPT2_JSON("[\"a b\"]", "%s"), smol);
    cr_assert_eq(load_text(json, NULL, NULL, &tok, &err), SLM_OK, "%s", err.msg);
    cr_assert_str_eq(tok.pre, "smollm");
    hf_tokenizer_free(&tok);

    const char *odd = "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"x+\"},"
                      "\"behavior\":\"Isolated\"},{\"type\":\"ByteLevel\",\"use_regex\":false}]}";
    snprintf(json, 4096, GPT2_JSON("[\"a b\"]", "%s"), odd);
    cr_assert_eq(load_text(json, NULL, NULL, &tok, &err), SLM_EINPUT);
    cr_assert(strstr(err.msg, "x+"), "%s", err.msg);
    free(json);
}

/* ---- refusals ------------------------------------------------------------------ */

Test(hftokenizer, missing_file)
{
    char *dir = tu_tmpdir("hftok");
    hf_tokenizer tok;
    slm_err err = {0};
    cr_assert_eq(hf_tokenizer_load(dir, NULL, &tok, &err), SLM_EIO);
    cr_assert(strstr(err.msg, "tokenizer.json: cannot open: "), "%s", err.msg);
    cr_assert(strstr(err.msg, dir), "%s", err.msg);
    tu_rmtree(dir);
    free(dir);
}

Test(hftokenizer, malformed_json)
{
    hf_tokenizer tok;
    slm_err err = {0};
    cr_assert_eq(load_text("{\"model\": {\"type\": \"BPE\", ", NULL, NULL, &tok, &err), SLM_EINPUT);
    cr_assert(strstr(err.msg, "tokenizer.json: malformed JSON"), "%s", err.msg);
    /* An optional file that is present but broken is refused by name too. */
    cr_assert_eq(load_text(GPT2_JSON("[]", BYTELEVEL_PRE), "{oops", NULL, &tok, &err), SLM_EINPUT);
    cr_assert(strstr(err.msg, "tokenizer_config.json: malformed JSON"), "%s", err.msg);
}

Test(hftokenizer, unsupported_models_refused_by_name)
{
    hf_tokenizer tok;
    slm_err err = {0};
    cr_assert_eq(load_text("{\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"vocab\":[[\"<unk>\",0.0]]}}", NULL, NULL,
                           &tok, &err),
                 SLM_EINPUT);
    cr_assert(strstr(err.msg, "'Unigram'"), "%s", err.msg);
    cr_assert_eq(load_text("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}}", NULL, NULL, &tok, &err),
                 SLM_EINPUT);
    cr_assert(strstr(err.msg, "'WordPiece'"), "%s", err.msg);
    /* A BPE model that is neither family. */
    cr_assert_eq(load_text("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}", NULL, NULL, &tok, &err),
                 SLM_EINPUT);
    cr_assert(strstr(err.msg, "neither"), "%s", err.msg);
}

Test(hftokenizer, bad_vocab_refused)
{
    hf_tokenizer tok;
    slm_err err = {0};
    /* duplicate id */
    const char *dup = "{\"pre_tokenizer\":" BYTELEVEL_PRE ",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0}}}";
    cr_assert_eq(load_text(dup, NULL, NULL, &tok, &err), SLM_EINPUT);
    cr_assert(strstr(err.msg, "id 0 is used by both 'a' and 'b'"), "%s", err.msg);
    /* duplicate string (JSON object with a repeated key) */
    const char *dups = "{\"pre_tokenizer\":" BYTELEVEL_PRE ",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"a\":1}}}";
    cr_assert_eq(load_text(dups, NULL, NULL, &tok, &err), SLM_EINPUT);
    cr_assert(strstr(err.msg, "appears twice"), "%s", err.msg);
    /* vocab not an object */
    const char *arr = "{\"pre_tokenizer\":" BYTELEVEL_PRE ",\"model\":{\"type\":\"BPE\",\"vocab\":[\"a\"]}}";
    cr_assert_eq(load_text(arr, NULL, NULL, &tok, &err), SLM_EINPUT);
    cr_assert(strstr(err.msg, "vocab is not an object"), "%s", err.msg);
    /* ids not integers / negative / above the cap */
    const char *bad[] = {"1.5", "-1", "\"3\"", "10000000", "1e300"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"pre_tokenizer\":" BYTELEVEL_PRE ",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"zz\":%s}}}",
                 bad[i]);
        cr_assert_eq(load_text(json, NULL, NULL, &tok, &err), SLM_EINPUT, "id %s", bad[i]);
        cr_assert(strstr(err.msg, "'zz': id is not an integer"), "%s", err.msg);
    }
    /* added token disagreeing with the vocab */
    const char *clash = "{\"added_tokens\":[{\"id\":0,\"content\":\"<x>\",\"special\":true}],\"pre_tokenizer\":"
                        BYTELEVEL_PRE ",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}}}";
    cr_assert_eq(load_text(clash, NULL, NULL, &tok, &err), SLM_EINPUT);
    cr_assert(strstr(err.msg, "'<x>'"), "%s", err.msg);
}

Test(hftokenizer, gaps_are_padded)
{
    const char *gap = "{\"pre_tokenizer\":" BYTELEVEL_PRE ",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":3}}}";
    hf_tokenizer tok;
    slm_err err = {0};
    cr_assert_eq(load_text(gap, NULL, NULL, &tok, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(tok.n_tokens, 4);
    cr_assert_str_eq(tok.tokens[1], "[PAD1]");
    cr_assert_eq(tok.types[2], SLM_TOK_UNUSED);
    cr_assert_str_eq(tok.tokens[3], "b");
    cr_assert_eq(tok.n_merges, 0);
    hf_tokenizer_free(&tok);
}

Test(hftokenizer, too_sparse_ids_refused)
{
    /* 67 bytes must not make us build ten million [PAD] tokens */
    const char *sparse =
        "{\"pre_tokenizer\":" BYTELEVEL_PRE ",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":9999999}}}";
    hf_tokenizer tok;
    slm_err err = {0};
    cr_assert_eq(load_text(sparse, NULL, NULL, &tok, &err), SLM_EINPUT);
    cr_assert(strstr(err.msg, "too sparse") != NULL, "%s", err.msg);
}

Test(hftokenizer, merge_naming_unknown_token)
{
    hf_tokenizer tok;
    slm_err err = {0};
    cr_assert_eq(load_text(GPT2_JSON("[\"a b\",\"a q\"]", BYTELEVEL_PRE), NULL, NULL, &tok, &err), SLM_EINPUT);
    cr_assert(strstr(err.msg, "merge 1 ('a' 'q') names a token not in the vocab"), "%s", err.msg);
    cr_assert_eq(load_text(GPT2_JSON("[[\"zz\",\"a\"]]", BYTELEVEL_PRE), NULL, NULL, &tok, &err), SLM_EINPUT);
    cr_assert(strstr(err.msg, "not in the vocab"), "%s", err.msg);
    cr_assert_eq(load_text(GPT2_JSON("[\"ab\"]", BYTELEVEL_PRE), NULL, NULL, &tok, &err), SLM_EINPUT);
    cr_assert(strstr(err.msg, "is not \"a b\""), "%s", err.msg);
    cr_assert_eq(load_text(GPT2_JSON("[[\"a\"]]", BYTELEVEL_PRE), NULL, NULL, &tok, &err), SLM_EINPUT);
    cr_assert_eq(load_text(GPT2_JSON("{}", BYTELEVEL_PRE), NULL, NULL, &tok, &err), SLM_EINPUT);
}

Test(hftokenizer, gpt2_user_defined_tokens)
{
    /* Non-special added tokens are USER_DEFINED with "▁" written as a space
     * (llama.cpp does so); "<|...|>" spellings count as control tokens. */
    const char *json =
        "{\"added_tokens\":[{\"id\":2,\"content\":\"\\u2581hi\\u2581\",\"special\":false},"
        "{\"id\":3,\"content\":\"<|im_end|>\",\"special\":false}],"
        "\"pre_tokenizer\":" BYTELEVEL_PRE ",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[]}}";
    hf_tokenizer tok;
    slm_err err = {0};
    cr_assert_eq(load_text(json, NULL, NULL, &tok, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(tok.n_tokens, 4);
    cr_assert_str_eq(tok.tokens[2], " hi ");
    cr_assert_eq(tok.types[2], SLM_TOK_USER_DEFINED);
    cr_assert_str_eq(tok.tokens[3], "<|im_end|>");
    cr_assert_eq(tok.types[3], SLM_TOK_CONTROL);
    hf_tokenizer_free(&tok);
}

/* ---- today's families: the tokenizer.* keys llama.cpp's converter writes ----------------
 * Expected from convert_hf_to_gguf.py (conversion/{llama,qwen,gemma,phi}.py, base.py) and
 * gguf-py/gguf/vocab.py (SpecialVocab): Llama 3 and Qwen take _set_vocab_gpt2 (model gpt2,
 * tokens, token types, merges; pre from the hash table: llama-bpe, qwen2), Gemma 3 and Phi-3
 * their SentencePiece paths (model llama, pre default, scores; Gemma 3 adds add_space_prefix
 * false); SpecialVocab adds the special ids found in tokenizer_config.json / config.json,
 * add_bos/add_sep/add_eos from the post-processor and tokenizer_config.json, and the chat
 * template. */
#include "interop.h"
#include "tok_families.h"

typedef struct want_kv { const char *key; int64_t val; } want_kv; /* val: id or bool; -1: present, any value */

static const struct {
    const want_kv kv[16];
} WANT[4] = {
    {{{"tokenizer.ggml.model", -1}, {"tokenizer.ggml.pre", -1}, {"tokenizer.ggml.tokens", -1},
      {"tokenizer.ggml.token_type", -1}, {"tokenizer.ggml.merges", -1}, {"tokenizer.ggml.bos_token_id", 128000},
      {"tokenizer.ggml.eos_token_id", 128009}, {"tokenizer.ggml.add_bos_token", 1}, {"tokenizer.ggml.add_sep_token", 0},
      {"tokenizer.chat_template", -1}}},
    {{{"tokenizer.ggml.model", -1}, {"tokenizer.ggml.pre", -1}, {"tokenizer.ggml.tokens", -1},
      {"tokenizer.ggml.token_type", -1}, {"tokenizer.ggml.merges", -1}, {"tokenizer.ggml.bos_token_id", 151643},
      {"tokenizer.ggml.eos_token_id", 151645}, {"tokenizer.ggml.padding_token_id", 151643},
      {"tokenizer.ggml.add_bos_token", 0}, {"tokenizer.chat_template", -1}}},
    {{{"tokenizer.ggml.model", -1}, {"tokenizer.ggml.pre", -1}, {"tokenizer.ggml.tokens", -1},
      {"tokenizer.ggml.scores", -1}, {"tokenizer.ggml.token_type", -1}, {"tokenizer.ggml.add_space_prefix", 0},
      {"tokenizer.ggml.bos_token_id", 2}, {"tokenizer.ggml.eos_token_id", 106}, {"tokenizer.ggml.unknown_token_id", 3},
      {"tokenizer.ggml.padding_token_id", 0}, {"tokenizer.ggml.add_bos_token", 1}, {"tokenizer.ggml.add_sep_token", 0},
      {"tokenizer.ggml.add_eos_token", 0}, {"tokenizer.chat_template", -1}}},
    {{{"tokenizer.ggml.model", -1}, {"tokenizer.ggml.pre", -1}, {"tokenizer.ggml.tokens", -1},
      {"tokenizer.ggml.scores", -1}, {"tokenizer.ggml.token_type", -1}, {"tokenizer.ggml.bos_token_id", 1},
      {"tokenizer.ggml.eos_token_id", 32000}, {"tokenizer.ggml.unknown_token_id", 0},
      {"tokenizer.ggml.padding_token_id", 32000}, {"tokenizer.ggml.add_bos_token", 0},
      {"tokenizer.ggml.add_sep_token", 0}, {"tokenizer.ggml.add_eos_token", 0}, {"tokenizer.chat_template", -1}}},
};

static void check_family_keys(int fi)
{
    const tok_family *f = &TOK_FAMILIES[fi];
    char *dir = tokfam_dir(f);
    if (!dir) return;
    char *path = tokfam_gguf(f, dir);
    gguf_file *g;
    slm_err err = {0};
    cr_assert_eq(gguf_open(path, &g, &err), 0, "%s", err.msg);
    /* exactly the expected tokenizer.* keys */
    size_t n_want = 0;
    while (n_want < 16 && WANT[fi].kv[n_want].key) n_want++;
    size_t n_tok_keys = 0;
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (!strncmp(g->kv[i].key, "tokenizer.", 10)) {
            n_tok_keys++;
            int found = 0;
            for (size_t k = 0; k < n_want; k++) found |= !strcmp(WANT[fi].kv[k].key, g->kv[i].key);
            cr_expect(found, "%s: key %s is not one llama.cpp's converter writes", f->name, g->kv[i].key);
        }
    cr_assert_eq(n_tok_keys, n_want, "%s: %zu tokenizer keys, llama.cpp writes %zu", f->name, n_tok_keys, n_want);
    for (size_t k = 0; k < n_want; k++) {
        const want_kv *w = &WANT[fi].kv[k];
        cr_assert_geq(gguf_find_key(g, w->key), 0, "%s: %s missing", f->name, w->key);
        const gguf_kv *kv = &g->kv[gguf_find_key(g, w->key)];
        int64_t got = kv->type == GGUF_T_BOOL ? (int64_t)kv->raw[0] : w->val >= 0 ? kv_int(g, w->key) : -1;
        if (w->val >= 0) cr_expect_eq(got, w->val, "%s: %s = %lld, llama.cpp writes %lld", f->name, w->key,
                                      (long long)got, (long long)w->val);
    }
    gguf_str s;
    cr_assert_eq(gguf_get_str(g, "tokenizer.ggml.model", &s), 0);
    cr_assert(s.len == strlen(f->model) && !memcmp(s.ptr, f->model, s.len), "%s: model", f->name);
    cr_assert_eq(gguf_get_str(g, "tokenizer.ggml.pre", &s), 0);
    cr_assert(s.len == strlen(f->pre) && !memcmp(s.ptr, f->pre, s.len), "%s: pre '%.*s', llama.cpp writes '%s'",
              f->name, (int)s.len, s.ptr, f->pre);
    const gguf_kv *kt = kv_arr(g, "tokenizer.ggml.tokens", GGUF_T_STRING);
    cr_assert_eq(kt->arr_n, (uint64_t)f->n_vocab, "%s: one token per embedding row", f->name);
    /* the chat template is tokenizer_config.json's, byte for byte */
    cr_assert_eq(gguf_get_str(g, "tokenizer.chat_template", &s), 0);
    char *tcp = tu_path(dir, "tokenizer_config.json");
    size_t n;
    char *tc = tu_read_file(tcp, &n);
    cJSON *j = cJSON_Parse(tc);
    const char *ct = cJSON_GetStringValue(cJSON_GetObjectItem(j, "chat_template"));
    cr_assert(ct && s.len == strlen(ct) && !memcmp(s.ptr, ct, s.len), "%s: chat template differs", f->name);
    cJSON_Delete(j);
    free(tc);
    free(tcp);
    gguf_close(g);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static void check_token(const hf_tokenizer *t, uint32_t id, const char *text, int type, float score, int check_score)
{
    cr_assert_str_eq(t->tokens[id], text, "token %u", id);
    cr_assert_eq(t->types[id], type, "token %u ('%s') type %d, want %d", id, text, t->types[id], type);
    if (check_score) cr_assert_eq(t->scores[id], score, "token %u score %g, want %g", id, t->scores[id], score);
}

static hf_tokenizer load_family(int fi, char **dir)
{
    const tok_family *f = &TOK_FAMILIES[fi];
    *dir = tokfam_dir(f);
    hf_config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.hf_arch, sizeof cfg.hf_arch, "%s", f->hf_arch);
    cfg.n_vocab = f->n_vocab;
    cfg.bos_id = cfg.eos_id = -1;
    hf_tokenizer t;
    slm_err err = {0};
    cr_assert_eq(hf_tokenizer_load(*dir, &cfg, &t, &err), 0, "%s", err.msg);
    return t;
}

Test(hftokenizer, llama3_keys_as_llama_cpp, .timeout = 120)
{
    check_family_keys(0);
    char *dir;
    hf_tokenizer t = load_family(0, &dir);
    check_token(&t, 128000, "<|begin_of_text|>", SLM_TOK_CONTROL, 0, 0);
    check_token(&t, 128009, "<|eot_id|>", SLM_TOK_CONTROL, 0, 0);
    check_token(&t, 128255, "<|reserved_special_token_250|>", SLM_TOK_CONTROL, 0, 0);
    check_token(&t, 220, "\xc4\xa0", SLM_TOK_NORMAL, 0, 0);
    cr_assert_eq(t.n_merges, 280147);
    cr_assert_str_eq(t.merges[0], "\xc4\xa0 \xc4\xa0");
    hf_tokenizer_free(&t);
    tu_rmtree(dir);
    free(dir);
}

Test(hftokenizer, qwen3_keys_as_llama_cpp, .timeout = 120)
{
    check_family_keys(1);
    char *dir;
    hf_tokenizer t = load_family(1, &dir);
    check_token(&t, 151645, "<|im_end|>", SLM_TOK_CONTROL, 0, 0);
    check_token(&t, 151667, "<think>", SLM_TOK_USER_DEFINED, 0, 0); /* added, not special */
    check_token(&t, 151669, "[PAD151669]", SLM_TOK_UNUSED, 0, 0);   /* vocab_size 151936 > 151669 tokens */
    cr_assert_eq(t.n_merges, 151387);
    hf_tokenizer_free(&t);
    tu_rmtree(dir);
    free(dir);
}

Test(hftokenizer, gemma3_keys_as_llama_cpp, .timeout = 120)
{
    check_family_keys(2);
    char *dir;
    hf_tokenizer t = load_family(2, &dir);
    /* tokenizer_config.json's added tokens: special or special-looking -> CONTROL, else
     * USER_DEFINED with "▁" pre-normalized to spaces; all score -1000 */
    check_token(&t, 3, "<unk>", SLM_TOK_CONTROL, -1000.0f, 1);
    check_token(&t, 6, "<unused0>", SLM_TOK_CONTROL, -1000.0f, 1);
    check_token(&t, 106, "<end_of_turn>", SLM_TOK_CONTROL, -1000.0f, 1);
    check_token(&t, 107, "\n", SLM_TOK_USER_DEFINED, -1000.0f, 1);
    check_token(&t, 138, "  ", SLM_TOK_USER_DEFINED, -1000.0f, 1);
    check_token(&t, 212, "</s>", SLM_TOK_USER_DEFINED, -1000.0f, 1);
    check_token(&t, 238, "<0x00>", SLM_TOK_BYTE, 0.0f, 1);
    cr_assert_null(t.merges);
    cr_assert_eq(t.add_space_prefix, 0);
    cr_assert_eq(t.n_tokens, 262144); /* <image_soft_token> (262144) is beyond vocab_size: ignored */
    hf_tokenizer_free(&t);
    tu_rmtree(dir);
    free(dir);
}

Test(hftokenizer, phi3_keys_as_llama_cpp, .timeout = 120)
{
    check_family_keys(3);
    char *dir;
    hf_tokenizer t = load_family(3, &dir);
    /* Phi3MiniModel.set_vocab: every added token USER_DEFINED, CONTROL when special; -1000 */
    check_token(&t, 0, "<unk>", SLM_TOK_CONTROL, -1000.0f, 1);
    check_token(&t, 1, "<s>", SLM_TOK_CONTROL, -1000.0f, 1);
    check_token(&t, 32000, "<|endoftext|>", SLM_TOK_CONTROL, -1000.0f, 1);
    check_token(&t, 32007, "<|end|>", SLM_TOK_CONTROL, -1000.0f, 1);
    check_token(&t, 32010, "<|user|>", SLM_TOK_CONTROL, -1000.0f, 1);
    check_token(&t, 32011, "[PAD32011]", SLM_TOK_UNUSED, -10000.0f, 1);
    check_token(&t, 3, "<0x00>", SLM_TOK_BYTE, 0.0f, 1);
    /* Llama 2's "▁▁" pieces merge last (HF's merge order), after "▁t" */
    check_token(&t, 261, "\xe2\x96\x81t", SLM_TOK_NORMAL, -0.0f, 1);  /* merge 0 */
    check_token(&t, 259, "\xe2\x96\x81\xe2\x96\x81", SLM_TOK_NORMAL, -58876.0f, 1); /* merge 58876 of 58980 */
    hf_tokenizer_free(&t);
    tu_rmtree(dir);
    free(dir);
}
