/* tests/test_tokenizer.c — suite "tokenizer": our ids against llama.cpp's
 * (node-llama-cpp, tests/interop/tokenize.mjs) on the whole eval text and on
 * tricky strings, for a SentencePiece GGUF written by llama.cpp and a GPT-2
 * byte-level GGUF built from the tinystories-gpt2 tokenizer.json; round
 * trips (also on invalid UTF-8) and metadata validation. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "formats.h"
#include "runtime.h"
#include "interop.h"
#include "testutil.h"

/* Valid UTF-8 without NUL (they travel through JSON to llama.cpp). */
static const char *const TRICKY[] = {
    "", " ", "  ", "   ", "a", "Hello world", "Hello  world", "   leading spaces", "trailing spaces   ",
    "a\nb", "\n", "\n\n\nx", "line1\r\nline2", "\t tab\tand  tab", "123 4567 89012 3", "3.14159, 2.71828!",
    "don't you're I'll we've she'd It's", "DON'T YOU'RE", "'s 't", "\xc3\x9cn\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9 fa\xc3\xa7" "ade na\xc3\xaf" "ve",
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88",
    "emoji \xf0\x9f\x98\x80\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd family \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7",
    "mixed   spaces\n\n  and\ttabs  ", "<s> text </s>", "<unk>", "<|endoftext|>", "a<|endoftext|>b",
    "x\xc2\xa0y nbsp", "\xe2\x96\x81 lower one eighth block \xe2\x96\x81\xe2\x96\x81", "!!!???...", "$100 + 50% = ?",
    "\xf0\x9f\xa4\x96", "Once upon a time, there was a little girl named Lily.\n\nShe liked to play.",
    "  \n  \n", "end with newline\n", "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd0\xbc\xd0\xb8\xd1\x80",
};
#define N_TRICKY (sizeof TRICKY / sizeof TRICKY[0])

/* Run the oracle; returns the malloc'd stdout. When node or node-llama-cpp is missing,
 * oracle_script() skips loudly (fails under SLM_REQUIRE_ORACLE=1); never a silent pass. */
static char *run_oracle(const char *model, const char *mode, const char *file, int special)
{
    const char *script = oracle_script("tokenize.mjs");
    if (!script) return NULL;
    const char *argv[] = {"node", script, model, mode, file, special ? "--special" : NULL, NULL};
    char *out = NULL, *err = NULL;
    int rc = tu_run(&out, &err, argv);
    cr_assert_eq(rc, 0, "tokenize.mjs failed (exit %d): %s", rc, err ? err : "");
    free(err);
    return out;
}

static char *tmp_json_strings(const char *dir, const char *const *s, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(s[i]));
    char *txt = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    char *path = tu_path(dir, "strings.json");
    cr_assert_eq(tu_write_file(path, txt, strlen(txt)), 0);
    free(txt);
    return path;
}

static slm_tokenizer *load_tok(const char *path, gguf_file **gf)
{
    slm_err err = {0};
    int rc = gguf_open(path, gf, &err);
    cr_assert_eq(rc, 0, "gguf_open %s: %s", path, err.msg);
    slm_tokenizer *t = NULL;
    rc = slm_tokenizer_from_gguf(*gf, &t, &err);
    cr_assert_eq(rc, 0, "tokenizer: %s", err.msg);
    return t;
}

static void tok(const slm_tokenizer *t, const char *s, size_t n, int32_t **ids, size_t *n_ids)
{
    slm_err err = {0};
    int rc = slm_tokenize(t, s, n, 0, 0, ids, n_ids, &err);
    cr_assert_eq(rc, 0, "tokenize: %s", err.msg);
}

