/* tests/test_serve.c — `slm serve` end to end on loopback: curl, a raw-socket client (hostile
 * HTTP) and the official `openai` npm client against a server started per test on a free port
 * (--port 0; the bound port is read from its stderr) and stopped by pid. Every wait is bounded. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "interop.h"
#include "testutil.h"

static char *g_dir, *g_gguf;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* stories-llama256 converted to F16, once per test process */
static void setup_model(void)
{
    g_dir = tu_tmpdir("serve");
    g_gguf = tu_path(g_dir, "m.gguf");
    const char *args[] = {"convert", tu_model("stories-llama256"), "-o", g_gguf, "--outtype", "f16", NULL};
    char *out = NULL, *err = NULL;
    cr_assert_eq(tu_run_slm(&out, &err, args), 0, "convert: %s", err ? err : "");
    free(out);
    free(err);
}
static void teardown_model(void)
{
    tu_rmtree(g_dir);
    free(g_dir);
    free(g_gguf);
}

typedef struct server {
    pid_t pid;
    int port;
    char errpath[4096];
} server;

/* ---- a raw HTTP/1.1 client (bounded by SO_RCVTIMEO / SO_SNDTIMEO) ---- */
static int connect_to(int port, double timeout_s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct timeval tv = {(time_t)timeout_s, (suseconds_t)((timeout_s - (time_t)timeout_s) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read until EOF (or timeout): malloc'd, NUL-terminated. */
static char *recv_all(int fd, size_t *n_out)
{
    size_t n = 0, cap = 4096;
    char *b = malloc(cap);
    for (;;) {
        if (n + 4096 > cap)
            b = realloc(b, cap *= 2);
        ssize_t r = recv(fd, b + n, cap - n - 1, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    b[n] = 0;
    if (n_out)
        *n_out = n;
    return b;
}

typedef struct resp {
    int status;
    char *head; /* status line + headers */
    char *body; /* de-chunked */
} resp;

static void resp_free(resp *r)
{
    free(r->head);
    free(r->body);
}

/* A header's value (case-insensitive name), copied into buf; NULL if absent. */
static const char *header(const resp *r, const char *name, char *buf, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = r->head; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (!strncasecmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t k = strcspn(v, "\r\n");
            if (k >= cap)
                k = cap - 1;
            memcpy(buf, v, k);
            buf[k] = 0;
            return buf;
        }
    }
    return NULL;
}

static void parse_resp(char *raw, size_t n, resp *r)
{
    memset(r, 0, sizeof *r);
    char *sep = strstr(raw, "\r\n\r\n");
    if (!sep || sscanf(raw, "HTTP/1.%*d %d", &r->status) != 1) {
        r->status = -1;
        r->head = strdup("");
        r->body = strdup("");
        return;
    }
    r->head = strndup(raw, (size_t)(sep - raw + 2));
    char *body = sep + 4;
    size_t bn = n - (size_t)(body - raw);
    char te[64];
    if (header(r, "Transfer-Encoding", te, sizeof te) && strstr(te, "chunked")) {
        char *o = malloc(bn + 1);
        size_t on = 0;
        char *p = body;
        while (p < body + bn) {
            unsigned long k = strtoul(p, NULL, 16);
            char *eol = strstr(p, "\r\n");
            if (!eol || k == 0)
                break;
            p = eol + 2;
            if (p + k > body + bn)
                k = (unsigned long)(body + bn - p);
            memcpy(o + on, p, k);
            on += k;
            p += k + 2;
        }
        o[on] = 0;
        r->body = o;
    } else {
        r->body = strndup(body, bn);
    }
}

/* One request on a fresh connection (Connection: close); no assertions (usable from threads):
 * status -1 when the connection failed. extra_headers: "" or lines ending in \r\n. */
static resp http_try(int port, const char *method, const char *path, const char *extra_headers, const char *body,
                     size_t body_n)
{
    resp r;
    int fd = connect_to(port, 60);
    if (fd < 0) {
        memset(&r, 0, sizeof r);
        r.status = -1;
        r.head = strdup("");
        r.body = strdup("");
        return r;
    }
    char head[4096];
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%sContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      method, path, extra_headers ? extra_headers : "", body ? body_n : 0);
    if (send_all(fd, head, (size_t)hn) == 0 && body)
        send_all(fd, body, body_n);
    size_t n = 0;
    char *raw = recv_all(fd, &n);
    close(fd);
    parse_resp(raw, n, &r);
    free(raw);
    return r;
}

static resp http(int port, const char *method, const char *path, const char *extra_headers, const char *body,
                 size_t body_n)
{
    resp r = http_try(port, method, path, extra_headers, body, body_n);
    cr_assert(r.status != -1 || r.body[0], "request to port %d failed: %s", port, strerror(errno));
    return r;
}

static resp post(int port, const char *path, const char *json)
{
    return http(port, "POST", path, "", json, strlen(json));
}

static cJSON *json_of(const resp *r)
{
    cJSON *j = cJSON_Parse(r->body);
    cr_assert_not_null(j, "not JSON (status %d): %.300s", r->status, r->body);
    return j;
}

/* An error answer: the status and a JSON body {"error": {"message": ...}}. */
static void expect_error(resp r, int status, const char *what)
{
    cr_assert_eq(r.status, status, "%s: status %d, want %d: %.300s", what, r.status, status, r.body);
    cJSON *j = json_of(&r);
    cJSON *e = cJSON_GetObjectItem(j, "error");
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(e, "message")), "%s: no error.message in %s", what, r.body);
    cJSON_Delete(j);
    resp_free(&r);
}

/* ---- the server process ---- */
static void server_up_args(server *s, const char *const *extra)
{
    memset(s, 0, sizeof *s);
    static int seq;
    snprintf(s->errpath, sizeof s->errpath, "%s/serve-%d-%d.err", g_dir, (int)getpid(), seq++);
    const char *argv[64];
    int n = 0;
    argv[n++] = tu_slm_bin();
    argv[n++] = "serve";
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "-t";
    argv[n++] = "1";
    int has_model = 0;
    for (int i = 0; extra && extra[i]; i++) {
        has_model |= !strcmp(extra[i], "--store") || !strcmp(extra[i], "-m");
        argv[n++] = extra[i];
    }
    if (!has_model) {
        argv[n++] = "-m";
        argv[n++] = g_gguf;
    }
    argv[n] = NULL;
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        /* a failed assertion ends the test process: the server must not outlive it */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1)
            _exit(127);
        int fd = open(s->errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int dn = open("/dev/null", O_RDWR);
        dup2(dn, 0);
        dup2(dn, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    double t0 = now_s();
    while (now_s() - t0 < 20) {
        char *e = tu_read_file(s->errpath, NULL);
        const char *p = e ? strstr(e, "listening on http://127.0.0.1:") : NULL;
        if (p)
            s->port = atoi(p + strlen("listening on http://127.0.0.1:"));
        int ready = e && strstr(e, "slm serve: ready");
        free(e);
        if (ready)
            break;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            cr_assert_fail("slm serve exited early: %s", tu_read_file(s->errpath, NULL));
        usleep(20000);
    }
    cr_assert(s->port > 0, "no port printed within 20 s: %s", tu_read_file(s->errpath, NULL));
}

static void server_up(server *s) { server_up_args(s, NULL); }

/* SIGTERM and wait (bounded): the exit status. */
static int server_down(server *s)
{
    kill(s->pid, SIGTERM);
    double t0 = now_s();
    int st = 0;
    while (now_s() - t0 < 40) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(20000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &st, 0);
    cr_assert_fail("slm serve did not stop within 40 s of SIGTERM");
    return -1;
}

static char *text_of(cJSON *j)
{
    cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    cJSON *t = cJSON_GetObjectItem(c, "text");
    if (!t)
        t = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "message"), "content");
    cr_assert(cJSON_IsString(t));
    return t->valuestring;
}

/* `slm run --temp 0` text (without the newline it prints at the end) */
static char *run_text(const char *prompt, int n)
{
    char nb[16];
    snprintf(nb, sizeof nb, "%d", n);
    const char *args[] = {"run", "-m", g_gguf, "-p", prompt, "-n", nb, "--temp", "0", "-t", "1", NULL};
    char *out = NULL, *err = NULL;
    cr_assert_eq(tu_run_slm(&out, &err, args), 0, "slm run: %s", err ? err : "");
    free(err);
    size_t len = strlen(out);
    if (len && out[len - 1] == '\n')
        out[len - 1] = 0;
    return out;
}

static char *curl_post(int port, const char *path, const char *json, const char *extra_header)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    const char *argv[] = {"curl", "-sS", "-N", "-m", "60", "-H", "Content-Type: application/json", "-H",
                          extra_header ? extra_header : "X-Nothing: 1", "-d", json, url, NULL};
    char *out = NULL, *err = NULL;
    int rc = tu_run(&out, &err, argv);
    cr_assert_eq(rc, 0, "curl %s: %s", path, err ? err : "");
    free(err);
    return out;
}

/* The text of an SSE stream (choices[0].text or .delta.content concatenated); checks the
 * framing: every event is "data: ...", the last one is [DONE]. *n_events gets the count. */
