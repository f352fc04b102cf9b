/* tools/install.c — `slm install`: A/B install store with trial, health check,
 * commit (raising the anti-rollback floor), status, revert. Also holds the
 * runtime-backed health check and canary perplexity shared with `slm bundle`. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "runtime.h"
#include "signing.h"

typedef struct install_args {
    const char *store, *trust[16];
    int n_trust, status, revert, json, wait;
    double tolerance;
} install_args;

static const slm_opt install_opts[] = {
    OPT_DIR('s', "store", install_args, store, "DIR", "the install store (created if missing)"),
    OPT_LIST('t', "trust", install_args, trust, n_trust, "ROOT", "trust root; repeat for a rotation chain"),
    OPT_DOUBLE(0, "ppl-tolerance", install_args, tolerance, "F", 0, 0, SLM_OPT_NO_HI,
               "allowed relative canary perplexity change (default 0.05)"),
    OPT_FLAG(0, "status", install_args, status, "show the store (active, previous, floor)"),
    OPT_FLAG(0, "revert", install_args, revert, "make the previous committed slot active again"),
    OPT_INCLUDE_AS(cli_json_table, install_args, json, "(--status) one JSON object"),
    OPT_FLAG(0, "wait", install_args, wait, "wait for the store lock instead of failing at once"),
    OPT_END(),
};

const slm_cmd_doc doc_install = {
    .usage =
        "slm install BUNDLE.slmb --store DIR --trust ROOT [--trust NEXT ...] [--ppl-tolerance F]\n"
        "slm install --status --store DIR [--json]\n"
        "slm install --revert --store DIR",
    .description =
        "An install store keeps two slots, A and B. A new bundle is verified (same\n"
        "checks as `slm verify`, and its version must be above the store's floor),\n"
        "written to the inactive slot as a trial, then health-checked: every F32/F16\n"
        "weight finite, the model loads, its logits are finite, and when the manifest\n"
        "carries a canary, the canary perplexity is within --ppl-tolerance (relative,\n"
        "default 0.05) of the manifest's figure. Healthy: the slot is committed and\n"
        "the anti-rollback floor rises to its version. Unhealthy: the trial is\n"
        "dropped at once and the active model stays. On its first install a store\n"
        "pins the trust root; later --trust files continue its rotation chain.\n"
        "--revert goes back to the previous committed slot (re-verified first); the\n"
        "floor does not go down, so old bundles still cannot be replayed.\n"
        "Every state change is a temp file, fsync, rename, fsync of the directory;\n"
        "a lock keeps two installs from interleaving. Testing hook: SLM_FAULT_STEP=N\n"
        "kills the process (SIGKILL) just before its N-th durable step.\n",
    .opts = install_opts,
    .exit_codes =
        "0 ok, 1 health check failed (previous model kept) or nothing to\n"
        "revert to, 2 usage, 3 bad input, 4 I/O (or store locked), 5 verification failed",
};

/* ---- canary perplexity + health check (runtime) --------------------------- */
/* Mean next-token perplexity of text under the model, one forward pass over
 * min(tokens, context) tokens; also fails when any logit is not finite. */
int install_canary_ppl(const char *model_path, const char *text, double *ppl, slm_err *err);

static int logits_ppl(slm_model *m, const char *path, const char *text, double *ppl, slm_err *err)
{
    slm_tokenizer *tok = NULL;
    slm_ctx *ctx = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = slm_tokenizer_from_gguf(slm_model_gguf(m), &tok, err);
    if (!rc)
        rc = slm_tokenize(tok, text, strlen(text), slm_tokenizer_add_bos(tok), 0, &ids, &n, err);
    if (!rc && n == 0) {
        int32_t start = slm_tokenizer_bos(tok) >= 0 ? slm_tokenizer_bos(tok) : slm_tokenizer_eos(tok);
        free(ids);
        ids = malloc(sizeof *ids);
        if (!ids || start < 0)
            rc = slm_err_set(err, SLM_EINPUT, "%s: nothing to evaluate (no tokens, no BOS)", path);
        else {
            ids[0] = start;
            n = 1;
        }
    }
    const slm_hparams *hp = slm_model_hparams(m);
    int nc = (int)(n < (size_t)hp->n_ctx_train ? n : (size_t)hp->n_ctx_train);
    if (nc > 1024)
        nc = 1024;
    if (!rc)
        rc = slm_ctx_new(m, nc, nc, 1, &ctx, err);
    if (!rc)
        rc = slm_decode(ctx, ids, nc, 1, err);
    double nll = 0;
    int V = rc ? 0 : slm_ctx_n_vocab(ctx);
    for (int i = 0; !rc && i < nc; i++) {
        const float *lg = slm_ctx_logits(ctx, i);
        double mx = -INFINITY;
        for (int v = 0; v < V; v++) {
            if (!isfinite(lg[v])) {
                rc = slm_err_set(err, SLM_EFAIL, "%s: logit %d of token %d is not finite (%g)", path, v, i, lg[v]);
                break;
            }
            if (lg[v] > mx)
                mx = lg[v];
        }
        if (rc || i == nc - 1)
            break;
        double s = 0;
        for (int v = 0; v < V; v++)
            s += exp(lg[v] - mx);
        nll += -(lg[ids[i + 1]] - mx - log(s));
    }
    if (!rc && ppl)
        *ppl = nc > 1 ? exp(nll / (nc - 1)) : 1.0;
    slm_ctx_free(ctx);
    slm_tokenizer_free(tok);
    free(ids);
    return rc;
}

