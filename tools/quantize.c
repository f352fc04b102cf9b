/* tools/quantize.c — `slm quantize`: GGUF -> GGUF with a llama.cpp recipe (Q4_K_M, ...). */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "calib.h"
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
    "      Q5_0 Q5_1 IQ4_NL IQ4_XS TQ1_0 TQ2_0 F16 BF16 F32 (aliases Q3_K, Q4_K, Q5_K =\n"
    "      the _M recipes).\n"
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
    "                               q3_K q4_K q5_K q6_K iq4_nl iq4_xs tq1_0 tq2_0); first\n"
    "                               match wins; repeatable\n"
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
    "q2_K/q3_K/tq1_0/tq2_0 -> q4_0, iq4_xs -> iq4_nl, F16 when even 32 does not fit),\n"
    "with a note on stderr.\n"
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

typedef struct {
    const gguf_tensor *src;
    uint32_t type;
    int flags, rule;
    uint64_t new_bytes;
    float *imp;            /* importance from --imatrix, or NULL */
    unsigned char *pre;    /* bytes already quantized (GPTQ), or NULL */
    double rmse, maxerr, werr; /* --stats */
} plan_t;

typedef struct {
    const gguf_tensor *t;
    uint32_t type;
    const float *imp;      /* per-column importance or NULL */
    const unsigned char *pre; /* already quantized bytes of row r0 (GPTQ), or NULL */
    int64_t r0, nr;        /* this worker's rows (absolute row index in the tensor) */
    unsigned char *dst;    /* output bytes of row r0 */
    int stats;
    double se, sx, we, wsum, maxe;
    int rc;
    int64_t bad_row, bad_col;  /* first non-finite source value (rc SLM_EINPUT) */
} job_t;

/* Convert one source row to float32 (any type libquant can dequantize). */
static int row_to_f32(const gguf_tensor *t, int64_t r, float *dst)
{
    const int64_t n = t->ne[0];
    const size_t rb = slm_type_row_bytes(t->type, (uint64_t)n);
    const unsigned char *p = (const unsigned char *)t->data + (size_t)r * rb;
    if (t->type == SLM_TYPE_F32) { memcpy(dst, p, (size_t)n * 4); return 0; }
    const slm_qtraits *q = slm_qtraits_get(t->type);
    if (!q || !q->dequantize_row) return -1;
    q->dequantize_row(p, dst, n);
    return 0;
}

static void *worker(void *arg)
{
    job_t *j = arg;
    const int64_t n = j->t->ne[0];
    const size_t rb = slm_type_row_bytes(j->type, (uint64_t)n);
    const slm_qtraits *q = slm_qtraits_get(j->type);
    float *x = malloc((size_t)n * 4), *y = j->stats ? malloc((size_t)n * 4) : NULL;
    float *ws = j->imp ? malloc((size_t)n * 4) : NULL;
    j->se = j->sx = j->we = j->wsum = j->maxe = 0;
    j->rc = 0;
    j->bad_row = j->bad_col = -1;
    if (!x || (j->stats && !y) || (j->imp && !ws) || !q) { j->rc = SLM_EINTERNAL; goto out; }
    for (int64_t r = 0; r < j->nr; r++) {
        unsigned char *d = j->dst + (size_t)r * rb;
        if (row_to_f32(j->t, j->r0 + r, x)) { j->rc = SLM_EINPUT; goto out; }
        unsigned nonfinite = 0; /* exponent all ones: NaN or infinity (an OR reduction: vectorizes) */
        for (int64_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &x[i], sizeof u);
            nonfinite |= (~u & 0x7f800000u) == 0;
        }
        if (nonfinite) {
            for (int64_t i = 0; i < n; i++)
                if (!isfinite(x[i])) { j->bad_row = j->r0 + r; j->bad_col = i; break; }
            j->rc = SLM_EINPUT;
            goto out;
        }
        if (j->type == SLM_TYPE_F32) memcpy(d, x, (size_t)n * 4);
        else if (j->pre) memcpy(d, j->pre + (size_t)r * rb, rb);
        else if (j->imp) slm_quantize_rows_imatrix(j->type, x, d, 1, n, j->imp, ws);
        else q->quantize_row(x, d, n, NULL);
        if (j->stats) {
            if (j->type == SLM_TYPE_F32) memcpy(y, x, (size_t)n * 4);
            else q->dequantize_row(d, y, n);
            for (int64_t i = 0; i < n; i++) {
                double e = (double)x[i] - y[i];
                j->se += e * e;
                j->sx += (double)x[i] * x[i];
                if (fabs(e) > j->maxe) j->maxe = fabs(e);
                if (j->imp) { j->we += j->imp[i] * e * e; j->wsum += j->imp[i]; }
            }
        }
    }
