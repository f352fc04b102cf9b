/* api/names.c — the names and facts that tools parse and show, from the libraries below
 * (quant types and recipes, the kernel set, sampler defaults) and an atomic text output, so
 * that tools/ needs no header under the API layer. */
#include <stdio.h>
#include <string.h>

#include "pipeline.h"

void slm_pl_sampler_defaults(slm_sampler_params *p) { slm_sampler_defaults(p); }

int slm_pl_kernel_env_check(char *msg, size_t cap) { return slm_kernel_env_check(msg, cap); }

const char *slm_pl_kernel_name(void) { return slm_kernel_name(slm_kernel_active()); }

void slm_pl_kernels_text(char *buf, size_t cap)
{
    if (slm_kernel_active() == SLM_KERNEL_SVE)
        snprintf(buf, cap, "sve (%d-bit vectors; cpu: %s)", slm_sve_bits(), slm_cpu_caps_text());
    else
        snprintf(buf, cap, "%s (cpu: %s)", slm_kernel_name(slm_kernel_active()), slm_cpu_caps_text());
}

int slm_pl_tensor_type(const char *name, uint32_t *out)
{
    const slm_qtraits *t = slm_qtraits_by_name(name);
    if (!t || t->type == SLM_TYPE_Q8_1 || t->type == SLM_TYPE_Q8_K)
        return -1;
    *out = t->type;
    return 0;
}

int slm_pl_recipe_by_name(const char *name) { return slm_recipe_by_name(name); }
const char *slm_pl_recipe_name(int ftype) { return slm_recipe_name(ftype); }
const char *const *slm_pl_recipe_names(void) { return slm_recipe_names(); }
int slm_pl_recipe_check_pattern(const char *pattern, char *msg, size_t cap)
{
    return slm_recipe_check_pattern(pattern, msg, cap);
}

int slm_pl_write_line(const char *path, const char *text, slm_err *err)
{
    slm_afile *f = NULL;
    int rc = slm_afile_open(path, &f, err);
    if (!rc && !(rc = slm_afile_write(f, text, strlen(text), err)) && !(rc = slm_afile_write(f, "\n", 1, err)))
        return slm_afile_commit(f, err);
    if (f)
        slm_afile_abort(f);
    return rc;
}

uint32_t slm_pl_kv_type_by_name(const char *name) { return slm_kv_type_by_name(name); }

const char *slm_pl_kv_type_name(uint32_t type) { return slm_kv_type_name(type); }