int install_canary_ppl(const char *model_path, const char *text, double *ppl, slm_err *err)
{
    slm_model *m = NULL;
    int rc = slm_model_load(model_path, &m, err);
    if (!rc)
        rc = logits_ppl(m, model_path, text, ppl, err);
    slm_model_free(m);
    return rc;
}

static int f16_finite(uint16_t h) { return (h & 0x7c00) != 0x7c00; }

typedef struct health_cfg {
    double tolerance;
} health_cfg;

static int health_check(void *user, const char *path, const slm_manifest *man, slm_err *err)
{
    const health_cfg *cfg = user;
    slm_model *m = NULL;
    int rc = slm_model_load(path, &m, err);
    if (rc)
        return slm_err_set(err, SLM_EFAIL, "model does not load: %s", err->msg);
    /* every float weight finite: catches NaN/Inf in rows a short canary never touches */
    const gguf_file *g = slm_model_gguf(m);
    for (uint64_t i = 0; !rc && i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        if (t->type == SLM_TYPE_F32) {
            const float *p = t->data;
            for (uint64_t j = 0; j < t->n_elems; j++)
                if (!isfinite(p[j])) {
                    rc = slm_err_set(err, SLM_EFAIL, "tensor '%s' element %llu is not finite", t->name,
                                     (unsigned long long)j);
                    break;
                }
        } else if (t->type == SLM_TYPE_F16) {
            const uint16_t *p = t->data;
            for (uint64_t j = 0; j < t->n_elems; j++)
                if (!f16_finite(p[j])) {
                    rc = slm_err_set(err, SLM_EFAIL, "tensor '%s' element %llu is not finite", t->name,
                                     (unsigned long long)j);
                    break;
                }
        }
    }
    double ppl = 0;
    if (!rc)
        rc = logits_ppl(m, path, man->has_canary ? man->canary_text : "", &ppl, err);
    if (!rc && man->has_canary) {
        double rel = fabs(ppl / man->canary_ppl - 1.0);
        if (!(rel <= cfg->tolerance))
            rc = slm_err_set(err, SLM_EFAIL, "canary perplexity %.4f differs from the manifest's %.4f by %.1f%% (allowed %.1f%%)",
                             ppl, man->canary_ppl, rel * 100, cfg->tolerance * 100);
    }
    slm_model_free(m);
    return rc ? SLM_EFAIL : 0;
}

/* The health check runs in a child process: a model that crashes the runtime
 * cannot take the installer (and its lock) down, and the weights it maps do
 * not count against the installer's memory. The child sends its one-line
 * verdict through a pipe. */
static long child_peak_kb;

static int health_check_forked(void *user, const char *path, const slm_manifest *man, slm_err *err)
{
    int fds[2];
    if (pipe(fds) != 0)
        return slm_err_set(err, SLM_EIO, "pipe: cannot start the health check");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return slm_err_set(err, SLM_EIO, "fork: cannot start the health check");
    }
    if (pid == 0) {
        close(fds[0]);
        slm_err e = {0};
        int rc = health_check(user, path, man, &e);
        if (rc && write(fds[1], e.msg, strlen(e.msg)) < 0)
            rc = SLM_EFAIL;
        close(fds[1]);
        _exit(rc ? 1 : 0);
    }
    close(fds[1]);
    char msg[sizeof err->msg];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof msg - 1 && ((r = read(fds[0], msg + n, sizeof msg - 1 - n)) > 0 || (r < 0 && errno == EINTR)))
        if (r > 0)
            n += (size_t)r;
    msg[n] = 0;
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    struct rusage ru;
    if (getrusage(RUSAGE_CHILDREN, &ru) == 0)
        child_peak_kb = ru.ru_maxrss;
    if (WIFSIGNALED(status))
        return slm_err_set(err, SLM_EFAIL, "the health check crashed (signal %d)", WTERMSIG(status));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return slm_err_set(err, SLM_EFAIL, "%s", n ? msg : "unhealthy");
    return 0;
}

