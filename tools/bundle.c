/* tools/bundle.c — `slm bundle`: pack a model into a signed, expiring bundle. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "pipeline.h"
#include "signing.h"

typedef struct bundle_args {
    const char *out, *name, *canary, *minrt;
    const char *keys[64];
    int n_keys;
    long long version, level, supersedes;
    int64_t life;
    cJSON *meta;
} bundle_args;

static int opt_meta(const char *cmd, const char *arg, void *field, void *base)
{
    (void)base;
    cJSON *meta = *(cJSON **)field;
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return cli_usage(cmd, "--meta wants key=value, got '%s'", arg);
    char *k = strndup(arg, (size_t)(eq - arg));
    double d;
    int rc = 0;
    if (!k)
        rc = cli_fail(cmd, SLM_EINTERNAL, "out of memory");
    else if (!strcmp(k, "canary"))
        rc = cli_usage(cmd, "--meta canary is reserved (use --canary)");
    else if (cJSON_GetObjectItemCaseSensitive(meta, k))
        rc = cli_usage(cmd, "--meta key '%s' given twice", k);
    else if (!cli_parse_double(eq + 1, &d) && isfinite(d))
        cJSON_AddNumberToObject(meta, k, d);
    else
        cJSON_AddStringToObject(meta, k, eq + 1);
    free(k);
    return rc;
}

static const slm_opt bundle_opts[] = {
    OPT_PATH('o', "output", bundle_args, out, "FILE", "bundle to write (temp file, fsync, rename)"),
    OPT_STRING(0, "name", bundle_args, name, "NAME", "model name (1..128 bytes)"),
    OPT_I64(0, "version", bundle_args, version, "V", 1, 1LL << 53, "integer >= 1"),
    OPT_CALLBACK(0, "expires", bundle_args, life, "D", cli_opt_duration, "lifetime: 30d, 12h, 90m, 45s (default 30d)"),
    OPT_STRING(0, "canary", bundle_args, canary, "TEXT", "canary text (or @FILE to read it from a file)"),
    OPT_CALLBACK(0, "meta", bundle_args, meta, "k=v", opt_meta, "metadata entry; repeatable"),
    OPT_STRING(0, "min-runtime", bundle_args, minrt, "X", "minimum runtime version (default: this build's)"),
    OPT_I64(0, "level", bundle_args, level, "L", 1, 19, "zstd level 1..19 (default 3)"),
    OPT_I64(0, "supersedes", bundle_args, supersedes, "V", 1, 1LL << 53,
            "this release replaces version V (< --version): fleet rollback"),
    OPT_LIST('k', "key", bundle_args, keys, n_keys, "KEY", "private key to sign with; repeatable"),
    OPT_END(),
};

const slm_cmd_doc doc_bundle = {
    .usage =
        "slm bundle MODEL.gguf -o B.slmb --name NAME --version V --key KEY [--key KEY2 ...]\n"
        "           [--expires 30d] [--canary TEXT] [--meta k=v ...] [--min-runtime X.Y.Z] [--level L]\n"
        "           [--supersedes V]",
    .description =
        "Write one bundle file: a manifest (name, version, created, expires, minimum\n"
        "runtime, each payload file's size, compressed size and SHA-256 of both, and\n"
        "metadata), signatures by each --key over the exact manifest bytes, and the\n"
        "zstd-compressed payload. Versions are integers and must rise with every\n"
        "release: install stores refuse anything not above what they committed.\n"
        "With --canary, the model's perplexity on TEXT is measured now and stored in\n"
        "the manifest; installs compare against it in their health check. Metadata\n"
        "values that parse as numbers are stored as numbers. More signatures can be\n"
        "added later with `slm sign`.\n"
        "Fleet rollback: to take devices back to an older model, bundle that model\n"
        "again with a NEW, higher version and --supersedes V (the bad release it\n"
        "replaces; recorded as meta.supersedes): anti-rollback stays strict, devices\n"
        "move forward to it, and the bad version can never be installed again.\n",
    .opts = bundle_opts,
    .exit_codes =
        "0 ok, 2 usage, 3 bad input (model, canary), 4 I/O, 6 internal",
};



int cmd_bundle(int argc, char **argv)
{
    bundle_args a = {.level = 3, .life = 30 * 86400LL, .meta = cJSON_CreateObject()};
    const char *C = "bundle", *model = NULL;
    int rc = 0;
    int ai = a.meta ? slm_opt_parse(C, bundle_opts, argc, argv, &a) : -cli_fail(C, SLM_EINTERNAL, "out of memory");
    if (ai < 0)
        rc = -ai;
    const char *out = a.out, *name = a.name, *canary = a.canary, *minrt = a.minrt;
    const char *const *keys = a.keys;
    int n_keys = a.n_keys;
    long long version = a.version, level = a.level, supersedes = a.supersedes;
    int64_t life = a.life;
    cJSON *meta = a.meta;
    int optind = ai;
    if (!rc && optind < argc)
        model = argv[optind++];
    if (!rc && optind < argc)
        rc = cli_usage(C, "unexpected argument '%s'", argv[optind]);
    if (!rc && (!model || !out || !name || !version || !n_keys))
        rc = cli_usage(C, "give MODEL.gguf, -o, --name, --version and at least one --key");
    if (!rc && supersedes && supersedes >= version)
        rc = cli_usage(C, "--supersedes %lld must be below --version %lld (a rollback is a newer release)", supersedes,
                       version);
    if (!rc && supersedes) {
        if (cJSON_GetObjectItemCaseSensitive(meta, "supersedes"))
            rc = cli_usage(C, "give either --supersedes or --meta supersedes=");
        else
            cJSON_AddNumberToObject(meta, "supersedes", (double)supersedes);
    }
    if (rc) {
        cJSON_Delete(meta);
        return rc;
    }
    slm_err err = {0};
    char *canary_text = NULL;
    if (canary) {
        /* the canary travels inside the signed manifest: keep it small */
        canary_text = canary[0] == '@' ? cli_read_file(canary + 1, (size_t)1 << 20, NULL, &err) : strdup(canary);
        if (!canary_text) {
            cJSON_Delete(meta);
            return canary[0] == '@' ? cli_fail_err(C, &err) : cli_fail(C, SLM_EINTERNAL, "out of memory");
        }
        double ppl = 0;
        if ((rc = slm_pl_canary_ppl(model, canary_text, &ppl, &err))) {
            free(canary_text);
            cJSON_Delete(meta);
            return cli_fail_err(C, &err);
        }
        cJSON *c = cJSON_AddObjectToObject(meta, "canary");
        cJSON_AddNumberToObject(c, "ppl", ppl);
        cJSON_AddStringToObject(c, "text", canary_text);
        fprintf(stderr, "slm bundle: canary perplexity %.4f\n", ppl);
    }
    char *meta_json = cJSON_PrintUnformatted(meta);
    cJSON_Delete(meta);
    slm_key *signers[64] = {0};
    for (int i = 0; !rc && i < n_keys; i++)
        rc = slm_key_load_private(keys[i], &signers[i], &err);
    int64_t now = (int64_t)time(NULL);
    const char *paths[1] = {model}, *names[1] = {"model.gguf"};
    slm_bundle_spec spec = {name, (uint64_t)version, now, now + life, minrt, meta_json, 1, paths, names, (int)level};
    if (!rc)
        rc = slm_bundle_create(out, &spec, (const slm_key *const *)signers, n_keys, &err);
    for (int i = 0; i < n_keys; i++)
        slm_key_free(signers[i]);
    free(meta_json);
    free(canary_text);
    if (rc)
        return cli_fail_err(C, &err);
    fprintf(stderr, "slm bundle: wrote %s: '%s' v%lld, signed by %d key%s\n", out, name, version, n_keys,
            n_keys == 1 ? "" : "s");
    return 0;
}