static char *sse_text(const char *body, int *n_events, cJSON **usage)
{
    char *acc = calloc(1, strlen(body) + 1);
    int n = 0, done = 0;
    const char *p = body;
    while (*p) {
        const char *e = strstr(p, "\n\n");
        cr_assert_not_null(e, "unterminated event: %.200s", p);
        cr_assert(!strncmp(p, "data: ", 6), "not an SSE data line: %.100s", p);
        cr_assert(!done, "events after [DONE]");
        char *ev = strndup(p + 6, (size_t)(e - p - 6));
        if (!strcmp(ev, "[DONE]")) {
            done = 1;
        } else {
            cJSON *j = cJSON_Parse(ev);
            cr_assert_not_null(j, "event is not JSON: %s", ev);
            cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
            cJSON *t = c ? cJSON_GetObjectItem(c, "text") : NULL;
            if (c && !t)
                t = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "delta"), "content");
            if (cJSON_IsString(t))
                strcat(acc, t->valuestring);
            cJSON *u = cJSON_GetObjectItem(j, "usage");
            if (u && usage)
                *usage = cJSON_Duplicate(u, 1);
            cJSON_Delete(j);
        }
        free(ev);
        n++;
        p = e + 2;
    }
    cr_assert(done, "the stream did not end with data: [DONE]");
    if (n_events)
        *n_events = n;
    return acc;
}

TestSuite(serve, .init = setup_model, .fini = teardown_model, .timeout = 240);

/* curl: temperature 0 gives the text of `slm run --temp 0`, whole and streamed; /health, /v1/models,
 * and /metrics passes promtool. */
Test(serve, curl_temp0_equals_run_and_metrics)
{
    server s;
    server_up(&s);
    char *want = run_text("Once upon a time", 24);
    char *out = curl_post(s.port, "/v1/completions",
                          "{\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0}", NULL);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "%s", out);
    cr_assert_str_eq(text_of(j), want);
    cJSON *u = cJSON_GetObjectItem(j, "usage");
    cr_assert_eq(cJSON_GetObjectItem(u, "completion_tokens")->valueint, 24);
    cr_assert_eq(cJSON_GetObjectItem(u, "total_tokens")->valueint,
                 24 + cJSON_GetObjectItem(u, "prompt_tokens")->valueint);
    cJSON_Delete(j);
    free(out);

    out = curl_post(s.port, "/v1/completions",
                    "{\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0,\"stream\":true,"
                    "\"stream_options\":{\"include_usage\":true}}", NULL);
    int n_ev = 0;
    cJSON *usage = NULL;
    char *streamed = sse_text(out, &n_ev, &usage);
    cr_assert_str_eq(streamed, want);
    cr_assert_geq(n_ev, 4);
    cr_assert_not_null(usage, "include_usage gave no usage chunk");
    cr_assert_eq(cJSON_GetObjectItem(usage, "completion_tokens")->valueint, 24);
    cJSON_Delete(usage);
    free(streamed);
    free(out);

    resp r = http(s.port, "GET", "/health", "", NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "{\"status\":\"ok\"}");
    resp_free(&r);
    r = http(s.port, "GET", "/v1/models", "", NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "\"id\":\"m.gguf\""), "%s", r.body);
    resp_free(&r);

    r = http(s.port, "GET", "/metrics", "", NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "slm_generated_tokens_total 48"), "%s", r.body);
    cr_assert(strstr(r.body, "slm_route_total{route=\"local\",reason=\"ok\"} 2"), "%s", r.body);
    char *mpath = tu_path(g_dir, "metrics.txt");
    tu_write_file(mpath, r.body, strlen(r.body));
    resp_free(&r);
    const char *which[] = {"sh", "-c", "command -v promtool", NULL};
    if (tu_run(NULL, NULL, which) != 0) {
        server_down(&s);
        oracle_missing("promtool (Debian package prometheus) is not installed");
    }
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s'", mpath);
    const char *pt[] = {"sh", "-c", cmd, NULL};
    char *pout = NULL, *perr = NULL;
    int prc = tu_run(&pout, &perr, pt);
    cr_assert_eq(prc, 0, "promtool check metrics: %s %s", pout ? pout : "", perr ? perr : "");
    free(pout);
    free(perr);
    free(mpath);
    free(want);
    cr_assert_eq(server_down(&s), 0);
}

/* The official openai npm client: chat and completions, streaming and not, logprobs, usage. */
Test(serve, openai_client)
{
    const char *pkg = oracle_node_file("openai/package.json");
    if (!pkg)
        return;
    char script[4096];
    snprintf(script, sizeof script, "%s/interop/openai_client.mjs",
             getenv("SLM_TESTDIR") && *getenv("SLM_TESTDIR") ? getenv("SLM_TESTDIR") : "tests");
    server s;
    server_up(&s);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", s.port);
    const char *argv[] = {"timeout", "120", "node", script, base, NULL};
    char *out = NULL, *err = NULL;
    int rc = tu_run(&out, &err, argv);
    cr_assert_eq(rc, 0, "openai client: %s", err ? err : "");
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "%s", out);
    cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "models"), 0)->valuestring, "m.gguf");
    cJSON *chat = cJSON_GetObjectItem(j, "chat"), *cs = cJSON_GetObjectItem(j, "chatStream");
    cr_assert_str_eq(cJSON_GetObjectItem(chat, "role")->valuestring, "assistant");
    cr_assert_str_eq(cJSON_GetObjectItem(chat, "finish")->valuestring, "length");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(chat, "usage"), "completion_tokens")->valueint, 12);
    cJSON *lps = cJSON_GetObjectItem(chat, "logprobs");
    cr_assert_eq(cJSON_GetArraySize(lps), 12);
    cJSON *t;
    cJSON_ArrayForEach(t, lps)
    {
        cr_assert_leq(cJSON_GetObjectItem(t, "logprob")->valuedouble, 0);
        cr_assert_eq(cJSON_GetObjectItem(t, "top")->valueint, 2);
    }
    /* streaming gives the same text; the usage chunk says the prompt came from the slot's cache */
    cr_assert_str_eq(cJSON_GetObjectItem(cs, "text")->valuestring, cJSON_GetObjectItem(chat, "text")->valuestring);
    cr_assert_str_eq(cJSON_GetObjectItem(cs, "finish")->valuestring, "length");
    cJSON *su = cJSON_GetObjectItem(cs, "usage");
    cr_assert_eq(cJSON_GetObjectItem(su, "completion_tokens")->valueint, 12);
    cr_assert_gt(cJSON_GetObjectItem(cJSON_GetObjectItem(su, "prompt_tokens_details"), "cached_tokens")->valueint, 0);
    /* completions: temperature 0 = slm run; greedy tokens are each the top alternative */
    char *want = run_text("Once upon a time", 16);
    cJSON *comp = cJSON_GetObjectItem(j, "comp");
    cr_assert_str_eq(cJSON_GetObjectItem(comp, "text")->valuestring, want);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "compStream"), "text")->valuestring, want);
    cJSON *toks = cJSON_GetObjectItem(comp, "tokens"), *tlp = cJSON_GetObjectItem(comp, "token_logprobs"),
          *top = cJSON_GetObjectItem(comp, "top");
    cr_assert_eq(cJSON_GetArraySize(toks), 16);
    for (int i = 0; i < 16; i++) {
        cJSON *alts = cJSON_GetArrayItem(top, i);
        double best = -1e30;
        cJSON *a;
        cJSON_ArrayForEach(a, alts) if (a->valuedouble > best) best = a->valuedouble;
        cr_assert_float_eq(cJSON_GetArrayItem(tlp, i)->valuedouble, best, 1e-6, "token %d is not the argmax", i);
    }
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "refused"), "status")->valueint, 400);
    cJSON_Delete(j);
    free(want);
    free(out);
    free(err);
    cr_assert_eq(server_down(&s), 0);
}

