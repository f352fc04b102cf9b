/* serve/telemetry.c — see telemetry.h. */
#include "telemetry.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "pipeline.h"

int tel_dir(char *buf, size_t cap)
{
    const char *d = getenv("SLM_TELEMETRY_DIR"), *x = getenv("XDG_STATE_HOME"), *h = getenv("HOME");
    int n = d && *d ? snprintf(buf, cap, "%s", d)
          : x && *x ? snprintf(buf, cap, "%s/slmkit", x)
                    : snprintf(buf, cap, "%s/.local/state/slmkit", h && *h ? h : ".");
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

int tel_env_forbids(void)
{
    const char *e = getenv("SLM_TELEMETRY");
    return e && (!strcmp(e, "0") || !strcasecmp(e, "off") || !strcasecmp(e, "false") || !strcasecmp(e, "no"));
}

static const char *const level_names[] = {"off", "error", "all"};
const char *tel_level_name(int level) { return level >= 0 && level <= 2 ? level_names[level] : "off"; }
int tel_level_parse(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, level_names[i]))
            return i;
    return -1;
}
int tel_effective(const tel_cfg *c) { return tel_env_forbids() || !c->install_id[0] ? TEL_OFF : c->level; }

void tel_spool_path(const char *dir, char *buf, size_t cap) { snprintf(buf, cap, "%s/telemetry.jsonl", dir); }

int tel_load(const char *dir, tel_cfg *out, slm_err *err)
{
    memset(out, 0, sizeof *out);
    char path[4200];
    snprintf(path, sizeof path, "%s/telemetry.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? 0 : slm_err_set(err, SLM_EIO, "%s: %s", path, strerror(errno));
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *j = cJSON_Parse(buf);
    const cJSON *lv = cJSON_GetObjectItemCaseSensitive(j, "level"), *id = cJSON_GetObjectItemCaseSensitive(j, "install_id"),
                *ep = cJSON_GetObjectItemCaseSensitive(j, "endpoint");
    int rc = 0;
    if (!cJSON_IsObject(j) || !cJSON_IsString(lv) || tel_level_parse(lv->valuestring) < 0 || !cJSON_IsString(id) ||
        strlen(id->valuestring) != 32 || strspn(id->valuestring, "0123456789abcdef") != 32 ||
        (ep && !cJSON_IsNull(ep) && (!cJSON_IsString(ep) || strlen(ep->valuestring) >= sizeof out->endpoint)))
        rc = slm_err_set(err, SLM_EINPUT, "%s: not a telemetry settings file (run slm telemetry off/on to rewrite it)", path);
    else {
        out->level = tel_level_parse(lv->valuestring);
        memcpy(out->install_id, id->valuestring, 33);
        if (cJSON_IsString(ep))
            snprintf(out->endpoint, sizeof out->endpoint, "%s", ep->valuestring);
    }
    cJSON_Delete(j);
    return rc;
}

static int mkdirs(const char *dir, slm_err *err)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0700);
            *s = '/';
        }
    if (mkdir(p, 0700) && errno != EEXIST)
        return slm_err_set(err, SLM_EIO, "%s: %s", dir, strerror(errno));
    return 0;
}

int tel_save(const char *dir, const tel_cfg *c, slm_err *err)
{
    int rc = mkdirs(dir, err);
    if (rc)
        return rc;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "level", tel_level_name(c->level));
    cJSON_AddStringToObject(j, "install_id", c->install_id);
    if (c->endpoint[0])
        cJSON_AddStringToObject(j, "endpoint", c->endpoint);
    else
        cJSON_AddNullToObject(j, "endpoint");
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    if (!s)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    char path[4200];
    snprintf(path, sizeof path, "%s/telemetry.json", dir);
    rc = slm_pl_write_line(path, s, err);
    free(s);
    return rc;
}

int tel_new_id(char out[33], slm_err *err)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        return slm_err_set(err, SLM_EINTERNAL, "no randomness for an install id");
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return 0;
}