static void expect_ids(const cJSON *arr, const int32_t *ids, size_t n, const char *what)
{
    cr_assert(cJSON_IsArray(arr), "%s: oracle gave no array", what);
    size_t m = (size_t)cJSON_GetArraySize(arr);
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (i >= n || (int32_t)e->valuedouble != ids[i]) break;
        i++;
    }
    cr_assert(i == n && i == m, "%s: ids differ from llama.cpp at position %zu (ours %zu ids: %d, llama.cpp %zu ids: %d)",
              what, i, n, i < n ? ids[i] : -1, m, i < m ? (int)cJSON_GetArrayItem(arr, (int)i)->valuedouble : -1);
}

/* Compare ours with llama.cpp on the eval text + TRICKY, in one node run. */
static void compare_with_llama(const char *model, const char *tag)
{
    char *dir = tu_tmpdir(tag);
    size_t n_eval = 0;
    char *eval = tu_read_file(tu_corpus("tinystories-eval.txt"), &n_eval);
    cr_assert_not_null(eval, "cannot read tinystories-eval.txt");
    const char *all[N_TRICKY + 1];
    all[0] = eval;
    for (size_t i = 0; i < N_TRICKY; i++) all[i + 1] = TRICKY[i];
    char *json = tmp_json_strings(dir, all, N_TRICKY + 1);
    char *out = run_oracle(model, "--json", json, 0);
    cJSON *res = cJSON_Parse(out);
    cr_assert_not_null(res, "oracle output is not JSON");
    cr_assert_eq(cJSON_GetArraySize(res), (int)(N_TRICKY + 1));

    gguf_file *gf;
    slm_tokenizer *t = load_tok(model, &gf);
    int32_t *ids;
    size_t n;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    tok(t, eval, n_eval, &ids, &n);
    clock_gettime(CLOCK_MONOTONIC, &b);
    cr_log_info("%s: %zu bytes of eval text -> %zu tokens in %.1f ms", tag, n_eval, n,
                (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6);
    cr_assert_gt(n, n_eval / 8);
    expect_ids(cJSON_GetArrayItem(res, 0), ids, n, "eval text");
    char *back = slm_detokenize(t, ids, n, 0);
    cr_assert(back && strlen(back) == n_eval && memcmp(back, eval, n_eval) == 0, "eval text round trip differs");
    free(back);
    free(ids);
    for (size_t i = 0; i < N_TRICKY; i++) {
        char what[96];
        snprintf(what, sizeof what, "tricky string %zu", i);
        tok(t, TRICKY[i], strlen(TRICKY[i]), &ids, &n);
        expect_ids(cJSON_GetArrayItem(res, (int)i + 1), ids, n, what);
        free(ids);
    }
    slm_tokenizer_free(t);
    gguf_close(gf);
    cJSON_Delete(res);
    free(out);
    free(json);
    free(eval);
    tu_rmtree(dir);
    free(dir);
}

/* Round trips: valid UTF-8 comes back exactly; invalid bytes never crash
 * (SPM: byte fallback keeps them; GPT-2: llama.cpp turns each into U+FFFD). */
static void round_trips(const slm_tokenizer *t, int is_spm)
{
    for (size_t i = 0; i < N_TRICKY; i++) {
        int32_t *ids;
        size_t n;
        /* SPM decodes a literal U+2581 in the text as a space (so does llama.cpp) */
        if (is_spm && strstr(TRICKY[i], "\xe2\x96\x81")) continue;
        tok(t, TRICKY[i], strlen(TRICKY[i]), &ids, &n);
        char *back = slm_detokenize(t, ids, n, 0);
        cr_assert_str_eq(back, TRICKY[i], "round trip of tricky string %zu", i);
        /* the concatenated pieces give the same bytes (bar SPM's first space) */
        size_t total = 0;
        for (size_t k = 0; k < n; k++) total += slm_token_to_piece(t, ids[k], 0, NULL, 0);
        cr_assert_eq(total, strlen(back) + (is_spm && n > 0 ? 1 : 0), "piece sizes of tricky string %zu", i);
        free(back);
        free(ids);
    }
    static const char *const bad[] = {"\xff", "a\x80z", "\xc3", "\xc3(", "ab\xe2\x82", "\xed\xa0\x80 surrogate",
                                      "\xf4\x90\x80\x80 big", "\xc0\xaf overlong", "\xfe\xfe\xff end\xf0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t *ids;
        size_t n;
        tok(t, bad[i], strlen(bad[i]), &ids, &n);
        cr_assert_gt(n, 0);
        for (size_t k = 0; k < n; k++) cr_assert(ids[k] >= 0 && ids[k] < slm_tokenizer_n_vocab(t));
        char *back = slm_detokenize(t, ids, n, 0);
        cr_assert_not_null(back);
        /* llama.cpp sizes an SPM symbol by its lead byte, so a bad lead byte
         * swallows the U+2581 that stands for the next space: those bytes
         * come back raw. Otherwise byte fallback restores the input. */
        if (is_spm && i == 8) cr_assert_str_eq(back, "\xfe\xfe\xff\xe2\x96\x81" "end\xf0");
        else if (is_spm) cr_assert_str_eq(back, bad[i], "SPM byte fallback round trip of invalid string %zu", i);
        free(back);
        free(ids);
    }
}

Test(tokenizer, spm_matches_llama_cpp)
{
    compare_with_llama(tu_model("gguf/stories260K.gguf"), "tok-spm");
}

Test(tokenizer, spm_round_trips_and_pieces)
{
    gguf_file *gf;
    slm_tokenizer *t = load_tok(tu_model("gguf/stories260K.gguf"), &gf);
    cr_assert_eq(slm_tokenizer_n_vocab(t), 512);
    cr_assert_eq(slm_tokenizer_bos(t), 1);
    cr_assert_eq(slm_tokenizer_eos(t), 2);
    cr_assert(slm_tokenizer_add_bos(t));
    cr_assert(slm_tokenizer_is_eog(t, 2));
    cr_assert(!slm_tokenizer_is_eog(t, 1));
    round_trips(t, 1);

    char buf[16];
    cr_assert_eq(slm_token_to_piece(t, 1, 0, buf, sizeof buf), 0);  /* <s> is a control token */
    cr_assert_eq(slm_token_to_piece(t, 1, 1, buf, sizeof buf), 3);
    cr_assert(memcmp(buf, "<s>", 3) == 0);
    cr_assert_eq(slm_token_to_piece(t, 3 + 10, 0, buf, sizeof buf), 1); /* <0x0A> */
    cr_assert_eq(buf[0], '\n');
    cr_assert_eq(slm_token_to_piece(t, 1, 1, buf, 1), 3); /* too small: the size needed */

    /* BOS and parse_special */
    int32_t *ids;
    size_t n;
    slm_err err = {0};
    cr_assert_eq(slm_tokenize(t, "<s>hi</s>", 9, 1, 1, &ids, &n, &err), 0);
    cr_assert_geq(n, 4);
    cr_assert_eq(ids[0], 1);
    cr_assert_eq(ids[1], 1);
    cr_assert_eq(ids[n - 1], 2);
    free(ids);
    cr_assert_eq(slm_tokenize(t, "", 0, 1, 0, &ids, &n, &err), 0);
    cr_assert_eq(n, 1);
    free(ids);
    slm_tokenizer_free(t);
    gguf_close(gf);
}

/* slm_detokenize follows llama_detokenize's leading-space rule (only the
 * very first token loses its space, so after a BOS the space stays). */
Test(tokenizer, spm_detokenize_matches_llama_cpp)
{
    const char *model = tu_model("gguf/stories260K.gguf");
    gguf_file *gf;
    slm_tokenizer *t = load_tok(model, &gf);
    static const char *const texts[] = {"Once upon a time", "  two spaces", "\nnewline first", "x"};
    cJSON *seqs = cJSON_CreateArray();
    int32_t *keep[8];
    size_t keep_n[8];
    size_t k = 0;
    for (size_t i = 0; i < 4; i++) {
        for (int bos = 0; bos < 2; bos++) {
            slm_err err = {0};
            cr_assert_eq(slm_tokenize(t, texts[i], strlen(texts[i]), bos, 0, &keep[k], &keep_n[k], &err), 0);
            cJSON *a = cJSON_CreateArray();
            for (size_t j = 0; j < keep_n[k]; j++) cJSON_AddItemToArray(a, cJSON_CreateNumber(keep[k][j]));
            cJSON_AddItemToArray(seqs, a);
            k++;
        }
    }
    char *dir = tu_tmpdir("tok-detok");
    char *path = tu_path(dir, "ids.json");
    char *txt = cJSON_PrintUnformatted(seqs);
    cr_assert_eq(tu_write_file(path, txt, strlen(txt)), 0);
    char *out = run_oracle(model, "--detok", path, 0);
    cJSON *res = cJSON_Parse(out);
    cr_assert(cJSON_IsArray(res) && cJSON_GetArraySize(res) == (int)k);
    for (size_t i = 0; i < k; i++) {
        char *ours = slm_detokenize(t, keep[i], keep_n[i], 0);
        const char *theirs = cJSON_GetStringValue(cJSON_GetArrayItem(res, (int)i));
        cr_assert_not_null(theirs);
        cr_assert_str_eq(ours, theirs, "detokenize of sequence %zu", i);
        free(ours);
        free(keep[i]);
    }
    cJSON_Delete(res);
    cJSON_Delete(seqs);
    free(out);
    free(txt);
    free(path);
    tu_rmtree(dir);
    free(dir);
    slm_tokenizer_free(t);
    gguf_close(gf);
}

/* A tokenizer-only GGUF (plus the hyper-parameters llama.cpp's vocab-only
 * loader wants) from an HF directory, through formats' hf_tokenizer_load. */
static char *build_tok_gguf(const char *hf_dir, const char *dir, const char *pre_override)
{
    slm_err err = {0};
    hf_config cfg;
    cr_assert_eq(hf_config_load(hf_dir, &cfg, &err), 0, "%s", err.msg);
    hf_tokenizer tk;
    cr_assert_eq(hf_tokenizer_load(hf_dir, &cfg, &tk, &err), 0, "%s", err.msg);
    gguf_writer *w = gguf_writer_new();
    char key[128];
    const char *arch = cfg.gguf_arch;
    int rc = 0;
    rc |= gguf_set_str(w, "general.architecture", arch);
    rc |= gguf_set_str(w, "general.name", "tokenizer test");
    snprintf(key, sizeof key, "%s.context_length", arch);
    rc |= gguf_set_u32(w, key, (uint32_t)cfg.n_ctx);
    snprintf(key, sizeof key, "%s.embedding_length", arch);
    rc |= gguf_set_u32(w, key, (uint32_t)cfg.n_embd);
    snprintf(key, sizeof key, "%s.feed_forward_length", arch);
    rc |= gguf_set_u32(w, key, (uint32_t)cfg.n_ff);
    snprintf(key, sizeof key, "%s.block_count", arch);
    rc |= gguf_set_u32(w, key, (uint32_t)cfg.n_layer);
    snprintf(key, sizeof key, "%s.attention.head_count", arch);
    rc |= gguf_set_u32(w, key, (uint32_t)cfg.n_head);
    snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
    rc |= gguf_set_u32(w, key, (uint32_t)cfg.n_head_kv);
    snprintf(key, sizeof key, cfg.arch == SLM_ARCH_GPT2 ? "%s.attention.layer_norm_epsilon"
                                                         : "%s.attention.layer_norm_rms_epsilon", arch);
    rc |= gguf_set_f32(w, key, (float)cfg.norm_eps);
    rc |= gguf_set_str(w, "tokenizer.ggml.model", tk.model);
    rc |= gguf_set_str(w, "tokenizer.ggml.pre", pre_override ? pre_override : tk.pre);
    rc |= gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tk.tokens, tk.n_tokens);
    if (tk.scores) rc |= gguf_set_arr_f32(w, "tokenizer.ggml.scores", tk.scores, tk.n_tokens);
    rc |= gguf_set_arr_i32(w, "tokenizer.ggml.token_type", tk.types, tk.n_tokens);
    if (tk.merges) rc |= gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)tk.merges, tk.n_merges);
    if (tk.bos_id >= 0) rc |= gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)tk.bos_id);
    if (tk.eos_id >= 0) rc |= gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)tk.eos_id);
    if (tk.unk_id >= 0) rc |= gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)tk.unk_id);
    if (tk.add_bos >= 0) rc |= gguf_set_bool(w, "tokenizer.ggml.add_bos_token", tk.add_bos);
    cr_assert_eq(rc, 0, "gguf writer refused a key");
    char *path = tu_path(dir, "tok.gguf");
    cr_assert_eq(gguf_writer_begin(w, path, &err), 0, "%s", err.msg);
    cr_assert_eq(gguf_writer_finish(w, &err), 0, "%s", err.msg);
    gguf_writer_free(w);
    hf_tokenizer_free(&tk);
    return path;
}

