/* fuzz/fuzz_bundle.c — a whole bundle file (signing/bundle.c): header,
 * signatures, manifest and payload, verified against the harness's root.
 * Mutations of the signed manifest fail at the signatures; mutations of the
 * header, the signature block and the payload go deeper (fuzz_manifest
 * covers the manifest parser behind valid signatures). Header format 2
 * (payload stored uncompressed, what `slm pull` lands) goes the same way, and
 * slm_bundle_unpack (push's structure-only reader) sees every input too. */
#include "fuzz_signing.h"

int fuzz_bundle(const uint8_t *data, size_t size)
{
    const slm_root *root = fz_root();
    char path[64];
    int fd = fz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return SLM_EIO;
    slm_err err = {0};
    slm_verify_opts o = fz_opts();
    slm_manifest *m = NULL;
    int rc = slm_bundle_verify_head(path, root, &o, &m, &err);
    slm_manifest_free(m);
    m = NULL;
    if (rc == 0)
        rc = slm_bundle_verify(path, root, &o, NULL, &m, &err);
    slm_manifest_free(m);
    m = NULL;
    slm_err uerr = {0};
    int urc = slm_bundle_unpack(path, NULL, &m, &uerr);
    slm_manifest_free(m);
    if (rc == 0 && urc != 0) /* whatever verifies must unpack */
        abort();
    close(fd);
    return rc;
}

FUZZ_ENTRY(fuzz_bundle)
