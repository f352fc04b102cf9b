/* tests/test_install.c — the signing tools end to end: keygen, trust, bundle,
 * sign, verify, install (A/B, health check with the real runtime, revert) and
 * crash safety at every durable step of install (SLM_FAULT_STEP). */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "formats.h"
#include "signing.h"
#include "testutil.h"

static const char *CANARY = "Once upon a time, there was a little girl named Lily. She loved to play outside.";

typedef struct cli_fx {
    char *dir, *ka, *kb, *kc, *root, *model, *nan_model;
    char *v1, *v2, *v3nan;
} cli_fx;

static int slm(char **out, char **err, const char *const *args)
{
    char *o = NULL, *e = NULL;
    int rc = tu_run_slm(&o, &e, args);
    tu_hand(out, o);
    tu_hand(err, e);
    return rc;
}

#define RUN_OK(...)                                                                 \
    do {                                                                            \
        const char *a_[] = {__VA_ARGS__, NULL};                                     \
        char *e_ = NULL;                                                            \
        int rc_ = slm(NULL, &e_, a_);                                               \
        cr_assert_eq(rc_, 0, "slm %s ... -> %d: %s", a_[0], rc_, e_ ? e_ : "");     \
        free(e_);                                                                   \
    } while (0)

/* Copy of stories260K with a NaN in output_norm.weight (still a valid GGUF). */
static void write_nan_model(const char *src, const char *dst)
{
    gguf_file *g;
    slm_err err = {0};
    cr_assert_eq(gguf_open(src, &g, &err), 0, "%s", err.msg);
    int64_t ti = gguf_find_tensor(g, "output_norm.weight");
    cr_assert_geq(ti, 0);
    cr_assert_eq(g->tensors[ti].type, SLM_TYPE_F32);
    uint64_t off = g->data_offset + g->tensors[ti].offset + 4 * 5;
    gguf_close(g);
    size_t n;
    char *b = tu_read_file(src, &n);
    float nanv = NAN;
    memcpy(b + off, &nanv, 4);
    cr_assert_eq(tu_write_file(dst, b, n), 0);
    free(b);
}

static void cli_fx_init(cli_fx *f)
{
    memset(f, 0, sizeof *f);
    f->dir = tu_tmpdir("sg-cli");
    f->ka = tu_path(f->dir, "a.key");
    f->kb = tu_path(f->dir, "b.key");
    f->kc = tu_path(f->dir, "c.key");
    f->root = tu_path(f->dir, "root.json");
    f->model = strdup(tu_model("gguf/stories260K.gguf"));
    f->nan_model = tu_path(f->dir, "nan.gguf");
    f->v1 = tu_path(f->dir, "v1.slmb");
    f->v2 = tu_path(f->dir, "v2.slmb");
    f->v3nan = tu_path(f->dir, "v3nan.slmb");
    RUN_OK("keygen", "-o", f->ka);
    RUN_OK("keygen", "-o", f->kb);
    RUN_OK("keygen", "-o", f->kc);
    char pa[4200], pb[4200], pc[4200];
    snprintf(pa, sizeof pa, "%s.pub", f->ka);
    snprintf(pb, sizeof pb, "%s.pub", f->kb);
    snprintf(pc, sizeof pc, "%s.pub", f->kc);
    RUN_OK("trust", "init", "-o", f->root, "--key", pa, "--key", pb, "--key", pc, "--threshold", "2", "--expires",
           "365d", "--sign-with", f->ka, "--sign-with", f->kb);
    RUN_OK("bundle", f->model, "-o", f->v1, "--name", "stories", "--version", "1", "--expires", "30d", "--canary",
           CANARY, "--meta", "quant=f32", "--key", f->ka, "--key", f->kb);
    RUN_OK("bundle", f->model, "-o", f->v2, "--name", "stories", "--version", "2", "--canary", CANARY, "--key", f->kb,
           "--key", f->kc);
    write_nan_model(f->model, f->nan_model);
    RUN_OK("bundle", f->nan_model, "-o", f->v3nan, "--name", "stories", "--version", "3", "--key", f->ka, "--key",
           f->kc);
}

static void cli_fx_fini(cli_fx *f)
{
    tu_rmtree(f->dir);
    char **p[] = {&f->dir, &f->ka, &f->kb, &f->kc, &f->root, &f->model, &f->nan_model, &f->v1, &f->v2, &f->v3nan};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        free(*p[i]);
}

