/* The heal's hole search on the thread pool (hunt.h). */
#include "hunt.h"

#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct kl_hunt {
	uv_loop_t *loop;
	uv_work_t work;
	struct kl_store *st;
	char *path;
	bool busy, stopped;
	struct kl_store *ro; /* used by the pool's thread only while busy */
	struct kl_hunt_item *items;
	size_t n;
	kl_hunt_cb done;
	void *ud;
};

static void release(struct kl_hunt *hu)
{
	for (size_t i = 0; hu->items && i < hu->n; i++)
		kl_ranges_clear(&hu->items[i].holes);
	free(hu->items);
	kl_store_close(hu->ro);
	free(hu->path);
	free(hu);
}

/* One read transaction per symbol, as the verifier's: a snapshot held for the
 * whole list would keep the loop's checkpoints from finishing. */
static void on_work(uv_work_t *w)
{
	struct kl_hunt *hu = w->data;

	for (size_t i = 0; i < hu->n; i++) {
		struct kl_hunt_item *it = &hu->items[i];
		int r = kl_store_read_begin(hu->ro);

		it->r = r < 0 ? r : kl_store_holes(hu->ro, it->sid, it->from, it->to, &it->holes);
		if (r == 0)
			kl_store_read_end(hu->ro);
	}
}

static void on_done(uv_work_t *w, int status)
{
	struct kl_hunt *hu = w->data;

	struct kl_hunt_item *items = hu->items;

	(void)status; /* never cancelled: the search runs to its end */
	hu->busy = false;
	if (hu->stopped) {
		release(hu);
		return;
	}
	hu->items = NULL;
	hu->done(hu->ud, items, hu->n);
}

int kl_hunt_new(uv_loop_t *loop, struct kl_store *st, const char *path, struct kl_hunt **ret)
{
	struct kl_hunt *hu = calloc(1, sizeof(*hu));

	if (!hu || !(hu->path = strdup(path))) {
		free(hu);
		return -ENOMEM;
	}
	hu->loop = loop;
	hu->st = st;
	hu->work.data = hu;
	*ret = hu;
	return 0;
}

int kl_hunt_run(struct kl_hunt *hu, struct kl_hunt_item *items, size_t n, kl_hunt_cb done, void *ud)
{
	char err[256];
	int r;

	if (hu->busy)
		return -EBUSY;
	if (!hu->ro) {
		/* Opened on first use: a store made by this very start exists by now. */
		r = kl_store_open(hu->path, true, &hu->ro, err, sizeof(err));
		if (r < 0)
			return kl_log_errno(r, "heal", "cannot open the store to search it: %s",
					    err);
	}
	kl_store_holes_exact(hu->ro, kl_store_holes_is_exact(hu->st));
	hu->items = items;
	hu->n = n;
	hu->done = done;
	hu->ud = ud;
	r = uv_queue_work(hu->loop, &hu->work, on_work, on_done);
	if (r < 0)
		return kl_log_errno(-EIO, "heal", "cannot queue the hole search: %s",
				    uv_strerror(r));
	hu->busy = true;
	return 0;
}

bool kl_hunt_busy(const struct kl_hunt *hu)
{
	return hu->busy;
}

void kl_hunt_stop(struct kl_hunt *hu)
{
	if (!hu)
		return;
	hu->stopped = true;
	if (!hu->busy)
		release(hu);
}
