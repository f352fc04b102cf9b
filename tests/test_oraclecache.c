/* tests/test_oraclecache.c — the oracle answer cache of tu_run ($SLM_ORACLE_CACHE, interop.h): a hit
 * gives back the first run's texts and files at the caller's paths without running the oracle; a
 * changed input byte, argument or program, a directory argument and a failed run all run it again.
 * The oracle here is a stand-in llama.cpp tool (a shell script in a scratch $SLM_LLAMA_BIN that counts
 * its runs), and once the real llama-quantize. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "interop.h"
#include "testutil.h"

static char *root, *bin, *tool, *count, *cache, real_bin[4096];

static void setup(void)
{
    root = tu_tmpdir("ocache");
    bin = tu_path(root, "bin");
    cache = tu_path(root, "cache");
    count = tu_path(root, "count");
    cr_assert_eq(mkdir(bin, 0755), 0);
    tool = tu_path(bin, "llama-fake");
    /* upper-cases $1 into $2 and says so; fails on an input holding FAIL; one line per run in $count */
    const char *sh = "#!/bin/sh\n"
                     "echo run >> \"$SLM_FAKE_COUNT\"\n"
                     "case \"$(cat \"$1\")\" in *FAIL*) echo \"cannot read $1\" >&2; exit 3;; esac\n"
                     "tr a-z A-Z < \"$1\" > \"$2\"\n"
                     "case \"$3\" in name) echo \"from $1\" >> \"$2\";; esac\n"
                     "echo \"wrote $2 from $1\"\n"
                     "echo \"to stderr: $1\" >&2\n";
    cr_assert_eq(tu_write_file(tool, sh, strlen(sh)), 0);
    cr_assert_eq(chmod(tool, 0755), 0);
    snprintf(real_bin, sizeof real_bin, "%s", getenv("SLM_LLAMA_BIN") ? getenv("SLM_LLAMA_BIN") : "");
    setenv("SLM_LLAMA_BIN", bin, 1);
    setenv("SLM_FAKE_COUNT", count, 1);
    setenv("SLM_ORACLE_CACHE", cache, 1);
}

static void teardown(void)
{
    tu_rmtree(root);
    free(root), free(bin), free(tool), free(count), free(cache);
}

TestSuite(oraclecache, .init = setup, .fini = teardown);

static int runs(void)
{
    char *s = tu_read_file(count, NULL);
    int n = tu_count_lines(s);
    free(s);
    return n;
}

/* a scratch dir <root>/<name> holding in.txt = text; returns the dir */
static char *case_dir(const char *name, const char *text)
{
    char *d = tu_path(root, name);
    mkdir(d, 0755);
    char *in = tu_path(d, "in.txt");
    cr_assert_eq(tu_write_file(in, text, strlen(text)), 0);
    free(in);
    return d;
}

/* run the tool on <dir>/in.txt -> <dir>/out.txt (extra: a literal argument or NULL); the exit
 * status, stdout in *o (the caller frees) */
static int fake(const char *dir, const char *extra, char **o, char **e)
{
    char *in = tu_path(dir, "in.txt"), *out = tu_path(dir, "out.txt");
    const char *argv[] = {tool, in, out, extra, NULL};
    int rc = tu_run(o, e, argv);
    free(in), free(out);
    return rc;
}

static void expect_out(const char *dir, const char *want_file, const char *want_stdout, const char *o)
{
    char *out = tu_path(dir, "out.txt"), *in = tu_path(dir, "in.txt");
    char *got = tu_read_file(out, NULL);
    cr_assert_not_null(got, "%s not written", out);
    cr_assert_str_eq(got, want_file);
    char line[9000];
    snprintf(line, sizeof line, "wrote %s from %s\n%s", out, in, want_stdout ? want_stdout : "");
    cr_assert_str_eq(o, line, "stdout %s, want %s", o, line);
    free(got), free(out), free(in);
}

