/*
 * The verifier (verify.h). One symbol at a time, a slice of at most
 * SLICE_ROWS rows per kl_store_verify, and no more than TICK_NS of them
 * per loop turn; a round over every symbol each ROUND_MS once caught up.
 * A store error only delays the search: the marks stay where they were.
 */
#include "verify.h"

#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SLICE_ROWS 20000     /* about 2 ms of reading */
#define TICK_NS	   4000000   /* of the loop's turn at most */
#define ROUND_MS   1000	     /* between rounds once every mark is at its newest row */
#define RETRY_MS   5000	     /* after a store error */

struct kl_verify {
	uv_timer_t timer;
	struct kl_store *st;
	struct kl_verify_cbs cbs;
	size_t next;	/* the symbol being verified */
	int64_t cursor; /* of its suspects */
	bool warned;
};

static void on_tick(uv_timer_t *t)
{
	struct kl_verify *v = t->data;
	uint64_t t0 = uv_hrtime();
	bool news = false;
	uint64_t due = ROUND_MS;

	for (;;) {
		int64_t sid = v->cbs.sid_at(v->cbs.ud, v->next);
		int r;

		if (sid == -1) { /* the round is over */
			v->next = 0;
			break;
		}
		r = sid > 0 ? kl_store_verify(v->st, sid, SLICE_ROWS, &v->cursor) : 0;
		if (r < 0 && r != -ENOENT) {
			/* A lock held by a user's sqlite3, a full disk: later. */
			if (!v->warned)
				kl_warn("heal", "cannot search the store for holes: %s; again in %d s",
					strerror(-r), RETRY_MS / 1000);
			v->warned = true;
			due = RETRY_MS;
			break;
		}
		if (r > 0 && (r & KL_STORE_VERIFY_NEWS))
			news = true;
		v->warned = false;
		if (r <= 0 || !(r & KL_STORE_VERIFY_MORE)) {
			v->next++;
			v->cursor = INT64_MIN;
		}
		if (uv_hrtime() - t0 >= TICK_NS) {
			due = 0; /* the rest in the next turn */
			break;
		}
	}
	uv_timer_start(&v->timer, on_tick, due, 0);
	if (news)
		v->cbs.on_news(v->cbs.ud);
}

int kl_verify_new(uv_loop_t *loop, struct kl_store *st, const struct kl_verify_cbs *cbs,
		  struct kl_verify **ret)
{
	struct kl_verify *v = calloc(1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	v->st = st;
	v->cbs = *cbs;
	v->cursor = INT64_MIN;
	uv_timer_init(loop, &v->timer);
	v->timer.data = v;
	uv_timer_start(&v->timer, on_tick, 0, 0);
	*ret = v;
	return 0;
}

static void on_closed(uv_handle_t *handle)
{
	free(handle->data);
}

void kl_verify_stop(struct kl_verify *v)
{
	if (v)
		uv_close((uv_handle_t *)&v->timer, on_closed);
}
