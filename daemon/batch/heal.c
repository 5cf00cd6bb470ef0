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
#include "heal_int.h"

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

void kl__heal_stop(struct kl_heal *h, int code)
{
	if (!h->stopped)
		h->cbs.stop(h->cbs.ud, code);
}

static void stop(struct kl_heal *h, int code)
{
	kl__heal_stop(h, code);
}

/* The stream's event times are the exchange's clock too, and fresher than a doubted /time. */
int64_t kl__heal_stream_time(const struct kl_heal *h)
{
	return h->stream ? h->stream->event_time(h->stream->ud) : -1;
}

/* Refresh the days of @p s. @return false after a store error (said). */
static bool refresh_one(struct kl_heal *h, const struct hsym *s)
{
	int n = kl_store_refresh_days(h->st, s->sid, h->closed_end);

	if (n < 0) {
		/* The symbol's dirty mark stays: the next refresh redoes these days. */
		kl_err("run", "%s: cannot refresh days: %s", s->symbol, kl_store_errmsg(h->st));
		if (h->once)
			stop(h, 1);
		return false;
	}
	if (n)
		kl_debug("run", "%s: %d days refreshed", s->symbol, n);
	return true;
}

/* The active, planned symbol @p sid, or NULL. Lists come in the heal's order
 * mostly, so the search starts where the last one ended. */
static const struct hsym *heal_sym(struct kl_heal *h, int64_t sid)
{
	for (size_t k = 0; k < h->nsyms; k++) {
		const struct hsym *s = h->syms[(h->fin_hint + k) % h->nsyms];

		if (s->sid == sid && s->active && s->planned) {
			h->fin_hint = (h->fin_hint + k + 1) % h->nsyms;
			return s;
		}
	}
	return NULL;
}

static void advance_closed_end(struct kl_heal *h)
{
	if (h->stream && kl_kline_slot(kl__heal_stream_time(h)) > h->closed_end)
		h->closed_end = kl_kline_slot(kl__heal_stream_time(h));
}

static void on_follow(uv_timer_t *t);

static void certify(struct kl_heal *h);

static void finish_some(uv_timer_t *t);

/* The fill's last steps, once every symbol it wrote is refreshed (finish_some). */
static void filled(struct kl_heal *h)
{
	h->filling = h->finishing = false;
	if (h->once) {
		char t[21];

		kl_time_format(h->closed_end, t);
		kl_info("run", "store is current up to %s (exchange time); exiting", t);
		stop(h, 0);
		return;
	}
	h->refreshed_all = true;
	if (!h->stream) {
		uv_timer_start(&h->follow, on_follow, FOLLOW_MS, 0);
		return;
	}
	if (h->certify_before > 0) {
		certify(h);
		return;
	}
	if (h->heal_wanted) {
		h->heal_wanted = false;
		uv_timer_start(&h->follow, on_follow, 0, 0);
		return;
	}
	/* A heal asked for sooner (a reconnection) keeps its time. */
	if (!uv_is_active((uv_handle_t *)&h->follow) || uv_timer_get_due_in(&h->follow) > HEAL_MS)
		uv_timer_start(&h->follow, on_follow, HEAL_MS, 0);
}

/*
 * Refresh the days of what the fill wrote (h->fin) and let what REST wrote
 * replace the stream's view of those symbols: the stream keeps today's row
 * itself, and the days it wrote stay marked until their certification
 * writes them. After a certification that is every symbol, so it runs in
 * slices of REFRESH_BUDGET_NS, one loop turn each, and never inside the
 * stream's open checkpoint, which a refresh would commit early.
 */
