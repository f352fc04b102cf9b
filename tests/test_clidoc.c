/* tests/test_clidoc.c — suite "clidoc": what the option tables (tools/opt.h) drive besides the
 * parser: one-line usage errors with exit 2 for every kind of bad value, the getopt_long forms
 * (--name=value, abbreviations, -xVALUE, operands anywhere, --), man pages that man -l renders
 * without a warning and that document every option of --help, bash completion (compgen) that lists
 * every command and each option of a command, and a zsh script that zsh -n accepts. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* The command names `slm --help` lists (NULL-terminated, malloc'd). */
static char **commands(int *n_out)
{
    char *o = NULL;
    const char *a[] = {"--help", NULL};
    cr_assert_eq(tu_run_slm(&o, NULL, a), 0);
    char **names = calloc(64, sizeof *names);
    int n = 0;
    char *cmds = strstr(o, "Commands:");
    cr_assert_not_null(cmds);
    for (char *line = strchr(cmds, '\n'); line && line[1] == ' ' && n < 63; line = strchr(line + 1, '\n')) {
        char name[32];
        if (sscanf(line + 1, " %31s", name) != 1)
            break;
        names[n++] = strdup(name);
    }
    free(o);
    *n_out = n;
    return names;
}

static void free_names(char **names)
{
    for (char **p = names; *p; p++)
        free(*p);
    free(names);
}

/* The long options of a --help's option rows ("  -o, --output FILE ...", "      --json ..."), once
 * each, in order (NULL-terminated, malloc'd). */
static char **long_options(const char *text)
{
    char **opts = calloc(256, sizeof *opts);
    int n = 0;
    for (const char *line = text; line && *line && n < 255; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        const char *p = line;
        if (*p != ' ')
            continue;
        while (*p == ' ')
            p++;
        if (p[0] == '-' && isalnum((unsigned char)p[1]) && p[2] == ',' && p[3] == ' ')
            p += 4;
        if (strncmp(p, "--", 2) || !isalnum((unsigned char)p[2]))
            continue;
        size_t l = 2;
        while (isalnum((unsigned char)p[l]) || p[l] == '-')
            l++;
        char *o = strndup(p, l);
        int dup = 0;
        for (int i = 0; i < n; i++)
            dup |= !strcmp(opts[i], o);
        if (dup)
            free(o);
        else
            opts[n++] = o;
    }
    return opts;
}

/* slm ARGS must fail with exit 2 and exactly the usage error `want` plus the --help hint. */
static void usage_error(const char *const *args, const char *want)
{
    char *e = NULL;
    int rc = tu_run_slm(NULL, &e, args);
    cr_assert_eq(rc, 2, "slm %s: exit %d: %s", args[0], rc, e ? e : "");
    cr_assert(e && strstr(e, want), "slm %s: '%s' not in: %s", args[0], want, e ? e : "");
    cr_assert_eq(tu_count_lines(e), 2, "one error line and the hint: %s", e);
    cr_assert(strstr(e, "Try 'slm "), "%s", e);
    free(e);
}

