/*
 * The batch layer's schedule (heal.h): PLAN, FILL, then FOLLOW or HEAL,
 * one fill at a time. Invariants:
 *   1. At most one backfill run is under way (filling); what asks for
 *      another meanwhile (a gap, a final day) is remembered, not lost.
 *   2. A minute is asked from REST only SETTLE_MS after it closed: a bar
 *      fetched before could be non-final, and REST wins.
 *   3. The exchange's /time is believed only when consistent (lib/xclock).
 *   4. After kl_heal_stop nothing is asked of rest, backfill or the stream.
 */
#include "heal.h"

#include "archive.h"
#include "day.h"
#include "exchange.h"
#include "log.h"
#include "xclock.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FOLLOW_MS      2000   /* without a stream ([kafka] brokers = off): poll the clock */
#define HEAL_MS	       30000  /* wall time between heals while streaming */
#define HEAL_SOON_MS   5000   /* after a (re)connection */
#define HEAL_DAYS      2      /* how far back a periodic heal looks */
#define HEAL_ALL_MS    120000 /* and this often the whole history: a refused kline, a row deleted */
#define HEAL_LAG_MS    120000
#define FRESH_MS       10000  /* a consumer this recently active is healthy */
#define STORE_RETRY_MS 5000   /* after a failed store write (disk full, a lock held) */
#define SETTLE_MS      30000  /* a minute is asked from REST this long after it closed */
#define FOLLOW_BACK_MS 600000 /* following over REST: holes this recent are tried again */
#define FILL_DAYS_S    3      /* during a fill, days are refreshed this often (kl_heal_tick) */

struct hsym {
	struct kl_heal *h;
	const char *symbol; /* borrowed */
	int64_t sid, start;
	int64_t want; /* history_start's coverage start; -1: from the listing */
	bool known, not_trading;
};

struct kl_heal {
	uv_loop_t *loop;
	const struct kl_conf *conf;
	struct kl_store *st;
	struct kl_rest *rest;
	struct kl_backfill *bf;
	struct kl_archive *archive;	     /* NULL: [archive] url = off */
	const struct kl_heal_stream *stream; /* NULL: following over REST */
	struct kl_heal_cbs cbs;
	uv_timer_t follow;
	struct hsym *syms;
	size_t nsyms, pending;
	int64_t now_ms, closed_end;
	int64_t settled_end;	/* following over REST: minutes before this were asked for */
	struct kl_xclock clock; /* the exchange's /time, sanity-checked */
	int64_t certify_before; /* days before this with ws minutes get certified */
	int64_t certifying;	/* the certification under way: redone if it fails */
	uint64_t healed_all_at; /* uv_now() of the last heal of the whole history */
	int64_t fill_from;	/* of the fill under way: the archive goes first */
	unsigned fill_ticks;	/* kl_heal_tick calls while filling */
	bool once, stopped, filling, heal_wanted, heal_all;
};

static void stop(struct kl_heal *h, int code)
{
	if (!h->stopped)
		h->cbs.stop(h->cbs.ud, code);
}

/* The stream's event times are the exchange's clock too, and fresher than a doubted /time. */
static int64_t stream_time(const struct kl_heal *h)
{
	return h->stream ? h->stream->event_time(h->stream->ud) : -1;
}

static void refresh_days(struct kl_heal *h)
{
	if (h->stream && kl_kline_slot(stream_time(h)) > h->closed_end)
		h->closed_end = kl_kline_slot(stream_time(h));
	for (size_t i = 0; i < h->nsyms; i++) {
		int n = kl_store_refresh_days(h->st, h->syms[i].sid, h->closed_end);
		if (n < 0) {
			/* The symbol's dirty mark stays: the next refresh redoes these days. */
			kl_err("run", "%s: cannot refresh days: %s", h->syms[i].symbol,
			       kl_store_errmsg(h->st));
			if (h->once)
				stop(h, 1);
			return;
		}
		if (n)
			kl_debug("run", "%s: %d days refreshed", h->syms[i].symbol, n);
	}
}

static void on_follow(uv_timer_t *t);

static void certify(struct kl_heal *h);

