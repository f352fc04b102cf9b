/* registry/http.c — HTTP for the registry client (libcurl): auth (Bearer token
 * challenge, Basic from a docker config.json), redirect policy, bounded waits,
 * bounded in-memory bodies, streamed 2xx bodies. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "rg_internal.h"

void rg_digest(const void *p, size_t n, char out[72])
{
    uint8_t h[SLM_SHA256_LEN];
    if (slm_sha256(p, n, h)) {
        strcpy(out, "sha256:error");
        return;
    }
    memcpy(out, "sha256:", 7);
    slm_hex(h, sizeof h, out + 7);
}

void rg_resp_reset(rg_resp *r)
{
    free(r->body);
    rg_sink_fn s = r->sink;
    void *u = r->sink_user;
    memset(r, 0, sizeof *r);
    r->sink = s;
    r->sink_user = u;
}

void rg_resp_free(rg_resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* ---- credentials ------------------------------------------------------------------ */
static char *home_docker_config(void)
{
    const char *d = getenv("DOCKER_CONFIG"), *h = getenv("HOME");
    char buf[4096];
    if (d && *d)
        snprintf(buf, sizeof buf, "%s/config.json", d);
    else if (h && *h)
        snprintf(buf, sizeof buf, "%s/.docker/config.json", h);
    else
        return NULL;
    return strdup(buf);
}

static int read_small(const char *path, char **out, slm_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return slm_err_set(err, SLM_EIO, "%s: cannot open credentials: %s", path, strerror(errno));
    char *b = malloc(1 << 20);
    size_t n = b ? fread(b, 1, (1 << 20) - 1, f) : 0;
    int bad = ferror(f) || !b || n == (1 << 20) - 1;
    fclose(f);
    if (bad) {
        free(b);
        return slm_err_set(err, SLM_EINPUT, "%s: cannot read credentials (unreadable or over 1 MiB)", path);
    }
    b[n] = 0;
    *out = b;
    return 0;
}

/* docker config.json: {"auths":{"host[:port]" or "https://host":{"auth":base64(user:pass)}}} */
static int load_creds(rg_client *c, slm_err *err)
{
    char *path = c->o.creds_file ? strdup(c->o.creds_file) : home_docker_config();
    if (!path)
        return 0;
    if (!c->o.creds_file && access(path, R_OK) != 0) {
        free(path);
        return 0; /* no default file: anonymous */
    }
    char *text = NULL;
    int rc = read_small(path, &text, err);
    if (rc) {
        free(path);
        return rc;
    }
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *auths = cJSON_GetObjectItemCaseSensitive(j, "auths");
    if (!cJSON_IsObject(auths)) {
        cJSON_Delete(j);
        rc = slm_err_set(err, SLM_EINPUT, "%s: not a docker config.json (no \"auths\" object)", path);
        free(path);
        return rc;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, auths)
    {
        const char *k = e->string;
        if (!strncmp(k, "https://", 8))
            k += 8;
        else if (!strncmp(k, "http://", 7))
            k += 7;
        size_t hl = strlen(c->ref.host);
        if (strncmp(k, c->ref.host, hl) || (k[hl] && k[hl] != '/'))
            continue;
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(e, "auth");
        if (!cJSON_IsString(a))
            continue;
        size_t n = strlen(a->valuestring);
        unsigned char *dec = malloc(n + 4);
        int dn = dec && n % 4 == 0 ? EVP_DecodeBlock(dec, (const unsigned char *)a->valuestring, (int)n) : -1;
        if (dn > 0) {
            while (n > 0 && a->valuestring[n - 1] == '=') /* EVP_DecodeBlock counts padding as zero bytes */
                n--, dn--;
            dec[dn] = 0;
        }
        if (dn <= 0 || !memchr(dec, ':', (size_t)dn)) {
            free(dec);
            cJSON_Delete(j);
            rc = slm_err_set(err, SLM_EINPUT, "%s: the \"auth\" of %s is not base64 of user:password", path, e->string);
            free(path);
            return rc;
        }
        c->basic = (char *)dec;
        break;
    }
    cJSON_Delete(j);
    free(path);
    return 0;
}

