/* tests/test_readme.c — suite "readme": paths the README documents that no other suite ran
 * end to end through the `slm` binary: `convert --json`, a sharded checkpoint (index json +
 * shards) and a Mistral checkpoint through `slm convert`, `slm bench synth` from the command
 * line, `bench kernels` Markdown, `compare -o csv`, and exit code 6 (internal: out of memory). */
#include <cjson/cJSON.h>
#include <math.h>
#include <sys/stat.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"
#include "testutil.h"

static const char *const HF_FILES[] = {"config.json", "tokenizer.json", "tokenizer_config.json",
                                       "special_tokens_map.json", "generation_config.json", NULL};

/* dir/name <- the model's file (when the model has it) */
static void copy_from_model(const char *model, const char *name, const char *dir)
{
    char rel[512];
    snprintf(rel, sizeof rel, "%s/%s", model, name);
    if (!tu_exists(tu_model(rel)))
        return;
    size_t n = 0;
    char *d = tu_read_file(tu_model(rel), &n);
    cr_assert_not_null(d, "%s", rel);
    char *to = tu_path(dir, name);
    cr_assert_eq(tu_write_file(to, d, n), 0, "%s", to);
    free(to);
    free(d);
}

static cJSON *run_json(const char *const *args)
{
    char *o = NULL, *e = NULL;
    int rc = tu_run_slm(&o, &e, args);
    cr_assert_eq(rc, 0, "slm %s: exit %d: %s", args[0], rc, e ? e : "");
    cJSON *j = cJSON_Parse(o);
    cr_assert_not_null(j, "slm %s: stdout is not JSON: %s", args[0], o ? o : "");
    free(o), free(e);
    return j;
}

static char *convert_to(const char *model_dir, const char *dir, const char *name)
{
    char *out = tu_path(dir, name), *o = NULL, *e = NULL;
    const char *a[] = {"convert", model_dir, "-o", out, "--outtype", "f32", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, a), 0, "convert %s: %s", model_dir, e ? e : "");
    free(o), free(e);
    return out;
}

/* the two GGUF files hold the same tensors (names, types, shapes, bytes) */
static void expect_same_tensors(const char *a, const char *b)
{
    gguf_file *fa = NULL, *fb = NULL;
    slm_err err = {0};
    cr_assert_eq(gguf_open(a, &fa, &err), 0, "%s", err.msg);
    cr_assert_eq(gguf_open(b, &fb, &err), 0, "%s", err.msg);
    cr_assert_eq(fa->n_tensors, fb->n_tensors);
    for (uint64_t i = 0; i < fa->n_tensors; i++) {
        const gguf_tensor *ta = &fa->tensors[i];
        int64_t k = gguf_find_tensor(fb, ta->name);
        cr_assert_geq(k, 0, "%s missing from %s", ta->name, b);
        const gguf_tensor *tb = &fb->tensors[k];
        cr_expect_eq(ta->type, tb->type, "%s", ta->name);
        cr_expect(ta->nbytes == tb->nbytes && !memcmp(ta->data, tb->data, ta->nbytes), "%s: data differ", ta->name);
        for (int d = 0; d < 4; d++) cr_expect_eq(ta->ne[d], tb->ne[d], "%s dim %d", ta->name, d);
    }
    gguf_close(fa);
    gguf_close(fb);
}

static char *gen_text(const char *model, const char *prompt)
{
    char *o = NULL, *e = NULL;
    const char *a[] = {"run", "-m", model, "-p", prompt, "-n", "12", "--seed", "3", NULL};
    cr_assert_eq(tu_run_slm(&o, &e, a), 0, "run %s: %s", model, e ? e : "");
    free(e);
    return o;
}

/* `slm convert --json`: one JSON object on stdout, its numbers those of the written file */
Test(readme, convert_json_summary)
{
    char *dir = tu_tmpdir("readme-cj"), *out = tu_path(dir, "m.gguf");
    const char *a[] = {"convert", tu_model("stories260k"), "-o", out, "--outtype", "f16", "--json", NULL};
    cJSON *j = run_json(a);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "output")->valuestring, out);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "architecture")->valuestring, "llama");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "outtype")->valuestring, "f16");
    size_t n = 0;
    free(tu_read_file(out, &n));
    cr_assert_eq((size_t)cJSON_GetObjectItem(j, "bytes")->valuedouble, n, "bytes vs the file's size");
    gguf_file *g = NULL;
    slm_err err = {0};
    cr_assert_eq(gguf_open(out, &g, &err), 0, "%s", err.msg);
    cr_assert_eq((uint64_t)cJSON_GetObjectItem(j, "tensors")->valuedouble, g->n_tensors);
    uint64_t params = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) params += g->tensors[i].n_elems;
    cr_assert_eq((uint64_t)cJSON_GetObjectItem(j, "parameters")->valuedouble, params);
    gguf_close(g);
    cJSON_Delete(j);
    tu_rmtree(dir);
    free(out), free(dir);
}