Test(clidoc, usage_errors_are_one_line_with_exit_2)
{
    usage_error((const char *[]){"quantize", "--threads", "x", "a.gguf", "b.gguf", "Q4_0", NULL},
                "slm quantize: usage error: --threads wants an integer 1..1024, got 'x'");
    usage_error((const char *[]){"quantize", "-t0", "a.gguf", "b.gguf", "Q4_0", NULL},
                "--threads wants an integer 1..1024, got '0'");
    usage_error((const char *[]){"convert", "dir", "-o", "x.gguf", "--outtype=q9", NULL},
                "--outtype wants one of f32, f16, bf16, q8_0, got 'q9'");
    usage_error((const char *[]){"convert", "dir", "--out", "x.gguf", NULL}, "option '--out' is ambiguous");
    usage_error((const char *[]){"inspect", "--json=yes", "f.gguf", NULL}, "option '--json' takes no value");
    usage_error((const char *[]){"run", "-m", NULL}, "option '-m' needs a value");
    usage_error((const char *[]){"keygen", "--bogus", NULL}, "unknown option '--bogus'");
    usage_error((const char *[]){"run", "-m", "x.gguf", "--top-p", "0", NULL}, "--top-p wants a number in (0, 1], got '0'");
    usage_error((const char *[]){"run", "-m", "x.gguf", "--temp", "-1", NULL}, "--temp wants a number >= 0, got '-1'");
    usage_error((const char *[]){"run", "-m", "x.gguf", "--seed", "-3", NULL}, "--seed wants a non-negative integer, got '-3'");
    usage_error((const char *[]){"serve", "-m", "x.gguf", "--port", "70000", NULL}, "--port wants an integer 0..65535, got '70000'");
    usage_error((const char *[]){"serve", "-m", "x.gguf", "--fallback", "ftp://h", NULL},
                "--fallback wants an http:// or https:// URL, got 'ftp://h'");
    usage_error((const char *[]){"bench", "synth", "--shape", "smollm-135m", "-o", "d", "--dtype", "f8", NULL},
                "--dtype wants one of f32, f16, bf16, got 'f8'");
    usage_error((const char *[]){"bench", "-m", "x.gguf", "-pg", "7", NULL}, "-pg: '7' is not P,N");
    usage_error((const char *[]){"pull", "h/r:t", "-o", "f", "--retries", "101", NULL}, "--retries wants 0..100, got '101'");
    usage_error((const char *[]){"trust", "init", "-o", "r.json", "--expires", "soon", NULL}, "--expires wants a duration");
    usage_error((const char *[]){"chat", "-m", "x.gguf", "--no-such", NULL}, "unknown option '--no-such'");
}

/* The getopt_long forms the old parsers accepted still parse the same. */
Test(clidoc, option_forms)
{
    const char *model = tu_model("gguf/stories260K.gguf");
    char eqm[1024], gluedm[1024];
    snprintf(eqm, sizeof eqm, "--model=%s", model);
    snprintf(gluedm, sizeof gluedm, "-m%s", model);
    const char *forms[][8] = {
        {"tokenize", "-m", model, "-p", "Once upon a time", "--ids", NULL},
        {"tokenize", eqm, "--prompt=Once upon a time", "--ids", NULL},
        {"tokenize", "--ids", gluedm, "-pOnce upon a time", NULL},
        {"tokenize", "--mod", model, "--pro", "Once upon a time", "--id", NULL}, /* unambiguous prefixes */
    };
    char *first = NULL;
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char *o = NULL, *e = NULL;
        int rc = tu_run_slm(&o, &e, forms[i]);
        cr_assert_eq(rc, 0, "form %zu: exit %d: %s", i, rc, e ? e : "");
        if (!first)
            first = o;
        else {
            cr_assert_str_eq(o, first, "form %zu", i);
            free(o);
        }
        free(e);
    }
    free(first);
    /* operands before, between and after options, and after -- */
    char *o1 = NULL, *o2 = NULL;
    cr_assert_eq(tu_run_slm(&o1, NULL, (const char *[]){"inspect", "--json", model, NULL}), 0);
    cr_assert_eq(tu_run_slm(&o2, NULL, (const char *[]){"inspect", "--json", "--", model, NULL}), 0);
    cr_assert_str_eq(o1, o2);
    free(o2);
    o2 = NULL;
    cr_assert_eq(tu_run_slm(&o2, NULL, (const char *[]){"inspect", model, "--json", NULL}), 0);
    cr_assert_str_eq(o1, o2);
    free(o1);
    free(o2);
    /* after --, a dash word is an operand, not an option */
    char *e = NULL;
    cr_assert_eq(tu_run_slm(NULL, &e, (const char *[]){"inspect", "--", "--json", NULL}), 4, "%s", e);
    cr_assert(strstr(e, "--json: cannot open"), "%s", e);
    free(e);
}

