/* tools/quantize.c — `slm quantize`: GGUF -> GGUF with a llama.cpp recipe (Q4_K_M, ...). */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "pipeline.h"
#include "qsample.h"
#include "cli.h"

#define C "quantize"


static void fmt_shape(const gguf_tensor *t, char *buf, size_t n)
{
    int k = snprintf(buf, n, "[");
    for (uint32_t d = 0; d < t->n_dims && k < (int)n; d++)
        k += snprintf(buf + k, n - k, "%s%" PRId64, d ? ", " : "", t->ne[d]);
    if (k < (int)n) snprintf(buf + k, n - k, "]");
}

static void q_note(void *user, int warning, const char *msg)
{
    const int *json = user;
    if (warning)
        cli_warn(C, "%s", msg);
    else if (!*json)
        fprintf(stderr, "slm quantize: note: %s\n", msg);
}

static void q_log(void *user, const char *line)
{
    fprintf(stderr, "slm quantize: %s", line);
}

typedef struct quantize_args {
    int threads, pure, requant, dry, stats, json, gptq, act_order, data_free;
    int out_type, emb_type, n_ctx, chunks, block, self_chunks, self_seed, self_source;
    double damp;
    const char *imatrix, *calib;
    const char *incw[64], *excw[64];
    int n_incw, n_excw;
    slm_tensor_rule rules[256];
    int n_rules;
} quantize_args;

/* --output-tensor-type / --token-embedding-type T */
static int opt_type(const char *cmd, const char *arg, void *field, void *base)
{
    uint32_t ty;
    quantize_args *a = base;
    (void)a;
    if (slm_pl_tensor_type(arg, &ty))
        return cli_usage(cmd, "unknown tensor type '%s' for %s", arg,
                         field == &a->out_type ? "--output-tensor-type" : "--token-embedding-type");
    *(int *)field = (int)ty;
    return 0;
}

/* --tensor-type PATTERN=TYPE, in order (first match wins) */
static int opt_tensor_type(const char *cmd, const char *arg, void *field, void *base)
{
    quantize_args *a = base;
    char *eq = strrchr(arg, '='), msg[256];
    uint32_t ty;
    (void)field;
    if (!eq || eq == arg)
        return cli_usage(cmd, "--tensor-type needs PATTERN=TYPE, got '%s'", arg);
    if (slm_pl_tensor_type(eq + 1, &ty))
        return cli_usage(cmd, "unknown tensor type '%s' in --tensor-type %s", eq + 1, arg);
    *eq = 0; /* the pattern is the argument's head (argv stays alive) */
    if (slm_pl_recipe_check_pattern(arg, msg, sizeof msg))
        return cli_usage(cmd, "bad --tensor-type pattern '%s': %s", arg, msg);
    if (a->n_rules == 256)
        return cli_usage(cmd, "at most 256 --tensor-type rules");
    a->rules[a->n_rules++] = (slm_tensor_rule){arg, ty};
    return 0;
}

static const char *const data_free_modes[] = {"auto", "on", "off", NULL}; /* SLM_DATA_FREE_* order */

