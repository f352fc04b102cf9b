/* fuzz/fuzz_gguf_model.c — the runtime model loader (runtime/model.c):
 * hyper-parameters from a GGUF's metadata checked against its tensors. When
 * the input loads, a tiny context runs two tokens through the forward pass
 * (garbage weights are fine: the bar is no crash and no out-of-bounds access).
 * The seed is a real model cut to one layer (fuzz/make_corpus.sh). */
#include "fuzz_common.h"
#include "runtime.h"

int fuzz_gguf_model(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return SLM_EIO;
    slm_err err = {0};
    slm_model *m = NULL;
    int rc = slm_model_load(path, &m, &err);
    close(fd); /* the loader keeps its own mapping */
    if (rc)
        return rc;
    const slm_hparams *hp = slm_model_hparams(m);
    /* keep each run cheap: skip the forward pass for models the fuzzer made big */
    if ((uint64_t)hp->n_embd * (uint64_t)(hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd) * (uint64_t)hp->n_layer <=
            (1u << 22) &&
        (uint64_t)hp->n_vocab * (uint64_t)hp->n_embd <= (1u << 22)) {
        slm_ctx *c = NULL;
        if (slm_ctx_new(m, 8, 4, 1, &c, &err) == 0) {
            int32_t toks[2] = {1 % hp->n_vocab, (hp->n_vocab - 1)};
            if (slm_decode(c, toks, 2, 1, &err) == 0) {
                const float *lg = slm_ctx_logits(c, 1);
                volatile float s = 0;
                for (int i = 0; i < hp->n_vocab; i++)
                    s += lg[i];
                (void)s;
            }
            slm_ctx_free(c);
        }
    }
    slm_model_free(m);
    return 0;
}

FUZZ_ENTRY(fuzz_gguf_model)
