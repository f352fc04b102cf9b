/* tests/test_registry.c — bundles through a real OCI registry (Debian's
 * docker-registry, CNCF Distribution 2.8, started by each test on 127.0.0.1)
 * and through a loopback proxy that misbehaves: push/pull/update, rollback,
 * tampering, resume, bounded memory, bad networks, token auth, fleet rollback. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ftw.h>

#include <cjson/cJSON.h>

#include "formats.h"
#include "regtest.h"
#include "registry.h"
#include "testutil.h"

typedef struct fx {
    rt_registry reg;
    char *dir, *key, *root, *model_a, *model_b, *v1, *v2, *store;
} fx;

/* Run slm with a NULL-terminated list of args; returns the exit code. */

/* stories260K with one weight scaled: a different (still healthy) model. */
static void write_variant(const char *src, const char *dst)
{
    gguf_file *g;
    slm_err err = {0};
    cr_assert_eq(gguf_open(src, &g, &err), 0, "%s", err.msg);
    int64_t ti = gguf_find_tensor(g, "output_norm.weight");
    cr_assert_geq(ti, 0);
    uint64_t off = g->data_offset + g->tensors[ti].offset + 4 * 3;
    gguf_close(g);
    size_t n;
    char *b = tu_read_file(src, &n);
    float f;
    memcpy(&f, b + off, 4);
    f *= 1.01f;
    memcpy(b + off, &f, 4);
    cr_assert_eq(tu_write_file(dst, b, n), 0);
    free(b);
}

static void fx_init(fx *f)
{
    memset(f, 0, sizeof *f);
    rt_registry_start(&f->reg);
    f->dir = tu_tmpdir("regtest");
    f->key = tu_path(f->dir, "a.key");
    f->root = tu_path(f->dir, "root.json");
    f->model_a = strdup(tu_model("gguf/stories260K.gguf"));
    f->model_b = tu_path(f->dir, "b.gguf");
    f->v1 = tu_path(f->dir, "v1.slmb");
    f->v2 = tu_path(f->dir, "v2.slmb");
    f->store = tu_path(f->dir, "store");
    write_variant(f->model_a, f->model_b);
    char pub[4200];
    snprintf(pub, sizeof pub, "%s.pub", f->key);
    TU_SLM_OK("keygen", "-o", f->key);
    TU_SLM_OK("trust", "init", "-o", f->root, "--key", pub, "--threshold", "1", "--expires", "30d", "--sign-with", f->key);
    TU_SLM_OK("bundle", f->model_a, "-o", f->v1, "--name", "stories", "--version", "1", "--key", f->key);
    TU_SLM_OK("bundle", f->model_b, "-o", f->v2, "--name", "stories", "--version", "2", "--key", f->key);
}

static void fx_fini(fx *f)
{
    rt_registry_stop(&f->reg);
    tu_rmtree(f->dir);
    char **p[] = {&f->dir, &f->key, &f->root, &f->model_a, &f->model_b, &f->v1, &f->v2, &f->store};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        free(*p[i]);
}

static char *ref(const char *host, const char *tag)
{
    char *r = malloc(256);
    snprintf(r, 256, "%s/models/stories:%s", host, tag);
    return r;
}

static cJSON *push_json(fx *f, const char *bundle, const char *tag)
{
    char *r = ref(f->reg.host, tag), *out = NULL, *err = NULL;
    int rc = tu_slmv(&out, &err, "push", bundle, r, "--plain-http", "--json", NULL);
    cr_assert_eq(rc, 0, "push %s -> %d: %s", r, rc, err);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "push output: %s", out);
    free(r);
    free(out);
    free(err);
    return j;
}

static int active_version(const char *store)
{
    char *out = NULL;
    if (tu_slmv(&out, NULL, "install", "--status", "--store", store, "--json", NULL)) {
        free(out);
        return -1;
    }
    cJSON *j = cJSON_Parse(out);
    free(out);
    const cJSON *a = cJSON_GetObjectItem(j, "active");
    int v = cJSON_IsObject(a) ? cJSON_GetObjectItem(a, "version")->valueint : 0;
    cJSON_Delete(j);
    return v;
}

/* slm update of f->store from host/models/stories:tag; returns the exit code, stderr in *err. */
static int update(fx *f, const char *host, const char *tag, char **err, const char *x1, const char *x2, const char *x3)
{
    char *r = ref(host, tag);
    int rc = tu_slmv(NULL, err, "update", "--store", f->store, "--from", r, "--trust", f->root, "--plain-http", x1, x2,
                  x3, NULL);
    free(r);
    return rc;
}

static void update_ok(fx *f, const char *tag, int expect_version)
{
    char *e = NULL;
    int rc = update(f, f->reg.host, tag, &e, NULL, NULL, NULL);
    cr_assert_eq(rc, 0, "update from :%s -> %d: %s", tag, rc, e);
    free(e);
    cr_assert_eq(active_version(f->store), expect_version);
}

static int one_line(const char *s)
{
    return s && tu_count_lines(s) == 1;
}

/* What a pull lands for `bundle` packing `gguf`: the same head with header
 * format 2, then the GGUF uncompressed (malloc'd, *n its size). */
static char *stored_of(const char *bundle, const char *gguf, size_t *n)
{
    size_t bn, gn;
    unsigned char *b = (unsigned char *)tu_read_file(bundle, &bn);
    char *g = tu_read_file(gguf, &gn);
    cr_assert(b && g);
    uint32_t m = b[12] | b[13] << 8 | b[14] << 16 | (uint32_t)b[15] << 24;
    uint32_t sg = b[16] | b[17] << 8 | b[18] << 16 | (uint32_t)b[19] << 24;
    size_t hl = 24 + (size_t)m + sg;
    char *out = malloc(hl + gn);
    memcpy(out, b, hl);
    out[8] = 2;
    memcpy(out + hl, g, gn);
    *n = hl + gn;
    free(b);
    free(g);
    return out;
}

static int same_as_stored(const char *pulled, const char *bundle, const char *gguf)
{
    size_t n1, n2;
    char *a = stored_of(bundle, gguf, &n1), *b = tu_read_file(pulled, &n2);
    int same = a && b && n1 == n2 && !memcmp(a, b, n1);
    free(a);
    free(b);
    return same;
}

