/* tests/test_chat_template.c — chat templates (runtime/jinja_*.c, chat_template.c)
 * and `slm template`: the real templates of Llama 3.1 / 3.2, Qwen2.5, Qwen3,
 * Gemma 3 and Phi-3 (tests/data/templates) rendered by our Jinja subset and by
 * @huggingface/jinja (tests/interop/render.mjs, transformers' settings),
 * compared byte for byte, also end to end through a GGUF; Python-Jinja2
 * known answers for the semantics; limits and bad input. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "formats.h"
#include "interop.h"
#include "runtime.h"
#include "testutil.h"

/* ---- conversations ---------------------------------------------------------- */
static const char *const CONVS[] = {
    /* 0: system + user */
    "[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},"
    "{\"role\":\"user\",\"content\":\"What is the capital of France?\"}]",
    /* 1: multi-turn with assistant replies */
    "[{\"role\":\"system\",\"content\":\"You are a pirate.\"},{\"role\":\"user\",\"content\":\"Hi!\"},"
    "{\"role\":\"assistant\",\"content\":\"Ahoy, matey! What be yer question?\"},"
    "{\"role\":\"user\",\"content\":\"Tell me a joke.\"},"
    "{\"role\":\"assistant\",\"content\":\"Why did the pirate buy an eye patch? He couldn't afford an iPad.\"},"
    "{\"role\":\"user\",\"content\":\"Another one, please.\"}]",
    /* 2: unicode: accents, CJK, Hangul, Cyrillic, Arabic, Devanagari, emoji (ZWJ, flags) */
    "[{\"role\":\"user\",\"content\":\"Grüße aus Köln! 你好，世界。こんにちは 안녕하세요 Привет مرحبا नमस्ते "
    "👩‍👩‍👧‍👦 🇫🇷🇯🇵 😀\"},"
    "{\"role\":\"assistant\",\"content\":\"谢谢！👍 Ça va très bien — ¿y tú?\"},"
    "{\"role\":\"user\",\"content\":\"✓ ∑ ∞ “curly” ‘single’ … ½ \\u00e9\\ud83d\\ude00\"}]",
    /* 3: quotes, backslashes, newlines, tabs, leading/trailing whitespace, Jinja-looking text */
    "[{\"role\":\"system\",\"content\":\"  Be terse.\\n\"},"
    "{\"role\":\"user\",\"content\":\"He said \\\"hi\\\" and 'bye'. Not a newline: \\\\n, a double backslash: "
    "\\\\\\\\, a real newline:\\nline 2\\n\\n\\tindented\\ttab, trailing spaces   \"},"
    "{\"role\":\"assistant\",\"content\":\"   leading and trailing   \\n\"},"
    "{\"role\":\"user\",\"content\":\"{{ not_a_variable }} {% if x %}jinja in content{% endif %} <|im_end|> "
    "C:\\\\Windows\\\\path\\r\\n\"}]",
    /* 4: a single user message */
    "[{\"role\":\"user\",\"content\":\"Hello\"}]",
    /* 5: ends with the assistant's reply */
    "[{\"role\":\"user\",\"content\":\"What is 2+2?\"},{\"role\":\"assistant\",\"content\":\"4\"}]",
    /* 6: reasoning in an earlier assistant turn */
    "[{\"role\":\"user\",\"content\":\"Solve x+1=3.\"},"
    "{\"role\":\"assistant\",\"content\":\"<think>\\nx = 3 - 1\\n</think>\\n\\nx = 2.\"},"
    "{\"role\":\"user\",\"content\":\"Thanks!\"}]",
    /* 7: system, and reasoning in the last assistant turn */
    "[{\"role\":\"system\",\"content\":\"Think step by step.\"},{\"role\":\"user\",\"content\":\"Is 7 prime?\"},"
    "{\"role\":\"assistant\",\"content\":\"<think>\\nIt has no divisors but 1 and 7.\\n</think>\\n\\nYes.\"}]",
};
#define N_CONVS (sizeof CONVS / sizeof CONVS[0])

/* one day in December 2024, for the templates that print today's date */
#define EPOCH "1733300000"

typedef struct family {
    const char *file; /* tests/data/templates/<file> */
    const char *bos, *eos;
} family;

/* ---- helpers ------------------------------------------------------------------ */
static char *slurp(const char *path, size_t *n)
{
    char *s = tu_read_file(path, n);
    cr_assert_not_null(s, "cannot read %s", path);
    return s;
}

static char *template_path(const char *file)
{
    char rel[256];
    snprintf(rel, sizeof rel, "templates/%s", file);
    return strdup(tu_data(rel));
}

/* our rendering through the library; NULL and *err set on failure */
static char *render_ours(const char *tpl, size_t tlen, const char *conv, int gen, const char *bos, const char *eos,
                         int *rc, slm_err *err)
{
    slm_chat_msg *msgs;
    size_t n;
    *rc = slm_chat_messages_parse(conv, strlen(conv), "conv", &msgs, &n, err);
    cr_assert_eq(*rc, 0, "%s", err->msg);
    slm_chat_params p;
    slm_chat_params_init(&p);
    p.msgs = msgs;
    p.n_msgs = n;
    p.add_generation_prompt = gen;
    p.bos_token = bos;
    p.eos_token = eos;
    char *out = NULL;
    size_t out_len = 0;
    *rc = slm_chat_render(tpl, tlen, &p, &out, &out_len, err);
    free(msgs);
    if (*rc)
        return NULL;
    cr_assert_eq(strlen(out), out_len);
    return out;
}