static void on_filled(void *ud, int status)
{
	struct kl_heal *h = ud;

	h->filling = false;
	if (status < 0 && (h->once || h->stopped)) {
		stop(h, 1);
		return;
	}
	if (status < 0) {
		/* Nothing stored was lost: the holes are still holes. A daemon waits
		 * for the disk or the lock to come back rather than exit. */
		if (h->certifying > h->certify_before)
			h->certify_before = h->certifying;
		h->certifying = 0;
		kl_warn("run", "backfill interrupted by a store error; retrying in %d s",
			STORE_RETRY_MS / 1000);
		uv_timer_start(&h->follow, on_follow, STORE_RETRY_MS, 0);
		return;
	}
	h->certifying = 0;
	refresh_days(h);
	if (h->stopped)
		return;
	if (h->once) {
		char t[21];

		kl_time_format(h->closed_end, t);
		kl_info("run", "store is current up to %s (exchange time); exiting", t);
		stop(h, 0);
		return;
	}
	if (!h->stream) {
		uv_timer_start(&h->follow, on_follow, FOLLOW_MS, 0);
		return;
	}
	h->stream->reload(h->stream->ud);
	if (h->certify_before > 0) {
		certify(h);
		return;
	}
	if (h->heal_wanted) {
		h->heal_wanted = false;
		uv_timer_start(&h->follow, on_follow, 0, 0);
		return;
	}
	uv_timer_start(&h->follow, on_follow, HEAL_MS, 0);
}

static void fill_rest(struct kl_heal *h, int64_t from);

static void on_archived(void *ud, int status)
{
	struct kl_heal *h = ud;

	if (status < 0 || h->stopped) {
		on_filled(h, status);
		return;
	}
	fill_rest(h, h->fill_from);
}

/*
 * History older than two days comes from the archives first (archive.c),
 * whole months at a time, and REST fills what they lack. @return true if
 * the archive has files for it: the fill goes on from on_archived.
 */