/* ---- the happy path ---------------------------------------------------------------- */
Test(registry, push_v1_v2_pull_lands_the_stored_form_with_referrers, .timeout = 120)
{
    fx f;
    fx_init(&f);
    cJSON *p1 = push_json(&f, f.v1, "v1");
    cJSON *p2 = push_json(&f, f.v2, "v2");
    cr_assert_eq(cJSON_GetObjectItem(p1, "layers")->valueint, 2);
    cr_assert_eq(cJSON_GetObjectItem(p1, "blobs_uploaded")->valueint, 2);
    /* Distribution 2.8 has no referrers API: the sha256-<hex> tag schema holds the referrer */
    cr_assert_str_eq(cJSON_GetObjectItem(p1, "referrers")->valuestring, "tag-schema");
    char tagdir[4400];
    snprintf(tagdir, sizeof tagdir, "%s/storage/docker/registry/v2/repositories/models/stories/_manifests/tags/sha256-%s",
             f.reg.dir, cJSON_GetObjectItem(p1, "manifest_digest")->valuestring + 7);
    cr_assert(tu_exists(tagdir), "no referrers fallback tag %s", tagdir);
    /* pushing v1 again uploads nothing */
    cJSON *p1b = push_json(&f, f.v1, "v1-again");
    cr_assert_eq(cJSON_GetObjectItem(p1b, "blobs_uploaded")->valueint, 0);
    cr_assert_eq(cJSON_GetObjectItem(p1b, "blobs_existing")->valueint, 2);
    cr_assert_str_eq(cJSON_GetObjectItem(p1b, "manifest_digest")->valuestring,
                     cJSON_GetObjectItem(p1, "manifest_digest")->valuestring);
    /* pull v2 (by tag, verified) and v1 (by digest) */
    char *out = tu_path(f.dir, "pulled.slmb"), *o = NULL, *e = NULL;
    char *r2 = ref(f.reg.host, "v2");
    int rc = tu_slmv(&o, &e, "pull", r2, "-o", out, "--plain-http", "--trust", f.root, "--json", NULL);
    cr_assert_eq(rc, 0, "%s", e);
    cJSON *pj = cJSON_Parse(o);
    cr_assert_eq(cJSON_GetObjectItem(pj, "version")->valueint, 2);
    /* the pulled bundle is the pushed one with its payload stored: the same signed head, the GGUF as is */
    cr_assert(same_as_stored(out, f.v2, f.model_b), "pulled bundle is not v2's head + model");
    char r1[300];
    snprintf(r1, sizeof r1, "%s/models/stories@%s", f.reg.host, cJSON_GetObjectItem(p1, "manifest_digest")->valuestring);
    TU_SLM_OK("pull", r1, "-o", out, "--plain-http");
    TU_SLM_OK("verify", out, "--trust", f.root, "--floor", "0");
    /* a digest that is not the manifest's is refused */
    snprintf(r1, sizeof r1, "%s/models/stories@sha256:%064d", f.reg.host, 0);
    cr_assert_neq(tu_slmv(NULL, NULL, "pull", r1, "-o", out, "--plain-http", NULL), 0);
    cJSON_Delete(pj);
    cJSON_Delete(p1);
    cJSON_Delete(p1b);
    cJSON_Delete(p2);
    free(o);
    free(e);
    free(r2);
    free(out);
    fx_fini(&f);
}

/* ---- the GGUF layer is the plain file: one blob across releases --------------------------- */
static uint64_t blob_total, blob_count_of_size, blob_size_wanted;
static int blob_walk(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)ftw;
    size_t l = strlen(p);
    if (type == FTW_F && l > 5 && !strcmp(p + l - 5, "/data") && strstr(p, "/blobs/sha256/")) {
        blob_total += (uint64_t)sb->st_size;
        blob_count_of_size += (uint64_t)sb->st_size == blob_size_wanted;
    }
    return 0;
}

Test(registry, same_gguf_in_two_releases_is_stored_and_uploaded_once, .timeout = 120)
{
    fx f;
    fx_init(&f);
    /* v1 and a v2 that packs the very same GGUF (other version, other signature, zstd level 19) */
    char *v2same = tu_path(f.dir, "v2same.slmb");
    TU_SLM_OK("bundle", f.model_a, "-o", v2same, "--name", "stories", "--version", "2", "--level", "19", "--key", f.key);
    size_t gn;
    char *g = tu_read_file(f.model_a, &gn);
    uint8_t h[32];
    char want[72] = "sha256:";
    cr_assert_eq(slm_sha256(g, gn, h), 0);
    slm_hex(h, 32, want + 7);
    free(g);
    rt_proxy px;
    rt_proxy_start(&px, f.reg.port, RT_PASS);
    char *r1 = ref(px.host, "v1"), *r2 = ref(px.host, "v2"), *o = NULL, *e = NULL;
    int rc = tu_slmv(&o, &e, "push", f.v1, r1, "--plain-http", "--json", NULL);
    cr_assert_eq(rc, 0, "%s", e);
    cJSON *p1 = cJSON_Parse(o);
    free(o);
    free(e);
    int up1 = px.n_uploads;
    long bytes1 = px.upload_bytes;
    rc = tu_slmv(&o, &e, "push", v2same, r2, "--plain-http", "--json", NULL);
    cr_assert_eq(rc, 0, "%s", e);
    cJSON *p2 = cJSON_Parse(o);
    int up2 = px.n_uploads - up1;
    long bytes2 = px.upload_bytes - bytes1;
    fprintf(stderr, "registry dedup: push v1: %d blob upload requests, %ld bytes; push v2 (same GGUF): %d requests, "
            "%ld bytes (GGUF %zu bytes)\n", up1, bytes1, up2, bytes2, gn);
    /* the model layer is the GGUF itself: its digest is the file's SHA-256, in both releases */
    cr_assert_str_eq(cJSON_GetObjectItem(p1, "payload_digest")->valuestring, want);
    cr_assert_str_eq(cJSON_GetObjectItem(p2, "payload_digest")->valuestring, want);
    cr_assert_str_neq(cJSON_GetObjectItem(p1, "manifest_digest")->valuestring,
                      cJSON_GetObjectItem(p2, "manifest_digest")->valuestring);
    /* the second push found the GGUF there (HEAD) and sent only the small head layer */
    cr_assert_eq(cJSON_GetObjectItem(p2, "blobs_existing")->valueint, 1);
    cr_assert_eq(cJSON_GetObjectItem(p2, "blobs_uploaded")->valueint, 1);
    cr_assert_geq(bytes1, (long)gn, "the first push did not send the GGUF (%ld bytes)", bytes1);
    cr_assert_lt(bytes2, (long)gn / 4, "the second push sent %ld bytes: the GGUF again?", bytes2);
    cr_assert_lt(up2, up1);
    /* the registry's storage holds the GGUF once */
    char blobs[4400];
    snprintf(blobs, sizeof blobs, "%s/storage/docker/registry/v2/blobs", f.reg.dir);
    blob_total = blob_count_of_size = 0;
    blob_size_wanted = gn;
    cr_assert_eq(nftw(blobs, blob_walk, 16, FTW_PHYS), 0);
    cr_assert_eq(blob_count_of_size, 1, "%llu blobs of the GGUF's size", (unsigned long long)blob_count_of_size);
    cr_assert_lt(blob_total, gn + gn / 4, "storage holds %llu bytes for one %zu-byte GGUF",
                 (unsigned long long)blob_total, gn);
    /* and both releases pull, verify and install from it */
    update_ok(&f, "v1", 1);
    update_ok(&f, "v2", 2);
    char slot[4400];
    snprintf(slot, sizeof slot, "%s/slot-b/model.gguf", f.store);
    size_t n1, n2;
    char *a = tu_read_file(slot, &n1), *b = tu_read_file(f.model_a, &n2);
    cr_assert(a && b && n1 == n2 && !memcmp(a, b, n1), "slot b does not hold the GGUF");
    free(a);
    free(b);
    rt_proxy_stop(&px);
    cJSON_Delete(p1);
    cJSON_Delete(p2);
    free(o);
    free(e);
    free(r1);
    free(r2);
    free(v2same);
    fx_fini(&f);
}

