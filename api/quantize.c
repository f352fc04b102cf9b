/* api/quantize.c — the quantize pipeline (`slm quantize`, `slm compare`, slm_quantize): a type per
 * tensor from llama.cpp's recipe rules, every refusal before anything is written, importance from an
 * imatrix, GPTQ (api/gptq.c), then the tensors quantized on `threads` threads, streamed to a temp
 * file that is synced and renamed. Notes, warnings and progress go to the caller's callbacks. */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib.h"
#include "pipeline.h"
#include "qfree.h"

static void note(const slm_pl_quant_opts *o, int warning, const char *msg)
{
    if (o->note)
        o->note(o->note_user, warning, msg);
}
static void progress(const slm_pl_quant_opts *o, int phase, uint64_t v)
{
    if (o->progress)
        o->progress(o->progress_user, phase, v);
}

typedef slm_pl_quant_tensor plan_t;

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

int slm_pl_row_f32(const gguf_tensor *t, int64_t r, float *dst)
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
        if (slm_pl_row_f32(j->t, j->r0 + r, x)) { j->rc = SLM_EINPUT; goto out; }
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

/* recipes whose flag-free default runs GPTQ with the data-free H (chosen on the calibration text;
 * not Q8_0: -3 %, noise, and `slm convert --outtype q8_0` writes the same bytes as quantize Q8_0) */
static int qfree_cov_recipe(int ftype)
{
    switch (ftype) {
    case SLM_FTYPE_Q6_K: case SLM_FTYPE_Q5_K_M: case SLM_FTYPE_Q5_K_S:
    case SLM_FTYPE_Q5_1: case SLM_FTYPE_Q5_0: case SLM_FTYPE_Q4_K_M: case SLM_FTYPE_Q4_K_S:
    case SLM_FTYPE_Q4_1: case SLM_FTYPE_Q4_0: case SLM_FTYPE_Q3_K_L: case SLM_FTYPE_Q3_K_M:
    case SLM_FTYPE_Q3_K_S: case SLM_FTYPE_Q2_K:
        return 1;
    default:
        return 0;
    }
}

