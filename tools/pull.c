/* tools/pull.c — `slm pull`: a bundle from an OCI registry, verified while it arrives. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "regcli.h"

const char help_pull[] =
    "usage: slm pull HOST[:PORT]/REPO[:TAG][@sha256:DIGEST] -o FILE [--trust ROOT ...] [--floor V]\n"
    "                [--json] [registry options]\n"
    "\n"
    "Download a bundle pushed by `slm push`. Every byte is hashed as it arrives and\n"
    "checked against its layer digest (and a @sha256 reference pins the manifest).\n"
    "Bytes go to FILE.part; after a cut connection the download resumes with an\n"
    "HTTP Range request from the byte where it stopped (--retries), and a later\n"
    "pull of the same manifest resumes from FILE.part. With --trust, the signed\n"
    "head (signatures, expiry, version above --floor) is verified before any\n"
    "payload byte is fetched, the signed manifest must name exactly the payload\n"
    "layers, and the whole bundle is verified before it lands. FILE appears\n"
    "(fsync, rename) only when everything matched; refused downloads are deleted.\n"
    "FILE is the bundle in its stored form (header format 2: the publisher's head,\n"
    "then the GGUF uncompressed); verify, install and run take it as they take the\n"
    "zstd form.\n"
    "Memory stays bounded (a 256 KiB buffer) whatever the bundle size.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE        where the bundle lands\n"
    "  -t, --trust ROOT         verify against this trust root; repeat for a rotation chain\n"
    "      --floor V            refuse versions <= V (rollback), with --trust\n"
    "      --json               print the result as one JSON object\n" REGCLI_HELP
    "  -h, --help               this help\n"
    "\n"
    "exit codes: 0 pulled, 2 usage, 3 not an slmkit bundle, 4 I/O or network\n"
    "(registry down, HTTP errors, truncation, timeouts, refused redirects),\n"
    "5 verification failed (digest, signature, expiry, rollback)\n";

int cmd_pull(int argc, char **argv)
{
    enum { OPT_JSON = 1000, OPT_FLOOR };
    static const struct option opts[] = {{"output", required_argument, 0, 'o'}, {"trust", required_argument, 0, 't'},
                                         {"floor", required_argument, 0, OPT_FLOOR}, {"json", no_argument, 0, OPT_JSON},
                                         REGCLI_LONGOPTS, {0, 0, 0, 0}};
    const char *C = "pull", *out = NULL, *trust[16];
    regcli rg = {0};
    int json = 0, n_trust = 0, o, rc = 0;
    long long floor_v = 0;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":o:t:", opts, NULL)) != -1 && !rc) {
        if (regcli_opt(&rg, o, optarg, C, &rc))
            continue;
        switch (o) {
        case 'o': out = optarg; break;
        case 't':
            if (n_trust == 16)
                rc = cli_usage(C, "at most 16 --trust roots");
            else
                trust[n_trust++] = optarg;
            break;
        case OPT_FLOOR:
            if (cli_parse_int(optarg, 0, 1LL << 53, &floor_v))
                rc = cli_usage(C, "--floor wants an integer >= 0, got '%s'", optarg);
            break;
        case OPT_JSON: json = 1; break;
        case ':': rc = cli_usage(C, "option '%s' needs a value", argv[optind - 1]); break;
        default: rc = cli_usage(C, "unknown option '%s'", argv[optind - 1]); break;
        }
    }
    if (rc)
        return rc;
    if (argc - optind != 1 || !out)
        return cli_usage(C, "give REF and -o FILE");
    if (floor_v && !n_trust)
        return cli_usage(C, "--floor needs --trust (the version is read from the signed manifest)");
    const char *ref = argv[optind];
    slm_err err = {0};
    slm_root *root = NULL;
    int64_t now = (int64_t)time(NULL);
    if (n_trust && (rc = slm_trust_chain(trust, n_trust, now, &root, &err)))
        return cli_fail_err(C, &err);
    rg.o.root = root;
    rg.o.floor = (uint64_t)floor_v;
    rg.o.now = now;
    slm_pull_result res;
    rc = slm_registry_pull(ref, out, &rg.o, &res, &err);
    slm_root_free(root);
    if (rc)
        return cli_fail_err(C, &err);
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "ref", ref);
        cJSON_AddStringToObject(j, "output", out);
        cJSON_AddStringToObject(j, "manifest_digest", res.manifest_digest);
        cJSON_AddNumberToObject(j, "bytes", (double)res.bytes_total);
        cJSON_AddNumberToObject(j, "downloaded", (double)res.bytes_downloaded);
        cJSON_AddNumberToObject(j, "resumes", res.resumes);
        cJSON_AddNumberToObject(j, "resumed_from", (double)res.resumed_from);
        cJSON_AddBoolToObject(j, "verified", n_trust > 0);
        if (n_trust) {
            cJSON_AddStringToObject(j, "name", res.name);
            cJSON_AddNumberToObject(j, "version", (double)res.version);
        }
        cJSON_AddNumberToObject(j, "peak_rss_kib", (double)cli_peak_rss_kb());
        char *s = cJSON_PrintUnformatted(j);
        printf("%s\n", s ? s : "{}");
        free(s);
        cJSON_Delete(j);
    } else {
        printf("pulled %s -> %s (%llu bytes, %llu transferred%s%s)\n", ref, out, (unsigned long long)res.bytes_total,
               (unsigned long long)res.bytes_downloaded, res.resumes ? ", resumed" : "",
               n_trust ? ", verified" : ", digests checked; run slm verify");
    }
    return 0;
}