int rg_client_init(rg_client *c, const slm_ref *ref, const slm_registry_opts *o, int push, slm_err *err)
{
    memset(c, 0, sizeof *c);
    c->ref = *ref;
    if (o)
        c->o = *o;
    if (c->o.connect_timeout <= 0)
        c->o.connect_timeout = 10;
    if (c->o.stall_timeout <= 0)
        c->o.stall_timeout = 30;
    c->o.retries = c->o.retries < 0 ? 0 : c->o.retries == 0 ? 3 : c->o.retries;
    snprintf(c->base, sizeof c->base, "%s://%s", c->o.plain_http ? "http" : "https", ref->host);
    snprintf(c->scope, sizeof c->scope, "repository:%s:%s", ref->repo, push ? "pull,push" : "pull");
    int rc = load_creds(c, err);
    if (rc)
        return rc;
    static int global_done;
    if (!global_done) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        global_done = 1;
    }
    c->curl = curl_easy_init();
    if (!c->curl)
        return slm_err_set(err, SLM_EINTERNAL, "libcurl: cannot create a handle");
    return 0;
}

void rg_client_free(rg_client *c)
{
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->token);
    if (c->basic) {
        memset(c->basic, 0, strlen(c->basic));
        free(c->basic);
    }
    memset(c, 0, sizeof *c);
}

/* ---- callbacks -------------------------------------------------------------------- */
typedef struct xfer {
    rg_resp *r;
    CURL *curl;
} xfer;

static void copy_header(char *dst, size_t cap, const char *v, size_t n)
{
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
        n--;
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = 0;
}

static size_t on_header(char *p, size_t size, size_t nitems, void *user)
{
    xfer *x = user;
    size_t n = size * nitems;
    if (n >= 5 && !strncmp(p, "HTTP/", 5)) { /* a new response (after 100 Continue etc.) */
        rg_resp *r = x->r;
        r->location[0] = r->www_auth[0] = r->digest[0] = r->content_type[0] = r->content_range[0] = 0;
        r->oci_subject[0] = 0;
        return n;
    }
    static const struct {
        const char *name;
        size_t off, cap;
    } hs[] = {
        {"location:", offsetof(rg_resp, location), sizeof ((rg_resp *)0)->location},
        {"www-authenticate:", offsetof(rg_resp, www_auth), sizeof ((rg_resp *)0)->www_auth},
        {"docker-content-digest:", offsetof(rg_resp, digest), sizeof ((rg_resp *)0)->digest},
        {"content-type:", offsetof(rg_resp, content_type), sizeof ((rg_resp *)0)->content_type},
        {"content-range:", offsetof(rg_resp, content_range), sizeof ((rg_resp *)0)->content_range},
        {"oci-subject:", offsetof(rg_resp, oci_subject), sizeof ((rg_resp *)0)->oci_subject},
    };
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        size_t l = strlen(hs[i].name);
        if (n > l && !strncasecmp(p, hs[i].name, l))
            copy_header((char *)x->r + hs[i].off, hs[i].cap, p + l, n - l);
    }
    return n;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *user)
{
    xfer *x = user;
    rg_resp *r = x->r;
    size_t n = size * nmemb;
    long st = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &st);
    if (r->sink && st >= 200 && st < 300) {
        if (r->sink(r->sink_user, p, n)) {
            r->sink_failed = 1;
            return 0; /* aborts the transfer */
        }
        r->sunk += n;
        return n;
    }
    if (r->len + n > RG_BODY_MAX) {
        r->too_big = 1;
        return 0;
    }
    char *b = realloc(r->body, r->len + n + 1);
    if (!b)
        return 0;
    memcpy(b + r->len, p, n);
    r->body = b;
    r->len += n;
    b[r->len] = 0;
    return n;
}

