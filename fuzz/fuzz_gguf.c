/* fuzz/fuzz_gguf.c — the GGUF reader (formats/gguf_read.c): open the input
 * as a file, then walk everything the reader hands out (every kv through the
 * typed getters and element accessors, every tensor name and data range). */
#include "fuzz_common.h"

#include <stddef.h>

int fuzz_gguf(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return SLM_EIO;
    slm_err err = {0};
    gguf_file *f = NULL;
    int rc = gguf_open(path, &f, &err);
    close(fd);
    if (rc)
        return rc;
    unsigned sink = 0;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        int64_t iv;
        double dv;
        int bv;
        gguf_str s;
        if (gguf_find_key(f, kv->key) != (int64_t)i)
            abort(); /* a key that does not find itself: broken index */
        (void)gguf_get_int(f, kv->key, &iv);
        (void)gguf_get_float(f, kv->key, &dv);
        (void)gguf_get_bool(f, kv->key, &bv);
        if (gguf_get_str(f, kv->key, &s) == 0)
            sink += fz_touch(s.ptr, s.len);
        sink += fz_touch(kv->raw, kv->raw_len);
        if (kv->type == GGUF_T_ARRAY) {
            for (uint64_t k = 0; k < kv->arr_n; k++) {
                if (kv->arr_type == GGUF_T_STRING) {
                    if (gguf_arr_str(kv, k, &s) != 0)
                        abort(); /* validated at open: must be readable */
                    sink += fz_touch(s.ptr, s.len);
                } else {
                    sink += (unsigned)(gguf_arr_num(kv, k) != 0);
                }
            }
        }
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        if (gguf_find_tensor(f, t->name) != (int64_t)i)
            abort();
        /* independent of the reader's arithmetic: exact 128-bit element and byte counts */
        unsigned __int128 elems = 1;
        for (uint32_t d = 0; d < t->n_dims; d++)
            elems *= (unsigned __int128)(uint64_t)t->ne[d];
        int bs = slm_type_block_size(t->type);
        if (bs <= 0 || elems != t->n_elems ||
            elems / (unsigned)bs * slm_type_block_bytes(t->type) != t->nbytes)
            abort(); /* accepted a tensor whose size does not match its shape */
        if ((const uint8_t *)t->data < f->map || t->nbytes > f->size ||
            (const uint8_t *)t->data - f->map > (ptrdiff_t)(f->size - t->nbytes))
            abort(); /* data outside the mapping */
        sink += fz_touch(t->data, t->nbytes);
    }
    (void)sink;
    gguf_close(f);
    return 0;
}

FUZZ_ENTRY(fuzz_gguf)