Test(registry, store_updates_v1_to_v2_and_refuses_v1_served_as_v2, .timeout = 120)
{
    fx f;
    fx_init(&f);
    cJSON_Delete(push_json(&f, f.v1, "v1"));
    cJSON_Delete(push_json(&f, f.v2, "v2"));
    update_ok(&f, "v1", 1);
    update_ok(&f, "v2", 2);
    /* the registry (or whoever controls it) serves v1's manifest under the v2 tag: rollback */
    cJSON_Delete(push_json(&f, f.v1, "v2"));
    char *e = NULL;
    int rc = update(&f, f.reg.host, "v2", &e, NULL, NULL, NULL);
    cr_assert_eq(rc, 5, "rollback not refused: %d %s", rc, e);
    cr_assert(strstr(e, "not above the committed version 2"), "%s", e);
    cr_assert(one_line(e), "%s", e);
    free(e);
    cr_assert_eq(active_version(f.store), 2);
    /* nothing of the refused download stays behind */
    char *dl = tu_path(f.store, "download");
    cr_assert_eq(tu_count_entries(dl), 0);
    free(dl);
    fx_fini(&f);
}

Test(registry, tampered_blob_is_refused_and_nothing_installed, .timeout = 120)
{
    fx f;
    fx_init(&f);
    cJSON_Delete(push_json(&f, f.v1, "v1"));
    cJSON *p2 = push_json(&f, f.v2, "v2");
    update_ok(&f, "v1", 1);
    /* flip one byte of v2's payload blob inside the registry's storage */
    char *blob = rt_blob_path(&f.reg, cJSON_GetObjectItem(p2, "payload_digest")->valuestring);
    size_t n;
    char *b = tu_read_file(blob, &n);
    cr_assert_not_null(b, "%s", blob);
    b[n / 2] ^= 0x20;
    cr_assert_eq(tu_write_file(blob, b, n), 0);
    free(b);
    char *e = NULL;
    int rc = update(&f, f.reg.host, "v2", &e, NULL, NULL, NULL);
    cr_assert_eq(rc, 5, "%d %s", rc, e);
    cr_assert(strstr(e, "does not match its digest"), "%s", e);
    cr_assert(one_line(e), "%s", e);
    cr_assert_eq(active_version(f.store), 1);
    char *dl = tu_path(f.store, "download");
    cr_assert_eq(tu_count_entries(dl), 0, "the refused bytes were kept");
    /* the same with a plain pull: no output file */
    char *out = tu_path(f.dir, "p.slmb"), *r = ref(f.reg.host, "v2");
    cr_assert_eq(tu_slmv(NULL, NULL, "pull", r, "-o", out, "--plain-http", NULL), 5);
    cr_assert(!tu_exists(out));
    free(e);
    free(dl);
    free(out);
    free(r);
    free(blob);
    cJSON_Delete(p2);
    fx_fini(&f);
}

/* ---- resume -------------------------------------------------------------------------- */
static uint64_t head_len(const char *bundle)
{
    size_t n;
    unsigned char *b = (unsigned char *)tu_read_file(bundle, &n);
    uint32_t m = b[12] | b[13] << 8 | b[14] << 16 | (uint32_t)b[15] << 24;
    uint32_t s = b[16] | b[17] << 8 | b[18] << 16 | (uint32_t)b[19] << 24;
    free(b);
    return 24 + (uint64_t)m + s;
}

Test(registry, interrupted_pull_resumes_from_the_byte_where_it_stopped, .timeout = 120)
{
    fx f;
    fx_init(&f);
    cJSON_Delete(push_json(&f, f.v2, "v2"));
    rt_proxy px;
    rt_proxy_start(&px, f.reg.port, RT_CUT_ONCE);
    px.cut_at = 300000;
    char *r = ref(px.host, "v2"), *out = tu_path(f.dir, "p.slmb"), *o = NULL, *e = NULL;
    /* in one run: the cut connection is resumed with a Range request */
    int rc = tu_slmv(&o, &e, "pull", r, "-o", out, "--plain-http", "--trust", f.root, "--json", NULL);
    cr_assert_eq(rc, 0, "%s", e);
    cJSON *j = cJSON_Parse(o);
    uint64_t h = head_len(f.v2);
    cr_assert_eq(cJSON_GetObjectItem(j, "resumes")->valueint, 1);
    cr_assert_eq((uint64_t)cJSON_GetObjectItem(j, "resumed_from")->valuedouble, h + 300000);
    int found = 0;
    for (int i = 0; i < px.n_ranges; i++)
        found |= !strcmp(px.ranges[i], "bytes=300000-");
    cr_assert(found, "the proxy saw no 'Range: bytes=300000-' (first: %s)", px.ranges[0]);
    size_t n1, n2;
    char *a = stored_of(f.v2, f.model_b, &n1), *b = tu_read_file(out, &n2);
    cr_assert(n1 == n2 && !memcmp(a, b, n1));
    free(b);
    cJSON_Delete(j);
    free(o);
    free(e);
    unlink(out);
    /* across runs: the first run gives up (no retries), the next one resumes from FILE.part */
    px.mode = RT_CUT_ONCE;
    px.cut_done = 0;
    px.cut_at = 123456;
    rc = tu_slmv(NULL, &e, "pull", r, "-o", out, "--plain-http", "--retries", "0", NULL);
    cr_assert_eq(rc, 4, "%d %s", rc, e);
    cr_assert(strstr(e, "truncated"), "%s", e);
    cr_assert(one_line(e), "%s", e);
    free(e);
    cr_assert(!tu_exists(out));
    char part[4200];
    snprintf(part, sizeof part, "%s.part", out);
    struct stat sb;
    cr_assert_eq(stat(part, &sb), 0);
    cr_assert_eq((uint64_t)sb.st_size, h + 123456);
    rc = tu_slmv(&o, &e, "pull", r, "-o", out, "--plain-http", "--trust", f.root, "--json", NULL);
    cr_assert_eq(rc, 0, "%s", e);
    j = cJSON_Parse(o);
    cr_assert_eq((uint64_t)cJSON_GetObjectItem(j, "resumed_from")->valuedouble, h + 123456);
    cr_assert_eq((uint64_t)cJSON_GetObjectItem(j, "downloaded")->valuedouble, n1 - h - 123456);
    cr_assert(!tu_exists(part));
    b = tu_read_file(out, &n2);
    cr_assert(n1 == n2 && !memcmp(a, b, n1));
    free(a);
    free(b);
    cJSON_Delete(j);
    free(o);
    free(e);
    rt_proxy_stop(&px);
    free(r);
    free(out);
    fx_fini(&f);
}

