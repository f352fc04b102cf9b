/* fuzz/fuzz_sweep_plan.c — the sweep parsers (sweep/plan.c): the bytes go through both
 * sweep_spec_parse (SWEEP.json, what a user writes) and sweep_plan_parse (plan.json, what every
 * worker reads from the shared directory). 0 when either accepted them, else SLM_EINPUT. What a
 * parser accepts must be usable: counts inside their bounds, tasks inside the grid. */
#include "fuzz_common.h"
#include "sweep.h"

static void check_plan(const sweep_plan *p, int is_plan)
{
    if (p->n_models < 1 || p->n_models > SWEEP_MAX_MODELS || p->n_types < 1 || p->n_types > SWEEP_MAX_TYPES ||
        p->n_calibs < 1 || p->n_calibs > SWEEP_MAX_CALIBS || p->n_threads < 1 || p->n_threads > SWEEP_MAX_THREADS ||
        !p->text || p->ctx < 8 || !p->name[0])
        abort();
    for (int i = 0; i < p->n_calibs; i++)
        if ((p->calibs[i].imatrix || p->calibs[i].gptq) != (p->calibs[i].text != NULL))
            abort();
    if (!is_plan)
        return;
    if (p->n_tasks != p->n_models * p->n_threads * (1 + p->n_types * p->n_calibs))
        abort();
    for (int i = 0; i < p->n_tasks; i++) {
        const sweep_task *t = &p->tasks[i];
        if (t->model < 0 || t->model >= p->n_models || t->calib < -1 || t->calib >= p->n_calibs || strlen(t->id) != 16)
            abort();
    }
}

int fuzz_sweep_plan(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return SLM_EINPUT;
    sweep_plan p;
    slm_err err = {0};
    int spec = sweep_spec_parse((const char *)data, size, "SWEEP.json", &p, &err);
    if (spec == SLM_OK) {
        check_plan(&p, 0);
        sweep_plan_free(&p);
    }
    int plan = sweep_plan_parse((const char *)data, size, "plan.json", &p, &err);
    if (plan == SLM_OK) {
        check_plan(&p, 1);
        sweep_plan_free(&p);
    }
    if (spec == SLM_EINTERNAL || plan == SLM_EINTERNAL)
        return SLM_EINTERNAL;
    return spec == SLM_OK || plan == SLM_OK ? SLM_OK : SLM_EINPUT;
}

FUZZ_ENTRY(fuzz_sweep_plan)
