/* api/inspect.c — what a GGUF, a safetensors file or a Hugging Face model directory holds,
 * described as text or as one JSON object (what `slm inspect` prints). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "pipeline.h"

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

static void print_elem(FILE *o, const gguf_kv *kv, uint64_t i, uint32_t t)
{
    gguf_str s;
    if (t == GGUF_T_STRING) {
        if (gguf_arr_str(kv, i, &s)) {
            fputs("?", o);
            return;
        }
        fputc('"', o);
        for (uint64_t k = 0; k < s.len; k++) {
            unsigned char c = (unsigned char)s.ptr[k];
            if (c == '"' || c == '\\')
                fprintf(o, "\\%c", c);
            else if (c < 0x20)
                fprintf(o, "\\x%02x", c);
            else
                fputc(c, o);
        }
        fputc('"', o);
    } else if (t == GGUF_T_BOOL) {
        fputs(gguf_arr_num(kv, i) != 0 ? "true" : "false", o);
    } else if (t == GGUF_T_FLOAT32 || t == GGUF_T_FLOAT64) {
        fprintf(o, "%.9g", gguf_arr_num(kv, i));
    } else {
        fprintf(o, "%.0f", gguf_arr_num(kv, i));
    }
}

static int inspect_gguf(FILE *o, const char *path, int json, int all, slm_err *err)
{
    gguf_file *f;
    int rc = gguf_open(path, &f, err);
    if (rc)
        return rc;
    uint64_t params = 0, bytes = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        params += f->tensors[i].n_elems;
        bytes += f->tensors[i].nbytes;
    }
    double bpw = params ? 8.0 * (double)bytes / (double)params : 0;
    if (json) {
        cJSON *jo = cJSON_CreateObject(), *md = cJSON_CreateObject(), *ts = cJSON_CreateArray();
        cJSON_AddStringToObject(jo, "file", path);
        cJSON_AddStringToObject(jo, "format", "gguf");
        cJSON_AddNumberToObject(jo, "version", f->version);
        cJSON_AddNumberToObject(jo, "alignment", f->alignment);
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
        cJSON_AddItemToObject(jo, "metadata", md);
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
        cJSON_AddItemToObject(jo, "tensors", ts);
        cJSON_AddNumberToObject(jo, "n_tensors", (double)f->n_tensors);
        cJSON_AddNumberToObject(jo, "parameters", (double)params);
        cJSON_AddNumberToObject(jo, "tensor_bytes", (double)bytes);
        cJSON_AddNumberToObject(jo, "file_bytes", (double)f->size);
        cJSON_AddNumberToObject(jo, "bits_per_weight", bpw);
        char *s = cJSON_PrintUnformatted(jo);
        fprintf(o, "%s\n", s);
        free(s);
        cJSON_Delete(jo);
        gguf_close(f);
        return 0;
    }
    fprintf(o, "%s: GGUF v%u, %" PRIu64 " metadata keys, %" PRIu64 " tensors, alignment %u, %" PRIu64 " bytes\n\n", path,
           f->version, f->n_kv, f->n_tensors, f->alignment, f->size);
    fprintf(o, "metadata:\n");
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        fprintf(o, "  %-44s ", kv->key);
        if (kv->type == GGUF_T_ARRAY) {
            uint64_t n = all ? kv->arr_n : (kv->arr_n < ABBREV ? kv->arr_n : ABBREV);
            fprintf(o, "%s[%" PRIu64 "] [", gguf_vtype_name(kv->arr_type), kv->arr_n);
            for (uint64_t k = 0; k < n; k++) {
                if (k)
                    fputs(", ", o);
                print_elem(o, kv, k, kv->arr_type);
            }
            fprintf(o, "%s]\n", n < kv->arr_n ? ", ..." : "");
        } else {
            fprintf(o, "%-8s ", gguf_vtype_name(kv->type));
            print_elem(o, kv, 0, kv->type);
            fputc('\n', o);
        }
    }
    fprintf(o, "\ntensors:\n  %-36s %-22s %-6s %12s\n", "name", "shape", "type", "bytes");
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        char sh[96];
        shape_text(sh, sizeof sh, (int)t->n_dims, t->ne);
        fprintf(o, "  %-36s %-22s %-6s %12" PRIu64 "\n", t->name, sh, slm_type_name(t->type), t->nbytes);
    }
    fprintf(o, "\ntotal: %" PRIu64 " tensors, %" PRIu64 " parameters (%.2fM), %" PRIu64 " bytes of tensors, %.2f bits per weight\n",
           f->n_tensors, params, params / 1e6, bytes, bpw);
    gguf_close(f);
    return 0;
}

static int inspect_safetensors(FILE *o, const char *path, int json, const hf_config *cfg, slm_err *err)
{
    st_model *m;
    int rc = st_open(path, &m, err);
    if (rc)
        return rc;
    uint64_t params = 0, bytes = 0;
    size_t n = st_count(m);
    for (size_t i = 0; i < n; i++) {
        params += st_get(m, i)->n_elems;
        bytes += st_get(m, i)->nbytes;
    }
    double bpw = params ? 8.0 * (double)bytes / (double)params : 0;
    if (json) {
        cJSON *jo = cJSON_CreateObject(), *ts = cJSON_CreateArray();
        cJSON_AddStringToObject(jo, "file", path);
        cJSON_AddStringToObject(jo, "format", cfg ? "hf" : "safetensors");
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
            cJSON_AddItemToObject(jo, "config", c);
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
        cJSON_AddItemToObject(jo, "tensors", ts);
        cJSON_AddNumberToObject(jo, "n_tensors", (double)n);
        cJSON_AddNumberToObject(jo, "parameters", (double)params);
        cJSON_AddNumberToObject(jo, "tensor_bytes", (double)bytes);
        cJSON_AddNumberToObject(jo, "bits_per_weight", bpw);
        char *s = cJSON_PrintUnformatted(jo);
        fprintf(o, "%s\n", s);
        free(s);
        cJSON_Delete(jo);
        st_close(m);
        return 0;
    }
    if (cfg)
        fprintf(o, "%s: Hugging Face model, %s (GGUF architecture %s): n_embd %d, n_layer %d, n_head %d/%d kv, n_ff %d, "
               "n_ctx %d, n_vocab %d%s\n\n",
               path, cfg->hf_arch, cfg->gguf_arch, cfg->n_embd, cfg->n_layer, cfg->n_head, cfg->n_head_kv, cfg->n_ff,
               cfg->n_ctx, cfg->n_vocab, cfg->tie_embeddings ? ", tied embeddings" : "");
    else
        fprintf(o, "%s: safetensors, %zu tensors\n\n", path, n);
    fprintf(o, "tensors (PyTorch shape order):\n  %-48s %-16s %-5s %12s\n", "name", "shape", "type", "bytes");
    for (size_t i = 0; i < n; i++) {
        const st_tensor *t = st_get(m, i);
        char sh[96];
        shape_text(sh, sizeof sh, t->n_dims, t->shape);
        fprintf(o, "  %-48s %-16s %-5s %12" PRIu64 "\n", t->name, sh, slm_type_name(t->dtype), t->nbytes);
    }
    fprintf(o, "\ntotal: %zu tensors, %" PRIu64 " parameters (%.2fM), %" PRIu64 " bytes, %.2f bits per weight\n", n,
           params, params / 1e6, bytes, bpw);
    st_close(m);
    return 0;
}

/* Which reader FILE needs, by what it is: a directory (HF model), GGUF magic, or a name. */
static int inspect_any(FILE *o, const char *path, int json, int all, slm_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return slm_err_set(err, SLM_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        hf_config cfg;
        int rc = hf_config_load(path, &cfg, err);
        return rc ? rc : inspect_safetensors(o, path, json, &cfg, err);
    }
    if (!S_ISREG(st.st_mode)) /* a FIFO would block the open below */
        return slm_err_set(err, SLM_EIO, "%s: not a regular file", path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return slm_err_set(err, SLM_EIO, "%s: cannot open: %s", path, strerror(errno));
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got == 4 && !memcmp(magic, "GGUF", 4))
        return inspect_gguf(o, path, json, all, err);
    size_t n = strlen(path);
    if ((n > 12 && !strcmp(path + n - 12, ".safetensors")) || (n > 5 && !strcmp(path + n - 5, ".json")))
        return inspect_safetensors(o, path, json, NULL, err);
    return slm_err_set(err, SLM_EINPUT, "%s: not a GGUF file (bad magic) and not a .safetensors file", path);
}

int slm_pl_inspect(const char *path, int all, int json, char **out, size_t *len, slm_err *err)
{
    *out = NULL;
    *len = 0;
    FILE *o = open_memstream(out, len);
    if (!o)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    int rc = inspect_any(o, path, json, all, err);
    if (fclose(o) && !rc)
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory");
    if (rc) {
        free(*out);
        *out = NULL;
        *len = 0;
    }
    return rc;
}