static void finish_some(uv_timer_t *t)
{
	struct kl_heal *h = t->data;
	uint64_t t0 = uv_hrtime();

	advance_closed_end(h);
	/* Not 0 ms: libuv 1.44 runs a timer re-armed with 0 in the same pass, and
	 * the loop would poll nothing until the end. */
	if (h->stream && kl_store_in_tx(h->st)) {
		uv_timer_start(&h->follow, finish_some, 1, 0);
		return;
	}
	while (h->fin_at < h->fin_n && uv_hrtime() - t0 < REFRESH_BUDGET_NS) {
		const struct hsym *s = heal_sym(h, h->fin[h->fin_at]);

		if (s && !refresh_one(h, s)) {
			h->fin_n = h->fin_at; /* the marks stay: the next fill redoes them */
			break;
		}
		if (h->stopped)
			return;
		if (s && h->stream)
			h->stream->reload(h->stream->ud, &s->sid, 1);
		h->fin_at++;
	}
	if (h->fin_at < h->fin_n) {
		uv_timer_start(&h->follow, finish_some, 1, 0);
		return;
	}
	free(h->fin);
	h->fin = NULL;
	h->fin_n = h->fin_at = 0;
	filled(h);
}

/* Every active symbol: the first fill refreshes them all (a crash may have left marks). */
static int all_sids(struct kl_heal *h, int64_t **ret)
{
	int64_t *v = malloc((h->nsyms ? h->nsyms : 1) * sizeof(*v));
	int n = 0;

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < h->nsyms; i++) {
		if (h->syms[i]->active && h->syms[i]->planned)
			v[n++] = h->syms[i]->sid;
	}
	*ret = v;
	return n;
}

void kl__heal_on_filled(void *ud, int status)
{
	struct kl_heal *h = ud;
	int64_t *written = NULL;
	int nw;

	if (h->stopped) {
		h->filling = false;
		return;
	}
	if (status < 0 && h->once) {
		h->filling = false;
		stop(h, 1);
		return;
	}
	if (status < 0) {
		/* Nothing stored was lost: the holes are still holes. A daemon waits
		 * for the disk or the lock to come back rather than exit. */
		h->filling = false;
		if (h->certifying > h->certify_before)
			h->certify_before = h->certifying;
		h->certifying = 0;
		kl_warn("run", "backfill interrupted by a store error; retrying in %d s",
			STORE_RETRY_MS / 1000);
		uv_timer_start(&h->follow, on_follow, STORE_RETRY_MS, 0);
		return;
	}
	h->certifying = 0;
	nw = kl_backfill_take_written(h->bf, &written);
	if (!h->refreshed_all || nw < 0) {
		free(written);
		nw = all_sids(h, &written);
	}
	if (nw < 0) {
		kl_err("run", "cannot refresh the days: %s", strerror(-nw));
		stop(h, 1);
		return;
	}
	/* Still filling: a heal or a final day asked for meanwhile waits for the end. */
	h->finishing = true;
	h->fin = written;
	h->fin_n = (size_t)nw;
	h->fin_at = 0;
	finish_some(&h->follow);
}

/* Refetch from REST every past day that still holds websocket minutes. */
static void certify(struct kl_heal *h)
{
	int64_t *pairs = NULL;
	int n = kl_store_uncertified(h->st, h->certify_before, &pairs);
	size_t ncert = 0;

	h->certifying = h->certify_before;
	h->certify_before = 0;
	if (n < 0) {
		kl_err("run", "cannot read the store: %s", kl_store_errmsg(h->st));
		stop(h, 1);
		return;
	}
	size_t at = 0;

	for (int i = 0; i < n; i++) {
		struct kl_ranges day = {0};
		char d[11];
		/* The pairs come by sid, and so were the symbols registered: from the last one
		 * found, the next is a step away (1,500 symbol-days x 1,500 symbols otherwise). */
		for (size_t j = 0; j < h->nsyms; j++) {
			size_t k = (at + j) % h->nsyms;
			const struct hsym *s = h->syms[k];

			if (!s->active || s->sid != pairs[2 * (size_t)i])
				continue;
			at = k;
			kl_day_format(pairs[2 * (size_t)i + 1], d);
			kl_log(h->nsyms <= LOG_EACH_MAX ? KL_LOG_INFO : KL_LOG_DEBUG, "run",
			       "%s: certifying %s from REST", s->symbol, d);
			ncert++;
			if (kl_ranges_add(&day, pairs[2 * (size_t)i + 1],
					  pairs[2 * (size_t)i + 1] + KL_DAY_MS) < 0 ||
			    kl_backfill_add(h->bf, s->symbol, s->sid, &day) < 0)
				stop(h, 1);
			break;
		}
		kl_ranges_clear(&day);
	}
	free(pairs);
	if (h->stopped)
		return;
	if (ncert && h->nsyms > LOG_EACH_MAX)
		kl_info("run", "certifying %zu symbol-days from REST", ncert);
	h->filling = true;
	kl_backfill_run(h->bf, h->now_ms, kl__heal_on_filled, h);
}

