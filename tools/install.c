/* tools/install.c — `slm install`: A/B install store with trial, health check,
 * commit (raising the anti-rollback floor), status, revert. Also holds the
 * runtime-backed health check and canary perplexity shared with `slm bundle`. */
#include <errno.h>
#include <getopt.h>
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
#include "telemetry.h"

const char help_install[] =
    "usage: slm install BUNDLE.slmb --store DIR --trust ROOT [--trust NEXT ...] [--ppl-tolerance F]\n"
    "       slm install --status --store DIR [--json]\n"
    "       slm install --revert --store DIR\n"
    "\n"
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
    "kills the process (SIGKILL) just before its N-th durable step.\n"
    "\n"
    "options:\n"
    "  -s, --store DIR          the install store (created if missing)\n"
    "  -t, --trust ROOT         trust root; repeat for a rotation chain\n"
    "      --ppl-tolerance F    allowed relative canary perplexity change (default 0.05)\n"
    "      --status             show the store (active, previous, floor)\n"
    "      --revert             make the previous committed slot active again\n"
    "      --json               (--status) one JSON object\n"
    "      --wait               wait for the store lock instead of failing at once\n"
    "  -h, --help               this help\n"
    "\n"
    "exit codes: 0 ok, 1 health check failed (previous model kept) or nothing to\n"
    "revert to, 2 usage, 3 bad input, 4 I/O (or store locked), 5 verification failed\n";

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
    /* what the parent learns for telemetry (fixed words and numbers only) */
    int ran, ok, supersedes;
    char digest[65], quant[16];
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

static int health_check_child(void *user, const char *path, const slm_manifest *man, char quant[16], slm_err *err);

/* The GGUF's file type as a recipe name, else "other" (read in the health check's child:
 * the trial model is parsed only there). */
static void model_quant(const char *path, char quant[16])
{
    gguf_file *g = NULL;
    slm_err ge = {0};
    int64_t ft = -1;
    snprintf(quant, 16, "other");
    if (!gguf_open(path, &g, &ge) && !gguf_get_int(g, "general.file_type", &ft) && slm_recipe_name((int)ft) &&
        strlen(slm_recipe_name((int)ft)) < 16)
        snprintf(quant, 16, "%s", slm_recipe_name((int)ft));
    if (g)
        gguf_close(g);
}

/* The parent's view: the verdict plus what telemetry may record of the trial model. */
static int health_check_forked(void *user, const char *path, const slm_manifest *man, slm_err *err)
{
    health_cfg *cfg = user;
    int rc = health_check_child(user, path, man, cfg->quant, err);
    cfg->ran = 1;
    cfg->ok = rc == 0;
    slm_hex(man->files[0].sha256, SLM_SHA256_LEN, cfg->digest);
    cJSON *meta = cJSON_Parse(man->meta_json ? man->meta_json : "{}");
    cfg->supersedes = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(meta, "supersedes"));
    cJSON_Delete(meta);
    return rc;
}

/* Opt-in telemetry of installs, rollbacks and health checks: only when the user
 * turned it on (`slm telemetry on`) and SLM_TELEMETRY=0 is not set; a record of
 * counters and fixed words (serve/telemetry.h), never a path or a message. */
static void telemetry_note(const tel_install_event *ev)
{
    char dir[4096];
    tel_cfg tc;
    slm_err e = {0};
    if (tel_dir(dir, sizeof dir) || tel_load(dir, &tc, &e) || tel_effective(&tc) == TEL_OFF)
        return;
    char *line = tel_install_record(ev, &tc, tel_effective(&tc));
    if (line && tel_spool_append(dir, line, &e))
        fprintf(stderr, "slm install: telemetry not recorded: %s\n", e.msg);
    free(line);
}

