/*
 * A fill's plan (heal_int.h): the archive's files for what is older than
 * two days, then each symbol's holes for REST. The hole search reads what
 * changed since the marks (store_holes.c), yet 1,500 symbols of it are
 * 15-30 ms every periodic heal and 0.2 s at a restart: it runs on the
 * thread pool (hunt.c), and the loop only lays out the ranges and hands
 * the holes found to the archive or the backfill. The fill counts as
 * under way from the search (h->filling), so a heal asked for meanwhile
 * follows it.
 */
#include "heal_int.h"

#include "archive.h"
#include "archplan.h"
#include "log.h"

#include <inttypes.h>
#include <string.h>

static void on_archived(void *ud, int status)
{
	struct kl_heal *h = ud;

	if (status < 0 || h->stopped) {
		kl__heal_on_filled(h, status);
		return;
	}
	kl__heal_fill_rest(h, h->fill_from);
}

/* Room for one item per symbol. @return 0 or -ENOMEM. */
static int items_reserve(struct kl_heal *h)
{
	struct kl_hunt_item *v;

	if (h->items && h->items_cap >= h->nsyms)
		return 0;
	v = realloc(h->items, (h->nsyms ? h->nsyms : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	h->items = v;
	h->items_cap = h->nsyms;
	return 0;
}

/*
 * Search the items (h->items, handed to the hunt until @p done): on the
 * pool, or on the loop if the pool's connection cannot be had (slower,
 * not wrong).
 */
static void search(struct kl_heal *h, size_t n, kl_hunt_cb done)
{
	struct kl_hunt_item *items = h->items;

	if (h->hunt && kl_hunt_run(h->hunt, items, n, done, h) == 0) {
		h->items = NULL;
		h->items_cap = 0;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct kl_hunt_item *it = &items[i];
		it->r = kl_store_holes(h->st, it->sid, it->from, it->to, &it->holes);
	}
	h->items = NULL;
	h->items_cap = 0;
	done(h, items, n);
}

/* The items are the heal's again (for the next search's reuse). */
static void take_back(struct kl_heal *h, struct kl_hunt_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		kl_ranges_clear(&items[i].holes);
	if (h->items) {
		free(items);
		return;
	}
	h->items = items;
	h->items_cap = n;
}

static void on_archive_holes(void *ud, struct kl_hunt_item *items, size_t n)
{
	struct kl_heal *h = ud;
	bool ok = true;
	int queued = 0;

	for (size_t i = 0; i < n; i++) {
		struct kl_hunt_item *it = &items[i];
		const struct hsym *s = h->syms[it->tag];
		int r = it->r;

		if (ok && r == 0 && it->holes.n && !h->stopped)
			r = kl_archive_add(h->archive, s->symbol, s->sid, &it->holes, h->now_ms);
		if (ok && r < 0) {
			kl_warn("run", "%s: cannot plan the archive's files: %s; REST fills them",
				s->symbol, strerror(-r));
			ok = false;
		}
		if (r > 0)
			queued += r;
	}
	take_back(h, items, n);
	if (h->stopped)
		return;
	if (ok && queued > 0 && kl_archive_run(h->archive, on_archived, h) == 0)
		return;
	kl__heal_fill_rest(h, h->fill_from);
}

/*
 * History older than two days comes from the archives first (archive.c),
 * whole months at a time, and REST fills what they lack. @return true if
 * the archive may have files for it: the fill goes on from the search.
 */
static bool fill_archive(struct kl_heal *h, int64_t from)
{
	int64_t end = kl_arch_end(h->now_ms);
	size_t n = 0;

	if (!h->archive || kl_archive_off(h->archive) || items_reserve(h) < 0)
		return false;
	/* Only what the archive can have: a restart's recent gap is REST's alone, and
	 * its holes are searched once, by the REST plan. */
	if (end > h->closed_end)
		end = h->closed_end;
	for (size_t i = 0; i < h->nsyms; i++) {
		const struct hsym *s = h->syms[i];
		int64_t a = from > s->start && !s->fresh ? from : s->start;

		if (s->active && a < end)
			h->items[n++] =
			    (struct kl_hunt_item){.sid = s->sid, .from = a, .to = end, .tag = i};
	}
	if (n == 0)
		return false;
	h->filling = true;
	h->fill_from = from;
	search(h, n, on_archive_holes);
	return true;
}

void kl__heal_fill(struct kl_heal *h, int64_t from)
{
	if (!fill_archive(h, from))
		kl__heal_fill_rest(h, from);
}

/* The holes of one symbol into the backfill. @return 0, or -errno (said). */
static int plan_holes(struct kl_heal *h, const struct hsym *s, struct kl_hunt_item *it)
{
	const struct kl_ranges *holes = &it->holes;
	int r = it->r;

	if (r < 0) {
		/* Nothing is lost: the next heal searches it again. */
		kl_warn("run", "%s: cannot search the store for holes: %s", s->symbol,
			strerror(-r));
		r = 0;
	} else if (holes->n) {
		char t[21];
		kl_time_format(holes->v[0].from, t);
		int64_t n = kl_ranges_minutes(holes);

		/* A heal's minute or two is routine (REST publishes late): debug. So
		 * is each symbol's line when many are followed: one line sums them. */
		kl_log((it->from <= s->start || n > 2) && h->nsyms <= LOG_EACH_MAX ? KL_LOG_INFO
										   : KL_LOG_DEBUG,
		       "run", "%s: %" PRId64 " minute%s missing in %zu range%s from %s", s->symbol,
		       n, n == 1 ? "" : "s", holes->n, holes->n == 1 ? "" : "s", t);
		h->plan_missing += n;
		h->plan_nmissing++;
		r = kl_backfill_add(h->bf, s->symbol, s->sid, holes);
	}
	kl_backfill_not_trading(h->bf, s->sid, s->not_trading);
	if (r < 0)
		kl_err("run", "%s: cannot plan the backfill: %s", s->symbol, strerror(-r));
	return r;
}

static void on_rest_holes(void *ud, struct kl_hunt_item *items, size_t n)
{
	struct kl_heal *h = ud;
	int r = 0;

	for (size_t i = 0; i < n && r == 0 && !h->stopped; i++)
		r = plan_holes(h, h->syms[items[i].tag], &items[i]);
	take_back(h, items, n);
	if (h->stopped)
		return;
	if (r < 0) {
		kl__heal_stop(h, 1);
		return;
	}
	if (h->plan_nmissing && h->nsyms > LOG_EACH_MAX &&
	    (h->plan_from <= 0 || h->plan_missing > 2 * (int64_t)h->plan_nmissing))
		kl_info("run", "%" PRId64 " minutes missing in %zu of %zu symbols", h->plan_missing,
			h->plan_nmissing, h->nsyms);
	kl_backfill_run(h->bf, h->now_ms, kl__heal_on_filled, h);
}

/* Where a symbol's REST search ends: the settled minutes, and while its stream
 * is healthy what the stream has not brought yet waits for it. */
static int64_t rest_end(struct kl_heal *h, const struct hsym *s, int64_t from, int64_t now)
{
	int64_t to = h->closed_end, settled = kl_kline_slot(now - SETTLE_MS);

	if (h->stream && from > 0) {
		int64_t frontier = h->stream->frontier(h->stream->ud, s->sid, FRESH_MS);
		if (frontier >= 0 && frontier < to)
			to = frontier;
		else if (frontier >= 0)
			to -= HEAL_LAG_MS;
	}
	/* A bar fetched before it settled could be non-final, and REST wins. */
	return to > settled ? settled : to;
}

/* Queue the holes of [from, to) of every symbol (each from its own coverage start), then fetch. */
void kl__heal_fill_rest(struct kl_heal *h, int64_t from)
{
	int64_t now = h->now_ms;
	size_t n = 0;

	if (kl__heal_stream_time(h) > now)
		now = kl__heal_stream_time(h);
	/* A heal it was waiting to start follows the fill. */
	if (uv_is_active((uv_handle_t *)&h->follow)) {
		uv_timer_stop(&h->follow);
		h->heal_wanted = true;
	}
	h->filling = true;
	h->plan_from = from;
	h->plan_missing = 0;
	h->plan_nmissing = 0;
	if (items_reserve(h) < 0) {
		kl_err("run", "cannot plan the backfill: %s", strerror(ENOMEM));
		kl__heal_stop(h, 1);
		return;
	}
	for (size_t i = 0; i < h->nsyms; i++) {
		struct hsym *s = h->syms[i];
		int64_t a = from > s->start && !s->fresh ? from : s->start;

		if (!s->active)
			continue;
		s->fresh = false;
		h->items[n++] = (struct kl_hunt_item){
		    .sid = s->sid, .from = a, .to = rest_end(h, s, from, now), .tag = i};
	}
	search(h, n, on_rest_holes);
}
