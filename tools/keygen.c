/* tools/keygen.c — `slm keygen`: a new Ed25519 signing key pair. */
#include <string.h>

#include "cli.h"
#include "signing.h"

typedef struct keygen_args {
    const char *out;
} keygen_args;

static const slm_opt keygen_opts[] = {
    OPT_PATH('o', "output", keygen_args, out, "KEY", "private key path (required)"),
    OPT_END(),
};

const slm_cmd_doc doc_keygen = {
    .usage = "slm keygen -o KEY",
    .description = "Write a new Ed25519 private key to KEY (PKCS#8 PEM, mode 0600) and its public\n"
                   "key to KEY.pub (PEM). Existing files are never overwritten. Prints the key id\n"
                   "(SHA-256 of the raw 32-byte public key, hex), the name trust roots and\n"
                   "signatures use for the key.\n",
    .opts = keygen_opts,
    .exit_codes = "0 ok, 2 usage (or the file exists), 4 I/O, 6 internal",
    .examples = "slm keygen -o release.key",
};

int cmd_keygen(int argc, char **argv)
{
    const char *C = "keygen";
    keygen_args a = {0};
    int ai = slm_opt_parse(C, keygen_opts, argc, argv, &a);
    if (ai < 0)
        return -ai;
    if (ai < argc)
        return cli_usage(C, "unexpected argument '%s'", argv[ai]);
    const char *out = a.out;
    if (!out)
        return cli_usage(C, "an output path is required (-o KEY)");
    slm_err err = {0};
    slm_key *k = NULL;
    int rc = slm_keygen(out, &err);
    if (!rc)
        rc = slm_key_load_private(out, &k, &err);
    if (rc)
        return cli_fail_err(C, &err);
    printf("%s\n", slm_key_id(k));
    fprintf(stderr, "slm keygen: wrote %s (private, 0600) and %s.pub; key id %.16s\n", out, out, slm_key_id(k));
    slm_key_free(k);
    return 0;
}