static cJSON *status_json(const char *store)
{
    const char *a[] = {"install", "--status", "--store", store, "--json", NULL};
    char *out = NULL;
    cr_assert_eq(slm(&out, NULL, a), 0);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "status output: %s", out);
    free(out);
    return j;
}

static int active_version(const char *store)
{
    cJSON *j = status_json(store);
    const cJSON *a = cJSON_GetObjectItem(j, "active");
    int v = cJSON_IsObject(a) ? cJSON_GetObjectItem(a, "version")->valueint : -1;
    cJSON_Delete(j);
    return v;
}

Test(install_cli, ab_install_nan_health_check_and_revert)
{
    cli_fx f;
    cli_fx_init(&f);
    char *store = tu_path(f.dir, "store");
    RUN_OK("verify", f.v1, "--trust", f.root);
    RUN_OK("install", f.v1, "--store", store, "--trust", f.root);
    RUN_OK("install", f.v2, "--store", store);
    cr_assert_eq(active_version(store), 2);
    cJSON *j = status_json(store);
    const cJSON *a = cJSON_GetObjectItem(j, "active");
    cr_assert_str_eq(cJSON_GetObjectItem(a, "name")->valuestring, "stories");
    cr_assert_str_eq(cJSON_GetObjectItem(a, "slot")->valuestring, "b");
    cr_assert_eq(cJSON_GetObjectItem(j, "floor")->valueint, 2);
    cJSON_Delete(j);
    /* v1 again: replay refused with exit code 5 */
    const char *again[] = {"install", f.v1, "--store", store, NULL};
    char *err = NULL;
    cr_assert_eq(slm(NULL, &err, again), SLM_EVERIFY);
    cr_assert(strstr(err, "not above the committed version 2"), "%s", err);
    cr_assert_eq(tu_count_lines(err), 1, "one line: %s", err);
    free(err);
    /* correctly signed, NaN weights: the health check fails, v2 stays */
    RUN_OK("verify", f.v3nan, "--trust", f.root);
    const char *bad[] = {"install", f.v3nan, "--store", store, NULL};
    cr_assert_eq(slm(NULL, &err, bad), SLM_EFAIL);
    cr_assert(strstr(err, "health check failed") && strstr(err, "not finite"), "%s", err);
    free(err);
    cr_assert_eq(active_version(store), 2);
    /* operator's revert: v1's slot was taken by the failed trial, so nothing to revert to */
    const char *rev[] = {"install", "--revert", "--store", store, NULL};
    cr_assert_eq(slm(NULL, &err, rev), SLM_EFAIL);
    free(err);
    /* v4 (healthy), then revert goes back to v2; the floor stays at 4 */
    char *v4 = tu_path(f.dir, "v4.slmb");
    RUN_OK("bundle", f.model, "-o", v4, "--name", "stories", "--version", "4", "--canary", CANARY, "--key", f.ka,
           "--key", f.kb);
    RUN_OK("install", v4, "--store", store);
    cr_assert_eq(active_version(store), 4);
    RUN_OK("install", "--revert", "--store", store);
    cr_assert_eq(active_version(store), 2);
    j = status_json(store);
    cr_assert_eq(cJSON_GetObjectItem(j, "floor")->valueint, 4);
    cJSON_Delete(j);
    const char *replay[] = {"install", f.v2, "--store", store, NULL};
    cr_assert_eq(slm(NULL, NULL, replay), SLM_EVERIFY, "after a revert old bundles still cannot be replayed");
    free(v4);
    free(store);
    cli_fx_fini(&f);
}

Test(install_cli, health_check_compares_canary_perplexity)
{
    cli_fx f;
    cli_fx_init(&f);
    char *store = tu_path(f.dir, "store");
    /* a bundle whose manifest claims a canary perplexity the model does not reach */
    const char *paths[1] = {f.model}, *names[1] = {"model.gguf"};
    slm_key *ka, *kb;
    slm_err e = {0};
    cr_assert_eq(slm_key_load_private(f.ka, &ka, &e), 0);
    cr_assert_eq(slm_key_load_private(f.kb, &kb, &e), 0);
    const slm_key *ks[2] = {ka, kb};
    char meta[512];
    snprintf(meta, sizeof meta, "{\"canary\":{\"ppl\":1.5e3,\"text\":\"%s\"}}", CANARY);
    slm_bundle_spec s = {"stories", 7, time(NULL) - 5, time(NULL) + 600, NULL, meta, 1, paths, names, 1};
    char *liar = tu_path(f.dir, "liar.slmb");
    cr_assert_eq(slm_bundle_create(liar, &s, ks, 2, &e), 0, "%s", e.msg);
    RUN_OK("install", f.v1, "--store", store, "--trust", f.root);
    const char *a[] = {"install", liar, "--store", store, NULL};
    char *err = NULL;
    cr_assert_eq(slm(NULL, &err, a), SLM_EFAIL);
    cr_assert(strstr(err, "canary perplexity"), "%s", err);
    free(err);
    cr_assert_eq(active_version(store), 1);
    slm_key_free(ka);
    slm_key_free(kb);
    free(liar);
    free(store);
    cli_fx_fini(&f);
}

