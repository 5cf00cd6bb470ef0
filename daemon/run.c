/*
 * The daemon's top-level state machine, all on one libuv loop:
 *
 *   INFO    GET /api/v3/exchangeInfo?symbols=[..]  in chunks; a symbol the
 *           exchange does not list is named and left out (none: exit 78)
 *   TIME    GET /api/v3/time                        (the exchange's now)
 *   PLAN    per symbol: coverage start (listing: first kline), holes
 *   FILL    backfill every hole up to the last closed minute
 *   DAYS    refresh day rows of every symbol
 *   LIVE    (not with --once) the stream runs from PLAN on: websocket ->
 *           Kafka -> klined's consumer -> SQLite. Every HEAL_MS, and soon
 *           after each (re)connection, minutes the stream did not bring
 *           are fetched from REST; days the watermark has made final are
 *           certified from REST (refetched: REST wins) and become batch.
 *
 * Any state may be left for STOP on SIGTERM/SIGINT: the stream closes,
 * the consumer checkpoints, the producer flushes (bounded), REST requests
 * are dropped, fetched pages are committed, the store is closed, exit 0.
 */
#include "run.h"

#include "backfill.h"
#include "bus.h"
#include "day.h"
#include "http.h"
#include "info.h"
#include "log.h"
#include "lwsctx.h"
#include "metrics.h"
#include "notify.h"
#include "rest.h"
#include "speed.h"
#include "store.h"
#include "ws.h"
#include "xclock.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
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

struct rsym {
	struct run *run;
	const char *symbol; /* borrowed from conf */
	int64_t sid, start;
	int64_t want; /* history_start's coverage start; -1: from the listing */
	bool known, not_trading;
};

struct run {
	uv_loop_t loop;
	const struct kl_conf *conf;
	struct kl_store *st;
	struct kl_rest *rest;
	struct kl_backfill *bf;
	struct kl_bus *bus;
	struct kl_speed *speed;
	struct kl_ws *ws;
	struct kl_notify *notify;
	struct kl_http *http;
	uv_timer_t status_timer;
	uv_signal_t sigterm, sigint;
	uv_timer_t follow;
	struct rsym *syms;
	size_t nsyms, pending;
	struct kl_info_symbol *info; /* which of syms the exchange lists */
	char **wsyms;		     /* the listed symbols, for the stream (strings borrowed) */
	const char *phase;	     /* of the start-up, NULL once planned */
	int64_t now_ms, closed_end;
	int64_t settled_end;	/* following over REST: minutes before this were asked for */
	struct kl_xclock clock; /* the exchange's /time, sanity-checked */
	int64_t certify_before; /* days before this with ws minutes get certified */
	int64_t certifying;	/* the certification under way: redone if it fails */
	uint64_t healed_all_at; /* uv_now() of the last heal of the whole history */
	int exit_code;
	bool once, stopping, filling, heal_wanted, heal_all;
};

static void stop(struct run *run, int code)
{
	if (run->stopping)
		return;
	run->stopping = true;
	run->exit_code = code;
	kl_notify_free(run->notify);
	run->notify = NULL;
	kl_http_close(run->http);
	uv_close((uv_handle_t *)&run->status_timer, NULL);
	kl_ws_free(run->ws);
	run->ws = NULL;
	kl_speed_free(run->speed);
	run->speed = NULL;
	kl_bus_free(run->bus);
	run->bus = NULL;
	kl_rest_free(run->rest);
	run->rest = NULL;
	kl_backfill_free(run->bf);
	run->bf = NULL;
	uv_close((uv_handle_t *)&run->sigterm, NULL);
	uv_close((uv_handle_t *)&run->sigint, NULL);
	uv_close((uv_handle_t *)&run->follow, NULL);
}

/*
 * A store deleted or replaced under us would take everything written from
 * now on with its unlinked inode: stop (exit 1), so that systemd restarts
 * klined on a store at the path, which the next start fills from REST.
 * Reopening in place would have to swap the store under every layer.
 */
static bool store_gone(struct run *run)
{
	char err[4200];

	if (kl_store_file_check(run->st, err, sizeof(err)) == 0)
		return false;
	kl_err("store",
	       "the store was deleted or replaced while klined ran (%s): stopping, "
	       "so that a restart writes to the store at %s",
	       err, run->conf->db_path);
	stop(run, 1);
	return true;
}

