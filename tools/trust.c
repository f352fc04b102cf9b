/* tools/trust.c — `slm trust`: create, rotate, check and show trust roots. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "signing.h"

typedef struct trust_args {
    const char *out, *from, *pubs[SLM_ROOT_MAX_KEYS], *privs[SLM_ROOT_MAX_KEYS];
    int n_pub, n_priv, thr;
    int64_t life;
} trust_args;

static const char *const trust_subs[] = {"init", "rotate", "verify", "show", NULL};

static const slm_opt trust_opts[] = {
    OPT_PATH('o', "output", trust_args, out, "FILE", "root to write"),
    OPT_PATH(0, "from", trust_args, from, "ROOT", "(rotate) the current root N"),
    OPT_LIST('k', "key", trust_args, pubs, n_pub, "PUB", "a public key of the new root; repeatable"),
    OPT_INT(0, "threshold", trust_args, thr, "K", 1, SLM_ROOT_MAX_KEYS, "signatures needed (1..number of keys)"),
    OPT_CALLBACK(0, "expires", trust_args, life, "D", cli_opt_duration, "lifetime: 365d, 12h, 30m, 45s (default 365d)"),
    OPT_LIST('s', "sign-with", trust_args, privs, n_priv, "KEY", "private key to sign with now; repeatable"),
    OPT_END(),
};

const slm_cmd_doc doc_trust = {
    .usage =
        "slm trust init   -o ROOT --key A.pub [--key B.pub ...] --threshold K --expires 365d\n"
        "                 [--sign-with A.key ...]\n"
        "slm trust rotate --from OLD -o NEW --key X.pub ... --threshold K --expires 365d\n"
        "                 --sign-with KEY ...\n"
        "slm trust verify ROOT [NEXT ...]\n"
        "slm trust show ROOT",
    .description =
        "A trust root (JSON) lists the keys allowed to sign bundles, a threshold k of n,\n"
        "a version and an expiry, and is itself signed by k of its keys. `rotate` makes\n"
        "root N+1 from root N: it must be signed by a threshold of the OLD root's keys\n"
        "AND a threshold of its own (sign with both sets, or collect signatures later\n"
        "with `slm sign`). Verifiers walk the chain N -> N+1 only, one version at a time.\n"
        "`verify` checks a chain: the first root is trusted as given (its own threshold\n"
        "is checked), each next one must be its successor, and the last must not be\n"
        "expired. See docs/bundles.md.\n",
    .opts = trust_opts,
    .subcommands = trust_subs,
    .exit_codes =
        "0 ok, 2 usage, 3 bad input, 4 I/O, 5 verification failed (chain, threshold, expiry)",
};

static void print_root(const slm_root *r)
{
    char c[32], e[32];
    time_t tc = (time_t)r->created, te = (time_t)r->expires;
    struct tm tm;
    strftime(c, sizeof c, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&tc, &tm));
    strftime(e, sizeof e, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&te, &tm));
    printf("trust root v%llu: threshold %d of %d keys, created %s, expires %s, %d signatures\n",
           (unsigned long long)r->version, r->threshold, r->n_keys, c, e, r->n_sigs);
    for (int i = 0; i < r->n_keys; i++)
        printf("  key %s\n", r->keys[i].id);
}

int cmd_trust(int argc, char **argv)
{
    const char *C = "trust";
    if (argc < 2)
        return cli_usage(C, "give a subcommand: init, rotate, verify or show");
    const char *sub = argv[1];
    if (!strcmp(sub, "verify") || !strcmp(sub, "show")) {
        if (argc < 3)
            return cli_usage(C, "%s needs a ROOT file", sub);
        slm_err err = {0};
        slm_root *r = NULL;
        int rc;
        if (!strcmp(sub, "show")) {
            if (argc != 3)
                return cli_usage(C, "show takes one ROOT");
            rc = slm_root_load(argv[2], &r, &err);
        } else {
            rc = slm_trust_chain((const char *const *)argv + 2, argc - 2, (int64_t)time(NULL), &r, &err);
        }
        if (rc)
            return cli_fail_err(C, &err);
        print_root(r);
        if (!strcmp(sub, "verify"))
            printf("OK: chain of %d root%s verified\n", argc - 2, argc > 3 ? "s" : "");
        slm_root_free(r);
        return 0;
    }
    int rotate = !strcmp(sub, "rotate");
    if (!rotate && strcmp(sub, "init"))
        return cli_usage(C, "unknown subcommand '%s' (init, rotate, verify, show)", sub);
    trust_args a = {.life = 365 * 86400LL};
    int ai = slm_opt_parse(C, trust_opts, argc - 1, argv + 1, &a);
    if (ai < 0)
        return -ai;
    if (ai < argc - 1)
        return cli_usage(C, "unexpected argument '%s'", argv[1 + ai]);
    const char *out = a.out, *from = a.from, *const *pubs = a.pubs, *const *privs = a.privs;
    int n_pub = a.n_pub, n_priv = a.n_priv;
    long long thr = a.thr;
    int64_t life = a.life;
    if (!out || !n_pub || !thr)
        return cli_usage(C, "%s needs -o ROOT, at least one --key and --threshold", sub);
    if (rotate && !from)
        return cli_usage(C, "rotate needs --from OLD_ROOT");
    if (thr > n_pub)
        return cli_usage(C, "--threshold %lld is larger than the %d keys", thr, n_pub);
    slm_err err = {0};
    slm_key *keys[SLM_ROOT_MAX_KEYS] = {0}, *signers[SLM_ROOT_MAX_KEYS] = {0};
    slm_root *old = NULL;
    uint64_t version = 1;
    int rc = SLM_OK;
    if (rotate && !(rc = slm_root_load(from, &old, &err)) && !(rc = slm_root_verify_self(old, &err)))
        version = old->version + 1;
    for (int i = 0; !rc && i < n_pub; i++)
        rc = slm_key_load_public(pubs[i], &keys[i], &err);
    for (int i = 0; !rc && i < n_priv; i++)
        rc = slm_key_load_private(privs[i], &signers[i], &err);
    int64_t now = (int64_t)time(NULL);
    if (!rc)
        rc = slm_root_create(out, version, now, now + life, (int)thr, (const slm_key *const *)keys, n_pub,
                             (const slm_key *const *)signers, n_priv, &err);
    slm_root *made = NULL;
    if (!rc && !(rc = slm_root_load(out, &made, &err))) {
        print_root(made);
        slm_err e2 = {0};
        int ok = rotate ? slm_root_verify_successor(old, made, &e2) : slm_root_verify_self(made, &e2);
        if (ok)
            fprintf(stderr, "slm trust: note: not yet valid: %s (collect more signatures with `slm sign %s --key ...`)\n",
                    e2.msg, out);
    }
    for (int i = 0; i < n_pub; i++)
        slm_key_free(keys[i]);
    for (int i = 0; i < n_priv; i++)
        slm_key_free(signers[i]);
    slm_root_free(old);
    slm_root_free(made);
    return rc ? cli_fail_err(C, &err) : 0;
}
