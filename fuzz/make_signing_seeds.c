/* fuzz/make_signing_seeds.c — seeds for the root, bundle and manifest fuzz
 * targets, signed with the harness key (fuzz_signing.h). Built and run by
 * fuzz/make_corpus.sh: make_signing_seeds CORPUS_DIR PAYLOAD_FILE... */
#include "fuzz_signing.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s CORPUS_DIR PAYLOAD...\n", argv[0]);
        return 2;
    }
    const char *c = argv[1];
    char p[1024], q[1024];
    snprintf(p, sizeof p, "%s/root/root-1key", c);
    fz_write_root(p);
    const slm_key *keys[1] = {fz_key()};
    slm_bundle_spec s = {.name = "stories260k-small", .version = 7, .created = FZ_T_CREATED,
                         .expires = FZ_T_EXPIRES, .min_runtime = NULL,
                         .meta_json = "{\"canary\":{\"text\":\"Once upon a time\",\"ppl\":4.5}}",
                         .n_files = argc - 2, .paths = (const char *const *)argv + 2, .names = NULL, .level = 3};
    snprintf(p, sizeof p, "%s/bundle/small", c);
    slm_err err = {0};
    unlink(p);
    if (slm_bundle_create(p, &s, keys, 1, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    /* the manifest seed: the bundle's manifest bytes, FZ_SEP, its payload */
    FILE *f = fopen(p, "rb");
    uint8_t hdr[SLM_BUNDLE_HEADER_LEN];
    if (!f || fread(hdr, 1, sizeof hdr, f) != sizeof hdr)
        return 1;
    uint32_t mlen = hdr[12] | hdr[13] << 8 | hdr[14] << 16 | (uint32_t)hdr[15] << 24;
    uint32_t slen = hdr[16] | hdr[17] << 8 | hdr[18] << 16 | (uint32_t)hdr[19] << 24;
    char *man = malloc(mlen), *skip = malloc(slen);
    if (!man || !skip || fread(man, 1, mlen, f) != mlen || fread(skip, 1, slen, f) != slen)
        return 1;
    snprintf(q, sizeof q, "%s/manifest/small", c);
    FILE *o = fopen(q, "wb");
    if (!o)
        return 1;
    fwrite(man, 1, mlen, o);
    fputs(FZ_SEP, o);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, o);
    fclose(f);
    if (fclose(o))
        return 1;
    free(man);
    free(skip);
    return 0;
}