/* Hostile HTTP: each gets a 4xx with a JSON error body, and the server stays up. */
Test(serve, hostile_requests)
{
    char *key = tu_path(g_dir, "key");
    tu_write_file(key, "s3cret-key\n", 11);
    const char *args[] = {"--api-key-file", key, "--max-body", "65536", "--timeout", "2", NULL};
    server s;
    server_up_args(&s, args);
    const char *auth = "Authorization: Bearer s3cret-key\r\n";
    const char *C = "/v1/completions", *CH = "/v1/chat/completions";
    /* authentication */
    expect_error(post(s.port, C, "{\"prompt\":\"x\",\"max_tokens\":1}"), 401, "no key");
    expect_error(http(s.port, "POST", C, "Authorization: Bearer s3cret-kez\r\n", "{\"prompt\":\"x\"}", 14), 401, "wrong key");
    expect_error(http(s.port, "POST", C, "Authorization: Bearer s3cret-key-longer\r\n", "{\"prompt\":\"x\"}", 14), 401,
                 "longer key");
    expect_error(http(s.port, "GET", "/v1/models", "", NULL, 0), 401, "models without key");
    resp r = http(s.port, "GET", "/health", "", NULL, 0); /* probes need no key */
    cr_assert_eq(r.status, 200);
    resp_free(&r);
#define BAD(path, body, status, what) \
    expect_error(http(s.port, "POST", path, auth, body, sizeof(body) - 1), status, what)
    BAD(C, "{\"prompt\": \"x\", ", 400, "truncated JSON");
    BAD(C, "not json at all", 400, "not JSON");
    BAD(C, "[1,2,3]", 400, "not an object");
    BAD(C, "", 400, "empty body");
    BAD(C, "{\"prompt\":\"x\"} trailing", 400, "trailing bytes");
    BAD(C, "{\"prompt\":\"\xff\xfe bad utf8\"}", 400, "invalid UTF-8 (raw bytes)");
    BAD(C, "{\"prompt\":\"\xc0\xaf overlong\"}", 400, "overlong UTF-8");
    BAD(C, "{\"prompt\":\"\\ud800 lone surrogate\"}", 400, "lone surrogate escape");
    BAD(C, "{\"prompt\":\"x\",\"max_tokens\":-1}", 400, "negative max_tokens");
    BAD(C, "{\"prompt\":\"x\",\"max_tokens\":0}", 400, "zero max_tokens");
    BAD(C, "{\"prompt\":\"x\",\"max_tokens\":1e300}", 400, "huge max_tokens");
    BAD(C, "{\"prompt\":\"x\",\"max_tokens\":100000}", 400, "max_tokens beyond the context");
    BAD(C, "{\"prompt\":\"x\",\"max_tokens\":2.5}", 400, "fractional max_tokens");
    BAD(C, "{\"prompt\":\"x\",\"max_tokens\":\"10\"}", 400, "string max_tokens");
    BAD(C, "{\"prompt\":\"x\",\"temperature\":-1}", 400, "negative temperature");
    BAD(C, "{\"prompt\":\"x\",\"top_p\":7}", 400, "top_p > 1");
    BAD(C, "{\"prompt\":\"x\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", 400, "5 stop sequences");
    BAD(C, "{\"prompt\":\"x\",\"stop\":[\"\"]}", 400, "empty stop sequence");
    BAD(C, "{\"prompt\":\"x\",\"logprobs\":9}", 400, "logprobs > 5");
    BAD(C, "{\"prompt\":\"x\",\"n\":3}", 400, "n > 1");
    BAD(C, "{\"prompt\":[1,2,3]}", 400, "token-array prompt");
    BAD(C, "{\"max_tokens\":3}", 400, "no prompt");
    BAD(CH, "{\"messages\":[]}", 400, "no messages");
    BAD(CH, "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", 400, "unknown role");
    BAD(CH, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", 400, "image part");
    BAD(CH, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":3}", 400, "top_logprobs alone");
    BAD(CH, "{\"messages\":\"hello\"}", 400, "messages not an array");
    /* deep nesting is refused by the parser, not by the stack */
    size_t dn = 60000;
    char *deep = malloc(dn + 1);
    memset(deep, '[', dn);
    deep[dn] = 0;
    expect_error(http(s.port, "POST", C, auth, deep, dn), 400, "deeply nested JSON");
    free(deep);
    /* a body over --max-body: 413 (announced by Content-Length, and sent) */
    size_t big = 300000;
    char *huge = malloc(big);
    memset(huge, 'a', big);
    memcpy(huge, "{\"prompt\":\"", 11);
    r = http(s.port, "POST", C, auth, huge, big);
    cr_assert_eq(r.status, 413, "huge body: %d %.200s", r.status, r.body);
    cr_assert_not_null(strstr(r.body, "\"error\""));
    resp_free(&r);
    free(huge);
    /* wrong method, unknown path */
    expect_error(http(s.port, "GET", C, auth, NULL, 0), 405, "GET on completions");
    expect_error(http(s.port, "GET", "/v2/nothing", auth, NULL, 0), 404, "unknown path");
    /* unknown fields are ignored; a good key works */
    r = http(s.port, "POST", C, auth, "{\"prompt\":\"Once\",\"max_tokens\":2,\"frobnicate\":{\"x\":[1]},\"user\":\"u\"}", 66);
    cr_assert_eq(r.status, 200, "%s", r.body);
    char route[128];
    cr_assert_not_null(header(&r, "X-Slm-Route", route, sizeof route));
    cr_assert_str_eq(route, "local; reason=ok");
    resp_free(&r);
    /* slow headers: a client that never finishes its request line is dropped after --timeout */
    int fd = connect_to(s.port, 10);
    cr_assert(fd >= 0);
    send_all(fd, "POST /v1/comp", 13);
    double t0 = now_s();
    char *rest = recv_all(fd, NULL);
    double dt = now_s() - t0;
    free(rest);
    close(fd);
    cr_assert_lt(dt, 8, "a slow-header client held its connection %.1f s (timeout 2 s)", dt);
    /* garbage that is not HTTP at all */
    fd = connect_to(s.port, 10);
    send_all(fd, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n", 22);
    free(recv_all(fd, NULL));
    close(fd);
    r = http(s.port, "GET", "/health", "", NULL, 0);
    cr_assert_eq(r.status, 200, "the server did not survive");
    resp_free(&r);
    free(key);
    cr_assert_eq(server_down(&s), 0);
}

/* Stop sequences cut the text (never sent, even partly, when streaming); a seed repeats a
 * sampled answer. */
Test(serve, stop_and_seed)
{
    server s;
    server_up(&s);
    char *full = run_text("Once upon a time", 24); /* ", there was a little boy named Tim. Tim ..." */
    const char *cut = strstr(full, " named");
    cr_assert_not_null(cut, "%s", full);
    char *want = strndup(full, (size_t)(cut - full));
    for (int stream = 0; stream < 2; stream++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0,\"stop\":[\"zzz\",\" named\"],"
                 "\"stream\":%s}", stream ? "true" : "false");
        char *out = curl_post(s.port, "/v1/completions", body, NULL);
        if (stream) {
            char *t = sse_text(out, NULL, NULL);
            cr_assert_str_eq(t, want);
            cr_assert(strstr(out, "\"finish_reason\":\"stop\""));
            free(t);
        } else {
            cJSON *j = cJSON_Parse(out);
            cr_assert_str_eq(text_of(j), want);
            cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0),
                                                 "finish_reason")->valuestring, "stop");
            cJSON_Delete(j);
        }
        free(out);
    }
    const char *seeded = "{\"prompt\":\"Once upon a time\",\"max_tokens\":20,\"temperature\":1.0,\"top_p\":0.9,\"seed\":42}";
    char *a = curl_post(s.port, "/v1/completions", seeded, NULL), *b = curl_post(s.port, "/v1/completions", seeded, NULL);
    cJSON *ja = cJSON_Parse(a), *jb = cJSON_Parse(b);
    cr_assert_str_eq(text_of(ja), text_of(jb));
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    free(a);
    free(b);
    free(want);
    free(full);
    cr_assert_eq(server_down(&s), 0);
}

/* ---- concurrency ---- */
typedef struct client_arg {
    int port, n_requests, status[64];
    double latency[64];
    const char *body;
    char *first_text; /* the text of the first 200 answer (malloc'd) */
} client_arg;

static void *client_main(void *p)
{
    client_arg *a = p;
    for (int i = 0; i < a->n_requests; i++) {
        double t0 = now_s();
        resp r = http_try(a->port, "POST", "/v1/completions", "", a->body, strlen(a->body));
        a->latency[i] = now_s() - t0;
        a->status[i] = r.status;
        if (r.status == 503) {
            char ra[32];
            if (!header(&r, "Retry-After", ra, sizeof ra))
                a->status[i] = -503; /* a 503 without Retry-After */
        }
        if (r.status == 200 && !a->first_text) {
            cJSON *j = cJSON_Parse(r.body);
            cJSON *c = j ? cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0) : NULL;
            cJSON *t = c ? cJSON_GetObjectItem(c, "text") : NULL;
            a->first_text = strdup(cJSON_IsString(t) ? t->valuestring : "<no text>");
            cJSON_Delete(j);
        }
        resp_free(&r);
    }
    return NULL;
}

/* Run n_clients threads of n_requests each; counts of 200 and 503 (each 503 with Retry-After). */
static void run_clients(int port, int n_clients, int n_requests, const char *body, client_arg *args, int *n200,
                        int *n503)
{
    pthread_t th[16];
    for (int c = 0; c < n_clients; c++) {
        memset(&args[c], 0, sizeof args[c]);
        args[c].port = port;
        args[c].n_requests = n_requests;
        args[c].body = body;
        pthread_create(&th[c], NULL, client_main, &args[c]);
    }
    *n200 = *n503 = 0;
    for (int c = 0; c < n_clients; c++) {
        pthread_join(th[c], NULL);
        for (int i = 0; i < n_requests; i++) {
            int st = args[c].status[i];
            cr_assert(st == 200 || st == 503, "client %d request %d: status %d (lost, hung or 503 without Retry-After)",
                      c, i, st);
            *n200 += st == 200;
            *n503 += st == 503;
        }
    }
}

/* A full queue answers 503 with Retry-After; nothing is lost. */
Test(serve, queue_full_503)
{
    const char *args[] = {"--max-queue", "1", "--parallel", "1", NULL};
    server s;
    server_up_args(&s, args);
    client_arg ca[8];
    int n200, n503;
    run_clients(s.port, 8, 1, "{\"prompt\":\"Once upon a time\",\"max_tokens\":400,\"ignore_eos\":true,\"temperature\":0}",
                ca, &n200, &n503);
    cr_assert_eq(n200 + n503, 8);
    cr_assert_geq(n200, 2, "the running and the queued request are answered");
    cr_assert_geq(n503, 1, "8 at once into 1 slot + 1 queue place: some must be refused");
    resp r = http(s.port, "GET", "/metrics", "", NULL, 0);
    char want[128];
    snprintf(want, sizeof want, "slm_rejected_total{reason=\"queue_full\"} %d", n503);
    cr_assert(strstr(r.body, want), "%s not in\n%s", want, r.body);
    resp_free(&r);
    for (int c = 0; c < 8; c++)
        free(ca[c].first_text);
    cr_assert_eq(server_down(&s), 0);
}

