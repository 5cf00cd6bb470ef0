/*
 * The daemon's lifecycle, all on one libuv loop: construct the layers,
 * then
 *
 *   INFO    GET /api/v3/exchangeInfo?symbols=[..]  in chunks; a symbol the
 *           exchange does not list is named and left out (none: exit 78)
 *   TIME    GET /api/v3/time                        (the exchange's now)
 *   PLAN, FILL, FOLLOW or HEAL: the batch layer's schedule (batch/heal.c);
 *           the stream (not with --once) starts once PLAN is done:
 *           websocket -> Kafka -> klined's consumer -> SQLite, its events
 *           (up, gap, a day final) wired here into the heal.
 *
 * Any state may be left for STOP on SIGTERM/SIGINT: the stream closes,
 * the consumer checkpoints, the producer flushes (bounded), REST requests
 * are dropped, fetched pages are committed, the store is closed, exit 0.
 */
#include "run_int.h"

#include "backfill.h"
#include "day.h"
#include "bus.h"
#include "exchange.h"
#include "heal.h"
#include "http.h"
#include "info.h"
#include "kline.h"
#include "log.h"
#include "looplag.h"
#include "lwsctx.h"
#include "metrics.h"
#include "notify.h"
#include "rest.h"
#include "speed.h"
#include "status.h"
#include "store.h"
#include "symset.h"
#include "verify.h"
#include "walck.h"
#include "ws.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void stop(struct run *run, int code)
{
	if (run->stopping)
		return;
	run->stopping = true;
	run->exit_code = code;
	kl_notify_free(run->notify);
	run->notify = NULL;
	kl_looplag_free(run->lag);
	run->lag = NULL;
	kl_http_close(run->http);
	uv_close((uv_handle_t *)&run->status_timer, NULL);
	kl_ws_free(run->ws);
	run->ws = NULL;
	kl_speed_free(run->speed);
	run->speed = NULL;
	kl_bus_free(run->bus);
	run->bus = NULL;
	kl_heal_stop(run->heal);
	kl_verify_stop(run->verify);
	run->verify = NULL;
	kl_walck_stop(run->walck);
	run->walck = NULL;
	kl_resolve_stop(run->resolve); /* an exchangeInfo parsing on the pool outlives the client */
	kl_rest_free(run->rest);
	run->rest = NULL;
	kl_backfill_free(run->bf);
	run->bf = NULL;
	uv_close((uv_handle_t *)&run->sigterm, NULL);
	uv_close((uv_handle_t *)&run->sigint, NULL);
	uv_close((uv_handle_t *)&run->sighup, NULL);
}

