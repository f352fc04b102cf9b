/* tests/test_registry_tuf.c — TUF-compatible metadata (signing/tuf.c, `slm tuf`):
 * the independent TUF client tuf-js (npm) validates a repository slmkit
 * publishes and downloads a target from it; slmkit's own client refuses
 * freeze, rollback, mix-and-match, endless data, wrong key, below-threshold
 * and expired metadata, one test each. */
#include <criterion/criterion.h>

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "interop.h"
#include "signing.h"
#include "testutil.h"

typedef struct tfx {
    char *dir, *repo, *state, *root1, *out, *b1, *b2;
    char *k[4], *wrong, *k2targets;
} tfx;

static const char *ROLES[4] = {"root", "targets", "snapshot", "timestamp"};


static char *kv(const char *role, const char *key)
{
    char *s = malloc(4200);
    snprintf(s, 4200, "%s=%s", role, key);
    return s;
}

static void tfx_init(tfx *f, int targets_threshold)
{
    memset(f, 0, sizeof *f);
    f->dir = tu_tmpdir("tuf");
    f->repo = tu_path(f->dir, "repo");
    f->state = tu_path(f->dir, "state");
    f->out = tu_path(f->dir, "out.slmb");
    f->b1 = tu_path(f->dir, "stories-v1.slmb");
    f->b2 = tu_path(f->dir, "stories-v2.slmb");
    for (int r = 0; r < 4; r++) {
        char n[32];
        snprintf(n, sizeof n, "%s.key", ROLES[r]);
        f->k[r] = tu_path(f->dir, n);
        TU_SLM_OK("keygen", "-o", f->k[r]);
    }
    f->wrong = tu_path(f->dir, "wrong.key");
    f->k2targets = tu_path(f->dir, "targets2.key");
    TU_SLM_OK("keygen", "-o", f->wrong);
    TU_SLM_OK("keygen", "-o", f->k2targets);
    /* bundles: any signed bundle is a TUF target */
    char *bk = tu_path(f->dir, "bundle.key");
    TU_SLM_OK("keygen", "-o", bk);
    TU_SLM_OK("bundle", tu_model("gguf/stories260K.gguf"), "-o", f->b1, "--name", "stories", "--version", "1", "--key", bk);
    TU_SLM_OK("bundle", tu_model("gguf/stories260K.gguf"), "-o", f->b2, "--name", "stories", "--version", "2", "--key", bk);
    free(bk);
    char *a[4];
    for (int r = 0; r < 4; r++)
        a[r] = kv(ROLES[r], f->k[r]);
    char *t2 = kv("targets", f->k2targets), thr[32];
    snprintf(thr, sizeof thr, "targets=%d", targets_threshold);
    TU_SLM_OK("tuf", "init", f->repo, "--key", a[0], "--key", a[1], "--key", a[2], "--key", a[3], "--key", t2,
           "--threshold", thr);
    for (int r = 0; r < 4; r++)
        free(a[r]);
    free(t2);
    f->root1 = tu_path(f->repo, "metadata/1.root.json");
}

static void tfx_fini(tfx *f)
{
    tu_rmtree(f->dir);
    char **p[] = {&f->dir, &f->repo, &f->state, &f->root1, &f->out, &f->b1, &f->b2, &f->wrong, &f->k2targets,
                  &f->k[0], &f->k[1], &f->k[2], &f->k[3]};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        free(*p[i]);
}

/* slm tuf add with the role keys (targets key overridable), extra option pair */
static int add(tfx *f, const char *bundle, const char *targets_key, const char *targets_key2, const char *x1,
               const char *x2, char **err)
{
    char *t = kv("targets", targets_key ? targets_key : f->k[1]);
    char *t2 = targets_key2 ? kv("targets", targets_key2) : NULL;
    char *s = kv("snapshot", f->k[2]), *ts = kv("timestamp", f->k[3]);
    int rc = t2 ? tu_slmv(NULL, err, "tuf", "add", f->repo, bundle, "--key", t, "--key", t2, "--key", s, "--key", ts, x1,
                       x2, NULL)
                : tu_slmv(NULL, err, "tuf", "add", f->repo, bundle, "--key", t, "--key", s, "--key", ts, x1, x2, NULL);
    free(t);
    free(t2);
    free(s);
    free(ts);
    return rc;
}

