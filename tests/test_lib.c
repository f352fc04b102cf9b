/* tests/test_lib.c — suite "lib": libslm, the embeddable library (include/slm.h).
 *
 * The public API called directly (errors and the thread-local message, generation equal to
 * `slm run --temp 0`, cancellation, logits vs log-probabilities, tokens, chat template,
 * perplexity equal to `slm perplexity`); then the installed library as an application sees it:
 * `make install DESTDIR=T PREFIX=/usr`, examples/generate.c built with pkg-config against T and
 * compared with `slm run`, the exported symbols of libslm.so.0 and libslm.a, and the Python
 * binding (tests/lib_python.py) with Debian's python3. The installed-tree tests need an
 * uninstrumented libslm (under `make asan` they say SKIPPED). */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slm.h"
#include "testutil.h"

#define MODEL "gguf/stories260K.gguf"
static const char *PROMPT = "Once upon a time";

static slm_lm *open_model(void)
{
    slm_lm *m = NULL;
    int rc = slm_lm_open(tu_model(MODEL), NULL, &m);
    cr_assert_eq(rc, SLM_OK, "slm_lm_open: %s", slm_last_error());
    return m;
}

/* stdout of `slm run -m MODEL -p PROMPT -n N --temp 0` without its final newline (malloc'd) */
static char *slm_run_text(const char *model, int n)
{
    char nb[16], *o = NULL, *e = NULL;
    snprintf(nb, sizeof nb, "%d", n);
    int rc = tu_slmv(&o, &e, "run", "-m", model, "-p", PROMPT, "-n", nb, "--temp", "0", NULL);
    cr_assert_eq(rc, 0, "slm run: %s", e ? e : "");
    free(e);
    size_t l = strlen(o);
    cr_assert(l > 0 && o[l - 1] == '\n');
    o[l - 1] = 0;
    return o;
}

Test(lib, version_and_errors)
{
    cr_expect_eq(slm_version(), SLM_VERSION_NUMBER);
    cr_expect_str_eq(slm_version_string(), SLM_VERSION_STRING);
    slm_lm *m = (slm_lm *)1;
    char *dir = tu_tmpdir("lib-err");
    char *missing = tu_path(dir, "nope.gguf");
    cr_expect_eq(slm_lm_open(missing, NULL, &m), SLM_EIO);
    cr_expect_null(m);
    cr_expect(strstr(slm_last_error(), "nope.gguf") != NULL, "message: %s", slm_last_error());
    cr_expect_str_eq(slm_status_name(SLM_EIO), "io");
    /* not a GGUF: bad input */
    char *bad = tu_path(dir, "bad.gguf");
    cr_assert_eq(tu_write_file(bad, "hello", 5), 0);
    cr_expect_eq(slm_lm_open(bad, NULL, &m), SLM_EINPUT, "%s", slm_last_error());
    cr_expect(strstr(slm_last_error(), "bad.gguf") != NULL, "message: %s", slm_last_error());
    /* a success clears the message */
    slm_lm *ok = open_model();
    cr_expect_str_eq(slm_last_error(), "");
    slm_lm_close(ok);
    cr_expect_eq(slm_verify_bundle(bad, NULL, 0), SLM_EUSAGE);
    tu_rmtree(dir);
    free(missing);
    free(bad);
    free(dir);
}

static void *fail_on_thread(void *arg)
{
    slm_lm *m = NULL;
    int rc = slm_lm_open((const char *)arg, NULL, &m);
    return (void *)(intptr_t)(rc == SLM_EIO && strstr(slm_last_error(), "other-thread.gguf") != NULL);
}

Test(lib, last_error_is_per_thread)
{
    slm_lm *m = NULL;
    cr_assert_eq(slm_lm_open("/nonexistent/this-thread.gguf", NULL, &m), SLM_EIO);
    pthread_t t;
    void *ok = NULL;
    pthread_create(&t, NULL, fail_on_thread, "/nonexistent/other-thread.gguf");
    pthread_join(t, &ok);
    cr_expect(ok, "the other thread saw its own message");
    cr_expect(strstr(slm_last_error(), "this-thread.gguf") != NULL, "this thread's message: %s", slm_last_error());
}

