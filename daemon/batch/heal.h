/*
 * The batch layer's schedule, after exchangeInfo and the first /time:
 *
 *   PLAN    per symbol: coverage start (history_start, never before the
 *           listing: the first kline), registered in the store
 *   FILL    backfill every hole up to the last settled minute, refresh days
 *   FOLLOW  without a stream: poll /time, fetch what has settled since
 *   HEAL    with a stream: every HEAL_MS, and soon after each (re)connection
 *           or gap, minutes the stream did not bring come from REST; days
 *           the watermark made final are certified (refetched: REST wins)
 *
 * It owns the follow timer and calls rest, backfill and store. The speed
 * layer is reached only through struct kl_heal_stream (run.c wires it):
 * batch never includes speed/.
 */
#pragma once

#include "backfill.h"
#include "conf.h"
#include "rest.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct kl_heal;

/** A listed symbol to plan: @p symbol borrowed (must outlive the heal). */
struct kl_heal_symbol {
	const char *symbol;
	bool not_trading; /* listed in another status than TRADING (BREAK, HALT...) */
};

/* What the schedule asks of the stream; every function gets @p ud. */
struct kl_heal_stream {
	/** The stream's newest event time (the exchange's clock too, and fresher), or <= 0. */
	int64_t (*event_time)(void *ud);
	/** Where @p sid's stream is complete up to, if it was active in the last @p fresh_ms; else
	 * -1. */
	int64_t (*frontier)(void *ud, int64_t sid, uint64_t fresh_ms);
	/** A /time reading was believed. */
	void (*set_clock)(void *ud, int64_t now_ms);
	/** A fill has ended: what REST wrote for @p sids (NULL: every symbol) replaces the
	 * stream's view of them. */
	void (*reload)(void *ud, const int64_t *sids, size_t n);
	void *ud;
};

/* Neither callback may free the heal (kl_heal_free waits for the loop to run out). */
struct kl_heal_cbs {
	/**
	 * Every symbol's coverage is in the store (kl_heal_sid answers): the
	 * owner starts the stream if it wants one, then calls kl_heal_start.
	 */
	void (*planned)(void *ud);
	/**
	 * Stop the daemon with exit @p code (a store error; the end of --once).
	 * The owner calls kl_heal_stop from it, never kl_heal_free.
	 */
	void (*stop)(void *ud, int code);
	void *ud;
};

/**
 * @p conf, @p st, @p rest, @p bf and @p cbs are borrowed; @p rest and
 * @p bf may be freed once kl_heal_stop has run. @p once: exit when the
 * store is current. @return 0 with *ret owned by the caller, or -ENOMEM.
 */
int kl_heal_new(uv_loop_t *loop, const struct kl_conf *conf, struct kl_store *st,
		struct kl_rest *rest, struct kl_backfill *bf, bool once,
		const struct kl_heal_cbs *cbs, struct kl_heal **ret);

/**
 * PLAN @p n symbols (@p syms copied; its strings borrowed) at exchange time
 * @p now_ms: probe the listing where needed, then cbs->planned runs, later.
 * A store error calls cbs->stop. @return 0 or -ENOMEM (then nothing runs).
 */
int kl_heal_plan(struct kl_heal *h, const struct kl_heal_symbol *syms, size_t n, int64_t now_ms);

/** The store's id of the i-th planned symbol (after cbs->planned). */
int64_t kl_heal_sid(const struct kl_heal *h, size_t i);

/** A symbol kl_heal_set added is registered: stream it (@p symbol borrowed). */
typedef void (*kl_heal_added_cb)(void *ud, const char *symbol, int64_t sid);

/**
 * After kl_heal_start: the set is now @p syms (copied; the strings borrowed,
 * they must outlive the heal), with each one's trading state. A symbol not
 * in it before is planned like the first ones (the listing, the store),
 * then @p added runs (from inside this call for a symbol the store knows)
 * and the next heal fills its whole coverage. A symbol left out is no longer healed or
 * refreshed; its rows stay. @p added must not free the heal.
 * @return 0 or -ENOMEM (the symbols before the failing one are in).
 */
int kl_heal_set(struct kl_heal *h, const struct kl_heal_symbol *syms, size_t n,
		kl_heal_added_cb added, void *ud);

/** The exchange's time as the schedule last knew it (/time or the stream), in ms. */
int64_t kl_heal_now(const struct kl_heal *h);

/**
 * FILL, then FOLLOW (@p stream NULL) or HEAL (@p stream borrowed, valid
 * until kl_heal_stop): days before today the stream wrote are certified.
 */
void kl_heal_start(struct kl_heal *h, const struct kl_heal_stream *stream);

/** The stream came up or saw a gap: heal soon. */
void kl_heal_soon(struct kl_heal *h);

/** The watermark made @p day_start final: certify it (and any earlier) from REST. */
void kl_heal_day_final(struct kl_heal *h, int64_t day_start);

/** A set-aside symbol came back: the next heal looks at the whole history. */
void kl_heal_all_soon(struct kl_heal *h);

/**
 * Once a second (run.c's status tick): while a fill runs, the days are
 * refreshed every few seconds, so that a page open during a long backfill
 * shows them as they complete.
 */
void kl_heal_tick(struct kl_heal *h);

/** @return true while a fill runs. */
bool kl_heal_filling(const struct kl_heal *h);

/**
 * Stop scheduling and forget the stream, rest and backfill (the owner
 * frees them next); a fill ending later still refreshes its days. NULL is fine.
 */
void kl_heal_stop(struct kl_heal *h);

/** Free, once the loop has run out (after kl_heal_stop). NULL is fine. */
void kl_heal_free(struct kl_heal *h);
