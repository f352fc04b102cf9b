/* tools/regcli.c — the registry options shared by push, pull and update. */
#include <string.h>

#include "cli.h"
#include "regcli.h"

static int opt_timeout(const char *cmd, const char *arg, void *field, void *base)
{
    regcli *r = base;
    long long v;
    (void)field;
    if (cli_parse_int(arg, 1, 86400, &v))
        return cli_usage(cmd, "--timeout wants seconds 1..86400, got '%s'", arg);
    r->o.connect_timeout = r->o.stall_timeout = (long)v;
    return 0;
}

int regcli_tuf_ref(const char *ref, const char *tag, char *out, size_t cap, slm_err *err)
{
    slm_ref r;
    int rc = slm_ref_parse(ref, &r, err);
    if (!rc && (size_t)snprintf(out, cap, "%s/%s:%s", r.host, r.repo, tag && *tag ? tag : "tuf") >= cap)
        rc = slm_err_set(err, SLM_EUSAGE, "reference '%s' is too long", ref);
    return rc;
}

static int opt_retries(const char *cmd, const char *arg, void *field, void *base)
{
    long long v;
    (void)base;
    if (cli_parse_int(arg, 0, 100, &v))
        return cli_usage(cmd, "--retries wants 0..100, got '%s'", arg);
    *(int *)field = v ? (int)v : -1; /* -1: none */
    return 0;
}

static int opt_allow(const char *cmd, const char *arg, void *field, void *base)
{
    regcli *r = base;
    (void)field;
    if (r->n_allow == 16)
        return cli_usage(cmd, "at most 16 --allow-redirect hosts");
    r->allow[r->n_allow++] = arg;
    r->allow[r->n_allow] = NULL;
    r->o.allow_hosts = r->allow;
    return 0;
}

const slm_opt regcli_table[] = {
    OPT_FLAG(0, "plain-http", regcli, o.plain_http, "http:// instead of https:// (loopback test registries only)"),
    OPT_PATH(0, "creds", regcli, o.creds_file, "FILE",
             "credentials (docker config.json format; default\n$DOCKER_CONFIG/config.json or ~/.docker/config.json)"),
    OPT_CALLBACK(0, "timeout", regcli, o.connect_timeout, "S", opt_timeout,
                 "connect timeout, and give up after S seconds under 1 KiB/s (default 30)"),
    OPT_CALLBACK(0, "retries", regcli, o.retries, "N", opt_retries,
                 "resumed attempts (HTTP Range) after a cut connection (default 3)"),
    OPT_CALLBACK(0, "allow-redirect", regcli, allow, "H", opt_allow, "follow redirects to host H too (blob CDNs); repeatable"),
    OPT_PATH(0, "ca", regcli, o.ca_file, "FILE", "extra CA certificates (PEM)"),
    OPT_END(),
};