/* ---- bounded memory ---------------------------------------------------------------------- */
Test(registry, large_bundle_pull_peak_rss_under_64_mib, .timeout = 300)
{
    fx f;
    fx_init(&f);
    /* 160 MiB of incompressible bytes: the payload blob is as large as the file */
    char *big = tu_path(f.dir, "big.bin"), *bb = tu_path(f.dir, "big.slmb");
    FILE *fp = fopen(big, "wb");
    cr_assert_not_null(fp);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    static uint64_t blk[1 << 16];
    for (int i = 0; i < 320; i++) {
        for (size_t k = 0; k < sizeof blk / sizeof blk[0]; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            blk[k] = x;
        }
        cr_assert_eq(fwrite(blk, sizeof blk, 1, fp), 1);
    }
    fclose(fp);
    TU_SLM_OK("bundle", big, "-o", bb, "--name", "big", "--version", "1", "--level", "1", "--key", f.key);
    unlink(big);
    char *r = ref(f.reg.host, "big"), *out = tu_path(f.dir, "p.slmb"), *o = NULL, *e = NULL;
    TU_SLM_OK("push", bb, r, "--plain-http");
    int rc = tu_slmv(&o, &e, "pull", r, "-o", out, "--plain-http", "--trust", f.root, "--json", NULL);
    cr_assert_eq(rc, 0, "%s", e);
    cJSON *j = cJSON_Parse(o);
    double rss = cJSON_GetObjectItem(j, "peak_rss_kib")->valuedouble;
    double bytes = cJSON_GetObjectItem(j, "bytes")->valuedouble;
    cr_assert_gt(bytes, 160.0 * 1048576, "bundle only %.0f bytes", bytes);
    cr_assert_lt(rss, 64.0 * 1024, "peak RSS %.1f MiB pulling a %.0f MiB bundle", rss / 1024, bytes / 1048576);
    fprintf(stderr, "registry: pulled %.0f MiB with peak RSS %.1f MiB\n", bytes / 1048576, rss / 1024);
    cJSON_Delete(j);
    free(o);
    free(e);
    free(r);
    free(out);
    free(big);
    free(bb);
    fx_fini(&f);
}

/* ---- bad networks: one clear error each, the previous model stays -------------------------- */
static void bad_network(int mode, const char *expect, const char *x1, const char *x2, double max_seconds)
{
    fx f;
    fx_init(&f);
    cJSON_Delete(push_json(&f, f.v1, "v1"));
    cJSON_Delete(push_json(&f, f.v2, "v2"));
    update_ok(&f, "v1", 1);
    rt_proxy px;
    char down[64];
    const char *host = down;
    if (mode >= 0) {
        rt_proxy_start(&px, f.reg.port, mode);
        px.cut_at = 1000;
        host = px.host;
    } else {
        snprintf(down, sizeof down, "127.0.0.1:%d", rt_free_port()); /* nothing listens */
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char *e = NULL;
    int rc = update(&f, host, "v2", &e, x1, x2, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    if (mode >= 0)
        rt_proxy_stop(&px);
    cr_assert_eq(rc, 4, "expected a network error (4), got %d: %s", rc, e);
    cr_assert(strstr(e, expect), "expected '%s' in: %s", expect, e);
    cr_assert(one_line(e), "not one line: %s", e);
    cr_assert_lt(secs, max_seconds, "took %.1f s", secs);
    cr_assert_eq(active_version(f.store), 1);
    /* and the store still updates once the network is fine */
    update_ok(&f, "v2", 2);
    free(e);
    fx_fini(&f);
}

Test(registry_badnet, registry_down, .timeout = 120) { bad_network(-1, "cannot connect to the registry", NULL, NULL, 20); }
Test(registry_badnet, http_500, .timeout = 120) { bad_network(RT_E500, "answered 500", NULL, NULL, 20); }
Test(registry_badnet, truncated_manifest, .timeout = 120) { bad_network(RT_TRUNC_MANIFEST, "truncated", NULL, NULL, 20); }
Test(registry_badnet, truncated_blob_every_time, .timeout = 120)
{
    bad_network(RT_CUT_ALWAYS, "truncated", "--retries", "0", 20);
}
Test(registry_badnet, redirect_to_another_host_refused, .timeout = 120)
{
    bad_network(RT_REDIRECT, "redirect to another host 'elsewhere.invalid", NULL, NULL, 20);
}
Test(registry_badnet, slow_drip_times_out, .timeout = 120) { bad_network(RT_DRIP, "timed out", "--timeout", "2", 15); }

/* a blob CDN on another host: refused by default, followed with --allow-redirect */
Test(registry_badnet, redirect_followed_only_when_allowed, .timeout = 120)
{
    fx f;
    fx_init(&f);
    cJSON_Delete(push_json(&f, f.v1, "v1"));
    rt_proxy px;
    rt_proxy_start(&px, f.reg.port, RT_REDIRECT);
    snprintf(px.redirect_host, sizeof px.redirect_host, "localhost:%d", f.reg.port); /* same registry, other name */
    char *r = ref(px.host, "v1"), *out = tu_path(f.dir, "p.slmb"), *e = NULL;
    int rc = tu_slmv(NULL, &e, "pull", r, "-o", out, "--plain-http", NULL);
    cr_assert_eq(rc, 4, "%d %s", rc, e);
    cr_assert(strstr(e, "redirect to another host 'localhost:"), "%s", e);
    free(e);
    rc = tu_slmv(NULL, &e, "pull", r, "-o", out, "--plain-http", "--allow-redirect", px.redirect_host, "--trust", f.root,
              NULL);
    cr_assert_eq(rc, 0, "%s", e);
    free(e);
    cr_assert(same_as_stored(out, f.v1, f.model_a));
    rt_proxy_stop(&px);
    free(r);
    free(out);
    fx_fini(&f);
}

/* a registry with the referrers API (it answers OCI-Subject): no tag-schema fallback */
Test(registry, referrers_api_used_when_the_registry_has_it, .timeout = 120)
{
    fx f;
    fx_init(&f);
    rt_proxy px;
    rt_proxy_start(&px, f.reg.port, RT_REFERRERS);
    char *r = ref(px.host, "v1"), *o = NULL, *e = NULL;
    int rc = tu_slmv(&o, &e, "push", f.v1, r, "--plain-http", "--json", NULL);
    cr_assert_eq(rc, 0, "%s", e);
    cJSON *j = cJSON_Parse(o);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "referrers")->valuestring, "api");
    char tagdir[4400];
    snprintf(tagdir, sizeof tagdir, "%s/storage/docker/registry/v2/repositories/models/stories/_manifests/tags/sha256-%s",
             f.reg.dir, cJSON_GetObjectItem(j, "manifest_digest")->valuestring + 7);
    cr_assert(!tu_exists(tagdir), "fallback tag written although the registry has the referrers API");
    cJSON_Delete(j);
    rt_proxy_stop(&px);
    free(o);
    free(e);
    free(r);
    fx_fini(&f);
}

