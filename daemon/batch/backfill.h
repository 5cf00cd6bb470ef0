/*
 * The batch layer's fetcher: turns missing minute ranges into REST pages
 * of 1000 klines, validates every kline, stores the good ones, keeps the
 * bad ones as rejects, and records as outages the minutes the exchange
 * shows it has none of (a halt it skips over; see backfill.c). Progress is logged every few
 * seconds.
 */
#pragma once

#include "gap.h"
#include "rest.h"
#include "store.h"

#include <uv.h>

struct kl_backfill;

/** Called once when every queued range is done (status 0) or on a store failure (< 0). */
typedef void (*kl_backfill_cb)(void *ud, int status);

/** @return 0 with *ret owned by the caller, or -ENOMEM. All arguments are borrowed. */
int kl_backfill_new(uv_loop_t *loop, struct kl_rest *rest, struct kl_store *st,
		    struct kl_backfill **ret);

/**
 * Queue @p ranges (copied) of @p symbol (borrowed; must outlive the
 * backfill). @return 0 or -ENOMEM.
 */
int kl_backfill_add(struct kl_backfill *bf, const char *symbol, int64_t sid,
		    const struct kl_ranges *ranges);

/**
 * Fetch everything queued; @p now_ms is the exchange's time (for the
 * rejects table). @p cb runs from the loop once all is done.
 */
int kl_backfill_run(struct kl_backfill *bf, int64_t now_ms, kl_backfill_cb cb, void *ud);

/** Route jansson's allocations through the page arenas; call once, before any thread. */
void kl_backfill_global_init(void);

/** Free the parsing threads' arenas; call once no backfill runs any more (before exit). */
void kl_backfill_global_cleanup(void);

/** Minutes queued and done since the last run started, rows/s and seconds left. */
void kl_backfill_progress(const struct kl_backfill *bf, int64_t *done, int64_t *total, double *rate,
			  double *eta);

/**
 * Symbols set aside: @p inactive (the exchange answered -1121; checked
 * again with exchangeInfo) and @p held (refused pages back off). @p resumed
 * is set once after an inactive symbol was listed again: its holes are due.
 */
void kl_backfill_symbols(struct kl_backfill *bf, size_t *inactive, size_t *held, bool *resumed);

/** The exchange reports @p sid in another status than TRADING (outage rule, backfill.c). */
void kl_backfill_not_trading(struct kl_backfill *bf, int64_t sid, bool not_trading);

/**
 * The symbols that got klines or outages stored since the last call, as a
 * new array of their ids in *@p sids (the caller frees it); forgotten here.
 * @return how many, or -ENOMEM (then they stay noted).
 */
int kl_backfill_take_written(struct kl_backfill *bf, int64_t **sids);

/**
 * Commit what was fetched and free. Free the REST client first: its
 * requests point into the backfill. NULL is fine.
 */
void kl_backfill_free(struct kl_backfill *bf);