/* --parallel 4: four requests at once all answered, each as greedy decoding alone gives it. */
Test(serve, parallel_slots_agree)
{
    const char *args[] = {"--parallel", "4", NULL};
    server s;
    server_up_args(&s, args);
    char *want = run_text("Once upon a time", 40);
    client_arg ca[4];
    int n200, n503;
    run_clients(s.port, 4, 2, "{\"prompt\":\"Once upon a time\",\"max_tokens\":40,\"temperature\":0}", ca, &n200, &n503);
    cr_assert_eq(n200, 8);
    for (int c = 0; c < 4; c++) {
        cr_assert_str_eq(ca[c].first_text, want, "client %d", c);
        free(ca[c].first_text);
    }
    resp r = http(s.port, "GET", "/metrics", "", NULL, 0);
    cr_assert(strstr(r.body, "slm_slots 4"), "%s", r.body);
    cr_assert(strstr(r.body, "slm_generated_tokens_total 320"), "%s", r.body);
    resp_free(&r);
    free(want);
    cr_assert_eq(server_down(&s), 0);
}

/* --parallel 4 with eight different prompts and lengths at once: the slots run batched steps
 * (slm_decode_multi) of 2-4 sequences of different lengths that join and leave, and every
 * temperature-0 answer is the text of `slm run --temp 0` for its own prompt. */
static int metric_value(int port, const char *series);

typedef struct batched_req {
    int port, max_tokens;
    const char *prompt;
    int status;
    char *text;
} batched_req;

static void *batched_main(void *arg)
{
    batched_req *q = arg;
    char body[512];
    snprintf(body, sizeof body, "{\"prompt\":\"%s\",\"max_tokens\":%d,\"temperature\":0}", q->prompt, q->max_tokens);
    resp r = http_try(q->port, "POST", "/v1/completions", "", body, strlen(body));
    q->status = r.status;
    cJSON *j = r.status == 200 ? cJSON_Parse(r.body) : NULL;
    cJSON *c = j ? cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0) : NULL;
    cJSON *t = c ? cJSON_GetObjectItem(c, "text") : NULL;
    q->text = strdup(cJSON_IsString(t) ? t->valuestring : "<no text>");
    cJSON_Delete(j);
    resp_free(&r);
    return NULL;
}

Test(serve, parallel_batched_equals_run)
{
    static const char *prompts[8] = {"Once upon a time", "The little dog", "One day, a girl named Lily went",
                                     "Tom had a red ball", "The sun was", "In a small house near the big forest there lived",
                                     "Sam", "Mom said"};
    const char *args[] = {"--parallel", "4", "--max-queue", "8", NULL};
    server s;
    server_up_args(&s, args);
    batched_req q[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        q[i] = (batched_req){.port = s.port, .max_tokens = 12 + 5 * i, .prompt = prompts[i]};
        pthread_create(&th[i], NULL, batched_main, &q[i]);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    int tokens = metric_value(s.port, "\nslm_decode_tokens_total "),
        steps = metric_value(s.port, "\nslm_decode_steps_total ");
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(q[i].status, 200, "request %d: status %d", i, q[i].status);
        char *want = run_text(prompts[i], q[i].max_tokens);
        cr_assert_str_eq(q[i].text, want, "request %d (%s): served text differs from slm run --temp 0", i, prompts[i]);
        free(want);
        free(q[i].text);
    }
    cr_assert_gt(steps, 0);
    cr_assert_gt(tokens, steps, "decode steps ran more than one slot at a time (%d tokens in %d steps)", tokens, steps);
    cr_assert_eq(server_down(&s), 0);
}

/* --cache-type-k q8_0 --cache-type-v q8_0 (docs/kvcache.md): four requests on two slots (the
 * batched multi-sequence decode) answer what `slm run --temp 0` with the same caches prints */
Test(serve, cache_type_q8_0_answers)
{
    static const char *prompts[4] = {"Once upon a time", "The little dog", "Tom had a red ball", "Mom said"};
    const char *args[] = {"--parallel", "2", "--cache-type-k", "q8_0", "-ctv", "q8_0", NULL};
    server s;
    server_up_args(&s, args);
    batched_req q[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        q[i] = (batched_req){.port = s.port, .max_tokens = 16 + 4 * i, .prompt = prompts[i]};
        pthread_create(&th[i], NULL, batched_main, &q[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(q[i].status, 200, "request %d: status %d", i, q[i].status);
        char nb[16];
        snprintf(nb, sizeof nb, "%d", q[i].max_tokens);
        const char *ra[] = {"run", "-m", g_gguf, "-p", prompts[i], "-n", nb, "--temp", "0", "-t", "1", "-ctk", "q8_0",
                            "-ctv", "q8_0", NULL};
        char *want = NULL, *err = NULL;
        cr_assert_eq(tu_run_slm(&want, &err, ra), 0, "slm run: %s", err ? err : "");
        size_t len = strlen(want);
        if (len && want[len - 1] == '\n')
            want[len - 1] = 0;
        cr_assert(strlen(q[i].text) > 10, "request %d: a short answer '%s'", i, q[i].text);
        cr_assert_str_eq(q[i].text, want, "request %d (%s): served text differs from slm run -ctk q8_0", i, prompts[i]);
        free(want), free(err), free(q[i].text);
    }
    cr_assert_eq(server_down(&s), 0);
}

static int metric_value(int port, const char *series)
{
    resp r = http(port, "GET", "/metrics", "", NULL, 0);
    /* the sample line, never the "# HELP name ..." line above it (which atoi reads as 0) */
    char key[512];
    snprintf(key, sizeof key, "%s%s", series[0] == '\n' ? "" : "\n", series);
    const char *p = strstr(r.body, key);
    int v = p ? atoi(p + strlen(key)) : -1;
    resp_free(&r);
    return v;
}

/* A client that disconnects mid-stream (or while waiting) stops its generation. */
Test(serve, disconnect_cancels)
{
    server s;
    server_up(&s);
    const char *body = "{\"prompt\":\"Once upon a time\",\"max_tokens\":480,\"ignore_eos\":true,\"stream\":true}";
    for (int round = 1; round <= 2; round++) {
        int fd = connect_to(s.port, 10);
        char head[512];
        int hn = snprintf(head, sizeof head,
                          "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
        send_all(fd, head, (size_t)hn);
        char buf[256];
        ssize_t got = recv(fd, buf, sizeof buf, 0); /* the first bytes of the stream */
        cr_assert_gt(got, 0);
        close(fd);
        double t0 = now_s();
        while (metric_value(s.port, "slm_cancelled_total{reason=\"client_gone\"} ") < round && now_s() - t0 < 10)
            usleep(20000);
        cr_assert_eq(metric_value(s.port, "slm_cancelled_total{reason=\"client_gone\"} "), round);
        cr_assert_eq(metric_value(s.port, "slm_slots_busy "), 0);
    }
    cr_assert_lt(metric_value(s.port, "slm_generated_tokens_total "), 2 * 480, "the cancelled streams ran to the end");
    cr_assert_eq(server_down(&s), 0);
}

typedef struct drain_arg {
    int port;
    resp r;
} drain_arg;
static void *drain_client(void *p)
{
    drain_arg *a = p;
    const char *b = "{\"prompt\":\"Once upon a time\",\"max_tokens\":480,\"ignore_eos\":true}";
    a->r = http_try(a->port, "POST", "/v1/completions", "", b, strlen(b));
    return NULL;
}

/* SIGTERM while a request runs: it is answered in full, then the server exits 0. */
Test(serve, sigterm_drains)
{
    server s;
    server_up(&s);
    drain_arg a = {.port = s.port};
    pthread_t th;
    pthread_create(&th, NULL, drain_client, &a);
    double t0 = now_s();
    while (metric_value(s.port, "slm_slots_busy ") != 1 && now_s() - t0 < 10)
        usleep(5000);
    cr_assert_eq(server_down(&s), 0);
    pthread_join(th, NULL);
    cr_assert_eq(a.r.status, 200, "in-flight request during SIGTERM: %d %s", a.r.status, a.r.body);
    cJSON *j = cJSON_Parse(a.r.body);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "completion_tokens")->valueint, 480);
    cJSON_Delete(j);
    resp_free(&a.r);
    /* and nothing listens any more */
    cr_assert_lt(connect_to(s.port, 2), 0);
}

/* ---- cloud fallback: a second slm serve on another loopback port plays the cloud ---- */
static int upstream_requests(int port)
{
    int a = metric_value(port, "slm_http_requests_total{endpoint=\"completions\",code=\"200\"} ");
    int b = metric_value(port, "slm_http_requests_total{endpoint=\"chat\",code=\"200\"} ");
    return (a < 0 ? 0 : a) + (b < 0 ? 0 : b);
}

static void expect_route(resp *r, int status, const char *route, const char *what)
{
    char got[128];
    cr_assert_eq(r->status, status, "%s: status %d: %.300s", what, r->status, r->body);
    cr_assert_not_null(header(r, "X-Slm-Route", got, sizeof got), "%s: no X-Slm-Route", what);
    cr_assert_str_eq(got, route, "%s", what);
}

Test(serve, fallback_every_route_reason)
{
    server cloud, local, unsure, small;
    server_up_args(&cloud, (const char *[]){"--alias", "cloud", NULL});
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", cloud.port);
    server_up_args(&local, (const char *[]){"-c", "32", "--fallback", url, "--fallback-confidence", "0", NULL});
    const char *long_req = "{\"prompt\":\"Once upon a time\",\"max_tokens\":40,\"temperature\":0}";
    const char *private_req = "{\"prompt\":\"Once upon a time CANARY-7f3a\",\"max_tokens\":40,\"private\":true}";
    /* context: prompt + max_tokens > 32 */
    resp r = post(local.port, "/v1/completions", long_req);
    expect_route(&r, 200, "fallback; reason=context", "context");
    cJSON *j = json_of(&r);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "model")->valuestring, "cloud");
    cJSON_Delete(j);
    resp_free(&r);
    cr_assert_eq(upstream_requests(cloud.port), 1);
    r = post(local.port, "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a long story please\"}],\"max_tokens\":30,\"stream\":true}");
    expect_route(&r, 200, "fallback; reason=context", "streamed chat, context");
    free(sse_text(r.body, NULL, NULL));
    resp_free(&r);
    cr_assert_eq(upstream_requests(cloud.port), 2);
    /* private: fails closed, the upstream never sees it (body flag or header) */
    r = post(local.port, "/v1/completions", private_req);
    expect_route(&r, 422, "local; reason=private_context", "private, context");
    cr_assert(strstr(r.body, "private"), "%s", r.body);
    resp_free(&r);
    r = http(local.port, "POST", "/v1/completions", "X-Slm-Private: 1\r\n", long_req, strlen(long_req));
    expect_route(&r, 422, "local; reason=private_context", "X-Slm-Private header");
    resp_free(&r);
    /* within the context: local */
    r = post(local.port, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":8}");
    expect_route(&r, 200, "local; reason=ok", "fits");
    resp_free(&r);
    cr_assert_eq(upstream_requests(cloud.port), 2, "a private or local request reached the upstream");

    /* low confidence: with P = 1 every answer defers; a private one stays local */
    server_up_args(&unsure, (const char *[]){"--fallback", url, "--fallback-confidence", "1", NULL});
    r = post(unsure.port, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":8}");
    expect_route(&r, 200, "fallback; reason=low_confidence", "low confidence");
    resp_free(&r);
    r = post(unsure.port, "/v1/completions", "{\"prompt\":\"Once upon a time CANARY-7f3a\",\"max_tokens\":8,\"private\":true}");
    expect_route(&r, 200, "local; reason=private_low_confidence", "private, low confidence");
    resp_free(&r);
    cr_assert_eq(upstream_requests(cloud.port), 3);

    /* memory: the model does not fit --mem-budget: not loaded, everything to the fallback */
    server_up_args(&small, (const char *[]){"--fallback", url, "--mem-budget", "64K", NULL});
    r = post(small.port, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":8}");
    expect_route(&r, 200, "fallback; reason=memory", "memory");
    resp_free(&r);
    r = post(small.port, "/v1/completions", private_req);
    expect_route(&r, 422, "local; reason=private_memory", "private, memory");
    resp_free(&r);
    cr_assert_eq(upstream_requests(cloud.port), 4, "exactly the non-private requests reached the upstream");
    cr_assert_eq(metric_value(local.port, "slm_route_total{route=\"fallback\",reason=\"context\"} "), 2);
    cr_assert_eq(metric_value(small.port, "slm_route_total{route=\"fallback\",reason=\"memory\"} "), 1);
    cr_assert_eq(server_down(&small), 0);
    cr_assert_eq(server_down(&unsure), 0);
    cr_assert_eq(server_down(&local), 0);
    cr_assert_eq(server_down(&cloud), 0);
}

