/* formats/convert_run.c — stream a conversion plan into a GGUF file.
 *
 * Conversion is I/O: the CPU work (decode BF16/F16, permute, encode) must hide
 * behind the writes. Workers fill a ring of chunk buffers in chunk order while
 * the calling thread writes finished chunks in order through the GGUF writer
 * (which starts writeback early, so the final fsync is short). Peak memory is
 * the ring plus one float scratch per worker; source pages are dropped from
 * our resident set as soon as their chunk is written.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"

#define CHUNK_OUT_BYTES (4u << 20)   /* target output bytes per chunk */
#define CHUNK_MAX_FLOATS (2u << 20)  /* elements per chunk at most */
#define SCRATCH_PIECE_FLOATS (64u << 10) /* rows decoded+encoded at a time (256 KiB of floats) */

typedef struct chunk {
    uint32_t tensor;
    int64_t r0, nr;
    size_t out_bytes;
} chunk;

typedef struct run {
    const slm_plan *p;
    slm_encode_fn enc;
    void *enc_ctx;
    chunk *ch;
    size_t n_chunks;
    size_t ring;         /* slots */
    uint8_t **slot;      /* ring buffers */
    size_t slot_bytes;
    int64_t *ready;      /* chunk index held by each slot, -1 if none */
    size_t next;         /* next chunk to claim */
    size_t written;      /* chunks written so far */
    int stop;
    size_t scratch_floats;
    pthread_mutex_t mu;
    pthread_cond_t cv_ready, cv_free;
} run;

static size_t row_bytes_of(const slm_plan_tensor *t)
{
    return slm_type_row_bytes(t->out_type, (uint64_t)t->ne[0]);
}

static void encode_chunk(run *r, const chunk *c, float *scratch, uint8_t *dst)
{
    const slm_plan_tensor *t = &r->p->t[c->tensor];
    int64_t cols = t->ne[0];
    if (t->out_type == SLM_TYPE_F32) {
        slm_plan_read_rows(t, c->r0, c->nr, (float *)dst);
        return;
    }
    /* decode and encode in cache-sized pieces: the float scratch stays in L2
     * instead of streaming twice its size through memory */
    size_t rb = row_bytes_of(t);
    int64_t sub = (int64_t)(SCRATCH_PIECE_FLOATS / (uint64_t)cols);
    if (sub < 1)
        sub = 1;
    for (int64_t r0 = 0; r0 < c->nr; r0 += sub) {
        int64_t m = c->nr - r0 < sub ? c->nr - r0 : sub;
        slm_plan_read_rows(t, c->r0 + r0, m, scratch);
        r->enc(t->out_type, scratch, dst + (size_t)r0 * rb, m, cols, r->enc_ctx);
    }
}

static void *worker(void *arg)
{
    run *r = arg;
    float *scratch = malloc(r->scratch_floats * sizeof(float));
    pthread_mutex_lock(&r->mu);
    if (!scratch)
        r->stop = 1;
    while (!r->stop && r->next < r->n_chunks) {
        size_t i = r->next++;
        while (!r->stop && i - r->written >= r->ring)
            pthread_cond_wait(&r->cv_free, &r->mu);
        if (r->stop)
            break;
        pthread_mutex_unlock(&r->mu);
        encode_chunk(r, &r->ch[i], scratch, r->slot[i % r->ring]);
        pthread_mutex_lock(&r->mu);
        r->ready[i % r->ring] = (int64_t)i;
        pthread_cond_broadcast(&r->cv_ready);
    }
    pthread_cond_broadcast(&r->cv_ready);
    pthread_mutex_unlock(&r->mu);
    free(scratch);
    return NULL;
}

static int plan_chunks(run *r, slm_err *err)
{
    const slm_plan *p = r->p;
    size_t n = 0, cap = 0;
    r->slot_bytes = 0;
    r->scratch_floats = 0;
    for (size_t i = 0; i < p->n; i++) {
        const slm_plan_tensor *t = &p->t[i];
        int64_t rows = (int64_t)(t->n_elems / (uint64_t)t->ne[0]);
        size_t rb = row_bytes_of(t);
        if (!rb)
            return slm_err_set(err, SLM_EINPUT, "tensor '%s': row length %lld is not a multiple of the %s block",
                               t->name, (long long)t->ne[0], slm_type_name(t->out_type));
        int64_t per = (int64_t)(CHUNK_OUT_BYTES / rb);
        int64_t per_f = (int64_t)(CHUNK_MAX_FLOATS / (uint64_t)t->ne[0]);
        if (per_f < per)
            per = per_f;
        if (per < 1)
            per = 1;
        for (int64_t r0 = 0; r0 < rows; r0 += per) {
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                chunk *c = realloc(r->ch, cap * sizeof *c);
                if (!c)
                    return slm_err_set(err, SLM_EINTERNAL, "out of memory");
                r->ch = c;
            }
            int64_t nr = rows - r0 < per ? rows - r0 : per;
            r->ch[n] = (chunk){(uint32_t)i, r0, nr, (size_t)nr * rb};
            if (r->ch[n].out_bytes > r->slot_bytes)
                r->slot_bytes = r->ch[n].out_bytes;
            int64_t piece = (int64_t)(SCRATCH_PIECE_FLOATS / (uint64_t)t->ne[0]);
            if (piece < 1)
                piece = 1;
            size_t need = (size_t)((nr < piece ? nr : piece) * t->ne[0]);
            if (need > r->scratch_floats)
                r->scratch_floats = need;
            n++;
        }
    }
    r->n_chunks = n;
    return SLM_OK;
}

