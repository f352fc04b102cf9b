/* tools/sign.c — `slm sign`: add a signature to a bundle or a trust root. */
#include <string.h>

#include "cli.h"
#include "signing.h"

typedef struct sign_args {
    const char *keys[64];
    int n_keys;
} sign_args;

static const slm_opt sign_opts[] = {
    OPT_LIST('k', "key", sign_args, keys, n_keys, "KEY", "private key (PEM) to sign with; repeatable"),
    OPT_END(),
};

const slm_cmd_doc doc_sign = {
    .usage = "slm sign FILE --key KEY [--key KEY2 ...]",
    .description = "Add a signature by each private KEY to FILE, a bundle (.slmb) or a trust root,\n"
                   "in place and atomically (temp file, fsync, rename). For a bundle the signature\n"
                   "covers the exact manifest bytes; for a root, the exact \"signed\" bytes. Use it\n"
                   "to collect a k-of-n threshold from several key holders one at a time.\n",
    .opts = sign_opts,
    .exit_codes = "0 ok, 2 usage (or already signed by that key), 3 bad input, 4 I/O, 5 verification",
    .examples = "slm sign model.slmb --key second.key",
};

int cmd_sign(int argc, char **argv)
{
    const char *C = "sign", *file = NULL;
    sign_args a = {0};
    int ai = slm_opt_parse(C, sign_opts, argc, argv, &a);
    if (ai < 0)
        return -ai;
    if (ai < argc)
        file = argv[ai++];
    if (ai < argc)
        return cli_usage(C, "unexpected argument '%s'", argv[ai]);
    const char *const *keys = a.keys;
    int n_keys = a.n_keys;
    if (!file || !n_keys)
        return cli_usage(C, "give a FILE and at least one --key");
    for (int i = 0; i < n_keys; i++) {
        slm_err err = {0};
        slm_key *k;
        int rc = slm_key_load_private(keys[i], &k, &err);
        if (!rc) {
            rc = slm_sign_file(file, k, &err);
            if (!rc)
                fprintf(stderr, "slm sign: %s: signed by key %.16s\n", file, slm_key_id(k));
            slm_key_free(k);
        }
        if (rc)
            return cli_fail_err(C, &err);
    }
    return 0;
}
