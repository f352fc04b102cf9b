/* tools/cli.h — what every subcommand shares: the dispatch table entry,
 * error printing, a terminal progress bar and small flag parsers. */
#ifndef SLM_CLI_H
#define SLM_CLI_H

#include <stdint.h>
#include <stdio.h>
#include "base.h"
#include "opt.h"

struct slm_cmd {
    const char *name;
    int (*fn)(int argc, char **argv);   /* argv[0] is the subcommand name */
    const char *summary;                /* one line for `slm --help` */
    const slm_cmd_doc *doc;             /* usage, text and option table: --help, man page, completion */
};

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

/* base's slm_read_text_file as a returned buffer (NUL-terminated, malloc'd): refuses
 * what is not a regular file (a FIFO would block) and files over max bytes; on failure
 * returns NULL with a one-line message naming the file. */
char *cli_read_file(const char *path, size_t max, size_t *len, slm_err *err);

/* Shared option groups (opt.h), defined once in cli.c and included by reference:
 * OPT_INCLUDE(cli_model_table, struct my_args, model) where model is a cli_model_opts;
 * cli_sampler_table over a slm_sampler_params; cli_json_table and cli_threads_table over an int
 * (--json; -t/--threads 1..1024). */
extern const slm_opt cli_model_table[], cli_sampler_table[], cli_json_table[], cli_threads_table[];

/* KV cache types of run, perplexity, bench and serve (llama.cpp's spelling): --cache-type-k /
 * -ctk TYPE, --cache-type-v / -ctv TYPE, TYPE one of f32 (default), f16, bf16, q8_0, q4_0
 * (anything else: exit 2). The fields hold the index of the name; cli_cache_type gives the
 * type id (slm_ctx_new_kv). */
typedef struct cli_cache_opts {
    int k, v;
} cli_cache_opts;
extern const slm_opt cli_cache_table[];
uint32_t cli_cache_type(int idx);

/* The cloud-fallback options of run and serve (cli_fallback_table, docs/serve.md): --fallback URL
 * (http/https), --fallback-key-file F, --fallback-confidence P in [0, 1], --fallback-timeout S in
 * (0, 3600] (connect: at most 2 s), --mem-budget BYTES (K/M/G). cli_fallback_defaults first; a
 * command that has --private adds its own row for priv (serve's private requests come per request). */
typedef struct cli_fallback_opts {
    const char *url, *key_file;
    double confidence;             /* low-confidence threshold (0: never) */
    long connect_ms, timeout_ms;
    unsigned long long mem_budget; /* 0: none */
    int priv;                      /* never send anything upstream */
} cli_fallback_opts;
void cli_fallback_defaults(cli_fallback_opts *f);
extern const slm_opt cli_fallback_table[];
/* an OPT_CALLBACK for a lifetime (365d, 12h, 30m, 45s) into an int64_t of seconds */
int cli_opt_duration(const char *cmd, const char *arg, void *field, void *base);
/* "123", "64K", "512M", "2G" -> bytes (not 0); 0 on success */
int cli_parse_bytes(const char *s, uint64_t *out);

/* The model options that run, chat and serve share: -m FILE, --bundle B --trust ROOT...,
 * --store DIR. cli_model_path gives the GGUF to load: FILE itself, or, for a bundle or a
 * store, the verified model in sealed memory (buf receives "/proc/self/fd/N"; the fd stays
 * open for the process's life): what is mapped is exactly what was hashed. */
typedef struct cli_model_opts {
    const char *model, *bundle, *store;
    const char *trust[16];
    int n_trust;
} cli_model_opts;
/* Usage errors (none or two models, --trust without --bundle): SLM_EUSAGE with the message. */
int cli_model_check(const cli_model_opts *o, slm_err *err);
/* cli_model_path's fd (-1 for a plain file), for a caller that replaces the model later. */
int cli_model_fd(const char *path);
int cli_model_path(const cli_model_opts *o, char *buf, size_t cap, const char **path, slm_err *err);

/* A seed from the clock when none was given. */
uint64_t cli_clock_seed(void);

/* Usage errors (--fallback-key-file without --fallback): SLM_EUSAGE with the message. */
int cli_fallback_check(const cli_fallback_opts *f, slm_err *err);
/* The key file's first line (malloc'd) in *key, NULL without a key file; SLM_EIO naming the file. */
int cli_fallback_key(const cli_fallback_opts *f, char **key, slm_err *err);

double cli_now(void);               /* monotonic seconds */
long cli_peak_rss_kb(void);         /* VmHWM of this process */

#endif
