/* signing/sg_internal.h — shared inside signing/ only. */
#ifndef SLM_SG_INTERNAL_H
#define SLM_SG_INTERNAL_H

#include "signing.h"

#include <cjson/cJSON.h>

/* Fault hook: called before every durable step. */
typedef struct sg_fault {
    slm_fault_fn fn;
    void *user;
} sg_fault;
void sg_step(const sg_fault *f, const char *what);

/* Streaming atomic file: "<dir>/.<name>.tmp.XXXXXX", then fsync, rename, fsync dir. */
typedef struct sg_afile {
    int fd;
    char *path, *tmp;
    const sg_fault *fault;
    int wrote;
} sg_afile;
int sg_afile_open(sg_afile *f, const char *path, int mode, const sg_fault *fault, slm_err *err);
int sg_afile_write(sg_afile *f, const void *p, size_t n, slm_err *err);
int sg_afile_commit(sg_afile *f, slm_err *err);
void sg_afile_abort(sg_afile *f);
int sg_write_atomic(const char *path, const void *p, size_t n, int mode, const sg_fault *fault, slm_err *err);
int sg_fsync_dir_of(const char *path, const sg_fault *fault, slm_err *err);
/* Whole file, at most max bytes (else SLM_EINPUT). NUL-terminated. */
int sg_read_file(const char *path, size_t max, char **buf, size_t *n, slm_err *err);
int sg_full_read(int fd, void *buf, size_t n); /* bytes read (< n at EOF), -1 on error */

/* Signatures JSON: [{"keyid":"..","sig":".."},...], sorted by keyid. */
char *sg_sigs_print(const slm_sig *sigs, int n);
/* Strict parse: canonical bytes only (re-printing gives the same bytes). */
int sg_sigs_parse(const char *what, const char *s, size_t len, slm_sig **out, int *n, slm_err *err);
/* Check the signatures over msg against root: every one by a known key
 * (extra: another root whose keys are also accepted, may be NULL) and valid,
 * no duplicates, at least `threshold` by keys of `root`. */
int sg_check_sigs(const char *what, const void *msg, size_t len, const slm_sig *sigs, int n_sigs,
                  const slm_root *root, const slm_root *extra, slm_err *err);
int sg_count_valid(const void *msg, size_t len, const slm_sig *sigs, int n_sigs, const slm_root *r);

/* JSON number that must be an exact non-negative integer <= 2^53. */
int sg_json_uint(const cJSON *o, const char *key, uint64_t *out);
int sg_json_int(const cJSON *o, const char *key, int64_t *out);

/* bundle.c helpers for the store */
int sg_verify_head_fd(int fd, const char *path, const slm_root *root, const slm_verify_opts *o, slm_manifest **out,
                      slm_err *err);
/* header + manifest + signature block of a verified manifest (malloc'd). */
int sg_head_bytes(const slm_manifest *m, uint8_t **out, size_t *n);
int sg_memfd_new(int *fd, slm_err *err);
int sg_memfd_seal(int fd, slm_err *err);

#endif
