/* tests/interop.c — see interop.h */
#include "interop.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

const char *oracle_script(const char *script)
{
    static __thread char path[4096];
    const char *dir = getenv("SLM_TESTDIR");
    if (!dir || !*dir)
        dir = "tests";
    char mod[4096];
    snprintf(mod, sizeof mod, "%s/interop/node_modules/node-llama-cpp/package.json", dir);
    const char *argv[] = {"node", "--version", NULL};
    int have_node = tu_run(NULL, NULL, argv) == 0;
    if (!have_node || !tu_exists(mod)) {
        const char *why = !have_node ? "node is not installed" : "node-llama-cpp is not installed (make deps)";
        const char *req = getenv("SLM_REQUIRE_ORACLE");
        if (req && *req == '1')
            cr_assert_fail("llama.cpp oracle required but %s", why);
        fprintf(stderr, "\n*** SKIPPED: llama.cpp interop test: %s ***\n\n", why);
        cr_skip_test("SKIPPED: llama.cpp oracle missing: %s", why);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/interop/%s", dir, script);
    return path;
}
