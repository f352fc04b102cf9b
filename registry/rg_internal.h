/* registry/rg_internal.h — shared inside registry/ only. */
#ifndef SLM_RG_INTERNAL_H
#define SLM_RG_INTERNAL_H

#include <curl/curl.h>

#include "registry.h"

#define RG_BODY_MAX (4u << 20) /* manifests, indexes, tokens, error bodies kept in memory */

typedef struct rg_client {
    CURL *curl;
    slm_registry_opts o;
    slm_ref ref;
    char base[300];        /* scheme://host */
    char scope[600];       /* token scope for this repository */
    char *token;           /* Bearer token (malloc'd) */
    char *basic;           /* "user:password" from the credentials file (malloc'd) */
} rg_client;

/* Upload source: memory or a byte range of a file. */
typedef struct rg_upload {
    const void *mem;
    int fd;
    uint64_t off, len, pos;
} rg_upload;

/* Where a 2xx body goes: a callback (streamed) or memory (bounded). */
typedef int (*rg_sink_fn)(void *user, const void *p, size_t n);

typedef struct rg_resp {
    long status;
    char *body;
    size_t len;
    int too_big;
    rg_sink_fn sink;       /* used for 2xx answers when set */
    void *sink_user;
    int sink_failed;
    uint64_t sunk;         /* bytes given to the sink */
    char location[2048];
    char www_auth[1024];
    char digest[80];       /* Docker-Content-Digest */
    char content_type[160];
    char content_range[128];
    char oci_subject[80];  /* OCI-Subject (referrers API present) */
    int curl_code;         /* libcurl's result of the last exchange */
} rg_resp;
void rg_resp_reset(rg_resp *r);
void rg_resp_free(rg_resp *r);

int rg_client_init(rg_client *c, const slm_ref *ref, const slm_registry_opts *o, int push, slm_err *err);
void rg_client_free(rg_client *c);
/* One request with auth (Bearer challenge / Basic), same-host redirects (other
 * hosts only when allowed), bounded waits. url: absolute, or a path on the
 * registry. headers: NULL-terminated extra lines. 0 when the exchange happened
 * (look at r->status); else a network error (SLM_EIO) in err. */
int rg_request(rg_client *c, const char *method, const char *url, const char *const *headers, rg_upload *up,
               rg_resp *r, slm_err *err);
/* "sha256:<hex>" of bytes. */
void rg_digest(const void *p, size_t n, char out[72]);

#endif