/* ---- token auth ------------------------------------------------------------------------------- */
Test(registry, bearer_token_auth_with_docker_config_credentials, .timeout = 120)
{
    fx f;
    fx_init(&f);
    cJSON_Delete(push_json(&f, f.v1, "v1"));
    rt_proxy px;
    rt_proxy_start(&px, f.reg.port, RT_AUTH);
    char *r = ref(px.host, "v1"), *out = tu_path(f.dir, "p.slmb"), *e = NULL;
    char *creds = tu_path(f.dir, "config.json"), *bad = tu_path(f.dir, "bad.json");
    char text[512];
    snprintf(text, sizeof text, "{\"auths\":{\"%s\":{\"auth\":\"dXNlcjpzZWNyZXQ=\"}}}", px.host); /* user:secret */
    cr_assert_eq(tu_write_file(creds, text, strlen(text)), 0);
    snprintf(text, sizeof text, "{\"auths\":{\"%s\":{\"auth\":\"dXNlcjp3cm9uZw==\"}}}", px.host); /* user:wrong */
    cr_assert_eq(tu_write_file(bad, text, strlen(text)), 0);
    int rc = tu_slmv(NULL, &e, "pull", r, "-o", out, "--plain-http", "--creds", bad, NULL);
    cr_assert_eq(rc, 4, "%d %s", rc, e);
    cr_assert(strstr(e, "token request answered 401"), "%s", e);
    free(e);
    rc = tu_slmv(NULL, &e, "pull", r, "-o", out, "--plain-http", "--creds", creds, "--trust", f.root, NULL);
    cr_assert_eq(rc, 0, "%s", e);
    free(e);
    /* the default place: $DOCKER_CONFIG/config.json (else ~/.docker/config.json) */
    unlink(out);
    setenv("DOCKER_CONFIG", f.dir, 1);
    rc = tu_slmv(NULL, &e, "pull", r, "-o", out, "--plain-http", "--trust", f.root, NULL);
    unsetenv("DOCKER_CONFIG");
    cr_assert_eq(rc, 0, "credentials from $DOCKER_CONFIG/config.json not used: %s", e);
    free(e);
    /* without --plain-http only https is spoken: a plain registry is a clear network error */
    rc = tu_slmv(NULL, &e, "pull", r, "-o", out, "--creds", creds, NULL);
    cr_assert_eq(rc, 4, "%d %s", rc, e);
    cr_assert(strstr(e, "https://"), "%s", e);
    cr_assert_eq(tu_count_lines(e), 1, "%s", e);
    free(e);
    rt_proxy_stop(&px);
    free(r);
    free(out);
    free(creds);
    free(bad);
    fx_fini(&f);
}

/* ---- fleet rollback ------------------------------------------------------------------------------ */
Test(registry, fleet_rollback_v3_supersedes_v2_with_v1_payload, .timeout = 180)
{
    fx f;
    fx_init(&f);
    cJSON *p1 = push_json(&f, f.v1, "v1");
    cJSON_Delete(push_json(&f, f.v2, "latest"));
    /* two devices move to v2 */
    char *store2 = tu_path(f.dir, "store2");
    update_ok(&f, "latest", 2);
    char *e = NULL;
    char *rl = ref(f.reg.host, "latest");
    int rc = tu_slmv(NULL, &e, "update", "--store", store2, "--from", rl, "--trust", f.root, "--plain-http", NULL);
    cr_assert_eq(rc, 0, "%s", e);
    free(e);
    /* v2 is bad: the publisher signs v3 = v1's model, superseding v2 */
    char *v3 = tu_path(f.dir, "v3.slmb");
    cr_assert_eq(tu_slmv(NULL, NULL, "bundle", f.model_a, "-o", v3, "--name", "stories", "--version", "3",
                      "--supersedes", "3", "--key", f.key, NULL), 2);
    TU_SLM_OK("bundle", f.model_a, "-o", v3, "--name", "stories", "--version", "3", "--supersedes", "2", "--key", f.key);
    char *o = NULL;
    TU_SLM_OK("verify", v3, "--trust", f.root);
    cr_assert_eq(tu_slmv(&o, NULL, "verify", v3, "--trust", f.root, "--json", NULL), 0);
    cr_assert(strstr(o, "\"supersedes\":2"), "%s", o);
    free(o);
    cJSON *p3 = push_json(&f, v3, "latest");
    /* v3's model layer is v1's blob: the registry stores it once */
    cr_assert_str_eq(cJSON_GetObjectItem(p3, "payload_digest")->valuestring,
                     cJSON_GetObjectItem(p1, "payload_digest")->valuestring);
    cr_assert_eq(cJSON_GetObjectItem(p3, "blobs_existing")->valueint, 1);
    /* devices move forward to v3 (running v1's model); the first one, telemetry on, counts a supersedes move */
    char *tdir = tu_path(f.dir, "telemetry"), *spool = tu_path(tdir, "telemetry.jsonl");
    setenv("SLM_TELEMETRY_DIR", tdir, 1);
    TU_SLM_OK("telemetry", "on");
    update_ok(&f, "latest", 3);
    unsetenv("SLM_TELEMETRY_DIR");
    char *sp = tu_read_file(spool, NULL);
    cr_assert(sp && strstr(sp, "\"installs\":1,\"rollbacks\":{\"revert\":0,\"supersedes\":1}"), "%s", sp ? sp : "no spool");
    free(sp);
    free(spool);
    free(tdir);
    rc = tu_slmv(NULL, &e, "update", "--store", store2, "--from", rl, "--trust", f.root, "--plain-http", NULL);
    cr_assert_eq(rc, 0, "%s", e);
    free(e);
    cr_assert_eq(active_version(store2), 3);
    /* nobody can make them take v2 again: not by tag, not by its digest, not by a local install */
    cJSON *p2 = push_json(&f, f.v2, "latest");
    rc = update(&f, f.reg.host, "latest", &e, NULL, NULL, NULL);
    cr_assert_eq(rc, 5, "%d %s", rc, e);
    cr_assert(strstr(e, "not above the committed version 3"), "%s", e);
    free(e);
    char r2[300];
    snprintf(r2, sizeof r2, "%s/models/stories@%s", f.reg.host, cJSON_GetObjectItem(p2, "manifest_digest")->valuestring);
    rc = tu_slmv(NULL, &e, "update", "--store", store2, "--from", r2, "--trust", f.root, "--plain-http", NULL);
    cr_assert_eq(rc, 5, "%d %s", rc, e);
    free(e);
    cr_assert_eq(tu_slmv(NULL, NULL, "install", f.v2, "--store", f.store, "--trust", f.root, NULL), 5);
    cr_assert_eq(active_version(f.store), 3);
    cr_assert_eq(active_version(store2), 3);
    /* the model the devices run is v1's, byte for byte */
    char path[4400];
    int found = 0;
    for (const char *s = "ab"; *s; s++) {
        snprintf(path, sizeof path, "%s/slot-%c/model.gguf", f.store, *s);
        size_t n1, n2;
        char *a = tu_read_file(path, &n1), *b = a ? tu_read_file(f.model_a, &n2) : NULL;
        found |= a && b && n1 == n2 && !memcmp(a, b, n1);
        free(a);
        free(b);
    }
    cr_assert(found, "no slot holds v1's model");
    cJSON_Delete(p1);
    cJSON_Delete(p2);
    cJSON_Delete(p3);
    free(rl);
    free(v3);
    free(store2);
    fx_fini(&f);
}