Test(install_cli, refusals_have_exit_code_5_and_one_line)
{
    cli_fx f;
    cli_fx_init(&f);
    size_t n;
    char *b = tu_read_file(f.v1, &n);
    char *mut = tu_path(f.dir, "mut.slmb");
    struct {
        size_t off;
        const char *needle;
    } cases[] = {{0, "bad magic"}, {30, "bad signature"}, {n - 5, "payload file 'model.gguf'"}};
    for (size_t i = 0; i < 3; i++) {
        b[cases[i].off] ^= 1;
        cr_assert_eq(tu_write_file(mut, b, n), 0);
        b[cases[i].off] ^= 1;
        const char *a[] = {"verify", mut, "--trust", f.root, NULL};
        char *err = NULL;
        cr_assert_eq(slm(NULL, &err, a), SLM_EVERIFY);
        cr_assert(strstr(err, cases[i].needle), "offset %zu: %s", cases[i].off, err);
        cr_assert_eq(tu_count_lines(err), 1, "%s", err);
        free(err);
    }
    cr_assert_eq(tu_write_file(mut, b, n / 2), 0);
    const char *a[] = {"verify", mut, "--trust", f.root, NULL};
    char *err = NULL;
    cr_assert_eq(slm(NULL, &err, a), SLM_EVERIFY);
    cr_assert(strstr(err, "truncated"), "%s", err);
    free(err);
    /* --json on success */
    const char *j[] = {"verify", f.v1, "--trust", f.root, "--json", NULL};
    char *out = NULL;
    cr_assert_eq(slm(&out, NULL, j), 0);
    cJSON *o = cJSON_Parse(out);
    cr_assert_not_null(o);
    cr_assert_eq(cJSON_GetObjectItem(o, "version")->valueint, 1);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "meta"), "quant")->valuestring, "f32");
    cJSON_Delete(o);
    free(out);
    /* keygen never overwrites */
    const char *kg[] = {"keygen", "-o", f.ka, NULL};
    cr_assert_eq(slm(NULL, NULL, kg), SLM_EUSAGE);
    free(mut);
    free(b);
    cli_fx_fini(&f);
}

Test(install_cli, trust_rotate_and_sign)
{
    cli_fx f;
    cli_fx_init(&f);
    char *kd = tu_path(f.dir, "d.key"), *r2 = tu_path(f.dir, "root2.json"), *r3 = tu_path(f.dir, "root3.json");
    RUN_OK("keygen", "-o", kd);
    char pc[4200], pd[4200];
    snprintf(pc, sizeof pc, "%s.pub", f.kc);
    snprintf(pd, sizeof pd, "%s.pub", kd);
    /* v2 = {c, d} threshold 2; signed by a (old) and d (new): lacks the old threshold */
    RUN_OK("trust", "rotate", "--from", f.root, "-o", r2, "--key", pc, "--key", pd, "--threshold", "2",
           "--sign-with", f.ka, "--sign-with", kd);
    const char *chk[] = {"trust", "verify", f.root, r2, NULL};
    char *err = NULL;
    cr_assert_eq(slm(NULL, &err, chk), SLM_EVERIFY);
    cr_assert(strstr(err, "lacks the old root's threshold"), "%s", err);
    free(err);
    RUN_OK("sign", r2, "--key", f.kb); /* old: a, b; new: d only */
    cr_assert_eq(slm(NULL, &err, chk), SLM_EVERIFY);
    cr_assert(strstr(err, "lacks its own threshold"), "%s", err);
    free(err);
    RUN_OK("sign", r2, "--key", f.kc);
    RUN_OK("trust", "verify", f.root, r2);
    /* a bundle signed by c, d verifies only through the chain */
    char *b = tu_path(f.dir, "cd.slmb");
    RUN_OK("bundle", f.model, "-o", b, "--name", "stories", "--version", "5", "--key", f.kc);
    const char *v1[] = {"verify", b, "--trust", f.root, "--trust", r2, NULL};
    cr_assert_eq(slm(NULL, &err, v1), SLM_EVERIFY);
    cr_assert(strstr(err, "below the threshold 2"), "%s", err);
    free(err);
    RUN_OK("sign", b, "--key", kd);
    RUN_OK("verify", b, "--trust", f.root, "--trust", r2);
    const char *v0[] = {"verify", b, "--trust", f.root, NULL};
    cr_assert_eq(slm(NULL, &err, v0), SLM_EVERIFY);
    cr_assert(strstr(err, "unknown key"), "%s", err);
    free(err);
    /* the store follows the rotation: pinned v1, then v2 given with the bundle */
    char *store = tu_path(f.dir, "store");
    RUN_OK("install", f.v1, "--store", store, "--trust", f.root);
    RUN_OK("install", b, "--store", store, "--trust", r2);
    cJSON *j = status_json(store);
    cr_assert_eq(cJSON_GetObjectItem(j, "root_version")->valueint, 2);
    cJSON_Delete(j);
    /* skipping a version is refused */
    RUN_OK("trust", "rotate", "--from", r2, "-o", r3, "--key", pc, "--threshold", "1", "--sign-with", f.kc,
           "--sign-with", kd);
    const char *skip[] = {"trust", "verify", f.root, r3, NULL};
    cr_assert_eq(slm(NULL, &err, skip), SLM_EVERIFY);
    cr_assert(strstr(err, "exactly version 2"), "%s", err);
    free(err);
    RUN_OK("trust", "verify", f.root, r2, r3);
    free(store);
    free(b);
    free(kd);
    free(r2);
    free(r3);
    cli_fx_fini(&f);
}

