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

/* Read a whole text file (NUL-terminated, malloc'd). Refuses what is not a
 * regular file (a FIFO would block) and files over max bytes; on failure
 * returns NULL with a one-line message naming the file. */
char *cli_read_file(const char *path, size_t max, size_t *len, slm_err *err);

double cli_now(void);               /* monotonic seconds */
long cli_peak_rss_kb(void);         /* VmHWM of this process */

#endif
