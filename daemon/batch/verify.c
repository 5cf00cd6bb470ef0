/*
 * The verifier (verify.h). A batch of up to BATCH symbols, one slice of
 * at most SLICE_ROWS rows each, is read on the thread pool; the loop
 * applies it and queues the next. The batch is read again while any of
 * its symbols has more to search, then the next one; a round over every
 * symbol each ROUND_MS once all are caught up. A store error only delays
 * the search: the marks stay where they were.
 */
#include "verify.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLICE_ROWS 50000 /* of a symbol per batch */
#define BATCH	   64	 /* symbols a batch */
#define ROUND_MS   1000	 /* between looks for new suspects once every mark is at its newest row */
#define FULL_MS	   10000 /* and between rounds over every symbol (their marks follow the stream) */
#define RETRY_MS   5000	 /* after a store error */

struct job {
	size_t i; /* the symbol's index */
	int64_t sid, cursor;
	struct kl_store_verdict v;
	int r;
};

struct kl_verify {
	uv_timer_t timer;
	uv_work_t work;
	struct kl_store *st, *ro; /* the writer (borrowed), the reader (owned) */
	struct kl_verify_cbs cbs;
	struct job jobs[BATCH];
	size_t njobs;
	size_t next, end; /* the batch: symbols [next, end) */
	bool last;	  /* the batch ends the round */
	int64_t *cursors; /* of each symbol's suspects */
	size_t ncursors;
	uint64_t behind_at; /* uv_now() when a mark was first found behind; 0: caught up */
	uint64_t round_at;  /* uv_now() when the last round began */
	bool busy, closed, stopping, warned;
};

static void release(struct kl_verify *v)
{
	if (v->busy || !v->closed)
		return;
	for (size_t i = 0; i < BATCH; i++)
		kl_store_verdict_clear(&v->jobs[i].v);
	kl_store_close(v->ro);
	free(v->cursors);
	free(v);
}

static int64_t *cursor_of(struct kl_verify *v, size_t i)
{
	if (i >= v->ncursors) {
		size_t n = i + 64;
		int64_t *g = realloc(v->cursors, n * sizeof(*g));

		if (!g)
			return NULL;
		for (size_t k = v->ncursors; k < n; k++)
			g[k] = INT64_MIN;
		v->cursors = g;
		v->ncursors = n;
	}
	return &v->cursors[i];
}

/* One read transaction per symbol, not per statement (each takes and drops the
 * WAL's locks), nor per batch (a snapshot held for 64 slices keeps the loop's
 * checkpoints from finishing). */
static void on_read(uv_work_t *w)
{
	struct kl_verify *v = w->data;

	for (size_t i = 0; i < v->njobs; i++) {
		struct job *j = &v->jobs[i];
		int r = kl_store_read_begin(v->ro);

		j->r =
		    r < 0 ? r : kl_store_verify_read(v->ro, j->sid, SLICE_ROWS, &j->cursor, &j->v);
		if (r == 0)
			kl_store_read_end(v->ro);
	}
}

static void on_tick(uv_timer_t *t);

/* Has the batch anything to write? */
static bool writes(const struct kl_verify *v)
{
	for (size_t i = 0; i < v->njobs; i++) {
		const struct kl_store_verdict *d = &v->jobs[i].v;
		if (v->jobs[i].r == 0 && (d->upto >= 0 || d->ndels || d->nadds || d->news))
			return true;
	}
	return false;
}

static void schedule(struct kl_verify *v, uint64_t ms)
{
	if (!v->stopping)
		uv_timer_start(&v->timer, on_tick, ms, 0);
}

