/* fuzz/fuzz_kld_base.c — the KL-divergence base file (runtime/kld.c, llama.cpp's
 * "_logits_" layout) as `slm perplexity --kl-divergence` reads it. The harness
 * takes n_ctx, n_vocab and n_chunk from the input's own header, over their whole
 * range: any header a real run could have (n_ctx >= 4, n_vocab >= 2, n_chunk >= 1:
 * vocabularies of 150k tokens, contexts of thousands) is used as is when the work it
 * implies fits a budget (so a crafted file reaches the per-chunk decoding); any other
 * (zero, negative, huge, or over budget) is read against a small run's parameters, so
 * the reader's header check sees it. The expected token ids come from its token
 * section; deterministic logits are fed for every chunk. */
#include "fuzz_common.h"

#include "rt_kld.h"

int fuzz_kld_base(const uint8_t *data, size_t size)
{
    if (size < 20)
        return SLM_EINPUT;
    int32_t hdr[3];
    memcpy(hdr, data + 8, sizeof hdr);
    const int64_t hc = hdr[0], hv = hdr[1], hk = hdr[2];
    /* budget: token ids (n_ctx * n_chunk) and logits fed (n_chunk * scored * n_vocab) */
    const int runnable = hc >= 4 && hv >= 2 && hk >= 1 && hc * hk <= (1 << 16) &&
                         hk * (hc - 1 - hc / 2) * hv <= ((int64_t)1 << 22);
    int n_ctx = runnable ? (int)hc : 16;
    int n_vocab = runnable ? (int)hv : 8;
    int n_chunk = runnable ? (int)hk : 1;
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
