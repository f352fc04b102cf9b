/* sweep/plan.c — SWEEP.json (what a user asks for) and plan.json (the tasks a scheduler runs):
 * parsing both strictly (every field checked, unknown fields refused, one line naming the file
 * and the field), hashing the inputs, content-addressed task ids, canonical plan bytes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libquant.h"
#include "formats.h"
#include "sweep_internal.h"

#define SPEC_MAX_BYTES (1u << 20)
#define PLAN_MAX_BYTES (64u << 20)

/* ---- small helpers ------------------------------------------------------------------------ */

int sw_sha256_hex(const void *data, size_t n, char hex[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    if (!EVP_Digest(data, n, md, &len, EVP_sha256(), NULL) || len != 32)
        return -1;
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int sw_sha256_file(const char *path, char hex[65], slm_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return slm_err_set(err, SLM_EIO, "%s: %s", path, strerror(errno));
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char *buf = malloc(1 << 20);
    int rc = SLM_OK;
    if (!c || !buf || !EVP_DigestInit_ex(c, EVP_sha256(), NULL))
        rc = slm_err_set(err, SLM_EINTERNAL, "%s: out of memory", path);
    for (ssize_t r; rc == SLM_OK && (r = read(fd, buf, 1 << 20)) != 0;) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = slm_err_set(err, SLM_EIO, "%s: %s", path, strerror(errno));
        } else if (!EVP_DigestUpdate(c, buf, (size_t)r))
            rc = slm_err_set(err, SLM_EINTERNAL, "%s: SHA-256 failed", path);
    }
    unsigned char md[32];
    unsigned int len = 0;
    if (rc == SLM_OK && (!EVP_DigestFinal_ex(c, md, &len) || len != 32))
        rc = slm_err_set(err, SLM_EINTERNAL, "%s: SHA-256 failed", path);
    if (rc == SLM_OK)
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
    EVP_MD_CTX_free(c);
    free(buf);
    close(fd);
    return rc;
}

char *sw_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", a, b);
    return s;
}

cJSON *sw_read_json(const char *path, size_t cap, slm_err *err)
{
    char *text = NULL;
    size_t len = 0;
    if (slm_read_text_file(path, cap, &text, &len, err))
        return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j)
        slm_err_set(err, SLM_EINPUT, "%s: not valid JSON", path);
    return j;
}

int sw_write_atomic(const char *path, const char *data, size_t n, slm_err *err)
{
    slm_afile *f;
    int rc = slm_afile_open(path, &f, err);
    if (rc)
        return rc;
    if ((rc = slm_afile_write(f, data, n, err))) {
        slm_afile_abort(f);
        return rc;
    }
    return slm_afile_commit(f, err);
}

void sweep_plan_free(sweep_plan *p)
{
    if (!p)
        return;
    free(p->text);
    for (int i = 0; i < p->n_models; i++)
        free(p->models[i].path);
    for (int i = 0; i < p->n_calibs; i++)
        free(p->calibs[i].text);
    free(p->tasks);
    memset(p, 0, sizeof *p);
}

/* ---- field checks: every message is "NAME: FIELD: problem" --------------------------------- */

typedef struct fctx {
    const char *name; /* the file */
    slm_err *err;
} fctx;

__attribute__((format(printf, 3, 4))) static int bad(const fctx *f, const char *field, const char *fmt, ...)
{
    char m[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    return slm_err_set(f->err, SLM_EINPUT, "%s: %s: %s", f->name, field, m);
}

/* An integer field: absent -> def (when def_ok), else a whole number in [lo, hi]. */
static int get_int(const fctx *f, const cJSON *o, const char *key, const char *field, long lo, long hi, int def_ok,
                   long def, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        if (!def_ok)
            return bad(f, field, "missing (a whole number %ld..%ld)", lo, hi);
        *out = (int)def;
        return SLM_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble) ||
        v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return bad(f, field, "must be a whole number %ld..%ld", lo, hi);
    *out = (int)v->valuedouble;
    return SLM_OK;
}

static int get_bool(const fctx *f, const cJSON *o, const char *key, const char *field, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        *out = 0;
        return SLM_OK;
    }
    if (!cJSON_IsBool(v))
        return bad(f, field, "must be true or false");
    *out = cJSON_IsTrue(v);
    return SLM_OK;
}

/* A string field: absent -> NULL when optional; else a non-empty string shorter than max. */
static int get_str(const fctx *f, const cJSON *o, const char *key, const char *field, int required, size_t max,
                   const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return bad(f, field, "missing");
        return SLM_OK;
    }
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return bad(f, field, "must be a non-empty string");
    if (strlen(v->valuestring) >= max)
        return bad(f, field, "longer than %zu bytes", max - 1);
    *out = v->valuestring;
    return SLM_OK;
}