int tel_spool_append(const char *dir, const char *line, slm_err *err)
{
    int rc = mkdirs(dir, err);
    if (rc)
        return rc;
    char path[4200];
    tel_spool_path(dir, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return slm_err_set(err, SLM_EIO, "%s: %s", path, strerror(errno));
    size_t n = strlen(line);
    char *b = malloc(n + 1);
    if (!b) {
        close(fd);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    memcpy(b, line, n);
    b[n] = '\n';
    ssize_t w = write(fd, b, n + 1); /* one write: lines of concurrent writers do not interleave */
    free(b);
    if (w != (ssize_t)(n + 1) || fsync(fd)) {
        close(fd);
        return slm_err_set(err, SLM_EIO, "%s: %s", path, strerror(errno));
    }
    close(fd);
    return 0;
}

/* device class: fixed words only */
static const char *cpu_arch(void)
{
    struct utsname u;
    if (uname(&u))
        return "other";
    return !strcmp(u.machine, "x86_64") ? "x86_64" : !strcmp(u.machine, "aarch64") ? "aarch64" : "other";
}

static void mem_bucket(char *buf, size_t cap)
{
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    double gib = pages > 0 && psz > 0 ? (double)pages * psz / (1024.0 * 1024 * 1024) : 0;
    int hi = 1;
    while (hi < gib && hi < 4096)
        hi *= 2;
    snprintf(buf, cap, "<=%dGiB", hi);
}

/* only a known recipe name passes (the quant word comes from a file) */
static int known_recipe(const char *q)
{
    for (const char *const *n = slm_pl_recipe_names(); n && *n; n++)
        if (!strcmp(*n, q))
            return 1;
    return 0;
}

char *tel_record(const tel_snapshot *s, const tel_cfg *c, int level)
{
    cJSON *j = cJSON_CreateObject();
    char day[16], mem[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(day, sizeof day, "%Y-%m-%d", &tm);
    cJSON_AddNumberToObject(j, "v", 1);
    cJSON_AddStringToObject(j, "day", day);
    cJSON_AddStringToObject(j, "install_id", c->install_id);
    cJSON_AddStringToObject(j, "level", tel_level_name(level));
    cJSON_AddStringToObject(j, "source", "serve");
    cJSON_AddNumberToObject(j, "requests", s->requests);
    cJSON_AddNumberToObject(j, "errors", s->errors);
    cJSON *fb = cJSON_AddObjectToObject(j, "fallbacks");
    cJSON_AddNumberToObject(fb, "upstream_failed", s->fb_upstream_failed);
    if (level >= TEL_ALL) {
        cJSON_AddNumberToObject(fb, "context", s->fb_context);
        cJSON_AddNumberToObject(fb, "memory", s->fb_memory);
        cJSON_AddNumberToObject(fb, "low_confidence", s->fb_low_confidence);
        cJSON_AddNumberToObject(j, "health_checks", s->health_checks);
        cJSON_AddNumberToObject(j, "prompt_tokens", s->prompt_tokens);
        cJSON_AddNumberToObject(j, "generated_tokens", s->generated_tokens);
        cJSON_AddNumberToObject(j, "prefill_tps", s->prefill_seconds > 0 ? s->prefill_tokens / s->prefill_seconds : 0);
        cJSON_AddNumberToObject(j, "decode_tps", s->decode_seconds > 0 ? s->decode_tokens / s->decode_seconds : 0);
        cJSON *h = cJSON_AddObjectToObject(j, "ttft_seconds");
        cJSON_AddItemToObject(h, "le", cJSON_CreateDoubleArray(s->ttft_le, TEL_N_BUCKETS));
        cJSON_AddItemToObject(h, "counts", cJSON_CreateDoubleArray(s->ttft_counts, TEL_N_BUCKETS));
        cJSON_AddNumberToObject(h, "sum", s->ttft_sum);
        cJSON_AddNumberToObject(h, "count", s->ttft_count);
        cJSON *m = cJSON_AddObjectToObject(j, "model");
        cJSON_AddStringToObject(m, "digest", s->model_digest);
        cJSON_AddStringToObject(m, "arch", s->arch);
        cJSON_AddStringToObject(m, "quant", s->quant);
        cJSON *d = cJSON_AddObjectToObject(j, "device");
        cJSON_AddStringToObject(d, "cpu", cpu_arch());
        cJSON_AddStringToObject(d, "kernels", slm_pl_kernel_name());
        mem_bucket(mem, sizeof mem);
        cJSON_AddStringToObject(d, "memory", mem);
    }
    char *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return out;
}

char *tel_install_record(const tel_install_event *e, const tel_cfg *c, int level)
{
    if (level < TEL_ERROR || (level < TEL_ALL && !e->health_fail))
        return NULL;
    cJSON *j = cJSON_CreateObject();
    char day[16], mem[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(day, sizeof day, "%Y-%m-%d", &tm);
    cJSON_AddNumberToObject(j, "v", 1);
    cJSON_AddStringToObject(j, "day", day);
    cJSON_AddStringToObject(j, "install_id", c->install_id);
    cJSON_AddStringToObject(j, "level", tel_level_name(level));
    cJSON_AddStringToObject(j, "source", "install");
    cJSON *h = cJSON_AddObjectToObject(j, "health_check");
    cJSON_AddNumberToObject(h, "fail", e->health_fail);
    if (level >= TEL_ALL) {
        cJSON_AddNumberToObject(h, "pass", e->health_pass);
        cJSON_AddNumberToObject(j, "installs", e->installs);
        cJSON *r = cJSON_AddObjectToObject(j, "rollbacks");
        cJSON_AddNumberToObject(r, "revert", e->rollback_revert);
        cJSON_AddNumberToObject(r, "supersedes", e->rollback_supersedes);
        int hex = strlen(e->model_digest) == 64 && strspn(e->model_digest, "0123456789abcdef") == 64;
        cJSON *m = cJSON_AddObjectToObject(j, "model");
        cJSON_AddStringToObject(m, "digest", hex ? e->model_digest : "");
        cJSON_AddStringToObject(m, "quant", known_recipe(e->quant) ? e->quant : "other");
        cJSON *d = cJSON_AddObjectToObject(j, "device");
        cJSON_AddStringToObject(d, "cpu", cpu_arch());
        cJSON_AddStringToObject(d, "kernels", slm_pl_kernel_name());
        mem_bucket(mem, sizeof mem);
        cJSON_AddStringToObject(d, "memory", mem);
    }
    char *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return out;
}

/* numbers of a record, flattened ("fallbacks.context"), as OTLP gauge points */
static void otlp_numbers(cJSON *metrics, const cJSON *o, const char *prefix, const char *ts, const char *id)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        char name[128];
        snprintf(name, sizeof name, "%s%s", prefix, it->string);
        if (cJSON_IsObject(it)) {
            char p[160];
            snprintf(p, sizeof p, "%s.", name);
            otlp_numbers(metrics, it, p, ts, id);
        } else if (cJSON_IsNumber(it) && strcmp(name, "slm.v")) {
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "name", name);
            cJSON *g = cJSON_AddObjectToObject(m, "gauge");
            cJSON *pts = cJSON_AddArrayToObject(g, "dataPoints");
            cJSON *pt = cJSON_CreateObject();
            cJSON_AddStringToObject(pt, "timeUnixNano", ts);
            cJSON_AddNumberToObject(pt, "asDouble", it->valuedouble);
            cJSON_AddItemToArray(pts, pt);
            cJSON_AddItemToArray(metrics, m);
        }
    }
    (void)id;
}

char *tel_otlp(const char *jsonl, size_t n, const tel_cfg *c)
{
    cJSON *root = cJSON_CreateObject(), *rms = cJSON_AddArrayToObject(root, "resourceMetrics");
    cJSON *rm = cJSON_CreateObject(), *res = cJSON_AddObjectToObject(rm, "resource");
    cJSON *attrs = cJSON_AddArrayToObject(res, "attributes");
    const char *kv[2][2] = {{"service.name", "slmkit"}, {"slm.install_id", c->install_id}};
    for (int i = 0; i < 2; i++) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "key", kv[i][0]);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(a, "value"), "stringValue", kv[i][1]);
        cJSON_AddItemToArray(attrs, a);
    }
    cJSON *sms = cJSON_AddArrayToObject(rm, "scopeMetrics"), *sm = cJSON_CreateObject();
    cJSON_AddStringToObject(cJSON_AddObjectToObject(sm, "scope"), "name", "slmkit");
    cJSON *metrics = cJSON_AddArrayToObject(sm, "metrics");
    const char *p = jsonl, *end = jsonl + n;
    while (p < end) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e)
            e = end;
        cJSON *rec = cJSON_ParseWithLength(p, (size_t)(e - p));
        const cJSON *day = cJSON_GetObjectItemCaseSensitive(rec, "day");
        struct tm tm = {0};
        if (cJSON_IsString(day) && strptime(day->valuestring, "%Y-%m-%d", &tm)) {
            char ts[32];
            snprintf(ts, sizeof ts, "%lld000000000", (long long)timegm(&tm)); /* the day, not the time */
            otlp_numbers(metrics, rec, "slm.", ts, c->install_id);
        }
        cJSON_Delete(rec);
        p = e + 1;
    }
    cJSON_AddItemToArray(sms, sm);
    cJSON_AddItemToArray(rms, rm);
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

