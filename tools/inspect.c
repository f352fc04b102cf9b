/* tools/inspect.c — `slm inspect`: what is inside a GGUF, a safetensors file
 * or a Hugging Face model directory. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "formats.h"

typedef struct inspect_args {
    int json, all;
} inspect_args;

static const slm_opt inspect_opts[] = {
    OPT_INCLUDE_AS(cli_json_table, inspect_args, json, "machine-readable output (one JSON object)"),
    OPT_FLAG(0, "all", inspect_args, all, "print every array element"),
    OPT_END(),
};

const slm_cmd_doc doc_inspect = {
    .usage =
        "slm inspect FILE [--json] [--all]",
    .description =
        "Show what a model file holds. FILE is a GGUF file, a .safetensors file (or a\n"
        "sharded model.safetensors.index.json), or a Hugging Face model directory.\n"
        "Prints the metadata (long arrays abbreviated unless --all), the tensor table\n"
        "(name, shape, type, bytes) and totals (parameters, bits per weight).\n"
        "Every structure is validated first: a truncated or corrupt file is refused\n"
        "with one line naming the problem.\n",
    .opts = inspect_opts,
    .exit_codes =
        "0 ok, 2 usage, 3 bad input, 4 I/O error, 6 internal error",
    .examples = "slm inspect model.gguf\nslm inspect --json ./SmolLM-135M",
};

#define ABBREV 8

static void shape_text(char *buf, size_t cap, int n, const int64_t *d)
{
    size_t o = snprintf(buf, cap, "[");
    for (int i = 0; i < n && o < cap; i++)
        o += snprintf(buf + o, cap - o, "%s%" PRId64, i ? ", " : "", d[i]);
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
}

/* one scalar or array element of a GGUF kv as JSON */
static cJSON *kv_elem_json(const gguf_kv *kv, uint64_t i, uint32_t t)
{
    gguf_str s;
    if (t == GGUF_T_STRING) {
        if (gguf_arr_str(kv, i, &s))
            return cJSON_CreateNull();
        char *z = strndup(s.ptr, s.len);
        cJSON *j = cJSON_CreateString(z ? z : "");
        free(z);
        return j;
    }
    if (t == GGUF_T_BOOL)
        return cJSON_CreateBool(gguf_arr_num(kv, i) != 0);
    return cJSON_CreateNumber(gguf_arr_num(kv, i));
}

static void print_elem(const gguf_kv *kv, uint64_t i, uint32_t t)
{
    gguf_str s;
    if (t == GGUF_T_STRING) {
        if (gguf_arr_str(kv, i, &s)) {
            fputs("?", stdout);
            return;
        }
        putchar('"');
        for (uint64_t k = 0; k < s.len; k++) {
            unsigned char c = (unsigned char)s.ptr[k];
            if (c == '"' || c == '\\')
                printf("\\%c", c);
            else if (c < 0x20)
                printf("\\x%02x", c);
            else
                putchar(c);
        }
        putchar('"');
    } else if (t == GGUF_T_BOOL) {
        fputs(gguf_arr_num(kv, i) != 0 ? "true" : "false", stdout);
    } else if (t == GGUF_T_FLOAT32 || t == GGUF_T_FLOAT64) {
        printf("%.9g", gguf_arr_num(kv, i));
    } else {
        printf("%.0f", gguf_arr_num(kv, i));
    }
}

