/* tools/serve.c — `slm serve`: the OpenAI-compatible server (serve/serve.h). Options,
 * model opening (plain, verified bundle, install store), signals: SIGTERM/SIGINT drain. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "serve.h"
#include "signing.h"
#include "telemetry.h"

const char help_serve[] =
    "usage: slm serve -m MODEL.gguf [options]\n"
    "       slm serve --bundle B.slmb --trust ROOT [--trust NEXT_ROOT ...] [options]\n"
    "       slm serve --store DIR [options]\n"
    "\n"
    "An OpenAI-compatible HTTP server: GET /health, GET /v1/models, POST /v1/completions,\n"
    "POST /v1/chat/completions (each also with \"stream\": true, server-sent events), GET /metrics\n"
    "(Prometheus text). See docs/serve.md.\n"
    "\n"
    "  -m, --model PATH        GGUF model\n"
    "      --bundle B          signed bundle, verified against --trust before anything runs\n"
    "      --store DIR         the active model of an install store (slm install)\n"
    "      --alias NAME        model id shown by /v1/models (default: the file name)\n"
    "      --host ADDR         numeric address to listen on (default 127.0.0.1: loopback only)\n"
    "      --port N            TCP port; 0 = any free port (default 8080). The bound port is\n"
    "                          printed on stderr: 'slm serve: listening on http://ADDR:PORT'\n"
    "      --parallel N        slots generating together (default 1)\n"
    "  -c, --ctx-size N        context length of each slot (default: the model's, at most 4096)\n"
    "  -t, --threads N         threads per slot (default: physical cores / parallel, at least 1)\n"
    "      --max-queue N       requests that may wait for a slot; beyond it 503 + Retry-After (default 16)\n"
    "      --max-body BYTES    largest request body; beyond it 413 (default 1048576)\n"
    "      --max-tokens N      tokens generated when a request sets no max_tokens (default 256)\n"
    "      --timeout S         close a connection idle (e.g. slow headers) for S seconds (default 10)\n"
    "      --drain-timeout S   on SIGTERM, wait at most S seconds for running requests (default 30)\n"
    "      --api-key-file F    require 'Authorization: Bearer KEY' (KEY: F's first line) except on /health\n"
    "\n"
    "cloud fallback (an OpenAI-compatible upstream; every answer says who answered in X-Slm-Route):\n"
    "      --fallback URL      route there when prompt + max_tokens exceed the context, when the model\n"
    "                          does not fit --mem-budget, or when the local answer's confidence is low.\n"
    "                          Private requests (\"private\": true, X-Slm-Private: 1) never leave\n"
    "      --fallback-key-file F  bearer key sent to the upstream (F's first line)\n"
    "      --fallback-confidence P  defer a local answer whose confidence is below P;\n"
    "                          0 = never (default 0.1, see docs/serve.md)\n"
    "      --fallback-stream-tokens K  a stream is judged on its first K tokens, held back until\n"
    "                          then (default 16; 0 = streams never defer for low confidence)\n"
    "      --fallback-quantile Q  confidence = the Q-quantile of the per-token probabilities (default 0.1)\n"
    "      --fallback-timeout S   whole upstream request bound in seconds (default 30; connect: 2)\n"
    "      --mem-budget BYTES  the model (weights + KV caches) must fit; K/M/G suffixes (default: none)\n"
    "  -h, --help              this help\n"
    "\n"
    "exit codes: 0 stopped by SIGTERM/SIGINT after draining, 2 usage, 3 bad model, 4 I/O (cannot listen,\n"
    "            cannot read a file), 5 verification failed (--bundle/--store), 6 internal\n";

enum { OPT_HOST = 1000, OPT_PORT, OPT_PAR, OPT_QUEUE, OPT_BODY, OPT_MAXTOK,
       OPT_TIMEOUT, OPT_DRAIN, OPT_KEY, OPT_ALIAS, OPT_FB, OPT_FBKEY, OPT_FBCONF, OPT_FBQ, OPT_FBTIME, OPT_MEM,
       OPT_FBSTREAM };

/* "123", "64K", "512M", "2G" -> bytes; 0 on success */
static int parse_bytes(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *s == '-')
        return -1;
    int sh = !*end ? 0 : !strcmp(end, "K") ? 10 : !strcmp(end, "M") ? 20 : !strcmp(end, "G") ? 30 : -1;
    if (sh < 0 || v > (~0ull >> sh) || v == 0)
        return -1;
    *out = (uint64_t)v << sh;
    return 0;
}

