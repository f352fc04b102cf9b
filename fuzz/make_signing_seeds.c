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
    /* the stored seed (header format 2, what `slm pull` lands): the head, then the files uncompressed */
    snprintf(q, sizeof q, "%s/bundle/small-stored", c);
    FILE *st = fopen(q, "wb"), *sb = fopen(p, "rb");
    uint8_t sh[SLM_BUNDLE_HEADER_LEN];
    if (!st || !sb || fread(sh, 1, sizeof sh, sb) != sizeof sh)
        return 1;
    uint32_t hl = SLM_BUNDLE_HEADER_LEN + (sh[12] | sh[13] << 8 | sh[14] << 16 | (uint32_t)sh[15] << 24) +
                  (sh[16] | sh[17] << 8 | sh[18] << 16 | (uint32_t)sh[19] << 24);
    sh[8] = SLM_BUNDLE_FORMAT_STORED;
    fwrite(sh, 1, sizeof sh, st);
    for (uint32_t k = SLM_BUNDLE_HEADER_LEN; k < hl; k++)
        fputc(fgetc(sb), st);
    fclose(sb);
    fclose(st);
    st = fopen(q, "ab");
    for (int k = 2; st && k < argc; k++) {
        FILE *in = fopen(argv[k], "rb");
        char cb[65536];
        size_t cn;
        while (in && (cn = fread(cb, 1, sizeof cb, in)) > 0)
            fwrite(cb, 1, cn, st);
        if (in)
            fclose(in);
    }
    if (!st || fclose(st))
        return 1;
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
