/* tools/verify.c — `slm verify`: check a bundle against a trust root, streaming. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "pipeline.h"
#include "signing.h"

typedef struct verify_args {
    const char *trust[16];
    int n_trust, json;
    long long floor_v;
} verify_args;

static const slm_opt verify_opts[] = {
    OPT_LIST('t', "trust", verify_args, trust, n_trust, "ROOT", "trust root; repeat to walk a rotation chain (required)"),
    OPT_I64(0, "floor", verify_args, floor_v, "V", 0, 1LL << 53, "refuse versions <= V (what an install store would do)"),
    OPT_INCLUDE_AS(cli_json_table, verify_args, json, "print the verified manifest summary as one JSON object"),
    OPT_END(),
};

const slm_cmd_doc doc_verify = {
    .usage =
        "slm verify BUNDLE.slmb --trust ROOT [--trust NEXT_ROOT ...] [--json] [--floor V]",
    .description =
        "Verify a bundle without installing it: header, then the signatures over the\n"
        "exact manifest bytes (every signature by a key of the root and valid, at least\n"
        "the root's threshold), then expiry, minimum runtime and --floor, then every\n"
        "payload byte hashed while it is decompressed (reads capped by the declared\n"
        "sizes, trailing bytes refused). Memory stays bounded whatever the size.\n"
        "Several --trust files form a rotation chain: the first is trusted as given,\n"
        "each next one must be its successor (version + 1, signed by both thresholds).\n",
    .opts = verify_opts,
    .exit_codes =
        "0 verified, 2 usage, 3 bad input, 4 I/O, 5 verification failed\n"
        "(one line says which check; the list is in docs/bundles.md)",
};

int cmd_verify(int argc, char **argv)
{
    const char *C = "verify", *bundle = NULL;
    verify_args a = {0};
    int optind = slm_opt_parse(C, verify_opts, argc, argv, &a);
    if (optind < 0)
        return -optind;
    const char *const *trust = a.trust;
    int n_trust = a.n_trust, json = a.json;
    long long floor_v = a.floor_v;
    if (optind < argc)
        bundle = argv[optind++];
    if (optind < argc)
        return cli_usage(C, "unexpected argument '%s'", argv[optind]);
    if (!bundle || !n_trust)
        return cli_usage(C, "give a BUNDLE and --trust ROOT");
    slm_err err = {0};
    slm_root *root = NULL;
    slm_manifest *m = NULL;
    if (slm_pl_verify(bundle, trust, n_trust, (uint64_t)floor_v, &root, &m, &err))
        return cli_fail_err(C, &err);
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddBoolToObject(j, "ok", 1);
        cJSON_AddStringToObject(j, "bundle", bundle);
        cJSON_AddStringToObject(j, "name", m->name);
        cJSON_AddNumberToObject(j, "version", (double)m->version);
        cJSON_AddNumberToObject(j, "created", (double)m->created);
        cJSON_AddNumberToObject(j, "expires", (double)m->expires);
        cJSON_AddStringToObject(j, "min_runtime", m->min_runtime);
        cJSON_AddNumberToObject(j, "root_version", (double)root->version);
        cJSON *sigs = cJSON_AddArrayToObject(j, "signed_by");
        for (int i = 0; i < m->n_sigs; i++)
            cJSON_AddItemToArray(sigs, cJSON_CreateString(m->sigs[i].keyid));
        cJSON *files = cJSON_AddArrayToObject(j, "files");
        for (int i = 0; i < m->n_files; i++) {
            char h[65];
            slm_hex(m->files[i].sha256, 32, h);
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "name", m->files[i].name);
            cJSON_AddNumberToObject(f, "size", (double)m->files[i].size);
            cJSON_AddNumberToObject(f, "zsize", (double)m->files[i].zsize);
            cJSON_AddStringToObject(f, "sha256", h);
            cJSON_AddItemToArray(files, f);
        }
        cJSON *meta = cJSON_Parse(m->meta_json);
        cJSON_AddItemToObject(j, "meta", meta ? meta : cJSON_CreateObject());
        char *s = cJSON_PrintUnformatted(j);
        printf("%s\n", s ? s : "{}");
        free(s);
        cJSON_Delete(j);
    } else {
        uint64_t total = 0;
        for (int i = 0; i < m->n_files; i++)
            total += m->files[i].size;
        printf("OK: %s: '%s' v%llu, %d file%s (%llu bytes), signed by %d key%s of trust root v%llu (threshold %d)\n",
               bundle, m->name, (unsigned long long)m->version, m->n_files, m->n_files == 1 ? "" : "s",
               (unsigned long long)total, m->n_sigs, m->n_sigs == 1 ? "" : "s", (unsigned long long)root->version,
               root->threshold);
    }
    slm_manifest_free(m);
    slm_root_free(root);
    return 0;
}
