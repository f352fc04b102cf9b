/* tools/regcli.h — the registry options shared by push, pull and update. */
#ifndef SLM_REGCLI_H
#define SLM_REGCLI_H

#include <getopt.h>
#include "registry.h"

enum {
    REGCLI_PLAIN = 2000, REGCLI_CREDS, REGCLI_TIMEOUT, REGCLI_RETRIES, REGCLI_ALLOW, REGCLI_CA,
};
#define REGCLI_LONGOPTS                                                                                     \
    {"plain-http", no_argument, 0, REGCLI_PLAIN}, {"creds", required_argument, 0, REGCLI_CREDS},            \
        {"timeout", required_argument, 0, REGCLI_TIMEOUT}, {"retries", required_argument, 0, REGCLI_RETRIES}, \
        {"allow-redirect", required_argument, 0, REGCLI_ALLOW}, {"ca", required_argument, 0, REGCLI_CA}
#define REGCLI_HELP                                                                                           \
    "      --plain-http         http:// instead of https:// (loopback test registries only)\n"              \
    "      --creds FILE         credentials (docker config.json format; default\n"                           \
    "                           $DOCKER_CONFIG/config.json or ~/.docker/config.json)\n"                       \
    "      --timeout S          connect timeout, and give up after S seconds under 1 KiB/s (default 30)\n"   \
    "      --retries N          resumed attempts (HTTP Range) after a cut connection (default 3)\n"           \
    "      --allow-redirect H   follow redirects to host H too (blob CDNs); repeatable\n"                     \
    "      --ca FILE            extra CA certificates (PEM)\n"

typedef struct regcli {
    slm_registry_opts o;
    const char *allow[17];
    int n_allow;
} regcli;
/* 1 when opt was a registry option (handled; *rc set on a usage error), else 0. */
int regcli_opt(regcli *r, int opt, const char *arg, const char *cmd, int *rc);
/* -1 for "--retries 0" (none), else the count (0 = default). */
/* HOST/REPO:TAG of the TUF metadata beside ref (same repository; tag default "tuf"). */
int regcli_tuf_ref(const char *ref, const char *tag, char *out, size_t cap, slm_err *err);

#endif
