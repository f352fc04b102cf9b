/* tools/quantize.c — `slm quantize`: GGUF -> GGUF with a llama.cpp recipe (Q4_K_M, ...). */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "pipeline.h"
#include "cli.h"
#include "formats.h"
#include "libquant.h"

#define C "quantize"

const char help_quantize[] =
    "usage: slm quantize IN.gguf OUT.gguf TYPE [options]\n"
    "\n"
    "Quantize a GGUF model with one of llama.cpp's recipes; every tensor gets the type\n"
    "llama-quantize would give it (output.weight Q6_K for k-quant recipes, attn_v and\n"
    "ffn_down bumped by layer position, 1-D tensors and norms kept), so sizes compare.\n"
    "TYPE: Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K Q8_0 Q4_0 Q4_1\n"
    "      Q5_0 Q5_1 F16 BF16 F32 (aliases Q3_K, Q4_K, Q5_K = the _M recipes).\n"
    "Metadata is copied; general.file_type is set to llama.cpp's value for TYPE.\n"
    "Rows are quantized independently, so the output bytes are the same for any -t.\n"
    "The output is written to a temp file, synced and renamed: never a partial OUT.\n"
    "\n"
    "options:\n"
    "  -t, --threads N              threads (default: physical cores)\n"
    "      --pure                   every quantizable tensor gets TYPE's base type (no mix);\n"
    "                               refuse a tensor whose row length does not fit it\n"
    "      --tensor-type PAT=T      tensors whose name matches the regular expression PAT\n"
    "                               get type T (f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_K\n"
    "                               q3_K q4_K q5_K q6_K); first match wins; repeatable\n"
    "      --output-tensor-type T   type of output.weight\n"
    "      --token-embedding-type T type of token_embd.weight\n"
    "      --allow-requantize       accept already-quantized input (dequantized, then\n"
    "                               quantized again: errors add up)\n"
    "      --dry-run                print the types and the resulting size; write nothing\n"
    "      --stats                  per-tensor RMSE and max |error| of the round trip\n"
    "      --json                   JSON summary on stdout instead of the table\n"
    "\n"
    "calibration (see docs/calibration.md):\n"
    "      --imatrix FILE           importance matrix (slm imatrix or llama-imatrix: GGUF or\n"
    "                               legacy .dat) weighting every quantized tensor's error\n"
    "      --include-weights NAME   use calibration only for tensors whose name contains NAME\n"
    "                               (repeatable)\n"
    "      --exclude-weights NAME   no calibration for tensors whose name contains NAME (repeatable)\n"
    "      --gptq                   GPTQ error compensation for the weights of every product\n"
    "                               (blk.* and output.weight), layer by layer; needs -f\n"
    "  -f, --file FILE              calibration text for --gptq\n"
    "  -c, --ctx-size N             calibration chunk length in tokens (default 512, at most the\n"
    "                               model's context)\n"
    "      --chunks N               use at most N calibration chunks (default: all)\n"
    "      --gptq-damp X            damping: X * mean(diag H) added to H's diagonal (default 0.01)\n"
    "      --gptq-block N           lazy-update block in columns (default 128)\n"
    "      --act-order              quantize blocks (and columns inside them) by decreasing\n"
    "                               activation energy (diag H)\n"
    "      --gptq-exact-pass1       the first pass of each block on the original weights\n"
    "                               (default: their Q8_0 copies: faster, KLD within noise)\n"
    "  -h, --help                   this help\n"
    "\n"
    "A row length that is not a multiple of the chosen type's block falls back to a\n"
    "smaller-block type as llama.cpp does (q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0,\n"
    "q2_K/q3_K -> q4_0, F16 when even 32 does not fit), with a note on stderr.\n"
    "\n"
    "exit codes: 0 ok, 2 usage (bad option, unknown type name, bad pattern),\n"
    "            3 bad input (corrupt file, quantized input without --allow-requantize,\n"
    "            --pure with an incompatible row length), 4 I/O error, 6 internal error\n";

