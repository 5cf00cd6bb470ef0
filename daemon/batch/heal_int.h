/*
 * Inside the batch layer's schedule (heal.c, heal_plan.c only): the
 * symbols as the heal sees them and its state.
 */
#pragma once

#include "heal.h"
#include "archive.h"
#include "xclock.h"

#define FOLLOW_MS	  2000	/* without a stream ([kafka] brokers = off): poll the clock */
#define HEAL_MS		  30000 /* wall time between heals while streaming */
#define HEAL_SOON_MS	  5000	/* after a (re)connection */
#define HEAL_DAYS	  2	/* how far back a periodic heal looks */
#define HEAL_ALL_MS	  120000 /* and this often the whole history: a refused kline, a row deleted */
#define HEAL_LAG_MS	  120000
#define FRESH_MS	  10000	 /* a consumer this recently active is healthy */
#define STORE_RETRY_MS	  5000	 /* after a failed store write (disk full, a lock held) */
#define SETTLE_MS	  30000	 /* a minute is asked from REST this long after it closed */
#define FOLLOW_BACK_MS	  600000 /* following over REST: holes this recent are tried again */
#define FILL_DAYS_S	  3 /* during the first fill, days are refreshed this often (kl_heal_tick) */
#define LOG_EACH_MAX	  20	  /* more symbols than this: their routine lines are summed */
#define REFRESH_BUDGET_NS 5000000 /* and for at most this long each time */

struct hsym {
	struct kl_heal *h;
	const char *symbol; /* borrowed */
	int64_t sid, start;
	int64_t want; /* history_start's coverage start; -1: from the listing */
	bool known, not_trading;
	bool active;  /* in the set: healed and refreshed (a symbol left out stays allocated) */
	bool planned; /* registered in the store: sid and start are known */
	bool fresh;   /* added while running: the next fill looks at its whole coverage */
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
	struct hsym **syms; /* each allocated once, so that requests may point at it */
	size_t nsyms, pending;
	kl_heal_added_cb added; /* kl_heal_set's */
	void *added_ud;
	int64_t now_ms, closed_end;
	int64_t settled_end;	     /* following over REST: minutes before this were asked for */
	struct kl_xclock clock;	     /* the exchange's /time, sanity-checked */
	int64_t certify_before;	     /* days before this with ws minutes get certified */
	int64_t certifying;	     /* the certification under way: redone if it fails */
	uint64_t healed_all_at;	     /* uv_now() of the last heal of the whole history */
	int64_t fill_from;	     /* of the fill under way: the archive goes first */
	unsigned fill_ticks;	     /* kl_heal_tick calls while filling */
	size_t refresh_at;	     /* the next symbol kl_heal_tick refreshes */
	int64_t plan_from, plan_now; /* the REST plan under way (heal_fill.c), in slices */
	size_t plan_at, plan_nmissing;
	int64_t plan_missing;
	int64_t *fin; /* a fill's end: the symbols whose days are refreshed (finish_some) */
	size_t fin_n, fin_at, fin_hint;
	bool once, stopped, filling, heal_wanted, heal_all, started;
	bool finishing;	    /* a fill's end is refreshing, in slices (still filling) */
	bool refreshed_all; /* the first fill's refresh of every symbol is done */
};

/** The stream's newest event time, or -1 without a stream. */
int64_t kl__heal_stream_time(const struct kl_heal *h);

/** The backfill's end (kl_backfill_run's callback; @p ud is the heal). */
void kl__heal_on_filled(void *ud, int status);

/** Fill the holes from @p from (0: each symbol's whole coverage): archives, then REST. */
void kl__heal_fill(struct kl_heal *h, int64_t from);

/** The REST part alone, planned in slices on h->follow, then fetched. */
void kl__heal_fill_rest(struct kl_heal *h, int64_t from);

/** Stop the daemon with exit @p code (once). */
void kl__heal_stop(struct kl_heal *h, int code);

/** Heal soon, from the whole coverage of the symbols added (kl_heal_set). */
void kl__heal_fresh(struct kl_heal *h);
