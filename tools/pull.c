/* tools/pull.c — `slm pull`: a bundle from an OCI registry, verified while it arrives. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "regcli.h"

typedef struct pull_args {
    const char *out, *trust[16];
    int n_trust, json;
    long long floor_v;
    regcli rg;
} pull_args;

static const slm_opt pull_opts[] = {
    OPT_PATH('o', "output", pull_args, out, "FILE", "where the bundle lands"),
    OPT_LIST('t', "trust", pull_args, trust, n_trust, "ROOT", "verify against this trust root; repeat for a rotation chain"),
    OPT_I64(0, "floor", pull_args, floor_v, "V", 0, 1LL << 53, "refuse versions <= V (rollback), with --trust"),
    OPT_INCLUDE_AS(cli_json_table, pull_args, json, "print the result as one JSON object"),
    OPT_GROUP("registry options:"),
    OPT_INCLUDE(regcli_table, pull_args, rg),
    OPT_END(),
};

const slm_cmd_doc doc_pull = {
    .usage =
        "slm pull HOST[:PORT]/REPO[:TAG][@sha256:DIGEST] -o FILE [--trust ROOT ...] [--floor V]\n"
        "         [--json] [registry options]",
    .description =
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
        "Memory stays bounded (a 256 KiB buffer) whatever the bundle size.\n",
    .opts = pull_opts,
    .exit_codes =
        "0 pulled, 2 usage, 3 not an slmkit bundle, 4 I/O or network\n"
        "(registry down, HTTP errors, truncation, timeouts, refused redirects),\n"
        "5 verification failed (digest, signature, expiry, rollback)",
};

int cmd_pull(int argc, char **argv)
{
    const char *C = "pull";
    pull_args a = {0};
    int optind = slm_opt_parse(C, pull_opts, argc, argv, &a);
    if (optind < 0)
        return -optind;
    regcli rg = a.rg;
    if (rg.n_allow)
        rg.o.allow_hosts = rg.allow; /* the copy's own array */
    const char *out = a.out, *const *trust = a.trust;
    int json = a.json, n_trust = a.n_trust, rc = 0;
    long long floor_v = a.floor_v;
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