static int inspect_gguf(const char *path, int json, int all)
{
    slm_err err = {0};
    gguf_file *f;
    if (gguf_open(path, &f, &err))
        return cli_fail_err("inspect", &err);
    uint64_t params = 0, bytes = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        params += f->tensors[i].n_elems;
        bytes += f->tensors[i].nbytes;
    }
    double bpw = params ? 8.0 * (double)bytes / (double)params : 0;
    if (json) {
        cJSON *o = cJSON_CreateObject(), *md = cJSON_CreateObject(), *ts = cJSON_CreateArray();
        cJSON_AddStringToObject(o, "file", path);
        cJSON_AddStringToObject(o, "format", "gguf");
        cJSON_AddNumberToObject(o, "version", f->version);
        cJSON_AddNumberToObject(o, "alignment", f->alignment);
        for (uint64_t i = 0; i < f->n_kv; i++) {
            const gguf_kv *kv = &f->kv[i];
            if (kv->type == GGUF_T_ARRAY) {
                cJSON *a = cJSON_CreateArray();
                uint64_t n = all ? kv->arr_n : (kv->arr_n < ABBREV ? kv->arr_n : ABBREV);
                for (uint64_t k = 0; k < n; k++)
                    cJSON_AddItemToArray(a, kv_elem_json(kv, k, kv->arr_type));
                if (!all && kv->arr_n > ABBREV) {
                    cJSON *w = cJSON_CreateObject();
                    cJSON_AddStringToObject(w, "type", gguf_vtype_name(kv->arr_type));
                    cJSON_AddNumberToObject(w, "count", (double)kv->arr_n);
                    cJSON_AddItemToObject(w, "first", a);
                    cJSON_AddItemToObject(md, kv->key, w);
                } else {
                    cJSON_AddItemToObject(md, kv->key, a);
                }
            } else {
                cJSON_AddItemToObject(md, kv->key, kv_elem_json(kv, 0, kv->type));
            }
        }
        cJSON_AddItemToObject(o, "metadata", md);
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const gguf_tensor *t = &f->tensors[i];
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "name", t->name);
            cJSON *sh = cJSON_CreateArray();
            for (uint32_t d = 0; d < t->n_dims; d++)
                cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->ne[d]));
            cJSON_AddItemToObject(j, "shape", sh);
            cJSON_AddStringToObject(j, "type", slm_type_name(t->type));
            cJSON_AddNumberToObject(j, "offset", (double)t->offset);
            cJSON_AddNumberToObject(j, "bytes", (double)t->nbytes);
            cJSON_AddItemToArray(ts, j);
        }
        cJSON_AddItemToObject(o, "tensors", ts);
        cJSON_AddNumberToObject(o, "n_tensors", (double)f->n_tensors);
        cJSON_AddNumberToObject(o, "parameters", (double)params);
        cJSON_AddNumberToObject(o, "tensor_bytes", (double)bytes);
        cJSON_AddNumberToObject(o, "file_bytes", (double)f->size);
        cJSON_AddNumberToObject(o, "bits_per_weight", bpw);
        char *s = cJSON_PrintUnformatted(o);
        puts(s);
        free(s);
        cJSON_Delete(o);
        gguf_close(f);
        return 0;
    }
    printf("%s: GGUF v%u, %" PRIu64 " metadata keys, %" PRIu64 " tensors, alignment %u, %" PRIu64 " bytes\n\n", path,
           f->version, f->n_kv, f->n_tensors, f->alignment, f->size);
    printf("metadata:\n");
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        printf("  %-44s ", kv->key);
        if (kv->type == GGUF_T_ARRAY) {
            uint64_t n = all ? kv->arr_n : (kv->arr_n < ABBREV ? kv->arr_n : ABBREV);
            printf("%s[%" PRIu64 "] [", gguf_vtype_name(kv->arr_type), kv->arr_n);
            for (uint64_t k = 0; k < n; k++) {
                if (k)
                    fputs(", ", stdout);
                print_elem(kv, k, kv->arr_type);
            }
            printf("%s]\n", n < kv->arr_n ? ", ..." : "");
        } else {
            printf("%-8s ", gguf_vtype_name(kv->type));
            print_elem(kv, 0, kv->type);
            putchar('\n');
        }
    }
    printf("\ntensors:\n  %-36s %-22s %-6s %12s\n", "name", "shape", "type", "bytes");
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        char sh[96];
        shape_text(sh, sizeof sh, (int)t->n_dims, t->ne);
        printf("  %-36s %-22s %-6s %12" PRIu64 "\n", t->name, sh, slm_type_name(t->type), t->nbytes);
    }
    printf("\ntotal: %" PRIu64 " tensors, %" PRIu64 " parameters (%.2fM), %" PRIu64 " bytes of tensors, %.2f bits per weight\n",
           f->n_tensors, params, params / 1e6, bytes, bpw);
    gguf_close(f);
    return 0;
}

