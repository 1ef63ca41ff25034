/*
 * threadpool.c - the small pool of threads that runs blocking work (auth
 * source checks, later slow store calls) off the event loop.
 *
 * Owns: N pthreads taking jobs from one mutex+condvar FIFO, a "done" list
 * handed back to the loop through an ev_async, and the bound on pending
 * jobs. work() runs on a pool thread; done() always runs on the loop
 * thread, in completion order. The pool keeps the loop alive (ev_ref) only
 * while jobs are in flight, so an idle pool never stops ev_run() from
 * returning.
 *
 * Pool threads block all signals: signals stay with the loop thread, which
 * is the one that handles them (SIGTERM, SIGHUP).
 */
#include "core-private.h"

#include <ev.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

/* Jobs queued but not yet started, beyond which ma_threadpool_try_submit()
 * refuses: a flood of logins waits in the kernel's accept queue and the
 * clients get a temporary failure rather than growing our memory. */
#define MA_THREADPOOL_DEFAULT_MAX_PENDING 1024
#define MA_THREADPOOL_MAX_THREADS 256

struct tp_job {
	struct tp_job *next;
	void (*work)(void *ctx);
	void (*done)(void *ctx);
	void *ctx;
};

struct ma_threadpool {
	struct ev_loop *loop;
	ev_async async;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct tp_job *queue_head, *queue_tail;	/* waiting for a thread */
	unsigned queued;
	struct tp_job *done_head, *done_tail;	/* waiting for the loop */
	bool stopping;

	unsigned max_pending;
	unsigned in_flight;	/* loop thread only: submitted, done() not run */

	pthread_t *threads;
	unsigned n_threads;
};

static void *tp_thread_main(void *arg)
{
	struct ma_threadpool *pool = arg;

	pthread_mutex_lock(&pool->lock);
	for (;;) {
		while (pool->queue_head == NULL && !pool->stopping)
			pthread_cond_wait(&pool->cond, &pool->lock);
		struct tp_job *job = pool->queue_head;
		if (job == NULL)
			break;	/* stopping and drained */
		pool->queue_head = job->next;
		if (pool->queue_head == NULL)
			pool->queue_tail = NULL;
		pool->queued--;
		pthread_mutex_unlock(&pool->lock);

		job->work(job->ctx);

		pthread_mutex_lock(&pool->lock);
		job->next = NULL;
		if (pool->done_tail != NULL)
			pool->done_tail->next = job;
		else
			pool->done_head = job;
		pool->done_tail = job;
		/* ev_async_send is thread-safe and coalesces. */
		ev_async_send(pool->loop, &pool->async);
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

/* Runs done() for every finished job. Loop thread only. */
static void tp_run_done(struct ma_threadpool *pool)
{
	for (;;) {
		pthread_mutex_lock(&pool->lock);
		struct tp_job *list = pool->done_head;
		pool->done_head = pool->done_tail = NULL;
		pthread_mutex_unlock(&pool->lock);
		if (list == NULL)
			return;
		while (list != NULL) {
			struct tp_job *job = list;
			list = job->next;
			if (job->done != NULL)
				job->done(job->ctx);
			free(job);
			if (--pool->in_flight == 0 && pool->loop != NULL)
				ev_unref(pool->loop);
		}
	}
}

static void tp_async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)revents;
	tp_run_done(w->data);
}

struct ma_threadpool *ma_threadpool_create(struct ev_loop *loop,
					   unsigned threads)
{
	if (threads == 0)
		threads = 4;
	if (threads > MA_THREADPOOL_MAX_THREADS)
		threads = MA_THREADPOOL_MAX_THREADS;

	struct ma_threadpool *pool = ma_malloc0(sizeof(*pool));
	pool->loop = loop;
	pool->max_pending = MA_THREADPOOL_DEFAULT_MAX_PENDING;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	ev_async_init(&pool->async, tp_async_cb);
	pool->async.data = pool;
	ev_async_start(loop, &pool->async);
	/* An idle pool must not keep ev_run() going. */
	ev_unref(loop);

	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pool->threads = ma_malloc0(sizeof(pthread_t) * threads);
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&pool->threads[i], NULL, tp_thread_main,
				   pool) != 0) {
			ma_error("threadpool: pthread_create failed after %u threads",
				 i);
			break;
		}
		pool->n_threads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pool->n_threads == 0)
		ma_oom();	/* nothing could ever finish; treat like OOM */
	return pool;
}

void ma_threadpool_set_max_pending(struct ma_threadpool *pool, unsigned max)
{
	pool->max_pending = max == 0 ? 1 : max;
}

static void tp_enqueue(struct ma_threadpool *pool, struct tp_job *job)
{
	if (pool->in_flight++ == 0)
		ev_ref(pool->loop);
	if (pool->queue_tail != NULL)
		pool->queue_tail->next = job;
	else
		pool->queue_head = job;
	pool->queue_tail = job;
	pool->queued++;
	pthread_cond_signal(&pool->cond);
}

int ma_threadpool_try_submit(struct ma_threadpool *pool,
			     void (*work)(void *ctx), void (*done)(void *ctx),
			     void *ctx)
{
	struct tp_job *job = ma_malloc0(sizeof(*job));
	job->work = work;
	job->done = done;
	job->ctx = ctx;

	pthread_mutex_lock(&pool->lock);
	if (pool->queued >= pool->max_pending || pool->stopping) {
		pthread_mutex_unlock(&pool->lock);
		free(job);
		return -1;
	}
	tp_enqueue(pool, job);
	pthread_mutex_unlock(&pool->lock);
	return 0;
}

void ma_threadpool_submit(struct ma_threadpool *pool,
			  void (*work)(void *ctx), void (*done)(void *ctx),
			  void *ctx)
{
	struct tp_job *job = ma_malloc0(sizeof(*job));
	job->work = work;
	job->done = done;
	job->ctx = ctx;

	pthread_mutex_lock(&pool->lock);
	tp_enqueue(pool, job);
	pthread_mutex_unlock(&pool->lock);
}

void ma_threadpool_destroy(struct ma_threadpool **poolp)
{
	struct ma_threadpool *pool = *poolp;
	if (pool == NULL)
		return;
	*poolp = NULL;

	/* Threads finish every queued job, then exit. */
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < pool->n_threads; i++)
		pthread_join(pool->threads[i], NULL);

	/* Their done() callbacks still run, here on the loop thread, so
	 * whatever they hold (conn refs, requests) is released. */
	tp_run_done(pool);

	if (pool->in_flight > 0)
		ev_unref(pool->loop);	/* cannot happen; keep refs balanced */
	ev_ref(pool->loop);
	ev_async_stop(pool->loop, &pool->async);
	pthread_cond_destroy(&pool->cond);
	pthread_mutex_destroy(&pool->lock);
	free(pool->threads);
	free(pool);
}
