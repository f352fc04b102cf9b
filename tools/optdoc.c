/* tools/optdoc.c — man pages (roff) and shell completion generated from the option tables:
 * `slm help --man [CMD]` and `slm completion bash|zsh` (see opt.h). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "opt.h"

/* ---- roff ---------------------------------------------------------------------------------- */

/* roff-escape one line of text: backslashes, hyphens of options, a leading dot or quote */
static void roff_text(FILE *out, const char *s, size_t n)
{
    if (n && (s[0] == '.' || s[0] == '\''))
        fputs("\\&", out);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\')
            fputs("\\e", out);
        else if (c == '-')
            fputs("\\-", out);
        else
            fputc(c, out);
    }
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i]))
            return 0;
    return 1;
}

/* Paragraphs of help prose: blank lines separate paragraphs; a paragraph with an indented line
 * (a table, a list of values) is kept as it is (no-fill), the others are filled by man. */
static void roff_paragraphs(FILE *out, const char *text)
{
    const char *p = text;
    while (p && *p) {
        /* find the paragraph [p, e) */
        const char *e = p;
        int pre = 0;
        while (*e) {
            const char *nl = strchr(e, '\n');
            size_t l = nl ? (size_t)(nl - e) : strlen(e);
            if (is_blank(e, l))
                break;
            if (e[0] == ' ')
                pre = 1;
            e += l + (nl != NULL);
        }
        if (e > p) {
            fputs(".PP\n", out);
            if (pre)
                fputs(".nf\n", out);
            for (const char *q = p; q < e;) {
                const char *nl = memchr(q, '\n', (size_t)(e - q));
                size_t l = nl ? (size_t)(nl - q) : (size_t)(e - q);
                const char *s = q;
                if (!pre)
                    while (l && *s == ' ')
                        s++, l--;
                roff_text(out, s, l);
                fputc('\n', out);
                q += (size_t)(s - q) + l + (nl != NULL);
            }
            if (pre)
                fputs(".fi\n", out);
        }
        /* skip blank lines */
        while (*e) {
            const char *nl = strchr(e, '\n');
            size_t l = nl ? (size_t)(nl - e) : strlen(e);
            if (!is_blank(e, l))
                break;
            e += l + (nl != NULL);
        }
        p = e;
    }
}

static void roff_upper(FILE *out, const char *s)
{
    for (; *s; s++)
        fputc(*s == '-' ? '-' : toupper((unsigned char)*s), out);
}

static void man_opt(const slm_opt *o, void *ctx)
{
    FILE *out = ctx;
    if (o->kind == SLM_OPT_GROUP) {
        fputs(".SS ", out);
        size_t l = strlen(o->help);
        roff_text(out, o->help, l && o->help[l - 1] == ':' ? l - 1 : l);
        fputc('\n', out);
        return;
    }
    if (o->kind == SLM_OPT_TEXT) {
        roff_paragraphs(out, o->help);
        return;
    }
    fputs(".TP\n", out);
    if (o->name && (o->flags & SLM_OPT_DASH1))
        fprintf(out, "\\fB\\-%s\\fR", o->name);
    else if (o->shrt && o->name)
        fprintf(out, "\\fB\\-%c\\fR, \\fB\\-\\-", o->shrt);
    else if (o->name)
        fputs("\\fB\\-\\-", out);
    else
        fprintf(out, "\\fB\\-%c\\fR", o->shrt);
    if (o->name && !(o->flags & SLM_OPT_DASH1)) {
        roff_text(out, o->name, strlen(o->name));
        fputs("\\fR", out);
    }
    if (o->argname) {
        fputs(" \\fI", out);
        roff_text(out, o->argname, strlen(o->argname));
        fputs("\\fR", out);
    }
    fputc('\n', out);
    /* the help's lines are one filled paragraph */
    for (const char *p = o->help ? o->help : ""; *p;) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        while (l && *p == ' ')
            p++, l--;
        roff_text(out, p, l);
        fputc('\n', out);
        p += l + (nl != NULL);
    }
    if (o->kind == SLM_OPT_ENUM) {
        fputs("One of:", out);
        for (int i = 0; o->choices[i]; i++)
            fprintf(out, "%s \\fB", i ? "," : ""), roff_text(out, o->choices[i], strlen(o->choices[i])),
                fputs("\\fR", out);
        fputs(".\n", out);
    }
}

static void man_synopsis(FILE *out, const char *usage)
{
    fputs(".SH SYNOPSIS\n.nf\n", out);
    for (const char *p = usage; *p;) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        while (l && *p == ' ')
            p++, l--;
        roff_text(out, p, l);
        fputc('\n', out);
        p += l + (nl != NULL);
    }
    fputs(".fi\n", out);
}

