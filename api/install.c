/* api/install.c — the install pipeline's runtime half: canary perplexity and the health check
 * that signing's A/B store calls (a callback keeps signing a leaf), run in a child process. */
#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "libquant.h"
#include "pipeline.h"
#include "signing.h"


static int logits_ppl(slm_model *m, const char *path, const char *text, double *ppl, slm_err *err)
{
    slm_tokenizer *tok = NULL;
    slm_ctx *ctx = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = slm_tokenizer_from_gguf(slm_model_gguf(m), &tok, err);
    if (!rc)
        rc = slm_tokenize(tok, text, strlen(text), slm_tokenizer_add_bos(tok), 0, &ids, &n, err);
    if (!rc && n == 0) {
        int32_t start = slm_tokenizer_bos(tok) >= 0 ? slm_tokenizer_bos(tok) : slm_tokenizer_eos(tok);
        free(ids);
        ids = malloc(sizeof *ids);
        if (!ids || start < 0)
            rc = slm_err_set(err, SLM_EINPUT, "%s: nothing to evaluate (no tokens, no BOS)", path);
        else {
            ids[0] = start;
            n = 1;
        }
    }
    const slm_hparams *hp = slm_model_hparams(m);
    int nc = (int)(n < (size_t)hp->n_ctx_train ? n : (size_t)hp->n_ctx_train);
    if (nc > 1024)
        nc = 1024;
    if (!rc)
        rc = slm_ctx_new(m, nc, nc, 1, &ctx, err);
    if (!rc)
        rc = slm_decode(ctx, ids, nc, 1, err);
    double nll = 0;
    int V = rc ? 0 : slm_ctx_n_vocab(ctx);
    for (int i = 0; !rc && i < nc; i++) {
        const float *lg = slm_ctx_logits(ctx, i);
        double mx = -INFINITY;
        for (int v = 0; v < V; v++) {
            if (!isfinite(lg[v])) {
                rc = slm_err_set(err, SLM_EFAIL, "%s: logit %d of token %d is not finite (%g)", path, v, i, lg[v]);
                break;
            }
            if (lg[v] > mx)
                mx = lg[v];
        }
        if (rc || i == nc - 1)
            break;
        double s = 0;
        for (int v = 0; v < V; v++)
            s += exp(lg[v] - mx);
        nll += -(lg[ids[i + 1]] - mx - log(s));
    }
    if (!rc && ppl)
        *ppl = nc > 1 ? exp(nll / (nc - 1)) : 1.0;
    slm_ctx_free(ctx);
    slm_tokenizer_free(tok);
    free(ids);
    return rc;
}

int slm_pl_canary_ppl(const char *model_path, const char *text, double *ppl, slm_err *err)
{
    slm_model *m = NULL;
    int rc = slm_model_load(model_path, &m, err);
    if (!rc)
        rc = logits_ppl(m, model_path, text, ppl, err);
    slm_model_free(m);
    return rc;
}

static int f16_finite(uint16_t h) { return (h & 0x7c00) != 0x7c00; }

static int health_check(void *user, const char *path, const slm_manifest *man, slm_err *err)
{
    const slm_pl_health *cfg = user;
    slm_model *m = NULL;
    int rc = slm_model_load(path, &m, err);
    if (rc)
        return slm_err_set(err, SLM_EFAIL, "model does not load: %s", err->msg);
    /* every float weight finite: catches NaN/Inf in rows a short canary never touches */
    const gguf_file *g = slm_model_gguf(m);
    for (uint64_t i = 0; !rc && i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        if (t->type == SLM_TYPE_F32) {
            const float *p = t->data;
            for (uint64_t j = 0; j < t->n_elems; j++)
                if (!isfinite(p[j])) {
                    rc = slm_err_set(err, SLM_EFAIL, "tensor '%s' element %llu is not finite", t->name,
                                     (unsigned long long)j);
                    break;
                }
        } else if (t->type == SLM_TYPE_F16) {
            const uint16_t *p = t->data;
            for (uint64_t j = 0; j < t->n_elems; j++)
                if (!f16_finite(p[j])) {
                    rc = slm_err_set(err, SLM_EFAIL, "tensor '%s' element %llu is not finite", t->name,
                                     (unsigned long long)j);
                    break;
                }
        }
    }
    double ppl = 0;
    if (!rc)
        rc = logits_ppl(m, path, man->has_canary ? man->canary_text : "", &ppl, err);
    if (!rc && man->has_canary) {
        double rel = fabs(ppl / man->canary_ppl - 1.0);
        if (!(rel <= cfg->tolerance))
            rc = slm_err_set(err, SLM_EFAIL, "canary perplexity %.4f differs from the manifest's %.4f by %.1f%% (allowed %.1f%%)",
                             ppl, man->canary_ppl, rel * 100, cfg->tolerance * 100);
    }
    slm_model_free(m);
    return rc ? SLM_EFAIL : 0;
}

