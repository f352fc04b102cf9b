/* tools/tuf.c — `slm tuf`: publish bundles with TUF-compatible metadata
 * (root, targets, snapshot, timestamp) and fetch them as a TUF client. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "signing.h"


static int role_of(const char *s, size_t n)
{
    static const char *const names[SLM_TUF_NROLES] = {"root", "targets", "snapshot", "timestamp"};
    for (int r = 0; r < SLM_TUF_NROLES; r++)
        if (strlen(names[r]) == n && !strncmp(s, names[r], n))
            return r;
    return -1;
}

typedef struct tuf_args {
    slm_key *keys[SLM_TUF_NROLES][16];
    int nk[SLM_TUF_NROLES], thr[SLM_TUF_NROLES], json, stored;
    int64_t now, life[SLM_TUF_NROLES];
    long long now_arg;
    const char *name, *root, *state, *target, *out;
} tuf_args;

static int opt_key(const char *cmd, const char *v, void *field, void *base)
{
    tuf_args *a = base;
    const char *eq = strchr(v, '=');
    int role = eq ? role_of(v, (size_t)(eq - v)) : -1;
    (void)field;
    if (role < 0 || a->nk[role] == 16)
        return cli_usage(cmd, "--key wants ROLE=KEYFILE (root, targets, snapshot, timestamp), got '%s'", v);
    slm_err err = {0};
    if (slm_key_load_private(eq + 1, &a->keys[role][a->nk[role]], &err))
        return cli_fail_err(cmd, &err);
    a->nk[role]++;
    return 0;
}

static int opt_threshold(const char *cmd, const char *v, void *field, void *base)
{
    tuf_args *a = base;
    const char *eq = strchr(v, '=');
    int role = eq ? role_of(v, (size_t)(eq - v)) : -1;
    long long x;
    (void)field;
    if (role < 0 || cli_parse_int(eq + 1, 1, 16, &x))
        return cli_usage(cmd, "--threshold wants ROLE=N, got '%s'", v);
    a->thr[role] = (int)x;
    return 0;
}

static int opt_expires(const char *cmd, const char *v, void *field, void *base)
{
    tuf_args *a = base;
    const char *eq = strchr(v, '=');
    int role = eq ? role_of(v, (size_t)(eq - v)) : -1;
    int64_t d;
    (void)field;
    if (slm_parse_duration(role >= 0 ? eq + 1 : v, &d) || d <= 0)
        return cli_usage(cmd, "--expires wants [ROLE=]DURATION like 30d, got '%s'", v);
    a->life[role >= 0 ? role : SLM_TUF_ROOT] = d;
    return 0;
}

static const char *const tuf_subs[] = {"init", "add", "fetch", NULL};

static const slm_opt tuf_opts[] = {
    OPT_CALLBACK(0, "key", tuf_args, keys, "ROLE=KEY", opt_key,
                 "(init, add) an Ed25519 private key of a role (root, targets, snapshot,\ntimestamp); repeatable"),
    OPT_CALLBACK(0, "threshold", tuf_args, thr, "ROLE=N", opt_threshold, "(init) signatures a role needs (default 1); repeatable"),
    OPT_CALLBACK(0, "expires", tuf_args, life, "[ROLE=]D", opt_expires,
                 "lifetime of the root (init) or of ROLE's metadata (add): 30d, 12h, ..."),
    OPT_STRING(0, "name", tuf_args, name, "NAME", "(add) target name (default: FILE's basename)"),
    OPT_FLAG(0, "stored", tuf_args, stored,
             "(add) publish the bundle in the form `slm pull` lands it (header\n"
             "format 2, payload uncompressed): the target that `slm update --tuf-root`\n"
             "compares with what it pulled from a registry (`slm push --tuf REPO`)"),
    OPT_PATH(0, "root", tuf_args, root, "ROOT.json", "(fetch) the trusted root when DIR holds none"),
    OPT_DIR(0, "state", tuf_args, state, "DIR", "(fetch) the client's trusted metadata (no rollback against it)"),
    OPT_STRING(0, "target", tuf_args, target, "NAME", "(fetch) the target to download"),
    OPT_PATH('o', "output", tuf_args, out, "FILE", "(fetch) where the verified target lands"),
    OPT_I64(0, "now", tuf_args, now_arg, "T", 0, 1LL << 40, "(fetch) evaluate expiry at unix time T"),
    OPT_INCLUDE_AS(cli_json_table, tuf_args, json, "(fetch) print the result as one JSON object"),
    OPT_END(),
};

const slm_cmd_doc doc_tuf = {
    .usage =
        "slm tuf init REPO --key ROLE=KEY ... [--threshold ROLE=N ...] [--expires D]\n"
        "slm tuf add REPO FILE [--name NAME] [--stored] --key ROLE=KEY ... [--expires ROLE=D ...]\n"
        "slm tuf fetch REPO --root ROOT.json --state DIR --target NAME -o FILE [--now T] [--json]",
    .description =
        "TUF-compatible repository metadata beside the bundles, so that any TUF\n"
        "client (python-tuf, tuf-js, go-tuf) can check a release independently.\n"
        "ROLE is root, targets, snapshot or timestamp; KEY an Ed25519 private key of\n"
        "`slm keygen`. init writes REPO/metadata/1.root.json (= root.json): every\n"
        "role's keys and threshold (default 1), signed by the root keys. add copies\n"
        "FILE to REPO/targets/NAME (default: its basename) and publishes targets,\n"
        "snapshot and timestamp, each one version up, signed by the given keys\n"
        "(default lifetimes: targets 30d, snapshot 7d, timestamp 1d). fetch is the TUF\n"
        "client workflow over a repository directory: trusted root from DIR (else\n"
        "--root), rotation via N+1.root.json, timestamp, snapshot, targets with\n"
        "signatures, thresholds, versions (no rollback against DIR), expiries, then\n"
        "the target checked against its signed length and SHA-256; FILE appears\n"
        "only when all passed. --now T (unix seconds) evaluates expiry at T.\n",
    .opts = tuf_opts,
    .subcommands = tuf_subs,
    .exit_codes =
        "0 ok, 2 usage, 3 bad input, 4 I/O, 5 refused (freeze, rollback,\n"
        "mix-and-match, endless data, wrong key, below threshold, expired)",
};

int cmd_tuf(int argc, char **argv)
{
    const char *C = "tuf";
    if (argc < 3)
        return cli_usage(C, "give init, add or fetch, and REPO");
    const char *sub = argv[1];
    tuf_args a = {.thr = {1, 1, 1, 1}, .now_arg = -1,
                  .life = {365 * 86400LL, 30 * 86400LL, 7 * 86400LL, 86400LL}};
    slm_err err = {0};
    int ai = slm_opt_parse(C, tuf_opts, argc - 1, argv + 1, &a), rc = ai < 0 ? -ai : 0;
    ai += 1; /* operands: argv[ai..argc) */
    const char *repo = NULL, *file = NULL;
    if (!rc && ai >= argc)
        rc = cli_usage(C, "give init, add or fetch, and REPO");
    if (!rc) {
        repo = argv[ai++];
        if (!strcmp(sub, "add") && ai < argc)
            file = argv[ai++];
        if (ai < argc)
            rc = cli_usage(C, "unexpected argument '%s'", argv[ai]);
    }
    slm_key *(*keys)[16] = a.keys;
    int *nk = a.nk, *thr = a.thr, json = a.json, stored = a.stored;
    int64_t now = a.now_arg >= 0 ? a.now_arg : (int64_t)time(NULL), *life = a.life;
    const char *name = a.name, *root = a.root, *state = a.state, *target = a.target, *out = a.out;
    slm_tuf_role_keys roles[SLM_TUF_NROLES];
    for (int r = 0; r < SLM_TUF_NROLES; r++)
        roles[r] = (slm_tuf_role_keys){(const slm_key *const *)keys[r], nk[r], thr[r]};
    if (!rc) {
        if (!strcmp(sub, "init")) {
            rc = slm_tuf_init(repo, roles, now, now + life[SLM_TUF_ROOT], &err) ? cli_fail_err(C, &err) : 0;
            if (!rc)
                fprintf(stderr, "slm tuf: wrote %s/metadata/1.root.json\n", repo);
        } else if (!strcmp(sub, "add")) {
            if (!file) {
                rc = cli_usage(C, "add wants REPO FILE");
            } else {
                const char *base = strrchr(file, '/');
                int64_t ex[SLM_TUF_NROLES];
                for (int r = 0; r < SLM_TUF_NROLES; r++)
                    ex[r] = now + life[r];
                const char *nm = name ? name : base ? base + 1 : file;
                /* --stored: the target is the bundle as `slm pull` lands it (payload uncompressed) */
                char tmp[4200];
                snprintf(tmp, sizeof tmp, "%s/.slm-stored-%ld.slmb", repo, (long)getpid());
                if (stored && slm_bundle_store(file, tmp, &err))
                    rc = cli_fail_err(C, &err);
                else
                    rc = slm_tuf_add(repo, stored ? tmp : file, nm, roles, now, ex, NULL, &err) ? cli_fail_err(C, &err) : 0;
                if (stored)
                    unlink(tmp);
                if (!rc)
                    fprintf(stderr, "slm tuf: published %s as target '%s'\n", file, nm);
            }
        } else if (!strcmp(sub, "fetch")) {
            if (!root || !state || !target || !out) {
                rc = cli_usage(C, "fetch wants --root, --state, --target and -o");
            } else {
                slm_tuf_result res;
                rc = slm_tuf_fetch(repo, root, state, target, out, now, &res, &err) ? cli_fail_err(C, &err) : 0;
                if (!rc && json)
                    printf("{\"target\":\"%s\",\"length\":%llu,\"root\":%llu,\"timestamp\":%llu,\"snapshot\":%llu,"
                           "\"targets\":%llu}\n", target, (unsigned long long)res.length,
                           (unsigned long long)res.root_version, (unsigned long long)res.timestamp_version,
                           (unsigned long long)res.snapshot_version, (unsigned long long)res.targets_version);
                else if (!rc)
                    printf("fetched %s -> %s (%llu bytes; timestamp v%llu, snapshot v%llu, targets v%llu)\n", target,
                           out, (unsigned long long)res.length, (unsigned long long)res.timestamp_version,
                           (unsigned long long)res.snapshot_version, (unsigned long long)res.targets_version);
            }
        } else {
            rc = cli_usage(C, "unknown subcommand '%s' (init, add, fetch)", sub);
        }
    }
    for (int r = 0; r < SLM_TUF_NROLES; r++)
        for (int k = 0; k < nk[r]; k++)
            slm_key_free(keys[r][k]);
    return rc;
}
