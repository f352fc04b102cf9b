/* tests/regtest.h — for the registry suites: Debian's docker-registry (CNCF
 * Distribution) started on 127.0.0.1 with a temporary config and a free port,
 * stopped by pid; and a loopback HTTP proxy in front of it that misbehaves on
 * request (cuts, 500s, truncation, foreign redirects, slow drip, token auth). */
#ifndef SLM_REGTEST_H
#define SLM_REGTEST_H

#include <pthread.h>
#include <sys/types.h>

typedef struct rt_registry {
    pid_t pid;
    int port;
    char *dir;      /* temp dir: config + storage (removed by rt_registry_stop) */
    char host[64];  /* "127.0.0.1:PORT" */
} rt_registry;
/* Skips loudly (oracle_missing) when docker-registry is not installed. */
void rt_registry_start(rt_registry *r);
void rt_registry_stop(rt_registry *r);
/* Path of the blob file of digest "sha256:<hex>" in the registry's storage (malloc'd). */
char *rt_blob_path(const rt_registry *r, const char *digest);

enum rt_mode {
    RT_PASS = 0,
    RT_CUT_ONCE,    /* the first blob GET answer of at least cut_at bytes is cut after cut_at body bytes */
    RT_CUT_ALWAYS,  /* every blob GET answer is cut after cut_at body bytes */
    RT_E500,        /* every request: 500 */
    RT_TRUNC_MANIFEST, /* manifest GETs: full Content-Length, half the body, close */
    RT_REDIRECT,    /* blob GETs: 307 to http://elsewhere.invalid:<port>/... */
    RT_DRIP,        /* blob GETs: headers, then one byte every 200 ms */
    RT_AUTH,        /* Bearer token auth: /token wants Basic user:secret */
    RT_REFERRERS,   /* pass, but answer manifest PUTs by digest with OCI-Subject (a registry with the referrers API) */
};
typedef struct rt_proxy {
    int port, upstream_port, listen_fd;
    volatile int mode, stop;
    long cut_at;
    int cut_done;
    char ranges[8][64];  /* Range headers of blob GETs, in order */
    int n_ranges;
    int n_requests;
    int n_uploads;       /* blob upload requests (PATCH or PUT to /blobs/uploads/) */
    long upload_bytes;   /* their Content-Length, summed */
    pthread_t th;
    pthread_mutex_t mu;
    char host[64];
    char redirect_host[64]; /* RT_REDIRECT target host[:port] (default elsewhere.invalid:<proxy port>) */
} rt_proxy;
void rt_proxy_start(rt_proxy *p, int upstream_port, int mode);
void rt_proxy_stop(rt_proxy *p);

/* A port nothing listens on (bound once, then closed). */
int rt_free_port(void);

#endif