/* Storage types accepted by --tensor-type and friends. */
static int parse_type(const char *s, uint32_t *out)
{
    const slm_qtraits *t = slm_qtraits_by_name(s);
    if (!t || t->type == 9 /* q8_1 */ || t->type == 15 /* q8_K */) return -1;
    *out = t->type;
    return 0;
}

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

int cmd_quantize(int argc, char **argv)
{
    enum { O_PURE = 256, O_TT, O_OUT, O_EMB, O_REQ, O_DRY, O_STATS, O_JSON, O_IMAT, O_INCW, O_EXCW, O_GPTQ, O_DAMP,
           O_GBLK, O_ACT, O_CHUNKS, O_EXACT1 };
    static const struct option opts[] = {
        {"threads", required_argument, 0, 't'}, {"pure", no_argument, 0, O_PURE},
        {"tensor-type", required_argument, 0, O_TT}, {"output-tensor-type", required_argument, 0, O_OUT},
        {"token-embedding-type", required_argument, 0, O_EMB}, {"allow-requantize", no_argument, 0, O_REQ},
        {"dry-run", no_argument, 0, O_DRY}, {"stats", no_argument, 0, O_STATS}, {"json", no_argument, 0, O_JSON},
        {"imatrix", required_argument, 0, O_IMAT}, {"include-weights", required_argument, 0, O_INCW},
        {"exclude-weights", required_argument, 0, O_EXCW}, {"gptq", no_argument, 0, O_GPTQ},
        {"file", required_argument, 0, 'f'}, {"ctx-size", required_argument, 0, 'c'},
        {"chunks", required_argument, 0, O_CHUNKS}, {"gptq-damp", required_argument, 0, O_DAMP},
        {"gptq-block", required_argument, 0, O_GBLK}, {"act-order", no_argument, 0, O_ACT},
        {"gptq-exact-pass1", no_argument, 0, O_EXACT1},
        {0, 0, 0, 0}};
    const char *imatrix_path = NULL;
    const char *incw[64], *excw[64];
    int n_incw = 0, n_excw = 0, use_gptq = 0;
    gptq_opts go = { NULL, 512, 0, 1, 0, { 0.01f, 128, 0 }, 0, NULL, NULL };
    int threads = cli_default_threads(), pure = 0, requant = 0, dry = 0, stats = 0, json = 0, c;
    slm_recipe_opts ro = { 0, -1, -1, NULL, 0 };
    slm_tensor_rule *rules = NULL;
    int n_rules = 0, rc = 0;
    long long v;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":t:f:c:", opts, NULL)) != -1) {
        uint32_t ty;
        switch (c) {
        case 't':
            if (cli_parse_int(optarg, 1, 256, &v)) {
                free(rules);
                return cli_usage(C, "-t needs a thread count from 1 to 256, got '%s'", optarg);
            }
            threads = (int)v;
            break;
        case O_PURE: pure = 1; break;
        case O_IMAT: imatrix_path = optarg; break;
        case O_INCW:
        case O_EXCW:
            if ((c == O_INCW ? n_incw : n_excw) == 64) { free(rules); return cli_usage(C, "at most 64 --include-weights / --exclude-weights"); }
            if (c == O_INCW) incw[n_incw++] = optarg; else excw[n_excw++] = optarg;
            break;
        case O_GPTQ: use_gptq = 1; break;
        case O_ACT: go.p.act_order = 1; break;
        case O_EXACT1: go.exact_pass1 = 1; break;
        case 'f': go.calib = optarg; break;
        case 'c':
            if (cli_parse_int(optarg, 16, 1 << 20, &v)) { free(rules); return cli_usage(C, "-c wants a chunk length from 16 to 1048576, got '%s'", optarg); }
            go.n_ctx = (int)v;
            break;
        case O_CHUNKS:
            if (cli_parse_int(optarg, 1, 1 << 30, &v)) { free(rules); return cli_usage(C, "--chunks wants a positive count, got '%s'", optarg); }
            go.max_chunks = (int)v;
            break;
        case O_GBLK:
            if (cli_parse_int(optarg, 1, 1 << 16, &v)) { free(rules); return cli_usage(C, "--gptq-block wants a column count from 1 to 65536, got '%s'", optarg); }
            go.p.block = (int)v;
            break;
        case O_DAMP: {
            double dv;
            if (cli_parse_double(optarg, &dv) || !(dv > 0) || dv > 10) { free(rules); return cli_usage(C, "--gptq-damp wants a number in (0, 10], got '%s'", optarg); }
            go.p.damp = (float)dv;
            break;
        }
        case O_REQ: requant = 1; break;
        case O_DRY: dry = 1; break;
        case O_STATS: stats = 1; break;
        case O_JSON: json = 1; break;
        case O_OUT:
        case O_EMB:
            if (parse_type(optarg, &ty)) {
                free(rules);
                return cli_usage(C, "unknown tensor type '%s' for %s", optarg,
                                 c == O_OUT ? "--output-tensor-type" : "--token-embedding-type");
            }
            if (c == O_OUT) ro.output_type = ty; else ro.token_embd_type = ty;
            break;
        case O_TT: {
            char *eq = strrchr(optarg, '=');
            char msg[256];
            if (!eq || eq == optarg) {
                free(rules);
                return cli_usage(C, "--tensor-type needs PATTERN=TYPE, got '%s'", optarg);
            }
            *eq = 0;
            if (parse_type(eq + 1, &ty)) {
                free(rules);
                return cli_usage(C, "unknown tensor type '%s' in --tensor-type %s=%s", eq + 1, optarg, eq + 1);
            }
            if (slm_recipe_check_pattern(optarg, msg, sizeof msg)) {
                free(rules);
                return cli_usage(C, "bad --tensor-type pattern '%s': %s", optarg, msg);
            }
            slm_tensor_rule *nr = realloc(rules, sizeof *rules * (n_rules + 1));
            if (!nr) { free(rules); return cli_fail(C, SLM_EINTERNAL, "out of memory"); }
            rules = nr;
            rules[n_rules++] = (slm_tensor_rule){ optarg, ty };
            break;
        }
        case ':': free(rules); return cli_usage(C, "option '%s' needs a value", argv[optind - 1]);
        default: free(rules); return cli_usage(C, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 3) {
        free(rules);
        return cli_usage(C, argc - optind < 3 ? "expected IN.gguf OUT.gguf TYPE" : "too many arguments (expected IN.gguf OUT.gguf TYPE)");
    }
    const char *in = argv[optind], *out = argv[optind + 1], *tname = argv[optind + 2];
    int ftype = slm_recipe_by_name(tname);
    if (ftype < 0) {
        char names[256] = "";
        for (const char *const *n = slm_recipe_names(); *n; n++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", names[0] ? " " : "", *n);
        free(rules);
        return cli_usage(C, "unknown quantization type '%s' (one of: %s)", tname, names);
    }
    if (use_gptq && !go.calib) { free(rules); return cli_usage(C, "--gptq needs a calibration text (-f FILE)"); }
    if (!use_gptq && go.calib) { free(rules); return cli_usage(C, "-f is the calibration text of --gptq; pass --gptq too"); }
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
        .n_excw = n_excw, .gptq = use_gptq, .go = go, .note = q_note, .note_user = &json,
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
        cJSON_AddStringToObject(o, "type", slm_recipe_name(ftype));
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
               dry ? "dry run (nothing written)" : out, in, slm_recipe_name(ftype), g->size / 1048576.0,
               out_size / 1048576.0, out_size, n_quant, secs);
    }
    slm_pl_quant_result_free(&res);
    free(rules);
    return 0;
}