/* ---- TUF metadata through the registry ------------------------------------------------------------ */
static void tuf_add(fx *f, const char *repo, const char *bundle, const char *now)
{
    char k[4300];
    snprintf(k, sizeof k, "%s", f->key);
    char kr[4400], kt[4400], ks[4400], kts[4400];
    snprintf(kr, sizeof kr, "targets=%s", k);
    snprintf(ks, sizeof ks, "snapshot=%s", k);
    snprintf(kts, sizeof kts, "timestamp=%s", k);
    (void)kt;
    char *e = NULL;
    int rc = now ? tu_slmv(NULL, &e, "tuf", "add", repo, bundle, "--stored", "--name", "stories", "--key", kr, "--key",
                           ks, "--key", kts, "--now", now, NULL)
                 : tu_slmv(NULL, &e, "tuf", "add", repo, bundle, "--stored", "--name", "stories", "--key", kr, "--key",
                           ks, "--key", kts, NULL);
    cr_assert_eq(rc, 0, "tuf add: %s", e);
    free(e);
}

static void push_tuf(fx *f, const char *repo)
{
    char *r = ref(f->reg.host, "x"), *e = NULL;
    r[strlen(r) - 2] = 0; /* host/models/stories */
    int rc = tu_slmv(NULL, &e, "push", "--tuf", repo, r, "--plain-http", NULL);
    cr_assert_eq(rc, 0, "push --tuf: %s", e);
    free(e);
    free(r);
}

Test(registry, tuf_metadata_through_the_registry_refuses_rollback_freeze_and_other_targets, .timeout = 180)
{
    fx f;
    fx_init(&f);
    char *repo = tu_path(f.dir, "tufrepo"), *old = tu_path(f.dir, "tufold"), *root1 = tu_path(repo, "metadata/1.root.json");
    char kr[4400], kt[4400], ks[4400], kts[4400];
    snprintf(kr, sizeof kr, "root=%s", f.key);
    snprintf(kt, sizeof kt, "targets=%s", f.key);
    snprintf(ks, sizeof ks, "snapshot=%s", f.key);
    snprintf(kts, sizeof kts, "timestamp=%s", f.key);
    TU_SLM_OK("tuf", "init", repo, "--key", kr, "--key", kt, "--key", ks, "--key", kts);
    /* release 1: the bundle, then the TUF metadata naming its pulled form */
    tuf_add(&f, repo, f.v1, NULL);
    cJSON_Delete(push_json(&f, f.v1, "latest"));
    push_tuf(&f, repo);
    char *rl = ref(f.reg.host, "latest"), *e = NULL;
    int rc = tu_slmv(NULL, &e, "update", "--store", f.store, "--from", rl, "--trust", f.root, "--plain-http",
                     "--tuf-root", root1, NULL);
    cr_assert_eq(rc, 0, "%s", e);
    cr_assert(strstr(e, "TUF target 'stories' matches"), "%s", e);
    free(e);
    cr_assert_eq(active_version(f.store), 1);
    char *pinned = tu_path(f.store, "tuf/timestamp.json");
    cr_assert(tu_exists(pinned), "no TUF client state in the store");
    /* keep release 1's metadata (what a malicious mirror could replay later) */
    char *cp[] = {"cp", "-r", repo, old, NULL};
    cr_assert_eq(tu_run(NULL, NULL, (const char *const *)cp), 0);
    /* release 2: the store now requires TUF (no --tuf-root given) */
    tuf_add(&f, repo, f.v2, NULL);
    cJSON_Delete(push_json(&f, f.v2, "latest"));
    push_tuf(&f, repo);
    update_ok(&f, "latest", 2);
    /* rollback: the registry serves release 1's metadata again */
    push_tuf(&f, old);
    rc = update(&f, f.reg.host, "latest", &e, NULL, NULL, NULL);
    cr_assert_eq(rc, 5, "%d %s", rc, e);
    cr_assert(strstr(e, "rollback attack"), "%s", e);
    cr_assert(one_line(e), "%s", e);
    free(e);
    cr_assert_eq(active_version(f.store), 2);
    char *dl = tu_path(f.store, "download");
    cr_assert_eq(tu_count_entries(dl), 0);
    /* freeze: newer metadata whose timestamp has expired (published as if 10 days ago) */
    char then[32];
    snprintf(then, sizeof then, "%lld", (long long)time(NULL) - 10 * 86400);
    tuf_add(&f, repo, f.v2, then);
    push_tuf(&f, repo);
    rc = update(&f, f.reg.host, "latest", &e, NULL, NULL, NULL);
    cr_assert_eq(rc, 5, "%d %s", rc, e);
    cr_assert(strstr(e, "timestamp.json") && strstr(e, "expired"), "%s", e);
    free(e);
    cr_assert_eq(active_version(f.store), 2);
    /* TUF names release 1's bundle while the registry serves a signed v3 under the tag: refused after the pull */
    char *v3 = tu_path(f.dir, "v3.slmb");
    TU_SLM_OK("bundle", f.model_a, "-o", v3, "--name", "stories", "--version", "3", "--key", f.key);
    tuf_add(&f, repo, f.v1, NULL);
    push_tuf(&f, repo);
    cJSON_Delete(push_json(&f, v3, "latest"));
    rc = update(&f, f.reg.host, "latest", &e, NULL, NULL, NULL);
    cr_assert_eq(rc, 5, "%d %s", rc, e);
    cr_assert(strstr(e, "targets.json"), "%s", e);
    free(e);
    cr_assert_eq(active_version(f.store), 2);
    cr_assert_eq(tu_count_entries(dl), 0);
    /* the registry without TUF metadata: a store that requires it refuses */
    char *r2 = tu_path(f.reg.host, "models/other:v3");
    cr_assert_eq(tu_slmv(NULL, NULL, "push", v3, r2, "--plain-http", NULL), 0);
    rc = tu_slmv(NULL, &e, "update", "--store", f.store, "--from", r2, "--trust", f.root, "--plain-http", NULL);
    cr_assert_eq(rc, 5, "%d %s", rc, e);
    cr_assert(strstr(e, "no TUF metadata"), "%s", e);
    free(e);
    /* properly published: v3 installs */
    tuf_add(&f, repo, v3, NULL);
    push_tuf(&f, repo);
    update_ok(&f, "latest", 3);
    free(r2);
    free(v3);
    free(dl);
    free(pinned);
    free(rl);
    free(repo);
    free(old);
    free(root1);
    fx_fini(&f);
}

