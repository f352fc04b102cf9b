/* tools/serve.c — `slm serve`: the OpenAI-compatible server (serve/serve.h). Options,
 * model opening (plain, verified bundle, install store), signals: SIGTERM/SIGINT drain. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "serve.h"
#include "telemetry.h"

typedef struct serve_args {
    cli_model_opts mo;
    srv_opts so;
    const char *key_file;
    long long max_body, drain;
    cli_cache_opts kv;
    cli_fallback_opts fb;
} serve_args;

static const slm_opt serve_opts[] = {
    OPT_INCLUDE(cli_model_table, serve_args, mo),
    OPT_STRING(0, "alias", serve_args, so.model_name, "NAME", "model id shown by /v1/models (default: the file name)"),
    OPT_STRING(0, "host", serve_args, so.host, "ADDR", "numeric address to listen on (default 127.0.0.1: loopback only)"),
    OPT_INT(0, "port", serve_args, so.port, "N", 0, 65535,
            "TCP port; 0 = any free port (default 8080). The bound port is\n"
            "printed on stderr: 'slm serve: listening on http://ADDR:PORT'"),
    OPT_INT(0, "parallel", serve_args, so.n_parallel, "N", 1, 64, "slots generating together (default 1)"),
    OPT_INT('c', "ctx-size", serve_args, so.n_ctx, "N", 1, 1 << 20, "context length of each slot (default: the model's, at most 4096)"),
    OPT_INCLUDE_AS(cli_threads_table, serve_args, so.n_threads, "threads per slot (default: physical cores / parallel, at least 1)"),
    OPT_INCLUDE(cli_cache_table, serve_args, kv),
    OPT_INT(0, "max-queue", serve_args, so.max_queue, "N", 0, 100000,
            "requests that may wait for a slot; beyond it 503 + Retry-After (default 16)"),
    OPT_I64(0, "max-body", serve_args, max_body, "BYTES", 1024, 1LL << 30, "largest request body; beyond it 413 (default 1048576)"),
    OPT_INT(0, "max-tokens", serve_args, so.max_tokens_default, "N", 1, 1 << 20,
            "tokens generated when a request sets no max_tokens (default 256)"),
    OPT_INT(0, "timeout", serve_args, so.conn_timeout, "S", 1, 3600,
            "close a connection idle (e.g. slow headers) for S seconds (default 10)"),
    OPT_I64(0, "drain-timeout", serve_args, drain, "S", 0, 86400,
            "on SIGTERM, wait at most S seconds for running requests (default 30)"),
    OPT_PATH(0, "api-key-file", serve_args, key_file, "F",
             "require 'Authorization: Bearer KEY' (KEY: F's first line) except on /health"),
    OPT_GROUP("cloud fallback (an OpenAI-compatible upstream; every answer says who answered in X-Slm-Route;\n"
              "private requests (\"private\": true, X-Slm-Private: 1) never leave):"),
    OPT_INCLUDE(cli_fallback_table, serve_args, fb),
    OPT_INT(0, "fallback-stream-tokens", serve_args, so.fallback_stream_tokens, "K", 0, 4096,
            "a stream is judged on its first K tokens, held back until\n"
            "then (default 16; 0 = streams never defer for low confidence)"),
    OPT_DOUBLE(0, "fallback-quantile", serve_args, so.fallback_quantile, "Q", 0, 1, 0,
               "confidence = the Q-quantile of the per-token probabilities (default 0.1)"),
    OPT_END(),
};

const slm_cmd_doc doc_serve = {
    .usage = "slm serve -m MODEL.gguf [options]\n"
             "slm serve --bundle B.slmb --trust ROOT [--trust NEXT_ROOT ...] [options]\n"
             "slm serve --store DIR [options]",
    .description =
        "An OpenAI-compatible HTTP server: GET /health, GET /v1/models, POST /v1/completions,\n"
        "POST /v1/chat/completions (each also with \"stream\": true, server-sent events), GET /metrics\n"
        "(Prometheus text). See docs/serve.md.\n",
    .opts = serve_opts,
    .exit_codes = "0 stopped by SIGTERM/SIGINT after draining, 2 usage, 3 bad model, 4 I/O (cannot listen,\n"
                  "cannot read a file), 5 verification failed (--bundle/--store), 6 internal",
    .examples = "slm serve -m smol-q4_k_m.gguf --port 8080 --parallel 2\n"
                "curl -s localhost:8080/v1/completions -d '{\"prompt\": \"Hello\", \"max_tokens\": 16}'",
};

/* First line of a key file (malloc'd), or NULL with err set. */
static int g_sigpipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int e = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t n = write(g_sigpipe[1], &b, 1);
    (void)n;
    errno = e;
}

static char *read_key(const char *path, slm_err *err)
{
    size_t n = 0;
    char *k = cli_read_file(path, 4096, &n, err);
    if (!k)
        return NULL;
    k[strcspn(k, "\r\n")] = 0;
    if (!*k) {
        free(k);
        slm_err_set(err, SLM_EINPUT, "%s: the key file is empty", path);
        return NULL;
    }
    return k;
}

