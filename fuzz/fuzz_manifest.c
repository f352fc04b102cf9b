/* fuzz/fuzz_manifest.c — a bundle manifest (signing/bundle.c) behind valid
 * signatures: the input is the manifest JSON, FZ_SEP, then the payload bytes;
 * the harness signs the manifest with its key and assembles the bundle
 * (header, manifest, signature block, payload), so every input reaches the
 * manifest parser and, when that accepts, the payload checks. */
#include "fuzz_signing.h"

static void put_u32le(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int fuzz_manifest(const uint8_t *data, size_t size)
{
    const slm_root *root = fz_root();
    const uint8_t *part[2];
    size_t len[2] = {0, 0};
    int n = fz_split(data, size, part, len, 2);
    if (n < 2)
        part[1] = data + size;
    if (len[0] > SLM_MANIFEST_MAX)
        return SLM_EINPUT;
    slm_sig sig;
    memset(&sig, 0, sizeof sig);
    memcpy(sig.keyid, slm_key_id(fz_key()), SLM_KEYID_HEX_LEN);
    slm_err err = {0};
    if (slm_key_sign(fz_key(), part[0], len[0], sig.sig, &err))
        abort();
    char *sigs = sg_sigs_print(&sig, 1);
    if (!sigs)
        abort();
    size_t slen = strlen(sigs);
    uint8_t hdr[SLM_BUNDLE_HEADER_LEN];
    memcpy(hdr, SLM_BUNDLE_MAGIC, 8);
    put_u32le(hdr + 8, SLM_BUNDLE_FORMAT);
    put_u32le(hdr + 12, (uint32_t)len[0]);
    put_u32le(hdr + 16, (uint32_t)slen);
    put_u32le(hdr + 20, 0);
    int fd = memfd_create("slmfuzz", MFD_CLOEXEC);
    if (fd < 0 || fz_write_all(fd, hdr, sizeof hdr) || fz_write_all(fd, part[0], len[0]) ||
        fz_write_all(fd, (const uint8_t *)sigs, slen) || fz_write_all(fd, part[1], len[1]))
        abort();
    free(sigs);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    slm_verify_opts o = fz_opts();
    slm_manifest *m = NULL;
    int rc = slm_bundle_verify(path, root, &o, NULL, &m, &err);
    if (rc == 0 && (m->n_files < 0 || m->n_files > SLM_BUNDLE_MAX_FILES))
        abort();
    slm_manifest_free(m);
    close(fd);
    return rc;
}

FUZZ_ENTRY(fuzz_manifest)