static int fetch(tfx *f, const char *target, const char *now, char **err)
{
    unlink(f->out);
    return now ? tu_slmv(NULL, err, "tuf", "fetch", f->repo, "--root", f->root1, "--state", f->state, "--target", target,
                      "-o", f->out, "--now", now, NULL)
               : tu_slmv(NULL, err, "tuf", "fetch", f->repo, "--root", f->root1, "--state", f->state, "--target", target,
                      "-o", f->out, NULL);
}

static void refused(tfx *f, const char *target, const char *now, const char *expect)
{
    char *e = NULL;
    int rc = fetch(f, target, now, &e);
    cr_assert_eq(rc, 5, "expected a refusal (5), got %d: %s", rc, e);
    cr_assert(strstr(e, expect), "expected '%s' in: %s", expect, e);
    cr_assert_eq(tu_count_lines(e), 1, "%s", e);
    cr_assert(!tu_exists(f->out), "the refused target was written");
    free(e);
}

static void fetch_ok(tfx *f, const char *target)
{
    char *e = NULL;
    int rc = fetch(f, target, NULL, &e);
    cr_assert_eq(rc, 0, "%s", e);
    free(e);
}

static void copy(const char *src, const char *dst)
{
    size_t n;
    char *b = tu_read_file(src, &n);
    cr_assert_not_null(b, "%s", src);
    cr_assert_eq(tu_write_file(dst, b, n), 0);
    free(b);
}

static char *meta(tfx *f, const char *name)
{
    char rel[128];
    snprintf(rel, sizeof rel, "metadata/%s", name);
    return tu_path(f->repo, rel);
}

/* ---- the independent client ------------------------------------------------------------- */
static const char *tuf_js(void)
{
    const char *e = getenv("SLM_TUF_JS");
    if (e && *e) {
        char p[4200];
        snprintf(p, sizeof p, "%s/package.json", e);
        if (tu_exists(p))
            return e;
    }
    return oracle_node_file("tuf-js"); /* skips loudly when missing */
}

static cJSON *run_tuf_js(tfx *f, const char *target, const char *out)
{
    const char *mod = tuf_js();
    const char *td = getenv("SLM_TESTDIR");
    char script[4200];
    snprintf(script, sizeof script, "%s/interop/tuf_client.mjs", td && *td ? td : "tests");
    const char *argv[] = {"node", script, f->repo, f->root1, target, out, mod, NULL};
    char *o = NULL, *e = NULL;
    int rc = tu_run(&o, &e, argv);
    cr_assert_eq(rc, 0, "node tuf_client.mjs -> %d: %s", rc, e);
    cJSON *j = cJSON_Parse(o);
    cr_assert_not_null(j, "tuf-js output: %s / %s", o, e);
    free(o);
    free(e);
    return j;
}

Test(registry_tuf, tuf_js_validates_the_repository_and_downloads_a_target, .timeout = 120)
{
    tfx f;
    tfx_init(&f, 1);
    cr_assert_eq(add(&f, f.b1, NULL, NULL, NULL, NULL, NULL), 0);
    cr_assert_eq(add(&f, f.b2, NULL, NULL, NULL, NULL, NULL), 0);
    char *js = tu_path(f.dir, "tufjs.slmb");
    cJSON *j = run_tuf_js(&f, "stories-v2.slmb", js);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")), "tuf-js refused slmkit's repository: %s",
              cJSON_GetObjectItem(j, "error") ? cJSON_GetObjectItem(j, "error")->valuestring : "?");
    size_t n1, n2;
    char *a = tu_read_file(f.b2, &n1), *b = tu_read_file(js, &n2);
    cr_assert(a && b && n1 == n2 && !memcmp(a, b, n1), "tuf-js's download differs from the bundle");
    uint8_t h[32];
    char hex[65];
    cr_assert_eq(slm_sha256(a, n1, h), 0);
    slm_hex(h, 32, hex);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "sha256")->valuestring, hex);
    free(a);
    free(b);
    cJSON_Delete(j);
    /* slmkit's client agrees, and the bundle verifies after it */
    fetch_ok(&f, "stories-v2.slmb");
    /* and tuf-js refuses what slmkit refuses: a tampered target */
    char *t = tu_path(f.repo, "targets/stories-v2.slmb");
    a = tu_read_file(t, &n1);
    a[n1 / 2] ^= 1;
    cr_assert_eq(tu_write_file(t, a, n1), 0);
    free(a);
    unlink(js);
    j = run_tuf_js(&f, "stories-v2.slmb", js);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "ok")), "tuf-js accepted a tampered target");
    cJSON_Delete(j);
    refused(&f, "stories-v2.slmb", NULL, "SHA-256 does not match");
    free(t);
    free(js);
    tfx_fini(&f);
}