/* Only the keys listed. */
static int only_keys(const fctx *f, const cJSON *o, const char *where, const char *const *keys)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, o) {
        int known = 0;
        for (int i = 0; keys[i]; i++)
            known |= c->string && !strcmp(c->string, keys[i]);
        if (!known) {
            char field[160];
            snprintf(field, sizeof field, "%s%s%.100s", where, *where ? "." : "", c->string ? c->string : "?");
            return bad(f, field, "unknown field (docs/sweep.md lists the fields)");
        }
        /* cJSON keeps duplicate keys; a second one would be ignored silently */
        for (const cJSON *d = c->next; d; d = d->next)
            if (c->string && d->string && !strcmp(c->string, d->string)) {
                char field[160];
                snprintf(field, sizeof field, "%s%s%.100s", where, *where ? "." : "", c->string);
                return bad(f, field, "given twice");
            }
    }
    return SLM_OK;
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 40 || s[0] == '-' || s[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

static void calib_label(sweep_calib *c, const char *cname)
{
    const char *kind = c->imatrix && c->gptq ? "imatrix+gptq" : c->imatrix ? "imatrix" : c->gptq ? "gptq" : "none";
    if (cname)
        snprintf(c->label, sizeof c->label, "%s@%s", kind, cname);
    else
        snprintf(c->label, sizeof c->label, "%s", kind);
}

/* cJSON turns \u0000 into a NUL that silently ends the string: refused before parsing. */
static int has_nul_escape(const char *json, size_t len)
{
    return memmem(json, len, "\\u0000", 6) != NULL || memchr(json, 0, len) != NULL;
}

/* ---- SWEEP.json ------------------------------------------------------------------------------ */

static int parse_calib(const fctx *f, const cJSON *o, const char *field, sweep_calib *c)
{
    static const char *const keys[] = {"text", "imatrix", "gptq", "ctx", "chunks", "name", NULL};
    char fl[96];
    if (!cJSON_IsObject(o))
        return bad(f, field, "must be an object {\"text\", \"imatrix\", \"gptq\", ...}");
    int rc = only_keys(f, o, field, keys);
    const char *text = NULL, *cname = NULL;
    if (!rc)
        snprintf(fl, sizeof fl, "%s.imatrix", field), rc = get_bool(f, o, "imatrix", fl, &c->imatrix);
    if (!rc)
        snprintf(fl, sizeof fl, "%s.gptq", field), rc = get_bool(f, o, "gptq", fl, &c->gptq);
    if (!rc)
        snprintf(fl, sizeof fl, "%s.text", field), rc = get_str(f, o, "text", fl, c->imatrix || c->gptq, 4096, &text);
    if (!rc)
        snprintf(fl, sizeof fl, "%s.ctx", field), rc = get_int(f, o, "ctx", fl, 8, 1 << 20, 1, 0, &c->ctx);
    if (!rc)
        snprintf(fl, sizeof fl, "%s.chunks", field), rc = get_int(f, o, "chunks", fl, 1, 1 << 20, 1, 0, &c->chunks);
    if (!rc) {
        snprintf(fl, sizeof fl, "%s.name", field);
        rc = get_str(f, o, "name", fl, 0, 32, &cname);
        if (!rc && cname && !name_ok(cname))
            rc = bad(f, fl, "'%s': use lower-case letters, digits and '-'", cname);
    }
    if (rc)
        return rc;
    if ((c->imatrix || c->gptq) && !(c->text = strdup(text)))
        return slm_err_set(f->err, SLM_EINTERNAL, "out of memory");
    if (!c->imatrix && !c->gptq)
        c->ctx = c->chunks = 0; /* nothing is computed from them */
    calib_label(c, cname);
    return SLM_OK;
}

int sweep_spec_parse(const char *json, size_t len, const char *name, sweep_plan *p, slm_err *err)
{
    static const char *const keys[] = {"name", "models", "types", "text", "ctx", "chunks", "calibration",
                                       "threads", "pp", "tg", NULL};
    fctx f = {name, err};
    memset(p, 0, sizeof *p);
    if (has_nul_escape(json, len))
        return slm_err_set(err, SLM_EINPUT, "%s: a NUL byte (or \\u0000) in the text", name);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= json && at <= json + len ? (long)(at - json) : -1;
        return slm_err_set(err, SLM_EINPUT, "%s: not valid JSON (near byte %ld)", name, off);
    }
    int rc = SLM_OK;
    const char *s = NULL;
    char fl[64];
    if (!cJSON_IsObject(root)) {
        rc = slm_err_set(err, SLM_EINPUT, "%s: must be a JSON object {\"models\": [...], \"types\": [...], ...}", name);
        goto done;
    }
    if ((rc = only_keys(&f, root, "", keys)))
        goto done;
    if ((rc = get_str(&f, root, "name", "name", 0, sizeof p->name, &s)))
        goto done;
    if (s && !name_ok(s)) {
        rc = bad(&f, "name", "'%s': 1-40 lower-case letters, digits and '-' (a job name every scheduler accepts)", s);
        goto done;
    }
    snprintf(p->name, sizeof p->name, "%s", s ? s : "slm-sweep");

    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(root, "models");
    if (!ms) {
        rc = bad(&f, "models", "missing (a list of Hugging Face directories or GGUF files)");
        goto done;
    }
    if (!cJSON_IsArray(ms) || cJSON_GetArraySize(ms) < 1 || cJSON_GetArraySize(ms) > SWEEP_MAX_MODELS) {
        rc = bad(&f, "models", "must be a list of 1..%d paths (HF directories or GGUF files)", SWEEP_MAX_MODELS);
        goto done;
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, ms) {
        snprintf(fl, sizeof fl, "models[%d]", p->n_models);
        if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) >= 4096) {
            rc = bad(&f, fl, "must be a non-empty path");
            goto done;
        }
        for (int i = 0; i < p->n_models; i++)
            if (!strcmp(p->models[i].path, v->valuestring)) {
                rc = bad(&f, fl, "'%s' is listed twice", v->valuestring);
                goto done;
            }
        if (!(p->models[p->n_models].path = strdup(v->valuestring))) {
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
            goto done;
        }
        const char *b = strrchr(v->valuestring, '/');
        b = b && b[1] ? b + 1 : v->valuestring;
        snprintf(p->models[p->n_models].name, sizeof p->models[0].name, "%s", b);
        p->n_models++;
    }

    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(root, "types");
    if (!ts) {
        rc = bad(&f, "types", "missing (a list of llama.cpp recipes: \"Q4_K_M\", \"Q8_0\", ...)");
        goto done;
    }
    if (!cJSON_IsArray(ts) || cJSON_GetArraySize(ts) < 1 || cJSON_GetArraySize(ts) > SWEEP_MAX_TYPES) {
        rc = bad(&f, "types", "must be a list of 1..%d recipe names (\"Q4_K_M\", \"Q8_0\", ...)", SWEEP_MAX_TYPES);
        goto done;
    }
    cJSON_ArrayForEach(v, ts) {
        snprintf(fl, sizeof fl, "types[%d]", p->n_types);
        if (!cJSON_IsString(v) || strlen(v->valuestring) >= sizeof p->types[0] ||
            slm_recipe_by_name(v->valuestring) < 0) {
            rc = bad(&f, fl, "%s%s%s is not a recipe slm quantize knows (Q2_K .. Q8_0, F16, BF16, F32)",
                     cJSON_IsString(v) ? "'" : "", cJSON_IsString(v) ? v->valuestring : "not a string",
                     cJSON_IsString(v) ? "'" : "");
            goto done;
        }
        for (int i = 0; i < p->n_types; i++)
            if (!strcasecmp(p->types[i], v->valuestring)) {
                rc = bad(&f, fl, "'%s' is listed twice", v->valuestring);
                goto done;
            }
        snprintf(p->types[p->n_types++], sizeof p->types[0], "%s", v->valuestring);
    }

    if ((rc = get_str(&f, root, "text", "text", 1, 4096, &s)))
        goto done;
    if (!(p->text = strdup(s))) {
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
        goto done;
    }
    if ((rc = get_int(&f, root, "ctx", "ctx", 8, 1 << 20, 1, 128, &p->ctx)) ||
        (rc = get_int(&f, root, "chunks", "chunks", 0, 1 << 20, 1, 0, &p->chunks)) ||
        (rc = get_int(&f, root, "pp", "pp", 0, 1 << 16, 1, 64, &p->pp)) ||
        (rc = get_int(&f, root, "tg", "tg", 0, 1 << 16, 1, 32, &p->tg)))
        goto done;

    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(root, "calibration");
    if (!cs || cJSON_IsNull(cs)) {
        snprintf(p->calibs[0].label, sizeof p->calibs[0].label, "none");
        p->n_calibs = 1;
    } else if (cJSON_IsObject(cs)) {
        if ((rc = parse_calib(&f, cs, "calibration", &p->calibs[0])))
            goto done;
        p->n_calibs = 1;
    } else if (cJSON_IsArray(cs) && cJSON_GetArraySize(cs) >= 1 && cJSON_GetArraySize(cs) <= SWEEP_MAX_CALIBS) {
        cJSON_ArrayForEach(v, cs) {
            snprintf(fl, sizeof fl, "calibration[%d]", p->n_calibs);
            if ((rc = parse_calib(&f, v, fl, &p->calibs[p->n_calibs])))
                goto done;
            p->n_calibs++;
            for (int i = 0; i < p->n_calibs - 1; i++)
                if (!strcmp(p->calibs[i].label, p->calibs[p->n_calibs - 1].label)) {
                    rc = bad(&f, fl, "a second '%s' setting: give each a different \"name\"", p->calibs[i].label);
                    goto done;
                }
        }
    } else {
        rc = bad(&f, "calibration", "must be an object or a list of 1..%d objects", SWEEP_MAX_CALIBS);
        goto done;
    }

    const cJSON *th = cJSON_GetObjectItemCaseSensitive(root, "threads");
    if (!th) {
        p->threads[0] = 1;
        p->n_threads = 1;
    } else if (!cJSON_IsArray(th) || cJSON_GetArraySize(th) < 1 || cJSON_GetArraySize(th) > SWEEP_MAX_THREADS) {
        rc = bad(&f, "threads", "must be a list of 1..%d thread counts", SWEEP_MAX_THREADS);
        goto done;
    } else {
        cJSON *w;
        cJSON_ArrayForEach(w, th) {
            snprintf(fl, sizeof fl, "threads[%d]", p->n_threads);
            if (!cJSON_IsNumber(w) || !isfinite(w->valuedouble) || w->valuedouble != floor(w->valuedouble) ||
                w->valuedouble < 1 || w->valuedouble > 1024) {
                rc = bad(&f, fl, "must be a whole number 1..1024");
                goto done;
            }
            for (int i = 0; i < p->n_threads; i++)
                if (p->threads[i] == (int)w->valuedouble) {
                    rc = bad(&f, fl, "%d is listed twice", p->threads[i]);
                    goto done;
                }
            p->threads[p->n_threads++] = (int)w->valuedouble;
        }
    }
    long n = (long)p->n_models * p->n_threads * (1L + (long)p->n_types * p->n_calibs);
    if (n > SWEEP_MAX_TASKS)
        rc = slm_err_set(err, SLM_EINPUT, "%s: %ld tasks; at most %d", name, n, SWEEP_MAX_TASKS);
