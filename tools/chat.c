/* tools/chat.c — `slm chat`: a multi-turn conversation with a chat model on the terminal
 * (or through stdin), streaming each reply; the KV cache is reused from turn to turn. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "route.h"

typedef struct chat_args {
    cli_model_opts mo;
    const char *system_msg, *tname;
    int n_predict, n_ctx, n_threads;
    cli_cache_opts kv;
    slm_sampler_params sp;
    cli_fallback_opts fb;
} chat_args;

static const slm_opt chat_opts[] = {
    OPT_INCLUDE(cli_model_table, chat_args, mo),
    OPT_STRING(0, "system", chat_args, system_msg, "TEXT", "a system message first"),
    OPT_STRING(0, "chat-template", chat_args, tname, "NAME", "a built-in template instead of the model's (chatml, llama3,\ngemma, phi3)"),
    OPT_INT('n', "n-predict", chat_args, n_predict, "N", 1, 1 << 30, "most tokens of one reply (default 1024)"),
    OPT_INT('c', "ctx-size", chat_args, n_ctx, "N", 1, 1 << 30, "context length (default: the model's, at most 4096)"),
    OPT_INCLUDE(cli_sampler_table, chat_args, sp),
    OPT_INCLUDE(cli_threads_table, chat_args, n_threads),
    OPT_INCLUDE(cli_cache_table, chat_args, kv),
    OPT_GROUP("cloud fallback (the whole conversation goes to URL/v1/chat/completions; each turn's\n"
              "route is printed on stderr: slm chat: route: local (ok)):"),
    OPT_INCLUDE(cli_fallback_table, chat_args, fb),
    OPT_FLAG(0, "private", chat_args, fb.priv, "never send the conversation to the fallback (fail instead)"),
    OPT_END(),
};

const slm_cmd_doc doc_chat = {
    .usage = "slm chat -m MODEL.gguf | --bundle B.slmb --trust ROOT | --store DIR [options]",
    .description =
        "Talk with a chat model. Each line read from stdin is a user message; the whole\n"
        "conversation is rendered with the model's chat template (as slm template shows it)\n"
        "and the reply streams to stdout until the model's end-of-turn token (or -n tokens).\n"
        "Only the part of the conversation not yet in the KV cache is evaluated. On a\n"
        "terminal a '> ' prompt is shown on stderr. Commands: /clear forgets the conversation\n"
        "(but the system message), /exit (or end of input) quits.\n",
    .opts = chat_opts,
    .exit_codes = "0 ok, 2 usage, 3 bad input (model, template, conversation longer than the\n"
                  "context, or --private and only the fallback could answer), 4 I/O (the\n"
                  "fallback failed), 5 verification failed (--bundle/--store), 6 internal",
    .examples = "slm chat -m qwen2.5-0.5b-instruct-q4_k_m.gguf --system 'Answer briefly.' --temp 0",
};


static void stream_piece(void *user, const char *piece, size_t len)
{
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
}

/* One line of input without its line end; 0 at the end of input. */
static int read_line(char **line, size_t *cap, size_t *n)
{
    ssize_t k = getline(line, cap, stdin);
    if (k < 0)
        return 0;
    while (k > 0 && ((*line)[k - 1] == '\n' || (*line)[k - 1] == '\r'))
        (*line)[--k] = 0;
    *n = (size_t)k;
    return 1;
}

int cmd_chat(int argc, char **argv)
{
    const char *C = "chat";
    chat_args a = {.n_predict = 1024, .n_threads = cli_default_threads()};
    slm_pl_sampler_defaults(&a.sp);
    cli_fallback_defaults(&a.fb);
    a.sp.seed = cli_clock_seed(); /* --seed replaces it */
    int ai = slm_opt_parse(C, chat_opts, argc, argv, &a);
    if (ai < 0)
        return -ai;
    if (ai < argc)
        return cli_usage(C, "unexpected argument '%s'", argv[ai]);
    slm_err err = {0};
    if (cli_model_check(&a.mo, &err) || cli_fallback_check(&a.fb, &err) ||
        slm_pl_template_name_check(a.tname, &err))
        return cli_usage(C, "%s", err.msg);

    char fd_path[64];
    const char *path = NULL;
    char *line = NULL, *fb_key = NULL;
    size_t line_cap = 0, n = 0;
    srv_route_opts ro = {{a.fb.url, NULL, a.fb.connect_ms, a.fb.timeout_ms, 8u << 20}, a.fb.confidence,
                         a.fb.mem_budget, a.fb.priv};
    srv_chat *ch = NULL;
    srv_chat_turn t = {0};
    int rc;
    if ((rc = cli_model_path(&a.mo, fd_path, sizeof fd_path, &path, &err)) || (rc = cli_fallback_key(&a.fb, &fb_key, &err)))
        goto out;
    ro.up.key = fb_key;
    if ((rc = srv_chat_open(path, a.n_ctx, a.n_threads, cli_cache_type(a.kv.k), cli_cache_type(a.kv.v), a.tname, &a.sp, a.system_msg, &ro, &ch, &err)))
        goto out;
    const int tty = isatty(STDIN_FILENO);
    for (;;) {
        if (tty) {
            fputs("> ", stderr);
            fflush(stderr);
        }
        if (!read_line(&line, &line_cap, &n))
            break;
        if (n == 0)
            continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit"))
            break;
        if (!strcmp(line, "/clear")) {
            srv_chat_clear(ch);
            if (tty)
                fputs("(conversation cleared)\n", stderr);
            continue;
        }
        double t0 = cli_now();
        if ((rc = srv_chat_say(ch, line, n, a.n_predict, stream_piece, NULL, &t, &err)))
            goto out;
        if (t.upstream.code)
            cli_warn(C, "%s; printing the local answer", t.upstream.msg);
        if (a.fb.url)
            fwrite(t.text, 1, t.len, stdout);
        double dt = cli_now() - t0;
        fputc('\n', stdout);
        fflush(stdout);
        if (a.fb.url)
            fprintf(stderr, "slm chat: route: %s (%s)\n", t.route, t.reason);
        if (tty && !srv_chat_remote(ch))
            fprintf(stderr, "(%d prompt tokens, %d from the cache; %.1f s)\n", t.n_prompt, t.n_reused, dt);
        srv_chat_turn_free(&t);
    }
    rc = 0;
out:
    if (rc)
        cli_fail_err(C, &err);
    srv_chat_turn_free(&t);
    srv_chat_free(ch);
    free(fb_key);
    free(line);
    return rc;
}
