/* fuzz/fuzz_safetensors.c — one safetensors file (formats/safetensors.c):
 * u64 header length, JSON header, data area. Every tensor the reader accepts
 * is looked up by name and decoded whole (the data pointer and byte count must
 * stay inside the mapping). */
#include "fuzz_common.h"

int fuzz_safetensors(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return SLM_EIO;
    slm_err err = {0};
    st_model *m = NULL;
    int rc = st_open(path, &m, &err);
    close(fd);
    if (rc)
        return rc;
    float buf[256];
    unsigned sink = 0;
    for (size_t i = 0; i < st_count(m); i++) {
        const st_tensor *t = st_get(m, i);
        if (st_find(m, t->name) != t)
            abort();
        /* independent of the reader's arithmetic: exact 128-bit counts */
        unsigned __int128 elems = 1;
        for (int d = 0; d < t->n_dims; d++) {
            if (t->shape[d] < 0)
                abort();
            elems *= (unsigned __int128)t->shape[d];
        }
        if (elems != t->n_elems || elems * (t->dtype == SLM_TYPE_F32 ? 4u : 2u) != t->nbytes)
            abort(); /* accepted a tensor whose size does not match its shape */
        sink += fz_touch(t->data, t->nbytes);
        for (uint64_t e = 0; e < t->n_elems; e += 256)
            st_read_f32(t, e, t->n_elems - e < 256 ? t->n_elems - e : 256, buf);
        st_release(m, t);
    }
    (void)sink;
    st_close(m);
    return 0;
}

FUZZ_ENTRY(fuzz_safetensors)
