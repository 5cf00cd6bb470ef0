/*
 * A fill's plan (heal_int.h): the archive's files for what is older than
 * two days, then each symbol's holes for REST. The hole search reads what
 * changed since the marks (store_holes.c), yet 1,500 symbols of it are
 * 15-30 ms every periodic heal and 0.2 s at a restart, so it runs in
 * slices of REFRESH_BUDGET_NS, one loop turn each: the stream's events
 * between them wait a slice, not the whole search. The fill counts as
 * under way from the first slice (h->filling), so a heal asked for
 * meanwhile follows it.
 */
#include "heal_int.h"

#include "archive.h"
#include "archplan.h"
#include "log.h"

#include <inttypes.h>
#include <string.h>

static void plan_some(uv_timer_t *t);

static void on_archived(void *ud, int status)
{
	struct kl_heal *h = ud;

	if (status < 0 || h->stopped) {
		kl__heal_on_filled(h, status);
		return;
	}
	kl__heal_fill_rest(h, h->fill_from);
}

/*
 * History older than two days comes from the archives first (archive.c),
 * whole months at a time, and REST fills what they lack. @return true if
 * the archive has files for it: the fill goes on from on_archived.
 */
static bool fill_archive(struct kl_heal *h, int64_t from)
{
	struct kl_ranges holes = {0};
	int64_t end = kl_arch_end(h->now_ms);
	int queued = 0;

	if (!h->archive || kl_archive_off(h->archive))
		return false;
	/* Only what the archive can have: a restart's recent gap is REST's alone, and
	 * its holes are searched once, by the REST plan. */
	if (end > h->closed_end)
		end = h->closed_end;
	for (size_t i = 0; i < h->nsyms; i++) {
		struct hsym *s = h->syms[i];
		int64_t a = from > s->start && !s->fresh ? from : s->start;
		int r = s->active && a < end ? kl_store_holes(h->st, s->sid, a, end, &holes) : 0;

		if (r == 0 && holes.n)
			r = kl_archive_add(h->archive, s->symbol, s->sid, &holes, h->now_ms);
		kl_ranges_clear(&holes);
		if (r < 0) {
			kl_warn("run", "%s: cannot plan the archive's files: %s; REST fills them",
				s->symbol, strerror(-r));
			return false;
		}
		queued += r;
	}
	if (queued == 0)
		return false;
	h->filling = true;
	h->fill_from = from;
	return kl_archive_run(h->archive, on_archived, h) == 0;
}

void kl__heal_fill(struct kl_heal *h, int64_t from)
{
	if (!fill_archive(h, from))
		kl__heal_fill_rest(h, from);
}

/* Queue the holes of [from, to) of every symbol (each from its own coverage start), then fetch. */
void kl__heal_fill_rest(struct kl_heal *h, int64_t from)
{
	int64_t now = h->now_ms;

	if (kl__heal_stream_time(h) > now)
		now = kl__heal_stream_time(h);
	/* The slices take h->follow: a heal it was waiting to start follows the fill. */
	if (uv_is_active((uv_handle_t *)&h->follow))
		h->heal_wanted = true;
	h->filling = true;
	h->plan_from = from;
	h->plan_now = now;
	h->plan_at = 0;
	h->plan_missing = 0;
	h->plan_nmissing = 0;
	plan_some(&h->follow);
}

/* The holes of one symbol into the backfill. @return 0, or -errno (said). */
static int plan_one(struct kl_heal *h, struct hsym *s)
{
	struct kl_ranges holes = {0};
	int64_t from = h->plan_from, now = h->plan_now;
	int64_t a = from > s->start && !s->fresh ? from : s->start, to = h->closed_end;
	int64_t settled = kl_kline_slot(now - SETTLE_MS);
	int r;

	s->fresh = false;
	if (h->stream && from > 0) {
		/* While the stream is healthy, REST waits for what it hasn't brought yet. */
		int64_t frontier = h->stream->frontier(h->stream->ud, s->sid, FRESH_MS);
		if (frontier >= 0 && frontier < to)
			to = frontier;
		else if (frontier >= 0)
			to -= HEAL_LAG_MS;
	}
	/* A bar fetched before it settled could be non-final, and REST wins. */
	if (to > settled)
		to = settled;
	r = kl_store_holes(h->st, s->sid, a, to, &holes);
	if (r == 0 && holes.n) {
		char t[21];
		kl_time_format(holes.v[0].from, t);
		int64_t n = kl_ranges_minutes(&holes);

		/* A heal's minute or two is routine (REST publishes late): debug. So
		 * is each symbol's line when many are followed: one line sums them. */
		kl_log((from <= s->start || n > 2) && h->nsyms <= LOG_EACH_MAX ? KL_LOG_INFO
									       : KL_LOG_DEBUG,
		       "run", "%s: %" PRId64 " minute%s missing in %zu range%s from %s", s->symbol,
		       n, n == 1 ? "" : "s", holes.n, holes.n == 1 ? "" : "s", t);
		h->plan_missing += n;
		h->plan_nmissing++;
		r = kl_backfill_add(h->bf, s->symbol, s->sid, &holes);
	}
	kl_backfill_not_trading(h->bf, s->sid, s->not_trading);
	kl_ranges_clear(&holes);
	if (r < 0)
		kl_err("run", "%s: cannot plan the backfill: %s", s->symbol, strerror(-r));
	return r;
}

/* h->syms only grows (a symbol left out stays, inactive): an index is a cursor. */
static void plan_some(uv_timer_t *t)
{
	struct kl_heal *h = t->data;
	uint64_t t0 = uv_hrtime();

	while (h->plan_at < h->nsyms && uv_hrtime() - t0 < REFRESH_BUDGET_NS) {
		struct hsym *s = h->syms[h->plan_at++];

		if (s->active && plan_one(h, s) < 0) {
			kl__heal_stop(h, 1);
			return;
		}
	}
	if (h->stopped)
		return;
	if (h->plan_at < h->nsyms) {
		/* Not 0 ms: libuv 1.44 runs a timer re-armed with 0 in the same pass. */
		uv_timer_start(&h->follow, plan_some, 1, 0);
		return;
	}
	if (h->plan_nmissing && h->nsyms > LOG_EACH_MAX &&
	    (h->plan_from <= 0 || h->plan_missing > 2 * (int64_t)h->plan_nmissing))
		kl_info("run", "%" PRId64 " minutes missing in %zu of %zu symbols", h->plan_missing,
			h->plan_nmissing, h->nsyms);
	kl_backfill_run(h->bf, h->now_ms, kl__heal_on_filled, h);
}