static int inspect_safetensors(const char *path, int json, const hf_config *cfg)
{
    slm_err err = {0};
    st_model *m;
    if (st_open(path, &m, &err))
        return cli_fail_err("inspect", &err);
    uint64_t params = 0, bytes = 0;
    size_t n = st_count(m);
    for (size_t i = 0; i < n; i++) {
        params += st_get(m, i)->n_elems;
        bytes += st_get(m, i)->nbytes;
    }
    double bpw = params ? 8.0 * (double)bytes / (double)params : 0;
    if (json) {
        cJSON *o = cJSON_CreateObject(), *ts = cJSON_CreateArray();
        cJSON_AddStringToObject(o, "file", path);
        cJSON_AddStringToObject(o, "format", cfg ? "hf" : "safetensors");
        if (cfg) {
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "architecture", cfg->hf_arch);
            cJSON_AddStringToObject(c, "gguf_architecture", cfg->gguf_arch);
            cJSON_AddNumberToObject(c, "n_embd", cfg->n_embd);
            cJSON_AddNumberToObject(c, "n_layer", cfg->n_layer);
            cJSON_AddNumberToObject(c, "n_head", cfg->n_head);
            cJSON_AddNumberToObject(c, "n_head_kv", cfg->n_head_kv);
            cJSON_AddNumberToObject(c, "n_ff", cfg->n_ff);
            cJSON_AddNumberToObject(c, "n_ctx", cfg->n_ctx);
            cJSON_AddNumberToObject(c, "n_vocab", cfg->n_vocab);
            cJSON_AddBoolToObject(c, "tied_embeddings", cfg->tie_embeddings);
            cJSON_AddItemToObject(o, "config", c);
        }
        for (size_t i = 0; i < n; i++) {
            const st_tensor *t = st_get(m, i);
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "name", t->name);
            cJSON *sh = cJSON_CreateArray();
            for (int d = 0; d < t->n_dims; d++)
                cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
            cJSON_AddItemToObject(j, "shape", sh);
            cJSON_AddStringToObject(j, "type", slm_type_name(t->dtype));
            cJSON_AddNumberToObject(j, "bytes", (double)t->nbytes);
            cJSON_AddItemToArray(ts, j);
        }
        cJSON_AddItemToObject(o, "tensors", ts);
        cJSON_AddNumberToObject(o, "n_tensors", (double)n);
        cJSON_AddNumberToObject(o, "parameters", (double)params);
        cJSON_AddNumberToObject(o, "tensor_bytes", (double)bytes);
        cJSON_AddNumberToObject(o, "bits_per_weight", bpw);
        char *s = cJSON_PrintUnformatted(o);
        puts(s);
        free(s);
        cJSON_Delete(o);
        st_close(m);
        return 0;
    }
    if (cfg)
        printf("%s: Hugging Face model, %s (GGUF architecture %s): n_embd %d, n_layer %d, n_head %d/%d kv, n_ff %d, "
               "n_ctx %d, n_vocab %d%s\n\n",
               path, cfg->hf_arch, cfg->gguf_arch, cfg->n_embd, cfg->n_layer, cfg->n_head, cfg->n_head_kv, cfg->n_ff,
               cfg->n_ctx, cfg->n_vocab, cfg->tie_embeddings ? ", tied embeddings" : "");
    else
        printf("%s: safetensors, %zu tensors\n\n", path, n);
    printf("tensors (PyTorch shape order):\n  %-48s %-16s %-5s %12s\n", "name", "shape", "type", "bytes");
    for (size_t i = 0; i < n; i++) {
        const st_tensor *t = st_get(m, i);
        char sh[96];
        shape_text(sh, sizeof sh, t->n_dims, t->shape);
        printf("  %-48s %-16s %-5s %12" PRIu64 "\n", t->name, sh, slm_type_name(t->dtype), t->nbytes);
    }
    printf("\ntotal: %zu tensors, %" PRIu64 " parameters (%.2fM), %" PRIu64 " bytes, %.2f bits per weight\n", n,
           params, params / 1e6, bytes, bpw);
    st_close(m);
    return 0;
}

int cmd_inspect(int argc, char **argv)
{
    inspect_args a = {0};
    int ai = slm_opt_parse("inspect", inspect_opts, argc, argv, &a);
    if (ai < 0)
        return -ai;
    if (ai != argc - 1)
        return cli_usage("inspect", ai >= argc ? "missing FILE" : "expected one FILE");
    const char *path = argv[ai];
    int json = a.json, all = a.all;
    struct stat st;
    if (stat(path, &st) != 0)
        return cli_fail("inspect", SLM_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        slm_err err = {0};
        hf_config cfg;
        if (hf_config_load(path, &cfg, &err))
            return cli_fail_err("inspect", &err);
        return inspect_safetensors(path, json, &cfg);
    }
    if (!S_ISREG(st.st_mode)) /* a FIFO would block the open below */
        return cli_fail("inspect", SLM_EIO, "%s: not a regular file", path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return cli_fail("inspect", SLM_EIO, "%s: cannot open: %s", path, strerror(errno));
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got == 4 && !memcmp(magic, "GGUF", 4))
        return inspect_gguf(path, json, all);
    size_t n = strlen(path);
    if ((n > 12 && !strcmp(path + n - 12, ".safetensors")) || (n > 5 && !strcmp(path + n - 5, ".json")))
        return inspect_safetensors(path, json, NULL);
    return cli_fail("inspect", SLM_EINPUT, "%s: not a GGUF file (bad magic) and not a .safetensors file", path);
}