/* Greedy continuation of the active model, through `slm run -m`. */
static char *greedy(const char *model)
{
    const char *a[] = {"run", "-m", model, "-p", "Once upon a time", "-n", "24", "--temp", "0", "-t", "1", NULL};
    char *out = NULL;
    cr_assert_eq(slm(&out, NULL, a), 0);
    return out;
}

Test(install_cli, crash_at_every_durable_step_leaves_a_runnable_model, .timeout = 240)
{
    cli_fx f;
    cli_fx_init(&f);
    char *ref = greedy(f.model);
    cr_assert(strlen(ref) > 20, "%s", ref);
    int last = 0, saw_old = 0, saw_new = 0;
    for (int step = 1; step <= 200; step++) {
        char name[32];
        snprintf(name, sizeof name, "store%d", step);
        char *store = tu_path(f.dir, name);
        RUN_OK("install", f.v1, "--store", store, "--trust", f.root);
        char fs[16];
        snprintf(fs, sizeof fs, "%d", step);
        setenv("SLM_FAULT_STEP", fs, 1);
        const char *a[] = {"install", f.v2, "--store", store, NULL};
        int rc = slm(NULL, NULL, a);
        unsetenv("SLM_FAULT_STEP");
        cr_assert(rc == 0 || rc == 128 + 9, "step %d: exit %d", step, rc);
        /* the store's active model verifies (signature + hash, sealed fd) and runs */
        slm_err err = {0};
        int fd = -1;
        slm_manifest *m = NULL;
        cr_assert_eq(slm_store_open_model(store, &fd, &m, &err), 0, "step %d: %s", step, err.msg);
        cr_assert(m->version == 1 || m->version == 2);
        if (rc == 0)
            cr_assert_eq(m->version, 2, "a finished install is active");
        saw_old |= m->version == 1;
        saw_new |= m->version == 2;
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        gguf_file *g = NULL; /* what `slm run --store` maps: the sealed, hashed bytes */
        cr_assert_eq(gguf_open(proc, &g, &err), 0, "step %d: %s", step, err.msg);
        cr_assert_eq(g->size, m->files[0].size);
        gguf_close(g);
        char path[4096];
        cr_assert_eq(slm_store_active_path(store, path, sizeof path, &err), 0, "%s", err.msg);
        char *got = greedy(path);
        cr_assert_str_eq(got, ref, "step %d: greedy continuation differs", step);
        free(got);
        close(fd);
        slm_manifest_free(m);
        /* and the store accepts the next install after the crash */
        if (rc != 0 && step % 4 == 1) {
            RUN_OK("install", f.v2, "--store", store);
            cr_assert_eq(active_version(store), 2);
        }
        tu_rmtree(store);
        free(store);
        if (rc == 0) {
            last = step;
            break;
        }
    }
    cr_assert_gt(last, 10, "install has more than 10 durable steps (got %d)", last);
    cr_assert(saw_old && saw_new);
    free(ref);
    cli_fx_fini(&f);
}