/* slm(1) and slm-CMD(1) for every command: man -l renders each with no warning (groff's -ww
 * through man-db's --warnings), with NAME, SYNOPSIS, OPTIONS and EXIT STATUS, and every long option
 * that `slm CMD --help` names is in the page. */
Test(clidoc, man_pages_render_without_warnings, .timeout = 300)
{
    int n = 0;
    char **names = commands(&n);
    char *dir = tu_tmpdir("man");
    for (int i = -1; i < n; i++) {
        const char *cmd = i < 0 ? NULL : names[i];
        char *page = NULL, *e = NULL;
        const char *a[] = {"help", "--man", cmd, NULL};
        cr_assert_eq(tu_run_slm(&page, &e, a), 0, "slm help --man %s: %s", cmd ? cmd : "", e ? e : "");
        free(e);
        char fname[64];
        snprintf(fname, sizeof fname, "slm%s%s.1", cmd ? "-" : "", cmd ? cmd : "");
        char *path = tu_path(dir, fname);
        cr_assert_eq(tu_write_file(path, page, strlen(page)), 0);
        for (const char *sec = "NAME\0SYNOPSIS\0EXIT STATUS\0"; *sec; sec += strlen(sec) + 1) {
            char want[32];
            snprintf(want, sizeof want, ".SH %s\n", sec);
            cr_assert(strstr(page, want), "%s lacks %s", fname, sec);
        }
        char *out = NULL, *err = NULL;
        const char *man[] = {"sh", "-c", "MANWIDTH=80 man -l --warnings \"$0\"", path, NULL};
        int rc = tu_run(&out, &err, man);
        cr_assert_eq(rc, 0, "man -l %s: exit %d: %s", fname, rc, err ? err : "");
        cr_assert(!err || !*err, "man -l --warnings %s: %s", fname, err);
        cr_assert(out && strlen(out) > 200, "%s renders to nothing", fname);
        if (cmd) {
            cr_assert(strstr(page, ".SH OPTIONS\n"), "%s lacks OPTIONS", fname);
            char *help = NULL;
            const char *h[] = {cmd, "--help", NULL};
            cr_assert_eq(tu_run_slm(&help, NULL, h), 0);
            /* the rendered page, hyphens as typed */
            char **opts = long_options(help);
            for (char **o = opts; *o; o++) {
                char roff[128] = "\\-\\-";
                strncat(roff, *o + 2, sizeof roff - 5);
                char *q = roff + 4;
                for (char *r; (r = strchr(q, '-'));) { /* inner hyphens are \- too */
                    memmove(r + 1, r, strlen(r) + 1);
                    *r = '\\';
                    q = r + 2;
                }
                cr_expect(strstr(page, roff), "%s: %s (from --help) is not in the page", fname, *o);
                free(*o);
            }
            free(opts);
            free(help);
        }
        free(out);
        free(err);
        free(path);
        free(page);
    }
    free_names(names);
    tu_rmtree(dir);
    free(dir);
}

/* `slm completion bash`, sourced into bash: _slm offers every command for the first word, every
 * long option of a command's --help after `slm CMD --`, an option's choices for its value, and a
 * subcommand's words. */
static char *complete_bash(const char *script, const char *words)
{
    char cmdline[2048];
    snprintf(cmdline, sizeof cmdline,
             "source \"$0\" && COMP_WORDS=(%s) && COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) && _slm && "
             "printf '%%s\\n' \"${COMPREPLY[@]}\"",
             words);
    char *out = NULL, *err = NULL;
    const char *a[] = {"bash", "-c", cmdline, script, NULL};
    int rc = tu_run(&out, &err, a);
    cr_assert_eq(rc, 0, "bash: %s: exit %d: %s", words, rc, err ? err : "");
    cr_assert(!err || !*err, "bash: %s: %s", words, err);
    free(err);
    return out;
}

