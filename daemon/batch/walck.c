/* The WAL's checkpointer (walck.h). */
#include "walck.h"

#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS	 1000
#define CK_PAGES 1000 /* SQLite's default autocheckpoint */

struct kl_walck {
	uv_timer_t timer;
	uv_work_t work;
	struct kl_store *st;
	struct kl_store_ck *ck;
	int r;
	bool busy, closed, warned;
};

static void release(struct kl_walck *w)
{
	if (w->busy || !w->closed)
		return;
	kl_store_ck_close(w->ck);
	free(w);
}

static void on_work(uv_work_t *req)
{
	struct kl_walck *w = req->data;

	w->r = kl_store_ck_run(w->ck);
}

static void on_done(uv_work_t *req, int status)
{
	struct kl_walck *w = req->data;

	w->busy = false;
	/* A user's sqlite3 holding the checkpoint lock: the next second. */
	if (status == 0 && w->r < 0 && w->r != -EBUSY && !w->warned) {
		kl_warn("store", "cannot checkpoint the WAL: %s; the writers' commits will",
			strerror(-w->r));
		w->warned = true;
	}
	release(w);
}

static void on_tick(uv_timer_t *t)
{
	struct kl_walck *w = t->data;

	if (w->busy || kl_store_wal_pages(w->st) < CK_PAGES)
		return;
	w->busy = uv_queue_work(t->loop, &w->work, on_work, on_done) == 0;
}

int kl_walck_new(uv_loop_t *loop, struct kl_store *st, const char *path, struct kl_walck **ret)
{
	struct kl_walck *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	r = kl_store_ck_open(path, &w->ck);
	if (r < 0) {
		free(w);
		return r;
	}
	w->st = st;
	kl_store_wal_defer(st);
	w->work.data = w;
	uv_timer_init(loop, &w->timer);
	w->timer.data = w;
	uv_timer_start(&w->timer, on_tick, TICK_MS, TICK_MS);
	*ret = w;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	struct kl_walck *w = h->data;

	w->closed = true;
	release(w);
}

void kl_walck_stop(struct kl_walck *w)
{
	if (!w || uv_is_closing((uv_handle_t *)&w->timer))
		return;
	uv_close((uv_handle_t *)&w->timer, on_closed);
}