Test(tokenizer, gpt2_matches_llama_cpp, .timeout = 120)
{
    char *dir = tu_tmpdir("tok-gpt2");
    char *path = build_tok_gguf(tu_model("tinystories-gpt2"), dir, NULL);
    compare_with_llama(path, "tok-gpt2");
    free(path);
    tu_rmtree(dir);
    free(dir);
}

/* The same SPM vocabulary, converted by slmkit from the HF tokenizer.json. */
Test(tokenizer, spm_from_hf_matches_llama_cpp, .timeout = 120)
{
    char *dir = tu_tmpdir("tok-spmhf");
    char *path = build_tok_gguf(tu_model("stories260k"), dir, NULL);
    compare_with_llama(path, "tok-spm-hf");
    free(path);
    tu_rmtree(dir);
    free(dir);
}

Test(tokenizer, gpt2_round_trips)
{
    char *dir = tu_tmpdir("tok-gpt2rt");
    char *path = build_tok_gguf(tu_model("tinystories-gpt2"), dir, NULL);
    gguf_file *gf;
    slm_tokenizer *t = load_tok(path, &gf);
    cr_assert_eq(slm_tokenizer_n_vocab(t), 1000);
    cr_assert(slm_tokenizer_is_eog(t, 999));
    round_trips(t, 0);
    /* invalid bytes become U+FFFD, as in llama.cpp */
    int32_t *ids;
    size_t n;
    tok(t, "a\xff" "b", 3, &ids, &n);
    char *back = slm_detokenize(t, ids, n, 0);
    cr_assert_str_eq(back, "a\xef\xbf\xbd" "b");
    free(back);
    free(ids);
    /* special token text: plain text unless parse_special */
    slm_err err = {0};
    cr_assert_eq(slm_tokenize(t, "x<|endoftext|>", 14, 0, 1, &ids, &n, &err), 0);
    cr_assert_eq(ids[n - 1], 999);
    free(ids);
    tok(t, "x<|endoftext|>", 14, &ids, &n);
    for (size_t i = 0; i < n; i++) cr_assert_neq(ids[i], 999);
    free(ids);
    slm_tokenizer_free(t);
    gguf_close(gf);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

/* ---- metadata validation ---------------------------------------------- */
static int open_bad(const char *dir, void (*fill)(gguf_writer *), slm_err *err)
{
    gguf_writer *w = gguf_writer_new();
    fill(w);
    char *path = tu_path(dir, "bad.gguf");
    cr_assert_eq(gguf_writer_begin(w, path, err), 0, "%s", err->msg);
    cr_assert_eq(gguf_writer_finish(w, err), 0, "%s", err->msg);
    gguf_writer_free(w);
    gguf_file *gf;
    cr_assert_eq(gguf_open(path, &gf, err), 0, "%s", err->msg);
    slm_tokenizer *t = NULL;
    int rc = slm_tokenizer_from_gguf(gf, &t, err);
    cr_assert((rc == 0) == (t != NULL));
    slm_tokenizer_free(t);
    gguf_close(gf);
    free(path);
    return rc;
}

static const char *const SMALL[] = {"<unk>", "<s>", "</s>", "a", "b", "ab"};
static void fill_base(gguf_writer *w, const char *model)
{
    gguf_set_str(w, "tokenizer.ggml.model", model);
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", SMALL, 6);
}
static void bad_scores(gguf_writer *w)
{
    static const float sc[5] = {0};
    fill_base(w, "llama");
    gguf_set_arr_f32(w, "tokenizer.ggml.scores", sc, 5);
}
static void bad_types(gguf_writer *w)
{
    static const int32_t ty[7] = {2, 3, 3, 1, 1, 1, 1};
    fill_base(w, "llama");
    gguf_set_arr_i32(w, "tokenizer.ggml.token_type", ty, 7);
}
static void bad_model(gguf_writer *w) { fill_base(w, "bert"); }
static void bad_pre(gguf_writer *w)
{
    static const char *const mg[] = {"a b"};
    fill_base(w, "gpt2");
    gguf_set_str(w, "tokenizer.ggml.pre", "no-such-pre");
    gguf_set_arr_str(w, "tokenizer.ggml.merges", mg, 1);
}
static void no_merges(gguf_writer *w)
{
    fill_base(w, "gpt2");
    gguf_set_str(w, "tokenizer.ggml.pre", "gpt-2");
}
static void bad_merge(gguf_writer *w)
{
    static const char *const mg[] = {"a b", "ab"};
    fill_base(w, "gpt2");
    gguf_set_str(w, "tokenizer.ggml.pre", "gpt-2");
    gguf_set_arr_str(w, "tokenizer.ggml.merges", mg, 2);
}
static void no_tokens(gguf_writer *w) { gguf_set_str(w, "tokenizer.ggml.model", "llama"); }
static void dup_tokens(gguf_writer *w)
{
    static const char *const tk[] = {"<unk>", "<s>", "</s>", "a", "a"};
    gguf_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", tk, 5);
}
static void good_small(gguf_writer *w)
{
    static const char *const mg[] = {"a b"};
    fill_base(w, "gpt2");
    gguf_set_str(w, "tokenizer.ggml.pre", "qwen2");
    gguf_set_arr_str(w, "tokenizer.ggml.merges", mg, 1);
    gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 0xffffffffu); /* "none", kept at default */
}