/* ---- fault injection -------------------------------------------------------------- */
typedef struct fault_cfg {
    long target, count;
} fault_cfg;

static void fault_hook(void *user, const char *step)
{
    fault_cfg *f = user;
    if (f->target > 0 && ++f->count == f->target) {
        fflush(NULL);
        kill(getpid(), SIGKILL);
    }
}

/* ---- status ------------------------------------------------------------------------ */
static cJSON *slot_json(const slm_slot_info *s)
{
    if (!s->present)
        return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", s->name);
    cJSON_AddNumberToObject(o, "version", (double)s->version);
    char sl[2] = {s->slot, 0};
    cJSON_AddStringToObject(o, "slot", sl);
    cJSON_AddStringToObject(o, "state", s->state);
    return o;
}

static void print_status(const char *dir, const slm_store_status *st, int json)
{
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddItemToObject(j, "active", slot_json(&st->active));
        cJSON_AddItemToObject(j, "previous", slot_json(&st->previous));
        cJSON_AddNumberToObject(j, "floor", (double)st->floor);
        cJSON_AddNumberToObject(j, "root_version", (double)st->root_version);
        cJSON *slots = cJSON_AddObjectToObject(j, "slots");
        cJSON_AddItemToObject(slots, "a", slot_json(&st->slots[0]));
        cJSON_AddItemToObject(slots, "b", slot_json(&st->slots[1]));
        char *s = cJSON_PrintUnformatted(j);
        printf("%s\n", s ? s : "{}");
        free(s);
        cJSON_Delete(j);
        return;
    }
    printf("store %s: floor %llu, trust root v%llu\n", dir, (unsigned long long)st->floor,
           (unsigned long long)st->root_version);
    if (st->active.present)
        printf("  active:   slot %c, '%s' v%llu\n", st->active.slot, st->active.name,
               (unsigned long long)st->active.version);
    else
        printf("  active:   none\n");
    if (st->previous.present)
        printf("  previous: slot %c, '%s' v%llu\n", st->previous.slot, st->previous.name,
               (unsigned long long)st->previous.version);
    for (int i = 0; i < 2; i++)
        printf("  slot %c: %s%s%s\n", st->slots[i].slot, st->slots[i].state, st->slots[i].version ? ", " : "",
               st->slots[i].version ? st->slots[i].name : "");
}

int cmd_install(int argc, char **argv)
{
    const char *C = "install", *bundle = NULL;
    install_args a = {.tolerance = 0.05};
    int optind = slm_opt_parse(C, install_opts, argc, argv, &a);
    if (optind < 0)
        return -optind;
    const char *store = a.store;
    const char *const *trust = a.trust;
    int n_trust = a.n_trust, status = a.status, revert = a.revert, json = a.json, wait = a.wait;
    health_cfg hc = {a.tolerance};
    if (optind < argc)
        bundle = argv[optind++];
    if (optind < argc)
        return cli_usage(C, "unexpected argument '%s'", argv[optind]);
    if (!store)
        return cli_usage(C, "--store DIR is required");
    if (status + revert + (bundle != NULL) != 1)
        return cli_usage(C, "give exactly one of: a BUNDLE, --status, --revert");
    fault_cfg fc = {0, 0};
    const char *fs = getenv("SLM_FAULT_STEP");
    if (fs && *fs)
        fc.target = atol(fs);
    slm_install_opts io = {(int64_t)time(NULL), SLM_SIGNING_RUNTIME_VERSION, health_check_forked, &hc, fault_hook, &fc, wait};
    slm_store_status st;
    slm_err err = {0};
    int rc;
    if (status) {
        if ((rc = slm_store_status_get(store, &st, &err)))
            return cli_fail_err(C, &err);
        print_status(store, &st, json);
        return 0;
    }
    if (revert) {
        if ((rc = slm_store_revert(store, &io, &st, &err)))
            return cli_fail_err(C, &err);
        fprintf(stderr, "slm install: reverted: slot %c '%s' v%llu is active again (floor stays %llu)\n",
                st.active.slot, st.active.name, (unsigned long long)st.active.version, (unsigned long long)st.floor);
        return 0;
    }
    if (!n_trust && access(store, F_OK) != 0)
        return cli_usage(C, "a new store needs --trust ROOT");
    if ((rc = slm_store_install(store, bundle, trust, n_trust, &io, &st, &err)))
        return cli_fail_err(C, &err);
    fprintf(stderr,
            "slm install: '%s' v%llu committed in slot %c (floor %llu) | peak RSS: installer %.1f MiB, health "
            "check %.1f MiB\n",
            st.active.name, (unsigned long long)st.active.version, st.active.slot, (unsigned long long)st.floor,
            cli_peak_rss_kb() / 1024.0, child_peak_kb / 1024.0);
    if (json)
        print_status(store, &st, 1);
    return 0;
}
