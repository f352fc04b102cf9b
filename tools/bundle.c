/* tools/bundle.c — `slm bundle`: pack a model into a signed, expiring bundle. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "pipeline.h"
#include "signing.h"

const char help_bundle[] =
    "usage: slm bundle MODEL.gguf -o B.slmb --name NAME --version V --key KEY [--key KEY2 ...]\n"
    "                  [--expires 30d] [--canary TEXT] [--meta k=v ...] [--min-runtime X.Y.Z] [--level L]\n"
    "                  [--supersedes V]\n"
    "\n"
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
    "move forward to it, and the bad version can never be installed again.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE     bundle to write (temp file, fsync, rename)\n"
    "      --name NAME       model name (1..128 bytes)\n"
    "      --version V       integer >= 1\n"
    "      --expires D       lifetime: 30d, 12h, 90m, 45s (default 30d)\n"
    "      --canary TEXT     canary text (or @FILE to read it from a file)\n"
    "      --meta k=v        metadata entry; repeatable\n"
    "      --min-runtime X   minimum runtime version (default: this build's)\n"
    "      --level L         zstd level 1..19 (default 3)\n"
    "      --supersedes V    this release replaces version V (< --version): fleet rollback\n"
    "  -k, --key KEY         private key to sign with; repeatable\n"
    "  -h, --help            this help\n"
    "\n"
    "exit codes: 0 ok, 2 usage, 3 bad input (model, canary), 4 I/O, 6 internal\n";



int cmd_bundle(int argc, char **argv)
{
    enum { OPT_NAME = 1000, OPT_VERSION, OPT_EXPIRES, OPT_CANARY, OPT_META, OPT_MINRT, OPT_LEVEL, OPT_SUPERSEDES };
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'},        {"name", required_argument, 0, OPT_NAME},
        {"version", required_argument, 0, OPT_VERSION}, {"expires", required_argument, 0, OPT_EXPIRES},
        {"canary", required_argument, 0, OPT_CANARY},  {"meta", required_argument, 0, OPT_META},
        {"min-runtime", required_argument, 0, OPT_MINRT}, {"level", required_argument, 0, OPT_LEVEL},
        {"key", required_argument, 0, 'k'},            {"supersedes", required_argument, 0, OPT_SUPERSEDES},
        {0, 0, 0, 0},
    };
    const char *C = "bundle", *out = NULL, *name = NULL, *canary = NULL, *minrt = NULL, *model = NULL;
    const char *keys[64];
    int n_keys = 0;
    long long version = 0, level = 3, supersedes = 0;
    int64_t life = 30 * 86400LL;
    cJSON *meta = cJSON_CreateObject();
    optind = 1;
    opterr = 0;
    int o, rc = 0;
    while ((o = getopt_long(argc, argv, ":o:k:", opts, NULL)) != -1 && !rc) {
        switch (o) {
        case 'o': out = optarg; break;
        case OPT_NAME: name = optarg; break;
        case OPT_VERSION:
            if (cli_parse_int(optarg, 1, 1LL << 53, &version))
                rc = cli_usage(C, "--version wants an integer >= 1, got '%s'", optarg);
            break;
        case OPT_EXPIRES:
            if (slm_parse_duration(optarg, &life) || life <= 0)
                rc = cli_usage(C, "--expires wants a duration like 30d, 12h, 90m; got '%s'", optarg);
            break;
        case OPT_CANARY: canary = optarg; break;
        case OPT_SUPERSEDES:
            if (cli_parse_int(optarg, 1, 1LL << 53, &supersedes))
                rc = cli_usage(C, "--supersedes wants an integer >= 1, got '%s'", optarg);
            break;
        case OPT_MINRT: minrt = optarg; break;
        case OPT_LEVEL:
            if (cli_parse_int(optarg, 1, 19, &level))
                rc = cli_usage(C, "--level wants 1..19, got '%s'", optarg);
            break;
        case OPT_META: {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                rc = cli_usage(C, "--meta wants key=value, got '%s'", optarg);
                break;
            }
            char *k = strndup(optarg, (size_t)(eq - optarg));
            double d;
            if (!strcmp(k, "canary"))
                rc = cli_usage(C, "--meta canary is reserved (use --canary)");
            else if (cJSON_GetObjectItemCaseSensitive(meta, k))
                rc = cli_usage(C, "--meta key '%s' given twice", k);
            else if (!cli_parse_double(eq + 1, &d) && isfinite(d))
                cJSON_AddNumberToObject(meta, k, d);
            else
                cJSON_AddStringToObject(meta, k, eq + 1);
            free(k);
            break;
        }
        case 'k':
            if (n_keys == 64)
                rc = cli_usage(C, "at most 64 keys");
            else
                keys[n_keys++] = optarg;
            break;
        case ':': rc = cli_usage(C, "option '%s' needs a value", argv[optind - 1]); break;
        default: rc = cli_usage(C, "unknown option '%s'", argv[optind - 1]); break;
        }
    }
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
