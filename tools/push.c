/* tools/push.c — `slm push`: a signed bundle to an OCI registry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "regcli.h"

typedef struct push_args {
    int json;
    const char *tuf, *tuf_tag;
    regcli rg;
} push_args;

static const slm_opt push_opts[] = {
    OPT_DIR(0, "tuf", push_args, tuf, "REPO",
            "also attach the TUF metadata of REPO (slm tuf init/add):\n"
            "N.root.json, targets, snapshot, timestamp as one artifact\n"
            "tagged T (default tuf) in the same repository"),
    OPT_STRING(0, "tuf-tag", push_args, tuf_tag, "T", "the tag of that artifact"),
    OPT_INCLUDE_AS(cli_json_table, push_args, json, "print the result as one JSON object"),
    OPT_GROUP("registry options:"),
    OPT_INCLUDE(regcli_table, push_args, rg),
    OPT_END(),
};

const slm_cmd_doc doc_push = {
    .usage =
        "slm push BUNDLE.slmb HOST[:PORT]/REPO:TAG [--tuf REPO [--tuf-tag T]] [--json] [registry options]\n"
        "slm push --tuf REPO HOST[:PORT]/REPO [--tuf-tag T]",
    .description =
        "Upload a bundle to an OCI registry (CNCF Distribution, zot, Harbor, GHCR, ...)\n"
        "as a model artifact (artifactType application/vnd.cncf.model.manifest.v1+json,\n"
        "a CNCF ModelPack config): layer 0 is the bundle head (header, signed manifest,\n"
        "signatures), then each payload file uncompressed (the GGUF itself, media type\n"
        "application/vnd.cncf.model.weight.v1.raw: its digest is the SHA-256 the signed\n"
        "manifest carries), so releases with the same model share one blob. Blobs the\n"
        "registry already has are not sent again (a zstd bundle's files are decompressed,\n"
        "hash-checked, into a temp file beside it only when the registry lacks them);\n"
        "each upload is checked against its SHA-256 digest (blobs\n"
        "over 32 MiB go up in chunks). The signed manifest and signatures are also\n"
        "attached as a referrer (subject = the model manifest), through the referrers\n"
        "API or, where the registry lacks it, the sha256-<hex> tag schema. Token auth\n"
        "(Bearer challenge) with credentials from --creds or ~/.docker/config.json.\n"
        "Run `slm verify` before pushing: push checks the bundle's structure only.\n"
        "The second form pushes the TUF metadata alone.\n",
    .opts = push_opts,
    .exit_codes =
        "0 pushed, 2 usage, 3 not a bundle, 4 I/O or network (one line says\n"
        "which), 5 the registry's digest differs from ours",
};

int cmd_push(int argc, char **argv)
{
    const char *C = "push";
    push_args a = {.tuf_tag = "tuf"};
    int optind = slm_opt_parse(C, push_opts, argc, argv, &a);
    if (optind < 0)
        return -optind;
    regcli rc_ = a.rg;
    const char *tuf = a.tuf, *tuf_tag = a.tuf_tag;
    int json = a.json, rc = 0;
    if (rc_.n_allow)
        rc_.o.allow_hosts = rc_.allow; /* the copy's own array */
    if (argc - optind != 2 && !(tuf && argc - optind == 1))
        return cli_usage(C, "give BUNDLE.slmb and HOST/REPO:TAG (or --tuf REPO and HOST/REPO)");
    const char *bundle = argc - optind == 2 ? argv[optind] : NULL, *ref = argv[argc - 1];
    slm_push_result res;
    memset(&res, 0, sizeof res);
    slm_err err = {0};
    char tref[600], tdg[72] = "";
    if (tuf && (rc = regcli_tuf_ref(ref, tuf_tag, tref, sizeof tref, &err)))
        return cli_fail_err(C, &err);
    if (bundle && (rc = slm_registry_push(bundle, ref, &rc_.o, &res, &err)))
        return cli_fail_err(C, &err);
    /* the TUF metadata after the bundle: a device that sees the new targets finds the release there */
    if (tuf && (rc = slm_registry_push_tuf(tuf, tref, &rc_.o, tdg, &err)))
        return cli_fail_err(C, &err);
    if (!bundle) {
        if (json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "tuf_ref", tref);
            cJSON_AddStringToObject(j, "tuf_digest", tdg);
            char *s = cJSON_PrintUnformatted(j);
            printf("%s\n", s ? s : "{}");
            free(s);
            cJSON_Delete(j);
        } else
            printf("pushed the TUF metadata of %s -> %s@%s\n", tuf, tref, tdg);
        return 0;
    }
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "ref", ref);
        cJSON_AddStringToObject(j, "manifest_digest", res.manifest_digest);
        cJSON_AddNumberToObject(j, "manifest_size", (double)res.manifest_size);
        cJSON_AddNumberToObject(j, "layers", res.n_layers);
        cJSON_AddNumberToObject(j, "blobs_uploaded", res.blobs_uploaded);
        cJSON_AddNumberToObject(j, "blobs_existing", res.blobs_existing);
        cJSON_AddStringToObject(j, "payload_digest", res.payload_digest);
        cJSON_AddStringToObject(j, "referrer_digest", res.referrer_digest);
        cJSON_AddStringToObject(j, "referrers", res.referrers_api ? "api" : "tag-schema");
        if (tuf) {
            cJSON_AddStringToObject(j, "tuf_ref", tref);
            cJSON_AddStringToObject(j, "tuf_digest", tdg);
        }
        char *s = cJSON_PrintUnformatted(j);
        printf("%s\n", s ? s : "{}");
        free(s);
        cJSON_Delete(j);
    } else {
        printf("pushed %s -> %s@%s (%d layers: %d uploaded, %d already there; referrer via %s)\n", bundle, ref,
               res.manifest_digest, res.n_layers, res.blobs_uploaded, res.blobs_existing,
               res.referrers_api ? "the referrers API" : "the sha256-<hex> tag schema");
    }
    return 0;
}