/* a device whose health check fails stays on its previous slot */
Test(registry, update_to_an_unhealthy_release_keeps_the_previous_model, .timeout = 120)
{
    fx f;
    fx_init(&f);
    cJSON_Delete(push_json(&f, f.v1, "v1"));
    update_ok(&f, "v1", 1);
    /* v2 is properly signed but its model (a Q8_0 quantization: it has a general.file_type) has a NaN weight */
    char *nan = tu_path(f.dir, "nan.gguf"), *bad = tu_path(f.dir, "bad.slmb"), *q8 = tu_path(f.dir, "q8.gguf");
    TU_SLM_OK("quantize", f.model_a, q8, "Q8_0");
    gguf_file *g;
    slm_err err = {0};
    cr_assert_eq(gguf_open(q8, &g, &err), 0, "%s", err.msg);
    int64_t ti = gguf_find_tensor(g, "output_norm.weight");
    uint64_t off = g->data_offset + g->tensors[ti].offset;
    gguf_close(g);
    size_t n;
    char *b = tu_read_file(q8, &n);
    free(q8);
    float nv = NAN;
    memcpy(b + off, &nv, 4);
    cr_assert_eq(tu_write_file(nan, b, n), 0);
    free(b);
    TU_SLM_OK("bundle", nan, "-o", bad, "--name", "stories", "--version", "2", "--key", f.key);
    cJSON_Delete(push_json(&f, bad, "v2"));
    /* telemetry off (the default): the failed update writes nothing */
    char *tdir = tu_path(f.dir, "telemetry"), *spool = tu_path(tdir, "telemetry.jsonl");
    setenv("SLM_TELEMETRY_DIR", tdir, 1);
    char *e = NULL;
    int rc = update(&f, f.reg.host, "v2", &e, NULL, NULL, NULL);
    cr_assert_eq(rc, 1, "an unhealthy release must fail the health check (1), got %d: %s", rc, e);
    cr_assert(strstr(e, "not finite"), "%s", e);
    free(e);
    cr_assert_eq(active_version(f.store), 1);
    cr_assert(!tu_exists(tdir), "telemetry off, yet %s was created", tdir);
    /* telemetry on: the same failure is one record with a health_check failure counter */
    TU_SLM_OK("telemetry", "on");
    rc = update(&f, f.reg.host, "v2", &e, NULL, NULL, NULL);
    cr_assert_eq(rc, 1, "%d %s", rc, e);
    free(e);
    cr_assert_eq(active_version(f.store), 1);
    size_t sn;
    char *sp = tu_read_file(spool, &sn);
    cr_assert_not_null(sp, "no spool after a failed health check with telemetry on");
    cr_assert_eq(tu_count_lines(sp), 1, "%s", sp);
    cJSON *rec = cJSON_Parse(sp);
    cr_assert_str_eq(cJSON_GetObjectItem(rec, "source")->valuestring, "install");
    const cJSON *hc = cJSON_GetObjectItem(rec, "health_check");
    cr_assert_eq(cJSON_GetObjectItem(hc, "fail")->valueint, 1, "%s", sp);
    cr_assert_eq(cJSON_GetObjectItem(hc, "pass")->valueint, 0, "%s", sp);
    cr_assert_eq(cJSON_GetObjectItem(rec, "installs")->valueint, 0, "%s", sp);
    char dg[65];
    uint8_t h[32];
    char *nb = tu_read_file(nan, &n);
    cr_assert_eq(slm_sha256(nb, n, h), 0);
    free(nb);
    slm_hex(h, 32, dg);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "model"), "digest")->valuestring, dg);
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "device"), "cpu")), "%s", sp);
    fprintf(stderr, "registry telemetry record: %s", sp);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "model"), "quant")->valuestring, "Q8_0", "%s", sp);
    /* counters and fixed words only: no path, no message, no name */
    cr_assert(!strstr(sp, f.dir) && !strstr(sp, "finite") && !strstr(sp, "stories") && !strstr(sp, "/"), "%s", sp);
    cJSON_Delete(rec);
    free(sp);
    /* SLM_TELEMETRY=0 overrides: nothing more is written */
    setenv("SLM_TELEMETRY", "0", 1);
    rc = update(&f, f.reg.host, "v2", &e, NULL, NULL, NULL);
    cr_assert_eq(rc, 1, "%d %s", rc, e);
    free(e);
    unsetenv("SLM_TELEMETRY");
    sp = tu_read_file(spool, &sn);
    cr_assert_eq(tu_count_lines(sp), 1, "SLM_TELEMETRY=0 did not stop the spool: %s", sp);
    free(sp);
    /* the floor did not move: a fixed v2 still installs (a pass and an install), then a revert (a rollback) */
    cJSON_Delete(push_json(&f, f.v2, "v2"));
    update_ok(&f, "v2", 2);
    TU_SLM_OK("install", "--revert", "--store", f.store);
    sp = tu_read_file(spool, &sn);
    cr_assert_eq(tu_count_lines(sp), 3, "%s", sp);
    cr_assert(strstr(sp, "\"health_check\":{\"fail\":0,\"pass\":1},\"installs\":1"), "%s", sp);
    cr_assert(strstr(sp, "\"rollbacks\":{\"revert\":1,\"supersedes\":0}"), "%s", sp);
    free(sp);
    unsetenv("SLM_TELEMETRY_DIR");
    free(tdir);
    free(spool);
    free(nan);
    free(bad);
    fx_fini(&f);
}