typedef struct collect {
    char buf[8192];
    size_t len;
    int calls, stop_after;
} collect;
static int on_piece(void *user, const char *piece, size_t len, int32_t tok)
{
    collect *c = user;
    if (c->len + len < sizeof c->buf) {
        memcpy(c->buf + c->len, piece, len);
        c->len += len;
        c->buf[c->len] = 0;
    }
    return ++c->calls == c->stop_after;
}

Test(lib, generate_equals_slm_run)
{
    slm_lm *m = open_model();
    slm_gen_params p;
    slm_gen_params_init(&p);
    p.max_tokens = 40;
    p.temperature = 0;
    collect c = {.stop_after = -1};
    slm_gen_result r;
    cr_assert_eq(slm_lm_generate(m, PROMPT, strlen(PROMPT), &p, on_piece, &c, &r), SLM_OK, "%s", slm_last_error());
    char *want = slm_run_text(tu_model(MODEL), 40);
    cr_expect_str_eq(c.buf, want);
    cr_expect_eq(c.calls, 40);
    cr_expect_eq(r.generated_tokens, 40);
    cr_expect_eq(r.stop, SLM_STOP_LENGTH);
    /* the collecting variant, and a second generation on the same handle, give the same text */
    char *text = NULL;
    cr_assert_eq(slm_lm_generate_text(m, PROMPT, strlen(PROMPT), &p, &text, NULL), SLM_OK);
    cr_expect_str_eq(text, want);
    slm_free(text);
    free(want);
    slm_lm_close(m);
}

Test(lib, callback_stops_generation)
{
    slm_lm *m = open_model();
    slm_gen_params p;
    slm_gen_params_init(&p);
    p.max_tokens = 100;
    p.temperature = 0;
    collect c = {.stop_after = 3};
    slm_gen_result r;
    cr_assert_eq(slm_lm_generate(m, PROMPT, strlen(PROMPT), &p, on_piece, &c, &r), SLM_OK);
    cr_expect_eq(c.calls, 3);
    cr_expect_eq(r.generated_tokens, 3);
    cr_expect_eq(r.stop, SLM_STOP_CANCEL);
    slm_lm_close(m);
}

static int cancel_from_callback(void *user, const char *piece, size_t len, int32_t tok)
{
    slm_lm_cancel(user); /* as another thread would */
    return 0;
}

Test(lib, cancel)
{
    slm_lm *m = open_model();
    slm_gen_params p;
    slm_gen_params_init(&p);
    p.max_tokens = 100;
    p.temperature = 0;
    slm_gen_result r;
    cr_assert_eq(slm_lm_generate(m, PROMPT, strlen(PROMPT), &p, cancel_from_callback, m, &r), SLM_OK);
    cr_expect_eq(r.generated_tokens, 1);
    cr_expect_eq(r.stop, SLM_STOP_CANCEL);
    /* the next generation starts uncancelled */
    cr_assert_eq(slm_lm_generate(m, PROMPT, strlen(PROMPT), &p, NULL, NULL, &r), SLM_OK);
    cr_expect_eq(r.generated_tokens, 100);
    slm_lm_close(m);
}

