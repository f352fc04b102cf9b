/* tools/run.c — `slm run`: generate text from a GGUF model, streaming. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "route.h"

typedef struct run_args {
    cli_model_opts mo;
    const char *prompt, *prompt_file, *messages, *chat_template;
    int n_predict, n_ctx, n_threads, json, chat;
    slm_sampler_params sp;
    cli_cache_opts kv;
    cli_fallback_opts fb;
} run_args;

static const slm_opt run_opts[] = {
    OPT_INCLUDE(cli_model_table, run_args, mo),
    OPT_STRING('p', "prompt", run_args, prompt, "TEXT", "prompt text (default: empty, i.e. BOS only)"),
    OPT_PATH('f', "file", run_args, prompt_file, "FILE", "read the prompt from FILE"),
    OPT_FLAG(0, "chat", run_args, chat,
             "the prompt is a conversation: -i MESSAGES.json (a JSON array of\n"
             "{\"role\": \"system\"|\"user\"|\"assistant\", \"content\": ...}) rendered\n"
             "with the model's chat template (see slm template); the reply\n"
             "stops at the model's end-of-turn token"),
    OPT_PATH('i', "messages", run_args, messages, "FILE", "the conversation for --chat"),
    OPT_STRING(0, "chat-template", run_args, chat_template, "NAME",
               "a built-in template instead of the model's (chatml, llama3,\ngemma, phi3)"),
    OPT_INT('n', "n-predict", run_args, n_predict, "N", 0, 1 << 30, "tokens to generate (default 128)"),
    OPT_INT('c', "ctx-size", run_args, n_ctx, "N", 1, 1 << 30, "context length (default: the model's, at most 4096)"),
    OPT_INCLUDE(cli_sampler_table, run_args, sp),
    OPT_INCLUDE(cli_threads_table, run_args, n_threads),
    OPT_INCLUDE(cli_cache_table, run_args, kv),
    OPT_INCLUDE_AS(cli_json_table, run_args, json, "print one JSON object instead of streaming: {\"text\", stats...}"),
    OPT_GROUP("cloud fallback (then the text is printed at the end, not streamed; not with --chat:\nslm chat takes them):"),
    OPT_INCLUDE(cli_fallback_table, run_args, fb),
    OPT_FLAG(0, "private", run_args, fb.priv, "never send this prompt to the fallback (fail instead)"),
    OPT_END(),
};

const slm_cmd_doc doc_run = {
    .usage = "slm run -m MODEL.gguf [-p PROMPT | -f PROMPT_FILE] [-n N] [options]\n"
             "slm run --bundle B.slmb --trust ROOT [--trust NEXT_ROOT ...] [-p PROMPT] [options]\n"
             "slm run --store DIR [-p PROMPT] [options]\n"
             "slm run -m MODEL.gguf --chat -i MESSAGES.json [options]",
    .description =
        "Generate text with a GGUF model (llama incl. Llama 3, qwen2, qwen3, gemma3, phi3, gpt2)\n"
        "(written by slm or by llama.cpp). The prompt is processed as one batch, then\n"
        "tokens are sampled one at a time and streamed to stdout as they are produced.\n"
        "The prompt itself is not echoed. Generation stops after N tokens, at an\n"
        "end-of-generation token, or when the context is full. Statistics (load time,\n"
        "prompt and generation tokens/s, peak memory) go to stderr.\n",
    .opts = run_opts,
    .exit_codes = "0 ok, 2 usage, 3 bad input (model, prompt too long, -c too large, messages,\n"
                  "a chat template that cannot be rendered), 4 I/O,\n"
                  "5 verification failed (--bundle/--store), 6 internal",
    .examples = "slm run -m smol-q4_k_m.gguf -p 'Once upon a time' -n 64 --temp 0\n"
                "slm run --bundle smol.slmb --trust root.json -p 'Hello' --json",
};

static void stream_piece(void *user, const char *piece, size_t len)
{
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
}

/* Copy of s with invalid UTF-8 sequences replaced by U+FFFD (JSON needs valid text). */
static char *utf8_clean(const char *s, size_t n)
{
    char *o = malloc(n * 3 + 1);
    if (!o)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = len > 0 && i + len <= n && !(len == 2 && c < 0xc2);
        for (int k = 1; ok && k < len; k++)
            ok = ((unsigned char)s[i + k] & 0xc0) == 0x80;
        if (ok && len == 3) {
            unsigned cp = ((c & 0x0f) << 12) | (((unsigned char)s[i + 1] & 0x3f) << 6);
            ok = cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff);
        }
        if (ok && len == 4) {
            unsigned cp = ((c & 0x07) << 18) | (((unsigned char)s[i + 1] & 0x3f) << 12);
            ok = cp >= 0x10000 && cp <= 0x10ffff;
        }
        if (ok) {
            memcpy(o + j, s + i, (size_t)len);
            j += (size_t)len;
            i += (size_t)len;
        } else {
            memcpy(o + j, "\xef\xbf\xbd", 3);
            j += 3;
            i++;
        }
    }
    o[j] = 0;
    return o;
}