/* @huggingface/jinja's rendering (transformers' variables: messages,
 * add_generation_prompt, the special tokens, tools = documents = None) */
static char *render_oracle(const char *dir, const char *tpl_path, const char *conv, int gen, const char *bos,
                           const char *eos)
{
    const char *script = oracle_script("render.mjs");
    if (!oracle_node_file("@huggingface/jinja/package.json"))
        return NULL;
    cJSON *v = cJSON_CreateObject();
    cJSON_AddItemToObject(v, "messages", cJSON_Parse(conv));
    cJSON_AddBoolToObject(v, "add_generation_prompt", gen);
    if (bos)
        cJSON_AddStringToObject(v, "bos_token", bos);
    if (eos)
        cJSON_AddStringToObject(v, "eos_token", eos);
    cJSON_AddNullToObject(v, "tools");
    cJSON_AddNullToObject(v, "documents");
    char *js = cJSON_PrintUnformatted(v);
    cJSON_Delete(v);
    char *vpath = tu_path(dir, "vars.json");
    cr_assert_eq(tu_write_file(vpath, js, strlen(js)), 0);
    const char *argv[] = {"node", script, tpl_path, vpath, NULL};
    char *out = NULL, *err = NULL;
    int rc = tu_run(&out, &err, argv);
    cr_assert_eq(rc, 0, "render.mjs %s failed (%d): %s", tpl_path, rc, err ? err : "");
    free(err);
    free(js);
    free(vpath);
    return out ? out : strdup("");
}

/* a metadata-only GGUF: vocabulary with the BOS / EOS texts, and the template */
static char *write_gguf(const char *dir, const char *name, const char *tpl, const char *bos, const char *eos)
{
    char *path = tu_path(dir, name);
    gguf_writer *w = gguf_writer_new();
    cr_assert_not_null(w);
    const char *toks[] = {"<unk>", bos ? bos : "<no-bos>", eos ? eos : "<no-eos>", "a", "b"};
    cr_assert_eq(gguf_set_str(w, "general.architecture", "llama"), 0);
    cr_assert_eq(gguf_set_str(w, "tokenizer.ggml.model", "gpt2"), 0);
    cr_assert_eq(gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 5), 0);
    if (bos)
        cr_assert_eq(gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1), 0);
    if (eos)
        cr_assert_eq(gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2), 0);
    if (tpl)
        cr_assert_eq(gguf_set_str(w, "tokenizer.chat_template", tpl), 0);
    slm_err err = {0};
    cr_assert_eq(gguf_writer_begin(w, path, &err), 0, "%s", err.msg);
    cr_assert_eq(gguf_writer_finish(w, &err), 0, "%s", err.msg);
    gguf_writer_free(w);
    return path;
}

static int count_lines(const char *s) { return s ? tu_count_lines(s) : 0; }

/* Every conversation, with and without the generation prompt: the library,
 * @huggingface/jinja and `slm template` on a GGUF carrying the template agree
 * byte for byte. */
static void check_family(const family *fam)
{
    char *dir = tu_tmpdir("chat");
    char *tpath = template_path(fam->file);
    size_t tlen;
    char *tpl = slurp(tpath, &tlen);
    char *gguf = write_gguf(dir, "m.gguf", tpl, fam->bos, fam->eos);
    int compared = 0;
    for (size_t c = 0; c < N_CONVS; c++) {
        char *mpath = tu_path(dir, "messages.json");
        cr_assert_eq(tu_write_file(mpath, CONVS[c], strlen(CONVS[c])), 0);
        for (int gen = 1; gen >= 0; gen--) {
            slm_err err = {0};
            int rc;
            char *ours = render_ours(tpl, tlen, CONVS[c], gen, fam->bos, fam->eos, &rc, &err);
            cr_assert_not_null(ours, "%s, conversation %zu, gen %d: %s", fam->file, c, gen, err.msg);
            char *ref = render_oracle(dir, tpath, CONVS[c], gen, fam->bos, fam->eos);
            cr_assert_str_eq(ours, ref, "%s, conversation %zu, generation prompt %d:\nours:\n[%s]\njinja:\n[%s]",
                             fam->file, c, gen, ours, ref);
            const char *args[] = {"template", "-m", gguf, mpath, gen ? NULL : "--no-generation-prompt", NULL};
            char *out = NULL, *errs = NULL;
            int st = tu_run_slm(&out, &errs, args);
            cr_assert_eq(st, 0, "slm template %s, conversation %zu: exit %d: %s", fam->file, c, st, errs ? errs : "");
            cr_assert_str_eq(out ? out : "", ref, "slm template %s, conversation %zu, gen %d differs", fam->file, c,
                             gen);
            compared++;
            free(out);
            free(errs);
            free(ours);
            free(ref);
        }
        free(mpath);
    }
    cr_assert_eq(compared, 2 * (int)N_CONVS);
    free(gguf);
    free(tpl);
    free(tpath);
    tu_rmtree(dir);
    free(dir);
}

