/* tools/template.c — `slm template`: the exact prompt a chat model receives for
 * a conversation, rendered with the model's own chat template (GGUF metadata
 * only; no tensor data is read). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "formats.h"
#include "runtime.h"

const char help_template[] =
    "usage: slm template -m MODEL.gguf MESSAGES.json [--no-generation-prompt]\n"
    "                    [--chat-template NAME] [--json]\n"
    "\n"
    "Print the exact prompt MODEL receives for the conversation in MESSAGES.json\n"
    "(a JSON array of {\"role\": \"system\"|\"user\"|\"assistant\", \"content\": \"...\"}),\n"
    "rendered with the model's chat template (GGUF key tokenizer.chat_template) as\n"
    "transformers' apply_chat_template does, with bos_token / eos_token taken from\n"
    "the model's vocabulary. Only the GGUF metadata is read. The prompt is written\n"
    "as is (no newline added). Templates that print today's date take \"now\" from\n"
    "SOURCE_DATE_EPOCH (UTC) when it is set. See docs/chat.md.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE          the GGUF model\n"
    "      --no-generation-prompt  do not open the assistant's turn at the end\n"
    "                            (add_generation_prompt = false)\n"
    "      --chat-template NAME  render with a built-in template instead of the\n"
    "                            model's: chatml, llama3, gemma, phi3\n"
    "      --json                one JSON object: prompt, template, bos/eos tokens\n"
    "  -h, --help                this help\n"
    "\n"
    "exit codes: 0 ok, 2 usage, 3 bad input (malformed MESSAGES.json, no or\n"
    "unrenderable template), 4 I/O error, 6 internal error\n";

#define MAX_MESSAGES_BYTES (64u << 20)

int cmd_template(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"no-generation-prompt", no_argument, 0, 'G'},
                                         {"chat-template", required_argument, 0, 'T'},
                                         {"json", no_argument, 0, 'J'},
                                         {0, 0, 0, 0}};
    const char *model = NULL, *tname = NULL;
    int json = 0, gen = 1, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "m:", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'G': gen = 0; break;
        case 'T': tname = optarg; break;
        case 'J': json = 1; break;
        case ':': return cli_usage("template", "option '%s' needs an argument", argv[optind - 1]);
        default: return cli_usage("template", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (!model)
        return cli_usage("template", "missing -m MODEL.gguf");
    if (optind != argc - 1)
        return cli_usage("template", optind >= argc ? "missing MESSAGES.json" : "expected one MESSAGES.json");
    const char *mpath = argv[optind];
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
