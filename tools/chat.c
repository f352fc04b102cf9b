/* tools/chat.c — `slm chat`: a multi-turn conversation with a chat model on the terminal
 * (or through stdin), streaming each reply; the KV cache is reused from turn to turn. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "engine.h"
#include "fallback.h"
#include "runtime.h"

typedef struct chat_args {
    cli_model_opts mo;
    const char *system_msg, *tname;
    int n_predict, n_ctx, n_threads;
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


/* One reply: sample until end of turn, -n tokens or a full context; stream it (lps NULL) or
 * collect the log-probabilities of its tokens under the model in *lps (for the fallback's
 * confidence, then nothing is printed here); collect the text. */
static int reply(slm_chat *ch, slm_ctx *ctx, const slm_tokenizer *tok, slm_sampler *smp, long long n_predict,
                 int n_vocab, float **lps, int *n_lps, char **text, size_t *len, slm_err *err)
{
    size_t cap = 256;
    char *buf = malloc(cap), piece[256];
    if (!buf)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    *len = 0;
    int rc = 0;
    for (long long n = 0; n < n_predict; n++) {
        const float *logits = slm_ctx_logits(ctx, 0);
        int32_t next = slm_sampler_sample(smp, logits);
        if (slm_tokenizer_is_eog(tok, next))
            break;
        if (lps) {
            float *g = realloc(*lps, sizeof **lps * (size_t)(*n_lps + 1));
            if (!g) {
                rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
                break;
            }
            *lps = g;
            srv_logprobs(logits, n_vocab, next, 0, &g[(*n_lps)++], NULL, NULL);
        }
        size_t pn = slm_token_to_piece(tok, next, 0, piece, sizeof piece);
        char *big = pn > sizeof piece ? malloc(pn) : NULL;
        if (big)
            slm_token_to_piece(tok, next, 0, big, pn);
        const char *pp = pn > sizeof piece ? big : piece;
        if (pp) {
            if (!lps) {
                fwrite(pp, 1, pn, stdout);
                fflush(stdout);
            }
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
    cli_fallback_defaults(&a.fb);
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
    cli_fallback_opts fo = a.fb;
    slm_err err = {0};
    if (cli_model_check(&mo, &err) || cli_fallback_check(&fo, &err))
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
    char *line = NULL, *text = NULL, *fb_key = NULL;
    size_t line_cap = 0;
    float *lps = NULL;
    /* the conversation as the fallback gets it (with --fallback) */
    const char **roles = NULL;
    char **contents = NULL;
    int n_hist = 0, remote_only = 0, n_vocab = 0;
    srv_upstream up = {fo.url, NULL, fo.connect_ms, fo.timeout_ms, 8u << 20};
    int rc;
    if ((rc = cli_model_path(&mo, fd_path, sizeof fd_path, &path, &err)) || (rc = cli_fallback_key(&fo, &fb_key, &err)))
        goto out;
    up.key = fb_key;
    if (fo.mem_budget) { /* as slm run: a model over the budget is not loaded; the fallback answers */
        uint64_t need = 0;
        if ((rc = srv_engine_estimate(path, (int)n_ctx, 1, SLM_TYPE_F32, SLM_TYPE_F32, &need, &err)))
            goto out;
        if (need > fo.mem_budget) {
            if (!fo.url || fo.priv) {
                rc = slm_err_set(&err, SLM_EINPUT, "the model needs %llu bytes, more than --mem-budget %llu%s",
                                 (unsigned long long)need, fo.mem_budget,
                                 fo.url ? " (and --private: the conversation never leaves this device)" : "");
                goto out;
            }
            remote_only = 1;
        }
    }
    if (!remote_only) {
        if ((rc = slm_model_load(path, &m, &err)) || (rc = slm_tokenizer_from_gguf(slm_model_gguf(m), &tok, &err)))
            goto out;
        const slm_hparams *hp = slm_model_hparams(m);
        if (n_ctx == 0)
            n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
        if (n_ctx > hp->n_ctx_train) {
            rc = slm_err_set(&err, SLM_EINPUT, "-c %lld exceeds the model's context length %d", n_ctx, hp->n_ctx_train);
            goto out;
        }
        n_vocab = slm_tokenizer_n_vocab(tok) < hp->n_vocab ? slm_tokenizer_n_vocab(tok) : hp->n_vocab;
        if ((rc = slm_ctx_new(m, (int)n_ctx, 0, (int)n_threads, &ctx, &err)) ||
            (rc = slm_chat_new(m, tok, ctx, tname, &ch, &err)))
            goto out;
        if (!(smp = slm_sampler_new(&sp, n_vocab))) {
            rc = slm_err_set(&err, SLM_EINTERNAL, "out of memory");
            goto out;
        }
        if (system_msg && (rc = slm_chat_add(ch, "system", system_msg, strlen(system_msg), &err)))
            goto out;
    }
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
            if (ch)
                slm_chat_reset(ch);
            for (int i = 0; i < n_hist; i++)
                free(contents[i]);
            n_hist = 0;
            if (tty)
                fputs("(conversation cleared)\n", stderr);
            continue;
        }
        if (fo.url) { /* the history, with the system message first */
            const char **nr = realloc(roles, sizeof *roles * (size_t)(n_hist + 3));
            char **nc = nr ? realloc(contents, sizeof *contents * (size_t)(n_hist + 3)) : NULL;
            if (nr)
                roles = nr;
            if (!nc) {
                rc = slm_err_set(&err, SLM_EINTERNAL, "out of memory");
                goto out;
            }
            contents = nc;
            if (n_hist == 0 && system_msg) {
                roles[n_hist] = "system";
                contents[n_hist++] = strdup(system_msg);
            }
            roles[n_hist] = "user";
            contents[n_hist++] = strdup(line);
        }
        int np = 0, reused = 0;
        size_t len = 0;
        const char *route = "local", *why = "ok";
        int low_conf = 0; /* the fallback was asked because the local reply's confidence was low */
        if (ch && (rc = slm_chat_add(ch, "user", line, (size_t)n, &err)))
            goto out;
        if (remote_only) {
            route = "fallback", why = "memory";
        } else if (fo.url) { /* prompt + -n over the context: the fallback, as slm run */
            if ((rc = slm_chat_count(ch, &np, &err)))
                goto out;
            if ((long long)np + n_predict > n_ctx) {
                if (fo.priv) {
                    rc = slm_err_set(&err, SLM_EINPUT, "the conversation (%d tokens) plus -n %lld exceeds the context "
                                     "length %lld, and --private: it never leaves this device", np, n_predict, n_ctx);
                    goto out;
                }
                route = "fallback", why = "context";
            }
        }
        double t0 = cli_now();
        if (!strcmp(route, "local")) {
            int n_lps = 0;
            if ((rc = slm_chat_prefill(ch, &np, &reused, &err)))
                goto out;
            rc = reply(ch, ctx, tok, smp, n_predict, n_vocab, fo.url ? &lps : NULL, &n_lps, &text, &len, &err);
            if (rc)
                goto out;
            if (fo.url && fo.confidence > 0 && srv_confidence(lps, sizeof *lps, n_lps, 0.1) < fo.confidence) {
                if (fo.priv)
                    why = "private_low_confidence";
                else
                    route = "fallback", why = "low_confidence", low_conf = 1;
            }
        }
        if (!strcmp(route, "fallback")) {
            char *ft = NULL;
            slm_err ferr = {0};
            int frc = srv_fallback_chat(&up, roles, (const char *const *)contents, n_hist, (int)n_predict, sp.temp,
                                        sp.top_p, sp.seed, &ft, &ferr);
            if (frc && low_conf) { /* the local answer stands */
                cli_warn(C, "%s; printing the local answer", ferr.msg);
                route = "local", why = "low_confidence_upstream_failed";
            } else if (frc) {
                err = ferr;
                rc = frc;
                goto out;
            } else {
                free(text);
                text = ft;
                len = strlen(ft);
            }
        }
        if (fo.url)
            fwrite(text, 1, len, stdout);
        double dt = cli_now() - t0;
        fputc('\n', stdout);
        fflush(stdout);
        if (fo.url) {
            fprintf(stderr, "slm chat: route: %s (%s)\n", route, why);
            roles[n_hist] = "assistant";
            if (!(contents[n_hist++] = strdup(text))) {
                rc = slm_err_set(&err, SLM_EINTERNAL, "out of memory");
                goto out;
            }
        }
        if (ch && (rc = slm_chat_add(ch, "assistant", text, len, &err)))
            goto out;
        if (tty && !remote_only)
            fprintf(stderr, "(%d prompt tokens, %d from the cache; %.1f s)\n", np, reused, dt);
        free(text);
        text = NULL;
    }
    rc = 0;
out:
    if (rc)
        cli_fail_err(C, &err);
    for (int i = 0; i < n_hist; i++)
        free(contents[i]);
    free(contents);
    free(roles);
    free(lps);
    free(fb_key);
    free(text);
    free(line);
    slm_chat_free(ch);
    slm_sampler_free(smp);
    slm_ctx_free(ctx);
    slm_tokenizer_free(tok);
    slm_model_free(m);
    return rc;
}
