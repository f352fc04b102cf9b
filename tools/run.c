/* tools/run.c — `slm run`: generate text from a GGUF model, streaming. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "engine.h"
#include "fallback.h"
#include "signing.h"
#include "pipeline.h"

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

/* What the generation callback streams to, or collects (--json, --fallback). */
typedef struct run_out {
    int json, fallback, oom;
    int n_vocab;       /* tokens the sampler chooses from (for the log-probabilities) */
    slm_buf text;
    float *lps;        /* log-probabilities of the sampled tokens (with --fallback) */
    size_t n_lps, cap_lps;
} run_out;

static int run_token(void *user, const char *piece, size_t len, int32_t tok, const float *logits)
{
    run_out *o = user;
    if (o->fallback) { /* the answer's confidence: its tokens' probabilities under the model */
        float lp = 0;
        srv_logprobs(logits, o->n_vocab, tok, 0, &lp, NULL, NULL);
        if (SLM_PUSH(o->lps, o->n_lps, o->cap_lps, lp))
            return o->oom = 1;
    }
    if (o->json || o->fallback) {
        if (slm_buf_append(&o->text, piece, len))
            return o->oom = 1;
    } else {
        fwrite(piece, 1, len, stdout);
        fflush(stdout);
    }
    return 0;
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

int cmd_run(int argc, char **argv)
{
    const char *C = "run";
    char fd_path[64];
    run_args a = {.n_predict = 128, .n_threads = cli_default_threads()};
    cli_fallback_defaults(&a.fb);
    slm_sampler_defaults(&a.sp);
    a.sp.seed = cli_clock_seed(); /* --seed replaces it */
    int ai = slm_opt_parse(C, run_opts, argc, argv, &a);
    if (ai < 0)
        return -ai;
    if (ai < argc)
        return cli_usage(C, "unexpected argument '%s'", argv[ai]);
    const char *model_path = NULL, *prompt = a.prompt, *prompt_file = a.prompt_file, *messages = a.messages,
               *chat_template = a.chat_template;
    cli_model_opts mo = a.mo;
    long long n_predict = a.n_predict, n_ctx = a.n_ctx, n_threads = a.n_threads;
    int json = a.json, chat = a.chat, priv = a.fb.priv;
    const char *fb_key_file = a.fb.key_file;
    double fb_conf = a.fb.confidence;
    unsigned long long mem_budget = a.fb.mem_budget;
    srv_upstream up = {a.fb.url, NULL, a.fb.connect_ms, a.fb.timeout_ms, 8u << 20};
    slm_sampler_params sp = a.sp;
    uint32_t type_k = cli_cache_type(a.kv.k), type_v = cli_cache_type(a.kv.v);
    slm_err uerr = {0};
    if (cli_model_check(&mo, &uerr))
        return cli_usage(C, "%s", uerr.msg);
    if (prompt && prompt_file)
        return cli_usage(C, "give the prompt with -p or -f, not both");
    if (chat != !!messages)
        return cli_usage(C, chat ? "--chat needs -i MESSAGES.json" : "-i MESSAGES.json goes with --chat");
    if (chat && (prompt || prompt_file))
        return cli_usage(C, "--chat takes the conversation from -i, not -p or -f");
    if (chat_template && !chat)
        return cli_usage(C, "--chat-template goes with --chat");
    if (up.url && chat)
        return cli_usage(C, "--fallback does not take --chat (slm chat and slm serve do)");
    if (fb_key_file && !up.url)
        return cli_usage(C, "--fallback-key-file goes with --fallback URL");

    char *file_text = NULL;
    size_t prompt_len = prompt ? strlen(prompt) : 0;
    if (prompt_file || messages) {
        slm_err rerr = {0};
        if (!(file_text = cli_read_file(prompt_file ? prompt_file : messages, (size_t)1 << 30, &prompt_len, &rerr)))
            return cli_fail_err(C, &rerr);
        prompt = file_text;
    }
    slm_chat_msg *msgs = NULL;
    size_t n_msgs = 0;
    if (messages) {
        slm_err merr = {0};
        int mrc = slm_chat_messages_parse(file_text, prompt_len, messages, &msgs, &n_msgs, &merr);
        if (mrc) {
            free(file_text);
            return cli_fail_err(C, &merr);
        }
    }
    if (!prompt)
        prompt = "";

    int rc = 0;
    slm_err err = {0};
    slm_lm *m = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    run_out ro = {.json = json, .fallback = !!up.url};
    char *text = NULL;
    size_t text_len = 0;
    const char *stop = "length";
    int n_gen = 0, n_eval = 0; /* tokens sampled; single-token decode steps run */
    double t_prompt = 0, t_gen = 0;
    const slm_hparams *hp = NULL;

    const char *route = "local", *route_reason = "ok";
    float *lps = NULL; /* log-probabilities of the sampled tokens (with --fallback) */
    char *fb_key = NULL;
    double t0 = cli_now();
    if ((rc = cli_model_path(&mo, fd_path, sizeof fd_path, &model_path, &err)))
        goto fail;
    if ((rc = cli_fallback_key(&a.fb, &fb_key, &err)))
        goto fail;
    up.key = fb_key;
    if (mem_budget) {
        uint64_t need = 0;
        if ((rc = srv_engine_estimate(model_path, (int)n_ctx, 1, type_k, type_v, &need, &err)))
            goto fail;
        if (need > mem_budget) {
            if (!up.url || priv) {
                rc = slm_err_set(&err, SLM_EINPUT, "the model needs %llu bytes, more than --mem-budget %llu%s",
                                 (unsigned long long)need, mem_budget,
                                 up.url ? " (and --private: the prompt never leaves this device)" : "");
                goto fail;
            }
            route_reason = "memory";
            goto fallback;
        }
    }
    if ((rc = slm_pl_load(model_path, &m, &err)))
        goto fail;
    hp = slm_model_hparams(m->model);
    if (n_ctx == 0)
        n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (n_ctx > hp->n_ctx_train) {
        rc = slm_err_set(&err, SLM_EINPUT, "-c %lld exceeds the model's context length %d", n_ctx, hp->n_ctx_train);
        goto fail;
    }
    if (!chat && (rc = slm_pl_prompt_ids(m, prompt, prompt_len, &ids, &n_ids, &err)))
        goto fail;
    if (up.url && n_ids + (size_t)n_predict > (size_t)n_ctx) {
        if (priv) {
            rc = slm_err_set(&err, SLM_EINPUT, "the prompt (%zu tokens) plus -n %lld exceeds the context length %lld, "
                             "and --private: the prompt never leaves this device", n_ids, n_predict, n_ctx);
            goto fail;
        }
        route_reason = "context";
        goto fallback;
    }
    if (n_ids > (size_t)n_ctx) {
        rc = slm_err_set(&err, SLM_EINPUT, "the prompt has %zu tokens, more than the context length %lld (use -c)",
                         n_ids, n_ctx);
        goto fail;
    }
    if ((rc = slm_ctx_new_kv(m->model, (int)n_ctx, 0, (int)n_threads, type_k, type_v, &m->ctx, &err)))
        goto fail;
    slm_pl_gen g = {.sp = sp, .max_tokens = (int)n_predict, .ids = ids, .n_ids = n_ids, .msgs = msgs,
                    .n_msgs = n_msgs, .chat_template = chat_template};
    ro.n_vocab = m->n_sample;
    rc = slm_pl_generate(m, &g, run_token, &ro, &err);
    double t_load = cli_now() - t0 - g.t_prompt - g.t_gen;
    n_ids = (size_t)g.prompt_tokens;
    n_gen = g.generated;
    n_eval = g.n_eval;
    t_prompt = g.t_prompt;
    t_gen = g.t_gen;
    stop = g.stop == SLM_STOP_EOG ? "eog" : g.stop == SLM_STOP_CONTEXT ? "context" : "length";
    if (!rc && ro.oom)
        rc = slm_err_set(&err, SLM_EINTERNAL, "out of memory");
    if (rc)
        goto fail;
    text = ro.text.p;
    text_len = ro.text.len;
    lps = ro.lps;
    ro.text.p = NULL;
    ro.lps = NULL;
    if (up.url && fb_conf > 0 && srv_confidence(lps, sizeof *lps, n_gen, 0.1) < fb_conf) {
        char *ft = NULL;
        slm_err ferr = {0};
        if (priv)
            route_reason = "private_low_confidence";
        else if (srv_fallback_complete(&up, prompt, (int)n_predict, sp.temp, sp.top_p, sp.seed, &ft, &ferr)) {
            route_reason = "low_confidence_upstream_failed";
            cli_warn(C, "%s; printing the local answer", ferr.msg);
        } else {
            free(text);
            text = ft;
            text_len = strlen(ft);
            route = "fallback";
            route_reason = "low_confidence";
        }
    }
    if (up.url && !json) {
        fwrite(text ? text : "", 1, text_len, stdout);
        fflush(stdout);
    }
    double pp_tps = t_prompt > 0 ? n_ids / t_prompt : 0;
    double tg_tps = t_gen > 0 && n_eval > 0 ? n_eval / t_gen : 0;
    long rss = cli_peak_rss_kb();
    if (json) {
        cJSON *j = cJSON_CreateObject();
        char *clean = utf8_clean(text ? text : "", text_len);
        cJSON_AddStringToObject(j, "text", clean ? clean : "");
        free(clean);
        cJSON_AddStringToObject(j, "model", mo.bundle ? mo.bundle : mo.store ? mo.store : model_path);
        cJSON_AddStringToObject(j, "arch", hp->arch_name);
        cJSON_AddNumberToObject(j, "prompt_tokens", (double)n_ids);
        cJSON_AddNumberToObject(j, "generated_tokens", n_gen);
        cJSON_AddStringToObject(j, "stop", stop);
        cJSON_AddNumberToObject(j, "n_ctx", (double)n_ctx);
        cJSON_AddNumberToObject(j, "threads", (double)n_threads);
        cJSON_AddStringToObject(j, "cache_type_k", slm_kv_type_name(type_k));
        cJSON_AddStringToObject(j, "cache_type_v", slm_kv_type_name(type_v));
        cJSON_AddNumberToObject(j, "kv_bytes", (double)slm_ctx_kv_bytes(m->ctx));
        cJSON_AddNumberToObject(j, "seed", (double)sp.seed);
        cJSON_AddNumberToObject(j, "load_ms", t_load * 1e3);
        cJSON_AddNumberToObject(j, "prompt_ms", t_prompt * 1e3);
        cJSON_AddNumberToObject(j, "prompt_tps", pp_tps);
        cJSON_AddNumberToObject(j, "gen_ms", t_gen * 1e3);
        cJSON_AddNumberToObject(j, "gen_tps", tg_tps);
        cJSON_AddNumberToObject(j, "peak_rss_kb", (double)rss);
        cJSON_AddStringToObject(j, "route", route);
        cJSON_AddStringToObject(j, "route_reason", route_reason);
        char *s = cJSON_PrintUnformatted(j);
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(j);
    } else {
        printf("\n");
        fflush(stdout);
        fprintf(stderr,
                "slm run: load %.1f ms | prompt %zu tokens, %.1f t/s | generation %d tokens, %.1f t/s | "
                "peak RSS %.1f MiB | seed %llu | stop: %s | route: %s (%s)\n",
                t_load * 1e3, n_ids, pp_tps, n_gen, tg_tps, rss / 1024.0, (unsigned long long)sp.seed, stop, route,
                route_reason);
    }
    fflush(stdout);
    goto done;
fallback: {
    /* the local model cannot answer: the upstream does, or a clear error */
    char *ft = NULL;
    if ((rc = srv_fallback_complete(&up, prompt, (int)n_predict, sp.temp, sp.top_p, sp.seed, &ft, &err)))
        goto fail;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "text", ft);
        cJSON_AddStringToObject(j, "route", "fallback");
        cJSON_AddStringToObject(j, "route_reason", route_reason);
        char *s = cJSON_PrintUnformatted(j);
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(j);
    } else {
        printf("%s\n", ft);
        fprintf(stderr, "slm run: route: fallback (%s)\n", route_reason);
    }
    fflush(stdout);
    free(ft);
    goto done;
}
fail:
    if (text_len || n_gen)
        fflush(stdout);
    cli_fail_err(C, &err);
done:
    free(lps);
    free(ro.lps);
    slm_buf_free(&ro.text);
    free(fb_key);
    free(msgs);
    slm_lm_close(m);
    free(ids);
    free(text);
    free(file_text);
    return rc;
}
