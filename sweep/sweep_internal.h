/* sweep/sweep_internal.h — what the files of sweep/ share (not part of the face). */
#ifndef SLM_SWEEP_INTERNAL_H
#define SLM_SWEEP_INTERNAL_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "sweep.h"

/* SHA-256 of bytes as 64 hex digits (+ NUL); 0 on success. */
int sw_sha256_hex(const void *data, size_t n, char hex[65]);
/* SHA-256 of a file's bytes, streamed. */
int sw_sha256_file(const char *path, char hex[65], slm_err *err);
/* a/b into a malloc'd string */
char *sw_join(const char *a, const char *b);
/* The artifact and key names of the plan (paths relative to PLAN_DIR, into buf). */
void sw_base_gguf(const sweep_plan *p, int m, char *buf, size_t cap);
void sw_base_kld(const sweep_plan *p, int m, const char *ext, char *buf, size_t cap);
void sw_imatrix(const sweep_plan *p, int m, int c, char *buf, size_t cap);
void sw_quantized(const sweep_plan *p, int m, int c, const char *type, char *buf, size_t cap);
/* Read and parse a JSON file (at most cap bytes); NULL with err set. */
cJSON *sw_read_json(const char *path, size_t cap, slm_err *err);
/* Write bytes to path atomically (temp + fsync + rename + dir fsync). */
int sw_write_atomic(const char *path, const char *data, size_t n, slm_err *err);
/* A result file checked against the plan and task i: SLM_OK, or SLM_EINPUT naming the file. */
int sw_check_result(const sweep_plan *p, int i, const char *plan_dir, const char *path, cJSON **row, slm_err *err);

#endif
