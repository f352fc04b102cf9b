/* tests/test_run_bundle.c — `slm run --bundle/--store` verifies before anything
 * executes: a tampered bundle never produces a token. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define WANT ", there was a little girl named Lily. She loved to play outside in the park."

static char *D;

static void run_ok(const char *const *args)
{
    char *o = NULL, *e = NULL;
    int rc = tu_run_slm(&o, &e, args);
    cr_assert_eq(rc, 0, "slm %s failed (%d): %s", args[0], rc, e);
    free(o);
    free(e);
}

static char *p(const char *name) { return tu_path(D, name); }

static void setup(void)
{
    D = tu_tmpdir("runbundle");
    char *key = p("a.key"), *pub = p("a.key.pub"), *root = p("root.json"), *gguf = p("m.gguf"), *b = p("m.slmb");
    const char *conv[] = {"convert", tu_model("stories260k"), "-o", gguf, "--outtype", "f16", NULL};
    run_ok(conv);
    const char *kg[] = {"keygen", "-o", key, NULL};
    run_ok(kg);
    const char *ti[] = {"trust", "init", "-o", root, "--key", pub, "--threshold", "1", "--sign-with", key, NULL};
    run_ok(ti);
    const char *bu[] = {"bundle", gguf, "-o", b, "--name", "stories", "--version", "1", "--expires", "30d",
                        "--canary", "Once upon a time, there was a girl.", "--key", key, NULL};
    run_ok(bu);
    free(key); free(pub); free(root); free(gguf); free(b);
}

static void teardown(void)
{
    tu_rmtree(D);
    free(D);
}

TestSuite(run_bundle, .init = setup, .fini = teardown);

Test(run_bundle, verified_bundle_runs)
{
    char *b = p("m.slmb"), *root = p("root.json");
    char *o = NULL, *e = NULL;
    const char *args[] = {"run", "--bundle", b, "--trust", root, "-p", "Once upon a time", "-n", "30", "--temp", "0", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, args), 0, "%s", e);
    cr_assert(strncmp(o, WANT, strlen(WANT)) == 0, "got: %s", o);
    free(o); free(e); free(b); free(root);
}

Test(run_bundle, tampered_bundle_never_runs)
{
    char *b = p("m.slmb"), *root = p("root.json"), *t = p("t.slmb");
    size_t n;
    char *d = tu_read_file(b, &n);
    /* one byte in the middle of the compressed payload, one in the manifest */
    size_t offs[] = {n / 2, n - 3, 40};
    for (size_t i = 0; i < sizeof offs / sizeof *offs; i++) {
        d[offs[i]] ^= 0x20;
        cr_assert_eq(tu_write_file(t, d, n), 0);
        d[offs[i]] ^= 0x20;
        char *o = NULL, *e = NULL;
        const char *args[] = {"run", "--bundle", t, "--trust", root, "-p", "Once upon a time", "-n", "8", "--temp", "0", NULL};
        int rc = tu_run_slm(&o, &e, args);
        cr_assert_eq(rc, 5, "flip at %zu: exit %d: %s", offs[i], rc, e);
        cr_assert_eq(o[0], 0, "a tampered bundle produced output: %s", o);
        cr_assert_eq(tu_count_lines(e), 1, "%s", e);
        free(o); free(e);
    }
    free(d); free(b); free(root); free(t);
}

Test(run_bundle, store_runs_active_model)
{
    char *b = p("m.slmb"), *root = p("root.json"), *st = p("store");
    const char *inst[] = {"install", b, "--store", st, "--trust", root, NULL};
    run_ok(inst);
    char *o = NULL, *e = NULL;
    const char *args[] = {"run", "--store", st, "-p", "Once upon a time", "-n", "30", "--temp", "0", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, args), 0, "%s", e);
    cr_assert(strncmp(o, WANT, strlen(WANT)) == 0, "got: %s", o);
    free(o); free(e);
    const char *bad[] = {"run", "--store", st, "-m", b, NULL};
    cr_assert_eq(tu_run_slm(NULL, NULL, bad), 2, "two models at once is a usage error");
    free(b); free(root); free(st);
}
