/*
 * The daemon's metrics: counters, gauges and histograms in one process-wide
 * registry, written as Prometheus text by /metrics. Modules record with
 * one-line calls where things happen; every call is a few arithmetic
 * operations on the loop's thread, safe before kl_metrics_init() and
 * after kl_metrics_free() (they are then no-ops), so nothing depends on
 * whether the HTTP endpoint is on.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

enum kl_metric {
	KL_M_KLINES_REST,   /* klines written by source: REST ... */
	KL_M_KLINES_WS,	    /* ... the stream (closed minutes) ... */
	KL_M_KLINES_IMPORT, /* ... and dumps */
	KL_M_RETRY_AFTER,   /* 429/418 answers honoured */
	KL_M_WS_CONNECTS,
	KL_M_WS_RECONNECTS,
	KL_M_WS_ROTATIONS,
	KL_M_KAFKA_PRODUCED,
	KL_M_KAFKA_DELIVERED,
	KL_M_KAFKA_FAILED,
	KL_M_KAFKA_DROPPED,   /* the local queue was full */
	KL_M_EVENTS,	      /* consumed by the speed layer */
	KL_M_LATE,	      /* dropped: behind the watermark */
	KL_M_FOREIGN,	      /* skipped: of a symbol not followed here (a shared topic) */
	KL_M_DUPLICATES,      /* absorbed: a minute already closed (e.g. two producers of it) */
	KL_M_STORE_FAILURES,  /* speed-layer checkpoints lost to a failed write (then a rewind) */
	KL_M_KAFKA_RENEWED,   /* producers replaced after a fatal error */
	KL_M_PAGES_REFUSED,   /* klines pages refused (403, 451, -1121...): retried or set aside */
	KL_M_ARCHIVE_LOADED,  /* archive files loaded ... */
	KL_M_ARCHIVE_MISSING, /* ... not there (404) ... */
	KL_M_ARCHIVE_FAILED,  /* ... given up (checksum, transport, a bad file): REST fills them */
	KL_M_ARCHIVE_BYTES,   /* bytes of archive files downloaded */
	KL_M_SYMBOLS_ADDED,   /* taken by [exchange] symbols while running (listings, reloads) */
	KL_M_SYMBOLS_REMOVED, /* no longer taken by it */
	KL_M_SYMBOLS_STOPPED, /* followed ones that left TRADING */
	KL_M_WS_SUBSCRIBED,   /* streams added on live connections (SUBSCRIBE confirmed) */
	KL_M_WS_UNSUBSCRIBED, /* ... and removed (UNSUBSCRIBE) */
	KL_M_WS_CONTROL,      /* JSON control messages sent */
	KL_M_COUNT
};

/** Register the symbols (borrowed; must outlive the registry). @return 0 or -ENOMEM. */
int kl_metrics_init(char *const *symbols, size_t n);

/**
 * The symbols followed from now on (borrowed; must outlive the registry or
 * the next call): the list once patterns are resolved. @return 0 or -ENOMEM
 * (the old list stays).
 */
int kl_metrics_symbols(const char *const *symbols, size_t n);

/** How many symbols are followed, and how many of them streamed (TRADING). */
void kl_metrics_symbol_set(size_t followed, size_t streamed);

/** Drop the registry (NULL-safe in spirit: calling it twice is fine). */
void kl_metrics_free(void);

/** Add @p n to a counter. */
void kl_metrics_add(enum kl_metric m, uint64_t n);

/** A REST answer: @p status is the HTTP status, 0 for a transport error. */
void kl_metrics_rest(long status);

/** The request weight used in the current minute, as the exchange reports it. */
void kl_metrics_rest_weight(int64_t used, int64_t limit);

/** A Retry-After wait of @p seconds began. */
void kl_metrics_retry_after(double seconds);

/**
 * The exchange refused a request in a way only time cures (403, 451,
 * -1003/-1008 bodies, an unverifiable certificate): every request waits
 * @p seconds (0: the pause already running covers it); @p n answers. @p paused_until_ms: wall-clock
 * end of the pause (0: none).
 */
void kl_metrics_rest_refused(uint64_t n, double seconds, int64_t paused_until_ms);

/** The consumer's lag (messages behind the partitions' ends; < 0 unknown). */
void kl_metrics_consumer_lag(int64_t lag);

/** The consumer's lag as last measured (-1 unknown). */
int64_t kl_metrics_consumer_lag_get(void);

/** The consumer's stored position: the next offset of @p partition. */
void kl_metrics_consumer_position(int32_t partition, int64_t next);

/**
 * An event of @p symbol applied: its exchange event time, and the wall
 * time (ms) it was produced into Kafka, i.e. received (0 unknown). The
 * latter waits for the next kl_metrics_commit().
 */
void kl_metrics_event(const char *symbol, int64_t event_time, int64_t produced_ms);

/** Archive files waiting or under way. */
void kl_metrics_archive_queued(size_t n);

/** The loop ran a timer @p seconds after it was due (daemon/core/looplag.c). */
void kl_metrics_loop_lag(double seconds);

/** The loop lags measured so far and the longest. */
void kl_metrics_loop_lag_get(uint64_t *count, double *max);

/** The speed layer committed a window transaction taking @p seconds. */
void kl_metrics_commit(double seconds);

/** Backfill progress: minutes done of total, rows/s, seconds left; @p running 0/1. */
/** Symbols the backfill set aside: inactive (-1121) and backing off after a refusal. */
void kl_metrics_symbols_waiting(size_t inactive, size_t held);

void kl_metrics_backfill(int64_t done, int64_t total, double rate, double eta, int running);

/** @return the number of speed commits so far (the page's hint that today moved). */
uint64_t kl_metrics_commits(void);

/** @return the wall time (ms) counter @p m last changed, 0 never (the page's health). */
int64_t kl_metrics_changed_at(enum kl_metric m);

/** The wall times (ms) of the last 2xx REST answer and of the last other one (0: none). */
void kl_metrics_rest_last(int64_t *ok_ms, int64_t *fail_ms);

/** @return the wall time (ms) the registry started, 0 when off. */
int64_t kl_metrics_started(void);

/** @return the newest event time of @p symbol, or -1. */
int64_t kl_metrics_event_time(const char *symbol);

/** Backfill progress as last recorded. */
void kl_metrics_backfill_get(int64_t *done, int64_t *total, double *rate, double *eta,
			     int *running);

/**
 * The exposition text. @return 0 with *ret (caller frees) and *len, or
 * -ENOMEM.
 */
int kl_metrics_text(char **ret, size_t *len);