static const slm_opt quantize_opts[] = {
    OPT_INCLUDE(cli_threads_table, quantize_args, threads),
    OPT_FLAG(0, "pure", quantize_args, pure,
             "every quantizable tensor gets TYPE's base type (no mix);\n"
             "refuse a tensor whose row length does not fit it"),
    OPT_CALLBACK(0, "tensor-type", quantize_args, rules, "PAT=T", opt_tensor_type,
                 "tensors whose name matches the regular expression PAT\n"
                 "get type T (f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_K\n"
                 "q3_K q4_K q5_K q6_K iq4_nl iq4_xs tq1_0 tq2_0 iq3_xxs\n"
                 "iq3_s iq2_xxs iq2_xs iq2_s iq1_s iq1_m); first match wins;\n"
                 "repeatable"),
    OPT_CALLBACK(0, "output-tensor-type", quantize_args, out_type, "T", opt_type, "type of output.weight"),
    OPT_CALLBACK(0, "token-embedding-type", quantize_args, emb_type, "T", opt_type, "type of token_embd.weight"),
    OPT_FLAG(0, "allow-requantize", quantize_args, requant,
             "accept already-quantized input (dequantized, then\nquantized again: errors add up)"),
    OPT_FLAG(0, "dry-run", quantize_args, dry, "print the types and the resulting size; write nothing"),
    OPT_FLAG(0, "stats", quantize_args, stats, "per-tensor RMSE and max |error| of the round trip"),
    OPT_ENUM(0, "data-free", quantize_args, data_free, "MODE", data_free_modes,
             "without calibration data: auto (default) estimates the inputs'\nsecond moments from the weights "
             "(GPTQ with that H for llama\nmodels up to n_embd 512; cost grows as d^3); on: any width\nand family; "
             "off: the plain weight-only search\n(docs/quantization.md)"),
    OPT_INCLUDE_AS(cli_json_table, quantize_args, json, "JSON summary on stdout instead of the table"),
    OPT_GROUP("calibration (see docs/calibration.md):"),
    OPT_PATH(0, "imatrix", quantize_args, imatrix, "FILE",
             "importance matrix (slm imatrix or llama-imatrix: GGUF or\n"
             "legacy .dat) weighting every quantized tensor's error"),
    OPT_LIST(0, "include-weights", quantize_args, incw, n_incw, "NAME",
             "use calibration only for tensors whose name contains NAME\n(repeatable)"),
    OPT_LIST(0, "exclude-weights", quantize_args, excw, n_excw, "NAME",
             "no calibration for tensors whose name contains NAME (repeatable)"),
    OPT_FLAG(0, "gptq", quantize_args, gptq,
             "GPTQ error compensation for the weights of every product\n"
             "(blk.* and output.weight), layer by layer; needs -f"),
    OPT_PATH('f', "file", quantize_args, calib, "FILE", "calibration text for --gptq"),
    OPT_INT(0, "self-calibrate", quantize_args, self_chunks, "N", 1, 1 << 16,
            "no calibration data: GPTQ (implies --gptq) on N chunks of -c\n"
            "tokens that the model itself generates (BOS, then sampling\n"
            "at temperature 1, min-p 0.02; seeded, deterministic)"),
    OPT_INT(0, "self-seed", quantize_args, self_seed, "S", 0, 0x7fffffff,
            "seed of --self-calibrate's sampling (chunk i uses S + i;\ndefault 1)"),
    OPT_ENUM(0, "self-source", quantize_args, self_source, "SRC", qsample_source_names,
             "--self-calibrate's tokens: generate (default: the model\n"
             "samples its own text), uniform or unigram (drawn i.i.d.\n"
             "over the vocabulary, or by the tokenizer's scores; no\n"
             "generation: see docs/quantization.md)"),
    OPT_INT('c', "ctx-size", quantize_args, n_ctx, "N", 16, 1 << 20,
            "calibration chunk length in tokens (default 512, 128 with\n--self-calibrate; at most the model's context)"),
    OPT_INT(0, "chunks", quantize_args, chunks, "N", 1, 1 << 30, "use at most N calibration chunks (default: all)"),
    OPT_DOUBLE(0, "gptq-damp", quantize_args, damp, "X", 0, 10, SLM_OPT_LO_OPEN,
               "damping: X * mean(diag H) added to H's diagonal (default\n"
               "0.01; 0.1 for IQ1_S / IQ1_M)"),
    OPT_INT(0, "gptq-block", quantize_args, block, "N", 1, 1 << 16, "lazy-update block in columns (default 128)"),
    OPT_FLAG(0, "act-order", quantize_args, act_order,
             "quantize blocks (and columns inside them) by decreasing\nactivation energy (diag H)"),
    OPT_END(),
};

const slm_cmd_doc doc_quantize = {
    .usage =
        "slm quantize IN.gguf OUT.gguf TYPE [options]",
    .description =
        "Quantize a GGUF model with one of llama.cpp's recipes; every tensor gets the type\n"
        "llama-quantize would give it (output.weight Q6_K for k-quant recipes, attn_v and\n"
        "ffn_down bumped by layer position, 1-D tensors and norms kept), so sizes compare.\n"
        "TYPE: Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K Q8_0 Q4_0 Q4_1\n"
        "      Q5_0 Q5_1 IQ4_NL IQ4_XS IQ3_S IQ3_M IQ3_XS IQ3_XXS IQ2_XXS IQ2_XS IQ2_S IQ2_M\n"
        "      IQ1_S IQ1_M TQ1_0 TQ2_0 F16 BF16 F32 (aliases Q3_K, Q4_K, Q5_K = the _M recipes).\n"
        "IQ3_XXS, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S and IQ1_M tensors (bar token_embd and output)\n"
        "need importance data (--imatrix or --gptq), as llama-quantize refuses them without an\n"
        "imatrix; IQ2_S and IQ2_M use IQ3_S.\n"
        "Metadata is copied; general.file_type is set to llama.cpp's value for TYPE.\n"
        "The output bytes are the same for any -t.\n"
        "The output is written to a temp file, synced and renamed: never a partial OUT.\n",
    .opts = quantize_opts,
    .notes =
        "A row length that is not a multiple of the chosen type's block falls back to a\n"
        "smaller-block type as llama.cpp does (q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0,\n"
        "q2_K/q3_K/tq1_0/tq2_0 -> q4_0, iq4_xs/iq3_*/iq2_*/iq1_* -> iq4_nl, F16 when even 32\n"
        "does not fit),\n"
        "with a note on stderr.\n",
    .exit_codes =
        "0 ok, 2 usage (bad option, unknown type name, bad pattern),\n"
        "3 bad input (corrupt file, quantized input without --allow-requantize,\n"
        "--pure with an incompatible row length, a very low-bit type (IQ3_XXS, IQ2_*, IQ1_*)\n"
        "without --imatrix or --gptq),\n"
        "4 I/O error, 6 internal error",
    .examples = "slm quantize smol-f16.gguf smol-q4_k_m.gguf Q4_K_M\n"
                "slm quantize smol-f16.gguf smol-q4_k_m.gguf Q4_K_M --imatrix smol.imatrix --dry-run\n"
                "slm quantize smol-f16.gguf smol-q4_k_m.gguf Q4_K_M --self-calibrate 64",
};