static size_t on_read(char *p, size_t size, size_t nitems, void *user)
{
    rg_upload *u = user;
    size_t want = size * nitems;
    uint64_t left = u->len - u->pos;
    if (want > left)
        want = (size_t)left;
    if (!want)
        return 0;
    if (u->mem) {
        memcpy(p, (const char *)u->mem + u->pos, want);
    } else {
        ssize_t r;
        do
            r = pread(u->fd, p, want, (off_t)(u->off + u->pos));
        while (r < 0 && errno == EINTR);
        if (r <= 0)
            return CURL_READFUNC_ABORT;
        want = (size_t)r;
    }
    u->pos += want;
    return want;
}

/* ---- auth ---------------------------------------------------------------------------- */
static int kv_copy(const char *h, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    for (const char *p = h; (p = strstr(p, key)); p++) {
        if (p != h && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))
            continue;
        if (p[kl] != '=')
            continue;
        const char *v = p + kl + 1;
        size_t n = 0;
        if (*v == '"') {
            v++;
            while (v[n] && v[n] != '"')
                n++;
            if (!v[n])
                return -1;
        } else {
            while (v[n] && v[n] != ',' && v[n] != ' ')
                n++;
        }
        if (n >= cap)
            return -1;
        memcpy(out, v, n);
        out[n] = 0;
        return 0;
    }
    return 1;
}

int slm_auth_challenge_parse(const char *h, slm_auth_challenge *c)
{
    memset(c, 0, sizeof *c);
    while (*h == ' ')
        h++;
    size_t n = 0;
    while (h[n] && h[n] != ' ')
        n++;
    if (!n || n >= sizeof c->scheme)
        return -1;
    memcpy(c->scheme, h, n);
    const char *params = h + n;
    if (kv_copy(params, "realm", c->realm, sizeof c->realm) < 0 ||
        kv_copy(params, "service", c->service, sizeof c->service) < 0 ||
        kv_copy(params, "scope", c->scope, sizeof c->scope) < 0)
        return -1;
    return 0;
}

int slm_oci_token_parse(const char *json, size_t n, char *token, size_t cap, slm_err *err)
{
    cJSON *j = cJSON_ParseWithLength(json, n);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "token");
    if (!cJSON_IsString(t) || !t->valuestring[0]) /* OAuth2-style answers carry access_token */
        t = cJSON_GetObjectItemCaseSensitive(j, "access_token");
    int rc = 0;
    if (!cJSON_IsString(t) || !t->valuestring[0])
        rc = slm_err_set(err, SLM_EINPUT, "token answer is not JSON with a \"token\" string");
    else if (strlen(t->valuestring) >= cap)
        rc = slm_err_set(err, SLM_EINPUT, "token answer: the token is longer than %zu bytes", cap - 1);
    else
        strcpy(token, t->valuestring);
    for (const char *p = token; !rc && *p; p++)
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
            rc = slm_err_set(err, SLM_EINPUT, "token answer: the token has a character not allowed in a header");
    cJSON_Delete(j);
    return rc;
}

static void set_common(rg_client *c, xfer *x, char *errbuf)
{
    CURL *h = c->curl;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, c->o.plain_http ? "http,https" : "https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c->o.connect_timeout);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->o.stall_timeout);
    curl_easy_setopt(h, CURLOPT_USERAGENT, c->o.user_agent ? c->o.user_agent : "slmkit-registry/0.1");
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    if (c->o.ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->o.ca_file);
}

