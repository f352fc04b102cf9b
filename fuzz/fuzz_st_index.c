/* fuzz/fuzz_st_index.c — a sharded checkpoint's model.safetensors.index.json
 * (formats/safetensors.c, open_index). The input is the index; the scratch
 * directory holds two small valid shards (written once per process) that a
 * well-formed index can name, so the fuzzer reaches the cross-checks between
 * the weight_map and the shards' own headers. */
#include "fuzz_common.h"

static const char *const k_shard[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};

static void make_shard(const char *dir, int which)
{
    static const int64_t mat[2] = {4, 2}, vec[1] = {2};
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, k_shard[which]);
    st_writer *w = st_writer_new();
    if (!w)
        abort();
    if (which == 0) {
        st_writer_add(w, "model.embed_tokens.weight", SLM_TYPE_F32, 2, mat);
        st_writer_add(w, "model.norm.weight", SLM_TYPE_F16, 1, vec);
    } else {
        st_writer_add(w, "lm_head.weight", SLM_TYPE_BF16, 2, mat);
        st_writer_add(w, "model.layers.0.input_layernorm.weight", SLM_TYPE_F32, 1, vec);
    }
    uint8_t bytes[64];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (uint8_t)(i * 37 + 11);
    size_t n = which == 0 ? 8 * 4 + 2 * 2 : 8 * 2 + 2 * 4;
    slm_err err = {0};
    if (st_writer_begin(w, path, &err) || st_writer_write(w, bytes, n, &err) || st_writer_finish(w, &err)) {
        fprintf(stderr, "fuzz_st_index: cannot write %s: %s\n", path, err.msg);
        abort();
    }
}

int fuzz_st_index(const uint8_t *data, size_t size)
{
    static int ready;
    const char *dir = fz_scratch_dir();
    if (!ready) {
        make_shard(dir, 0);
        make_shard(dir, 1);
        ready = 1;
    }
    fz_put(dir, "model.safetensors.index.json", data, size);
    slm_err err = {0};
    st_model *m = NULL;
    int rc = st_open(dir, &m, &err);
    if (rc)
        return rc;
    unsigned sink = 0;
    for (size_t i = 0; i < st_count(m); i++) {
        const st_tensor *t = st_get(m, i);
        if (st_find(m, t->name) != t || !st_shard_path(m, t->shard))
            abort();
        sink += fz_touch(t->data, t->nbytes);
    }
    (void)sink;
    st_close(m);
    return 0;
}

FUZZ_ENTRY(fuzz_st_index)