/* j on one line of stdout; frees j. */
static void print_json(cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    if (s)
        printf("%s\n", s);
    free(s);
    cJSON_Delete(j);
}

/* The statistics line on stderr, or the JSON object on stdout. */
static void print_local(const run_args *a, const char *model, const srv_run_res *r)
{
    const char *stop = r->stop == SLM_STOP_EOG ? "eog" : r->stop == SLM_STOP_CONTEXT ? "context" : "length";
    double pp_tps = r->t_prompt > 0 ? r->prompt_tokens / r->t_prompt : 0;
    double tg_tps = r->t_gen > 0 && r->n_eval > 0 ? r->n_eval / r->t_gen : 0;
    long rss = cli_peak_rss_kb();
    if (!a->json) {
        printf("\n");
        fflush(stdout);
        fprintf(stderr,
                "slm run: load %.1f ms | prompt %d tokens, %.1f t/s | generation %d tokens, %.1f t/s | "
                "peak RSS %.1f MiB | seed %llu | stop: %s | route: %s (%s)\n",
                r->t_load * 1e3, r->prompt_tokens, pp_tps, r->generated, tg_tps, rss / 1024.0,
                (unsigned long long)a->sp.seed, stop, r->route, r->reason);
        return;
    }
    cJSON *j = cJSON_CreateObject();
    char *clean = utf8_clean(r->text ? r->text : "", r->len);
    cJSON_AddStringToObject(j, "text", clean ? clean : "");
    free(clean);
    cJSON_AddStringToObject(j, "model", a->mo.bundle ? a->mo.bundle : a->mo.store ? a->mo.store : model);
    cJSON_AddStringToObject(j, "arch", r->arch);
    cJSON_AddNumberToObject(j, "prompt_tokens", r->prompt_tokens);
    cJSON_AddNumberToObject(j, "generated_tokens", r->generated);
    cJSON_AddStringToObject(j, "stop", stop);
    cJSON_AddNumberToObject(j, "n_ctx", r->n_ctx);
    cJSON_AddNumberToObject(j, "threads", a->n_threads);
    cJSON_AddStringToObject(j, "cache_type_k", slm_pl_kv_type_name(cli_cache_type(a->kv.k)));
    cJSON_AddStringToObject(j, "cache_type_v", slm_pl_kv_type_name(cli_cache_type(a->kv.v)));
    cJSON_AddNumberToObject(j, "kv_bytes", (double)r->kv_bytes);
    cJSON_AddNumberToObject(j, "seed", (double)a->sp.seed);
    cJSON_AddNumberToObject(j, "load_ms", r->t_load * 1e3);
    cJSON_AddNumberToObject(j, "prompt_ms", r->t_prompt * 1e3);
    cJSON_AddNumberToObject(j, "prompt_tps", pp_tps);
    cJSON_AddNumberToObject(j, "gen_ms", r->t_gen * 1e3);
    cJSON_AddNumberToObject(j, "gen_tps", tg_tps);
    cJSON_AddNumberToObject(j, "peak_rss_kb", (double)rss);
    cJSON_AddStringToObject(j, "route", r->route);
    cJSON_AddStringToObject(j, "route_reason", r->reason);
    print_json(j);
}

