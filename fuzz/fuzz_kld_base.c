/* fuzz/fuzz_kld_base.c — the KL-divergence base file (runtime/kld.c, llama.cpp's
 * "_logits_" layout) as `slm perplexity --kl-divergence` reads it. The harness
 * takes n_ctx, n_vocab and n_chunk from the input's own header (bounded, so a
 * crafted file reaches the per-chunk decoding) and the expected token ids from
 * its token section, then feeds deterministic logits for every chunk. */
#include "fuzz_common.h"

#include "rt_kld.h"

int fuzz_kld_base(const uint8_t *data, size_t size)
{
    if (size < 20)
        return SLM_EINPUT;
    int32_t hdr[3];
    memcpy(hdr, data + 8, sizeof hdr);
    /* small bounds keep each execution fast; the reader checks the rest */
    int n_ctx = hdr[0] >= 4 && hdr[0] <= 64 ? hdr[0] : 16;
    int n_vocab = hdr[1] >= 2 && hdr[1] <= 1024 ? hdr[1] : 8;
    int n_chunk = hdr[2] >= 1 && hdr[2] <= 4 ? hdr[2] : 1;
    size_t n_ids = (size_t)n_ctx * (size_t)n_chunk;
    int32_t *ids = calloc(n_ids, sizeof *ids);
    if (!ids)
        return SLM_EINTERNAL;
    size_t have = size > 20 ? (size - 20) / sizeof(int32_t) : 0;
    memcpy(ids, data + 20, (have < n_ids ? have : n_ids) * sizeof(int32_t));
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= n_vocab)
            ids[i] = (int32_t)((uint32_t)ids[i] % (uint32_t)n_vocab);

    char path[64];
    int fd = fz_memfile(data, size, path, sizeof path);
    if (fd < 0) {
        free(ids);
        return SLM_EIO;
    }
    slm_ppl_params p;
    memset(&p, 0, sizeof p);
    p.n_ctx = n_ctx;
    p.kld_base_in = path;
    slm_err err = {0};
    slm_kld_state *s = NULL;
    int rc = slm_kld_begin(&s, &p, ids, n_ids, n_ctx, n_chunk, n_vocab, &err);
    int n_scored = n_ctx - 1 - n_ctx / 2;
    float *logits = malloc(sizeof(float) * (size_t)n_scored * (size_t)n_vocab);
    if (!rc && !logits)
        rc = SLM_EINTERNAL;
    for (int c = 0; !rc && c < n_chunk; c++) {
        for (int j = 0; j < n_scored * n_vocab; j++)
            logits[j] = (float)((j * 7 + c * 13) % 17) * 0.25f - 2.0f;
        rc = slm_kld_chunk(s, logits, ids + (size_t)c * n_ctx + n_ctx / 2, n_scored, &err);
    }
    slm_kld_result r;
    if (!rc)
        rc = slm_kld_finish(s, &r, &err);
    slm_kld_free(s);
    free(logits);
    free(ids);
    close(fd);
    return rc;
}

FUZZ_ENTRY(fuzz_kld_base)
