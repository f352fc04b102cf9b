/* tests/regtest.c — see regtest.h */
#include "regtest.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "interop.h"
#include "testutil.h"

static const char *REGISTRY_BIN = "/usr/bin/docker-registry";

int rt_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
              getsockname(fd, (struct sockaddr *)&a, &l) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int try_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

void rt_registry_start(rt_registry *r)
{
    memset(r, 0, sizeof *r);
    if (access(REGISTRY_BIN, X_OK) != 0)
        oracle_missing("docker-registry (CNCF Distribution) is not installed: apt-get install docker-registry");
    r->dir = tu_tmpdir("registry");
    r->port = rt_free_port();
    snprintf(r->host, sizeof r->host, "127.0.0.1:%d", r->port);
    char *cfg = tu_path(r->dir, "config.yml"), *log = tu_path(r->dir, "registry.log");
    char text[2048];
    snprintf(text, sizeof text,
             "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
             "storage:\n  filesystem:\n    rootdirectory: %s/storage\n  delete:\n    enabled: true\n"
             "http:\n  addr: 127.0.0.1:%d\n",
             r->dir, r->port);
    cr_assert_eq(tu_write_file(cfg, text, strlen(text)), 0);
    /* fork + exec rather than posix_spawn: the registry must die with the test process even when an
     * assertion ends the test early (PR_SET_PDEATHSIG), so no registry is ever left running */
    pid_t parent = getpid();
    r->pid = fork();
    cr_assert_geq(r->pid, 0, "fork: %s", strerror(errno));
    if (r->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(REGISTRY_BIN, REGISTRY_BIN, "serve", cfg, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 600 && !try_connect(r->port); i++) { /* up to 30 s on a loaded machine */
        int st;
        if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
            char *l = tu_read_file(log, NULL);
            r->pid = 0;
            cr_assert_fail("docker-registry exited at start: %s", l ? l : "");
        }
        usleep(50000);
    }
    cr_assert(try_connect(r->port), "docker-registry does not listen on %s", r->host);
    free(cfg);
    free(log);
}

void rt_registry_stop(rt_registry *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        int st;
        for (int i = 0; i < 100; i++) {
            if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
                r->pid = 0;
                break;
            }
            usleep(20000);
        }
        if (r->pid > 0) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, &st, 0);
        }
        r->pid = 0;
    }
    tu_rmtree(r->dir);
    free(r->dir);
    r->dir = NULL;
}

char *rt_blob_path(const rt_registry *r, const char *digest)
{
    const char *hex = digest + 7;
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/storage/docker/registry/v2/blobs/sha256/%.2s/%s/data", r->dir, hex, hex);
    return p;
}

/* ---- the proxy ------------------------------------------------------------------------ */
static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read until "\r\n\r\n" (head), with a poll timeout. Returns head length or -1. */
static int read_head(int fd, char *buf, int cap, int *got)
{
    *got = 0;
    while (*got < cap - 1) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 5000) <= 0)
            return -1;
        ssize_t r = recv(fd, buf + *got, (size_t)(cap - 1 - *got), 0);
        if (r <= 0)
            return -1;
        *got += (int)r;
        buf[*got] = 0;
        char *e = strstr(buf, "\r\n\r\n");
        if (e)
            return (int)(e - buf) + 4;
    }
    return -1;
}

static const char *hdr(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        if (!strncasecmp(p + 2, name, nl) && p[2 + nl] == ':') {
            const char *v = p + 3 + nl;
            while (*v == ' ')
                v++;
            size_t n = strcspn(v, "\r\n");
            if (n >= cap)
                n = cap - 1;
            memcpy(out, v, n);
            out[n] = 0;
            return out;
        }
    }
    return NULL;
}

static void reply(int fd, const char *status, const char *extra, const char *body)
{
    char b[4096];
    snprintf(b, sizeof b, "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n%s",
             status, strlen(body), extra ? extra : "", body);
    send_all(fd, b, strlen(b));
}

