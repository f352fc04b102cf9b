/* tools/sign.c — `slm sign`: add a signature to a bundle or a trust root. */
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "signing.h"

const char help_sign[] =
    "usage: slm sign FILE --key KEY [--key KEY2 ...]\n"
    "\n"
    "Add a signature by each private KEY to FILE, a bundle (.slmb) or a trust root,\n"
    "in place and atomically (temp file, fsync, rename). For a bundle the signature\n"
    "covers the exact manifest bytes; for a root, the exact \"signed\" bytes. Use it\n"
    "to collect a k-of-n threshold from several key holders one at a time.\n"
    "\n"
    "options:\n"
    "  -k, --key KEY   private key (PEM) to sign with; repeatable\n"
    "  -h, --help      this help\n"
    "\n"
    "exit codes: 0 ok, 2 usage (or already signed by that key), 3 bad input, 4 I/O, 5 verification\n";

int cmd_sign(int argc, char **argv)
{
    static const struct option opts[] = {{"key", required_argument, 0, 'k'}, {0, 0, 0, 0}};
    const char *C = "sign", *keys[64], *file = NULL;
    int n_keys = 0;
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, ":k:", opts, NULL)) != -1) {
        switch (o) {
        case 'k':
            if (n_keys == 64)
                return cli_usage(C, "at most 64 keys");
            keys[n_keys++] = optarg;
            break;
        case ':': return cli_usage(C, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage(C, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        file = argv[optind++];
    if (optind < argc)
        return cli_usage(C, "unexpected argument '%s'", argv[optind]);
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