Test(lib, tokens_logits_logprobs)
{
    slm_lm *m = open_model();
    int32_t *ids = NULL;
    size_t n = 0;
    cr_assert_eq(slm_lm_tokenize(m, PROMPT, strlen(PROMPT), -1, 0, &ids, &n), SLM_OK);
    char *o = NULL;
    cr_assert_eq(tu_slmv(&o, NULL, "tokenize", "-m", tu_model(MODEL), "-p", PROMPT, "--ids", NULL), 0);
    char want[256] = "", one[16];
    for (size_t i = 0; i < n; i++) {
        snprintf(one, sizeof one, "%s%d", i ? " " : "", ids[i]);
        strcat(want, one);
    }
    strcat(want, "\n");
    cr_expect_str_eq(o, want);
    free(o);
    char *text = NULL;
    cr_assert_eq(slm_lm_detokenize(m, ids + 1, n - 1, 0, &text), SLM_OK);
    cr_expect_str_eq(text, PROMPT);
    slm_free(text);
    int32_t bad = 1 << 30;
    cr_expect_eq(slm_lm_detokenize(m, &bad, 1, 0, &text), SLM_EINPUT);

    /* log p(ids[i+1] | prefix) from slm_lm_logprobs equals the log-softmax of slm_lm_logits of the prefix */
    int nv = slm_lm_n_vocab(m);
    float *lp = malloc(sizeof *lp * n), *lg = malloc(sizeof *lg * (size_t)nv);
    cr_assert_eq(slm_lm_logprobs(m, ids, n, lp), SLM_OK, "%s", slm_last_error());
    for (size_t i = 1; i < n; i++) {
        cr_assert_eq(slm_lm_logits(m, ids, i, lg), SLM_OK);
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < nv; v++)
            mx = lg[v] > mx ? lg[v] : mx;
        for (int v = 0; v < nv; v++)
            s += exp(lg[v] - mx);
        double want_lp = lg[ids[i]] - mx - log(s);
        cr_expect(fabs(lp[i - 1] - want_lp) < 1e-4, "token %zu: %g vs %g", i, lp[i - 1], want_lp);
        cr_expect(lp[i - 1] < 0);
    }
    free(lp);
    free(lg);
    slm_free(ids);
    slm_lm_close(m);
}

Test(lib, chat_template)
{
    slm_lm *m = open_model();
    slm_message msgs[] = {{"user", "Hi"}};
    char *out = NULL;
    cr_assert_eq(slm_lm_chat_apply(m, msgs, 1, 1, "chatml", &out), SLM_OK, "%s", slm_last_error());
    cr_expect_str_eq(out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    slm_free(out);
    cr_expect_eq(slm_lm_chat_apply(m, msgs, 1, 1, "no-such-template", &out), SLM_EUSAGE);
    cr_expect(strstr(slm_last_error(), "no-such-template") != NULL);
    slm_lm_close(m);
}

Test(lib, perplexity_equals_slm_perplexity)
{
    slm_lm *m = open_model();
    slm_ppl_options o;
    slm_ppl_options_init(&o);
    o.n_ctx = 128;
    o.n_chunks = 4;
    slm_ppl_stats s;
    cr_assert_eq(slm_lm_perplexity(m, tu_corpus("tinystories-eval.txt"), &o, &s), SLM_OK, "%s", slm_last_error());
    char line[128], *out = NULL;
    snprintf(line, sizeof line, "Final estimate: PPL = %.4f +/- %.5f\n", s.ppl, s.ppl_stderr);
    cr_assert_eq(tu_slmv(&out, NULL, "perplexity", "-m", tu_model(MODEL), "-f", tu_corpus("tinystories-eval.txt"),
                         "-c", "128", "--chunks", "4", NULL), 0);
    cr_expect_str_eq(out, line);
    cr_expect_eq(s.chunks, 4);
    free(out);
    slm_lm_close(m);
}

/* ---- the installed library ---- */
static const char *env_or(const char *k, const char *d)
{
    const char *v = getenv(k);
    return v && *v ? v : d;
}
static int sanitized(void)
{
    return *env_or("SLM_SAN", "") != 0;
}

/* make install DESTDIR=dir/stage PREFIX=/usr, from the tree the tests were built in */
static void install_into(const char *dir)
{
    char cmd[4096];
    const char *tests = env_or("SLM_TESTDIR", "tests");
    const char *b = env_or("SLM_BUILD", "build");
    /* -o: never relink the slm binary the other suites are running (make test built it) */
    snprintf(cmd, sizeof cmd,
             "MAKEFLAGS= make -s -C '%s/..' BUILD='%s' -o '%s/slm' install DESTDIR='%s/stage' PREFIX=/usr", tests,
             b, b, dir);
    const char *argv[] = {"sh", "-c", cmd, NULL};
    char *e = NULL;
    int rc = tu_run(NULL, &e, argv);
    cr_assert_eq(rc, 0, "make install: %s", e ? e : "");
    free(e);
}

Test(lib, example_built_with_pkg_config_equals_slm_run)
{
    if (sanitized())
        cr_skip_test("SKIPPED: an instrumented libslm cannot be loaded by an uninstrumented program");
    char *dir = tu_tmpdir("lib-example");
    install_into(dir);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "PKG_CONFIG_SYSROOT_DIR='%s/stage' PKG_CONFIG_LIBDIR='%s/stage/usr/lib/pkgconfig' "
             "MAKEFLAGS= make -s -C '%s/../examples' OUT='%s' && "
             "LD_LIBRARY_PATH='%s/stage/usr/lib' '%s/generate' '%s' '%s' 40",
             dir, dir, env_or("SLM_TESTDIR", "tests"), dir, dir, dir, tu_model(MODEL), PROMPT);
    const char *argv[] = {"sh", "-c", cmd, NULL};
    char *o = NULL, *e = NULL;
    int rc = tu_run(&o, &e, argv);
    cr_assert_eq(rc, 0, "example: %s", e ? e : "");
    char *want = slm_run_text(tu_model(MODEL), 40);
    size_t l = strlen(o);
    cr_assert(l > 0 && o[l - 1] == '\n');
    o[l - 1] = 0;
    cr_expect_str_eq(o, want);
    /* it ran the installed libslm.so.0 (the soname), not anything of the source tree */
    snprintf(cmd, sizeof cmd, "LD_LIBRARY_PATH='%s/stage/usr/lib' ldd '%s/generate'", dir, dir);
    char *ldd = NULL;
    cr_assert_eq(tu_run(&ldd, NULL, argv), 0);
    char where[1024];
    snprintf(where, sizeof where, "libslm.so.0 => %s/stage/usr/lib/libslm.so.0", dir);
    cr_expect(strstr(ldd, where) != NULL, "ldd: %s", ldd);
    free(ldd);
    free(want);
    free(o);
    free(e);
    tu_rmtree(dir);
    free(dir);
}

