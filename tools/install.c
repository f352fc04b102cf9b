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
#include "pipeline.h"
#include "signing.h"
#include "telemetry.h"

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
    slm_pl_health hc = {.tolerance = a.tolerance};
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
    slm_install_opts io = {(int64_t)time(NULL), SLM_SIGNING_RUNTIME_VERSION, slm_pl_health_forked, &hc, fault_hook, &fc, wait};
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
            slm_pl_model_quant(mp, ev.quant); /* a committed model: it passed its health check */
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
            cli_peak_rss_kb() / 1024.0, slm_pl_health_peak_kb() / 1024.0);
    if (json)
        print_status(store, &st, 1);
    return 0;
}