static int log_count(const char *what)
{
    char *p = tu_path(cache, "log"), *s = tu_read_file(p, NULL);
    int n = 0;
    size_t l = strlen(what);
    for (const char *c = s; c && *c; c = strchr(c, '\n') ? strchr(c, '\n') + 1 : c + strlen(c))
        n += !strncmp(c, what, l) && c[l] == ' ';
    free(p), free(s);
    return n;
}

Test(oraclecache, hit_gives_back_texts_and_files_at_the_callers_paths)
{
    char *a = case_dir("a", "hello"), *b = case_dir("b", "hello"), *o = NULL, *e = NULL;
    cr_assert_eq(fake(a, NULL, &o, &e), 0, "%s", e);
    expect_out(a, "HELLO", NULL, o);
    cr_assert_eq(runs(), 1);
    free(o), free(e);
    /* the same bytes in another directory (another test, as the ASan suite's): answered from the
     * cache, with b's paths */
    oracle_cache_forget();
    cr_assert_eq(fake(b, NULL, &o, &e), 0, "%s", e);
    cr_assert_eq(runs(), 1, "the oracle ran again on the same bytes");
    expect_out(b, "HELLO", NULL, o);
    char want[9000];
    snprintf(want, sizeof want, "to stderr: %s/in.txt\n", b);
    cr_assert_str_eq(e, want);
    cr_assert_eq(log_count("miss"), 1);
    cr_assert_eq(log_count("hit"), 1);
    free(o), free(e), free(a), free(b);
}

Test(oraclecache, perturbed_input_misses)
{
    char *a = case_dir("a", "hello world"), *o = NULL, *e = NULL;
    cr_assert_eq(fake(a, NULL, &o, &e), 0, "%s", e);
    free(o), free(e);
    /* one byte changed, same size, same path; asked by another test process (so a repeat within
     * one test, which always runs, does not hide a key that ignores the bytes) */
    char *in = tu_path(a, "in.txt"), *out = tu_path(a, "out.txt");
    cr_assert_eq(tu_write_file(in, "hello wprld", 11), 0);
    cr_assert_eq(unlink(out), 0);
    free(out);
    oracle_cache_forget();
    cr_assert_eq(fake(a, NULL, &o, &e), 0, "%s", e);
    cr_assert_eq(runs(), 2, "a perturbed input was answered from the cache");
    expect_out(a, "HELLO WPRLD", NULL, o);
    cr_assert_eq(log_count("miss"), 2);
    cr_assert_eq(log_count("hit"), 0);
    free(o), free(e), free(in), free(a);
}

Test(oraclecache, changed_argument_or_program_misses)
{
    char *a = case_dir("a", "hello"), *o = NULL, *e = NULL;
    char *out = tu_path(a, "out.txt");
    cr_assert_eq(fake(a, "x", &o, &e), 0, "%s", e);
    free(o), free(e);
    /* each run below as from another test process, on the same files */
    oracle_cache_forget();
    unlink(out);
    cr_assert_eq(fake(a, "y", &o, &e), 0, "%s", e);
    cr_assert_eq(runs(), 2, "another literal argument was answered from the cache");
    free(o), free(e);
    /* the program rebuilt (other size and mtime) */
    FILE *f = fopen(tool, "a");
    cr_assert_not_null(f);
    fputs("# rebuilt\n", f);
    fclose(f);
    oracle_cache_forget();
    unlink(out);
    cr_assert_eq(fake(a, "y", &o, &e), 0, "%s", e);
    cr_assert_eq(runs(), 3, "a changed program was answered from the cache");
    free(o), free(e);
    /* the environment llama.cpp reads */
    setenv("LLAMA_ARG_THREADS", "1", 1);
    oracle_cache_forget();
    unlink(out);
    cr_assert_eq(fake(a, "y", &o, &e), 0, "%s", e);
    cr_assert_eq(runs(), 4, "a changed LLAMA_ variable was answered from the cache");
    cr_assert_eq(log_count("miss"), 4);
    cr_assert_eq(log_count("again") + log_count("hit"), 0);
    free(o), free(e), free(a), free(out);
}