/* A fake upstream: a loopback listener; mode 0 never accepts (slow), 1 answers garbage. */
typedef struct fake_up {
    int lfd, port, mode, served;
    volatile int stop;
} fake_up;

static void *fake_main(void *p)
{
    fake_up *f = p;
    while (!f->stop) {
        struct pollfd pf = {.fd = f->lfd, .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        int c = accept(f->lfd, NULL, NULL);
        if (c < 0)
            continue;
        struct timeval tv = {2, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char buf[8192];
        (void)!recv(c, buf, sizeof buf, 0);
        const char *g = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n{\"not\": \"a completion\"";
        send_all(c, g, strlen(g));
        close(c);
        f->served++;
    }
    return NULL;
}

static void fake_start(fake_up *f, int mode, pthread_t *th)
{
    memset(f, 0, sizeof *f);
    f->mode = mode;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(f->lfd, 8), 0);
    socklen_t al = sizeof a;
    getsockname(f->lfd, (struct sockaddr *)&a, &al);
    f->port = ntohs(a.sin_port);
    if (mode == 1)
        pthread_create(th, NULL, fake_main, f);
}

/* A fake upstream that answers a stream's headers and one event, then stalls (holds the
 * connection open, silent, until stop). */
static void *stall_main(void *p)
{
    fake_up *f = p;
    int held[8], nh = 0;
    while (!f->stop) {
        struct pollfd pf = {.fd = f->lfd, .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        int c = accept(f->lfd, NULL, NULL);
        if (c < 0)
            continue;
        struct timeval tv = {2, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char buf[8192];
        (void)!recv(c, buf, sizeof buf, 0);
        const char *g = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
                        "data: {\"object\":\"text_completion\",\"choices\":[{\"index\":0,\"text\":\"Once\"}]}\n\n";
        send_all(c, g, strlen(g));
        f->served++;
        if (nh < 8)
            held[nh++] = c;
        else
            close(c);
    }
    for (int i = 0; i < nh; i++)
        close(held[i]);
    return NULL;
}

/* POST a streamed request on a raw connection and read until its first two events (the first
 * carrying text) are complete: returns the fd (still open) and the bytes so far. */
static int stream_first_event(int port, const char *path, const char *json, char **raw, size_t *n)
{
    int fd = connect_to(port, 60);
    cr_assert(fd >= 0);
    char head[512];
    int hn = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n", path, strlen(json));
    cr_assert_eq(send_all(fd, head, (size_t)hn), 0);
    cr_assert_eq(send_all(fd, json, strlen(json)), 0);
    size_t cap = 1 << 16, k = 0;
    char *b = malloc(cap);
    for (;;) {
        b[k] = 0;
        int events = 0; /* complete events so far; the first one may be a role chunk without text */
        for (const char *d = strstr(b, "data: "); d && strstr(d, "\n\n"); d = strstr(strstr(d, "\n\n"), "data: "))
            events++;
        if (events >= 2)
            break;
        cr_assert(k + 1 < cap, "no complete event in %zu bytes", k);
        ssize_t r = recv(fd, b + k, cap - k - 1, 0);
        cr_assert_gt(r, 0, "the stream ended (or timed out) before its first event: %s", b);
        k += (size_t)r;
    }
    *raw = b;
    *n = k;
    return fd;
}

/* The rest of the stream after stream_first_event, to the end; parsed. */
static resp stream_rest(int fd, char *raw, size_t n)
{
    size_t m = 0;
    char *rest = recv_all(fd, &m);
    close(fd);
    char *all = malloc(n + m + 1);
    memcpy(all, raw, n);
    memcpy(all + n, rest, m);
    all[n + m] = 0;
    resp r;
    parse_resp(all, n + m, &r);
    free(all), free(rest), free(raw);
    return r;
}

/* A stream routed upstream is relayed event by event: the client holds the first event while
 * the upstream (a second slm serve, 480 tokens on one thread) is still generating; then the
 * whole stream arrives, ending with [DONE]. A stalled upstream ends the stream with an error
 * event and [DONE]; a silent one gives 502. */
Test(serve, fallback_stream_relayed_incrementally)
{
    server cloud, front;
    server_up_args(&cloud, (const char *[]){"--alias", "cloud", "-t", "1", NULL});
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", cloud.port);
    server_up_args(&front, (const char *[]){"-c", "32", "--fallback", url, "--fallback-confidence", "0", NULL});
    const char *req = "{\"prompt\":\"Once upon a time\",\"max_tokens\":480,\"ignore_eos\":true,\"stream\":true}";
    char *raw = NULL;
    size_t n = 0;
    int fd = stream_first_event(front.port, "/v1/completions", req, &raw, &n);
    cr_assert(strstr(raw, "X-Slm-Route: fallback; reason=context"), "%s", raw);
    /* the first text is here, the upstream has not finished its answer (it counts its tokens
     * when it finishes) */
    cr_assert_eq(metric_value(cloud.port, "\nslm_generated_tokens_total "), 0,
                 "the first relayed events reached the client only after the upstream finished");
    resp r = stream_rest(fd, raw, n);
    cr_assert_eq(r.status, 200);
    int events = 0;
    free(sse_text(r.body, &events, NULL));
    cr_assert_geq(events, 100, "%d events", events);
    resp_free(&r);
    cr_assert_eq(metric_value(cloud.port, "\nslm_generated_tokens_total "), 480);
    cr_assert_eq(server_down(&front), 0);

    /* stalled after one event: that event, then an error event, then [DONE] (bounded by
     * --fallback-timeout 2; the client's own timeout, 60 s, would leave [DONE] missing) */
    fake_up stall, silent;
    pthread_t th;
    fake_start(&stall, 2, NULL);
    pthread_create(&th, NULL, stall_main, &stall);
    fake_start(&silent, 0, NULL);
    const int ports[2] = {stall.port, silent.port};
    for (int k = 0; k < 2; k++) {
        snprintf(url, sizeof url, "http://127.0.0.1:%d", ports[k]);
        server_up_args(&front, (const char *[]){"-c", "32", "--fallback", url, "--fallback-timeout", "2",
                                                "--fallback-confidence", "0", NULL});
        r = post(front.port, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":40,\"stream\":true}");
        if (k == 0) {
            expect_route(&r, 200, "fallback; reason=context", "stalled upstream");
            cr_assert(strstr(r.body, "data: {\"object\":\"text_completion\""), "%s", r.body);
            cr_assert(strstr(r.body, "\"code\":\"upstream_failed\""), "%s", r.body);
            free(sse_text(r.body, NULL, NULL)); /* well framed, ends with [DONE] */
        } else {
            expect_route(&r, 502, "fallback; reason=context", "silent upstream");
        }
        resp_free(&r);
        cr_assert_eq(metric_value(front.port, "slm_rejected_total{reason=\"upstream_failed\"} "), 1);
        cr_assert_eq(server_down(&front), 0);
    }
    stall.stop = 1;
    pthread_join(th, NULL);
    close(stall.lfd);
    close(silent.lfd);
    cr_assert_eq(server_down(&cloud), 0);
}

/* Low confidence for streams: nothing is sent until the first K (16) tokens are generated; their
 * confidence below P relays the upstream's stream (route in the headers), a private request
 * streams locally, a silent upstream leaves the local stream (low_confidence_upstream_failed),
 * --fallback-stream-tokens 0 streams at once and never defers. */
Test(serve, fallback_low_confidence_stream)
{
    server cloud, unsure;
    server_up_args(&cloud, (const char *[]){"--alias", "cloud", NULL});
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", cloud.port);
    const char *req = "{\"prompt\":\"Once upon a time\",\"max_tokens\":40,\"temperature\":0,\"stream\":true}";
    resp r = post(cloud.port, "/v1/completions", req);
    cr_assert_eq(r.status, 200);
    char *want = sse_text(r.body, NULL, NULL);
    resp_free(&r);
    char *local = run_text("Once upon a time", 40);
    server_up_args(&unsure, (const char *[]){"--fallback", url, "--fallback-confidence", "1", NULL});
    r = post(unsure.port, "/v1/completions", req);
    expect_route(&r, 200, "fallback; reason=low_confidence", "stream, low confidence");
    char *got = sse_text(r.body, NULL, NULL);
    cr_assert_str_eq(got, want);
    free(got);
    resp_free(&r);
    cr_assert_eq(upstream_requests(cloud.port), 2);
    const char *preq = "{\"prompt\":\"Once upon a time\",\"max_tokens\":40,\"temperature\":0,\"stream\":true,\"private\":true}";
    r = post(unsure.port, "/v1/completions", preq);
    expect_route(&r, 200, "local; reason=private_low_confidence", "private stream, low confidence");
    got = sse_text(r.body, NULL, NULL);
    cr_assert_str_eq(got, local);
    free(got);
    resp_free(&r);
    cr_assert_eq(upstream_requests(cloud.port), 2, "a private stream reached the upstream");
    cr_assert_eq(metric_value(unsure.port, "slm_route_total{route=\"fallback\",reason=\"low_confidence\"} "), 1);
    cr_assert_eq(server_down(&unsure), 0);

    server_up_args(&unsure, (const char *[]){"--fallback", url, "--fallback-confidence", "1", "--fallback-stream-tokens",
                                             "0", NULL});
    r = post(unsure.port, "/v1/completions", req);
    expect_route(&r, 200, "local; reason=ok", "stream, K = 0");
    resp_free(&r);
    cr_assert_eq(server_down(&unsure), 0);
    cr_assert_eq(upstream_requests(cloud.port), 2);

    fake_up silent;
    fake_start(&silent, 0, NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", silent.port);
    server_up_args(&unsure, (const char *[]){"--fallback", url, "--fallback-confidence", "1", "--fallback-timeout", "2", NULL});
    r = post(unsure.port, "/v1/completions", req);
    expect_route(&r, 200, "local; reason=low_confidence_upstream_failed", "stream, silent upstream");
    got = sse_text(r.body, NULL, NULL);
    cr_assert_str_eq(got, local);
    free(got);
    resp_free(&r);
    cr_assert_eq(server_down(&unsure), 0);
    close(silent.lfd);
    cr_assert_eq(server_down(&cloud), 0);
    free(want), free(local);
}

/* Upstream down, silent or answering garbage: a bounded 502 (or the local answer), never a hang. */
Test(serve, fallback_upstream_failures)
{
    fake_up slow, garbage;
    pthread_t th;
    fake_start(&slow, 0, NULL);
    fake_start(&garbage, 1, &th);
    int closed_port;
    {
        fake_up tmp;
        fake_start(&tmp, 0, NULL);
        closed_port = tmp.port;
        close(tmp.lfd); /* nothing listens there now */
    }
    const int ports[3] = {closed_port, slow.port, garbage.port};
    const char *names[3] = {"down", "slow", "garbage"};
    for (int k = 0; k < 3; k++) {
        char url[64];
        snprintf(url, sizeof url, "http://127.0.0.1:%d", ports[k]);
        server s;
        server_up_args(&s, (const char *[]){"-c", "32", "--fallback", url, "--fallback-timeout", "2",
                                            "--fallback-confidence", "1", NULL});
        double t0 = now_s();
        resp r = post(s.port, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":40}");
        double dt = now_s() - t0;
        expect_route(&r, 502, "fallback; reason=context", names[k]);
        cr_assert(strstr(r.body, "fallback failed"), "%s: %s", names[k], r.body);
        cr_assert_lt(dt, 6, "%s upstream: the client waited %.1f s (timeout 2 s)", names[k], dt);
        resp_free(&r);
        /* after local generation: the local answer, saying the upstream failed */
        r = post(s.port, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":8}");
        expect_route(&r, 200, "local; reason=low_confidence_upstream_failed", names[k]);
        resp_free(&r);
        cr_assert_eq(server_down(&s), 0);
    }
    cr_assert_geq(garbage.served, 2);
    garbage.stop = 1;
    pthread_join(th, NULL);
    close(garbage.lfd);
    close(slow.lfd);
}

/* ---- telemetry ---- */
typedef struct sink {
    int lfd, port, conns;
    char buf[1 << 16];
    size_t n;
    volatile int stop;
} sink;

static void *sink_main(void *p)
{
    sink *s = p;
    while (!s->stop) {
        struct pollfd pf = {.fd = s->lfd, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        int c = accept(s->lfd, NULL, NULL);
        if (c < 0)
            continue;
        s->conns++;
        struct timeval tv = {1, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        for (;;) { /* headers + body: until Content-Length is satisfied or a quiet second */
            ssize_t r = recv(c, s->buf + s->n, sizeof s->buf - 1 - s->n, 0);
            if (r <= 0)
                break;
            s->n += (size_t)r;
            s->buf[s->n] = 0;
            const char *h = strstr(s->buf, "\r\n\r\n"), *cl = strcasestr(s->buf, "Content-Length:");
            if (h && cl && s->n >= (size_t)(h + 4 - s->buf) + strtoul(cl + 15, NULL, 10))
                break;
        }
        const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        send_all(c, ok, strlen(ok));
        close(c);
    }
    return NULL;
}

static void sink_start(sink *s, pthread_t *th)
{
    memset(s, 0, sizeof *s);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(s->lfd, 8), 0);
    socklen_t al = sizeof a;
    getsockname(s->lfd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    pthread_create(th, NULL, sink_main, s);
}

static void sink_stop(sink *s, pthread_t th)
{
    s->stop = 1;
    pthread_join(th, NULL);
    close(s->lfd);
}

static char *slm_out(const char *const *args)
{
    char *out = NULL, *err = NULL;
    int rc = tu_run_slm(&out, &err, args);
    cr_assert_eq(rc, 0, "slm %s: %s", args[0], err ? err : "");
    free(err);
    return out;
}

#define CANARY "CANARY-51f0c2d9"

static void canary_traffic(int port)
{
    resp r = post(port, "/v1/completions", "{\"prompt\":\"" CANARY " Once upon a time\",\"max_tokens\":6,\"stop\":[\"" CANARY "\"]}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    r = post(port, "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"" CANARY "\"}],\"max_tokens\":4,"
                                           "\"model\":\"" CANARY "\",\"user\":\"" CANARY "\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    expect_error(post(port, "/v1/completions", "{\"prompt\":\"" CANARY "\",\"max_tokens\":-1}"), 400, "bad request");
    r = http(port, "GET", "/health", "", NULL, 0);
    resp_free(&r);
    r = http(port, "GET", "/metrics", "", NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_null(strstr(r.body, CANARY), "the canary reached /metrics");
    resp_free(&r);
}

/* A default install records nothing and opens no telemetry socket; SLM_TELEMETRY=0 beats "on". */
Test(serve, telemetry_off_by_default)
{
    char *tdir = tu_path(g_dir, "telemetry");
    setenv("SLM_TELEMETRY_DIR", tdir, 1);
    sink k;
    pthread_t th;
    sink_start(&k, &th);
    server s;
    server_up(&s);
    canary_traffic(s.port);
    cr_assert_eq(server_down(&s), 0);
    cr_assert(!tu_exists(tdir), "a default install created %s", tdir);
    char *st = slm_out((const char *[]){"telemetry", "status", "--json", NULL});
    cr_assert(strstr(st, "\"effective\":\"off\""), "%s", st);
    free(st);
    /* on with an endpoint, but the environment forbids it */
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", k.port);
    free(slm_out((const char *[]){"telemetry", "on", "--endpoint", ep, NULL}));
    setenv("SLM_TELEMETRY", "0", 1);
    server_up(&s);
    canary_traffic(s.port);
    cr_assert_eq(server_down(&s), 0);
    char *spool = tu_path(tdir, "telemetry.jsonl");
    cr_assert(!tu_exists(spool), "SLM_TELEMETRY=0 still wrote the spool");
    usleep(200000);
    cr_assert_eq(k.conns, 0, "SLM_TELEMETRY=0 still connected to the endpoint");
    sink_stop(&k, th);
    unsetenv("SLM_TELEMETRY");
    free(spool);
    free(tdir);
}

/* On: one record per server run, counters only; the canary of the prompts never reaches the
 * spool, /metrics or the pushed bytes. */
Test(serve, telemetry_canary)
{
    char *tdir = tu_path(g_dir, "telemetry");
    setenv("SLM_TELEMETRY_DIR", tdir, 1);
    unsetenv("SLM_TELEMETRY");
    sink k;
    pthread_t th;
    sink_start(&k, &th);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", k.port);
    free(slm_out((const char *[]){"telemetry", "on", "--endpoint", ep, NULL}));
    char *st = slm_out((const char *[]){"telemetry", "status", "--json", NULL});
    cJSON *sj = cJSON_Parse(st);
    cr_assert_str_eq(cJSON_GetObjectItem(sj, "effective")->valuestring, "all");
    char id[40];
    snprintf(id, sizeof id, "%s", cJSON_GetObjectItem(sj, "install_id")->valuestring);
    cr_assert_eq(strlen(id), 32);
    cJSON_Delete(sj);
    free(st);
    server s;
    server_up(&s);
    canary_traffic(s.port);
    cr_assert_eq(server_down(&s), 0);
    char *spool_path = tu_path(tdir, "telemetry.jsonl");
    char *spool = tu_read_file(spool_path, NULL);
    cr_assert_not_null(spool, "no spool written");
    cr_assert_eq(tu_count_lines(spool), 1);
    cr_assert_null(strstr(spool, CANARY), "the canary reached the spool: %s", spool);
    cJSON *rec = cJSON_Parse(spool);
    cr_assert_not_null(rec, "%s", spool);
    cr_assert_str_eq(cJSON_GetObjectItem(rec, "install_id")->valuestring, id);
    cr_assert_eq(cJSON_GetObjectItem(rec, "requests")->valueint, 5, "%s", spool); /* 3 completions, health, metrics */
    cr_assert_eq(cJSON_GetObjectItem(rec, "errors")->valueint, 1);
    cr_assert_eq(cJSON_GetObjectItem(rec, "generated_tokens")->valueint, 10);
    cr_assert_eq(strlen(cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "model"), "digest")->valuestring), 64);
    cr_assert_eq(strlen(cJSON_GetObjectItem(rec, "day")->valuestring), 10, "timestamps are days");
    /* only known keys: nothing a client could have written */
    static const char *keys[] = {"v", "day", "install_id", "level", "source", "requests", "errors", "fallbacks",
                                 "health_checks", "prompt_tokens", "generated_tokens", "prefill_tps", "decode_tps",
                                 "ttft_seconds", "model", "device"};
    cJSON *it;
    cJSON_ArrayForEach(it, rec)
    {
        int known = 0;
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            known |= !strcmp(it->string, keys[i]);
        cr_assert(known, "unexpected field '%s' in the spool", it->string);
    }
    cJSON_Delete(rec);
    char *shown = slm_out((const char *[]){"telemetry", "show", NULL});
    cr_assert_str_eq(shown, spool);
    free(shown);
    /* the push: captured by the loopback sink */
    double t0 = now_s();
    while (!strstr(k.buf, "slm.requests") && now_s() - t0 < 5)
        usleep(20000);
    cr_assert(strstr(k.buf, "POST /v1/metrics"), "no push received: %s", k.buf);
    cr_assert(strstr(k.buf, "\"slm.requests\""), "%s", k.buf);
    cr_assert(strstr(k.buf, id), "the push does not carry the install id");
    cr_assert_null(strstr(k.buf, CANARY), "the canary reached the pushed bytes");
    free(slm_out((const char *[]){"telemetry", "push", NULL}));
    cr_assert_geq(k.conns, 2);
    cr_assert_null(strstr(k.buf, CANARY));
    /* a new id on request; off stops recording */
    free(slm_out((const char *[]){"telemetry", "reset-id", NULL}));
    st = slm_out((const char *[]){"telemetry", "status", "--json", NULL});
    cr_assert_null(strstr(st, id), "reset-id kept the id");
    free(st);
    free(slm_out((const char *[]){"telemetry", "off", NULL}));
    server_up(&s);
    canary_traffic(s.port);
    cr_assert_eq(server_down(&s), 0);
    char *after = tu_read_file(spool_path, NULL);
    cr_assert_str_eq(after, spool, "off still recorded");
    free(after);
    sink_stop(&k, th);
    free(spool);
    free(spool_path);
    free(tdir);
}

/* ---- --store and SIGHUP ---- */
static void slm_ok(const char *const *args) { free(slm_out(args)); }

static char *greedy_text(int port)
{
    resp r = post(port, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cJSON *j = json_of(&r);
    char *t = strdup(text_of(j));
    cJSON_Delete(j);
    resp_free(&r);
    return t;
}

/* serve --store: the installed model; install v2 (or --revert) + SIGHUP switches models without
 * dropping the request in flight. */
Test(serve, store_sighup_switch)
{
    char *key = tu_path(g_dir, "a.key"), *pub = tu_path(g_dir, "a.key.pub"), *root = tu_path(g_dir, "root.json");
    char *g1 = tu_path(g_dir, "v1.gguf"), *b1 = tu_path(g_dir, "v1.slmb"), *b2 = tu_path(g_dir, "v2.slmb");
    char *store = tu_path(g_dir, "store");
    slm_ok((const char *[]){"convert", tu_model("stories260k"), "-o", g1, "--outtype", "f16", NULL});
    slm_ok((const char *[]){"keygen", "-o", key, NULL});
    slm_ok((const char *[]){"trust", "init", "-o", root, "--key", pub, "--threshold", "1", "--sign-with", key, NULL});
    slm_ok((const char *[]){"bundle", g1, "-o", b1, "--name", "stories", "--version", "1", "--expires", "30d", "--key", key, NULL});
    slm_ok((const char *[]){"bundle", g_gguf, "-o", b2, "--name", "stories", "--version", "2", "--expires", "30d", "--key", key, NULL});
    slm_ok((const char *[]){"install", b1, "--store", store, "--trust", root, NULL});
    server s;
    server_up_args(&s, (const char *[]){"--store", store, NULL});
    char *v1 = greedy_text(s.port);
    /* a long request in flight across the switch */
    drain_arg a = {.port = s.port};
    pthread_t th;
    pthread_create(&th, NULL, drain_client, &a);
    double t0 = now_s();
    while (metric_value(s.port, "slm_slots_busy ") != 1 && now_s() - t0 < 10)
        usleep(5000);
    slm_ok((const char *[]){"install", b2, "--store", store, "--trust", root, NULL});
    kill(s.pid, SIGHUP);
    pthread_join(th, NULL);
    cr_assert_eq(a.r.status, 200, "the in-flight request was dropped: %d %s", a.r.status, a.r.body);
    cJSON *j = json_of(&a.r);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "completion_tokens")->valueint, 480);
    cJSON_Delete(j);
    resp_free(&a.r);
    t0 = now_s();
    while (metric_value(s.port, "slm_model_reloads_total ") < 1 && now_s() - t0 < 20)
        usleep(20000);
    char *v2 = greedy_text(s.port);
    char *want2 = run_text("Once upon a time", 12); /* g_gguf is v2's model */
    cr_assert_str_eq(v2, want2, "after SIGHUP the store's v2 answers");
    cr_assert_str_neq(v1, v2, "v1 and v2 must differ for this test to mean anything");
    /* revert + SIGHUP: v1 again */
    slm_ok((const char *[]){"install", "--revert", "--store", store, NULL});
    kill(s.pid, SIGHUP);
    t0 = now_s();
    while (metric_value(s.port, "slm_model_reloads_total ") < 2 && now_s() - t0 < 20)
        usleep(20000);
    char *v1b = greedy_text(s.port);
    cr_assert_str_eq(v1b, v1, "after --revert and SIGHUP the store's v1 answers");
    cr_assert_eq(server_down(&s), 0);
    free(v1); free(v2); free(v1b); free(want2);
    free(key); free(pub); free(root); free(g1); free(b1); free(b2); free(store);
}

/* SIGTERM while the main thread is busy reloading (SIGHUP just before): the server still drains
 * and exits 0. With a blocked mask + sigwait, such a signal went to a thread made before main
 * (OpenBLAS's pool, which does not block it) and killed the process (exit 143) in 1 of 3-10
 * tries at a 1 ms gap on this machine; the handler + pipe takes it in any thread. */
Test(serve, sigterm_during_reload_stops_cleanly)
{
    char *key = tu_path(g_dir, "r.key"), *pub = tu_path(g_dir, "r.key.pub"), *root = tu_path(g_dir, "rroot.json");
    char *b1 = tu_path(g_dir, "r1.slmb"), *store = tu_path(g_dir, "rstore");
    slm_ok((const char *[]){"keygen", "-o", key, NULL});
    slm_ok((const char *[]){"trust", "init", "-o", root, "--key", pub, "--threshold", "1", "--sign-with", key, NULL});
    slm_ok((const char *[]){"bundle", g_gguf, "-o", b1, "--name", "st", "--version", "1", "--expires", "30d", "--key", key, NULL});
    slm_ok((const char *[]){"install", b1, "--store", store, "--trust", root, NULL});
    for (int i = 0; i < 16; i++) {
        server s;
        server_up_args(&s, (const char *[]){"--store", store, NULL});
        kill(s.pid, SIGHUP);
        usleep(1000 + 250 * (i % 4));
        int rc = server_down(&s);
        cr_assert_eq(rc, 0, "try %d: slm serve exited %d on SIGTERM during a reload: %s", i, rc,
                     tu_read_file(s.errpath, NULL));
    }
    free(key); free(pub); free(root); free(b1); free(store);
}

/* --help, usage errors (exit 2), a bad model (exit 3), a port already taken (exit 4). */
Test(serve, cli_usage_and_errors)
{
    char *out = slm_out((const char *[]){"serve", "--help", NULL});
    cr_assert(strstr(out, "--fallback URL") && strstr(out, "--parallel N"), "%s", out);
    free(out);
    out = slm_out((const char *[]){"telemetry", "--help", NULL});
    cr_assert(strstr(out, "SLM_TELEMETRY=0"), "%s", out);
    free(out);
    static const char *const bad[][8] = {
        {"serve", NULL},
        {"serve", "-m", "x.gguf", "--port", "70000", NULL},
        {"serve", "-m", "x.gguf", "--parallel", "0", NULL},
        {"serve", "-m", "x.gguf", "--fallback", "ftp://x", NULL},
        {"serve", "-m", "x.gguf", "--fallback-confidence", "0.5", NULL},
        {"serve", "-m", "x.gguf", "--mem-budget", "lots", NULL},
        {"serve", "-m", "x.gguf", "--store", "d", NULL},
        {"telemetry", "sometimes", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *e = NULL;
        cr_assert_eq(tu_run_slm(NULL, &e, (const char *const *)bad[i]), 2, "%s %s: %s", bad[i][0], bad[i][1] ? bad[i][1] : "", e);
        free(e);
    }
    char *notgguf = tu_path(g_dir, "not.gguf");
    tu_write_file(notgguf, "hello", 5);
    char *e = NULL;
    cr_assert_eq(tu_run_slm(NULL, &e, (const char *[]){"serve", "-m", notgguf, "--port", "0", NULL}), 3, "%s", e);
    free(e);
    server s;
    server_up(&s);
    char port[16];
    snprintf(port, sizeof port, "%d", s.port);
    e = NULL;
    cr_assert_eq(tu_run_slm(NULL, &e, (const char *[]){"serve", "-m", g_gguf, "--port", port, NULL}), 4, "%s", e);
    cr_assert(strstr(e, "cannot listen"), "%s", e);
    free(e);
    free(notgguf);
    cr_assert_eq(server_down(&s), 0);
}

/* `slm chat ARGS` with the lines of `input` on stdin; its status, stdout and stderr */
static int chat_run(const char *input, const char *const *args, char **out, char **err)
{
    char *in = tu_path(g_dir, "chat-input.txt");
    cr_assert_eq(tu_write_file(in, input, strlen(input)), 0);
    const char *argv[48] = {"sh", "-c", "f=$1; shift; exec \"$0\" chat \"$@\" < \"$f\"", tu_slm_bin(), in};
    int k = 5;
    for (int i = 0; args[i] && k < 47; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    int rc = tu_run(out, err, argv);
    free(in);
    return rc;
}

/* slm chat takes the fallback options too (parsed by the same code as slm run's): a conversation
 * over the context goes to the upstream's /v1/chat/completions and its answer is printed; a
 * --private one fails with exit 3 and never reaches it; --mem-budget and low confidence route
 * there; every turn says its route on stderr. */
Test(serve, chat_fallback)
{
    char *small = tu_path(g_dir, "s260c.gguf");
    slm_ok((const char *[]){"convert", tu_model("stories260k"), "-o", small, "--outtype", "f16", NULL});
    server cloud;
    server_up_args(&cloud, (const char *[]){"--alias", "cloud", NULL});
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", cloud.port);
    /* what the cloud answers for this conversation, asked directly */
    resp r = post(cloud.port, "/v1/chat/completions",
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"max_tokens\":40,\"temperature\":0}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cJSON *j = json_of(&r);
    char *want = strdup(text_of(j));
    cJSON_Delete(j);
    resp_free(&r);
    int before = upstream_requests(cloud.port);

    char *out = NULL, *e = NULL;
    const char *ctx_args[] = {"-m", small, "--chat-template", "chatml", "-n", "40", "-c", "32", "--temp", "0",
                              "--fallback", url, NULL};
    cr_assert_eq(chat_run("Tell me a story\n", ctx_args, &out, &e), 0, "%s", e);
    cr_assert(strstr(e, "slm chat: route: fallback (context)"), "%s", e);
    char *wantnl = malloc(strlen(want) + 2);
    sprintf(wantnl, "%s\n", want);
    cr_assert_str_eq(out, wantnl, "the upstream's answer is printed");
    free(out), free(e);
    cr_assert_eq(upstream_requests(cloud.port), before + 1);

    const char *priv_args[] = {"-m", small, "--chat-template", "chatml", "-n", "40", "-c", "32", "--fallback", url,
                               "--private", NULL};
    cr_assert_eq(chat_run("Tell me a story " CANARY "\n", priv_args, &out, &e), 3, "%s", e);
    cr_assert(strstr(e, "never leaves"), "%s", e);
    free(out), free(e);
    cr_assert_eq(upstream_requests(cloud.port), before + 1, "a --private conversation reached the upstream");

    /* two turns: --mem-budget sends both (the second with the first's answer in its history) */
    const char *mem_args[] = {"-m", small, "--chat-template", "chatml", "-n", "8", "--fallback", url,
                              "--mem-budget", "1K", NULL};
    cr_assert_eq(chat_run("Hello\nTell me more\n", mem_args, &out, &e), 0, "%s", e);
    cr_assert_eq(tu_count_lines(e), 2, "%s", e);
    cr_assert(strstr(e, "route: fallback (memory)"), "%s", e);
    free(out), free(e);
    cr_assert_eq(upstream_requests(cloud.port), before + 3);

    const char *conf_args[] = {"-m", small, "--chat-template", "chatml", "-n", "8", "--temp", "0", "--fallback", url,
                               "--fallback-confidence", "1", NULL};
    cr_assert_eq(chat_run("Hello\n", conf_args, &out, &e), 0, "%s", e);
    cr_assert(strstr(e, "route: fallback (low_confidence)"), "%s", e);
    free(out), free(e);
    const char *ok_args[] = {"-m", small, "--chat-template", "chatml", "-n", "8", "--temp", "0", "--fallback", url,
                             "--fallback-confidence", "0", NULL};
    cr_assert_eq(chat_run("Hello\n", ok_args, &out, &e), 0, "%s", e);
    cr_assert(strstr(e, "route: local (ok)"), "%s", e);
    free(out), free(e);
    cr_assert_eq(upstream_requests(cloud.port), before + 4);
    const char *bad_args[] = {"-m", small, "--fallback-key-file", "k", NULL};
    cr_assert_eq(chat_run("", bad_args, &out, &e), 2, "%s", e);
    cr_assert(strstr(e, "goes with --fallback"), "%s", e);
    free(out), free(e);
    cr_assert_eq(server_down(&cloud), 0);
    free(want), free(wantnl), free(small);
}

/* slm run takes the same fallback options: context, memory and low confidence go upstream,
 * --private never does. */
Test(serve, run_fallback)
{
    char *small = tu_path(g_dir, "s260.gguf");
    slm_ok((const char *[]){"convert", tu_model("stories260k"), "-o", small, "--outtype", "f16", NULL});
    server cloud;
    server_up_args(&cloud, (const char *[]){"--alias", "cloud", NULL});
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", cloud.port);
    char *want = run_text("Once upon a time", 40); /* the cloud's model, greedy */
    char *out = slm_out((const char *[]){"run", "-m", small, "-p", "Once upon a time", "-n", "40", "-c", "32", "--temp", "0",
                                         "--fallback", url, "--json", NULL});
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "%s", out);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "route_reason")->valuestring, "context");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "text")->valuestring, want);
    cJSON_Delete(j);
    free(out);
    cr_assert_eq(upstream_requests(cloud.port), 1);
    char *e = NULL;
    cr_assert_eq(tu_run_slm(NULL, &e, (const char *[]){"run", "-m", small, "-p", "Once upon a time " CANARY, "-n", "40", "-c",
                                                       "32", "--fallback", url, "--private", NULL}), 3, "%s", e);
    cr_assert(strstr(e, "never leaves"), "%s", e);
    free(e);
    cr_assert_eq(upstream_requests(cloud.port), 1, "a --private prompt reached the upstream");
    out = slm_out((const char *[]){"run", "-m", small, "-p", "Once upon a time", "-n", "8", "--fallback", url,
                                   "--mem-budget", "1K", "--json", NULL});
    cr_assert(strstr(out, "\"route_reason\":\"memory\""), "%s", out);
    free(out);
    out = slm_out((const char *[]){"run", "-m", small, "-p", "Once upon a time", "-n", "8", "--temp", "0", "--fallback",
                                   url, "--fallback-confidence", "1", "--json", NULL});
    cr_assert(strstr(out, "\"route\":\"fallback\",\"route_reason\":\"low_confidence\""), "%s", out);
    free(out);
    cr_assert_eq(upstream_requests(cloud.port), 3);
    cr_assert_eq(server_down(&cloud), 0);
    free(want);
    free(small);
}