static int health_check_child(void *user, const char *path, const slm_manifest *man, char quant[16], slm_err *err)
{
    int fds[2];
    snprintf(quant, 16, "other");
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
        char q[16], line[sizeof e.msg + 20];
        model_quant(path, q); /* first line: the quant word; then the verdict's message */
        int rc = health_check(user, path, man, &e);
        snprintf(line, sizeof line, "%s\n%s", q, rc ? e.msg : "");
        if (write(fds[1], line, strlen(line)) < 0)
            rc = SLM_EFAIL;
        close(fds[1]);
        _exit(rc ? 1 : 0);
    }
    close(fds[1]);
    char buf[sizeof err->msg + 20], *msg = buf;
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && ((r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0 || (r < 0 && errno == EINTR)))
        if (r > 0)
            n += (size_t)r;
    buf[n] = 0;
    close(fds[0]);
    char *nl = strchr(buf, '\n');
    if (nl) {
        *nl = 0;
        if (strlen(buf) < 16)
            snprintf(quant, 16, "%s", buf);
        msg = nl + 1;
    }
    n = strlen(msg);
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
    enum { OPT_STATUS = 1000, OPT_REVERT, OPT_JSON, OPT_TOL, OPT_WAIT };
    static const struct option opts[] = {
        {"store", required_argument, 0, 's'},       {"trust", required_argument, 0, 't'},
        {"status", no_argument, 0, OPT_STATUS},     {"revert", no_argument, 0, OPT_REVERT},
        {"json", no_argument, 0, OPT_JSON},         {"ppl-tolerance", required_argument, 0, OPT_TOL},
        {"wait", no_argument, 0, OPT_WAIT},         {0, 0, 0, 0},
    };
    const char *C = "install", *store = NULL, *bundle = NULL, *trust[16];
    int n_trust = 0, status = 0, revert = 0, json = 0, wait = 0;
    health_cfg hc = {.tolerance = 0.05};
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, ":s:t:", opts, NULL)) != -1) {
        switch (o) {
        case 's': store = optarg; break;
        case 't':
            if (n_trust == 16)
                return cli_usage(C, "at most 16 --trust roots");
            trust[n_trust++] = optarg;
            break;
        case OPT_STATUS: status = 1; break;
        case OPT_REVERT: revert = 1; break;
        case OPT_JSON: json = 1; break;
        case OPT_WAIT: wait = 1; break;
        case OPT_TOL:
            if (cli_parse_double(optarg, &hc.tolerance) || !(hc.tolerance >= 0))
                return cli_usage(C, "--ppl-tolerance wants a number >= 0, got '%s'", optarg);
            break;
        case ':': return cli_usage(C, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage(C, "unknown option '%s'", argv[optind - 1]);
        }
    }
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
        tel_install_event ev = {.rollback_revert = 1};
        char mp[4200];
        slm_err pe = {0};
        snprintf(ev.quant, sizeof ev.quant, "other");
        if (!slm_store_active_path(store, mp, sizeof mp, &pe)) {
            model_quant(mp, ev.quant); /* a committed model: it passed its health check */
            char dir[4096];
            tel_cfg tc;
            if (!tel_dir(dir, sizeof dir) && !tel_load(dir, &tc, &pe) && tel_effective(&tc) == TEL_ALL &&
                tel_file_digest(mp, ev.model_digest, &pe))
                ev.model_digest[0] = 0;
        }
        telemetry_note(&ev);
        fprintf(stderr, "slm install: reverted: slot %c '%s' v%llu is active again (floor stays %llu)\n",
                st.active.slot, st.active.name, (unsigned long long)st.active.version, (unsigned long long)st.floor);
        return 0;
    }
    if (!n_trust && access(store, F_OK) != 0)
        return cli_usage(C, "a new store needs --trust ROOT");
    rc = slm_store_install(store, bundle, trust, n_trust, &io, &st, &err);
    if (hc.ran) { /* the bundle verified and reached the health check */
        tel_install_event ev = {.installs = rc == 0, .health_pass = hc.ok, .health_fail = !hc.ok,
                                .rollback_supersedes = rc == 0 && hc.supersedes};
        memcpy(ev.model_digest, hc.digest, sizeof ev.model_digest);
        memcpy(ev.quant, hc.quant, sizeof ev.quant);
        telemetry_note(&ev);
    }
    if (rc)
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
