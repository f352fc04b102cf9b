/* fuzz/fuzz_imatrix.c — importance-matrix files (formats/imatrix.c): GGUF
 * (llama-imatrix's format) or legacy .dat. Every entry is looked up by name
 * and its mean importance computed (lengths must match the arrays). */
#include "fuzz_common.h"

int fuzz_imatrix(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return SLM_EIO;
    slm_err err = {0};
    slm_imatrix im;
    memset(&im, 0, sizeof im);
    int rc = slm_imatrix_read(path, &im, &err);
    close(fd);
    if (rc)
        return rc;
    for (size_t i = 0; i < im.n; i++) {
        const slm_imatrix_entry *e = &im.e[i];
        if (e->n <= 0 || e->n_mat <= 0 || slm_imatrix_find(&im, e->name) != e)
            abort();
        float *mean = malloc((size_t)(e->n * e->n_mat) * sizeof *mean);
        if (!mean)
            abort();
        (void)slm_imatrix_mean(e, mean);
        free(mean);
    }
    unsigned sink = 0;
    for (size_t i = 0; i < im.n_datasets; i++)
        sink += (unsigned)strlen(im.datasets[i]);
    (void)sink;
    slm_imatrix_free(&im);
    return 0;
}

FUZZ_ENTRY(fuzz_imatrix)