static void man_exit(FILE *out, const char *codes)
{
    fputs(".SH EXIT STATUS\n", out);
    /* "0 ok, 2 usage (...), 3 ..." stays one filled paragraph */
    for (const char *p = codes; *p;) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        while (l && *p == ' ')
            p++, l--;
        roff_text(out, p, l);
        fputc('\n', out);
        p += l + (nl != NULL);
    }
}

static void man_header(FILE *out, const char *page, const char *version)
{
    fputs(".\\\" generated by `slm help --man` from the option tables; do not edit\n.TH ", out);
    roff_upper(out, page);
    fprintf(out, " 1 \"\" \"slm %s\" \"slmkit manual\"\n", version);
    fputs(".SH NAME\n", out);
}

int slm_opt_man(FILE *out, const slm_cmd *cmds, size_t n, const char *cmd, const char *version)
{
    if (!cmd) {
        man_header(out, "slm", version);
        fputs("slm \\- Hugging Face checkpoint to GGUF to quantized, measured, signed bundle\n", out);
        fputs(".SH SYNOPSIS\n.nf\n\\fBslm\\fR [\\fB\\-\\-version\\fR] [\\fB\\-\\-help\\fR] \\fIcommand\\fR [\\fIargs\\fR]\n"
              "\\fBslm help\\fR \\fIcommand\\fR\n.fi\n",
              out);
        fputs(".SH DESCRIPTION\n.PP\n\\fBslm\\fR is one binary with git\\-style subcommands: it converts Hugging Face "
              "checkpoints to GGUF, quantizes them with llama.cpp's recipes and calibration, measures perplexity and "
              "speed, signs and installs bundles, and runs or serves the models.\n"
              ".PP\nEach command has its own page, \\fBslm\\-\\fR\\fIcommand\\fR(1), and answers \\fB\\-\\-help\\fR.\n",
              out);
        fputs(".SH COMMANDS\n", out);
        for (size_t i = 0; i < n; i++) {
            fputs(".TP\n\\fBslm\\-", out);
            roff_text(out, cmds[i].name, strlen(cmds[i].name));
            fputs("\\fR(1)\n", out);
            roff_text(out, cmds[i].summary, strlen(cmds[i].summary));
            fputc('\n', out);
        }
        fputs(".SH EXIT STATUS\n", out);
        static const char *const codes[][2] = {
            {"0", "success"},
            {"1", "the command ran and its answer is negative (e.g. a comparison failed)"},
            {"2", "usage error (unknown command or option, missing argument)"},
            {"3", "bad input (malformed, unsupported or inconsistent file)"},
            {"4", "I/O error (cannot read, write, sync or rename; disk full)"},
            {"5", "verification failed (signature, hash, expiry, rollback)"},
            {"6", "internal error (out of memory, bug)"}};
        for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
            fprintf(out, ".TP\n\\fB%s\\fR\n%s\n", codes[i][0], codes[i][1]);
        fputs(".SH ENVIRONMENT\n.TP\n\\fBSLM_KERNEL\\fR\nforce a kernel set (scalar, avx2, avx512, ...); one the CPU "
              "cannot run is a usage error\n.TP\n\\fBSLM_NO_PROGRESS\\fR\nno progress bars even on a terminal\n",
              out);
        return 0;
    }
    const slm_cmd *c = NULL;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(cmds[i].name, cmd))
            c = &cmds[i];
    if (!c || !c->doc)
        return -1;
    const slm_cmd_doc *d = c->doc;
    char page[64];
    snprintf(page, sizeof page, "slm-%s", c->name);
    man_header(out, page, version);
    roff_text(out, page, strlen(page));
    fputs(" \\- ", out);
    roff_text(out, c->summary, strlen(c->summary));
    fputc('\n', out);
    man_synopsis(out, d->usage);
    if (d->description) {
        fputs(".SH DESCRIPTION\n", out);
        roff_paragraphs(out, d->description);
    }
    fputs(".SH OPTIONS\n", out);
    slm_opt_each_all(d->opts, man_opt, out);
    fputs(".TP\n\\fB\\-h\\fR, \\fB\\-\\-help\\fR\nprint the help and exit 0\n", out);
    if (d->notes) {
        fputs(".SH NOTES\n", out);
        roff_paragraphs(out, d->notes);
    }
    man_exit(out, d->exit_codes);
    if (d->examples) {
        fputs(".SH EXAMPLES\n.nf\n", out);
        for (const char *p = d->examples; *p;) {
            const char *nl = strchr(p, '\n');
            size_t l = nl ? (size_t)(nl - p) : strlen(p);
            roff_text(out, p, l);
            fputc('\n', out);
            p += l + (nl != NULL);
        }
        fputs(".fi\n", out);
    }
    fputs(".SH SEE ALSO\n\\fBslm\\fR(1)\n", out);
    return 0;
}