int slm_plan_write(const slm_plan *p, const char *path, int nthreads, slm_encode_fn enc, void *enc_ctx,
                   slm_progress_fn progress, void *progress_ctx, slm_err *err)
{
    run r;
    memset(&r, 0, sizeof r);
    r.p = p;
    r.enc = enc;
    r.enc_ctx = enc_ctx;
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > 64)
        nthreads = 64;

    gguf_writer *w = gguf_writer_new();
    if (!w)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    int rc = slm_plan_describe(p, w, err);
    if (!rc)
        rc = plan_chunks(&r, err);
    if (rc) {
        free(r.ch);
        gguf_writer_free(w);
        return rc;
    }
    r.ring = 2 * (size_t)nthreads + 2;
    r.slot = calloc(r.ring, sizeof *r.slot);
    r.ready = malloc(r.ring * sizeof *r.ready);
    int oom = !r.slot || !r.ready;
    for (size_t i = 0; !oom && i < r.ring; i++) {
        r.slot[i] = malloc(r.slot_bytes ? r.slot_bytes : 1);
        oom = !r.slot[i];
        r.ready[i] = -1;
    }
    if (oom) {
        rc = slm_err_set(err, SLM_EINTERNAL, "out of memory for conversion buffers");
        goto out;
    }

    rc = gguf_writer_begin(w, path, err);
    if (rc)
        goto out;

    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv_ready, NULL);
    pthread_cond_init(&r.cv_free, NULL);
    pthread_t th[64];
    int started = 0;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&th[i], NULL, worker, &r))
            break;
        started++;
    }
    if (!started) {
        rc = slm_err_set(err, SLM_EINTERNAL, "cannot start conversion threads");
    }

    uint64_t total = 0, done = 0;
    for (size_t i = 0; i < r.n_chunks; i++)
        total += r.ch[i].out_bytes;
    for (size_t i = 0; !rc && i < r.n_chunks; i++) {
        size_t s = i % r.ring;
        pthread_mutex_lock(&r.mu);
        while (r.ready[s] != (int64_t)i && !r.stop)
            pthread_cond_wait(&r.cv_ready, &r.mu);
        int stopped = r.ready[s] != (int64_t)i;
        pthread_mutex_unlock(&r.mu);
        if (stopped) {
            rc = slm_err_set(err, SLM_EINTERNAL, "out of memory in a conversion thread");
            break;
        }
        const chunk *c = &r.ch[i];
        rc = gguf_writer_write(w, r.slot[s], c->out_bytes, err);
        const slm_plan_tensor *t = &p->t[c->tensor];
        if (!t->src) {
            /* computed tensor: nothing mapped to release */
        } else if (t->xform == SLM_X_COPY || t->xform == SLM_X_ADD_ONE) {
            uint64_t eb = t->src->nbytes / (t->src->n_elems ? t->src->n_elems : 1);
            st_release_range(t->src, (uint64_t)c->r0 * t->ne[0] * eb, (uint64_t)c->nr * t->ne[0] * eb);
        } else if (i + 1 == r.n_chunks || r.ch[i + 1].tensor != c->tensor) {
            st_release_range(t->src, 0, t->src->nbytes);
        }
        pthread_mutex_lock(&r.mu);
        r.ready[s] = -1;
        r.written++;
        pthread_cond_broadcast(&r.cv_free);
        pthread_mutex_unlock(&r.mu);
        done += c->out_bytes;
        if (progress)
            progress(done, total, progress_ctx);
    }
    pthread_mutex_lock(&r.mu);
    r.stop = 1;
    pthread_cond_broadcast(&r.cv_free);
    pthread_mutex_unlock(&r.mu);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv_ready);
    pthread_cond_destroy(&r.cv_free);

    if (!rc)
        rc = gguf_writer_finish(w, err);
out:
    gguf_writer_free(w); /* unlinks the temp file unless finished */
    if (r.slot)
        for (size_t i = 0; i < r.ring; i++)
            free(r.slot[i]);
    free(r.slot);
    free(r.ready);
    free(r.ch);
    return rc;
}
