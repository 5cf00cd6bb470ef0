/*
 * One registry for the whole daemon (it runs one loop on one thread, so
 * plain integers suffice). Metric names follow Prometheus conventions:
 * klined_ prefix, _total for counters, base units (seconds). Histograms
 * have fixed buckets chosen for what they measure: a window commit is
 * sub-millisecond to tens of ms; event-to-commit adds Kafka's linger and
 * the commit batching, a few ms to seconds when something stalls.
 */
#include "metrics.h"

#include "prom.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PARTS   64
#define PENDING_MAX 4096 /* events awaiting their commit; beyond, not timed */

static const double commit_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
				       0.025,  0.05,	0.1,	0.25,  0.5,    1,     2.5};
static const double e2c_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
				    0.25,  0.5,	   1,	  2.5,	5,     10,   30};
/* The loop's lag: Binance wants a pong within a minute, systemd a watchdog ping within 60 s. */
static const double lag_bounds[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
				    0.25,  0.5,	  1,	 2.5,  5,    10,   30};

struct msym {
	const char *symbol;
	int64_t event_time;
};

struct registry {
	bool on;
	uint64_t c[KL_M_COUNT];
	int64_t c_at[KL_M_COUNT]; /* wall ms of each counter's last change: the page's health */
	int64_t rest_ok_at, rest_fail_at;
	uint64_t rest_status[600]; /* index: HTTP status; 0 transport error */
	int64_t weight_used, weight_limit;
	double retry_after_seconds;
	uint64_t refused;
	double refused_seconds;
	int64_t paused_until_ms;
	int64_t lag;
	struct {
		int32_t part;
		int64_t next;
	} pos[MAX_PARTS];
	size_t npos;
	struct msym *syms;
	size_t nsyms;
	int64_t pending[PENDING_MAX];
	size_t npending;
	uint64_t commits;
	struct kl_histo commit_h, e2c_h, lag_h;
	double lag_max;
	size_t archive_queued;
	int64_t bf_done, bf_total;
	double bf_rate, bf_eta;
	int bf_running;
	size_t sym_inactive, sym_held;
	size_t sym_followed, sym_streamed;
	int64_t started_ms;
};

static struct registry reg;