/* ---- parsers (no network) -------------------------------------------------------------------------- */
Test(registry_parse, references)
{
    slm_ref r;
    slm_err e = {0};
    cr_assert_eq(slm_ref_parse("127.0.0.1:5000/models/stories:v2", &r, &e), 0, "%s", e.msg);
    cr_assert_str_eq(r.host, "127.0.0.1:5000");
    cr_assert_str_eq(r.repo, "models/stories");
    cr_assert_str_eq(r.tag, "v2");
    cr_assert_eq(slm_ref_parse("ghcr.io/acme/m@sha256:" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                               &r, &e), 0, "%s", e.msg);
    cr_assert_str_eq(r.tag, "");
    cr_assert(!strncmp(r.digest, "sha256:0123", 11));
    cr_assert_eq(slm_ref_parse("reg:5000/a", &r, &e), 0);
    cr_assert_str_eq(r.tag, "latest");
    const char *bad[] = {"stories", "http://h/a:b", "h/A:b", "h/a:", "h/a@sha256:12", "/a:b", "h/a:b c"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(slm_ref_parse(bad[i], &r, &e), SLM_EUSAGE, "accepted '%s'", bad[i]);
}

Test(registry_parse, manifest_token_and_challenge)
{
    slm_oci_manifest m;
    slm_err e = {0};
    const char *ok = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                     "\"artifactType\":\"application/vnd.cncf.model.manifest.v1+json\",\"config\":{\"mediaType\":\"x\","
                     "\"digest\":\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"size\":2},"
                     "\"layers\":[{\"mediaType\":\"y\",\"digest\":\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef"
                     "0123456789abcdef\",\"size\":12345}]}";
    cr_assert_eq(slm_oci_manifest_parse(ok, strlen(ok), &m, &e), 0, "%s", e.msg);
    cr_assert_eq(m.n_layers, 1);
    cr_assert_eq(m.layers[0].size, 12345);
    const char *bad[] = {"[]", "{\"schemaVersion\":1}", "{\"schemaVersion\":2,\"config\":{},\"layers\":[]}",
                         "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"md5:00\",\"size\":1},\"layers\":[]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(slm_oci_manifest_parse(bad[i], strlen(bad[i]), &m, &e), SLM_EINPUT, "accepted %s", bad[i]);
    char tok[64];
    cr_assert_eq(slm_oci_token_parse("{\"token\":\"abc\"}", 15, tok, sizeof tok, &e), 0);
    cr_assert_str_eq(tok, "abc");
    cr_assert_eq(slm_oci_token_parse("{\"access_token\":\"a\\r\\nX: y\"}", 28, tok, sizeof tok, &e), SLM_EINPUT);
    cr_assert_eq(slm_oci_token_parse("{}", 2, tok, sizeof tok, &e), SLM_EINPUT);
    slm_auth_challenge c;
    cr_assert_eq(slm_auth_challenge_parse("Bearer realm=\"https://auth.io/token\",service=\"reg\",scope=\"repository:a:pull\"", &c), 0);
    cr_assert_str_eq(c.scheme, "Bearer");
    cr_assert_str_eq(c.realm, "https://auth.io/token");
    cr_assert_str_eq(c.service, "reg");
    cr_assert_str_eq(c.scope, "repository:a:pull");
    cr_assert_neq(slm_auth_challenge_parse("Bearer realm=\"unterminated", &c), 0);
}

/* ---- the in-toto statement (OpenSSF model-signing predicate v1.0), no network ---------------------- */
Test(registry_parse, intoto_statement_of_a_verified_bundle)
{
    char *dir = tu_tmpdir("intoto"), *key = tu_path(dir, "k.key"), *root = tu_path(dir, "root.json");
    char *b = tu_path(dir, "b.slmb"), *st = tu_path(dir, "st.json"), *other = tu_path(dir, "o.key");
    char *oroot = tu_path(dir, "oroot.json"), pub[4200], opub[4200];
    snprintf(pub, sizeof pub, "%s.pub", key);
    snprintf(opub, sizeof opub, "%s.pub", other);
    const char *model = tu_model("gguf/stories260K.gguf");
    TU_SLM_OK("keygen", "-o", key);
    TU_SLM_OK("keygen", "-o", other);
    TU_SLM_OK("trust", "init", "-o", root, "--key", pub, "--threshold", "1", "--expires", "30d", "--sign-with", key);
    TU_SLM_OK("trust", "init", "-o", oroot, "--key", opub, "--threshold", "1", "--expires", "30d", "--sign-with", other);
    TU_SLM_OK("bundle", model, "-o", b, "--name", "stories", "--version", "4", "--key", key);
    /* another publisher's root: refused, nothing written */
    cr_assert_eq(tu_slmv(NULL, NULL, "intoto", b, "--trust", oroot, "-o", st, NULL), 5);
    cr_assert(!tu_exists(st));
    TU_SLM_OK("intoto", b, "--trust", root, "-o", st);
    size_t n;
    char *t = tu_read_file(st, &n), *g = tu_read_file(model, &n);
    cJSON *j = cJSON_Parse(t);
    cr_assert_not_null(j, "%s", t);
    uint8_t h[32], root_h[32];
    char gh[65], rh[65];
    cr_assert_eq(slm_sha256(g, n, h), 0);
    slm_hex(h, 32, gh);
    cr_assert_eq(slm_sha256(h, 32, root_h), 0); /* one resource: the subject is SHA-256 of its raw digest */
    slm_hex(root_h, 32, rh);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "_type")->valuestring, "https://in-toto.io/Statement/v1");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "predicateType")->valuestring, "https://model_signing/signature/v1.0");
    const cJSON *s0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "subject"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(s0, "name")->valuestring, "stories");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(s0, "digest"), "sha256")->valuestring, rh);
    const cJSON *pr = cJSON_GetObjectItem(j, "predicate");
    const cJSON *r0 = cJSON_GetArrayItem(cJSON_GetObjectItem(pr, "resources"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(r0, "name")->valuestring, "model.gguf");
    cr_assert_str_eq(cJSON_GetObjectItem(r0, "algorithm")->valuestring, "sha256");
    cr_assert_str_eq(cJSON_GetObjectItem(r0, "digest")->valuestring, gh);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(pr, "serialization"), "method")->valuestring, "files");
    cJSON_Delete(j);
    free(t);
    free(g);
    tu_rmtree(dir);
    free(dir);
    free(key);
    free(root);
    free(b);
    free(st);
    free(other);
    free(oroot);
}

/* ---- the fuzz target's seeds and past findings (fuzz/fuzz_registry.c) ------------------------------ */
#include <dirent.h>
#include "fuzz/fuzz_registry.c"

static int replay_dir(const char *sub, int seeds)
{
    const char *td = getenv("SLM_TESTDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/../fuzz/%s", td && *td ? td : "tests", sub);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char *p = tu_path(dir, e->d_name);
        size_t len;
        char *data = tu_read_file(p, &len);
        cr_assert_not_null(data, "%s", p);
        int rc = fuzz_registry((const uint8_t *)data, len);
        if (seeds && strstr(e->d_name, "-bad"))
            cr_expect_eq(rc, SLM_EINPUT, "%s: must be refused, got %d", p, rc);
        else if (seeds)
            cr_expect_eq(rc, 0, "%s: must parse, got %d", p, rc);
        else if (strncmp(e->d_name, "crash-", 6))
            cr_expect(!strncmp(e->d_name, "ok-", 3) ? rc == 0 : rc == SLM_EINPUT, "%s: status %d", p, rc);
        free(data);
        free(p);
        n++;
    }
    closedir(d);
    return n;
}

Test(registry_parse, fuzz_seeds_and_regressions)
{
    cr_assert_geq(replay_dir("corpus/registry", 1), 5, "no seeds for fuzz_registry");
    (void)replay_dir("regressions/registry", 0);
}
