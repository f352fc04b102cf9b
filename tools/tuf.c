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

const char help_tuf[] =
    "usage: slm tuf init REPO --key ROLE=KEY ... [--threshold ROLE=N ...] [--expires D]\n"
    "       slm tuf add REPO FILE [--name NAME] [--stored] --key ROLE=KEY ... [--expires ROLE=D ...]\n"
    "       slm tuf fetch REPO --root ROOT.json --state DIR --target NAME -o FILE [--now T] [--json]\n"
    "\n"
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
    "only when all passed. --now T (unix seconds) evaluates expiry at T.\n"
    "add --stored publishes a bundle in the form `slm pull` lands it (header\n"
    "format 2, payload uncompressed): the target that `slm update --tuf-root`\n"
    "compares with what it pulled from a registry (`slm push --tuf REPO`).\n"
    "\n"
    "exit codes: 0 ok, 2 usage, 3 bad input, 4 I/O, 5 refused (freeze, rollback,\n"
    "mix-and-match, endless data, wrong key, below threshold, expired)\n";

static int role_of(const char *s, size_t n)
{
    static const char *const names[SLM_TUF_NROLES] = {"root", "targets", "snapshot", "timestamp"};
    for (int r = 0; r < SLM_TUF_NROLES; r++)
        if (strlen(names[r]) == n && !strncmp(s, names[r], n))
            return r;
    return -1;
}

int cmd_tuf(int argc, char **argv)
{
    const char *C = "tuf";
    if (argc < 3)
        return cli_usage(C, "give init, add or fetch, and REPO");
    const char *sub = argv[1], *repo = argv[2], *file = NULL, *name = NULL, *root = NULL, *state = NULL;
    const char *target = NULL, *out = NULL;
    slm_key *keys[SLM_TUF_NROLES][16] = {{0}};
    int nk[SLM_TUF_NROLES] = {0}, thr[SLM_TUF_NROLES] = {1, 1, 1, 1}, json = 0, stored = 0, rc = 0;
    int64_t now = (int64_t)time(NULL), life[SLM_TUF_NROLES] = {365 * 86400LL, 30 * 86400LL, 7 * 86400LL, 86400LL};
    slm_err err = {0};
    int i = 3;
    if (!strcmp(sub, "add") && argc > 3 && argv[3][0] != '-')
        file = argv[i++];
    for (; i < argc && !rc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        if (!strcmp(a, "--stored")) {
            stored = 1;
            continue;
        }
        if (!v) {
            rc = cli_usage(C, "'%s' needs a value (or is unknown)", a);
            break;
        }
        i++;
        const char *eq = strchr(v, '=');
        int role = eq ? role_of(v, (size_t)(eq - v)) : -1;
        long long x;
        if (!strcmp(a, "--key")) {
            if (role < 0 || nk[role] == 16)
                rc = cli_usage(C, "--key wants ROLE=KEYFILE (root, targets, snapshot, timestamp), got '%s'", v);
            else
                rc = slm_key_load_private(eq + 1, &keys[role][nk[role]++], &err) ? cli_fail_err(C, &err) : 0;
        } else if (!strcmp(a, "--threshold")) {
            if (role < 0 || cli_parse_int(eq + 1, 1, 16, &x))
                rc = cli_usage(C, "--threshold wants ROLE=N, got '%s'", v);
            else
                thr[role] = (int)x;
        } else if (!strcmp(a, "--expires")) {
            int64_t d;
            const char *dv = role >= 0 ? eq + 1 : v;
            if (slm_parse_duration(dv, &d) || d <= 0)
                rc = cli_usage(C, "--expires wants [ROLE=]DURATION like 30d, got '%s'", v);
            else if (role >= 0)
                life[role] = d;
            else
                life[SLM_TUF_ROOT] = d;
        } else if (!strcmp(a, "--name")) {
            name = v;
        } else if (!strcmp(a, "--root")) {
            root = v;
        } else if (!strcmp(a, "--state")) {
            state = v;
        } else if (!strcmp(a, "--target")) {
            target = v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            out = v;
        } else if (!strcmp(a, "--now")) {
            if (cli_parse_int(v, 0, 1LL << 40, &x))
                rc = cli_usage(C, "--now wants unix seconds, got '%s'", v);
            else
                now = x;
        } else {
            rc = cli_usage(C, "unknown option '%s'", a);
        }
    }
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
