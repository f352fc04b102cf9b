/* tools/cli.h — what every subcommand shares: the dispatch table entry,
 * error printing, a terminal progress bar and small flag parsers. */
#ifndef SLM_CLI_H
#define SLM_CLI_H

#include <stdint.h>
#include <stdio.h>
#include "formats.h"

typedef struct slm_cmd {
    const char *name;
    int (*fn)(int argc, char **argv);   /* argv[0] is the subcommand name */
    const char *summary;                /* one line for `slm --help` */
    const char *help;                   /* full text for `slm help CMD` / `slm CMD --help` */
} slm_cmd;

const slm_cmd *cli_find(const char *name);
void cli_print_help(const slm_cmd *c, FILE *out);
/* True when argv holds -h/--help: prints the help to stdout. */
int cli_wants_help(const slm_cmd *c, int argc, char **argv);

/* Print "slm CMD: error: MSG" on stderr and return code (for `return cli_fail(...)`). */
int cli_fail(const char *cmd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int cli_fail_err(const char *cmd, const slm_err *e);
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_warn(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse helpers: 0 on success. */
int cli_parse_int(const char *s, long long lo, long long hi, long long *out);
int cli_parse_double(const char *s, double *out);
/* Default thread count: physical cores (falls back to online CPUs). */
int cli_default_threads(void);

/* Progress bar on stderr, drawn only when stderr is a terminal. */
typedef struct cli_progress {
    int on;
    const char *label;
    uint64_t total, last_drawn;
    double t0;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *label, uint64_t total);
void cli_progress_update(cli_progress *p, uint64_t done);
void cli_progress_end(cli_progress *p);
/* The same as a pipeline's progress callback (user: a cli_progress whose label is set):
 * phase 0 starts with total v, 1 updates to v done, 2 ends. */
void cli_progress_phase(void *user, int phase, uint64_t v);

/* Read a whole text file (NUL-terminated, malloc'd). Refuses what is not a
 * regular file (a FIFO would block) and files over max bytes; on failure
 * returns NULL with a one-line message naming the file. */
char *cli_read_file(const char *path, size_t max, size_t *len, slm_err *err);

/* The model options that run, chat and serve share: -m FILE, --bundle B --trust ROOT...,
 * --store DIR. cli_model_path gives the GGUF to load: FILE itself, or, for a bundle or a
 * store, the verified model in sealed memory (buf receives "/proc/self/fd/N"; the fd stays
 * open for the process's life): what is mapped is exactly what was hashed. */
typedef struct cli_model_opts {
    const char *model, *bundle, *store;
    const char *trust[16];
    int n_trust;
} cli_model_opts;
enum { CLI_OPT_BUNDLE = 920, CLI_OPT_TRUST, CLI_OPT_STORE };
#define CLI_MODEL_LONGOPTS                                                                                      \
    {"model", 1, 0, 'm'}, {"bundle", 1, 0, CLI_OPT_BUNDLE}, {"trust", 1, 0, CLI_OPT_TRUST},                    \
        {"store", 1, 0, CLI_OPT_STORE}
/* 1 when opt is a model option ('m' or CLI_OPT_*; stored in o), 0 when it is not, or a usage
 * error's status (message printed). */
int cli_model_opt(const char *cmd, int opt, const char *arg, cli_model_opts *o);
/* Usage errors (none or two models, --trust without --bundle): SLM_EUSAGE with the message. */
int cli_model_check(const cli_model_opts *o, slm_err *err);
/* cli_model_path's fd (-1 for a plain file), for a caller that replaces the model later. */
int cli_model_fd(const char *path);
int cli_model_path(const cli_model_opts *o, char *buf, size_t cap, const char **path, slm_err *err);

/* Sampling options shared by run and chat: --temp, --top-k, --top-p, --min-p,
 * --repeat-penalty, --repeat-last-n, --seed (option ids CLI_OPT_SAMPLER_FIRST..LAST). */
enum { CLI_OPT_TEMP = 900, CLI_OPT_TOPK, CLI_OPT_TOPP, CLI_OPT_MINP, CLI_OPT_REP, CLI_OPT_REPN, CLI_OPT_SEED };
#define CLI_SAMPLER_LONGOPTS                                                                                    \
    {"temp", 1, 0, CLI_OPT_TEMP}, {"top-k", 1, 0, CLI_OPT_TOPK}, {"top-p", 1, 0, CLI_OPT_TOPP},                \
        {"min-p", 1, 0, CLI_OPT_MINP}, {"repeat-penalty", 1, 0, CLI_OPT_REP},                                   \
        {"repeat-last-n", 1, 0, CLI_OPT_REPN}, {"seed", 1, 0, CLI_OPT_SEED}
#define CLI_SAMPLER_HELP                                                                                        \
    "      --temp T            temperature; 0 = greedy (default 0.8)\n"                                         \
    "      --top-k K           keep the K most likely tokens; 0 = off (default 40)\n"                           \
    "      --top-p P           nucleus sampling; 1 = off (default 0.95)\n"                                      \
    "      --min-p P           drop tokens below P x the top probability; 0 = off (default 0.05)\n"             \
    "      --repeat-penalty R  penalise the last --repeat-last-n tokens; 1 = off (default 1)\n"                 \
    "      --repeat-last-n N   window of the penalty (default 64)\n"                                            \
    "      --seed S            PRNG seed (default: from the clock; printed in the stats)\n"
/* 1 when opt is a sampler option (parsed into sp; *seed_set when --seed), 0 when it is not,
 * or a usage error's status (message printed). */
int cli_sampler_opt(const char *cmd, int opt, const char *arg, void *sp, int *seed_set);
/* A seed from the clock when none was given. */
uint64_t cli_clock_seed(void);

double cli_now(void);               /* monotonic seconds */
long cli_peak_rss_kb(void);         /* VmHWM of this process */

#endif