static int net_error(rg_client *c, CURLcode cc, const char *errbuf, const char *url, const rg_resp *r, slm_err *err)
{
    const char *what = errbuf[0] ? errbuf : curl_easy_strerror(cc);
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return slm_err_set(err, SLM_EIO, "%s: cannot connect to the registry %s (is it down?): %s", url, c->ref.host, what);
    case CURLE_OPERATION_TIMEDOUT:
        return slm_err_set(err, SLM_EIO, "%s: timed out: no progress (under 1 KiB/s) for %ld s or connect over %ld s: %s",
                           url, c->o.stall_timeout, c->o.connect_timeout, what);
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        return slm_err_set(err, SLM_EIO, "%s: truncated: the connection closed after %llu body bytes: %s", url,
                           (unsigned long long)(r->sunk + r->len), what);
    default:
        return slm_err_set(err, SLM_EIO, "%s: %s", url, what);
    }
}

static int url_host(const char *url, char *host, size_t cap, int *https)
{
    const char *p = strstr(url, "://");
    if (!p)
        return -1;
    *https = (p - url == 5 && !strncasecmp(url, "https", 5));
    if (!*https && !(p - url == 4 && !strncasecmp(url, "http", 4)))
        return -1;
    p += 3;
    size_t n = strcspn(p, "/?#");
    const char *at = memchr(p, '@', n); /* userinfo: refuse, never forward credentials in URLs */
    if (at || !n || n >= cap)
        return -1;
    memcpy(host, p, n);
    host[n] = 0;
    return 0;
}

static int fetch_token(rg_client *c, const slm_auth_challenge *ch, slm_err *err);

/* One exchange without auth retry or redirects. */
static int exchange(rg_client *c, const char *method, const char *url, const char *const *headers, rg_upload *up,
                    int send_auth, rg_resp *r, slm_err *err)
{
    xfer x = {r, c->curl};
    char errbuf[CURL_ERROR_SIZE] = {0};
    set_common(c, &x, errbuf);
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_URL, url);
    struct curl_slist *hl = NULL;
    hl = curl_slist_append(hl, "Expect:");
    for (int i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    char authz[8300];
    if (send_auth && c->token) {
        snprintf(authz, sizeof authz, "Authorization: Bearer %s", c->token);
        hl = curl_slist_append(hl, authz);
    } else if (send_auth && c->basic) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERPWD, c->basic);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    if (!strcmp(method, "HEAD")) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (up) {
        up->pos = 0;
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, up);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)up->len);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    } else if (!strcmp(method, "POST")) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    } else if (strcmp(method, "GET")) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode cc = curl_easy_perform(h);
    curl_slist_free_all(hl);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    r->curl_code = (int)cc;
    if (r->sink_failed)
        return SLM_EVERIFY; /* the sink set err */
    if (r->too_big)
        return slm_err_set(err, SLM_EINPUT, "%s: the registry's answer is over %u bytes", url, RG_BODY_MAX);
    if (cc != CURLE_OK)
        return net_error(c, cc, errbuf, url, r, err);
    return 0;
}