static int connect_up(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

static void handle(rt_proxy *p, int cfd)
{
    static char req[65536];
    int got, hl = read_head(cfd, req, sizeof req, &got);
    if (hl < 0)
        return;
    char method[16] = "", path[1900] = "", v[64];
    sscanf(req, "%15s %1899s", method, path);
    int is_blob = !strcmp(method, "GET") && strstr(path, "/blobs/sha256:");
    int is_manifest = !strcmp(method, "GET") && strstr(path, "/manifests/");
    pthread_mutex_lock(&p->mu);
    p->n_requests++;
    if (is_blob && p->n_ranges < 8)
        snprintf(p->ranges[p->n_ranges++], 64, "%.63s", hdr(req, "Range", v, sizeof v) ? v : "-");
    if ((!strcmp(method, "PUT") || !strcmp(method, "PATCH")) && strstr(path, "/blobs/uploads/")) {
        p->n_uploads++;
        p->upload_bytes += hdr(req, "Content-Length", v, sizeof v) ? atol(v) : 0;
    }
    pthread_mutex_unlock(&p->mu);
    int mode = p->mode;
    if (mode == RT_E500) {
        reply(cfd, "500 Internal Server Error", NULL, "{\"errors\":[{\"code\":\"UNKNOWN\",\"message\":\"boom\"}]}");
        return;
    }
    if (mode == RT_REDIRECT && is_blob) {
        char loc[2300];
        if (p->redirect_host[0])
            snprintf(loc, sizeof loc, "Location: http://%s%s\r\n", p->redirect_host, path);
        else
            snprintf(loc, sizeof loc, "Location: http://elsewhere.invalid:%d%s\r\n", p->port, path);
        reply(cfd, "307 Temporary Redirect", loc, "");
        return;
    }
    if (mode == RT_AUTH) {
        if (!strncmp(path, "/token", 6)) {
            if (hdr(req, "Authorization", v, sizeof v) && !strcmp(v, "Basic dXNlcjpzZWNyZXQ=")) /* user:secret */
                reply(cfd, "200 OK", NULL, "{\"token\":\"tok-123\"}");
            else
                reply(cfd, "401 Unauthorized", NULL, "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}");
            return;
        }
        if (!hdr(req, "Authorization", v, sizeof v) || strcmp(v, "Bearer tok-123")) {
            char ch[512];
            snprintf(ch, sizeof ch,
                     "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:%d/token\",service=\"test\",scope=\"repository:models/stories:pull\"\r\n",
                     p->port);
            reply(cfd, "401 Unauthorized", ch, "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}");
            return;
        }
    }
    if (mode == RT_DRIP && is_blob) {
        const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n";
        send_all(cfd, h, strlen(h));
        for (int i = 0; i < 600 && !p->stop; i++) { /* at most 2 minutes */
            if (send_all(cfd, "x", 1))
                break;
            usleep(200000);
        }
        return;
    }
    /* forward: the request with Connection: close, then the answer (maybe cut) */
    int ufd = connect_up(p->upstream_port);
    if (ufd < 0) {
        reply(cfd, "502 Bad Gateway", NULL, "{}");
        return;
    }
    char *eol = strstr(req, "\r\n");
    send_all(ufd, req, (size_t)(eol - req) + 2);
    for (char *l = eol + 2; l < req + hl - 2;) {
        char *e = strstr(l, "\r\n");
        /* Host is kept (the proxy's): upload Locations then point back through the proxy */
        if (strncasecmp(l, "Connection:", 11))
            send_all(ufd, l, (size_t)(e - l) + 2);
        l = e + 2;
    }
    send_all(ufd, "Connection: close\r\n\r\n", 21);
    if (got > hl)
        send_all(ufd, req + hl, (size_t)(got - hl));
    long clen = hdr(req, "Content-Length", v, sizeof v) ? atol(v) : 0;
    long left = clen - (got - hl);
    static char buf[65536];
    while (left > 0) {
        ssize_t r = recv(cfd, buf, sizeof buf < (size_t)left ? sizeof buf : (size_t)left, 0);
        if (r <= 0)
            break;
        send_all(ufd, buf, (size_t)r);
        left -= r;
    }
    static char rh[65536];
    int rgot, rhl = read_head(ufd, rh, sizeof rh, &rgot);
    if (rhl < 0) {
        close(ufd);
        return;
    }
    long rlen = hdr(rh, "Content-Length", v, sizeof v) ? atol(v) : -1;
    long cut = -1;
    pthread_mutex_lock(&p->mu);
    if (is_blob && (mode == RT_CUT_ALWAYS || (mode == RT_CUT_ONCE && !p->cut_done)) && rlen > p->cut_at) {
        cut = p->cut_at;
        p->cut_done = 1;
    }
    pthread_mutex_unlock(&p->mu);
    if (mode == RT_TRUNC_MANIFEST && is_manifest && rlen > 1)
        cut = rlen / 2;
    if (mode == RT_REFERRERS && !strcmp(method, "PUT") && strstr(path, "/manifests/sha256:")) {
        send_all(cfd, rh, (size_t)rhl - 2); /* the head without its blank line, one header more */
        const char *x = "OCI-Subject: sha256:0000000000000000000000000000000000000000000000000000000000000000\r\n\r\n";
        send_all(cfd, x, strlen(x));
    } else {
        send_all(cfd, rh, (size_t)rhl);
    }
    long sent = 0;
    long have = rgot - rhl;
    if (have > 0) {
        long n = cut >= 0 && have > cut ? cut : have;
        send_all(cfd, rh + rhl, (size_t)n);
        sent = n;
    }
    while (cut < 0 || sent < cut) {
        struct pollfd pf = {ufd, POLLIN, 0};
        if (poll(&pf, 1, 5000) <= 0)
            break;
        ssize_t r = recv(ufd, buf, sizeof buf, 0);
        if (r <= 0)
            break;
        long n = cut >= 0 && sent + r > cut ? cut - sent : r;
        if (send_all(cfd, buf, (size_t)n))
            break;
        sent += n;
    }
    close(ufd);
}

static void *proxy_main(void *arg)
{
    rt_proxy *p = arg;
    while (!p->stop) {
        struct pollfd pf = {p->listen_fd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        int cfd = accept(p->listen_fd, NULL, NULL);
        if (cfd < 0)
            continue;
        handle(p, cfd);
        shutdown(cfd, SHUT_RDWR);
        close(cfd);
    }
    return NULL;
}

void rt_proxy_start(rt_proxy *p, int upstream_port, int mode)
{
    memset(p, 0, sizeof *p);
    p->upstream_port = upstream_port;
    p->mode = mode;
    pthread_mutex_init(&p->mu, NULL);
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    cr_assert(bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(p->listen_fd, 16) == 0 &&
              getsockname(p->listen_fd, (struct sockaddr *)&a, &l) == 0);
    p->port = ntohs(a.sin_port);
    snprintf(p->host, sizeof p->host, "127.0.0.1:%d", p->port);
    cr_assert_eq(pthread_create(&p->th, NULL, proxy_main, p), 0);
}

void rt_proxy_stop(rt_proxy *p)
{
    p->stop = 1;
    pthread_join(p->th, NULL);
    close(p->listen_fd);
    pthread_mutex_destroy(&p->mu);
}