/* ---- attacks: slmkit's client refuses each ------------------------------------------------ */
Test(registry_tuf, freeze_stale_timestamp_refused, .timeout = 60)
{
    tfx f;
    tfx_init(&f, 1);
    cr_assert_eq(add(&f, f.b1, NULL, NULL, NULL, NULL, NULL), 0);
    fetch_ok(&f, "stories-v1.slmb");
    /* two days later the mirror still serves the same (1-day) timestamp */
    char later[32];
    snprintf(later, sizeof later, "%lld", (long long)time(NULL) + 2 * 86400);
    refused(&f, "stories-v1.slmb", later, "timestamp.json: v1 expired");
    tfx_fini(&f);
}

Test(registry_tuf, rollback_to_older_metadata_refused, .timeout = 60)
{
    tfx f;
    tfx_init(&f, 1);
    cr_assert_eq(add(&f, f.b1, NULL, NULL, NULL, NULL, NULL), 0);
    char *old = tu_tmpdir("tuf-old");
    const char *files[] = {"timestamp.json", "snapshot.json", "targets.json"};
    for (int i = 0; i < 3; i++) {
        char *src = meta(&f, files[i]), *dst = tu_path(old, files[i]);
        copy(src, dst);
        free(src);
        free(dst);
    }
    cr_assert_eq(add(&f, f.b2, NULL, NULL, NULL, NULL, NULL), 0);
    fetch_ok(&f, "stories-v2.slmb"); /* the client has seen v2 */
    for (int i = 0; i < 3; i++) { /* the mirror is rolled back to the v1 metadata */
        char *dst = meta(&f, files[i]), *src = tu_path(old, files[i]);
        copy(src, dst);
        free(src);
        free(dst);
    }
    refused(&f, "stories-v1.slmb", NULL, "version 1 is below the trusted 2 (rollback attack)");
    tu_rmtree(old);
    free(old);
    tfx_fini(&f);
}

Test(registry_tuf, mix_and_match_refused, .timeout = 60)
{
    tfx f;
    tfx_init(&f, 1);
    cr_assert_eq(add(&f, f.b1, NULL, NULL, NULL, NULL, NULL), 0);
    char *snap = meta(&f, "snapshot.json"), *tg = meta(&f, "targets.json");
    char *snap1 = tu_path(f.dir, "snapshot1.json"), *tg1 = tu_path(f.dir, "targets1.json");
    char *snap2 = tu_path(f.dir, "snapshot2.json");
    copy(snap, snap1);
    copy(tg, tg1);
    cr_assert_eq(add(&f, f.b2, NULL, NULL, NULL, NULL, NULL), 0);
    copy(snap, snap2);
    /* the new timestamp with the old snapshot */
    copy(snap1, snap);
    refused(&f, "stories-v2.slmb", NULL, "differs from the timestamp's (mix-and-match)");
    /* the new snapshot with the old targets */
    copy(snap2, snap);
    copy(tg1, tg);
    refused(&f, "stories-v1.slmb", NULL, "version 1, the snapshot names 2 (mix-and-match)");
    free(snap);
    free(tg);
    free(snap1);
    free(tg1);
    free(snap2);
    tfx_fini(&f);
}

Test(registry_tuf, endless_data_refused, .timeout = 60)
{
    tfx f;
    tfx_init(&f, 1);
    cr_assert_eq(add(&f, f.b1, NULL, NULL, NULL, NULL, NULL), 0);
    /* a target longer than its signed length */
    char *t = tu_path(f.repo, "targets/stories-v1.slmb");
    FILE *fp = fopen(t, "ab");
    for (int i = 0; i < 100000; i++)
        fputc('A', fp);
    fclose(fp);
    refused(&f, "stories-v1.slmb", NULL, "longer than the");
    /* an endless timestamp */
    char *ts = meta(&f, "timestamp.json");
    fp = fopen(ts, "ab");
    for (int i = 0; i < 1 << 20; i++)
        fputc(' ', fp);
    fclose(fp);
    refused(&f, "stories-v1.slmb", NULL, "endless data refused");
    free(t);
    free(ts);
    tfx_fini(&f);
}