done:
    cJSON_Delete(root);
    if (rc)
        sweep_plan_free(p);
    return rc;
}

/* ---- artifact names and steps ------------------------------------------------------------- */

static void key16(const char *s, char out[17])
{
    char hex[65];
    if (sw_sha256_hex(s, strlen(s), hex))
        memset(hex, '0', 64);
    memcpy(out, hex, 16);
    out[16] = 0;
}

void sw_base_gguf(const sweep_plan *p, int m, char *buf, size_t cap)
{
    if (p->models[m].is_gguf)
        snprintf(buf, cap, "%s", p->models[m].path);
    else
        snprintf(buf, cap, "artifacts/base-%.16s.gguf", p->models[m].sha);
}

void sw_base_kld(const sweep_plan *p, int m, const char *ext, char *buf, size_t cap)
{
    char s[160], k[17];
    snprintf(s, sizeof s, "eval %s %d %d", p->text_sha, p->ctx, p->chunks);
    key16(s, k);
    snprintf(buf, cap, "artifacts/base-%.16s-%s.%s", p->models[m].sha, k, ext);
}

void sw_imatrix(const sweep_plan *p, int m, int c, char *buf, size_t cap)
{
    char s[160], k[17];
    snprintf(s, sizeof s, "imatrix %s %d %d", p->calibs[c].text_sha, p->calibs[c].ctx, p->calibs[c].chunks);
    key16(s, k);
    snprintf(buf, cap, "artifacts/imatrix-%.16s-%s.gguf", p->models[m].sha, k);
}

void sw_quantized(const sweep_plan *p, int m, int c, const char *type, char *buf, size_t cap)
{
    const sweep_calib *cl = &p->calibs[c];
    char s[200], k[17];
    if (!cl->imatrix && !cl->gptq)
        snprintf(k, sizeof k, "plain");
    else {
        snprintf(s, sizeof s, "calib %s %d %d %d %d", cl->text_sha, cl->imatrix, cl->gptq, cl->ctx, cl->chunks);
        key16(s, k);
    }
    snprintf(buf, cap, "artifacts/%s-%.16s-%s.gguf", type, p->models[m].sha, k);
}

static cJSON *argv_json(const char *const *a)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && a[i]; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(a[i]));
    return arr;
}

static void add_step(cJSON *steps, const char *name, const char *const *argv, const char *out)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "step", name);
    cJSON_AddItemToObject(s, "argv", argv_json(argv));
    if (out)
        cJSON_AddStringToObject(s, "stdout", out);
    cJSON_AddItemToArray(steps, s);
}

