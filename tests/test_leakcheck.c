/* tests/test_leakcheck.c — suite "leakcheck": the harness itself. With SLM_TEST_PLANT_LEAK=1
 * (a test-only switch, never set by make or CI) this test leaks what library code allocated
 * for it (a gguf_file from gguf_open: the path copy, the kv and tensor tables, the mapping),
 * so `make asan` must fail with a LeakSanitizer report whose stack runs through gguf_open and
 * this test. It shows that tests/lsan.supp hides only Criterion's own allocations, not leaks in
 * slmkit code called from a test (see docs/reliability.md). Without the switch it frees all. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "formats.h"
#include "testutil.h"

Test(leakcheck, library_allocation_freed_unless_planted)
{
    gguf_file *f = NULL;
    slm_err err = {0};
    cr_assert_eq(gguf_open(tu_model("gguf/stories260K.gguf"), &f, &err), 0, "%s", err.msg);
    cr_assert_gt(f->n_tensors, 0);
    const char *plant = getenv("SLM_TEST_PLANT_LEAK");
    if (plant && *plant == '1')
        return; /* the planted leak: f is never closed */
    gguf_close(f);
}