/* The health check runs in a child process: a model that crashes the runtime
 * cannot take the installer (and its lock) down, and the weights it maps do
 * not count against the installer's memory. The child sends its one-line
 * verdict through a pipe. */
static long child_peak_kb;

long slm_pl_health_peak_kb(void) { return child_peak_kb; }

void slm_pl_model_quant(const char *path, char quant[16])
{
    gguf_file *g = NULL;
    slm_err ge = {0};
    int64_t ft = -1;
    snprintf(quant, 16, "other");
    if (!gguf_open(path, &g, &ge) && !gguf_get_int(g, "general.file_type", &ft) && slm_recipe_name((int)ft) &&
        strlen(slm_recipe_name((int)ft)) < 16)
        snprintf(quant, 16, "%s", slm_recipe_name((int)ft));
    if (g)
        gguf_close(g);
}

int slm_pl_health_forked(void *user, const char *path, const slm_manifest *man, slm_err *err)
{
    slm_pl_health *cfg = user;
    int fds[2];
    cfg->ran = 1;
    cfg->ok = 0;
    snprintf(cfg->quant, sizeof cfg->quant, "other");
    slm_hex(man->files[0].sha256, SLM_SHA256_LEN, cfg->digest);
    cJSON *meta = cJSON_Parse(man->meta_json ? man->meta_json : "{}");
    cfg->supersedes = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(meta, "supersedes"));
    cJSON_Delete(meta);
    if (pipe(fds) != 0)
        return slm_err_set(err, SLM_EIO, "pipe: cannot start the health check");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return slm_err_set(err, SLM_EIO, "fork: cannot start the health check");
    }
    if (pid == 0) {
        close(fds[0]);
        slm_err e = {0};
        char q[16], line[sizeof e.msg + 20];
        slm_pl_model_quant(path, q); /* first line: the quant word; then the verdict's message */
        int rc = health_check(user, path, man, &e);
        snprintf(line, sizeof line, "%s\n%s", q, rc ? e.msg : "");
        if (write(fds[1], line, strlen(line)) < 0)
            rc = SLM_EFAIL;
        close(fds[1]);
        _exit(rc ? 1 : 0);
    }
    close(fds[1]);
    char buf[sizeof err->msg + 20], *msg = buf;
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && ((r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0 || (r < 0 && errno == EINTR)))
        if (r > 0)
            n += (size_t)r;
    buf[n] = 0;
    close(fds[0]);
    char *nl = strchr(buf, '\n');
    if (nl) {
        *nl = 0;
        if (strlen(buf) < sizeof cfg->quant)
            snprintf(cfg->quant, sizeof cfg->quant, "%s", buf);
        msg = nl + 1;
    }
    n = strlen(msg);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    struct rusage ru;
    if (getrusage(RUSAGE_CHILDREN, &ru) == 0)
        child_peak_kb = ru.ru_maxrss;
    if (WIFSIGNALED(status))
        return slm_err_set(err, SLM_EFAIL, "the health check crashed (signal %d)", WTERMSIG(status));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return slm_err_set(err, SLM_EFAIL, "%s", n ? msg : "unhealthy");
    cfg->ok = 1;
    return 0;
}

int slm_pl_verify(const char *bundle, const char *const *trust, int n_trust, uint64_t floor, slm_root **root,
                  slm_manifest **man, slm_err *err)
{
    slm_root *r = NULL;
    slm_manifest *m = NULL;
    int64_t now = (int64_t)time(NULL);
    int rc = slm_trust_chain(trust, n_trust, now, &r, err);
    slm_verify_opts vo = {now, SLM_SIGNING_RUNTIME_VERSION, floor, 1};
    if (!rc)
        rc = slm_bundle_verify(bundle, r, &vo, NULL, &m, err);
    if (rc || !man)
        slm_manifest_free(m);
    else
        *man = m;
    if (rc || !root)
        slm_root_free(r);
    else
        *root = r;
    return rc;
}