void kl__run_stop(struct run *run, int code)
{
	stop(run, code);
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

/* One STATUS= line a second: what systemctl status shows (status.c). */
static void on_status(uv_timer_t *t)
{
	struct run *run = t->data;
	struct kl_status_in in = {
	    .notify = run->notify,
	    .rest = run->rest,
	    .bf = run->bf,
	    .speed = run->speed,
	    .bus = run->bus,
	    .ws = run->ws,
	    .phase = run->phase,
	    .nsyms = run->nsyms,
	    .filling = kl_heal_filling(run->heal),
	};

	if (store_gone(run))
		return;
	if (kl_status_report(&in))
		kl_heal_all_soon(run->heal);
	kl_heal_tick(run->heal);
	kl__follow_tick(run);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct run *run = h->data;

	if (signum == SIGHUP) {
		kl__follow_reload(run);
		return;
	}
	kl_info("run", "%s: stopping", strsignal(signum));
	stop(run, 0);
}

/* The speed layer as the heal sees it (batch never includes speed/). */
static int64_t stream_event_time(void *ud)
{
	struct run *run = ud;
	struct kl_speed_stats ss;

	kl_speed_stats(run->speed, &ss);
	return ss.last_event_time;
}

static int64_t stream_frontier(void *ud, int64_t sid, uint64_t fresh_ms)
{
	struct run *run = ud;

	return kl_speed_frontier(run->speed, sid, fresh_ms);
}

static void stream_set_clock(void *ud, int64_t now_ms)
{
	struct run *run = ud;

	kl_speed_set_clock(run->speed, now_ms);
}

static void stream_reload(void *ud, const int64_t *sids, size_t n)
{
	struct run *run = ud;

	kl_speed_reload(run->speed, sids, n);
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
static void on_ws_up(void *ud)
{
	struct run *run = ud;

	kl_heal_soon(run->heal);
}

static void on_gap(void *ud)
{
	struct run *run = ud;

	kl_heal_soon(run->heal);
}

static void on_day_final(void *ud, int64_t day_start)
{
	struct run *run = ud;

	kl_heal_day_final(run->heal, day_start);
}

/* Start the speed layer: consumer first, so nothing produced is skipped. */
static int start_stream(struct run *run)
{
	struct kl_speed_symbol *ss = calloc(run->nrs + 1, sizeof(*ss));
	char err[512];
	int r;

	if (!ss)
		return -ENOMEM;
	for (size_t i = 0; i < run->nrs; i++)
		ss[i] = (struct kl_speed_symbol){run->rs[i].symbol, run->rs[i].sid};
	r = kl_bus_new(&run->loop, run->conf, &run->bus, err, sizeof(err));
	if (r == 0)
		r = kl_speed_new(&run->loop, run->st, run->bus, run->conf, ss, run->nrs,
				 on_day_final, on_gap, run, &run->speed);
	free(ss);
	if (r == 0) {
		kl_speed_set_clock(run->speed, run->now_ms);
		r = kl_speed_start(run->speed);
	}
	if (r == 0)
		r = kl_ws_new(&run->loop, run->conf, &kl_ws_binance_limits,
			      (char *const *)(void *)run->streamed, run->nstreamed, on_ws_event,
			      on_ws_up, run, &run->ws, err, sizeof(err));
	if (r == -EINVAL) {
		fprintf(stderr, "klined: %s\n", err);
		stop(run, 78);
	} else if (r < 0) {
		kl_err("run", "cannot start the stream: %s", r == -ENOMEM ? "out of memory" : err);
		stop(run, 1);
	}
	return r;
}

/* The verifier found holes, or rows were deleted (by anyone): heal the whole history soon. */
static void on_verify_news(void *ud)
{
	struct run *run = ud;

	kl_heal_all_soon(run->heal);
	kl_heal_soon(run->heal);
}

static int64_t verify_sid(void *ud, size_t i)
{
	return kl_heal_sid(((struct run *)ud)->heal, i);
}

/* Every symbol's coverage is known: the stream (unless --once or brokers = off), then the fill. */
static void on_planned(void *ud)
{
	struct run *run = ud;
	bool stream = !run->once && strcmp(run->conf->kafka_brokers, "off") != 0;

	run->phase = NULL;
	kl__follow_planned(run);
	if (kl_store_put_run(run->st, run->now_ms, KLINED_VERSION) < 0) {
		kl_err("run", "cannot write to the store: %s", kl_store_errmsg(run->st));
		stop(run, 1);
		return;
	}
	if (stream && start_stream(run) < 0)
		return;
	run->stream = (struct kl_heal_stream){stream_event_time, stream_frontier, stream_set_clock,
					      stream_reload, run};
	kl_heal_start(run->heal, stream ? &run->stream : NULL);
}

static void on_heal_stop(void *ud, int code)
{
	stop(ud, code);
}

static enum kl_rest_verdict on_time(void *ud, const struct kl_rest_reply *r)
{
	struct run *run = ud;
	struct kl_heal_symbol *hs;

	if (r->cancelled)
		return KL_REST_DONE;
	if (r->status != 200 || kl_exchange_time(r->body, r->len, &run->now_ms) < 0)
		return KL_REST_RETRY;
	{
		char t[21], c[21];

		kl_time_format(run->now_ms, t);
		kl_time_format(kl_kline_slot(run->now_ms), c);
		kl_info("run", "exchange time %s, last closed minute ends at %s", t, c);
	}
	run->phase = "finding where each symbol's history begins";
	hs = calloc(run->nrs + 1, sizeof(*hs));
	for (size_t i = 0; hs && i < run->nrs; i++)
		hs[i] = (struct kl_heal_symbol){run->rs[i].symbol, !run->rs[i].trading};
	if (!hs || kl_heal_plan(run->heal, hs, run->nrs, run->now_ms) < 0) {
		kl_err("run", "out of memory");
		stop(run, 1);
	}
	free(hs);
	return KL_REST_DONE;
}

void kl__run_clock(struct run *run)
{
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
	return kl__follow_start(run);
}

int kl_run(const struct kl_conf *conf, bool once, const struct kl_run_reload *reload)
{
	struct run *run = calloc(1, sizeof(*run));
	struct kl_heal_cbs cbs = {on_planned, on_heal_stop, run};
	char err[512];
	int r, code = 1;

	if (!run)
		return 1;
	run->conf = conf;
	run->once = once;
	run->reload = reload;
	if (!(run->items = calloc(conf->nsymbols + 1, sizeof(*run->items))))
		goto out;
	for (; run->nitems < conf->nsymbols; run->nitems++)
		if (!(run->items[run->nitems] = strdup(conf->symbols[run->nitems])))
			goto out;
	r = kl_store_open(conf->db_path, false, &run->st, err, sizeof(err));
	if (r < 0) {
		kl_err("store", "%s", err);
		goto out;
	}
	kl_info("run", "klined %s: store %s, %zu symbols, exchange %s", KLINED_VERSION,
		conf->db_path, conf->nsymbols, conf->rest_url);
	uv_loop_init(&run->loop);
	if (kl_rest_new(&run->loop, conf, &run->rest) < 0 ||
	    kl_backfill_new(&run->loop, run->rest, run->st, &run->bf) < 0 ||
	    kl_heal_new(&run->loop, conf, run->st, run->rest, run->bf, once, &cbs, &run->heal) <
		0) {
		kl_err("run", "out of memory");
		kl_rest_free(run->rest);
		kl_backfill_free(run->bf);
		uv_run(&run->loop, UV_RUN_DEFAULT);
		uv_loop_close(&run->loop);
		goto out;
	}
	if (once) /* nothing waits for it: every hole is found before the exit */
		kl_store_holes_exact(run->st, true);
	else if (kl_verify_new(&run->loop, run->st, conf->db_path,
			       &(struct kl_verify_cbs){verify_sid, on_verify_news, run},
			       &run->verify, err, sizeof(err)) < 0) {
		kl_warn("heal", "%s: every hole search reads the whole history", err);
		kl_store_holes_exact(run->st, true); /* no mark moves */
	}
	if (kl_walck_new(&run->loop, run->st, conf->db_path, &run->walck) < 0)
		kl_warn("store",
			"cannot open the store for checkpoints: commits checkpoint inline");
	/* Patterns are resolved later (follow.c): their symbols are registered then. */
	if (kl_metrics_init(conf->symbols,
			    kl_symset_dynamic(conf->symbols, conf->nsymbols) ? 0 : conf->nsymbols) <
	    0)
		kl_warn("run", "out of memory: no metrics");
	/* 50 ms: fine enough for a 20 ms p99 goal, 20 wake-ups a second. */
	if (kl_looplag_start(&run->loop, 50, &run->lag) < 0)
		kl_warn("run", "out of memory: no loop lag metrics");
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
	uv_signal_init(&run->loop, &run->sighup);
	run->sigterm.data = run->sigint.data = run->sighup.data = run;
	uv_signal_start(&run->sigterm, on_signal, SIGTERM);
	uv_signal_start(&run->sigint, on_signal, SIGINT);
	uv_signal_start(&run->sighup, on_signal, SIGHUP);
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
	kl_heal_free(run->heal);
	kl_metrics_free();
	kl__follow_free(run);
	kl_symset_free(run->items, run->nitems);
	free(run);
	return code;
}
