/* runtime/threads.c — a small fixed thread pool (see runtime.h).
 *
 * One job at a time: slm_pool_run publishes (fn, arg) under a new generation
 * number, runs its own share as thread 0 and spin-waits until every worker
 * has reported. A decode step issues hundreds of short jobs per token, so the
 * hand-off is lock-free: workers spin on the generation (with pause) for a
 * while and only then sleep on a condition variable; the caller takes the
 * mutex only when some worker is asleep. */
#include "runtime.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct slm_pool {
    int n;                      /* threads including the caller */
    pthread_t *tids;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_uint gen;            /* job generation */
    atomic_int pending;         /* workers still running the current job */
    atomic_int sleepers;        /* workers blocked (or about to block) on wake */
    atomic_int quit;
    slm_task_fn fn;
    void *arg;
};

typedef struct worker_arg {
    slm_pool *p;
    int ith;
} worker_arg;

/* about 0.1-0.3 ms of pause instructions before a worker sleeps */
enum { SPIN_ROUNDS = 1 << 12 };

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker_main(void *v)
{
    worker_arg wa = *(worker_arg *)v;
    free(v);
    slm_pool *p = wa.p;
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen && spins < SPIN_ROUNDS) {
            cpu_relax();
            spins++;
        }
        if (atomic_load_explicit(&p->gen, memory_order_acquire) == seen) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1); /* seq_cst: pairs with the caller's gen increment */
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit))
            return NULL;
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        p->fn(p->arg, wa.ith, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel);
    }
}

int slm_pool_new(int n_threads, slm_pool **out, slm_err *err)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return slm_err_set(err, SLM_EINPUT, "thread count %d out of range [1, 1024]", n_threads);
    slm_pool *p = calloc(1, sizeof *p);
    if (!p)
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->quit, 0);
    p->tids = calloc((size_t)n_threads, sizeof *p->tids);
    if (!p->tids) {
        free(p);
        return slm_err_set(err, SLM_EINTERNAL, "out of memory");
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa || pthread_create(&p->tids[i], NULL, worker_main, (wa->p = p, wa->ith = i, wa))) {
            free(wa);
            p->n = i; /* threads 1..i-1 exist */
            slm_pool_free(p);
            return slm_err_set(err, SLM_EINTERNAL, "cannot start thread %d of %d", i, n_threads);
        }
    }
    *out = p;
    return SLM_OK;
}

void slm_pool_free(slm_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    atomic_fetch_add(&p->gen, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->tids[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->tids);
    free(p);
}

int slm_pool_size(const slm_pool *p)
{
    return p ? p->n : 1;
}

void slm_pool_run(slm_pool *p, slm_task_fn fn, void *arg)
{
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    atomic_fetch_add(&p->gen, 1); /* seq_cst: publishes fn/arg/pending; pairs with sleepers */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }

    fn(arg, 0, p->n);

    unsigned spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        cpu_relax();
        if (++spins % 4096 == 0)
            sched_yield(); /* a worker may have been descheduled: let it run */
    }
}