Test(registry_tuf, wrong_key_refused, .timeout = 60)
{
    tfx f;
    tfx_init(&f, 1);
    /* targets signed by a key that the root does not list for targets (the snapshot key, then a stranger) */
    cr_assert_eq(add(&f, f.b1, f.k[2], NULL, NULL, NULL, NULL), 0);
    refused(&f, "stories-v1.slmb", NULL, "0 valid signatures by targets keys of root v1, below the threshold 1");
    cr_assert_eq(add(&f, f.b1, f.wrong, NULL, NULL, NULL, NULL), 0);
    refused(&f, "stories-v1.slmb", NULL, "below the threshold 1");
    cr_assert_eq(add(&f, f.b1, NULL, NULL, NULL, NULL, NULL), 0);
    fetch_ok(&f, "stories-v1.slmb");
    tfx_fini(&f);
}

Test(registry_tuf, below_threshold_refused, .timeout = 60)
{
    tfx f;
    tfx_init(&f, 2); /* targets: 2 of 2 keys */
    cr_assert_eq(add(&f, f.b1, NULL, NULL, NULL, NULL, NULL), 0);
    refused(&f, "stories-v1.slmb", NULL, "1 valid signatures by targets keys of root v1, below the threshold 2");
    /* the same key twice still counts once */
    cr_assert_eq(add(&f, f.b1, f.k[1], f.k[1], NULL, NULL, NULL), 0);
    refused(&f, "stories-v1.slmb", NULL, "below the threshold 2");
    cr_assert_eq(add(&f, f.b1, f.k[1], f.k2targets, NULL, NULL, NULL), 0);
    fetch_ok(&f, "stories-v1.slmb");
    tfx_fini(&f);
}

Test(registry_tuf, expired_metadata_refused, .timeout = 60)
{
    tfx f;
    tfx_init(&f, 1);
    cr_assert_eq(add(&f, f.b1, NULL, NULL, "--expires", "targets=1h", NULL), 0);
    fetch_ok(&f, "stories-v1.slmb");
    char later[32];
    snprintf(later, sizeof later, "%lld", (long long)time(NULL) + 2 * 3600);
    refused(&f, "stories-v1.slmb", later, "targets.json: v1 expired");
    /* an expired root is refused as well */
    snprintf(later, sizeof later, "%lld", (long long)time(NULL) + 400 * 86400);
    refused(&f, "stories-v1.slmb", later, "root: v1 expired");
    tfx_fini(&f);
}

/* ---- canonical JSON as TUF specifies it ------------------------------------------------------ */
Test(registry_tuf, canonical_json)
{
    cJSON *j = cJSON_Parse("{\"b\":[1,true,null,\"x\\\"y\\\\z\"],\"a\":{\"d\":-5,\"c\":\"\\u00e9\\n\"}}");
    char *c = slm_tuf_canonical(j);
    cr_assert_str_eq(c, "{\"a\":{\"c\":\"\xc3\xa9\n\",\"d\":-5},\"b\":[1,true,null,\"x\\\"y\\\\z\"]}");
    free(c);
    cJSON_Delete(j);
    j = cJSON_Parse("{\"f\":1.5}");
    cr_assert_null(slm_tuf_canonical(j), "floats have no canonical form");
    cJSON_Delete(j);
}

/* ---- the fuzz target's seeds (fuzz/fuzz_tuf.c) ------------------------------------------------ */
#include <dirent.h>
#include "fuzz/fuzz_tuf.c"

Test(registry_tuf, fuzz_seeds_and_regressions)
{
    const char *td = getenv("SLM_TESTDIR");
    const char *subs[2] = {"corpus/tuf", "regressions/tuf"};
    int seeds = 0;
    for (int s = 0; s < 2; s++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/../fuzz/%s", td && *td ? td : "tests", subs[s]);
        DIR *d = opendir(dir);
        if (!d)
            continue;
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.' || !strncmp(e->d_name, "crash-", 6))
                continue;
            char *p = tu_path(dir, e->d_name);
            size_t len;
            char *data = tu_read_file(p, &len);
            cr_assert_not_null(data, "%s", p);
            int rc = fuzz_tuf((const uint8_t *)data, len);
            int ok = s == 0 ? !strstr(e->d_name, "-bad") : !strncmp(e->d_name, "ok-", 3);
            if (ok)
                cr_expect_eq(rc, 0, "%s: must be accepted, got %d", p, rc);
            else
                cr_expect(rc == SLM_EINPUT || rc == SLM_EIO || rc == SLM_EVERIFY, "%s: status %d", p, rc);
            seeds += s == 0;
            free(data);
            free(p);
        }
        closedir(d);
    }
    cr_assert_geq(seeds, 2, "no seeds for fuzz_tuf");
}