Test(oraclecache, repeat_within_a_test_runs_again_and_replaces_the_answer)
{
    /* a test retrying a flaky oracle must get a new run, not the stored (bad) answer again */
    char *a = case_dir("a", "first"), *o = NULL, *e = NULL;
    cr_assert_eq(fake(a, NULL, &o, &e), 0, "%s", e);
    free(o), free(e);
    /* the oracle now answers otherwise for the same bytes (a stand-in for a lost line) */
    FILE *f = fopen(tool, "r+");
    cr_assert_not_null(f);
    char *sh = tu_read_file(tool, NULL);
    fclose(f);
    char *at = strstr(sh, "tr a-z A-Z");
    cr_assert_not_null(at);
    memcpy(at, "tr a-y B-Z", 10); /* same size; the test keeps the mtime, as a flaky run would */
    struct stat st;
    cr_assert_eq(stat(tool, &st), 0);
    cr_assert_eq(tu_write_file(tool, sh, strlen(sh)), 0);
    struct timespec ts[2] = {st.st_atim, st.st_mtim};
    cr_assert_eq(utimensat(AT_FDCWD, tool, ts, 0), 0);
    free(sh);
    char *out = tu_path(a, "out.txt"); /* the same command on the same files */
    cr_assert_eq(unlink(out), 0);
    free(out);
    cr_assert_eq(fake(a, NULL, &o, &e), 0, "%s", e);
    cr_assert_eq(runs(), 2, "a repeated command was answered from the cache");
    expect_out(a, "GJSTU", NULL, o);
    cr_assert_eq(log_count("again"), 1);
    free(o), free(e);
    /* the next test process gets the newer answer */
    oracle_cache_forget();
    char *b = case_dir("b", "first");
    cr_assert_eq(fake(b, NULL, &o, &e), 0, "%s", e);
    cr_assert_eq(runs(), 2);
    expect_out(b, "GJSTU", NULL, o);
    free(o), free(e), free(a), free(b);
}

Test(oraclecache, paths_inside_a_written_file_are_the_callers)
{
    /* the tool writes its input's path into the output (as llama-quantize the imatrix file's) */
    char *a = case_dir("a", "abc"), *b = case_dir("b", "abc"), *o = NULL, *e = NULL;
    cr_assert_eq(fake(a, "name", &o, &e), 0, "%s", e);
    free(o), free(e);
    oracle_cache_forget();
    cr_assert_eq(fake(b, "name", &o, &e), 0, "%s", e);
    cr_assert_eq(runs(), 1);
    char want[9000];
    snprintf(want, sizeof want, "ABCfrom %s/in.txt\n", b);
    char *ob = tu_path(b, "out.txt"), *got = tu_read_file(ob, NULL);
    cr_assert_str_eq(got, want, "the replayed file names the first run's input");
    free(got), free(o), free(e);
    /* a path of another length cannot be put in place: the oracle runs */
    char *c = tu_path(root, "longer-name"), *in = tu_path(c, "in.txt"), *oc = tu_path(c, "out.txt");
    mkdir(c, 0755);
    cr_assert_eq(tu_write_file(in, "abc", 3), 0);
    oracle_cache_forget();
    const char *argv[] = {tool, in, oc, "name", NULL};
    cr_assert_eq(tu_run(&o, &e, argv), 0, "%s", e);
    cr_assert_eq(runs(), 2, "a file naming a path of another length was replayed");
    snprintf(want, sizeof want, "ABCfrom %s\n", in);
    got = tu_read_file(oc, NULL);
    cr_assert_str_eq(got, want);
    free(got), free(o), free(e), free(a), free(b), free(c), free(in), free(oc), free(ob);
}