/* ---- each family against @huggingface/jinja ----------------------------------------- */
Test(chat_template, llama3_1_matches_jinja, .timeout = 300)
{
    static const family f = {"llama-3.1.jinja", "<|begin_of_text|>", "<|eot_id|>"};
    check_family(&f);
}

Test(chat_template, llama3_1_short_form_matches_jinja, .timeout = 300)
{
    static const family f = {"llama-3.1-lenml.jinja", "<|begin_of_text|>", "<|eot_id|>"};
    check_family(&f);
}

Test(chat_template, llama3_2_matches_jinja_with_fixed_date, .timeout = 300)
{
    setenv("SOURCE_DATE_EPOCH", EPOCH, 1); /* both renderers take "now" from it */
    static const family f = {"llama-3.2.jinja", "<|begin_of_text|>", "<|eot_id|>"};
    check_family(&f);
}

Test(chat_template, qwen2_5_matches_jinja, .timeout = 300)
{
    static const family f = {"qwen2.5.jinja", NULL, "<|im_end|>"};
    check_family(&f);
}

Test(chat_template, qwen3_matches_jinja, .timeout = 300)
{
    static const family f = {"qwen3.jinja", NULL, "<|im_end|>"};
    check_family(&f);
}

Test(chat_template, gemma3_matches_jinja, .timeout = 300)
{
    static const family f = {"gemma3.jinja", "<bos>", "<end_of_turn>"};
    check_family(&f);
}

Test(chat_template, phi3_mini_matches_jinja, .timeout = 300)
{
    static const family f = {"phi-3-mini.jinja", "<s>", "<|endoftext|>"};
    check_family(&f);
}

Test(chat_template, phi3_5_mini_matches_jinja, .timeout = 300)
{
    static const family f = {"phi-3.5-mini.jinja", "<s>", "<|endoftext|>"};
    check_family(&f);
}

/* ---- the date (no oracle needed) ---------------------------------------------------- */
static char *render_text(const char *tpl, const slm_chat_params *p, int *rc, slm_err *err)
{
    char *out = NULL;
    size_t n = 0;
    *rc = slm_chat_render(tpl, strlen(tpl), p, &out, &n, err);
    return out;
}

