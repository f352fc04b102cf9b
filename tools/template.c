/* tools/template.c — `slm template`: the exact prompt a chat model receives for
 * a conversation, rendered with the model's own chat template (GGUF metadata
 * only; no tensor data is read). */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "formats.h"
#include "runtime.h"

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

#define MAX_MESSAGES_BYTES (64u << 20)

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
    const char *mpath = argv[ai];
    const char *builtin = NULL;
    if (tname && !(builtin = slm_chat_builtin(tname)))
        return cli_usage("template", "unknown chat template '%s' (built-in: %s)", tname, slm_chat_builtin_names());

    slm_err err = {0};
    size_t mlen;
    char *mtext = cli_read_file(mpath, MAX_MESSAGES_BYTES, &mlen, &err);
    if (!mtext)
        return cli_fail_err("template", &err);
    slm_chat_msg *msgs = NULL;
    size_t n_msgs = 0;
    int rc = slm_chat_messages_parse(mtext, mlen, mpath, &msgs, &n_msgs, &err);
    free(mtext);
    if (rc)
        return cli_fail_err("template", &err);

    gguf_file *f = NULL;
    slm_chat_info ci = {0};
    char *out = NULL;
    size_t out_len = 0;
    if ((rc = gguf_open(model, &f, &err)) || (rc = slm_chat_info_from_gguf(f, &ci, &err))) {
        rc = cli_fail_err("template", &err);
        goto done;
    }
    const char *text = builtin ? builtin : ci.template_text;
    if (!text) {
        rc = cli_fail("template", SLM_EINPUT, "%s: no tokenizer.chat_template in the model; choose one with "
                      "--chat-template NAME (%s)", model, slm_chat_builtin_names());
        goto done;
    }
    slm_chat_params p;
    slm_chat_params_init(&p);
    p.msgs = msgs;
    p.n_msgs = n_msgs;
    p.add_generation_prompt = gen;
    p.bos_token = ci.bos_token;
    p.eos_token = ci.eos_token;
    if ((rc = slm_chat_render(text, strlen(text), &p, &out, &out_len, &err))) {
        if (!builtin && rc == SLM_EINPUT)
            rc = cli_fail("template", rc, "%s: %s (--chat-template NAME renders with a built-in template: %s)",
                          model, err.msg, slm_chat_builtin_names());
        else
            rc = cli_fail("template", rc, "%s: %s", model, err.msg);
        goto done;
    }
    if (json) {
        cJSON *o = cJSON_CreateObject();
        char tdesc[64];
        snprintf(tdesc, sizeof tdesc, "%s%s", builtin ? "builtin:" : "gguf", builtin ? tname : "");
        /* the prompt may hold NUL-free UTF-8 only: content strings come from JSON */
        if (!o || !cJSON_AddStringToObject(o, "prompt", out) || !cJSON_AddStringToObject(o, "template", tdesc) ||
            !cJSON_AddBoolToObject(o, "add_generation_prompt", gen) ||
            !cJSON_AddNumberToObject(o, "messages", (double)n_msgs) ||
            !(ci.bos_token ? cJSON_AddStringToObject(o, "bos_token", ci.bos_token) : cJSON_AddNullToObject(o, "bos_token")) ||
            !(ci.eos_token ? cJSON_AddStringToObject(o, "eos_token", ci.eos_token) : cJSON_AddNullToObject(o, "eos_token"))) {
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
        fwrite(out, 1, out_len, stdout);
    if (fflush(stdout) != 0 || ferror(stdout))
        rc = cli_fail("template", SLM_EIO, "cannot write the prompt to stdout");
done:
    free(out);
    slm_chat_info_free(&ci);
    if (f)
        gguf_close(f);
    free(msgs);
    return rc;
}
