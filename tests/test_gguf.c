/* tests/test_gguf.c — GGUF reader and writer (formats/gguf_read.c, gguf_write.c).
 *
 * Independent facts: stories260K.gguf was written by llama.cpp, so reading it
 * checks the reader against a real producer, and re-writing it byte for byte
 * checks the writer's layout against llama.cpp's. Hand-built files (a small
 * byte builder below, written from the GGUF spec) cover every value type and
 * each kind of corruption. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats.h"
#include "testutil.h"

/* ---- a tiny GGUF byte builder (spec-level, independent of the writer) --- */
typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;

static void bb_put(bb *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void bb_u8(bb *b, uint8_t v) { bb_put(b, &v, 1); }
static void bb_u16(bb *b, uint16_t v) { bb_put(b, &v, 2); }
static void bb_u32(bb *b, uint32_t v) { bb_put(b, &v, 4); }
static void bb_u64(bb *b, uint64_t v) { bb_put(b, &v, 8); }
static void bb_str(bb *b, const char *s)
{
    bb_u64(b, strlen(s));
    bb_put(b, s, strlen(s));
}
static void bb_pad(bb *b, size_t a)
{
    while (b->n % a)
        bb_u8(b, 0);
}

/* Field positions in the "mini" file, for targeted corruption. */
typedef struct mini {
    bb b;
    size_t at_version, at_ntensors, at_nkv;
    size_t at_key0_len;        /* length of the first key */
    size_t at_u8_type;         /* value type of "t.u8" */
    size_t at_arr_type;        /* element type of "t.arr_i16" */
    size_t at_arr_count;       /* count of "t.arr_i16" */
    size_t at_align_val;       /* value of general.alignment */
    size_t at_str_len;         /* length of "t.str" value */
    size_t at_b_name;          /* first name byte of tensor "b" */
    size_t at_b_ndims, at_b_ne0, at_b_type, at_b_offset;
    size_t at_a_offset;
    size_t data_offset;
} mini;

/* 15 kvs covering every value type, 3 tensors of several types, alignment 32. */
static void build_mini(mini *m)
{
    memset(m, 0, sizeof *m);
    bb *b = &m->b;
    bb_put(b, "GGUF", 4);
    m->at_version = b->n;
    bb_u32(b, 3);
    m->at_ntensors = b->n;
    bb_u64(b, 3);
    m->at_nkv = b->n;
    bb_u64(b, 15);
    m->at_key0_len = b->n;
    bb_str(b, "general.alignment");
    bb_u32(b, GGUF_T_UINT32);
    m->at_align_val = b->n;
    bb_u32(b, 32);
    bb_str(b, "t.u8");
    m->at_u8_type = b->n;
    bb_u32(b, GGUF_T_UINT8);
    bb_u8(b, 200);
    bb_str(b, "t.i8");
    bb_u32(b, GGUF_T_INT8);
    bb_u8(b, (uint8_t)-100);
    bb_str(b, "t.u16");
    bb_u32(b, GGUF_T_UINT16);
    bb_u16(b, 60000);
    bb_str(b, "t.i16");
    bb_u32(b, GGUF_T_INT16);
    bb_u16(b, (uint16_t)-30000);
    bb_str(b, "t.u32");
    bb_u32(b, GGUF_T_UINT32);
    bb_u32(b, 4000000000u);
    bb_str(b, "t.i32");
    bb_u32(b, GGUF_T_INT32);
    bb_u32(b, (uint32_t)-2000000000);
    bb_str(b, "t.f32");
    bb_u32(b, GGUF_T_FLOAT32);
    float f = 1.5f;
    bb_put(b, &f, 4);
    bb_str(b, "t.bool");
    bb_u32(b, GGUF_T_BOOL);
    bb_u8(b, 1);
    bb_str(b, "t.str");
    bb_u32(b, GGUF_T_STRING);
    m->at_str_len = b->n;
    bb_str(b, "h\xc3\xa9llo");
    bb_str(b, "t.u64");
    bb_u32(b, GGUF_T_UINT64);
    bb_u64(b, 0xfedcba9876543210ull);
    bb_str(b, "t.i64");
    bb_u32(b, GGUF_T_INT64);
    bb_u64(b, (uint64_t)INT64_C(-1234567890123));
    bb_str(b, "t.f64");
    bb_u32(b, GGUF_T_FLOAT64);
    double d = -2.25e100;
    bb_put(b, &d, 8);
    bb_str(b, "t.arr_i16");
    bb_u32(b, GGUF_T_ARRAY);
    m->at_arr_type = b->n;
    bb_u32(b, GGUF_T_INT16);
    m->at_arr_count = b->n;
    bb_u64(b, 3);
    bb_u16(b, 1);
    bb_u16(b, (uint16_t)-2);
    bb_u16(b, 3);
    bb_str(b, "t.arr_str");
    bb_u32(b, GGUF_T_ARRAY);
    bb_u32(b, GGUF_T_STRING);
    bb_u64(b, 3);
    bb_str(b, "one");
    bb_str(b, "");
    bb_str(b, "three");
    /* tensors: a f32 [8,2] (64 B), b q8_0 [32,1] (34 B), c f16 [3] (6 B) */
    bb_str(b, "a");
    bb_u32(b, 2);
    bb_u64(b, 8);
    bb_u64(b, 2);
    bb_u32(b, SLM_TYPE_F32);
    m->at_a_offset = b->n;
    bb_u64(b, 0);
    m->at_b_name = b->n + 8;
    bb_str(b, "b");
    m->at_b_ndims = b->n;
    bb_u32(b, 2);
    m->at_b_ne0 = b->n;
    bb_u64(b, 32);
    bb_u64(b, 1);
    m->at_b_type = b->n;
    bb_u32(b, SLM_TYPE_Q8_0);
    m->at_b_offset = b->n;
    bb_u64(b, 64);
    bb_str(b, "c");
    bb_u32(b, 1);
    bb_u64(b, 3);
    bb_u32(b, SLM_TYPE_F16);
    bb_u64(b, 128);
    bb_pad(b, 32);
    m->data_offset = b->n;
    for (int i = 0; i < 64 + 34 + 6; i++) {
        if (i == 64 || i == 64 + 34)
            bb_pad(b, 32);
        bb_u8(b, (uint8_t)(i * 7 + 1));
    }
    bb_pad(b, 32);
}

static void patch32(mini *m, size_t at, uint32_t v) { memcpy(m->b.p + at, &v, 4); }
static void patch64(mini *m, size_t at, uint64_t v) { memcpy(m->b.p + at, &v, 8); }

/* Write bytes to dir/name and open them; returns the status, err filled. */
static int open_bytes(const char *dir, const void *p, size_t n, gguf_file **f, slm_err *err)
{
    char *path = tu_path(dir, "x.gguf");
    cr_assert_eq(tu_write_file(path, p, n), 0);
    int rc = gguf_open(path, f, err);
    free(path);
    return rc;
}

static void expect_bad(mini *m, const char *what)
{
    char *dir = tu_tmpdir("gguf");
    gguf_file *f = NULL;
    slm_err err = {0};
    int rc = open_bytes(dir, m->b.p, m->b.n, &f, &err);
    cr_assert_eq(rc, SLM_EINPUT, "expected SLM_EINPUT for '%s', got %d (%s)", what, rc, err.msg);
    cr_assert_null(f);
    cr_assert(strstr(err.msg, what), "message '%s' should mention '%s'", err.msg, what);
    cr_assert(strstr(err.msg, "x.gguf: "), "message '%s' should name the file", err.msg);
    free(m->b.p);
    tu_rmtree(dir);
    free(dir);
}

/* ---- reading ----------------------------------------------------------- */

Test(gguf, read_every_value_type)
{
    mini m;
    build_mini(&m);
    char *dir = tu_tmpdir("gguf");
    gguf_file *f;
    slm_err err = {0};
    cr_assert_eq(open_bytes(dir, m.b.p, m.b.n, &f, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(f->version, 3);
    cr_assert_eq(f->n_kv, 15);
    cr_assert_eq(f->n_tensors, 3);
    cr_assert_eq(f->alignment, 32);
    cr_assert_eq(f->data_offset, m.data_offset);
    int64_t v;
    double d;
    int bl;
    gguf_str s;
    cr_assert_eq(gguf_get_int(f, "t.u8", &v), 0); cr_assert_eq(v, 200);
    cr_assert_eq(gguf_get_int(f, "t.i8", &v), 0); cr_assert_eq(v, -100);
    cr_assert_eq(gguf_get_int(f, "t.u16", &v), 0); cr_assert_eq(v, 60000);
    cr_assert_eq(gguf_get_int(f, "t.i16", &v), 0); cr_assert_eq(v, -30000);
    cr_assert_eq(gguf_get_int(f, "t.u32", &v), 0); cr_assert_eq(v, 4000000000LL);
    cr_assert_eq(gguf_get_int(f, "t.i32", &v), 0); cr_assert_eq(v, -2000000000LL);
    cr_assert_eq(gguf_get_int(f, "t.i64", &v), 0); cr_assert_eq(v, INT64_C(-1234567890123));
    cr_assert_neq(gguf_get_int(f, "t.u64", &v), 0); /* does not fit in int64 */
    cr_assert_neq(gguf_get_int(f, "t.f32", &v), 0);
    cr_assert_neq(gguf_get_int(f, "missing", &v), 0);
    cr_assert_eq(gguf_get_float(f, "t.f32", &d), 0); cr_assert_eq(d, 1.5);
    cr_assert_eq(gguf_get_float(f, "t.f64", &d), 0); cr_assert_eq(d, -2.25e100);
    cr_assert_eq(gguf_get_bool(f, "t.bool", &bl), 0); cr_assert_eq(bl, 1);
    cr_assert_eq(gguf_get_str(f, "t.str", &s), 0);
    cr_assert_eq(s.len, 6);
    cr_assert_eq(memcmp(s.ptr, "h\xc3\xa9llo", 6), 0);
    cr_assert_neq(gguf_get_str(f, "t.u8", &s), 0);
    const gguf_kv *u64 = &f->kv[gguf_find_key(f, "t.u64")];
    uint64_t u;
    memcpy(&u, u64->raw, 8);
    cr_assert_eq(u, 0xfedcba9876543210ull);
    const gguf_kv *ai = &f->kv[gguf_find_key(f, "t.arr_i16")];
    cr_assert_eq(ai->type, GGUF_T_ARRAY);
    cr_assert_eq(ai->arr_type, GGUF_T_INT16);
    cr_assert_eq(ai->arr_n, 3);
    cr_assert_eq(gguf_arr_num(ai, 0), 1.0);
    cr_assert_eq(gguf_arr_num(ai, 1), -2.0);
    cr_assert_eq(gguf_arr_num(ai, 2), 3.0);
    cr_assert(isnan(gguf_arr_num(ai, 3)));
    const gguf_kv *as = &f->kv[gguf_find_key(f, "t.arr_str")];
    cr_assert_eq(gguf_arr_str(as, 2, &s), 0);
    cr_assert_eq(s.len, 5);
    cr_assert_eq(memcmp(s.ptr, "three", 5), 0);
    cr_assert_eq(gguf_arr_str(as, 1, &s), 0);
    cr_assert_eq(s.len, 0);
    cr_assert_neq(gguf_arr_str(as, 3, &s), 0);
    cr_assert_neq(gguf_arr_str(ai, 0, &s), 0);
    cr_assert_str_eq(gguf_vtype_name(GGUF_T_FLOAT64), "f64");

    int64_t b = gguf_find_tensor(f, "b");
    cr_assert_eq(b, 1);
    cr_assert_eq(gguf_find_tensor(f, "nope"), -1);
    const gguf_tensor *t = &f->tensors[b];
    cr_assert_eq(t->type, SLM_TYPE_Q8_0);
    cr_assert_eq(t->n_dims, 2);
    cr_assert_eq(t->ne[0], 32);
    cr_assert_eq(t->ne[2], 1);
    cr_assert_eq(t->nbytes, 34);
    cr_assert_eq(t->offset, 64);
    cr_assert_eq((const uint8_t *)t->data, f->map + m.data_offset + 64);
    cr_assert_eq(((const uint8_t *)t->data)[0], (uint8_t)(64 * 7 + 1));
    const gguf_tensor *c = &f->tensors[2];
    cr_assert_eq(c->nbytes, 6);
    cr_assert_eq(c->n_elems, 3);
    cr_assert_eq(f->tensors[0].n_elems, 16);
    gguf_close(f);
    free(m.b.p);
    tu_rmtree(dir);
    free(dir);
}

Test(gguf, read_llama_cpp_stories260k)
{
    gguf_file *f;
    slm_err err = {0};
    const char *path = tu_model("gguf/stories260K.gguf");
    cr_assert_eq(gguf_open(path, &f, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(f->version, 3);
    cr_assert_eq(f->n_kv, 19);
    cr_assert_eq(f->n_tensors, 48);
    cr_assert_eq(f->alignment, 32);
    cr_assert_eq(f->data_offset % 32, 0);
    gguf_str s;
    cr_assert_eq(gguf_get_str(f, "general.architecture", &s), 0);
    cr_assert_eq(s.len, 5);
    cr_assert_eq(memcmp(s.ptr, "llama", 5), 0);
    int64_t v;
    cr_assert_eq(gguf_get_int(f, "llama.embedding_length", &v), 0);
    cr_assert_eq(v, 64);
    cr_assert_eq(gguf_get_int(f, "llama.block_count", &v), 0);
    cr_assert_eq(v, 5);
    double eps;
    cr_assert_eq(gguf_get_float(f, "llama.attention.layer_norm_rms_epsilon", &eps), 0);
    cr_assert_float_eq(eps, 1e-5, 1e-9);
    int64_t ki = gguf_find_key(f, "tokenizer.ggml.tokens");
    cr_assert_geq(ki, 0);
    const gguf_kv *tok = &f->kv[ki];
    cr_assert_eq(tok->type, GGUF_T_ARRAY);
    cr_assert_eq(tok->arr_type, GGUF_T_STRING);
    cr_assert_eq(tok->arr_n, 512);
    cr_assert_eq(gguf_arr_str(tok, 0, &s), 0);
    cr_assert_eq(s.len, 5);
    cr_assert_eq(memcmp(s.ptr, "<unk>", 5), 0);
    cr_assert_eq(gguf_arr_str(tok, 1, &s), 0);
    cr_assert_eq(s.len, 3);
    cr_assert_eq(memcmp(s.ptr, "<s>", 3), 0);
    const gguf_kv *tt = &f->kv[gguf_find_key(f, "tokenizer.ggml.token_type")];
    cr_assert_eq(gguf_arr_num(tt, 0), 2.0); /* <unk> is UNKNOWN */
    int64_t ti = gguf_find_tensor(f, "token_embd.weight");
    cr_assert_eq(ti, 0);
    const gguf_tensor *t = &f->tensors[ti];
    cr_assert_eq(t->type, SLM_TYPE_F32);
    cr_assert_eq(t->n_dims, 2);
    cr_assert_eq(t->ne[0], 64);
    cr_assert_eq(t->ne[1], 512);
    cr_assert_eq(t->offset, 0);
    cr_assert_eq(t->nbytes, 64 * 512 * 4);
    /* Data of the last tensor ends inside the file; every value finite. */
    const gguf_tensor *last = &f->tensors[47];
    cr_assert_leq(f->data_offset + last->offset + last->nbytes, f->size);
    const float *w = last->data;
    for (int64_t i = 0; i < last->ne[0]; i++)
        cr_assert(isfinite(w[i]));
    gguf_close(f);
}

Test(gguf, open_errors_are_io)
{
    char *dir = tu_tmpdir("gguf");
    gguf_file *f = NULL;
    slm_err err = {0};
    cr_assert_eq(gguf_open(dir, &f, &err), SLM_EIO);
    cr_assert(strstr(err.msg, "directory"), "%s", err.msg);
    char *missing = tu_path(dir, "missing.gguf");
    cr_assert_eq(gguf_open(missing, &f, &err), SLM_EIO);
    cr_assert(strstr(err.msg, missing), "%s", err.msg);
    cr_assert_null(f);
    free(missing);
    tu_rmtree(dir);
    free(dir);
}

/* Truncate a copy of `full` to each length in turn (shrinking one file in
 * place); every cut before the end of the last tensor must be a clean
 * SLM_EINPUT that says "truncated". */
static void check_truncations(const uint8_t *full, size_t n, const size_t *lens, size_t n_lens, size_t min_ok)
{
    char *dir = tu_tmpdir("gguf");
    char *path = tu_path(dir, "cut.gguf");
    cr_assert_eq(tu_write_file(path, full, n), 0);
    for (size_t k = 0; k < n_lens; k++) {
        size_t len = lens[k];
        cr_assert_eq(truncate(path, (off_t)len), 0);
        gguf_file *f = NULL;
        slm_err err = {0};
        int rc = gguf_open(path, &f, &err);
        if (len >= min_ok) {
            cr_assert_eq(rc, SLM_OK, "cut at %zu: %s", len, err.msg);
            gguf_close(f);
            continue;
        }
        cr_assert_eq(rc, SLM_EINPUT, "cut at %zu: rc %d (%s)", len, rc, err.msg);
        cr_assert_null(f);
        cr_assert(strstr(err.msg, "truncated"), "cut at %zu: '%s'", len, err.msg);
    }
    free(path);
    tu_rmtree(dir);
    free(dir);
}

Test(gguf, truncation_mini_every_length)
{
    mini m;
    build_mini(&m);
    size_t *lens = malloc(m.b.n * sizeof *lens);
    for (size_t i = 0; i < m.b.n; i++)
        lens[i] = m.b.n - 1 - i; /* shrinking */
    /* Valid once the last tensor (c: 6 bytes at 128) is complete. */
    check_truncations(m.b.p, m.b.n, lens, m.b.n, m.data_offset + 128 + 6);
    free(lens);
    free(m.b.p);
}

Test(gguf, truncation_stories260k_header_and_data)
{
    size_t n;
    char *full = tu_read_file(tu_model("gguf/stories260K.gguf"), &n);
    cr_assert_not_null(full);
    gguf_file *f;
    slm_err err = {0};
    cr_assert_eq(gguf_open(tu_model("gguf/stories260K.gguf"), &f, &err), SLM_OK, "%s", err.msg);
    size_t data = f->data_offset;
    const gguf_tensor *last = &f->tensors[f->n_tensors - 1];
    size_t min_ok = data + last->offset + last->nbytes;
    gguf_close(f);
    size_t cap = data + 64 + n / 4099 + 8, k = 0;
    size_t *lens = malloc(cap * sizeof *lens);
    for (size_t len = n - 1; len > data + 32; len -= 4099) /* sample of data offsets */
        lens[k++] = len;
    for (size_t i = 0; i <= data + 32; i++) /* every header offset */
        lens[k++] = data + 32 - i;
    cr_assert_leq(k, cap);
    check_truncations((const uint8_t *)full, n, lens, k, min_ok);
    free(lens);
    free(full);
}

/* ---- corruption, each with its own message ----------------------------- */

Test(gguf, bad_magic) { mini m; build_mini(&m); m.b.p[0] = 'X'; expect_bad(&m, "not a GGUF file"); }
Test(gguf, bad_version) { mini m; build_mini(&m); patch32(&m, m.at_version, 7); expect_bad(&m, "unsupported GGUF version 7"); }
Test(gguf, huge_n_kv) { mini m; build_mini(&m); patch64(&m, m.at_nkv, UINT64_MAX / 2); expect_bad(&m, "n_kv"); }
Test(gguf, huge_n_tensors) { mini m; build_mini(&m); patch64(&m, m.at_ntensors, 1ull << 40); expect_bad(&m, "n_tensors"); }
Test(gguf, huge_key_length) { mini m; build_mini(&m); patch64(&m, m.at_key0_len, UINT64_MAX); expect_bad(&m, "metadata key at offset 24 has length"); }
Test(gguf, huge_string_length) { mini m; build_mini(&m); patch64(&m, m.at_str_len, 1ull << 62); expect_bad(&m, "string value"); }
Test(gguf, huge_array_count) { mini m; build_mini(&m); patch64(&m, m.at_arr_count, 1ull << 61); expect_bad(&m, "'t.arr_i16': array count"); }
Test(gguf, unknown_value_type) { mini m; build_mini(&m); patch32(&m, m.at_u8_type, 99); expect_bad(&m, "key 't.u8': unknown value type 99"); }
Test(gguf, unknown_array_type) { mini m; build_mini(&m); patch32(&m, m.at_arr_type, 13); expect_bad(&m, "unknown array element type 13"); }
Test(gguf, nested_array) { mini m; build_mini(&m); patch32(&m, m.at_arr_type, GGUF_T_ARRAY); expect_bad(&m, "nested arrays"); }
Test(gguf, duplicate_key) { mini m; build_mini(&m); memcpy(m.b.p + m.at_u8_type - 2, "i8", 2); expect_bad(&m, "duplicate metadata key 't.i8'"); }
Test(gguf, duplicate_tensor) { mini m; build_mini(&m); m.b.p[m.at_b_name] = 'a'; expect_bad(&m, "duplicate tensor name 'a'"); }
Test(gguf, unknown_ggml_type) { mini m; build_mini(&m); patch32(&m, m.at_b_type, 99); expect_bad(&m, "tensor 'b': unknown ggml type 99"); }
Test(gguf, retired_ggml_type) { mini m; build_mini(&m); patch32(&m, m.at_b_type, 4); expect_bad(&m, "unknown ggml type 4"); }
Test(gguf, n_dims_5) { mini m; build_mini(&m); patch32(&m, m.at_b_ndims, 5); expect_bad(&m, "tensor 'b': n_dims 5"); }
Test(gguf, n_dims_0) { mini m; build_mini(&m); patch32(&m, m.at_b_ndims, 0); expect_bad(&m, "n_dims 0"); }
Test(gguf, negative_dim) { mini m; build_mini(&m); patch64(&m, m.at_b_ne0, (uint64_t)-32); expect_bad(&m, "negative"); }
Test(gguf, dims_overflow) { mini m; build_mini(&m); patch64(&m, m.at_b_ne0, 1ull << 62); patch64(&m, m.at_b_ne0 + 8, 1ull << 20); expect_bad(&m, "overflows"); }
Test(gguf, row_not_block_multiple) { mini m; build_mini(&m); patch64(&m, m.at_b_ne0, 33); expect_bad(&m, "not a multiple of the q8_0 block size 32"); }
Test(gguf, misaligned_offset) { mini m; build_mini(&m); patch64(&m, m.at_b_offset, 65); expect_bad(&m, "offset 65 is not a multiple of the alignment 32"); }
Test(gguf, offset_past_end) { mini m; build_mini(&m); patch64(&m, m.at_b_offset, 4096); expect_bad(&m, "tensor 'b': data [4096, 4130) extends past the end"); }
Test(gguf, offset_overflow) { mini m; build_mini(&m); patch64(&m, m.at_b_offset, UINT64_MAX - 31); expect_bad(&m, "extends past the end"); }
Test(gguf, overlapping_tensors) { mini m; build_mini(&m); patch64(&m, m.at_b_offset, 32); expect_bad(&m, "tensor 'b' [32, 66) overlaps tensor 'a'"); }
Test(gguf, alignment_not_power_of_two) { mini m; build_mini(&m); patch32(&m, m.at_align_val, 24); expect_bad(&m, "general.alignment 24 is not a power of two"); }
Test(gguf, alignment_zero) { mini m; build_mini(&m); patch32(&m, m.at_align_val, 0); expect_bad(&m, "general.alignment 0 is not a power of two"); }

/* ---- writing ----------------------------------------------------------- */

static gguf_writer *copy_of(const gguf_file *f)
{
    gguf_writer *w = gguf_writer_new();
    cr_assert_not_null(w);
    for (uint64_t i = 0; i < f->n_kv; i++)
        cr_assert_eq(gguf_copy_kv(w, f, i), 0);
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        cr_assert_eq(gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne), (int64_t)i);
        cr_assert_eq(gguf_writer_tensor_nbytes(w, i), t->nbytes);
    }
    return w;
}

/* Stream every tensor's data in awkward pieces (splitting across tensors too). */
static void stream_data(gguf_writer *w, const gguf_file *f)
{
    slm_err err = {0};
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        uint64_t done = 0, step = 1;
        while (done < t->nbytes) {
            uint64_t k = t->nbytes - done < step ? t->nbytes - done : step;
            cr_assert_eq(gguf_writer_write(w, (const uint8_t *)t->data + done, k, &err), SLM_OK, "%s", err.msg);
            done += k;
            step = step * 3 + 7;
        }
    }
}

static void check_rewrite_identical(const char *src_path, const uint8_t *src, size_t n)
{
    gguf_file *f;
    slm_err err = {0};
    cr_assert_eq(gguf_open(src_path, &f, &err), SLM_OK, "%s", err.msg);
    gguf_writer *w = copy_of(f);
    cr_assert_eq(gguf_writer_total_size(w), n);
    char *dir = tu_tmpdir("gguf");
    char *out = tu_path(dir, "copy.gguf");
    cr_assert_eq(gguf_writer_begin(w, out, &err), SLM_OK, "%s", err.msg);
    stream_data(w, f);
    cr_assert_eq(gguf_writer_finish(w, &err), SLM_OK, "%s", err.msg);
    gguf_writer_free(w);
    size_t m;
    char *got = tu_read_file(out, &m);
    cr_assert_not_null(got);
    cr_assert_eq(m, n);
    size_t diff = 0;
    while (diff < n && (uint8_t)got[diff] == src[diff])
        diff++;
    cr_assert_eq(diff, n, "first difference at byte %zu", diff);
    cr_assert_eq(tu_count_entries(dir), 1);
    free(got);
    free(out);
    gguf_close(f);
    tu_rmtree(dir);
    free(dir);
}

Test(gguf, rewrite_stories260k_byte_identical)
{
    size_t n;
    const char *path = tu_model("gguf/stories260K.gguf");
    char *src = tu_read_file(path, &n);
    cr_assert_not_null(src);
    check_rewrite_identical(path, (const uint8_t *)src, n);
    free(src);
}

Test(gguf, rewrite_every_value_type_byte_identical)
{
    mini m;
    build_mini(&m);
    char *dir = tu_tmpdir("gguf");
    char *path = tu_path(dir, "mini.gguf");
    cr_assert_eq(tu_write_file(path, m.b.p, m.b.n), 0);
    check_rewrite_identical(path, m.b.p, m.b.n);
    free(path);
    free(m.b.p);
    tu_rmtree(dir);
    free(dir);
}

Test(gguf, writer_setters_roundtrip)
{
    gguf_writer *w = gguf_writer_new();
    cr_assert_eq(gguf_set_str(w, "general.architecture", "llama"), 0);
    cr_assert_eq(gguf_set_u32(w, "a.u32", 7), 0);
    cr_assert_eq(gguf_set_i32(w, "a.i32", -7), 0);
    cr_assert_eq(gguf_set_u64(w, "a.u64", 1ull << 40), 0);
    cr_assert_eq(gguf_set_f32(w, "a.f32", 0.25f), 0);
    cr_assert_eq(gguf_set_bool(w, "a.bool", 1), 0);
    const char *toks[] = {"<unk>", "", "\xe2\x96\x81the"};
    cr_assert_eq(gguf_set_arr_str(w, "a.toks", toks, 3), 0);
    const float sc[] = {0.5f, -1.0f};
    cr_assert_eq(gguf_set_arr_f32(w, "a.scores", sc, 2), 0);
    const int32_t ty[] = {2, 1, 6};
    cr_assert_eq(gguf_set_arr_i32(w, "a.types", ty, 3), 0);
    cr_assert_eq(gguf_set_u32(w, "a.gone", 1), 0);
    /* Replace keeps the position; remove drops it. */
    cr_assert_eq(gguf_set_u32(w, "a.u32", 8), 0);
    cr_assert_eq(gguf_remove_key(w, "a.gone"), 0);
    cr_assert_neq(gguf_remove_key(w, "a.gone"), 0);
    cr_assert_eq(gguf_set_u32(w, "general.alignment", 64), 0);

    const int64_t ne_f32[] = {5, 3}, ne_f16[] = {7}, ne_q4[] = {64, 2}, ne_q4k[] = {256}, ne_i32[] = {1, 1, 1, 3},
                  ne_empty[] = {0, 4};
    cr_assert_eq(gguf_add_tensor(w, "w.f32", SLM_TYPE_F32, 2, ne_f32), 0);
    cr_assert_eq(gguf_add_tensor(w, "w.empty", SLM_TYPE_F32, 2, ne_empty), 1);
    cr_assert_eq(gguf_add_tensor(w, "w.f16", SLM_TYPE_F16, 1, ne_f16), 2);
    cr_assert_eq(gguf_add_tensor(w, "w.q4_0", SLM_TYPE_Q4_0, 2, ne_q4), 3);
    cr_assert_eq(gguf_add_tensor(w, "w.q4_K", SLM_TYPE_Q4_K, 1, ne_q4k), 4);
    cr_assert_eq(gguf_add_tensor(w, "w.i32", SLM_TYPE_I32, 4, ne_i32), 5);
    /* Refused: duplicate, 5 dims, ragged block, unknown type, negative dim. */
    cr_assert_eq(gguf_add_tensor(w, "w.f32", SLM_TYPE_F32, 2, ne_f32), -1);
    const int64_t ne5[] = {1, 1, 1, 1, 1}, ne_rag[] = {33}, ne_neg[] = {-1};
    cr_assert_eq(gguf_add_tensor(w, "x", SLM_TYPE_F32, 5, ne5), -1);
    cr_assert_eq(gguf_add_tensor(w, "x", SLM_TYPE_Q8_0, 1, ne_rag), -1);
    cr_assert_eq(gguf_add_tensor(w, "x", 4, 1, ne_f16), -1);
    cr_assert_eq(gguf_add_tensor(w, "x", SLM_TYPE_F32, 1, ne_neg), -1);
    const uint64_t nbytes[] = {60, 0, 14, 2 * 36, 144, 12};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(gguf_writer_tensor_nbytes(w, i), nbytes[i], "tensor %d", i);

    char *dir = tu_tmpdir("gguf");
    char *path = tu_path(dir, "w.gguf");
    slm_err err = {0};
    uint64_t total = gguf_writer_total_size(w);
    cr_assert_eq(gguf_writer_begin(w, path, &err), SLM_OK, "%s", err.msg);
    cr_assert_neq(gguf_set_u32(w, "late", 1), 0); /* metadata is frozen after begin */
    uint8_t data[400];
    for (int i = 0; i < 400; i++)
        data[i] = (uint8_t)(i * 13 + 5);
    /* All 302 data bytes in one call: the writer splits and pads. */
    cr_assert_eq(gguf_writer_write(w, data, 302, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(gguf_writer_finish(w, &err), SLM_OK, "%s", err.msg);
    gguf_writer_free(w);

    gguf_file *f;
    cr_assert_eq(gguf_open(path, &f, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(f->size, total);
    cr_assert_eq(f->version, 3);
    cr_assert_eq(f->alignment, 64);
    cr_assert_eq(f->data_offset % 64, 0);
    cr_assert_eq(f->n_kv, 10);
    cr_assert_str_eq(f->kv[0].key, "general.architecture");
    cr_assert_str_eq(f->kv[1].key, "a.u32");
    cr_assert_str_eq(f->kv[9].key, "general.alignment");
    int64_t v;
    double d;
    int b;
    gguf_str s;
    cr_assert_eq(gguf_get_int(f, "a.u32", &v), 0); cr_assert_eq(v, 8);
    cr_assert_eq(f->kv[1].type, GGUF_T_UINT32);
    cr_assert_eq(gguf_get_int(f, "a.i32", &v), 0); cr_assert_eq(v, -7);
    cr_assert_eq(f->kv[2].type, GGUF_T_INT32);
    cr_assert_eq(gguf_get_int(f, "a.u64", &v), 0); cr_assert_eq(v, 1LL << 40);
    cr_assert_eq(f->kv[3].type, GGUF_T_UINT64);
    cr_assert_eq(gguf_get_float(f, "a.f32", &d), 0); cr_assert_eq(d, 0.25);
    cr_assert_eq(gguf_get_bool(f, "a.bool", &b), 0); cr_assert_eq(b, 1);
    cr_assert_eq(gguf_get_str(f, "general.architecture", &s), 0);
    cr_assert_eq(s.len, 5);
    cr_assert_eq(gguf_find_key(f, "a.gone"), -1);
    const gguf_kv *tk = &f->kv[gguf_find_key(f, "a.toks")];
    cr_assert_eq(tk->arr_n, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(gguf_arr_str(tk, i, &s), 0);
        cr_assert_eq(s.len, strlen(toks[i]));
        cr_assert_eq(memcmp(s.ptr, toks[i], s.len), 0);
    }
    const gguf_kv *sk = &f->kv[gguf_find_key(f, "a.scores")];
    cr_assert_eq(sk->arr_type, GGUF_T_FLOAT32);
    cr_assert_eq(gguf_arr_num(sk, 1), -1.0);
    const gguf_kv *yk = &f->kv[gguf_find_key(f, "a.types")];
    cr_assert_eq(yk->arr_type, GGUF_T_INT32);
    cr_assert_eq(gguf_arr_num(yk, 2), 6.0);

    cr_assert_eq(f->n_tensors, 6);
    uint64_t src = 0;
    for (int i = 0; i < 6; i++) {
        const gguf_tensor *t = &f->tensors[i];
        cr_assert_eq(t->nbytes, nbytes[i]);
        cr_assert_eq(t->offset % 64, 0, "tensor %s offset %lu", t->name, (unsigned long)t->offset);
        cr_assert_eq(memcmp(t->data, data + src, t->nbytes), 0, "tensor %s data", t->name);
        src += t->nbytes;
    }
    cr_assert_eq(f->tensors[5].ne[3], 3);
    cr_assert_eq(f->tensors[5].n_dims, 4);
    /* Padding between tensors is zeros. */
    const uint8_t *pad = (const uint8_t *)f->tensors[0].data + 60;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pad[i], 0);
    gguf_close(f);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

Test(gguf, writer_incomplete_or_excess_data_leaves_nothing)
{
    char *dir = tu_tmpdir("gguf");
    char *path = tu_path(dir, "w.gguf");
    slm_err err = {0};
    const int64_t ne[] = {4};
    uint8_t data[32] = {0};

    /* Missing data: finish refuses, names the tensor, no file remains. */
    gguf_writer *w = gguf_writer_new();
    cr_assert_eq(gguf_add_tensor(w, "t0", SLM_TYPE_F32, 1, ne), 0);
    cr_assert_eq(gguf_add_tensor(w, "t1", SLM_TYPE_F32, 1, ne), 1);
    cr_assert_eq(gguf_writer_begin(w, path, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(gguf_writer_write(w, data, 20, &err), SLM_OK);
    cr_assert_neq(gguf_writer_finish(w, &err), SLM_OK);
    cr_assert(strstr(err.msg, "'t1'"), "%s", err.msg);
    gguf_writer_free(w);
    cr_assert_eq(tu_count_entries(dir), 0);

    /* Too much data. */
    w = gguf_writer_new();
    cr_assert_eq(gguf_add_tensor(w, "t0", SLM_TYPE_F32, 1, ne), 0);
    cr_assert_eq(gguf_writer_begin(w, path, &err), SLM_OK, "%s", err.msg);
    cr_assert_neq(gguf_writer_write(w, data, 17, &err), SLM_OK);
    gguf_writer_free(w);
    cr_assert_eq(tu_count_entries(dir), 0);

    /* Freed without finish: aborted. */
    w = gguf_writer_new();
    cr_assert_eq(gguf_add_tensor(w, "t0", SLM_TYPE_F32, 1, ne), 0);
    cr_assert_eq(gguf_writer_begin(w, path, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(gguf_writer_write(w, data, 16, &err), SLM_OK);
    gguf_writer_free(w);
    cr_assert_eq(tu_count_entries(dir), 0);

    /* Bad alignment: refused at begin, nothing created. */
    w = gguf_writer_new();
    cr_assert_eq(gguf_set_u32(w, "general.alignment", 48), 0);
    cr_assert_eq(gguf_writer_begin(w, path, &err), SLM_EINPUT);
    cr_assert(strstr(err.msg, "power of two"), "%s", err.msg);
    gguf_writer_free(w);
    cr_assert_eq(tu_count_entries(dir), 0);

    /* Unwritable destination: refused at begin. */
    char *bad = tu_path(dir, "no/such/dir/w.gguf");
    w = gguf_writer_new();
    cr_assert_eq(gguf_writer_begin(w, bad, &err), SLM_EIO);
    gguf_writer_free(w);
    free(bad);

    /* No tensors at all is a valid file. */
    w = gguf_writer_new();
    cr_assert_eq(gguf_set_str(w, "general.name", "empty"), 0);
    cr_assert_eq(gguf_writer_begin(w, path, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(gguf_writer_finish(w, &err), SLM_OK, "%s", err.msg);
    gguf_writer_free(w);
    gguf_file *f;
    cr_assert_eq(gguf_open(path, &f, &err), SLM_OK, "%s", err.msg);
    cr_assert_eq(f->n_tensors, 0);
    cr_assert_eq(f->n_kv, 1);
    gguf_close(f);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

/* Random byte corruption of the header: never a crash, only OK or SLM_EINPUT. */
Test(gguf, random_header_corruption_is_clean)
{
    mini m;
    build_mini(&m);
    char *dir = tu_tmpdir("gguf");
    char *path = tu_path(dir, "fz.gguf");
    uint8_t *copy = malloc(m.b.n);
    uint64_t rng = 0x243F6A8885A308D3ull;
    int n_bad = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(copy, m.b.p, m.b.n);
        int flips = 1 + iter % 4;
        for (int k = 0; k < flips; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)(rng >> 33) % m.data_offset;
            copy[at] = (iter & 1) ? (uint8_t)(rng >> 20) : copy[at] ^ (uint8_t)(1u << ((rng >> 40) % 8));
        }
        cr_assert_eq(tu_write_file(path, copy, m.b.n), 0);
        gguf_file *f = NULL;
        slm_err err = {0};
        int rc = gguf_open(path, &f, &err);
        cr_assert(rc == SLM_OK || rc == SLM_EINPUT, "iter %d: rc %d (%s)", iter, rc, err.msg);
        if (rc == SLM_OK) {
            /* Whatever was accepted must be internally consistent. */
            for (uint64_t i = 0; i < f->n_tensors; i++)
                cr_assert_leq(f->data_offset + f->tensors[i].offset + f->tensors[i].nbytes, f->size);
            gguf_close(f);
        } else {
            cr_assert(strstr(err.msg, "fz.gguf: "), "%s", err.msg);
            n_bad++;
        }
    }
    cr_assert_gt(n_bad, 1000); /* most corruptions must be caught */
    free(copy);
    free(path);
    free(m.b.p);
    tu_rmtree(dir);
    free(dir);
}