/* A checkpoint in two shards (model-0000N-of-00002.safetensors + model.safetensors.index.json,
 * as transformers saves big models), written from stories260k's tensors: `slm convert` gives
 * the same tensors as from the single file, and the model generates the same text. */
Test(readme, sharded_checkpoint_end_to_end, .timeout = 60)
{
    char *dir = tu_tmpdir("readme-shard"), *src = tu_path(dir, "sharded");
    cr_assert_eq(mkdir(src, 0755), 0);
    for (int i = 0; HF_FILES[i]; i++) copy_from_model("stories260k", HF_FILES[i], src);
    st_model *m = NULL;
    slm_err err = {0};
    cr_assert_eq(st_open(tu_model("stories260k/model.safetensors"), &m, &err), 0, "%s", err.msg);
    const size_t nt = st_count(m);
    cr_assert_gt(nt, 4);
    static const char *const shard[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    cJSON *idx = cJSON_CreateObject(), *wm = cJSON_CreateObject();
    uint64_t total = 0;
    for (int s = 0; s < 2; s++) {
        st_writer *w = st_writer_new();
        cr_assert_not_null(w);
        const size_t lo = s ? nt / 2 : 0, hi = s ? nt : nt / 2;
        for (size_t i = lo; i < hi; i++) {
            const st_tensor *t = st_get(m, i);
            cr_assert_eq(st_writer_add(w, t->name, t->dtype, t->n_dims, t->shape), 0, "%s", t->name);
            cJSON_AddStringToObject(wm, t->name, shard[s]);
            total += t->nbytes;
        }
        char *p = tu_path(src, shard[s]);
        cr_assert_eq(st_writer_begin(w, p, &err), 0, "%s", err.msg);
        for (size_t i = lo; i < hi; i++)
            cr_assert_eq(st_writer_write(w, st_get(m, i)->data, st_get(m, i)->nbytes, &err), 0, "%s", err.msg);
        cr_assert_eq(st_writer_finish(w, &err), 0, "%s", err.msg);
        free(p);
    }
    st_close(m);
    cJSON *meta = cJSON_AddObjectToObject(idx, "metadata");
    cJSON_AddNumberToObject(meta, "total_size", (double)total);
    cJSON_AddItemToObject(idx, "weight_map", wm);
    char *txt = cJSON_Print(idx), *ip = tu_path(src, "model.safetensors.index.json");
    cr_assert_eq(tu_write_file(ip, txt, strlen(txt)), 0);
    free(txt), free(ip);
    cJSON_Delete(idx);

    char *sharded = convert_to(src, dir, "sharded.gguf");
    char *single = convert_to(tu_model("stories260k"), dir, "single.gguf");
    expect_same_tensors(single, sharded);
    char *ta = gen_text(single, "Once upon a time"), *tb = gen_text(sharded, "Once upon a time");
    cr_expect_str_eq(tb, ta, "the sharded conversion generates other text");
    free(ta), free(tb);
    tu_rmtree(dir);
    free(sharded), free(single), free(src), free(dir);
}

/* A Mistral checkpoint (config.json with MistralForCausalLM, model_type "mistral", a
 * sliding_window; stories260k's weights and tokenizer): converted as llama.cpp does (the
 * llama architecture), the same tensors as the Llama checkpoint, the same generated text. */
Test(readme, mistral_checkpoint_end_to_end, .timeout = 60)
{
    char *dir = tu_tmpdir("readme-mistral"), *src = tu_path(dir, "mistral");
    cr_assert_eq(mkdir(src, 0755), 0);
    for (int i = 0; HF_FILES[i]; i++) copy_from_model("stories260k", HF_FILES[i], src);
    copy_from_model("stories260k", "model.safetensors", src);
    char *cp = tu_path(src, "config.json");
    char *txt = tu_read_file(cp, NULL);
    cJSON *c = cJSON_Parse(txt);
    cr_assert_not_null(c);
    free(txt);
    cJSON_ReplaceItemInObject(c, "architectures", cJSON_CreateStringArray((const char *[]){"MistralForCausalLM"}, 1));
    cJSON_ReplaceItemInObject(c, "model_type", cJSON_CreateString("mistral"));
    cJSON_DeleteItemFromObject(c, "sliding_window");
    cJSON_AddNumberToObject(c, "sliding_window", 4096);
    txt = cJSON_Print(c);
    cr_assert_eq(tu_write_file(cp, txt, strlen(txt)), 0);
    free(txt), free(cp);
    cJSON_Delete(c);

    char *out = tu_path(dir, "mistral.gguf");
    const char *a[] = {"convert", src, "-o", out, "--outtype", "f32", "--json", NULL};
    cJSON *j = run_json(a);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "architecture")->valuestring, "llama");
    cJSON_Delete(j);
    gguf_file *g = NULL;
    slm_err err = {0};
    cr_assert_eq(gguf_open(out, &g, &err), 0, "%s", err.msg);
    gguf_str arch = {0};
    cr_assert_eq(gguf_get_str(g, "general.architecture", &arch), 0);
    cr_assert(arch.len == 5 && !memcmp(arch.ptr, "llama", 5), "general.architecture %.*s", (int)arch.len, arch.ptr);
    gguf_close(g);
    char *llama = convert_to(tu_model("stories260k"), dir, "llama.gguf");
    expect_same_tensors(llama, out);
    char *ta = gen_text(llama, "The cat"), *tb = gen_text(out, "The cat");
    cr_expect_str_eq(tb, ta, "the Mistral conversion generates other text");
    free(ta), free(tb);
    tu_rmtree(dir);
    free(out), free(llama), free(src), free(dir);
}

