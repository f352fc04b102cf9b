/* tools/update.c — `slm update`: pull the newest release into an install store
 * (verified before and while it downloads), then the health-checked A/B install. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include "cli.h"
#include "regcli.h"

int cmd_install(int argc, char **argv);

typedef struct update_args {
    const char *store, *from, *trust[15], *tol, *tuf_root, *tuf_target, *tuf_tag;
    int n_trust, json;
    regcli rg;
} update_args;

static const slm_opt update_opts[] = {
    OPT_DIR('s', "store", update_args, store, "DIR", "the install store"),
    OPT_STRING('f', "from", update_args, from, "REF", "where the release is published"),
    OPT_LIST('t', "trust", update_args, trust, n_trust, "ROOT", "trust root (first install) or newer roots of the chain"),
    OPT_STRING(0, "ppl-tolerance", update_args, tol, "F", "passed to install's health check"),
    OPT_PATH(0, "tuf-root", update_args, tuf_root, "ROOT",
             "require TUF metadata (pushed by `slm push --tuf`): its\n"
             "1.root.json; kept in DIR/tuf, after which every update\n"
             "requires TUF. Timestamp, snapshot and targets are checked\n"
             "before the download; the pulled bundle must then have the\n"
             "length and SHA-256 that targets names"),
    OPT_STRING(0, "tuf-target", update_args, tuf_target, "NAME", "the target (default: the repository's last path part)"),
    OPT_STRING(0, "tuf-tag", update_args, tuf_tag, "T", "the tag of the metadata artifact (default tuf)"),
    OPT_INCLUDE_AS(cli_json_table, update_args, json, "print the store status after the install"),
    OPT_GROUP("registry options:"),
    OPT_INCLUDE(regcli_table, update_args, rg),
    OPT_END(),
};

const slm_cmd_doc doc_update = {
    .usage =
        "slm update --store DIR --from HOST[:PORT]/REPO:TAG [--trust ROOT ...] [--ppl-tolerance F]\n"
        "           [--tuf-root ROOT.json] [--tuf-target NAME] [--tuf-tag T] [--json] [registry options]",
    .description =
        "A device's update: `slm pull` into DIR/download with the store's pinned trust\n"
        "root and its anti-rollback floor, then `slm install` (A/B slots, health check,\n"
        "commit or stay). The signed head is checked before any payload byte is\n"
        "fetched: a registry serving an older release under a newer tag (rollback), an\n"
        "expired one (freeze) or a forged one is refused before the download, and a\n"
        "tampered blob is refused as it arrives. Network failures (registry down,\n"
        "HTTP errors, truncation, stalls, redirects to other hosts) are one line each;\n"
        "in every failure the active model stays as it was. An interrupted download\n"
        "resumes at the next update (DIR/download/*.part). A new store needs --trust.\n",
    .opts = update_opts,
    .exit_codes =
        "0 installed, 1 health check failed (previous model kept), 2 usage,\n"
        "3 bad input, 4 I/O or network, 5 verification failed (nothing installed)",
};

/* DIR/download/tuf: the fetched metadata, removed after each update */
static void rm_meta(const char *dir)
{
    char md[4400], p[4700];
    snprintf(md, sizeof md, "%s/metadata", dir);
    DIR *d = opendir(md);
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", md, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(md);
    rmdir(dir);
}

