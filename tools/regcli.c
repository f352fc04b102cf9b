/* tools/regcli.c — the registry options shared by push, pull and update. */
#include <string.h>

#include "cli.h"
#include "regcli.h"

int regcli_opt(regcli *r, int opt, const char *arg, const char *cmd, int *rc)
{
    long long v;
    switch (opt) {
    case REGCLI_PLAIN: r->o.plain_http = 1; return 1;
    case REGCLI_CREDS: r->o.creds_file = arg; return 1;
    case REGCLI_CA: r->o.ca_file = arg; return 1;
    case REGCLI_TIMEOUT:
        if (cli_parse_int(arg, 1, 86400, &v))
            *rc = cli_usage(cmd, "--timeout wants seconds 1..86400, got '%s'", arg);
        else
            r->o.connect_timeout = r->o.stall_timeout = (long)v;
        return 1;
    case REGCLI_RETRIES:
        if (cli_parse_int(arg, 0, 100, &v))
            *rc = cli_usage(cmd, "--retries wants 0..100, got '%s'", arg);
        else
            r->o.retries = v ? (int)v : -1;
        return 1;
    case REGCLI_ALLOW:
        if (r->n_allow == 16)
            *rc = cli_usage(cmd, "at most 16 --allow-redirect hosts");
        else {
            r->allow[r->n_allow++] = arg;
            r->allow[r->n_allow] = NULL;
            r->o.allow_hosts = r->allow;
        }
        return 1;
    }
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