/* every defined dynamic symbol starts with slm_ and is declared SLM_API in slm.h; and the
 * other way round (the export list is made from the header) */
Test(lib, exports_only_slm_symbols)
{
    if (sanitized())
        cr_skip_test("SKIPPED: checked on the uninstrumented build");
    char cmd[2048];
    const char *b = env_or("SLM_BUILD", "build"), *t = env_or("SLM_TESTDIR", "tests");
    snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s/libslm.so.0' | awk '{print $3}' | sort", b);
    const char *argv[] = {"sh", "-c", cmd, NULL};
    char *syms = NULL, *e = NULL;
    cr_assert_eq(tu_run(&syms, &e, argv), 0, "%s", e ? e : "");
    int n = 0;
    for (char *s = strtok(syms, "\n"); s; s = strtok(NULL, "\n"), n++)
        cr_expect(!strncmp(s, "slm_", 4), "libslm.so.0 exports '%s'", s);
    free(syms);
    snprintf(cmd, sizeof cmd, "grep -c '^SLM_API' '%s/../include/slm.h'", t);
    char *cnt = NULL;
    cr_assert_eq(tu_run(&cnt, NULL, argv), 0);
    cr_expect_eq(n, atoi(cnt), "%d exported, %d declared", n, atoi(cnt));
    cr_expect_gt(n, 25);
    free(cnt);
    /* the static archive: its global symbols are the same slm_* functions (gguf_* and the rest local) */
    snprintf(cmd, sizeof cmd, "nm --defined-only --extern-only '%s/libslm.a' | awk 'NF==3 {print $3}' | sort", b);
    char *st = NULL;
    cr_assert_eq(tu_run(&st, NULL, argv), 0);
    int ns = 0;
    for (char *s = strtok(st, "\n"); s; s = strtok(NULL, "\n"), ns++)
        cr_expect(!strncmp(s, "slm_", 4), "libslm.a exports '%s'", s);
    cr_expect_eq(ns, n);
    free(st);
    free(e);
}