/* `slm bench synth` from the command line: the files the help lists, the JSON summary, a
 * config.json of the shape, a checkpoint that parses with the tensors counted. */
Test(readme, bench_synth_cli, .timeout = 240)
{
    char *dir = tu_tmpdir("readme-synth"), *out = tu_path(dir, "smol");
    const char *a[] = {"bench", "synth", "--shape", "smollm-135m", "-o", out, "--dtype", "bf16", "--seed", "5",
                       "-t", "2", "--json", NULL};
    cJSON *j = run_json(a);
    static const char *const files[] = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "generation_config.json"};
    for (int i = 0; i < 6; i++) {
        char *p = tu_path(out, files[i]);
        cr_expect(tu_exists(p), "bench synth wrote no %s", files[i]);
        free(p);
    }
    char *cp = tu_path(out, "config.json"), *txt = tu_read_file(cp, NULL);
    cJSON *c = cJSON_Parse(txt);
    cr_assert_not_null(c, "config.json: %s", txt);
    cr_expect_eq(cJSON_GetObjectItem(c, "hidden_size")->valueint, 576);
    cr_expect_eq(cJSON_GetObjectItem(c, "num_hidden_layers")->valueint, 30);
    cJSON_Delete(c);
    free(txt), free(cp);
    st_model *m = NULL;
    slm_err err = {0};
    cr_assert_eq(st_open(out, &m, &err), 0, "%s", err.msg);
    const cJSON *nt = cJSON_GetObjectItem(j, "tensors");
    if (!nt) nt = cJSON_GetObjectItem(j, "n_tensors");
    cr_assert(cJSON_IsNumber(nt), "no tensor count in the JSON summary");
    cr_expect_eq((size_t)nt->valuedouble, st_count(m));
    uint64_t params = 0;
    for (size_t i = 0; i < st_count(m); i++) {
        cr_expect_eq(st_get(m, i)->dtype, SLM_TYPE_BF16, "%s", st_get(m, i)->name);
        params += st_get(m, i)->n_elems;
    }
    cr_expect(params > 134000000 && params < 135000000, "parameters %llu", (unsigned long long)params);
    st_close(m);
    cJSON_Delete(j);
    /* a usage error: exit 2 and one line */
    char *o = NULL, *e = NULL;
    const char *bad[] = {"bench", "synth", "--shape", "no-such-shape", "-o", out, NULL};
    cr_expect_eq(tu_run_slm(&o, &e, bad), 2, "%s", e);
    free(o), free(e);
    tu_rmtree(dir);
    free(out), free(dir);
}

/* `slm bench kernels` (Markdown, the default): a table with a header, a separator and one row
 * per (type, op, kernel) that ran, every row with the header's column count. */
Test(readme, bench_kernels_markdown, .timeout = 120)
{
    const char *a[] = {"bench", "kernels", "--types", "q4_0,q8_0", "--shapes", "64x512", "--seconds", "0", "-b", "4",
                       "--kernel", "scalar", NULL};
    char *o = NULL, *e = NULL;
    cr_assert_eq(tu_run_slm(&o, &e, a), 0, "%s", e ? e : "");
    int header_cols = -1, rows = 0, seps = 0;
    for (char *line = strtok(o, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] != '|') continue;
        int cols = 0;
        for (char *p = line; *p; p++) cols += *p == '|';
        if (strstr(line, "---")) {
            seps++;
            continue;
        }
        if (header_cols < 0 && strstr(line, "type")) {
            header_cols = cols;
            continue;
        }
        cr_expect_eq(cols, header_cols, "row with %d '|' (header %d): %s", cols, header_cols, line);
        if (strstr(line, "q4_0") || strstr(line, "q8_0")) rows++;
    }
    cr_assert_gt(header_cols, 3, "no Markdown table header");
    cr_assert_geq(seps, 1, "no Markdown separator row");
    cr_assert_eq(rows, 2 * 2, "want a row per type x op (matvec, matmul) for the scalar kernel, got %d", rows);
    free(o), free(e);
}

