/* tools/telemetry.c — `slm telemetry on|off|status|show|reset-id|push`: the opt-in switch and
 * the user's view of the local spool (serve/telemetry.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "telemetry.h"

typedef struct telemetry_args {
    const char *level, *endpoint;
    int json;
} telemetry_args;

static const char *const telemetry_verbs[] = {"on", "off", "status", "show", "reset-id", "push", NULL};

static const slm_opt telemetry_opts[] = {
    OPT_STRING(0, "level", telemetry_args, level, "L", "(on) error: error counters only; all: every field (default all)"),
    OPT_STRING(0, "endpoint", telemetry_args, endpoint, "URL", "(on) also push each record as OTLP/HTTP JSON to URL/v1/metrics"),
    OPT_INCLUDE_AS(cli_json_table, telemetry_args, json, "(status) one JSON object"),
    OPT_END(),
};

const slm_cmd_doc doc_telemetry = {
    .usage =
        "slm telemetry on [--level error|all] [--endpoint URL]\n"
        "slm telemetry off | status [--json] | show | reset-id | push",
    .description =
        "Telemetry is off unless turned on here; SLM_TELEMETRY=0 in the environment overrides\n"
        "everything. When on, `slm serve` appends one record of counters and histograms to a local\n"
        "spool when it stops (requests, errors, tokens, time to first token, prefill/decode tokens per\n"
        "second, fallbacks by reason, health checks, model SHA-256, architecture and quant type, device\n"
        "class); never a prompt, an output or any free text. Dates are days; the install id is random.\n"
        "See docs/serve.md for every field.\n"
        "\n"
        "  on                 start recording (a new random install id on the first use)\n"
        "  off                stop recording and pushing (the spool stays until you delete it)\n"
        "  status             level, install id, spool path and size, endpoint, environment override\n"
        "  show               print the spool (JSONL) exactly as stored\n"
        "  reset-id           a new random install id\n"
        "  push               push the whole spool now (needs on and an endpoint)\n"
        "\n"
        "The settings and spool live in $SLM_TELEMETRY_DIR, else $XDG_STATE_HOME/slmkit, else\n"
        "~/.local/state/slmkit (telemetry.json, telemetry.jsonl).\n",
    .opts = telemetry_opts,
    .exit_codes =
        "0 ok, 2 usage, 3 bad settings file, 4 I/O (push failed, cannot write)",
    .examples = "slm telemetry on --level error\nslm telemetry status --json",
    .subcommands = telemetry_verbs,
};

int cmd_telemetry(int argc, char **argv)
{
    const char *C = "telemetry";
    telemetry_args a = {0};
    int optind = slm_opt_parse(C, telemetry_opts, argc, argv, &a);
    if (optind < 0)
        return -optind;
    const char *level_s = a.level, *endpoint = a.endpoint;
    int json = a.json;
    if (optind != argc - 1)
        return cli_usage(C, "give one of on, off, status, show, reset-id, push");
    const char *verb = argv[optind];
    int is_on = !strcmp(verb, "on");
    if ((level_s || endpoint) && !is_on)
        return cli_usage(C, "--level and --endpoint go with 'on'");
    if (json && strcmp(verb, "status"))
        return cli_usage(C, "--json goes with 'status'");
    int level = TEL_ALL;
    if (level_s && ((level = tel_level_parse(level_s)) < 1))
        return cli_usage(C, "--level wants error or all, got '%s'", level_s);
    if (endpoint && strncmp(endpoint, "http://", 7) && strncmp(endpoint, "https://", 8))
        return cli_usage(C, "--endpoint wants an http:// or https:// URL, got '%s'", endpoint);
    if (endpoint && strlen(endpoint) >= sizeof(((tel_cfg *)0)->endpoint))
        return cli_usage(C, "--endpoint is too long");

    char dir[4096], spool[4200];
    if (tel_dir(dir, sizeof dir))
        return cli_fail(C, SLM_EINPUT, "telemetry directory path too long");
    tel_spool_path(dir, spool, sizeof spool);
    slm_err err = {0};
    tel_cfg c;
    int rc = tel_load(dir, &c, &err);
    if (rc)
        return cli_fail_err(C, &err);
    if (is_on || !strcmp(verb, "off") || !strcmp(verb, "reset-id")) {
        if (is_on) {
            c.level = level;
            if (endpoint)
                snprintf(c.endpoint, sizeof c.endpoint, "%s", endpoint);
        } else if (!strcmp(verb, "off")) {
            c.level = TEL_OFF;
            c.endpoint[0] = 0;
        }
        if (!c.install_id[0] || !strcmp(verb, "reset-id")) {
            if (!strcmp(verb, "off") && !c.install_id[0])
                return 0; /* never turned on: nothing to write */
            if ((rc = tel_new_id(c.install_id, &err)))
                return cli_fail_err(C, &err);
        }
        if ((rc = tel_save(dir, &c, &err)))
            return cli_fail_err(C, &err);
        printf("telemetry %s%s%s\n", tel_level_name(c.level), tel_env_forbids() ? " (but SLM_TELEMETRY=0 overrides it)" : "",
               !strcmp(verb, "reset-id") ? ", new install id" : "");
        return 0;
    }
    size_t n = 0;
    slm_err rerr = {0};
    char *text = cli_read_file(spool, (size_t)1 << 30, &n, &rerr); /* NULL: no spool yet */
    if (!strcmp(verb, "status")) {
        int eff = tel_effective(&c);
        if (json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "level", tel_level_name(c.level));
            cJSON_AddStringToObject(j, "effective", tel_level_name(eff));
            cJSON_AddBoolToObject(j, "env_override", tel_env_forbids());
            cJSON_AddStringToObject(j, "install_id", c.install_id);
            cJSON_AddStringToObject(j, "endpoint", c.endpoint);
            cJSON_AddStringToObject(j, "spool", spool);
            cJSON_AddNumberToObject(j, "spool_bytes", text ? (double)n : 0);
            char *s = cJSON_PrintUnformatted(j);
            printf("%s\n", s);
            free(s);
            cJSON_Delete(j);
        } else {
            printf("level: %s%s\ninstall id: %s\nendpoint: %s\nspool: %s (%zu bytes)\n", tel_level_name(c.level),
                   tel_env_forbids() ? " (overridden: SLM_TELEMETRY=0, nothing is recorded)" : "",
                   c.install_id[0] ? c.install_id : "(none)", c.endpoint[0] ? c.endpoint : "(none: no push)", spool,
                   text ? n : 0);
        }
    } else if (!strcmp(verb, "show")) {
        if (text)
            fwrite(text, 1, n, stdout);
    } else if (!strcmp(verb, "push")) {
        if (tel_effective(&c) == TEL_OFF || !c.endpoint[0]) {
            free(text);
            return cli_fail(C, SLM_EUSAGE, "push needs telemetry on with an --endpoint (and no SLM_TELEMETRY=0)");
        }
        char *body = text ? tel_otlp(text, n, &c) : NULL;
        if (body && (rc = tel_push(c.endpoint, body, &err))) {
            free(body);
            free(text);
            return cli_fail_err(C, &err);
        }
        free(body);
        int lines = 0;
        for (size_t i = 0; text && i < n; i++)
            lines += text[i] == '\n';
        printf("pushed %d record%s\n", lines, lines == 1 ? "" : "s");
    } else {
        free(text);
        return cli_usage(C, "unknown action '%s' (on, off, status, show, reset-id, push)", verb);
    }
    free(text);
    return 0;
}