cJSON *sweep_task_steps(const sweep_plan *p, int index)
{
    if (index < 0 || index >= p->n_tasks)
        return NULL;
    const sweep_task *t = &p->tasks[index];
    const sweep_calib *c = t->calib >= 0 ? &p->calibs[t->calib] : NULL;
    char base[512], kld[512], bjson[512], imat[512], q[512], thr[16], ctx[16], chunks[16], cctx[16], cch[16];
    sw_base_gguf(p, t->model, base, sizeof base);
    sw_base_kld(p, t->model, "kld", kld, sizeof kld);
    sw_base_kld(p, t->model, "json", bjson, sizeof bjson);
    snprintf(thr, sizeof thr, "%d", t->threads);
    snprintf(ctx, sizeof ctx, "%d", p->ctx);
    snprintf(chunks, sizeof chunks, "%d", p->chunks);
    cJSON *steps = cJSON_CreateArray();
    if (!steps)
        return NULL;
    if (!p->models[t->model].is_gguf) {
        const char *a[] = {"slm", "convert", p->models[t->model].path, "-o", base, "--outtype", "f32", "-t", thr, NULL};
        add_step(steps, "convert", a, NULL);
    }
    {
        const char *a[] = {"slm", "perplexity", "-m", base, "-f", p->text, "-c", ctx, "-t", thr, "--json",
                           "--kl-divergence-base", kld, p->chunks ? "--chunks" : NULL, chunks, NULL};
        add_step(steps, "base-perplexity", a, bjson);
    }
    const char *model = base;
    if (c) {
        snprintf(cctx, sizeof cctx, "%d", c->ctx);
        snprintf(cch, sizeof cch, "%d", c->chunks);
        if (c->imatrix) {
            sw_imatrix(p, t->model, t->calib, imat, sizeof imat);
            const char *a[12] = {"slm", "imatrix", "-m", base, "-f", c->text, "-o", imat, "-t", thr};
            int n = 10;
            if (c->ctx)
                a[n++] = "-c", a[n++] = cctx;
            if (c->chunks)
                a[n++] = "--chunks", a[n++] = cch;
            a[n] = NULL;
            add_step(steps, "imatrix", a, NULL);
        }
        sw_quantized(p, t->model, t->calib, t->type, q, sizeof q);
        const char *a[20] = {"slm", "quantize", base, q, t->type, "-t", thr};
        int n = 7;
        if (c->imatrix)
            a[n++] = "--imatrix", a[n++] = imat;
        if (c->gptq) {
            a[n++] = "--gptq", a[n++] = "-f", a[n++] = c->text;
            if (c->ctx)
                a[n++] = "-c", a[n++] = cctx;
            if (c->chunks)
                a[n++] = "--chunks", a[n++] = cch;
        }
        a[n] = NULL;
        add_step(steps, "quantize", a, NULL);
        const char *b[] = {"slm", "perplexity", "-m", q, "-f", p->text, "-c", ctx, "-t", thr, "--json",
                           "--kl-divergence-base", kld, p->chunks ? "--chunks" : "--kl-divergence",
                           p->chunks ? chunks : NULL, "--kl-divergence", NULL};
        add_step(steps, "perplexity", b, "(the task's result)");
        model = q;
    }
    cJSON *sp = cJSON_CreateObject();
    cJSON_AddStringToObject(sp, "step", "speed");
    cJSON_AddStringToObject(sp, "model", model);
    cJSON_AddNumberToObject(sp, "threads", t->threads);
    cJSON_AddNumberToObject(sp, "pp", p->pp);
    cJSON_AddNumberToObject(sp, "tg", p->tg);
    cJSON_AddNumberToObject(sp, "reps", 3);
    cJSON_AddItemToArray(steps, sp);
    return steps;
}

/* ---- plan.json ----------------------------------------------------------------------------- */

static cJSON *plan_cjson(const sweep_plan *p, const char *id)
{
    cJSON *r = cJSON_CreateObject();
    if (!r)
        return NULL;
    cJSON_AddStringToObject(r, "format", "slmkit-sweep-plan");
    cJSON_AddNumberToObject(r, "version", 1);
    cJSON_AddStringToObject(r, "id", id);
    cJSON_AddStringToObject(r, "build", p->build);
    cJSON_AddStringToObject(r, "name", p->name);
    cJSON *e = cJSON_AddObjectToObject(r, "eval");
    cJSON_AddStringToObject(e, "text", p->text);
    cJSON_AddStringToObject(e, "sha256", p->text_sha);
    cJSON_AddNumberToObject(e, "ctx", p->ctx);
    cJSON_AddNumberToObject(e, "chunks", p->chunks);
    cJSON_AddNumberToObject(e, "pp", p->pp);
    cJSON_AddNumberToObject(e, "tg", p->tg);
    cJSON *ms = cJSON_AddArrayToObject(r, "models");
    for (int i = 0; i < p->n_models; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "path", p->models[i].path);
        cJSON_AddStringToObject(m, "name", p->models[i].name);
        cJSON_AddStringToObject(m, "kind", p->models[i].is_gguf ? "gguf" : "hf");
        cJSON_AddStringToObject(m, "sha256", p->models[i].sha);
        cJSON_AddItemToArray(ms, m);
    }
    cJSON *ts = cJSON_AddArrayToObject(r, "types");
    for (int i = 0; i < p->n_types; i++)
        cJSON_AddItemToArray(ts, cJSON_CreateString(p->types[i]));
    cJSON *cs = cJSON_AddArrayToObject(r, "calibrations");
    for (int i = 0; i < p->n_calibs; i++) {
        const sweep_calib *c = &p->calibs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "label", c->label);
        if (c->text) {
            cJSON_AddStringToObject(o, "text", c->text);
            cJSON_AddStringToObject(o, "sha256", c->text_sha);
        }
        cJSON_AddBoolToObject(o, "imatrix", c->imatrix);
        cJSON_AddBoolToObject(o, "gptq", c->gptq);
        cJSON_AddNumberToObject(o, "ctx", c->ctx);
        cJSON_AddNumberToObject(o, "chunks", c->chunks);
        cJSON_AddItemToArray(cs, o);
    }
    cJSON *th = cJSON_AddArrayToObject(r, "threads");
    for (int i = 0; i < p->n_threads; i++)
        cJSON_AddItemToArray(th, cJSON_CreateNumber(p->threads[i]));
    cJSON *tk = cJSON_AddArrayToObject(r, "tasks");
    for (int i = 0; i < p->n_tasks; i++) {
        const sweep_task *t = &p->tasks[i];
        cJSON *o = cJSON_CreateObject();
        char idx[16];
        snprintf(idx, sizeof idx, "%d", i);
        cJSON_AddNumberToObject(o, "index", i);
        cJSON_AddStringToObject(o, "id", t->id);
        cJSON_AddNumberToObject(o, "model", t->model);
        cJSON_AddStringToObject(o, "type", t->type);
        cJSON_AddNumberToObject(o, "calibration", t->calib);
        cJSON_AddNumberToObject(o, "threads", t->threads);
        const char *cmd[] = {"slm", "sweep", "run", ".", "--task", idx, NULL};
        cJSON_AddItemToObject(o, "command", argv_json(cmd));
        cJSON_AddItemToObject(o, "steps", sweep_task_steps(p, i));
        cJSON_AddItemToArray(tk, o);
    }
    return r;
}

