/*
 * The backfill's internals, shared by backfill.c (runs, pages, outages),
 * backfill_parse.c (pages parsed on the thread pool) and backfill_sym.c
 * (refused pages, inactive symbols). Not for other modules.
 */
#pragma once

#include "backfill.h"
#include "kline.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define PAGE_LIMIT	 1000
#define PAGE_WEIGHT	 2
#define PAGES_AHEAD	 64 /* pages handed to rest.c at once: > any sane concurrency */
#define COMMIT_ROWS	 100000
#define COMMIT_MS	 1000
#define PROGRESS_MS	 5000
#define BACKOFF_FIRST_MS 500
#define BACKOFF_MAX_MS	 30000
#define QUIET_MINUTES	 1440		    /* smaller runs log progress only at debug level */
#define OUTAGE_MARGIN_MS (5 * KL_MINUTE_MS) /* see docs/operations.md, "Outages" */
#define PROBE_LIMIT	 10		    /* klines of a probe: the margin's worth and more */
#define GLITCH_MAX	 5		    /* refetches of a range in one run before it waits */
#define REFUSED_FIRST_MS 10000		    /* a refused page: 10 s, doubling ... */
#define REFUSED_MAX_MS	 600000		    /* ... up to 10 min */
#define REFUSALS_PER_RUN 3		    /* then the symbol's work waits for a later run */
#define CHECK_FIRST_MS	 30000		    /* an inactive symbol: exchangeInfo after 30 s ... */
#define CHECK_MAX_MS	 600000		    /* ... doubling up to every 10 min */
#define CHECK_WEIGHT	 20

struct sym {
	const char *symbol;
	int64_t sid;
	struct kl_ranges todo; /* still to fetch, in order */
	size_t next;	       /* first range of todo not fully handed out */
	int64_t newest;	       /* end of the newest kline the exchange served for it */
	uint64_t hold_until;   /* uv_now(): refused pages wait until then */
	uint64_t check_ms;     /* inactive: the next exchangeInfo check's delay */
	unsigned refusals;     /* in a row, reset by a 200 */
	bool inactive;	       /* -1121: set aside until exchangeInfo lists it again */
	bool checking;	       /* an exchangeInfo check is queued */
	struct check *check;   /* its timer, while it waits (closed by kl_backfill_free) */
	bool not_trading;      /* the exchange reports another status than TRADING */
	bool resumed;	       /* listed again: its holes are due */
	bool wrote;	       /* klines or outages stored since kl_backfill_take_written */
};

struct prej {
	enum kl_verdict v;
	char *raw;
};

/* A page of klines: requested, then parsed on the thread pool, then stored. */
struct page {
	struct kl_backfill *bf;
	size_t sym;
	struct kl_range r;
	unsigned attempt;
	bool probe; /* startTime=r.from&limit=PROBE_LIMIT: does r lie in an outage? */
	uv_work_t work;
	char *body; /* the response, owned while parsing */
	size_t len;
	/* Parse results (worker thread), consumed on the loop. */
	struct kl_kline *k;
	size_t nk, stored; /* stored: how many of k are in the store */
	bool lost;	   /* a store error gave them up */
	int64_t *t;	   /* occupied minutes, sorted: valid and refused-in-range klines */
	size_t nt, nrows;
	struct prej *rej;
	size_t nrej;
	char err[200];		 /* non-empty: the body was malformed */
	struct page *next_ready; /* parsed, waiting for its turn to be stored */
};

struct kl_backfill {
	uv_loop_t *loop;
	struct kl_rest *rest;
	struct kl_store *st;
	struct sym *syms;
	size_t nsyms, rr; /* rr: next symbol to hand a page out for */
	size_t hint;	  /* where bf_find looks first */
	size_t outstanding;
	int64_t now_ms, done, total, rows, rows_pending;
	uint64_t started;
	uv_timer_t commit_timer, progress_timer, hold_timer;
	uv_idle_t store_idle;		 /* stores the parsed pages, one a loop turn */
	struct page *ready, *ready_tail; /* parsed pages, stored one a loop turn */
	kl_backfill_cb cb;
	void *ud;
	size_t nworking; /* pages on the thread pool */
	int nclosed;	 /* timers closed, once freeing */
	bool running, failed, finished, closing;
};

struct check;

/* backfill.c */
void bf_feed(struct kl_backfill *bf);
void bf_maybe_done(struct kl_backfill *bf);
/** Free @p p (owned) and let the run go on. */
void bf_page_done(struct kl_backfill *bf, struct page *p);
void bf_page_free(struct page *p);
/** Hand @p p (owned by rest.c until its callback) out after @p delay_ms. @return false: no memory.
 */
bool bf_request_page(struct kl_backfill *bf, struct page *p, uint64_t delay_ms);
/** Drop what is left of @p s's work in this run: its holes stay in the store. */
void bf_set_aside(struct kl_backfill *bf, struct sym *s);
bool bf_waiting(const struct kl_backfill *bf, const struct sym *s);
/** Commit what is written within COMMIT_MS, unless a commit is already due. */
void bf_commit_soon(struct kl_backfill *bf);

/** The symbol of @p sid, or NULL. */
struct sym *bf_find(struct kl_backfill *bf, int64_t sid);
void bf_log_outage(const struct sym *s, int64_t from, int64_t to);

/* backfill_parse.c: parse and validate p->body on the thread pool. */
void bf_parse_work(uv_work_t *w);

/* backfill_sym.c */
/** A non-200 answer for page @p p (owned; done or retried here). */
void bf_refused(struct kl_backfill *bf, struct page *p, const struct kl_rest_reply *r);
void bf_on_hold_timer(uv_timer_t *t);
/** Close the timers of pending exchangeInfo checks (kl_backfill_free). */
void bf_checks_close(struct kl_backfill *bf);
/**
 * The answer @p r (borrowed) to probe @p p (borrowed: the caller frees it):
 * an outage stored, or the range fetched again. @return false if it is not klines.
 */
bool bf_probe_answer(struct kl_backfill *bf, struct page *p, const struct kl_rest_reply *r);