out:
    free(x);
    free(y);
    free(ws);
    return NULL;
}

static void fmt_shape(const gguf_tensor *t, char *buf, size_t n)
{
    int k = snprintf(buf, n, "[");
    for (uint32_t d = 0; d < t->n_dims && k < (int)n; d++)
        k += snprintf(buf + k, n - k, "%s%" PRId64, d ? ", " : "", t->ne[d]);
    if (k < (int)n) snprintf(buf + k, n - k, "]");
}

/* llama-quantize's --include-weights / --exclude-weights: substrings of tensor names */
static int calib_selected(const char *name, const char *const *inc, int n_inc, const char *const *exc, int n_exc)
{
    for (int i = 0; i < n_exc; i++)
        if (strstr(name, exc[i])) return 0;
    if (!n_inc) return 1;
    for (int i = 0; i < n_inc; i++)
        if (strstr(name, inc[i])) return 1;
    return 0;
}

static int layer_of(const char *name)
{
    int l;
    if (sscanf(name, "blk.%d.", &l) == 1 && l >= 0) return l;
    return -1;
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
    gptq_opts go = { NULL, 512, 0, 1, 0, { 0.01f, 128, 0 }, 0 };
    int threads = cli_default_threads(), pure = 0, requant = 0, dry = 0, stats = 0, json = 0, c;
    slm_recipe_opts ro = { 0, -1, -1, NULL, 0 };
    slm_imatrix imat = {0};
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

    double t0 = cli_now();
    slm_err err = {0};
    gguf_file *g = NULL;
    if (gguf_open(in, &g, &err)) { free(rules); return cli_fail_err(C, &err); }

    /* model facts the rules depend on */
    slm_recipe_model m = { "", 0, 1, 0, 0, 0 };
    char archbuf[64] = "", key[128];
    gguf_str s;
    if (!gguf_get_str(g, "general.architecture", &s) && s.len < sizeof archbuf) {
        memcpy(archbuf, s.ptr, s.len);
        archbuf[s.len] = 0;
    }
    m.arch = archbuf;
    m.has_imatrix = imatrix_path != NULL; /* llama-quantize's has_imatrix (IQ4, Q4_0/Q5_0 ffn_down) */
    int64_t iv;
    snprintf(key, sizeof key, "%s.block_count", archbuf);
    if (!gguf_get_int(g, key, &iv) && iv > 0 && iv < 100000) m.n_layers = (int)iv;
    int64_t nh = 0, nkv = 0;
    snprintf(key, sizeof key, "%s.attention.head_count", archbuf);
    gguf_get_int(g, key, &nh);
    snprintf(key, sizeof key, "%s.attention.head_count_kv", archbuf);
    gguf_get_int(g, key, &nkv);
    if (nh > 0 && nkv > 0) m.n_gqa = (int)(nh / nkv);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const char *n = g->tensors[i].name;
        if (strstr(n, "attn_v.weight") || strstr(n, "attn_qkv.weight") || strstr(n, "attn_kv_b.weight")) m.n_attn_v++;
        if (!strcmp(n, "output.weight")) m.has_output = 1;
    }
    if (m.n_layers == 0) {
        /* no block_count: count the blocks */
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            int l = layer_of(g->tensors[i].name);
            if (l >= m.n_layers && l < 100000) m.n_layers = l + 1;
        }
    }

    /* the plan: a type per tensor, every refusal before anything is written */
    plan_t *plan = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *plan);
    int *hits = calloc(n_rules ? n_rules : 1, sizeof *hits);
    if (!plan || !hits) { rc = cli_fail(C, SLM_EINTERNAL, "out of memory"); goto done; }
    int attn_v_seen = 0;
    uint64_t total_old = 0, total_new = 0, n_quant = 0, work_elems = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        plan_t *p = &plan[i];
        p->src = t;
        p->type = slm_recipe_tensor_type(&m, t->name, (int)t->n_dims, t->ne, t->type, layer_of(t->name), ftype, &ro,
                                         &attn_v_seen, &p->flags, &p->rule);
        if (p->rule >= 0) hits[p->rule]++;
        if (p->flags & SLM_RECIPE_FALLBACK) {
            if (pure) {
                rc = cli_fail(C, SLM_EINPUT,
                              "%s: tensor '%s': row length %" PRId64 " is not a multiple of the block of the requested "
                              "type (--pure refuses the fallback to %s)",
                              in, t->name, t->ne[0], slm_type_name(p->type));
                goto done;
            }
            if (!json)
                fprintf(stderr, "slm quantize: note: %s: row length %" PRId64 " does not fit the recipe's block; using %s%s\n",
                        t->name, t->ne[0], slm_type_name(p->type),
                        p->flags & SLM_RECIPE_F16_FALLBACK ? " (no quantized type fits)" : "");
        }
        if (p->type != t->type) {
            const slm_qtraits *src = slm_qtraits_get(t->type), *dstq = slm_qtraits_get(p->type);
            if (!src || !dstq || !src->dequantize_row) {
                rc = cli_fail(C, SLM_EINPUT, "%s: tensor '%s': cannot convert %s to %s", in, t->name,
                              slm_type_name(t->type) ? slm_type_name(t->type) : "?", slm_type_name(p->type));
                goto done;
            }
            if (src->is_quant && !requant) {
                rc = cli_fail(C, SLM_EINPUT,
                              "%s: tensor '%s' is already quantized (%s); requantizing adds error: pass "
                              "--allow-requantize to dequantize and quantize again",
                              in, t->name, src->name);
                goto done;
            }
            if (t->ne[0] <= 0 || t->ne[0] > (1 << 28) || !slm_type_row_bytes(p->type, (uint64_t)t->ne[0])) {
                rc = cli_fail(C, SLM_EINPUT, "%s: tensor '%s': row length %" PRId64 " is not valid for %s", in,
                              t->name, t->ne[0], slm_type_name(p->type));
                goto done;
            }
            n_quant++;
            work_elems += t->n_elems;
        }
    }
    for (int r = 0; r < n_rules; r++)
        if (!hits[r]) cli_warn(C, "--tensor-type pattern '%s' matches no tensor", rules[r].pattern);

    /* calibration: which tensors, their importance (--imatrix), GPTQ */
    int n_imat_used = 0;
    if (imatrix_path) {
        if ((rc = slm_imatrix_read(imatrix_path, &imat, &err))) { cli_fail_err(C, &err); goto done; }
        for (size_t k = 0; k < imat.n; k++) {
            const slm_imatrix_entry *e = &imat.e[k];
            int64_t ti = gguf_find_tensor(g, e->name);
            if (ti < 0) {
                rc = cli_fail(C, SLM_EINPUT, "%s: entry '%s' names no tensor of %s: the imatrix was made for another model",
                              imatrix_path, e->name, in);
                goto done;
            }
            const gguf_tensor *t = &g->tensors[ti];
            if (e->n != t->ne[0] || (e->n_mat != 1 && e->n_mat != t->ne[2])) {
                rc = cli_fail(C, SLM_EINPUT,
                              "%s: entry '%s' has %" PRId64 " columns x %" PRId64 " matrices but the tensor has rows of %" PRId64
                              ": the imatrix was made for another model",
                              imatrix_path, e->name, e->n, e->n_mat, t->ne[0]);
                goto done;
            }
        }
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        if (plan[i].type == t->type || !calib_selected(t->name, incw, n_incw, excw, n_excw)) continue;
        const slm_imatrix_entry *e = imatrix_path ? slm_imatrix_find(&imat, t->name) : NULL;
        if (!e || e->n_mat != 1) continue;
        plan[i].imp = malloc(sizeof(float) * (size_t)e->n);
        if (!plan[i].imp) { rc = cli_fail(C, SLM_EINTERNAL, "out of memory"); goto done; }
        if (!slm_imatrix_mean(e, plan[i].imp)) { free(plan[i].imp); plan[i].imp = NULL; continue; }
        n_imat_used++;
    }
    if (imatrix_path && !n_imat_used)
        cli_warn(C, "%s: no entry of the imatrix applies to a tensor being quantized", imatrix_path);
    if (use_gptq && !dry) {
        gptq_tensor *gts = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *gts);
        size_t ng = 0;
        if (!gts) { rc = cli_fail(C, SLM_EINTERNAL, "out of memory"); goto done; }
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const gguf_tensor *t = &g->tensors[i];
            if (plan[i].type == t->type || !slm_qgrid_supported(plan[i].type) || t->n_dims != 2) continue;
            if (strncmp(t->name, "blk.", 4) && strcmp(t->name, "output.weight")) continue;
            if (!calib_selected(t->name, incw, n_incw, excw, n_excw)) continue;
            gts[ng++] = (gptq_tensor){ t, plan[i].type, plan[i].imp, NULL };
        }
        rc = gptq_run(in, &go, gts, ng, &err);
        for (size_t k = 0; k < ng; k++) {
            int64_t ti = gguf_find_tensor(g, gts[k].src->name);
            if (!rc && ti >= 0) plan[ti].pre = gts[k].out;
            else free(gts[k].out);
        }
        free(gts);
        if (rc) { cli_fail_err(C, &err); goto done; }
    }

    gguf_writer *w = gguf_writer_new();
    if (!w) { rc = cli_fail(C, SLM_EINTERNAL, "out of memory"); goto done; }
    int bad = 0;
    for (uint64_t k = 0; k < g->n_kv; k++) bad |= gguf_copy_kv(w, g, k);
    bad |= gguf_set_u32(w, "general.quantization_version", 2);
    bad |= gguf_set_u32(w, "general.file_type", (uint32_t)ftype);
    if (imatrix_path && n_imat_used) {
        /* llama-quantize's record of the imatrix */
        bad |= gguf_set_str(w, "quantize.imatrix.file", imatrix_path);
        if (imat.n_datasets) bad |= gguf_set_str(w, "quantize.imatrix.dataset", imat.datasets[0]);
        bad |= gguf_set_i32(w, "quantize.imatrix.entries_count", (int32_t)n_imat_used);
        if (imat.chunk_count) bad |= gguf_set_i32(w, "quantize.imatrix.chunks_count", (int32_t)imat.chunk_count);
    }
    for (uint64_t i = 0; i < g->n_tensors && !bad; i++) {
        const gguf_tensor *t = &g->tensors[i];
        int64_t ix = gguf_add_tensor(w, t->name, plan[i].type, t->n_dims, t->ne);
        if (ix < 0) bad = 1;
        else plan[i].new_bytes = gguf_writer_tensor_nbytes(w, (uint64_t)ix);
    }
    if (bad) {
        gguf_writer_free(w);
        rc = cli_fail(C, SLM_EINPUT, "%s: cannot describe the output (metadata or tensor infos rejected)", in);
        goto done;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) { total_old += g->tensors[i].nbytes; total_new += plan[i].new_bytes; }
    const uint64_t out_size = gguf_writer_total_size(w);

    if (!dry) {
        slm_afile_clean_stale(out);
        if (gguf_writer_begin(w, out, &err)) {
            gguf_writer_free(w);
            rc = cli_fail_err(C, &err);
            goto done;
        }
    }

    cli_progress bar;
    cli_progress_start(&bar, C, dry || !work_elems ? 1 : work_elems);
    uint64_t done_elems = 0;
    const int64_t chunk_elems = 1 << 22; /* rows per pass: ~16 MB of float32 */
    job_t *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    char *started = calloc((size_t)threads, 1);
    unsigned char *obuf = NULL;
    size_t obuf_cap = 0;
    if (!jobs || !tid || !started) { rc = cli_fail(C, SLM_EINTERNAL, "out of memory"); goto abort; }
    for (uint64_t i = 0; i < g->n_tensors && !dry; i++) {
        const gguf_tensor *t = &g->tensors[i];
        plan_t *p = &plan[i];
        if (p->type == t->type) {
            if (gguf_writer_write(w, t->data, t->nbytes, &err)) { rc = cli_fail_err(C, &err); goto abort; }
            gguf_release_range(g, t, 0, t->nbytes); /* keep the resident set small */
            continue;
        }
        const int64_t n = t->ne[0], nrows = (int64_t)(t->n_elems / (uint64_t)n);
        const size_t rb = slm_type_row_bytes(p->type, (uint64_t)n);
        int64_t rows_per = chunk_elems / n;
        if (rows_per < threads) rows_per = threads;
        if (rows_per > nrows) rows_per = nrows;
        if ((size_t)rows_per * rb > obuf_cap) {
            free(obuf);
            obuf_cap = (size_t)rows_per * rb;
            obuf = malloc(obuf_cap);
            if (!obuf) { rc = cli_fail(C, SLM_EINTERNAL, "out of memory"); goto abort; }
        }
        double se = 0, sx = 0, we = 0, wsum = 0, maxe = 0;
        for (int64_t r0 = 0; r0 < nrows; r0 += rows_per) {
            const int64_t nr = nrows - r0 < rows_per ? nrows - r0 : rows_per;
            int nt = 0;
            for (int k = 0; k < threads; k++) {
                int64_t a = nr * k / threads, b = nr * (k + 1) / threads;
                if (b <= a) continue;
                jobs[nt] = (job_t){ t, p->type, p->imp, p->pre ? p->pre + (size_t)(r0 + a) * rb : NULL, r0 + a, b - a,
                                    obuf + (size_t)a * rb, stats, 0, 0, 0, 0, 0, 0, -1, -1 };
                nt++;
            }
            for (int k = 1; k < nt; k++) {
                started[k] = !pthread_create(&tid[k], NULL, worker, &jobs[k]);
                if (!started[k]) worker(&jobs[k]); /* no thread: same work, same bytes */
            }
            worker(&jobs[0]);
            for (int k = 1; k < nt; k++)
                if (started[k]) pthread_join(tid[k], NULL);
            for (int k = 0; k < nt; k++) {
                if (jobs[k].rc > 0 && jobs[k].bad_row >= 0) {
                    rc = cli_fail(C, SLM_EINPUT, "%s: tensor '%s': row %" PRId64 " column %" PRId64
                                  " is not a finite number (NaN or infinity): refusing to quantize it", in, t->name,
                                  jobs[k].bad_row, jobs[k].bad_col);
                    goto abort;
                }
                if (jobs[k].rc > 0) {
                    rc = cli_fail(C, jobs[k].rc, "%s: tensor '%s': %s", in, t->name,
                                  jobs[k].rc == SLM_EINPUT ? "cannot decode the source type" : "out of memory");
                    goto abort;
                }
                se += jobs[k].se; sx += jobs[k].sx; we += jobs[k].we; wsum += jobs[k].wsum;
                if (jobs[k].maxe > maxe) maxe = jobs[k].maxe;
            }
            if (gguf_writer_write(w, obuf, (size_t)nr * rb, &err)) { rc = cli_fail_err(C, &err); goto abort; }
            {
                const size_t srb = slm_type_row_bytes(t->type, (uint64_t)n); /* source rows read: drop their pages */
                gguf_release_range(g, t, (uint64_t)r0 * srb, (uint64_t)nr * srb);
            }
            done_elems += (uint64_t)(nr * n);
            cli_progress_update(&bar, done_elems);
        }
        p->rmse = sqrt(se / (double)t->n_elems);
        p->maxerr = maxe;
        p->werr = wsum > 0 ? we / wsum : NAN;
    }
    cli_progress_end(&bar);
    if (!dry && gguf_writer_finish(w, &err)) { rc = cli_fail_err(C, &err); goto abort; }
    gguf_writer_free(w);
    w = NULL;
    double secs = cli_now() - t0;

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
    free(obuf);
    free(jobs);
    free(tid);
    free(started);
    goto done;
abort:
    cli_progress_end(&bar);
    gguf_writer_free(w); /* unlinks the temp file */
    free(obuf);
    free(jobs);
    free(tid);
    free(started);
done:
    if (plan)
        for (uint64_t i = 0; i < g->n_tensors; i++) { free(plan[i].imp); free(plan[i].pre); }
    slm_imatrix_free(&imat);
    free(plan);
    free(hits);
    free(rules);
    gguf_close(g);
    return rc;
}
