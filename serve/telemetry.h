/* serve/telemetry.h — opt-in telemetry: off unless the user turns it on (`slm telemetry on`),
 * SLM_TELEMETRY=0 overrides everything. What is kept: counters and histograms only (a fixed
 * set of numeric fields, fixed words, a day-level date, a random install id, the model's
 * SHA-256) in a JSONL spool the user can read; never a prompt, an output or any free text.
 * Export: /metrics (pull) and an optional OTLP/HTTP JSON push. Never prints, never exits. */
#ifndef SLM_SERVE_TELEMETRY_H
#define SLM_SERVE_TELEMETRY_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

enum { TEL_OFF = 0, TEL_ERROR = 1, TEL_ALL = 2 };

typedef struct tel_cfg {
    int level;              /* TEL_* as configured */
    char install_id[33];    /* 32 hex digits, "" before the first `on` */
    char endpoint[512];     /* OTLP/HTTP base URL ("" = no push) */
} tel_cfg;

/* The directory: $SLM_TELEMETRY_DIR, else $XDG_STATE_HOME/slmkit, else ~/.local/state/slmkit. */
int tel_dir(char *buf, size_t cap);
/* 1 when SLM_TELEMETRY=0 (or "off") forbids all telemetry. */
int tel_env_forbids(void);
/* <dir>/telemetry.json; absent: off with no id (nothing is created). */
int tel_load(const char *dir, tel_cfg *out, slm_err *err) SLM_MUST_CHECK;
int tel_save(const char *dir, const tel_cfg *c, slm_err *err) SLM_MUST_CHECK; /* atomic, creates dir */
int tel_new_id(char out[33], slm_err *err) SLM_MUST_CHECK;                    /* OpenSSL RAND_bytes */
/* The level in effect: the configured one unless the environment forbids it. */
int tel_effective(const tel_cfg *c);
const char *tel_level_name(int level);
int tel_level_parse(const char *s); /* -1 if unknown */
/* <dir>/telemetry.jsonl */
void tel_spool_path(const char *dir, char *buf, size_t cap);

/* What one server run hands to telemetry: numbers and fixed words only. */
#define TEL_N_BUCKETS 12
typedef struct tel_snapshot {
    double requests, errors, health_checks, prompt_tokens, generated_tokens;
    double prefill_tokens, prefill_seconds, decode_tokens, decode_seconds;
    double fb_context, fb_memory, fb_low_confidence, fb_upstream_failed;
    double ttft_le[TEL_N_BUCKETS], ttft_counts[TEL_N_BUCKETS], ttft_sum, ttft_count;
    char model_digest[65];  /* hex SHA-256 of the model file, or "" */
    char arch[16];          /* a known architecture name or "other" */
    char quant[16];         /* a known file type name or "other" */
} tel_snapshot;

/* One JSONL record (malloc'd, no newline) at the given level (error: error counters only). */
char *tel_record(const tel_snapshot *s, const tel_cfg *c, int level);
/* Append a line to the spool (creates it). */
int tel_spool_append(const char *dir, const char *line, slm_err *err) SLM_MUST_CHECK;
/* What one `slm install` / `slm update` / `slm install --revert` hands to telemetry:
 * counters of this run and fixed words (docs/serve.md, "Installs and rollbacks"). */
typedef struct tel_install_event {
    int installs;             /* 1: a bundle was committed */
    int health_pass, health_fail;
    int rollback_revert;      /* 1: install --revert */
    int rollback_supersedes;  /* 1: the committed bundle supersedes a release (fleet rollback) */
    char model_digest[65];    /* hex SHA-256 of the model, or "" */
    char quant[16];           /* a recipe name or "other" */
} tel_install_event;
/* One JSONL record, source "install" (malloc'd). Level error: only the failure
 * counter (NULL when there is none to report). */
char *tel_install_record(const tel_install_event *e, const tel_cfg *c, int level);

/* OTLP/HTTP JSON (ExportMetricsServiceRequest) of spool records (JSONL text). malloc'd. */
char *tel_otlp(const char *jsonl, size_t n, const tel_cfg *c);
/* POST an OTLP body to <endpoint>/v1/metrics: 2 s to connect, 5 s in all. */
int tel_push(const char *endpoint, const char *body, slm_err *err) SLM_MUST_CHECK;
/* Hex SHA-256 of a file (streamed). */
int tel_file_digest(const char *path, char out[65], slm_err *err) SLM_MUST_CHECK;

#endif