/* The plan's id: SHA-256 of its canonical bytes with an empty id. */
static int plan_id(const sweep_plan *p, char id[65])
{
    cJSON *j = plan_cjson(p, "");
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    int rc = s ? sw_sha256_hex(s, strlen(s), id) : -1;
    free(s);
    cJSON_Delete(j);
    return rc;
}

char *sweep_plan_json(const sweep_plan *p)
{
    cJSON *j = plan_cjson(p, p->id);
    char *s = j ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    if (!s)
        return NULL;
    size_t l = strlen(s);
    char *out = realloc(s, l + 2);
    if (!out) {
        free(s);
        return NULL;
    }
    out[l] = '\n';
    out[l + 1] = 0;
    return out;
}

/* ---- SWEEP.json -> plan -------------------------------------------------------------------- */

/* The absolute, resolved form of path (relative to base_dir); NULL with err naming the field. */
static char *resolve(const fctx *f, const char *field, const char *base_dir, const char *path)
{
    char *abs = path[0] == '/' ? strdup(path) : sw_join(base_dir, path);
    if (!abs) {
        slm_err_set(f->err, SLM_EINTERNAL, "out of memory");
        return NULL;
    }
    char *r = realpath(abs, NULL);
    if (!r)
        bad(f, field, "%s: %s", path, strerror(errno));
    free(abs);
    return r;
}