static int has_line(const char *text, const char *line)
{
    size_t l = strlen(line);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, line, l) && (p[l] == '\n' || !p[l]))
            return 1;
    return 0;
}

Test(clidoc, bash_completion, .timeout = 120)
{
    char *dir = tu_tmpdir("bashcomp");
    char *script = tu_path(dir, "slm.bash"), *s = NULL;
    cr_assert_eq(tu_run_slm(&s, NULL, (const char *[]){"completion", "bash", NULL}), 0);
    cr_assert_eq(tu_write_file(script, s, strlen(s)), 0);
    free(s);
    int n = 0;
    char **names = commands(&n);
    char *first = complete_bash(script, "slm ''");
    for (int i = 0; i < n; i++)
        cr_expect(has_line(first, names[i]), "'slm <TAB>' does not offer %s:\n%s", names[i], first);
    free(first);
    char *q = complete_bash(script, "slm qu");
    cr_assert_str_eq(q, "quantize\n");
    free(q);
    /* every command: each long option of its --help after `slm CMD --` */
    for (int i = 0; i < n; i++) {
        char words[128], *help = NULL;
        snprintf(words, sizeof words, "slm %s --", names[i]);
        char *got = complete_bash(script, words);
        cr_assert_eq(tu_run_slm(&help, NULL, (const char *[]){names[i], "--help", NULL}), 0);
        char **opts = long_options(help);
        for (char **o = opts; *o; o++) {
            cr_expect(has_line(got, *o), "'slm %s --<TAB>' does not offer %s", names[i], *o);
            free(*o);
        }
        free(opts);
        free(help);
        free(got);
    }
    /* values: an enum's choices, a subcommand's words */
    char *v = complete_bash(script, "slm convert --outtype ''");
    cr_assert_str_eq(v, "f32\nf16\nbf16\nq8_0\n");
    free(v);
    v = complete_bash(script, "slm trust ''");
    cr_assert_str_eq(v, "init\nrotate\nverify\nshow\n");
    free(v);
    v = complete_bash(script, "slm help inst");
    cr_assert_str_eq(v, "install\n");
    free(v);
    free_names(names);
    free(script);
    tu_rmtree(dir);
    free(dir);
}

/* `slm completion zsh`: zsh -n parses it; it names every command and has an arm for each. */
Test(clidoc, zsh_completion, .timeout = 60)
{
    char *dir = tu_tmpdir("zshcomp");
    char *script = tu_path(dir, "_slm"), *s = NULL;
    cr_assert_eq(tu_run_slm(&s, NULL, (const char *[]){"completion", "zsh", NULL}), 0);
    cr_assert_eq(tu_write_file(script, s, strlen(s)), 0);
    cr_assert(!strncmp(s, "#compdef slm\n", 13));
    int n = 0;
    char **names = commands(&n);
    for (int i = 0; i < n; i++) {
        char arm[64], entry[64];
        snprintf(arm, sizeof arm, "\n    %s)\n", names[i]);
        snprintf(entry, sizeof entry, "'%s:", names[i]);
        cr_expect(strstr(s, arm) && strstr(s, entry), "no zsh entry for %s", names[i]);
    }
    char *err = NULL;
    int rc = tu_run(NULL, &err, (const char *[]){"zsh", "-n", script, NULL});
    cr_assert_eq(rc, 0, "zsh -n: exit %d: %s (is zsh installed? make deps)", rc, err ? err : "");
    cr_assert(!err || !*err, "zsh -n: %s", err);
    free(err);
    free_names(names);
    free(s);
    free(script);
    tu_rmtree(dir);
    free(dir);
    cr_assert_eq(tu_run_slm(NULL, NULL, (const char *[]){"completion", "fish", NULL}), 2);
}