Test(chat_template, strftime_now_takes_source_date_epoch)
{
    slm_chat_params p;
    slm_chat_params_init(&p);
    slm_err err = {0};
    int rc;
    setenv("SOURCE_DATE_EPOCH", EPOCH, 1); /* 2024-12-04 08:13:20 UTC */
    char *a = render_text("{{ strftime_now('%d %b %Y %H:%M') }}", &p, &rc, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_str_eq(a, "04 Dec 2024 08:13");
    free(a);
    setenv("SOURCE_DATE_EPOCH", "0", 1);
    a = render_text("{{ strftime_now('%d %b %Y') }}", &p, &rc, &err);
    cr_assert_str_eq(a, "01 Jan 1970");
    free(a);
    p.now = 86400 * 365; /* an explicit "now" wins over the environment */
    a = render_text("{{ strftime_now('%Y-%m-%d') }}", &p, &rc, &err);
    cr_assert_str_eq(a, "1971-01-01");
    free(a);
    p.now = -1;
    setenv("SOURCE_DATE_EPOCH", "yesterday", 1);
    a = render_text("{{ strftime_now('%Y') }}", &p, &rc, &err);
    cr_assert_eq(rc, SLM_EINPUT);
    cr_assert_null(a);
    cr_assert(strstr(err.msg, "SOURCE_DATE_EPOCH"), "%s", err.msg);
    /* without it, the clock: the Llama 3.2 template prints a date of this century */
    unsetenv("SOURCE_DATE_EPOCH");
    a = render_text("{{ strftime_now('%Y') }}", &p, &rc, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert(atoi(a) >= 2024 && atoi(a) < 2200, "%s", a);
    free(a);
}

/* ---- Jinja semantics: known answers from Python's Jinja2 3.1 (transformers' engine,
 * ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols) -------- */
static const struct { const char *tpl, *want; } KAT[] = {
    {"{{ ' \\n x \\n '.strip('\\n') }}|{{ 'xxhixx'.lstrip('x') }}|{{ '  a  '.rstrip() }}|",
     " \n x \n |hixx|  a|"},
    {"{{ [1,2,3][::-1] }}{{ 'h\xc3""\xa9""llo'[1:3] }}{{ 'h\xc3""\xa9""llo'[-1] }}{{ [1,2,3,4,5][1::2] }}",
     "[3, 2, 1]\xc3""\xa9""lo[2, 4]"},
    {"{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e300 * 10 if false else 3.5e-7 * 1 }}",
     "3 -4 2 3.5 1024 1.0 0.30000000000000004 3.5e-07"},
    {"{{ true }} {{ none }} {{ [1, 'a', none, true] }} {{ {'k': 'v', 'n': 1.5} }} {{ (1,) }}",
     "True None [1, 'a', None, True] {'k': 'v', 'n': 1.5} (1,)"},
    {"{% set ns = namespace(n=0) %}{% for x in [3,1,2] if x > 1 %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}{% set ns.n = ns.n + x %}{% endfor %}={{ ns.n }}",
     "1/2,2/2=5"},
    {"{% for x in [] %}no{% else %}empty{% endfor %}{% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}",
     "empty02"},
    {"{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}{{ 'a,b,,c'.split(',') }}{{ ' a  b '.split() }}{{ 'a-b-c'.split('-', 1) }}",
     "a=1;b=2;['a', 'b', '', 'c']['a', 'b']['a', 'b-c']"},
    {"{{ {'b': [1, '\xc3""\xa9""\"\\n'], 'a': none, 'c': true} | tojson }} {{ {'b': 1, 'a': [1, 2]} | tojson(indent=2) }} {{ [] | tojson(indent=2) }}",
     "{\"b\": [1, \"\xc3""\xa9""\\\"\\n\"], \"a\": null, \"c\": true} {\n  \"b\": 1,\n  \"a\": [\n    1,\n    2\n  ]\n} []"},
    {"{{ 'Hello World' | lower }} {{ 'abc' | upper }} {{ 'hello world' | title }} {{ 'hELLO' | capitalize }} {{ [1,2,3] | length }} {{ 'h\xc3""\xa9""llo' | length }} {{ 'x' ~ 1 ~ none }}",
     "hello world ABC Hello World Hello 3 5 x1None"},
    {"{{ undefined_var }}|{{ undefined_var is defined }}|{{ undefined_var | default('d') }}|{{ '' | default('e', true) }}|{{ [1,2] | first }}{{ [1,2] | last }}|{{ ['a','b'] | join('-') }}",
     "|False|d|e|12|a-b"},
    {"{{ 'abc' is string }}{{ 3 is number }}{{ 3 is integer }}{{ 3.0 is float }}{{ {} is mapping }}{{ [] is iterable }}{{ none is none }}{{ false is false }}{{ 4 is even }}{{ 3 is odd }}{{ 9 is divisibleby 3 }}{{ 'a' is in 'cat' }}",
     "TrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrue"},
    {"{{ 'a' in 'cat' }}{{ 2 in [1,2] }}{{ 'k' in {'k':1} }}{{ 'z' not in 'cat' }}{{ 1 == 1.0 }}{{ 'a' < 'b' }}{{ not 0 }}{{ 0 or 'x' }}{{ 1 and 'y' }}{{ 'yes' if 0 else 'no' }}",
     "TrueTrueTrueTrueTrueTrueTruexyno"},
    {"{%- set x -%}\n  captured {{ 1 + 1 }}  \n{%- endset -%}[{{ x }}]{# comment #}\n  {% if true %}\n    kept\n  {% endif %}\nend",
     "[captured 2]    kept\nend"},
    {"{{ 'abcabc'.replace('b', 'X') }}{{ 'abcabc'.replace('b', 'X', 1) }}{{ 'abc'.startswith(('x', 'a')) }}{{ 'abc'.endswith('bc') }}{{ 'hello'.find('l') }}{{ '-'.join(['a', 'b']) }}",
     "aXcaXcaXcabcTrueTrue2a-b"},
    {"{{ [{'r': 'a', 'v': 1}, {'r': 'b', 'v': 2}] | selectattr('r', 'equalto', 'b') | map(attribute='v') | list }}{{ [1, 0, 2] | select | list }}{{ ['a', 'b'] | map('upper') | join }}{{ {'x': 1}.get('y', 'dflt') }}",
     "[2][1, 2]ABdflt"},
    {"{% macro greet(name, punct='!') %}Hello {{ name }}{{ punct }}{% endmacro %}{{ greet('a') }}|{{ greet('b', '?') }}|{{ greet(punct='.', name='c') }}|{{ greet() }}|",
     "Hello a!|Hello b?|Hello c.|Hello !|"},
    {"{% set g = 'G' %}{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n }}*{{ fact(n - 1) }}{% endif %}{% endmacro %}{{ fact(4) }} {{ fact is callable }}",
     "4*3*2*1 True"},
    {"{%- macro render(items) -%}\n{%- for i in items -%}\n[{{ i }}]\n{%- endfor -%}\n{%- endmacro -%}\n{{ render([1, 2]) }}{{ render([]) | length }}",
     "[1][2]0"},
};

Test(chat_template, python_jinja_known_answers)
{
    slm_chat_params p;
    slm_chat_params_init(&p);
    for (size_t i = 0; i < sizeof KAT / sizeof KAT[0]; i++) {
        slm_err err = {0};
        int rc;
        char *out = render_text(KAT[i].tpl, &p, &rc, &err);
        cr_assert_eq(rc, 0, "case %zu: %s", i, err.msg);
        cr_expect_str_eq(out, KAT[i].want, "case %zu: %s\ngot  [%s]\nwant [%s]", i, KAT[i].tpl, out, KAT[i].want);
        free(out);
    }
}

/* ---- built-in templates --------------------------------------------------------------- */
/* Each built-in renders ordinary conversations exactly as the family's own template. */
Test(chat_template, builtins_render_like_the_family_templates)
{
    static const struct { const char *name, *file, *bos, *eos; int need_system; } B[] = {
        {"chatml", "qwen2.5.jinja", NULL, "<|im_end|>", 1}, /* Qwen2.5 adds its default system prompt */
        {"llama3", "llama-3.1-lenml.jinja", "<|begin_of_text|>", "<|eot_id|>", 0},
        {"gemma", "gemma3.jinja", "<bos>", "<end_of_turn>", 0},
        {"phi3", "phi-3.5-mini.jinja", "<s>", "<|endoftext|>", 0},
    };
    cr_assert_not_null(strstr(slm_chat_builtin_names(), "chatml"));
    cr_assert_null(slm_chat_builtin("no-such-template"));
    for (size_t b = 0; b < sizeof B / sizeof B[0]; b++) {
        const char *bt = slm_chat_builtin(B[b].name);
        cr_assert_not_null(bt, "%s", B[b].name);
        cr_assert(strstr(slm_chat_builtin_names(), B[b].name));
        char *tpath = template_path(B[b].file);
        size_t tlen;
        char *tpl = slurp(tpath, &tlen);
        int compared = 0;
        for (size_t c = 0; c < N_CONVS; c++) {
            if (B[b].need_system && !strstr(CONVS[c], "\"system\""))
                continue;
            for (int gen = 1; gen >= 0; gen--) {
                slm_err e1 = {0}, e2 = {0};
                int r1, r2;
                char *x = render_ours(bt, strlen(bt), CONVS[c], gen, B[b].bos, B[b].eos, &r1, &e1);
                char *y = render_ours(tpl, tlen, CONVS[c], gen, B[b].bos, B[b].eos, &r2, &e2);
                cr_assert_eq(r1, 0, "%s: %s", B[b].name, e1.msg);
                cr_assert_eq(r2, 0, "%s: %s", B[b].file, e2.msg);
                cr_assert_str_eq(x, y, "built-in %s vs %s, conversation %zu, gen %d", B[b].name, B[b].file, c, gen);
                compared++;
                free(x);
                free(y);
            }
        }
        cr_assert_geq(compared, 4, "%s", B[b].name);
        free(tpl);
        free(tpath);
    }
}

/* ---- bad templates and limits ---------------------------------------------------------- */
static void expect_refused(const char *tpl, const char *conv, const char *needle)
{
    slm_err err = {0};
    int rc;
    char *out = render_ours(tpl, strlen(tpl), conv ? conv : CONVS[0], 1, "<s>", "</s>", &rc, &err);
    cr_assert_null(out, "rendered [%s] for %s", out, tpl);
    cr_assert_eq(rc, SLM_EINPUT, "rc %d for %s: %s", rc, tpl, err.msg);
    cr_assert_null(strchr(err.msg, '\n'), "one line: %s", err.msg);
    cr_assert(strstr(err.msg, needle), "'%s' not in: %s", needle, err.msg);
}

Test(chat_template, unsupported_constructs_are_named)
{
    expect_refused("{% macro m() %}x{% endmacro %}{% call m() %}y{% endcall %}", NULL, "unsupported tag 'call'");
    expect_refused("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", NULL, "macro 'm' takes 1 argument (2 given)");
    expect_refused("{% macro m(a) %}{% endmacro %}{{ m(b=1) }}", NULL, "unexpected keyword argument 'b'");
    expect_refused("{% include 'x.jinja' %}", NULL, "unsupported tag 'include'");
    expect_refused("{{ messages | sort }}", NULL, "unsupported filter 'sort'");
    expect_refused("{{ 1 is prime }}", NULL, "unsupported test 'prime'");
    expect_refused("{{ 'abc'.zfill(5) }}", NULL, "unsupported method 'zfill'");
    expect_refused("{{ cycler(1, 2) }}", NULL, "unsupported function 'cycler'");
    expect_refused("{% for x in messages recursive %}{% endfor %}", NULL, "recursive");
    /* syntax errors name the line */
    expect_refused("line 1\n{% if true %}\nno endif", NULL, "line 2");
    expect_refused("{{ 'unterminated }}", NULL, "unterminated string");
    expect_refused("a\nb\n{{ 1 + }}", NULL, "line 3");
    expect_refused("{% endfor %}", NULL, "unexpected 'endfor'");
    expect_refused("{{ x ! y }}", NULL, "unexpected character '!'");
    /* runtime errors */
    expect_refused("{{ messages[0].nope.deeper }}", NULL, "attribute 'deeper' of an undefined value");
    expect_refused("{{ 'a' + 1 }}", NULL, "unsupported operand types for '+': str and int");
    expect_refused("{{ 1 // 0 }}", NULL, "division or modulo by zero");
    expect_refused("{% set x = 1 %}{% set x.y = 2 %}", NULL, "not a namespace");
    expect_refused("{{ 9223372036854775807 + 1 }}", NULL, "integer overflow");
}

Test(chat_template, raise_exception_gives_its_message)
{
    char *tpath = template_path("gemma3.jinja");
    size_t tlen;
    char *tpl = slurp(tpath, &tlen);
    slm_err err = {0};
    int rc;
    char *out = render_ours(tpl, tlen,
                            "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}]", 1,
                            "<bos>", "<eos>", &rc, &err);
    cr_assert_null(out);
    cr_assert_eq(rc, SLM_EINPUT);
    cr_assert(strstr(err.msg, "Conversation roles must alternate user/assistant/user/assistant/..."), "%s", err.msg);
    free(tpl);
    free(tpath);
}

Test(chat_template, limits_end_runaway_templates, .timeout = 120)
{
    expect_refused("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}", NULL,
                   "iteration limit");
    expect_refused("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", NULL, "output");
    expect_refused("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                   NULL, "limit");
    expect_refused("{{ 'x' * 9999999999 }}", NULL, "limit");
    /* repetition is exact and cheap up to the limit (the fuzzer once timed out on 50 MB built a byte at a time) */
    slm_chat_params p;
    slm_chat_params_init(&p);
    slm_err err = {0};
    int rc;
    char *r = render_text("{{ 'abc' * 5 }}|{{ 'ab' * 0 }}|{{ 3 * 'xy' }}|{{ ('q' * 50000000) | length }}", &p, &rc, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_str_eq(r, "abcabcabcabcabc||xyxyxy|50000000");
    free(r);
    expect_refused("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL, "nested too deeply");
    expect_refused("{% macro f(n) %}{% if n < 60 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}{{ f(0) }}",
                   NULL, "limit"); /* 2^60 calls: the step or the memory limit */
    expect_refused("{% for i in range(900000) %}{{ i+i+i+i+i+i+i+i+i+i+i+i+i+i+i+i }}{% endfor %}", NULL,
                   "step limit");
    /* deep nesting is refused while parsing, not by the C stack */
    size_t depth = 20000;
    char *deep = malloc(2 * depth + 8);
    strcpy(deep, "{{ ");
    memset(deep + 3, '(', depth);
    deep[3 + depth] = '1';
    memset(deep + 4 + depth, ')', depth);
    strcpy(deep + 4 + 2 * depth, " }}");
    expect_refused(deep, NULL, "nested");
    free(deep);
    /* and blocks */
    size_t nb = 5000, o = 0;
    char *blocks = malloc(nb * 26 + 1);
    for (size_t i = 0; i < nb; i++)
        o += (size_t)sprintf(blocks + o, "{%% if true %%}");
    blocks[o] = 0;
    expect_refused(blocks, NULL, "nested");
    free(blocks);
    /* a template over the size limit */
    size_t big = (1u << 20) + 1;
    char *huge = malloc(big + 1);
    memset(huge, 'x', big);
    huge[big] = 0;
    expect_refused(huge, NULL, "more than");
    free(huge);
}

/* Random token soup: every input renders or is refused with one line, never a crash. */
Test(chat_template, random_templates_never_crash, .timeout = 120)
{
    static const char *const PIECES[] = {
        "{{", "}}", "{%", "%}", "{#", "#}", "-", "+", " ", "\n", "if", "for", "in", "else", "elif", "endif",
        "endfor", "set", "x", "=", "messages", "message", "loop", ".", "[", "]", "(", ")", ",", ":", "|",
        "'a'", "\"b\"", "1", "2.5", "not", "and", "or", "is", "defined", "none", "trim", "length", "~", "*",
        "//", "%", "**", "==", "!=", "<", "namespace", "ns", "raise_exception", "{", "}", "range", "-1",
        "content", "role", "break", "continue", "endset", "tojson", "\\", "é", "\xff"};
    uint64_t s = 0x9e3779b97f4a7c15ull;
    slm_chat_params p;
    slm_chat_params_init(&p);
    slm_chat_msg m[2] = {{"user", "hi", 2}, {"assistant", "yo", 2}};
    p.msgs = m;
    p.n_msgs = 2;
    p.now = 0;
    int ok = 0, refused = 0;
    for (int it = 0; it < 3000; it++) {
        char buf[1024];
        size_t o = 0;
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        int n = 1 + (int)(s % 40);
        for (int k = 0; k < n; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            const char *piece = PIECES[s % (sizeof PIECES / sizeof PIECES[0])];
            size_t l = strlen(piece);
            if (o + l + 1 >= sizeof buf)
                break;
            memcpy(buf + o, piece, l);
            o += l;
        }
        buf[o] = 0;
        char *out = NULL;
        size_t ol = 0;
        slm_err err = {0};
        int rc = slm_chat_render(buf, o, &p, &out, &ol, &err);
        if (rc == 0) {
            cr_assert_not_null(out);
            ok++;
        } else {
            cr_assert_eq(rc, SLM_EINPUT, "rc %d for [%s]: %s", rc, buf, err.msg);
            cr_assert(err.msg[0] && !strchr(err.msg, '\n'), "[%s]: %s", buf, err.msg);
            cr_assert_null(out);
            refused++;
        }
        free(out);
    }
    cr_assert_gt(ok, 0);
    cr_assert_gt(refused, 0);
}

/* ---- MESSAGES.json -------------------------------------------------------------------- */
Test(chat_template, messages_are_validated)
{
    static const struct { const char *json, *needle; } BAD[] = {
        {"[{\"role\":\"user\",\"content\":\"hi\"}", "not valid JSON"},
        {"{\"role\":\"user\",\"content\":\"hi\"}", "expected a JSON array"},
        {"[]", "no messages"},
        {"[\"hi\"]", "message 0 is not an object"},
        {"[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"tool\",\"content\":\"b\"}]", "message 1: role \"tool\""},
        {"[{\"role\":\"user\",\"content\":42}]", "must both be strings"},
        {"[{\"role\":\"user\"}]", "must both be strings"},
        {"[{\"role\":\"user\",\"content\":\"a\",\"name\":\"bob\"}]", "unexpected key \"name\""},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        slm_chat_msg *m = (slm_chat_msg *)1;
        size_t n = 7;
        slm_err err = {0};
        int rc = slm_chat_messages_parse(BAD[i].json, strlen(BAD[i].json), "chat.json", &m, &n, &err);
        cr_assert_eq(rc, SLM_EINPUT, "%s", BAD[i].json);
        cr_assert_null(m);
        cr_assert_eq(n, 0);
        cr_assert(strstr(err.msg, "chat.json") && strstr(err.msg, BAD[i].needle), "%s -> %s", BAD[i].json, err.msg);
    }
    slm_chat_msg *m;
    size_t n;
    slm_err err = {0};
    cr_assert_eq(slm_chat_messages_parse(CONVS[2], strlen(CONVS[2]), "c", &m, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(m[1].role, "assistant");
    cr_assert(strstr(m[2].content, "\xc3\xa9\xf0\x9f\x98\x80"), "\\u escapes and surrogate pairs decoded");
    cr_assert_eq(m[0].content_len, strlen(m[0].content));
    free(m);
}

/* ---- slm template: options and bad input end to end --------------------------------------- */
static int run_template(const char *const *args, char **out, char **err)
{
    *out = *err = NULL;
    return tu_run_slm(out, err, args);
}

Test(chat_template, cli_bad_input_one_line_exit_3)
{
    char *dir = tu_tmpdir("chatcli");
    char *good = tu_path(dir, "good.json"), *bad = tu_path(dir, "bad.json"), *role = tu_path(dir, "role.json");
    cr_assert_eq(tu_write_file(good, CONVS[1], strlen(CONVS[1])), 0);
    cr_assert_eq(tu_write_file(bad, "[{\"role\":", 9), 0);
    const char *wr = "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"robot\",\"content\":\"b\"}]";
    cr_assert_eq(tu_write_file(role, wr, strlen(wr)), 0);
    char *unrenderable = write_gguf(dir, "call.gguf", "{% call m() %}{% endcall %}", "<s>", "</s>");
    char *none = write_gguf(dir, "none.gguf", NULL, "<s>", "</s>");
    char *gemma;
    {
        char *tpath = template_path("gemma3.jinja");
        size_t tlen;
        char *tpl = slurp(tpath, &tlen);
        gemma = write_gguf(dir, "gemma.gguf", tpl, "<bos>", "<end_of_turn>");
        free(tpl);
        free(tpath);
    }
    char *out, *err;
    /* malformed and invalid conversations name the file */
    const char *a1[] = {"template", "-m", gemma, bad, NULL};
    cr_assert_eq(run_template(a1, &out, &err), 3);
    cr_assert_eq(count_lines(err), 1, "%s", err);
    cr_assert(strstr(err, "bad.json") && strstr(err, "not valid JSON"), "%s", err);
    cr_assert(!out || !*out, "nothing on stdout");
    free(out), free(err);
    const char *a2[] = {"template", "-m", gemma, role, NULL};
    cr_assert_eq(run_template(a2, &out, &err), 3);
    cr_assert(strstr(err, "role.json") && strstr(err, "\"robot\""), "%s", err);
    cr_assert_eq(count_lines(err), 1, "%s", err);
    free(out), free(err);
    /* a template we cannot render: one line naming the construct and the way out */
    const char *a3[] = {"template", "-m", unrenderable, good, NULL};
    cr_assert_eq(run_template(a3, &out, &err), 3);
    cr_assert_eq(count_lines(err), 1, "%s", err);
    cr_assert(strstr(err, "unsupported tag 'call'") && strstr(err, "--chat-template"), "%s", err);
    cr_assert(!out || !*out);
    free(out), free(err);
    /* ... and the way out works */
    const char *a4[] = {"template", "-m", unrenderable, good, "--chat-template", "chatml", NULL};
    cr_assert_eq(run_template(a4, &out, &err), 0, "%s", err);
    cr_assert(strstr(out, "<|im_start|>user\nAnother one, please.<|im_end|>\n<|im_start|>assistant\n"), "%s", out);
    free(out), free(err);
    /* no template in the model */
    const char *a5[] = {"template", "-m", none, good, NULL};
    cr_assert_eq(run_template(a5, &out, &err), 3);
    cr_assert(strstr(err, "no tokenizer.chat_template") && strstr(err, "--chat-template"), "%s", err);
    free(out), free(err);
    /* raise_exception's message */
    const char *two_users = "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}]";
    cr_assert_eq(tu_write_file(role, two_users, strlen(two_users)), 0);
    const char *a6[] = {"template", "-m", gemma, role, NULL};
    cr_assert_eq(run_template(a6, &out, &err), 3);
    cr_assert(strstr(err, "Conversation roles must alternate"), "%s", err);
    cr_assert_eq(count_lines(err), 1, "%s", err);
    free(out), free(err);
    /* usage errors */
    const char *a7[] = {"template", "-m", gemma, good, "--chat-template", "nope", NULL};
    cr_assert_eq(run_template(a7, &out, &err), 2);
    cr_assert(strstr(err, "chatml"), "lists the built-in names: %s", err);
    free(out), free(err);
    const char *a8[] = {"template", good, NULL};
    cr_assert_eq(run_template(a8, &out, &err), 2);
    free(out), free(err);
    const char *a9[] = {"template", "-m", gemma, "/nonexistent/chat.json", NULL};
    cr_assert_eq(run_template(a9, &out, &err), 4, "%s", err);
    free(out), free(err);
    free(good), free(bad), free(role), free(unrenderable), free(none), free(gemma);
    tu_rmtree(dir);
    free(dir);
}

Test(chat_template, cli_json_and_builtin)
{
    char *dir = tu_tmpdir("chatjson");
    char *tpath = template_path("qwen2.5.jinja");
    size_t tlen;
    char *tpl = slurp(tpath, &tlen);
    char *gguf = write_gguf(dir, "q.gguf", tpl, NULL, "<|im_end|>");
    char *msgs = tu_path(dir, "m.json");
    cr_assert_eq(tu_write_file(msgs, CONVS[0], strlen(CONVS[0])), 0);
    char *out, *err;
    const char *a1[] = {"template", "-m", gguf, msgs, "--json", NULL};
    cr_assert_eq(run_template(a1, &out, &err), 0, "%s", err);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "%s", out);
    const char *want = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is the "
                       "capital of France?<|im_end|>\n<|im_start|>assistant\n";
    cr_assert_str_eq(cJSON_GetObjectItem(j, "prompt")->valuestring, want);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "template")->valuestring, "gguf");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "bos_token")));
    cr_assert_str_eq(cJSON_GetObjectItem(j, "eos_token")->valuestring, "<|im_end|>");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "add_generation_prompt")));
    cJSON_Delete(j);
    free(out), free(err);
    /* the chatml built-in gives the same prompt for this conversation, without --json: the bytes */
    const char *a2[] = {"template", "-m", gguf, msgs, "--chat-template", "chatml", NULL};
    cr_assert_eq(run_template(a2, &out, &err), 0, "%s", err);
    cr_assert_str_eq(out, want);
    free(out), free(err);
    const char *a3[] = {"template", "-m", gguf, msgs, "--no-generation-prompt", NULL};
    cr_assert_eq(run_template(a3, &out, &err), 0, "%s", err);
    cr_assert_eq(strlen(out), strlen(want) - strlen("<|im_start|>assistant\n"));
    free(out), free(err);
    free(msgs), free(gguf), free(tpl), free(tpath);
    tu_rmtree(dir);
    free(dir);
}