Test(lib, python_binding)
{
    if (sanitized())
        cr_skip_test("SKIPPED: python3 cannot load an instrumented libslm");
    char *dir = tu_tmpdir("lib-python");
    install_into(dir);
    /* what slm prints, for the script to compare with */
    char *run = slm_run_text(tu_model(MODEL), 40), *p = tu_path(dir, "run.txt");
    cr_assert_eq(tu_write_file(p, run, strlen(run)), 0);
    free(p);
    char *o = NULL;
    cr_assert_eq(tu_slmv(&o, NULL, "tokenize", "-m", tu_model(MODEL), "-p", PROMPT, "--ids", NULL), 0);
    p = tu_path(dir, "ids.txt");
    cr_assert_eq(tu_write_file(p, o, strlen(o)), 0);
    free(p);
    free(o);
    cr_assert_eq(tu_slmv(&o, NULL, "perplexity", "-m", tu_model(MODEL), "-f", tu_corpus("tinystories-eval.txt"),
                         "-c", "128", "--chunks", "4", NULL), 0);
    p = tu_path(dir, "ppl.txt");
    cr_assert_eq(tu_write_file(p, o, strlen(o)), 0);
    free(p);
    free(o);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "PYTHONDONTWRITEBYTECODE=1 PYTHONPATH='%s/stage/usr/lib/python3/dist-packages' "
             "python3 '%s/lib_python.py' '%s' '%s' '%s'", dir, env_or("SLM_TESTDIR", "tests"), tu_model(MODEL), dir,
             tu_corpus("tinystories-eval.txt"));
    const char *argv[] = {"sh", "-c", cmd, NULL};
    char *e = NULL;
    o = NULL;
    int rc = tu_run(&o, &e, argv);
    cr_expect_eq(rc, 0, "python binding: %s%s", o ? o : "", e ? e : "");
    free(o);
    free(e);
    free(run);
    tu_rmtree(dir);
    free(dir);
}

/* the pipelines as calls: convert and quantize give the files the tools give; a bundle made
 * by the tools verifies, opens, installs and runs from the store; a changed byte does not */