static size_t discard(char *p, size_t s, size_t n, void *u) { return s * n; }

int tel_push(const char *endpoint, const char *body, slm_err *err)
{
    CURL *c = curl_easy_init();
    if (!c)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory (libcurl)");
    char url[600];
    size_t el = strlen(endpoint);
    while (el && endpoint[el - 1] == '/')
        el--;
    snprintf(url, sizeof url, "%.*s/v1/metrics", (int)el, endpoint);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode cr = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (cr != CURLE_OK)
        return slm_err_set(err, SLM_EIO, "telemetry push to %s: %s", url, curl_easy_strerror(cr));
    if (status < 200 || status >= 300)
        return slm_err_set(err, SLM_EIO, "telemetry push to %s: HTTP %ld", url, status);
    return 0;
}

int tel_file_digest(const char *path, char out[65], slm_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return slm_err_set(err, SLM_EIO, "%s: %s", path, strerror(errno));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char buf[1 << 16], h[32];
    unsigned int hn = 0;
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, f)) > 0)
        ok = EVP_DigestUpdate(md, buf, n);
    ok = ok && !ferror(f) && EVP_DigestFinal_ex(md, h, &hn);
    EVP_MD_CTX_free(md);
    fclose(f);
    if (!ok)
        return slm_err_set(err, SLM_EIO, "%s: cannot hash", path);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
    return 0;
}