int slm_pl_quantize(const slm_pl_quant_opts *o, slm_pl_quant_result *res, slm_err *err)
{
    memset(res, 0, sizeof *res);
    const char *in = o->in, *out = o->out, *imatrix_path = o->imatrix;
    const int ftype = o->ftype, threads = o->threads, pure = o->pure, requant = o->requant, dry = o->dry,
              stats = o->stats, n_rules = o->ro.n_rules, n_incw = o->n_incw, n_excw = o->n_excw;
    const char *const *incw = o->incw, *const *excw = o->excw;
    const slm_tensor_rule *rules = o->ro.rules;
    slm_recipe_opts ro = o->ro;
    ro.pure = pure;
    slm_imatrix imat = {0};
    int rc = 0;
    char msg[1024];
    gguf_file *g = NULL;
    if ((rc = gguf_open(in, &g, err)))
        return rc;

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
    if (!plan || !hits) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto done; }
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
                rc = slm_err_set(err, SLM_EINPUT,
                              "%s: tensor '%s': row length %" PRId64 " is not a multiple of the block of the requested "
                              "type (--pure refuses the fallback to %s)",
                              in, t->name, t->ne[0], slm_type_name(p->type));
                goto done;
            }
            snprintf(msg, sizeof msg, "%s: row length %" PRId64 " does not fit the recipe's block; using %s%s",
                     t->name, t->ne[0], slm_type_name(p->type),
                     p->flags & SLM_RECIPE_F16_FALLBACK ? " (no quantized type fits)" : "");
            note(o, 0, msg);
        }
        if (p->type != t->type) {
            const slm_qtraits *src = slm_qtraits_get(t->type), *dstq = slm_qtraits_get(p->type);
            if (!src || !dstq || !src->dequantize_row) {
                rc = slm_err_set(err, SLM_EINPUT, "%s: tensor '%s': cannot convert %s to %s", in, t->name,
                              slm_type_name(t->type) ? slm_type_name(t->type) : "?", slm_type_name(p->type));
                goto done;
            }
            if (src->is_quant && !requant) {
                rc = slm_err_set(err, SLM_EINPUT,
                              "%s: tensor '%s' is already quantized (%s); requantizing adds error: pass "
                              "--allow-requantize to dequantize and quantize again",
                              in, t->name, src->name);
                goto done;
            }
            if (t->ne[0] <= 0 || t->ne[0] > (1 << 28) || !slm_type_row_bytes(p->type, (uint64_t)t->ne[0])) {
                rc = slm_err_set(err, SLM_EINPUT, "%s: tensor '%s': row length %" PRId64 " is not valid for %s", in,
                              t->name, t->ne[0], slm_type_name(p->type));
                goto done;
            }
            n_quant++;
            work_elems += t->n_elems;
        }
    }
    for (int r = 0; r < n_rules; r++)
        if (!hits[r]) {
            snprintf(msg, sizeof msg, "--tensor-type pattern '%s' matches no tensor", rules[r].pattern);
            note(o, 1, msg);
        }

    /* calibration: which tensors, their importance (--imatrix), GPTQ */
    int n_imat_used = 0;
    if (imatrix_path) {
        if ((rc = slm_imatrix_read(imatrix_path, &imat, err))) goto done;
        for (size_t k = 0; k < imat.n; k++) {
            const slm_imatrix_entry *e = &imat.e[k];
            int64_t ti = gguf_find_tensor(g, e->name);
            if (ti < 0) {
                rc = slm_err_set(err, SLM_EINPUT, "%s: entry '%s' names no tensor of %s: the imatrix was made for another model",
                              imatrix_path, e->name, in);
                goto done;
            }
            const gguf_tensor *t = &g->tensors[ti];
            if (e->n != t->ne[0] || (e->n_mat != 1 && e->n_mat != t->ne[2])) {
                rc = slm_err_set(err, SLM_EINPUT,
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
        if (!plan[i].imp) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto done; }
        if (!slm_imatrix_mean(e, plan[i].imp)) { free(plan[i].imp); plan[i].imp = NULL; continue; }
        n_imat_used++;
    }
    /* llama-quantize's refusal: the very low-bit types (IQ3_XXS, IQ2_XXS/XS/S, IQ1_S/M) need
     * importance data for every tensor they go to, bar token_embd / output (no --imatrix, or
     * no entry); GPTQ's H counts where GPTQ can round to the type (not IQ2) */
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        if (plan[i].type == t->type || !slm_type_needs_imatrix(plan[i].type)) continue;
        if (!strcmp(t->name, "token_embd.weight") || !strcmp(t->name, "per_layer_token_embd.weight") ||
            !strcmp(t->name, "output.weight"))
            continue;
        if (plan[i].imp) continue;
        /* GPTQ's H (the calibration text's activations) is importance data too */
        if (o->gptq && slm_qgrid_supported(plan[i].type) && t->n_dims == 2 && !strncmp(t->name, "blk.", 4)) continue;
        rc = slm_err_set(err, SLM_EINPUT,
                         imatrix_path ? "%s: tensor '%s': no importance data in the imatrix for %s (a very low-bit type)"
                                      : "%s: tensor '%s': %s needs an importance matrix (--imatrix), as llama-quantize",
                         in, t->name, slm_type_name(plan[i].type));
        goto done;
    }
    /* no calibration at all (no --imatrix, no GPTQ): data-free importance from the weights (qfree.c),
     * for the recipes and products where it was measured to lower KLD on the calibration text
     * (docs/quantization.md, "Data-free importance"); the other recipes are unchanged */
    /* Q4_K_M / Q4_K_S gained 1.6 % / 0.6 % on the eval text with ffn_down + token_embd (noise level)
     * for ~3 % of quantize time (issue 19 bar 3 measures Q4_K_M's): off there (docs/quantization.md) */
    const unsigned qfree_mask = ftype == SLM_FTYPE_Q3_K_M || ftype == SLM_FTYPE_Q3_K_L ? SLM_QFREE_ALL : 0;
    if (!imatrix_path && !o->gptq && o->data_free != SLM_DATA_FREE_OFF && qfree_mask && !dry) {
        float **fi = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *fi);
        if (!fi) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto done; }
        int qr = slm_qfree_importance(g, nh, nkv, qfree_mask, fi);
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const gguf_tensor *t = &g->tensors[i];
            if (!qr && fi[i] && plan[i].type != t->type && !plan[i].imp && slm_qtraits_get(plan[i].type) &&
                slm_qtraits_get(plan[i].type)->is_quant && calib_selected(t->name, incw, n_incw, excw, n_excw)) {
                plan[i].imp = fi[i];
                fi[i] = NULL;
            }
            free(fi[i]);
        }
        free(fi);
        if (qr < 0) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto done; }
    }
    /* no calibration: GPTQ with a data-free H (qfree.c, slm_qfree_cov: input second moments of q/k/v
     * and gate/up estimated from the weights) for the recipes where it lowered KLD on the calibration
     * text (docs/quantization.md, "Data-free importance"); with --data-free auto only for the
     * architecture it was measured on (llama) and up to SLM_QFREE_COV_MAX_D wide (cost: dense d x d
     * moments and dense GPTQ); --data-free on: any width and any llama-like layout */
    if (!imatrix_path && !o->gptq && o->data_free != SLM_DATA_FREE_OFF && !dry && qfree_cov_recipe(ftype) &&
        (o->data_free == SLM_DATA_FREE_ON || !strcmp(m.arch, "llama"))) {
        float **Hs = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *Hs);
        if (!Hs) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto done; }
        slm_qfree_cov_opts co = SLM_QFREE_COV_DEFAULTS;
        if (o->data_free == SLM_DATA_FREE_ON) co.max_d = 0;
        int qr = slm_qfree_cov(g, nh, nkv, SLM_QFREE_COV_MASK, &co, Hs);
        for (uint64_t i = 0; i < g->n_tensors && !qr; i++) {
            const gguf_tensor *t = &g->tensors[i];
            if (!Hs[i] || plan[i].type == t->type || !slm_qgrid_supported(plan[i].type) || t->n_dims != 2 ||
                !calib_selected(t->name, incw, n_incw, excw, n_excw))
                continue;
            const int64_t nc = t->ne[0], nr = t->ne[1];
            float *Wt = malloc((size_t)nc * (size_t)nr * 4);
            unsigned char *buf = malloc((size_t)nr * slm_type_row_bytes(plan[i].type, (uint64_t)nc));
            if (!Wt || !buf) { free(Wt); free(buf); qr = -1; break; }
            int bad = 0;
            for (int64_t r = 0; r < nr && !bad; r++) bad = slm_pl_row_f32(t, r, Wt + (size_t)r * nc) != 0;
            for (int64_t k = 0; k < nc * nr && !bad; k++) bad = !isfinite(Wt[k]); /* the plain path reports it */
            const slm_gptq_params gp = { 0, 0, 0 };
            int gr = bad ? 1 : slm_gptq_quantize(plan[i].type, Wt, nr, nc, Hs[i], plan[i].imp, &gp, threads, buf);
            free(Wt);
            if (gr == SLM_GPTQ_ENOMEM) { free(buf); qr = -1; break; }
            if (gr) { free(buf); continue; } /* not positive definite etc.: the plain path, same for any -t */
            plan[i].pre = buf;
        }
        for (uint64_t i = 0; i < g->n_tensors; i++) free(Hs[i]);
        free(Hs);
        if (qr < 0) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto done; }
    }
    if (imatrix_path && !n_imat_used) {
        snprintf(msg, sizeof msg, "%s: no entry of the imatrix applies to a tensor being quantized", imatrix_path);
        note(o, 1, msg);
    }
    if (o->gptq && !dry) {
        gptq_tensor *gts = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *gts);
        size_t ng = 0;
        if (!gts) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto done; }
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const gguf_tensor *t = &g->tensors[i];
            if (plan[i].type == t->type || !slm_qgrid_supported(plan[i].type) || t->n_dims != 2) continue;
            if (strncmp(t->name, "blk.", 4) && strcmp(t->name, "output.weight")) continue;
            if (!calib_selected(t->name, incw, n_incw, excw, n_excw)) continue;
            gts[ng++] = (gptq_tensor){ t, plan[i].type, plan[i].imp, NULL };
        }
        rc = gptq_run(in, &o->go, gts, ng, err);
        for (size_t k = 0; k < ng; k++) {
            int64_t ti = gguf_find_tensor(g, gts[k].src->name);
            if (!rc && ti >= 0) plan[ti].pre = gts[k].out;
            else free(gts[k].out);
        }
        free(gts);
        if (rc) goto done;
    }

    gguf_writer *w = gguf_writer_new();
    if (!w) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto done; }
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
        rc = slm_err_set(err, SLM_EINPUT, "%s: cannot describe the output (metadata or tensor infos rejected)", in);
        goto done;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) { total_old += g->tensors[i].nbytes; total_new += plan[i].new_bytes; }
    const uint64_t out_size = gguf_writer_total_size(w);

    if (!dry) {
        slm_afile_clean_stale(out);
        if (gguf_writer_begin(w, out, err)) {
            gguf_writer_free(w);
            rc = err->code ? err->code : SLM_EIO;
            goto done;
        }
    }

    progress(o, 0, dry || !work_elems ? 1 : work_elems);
    uint64_t done_elems = 0;
    const int64_t chunk_elems = 1 << 22; /* rows per pass: ~16 MB of float32 */
    job_t *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    char *started = calloc((size_t)threads, 1);
    unsigned char *obuf = NULL;
    size_t obuf_cap = 0;
    if (!jobs || !tid || !started) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto abort; }
    for (uint64_t i = 0; i < g->n_tensors && !dry; i++) {
        const gguf_tensor *t = &g->tensors[i];
        plan_t *p = &plan[i];
        if (p->type == t->type) {
            if (gguf_writer_write(w, t->data, t->nbytes, err)) { rc = err->code ? err->code : SLM_EIO; goto abort; }
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
            if (!obuf) { rc = slm_err_set(err, SLM_EINTERNAL, "out of memory"); goto abort; }
        }
        double se = 0, we = 0, wsum = 0, maxe = 0;
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
                    rc = slm_err_set(err, SLM_EINPUT, "%s: tensor '%s': row %" PRId64 " column %" PRId64
                                  " is not a finite number (NaN or infinity): refusing to quantize it", in, t->name,
                                  jobs[k].bad_row, jobs[k].bad_col);
                    goto abort;
                }
                if (jobs[k].rc > 0) {
                    rc = slm_err_set(err, jobs[k].rc, "%s: tensor '%s': %s", in, t->name,
                                  jobs[k].rc == SLM_EINPUT ? "cannot decode the source type" : "out of memory");
                    goto abort;
                }
                se += jobs[k].se; we += jobs[k].we; wsum += jobs[k].wsum;
                if (jobs[k].maxe > maxe) maxe = jobs[k].maxe;
            }
            if (gguf_writer_write(w, obuf, (size_t)nr * rb, err)) { rc = err->code ? err->code : SLM_EIO; goto abort; }
            {
                const size_t srb = slm_type_row_bytes(t->type, (uint64_t)n); /* source rows read: drop their pages */
                gguf_release_range(g, t, (uint64_t)r0 * srb, (uint64_t)nr * srb);
            }
            done_elems += (uint64_t)(nr * n);
            progress(o, 1, done_elems);
        }
        p->rmse = sqrt(se / (double)t->n_elems);
        p->maxerr = maxe;
        p->werr = wsum > 0 ? we / wsum : NAN;
    }
    progress(o, 2, 0);
    if (!dry && gguf_writer_finish(w, err)) { rc = err->code ? err->code : SLM_EIO; goto abort; }
    gguf_writer_free(w);
    w = NULL;

    res->g = g;
    res->t = plan;
    res->out_size = out_size;
    res->total_old = total_old;
    res->total_new = total_new;
    res->n_quant = n_quant;
    g = NULL;
    plan = NULL;
    free(obuf);
    free(jobs);
    free(tid);
    free(started);
    goto done;
abort:
    progress(o, 2, 0);
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
    gguf_close(g);
    return rc;
}

void slm_pl_quant_result_free(slm_pl_quant_result *r)
{
    if (r->t && r->g)
        for (uint64_t i = 0; i < r->g->n_tensors; i++) { free(r->t[i].imp); free(r->t[i].pre); }
    free(r->t);
    gguf_close(r->g);
    memset(r, 0, sizeof *r);
}
