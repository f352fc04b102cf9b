/* fuzz/fuzz_signing.h — what the signing fuzz targets share: one fixed
 * Ed25519 key (from a constant seed) and a trust root holding it, so that
 * harness-signed inputs get past the signature checks and reach the manifest
 * and payload code. fuzz/make_signing_seeds.c uses the same key. */
#ifndef SLM_FUZZ_SIGNING_H
#define SLM_FUZZ_SIGNING_H

#include "fuzz_common.h"
#include "sg_internal.h"
#include "signing.h"

#define FZ_T_CREATED 1700000000LL
#define FZ_T_NOW 1750000000LL
#define FZ_T_EXPIRES 4102444800LL /* 2100-01-01 */

static inline const slm_key *fz_key(void)
{
    static slm_key *k;
    if (!k) {
        uint8_t seed[32];
        for (int i = 0; i < 32; i++)
            seed[i] = (uint8_t)(0x5a ^ (i * 7));
        slm_err err = {0};
        if (slm_key_from_seed(seed, &k, &err)) {
            fprintf(stderr, "fuzz: key: %s\n", err.msg);
            abort();
        }
    }
    return k;
}

/* Write the harness's root (version 1, threshold 1, signed) to path. */
static inline void fz_write_root(const char *path)
{
    const slm_key *keys[1] = {fz_key()};
    slm_err err = {0};
    unlink(path);
    if (slm_root_create(path, 1, FZ_T_CREATED, FZ_T_EXPIRES, 1, keys, 1, keys, 1, &err)) {
        fprintf(stderr, "fuzz: root: %s\n", err.msg);
        abort();
    }
}

static inline const slm_root *fz_root(void)
{
    static slm_root *r;
    if (!r) {
        char path[512];
        snprintf(path, sizeof path, "%s/root.json", fz_scratch_dir());
        fz_write_root(path);
        slm_err err = {0};
        if (slm_root_load(path, &r, &err)) {
            fprintf(stderr, "fuzz: root: %s\n", err.msg);
            abort();
        }
    }
    return r;
}

static inline slm_verify_opts fz_opts(void)
{
    slm_verify_opts o = {.now = FZ_T_NOW, .runtime_version = NULL, .floor = 0, .check_expiry = 1};
    return o;
}

#endif
