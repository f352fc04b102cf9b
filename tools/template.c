/* tools/template.c — `slm template`: the exact prompt a chat model receives for
 * a conversation, rendered with the model's own chat template (GGUF metadata
 * only; no tensor data is read). */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "pipeline.h"

typedef struct template_args {
    const char *model, *tname;
    int no_gen, json;
} template_args;

static const slm_opt template_opts[] = {
    OPT_PATH('m', "model", template_args, model, "FILE", "the GGUF model"),
    OPT_FLAG(0, "no-generation-prompt", template_args, no_gen,
             "do not open the assistant's turn at the end\n(add_generation_prompt = false)"),
    OPT_STRING(0, "chat-template", template_args, tname, "NAME",
               "render with a built-in template instead of the\nmodel's: chatml, llama3, gemma, phi3"),
    OPT_INCLUDE_AS(cli_json_table, template_args, json, "one JSON object: prompt, template, bos/eos tokens"),
    OPT_END(),
};

const slm_cmd_doc doc_template = {
    .usage =
        "slm template -m MODEL.gguf MESSAGES.json [--no-generation-prompt]\n"
        "             [--chat-template NAME] [--json]",
    .description =
        "Print the exact prompt MODEL receives for the conversation in MESSAGES.json\n"
        "(a JSON array of {\"role\": \"system\"|\"user\"|\"assistant\", \"content\": \"...\"}),\n"
        "rendered with the model's chat template (GGUF key tokenizer.chat_template) as\n"
        "transformers' apply_chat_template does, with bos_token / eos_token taken from\n"
        "the model's vocabulary. Only the GGUF metadata is read. The prompt is written\n"
        "as is (no newline added). Templates that print today's date take \"now\" from\n"
        "SOURCE_DATE_EPOCH (UTC) when it is set. See docs/chat.md.\n",
    .opts = template_opts,
    .exit_codes =
        "0 ok, 2 usage, 3 bad input (malformed MESSAGES.json, no or\n"
        "unrenderable template), 4 I/O error, 6 internal error",
};

int cmd_template(int argc, char **argv)
{
    template_args a = {0};
    int ai = slm_opt_parse("template", template_opts, argc, argv, &a);
    if (ai < 0)
        return -ai;
    const char *model = a.model, *tname = a.tname;
    int json = a.json, gen = !a.no_gen;
    if (!model)
        return cli_usage("template", "missing -m MODEL.gguf");
    if (ai != argc - 1)
        return cli_usage("template", ai >= argc ? "missing MESSAGES.json" : "expected one MESSAGES.json");
    slm_err err = {0};
    if (slm_pl_template_name_check(tname, &err))
        return cli_usage("template", "%s", err.msg);
    slm_pl_prompt pr;
    int rc = slm_pl_template(model, argv[ai], tname, gen, &pr, &err);
    if (rc)
        return cli_fail_err("template", &err);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        char tdesc[64];
        snprintf(tdesc, sizeof tdesc, "%s%s", pr.builtin ? "builtin:" : "gguf", pr.builtin ? tname : "");
        /* the prompt may hold NUL-free UTF-8 only: content strings come from JSON */
        if (!o || !cJSON_AddStringToObject(o, "prompt", pr.text) || !cJSON_AddStringToObject(o, "template", tdesc) ||
            !cJSON_AddBoolToObject(o, "add_generation_prompt", gen) ||
            !cJSON_AddNumberToObject(o, "messages", (double)pr.n_msgs) ||
            !(pr.bos_token ? cJSON_AddStringToObject(o, "bos_token", pr.bos_token) : cJSON_AddNullToObject(o, "bos_token")) ||
            !(pr.eos_token ? cJSON_AddStringToObject(o, "eos_token", pr.eos_token) : cJSON_AddNullToObject(o, "eos_token"))) {
            cJSON_Delete(o);
            rc = cli_fail("template", SLM_EINTERNAL, "out of memory");
            goto done;
        }
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!s) {
            rc = cli_fail("template", SLM_EINTERNAL, "out of memory");
            goto done;
        }
        printf("%s\n", s);
        free(s);
    } else
        fwrite(pr.text, 1, pr.len, stdout);
    if (fflush(stdout) != 0 || ferror(stdout))
        rc = cli_fail("template", SLM_EIO, "cannot write the prompt to stdout");
done:
    slm_pl_prompt_free(&pr);
    return rc;
}