/* ---- shell completion ---------------------------------------------------------------------- */

typedef struct words {
    FILE *out;
    const char *cmd;
    int zsh;
    struct {
        const char *name; /* the rows' strings are static; a row itself may be a copy (OPT_INCLUDE_AS) */
        char shrt;
    } seen[128];          /* a table of several modes (bench) names -t more than once */
    int n_seen;
} words;

/* 1 the first time an option with o's names is visited */
static int first_time(words *w, const slm_opt *o)
{
    for (int i = 0; i < w->n_seen; i++) {
        const char *nm = w->seen[i].name;
        if (w->seen[i].shrt == o->shrt && ((!nm && !o->name) || (nm && o->name && !strcmp(nm, o->name))))
            return 0;
    }
    if (w->n_seen < 128) {
        w->seen[w->n_seen].name = o->name;
        w->seen[w->n_seen++].shrt = o->shrt;
    }
    return 1;
}

static void bash_optword(const slm_opt *o, void *ctx)
{
    words *w = ctx;
    if (!first_time(w, o))
        return;
    if (o->name)
        fprintf(w->out, " %s%s", o->flags & SLM_OPT_DASH1 ? "-" : "--", o->name);
    if (o->shrt)
        fprintf(w->out, " -%c", o->shrt);
}

/* case arm for an option's value: choices, files or directories */
static void bash_valuearm(const slm_opt *o, void *ctx)
{
    words *w = ctx;
    if (o->kind != SLM_OPT_ENUM && o->kind != SLM_OPT_PATH && o->kind != SLM_OPT_DIR)
        return;
    if (!first_time(w, o))
        return;
    fputs("        ", w->out);
    if (o->name)
        fprintf(w->out, "%s:%s%s", w->cmd, o->flags & SLM_OPT_DASH1 ? "-" : "--", o->name);
    if (o->shrt)
        fprintf(w->out, "%s%s:-%c", o->name ? "|" : "", w->cmd, o->shrt);
    fputs(")\n            ", w->out);
    if (o->kind == SLM_OPT_ENUM) {
        fputs("COMPREPLY=($(compgen -W \"", w->out);
        for (int i = 0; o->choices[i]; i++)
            fprintf(w->out, "%s%s", i ? " " : "", o->choices[i]);
        fputs("\" -- \"$cur\"))", w->out);
    } else {
        fprintf(w->out, "COMPREPLY=($(compgen %s -- \"$cur\"))", o->kind == SLM_OPT_DIR ? "-d" : "-f");
    }
    fputs("; return ;;\n", w->out);
}

static void bash(FILE *out, const slm_cmd *cmds, size_t n)
{
    fputs("# bash completion for slm; generated by `slm completion bash` from the option tables.\n"
          "# Install: source it, or copy it to /usr/share/bash-completion/completions/slm.\n"
          "_slm()\n{\n"
          "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
          "    COMPREPLY=()\n"
          "    if [ \"$COMP_CWORD\" -le 1 ]; then\n"
          "        COMPREPLY=($(compgen -W \"",
          out);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s ", cmds[i].name);
    fputs("help --help --version\" -- \"$cur\"))\n        return\n    fi\n"
          "    local cmd=${COMP_WORDS[1]} opts=\"\" subs=\"\"\n"
          "    case \"$cmd\" in\n",
          out);
    for (size_t i = 0; i < n; i++) {
        words w = {.out = out, .cmd = cmds[i].name};
        fprintf(out, "    %s)\n        opts=\"--help -h", cmds[i].name);
        if (cmds[i].doc)
            slm_opt_each(cmds[i].doc->opts, bash_optword, &w);
        fputs("\"", out);
        if (cmds[i].doc && cmds[i].doc->subcommands) {
            fputs("\n        subs=\"", out);
            for (int k = 0; cmds[i].doc->subcommands[k]; k++)
                fprintf(out, "%s%s", k ? " " : "", cmds[i].doc->subcommands[k]);
            fputs("\"", out);
        }
        fputs(" ;;\n", out);
    }
    fputs("    help)\n        COMPREPLY=($(compgen -W \"", out);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s%s", i ? " " : "", cmds[i].name);
    fputs("\" -- \"$cur\"))\n        return ;;\n    *) return ;;\n    esac\n"
          "    case \"$cmd:$prev\" in\n",
          out);
    for (size_t i = 0; i < n; i++) {
        words w = {.out = out, .cmd = cmds[i].name};
        if (cmds[i].doc)
            slm_opt_each(cmds[i].doc->opts, bash_valuearm, &w);
    }
    fputs("    esac\n"
          "    if [[ $cur == -* ]]; then\n"
          "        COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
          "    elif [ \"$COMP_CWORD\" -eq 2 ] && [ -n \"$subs\" ]; then\n"
          "        COMPREPLY=($(compgen -W \"$subs\" -- \"$cur\"))\n"
          "    else\n"
          "        COMPREPLY=($(compgen -f -- \"$cur\"))\n"
          "    fi\n"
          "}\n"
          "complete -o filenames -o bashdefault -F _slm slm\n",
          out);
}

