/* tools/intoto.c — `slm intoto`: an in-toto statement in the shape of the OpenSSF
 * model-signing format (sigstore/model-transparency, predicate v1.0) for a bundle's
 * payload files, from its verified signed manifest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "pipeline.h"
#include "signing.h"

typedef struct intoto_args {
    const char *trust[16], *out;
    int n_trust;
} intoto_args;

static const slm_opt intoto_opts[] = {
    OPT_LIST('t', "trust", intoto_args, trust, n_trust, "ROOT", "trust root; repeat for a rotation chain (required)"),
    OPT_PATH('o', "output", intoto_args, out, "FILE", "where the statement goes (written atomically; required)"),
    OPT_END(),
};

const slm_cmd_doc doc_intoto = {
    .usage = "slm intoto BUNDLE.slmb --trust ROOT [--trust NEXT ...] -o STATEMENT.json",
    .description =
        "Write an in-toto Statement v1 for the model files of a bundle, in the form the\n"
        "OpenSSF model-signing tools (sigstore/model-transparency) sign and verify:\n"
        "predicateType https://model_signing/signature/v1.0, one resource per payload\n"
        "file (name, algorithm sha256, digest), serialization method \"files\", and a\n"
        "subject named after the bundle whose sha256 is the SHA-256 of the resource\n"
        "digests (raw bytes) in name order. The digests are the ones the bundle's\n"
        "publishers signed: the signatures, expiry and minimum runtime are verified\n"
        "against ROOT first (no payload byte is read). The statement itself is not\n"
        "signed: wrap it in a DSSE envelope with the signing tool of your choice.\n",
    .opts = intoto_opts,
    .exit_codes = "0 written, 2 usage, 3 bad input, 4 I/O, 5 verification failed",
};

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const slm_bundle_file *const *)a)->name, (*(const slm_bundle_file *const *)b)->name);
}

int cmd_intoto(int argc, char **argv)
{
    const char *C = "intoto";
    intoto_args a = {0};
    int optind = slm_opt_parse(C, intoto_opts, argc, argv, &a);
    if (optind < 0)
        return -optind;
    const char *const *trust = a.trust, *out = a.out;
    int n_trust = a.n_trust;
    if (argc - optind != 1 || !out || !n_trust)
        return cli_usage(C, "give BUNDLE, --trust ROOT and -o FILE");
    const char *bundle = argv[optind];
    slm_err err = {0};
    int64_t now = (int64_t)time(NULL);
    slm_root *root = NULL;
    slm_manifest *m = NULL;
    if (slm_trust_chain(trust, n_trust, now, &root, &err))
        return cli_fail_err(C, &err);
    slm_verify_opts vo = {now, NULL, 0, 1};
    int rc = slm_bundle_verify_head(bundle, root, &vo, &m, &err);
    slm_root_free(root);
    if (rc)
        return cli_fail_err(C, &err);
    /* resources in name order; the subject digest is SHA-256 over their raw digests */
    const slm_bundle_file *files[SLM_BUNDLE_MAX_FILES];
    for (int i = 0; i < m->n_files; i++)
        files[i] = &m->files[i];
    qsort(files, (size_t)m->n_files, sizeof files[0], by_name);
    slm_sha256_ctx *h = slm_sha256_new();
    cJSON *st = cJSON_CreateObject();
    cJSON_AddStringToObject(st, "_type", "https://in-toto.io/Statement/v1");
    cJSON *pred = cJSON_CreateObject(), *ser = cJSON_AddObjectToObject(pred, "serialization");
    cJSON_AddStringToObject(ser, "method", "files");
    cJSON_AddStringToObject(ser, "hash_type", "sha256");
    cJSON_AddFalseToObject(ser, "allow_symlinks");
    cJSON_AddArrayToObject(ser, "ignore_paths");
    cJSON *res = cJSON_AddArrayToObject(pred, "resources");
    for (int i = 0; h && i < m->n_files; i++) {
        char hex[2 * SLM_SHA256_LEN + 1];
        slm_hex(files[i]->sha256, SLM_SHA256_LEN, hex);
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "name", files[i]->name);
        cJSON_AddStringToObject(r, "algorithm", "sha256");
        cJSON_AddStringToObject(r, "digest", hex);
        cJSON_AddItemToArray(res, r);
        if (slm_sha256_update(h, files[i]->sha256, SLM_SHA256_LEN))
            rc = SLM_EINTERNAL;
    }
    uint8_t sd[SLM_SHA256_LEN];
    char shex[2 * SLM_SHA256_LEN + 1];
    if (!h || rc || slm_sha256_final(h, sd))
        rc = SLM_EINTERNAL;
    slm_sha256_free(h);
    slm_hex(sd, SLM_SHA256_LEN, shex);
    cJSON *subj = cJSON_AddArrayToObject(st, "subject"), *s0 = cJSON_CreateObject();
    cJSON_AddStringToObject(s0, "name", m->name);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(s0, "digest"), "sha256", shex);
    cJSON_AddItemToArray(subj, s0);
    cJSON_AddStringToObject(st, "predicateType", "https://model_signing/signature/v1.0");
    cJSON_AddItemToObject(st, "predicate", pred);
    char *text = rc ? NULL : cJSON_Print(st);
    cJSON_Delete(st);
    slm_manifest_free(m);
    if (!text)
        return cli_fail(C, SLM_EINTERNAL, "out of memory");
    rc = slm_pl_write_line(out, text, &err);
    free(text);
    if (rc)
        return cli_fail_err(C, &err);
    printf("wrote %s: in-toto statement, subject sha256:%s\n", out, shex);
    return 0;
}
