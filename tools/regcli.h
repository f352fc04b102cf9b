/* tools/regcli.h — the registry options shared by push, pull and update (an option group). */
#ifndef SLM_REGCLI_H
#define SLM_REGCLI_H

#include "opt.h"
#include "registry.h"

typedef struct regcli {
    slm_registry_opts o;
    const char *allow[17];
    int n_allow;
} regcli;
/* --plain-http, --creds, --timeout, --retries, --allow-redirect, --ca over a regcli:
 * OPT_INCLUDE(regcli_table, struct my_args, rg). */
extern const slm_opt regcli_table[];
/* HOST/REPO:TAG of the TUF metadata beside ref (same repository; tag default "tuf"). */
int regcli_tuf_ref(const char *ref, const char *tag, char *out, size_t cap, slm_err *err);

#endif