static void on_read_done(uv_work_t *w, int status)
{
	struct kl_verify *v = w->data;
	bool more = false, news = false, own;
	int err = 0;

	v->busy = false;
	if (v->stopping || status < 0) {
		release(v);
		return;
	}
	/* One transaction for the batch (or the one open: never committed here). */
	own = !kl_store_in_tx(v->st) && writes(v);
	if (own && (err = kl_store_begin(v->st)) < 0)
		v->njobs = 0;
	for (size_t i = 0; i < v->njobs; i++) {
		struct job *j = &v->jobs[i];
		int r = j->r < 0 ? j->r : kl_store_verify_apply(v->st, &j->v);
		int64_t *c = cursor_of(v, j->i);

		if (r == -ENOENT) /* no longer in the store: nothing to search */
			continue;
		if (r < 0) {
			err = r;
			continue;
		}
		if (c)
			*c = j->cursor;
		more |= (r & KL_STORE_VERIFY_MORE) != 0;
		news |= (r & KL_STORE_VERIFY_NEWS) != 0;
		if ((r & KL_STORE_VERIFY_BEHIND) && !v->behind_at)
			v->behind_at = uv_now(w->loop) | 1;
	}
	if (own && kl_store_in_tx(v->st) && err == 0)
		err = kl_store_commit(v->st);
	else if (own)
		kl_store_rollback(v->st);
	if (err < 0) {
		/* A lock held by a user's sqlite3, a full disk: later. */
		if (!v->warned)
			kl_warn("heal", "cannot search the store for holes: %s; again in %d s",
				strerror(-err), RETRY_MS / 1000);
		v->warned = true;
		schedule(v, RETRY_MS);
	} else if (more) {
		v->warned = false;
		schedule(v, 0); /* this batch again */
	} else if (!v->last) {
		v->next = v->end;
		schedule(v, 0);
	} else {
		if (v->behind_at)
			kl_info("heal", "every symbol's history is searched for holes (%.1f s)",
				(double)(uv_now(w->loop) - v->behind_at) / 1e3);
		v->behind_at = 0;
		v->next = 0;
		schedule(v, ROUND_MS);
	}
	if (news)
		v->cbs.on_news(v->cbs.ud);
}

static void on_tick(uv_timer_t *t)
{
	struct kl_verify *v = t->data;
	size_t i = v->next;

	/* Caught up, every second costs one indexed read unless a row went
	 * (a trigger's new suspect): 1,500 symbols' marks move by a minute a
	 * minute, which the heal reads past the mark anyway. */
	if (i == 0 && !v->behind_at && v->round_at && uv_now(t->loop) - v->round_at < FULL_MS &&
	    kl_store_any_new_suspect(v->ro) == 0) {
		schedule(v, ROUND_MS);
		return;
	}
	if (i == 0)
		v->round_at = uv_now(t->loop);

	v->njobs = 0;
	v->last = false;
	while (v->njobs < BATCH) {
		int64_t sid = v->cbs.sid_at(v->cbs.ud, i);
		int64_t *c = cursor_of(v, i);

		if (sid == -1) {
			v->last = true;
			break;
		}
		if (sid > 0) {
			struct job *j = &v->jobs[v->njobs++];

			/* The verdict's memory is kept for the next batch. */
			j->i = i;
			j->sid = sid;
			j->cursor = c ? *c : INT64_MIN;
		}
		i++;
	}
	v->end = i;
	if (v->njobs == 0) {
		v->next = v->last ? 0 : i;
		schedule(v, v->last ? ROUND_MS : 0);
		return;
	}
	v->busy = uv_queue_work(t->loop, &v->work, on_read, on_read_done) == 0;
	if (!v->busy)
		schedule(v, RETRY_MS);
}

int kl_verify_new(uv_loop_t *loop, struct kl_store *st, const char *path,
		  const struct kl_verify_cbs *cbs, struct kl_verify **ret, char *err, size_t n)
{
	struct kl_verify *v = calloc(1, sizeof(*v));
	int r;

	if (!v) {
		snprintf(err, n, "out of memory");
		return -ENOMEM;
	}
	r = kl_store_open(path, true, &v->ro, err, n);
	if (r < 0) {
		free(v);
		return r;
	}
	v->st = st;
	v->cbs = *cbs;
	v->work.data = v;
	uv_timer_init(loop, &v->timer);
	v->timer.data = v;
	uv_timer_start(&v->timer, on_tick, 0, 0);
	*ret = v;
	return 0;
}

static void on_closed(uv_handle_t *handle)
{
	struct kl_verify *v = handle->data;

	v->closed = true;
	release(v);
}

void kl_verify_stop(struct kl_verify *v)
{
	if (!v || v->stopping)
		return;
	v->stopping = true;
	uv_close((uv_handle_t *)&v->timer, on_closed);
}