Test(oraclecache, rewritten_file_is_given_back)
{
    /* the output path exists before the run (a loop reusing one name): the new bytes come back */
    char *a = case_dir("a", "abc"), *b = case_dir("b", "abc"), *o = NULL, *e = NULL;
    char *oa = tu_path(a, "out.txt"), *ob = tu_path(b, "out.txt");
    cr_assert_eq(tu_write_file(oa, "old", 3), 0);
    cr_assert_eq(tu_write_file(ob, "old", 3), 0);
    cr_assert_eq(fake(a, NULL, &o, &e), 0, "%s", e);
    free(o), free(e);
    oracle_cache_forget();
    cr_assert_eq(fake(b, NULL, &o, &e), 0, "%s", e);
    cr_assert_eq(runs(), 1);
    expect_out(b, "ABC", NULL, o);
    free(o), free(e), free(a), free(b), free(oa), free(ob);
}

Test(oraclecache, failures_directories_and_no_cache_always_run)
{
    char *a = case_dir("a", "FAIL"), *o = NULL, *e = NULL;
    cr_assert_eq(fake(a, NULL, &o, &e), 3);
    free(o), free(e);
    cr_assert_eq(fake(a, NULL, &o, &e), 3);
    cr_assert_eq(runs(), 2, "a failed run was stored");
    cr_assert_eq(log_count("fail"), 2);
    free(o), free(e);
    /* a directory argument: its contents are not in the key */
    char *b = case_dir("b", "dir");
    const char *argv[] = {tool, b, "/dev/null", NULL};
    tu_run(&o, &e, argv);
    free(o), free(e);
    tu_run(&o, &e, argv);
    free(o), free(e);
    cr_assert_eq(runs(), 4, "a run with a directory argument was answered from the cache");
    /* without $SLM_ORACLE_CACHE nothing is cached */
    unsetenv("SLM_ORACLE_CACHE");
    char *c = case_dir("c", "plain");
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(fake(c, NULL, &o, &e), 0, "%s", e);
        expect_out(c, "PLAIN", NULL, o);
        free(o), free(e);
    }
    cr_assert_eq(runs(), 6);
    free(a), free(b), free(c);
}

/* the real llama-quantize: the second run (another directory) is a hit and gives the same bytes */
Test(oraclecache, llama_quantize_answer_replayed, .timeout = 120)
{
    setenv("SLM_LLAMA_BIN", real_bin, 1);
    const char *lq = oracle_llama_tool("llama-quantize");
    if (!lq)
        return;
    char lqp[4096];
    snprintf(lqp, sizeof lqp, "%s", lq);
    char *a = case_dir("a", ""), *b = case_dir("b", ""), *o = NULL, *e = NULL;
    char *qa = tu_path(a, "q8.gguf"), *qb = tu_path(b, "q8.gguf");
    const char *m = tu_model("gguf/stories260K.gguf");
    const char *arga[] = {lqp, m, qa, "Q8_0", "1", NULL}, *argb[] = {lqp, m, qb, "Q8_0", "1", NULL};
    cr_assert_eq(tu_run(&o, &e, arga), 0, "%s", e);
    free(o), free(e);
    oracle_cache_forget();
    cr_assert_eq(tu_run(&o, &e, argb), 0, "%s", e);
    cr_assert(strstr(o, qb) || strstr(e, qb), "llama-quantize's texts do not name %s: %s", qb, e);
    free(o), free(e);
    cr_assert_eq(log_count("miss"), 1);
    cr_assert_eq(log_count("hit"), 1);
    size_t na = 0, nb = 0;
    char *da = tu_read_file(qa, &na), *db = tu_read_file(qb, &nb);
    cr_assert(da && db && na == nb && na > 1000 && !memcmp(da, db, na), "the replayed file differs (%zu, %zu bytes)",
              na, nb);
    /* and an uncached run writes the same bytes */
    unsetenv("SLM_ORACLE_CACHE");
    cr_assert_eq(tu_run(&o, &e, arga), 0, "%s", e);
    free(o), free(e), free(da);
    da = tu_read_file(qa, &na);
    cr_assert(da && na == nb && !memcmp(da, db, na), "llama-quantize is not deterministic here");
    free(da), free(db), free(qa), free(qb), free(a), free(b);
}
