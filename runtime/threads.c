/* runtime/threads.c — a small fixed thread pool (see runtime.h).
 *
 * One job at a time: slm_pool_run publishes (fn, arg) under a new generation
 * number, wakes the workers, runs its own share as thread 0 and waits until
 * every worker has reported. Workers spin briefly before sleeping, because a
 * decode step issues many short jobs back to back. */
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
    pthread_cond_t wake, done;
    atomic_uint gen;            /* job generation */
    atomic_int pending;         /* workers still running the current job */
    int quit;
    slm_task_fn fn;
    void *arg;
};

typedef struct worker_arg {
    slm_pool *p;
    int ith;
} worker_arg;

enum { SPIN_ROUNDS = 20000 };

static void *worker_main(void *v)
{
    worker_arg wa = *(worker_arg *)v;
    free(v);
    slm_pool *p = wa.p;
    unsigned seen = 0;
    for (;;) {
        /* spin a little, then sleep on the condition variable */
        int spins = 0;
        while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen && spins < SPIN_ROUNDS) {
            spins++;
            if ((spins & 255) == 0)
                sched_yield();
        }
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->gen) == seen && !p->quit)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->quit) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = atomic_load(&p->gen);
        slm_task_fn fn = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->mu);

        fn(arg, wa.ith, p->n);

        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
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
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
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
    p->quit = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->tids[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
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
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->pending, p->n - 1);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    fn(arg, 0, p->n);

    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0 && spins < SPIN_ROUNDS)
        spins++;
    if (atomic_load(&p->pending) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->pending) > 0)
            pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}
