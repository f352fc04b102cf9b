/* api/convert.c — the convert pipeline (HF directory -> GGUF), as `slm convert` runs it. */
#include <string.h>

#include "pipeline.h"

uint32_t slm_pl_outtype(const char *name)
{
    if (!strcmp(name, "f32"))
        return SLM_TYPE_F32;
    if (!strcmp(name, "f16"))
        return SLM_TYPE_F16;
    if (!strcmp(name, "bf16"))
        return SLM_TYPE_BF16;
    if (!strcmp(name, "q8_0") && slm_qtraits_get(SLM_TYPE_Q8_0))
        return SLM_TYPE_Q8_0;
    return UINT32_MAX;
}

static size_t encode(uint32_t type, const float *src, void *dst, int64_t nrows, int64_t ncols, void *ctx)
{
    (void)ctx;
    switch (type) {
    case SLM_TYPE_F16:
        slm_fp32_to_fp16_row(src, dst, nrows * ncols);
        return (size_t)(nrows * ncols) * 2;
    case SLM_TYPE_BF16:
        slm_fp32_to_bf16_row(src, dst, nrows * ncols);
        return (size_t)(nrows * ncols) * 2;
    default:
        return slm_quantize_rows(type, src, dst, nrows, ncols, NULL);
    }
}

int slm_pl_convert(const char *dir, const char *out, uint32_t type, int threads, slm_progress_fn progress,
                   void *progress_ctx, slm_pl_convert_info *info, slm_err *err)
{
    memset(info, 0, sizeof *info);
    slm_plan plan;
    int rc = slm_plan_build(dir, type, &plan, err);
    if (rc)
        return rc;
    slm_afile_clean_stale(out);
    rc = slm_plan_write(&plan, out, threads, encode, NULL, progress, progress_ctx, err);
    if (!rc) {
        snprintf(info->arch, sizeof info->arch, "%s", plan.cfg.gguf_arch);
        info->tensors = plan.n;
        for (size_t i = 0; i < plan.n; i++)
            info->params += plan.t[i].n_elems;
        gguf_file *g = NULL;
        slm_err e2 = {0};
        if (gguf_open(out, &g, &e2) == SLM_OK) {
            info->bytes = g->size;
            gguf_close(g);
        }
    }
    slm_plan_free(&plan);
    return rc;
}