/* `slm compare -o csv`: a header and one row per type (base first), the values those of -o json */
Test(readme, compare_csv, .timeout = 180)
{
    char *dir = tu_tmpdir("readme-cmp"), *wd = tu_path(dir, "w");
    const char *a[] = {"compare", tu_model("stories260k"), "-f", tu_corpus("tinystories-eval.txt"), "--types",
                       "Q8_0,Q4_0", "--chunks", "2", "-c", "64", "-d", wd, "-t", "1", "-p", "8", "-n", "2", "-o", "csv",
                       NULL};
    char *o = NULL, *e = NULL;
    cr_assert_eq(tu_run_slm(&o, &e, a), 0, "%s", e ? e : "");
    cr_assert_eq(tu_count_lines(o), 4, "want a header and 3 rows: %s", o);
    char *save = NULL, *hdr = strtok_r(o, "\n", &save);
    cr_assert(strstr(hdr, "type") && strstr(hdr, "kld_mean"), "header: %s", hdr);
    int ncols = 1, kcol = -1, col = 0;
    for (char *p = hdr; *p; p++) ncols += *p == ',';
    for (char *f = hdr; f; f = strchr(f, ','), f = f ? f + 1 : NULL, col++)
        if (!strncmp(f, "kld_mean", 8)) kcol = col;
    cr_assert_geq(kcol, 0);
    const char *want[] = {"base", "Q8_0", "Q4_0"};
    double kld[3];
    for (int r = 0; r < 3; r++) {
        char *line = strtok_r(NULL, "\n", &save);
        cr_assert_not_null(line);
        int n = 1;
        for (char *p = line; *p; p++) n += *p == ',';
        cr_expect_eq(n, ncols, "row %d: %s", r, line);
        cr_expect(!strncmp(line, want[r], strlen(want[r])), "row %d is not %s: %s", r, want[r], line);
        char *f = line;
        for (int k = 0; k < kcol && f; k++) f = strchr(f, ','), f = f ? f + 1 : NULL;
        cr_assert_not_null(f);
        kld[r] = strtod(f, NULL);
    }
    free(o), free(e);
    /* the same numbers as -o json (the run is resumed from the work dir) */
    const char *aj[] = {"compare", tu_model("stories260k"), "-f", tu_corpus("tinystories-eval.txt"), "--types",
                        "Q8_0,Q4_0", "--chunks", "2", "-c", "64", "-d", wd, "-t", "1", "-p", "8", "-n", "2", "-o", "json",
                        NULL};
    cJSON *j = run_json(aj);
    for (int r = 0; r < 3; r++) {
        double k = cJSON_GetObjectItem(cJSON_GetArrayItem(j, r), "kld_mean")->valuedouble;
        cr_expect(fabs(k - kld[r]) <= 5.1e-7, "%s: csv kld %.6f (printed %%.6f), json %g", want[r], kld[r], k);
    }
    cr_expect(kld[0] == 0 && kld[1] > 0 && kld[2] > kld[1], "kld base %g Q8_0 %g Q4_0 %g", kld[0], kld[1], kld[2]);
    cJSON_Delete(j);
    tu_rmtree(dir);
    free(wd), free(dir);
}

/* Exit code 6 (internal) on a path that reaches it: `bench kernels` cannot get the 512 MiB
 * bandwidth buffer under a 400 MB address-space limit: exit 6 and the one-line message. */
Test(readme, exit_6_when_out_of_memory, .timeout = 60)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("SKIPPED under ASan: an address-space limit kills the sanitizer, not malloc (runs in make test)");
#endif
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "ulimit -v 400000 && exec '%s' bench kernels --types q4_0 --shapes 64x512 --seconds 0",
             tu_slm_bin());
    const char *argv[] = {"sh", "-c", cmd, NULL};
    char *o = NULL, *e = NULL;
    int rc = tu_run(&o, &e, argv);
    cr_assert_eq(rc, SLM_EINTERNAL, "exit %d (want 6): %s", rc, e ? e : "");
    cr_assert(e && strstr(e, "error") && strstr(e, "out of memory"), "stderr: %s", e ? e : "");
    cr_assert_eq(tu_count_lines(e), 1, "stderr: %s", e);
    free(o), free(e);
}