/* One STATUS= line a second: what systemctl status shows. */
static void on_status(uv_timer_t *t)
{
	struct run *run = t->data;
	int64_t done, total;
	double rate, eta;
	size_t inactive, held;
	bool resumed;

	if (store_gone(run))
		return;
	if (run->phase) {
		struct kl_rest_stats rs;
		kl_rest_stats(run->rest, &rs);
		if (rs.paused_ms)
			kl_notify_status(run->notify, "%s: waiting %.0f s for the exchange (%s)",
					 run->phase, (double)rs.paused_ms / 1000.0, rs.why);
		else if (rs.retries)
			kl_notify_status(run->notify, "%s: retrying (%" PRIu64 " retries so far)",
					 run->phase, rs.retries);
		else
			kl_notify_status(run->notify, "%s", run->phase);
		return;
	}
	kl_backfill_progress(run->bf, &done, &total, &rate, &eta);
	kl_metrics_backfill(done, total, rate, eta, run->filling && total > 1440);
	kl_backfill_symbols(run->bf, &inactive, &held, &resumed);
	run->heal_all |= resumed;
	kl_metrics_symbols_waiting(inactive, held);
	if (inactive || held) {
		/* Said first: the operator must see why some symbols do not move. */
		kl_notify_status(
		    run->notify,
		    "%zu of %zu symbols set aside: %zu inactive (the exchange does not "
		    "list them; checked again), %zu refused by the exchange (backing off)",
		    inactive + held, run->nsyms, inactive, held);
	} else if (run->filling && total > 1440) {
		struct kl_rest_stats rs;
		kl_rest_stats(run->rest, &rs);
		kl_notify_status(
		    run->notify,
		    "backfill: %zu symbols, %" PRId64 "/%" PRId64
		    " minutes (%.1f%%), %.0f rows/s, ETA %.0f s, weight %" PRId64 "/%" PRId64,
		    run->nsyms, done, total, total ? 100.0 * (double)done / (double)total : 100.0,
		    rate, eta, rs.used_weight, rs.weight_limit);
	} else if (run->speed) {
		struct kl_speed_stats ss;
		struct kl_bus_stats bs;
		struct kl_ws_stats ws;
		kl_speed_stats(run->speed, &ss);
		kl_bus_stats(run->bus, &bs);
		kl_ws_stats(run->ws, &ws);
		kl_metrics_consumer_lag(bs.lag);
		if (ss.last_symbol)
			kl_notify_status(run->notify,
					 "streaming %zu symbols on %zu connections, %s %.2f, "
					 "consumer lag %" PRId64 " events, %" PRIu64 " late",
					 run->nsyms, ws.connected, ss.last_symbol, ss.last_close,
					 bs.lag < 0 ? 0 : bs.lag, ss.late);
		else
			kl_notify_status(run->notify, "waiting for the stream (%zu symbols)",
					 run->nsyms);
	} else {
		kl_notify_status(run->notify, "following the exchange over REST, %zu symbols",
				 run->nsyms);
	}
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct run *run = h->data;

	kl_info("run", "%s: stopping", strsignal(signum));
	stop(run, 0);
}

static void refresh_days(struct run *run)
{
	if (run->speed) {
		/* The stream's event times are the exchange's clock too, and fresher. */
		struct kl_speed_stats ss;
		kl_speed_stats(run->speed, &ss);
		if (kl_kline_slot(ss.last_event_time) > run->closed_end)
			run->closed_end = kl_kline_slot(ss.last_event_time);
	}
	for (size_t i = 0; i < run->nsyms; i++) {
		int n = kl_store_refresh_days(run->st, run->syms[i].sid, run->closed_end);
		if (n < 0) {
			/* The symbol's dirty mark stays: the next refresh redoes these days. */
			kl_err("run", "%s: cannot refresh days: %s", run->syms[i].symbol,
			       kl_store_errmsg(run->st));
			if (run->once)
				stop(run, 1);
			return;
		}
		if (n)
			kl_debug("run", "%s: %d days refreshed", run->syms[i].symbol, n);
	}
}

static void on_follow(uv_timer_t *t);

static void certify(struct run *run);

