/* tests/test_safetensors.c — safetensors reading/writing (formats/safetensors*.c)
 * and the ggml type table (formats/types.c). */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"
#include "testutil.h"

/* ---- helpers ---------------------------------------------------------------- */

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* A raw safetensors file: u64 header length, header text as given, data. */
static char *write_raw(const char *dir, const char *name, const char *header, const void *data, size_t n)
{
    size_t hl = strlen(header);
    size_t total = 8 + hl + n;
    unsigned char *buf = malloc(total ? total : 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    if (n)
        memcpy(buf + 8 + hl, data, n);
    char *path = tu_path(dir, name);
    cr_assert_eq(tu_write_file(path, buf, total), 0);
    free(buf);
    return path;
}

/* Open a raw file expecting failure; returns the error for inspection. */
static slm_err open_fail(const char *header, size_t data_bytes)
{
    char *dir = tu_tmpdir("st");
    unsigned char *data = calloc(1, data_bytes + 1);
    char *path = write_raw(dir, "bad.safetensors", header, data, data_bytes);
    st_model *m = NULL;
    slm_err err = {0};
    int rc = st_open(path, &m, &err);
    cr_assert_neq(rc, SLM_OK, "expected failure for header %s", header);
    cr_assert_null(m);
    cr_assert(strstr(err.msg, "bad.safetensors") != NULL, "message names the file: %s", err.msg);
    free(data);
    free(path);
    tu_rmtree(dir);
    free(dir);
    return err;
}

#define ASSERT_MSG(err, needle) \
    cr_assert(strstr((err).msg, (needle)) != NULL, "message '%s' lacks '%s'", (err).msg, (needle))

/* Independent IEEE half -> double reference via ldexp. */
static double half_ref(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0)
        v = ldexp((double)m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexp((double)(1024 + m), e - 25);
    return s ? -v : v;
}

/* ---- ggml type table ----------------------------------------------------- */

Test(safetensors, ggml_type_table)
{
    /* facts from ggml.h / ggml-common.h */
    cr_assert_eq(slm_type_block_size(SLM_TYPE_F32), 1);
    cr_assert_eq(slm_type_block_bytes(SLM_TYPE_F32), 4);
    cr_assert_eq(slm_type_block_bytes(SLM_TYPE_BF16), 2);
    cr_assert_eq(slm_type_block_size(SLM_TYPE_Q4_0), 32);
    cr_assert_eq(slm_type_block_bytes(SLM_TYPE_Q4_0), 18);
    cr_assert_eq(slm_type_block_bytes(SLM_TYPE_Q8_0), 34);
    cr_assert_eq(slm_type_block_size(SLM_TYPE_Q4_K), 256);
    cr_assert_eq(slm_type_block_bytes(SLM_TYPE_Q4_K), 144);
    cr_assert_eq(slm_type_block_bytes(SLM_TYPE_Q6_K), 210);
    cr_assert_eq(slm_type_block_bytes(SLM_TYPE_Q8_K), 292);
    cr_assert_eq(slm_type_block_bytes(29), 56); /* iq1_m */
    cr_assert_eq(slm_type_block_bytes(39), 17); /* mxfp4 */
    cr_assert_str_eq(slm_type_name(SLM_TYPE_Q4_K), "q4_K");
    cr_assert_str_eq(slm_type_name(SLM_TYPE_BF16), "bf16");
    cr_assert_str_eq(slm_type_name(16), "iq2_xxs");
    cr_assert_str_eq(slm_type_name(35), "tq2_0");
    const uint32_t retired[] = { 4, 5, 31, 32, 33, 36, 37, 38, 40, 1000 };
    for (size_t i = 0; i < sizeof retired / sizeof retired[0]; i++) {
        cr_assert_eq(slm_type_block_size(retired[i]), 0, "id %u", retired[i]);
        cr_assert_eq(slm_type_block_bytes(retired[i]), 0);
        cr_assert_null(slm_type_name(retired[i]));
    }
    cr_assert_eq(slm_type_row_bytes(SLM_TYPE_Q4_K, 4096), 16 * 144);
    cr_assert_eq(slm_type_row_bytes(SLM_TYPE_Q4_K, 100), 0);
    cr_assert_eq(slm_type_row_bytes(SLM_TYPE_F16, 7), 14);
    cr_assert_eq(slm_type_row_bytes(SLM_TYPE_Q8_0, 64), 68);
    cr_assert_eq(slm_type_row_bytes(4, 32), 0);
}

/* ---- real models ------------------------------------------------------------- */

Test(safetensors, stories260k_file)
{
    st_model *m;
    slm_err err = {0};
    const char *path = tu_model("stories260k/model.safetensors");
    cr_assert_eq(st_open(path, &m, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(st_count(m), 48); /* 5 layers x 9 + embed + norm + lm_head */
    const st_tensor *t = st_find(m, "model.embed_tokens.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, SLM_TYPE_F32);
    cr_assert_eq(t->n_dims, 2);
    cr_assert_eq(t->shape[0], 512);
    cr_assert_eq(t->shape[1], 64);
    cr_assert_eq(t->n_elems, 512 * 64);
    cr_assert_eq(t->nbytes, 512 * 64 * 4);
    cr_assert_eq(t->shard, 0);
    float v[4];
    st_read_f32(t, 0, 4, v);
    cr_assert_eq(f2u(v[0]), 0xbe96e950u); /* -0.29474878 */
    cr_assert_eq(f2u(v[1]), 0x3f0fd864u);
    cr_assert_eq(f2u(v[3]), 0x3eae5faau);
    st_read_f32(t, t->n_elems - 1, 1, v);
    cr_assert_float_eq(v[0], -0.424032598733902f, 1e-9);

    t = st_find(m, "model.layers.4.self_attn.k_proj.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->shape[0], 32);
    cr_assert_eq(t->shape[1], 64);
    t = st_find(m, "model.norm.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->n_dims, 1);
    st_read_f32(t, 0, 1, v);
    cr_assert_eq(f2u(v[0]), 0x401d54efu); /* 2.4583089 */

    cr_assert_null(st_find(m, "model.layers.5.mlp.up_proj.weight"));
    cr_assert_null(st_find(m, ""));
    cr_assert_str_eq(st_shard_path(m, 0), path);
    cr_assert_null(st_shard_path(m, 1));
    /* every tensor is findable under its own name */
    for (size_t i = 0; i < st_count(m); i++)
        cr_assert_eq(st_find(m, st_get(m, i)->name), st_get(m, i));
    cr_assert_null(st_get(m, st_count(m)));
    st_close(m);
}

Test(safetensors, stories260k_directory)
{
    st_model *m;
    slm_err err = {0};
    cr_assert_eq(st_open(tu_model("stories260k"), &m, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(st_count(m), 48);
    cr_assert_not_null(st_find(m, "lm_head.weight"));
    st_close(m);
}

Test(safetensors, gpt2_model)
{
    st_model *m;
    slm_err err = {0};
    cr_assert_eq(st_open(tu_model("tinystories-gpt2"), &m, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(st_count(m), 52); /* 4 layers x 12 + ln_f x2 + wpe + wte */
    const st_tensor *t = st_find(m, "transformer.wte.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->shape[0], 1000);
    cr_assert_eq(t->shape[1], 128);
    float v[4];
    st_read_f32(t, 0, 4, v);
    cr_assert_eq(f2u(v[0]), 0xbdd2cde3u);
    cr_assert_eq(f2u(v[3]), 0x3a8724a1u);
    t = st_find(m, "transformer.h.0.attn.c_attn.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->shape[0], 128); /* Conv1D: [in, out] */
    cr_assert_eq(t->shape[1], 384);
    t = st_find(m, "transformer.h.0.attn.c_attn.bias");
    st_read_f32(t, 1, 1, v);
    cr_assert_eq(f2u(v[0]), 0xbbe0fef3u);
    st_close(m);
}

Test(safetensors, release_keeps_data_readable)
{
    st_model *m;
    slm_err err = {0};
    cr_assert_eq(st_open(tu_model("tinystories-gpt2/model.safetensors"), &m, &err), SLM_OK, "%s", err.msg);
    const st_tensor *t = st_find(m, "transformer.wte.weight");
    float *a = malloc(t->n_elems * sizeof *a), *b = malloc(t->n_elems * sizeof *b);
    st_read_f32(t, 0, t->n_elems, a);
    for (size_t i = 0; i < st_count(m); i++)
        st_release(m, st_get(m, i));
    /* pages come back from the file on the next touch */
    st_read_f32(t, 0, t->n_elems, b);
    cr_assert_eq(memcmp(a, b, t->n_elems * sizeof *a), 0);
    free(a);
    free(b);
    st_close(m);
}

/* ---- writer + decoding --------------------------------------------------------- */

Test(safetensors, writer_roundtrip_f16_bf16_f32)
{
    char *dir = tu_tmpdir("st");
    char *path = tu_path(dir, "x.safetensors");
    /* half bit patterns and their exact values */
    const uint16_t h[] = { 0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x8000, 0x7c00, 0xfc00, 0x3555, 0x8001 };
    const float hv[] = { 1.0f, -2.0f, 65504.0f, 0x1p-24f, 1023 * 0x1p-24f, 0x1p-14f, -0.0f, INFINITY, -INFINITY,
                         0.333251953125f, -0x1p-24f };
    const size_t nh = sizeof h / sizeof h[0];
    /* bf16 = top half of a float32 */
    const uint16_t b[] = { 0x3f80, 0xc049, 0x0001, 0x7f80, 0xff80, 0x8000 };
    const float bv[] = { 1.0f, -3.140625f, u2f(0x00010000u), INFINITY, -INFINITY, -0.0f };
    const float f[6] = { 1.5f, -2.25f, 3.0f, 0.0f, 1e-30f, -7.0f };

    st_writer *w = st_writer_new();
    int64_t sh1[1] = { (int64_t)nh }, sb[2] = { 2, 3 }, sf[3] = { 1, 2, 3 };
    cr_assert_eq(st_writer_add(w, "half", SLM_TYPE_F16, 1, sh1), 0);
    cr_assert_eq(st_writer_add(w, "brain", SLM_TYPE_BF16, 2, sb), 0);
    cr_assert_eq(st_writer_add(w, "single", SLM_TYPE_F32, 3, sf), 0);
    cr_assert_eq(st_writer_add(w, "scalar", SLM_TYPE_F32, 0, NULL), 0);
    cr_assert_eq(st_writer_add(w, "empty", SLM_TYPE_F16, 1, (int64_t[]){ 0 }), 0);
    cr_assert_neq(st_writer_add(w, "half", SLM_TYPE_F16, 1, sh1), 0);            /* duplicate */
    cr_assert_neq(st_writer_add(w, "q", SLM_TYPE_Q4_0, 1, (int64_t[]){ 32 }), 0); /* not a safetensors dtype */
    cr_assert_eq(st_writer_set_meta(w, "format", "pt"), 0);
    slm_err err = {0};
    cr_assert_eq(st_writer_begin(w, path, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(st_writer_write(w, h, sizeof h, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(st_writer_write(w, b, 4, &err), SLM_OK); /* pieces of any size */
    cr_assert_eq(st_writer_write(w, (const char *)b + 4, sizeof b - 4, &err), SLM_OK);
    cr_assert_eq(st_writer_write(w, f, sizeof f, &err), SLM_OK);
    float one = 42.0f;
    cr_assert_eq(st_writer_write(w, &one, 4, &err), SLM_OK);
    cr_assert_eq(st_writer_finish(w, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(tu_count_entries(dir), 1); /* no temp file left */

    /* layout: header length a multiple of 8, padded with spaces */
    size_t n;
    char *raw = tu_read_file(path, &n);
    cr_assert_not_null(raw);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | (unsigned char)raw[i];
    cr_assert_eq(hl % 8, 0);
    cr_assert_eq(n, 8 + hl + sizeof h + sizeof b + sizeof f + 4);
    cr_assert(strstr(raw + 8, "\"__metadata__\":{\"format\":\"pt\"}") != NULL);
    cr_assert(strstr(raw + 8, "\"half\":{\"dtype\":\"F16\",\"shape\":[11],\"data_offsets\":[0,22]}") != NULL);
    cr_assert(strstr(raw + 8, "\"brain\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[22,34]}") != NULL);
    /* declaration order is file order */
    cr_assert(strstr(raw + 8, "\"half\"") < strstr(raw + 8, "\"brain\""));
    free(raw);

    st_model *m;
    cr_assert_eq(st_open(path, &m, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(st_count(m), 5);
    const st_tensor *t = st_find(m, "half");
    cr_assert_eq(t->dtype, SLM_TYPE_F16);
    float got[16];
    st_read_f32(t, 0, nh, got);
    for (size_t i = 0; i < nh; i++)
        cr_assert_eq(f2u(got[i]), f2u(hv[i]), "half[%zu]=0x%04x: got %a want %a", i, h[i], got[i], hv[i]);
    st_read_f32(t, 3, 2, got); /* offset reads */
    cr_assert_eq(f2u(got[0]), f2u(0x1p-24f));
    cr_assert_eq(f2u(got[1]), f2u(1023 * 0x1p-24f));
    t = st_find(m, "brain");
    cr_assert_eq(t->dtype, SLM_TYPE_BF16);
    cr_assert_eq(t->shape[1], 3);
    st_read_f32(t, 0, 6, got);
    for (size_t i = 0; i < 6; i++)
        cr_assert_eq(f2u(got[i]), f2u(bv[i]), "bf16[%zu]", i);
    t = st_find(m, "single");
    cr_assert_eq(t->n_dims, 3);
    cr_assert_eq(t->n_elems, 6);
    st_read_f32(t, 0, 6, got);
    cr_assert_eq(memcmp(got, f, sizeof f), 0);
    t = st_find(m, "scalar");
    cr_assert_eq(t->n_dims, 0);
    cr_assert_eq(t->n_elems, 1);
    st_read_f32(t, 0, 1, got);
    cr_assert_eq(got[0], 42.0f);
    t = st_find(m, "empty");
    cr_assert_eq(t->n_elems, 0);
    cr_assert_eq(t->nbytes, 0);
    st_close(m);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

Test(safetensors, f16_every_bit_pattern)
{
    /* all 65536 halves through the file path, against an ldexp reference */
    char *dir = tu_tmpdir("st");
    char *path = tu_path(dir, "all.safetensors");
    uint16_t *h = malloc(65536 * sizeof *h);
    for (uint32_t i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    st_writer *w = st_writer_new();
    cr_assert_eq(st_writer_add(w, "h", SLM_TYPE_F16, 2, (int64_t[]){ 256, 256 }), 0);
    slm_err err = {0};
    cr_assert_eq(st_writer_begin(w, path, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(st_writer_write(w, h, 65536 * 2, &err), SLM_OK);
    cr_assert_eq(st_writer_finish(w, &err), SLM_OK, "%s", err.msg);
    st_model *m;
    cr_assert_eq(st_open(path, &m, &err), SLM_OK, "%s", err.msg);
    float *v = malloc(65536 * sizeof *v);
    st_read_f32(st_find(m, "h"), 0, 65536, v);
    for (uint32_t i = 0; i < 65536; i++) {
        double r = half_ref((uint16_t)i);
        if (isnan(r)) {
            cr_assert(isnan(v[i]), "0x%04x should be NaN", i);
            cr_assert_eq(signbit(v[i]) != 0, (i >> 15) != 0);
        } else {
            cr_assert_eq((double)v[i], r, "0x%04x: got %a want %a", i, v[i], r);
            cr_assert_eq(signbit(v[i]) != 0, signbit(r) != 0, "sign of 0x%04x", i);
        }
    }
    free(v);
    free(h);
    st_close(m);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

Test(safetensors, writer_checks_byte_count)
{
    char *dir = tu_tmpdir("st");
    char *path = tu_path(dir, "short.safetensors");
    slm_err err = {0};
    float x[4] = { 0 };

    st_writer *w = st_writer_new();
    cr_assert_eq(st_writer_add(w, "a", SLM_TYPE_F32, 1, (int64_t[]){ 3 }), 0);
    cr_assert_eq(st_writer_begin(w, path, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(st_writer_write(w, x, 8, &err), SLM_OK);
    cr_assert_neq(st_writer_write(w, x, 8, &err), SLM_OK); /* 16 > 12 declared */
    cr_assert_neq(st_writer_finish(w, &err), SLM_OK);        /* 8 of 12 */
    cr_assert(!tu_exists(path));
    cr_assert_eq(tu_count_entries(dir), 0);

    /* freeing an unfinished writer leaves nothing behind */
    w = st_writer_new();
    cr_assert_eq(st_writer_add(w, "a", SLM_TYPE_F32, 1, (int64_t[]){ 3 }), 0);
    cr_assert_eq(st_writer_begin(w, path, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(st_writer_write(w, x, 4, &err), SLM_OK);
    st_writer_free(w);
    cr_assert_eq(tu_count_entries(dir), 0);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

/* ---- sharded models ---------------------------------------------------------- */

static void write_shard(const char *dir, const char *name, const char *t1, const char *t2, float base)
{
    char *path = tu_path(dir, name);
    st_writer *w = st_writer_new();
    cr_assert_eq(st_writer_add(w, t1, SLM_TYPE_F32, 1, (int64_t[]){ 4 }), 0);
    if (t2)
        cr_assert_eq(st_writer_add(w, t2, SLM_TYPE_F32, 2, (int64_t[]){ 2, 2 }), 0);
    slm_err err = {0};
    cr_assert_eq(st_writer_begin(w, path, &err), SLM_OK, "%s", err.msg);
    float v[8];
    for (int i = 0; i < 8; i++)
        v[i] = base + (float)i;
    cr_assert_eq(st_writer_write(w, v, t2 ? 32 : 16, &err), SLM_OK);
    cr_assert_eq(st_writer_finish(w, &err), SLM_OK, "%s", err.msg);
    free(path);
}

static void write_index(const char *dir, const char *json)
{
    char *p = tu_path(dir, "model.safetensors.index.json");
    cr_assert_eq(tu_write_file(p, json, strlen(json)), 0);
    free(p);
}

Test(safetensors, sharded_index)
{
    char *dir = tu_tmpdir("st");
    write_shard(dir, "model-00001-of-00002.safetensors", "a", "b", 0.0f);
    write_shard(dir, "model-00002-of-00002.safetensors", "c", "d", 100.0f);
    write_index(dir, "{\"metadata\":{\"total_size\":64},\"weight_map\":{"
                     "\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00001-of-00002.safetensors\","
                     "\"c\":\"model-00002-of-00002.safetensors\",\"d\":\"model-00002-of-00002.safetensors\"}}");
    /* a stray single file must not win over the index */
    write_shard(dir, "model.safetensors", "zzz", NULL, 0.0f);
    st_model *m;
    slm_err err = {0};
    cr_assert_eq(st_open(dir, &m, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(st_count(m), 4);
    cr_assert_null(st_find(m, "zzz"));
    const st_tensor *c = st_find(m, "c"), *b = st_find(m, "b");
    cr_assert_eq(c->shard, 1);
    cr_assert_eq(b->shard, 0);
    cr_assert(strstr(st_shard_path(m, c->shard), "model-00002-of-00002.safetensors") != NULL);
    float v[4];
    st_read_f32(c, 0, 4, v);
    cr_assert_eq(v[0], 100.0f);
    cr_assert_eq(v[3], 103.0f);
    st_read_f32(st_find(m, "d"), 0, 4, v);
    cr_assert_eq(v[0], 104.0f);
    st_close(m);

    /* the index file itself can be named */
    char *idx = tu_path(dir, "model.safetensors.index.json");
    cr_assert_eq(st_open(idx, &m, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(st_count(m), 4);
    st_close(m);
    free(idx);
    tu_rmtree(dir);
    free(dir);
}

static slm_err index_fail(const char *json)
{
    char *dir = tu_tmpdir("st");
    write_shard(dir, "s1.safetensors", "a", "b", 0.0f);
    write_shard(dir, "s2.safetensors", "c", "b", 0.0f); /* "b" also in s1 */
    write_shard(dir, "s3.safetensors", "e", NULL, 0.0f);
    write_index(dir, json);
    st_model *m = NULL;
    slm_err err = {0};
    cr_assert_neq(st_open(dir, &m, &err), SLM_OK, "index %s should fail", json);
    cr_assert_null(m);
    tu_rmtree(dir);
    free(dir);
    return err;
}

Test(safetensors, index_missing_shard)
{
    slm_err e = index_fail("{\"weight_map\":{\"a\":\"s1.safetensors\",\"x\":\"nope.safetensors\"}}");
    cr_assert_eq(e.code, SLM_EIO);
    ASSERT_MSG(e, "nope.safetensors");
    ASSERT_MSG(e, "'x'");
}

Test(safetensors, index_tensor_absent_from_shard)
{
    slm_err e = index_fail("{\"weight_map\":{\"a\":\"s1.safetensors\",\"c\":\"s3.safetensors\"}}");
    cr_assert_eq(e.code, SLM_EINPUT);
    ASSERT_MSG(e, "'c'");
    ASSERT_MSG(e, "s3.safetensors");
}

Test(safetensors, index_duplicate_across_shards)
{
    slm_err e = index_fail("{\"weight_map\":{\"a\":\"s1.safetensors\",\"c\":\"s2.safetensors\"}}");
    cr_assert_eq(e.code, SLM_EINPUT);
    ASSERT_MSG(e, "'b'");
    ASSERT_MSG(e, "s1.safetensors");
    ASSERT_MSG(e, "s2.safetensors");
}

Test(safetensors, index_bad_json_and_escape)
{
    slm_err e = index_fail("{\"weight_map\": {\"a\": ");
    cr_assert_eq(e.code, SLM_EINPUT);
    ASSERT_MSG(e, "malformed JSON");
    e = index_fail("{\"weight_map\":{\"a\":\"../s1.safetensors\"}}");
    ASSERT_MSG(e, "outside");
    e = index_fail("{\"weight_map\":[]}");
    ASSERT_MSG(e, "weight_map");
}

/* ---- bad inputs --------------------------------------------------------------- */

Test(safetensors, missing_file_and_empty_dir)
{
    st_model *m;
    slm_err err = {0};
    cr_assert_eq(st_open("/nonexistent/x.safetensors", &m, &err), SLM_EIO);
    ASSERT_MSG(err, "/nonexistent/x.safetensors");
    char *dir = tu_tmpdir("st");
    cr_assert_eq(st_open(dir, &m, &err), SLM_EIO);
    ASSERT_MSG(err, "model.safetensors");
    tu_rmtree(dir);
    free(dir);
}

Test(safetensors, truncated_file)
{
    char *dir = tu_tmpdir("st");
    char *path = tu_path(dir, "t.safetensors");
    cr_assert_eq(tu_write_file(path, "\x10\0\0", 3), 0);
    st_model *m;
    slm_err err = {0};
    cr_assert_eq(st_open(path, &m, &err), SLM_EINPUT);
    ASSERT_MSG(err, "truncated");
    ASSERT_MSG(err, "t.safetensors");
    free(path);
    tu_rmtree(dir);
    free(dir);
}

Test(safetensors, header_length_beyond_file)
{
    char *dir = tu_tmpdir("st");
    char *path = tu_path(dir, "t.safetensors");
    const unsigned char b[12] = { 0x00, 0x10, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ' };
    cr_assert_eq(tu_write_file(path, b, sizeof b), 0);
    st_model *m;
    slm_err err = {0};
    cr_assert_eq(st_open(path, &m, &err), SLM_EINPUT);
    ASSERT_MSG(err, "truncated");
    /* a huge length must not overflow the bound check */
    const unsigned char h[12] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}', ' ', ' ' };
    cr_assert_eq(tu_write_file(path, h, sizeof h), 0);
    cr_assert_eq(st_open(path, &m, &err), SLM_EINPUT);
    ASSERT_MSG(err, "truncated");
    free(path);
    tu_rmtree(dir);
    free(dir);
}

Test(safetensors, header_not_json)
{
    slm_err e = open_fail("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]", 4);
    cr_assert_eq(e.code, SLM_EINPUT);
    ASSERT_MSG(e, "JSON");
    e = open_fail("[1, 2, 3]", 0);
    ASSERT_MSG(e, "not a JSON object");
    e = open_fail("{} garbage", 0);
    ASSERT_MSG(e, "JSON");
}

Test(safetensors, empty_header_object_is_valid)
{
    char *dir = tu_tmpdir("st");
    char *path = write_raw(dir, "e.safetensors", "{\"__metadata__\":{\"format\":\"pt\"}}  ", NULL, 0);
    st_model *m;
    slm_err err = {0};
    cr_assert_eq(st_open(path, &m, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(st_count(m), 0);
    cr_assert_null(st_find(m, "x"));
    st_close(m);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

Test(safetensors, overlapping_offsets)
{
    slm_err e = open_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
                          20);
    cr_assert_eq(e.code, SLM_EINPUT);
    ASSERT_MSG(e, "overlap");
    ASSERT_MSG(e, "'a'");
    ASSERT_MSG(e, "'b'");
    /* the same range twice, declared in reverse order */
    e = open_fail("{\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[4,8]},"
                  "\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[4,8]}}",
                  8);
    ASSERT_MSG(e, "overlap");
}

Test(safetensors, out_of_range_offsets)
{
    slm_err e = open_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 20);
    cr_assert_eq(e.code, SLM_EINPUT);
    ASSERT_MSG(e, "'a'");
    ASSERT_MSG(e, "past the end of the data area (20 bytes)");
    e = open_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 20);
    ASSERT_MSG(e, "reversed");
    e = open_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 20);
    ASSERT_MSG(e, "data_offsets");
    e = open_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 20);
    ASSERT_MSG(e, "data_offsets");
    e = open_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0, 4.5]}}", 20);
    ASSERT_MSG(e, "data_offsets");
}

Test(safetensors, refused_dtypes_named)
{
    slm_err e = open_fail("{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16);
    cr_assert_eq(e.code, SLM_EINPUT);
    ASSERT_MSG(e, "tensor 'ids' has dtype I64; slmkit reads F32, F16, BF16");
    e = open_fail("{\"x\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
    ASSERT_MSG(e, "dtype F8_E4M3");
    e = open_fail("{\"x\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
    ASSERT_MSG(e, "dtype BOOL");
    e = open_fail("{\"x\":{\"dtype\":\"Q9\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
    ASSERT_MSG(e, "unknown dtype 'Q9'");
    e = open_fail("{\"x\":{\"dtype\":5,\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
    ASSERT_MSG(e, "dtype");
}

Test(safetensors, shape_size_mismatch)
{
    slm_err e = open_fail("{\"w\":{\"dtype\":\"F16\",\"shape\":[3,3],\"data_offsets\":[0,16]}}", 16);
    cr_assert_eq(e.code, SLM_EINPUT);
    ASSERT_MSG(e, "'w'");
    ASSERT_MSG(e, "18");
}

Test(safetensors, shape_overflow_and_bad_dims)
{
    slm_err e = open_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4);
    cr_assert_eq(e.code, SLM_EINPUT);
    ASSERT_MSG(e, "overflow");
    e = open_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776,4194304,2],\"data_offsets\":[0,4]}}", 4);
    ASSERT_MSG(e, "overflow");
    /* 2^62 elements fit int64 but not as bytes */
    e = open_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,4]}}", 4);
    ASSERT_MSG(e, "overflow");
    e = open_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4);
    ASSERT_MSG(e, "shape[0]");
    e = open_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4);
    ASSERT_MSG(e, "9 dimensions");
    e = open_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":\"4\",\"data_offsets\":[0,4]}}", 4);
    ASSERT_MSG(e, "shape");
    e = open_fail("{\"w\":[1,2]}", 4);
    ASSERT_MSG(e, "not a JSON object");
    e = open_fail("{\"__metadata__\":{\"k\":1}}", 0);
    ASSERT_MSG(e, "__metadata__");
}

Test(safetensors, duplicate_name_in_one_file)
{
    slm_err e = open_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                          "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                          8);
    ASSERT_MSG(e, "twice");
}