/* First line of a key file (malloc'd), or NULL with err set. */
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
    static const struct option opts[] = {
        CLI_MODEL_LONGOPTS,
        {"host", required_argument, 0, OPT_HOST},    {"port", required_argument, 0, OPT_PORT},
        {"parallel", required_argument, 0, OPT_PAR}, {"ctx-size", required_argument, 0, 'c'},
        {"threads", required_argument, 0, 't'},      {"max-queue", required_argument, 0, OPT_QUEUE},
        {"max-body", required_argument, 0, OPT_BODY}, {"max-tokens", required_argument, 0, OPT_MAXTOK},
        {"timeout", required_argument, 0, OPT_TIMEOUT}, {"drain-timeout", required_argument, 0, OPT_DRAIN},
        {"api-key-file", required_argument, 0, OPT_KEY}, {"alias", required_argument, 0, OPT_ALIAS},
        {"fallback", required_argument, 0, OPT_FB}, {"fallback-key-file", required_argument, 0, OPT_FBKEY},
        {"fallback-confidence", required_argument, 0, OPT_FBCONF}, {"fallback-quantile", required_argument, 0, OPT_FBQ},
        {"fallback-stream-tokens", required_argument, 0, OPT_FBSTREAM},
        {"fallback-timeout", required_argument, 0, OPT_FBTIME}, {"mem-budget", required_argument, 0, OPT_MEM},
        {0, 0, 0, 0},
    };
    const char *C = "serve";
    const char *key_file = NULL, *fb_key_file = NULL;
    cli_model_opts mo = {0};
    double d;
    int threads_set = 0;
    long long v, drain = 30;
    srv_opts so;
    srv_opts_defaults(&so);
    so.port = 8080;
    so.fallback_confidence = -1; /* the default applies only with --fallback */
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, ":m:c:t:", opts, NULL)) != -1) {
        int r = cli_model_opt(C, o, optarg, &mo);
        if (r == 1)
            continue;
        if (r)
            return r;
        switch (o) {
        case OPT_HOST: so.host = optarg; break;
        case OPT_ALIAS: so.model_name = optarg; break;
        case OPT_KEY: key_file = optarg; break;
        case OPT_FB:
            if (strncmp(optarg, "http://", 7) && strncmp(optarg, "https://", 8))
                return cli_usage(C, "--fallback wants an http:// or https:// URL, got '%s'", optarg);
            so.fallback_url = optarg;
            break;
        case OPT_FBKEY: fb_key_file = optarg; break;
        case OPT_FBCONF:
            if (cli_parse_double(optarg, &d) || d < 0 || d > 1)
                return cli_usage(C, "--fallback-confidence wants a probability in [0, 1], got '%s'", optarg);
            so.fallback_confidence = d;
            break;
        case OPT_FBQ:
            if (cli_parse_double(optarg, &d) || d < 0 || d > 1)
                return cli_usage(C, "--fallback-quantile wants a number in [0, 1], got '%s'", optarg);
            so.fallback_quantile = d;
            break;
        case OPT_FBTIME:
            if (cli_parse_double(optarg, &d) || d <= 0 || d > 3600)
                return cli_usage(C, "--fallback-timeout wants seconds in (0, 3600], got '%s'", optarg);
            so.fallback_timeout_ms = (long)(d * 1000);
            if (so.fallback_connect_ms > so.fallback_timeout_ms)
                so.fallback_connect_ms = so.fallback_timeout_ms;
            break;
        case OPT_MEM:
            if (parse_bytes(optarg, &so.mem_budget))
                return cli_usage(C, "--mem-budget wants bytes (e.g. 512M), got '%s'", optarg);
            break;
#define INTOPT(ch, lo, hi, dst, what)                                                  \
    case ch:                                                                           \
        if (cli_parse_int(optarg, lo, hi, &v))                                         \
            return cli_usage(C, what " wants an integer in %lld..%lld, got '%s'", (long long)(lo), (long long)(hi), optarg); \
        dst = v;                                                                       \
        break;
        INTOPT(OPT_PORT, 0, 65535, so.port, "--port")
        INTOPT(OPT_PAR, 1, 64, so.n_parallel, "--parallel")
        INTOPT(OPT_FBSTREAM, 0, 4096, so.fallback_stream_tokens, "--fallback-stream-tokens")
        INTOPT('c', 1, 1 << 20, so.n_ctx, "-c")
        INTOPT(OPT_QUEUE, 0, 100000, so.max_queue, "--max-queue")
        INTOPT(OPT_BODY, 1024, 1LL << 30, so.max_body, "--max-body")
        INTOPT(OPT_MAXTOK, 1, 1 << 20, so.max_tokens_default, "--max-tokens")
        INTOPT(OPT_TIMEOUT, 1, 3600, so.conn_timeout, "--timeout")
        INTOPT(OPT_DRAIN, 0, 86400, drain, "--drain-timeout")
        case 't':
            if (cli_parse_int(optarg, 1, 1024, &v))
                return cli_usage(C, "-t wants a thread count in 1..1024, got '%s'", optarg);
            so.n_threads = (int)v;
            threads_set = 1;
            break;
        case ':': return cli_usage(C, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage(C, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage(C, "unexpected argument '%s'", argv[optind]);
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

    /* every thread inherits this mask: the signals are taken by sigwait below only */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
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
        int sig = 0;
        if (sigwait(&set, &sig))
            continue;
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (sig != SIGHUP)
            continue;
        if (!mo.store) {
            fprintf(stderr, "slm serve: SIGHUP ignored (only --store switches models)\n");
            continue;
        }
        /* the store's active model, verified again; requests in flight finish on the old one */
        slm_manifest *man = NULL;
        int nfd = -1;
        char npath[64];
        slm_err rerr = {0};
        if (slm_store_open_model(mo.store, &nfd, &man, &rerr) ||
            (snprintf(npath, sizeof npath, "/proc/self/fd/%d", nfd), srv_reload(s, npath, &rerr))) {
            fprintf(stderr, "slm serve: reload refused, still serving the previous model: %s\n", rerr.msg);
            if (nfd >= 0)
                close(nfd);
        } else {
            fprintf(stderr, "slm serve: loaded the store's active model; it answers once the running requests end\n");
            if (fd >= 0)
                close(fd); /* the old model stays mapped until its last request ends */
            fd = nfd;
        }
        slm_manifest_free(man);
        fflush(stderr);
    }
    fprintf(stderr, "slm serve: draining (at most %lld s)\n", drain);
    srv_drain_and_stop(s, (double)drain);
    fprintf(stderr, "slm serve: stopped\n");
    free(key);
    free(fb_key);
    return 0;
}
