/*
 * The speed layer's consumer: events from Kafka, parsed and validated
 * with the batch layer's code, applied to event-time day windows; closed
 * minutes, day rows and the consumer offsets commit in one SQLite
 * transaction, batched.
 */
#pragma once

#include "bus.h"
#include "conf.h"
#include "store.h"

#include <stdint.h>
#include <uv.h>

struct kl_speed;

/** A day's window is final for every symbol: it may be certified from REST. */
typedef void (*kl_speed_final_cb)(void *ud, int64_t day_start);

/** The stream skipped minutes of a symbol (or just began): REST should look soon. */
typedef void (*kl_speed_gap_cb)(void *ud);

struct kl_speed_symbol {
	const char *symbol; /* borrowed */
	int64_t sid;
};

/**
 * @p syms is copied (names stay borrowed). @return 0 with *ret owned by
 * the caller, or -ENOMEM.
 */
int kl_speed_new(uv_loop_t *loop, struct kl_store *st, struct kl_bus *bus,
		 const struct kl_conf *conf, const struct kl_speed_symbol *syms, size_t n,
		 kl_speed_final_cb on_final, kl_speed_gap_cb on_gap, void *ud,
		 struct kl_speed **ret);

/**
 * Follow @p symbol (borrowed: must outlive the speed layer) as store id
 * @p sid from its next event on; a known one is left as it is.
 * @return 0 or -ENOMEM.
 */
int kl_speed_add(struct kl_speed *sp, const char *symbol, int64_t sid);

/** Start consuming from the offsets stored in SQLite. @return 0 or -errno. */
int kl_speed_start(struct kl_speed *sp);

/** The exchange's clock as last read over REST, to refuse events from the future. */
void kl_speed_set_clock(struct kl_speed *sp, int64_t exchange_ms);

/** The exchange's time as klined's own websocket saw it (kl_ws_exchange_time): events
 * in the topic beyond both clocks did not come from the exchange. */
void kl_speed_set_stream_time(struct kl_speed *sp, int64_t exchange_ms);

/** Re-read the open windows of @p sids (borrowed; NULL: every symbol) from the store,
 * after REST wrote minutes into them. */
void kl_speed_reload(struct kl_speed *sp, const int64_t *sids, size_t n);

/**
 * The end of the newest minute of @p sid the consumer has closed within
 * the last @p fresh_ms of wall time; -1 when it has none that fresh.
 */
int64_t kl_speed_frontier(struct kl_speed *sp, int64_t sid, uint64_t fresh_ms);

struct kl_speed_stats {
	uint64_t events, closed, late, future, bad, duplicates, stale, unknown, commits;
	uint64_t store_failures; /* checkpoints lost to a failed write, each followed by a rewind */
	int64_t watermark, last_event_time;
	const char *last_symbol; /* of the newest applied event (borrowed), or NULL */
	double last_close;	 /* its close (the nearest double) */
	double commit_ms_max;
};
void kl_speed_stats(const struct kl_speed *sp, struct kl_speed_stats *ret);

/** Commit what is pending and free. NULL is fine. */
void kl_speed_free(struct kl_speed *sp);