int cmd_update(int argc, char **argv)
{
    const char *C = "update";
    update_args a = {.tuf_tag = "tuf"};
    int optind = slm_opt_parse(C, update_opts, argc, argv, &a);
    if (optind < 0)
        return -optind;
    regcli rg = a.rg;
    if (rg.n_allow)
        rg.o.allow_hosts = rg.allow; /* the copy's own array */
    const char *store = a.store, *from = a.from, *const *trust = a.trust, *tol = a.tol;
    const char *tuf_root = a.tuf_root, *tuf_target = a.tuf_target, *tuf_tag = a.tuf_tag;
    int json = a.json, n_trust = a.n_trust, rc = 0;
    if (optind < argc)
        return cli_usage(C, "unexpected argument '%s'", argv[optind]);
    if (!store || !from)
        return cli_usage(C, "--store DIR and --from REF are required");
    slm_err err = {0};
    char pinned[4200], dl[4200], file[4300];
    snprintf(pinned, sizeof pinned, "%s/root.json", store);
    int has_pinned = access(pinned, F_OK) == 0;
    if (!has_pinned && !n_trust)
        return cli_usage(C, "a new store needs --trust ROOT");
    /* the trust chain: the pinned root, continued by given roots above its version */
    const char *chain[16];
    int n_chain = 0;
    uint64_t pinned_v = 0;
    if (has_pinned) {
        slm_root *pr = NULL;
        if ((rc = slm_root_load(pinned, &pr, &err)))
            return cli_fail_err(C, &err);
        pinned_v = pr->version;
        slm_root_free(pr);
        chain[n_chain++] = pinned;
    }
    for (int i = 0; i < n_trust; i++) {
        slm_root *r = NULL;
        if ((rc = slm_root_load(trust[i], &r, &err)))
            return cli_fail_err(C, &err);
        if (!has_pinned || r->version > pinned_v)
            chain[n_chain++] = trust[i];
        slm_root_free(r);
    }
    int64_t now = (int64_t)time(NULL);
    slm_root *root = NULL;
    if ((rc = slm_trust_chain(chain, n_chain, now, &root, &err)))
        return cli_fail_err(C, &err);
    slm_store_status st;
    memset(&st, 0, sizeof st);
    if (has_pinned && (rc = slm_store_status_get(store, &st, &err))) {
        slm_root_free(root);
        return cli_fail_err(C, &err);
    }
    snprintf(dl, sizeof dl, "%s/download", store);
    if ((mkdir(store, 0755) && errno != EEXIST) || (mkdir(dl, 0755) && errno != EEXIST)) {
        slm_root_free(root);
        return cli_fail(C, SLM_EIO, "%s: cannot create: %s", dl, strerror(errno));
    }
    snprintf(file, sizeof file, "%s/update.slmb", dl);
    rg.o.root = root;
    rg.o.floor = st.floor;
    rg.o.now = now;
    /* TUF: on when asked (--tuf-root) or once the store has a TUF state (DIR/tuf/root.json) */
    char tstate[4200], tpinned[4300], tmeta[4300], tname[260] = "";
    snprintf(tstate, sizeof tstate, "%s/tuf", store);
    snprintf(tpinned, sizeof tpinned, "%s/root.json", tstate);
    snprintf(tmeta, sizeof tmeta, "%s/tuf", dl);
    int tuf_on = tuf_root || access(tpinned, F_OK) == 0;
    slm_tuf_result tres;
    if (tuf_on) {
        char tref[600];
        slm_ref fr;
        int found = 0;
        rm_meta(tmeta);
        if (!(rc = regcli_tuf_ref(from, tuf_tag, tref, sizeof tref, &err)) && !(rc = slm_ref_parse(from, &fr, &err))) {
            const char *b = strrchr(fr.repo, '/');
            snprintf(tname, sizeof tname, "%s", tuf_target ? tuf_target : b ? b + 1 : fr.repo);
            rc = slm_registry_pull_tuf(tref, tmeta, &rg.o, &found, &err);
        }
        if (!rc && !found)
            rc = slm_err_set(&err, SLM_EVERIFY, "%s: no TUF metadata in the registry, and this store requires it (%s)",
                             tref, tuf_root ? "--tuf-root" : tpinned);
        /* the roles before any bundle byte: freeze, rollback, mix-and-match, keys, thresholds, expiry */
        if (!rc)
            rc = slm_tuf_check_file(tmeta, tuf_root ? tuf_root : tpinned, tstate, tname, NULL, now, &tres, &err);
        if (rc) {
            rm_meta(tmeta);
            slm_root_free(root);
            return cli_fail_err(C, &err);
        }
    }
    slm_pull_result res;
    rc = slm_registry_pull(from, file, &rg.o, &res, &err);
    slm_root_free(root);
    /* the pulled bundle must be exactly the target TUF names (length and SHA-256) */
    if (!rc && tuf_on && (rc = slm_tuf_check_file(tmeta, tuf_root ? tuf_root : tpinned, tstate, tname, file, now, &tres,
                                                  &err)))
        unlink(file);
    if (tuf_on)
        rm_meta(tmeta);
    if (rc)
        return cli_fail_err(C, &err);
    if (tuf_on)
        fprintf(stderr, "slm update: TUF target '%s' matches (timestamp v%llu, snapshot v%llu, targets v%llu)\n", tname,
                (unsigned long long)tres.timestamp_version, (unsigned long long)tres.snapshot_version,
                (unsigned long long)tres.targets_version);
    fprintf(stderr, "slm update: pulled '%s' v%llu from %s (%llu bytes%s); installing\n", res.name,
            (unsigned long long)res.version, from, (unsigned long long)res.bytes_total,
            res.resumes ? ", resumed" : "");
    char *av[48];
    int ac = 0;
    av[ac++] = "install";
    av[ac++] = file;
    av[ac++] = "--store";
    av[ac++] = (char *)store;
    for (int i = 0; i < n_trust; i++) {
        av[ac++] = "--trust";
        av[ac++] = (char *)trust[i];
    }
    if (tol) {
        av[ac++] = "--ppl-tolerance";
        av[ac++] = (char *)tol;
    }
    if (json)
        av[ac++] = "--json";
    av[ac] = NULL;
    rc = cmd_install(ac, av);
    unlink(file); /* installed or refused: the slot holds what was kept */
    return rc;
}