int cmd_quantize(int argc, char **argv)
{
    quantize_args qa = {.threads = cli_default_threads(), .out_type = -1, .emb_type = -1, .n_ctx = 0, .damp = 0,
                       .block = 128, .self_seed = 1};
    int optind = slm_opt_parse(C, quantize_opts, argc, argv, &qa);
    if (optind < 0)
        return -optind;
    const char *imatrix_path = qa.imatrix;
    const char *const *incw = qa.incw, *const *excw = qa.excw;
    int n_incw = qa.n_incw, n_excw = qa.n_excw, use_gptq = qa.gptq || qa.self_chunks > 0;
    if (!qa.n_ctx) qa.n_ctx = qa.self_chunks > 0 ? 128 : 512;
    gptq_opts go = { qa.calib, qa.n_ctx, qa.chunks, 1, 0, { (float)qa.damp, qa.block, qa.act_order }, NULL, NULL, 0, 0, 0 };
    int threads = qa.threads, pure = qa.pure, requant = qa.requant, dry = qa.dry, stats = qa.stats, json = qa.json;
    slm_recipe_opts ro = { 0, -1, -1, NULL, 0 };
    if (qa.out_type >= 0)
        ro.output_type = (uint32_t)qa.out_type;
    if (qa.emb_type >= 0)
        ro.token_embd_type = (uint32_t)qa.emb_type;
    int n_rules = qa.n_rules, rc = 0;
    slm_tensor_rule *rules = n_rules ? malloc(sizeof *rules * (size_t)n_rules) : NULL;
    if (n_rules && !rules)
        return cli_fail(C, SLM_EINTERNAL, "out of memory");
    if (n_rules)
        memcpy(rules, qa.rules, sizeof *rules * (size_t)n_rules);
    if (argc - optind != 3) {
        free(rules);
        return cli_usage(C, argc - optind < 3 ? "expected IN.gguf OUT.gguf TYPE" : "too many arguments (expected IN.gguf OUT.gguf TYPE)");
    }
    const char *in = argv[optind], *out = argv[optind + 1], *tname = argv[optind + 2];
    int ftype = slm_pl_recipe_by_name(tname);
    if (ftype < 0) {
        char names[256] = "";
        for (const char *const *n = slm_pl_recipe_names(); *n; n++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", names[0] ? " " : "", *n);
        free(rules);
        return cli_usage(C, "unknown quantization type '%s' (one of: %s)", tname, names);
    }
    go.self_chunks = qa.self_chunks;
    go.self_seed = (uint64_t)qa.self_seed;
    go.self_source = qa.self_source;
    if (qa.self_source && !qa.self_chunks) { free(rules); return cli_usage(C, "--self-source chooses --self-calibrate's tokens; pass --self-calibrate N too"); }
    if (qa.self_chunks > 0 && go.calib) { free(rules); return cli_usage(C, "--self-calibrate generates its own calibration text; drop -f"); }
    if (qa.self_chunks > 0 && qa.chunks) { free(rules); return cli_usage(C, "--chunks limits -f's text; --self-calibrate N sets the chunk count itself"); }
    if (use_gptq && !go.calib && !go.self_chunks) { free(rules); return cli_usage(C, "--gptq needs a calibration text (-f FILE) or --self-calibrate N"); }
    if (!use_gptq && go.calib) { free(rules); return cli_usage(C, "-f is the calibration text of --gptq; pass --gptq too"); }
    if (qa.data_free != SLM_DATA_FREE_AUTO && (imatrix_path || use_gptq)) { free(rules); return cli_usage(C, "--data-free is for quantizing without --imatrix, --gptq or --self-calibrate"); }
    if ((n_incw || n_excw) && !imatrix_path && !use_gptq) { free(rules); return cli_usage(C, "--include-weights / --exclude-weights need --imatrix or --gptq"); }
    go.threads = threads;
    go.verbose = !json;
    ro.pure = pure;
    ro.rules = rules;
    ro.n_rules = n_rules;

    go.log = q_log;
    double t0 = cli_now();
    slm_err err = {0};
    cli_progress bar = {.label = C};
    slm_pl_quant_opts qo = {
        .in = in, .out = out, .ftype = ftype, .threads = threads, .pure = pure, .requant = requant, .dry = dry,
        .stats = stats, .ro = ro, .imatrix = imatrix_path, .incw = incw, .excw = excw, .n_incw = n_incw,
        .n_excw = n_excw, .gptq = use_gptq, .data_free = qa.data_free, .go = go, .note = q_note, .note_user = &json,
        .progress = cli_progress_phase, .progress_user = &bar,
    };
    slm_pl_quant_result res;
    if ((rc = slm_pl_quantize(&qo, &res, &err))) {
        free(rules);
        return cli_fail_err(C, &err);
    }
    double secs = cli_now() - t0;
    const gguf_file *g = res.g;
    const slm_pl_quant_tensor *plan = res.t;
    const uint64_t out_size = res.out_size, total_old = res.total_old, total_new = res.total_new,
                   n_quant = res.n_quant;

    /* report */
    if (json) {
        cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "tensors");
        cJSON_AddStringToObject(o, "input", in);
        cJSON_AddStringToObject(o, "output", out);
        cJSON_AddStringToObject(o, "type", slm_pl_recipe_name(ftype));
        cJSON_AddNumberToObject(o, "file_type", ftype);
        cJSON_AddBoolToObject(o, "dry_run", dry);
        cJSON_AddNumberToObject(o, "input_bytes", (double)g->size);
        cJSON_AddNumberToObject(o, "output_bytes", (double)out_size);
        cJSON_AddNumberToObject(o, "tensor_bytes_in", (double)total_old);
        cJSON_AddNumberToObject(o, "tensor_bytes_out", (double)total_new);
        cJSON_AddNumberToObject(o, "tensors_converted", (double)n_quant);
        cJSON_AddNumberToObject(o, "seconds", secs);
        cJSON_AddNumberToObject(o, "threads", threads);
        cJSON_AddNumberToObject(o, "peak_rss_kb", (double)cli_peak_rss_kb());
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const gguf_tensor *t = &g->tensors[i];
            cJSON *e = cJSON_CreateObject(), *sh = cJSON_AddArrayToObject(e, "shape");
            cJSON_AddStringToObject(e, "name", t->name);
            for (uint32_t d = 0; d < t->n_dims; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->ne[d]));
            cJSON_AddStringToObject(e, "from", slm_type_name(t->type) ? slm_type_name(t->type) : "?");
            cJSON_AddStringToObject(e, "to", slm_type_name(plan[i].type));
            cJSON_AddNumberToObject(e, "bytes_in", (double)t->nbytes);
            cJSON_AddNumberToObject(e, "bytes_out", (double)plan[i].new_bytes);
            if (plan[i].flags & SLM_RECIPE_FALLBACK) cJSON_AddBoolToObject(e, "fallback", 1);
            if (stats && !dry && plan[i].type != t->type) {
                cJSON_AddNumberToObject(e, "rmse", plan[i].rmse);
                cJSON_AddNumberToObject(e, "max_error", plan[i].maxerr);
                if (!isnan(plan[i].werr)) cJSON_AddNumberToObject(e, "weighted_mse", plan[i].werr);
            }
            cJSON_AddItemToArray(arr, e);
        }
        char *js = cJSON_PrintUnformatted(o);
        puts(js);
        free(js);
        cJSON_Delete(o);
    } else {
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const gguf_tensor *t = &g->tensors[i];
            char shape[96];
            fmt_shape(t, shape, sizeof shape);
            printf("[%4" PRIu64 "/%4" PRIu64 "] %-36s %-16s %6s -> %-6s %10.3f KiB -> %10.3f KiB", i + 1, g->n_tensors,
                   t->name, shape, slm_type_name(t->type) ? slm_type_name(t->type) : "?", slm_type_name(plan[i].type),
                   t->nbytes / 1024.0, plan[i].new_bytes / 1024.0);
            if (stats && !dry && plan[i].type != t->type) {
                printf("  rmse %.4g max %.4g", plan[i].rmse, plan[i].maxerr);
                if (!isnan(plan[i].werr)) printf(" wmse %.4g", plan[i].werr);
            }
            putchar('\n');
        }
        printf("%s: %s %s: %.2f MiB -> %.2f MiB (%" PRIu64 " bytes), %" PRIu64 " tensors converted, %.2f s\n",
               dry ? "dry run (nothing written)" : out, in, slm_pl_recipe_name(ftype), g->size / 1048576.0,
               out_size / 1048576.0, out_size, n_quant, secs);
    }
    slm_pl_quant_result_free(&res);
    free(rules);
    return 0;
}