static bool fill_archive(struct kl_heal *h, int64_t from)
{
	struct kl_ranges holes = {0};
	int queued = 0;

	if (!h->archive || kl_archive_off(h->archive))
		return false;
	for (size_t i = 0; i < h->nsyms; i++) {
		struct hsym *s = &h->syms[i];
		int64_t a = from > s->start ? from : s->start;
		int r = kl_store_holes(h->st, s->sid, a, h->closed_end, &holes);

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

static void fill(struct kl_heal *h, int64_t from)
{
	if (!fill_archive(h, from))
		fill_rest(h, from);
}

/* Queue the holes of [from, to) of every symbol (each from its own coverage start) and fetch. */
static void fill_rest(struct kl_heal *h, int64_t from)
{
	struct kl_ranges holes = {0};
	int64_t now = h->now_ms;

	if (stream_time(h) > now)
		now = stream_time(h);
	for (size_t i = 0; i < h->nsyms; i++) {
		struct hsym *s = &h->syms[i];
		int64_t a = from > s->start ? from : s->start, to = h->closed_end;
		int64_t settled = kl_kline_slot(now - SETTLE_MS);
		int r;

		if (h->stream && from > 0) {
			/* While the stream is healthy, REST waits for what it hasn't brought yet.
			 */
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

			/* A heal's minute or two is routine (REST publishes late): debug. */
			kl_log(from <= s->start || n > 2 ? KL_LOG_INFO : KL_LOG_DEBUG, "run",
			       "%s: %" PRId64 " minute%s missing in %zu range%s from %s", s->symbol,
			       n, n == 1 ? "" : "s", holes.n, holes.n == 1 ? "" : "s", t);
			r = kl_backfill_add(h->bf, s->symbol, s->sid, &holes);
		}
		kl_backfill_not_trading(h->bf, s->sid, s->not_trading);
		kl_ranges_clear(&holes);
		if (r < 0) {
			kl_err("run", "%s: cannot plan the backfill: %s", s->symbol, strerror(-r));
			stop(h, 1);
			return;
		}
	}
	h->filling = true;
	kl_backfill_run(h->bf, h->now_ms, on_filled, h);
}

/* Refetch from REST every past day that still holds websocket minutes. */
static void certify(struct kl_heal *h)
{
	int64_t *pairs = NULL;
	int n = kl_store_uncertified(h->st, h->certify_before, &pairs);

	h->certifying = h->certify_before;
	h->certify_before = 0;
	if (n < 0) {
		kl_err("run", "cannot read the store: %s", kl_store_errmsg(h->st));
		stop(h, 1);
		return;
	}
	for (int i = 0; i < n; i++) {
		struct kl_ranges day = {0};
		char d[11];
		for (size_t k = 0; k < h->nsyms; k++) {
			if (h->syms[k].sid != pairs[2 * (size_t)i])
				continue;
			kl_day_format(pairs[2 * (size_t)i + 1], d);
			kl_info("run", "%s: certifying %s from REST", h->syms[k].symbol, d);
			if (kl_ranges_add(&day, pairs[2 * (size_t)i + 1],
					  pairs[2 * (size_t)i + 1] + KL_DAY_MS) < 0 ||
			    kl_backfill_add(h->bf, h->syms[k].symbol, h->syms[k].sid, &day) < 0)
				stop(h, 1);
		}
		kl_ranges_clear(&day);
	}
	free(pairs);
	if (h->stopped)
		return;
	h->filling = true;
	kl_backfill_run(h->bf, h->now_ms, on_filled, h);
}

/* A /time far from the clock's own progress and the stream is not believed (lib/xclock.c). */
static bool believe_clock(struct kl_heal *h, int64_t server_ms)
{
	int64_t witness = stream_time(h);
	bool doubted = h->clock.doubts > 0, ok;

	ok = kl_xclock_read(&h->clock, server_ms, uv_now(h->loop), witness > 0 ? witness : -1);
	if (!ok && !doubted) {
		char a[21], b[21];
		kl_time_format(server_ms, a);
		kl_time_format(h->now_ms, b);
		kl_warn("run",
			"the exchange's clock says %s, far from its own progress since %s and "
			"from the stream: not believed until it is consistent for %d s",
			a, b, KL_XCLOCK_CONFIRM_MS / 1000);
	} else if (ok && doubted) {
		kl_info("run", "the exchange's clock is consistent again");
	}
	return ok;
}

static enum kl_rest_verdict on_follow_time(void *ud, const struct kl_rest_reply *r)
{
	struct kl_heal *h = ud;
	int64_t server_ms;

	if (r->cancelled)
		return KL_REST_DONE;
	if (r->status != 200 || kl_exchange_time(r->body, r->len, &server_ms) < 0)
		return KL_REST_RETRY;
	if (believe_clock(h, server_ms)) {
		h->now_ms = server_ms;
		if (h->stream)
			h->stream->set_clock(h->stream->ud, h->now_ms);
		if (kl_kline_slot(h->now_ms) > h->closed_end)
			h->closed_end = kl_kline_slot(h->now_ms);
	}
	/* A doubted reading changes nothing, but heals and fills go on. */
	if (h->filling)
		return KL_REST_DONE;
	if (h->stream) {
		int64_t back = h->closed_end - HEAL_DAYS * KL_DAY_MS;
		if (uv_now(h->loop) - h->healed_all_at >= HEAL_ALL_MS || h->heal_all) {
			h->heal_all = false;
			h->healed_all_at = uv_now(h->loop);
			back = 1;
		}
		fill(h, back > 0 ? back : 1);
	} else if (h->heal_all) {
		h->heal_all = false;
		fill(h, 1);
	} else if (kl_kline_slot(h->now_ms - SETTLE_MS) > h->settled_end) {
		/* Not from the last end: minutes not yet published then are holes now. */
		int64_t from = h->settled_end - FOLLOW_BACK_MS;
		h->settled_end = kl_kline_slot(h->now_ms - SETTLE_MS);
		fill(h, from > 0 ? from : 1);
	} else {
		uv_timer_start(&h->follow, on_follow, FOLLOW_MS, 0);
	}
	return KL_REST_DONE;
}

static void on_follow(uv_timer_t *t)
{
	struct kl_heal *h = t->data;

	if (kl_rest_get(h->rest, "/api/v3/time", 1, on_follow_time, h) < 0)
		stop(h, 1);
}

void kl_heal_soon(struct kl_heal *h)
{
	if (h->stopped)
		return;
	if (h->filling)
		h->heal_wanted = true;
	else if (!uv_is_active((uv_handle_t *)&h->follow) ||
		 uv_timer_get_due_in(&h->follow) > HEAL_SOON_MS)
		uv_timer_start(&h->follow, on_follow, HEAL_SOON_MS, 0);
}

void kl_heal_day_final(struct kl_heal *h, int64_t day_start)
{
	if (day_start + KL_DAY_MS > h->certify_before)
		h->certify_before = day_start + KL_DAY_MS;
	if (!h->filling && !h->stopped)
		certify(h);
}

void kl_heal_all_soon(struct kl_heal *h)
{
	h->heal_all = true;
}

void kl_heal_tick(struct kl_heal *h)
{
	/* The refresh commits the open transaction: early for the backfill's pages
	 * (harmless), but never the stream's checkpoint, so with a stream only
	 * between transactions. Not while the archives load: each refresh would
	 * redo the days from the oldest new file to today (seconds of the loop for
	 * years of history); on_filled refreshes once at the end. */
	if (h && !h->stopped && h->filling && (!h->stream || !kl_store_in_tx(h->st)) &&
	    !(h->archive && kl_archive_running(h->archive)) && ++h->fill_ticks % FILL_DAYS_S == 0)
		refresh_days(h);
}

bool kl_heal_filling(const struct kl_heal *h)
{
	return h && h->filling;
}

void kl_heal_start(struct kl_heal *h, const struct kl_heal_stream *stream)
{
	h->stream = stream;
	/* Days before today that the stream wrote are certified after the backfill. */
	if (stream)
		h->certify_before = kl_day_floor(h->closed_end);
	fill(h, 0);
}

/* ------------------------------------------------------------------ PLAN */

static int history_start(struct kl_heal *h, int64_t *ret)
{
	switch (h->conf->history_kind) {
	case KL_HISTORY_DAYS:
		*ret = kl_day_floor(h->now_ms) - h->conf->history_value * KL_DAY_MS;
		return 0;
	case KL_HISTORY_DATE:
		*ret = h->conf->history_value;
		return 0;
	case KL_HISTORY_LISTING:
		break;
	}
	return -EAGAIN;
}

static void plan_symbol(struct kl_heal *h, struct hsym *s, int64_t start)
{
	int r;

	if (!s->known) {
		s->start = start;
		r = kl_store_symbol(h->st, s->symbol, true, &s->start, &s->sid);
		if (r == 0) {
			char t[21];

			kl_time_format(start, t);
			kl_info("run", "%s: new symbol, history from %s", s->symbol, t);
		}
	} else if (start < s->start) {
		kl_info("run", "%s: history_start moved earlier, extending coverage", s->symbol);
		r = kl_store_symbol_extend(h->st, s->sid, start);
		s->start = start;
	} else {
		r = 0;
	}
	if (r < 0) {
		kl_err("run", "%s: cannot register: %s", s->symbol, kl_store_errmsg(h->st));
		stop(h, 1);
	}
}

static void planned(struct kl_heal *h)
{
	if (--h->pending || h->stopped)
		return;
	h->cbs.planned(h->cbs.ud);
}

static enum kl_rest_verdict on_listing(void *ud, const struct kl_rest_reply *r)
{
	struct hsym *s = ud;
	struct kl_heal *h = s->h;
	char msg[256];
	int64_t from;
	int k;

	if (r->cancelled)
		return KL_REST_DONE;
	if (r->status != 200 && s->want >= 0) {
		/* Only a clamp: the backfill deals with the symbol's refusals (inactive). */
		kl_rest_error_code(r, msg, sizeof(msg));
		kl_warn("run", "%s: cannot find the listing (%s); history from history_start",
			s->symbol, msg);
		plan_symbol(h, s, s->want);
		planned(h);
		return KL_REST_DONE;
	}
	/* Never an exit: a restart would only ask again, costlier. */
	if (r->status != 200) {
		kl_rest_error_code(r, msg, sizeof(msg));
		kl_err("run", "%s: cannot find the listing: %s; asking again", s->symbol, msg);
		return KL_REST_RETRY;
	}
	k = kl_exchange_first_kline(r->body, r->len, &from);
	if (k == -EINVAL)
		return KL_REST_RETRY;
	if (k == -ENOENT) {
		/* Listed but never traded: waiting here would hold every other symbol's plan. */
		kl_warn("run", "%s: the exchange has no klines for it yet; history from %s",
			s->symbol, s->want >= 0 ? "history_start" : "today");
		plan_symbol(h, s, s->want >= 0 ? s->want : kl_day_floor(h->now_ms));
		planned(h);
		return KL_REST_DONE;
	}
	/* Never before the listing: time before it is neither a hole nor an outage. */
	from = kl_day_floor(from);
	if (s->want > from)
		from = s->want;
	plan_symbol(h, s, from);
	planned(h);
	return KL_REST_DONE;
}

int kl_heal_plan(struct kl_heal *h, const struct kl_heal_symbol *syms, size_t n, int64_t now_ms)
{
	struct hsym *v = calloc(n ? n : 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		v[i] = (struct hsym){
		    .h = h, .symbol = syms[i].symbol, .not_trading = syms[i].not_trading};
	free(h->syms);
	h->syms = v;
	h->nsyms = n;
	h->now_ms = now_ms;
	h->closed_end = kl_kline_slot(now_ms);
	kl_xclock_read(&h->clock, now_ms, uv_now(h->loop), -1);
	h->pending = 1;
	for (size_t i = 0; i < h->nsyms && !h->stopped; i++) {
		struct hsym *s = &h->syms[i];
		int64_t from;
		char path[128];
		int r = kl_store_symbol(h->st, s->symbol, false, &s->start, &s->sid);

		if (r < 0 && r != -ENOENT) {
			kl_err("run", "%s: cannot read the store: %s", s->symbol,
			       kl_store_errmsg(h->st));
			stop(h, 1);
			return 0;
		}
		s->known = r == 0;
		s->want = history_start(h, &from) == 0 ? from : -1;
		if (s->known && (s->want < 0 || s->want >= s->start))
			continue; /* coverage unchanged */
		/* New, or history_start moved earlier: never before the listing. */
		snprintf(path, sizeof(path),
			 "/api/v3/klines?symbol=%s&interval=1m&startTime=0&limit=1", s->symbol);
		h->pending++;
		if (kl_rest_get(h->rest, path, 2, on_listing, s) < 0) {
			stop(h, 1);
			return 0;
		}
	}
	if (!h->stopped)
		planned(h);
	return 0;
}

int64_t kl_heal_sid(const struct kl_heal *h, size_t i)
{
	return i < h->nsyms ? h->syms[i].sid : -1;
}

int kl_heal_new(uv_loop_t *loop, const struct kl_conf *conf, struct kl_store *st,
		struct kl_rest *rest, struct kl_backfill *bf, bool once,
		const struct kl_heal_cbs *cbs, struct kl_heal **ret)
{
	struct kl_heal *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	*h = (struct kl_heal){.loop = loop,
			      .conf = conf,
			      .st = st,
			      .rest = rest,
			      .bf = bf,
			      .cbs = *cbs,
			      .once = once};
	if (kl_archive_new(loop, conf, st, &h->archive) == -ENOMEM) {
		free(h);
		return -ENOMEM;
	}
	uv_timer_init(loop, &h->follow);
	h->follow.data = h;
	*ret = h;
	return 0;
}

void kl_heal_stop(struct kl_heal *h)
{
	if (!h || h->stopped)
		return;
	h->stopped = true;
	h->stream = NULL;
	h->rest = NULL;
	h->bf = NULL;
	kl_archive_free(h->archive);
	h->archive = NULL;
	uv_close((uv_handle_t *)&h->follow, NULL);
}

void kl_heal_free(struct kl_heal *h)
{
	if (!h)
		return;
	free(h->syms);
	free(h);
}