/* The fallback answered alone (the model was not run). */
static void print_fallback(int json, const srv_run_res *r)
{
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "text", r->text);
        cJSON_AddStringToObject(j, "route", "fallback");
        cJSON_AddStringToObject(j, "route_reason", r->reason);
        print_json(j);
    } else {
        printf("%s\n", r->text);
        fprintf(stderr, "slm run: route: fallback (%s)\n", r->reason);
    }
}

/* Usage errors beyond what the option table checks. */
static int run_check(const run_args *a)
{
    const char *C = "run";
    slm_err uerr = {0};
    if (cli_model_check(&a->mo, &uerr))
        return cli_usage(C, "%s", uerr.msg);
    if (a->prompt && a->prompt_file)
        return cli_usage(C, "give the prompt with -p or -f, not both");
    if (a->chat != !!a->messages)
        return cli_usage(C, a->chat ? "--chat needs -i MESSAGES.json" : "-i MESSAGES.json goes with --chat");
    if (a->chat && (a->prompt || a->prompt_file))
        return cli_usage(C, "--chat takes the conversation from -i, not -p or -f");
    if (a->chat_template && !a->chat)
        return cli_usage(C, "--chat-template goes with --chat");
    if (a->fb.url && a->chat)
        return cli_usage(C, "--fallback does not take --chat (slm chat and slm serve do)");
    if (a->fb.key_file && !a->fb.url)
        return cli_usage(C, "--fallback-key-file goes with --fallback URL");
    return 0;
}

int cmd_run(int argc, char **argv)
{
    const char *C = "run";
    char fd_path[64];
    run_args a = {.n_predict = 128, .n_threads = cli_default_threads()};
    cli_fallback_defaults(&a.fb);
    slm_pl_sampler_defaults(&a.sp);
    a.sp.seed = cli_clock_seed(); /* --seed replaces it */
    int ai = slm_opt_parse(C, run_opts, argc, argv, &a);
    if (ai < 0)
        return -ai;
    if (ai < argc)
        return cli_usage(C, "unexpected argument '%s'", argv[ai]);
    int rc = run_check(&a);
    if (rc)
        return rc;

    slm_err err = {0};
    char *file_text = NULL;
    slm_chat_msg *msgs = NULL;
    srv_run_req q = {.prompt = a.prompt ? a.prompt : "", .prompt_len = a.prompt ? strlen(a.prompt) : 0,
                     .chat_template = a.chat_template, .n_predict = a.n_predict, .n_ctx = a.n_ctx,
                     .n_threads = a.n_threads, .type_k = cli_cache_type(a.kv.k), .type_v = cli_cache_type(a.kv.v),
                     .sp = a.sp, .collect = a.json, .stream = stream_piece,
                     .ro = {{a.fb.url, NULL, a.fb.connect_ms, a.fb.timeout_ms, 8u << 20}, a.fb.confidence,
                            a.fb.mem_budget, a.fb.priv}};
    if (a.prompt_file && !(q.prompt = file_text = cli_read_file(a.prompt_file, (size_t)1 << 30, &q.prompt_len, &err)))
        return cli_fail_err(C, &err);
    if (a.messages && slm_pl_messages_load(a.messages, (size_t)1 << 30, &msgs, &q.n_msgs, &err))
        return cli_fail_err(C, &err);
    q.msgs = msgs;

    srv_run_res r = {0};
    char *fb_key = NULL;
    q.t_start = slm_pl_now();
    if (!(rc = cli_model_path(&a.mo, fd_path, sizeof fd_path, &q.model_path, &err)) &&
        !(rc = cli_fallback_key(&a.fb, &fb_key, &err))) {
        q.ro.up.key = fb_key;
        rc = srv_run(&q, &r, &err);
    }
    if (rc) {
        fflush(stdout);
        cli_fail_err(C, &err);
    } else if (!r.local) {
        print_fallback(a.json, &r);
    } else {
        if (r.upstream.code)
            cli_warn(C, "%s; printing the local answer", r.upstream.msg);
        if (a.fb.url && !a.json)
            fwrite(r.text ? r.text : "", 1, r.len, stdout);
        print_local(&a, q.model_path, &r);
    }
    fflush(stdout);
    srv_run_res_free(&r);
    free(fb_key);
    free(msgs);
    free(file_text);
    return rc;
}