/* target relative to directory dir (both absolute and resolved): "/a/x", "/a/b/c" -> "../b/c". */
static char *relative_to(const char *dir, const char *target)
{
    /* the longest common prefix that ends at a component boundary of both */
    size_t common = 0;
    for (size_t i = 0;; i++) {
        char a = dir[i], b = target[i];
        if ((a == '/' || !a) && (b == '/' || !b))
            common = i;
        if (!a || !b || a != b)
            break;
    }
    int ups = 0;
    for (const char *d = dir + common; *d; d++)
        ups += *d == '/' && d[1] && d[1] != '/';
    const char *rest = target + common;
    while (*rest == '/')
        rest++;
    size_t n = (size_t)ups * 3 + strlen(rest) + 2;
    char *out = malloc(n);
    if (!out)
        return NULL;
    out[0] = 0;
    for (int u = 0; u < ups; u++)
        strcat(out, "../");
    strcat(out, rest);
    size_t l = strlen(out);
    if (l == 0)
        strcpy(out, ".");
    else if (out[l - 1] == '/')
        out[l - 1] = 0;
    return out;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* An HF directory's content: SHA-256 over "name\0" + SHA-256 of each regular file, by name. */
static int hash_dir(const char *dir, char hex[65], slm_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return slm_err_set(err, SLM_EIO, "%s: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0, rc = SLM_OK;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char *p = sw_join(dir, e->d_name);
        struct stat st;
        int reg = p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
        free(p);
        if (!reg)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **nn = realloc(names, (size_t)cap * sizeof *names);
            if (!nn) {
                rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == SLM_OK)
        qsort(names, (size_t)n, sizeof *names, cmp_str);
    size_t cap_buf = (size_t)n * (256 + 66) + 1, len = 0;
    char *buf = malloc(cap_buf);
    if (rc == SLM_OK && !buf)
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    for (int i = 0; i < n && rc == SLM_OK; i++) {
        char *p = sw_join(dir, names[i]), h[65];
        if (!p)
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
        else if ((rc = sw_sha256_file(p, h, err)) == SLM_OK)
            len += (size_t)snprintf(buf + len, cap_buf - len, "%.255s%c%s\n", names[i], 0, h);
        free(p);
    }
    if (rc == SLM_OK && sw_sha256_hex(buf, len, hex))
        rc = slm_err_set(err, SLM_EINTERNAL, "SHA-256 failed");
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(buf);
    return rc;
}

/* The task's content address: everything its result depends on, never a path. */
static int task_id(const sweep_plan *p, const sweep_task *t, char id[17])
{
    char s[1024], hex[65];
    const sweep_model *m = &p->models[t->model];
    const sweep_calib *c = t->calib >= 0 ? &p->calibs[t->calib] : NULL;
    snprintf(s, sizeof s,
             "slmkit-sweep-task 1\nmodel %s %s\ntype %s\ncalibration %s %s %d %d %d %d\nthreads %d\n"
             "eval %s %d %d %d %d\n",
             m->sha, m->is_gguf ? "gguf" : "hf", t->type, c ? c->label : "-", c && c->text ? c->text_sha : "-",
             c ? c->imatrix : 0, c ? c->gptq : 0, c ? c->ctx : 0, c ? c->chunks : 0, t->threads, p->text_sha, p->ctx,
             p->chunks, p->pp, p->tg);
    if (sw_sha256_hex(s, strlen(s), hex))
        return -1;
    memcpy(id, hex, 16);
    id[16] = 0;
    return 0;
}

static int cmp_task_id(const void *a, const void *b)
{
    return strcmp((*(const sweep_task *const *)a)->id, (*(const sweep_task *const *)b)->id);
}

/* Base tasks (model x threads) first, so the shared artifacts are made early; then model x
 * calibration x type x threads. */
static int list_tasks(sweep_plan *p, slm_err *err)
{
    int n = p->n_models * p->n_threads * (1 + p->n_types * p->n_calibs), k = 0;
    if (!(p->tasks = calloc((size_t)n, sizeof *p->tasks)))
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    for (int m = 0; m < p->n_models; m++)
        for (int t = 0; t < p->n_threads; t++) {
            p->tasks[k] = (sweep_task){k, "", m, -1, p->threads[t], "base"};
            k++;
        }
    for (int m = 0; m < p->n_models; m++)
        for (int c = 0; c < p->n_calibs; c++)
            for (int y = 0; y < p->n_types; y++)
                for (int t = 0; t < p->n_threads; t++) {
                    sweep_task *tk = &p->tasks[k];
                    *tk = (sweep_task){k, "", m, c, p->threads[t], ""};
                    snprintf(tk->type, sizeof tk->type, "%s", p->types[y]);
                    k++;
                }
    p->n_tasks = n;
    for (int i = 0; i < n; i++)
        if (task_id(p, &p->tasks[i], p->tasks[i].id))
            return slm_err_set(err, SLM_EINTERNAL, "SHA-256 failed");
    /* two tasks with one content address: the same model listed under two paths */
    const sweep_task **by_id = malloc(sizeof *by_id * (size_t)n);
    if (!by_id)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    for (int i = 0; i < n; i++)
        by_id[i] = &p->tasks[i];
    qsort(by_id, (size_t)n, sizeof *by_id, cmp_task_id);
    int rc = SLM_OK;
    for (int i = 1; i < n && rc == SLM_OK; i++)
        if (!strcmp(by_id[i - 1]->id, by_id[i]->id))
            rc = slm_err_set(err, SLM_EINPUT, "models[%d] and models[%d] hold the same model (same content)",
                             by_id[i - 1]->model, by_id[i]->model);
    free(by_id);
    return rc;
}

/* A spec path -> (resolved, relative to the plan dir) with its SHA-256. */
static int take_file(const fctx *f, const char *field, const char *spec_dir, const char *abs_plan, char **path,
                     char sha[65], int want_dir, int *is_dir)
{
    char *r = resolve(f, field, spec_dir, *path);
    if (!r)
        return f->err->code;
    struct stat st;
    int rc = SLM_OK;
    if (stat(r, &st) != 0)
        rc = bad(f, field, "%s: %s", *path, strerror(errno));
    else if (S_ISDIR(st.st_mode) && want_dir) {
        char *cfg = sw_join(r, "config.json");
        struct stat cs;
        if (!cfg || stat(cfg, &cs) != 0 || !S_ISREG(cs.st_mode))
            rc = bad(f, field, "%s: a directory without config.json (not a Hugging Face model)", *path);
        else
            rc = hash_dir(r, sha, f->err);
        free(cfg);
        *is_dir = 1;
    } else if (!S_ISREG(st.st_mode)) {
        rc = bad(f, field, "%s: not a regular file", *path);
    } else {
        if (want_dir) { /* a model file must be a GGUF */
            char magic[4] = {0};
            FILE *g = fopen(r, "rb");
            size_t got = g ? fread(magic, 1, 4, g) : 0;
            if (g)
                fclose(g);
            if (got != 4 || memcmp(magic, "GGUF", 4))
                rc = bad(f, field, "%s: neither a GGUF file nor a Hugging Face directory", *path);
        }
        if (rc == SLM_OK)
            rc = sw_sha256_file(r, sha, f->err);
        *is_dir = 0;
    }
    if (rc == SLM_OK) {
        char *rel = relative_to(abs_plan, r);
        if (!rel)
            rc = slm_err_set(f->err, SLM_EINTERNAL, "out of memory");
        else {
            free(*path);
            *path = rel;
        }
    }
    free(r);
    return rc;
}

int sweep_plan_make(const char *sweep_json, const char *plan_dir, const char *build, sweep_plan *p, slm_err *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = slm_read_text_file(sweep_json, SPEC_MAX_BYTES, &text, &len, err);
    if (rc)
        return rc;
    rc = sweep_spec_parse(text, len, sweep_json, p, err);
    free(text);
    if (rc)
        return rc;
    snprintf(p->build, sizeof p->build, "%s", build ? build : "unknown");
    fctx f = {sweep_json, err};
    /* where the spec's relative paths start, and where the plan will be */
    char *spec_abs = realpath(sweep_json, NULL), *spec_dir = NULL, *abs_plan = NULL;
    if (spec_abs) {
        char *slash = strrchr(spec_abs, '/');
        *slash = 0;
        spec_dir = strdup(slash == spec_abs ? "/" : spec_abs);
    }
    {
        char *pd = strdup(plan_dir);
        size_t l = pd ? strlen(pd) : 0;
        while (l > 1 && pd[l - 1] == '/')
            pd[--l] = 0;
        char *slash = pd ? strrchr(pd, '/') : NULL;
        const char *base = slash ? slash + 1 : pd;
        char *parent = pd ? (slash ? (slash == pd ? strdup("/") : strndup(pd, (size_t)(slash - pd))) : strdup("."))
                          : NULL;
        char *rp = parent ? realpath(parent, NULL) : NULL;
        if (rp) {
            char *rb = NULL;
            if (!strcmp(base, ".") || !strcmp(base, "..") || !base[0])
                rb = realpath(pd, NULL);
            abs_plan = rb ? rb : (!strcmp(rp, "/") ? sw_join("", base) : sw_join(rp, base));
        } else if (pd)
            rc = slm_err_set(err, SLM_EIO, "%s: cannot resolve its parent directory: %s", plan_dir, strerror(errno));
        free(rp);
        free(parent);
        free(pd);
    }
    if (!rc && (!spec_abs || !spec_dir || !abs_plan))
        rc = slm_err_set(err, SLM_EINTERNAL, "%s: cannot resolve paths", sweep_json);
    char field[64];
    for (int i = 0; i < p->n_models && !rc; i++) {
        int is_dir = 0;
        snprintf(field, sizeof field, "models[%d]", i);
        rc = take_file(&f, field, spec_dir, abs_plan, &p->models[i].path, p->models[i].sha, 1, &is_dir);
        p->models[i].is_gguf = !is_dir;
    }
    int dummy;
    if (!rc)
        rc = take_file(&f, "text", spec_dir, abs_plan, &p->text, p->text_sha, 0, &dummy);
    for (int i = 0; i < p->n_calibs && !rc; i++) {
        snprintf(field, sizeof field, p->n_calibs > 1 ? "calibration[%d].text" : "calibration.text", i);
        if (p->calibs[i].text)
            rc = take_file(&f, field, spec_dir, abs_plan, &p->calibs[i].text, p->calibs[i].text_sha, 0, &dummy);
    }
    if (!rc)
        rc = list_tasks(p, err);
    if (!rc && plan_id(p, p->id))
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    free(spec_abs);
    free(spec_dir);
    free(abs_plan);
    if (rc)
        sweep_plan_free(p);
    return rc;
}

/* ---- reading plan.json ----------------------------------------------------------------------- */

static int is_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int get_hex(const fctx *f, const cJSON *o, const char *key, const char *field, size_t n, char *out)
{
    const char *s;
    int rc = get_str(f, o, key, field, 1, n + 1, &s);
    if (rc)
        return rc;
    if (!is_hex(s, n))
        return bad(f, field, "must be %zu lower-case hex digits", n);
    memcpy(out, s, n + 1);
    return SLM_OK;
}

static int get_path(const fctx *f, const cJSON *o, const char *key, const char *field, char **out)
{
    const char *s;
    int rc = get_str(f, o, key, field, 1, 4096, &s);
    if (rc)
        return rc;
    if (!(*out = strdup(s)))
        return slm_err_set(f->err, SLM_EINTERNAL, "out of memory");
    return SLM_OK;
}

static const cJSON *get_array(const fctx *f, const cJSON *o, const char *key, int lo, int hi, int *rc)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) < lo || cJSON_GetArraySize(a) > hi) {
        *rc = bad(f, key, "must be a list of %d..%d entries", lo, hi);
        return NULL;
    }
    return a;
}