Test(lib, pipelines_convert_quantize_verify_install)
{
    char *d = tu_tmpdir("lib-pipe");
    char *f32 = tu_path(d, "f32.gguf"), *q = tu_path(d, "q.gguf"), *q_cli = tu_path(d, "q-cli.gguf");
    cr_assert_eq(slm_convert(tu_model("stories260k"), f32, "f32", 1), SLM_OK, "%s", slm_last_error());
    cr_expect_eq(slm_convert(tu_model("stories260k"), f32, "q9_9", 1), SLM_EUSAGE);
    slm_quantize_options qo = {.n_threads = 2};
    cr_assert_eq(slm_quantize(f32, q, "Q4_K_M", &qo), SLM_OK, "%s", slm_last_error());
    TU_SLM_OK("quantize", f32, q_cli, "Q4_K_M", "-t", "1");
    size_t na = 0, nb = 0;
    char *a = tu_read_file(q, &na), *b = tu_read_file(q_cli, &nb);
    cr_assert(a && b);
    cr_expect(na == nb && !memcmp(a, b, na), "slm_quantize and slm quantize wrote different files");
    free(a);
    free(b);
    /* GPTQ through the API: the same bytes as `slm quantize --gptq` */
    char *g = tu_path(d, "g.gguf"), *g_cli = tu_path(d, "g-cli.gguf");
    slm_quantize_options go = {.n_threads = 2, .gptq_calib = tu_corpus("tinystories-calib.txt"), .gptq_ctx = 64,
                               .gptq_chunks = 4};
    cr_assert_eq(slm_quantize(f32, g, "Q4_K_M", &go), SLM_OK, "%s", slm_last_error());
    TU_SLM_OK("quantize", f32, g_cli, "Q4_K_M", "-t", "2", "--gptq", "-f", tu_corpus("tinystories-calib.txt"), "-c",
              "64", "--chunks", "4");
    a = tu_read_file(g, &na);
    b = tu_read_file(g_cli, &nb);
    cr_assert(a && b);
    cr_expect(na == nb && !memcmp(a, b, na), "slm_quantize with gptq_calib and slm quantize --gptq differ");
    free(a);
    free(b);
    a = tu_read_file(q_cli, &na);
    b = tu_read_file(g, &nb);
    cr_expect(na != nb || memcmp(a, b, na), "GPTQ wrote the same bytes as plain rounding");
    free(a);
    free(b);
    free(g);
    free(g_cli);
    cr_expect_eq(slm_quantize(q, f32, "Q8_0", NULL), SLM_EINPUT, "requantizing is refused");
    cr_expect(strstr(slm_last_error(), "already quantized") != NULL, "%s", slm_last_error());

    char *key = tu_path(d, "k.key"), *pub = tu_path(d, "k.key.pub"), *root = tu_path(d, "root.json");
    char *bundle = tu_path(d, "m.slmb"), *store = tu_path(d, "store");
    TU_SLM_OK("keygen", "-o", key);
    TU_SLM_OK("trust", "init", "-o", root, "--key", pub, "--threshold", "1", "--sign-with", key);
    TU_SLM_OK("bundle", q, "-o", bundle, "--name", "stories", "--version", "1", "--expires", "30d", "--canary",
              "Once upon a time, there was a girl.", "--key", key);
    const char *roots[] = {root};
    cr_expect_eq(slm_verify_bundle(bundle, roots, 1), SLM_OK, "%s", slm_last_error());
    slm_gen_params gp;
    slm_gen_params_init(&gp);
    gp.max_tokens = 20;
    gp.temperature = 0;
    char *want = NULL, *got = NULL;
    slm_lm *m = NULL;
    cr_assert_eq(slm_lm_open(q, NULL, &m), SLM_OK);
    cr_assert_eq(slm_lm_generate_text(m, PROMPT, strlen(PROMPT), &gp, &want, NULL), SLM_OK);
    slm_lm_close(m);
    cr_assert_eq(slm_lm_open_bundle(bundle, roots, 1, NULL, &m), SLM_OK, "%s", slm_last_error());
    cr_assert_eq(slm_lm_generate_text(m, PROMPT, strlen(PROMPT), &gp, &got, NULL), SLM_OK);
    cr_expect_str_eq(got, want);
    slm_free(got);
    slm_lm_close(m);
    cr_assert_eq(slm_install_bundle(store, bundle, root), SLM_OK, "%s", slm_last_error());
    cr_assert_eq(slm_lm_open_store(store, NULL, &m), SLM_OK, "%s", slm_last_error());
    cr_assert_eq(slm_lm_generate_text(m, PROMPT, strlen(PROMPT), &gp, &got, NULL), SLM_OK);
    cr_expect_str_eq(got, want);
    slm_free(got);
    slm_lm_close(m);
    /* one byte changed near the end (payload): verification fails, nothing opens */
    size_t n = 0;
    char *bytes = tu_read_file(bundle, &n);
    cr_assert(bytes && n > 100);
    bytes[n - 50] ^= 1;
    cr_assert_eq(tu_write_file(bundle, bytes, n), 0);
    free(bytes);
    cr_expect_eq(slm_verify_bundle(bundle, roots, 1), SLM_EVERIFY, "%s", slm_last_error());
    m = (slm_lm *)1;
    cr_expect_eq(slm_lm_open_bundle(bundle, roots, 1, NULL, &m), SLM_EVERIFY);
    cr_expect_null(m);
    slm_free(want);
    tu_rmtree(d);
    free(d); free(f32); free(q); free(q_cli); free(key); free(pub); free(root); free(bundle); free(store);
}