static void on_filled(void *ud, int status)
{
	struct run *run = ud;

	run->filling = false;
	if (status < 0 && (run->once || run->stopping)) {
		stop(run, 1);
		return;
	}
	if (status < 0) {
		/* Nothing stored was lost: the holes are still holes. A daemon waits
		 * for the disk or the lock to come back rather than exit. */
		if (run->certifying > run->certify_before)
			run->certify_before = run->certifying;
		run->certifying = 0;
		kl_warn("run", "backfill interrupted by a store error; retrying in %d s",
			STORE_RETRY_MS / 1000);
		uv_timer_start(&run->follow, on_follow, STORE_RETRY_MS, 0);
		return;
	}
	run->certifying = 0;
	refresh_days(run);
	if (run->stopping)
		return;
	if (run->once) {
		kl_info("run", "store is current up to %" PRId64 " (exchange time); exiting",
			run->closed_end);
		stop(run, 0);
		return;
	}
	if (!run->speed) {
		uv_timer_start(&run->follow, on_follow, FOLLOW_MS, 0);
		return;
	}
	kl_speed_reload(run->speed);
	if (run->certify_before > 0) {
		certify(run);
		return;
	}
	if (run->heal_wanted) {
		run->heal_wanted = false;
		uv_timer_start(&run->follow, on_follow, 0, 0);
		return;
	}
	uv_timer_start(&run->follow, on_follow, HEAL_MS, 0);
}

/* Queue the holes of [from, to) of every symbol (each from its own coverage start) and fetch. */
static void fill(struct run *run, int64_t from)
{
	struct kl_ranges holes = {0};
	int64_t now = run->now_ms;

	if (run->speed) {
		/* The stream's event times are the exchange's clock too, and fresher than a
		 * /time that was doubted (or not asked for a while). */
		struct kl_speed_stats ss;
		kl_speed_stats(run->speed, &ss);
		if (ss.last_event_time > now)
			now = ss.last_event_time;
	}
	for (size_t i = 0; i < run->nsyms; i++) {
		struct rsym *s = &run->syms[i];
		int64_t a = from > s->start ? from : s->start, to = run->closed_end;
		int64_t settled = kl_kline_slot(now - SETTLE_MS);
		int r;

		if (run->speed && from > 0) {
			/* While the stream is healthy, REST waits for what it hasn't brought yet.
			 */
			int64_t frontier = kl_speed_frontier(run->speed, s->sid, FRESH_MS);
			if (frontier >= 0 && frontier < to)
				to = frontier;
			else if (frontier >= 0)
				to -= HEAL_LAG_MS;
		}
		/* A bar fetched before it settled could be non-final, and REST wins. */
		if (to > settled)
			to = settled;
		r = kl_store_holes(run->st, s->sid, a, to, &holes);
		if (r == 0 && holes.n) {
			char t[21];
			kl_time_format(holes.v[0].from, t);
			if (from <= s->start || run->speed)
				kl_info("run",
					"%s: %" PRId64 " minutes missing in %zu ranges from %s",
					s->symbol, kl_ranges_minutes(&holes), holes.n, t);
			r = kl_backfill_add(run->bf, s->symbol, s->sid, &holes);
		}
		kl_backfill_not_trading(run->bf, s->sid, s->not_trading);
		kl_ranges_clear(&holes);
		if (r < 0) {
			kl_err("run", "%s: cannot plan the backfill: %s", s->symbol, strerror(-r));
			stop(run, 1);
			return;
		}
	}
	run->filling = true;
	kl_backfill_run(run->bf, run->now_ms, on_filled, run);
}

/* Refetch from REST every past day that still holds websocket minutes. */
static void certify(struct run *run)
{
	int64_t *pairs = NULL;
	int n = kl_store_uncertified(run->st, run->certify_before, &pairs);

	run->certifying = run->certify_before;
	run->certify_before = 0;
	if (n < 0) {
		kl_err("run", "cannot read the store: %s", kl_store_errmsg(run->st));
		stop(run, 1);
		return;
	}
	for (int i = 0; i < n; i++) {
		struct kl_ranges day = {0};
		char d[11];
		for (size_t k = 0; k < run->nsyms; k++) {
			if (run->syms[k].sid != pairs[2 * (size_t)i])
				continue;
			kl_day_format(pairs[2 * (size_t)i + 1], d);
			kl_info("run", "%s: certifying %s from REST", run->syms[k].symbol, d);
			if (kl_ranges_add(&day, pairs[2 * (size_t)i + 1],
					  pairs[2 * (size_t)i + 1] + KL_DAY_MS) < 0 ||
			    kl_backfill_add(run->bf, run->syms[k].symbol, run->syms[k].sid, &day) <
				0)
				stop(run, 1);
		}
		kl_ranges_clear(&day);
	}
	free(pairs);
	if (run->stopping)
		return;
	run->filling = true;
	kl_backfill_run(run->bf, run->now_ms, on_filled, run);
}