int sweep_plan_parse(const char *json, size_t len, const char *name, sweep_plan *p, slm_err *err)
{
    static const char *const keys[] = {"format", "version", "id", "build", "name", "eval", "models", "types",
                                       "calibrations", "threads", "tasks", NULL};
    fctx f = {name, err};
    memset(p, 0, sizeof *p);
    if (has_nul_escape(json, len))
        return slm_err_set(err, SLM_EINPUT, "%s: a NUL byte (or \\u0000) in the text", name);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root)
        return slm_err_set(err, SLM_EINPUT, "%s: not valid JSON", name);
    int rc = SLM_OK, v;
    const char *s;
    char fl[96];
    const cJSON *a, *o;
    if (!cJSON_IsObject(root)) {
        rc = slm_err_set(err, SLM_EINPUT, "%s: not a sweep plan (a JSON object)", name);
        goto done;
    }
    if ((rc = only_keys(&f, root, "", keys)) || (rc = get_str(&f, root, "format", "format", 1, 64, &s)))
        goto done;
    if (strcmp(s, "slmkit-sweep-plan")) {
        rc = bad(&f, "format", "'%s' is not slmkit-sweep-plan", s);
        goto done;
    }
    if ((rc = get_int(&f, root, "version", "version", 1, 1, 0, 0, &v)) ||
        (rc = get_hex(&f, root, "id", "id", 64, p->id)) ||
        (rc = get_str(&f, root, "build", "build", 1, sizeof p->build, &s)))
        goto done;
    snprintf(p->build, sizeof p->build, "%s", s);
    if ((rc = get_str(&f, root, "name", "name", 1, sizeof p->name, &s)))
        goto done;
    if (!name_ok(s)) {
        rc = bad(&f, "name", "'%s' is not a job name", s);
        goto done;
    }
    snprintf(p->name, sizeof p->name, "%s", s);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "eval");
    static const char *const ekeys[] = {"text", "sha256", "ctx", "chunks", "pp", "tg", NULL};
    if (!cJSON_IsObject(e)) {
        rc = bad(&f, "eval", "must be an object");
        goto done;
    }
    if ((rc = only_keys(&f, e, "eval", ekeys)) || (rc = get_path(&f, e, "text", "eval.text", &p->text)) ||
        (rc = get_hex(&f, e, "sha256", "eval.sha256", 64, p->text_sha)) ||
        (rc = get_int(&f, e, "ctx", "eval.ctx", 8, 1 << 20, 0, 0, &p->ctx)) ||
        (rc = get_int(&f, e, "chunks", "eval.chunks", 0, 1 << 20, 0, 0, &p->chunks)) ||
        (rc = get_int(&f, e, "pp", "eval.pp", 0, 1 << 16, 0, 0, &p->pp)) ||
        (rc = get_int(&f, e, "tg", "eval.tg", 0, 1 << 16, 0, 0, &p->tg)))
        goto done;

    if (!(a = get_array(&f, root, "models", 1, SWEEP_MAX_MODELS, &rc)))
        goto done;
    cJSON_ArrayForEach(o, a) {
        static const char *const mkeys[] = {"path", "name", "kind", "sha256", NULL};
        sweep_model *m = &p->models[p->n_models];
        snprintf(fl, sizeof fl, "models[%d]", p->n_models);
        if (!cJSON_IsObject(o)) {
            rc = bad(&f, fl, "must be an object");
            goto done;
        }
        p->n_models++;
        if ((rc = only_keys(&f, o, fl, mkeys)) || (rc = get_path(&f, o, "path", fl, &m->path)) ||
            (rc = get_str(&f, o, "name", fl, 1, sizeof m->name, &s)))
            goto done;
        snprintf(m->name, sizeof m->name, "%s", s);
        if ((rc = get_str(&f, o, "kind", fl, 1, 8, &s)))
            goto done;
        if (strcmp(s, "gguf") && strcmp(s, "hf")) {
            rc = bad(&f, fl, "kind '%s' is neither gguf nor hf", s);
            goto done;
        }
        m->is_gguf = !strcmp(s, "gguf");
        if ((rc = get_hex(&f, o, "sha256", fl, 64, m->sha)))
            goto done;
    }
    if (!(a = get_array(&f, root, "types", 1, SWEEP_MAX_TYPES, &rc)))
        goto done;
    cJSON_ArrayForEach(o, a) {
        snprintf(fl, sizeof fl, "types[%d]", p->n_types);
        if (!cJSON_IsString(o) || strlen(o->valuestring) >= sizeof p->types[0] ||
            slm_recipe_by_name(o->valuestring) < 0) {
            rc = bad(&f, fl, "not a recipe slm quantize knows");
            goto done;
        }
        snprintf(p->types[p->n_types++], sizeof p->types[0], "%s", o->valuestring);
    }
    if (!(a = get_array(&f, root, "calibrations", 1, SWEEP_MAX_CALIBS, &rc)))
        goto done;
    cJSON_ArrayForEach(o, a) {
        static const char *const ckeys[] = {"label", "text", "sha256", "imatrix", "gptq", "ctx", "chunks", NULL};
        sweep_calib *c = &p->calibs[p->n_calibs];
        snprintf(fl, sizeof fl, "calibrations[%d]", p->n_calibs);
        if (!cJSON_IsObject(o)) {
            rc = bad(&f, fl, "must be an object");
            goto done;
        }
        p->n_calibs++;
        if ((rc = only_keys(&f, o, fl, ckeys)) || (rc = get_str(&f, o, "label", fl, 1, sizeof c->label, &s)))
            goto done;
        snprintf(c->label, sizeof c->label, "%s", s);
        if ((rc = get_bool(&f, o, "imatrix", fl, &c->imatrix)) || (rc = get_bool(&f, o, "gptq", fl, &c->gptq)) ||
            (rc = get_int(&f, o, "ctx", fl, 0, 1 << 20, 0, 0, &c->ctx)) ||
            (rc = get_int(&f, o, "chunks", fl, 0, 1 << 20, 0, 0, &c->chunks)))
            goto done;
        if (c->imatrix || c->gptq) {
            if ((rc = get_path(&f, o, "text", fl, &c->text)) || (rc = get_hex(&f, o, "sha256", fl, 64, c->text_sha)))
                goto done;
        } else if (cJSON_GetObjectItemCaseSensitive(o, "text")) {
            rc = bad(&f, fl, "a text without imatrix or gptq");
            goto done;
        }
    }
    if (!(a = get_array(&f, root, "threads", 1, SWEEP_MAX_THREADS, &rc)))
        goto done;
    cJSON_ArrayForEach(o, a) {
        snprintf(fl, sizeof fl, "threads[%d]", p->n_threads);
        if (!cJSON_IsNumber(o) || o->valuedouble != floor(o->valuedouble) || o->valuedouble < 1 ||
            o->valuedouble > 1024) {
            rc = bad(&f, fl, "must be a whole number 1..1024");
            goto done;
        }
        p->threads[p->n_threads++] = (int)o->valuedouble;
    }
    /* the tasks must be exactly the grid this plan describes, with the ids its content gives */
    int n_expect = p->n_models * p->n_threads * (1 + p->n_types * p->n_calibs);
    if (n_expect > SWEEP_MAX_TASKS) {
        rc = bad(&f, "tasks", "%d tasks; at most %d", n_expect, SWEEP_MAX_TASKS);
        goto done;
    }
    if (!(a = get_array(&f, root, "tasks", n_expect, n_expect, &rc)))
        goto done;
    if ((rc = list_tasks(p, err)))
        goto done;
    int i = 0;
    cJSON_ArrayForEach(o, a) {
        snprintf(fl, sizeof fl, "tasks[%d]", i);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
        if (!cJSON_IsString(id) || strcmp(id->valuestring, p->tasks[i].id)) {
            rc = bad(&f, fl, "id is not the content address of this task (%s)", p->tasks[i].id);
            goto done;
        }
        i++;
    }
    char want[65];
    if (plan_id(p, want)) {
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
        goto done;
    }
    if (strcmp(want, p->id))
        rc = bad(&f, "id", "does not match the plan's content (edited by hand? plan again)");