/* What a GGUF says: template and token texts; bad ids are refused. */
Test(chat_template, chat_info_from_gguf)
{
    char *dir = tu_tmpdir("chatinfo");
    char *p = write_gguf(dir, "a.gguf", "{{ bos_token }}", "<s>", "</s>");
    gguf_file *f;
    slm_err err = {0};
    cr_assert_eq(gguf_open(p, &f, &err), 0, "%s", err.msg);
    slm_chat_info ci;
    cr_assert_eq(slm_chat_info_from_gguf(f, &ci, &err), 0, "%s", err.msg);
    cr_assert_str_eq(ci.template_text, "{{ bos_token }}");
    cr_assert_str_eq(ci.bos_token, "<s>");
    cr_assert_str_eq(ci.eos_token, "</s>");
    slm_chat_info_free(&ci);
    gguf_close(f);
    /* an id outside the vocabulary */
    char *q = tu_path(dir, "b.gguf");
    gguf_writer *w = gguf_writer_new();
    const char *toks[] = {"a", "b"};
    cr_assert_eq(gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 2), 0);
    cr_assert_eq(gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 9), 0);
    cr_assert_eq(gguf_set_u32(w, "tokenizer.chat_template", 5), 0);
    cr_assert_eq(gguf_writer_begin(w, q, &err), 0, "%s", err.msg);
    cr_assert_eq(gguf_writer_finish(w, &err), 0, "%s", err.msg);
    gguf_writer_free(w);
    cr_assert_eq(gguf_open(q, &f, &err), 0, "%s", err.msg);
    cr_assert_eq(slm_chat_info_from_gguf(f, &ci, &err), SLM_EINPUT);
    cr_assert(strstr(err.msg, "tokenizer.chat_template is not a string"), "%s", err.msg);
    gguf_close(f);
    free(p), free(q);
    tu_rmtree(dir);
    free(dir);
}
