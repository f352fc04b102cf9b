/* fuzz/fuzz_root.c — a trust root file (signing/root.c): parse, then check
 * its self-signature threshold and look up each key. */
#include "fuzz_signing.h"

int fuzz_root(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return SLM_EIO;
    slm_err err = {0};
    slm_root *r = NULL;
    int rc = slm_root_load(path, &r, &err);
    close(fd);
    if (rc)
        return rc;
    if (r->n_keys < 0 || r->n_keys > SLM_ROOT_MAX_KEYS || r->n_sigs < 0)
        abort();
    for (int i = 0; i < r->n_keys; i++)
        if (slm_root_find_key(r, r->keys[i].id) == NULL)
            abort();
    rc = slm_root_verify_self(r, &err);
    slm_root_free(r);
    return rc;
}

FUZZ_ENTRY(fuzz_root)