done:
    cJSON_Delete(root);
    if (rc)
        sweep_plan_free(p);
    return rc;
}

int sweep_plan_read(const char *plan_dir, sweep_plan *p, slm_err *err)
{
    char *path = sw_join(plan_dir, "plan.json"), *text = NULL;
    size_t len = 0;
    if (!path)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    int rc = slm_read_text_file(path, PLAN_MAX_BYTES, &text, &len, err);
    if (!rc)
        rc = sweep_plan_parse(text, len, path, p, err);
    free(text);
    free(path);
    return rc;
}

int sweep_plan_write(const sweep_plan *p, const char *plan_dir, int *same, slm_err *err)
{
    *same = 0;
    char *json = sweep_plan_json(p), *path = sw_join(plan_dir, "plan.json");
    int rc = SLM_OK, created = 0;
    if (!json || !path) {
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
        goto done;
    }
    struct stat st;
    if (stat(plan_dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            rc = slm_err_set(err, SLM_EIO, "%s: exists and is not a directory", plan_dir);
            goto done;
        }
        char *old = NULL;
        size_t len = 0;
        slm_err e2 = {0};
        if (stat(path, &st) == 0) {
            if (slm_read_text_file(path, PLAN_MAX_BYTES, &old, &len, &e2) == SLM_OK && len == strlen(json) &&
                !memcmp(old, json, len))
                *same = 1;
            free(old);
            if (!*same) {
                rc = slm_err_set(err, SLM_EINPUT, "%s: holds another plan; plan into a new directory", plan_dir);
                goto done;
            }
        } else {
            DIR *d = opendir(plan_dir);
            int n = 0;
            for (struct dirent *de; d && (de = readdir(d));)
                n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
            if (d)
                closedir(d);
            if (n) {
                rc = slm_err_set(err, SLM_EINPUT, "%s: not empty and holds no plan; plan into a new directory",
                                 plan_dir);
                goto done;
            }
        }
    } else if (mkdir(plan_dir, 0755) != 0) {
        rc = slm_err_set(err, SLM_EIO, "%s: cannot create: %s", plan_dir, strerror(errno));
        goto done;
    } else
        created = 1;
    static const char *const subs[] = {"results", "artifacts", "logs"};
    for (int i = 0; i < 3 && !rc; i++) {
        char *d = sw_join(plan_dir, subs[i]);
        if (!d || (mkdir(d, 0755) != 0 && errno != EEXIST))
            rc = slm_err_set(err, SLM_EIO, "%s/%s: cannot create: %s", plan_dir, subs[i], strerror(errno));
        free(d);
    }
    if (!rc && !*same)
        rc = sw_write_atomic(path, json, strlen(json), err);
    if (rc && created) { /* nothing partial: the directory goes again */
        for (int i = 0; i < 3; i++) {
            char *d = sw_join(plan_dir, subs[i]);
            if (d)
                rmdir(d);
            free(d);
        }
        rmdir(plan_dir);
    }
done:
    free(json);
    free(path);
    return rc;
}