static int cmp_sym(const void *a, const void *b)
{
	return strcmp(((const struct msym *)a)->symbol, ((const struct msym *)b)->symbol);
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int kl_metrics_init(char *const *symbols, size_t n)
{
	kl_metrics_free();
	reg.syms = calloc(n ? n : 1, sizeof(*reg.syms));
	if (!reg.syms)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		reg.syms[i] = (struct msym){symbols[i], -1};
	qsort(reg.syms, n, sizeof(*reg.syms), cmp_sym);
	reg.nsyms = n;
	reg.lag = -1;
	kl_histo_init(&reg.commit_h, commit_bounds, sizeof(commit_bounds) / sizeof(double));
	kl_histo_init(&reg.e2c_h, e2c_bounds, sizeof(e2c_bounds) / sizeof(double));
	kl_histo_init(&reg.lag_h, lag_bounds, sizeof(lag_bounds) / sizeof(double));
	reg.started_ms = wall_ms();
	reg.on = true;
	return 0;
}

int kl_metrics_symbols(const char *const *symbols, size_t n)
{
	struct msym *v;

	if (!reg.on)
		return 0;
	if (!(v = calloc(n ? n : 1, sizeof(*v))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct msym *old = NULL;

		for (size_t k = 0; k < reg.nsyms && !old; k++)
			if (strcmp(reg.syms[k].symbol, symbols[i]) == 0)
				old = &reg.syms[k];
		v[i] = (struct msym){symbols[i], old ? old->event_time : -1};
	}
	qsort(v, n, sizeof(*v), cmp_sym);
	free(reg.syms);
	reg.syms = v;
	reg.nsyms = n;
	return 0;
}

void kl_metrics_free(void)
{
	free(reg.syms);
	memset(&reg, 0, sizeof(reg));
}

void kl_metrics_add(enum kl_metric m, uint64_t n)
{
	if (reg.on && m < KL_M_COUNT) {
		reg.c[m] += n;
		reg.c_at[m] = wall_ms();
	}
}

void kl_metrics_rest(long status)
{
	if (!reg.on)
		return;
	reg.rest_status[status >= 0 && status < 600 ? status : 0]++;
	if (status >= 200 && status < 300)
		reg.rest_ok_at = wall_ms();
	else
		reg.rest_fail_at = wall_ms();
}

void kl_metrics_rest_weight(int64_t used, int64_t limit)
{
	reg.weight_used = used;
	reg.weight_limit = limit;
}

void kl_metrics_retry_after(double seconds)
{
	if (!reg.on)
		return;
	reg.c[KL_M_RETRY_AFTER]++;
	reg.retry_after_seconds += seconds;
}

void kl_metrics_rest_refused(uint64_t n, double seconds, int64_t paused_until_ms)
{
	if (!reg.on)
		return;
	reg.refused += n;
	reg.refused_seconds += seconds;
	reg.paused_until_ms = paused_until_ms;
}

int64_t kl_metrics_consumer_lag_get(void)
{
	return reg.on ? reg.lag : -1;
}

void kl_metrics_consumer_lag(int64_t lag)
{
	reg.lag = lag;
}

void kl_metrics_consumer_position(int32_t partition, int64_t next)
{
	if (!reg.on)
		return;
	for (size_t i = 0; i < reg.npos; i++) {
		if (reg.pos[i].part == partition) {
			reg.pos[i].next = next;
			return;
		}
	}
	if (reg.npos < MAX_PARTS) {
		reg.pos[reg.npos].part = partition;
		reg.pos[reg.npos++].next = next;
	}
}

/* Per event: a binary search over the symbols, sorted at init. */
static struct msym *find(const char *symbol)
{
	struct msym key = {symbol, 0};

	if (!symbol || !reg.nsyms)
		return NULL;
	return bsearch(&key, reg.syms, reg.nsyms, sizeof(*reg.syms), cmp_sym);
}

void kl_metrics_event(const char *symbol, int64_t event_time, int64_t produced_ms)
{
	struct msym *s = find(symbol);

	if (!reg.on)
		return;
	reg.c[KL_M_EVENTS]++;
	reg.c_at[KL_M_EVENTS] = wall_ms();
	if (s && event_time > s->event_time)
		s->event_time = event_time;
	if (produced_ms > 0 && reg.npending < PENDING_MAX)
		reg.pending[reg.npending++] = produced_ms;
}

void kl_metrics_commit(double seconds)
{
	int64_t now = wall_ms();

	if (!reg.on)
		return;
	reg.commits++;
	kl_histo_observe(&reg.commit_h, seconds);
	for (size_t i = 0; i < reg.npending; i++) {
		int64_t d = now - reg.pending[i];
		kl_histo_observe(&reg.e2c_h, d < 0 ? 0 : (double)d / 1000.0);
	}
	reg.npending = 0;
}

void kl_metrics_archive_queued(size_t n)
{
	if (reg.on)
		reg.archive_queued = n;
}

void kl_metrics_loop_lag(double seconds)
{
	if (!reg.on)
		return;
	kl_histo_observe(&reg.lag_h, seconds);
	if (seconds > reg.lag_max)
		reg.lag_max = seconds;
}

void kl_metrics_loop_lag_get(uint64_t *count, double *max)
{
	*count = reg.lag_h.count;
	*max = reg.lag_max;
}

void kl_metrics_backfill(int64_t done, int64_t total, double rate, double eta, int running)
{
	reg.bf_done = done;
	reg.bf_total = total;
	reg.bf_rate = rate;
	reg.bf_eta = eta;
	reg.bf_running = running;
}

void kl_metrics_symbol_set(size_t followed, size_t streamed)
{
	reg.sym_followed = followed;
	reg.sym_streamed = streamed;
}

void kl_metrics_symbols_waiting(size_t inactive, size_t held)
{
	reg.sym_inactive = inactive;
	reg.sym_held = held;
}

int64_t kl_metrics_changed_at(enum kl_metric m)
{
	return m < KL_M_COUNT ? reg.c_at[m] : 0;
}

void kl_metrics_rest_last(int64_t *ok_ms, int64_t *fail_ms)
{
	*ok_ms = reg.rest_ok_at;
	*fail_ms = reg.rest_fail_at;
}

int64_t kl_metrics_started(void)
{
	return reg.started_ms;
}

uint64_t kl_metrics_commits(void)
{
	return reg.commits;
}

int64_t kl_metrics_event_time(const char *symbol)
{
	struct msym *s = find(symbol);

	return s ? s->event_time : -1;
}

void kl_metrics_backfill_get(int64_t *done, int64_t *total, double *rate, double *eta, int *running)
{
	*done = reg.bf_done;
	*total = reg.bf_total;
	*rate = reg.bf_rate;
	*eta = reg.bf_eta;
	*running = reg.bf_running;
}

/* A family of one unlabelled sample. */
static void one(struct kl_prom *p, const char *name, const char *type, const char *help, double v)
{
	kl_prom_family(p, name, type, help);
	kl_prom_sample(p, name, NULL, 0, v);
}

static void one_u64(struct kl_prom *p, const char *name, const char *help, uint64_t v)
{
	kl_prom_family(p, name, "counter", help);
	kl_prom_sample_u64(p, name, NULL, 0, v);
}

static void write_rest(struct kl_prom *p)
{
	char code[8];
	const char *lab[2] = {"status", code};

	kl_prom_family(p, "klined_rest_requests_total", "counter",
		       "REST answers by HTTP status (0: transport error or timeout)");
	for (int i = 0; i < 600; i++) {
		if (!reg.rest_status[i] && i != 200)
			continue;
		snprintf(code, sizeof(code), "%d", i);
		kl_prom_sample_u64(p, "klined_rest_requests_total", lab, 1, reg.rest_status[i]);
	}
	one(p, "klined_rest_used_weight", "gauge",
	    "request weight used in the current minute (X-MBX-USED-WEIGHT-1M)",
	    (double)reg.weight_used);
	one(p, "klined_rest_weight_limit", "gauge", "request weight allowed per minute",
	    (double)reg.weight_limit);
	one_u64(p, "klined_rest_retry_after_waits_total",
		"429/418 answers whose Retry-After stopped every request", reg.c[KL_M_RETRY_AFTER]);
	one(p, "klined_rest_retry_after_seconds_total", "counter",
	    "seconds of Retry-After waits begun", reg.retry_after_seconds);
	one_u64(p, "klined_rest_refused_total",
		"403/451/-1003/-1008/TLS answers (each pauses every request)", reg.refused);
	one(p, "klined_rest_refused_seconds_total", "counter",
	    "seconds of pauses begun after refusals", reg.refused_seconds);
	one(p, "klined_rest_paused_until_seconds", "gauge",
	    "unix time REST requests resume (0: not paused)", (double)reg.paused_until_ms / 1000.0);
}

static void write_stream(struct kl_prom *p)
{
	char part[16];
	const char *lab[2] = {"partition", part};

	one_u64(p, "klined_ws_connects_total", "websocket connections established",
		reg.c[KL_M_WS_CONNECTS]);
	one_u64(p, "klined_ws_reconnects_total", "websocket reconnections scheduled",
		reg.c[KL_M_WS_RECONNECTS]);
	one_u64(p, "klined_ws_rotations_total", "make-before-break websocket rotations",
		reg.c[KL_M_WS_ROTATIONS]);
	one_u64(p, "klined_ws_subscribed_total", "streams subscribed on live connections",
		reg.c[KL_M_WS_SUBSCRIBED]);
	one_u64(p, "klined_ws_unsubscribed_total", "streams unsubscribed on live connections",
		reg.c[KL_M_WS_UNSUBSCRIBED]);
	one_u64(
	    p, "klined_ws_control_messages_total",
	    "SUBSCRIBE/UNSUBSCRIBE messages sent (the exchange allows 5 messages/s per connection)",
	    reg.c[KL_M_WS_CONTROL]);
	one_u64(p, "klined_kafka_produced_total", "events queued to Kafka",
		reg.c[KL_M_KAFKA_PRODUCED]);
	one_u64(p, "klined_kafka_delivered_total", "events the broker acknowledged",
		reg.c[KL_M_KAFKA_DELIVERED]);
	one_u64(p, "klined_kafka_failed_total", "events Kafka failed to deliver",
		reg.c[KL_M_KAFKA_FAILED]);
	one_u64(p, "klined_kafka_dropped_total", "events dropped on a full producer queue",
		reg.c[KL_M_KAFKA_DROPPED]);
	one_u64(p, "klined_events_consumed_total", "events the speed layer consumed",
		reg.c[KL_M_EVENTS]);
	one_u64(p, "klined_late_events_total", "events dropped behind the watermark",
		reg.c[KL_M_LATE]);
	one_u64(p, "klined_events_foreign_total",
		"events of symbols this instance does not follow (another's on a shared topic): "
		"skipped unparsed",
		reg.c[KL_M_FOREIGN]);
	one_u64(
	    p, "klined_events_duplicate_total",
	    "events of a minute already closed (a repeat, or two instances producing one symbol): "
	    "absorbed",
	    reg.c[KL_M_DUPLICATES]);
	one_u64(p, "klined_store_write_failures_total",
		"speed-layer checkpoints lost to a failed store write, each followed by a rewind",
		reg.c[KL_M_STORE_FAILURES]);
	one_u64(p, "klined_kafka_producer_renewals_total", "producers replaced after a fatal error",
		reg.c[KL_M_KAFKA_RENEWED]);
	kl_prom_family(p, "klined_consumer_position", "gauge",
		       "next offset to read per partition, as committed to SQLite");
	for (size_t i = 0; i < reg.npos; i++) {
		snprintf(part, sizeof(part), "%d", (int)reg.pos[i].part);
		kl_prom_sample(p, "klined_consumer_position", lab, 1, (double)reg.pos[i].next);
	}
	one(p, "klined_consumer_lag", "gauge",
	    "messages between the consumer and the partitions' ends (-1 unknown)", (double)reg.lag);
	one_u64(p, "klined_window_commits_total", "speed-layer transactions committed",
		reg.commits);
	kl_prom_family(p, "klined_window_commit_seconds", "histogram",
		       "duration of one speed-layer transaction");
	kl_prom_histo(p, "klined_window_commit_seconds", NULL, 0, &reg.commit_h);
	kl_prom_family(p, "klined_event_to_commit_seconds", "histogram",
		       "from an event's arrival (its Kafka timestamp) to its commit in SQLite");
	kl_prom_histo(p, "klined_event_to_commit_seconds", NULL, 0, &reg.e2c_h);
	kl_prom_family(p, "klined_loop_lag_seconds", "histogram",
		       "how late the event loop ran a timer: the time something blocked it");
	kl_prom_histo(p, "klined_loop_lag_seconds", NULL, 0, &reg.lag_h);
	one(p, "klined_loop_lag_max_seconds", "gauge", "the longest loop lag since the start",
	    reg.lag_max);
}

static void write_symbols(struct kl_prom *p, int64_t now)
{
	const char *lab[2] = {"symbol", NULL};

	kl_prom_family(p, "klined_newest_event_timestamp_seconds", "gauge",
		       "exchange event time of the newest event per symbol");
	for (size_t i = 0; i < reg.nsyms; i++) {
		if (reg.syms[i].event_time < 0)
			continue;
		lab[1] = reg.syms[i].symbol;
		kl_prom_sample_ms(p, "klined_newest_event_timestamp_seconds", lab, 1,
				  reg.syms[i].event_time);
	}
	kl_prom_family(p, "klined_newest_event_age_seconds", "gauge",
		       "wall clock minus the newest event time per symbol");
	for (size_t i = 0; i < reg.nsyms; i++) {
		if (reg.syms[i].event_time < 0)
			continue;
		lab[1] = reg.syms[i].symbol;
		kl_prom_sample_ms(p, "klined_newest_event_age_seconds", lab, 1,
				  now - reg.syms[i].event_time);
	}
}

int kl_metrics_text(char **ret, size_t *len)
{
	struct kl_prom p = {0};
	const char *src[2] = {"source", NULL};
	static const char *const names[] = {"rest", "ws", "import"};
	int64_t now = wall_ms();
	char *s;

	kl_prom_family(&p, "klined_klines_stored_total", "counter",
		       "minute klines written to the store by source, this run");
	for (int i = 0; i < 3; i++) {
		src[1] = names[i];
		kl_prom_sample_u64(&p, "klined_klines_stored_total", src, 1,
				   reg.c[KL_M_KLINES_REST + i]);
	}
	write_rest(&p);
	write_stream(&p);
	write_symbols(&p, now);
	one(&p, "klined_backfill_running", "gauge", "1 while a backfill runs", reg.bf_running);
	one(&p, "klined_backfill_done_klines", "gauge",
	    "minute klines fetched in the current backfill", (double)reg.bf_done);
	one(&p, "klined_backfill_queued_klines", "gauge",
	    "minute klines queued in the current backfill", (double)reg.bf_total);
	one(&p, "klined_backfill_rows_per_second", "gauge", "backfill rate", reg.bf_rate);
	one(&p, "klined_backfill_eta_seconds", "gauge", "backfill time left", reg.bf_eta);
	one(&p, "klined_symbols_followed", "gauge", "symbols [exchange] symbols takes now",
	    (double)reg.sym_followed);
	one(&p, "klined_symbols_streamed", "gauge", "followed symbols streamed (TRADING)",
	    (double)reg.sym_streamed);
	one_u64(&p, "klined_symbols_added_total", "symbols taken while running (listings, reloads)",
		reg.c[KL_M_SYMBOLS_ADDED]);
	one_u64(&p, "klined_symbols_removed_total", "symbols no longer taken",
		reg.c[KL_M_SYMBOLS_REMOVED]);
	one_u64(&p, "klined_symbols_stopped_total", "followed symbols that left TRADING",
		reg.c[KL_M_SYMBOLS_STOPPED]);
	one(&p, "klined_symbols_inactive", "gauge",
	    "symbols the exchange answers -1121 for, checked again with exchangeInfo",
	    (double)reg.sym_inactive);
	one(&p, "klined_symbols_backing_off", "gauge",
	    "symbols whose klines pages were refused, waiting a growing backoff",
	    (double)reg.sym_held);
	one_u64(&p, "klined_backfill_pages_refused_total",
		"klines pages refused (403, 451, -1121, other 4xx): retried, never given up",
		reg.c[KL_M_PAGES_REFUSED]);
	{
		static const char *const results[] = {"loaded", "missing", "failed"};
		const char *res[2] = {"result", NULL};

		kl_prom_family(
		    &p, "klined_archive_files_total", "counter",
		    "data.binance.vision files by result (missing and failed: REST fills "
		    "them)");
		for (int i = 0; i < 3; i++) {
			res[1] = results[i];
			kl_prom_sample_u64(&p, "klined_archive_files_total", res, 1,
					   reg.c[KL_M_ARCHIVE_LOADED + i]);
		}
	}
	one_u64(&p, "klined_archive_bytes_total", "bytes of archive files downloaded",
		reg.c[KL_M_ARCHIVE_BYTES]);
	one(&p, "klined_archive_files_queued", "gauge", "archive files waiting or under way",
	    (double)reg.archive_queued);
	one(&p, "klined_start_time_seconds", "gauge", "wall time the daemon started",
	    (double)reg.started_ms / 1000.0);
	s = kl_prom_take(&p, len);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}
