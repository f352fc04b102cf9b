/* tools/chat.c — `slm chat`: a multi-turn conversation with a chat model on the terminal
 * (or through stdin), streaming each reply; the KV cache is reused from turn to turn. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "runtime.h"

typedef struct chat_args {
    cli_model_opts mo;
    const char *system_msg, *tname;
    int n_predict, n_ctx, n_threads;
    slm_sampler_params sp;
} chat_args;

static const slm_opt chat_opts[] = {
    OPT_INCLUDE(cli_model_table, chat_args, mo),
    OPT_STRING(0, "system", chat_args, system_msg, "TEXT", "a system message first"),
    OPT_STRING(0, "chat-template", chat_args, tname, "NAME", "a built-in template instead of the model's (chatml, llama3,\ngemma, phi3)"),
    OPT_INT('n', "n-predict", chat_args, n_predict, "N", 1, 1 << 30, "most tokens of one reply (default 1024)"),
    OPT_INT('c', "ctx-size", chat_args, n_ctx, "N", 1, 1 << 30, "context length (default: the model's, at most 4096)"),
    OPT_INCLUDE(cli_sampler_table, chat_args, sp),
    OPT_INCLUDE(cli_threads_table, chat_args, n_threads),
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
                  "context), 4 I/O, 5 verification failed (--bundle/--store), 6 internal",
    .examples = "slm chat -m qwen2.5-0.5b-instruct-q4_k_m.gguf --system 'Answer briefly.' --temp 0",
};


/* One reply: sample until end of turn, -n tokens or a full context; stream it, collect it. */
static int reply(slm_chat *ch, slm_ctx *ctx, const slm_tokenizer *tok, slm_sampler *smp, long long n_predict,
                 char **text, size_t *len, slm_err *err)
{
    size_t cap = 256;
    char *buf = malloc(cap), piece[256];
    if (!buf)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    *len = 0;
    int rc = 0;
    for (long long n = 0; n < n_predict; n++) {
        int32_t next = slm_sampler_sample(smp, slm_ctx_logits(ctx, 0));
        if (slm_tokenizer_is_eog(tok, next))
            break;
        size_t pn = slm_token_to_piece(tok, next, 0, piece, sizeof piece);
        char *big = pn > sizeof piece ? malloc(pn) : NULL;
        if (big)
            slm_token_to_piece(tok, next, 0, big, pn);
        const char *pp = pn > sizeof piece ? big : piece;
        if (pp) {
            fwrite(pp, 1, pn, stdout);
            fflush(stdout);
            if (*len + pn + 1 > cap) {
                cap = (*len + pn + 1) * 2;
                char *nb = realloc(buf, cap);
                if (!nb) {
                    free(big);
                    rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
                    break;
                }
                buf = nb;
            }
            memcpy(buf + *len, pp, pn);
            *len += pn;
        }
        free(big);
        if (n + 1 == n_predict || slm_ctx_n_past(ctx) >= slm_ctx_n_ctx(ctx))
            break;
        if ((rc = slm_decode(ctx, &next, 1, 0, err)))
            break;
        if (slm_chat_push(ch, next)) {
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
            break;
        }
    }
    buf[*len] = 0;
    *text = buf;
    return rc;
}

int cmd_chat(int argc, char **argv)
{
    const char *C = "chat";
    chat_args a = {.n_predict = 1024, .n_threads = cli_default_threads()};
    slm_sampler_defaults(&a.sp);
    a.sp.seed = cli_clock_seed(); /* --seed replaces it */
    int ai = slm_opt_parse(C, chat_opts, argc, argv, &a);
    if (ai < 0)
        return -ai;
    if (ai < argc)
        return cli_usage(C, "unexpected argument '%s'", argv[ai]);
    const char *system_msg = a.system_msg, *tname = a.tname;
    cli_model_opts mo = a.mo;
    long long n_predict = a.n_predict, n_ctx = a.n_ctx, n_threads = a.n_threads;
    slm_sampler_params sp = a.sp;
    slm_err err = {0};
    if (cli_model_check(&mo, &err))
        return cli_usage(C, "%s", err.msg);
    if (tname && !slm_chat_builtin(tname))
        return cli_usage(C, "unknown chat template '%s' (built-in: %s)", tname, slm_chat_builtin_names());

    char fd_path[64];
    const char *path = NULL;
    slm_model *m = NULL;
    slm_tokenizer *tok = NULL;
    slm_ctx *ctx = NULL;
    slm_sampler *smp = NULL;
    slm_chat *ch = NULL;
    char *line = NULL, *text = NULL;
    size_t line_cap = 0;
    int rc;
    if ((rc = cli_model_path(&mo, fd_path, sizeof fd_path, &path, &err)) ||
        (rc = slm_model_load(path, &m, &err)) || (rc = slm_tokenizer_from_gguf(slm_model_gguf(m), &tok, &err)))
        goto out;
    const slm_hparams *hp = slm_model_hparams(m);
    if (n_ctx == 0)
        n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (n_ctx > hp->n_ctx_train) {
        rc = slm_err_set(&err, SLM_EINPUT, "-c %lld exceeds the model's context length %d", n_ctx, hp->n_ctx_train);
        goto out;
    }
    int n_vocab = slm_tokenizer_n_vocab(tok) < hp->n_vocab ? slm_tokenizer_n_vocab(tok) : hp->n_vocab;
    if ((rc = slm_ctx_new(m, (int)n_ctx, 0, (int)n_threads, &ctx, &err)) ||
        (rc = slm_chat_new(m, tok, ctx, tname, &ch, &err)))
        goto out;
    if (!(smp = slm_sampler_new(&sp, n_vocab))) {
        rc = slm_err_set(&err, SLM_EINTERNAL, "out of memory");
        goto out;
    }
    if (system_msg && (rc = slm_chat_add(ch, "system", system_msg, strlen(system_msg), &err)))
        goto out;
    const int tty = isatty(STDIN_FILENO);
    for (;;) {
        if (tty) {
            fputs("> ", stderr);
            fflush(stderr);
        }
        ssize_t n = getline(&line, &line_cap, stdin);
        if (n < 0)
            break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (n == 0)
            continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit"))
            break;
        if (!strcmp(line, "/clear")) {
            slm_chat_reset(ch);
            if (tty)
                fputs("(conversation cleared)\n", stderr);
            continue;
        }
        int np = 0, reused = 0;
        size_t len = 0;
        if ((rc = slm_chat_add(ch, "user", line, (size_t)n, &err)) ||
            (rc = slm_chat_prefill(ch, &np, &reused, &err)))
            goto out;
        double t0 = cli_now();
        rc = reply(ch, ctx, tok, smp, n_predict, &text, &len, &err);
        double dt = cli_now() - t0;
        fputc('\n', stdout);
        fflush(stdout);
        if (rc)
            goto out;
        if ((rc = slm_chat_add(ch, "assistant", text, len, &err)))
            goto out;
        if (tty)
            fprintf(stderr, "(%d prompt tokens, %d from the cache; %.1f s)\n", np, reused, dt);
        free(text);
        text = NULL;
    }
    rc = 0;
out:
    if (rc)
        cli_fail_err(C, &err);
    free(text);
    free(line);
    slm_chat_free(ch);
    slm_sampler_free(smp);
    slm_ctx_free(ctx);
    slm_tokenizer_free(tok);
    slm_model_free(m);
    return rc;
}