/* A /time far from the clock's own progress and the stream is not believed (lib/xclock.c). */
static bool believe_clock(struct kl_heal *h, int64_t server_ms)
{
	int64_t witness = kl__heal_stream_time(h);
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
	/* A doubted reading changes nothing, but heals and fills go on. A heal
	 * due during a fill (a certification began after a reconnection asked
	 * for one) follows it rather than wait for the next period. */
	if (h->filling) {
		h->heal_wanted = true;
		return KL_REST_DONE;
	}
	if (h->stream) {
		int64_t back = h->closed_end - HEAL_DAYS * KL_DAY_MS;
		if (uv_now(h->loop) - h->healed_all_at >= HEAL_ALL_MS || h->heal_all) {
			h->heal_all = false;
			h->healed_all_at = uv_now(h->loop);
			back = 1;
		}
		kl__heal_fill(h, back > 0 ? back : 1);
	} else if (h->heal_all) {
		h->heal_all = false;
		kl__heal_fill(h, 1);
	} else if (kl_kline_slot(h->now_ms - SETTLE_MS) > h->settled_end) {
		/* Not from the last end: minutes not yet published then are holes now. */
		int64_t from = h->settled_end - FOLLOW_BACK_MS;
		h->settled_end = kl_kline_slot(h->now_ms - SETTLE_MS);
		kl__heal_fill(h, from > 0 ? from : 1);
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

/*
 * During the first fill (a long backfill) the page shows days as they
 * complete: a few symbols' days each time, within REFRESH_BUDGET_NS, from
 * where the last one stopped, so that 1,500 symbols never hold the loop.
 */
static void refresh_some(struct kl_heal *h)
{
	uint64_t t0 = uv_hrtime();

	advance_closed_end(h);
	for (size_t k = 0; k < h->nsyms && uv_hrtime() - t0 < REFRESH_BUDGET_NS; k++) {
		const struct hsym *s = h->syms[h->refresh_at++ % h->nsyms];

		if (s->active && s->planned && !refresh_one(h, s))
			return;
	}
}

void kl_heal_tick(struct kl_heal *h)
{
	/* The refresh commits the open transaction: early for the backfill's pages
	 * (harmless), but never the stream's checkpoint, so with a stream only
	 * between transactions. Not while the archives load: each refresh would
	 * redo the days from the oldest new file to today (seconds of the loop for
	 * years of history); the fill's end refreshes once (finish_some). */
	if (h && !h->stopped && h->filling && !h->finishing && !h->refreshed_all &&
	    (!h->stream || !kl_store_in_tx(h->st)) &&
	    !(h->archive && kl_archive_running(h->archive)) && ++h->fill_ticks % FILL_DAYS_S == 0)
		refresh_some(h);
}

int64_t kl_heal_now(const struct kl_heal *h)
{
	int64_t t = kl__heal_stream_time(h);

	return t > h->now_ms ? t : h->now_ms;
}

bool kl_heal_filling(const struct kl_heal *h)
{
	return h && h->filling;
}

void kl__heal_fresh(struct kl_heal *h)
{
	h->heal_all = true;
	kl_heal_soon(h);
}

void kl_heal_start(struct kl_heal *h, const struct kl_heal_stream *stream)
{
	h->stream = stream;
	h->started = true;
	/* Days before today that the stream wrote are certified after the backfill. */
	if (stream)
		h->certify_before = kl_day_floor(h->closed_end);
	kl__heal_fill(h, 0);
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
	for (size_t i = 0; i < h->nsyms; i++)
		free(h->syms[i]);
	free(h->syms);
	free(h->fin);
	free(h);
}