Test(tokenizer, metadata_validation)
{
    char *dir = tu_tmpdir("tok-bad");
    struct { void (*fill)(gguf_writer *); const char *needle; } cases[] = {
        {bad_scores, "tokenizer.ggml.scores"}, {bad_types, "tokenizer.ggml.token_type"},
        {bad_model, "tokenizer.ggml.model"},   {bad_pre, "tokenizer.ggml.pre"},
        {no_merges, "tokenizer.ggml.merges"},  {bad_merge, "tokenizer.ggml.merges[1]"},
        {no_tokens, "tokenizer.ggml.tokens"},  {dup_tokens, "same text"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        slm_err err = {0};
        int rc = open_bad(dir, cases[i].fill, &err);
        cr_assert_eq(rc, SLM_EINPUT, "case %zu: rc %d (%s)", i, rc, err.msg);
        cr_assert(strstr(err.msg, cases[i].needle), "case %zu: message '%s' lacks '%s'", i, err.msg, cases[i].needle);
        cr_assert(strstr(err.msg, "bad.gguf"), "case %zu: message '%s' lacks the file name", i, err.msg);
    }
    slm_err err = {0};
    cr_assert_eq(open_bad(dir, good_small, &err), 0, "%s", err.msg);
    tu_rmtree(dir);
    free(dir);
}