int rg_request(rg_client *c, const char *method, const char *url0, const char *const *headers, rg_upload *up,
               rg_resp *r, slm_err *err)
{
    char url[4096];
    if (url0[0] == '/')
        snprintf(url, sizeof url, "%s%s", c->base, url0);
    else
        snprintf(url, sizeof url, "%s", url0);
    int send_auth = 1, authed = 0;
    for (int hop = 0; hop < 8; hop++) {
        rg_resp_reset(r);
        int rc = exchange(c, method, url, headers, up, send_auth, r, err);
        if (rc)
            return rc;
        if (r->status == 401 && !authed && send_auth) {
            authed = 1;
            slm_auth_challenge ch;
            if (!r->www_auth[0] || slm_auth_challenge_parse(r->www_auth, &ch))
                return slm_err_set(err, SLM_EIO, "%s: 401 unauthorized and no usable WWW-Authenticate challenge", url);
            if (!strcasecmp(ch.scheme, "Bearer")) {
                if ((rc = fetch_token(c, &ch, err)))
                    return rc;
            } else if (!strcasecmp(ch.scheme, "Basic")) {
                if (!c->basic)
                    return slm_err_set(err, SLM_EIO, "%s: the registry wants a password and no credentials for %s were "
                                       "found (--creds FILE or ~/.docker/config.json)", url, c->ref.host);
            } else {
                return slm_err_set(err, SLM_EIO, "%s: unsupported auth scheme '%s'", url, ch.scheme);
            }
            continue;
        }
        if (r->status == 401)
            return slm_err_set(err, SLM_EIO, "%s: 401 unauthorized (credentials refused)", url);
        if (r->status >= 300 && r->status < 400 && r->status != 304) {
            if (strcmp(method, "GET") && strcmp(method, "HEAD"))
                return slm_err_set(err, SLM_EIO, "%s: unexpected redirect (%ld) of a %s", url, r->status, method);
            if (!r->location[0])
                return slm_err_set(err, SLM_EIO, "%s: redirect (%ld) without a Location", url, r->status);
            char next[4096];
            if (r->location[0] == '/')
                snprintf(next, sizeof next, "%s%s", c->base, r->location);
            else
                snprintf(next, sizeof next, "%s", r->location);
            char host[300];
            int https = 0;
            if (url_host(next, host, sizeof host, &https))
                return slm_err_set(err, SLM_EIO, "%s: redirect to an unusable location '%.200s'", url, r->location);
            if (!https && !c->o.plain_http)
                return slm_err_set(err, SLM_EIO, "%s: redirect from https to plain http refused (%.200s)", url, next);
            int same = !strcasecmp(host, c->ref.host), allowed = same;
            for (int i = 0; !allowed && c->o.allow_hosts && c->o.allow_hosts[i]; i++)
                allowed = !strcasecmp(host, c->o.allow_hosts[i]);
            if (!allowed)
                return slm_err_set(err, SLM_EIO, "%s: redirect to another host '%s' refused (allow it with "
                                   "--allow-redirect %s)", url, host, host);
            send_auth = same; /* credentials never leave the registry host */
            snprintf(url, sizeof url, "%s", next);
            continue;
        }
        return 0;
    }
    return slm_err_set(err, SLM_EIO, "%s: too many redirects", url);
}

static int fetch_token(rg_client *c, const slm_auth_challenge *ch, slm_err *err)
{
    if (!ch->realm[0])
        return slm_err_set(err, SLM_EIO, "%s: Bearer challenge without a realm", c->ref.host);
    char host[300];
    int https = 0;
    if (url_host(ch->realm, host, sizeof host, &https) || (!https && !c->o.plain_http))
        return slm_err_set(err, SLM_EIO, "%s: token realm '%.200s' refused (must be https, or --plain-http)",
                           c->ref.host, ch->realm);
    char *svc = curl_easy_escape(c->curl, ch->service, 0);
    char *scp = curl_easy_escape(c->curl, ch->scope[0] ? ch->scope : c->scope, 0);
    char url[2048];
    snprintf(url, sizeof url, "%s%sservice=%s&scope=%s", ch->realm, strchr(ch->realm, '?') ? "&" : "?", svc ? svc : "",
             scp ? scp : "");
    curl_free(svc);
    curl_free(scp);
    rg_resp r = {0};
    free(c->token);
    c->token = NULL;
    /* Basic credentials go to the realm only (the realm names the auth server of this registry) */
    int rc = exchange(c, "GET", url, NULL, NULL, 1, &r, err);
    if (!rc && r.status != 200)
        rc = slm_err_set(err, SLM_EIO, "%s: token request answered %ld%s", ch->realm, r.status,
                         r.status == 401 ? " (credentials refused or missing: --creds FILE)" : "");
    char tok[8192];
    if (!rc)
        rc = slm_oci_token_parse(r.body ? r.body : "", r.len, tok, sizeof tok, err);
    if (!rc && !(c->token = strdup(tok)))
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    rg_resp_free(&r);
    return rc;
}
