/* tools/keygen.c — `slm keygen`: a new Ed25519 signing key pair. */
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "signing.h"

const char help_keygen[] =
    "usage: slm keygen -o KEY\n"
    "\n"
    "Write a new Ed25519 private key to KEY (PKCS#8 PEM, mode 0600) and its public\n"
    "key to KEY.pub (PEM). Existing files are never overwritten. Prints the key id\n"
    "(SHA-256 of the raw 32-byte public key, hex), the name trust roots and\n"
    "signatures use for the key.\n"
    "\n"
    "options:\n"
    "  -o, --output KEY   private key path (required)\n"
    "  -h, --help         this help\n"
    "\n"
    "exit codes: 0 ok, 2 usage (or the file exists), 4 I/O, 6 internal\n";

int cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, 0, 'o'}, {0, 0, 0, 0}};
    const char *C = "keygen", *out = NULL;
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, ":o:", opts, NULL)) != -1) {
        switch (o) {
        case 'o': out = optarg; break;
        case ':': return cli_usage(C, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage(C, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage(C, "unexpected argument '%s'", argv[optind]);
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