/* zsh: a description inside '...' and [...]: no quotes, brackets or colons */
static void zsh_desc(FILE *out, const char *s)
{
    for (; *s && *s != '\n'; s++) {
        char c = *s;
        if (c == '\'' || c == '"' || c == '`' || c == '$' || c == '\\')
            continue;
        fputc(c == '[' ? '(' : c == ']' ? ')' : c == ':' ? ';' : c, out);
    }
}

static void zsh_word(FILE *out, const char *s)
{
    for (; *s; s++)
        if (isalnum((unsigned char)*s) || strchr("._,-=+/", *s))
            fputc(*s, out);
        else
            fputc('_', out);
}

static void zsh_opt(const slm_opt *o, void *ctx)
{
    words *w = ctx;
    FILE *out = w->out;
    if (!first_time(w, o))
        return;
    int takes = o->kind != SLM_OPT_FLAG && !(o->kind == SLM_OPT_CALLBACK && (o->flags & SLM_OPT_NOARG));
    int rep = o->kind == SLM_OPT_LIST;
    const char *pre = o->flags & SLM_OPT_DASH1 ? "-" : "--";
    fputs(" \\\n        '", out);
    if (rep)
        fputs("*", out);
    if (o->shrt && o->name)
        fprintf(out, "(-%c %s%s)'{-%c,%s%s}'", o->shrt, pre, o->name, o->shrt, pre, o->name);
    else if (o->name)
        fprintf(out, "%s%s", pre, o->name);
    else
        fprintf(out, "-%c", o->shrt);
    fputs("[", out);
    zsh_desc(out, o->help ? o->help : "");
    fputs("]", out);
    if (takes) {
        fputs(":", out);
        zsh_word(out, o->argname ? o->argname : "value");
        fputs(":", out);
        if (o->kind == SLM_OPT_ENUM) {
            fputs("(", out);
            for (int i = 0; o->choices[i]; i++) {
                fputs(i ? " " : "", out);
                zsh_word(out, o->choices[i]);
            }
            fputs(")", out);
        } else if (o->kind == SLM_OPT_PATH)
            fputs("_files", out);
        else if (o->kind == SLM_OPT_DIR)
            fputs("_files -/", out);
        else
            fputs(" ", out);
    }
    fputs("'", out);
}

static void zsh(FILE *out, const slm_cmd *cmds, size_t n)
{
    fputs("#compdef slm\n# zsh completion for slm; generated by `slm completion zsh` from the option tables.\n"
          "# Install: copy it as _slm into a directory of $fpath.\n\n"
          "_slm() {\n"
          "    local -a commands\n"
          "    commands=(\n",
          out);
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "        '%s:", cmds[i].name);
        zsh_desc(out, cmds[i].summary);
        fputs("'\n", out);
    }
    fputs("    )\n"
          "    if (( CURRENT == 2 )); then\n"
          "        _describe -t commands 'slm command' commands\n"
          "        return\n"
          "    fi\n"
          "    local cmd=$words[2]\n"
          "    shift words\n"
          "    (( CURRENT-- ))\n"
          "    case $cmd in\n",
          out);
    for (size_t i = 0; i < n; i++) {
        words w = {.out = out, .cmd = cmds[i].name, .zsh = 1};
        fprintf(out, "    %s)\n        _arguments -s '(- *)'{-h,--help}'[print the help]'", cmds[i].name);
        if (cmds[i].doc)
            slm_opt_each(cmds[i].doc->opts, zsh_opt, &w);
        if (cmds[i].doc && cmds[i].doc->subcommands) {
            fputs(" \\\n        '1:subcommand:(", out);
            for (int k = 0; cmds[i].doc->subcommands[k]; k++) {
                fputs(k ? " " : "", out);
                zsh_word(out, cmds[i].doc->subcommands[k]);
            }
            fputs(")'", out);
        }
        fputs(" \\\n        '*:file:_files'\n        ;;\n", out);
    }
    fputs("    help)\n        _describe -t commands 'slm command' commands\n        ;;\n"
          "    esac\n}\n\n_slm \"$@\"\n",
          out);
}

int slm_opt_completion(FILE *out, const slm_cmd *cmds, size_t n, const char *shell)
{
    if (!strcmp(shell, "bash"))
        bash(out, cmds, n);
    else if (!strcmp(shell, "zsh"))
        zsh(out, cmds, n);
    else
        return -1;
    return 0;
}
