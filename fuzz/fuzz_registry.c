/* fuzz/fuzz_registry.c — what a registry (or a man in the middle of a plain
 * http one) sends the registry client, parsed (registry/): the first byte
 * selects the parser, the rest is its input.
 *   'M' an OCI image manifest (slm_oci_manifest_parse)
 *   'T' a token endpoint answer (slm_oci_token_parse)
 *   'C' a WWW-Authenticate challenge (slm_auth_challenge_parse)
 *   'R' a reference as a user or a config file gives it (slm_ref_parse)
 *   'U' the TUF metadata artifact's manifest (slm_oci_tuf_manifest_parse) */
#include "fuzz_common.h"
#include "registry.h"

int fuzz_registry(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return SLM_EINPUT;
    char sel = (char)data[0];
    char *s = malloc(size);
    if (!s)
        abort();
    memcpy(s, data + 1, size - 1);
    s[size - 1] = 0;
    slm_err err = {0};
    int rc = SLM_EINPUT;
    if (sel == 'M') {
        slm_oci_manifest m;
        rc = slm_oci_manifest_parse(s, size - 1, &m, &err);
        if (!rc && (m.n_layers < 1 || m.n_layers > SLM_OCI_MAX_LAYERS || strncmp(m.config.digest, "sha256:", 7)))
            abort();
    } else if (sel == 'T') {
        char tok[256];
        rc = slm_oci_token_parse(s, size - 1, tok, sizeof tok, &err);
        if (!rc && strlen(tok) >= sizeof tok)
            abort();
    } else if (sel == 'C') {
        slm_auth_challenge c;
        rc = slm_auth_challenge_parse(s, &c) ? SLM_EINPUT : 0;
        if (!rc && (strlen(c.realm) >= sizeof c.realm || strlen(c.scope) >= sizeof c.scope))
            abort();
    } else if (sel == 'U') {
        slm_oci_manifest m;
        char names[SLM_OCI_MAX_LAYERS][32];
        rc = slm_oci_tuf_manifest_parse(s, size - 1, &m, names, &err);
        if (rc == SLM_EVERIFY)
            rc = SLM_EINPUT;
        for (int i = 0; !rc && i < m.n_layers; i++)
            if (strchr(names[i], '/') || names[i][0] == '.' || !strstr(names[i], ".json"))
                abort();
    } else if (sel == 'R') {
        slm_ref r;
        rc = slm_ref_parse(s, &r, &err);
        if (rc == SLM_EUSAGE)
            rc = SLM_EINPUT;
        if (!rc && (!r.host[0] || !r.repo[0] || (!r.tag[0] && !r.digest[0])))
            abort();
    }
    free(s);
    return rc;
}

FUZZ_ENTRY(fuzz_registry)