/* A /time far from the clock's own progress and the stream is not believed (lib/xclock.c). */
static bool believe_clock(struct run *run, int64_t server_ms)
{
	int64_t witness = -1;
	bool doubted = run->clock.doubts > 0, ok;

	if (run->speed) {
		struct kl_speed_stats ss;
		kl_speed_stats(run->speed, &ss);
		witness = ss.last_event_time > 0 ? ss.last_event_time : -1;
	}
	ok = kl_xclock_read(&run->clock, server_ms, uv_now(&run->loop), witness);
	if (!ok && !doubted) {
		char a[21], b[21];
		kl_time_format(server_ms, a);
		kl_time_format(run->now_ms, b);
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
	struct run *run = ud;
	json_t *j, *t;

	if (r->cancelled)
		return KL_REST_DONE;
	j = json_loadb(r->body, r->len, 0, NULL);
	t = json_object_get(j, "serverTime");
	if (r->status != 200 || !json_is_integer(t)) {
		json_decref(j);
		return KL_REST_RETRY;
	}
	if (believe_clock(run, json_integer_value(t))) {
		run->now_ms = json_integer_value(t);
		if (run->speed)
			kl_speed_set_clock(run->speed, run->now_ms);
		if (kl_kline_slot(run->now_ms) > run->closed_end)
			run->closed_end = kl_kline_slot(run->now_ms);
	}
	json_decref(j);
	/* A doubted reading changes nothing, but heals and fills go on. */
	if (run->filling)
		return KL_REST_DONE;
	if (run->speed) {
		int64_t back = run->closed_end - HEAL_DAYS * KL_DAY_MS;
		if (uv_now(&run->loop) - run->healed_all_at >= HEAL_ALL_MS || run->heal_all) {
			run->heal_all = false;
			run->healed_all_at = uv_now(&run->loop);
			back = 1;
		}
		fill(run, back > 0 ? back : 1);
	} else if (run->heal_all) {
		run->heal_all = false;
		fill(run, 1);
	} else if (kl_kline_slot(run->now_ms - SETTLE_MS) > run->settled_end) {
		/* Not from the last end: minutes not yet published then are holes now. */
		int64_t from = run->settled_end - FOLLOW_BACK_MS;
		run->settled_end = kl_kline_slot(run->now_ms - SETTLE_MS);
		fill(run, from > 0 ? from : 1);
	} else {
		uv_timer_start(&run->follow, on_follow, FOLLOW_MS, 0);
	}
	return KL_REST_DONE;
}

static void on_follow(uv_timer_t *t)
{
	struct run *run = t->data;

	if (kl_rest_get(run->rest, "/api/v3/time", 1, on_follow_time, run) < 0)
		stop(run, 1);
}

/* Events go to Kafka untouched; klined's consumer reads them back. */
static void on_ws_event(void *ud, const char *symbol, const char *data, size_t len)
{
	struct run *run = ud;

	kl_bus_produce(run->bus, symbol, strlen(symbol), data, len);
	if (run->speed)
		kl_speed_set_stream_time(run->speed, kl_ws_exchange_time(run->ws));
}

/* Whatever the stream did not bring comes from REST, soon. */
static void heal_soon(struct run *run)
{
	if (run->stopping)
		return;
	if (run->filling)
		run->heal_wanted = true;
	else if (!uv_is_active((uv_handle_t *)&run->follow) ||
		 uv_timer_get_due_in(&run->follow) > HEAL_SOON_MS)
		uv_timer_start(&run->follow, on_follow, HEAL_SOON_MS, 0);
}

static void on_ws_up(void *ud)
{
	heal_soon(ud);
}

static void on_gap(void *ud)
{
	heal_soon(ud);
}

static void on_day_final(void *ud, int64_t day_start)
{
	struct run *run = ud;

	if (day_start + KL_DAY_MS > run->certify_before)
		run->certify_before = day_start + KL_DAY_MS;
	if (!run->filling)
		certify(run);
}

/* Start the speed layer: consumer first, so nothing produced is skipped. */
static int start_stream(struct run *run)
{
	struct kl_speed_symbol *ss = calloc(run->nsyms, sizeof(*ss));
	char err[512];
	int r;

	if (!ss)
		return -ENOMEM;
	for (size_t i = 0; i < run->nsyms; i++)
		ss[i] = (struct kl_speed_symbol){run->syms[i].symbol, run->syms[i].sid};
	r = kl_bus_new(&run->loop, run->conf, &run->bus, err, sizeof(err));
	if (r == 0)
		r = kl_speed_new(&run->loop, run->st, run->bus, run->conf, ss, run->nsyms,
				 on_day_final, on_gap, run, &run->speed);
	free(ss);
	if (r == 0) {
		kl_speed_set_clock(run->speed, run->now_ms);
		r = kl_speed_start(run->speed);
	}
	if (r == 0)
		r = kl_ws_new(&run->loop, run->conf, &kl_ws_binance_limits, run->wsyms, run->nsyms,
			      on_ws_event, on_ws_up, run, &run->ws, err, sizeof(err));
	if (r == -EINVAL) {
		fprintf(stderr, "klined: %s\n", err);
		stop(run, 78);
	} else if (r < 0) {
		kl_err("run", "cannot start the stream: %s", r == -ENOMEM ? "out of memory" : err);
		stop(run, 1);
	}
	return r;
}

static int history_start(struct run *run, int64_t *ret)
{
	switch (run->conf->history_kind) {
	case KL_HISTORY_DAYS:
		*ret = kl_day_floor(run->now_ms) - run->conf->history_value * KL_DAY_MS;
		return 0;
	case KL_HISTORY_DATE:
		*ret = run->conf->history_value;
		return 0;
	case KL_HISTORY_LISTING:
		break;
	}
	return -EAGAIN;
}

static void plan_symbol(struct run *run, struct rsym *s, int64_t start)
{
	int r;

	if (!s->known) {
		s->start = start;
		r = kl_store_symbol(run->st, s->symbol, true, &s->start, &s->sid);
		if (r == 0)
			kl_info("run", "%s: new symbol, history from %" PRId64, s->symbol, start);
	} else if (start < s->start) {
		kl_info("run", "%s: history_start moved earlier, extending coverage", s->symbol);
		r = kl_store_symbol_extend(run->st, s->sid, start);
		s->start = start;
	} else {
		r = 0;
	}
	if (r < 0) {
		kl_err("run", "%s: cannot register: %s", s->symbol, kl_store_errmsg(run->st));
		stop(run, 1);
	}
}

static void planned(struct run *run)
{
	if (--run->pending || run->stopping)
		return;
	run->phase = NULL;
	if (kl_store_put_run(run->st, run->now_ms, KLINED_VERSION) < 0) {
		kl_err("run", "cannot write to the store: %s", kl_store_errmsg(run->st));
		stop(run, 1);
		return;
	}
	if (!run->once && strcmp(run->conf->kafka_brokers, "off") != 0) {
		if (start_stream(run) < 0)
			return;
		/* Days before today that the stream wrote are certified after the backfill. */
		run->certify_before = kl_day_floor(run->closed_end);
	}
	fill(run, 0);
}

static enum kl_rest_verdict on_listing(void *ud, const struct kl_rest_reply *r)
{
	struct rsym *s = ud;
	struct run *run = s->run;
	json_t *j = json_loadb(r->body, r->len, 0, NULL);
	json_t *t = json_array_get(json_array_get(j, 0), 0);
	char msg[256];
	int64_t from;
	if (r->cancelled)
		return KL_REST_DONE;

	if (r->status != 200 && s->want >= 0) {
		/* Only a clamp: the backfill deals with the symbol's refusals (inactive). */
		kl_rest_error_code(r, msg, sizeof(msg));
		kl_warn("run", "%s: cannot find the listing (%s); history from history_start",
			s->symbol, msg);
		json_decref(j);
		plan_symbol(run, s, s->want);
		planned(run);
		return KL_REST_DONE;
	}
	/* Never an exit: a restart would only ask again, costlier. */
	if (r->status != 200) {
		kl_rest_error_code(r, msg, sizeof(msg));
		kl_err("run", "%s: cannot find the listing: %s; asking again", s->symbol, msg);
		json_decref(j);
		return KL_REST_RETRY;
	}
	if (!json_is_array(j) || (json_array_size(j) && !json_is_integer(t))) {
		json_decref(j);
		return KL_REST_RETRY;
	}
	if (json_array_size(j) == 0) {
		/* Listed but never traded: waiting here would hold every other symbol's plan. */
		kl_warn("run", "%s: the exchange has no klines for it yet; history from %s",
			s->symbol, s->want >= 0 ? "history_start" : "today");
		json_decref(j);
		plan_symbol(run, s, s->want >= 0 ? s->want : kl_day_floor(run->now_ms));
		planned(run);
		return KL_REST_DONE;
	}
	/* Never before the listing: time before it is neither a hole nor an outage. */
	from = kl_day_floor(json_integer_value(t));
	if (s->want > from)
		from = s->want;
	plan_symbol(run, s, from);
	json_decref(j);
	planned(run);
	return KL_REST_DONE;
}

static void plan(struct run *run)
{
	run->phase = "finding where each symbol's history begins";
	run->pending = 1;
	for (size_t i = 0; i < run->nsyms && !run->stopping; i++) {
		struct rsym *s = &run->syms[i];
		int64_t from;
		char path[128];
		int r = kl_store_symbol(run->st, s->symbol, false, &s->start, &s->sid);

		if (r < 0 && r != -ENOENT) {
			kl_err("run", "%s: cannot read the store: %s", s->symbol,
			       kl_store_errmsg(run->st));
			stop(run, 1);
			return;
		}
		s->known = r == 0;
		s->want = history_start(run, &from) == 0 ? from : -1;
		if (s->known && (s->want < 0 || s->want >= s->start))
			continue; /* coverage unchanged */
		/* New, or history_start moved earlier: never before the listing. */
		snprintf(path, sizeof(path),
			 "/api/v3/klines?symbol=%s&interval=1m&startTime=0&limit=1", s->symbol);
		run->pending++;
		if (kl_rest_get(run->rest, path, 2, on_listing, s) < 0) {
			stop(run, 1);
			return;
		}
	}
	if (!run->stopping)
		planned(run);
}

static enum kl_rest_verdict on_time(void *ud, const struct kl_rest_reply *r)
{
	struct run *run = ud;
	json_t *j = json_loadb(r->body, r->len, 0, NULL);
	json_t *t = json_object_get(j, "serverTime");
	if (r->cancelled)
		return KL_REST_DONE;

	if (r->status != 200 || !json_is_integer(t)) {
		json_decref(j);
		return KL_REST_RETRY;
	}
	run->now_ms = json_integer_value(t);
	run->closed_end = kl_kline_slot(run->now_ms);
	kl_xclock_read(&run->clock, run->now_ms, uv_now(&run->loop), -1);
	json_decref(j);
	kl_info("run", "exchange time %" PRId64 ", last closed minute ends at %" PRId64,
		run->now_ms, run->closed_end);
	plan(run);
	return KL_REST_DONE;
}

/* Every symbol answered for: go on with the listed ones, or exit 78 when none is. */
static void on_info_done(void *ud, int status)
{
	struct run *run = ud;
	size_t n = 0;

	if (status < 0) {
		kl_err("run", "out of memory");
		stop(run, 1);
		return;
	}
	for (size_t i = 0; i < run->nsyms; i++) {
		if (run->info[i].listed) {
			run->wsyms[n] = (char *)(uintptr_t)run->syms[i].symbol;
			run->syms[i].not_trading = run->info[i].not_trading;
			run->syms[n++] = run->syms[i];
		}
	}
	if (n == 0) {
		fprintf(stderr,
			"klined: [exchange] symbols: the exchange lists none of the %zu "
			"configured symbols\n",
			run->nsyms);
		stop(run, 78);
		return;
	}
	if (n < run->nsyms)
		kl_warn("run", "running with %zu of the %zu configured symbols", n, run->nsyms);
	run->nsyms = n;
	run->phase = "asking the exchange for its clock";
	if (kl_rest_get(run->rest, "/api/v3/time", 1, on_time, run) < 0)
		stop(run, 1);
}

/* A ban or pause kept in the store outlives a restart: asking during it lengthens it. */
static void on_ban(void *ud, int64_t until_ms, const char *why)
{
	struct run *run = ud;

	if (kl_store_put_ban(run->st, until_ms, why) < 0)
		kl_warn("run", "cannot keep the ban's end in the store: %s",
			kl_store_errmsg(run->st));
	if (!run->stopping)
		on_status(&run->status_timer); /* say why now, not at the next tick */
}

static int start(struct run *run)
{
	int64_t until;
	char why[192];

	if (kl_store_get_ban(run->st, &until, why, sizeof(why)) == 0 && until > 0)
		kl_rest_pause_until(run->rest, until, why[0] ? why : "a ban kept in the store");
	kl_rest_on_ban(run->rest, on_ban, run);
	run->phase = "asking the exchange for its symbols";
	for (size_t i = 0; i < run->nsyms; i++)
		run->info[i] = (struct kl_info_symbol){.symbol = run->syms[i].symbol};
	return kl_info_check(run->rest, run->info, run->nsyms, on_info_done, run);
}

int kl_run(const struct kl_conf *conf, bool once)
{
	struct run *run = calloc(1, sizeof(*run));
	char err[512];
	int r, code = 1;

	if (!run)
		return 1;
	run->conf = conf;
	run->once = once;
	run->nsyms = conf->nsymbols;
	run->syms = calloc(conf->nsymbols, sizeof(*run->syms));
	run->wsyms = calloc(conf->nsymbols, sizeof(*run->wsyms));
	run->info = calloc(conf->nsymbols, sizeof(*run->info));
	if (!run->syms || !run->wsyms || !run->info)
		goto out;
	for (size_t i = 0; i < conf->nsymbols; i++)
		run->syms[i] = (struct rsym){.run = run, .symbol = conf->symbols[i]};
	r = kl_store_open(conf->db_path, false, &run->st, err, sizeof(err));
	if (r < 0) {
		kl_err("store", "%s", err);
		goto out;
	}
	kl_info("run", "klined %s: store %s, %zu symbols, exchange %s", KLINED_VERSION,
		conf->db_path, conf->nsymbols, conf->rest_url);
	uv_loop_init(&run->loop);
	if (kl_rest_new(&run->loop, conf, &run->rest) < 0 ||
	    kl_backfill_new(&run->loop, run->rest, run->st, &run->bf) < 0) {
		kl_err("run", "out of memory");
		kl_rest_free(run->rest);
		uv_run(&run->loop, UV_RUN_DEFAULT);
		uv_loop_close(&run->loop);
		goto out;
	}
	if (kl_metrics_init(conf->symbols, conf->nsymbols) < 0)
		kl_warn("run", "out of memory: no metrics");
	if (strcmp(conf->http_listen, "off") != 0 &&
	    kl_http_open(&run->loop, conf, &run->http, err, sizeof(err)) < 0)
		kl_warn("http", "%s: no page, API or metrics this run", err);
	if (kl_notify_new(&run->loop, &run->notify) < 0)
		kl_warn("run", "out of memory: no systemd notifications");
	kl_notify_ready(run->notify, "store open; asking the exchange for its clock");
	uv_timer_init(&run->loop, &run->status_timer);
	run->status_timer.data = run;
	uv_timer_start(&run->status_timer, on_status, 1000, 1000);
	uv_signal_init(&run->loop, &run->sigterm);
	uv_signal_init(&run->loop, &run->sigint);
	uv_timer_init(&run->loop, &run->follow);
	run->sigterm.data = run->sigint.data = run->follow.data = run;
	uv_signal_start(&run->sigterm, on_signal, SIGTERM);
	uv_signal_start(&run->sigint, on_signal, SIGINT);
	if (start(run) < 0)
		stop(run, 1);
	uv_run(&run->loop, UV_RUN_DEFAULT);
	kl_lwsctx_finish(); /* lws 4.1.6 frees foreign-loop contexts only now */
	kl_http_free(run->http);
	uv_run(&run->loop, UV_RUN_DEFAULT);
	r = uv_loop_close(&run->loop);
	if (r < 0)
		kl_err("run", "loop closed with handles open: %s", uv_strerror(r));
	code = run->exit_code;
out:
	run->st = kl_store_close(run->st);
	kl_metrics_free();
	free(run->syms);
	free(run->wsyms);
	free(run->info);
	free(run);
	return code;
}
