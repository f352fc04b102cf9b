/* tests/interop.c — see interop.h */
#include "interop.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "testutil.h"

void oracle_missing(const char *what)
{
    const char *req = getenv("SLM_REQUIRE_ORACLE");
    if (req && *req == '1')
        cr_assert_fail("oracle required (SLM_REQUIRE_ORACLE=1) but %s", what);
    fprintf(stderr, "\n*** SKIPPED: oracle missing: %s ***\n\n", what);
    cr_skip_test("SKIPPED: oracle missing: %s", what);
}

static const char *testdir(void)
{
    const char *dir = getenv("SLM_TESTDIR");
    return dir && *dir ? dir : "tests";
}

static int have_node(void)
{
    const char *argv[] = {"node", "--version", NULL};
    return tu_run(NULL, NULL, argv) == 0;
}

const char *oracle_node_file(const char *rel)
{
    static __thread char path[4096];
    if (!have_node()) {
        oracle_missing("node is not installed");
        return NULL;
    }
    snprintf(path, sizeof path, "%s/interop/node_modules/%s", testdir(), rel);
    if (!tu_exists(path)) {
        char why[4200];
        snprintf(why, sizeof why, "%s is not installed (make deps)", path);
        oracle_missing(why);
        return NULL;
    }
    return path;
}

const char *oracle_script(const char *script)
{
    static __thread char path[4096];
    if (!oracle_node_file("node-llama-cpp/package.json"))
        return NULL;
    snprintf(path, sizeof path, "%s/interop/%s", testdir(), script);
    return path;
}

const char *oracle_llama_tool(const char *name)
{
    static __thread char path[4096];
    const char *bin = getenv("SLM_LLAMA_BIN");
    if (!bin || !*bin) {
        oracle_missing("SLM_LLAMA_BIN is not set (llama.cpp's CLI tools, built by make deps)");
        return NULL;
    }
    snprintf(path, sizeof path, "%s/%s", bin, name);
    if (access(path, X_OK) != 0) {
        char why[4200];
        snprintf(why, sizeof why, "llama.cpp tool %s is not built (make deps)", path);
        oracle_missing(why);
        return NULL;
    }
    return path;
}

const char *oracle_llama_source(const char *rel)
{
    static __thread char path[4096];
    const char *src = getenv("SLM_LLAMA_SRC"), *bin = getenv("SLM_LLAMA_BIN");
    if (src && *src) snprintf(path, sizeof path, "%s/%s", src, rel);
    else if (bin && *bin) snprintf(path, sizeof path, "%s/../../%s", bin, rel);
    else {
        oracle_missing("neither SLM_LLAMA_SRC nor SLM_LLAMA_BIN is set (llama.cpp's source, make deps)");
        return NULL;
    }
    if (!tu_exists(path)) {
        char why[4200];
        snprintf(why, sizeof why, "llama.cpp source file %s is missing (make deps)", path);
        oracle_missing(why);
        return NULL;
    }
    return path;
}