int cmd_serve(int argc, char **argv)
{
    const char *C = "serve";
    serve_args a = {.max_body = -1, .drain = 30};
    srv_opts_defaults(&a.so);
    a.so.port = 8080;
    a.so.n_threads = 0;             /* default below, from --parallel */
    cli_fallback_defaults(&a.fb);
    a.fb.confidence = -1;           /* the default applies only with --fallback */
    a.fb.connect_ms = a.so.fallback_connect_ms;
    a.fb.timeout_ms = a.so.fallback_timeout_ms;
    int ai = slm_opt_parse(C, serve_opts, argc, argv, &a);
    if (ai < 0)
        return -ai;
    if (ai < argc)
        return cli_usage(C, "unexpected argument '%s'", argv[ai]);
    srv_opts so = a.so;
    so.type_k = cli_cache_type(a.kv.k);
    so.type_v = cli_cache_type(a.kv.v);
    cli_model_opts mo = a.mo;
    const char *key_file = a.key_file, *fb_key_file = a.fb.key_file;
    long long drain = a.drain;
    int threads_set = so.n_threads > 0;
    if (a.max_body >= 0)
        so.max_body = (size_t)a.max_body;
    so.fallback_url = a.fb.url;
    so.fallback_confidence = a.fb.confidence;
    so.fallback_timeout_ms = a.fb.timeout_ms;
    if (so.fallback_connect_ms > so.fallback_timeout_ms)
        so.fallback_connect_ms = so.fallback_timeout_ms;
    if (a.fb.mem_budget)
        so.mem_budget = a.fb.mem_budget;
    slm_err err = {0};
    if (cli_model_check(&mo, &err))
        return cli_usage(C, "%s", err.msg);
    if (!threads_set) {
        so.n_threads = cli_default_threads() / so.n_parallel;
        if (so.n_threads < 1)
            so.n_threads = 1;
    }
    if (!so.fallback_url && (fb_key_file || so.fallback_confidence >= 0))
        return cli_usage(C, "--fallback-key-file and --fallback-confidence go with --fallback URL");
    if (so.fallback_confidence < 0)
        so.fallback_confidence = 0.1;
    char *key = NULL, *fb_key = NULL;
    if ((key_file && !(key = read_key(key_file, &err))) || (fb_key_file && !(fb_key = read_key(fb_key_file, &err)))) {
        free(key);
        free(fb_key);
        return cli_fail_err(C, &err);
    }
    so.api_key = key;
    so.fallback_key = fb_key;
    if (!so.model_name) {
        const char *p = mo.model ? mo.model : mo.bundle ? mo.bundle : mo.store;
        const char *b = strrchr(p, '/');
        so.model_name = b && b[1] ? b + 1 : p;
    }

    /* SIGTERM/SIGINT/SIGHUP reach the loop below through a pipe written by a handler. A blocked
     * mask + sigwait is not enough: threads made before main (OpenBLAS starts its pool in a
     * constructor) do not block them, and a signal that arrives while main is busy (a reload)
     * went to such a thread and killed the process by the default action. */
    if (pipe2(g_sigpipe, O_CLOEXEC)) {
        free(key);
        free(fb_key);
        return cli_fail(C, 4, "cannot create the signal pipe");
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 0, fd = -1;
    char fd_path[64];
    const char *model = NULL;
    if ((rc = cli_model_path(&mo, fd_path, sizeof fd_path, &model, &err))) {
        free(key);
        free(fb_key);
        return cli_fail_err(C, &err);
    }
    fd = cli_model_fd(model == fd_path ? model : NULL);
    so.model_path = model;
    /* telemetry: only when the user turned it on (and SLM_TELEMETRY=0 is not set) */
    char tdir[4096];
    tel_cfg tc;
    slm_err terr = {0};
    if (!tel_dir(tdir, sizeof tdir) && !tel_load(tdir, &tc, &terr) && tel_effective(&tc) != TEL_OFF) {
        so.telemetry = &tc;
        so.telemetry_dir = tdir;
    }
    srv_server *s = NULL;
    if ((rc = srv_start(&so, &s, &err))) {
        free(key);
        free(fb_key);
        return cli_fail_err(C, &err);
    }
    fprintf(stderr, "slm serve: listening on http://%s%s%s:%d\n", strchr(so.host, ':') ? "[" : "", so.host,
            strchr(so.host, ':') ? "]" : "", srv_port(s));
    fflush(stderr);
    if ((rc = srv_load(s, &err))) {
        srv_drain_and_stop(s, 0);
        free(key);
        free(fb_key);
        return cli_fail_err(C, &err);
    }
    fprintf(stderr, "slm serve: ready (%s, %d slot%s)\n", so.model_name, so.n_parallel, so.n_parallel > 1 ? "s" : "");
    fflush(stderr);
    for (;;) {
        unsigned char b;
        ssize_t n = read(g_sigpipe[0], &b, 1);
        if (n != 1)
            continue; /* EINTR */
        int sig = b;
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (sig != SIGHUP)
            continue;
        if (!mo.store) {
            fprintf(stderr, "slm serve: SIGHUP ignored (only --store switches models)\n");
            continue;
        }
        /* the store's active model, verified again; requests in flight finish on the old one */
        slm_err rerr = {0};
        if (srv_reload_store(s, mo.store, &fd, &rerr))
            fprintf(stderr, "slm serve: reload refused, still serving the previous model: %s\n", rerr.msg);
        else
            fprintf(stderr, "slm serve: loaded the store's active model; it answers once the running requests end\n");
        fflush(stderr);
    }
    fprintf(stderr, "slm serve: draining (at most %lld s)\n", drain);
    srv_drain_and_stop(s, (double)drain);
    fprintf(stderr, "slm serve: stopped\n");
    close(g_sigpipe[0]);
    close(g_sigpipe[1]);
    free(key);
    free(fb_key);
    return 0;
}
