/*
 * The SQLite store: opens (and migrates) the database in WAL mode, takes
 * klines, outages and rejects in large transactions, finds holes, and
 * keeps the day table current. All SQL lives here, as prepared
 * statements; no SQL text is ever built from input.
 */
#pragma once

#include "day.h"
#include "gap.h"
#include "kline.h"

#include <stdbool.h>
#include <stdint.h>

struct kl_store;

enum kl_source {
	KL_SRC_REST = 1,
	KL_SRC_WS = 2,
	KL_SRC_IMPORT = 3,
};

/**
 * Open (creating and migrating if needed) the store at @p path. A store
 * written by a newer klined is refused with -EPROTO and left untouched;
 * so is a corrupt one (-EUCLEAN, "database is corrupt" in @p err): it is
 * checked (PRAGMA quick_check, at most KL_STOREFILE_CHECK_MS) before
 * anything is written.
 * @return 0 with *ret owned by the caller (kl_store_close), or -errno;
 *         @p err gets a message.
 */
int kl_store_open(const char *path, bool readonly, struct kl_store **ret, char *err, size_t n);

/** Commit anything pending and close. NULL is fine. @return NULL. */
struct kl_store *kl_store_close(struct kl_store *st);

/**
 * Is the store opened for writing still the file at its path (db, -wal,
 * -shm)? Deleted or replaced, everything written from now on would be
 * lost with the unlinked inode. @return 0, or -ENOENT / -ESTALE with
 * @p err naming the file. A read-only store always answers 0.
 */
int kl_store_file_check(struct kl_store *st, char *err, size_t n);

/** @return SQLite's last error message (borrowed). */
const char *kl_store_errmsg(struct kl_store *st);

/**
 * Find @p symbol, or create it with coverage starting at @p start_ms when
 * @p create. @return 0 with *sid, *start_ms; -ENOENT when absent.
 */
int kl_store_symbol(struct kl_store *st, const char *symbol, bool create, int64_t *start_ms,
		    int64_t *sid);

/** Move a symbol's coverage start earlier (never later). @return 0 or -EIO. */
int kl_store_symbol_extend(struct kl_store *st, int64_t sid, int64_t start_ms);

/**
 * Note what the exchange says of a symbol (@p status, e.g. "TRADING",
 * "BREAK", or "GONE" when it no longer lists it; NULL: unchanged) and
 * whether the configuration follows it (@p followed 0/1; -1: unchanged),
 * at exchange time @p at_ms. Each change is a line of the ledger
 * (symbol_ledger), @p why (borrowed) its detail. Inside an open
 * transaction it joins it; otherwise it commits its own.
 * @return 1 when something changed, 0 when not, or -errno.
 */
int kl_store_symbol_mark(struct kl_store *st, int64_t sid, const char *status, int followed,
			 int64_t at_ms, const char *why);

/** Call @p fn with each symbol the store says is followed (borrowed name). @return 0 or -EIO. */
int kl_store_followed_each(struct kl_store *st, void (*fn)(void *ud, const char *symbol), void *ud);

/** Open a write transaction (no-op when one is open). @return 0 or -EIO/-EBUSY. */
int kl_store_begin(struct kl_store *st);

/** Commit the open transaction (no-op when none). @return 0 or -EIO. */
int kl_store_commit(struct kl_store *st);

/** Abandon the open transaction (no-op when none). */
void kl_store_rollback(struct kl_store *st);

/** @return true while a transaction is open. */
bool kl_store_in_tx(struct kl_store *st);

/**
 * How many transactions were lost so far (rolled back by us, or by SQLite
 * after disk full or an I/O error). A writer that notes it when it first
 * writes knows, at its commit, whether its writes are still there.
 */
uint64_t kl_store_lost_tx(const struct kl_store *st);

/** Store a validated kline (inside a transaction). @return 0 or -EIO. */
int kl_store_put_kline(struct kl_store *st, int64_t sid, const struct kl_kline *k,
		       enum kl_source src);

/** Record [from, to) as an exchange outage, merging with a touching one. @return 0 or -EIO. */
int kl_store_put_outage(struct kl_store *st, int64_t sid, int64_t from, int64_t to);

/** Keep a refused kline with its raw text (borrowed strings). @return 0 or -EIO. */
int kl_store_put_reject(struct kl_store *st, int64_t at_ms, const char *symbol, const char *origin,
			const char *reason, const char *raw);

/** Record this start of the daemon. @return 0 or -EIO. */
int kl_store_put_run(struct kl_store *st, int64_t now_ms, const char *version);

/**
 * The minutes of [from, to) with neither a kline nor an outage, appended
 * to @p out (owned by the caller). It reads only what changed since the
 * last kl_store_verify of @p sid (schema/008-holes.sql): the rows past
 * its mark and the suspects (deleted rows, holes not yet filled). Rows
 * past the mark spanning more than a day (a store from before marks, a
 * verifier far behind) are left out unless kl_store_holes_exact: the
 * verifier finds their holes, a later call returns them.
 * @return 0, -ENOMEM or -EIO.
 */
int kl_store_holes(struct kl_store *st, int64_t sid, int64_t from, int64_t to,
		   struct kl_ranges *out);

/** With @p exact, kl_store_holes reads all it needs, however long (klined --once). */
void kl_store_holes_exact(struct kl_store *st, bool exact);

#define KL_STORE_VERIFY_MORE   1  /* more to search: call again soon */
#define KL_STORE_VERIFY_NEWS   2  /* suspects recorded since the last call: heal */
#define KL_STORE_VERIFY_BEHIND 4  /* the mark is not yet at the newest row */
#define KL_STORE_RECHECK       32 /* suspects read again per call */

/* What kl_store_verify_read found, for kl_store_verify_apply. */
struct kl_store_piece {
	int64_t from, to;
	int new;
};
struct kl_store_verdict {
	int64_t sid, upto; /* the mark to set, -1: unchanged */
	int64_t dels[KL_STORE_RECHECK];
	size_t ndels;
	struct kl_store_piece *adds; /* suspects to record (owned: kl_store_verdict_clear) */
	size_t nadds, cap;
	bool news; /* unannounced suspects were seen */
	int bits;  /* KL_STORE_VERIFY_MORE, _BEHIND */
};

/** @return the pages in the WAL after @p st's last commit (a writer's; 0 before one). */
int kl_store_wal_pages(const struct kl_store *st);

/*
 * A connection that only checkpoints the WAL, PASSIVE (it waits for no
 * writer or reader), for libuv's thread pool: the writers' own commits do
 * not (store_wal.c). One thread at a time.
 */
struct kl_store_ck;

/** Open one on @p path. @return 0 with *ret (free with kl_store_ck_close), or -errno. */
int kl_store_ck_open(const char *path, struct kl_store_ck **ret);

/** Checkpoint what no reader still needs. @return 0 or -errno. */
int kl_store_ck_run(struct kl_store_ck *ck);

/** Close @p ck. NULL is fine. */
void kl_store_ck_close(struct kl_store_ck *ck);

/** Leave @p st's checkpoints to a kl_store_ck (its commits then checkpoint only past a
 * backstop of 20,000 pages). */
void kl_store_wal_defer(struct kl_store *st);

/** @return 1 if a hole suspect nobody searched yet is recorded (a row went), 0 if not,
 * or -errno. */
int kl_store_any_new_suspect(struct kl_store *st);

/**
 * One snapshot for the reads until kl_store_read_end, on a read-only
 * store: a kl_store_verify_read is one read transaction, not one per
 * statement (each takes and drops the WAL's locks). @return 0, or -errno.
 */
int kl_store_read_begin(struct kl_store *st);
void kl_store_read_end(struct kl_store *st);

/**
 * Search the next slice of @p sid's history past its mark (at most about
 * @p max_rows rows read, rechecking suspects too) and say in @p v (the
 * caller's, zeroed at first; reused) how the mark and suspects are to
 * change. Only reads: may run on another thread, on a connection of its
 * own (a read-only kl_store), while the loop writes. @p cursor (the
 * caller's, INT64_MIN at first) says which suspects to recheck next.
 * @return 0, or -errno.
 */
int kl_store_verify_read(struct kl_store *st, int64_t sid, int64_t max_rows, int64_t *cursor,
			 struct kl_store_verdict *v);

/**
 * Write @p v to the writer @p st: in the open transaction if there is one
 * (never committing it), else in its own. Rows deleted since the read
 * are safe: the triggers recorded them; holes filled since stay suspects
 * until the next recheck. @return KL_STORE_VERIFY_* bits, or -errno.
 */
int kl_store_verify_apply(struct kl_store *st, const struct kl_store_verdict *v);

/** Free what @p v holds. */
void kl_store_verdict_clear(struct kl_store_verdict *v);

/** kl_store_verify_read and _apply on one connection. @return their bits, or -errno. */
int kl_store_verify(struct kl_store *st, int64_t sid, int64_t max_rows, int64_t *cursor);

/**
 * Recompute the day rows of @p sid from its stale mark up to the day of
 * @p now_ms (the end of the last closed minute): complete days become
 * batch (or fill) rows, the current day a speed row. Runs in its own
 * transaction. @return the number of days written, or -EIO.
 */
int kl_store_refresh_days(struct kl_store *st, int64_t sid, int64_t now_ms);

/** Read the consumer offsets of @p topic into @p offs (room for @p max). @return the count or -EIO.
 */
int kl_store_get_offsets(struct kl_store *st, const char *topic, int32_t *parts, int64_t *next,
			 size_t max);

/** Store a partition's next offset (inside a transaction). @return 0 or -EIO. */
int kl_store_put_offset(struct kl_store *st, const char *topic, int32_t part, int64_t next);

/** Write a speed row for @p d unless the day is already batch or fill. @return 0 or -EIO. */
int kl_store_put_speed_day(struct kl_store *st, int64_t sid, const struct kl_day *d);

/** Call @p fn for each stored kline of @p sid in [from, to). @return 0 or -EIO. */
int kl_store_each_kline(struct kl_store *st, int64_t sid, int64_t from, int64_t to,
			void (*fn)(void *ud, const struct kl_kline *k), void *ud);

/**
 * Days before @p before_ms that still hold websocket minutes (not yet
 * certified from REST), appended to @p days as (sid, day start) pairs.
 * @return the number of pairs, or -EIO/-ENOMEM.
 */
int kl_store_uncertified(struct kl_store *st, int64_t before_ms, int64_t **pairs);

/* One symbol's line of the status report. Strings are borrowed from the
 * store, valid only during the callback; a NULL text column is NULL. */
struct kl_store_symstat {
	const char *symbol;
	int64_t start_ms, klines, days, rejects;
	int64_t newest_ms; /* the newest kline's open time, -1 when none */
	size_t holes, outages;
	int64_t hole_minutes, outage_minutes;
	/* The newest day row, when has_last_day: */
	bool has_last_day;
	const char *last_day, *close_exact, *volume_exact;
	double close, volume;
	enum kl_day_source source;
};

/**
 * Call @p fn for each symbol, by name, with its status line (what
 * `klined status` prints). @p fn must not call back into the store; a
 * negative return from it stops the walk and is returned.
 * @return 0, -ENOMEM, -EIO or @p fn's error.
 */
int kl_store_status_each(struct kl_store *st,
			 int (*fn)(void *ud, const struct kl_store_symstat *sym), void *ud);

/** @return 0 with the store's schema version (user_version) in *ret, or -EIO. */
int kl_store_schema_version(struct kl_store *st, int *ret);

/* The REAL columns of a `daily` row, as indexes of kl_store_dayrow.real. */
enum kl_store_daycol {
	KL_DAYCOL_OPEN,
	KL_DAYCOL_HIGH,
	KL_DAYCOL_LOW,
	KL_DAYCOL_CLOSE,
	KL_DAYCOL_VOLUME,
	KL_DAYCOL_QUOTE_VOLUME,
	KL_DAYCOL_MA7,
	KL_DAYCOL_MA30,
	KL_DAYCOL_COUNT
};

/* One row of the `daily` view. Strings are borrowed, valid only during
 * the callback. */
struct kl_store_dayrow {
	const char *day, *source;
	double real[KL_DAYCOL_COUNT];
	bool null[KL_DAYCOL_COUNT]; /* the column is NULL (real[] is 0 then) */
	int64_t trades;
	/* With has_exact: open .. quote_volume as `daily_exact`'s decimal
	 * texts; all NULL without. */
	bool has_exact;
	const char *exact[6];
};

/**
 * Call @p fn with each of the newest @p days rows of `daily` for @p symbol
 * (bound as a parameter), oldest first; with @p exact each row also has
 * its exact decimal texts. @p fn must not call back into the store; a
 * negative return from it stops the walk and is returned.
 * @return 0, -EIO or @p fn's error.
 */
int kl_store_daily_each(struct kl_store *st, const char *symbol, int64_t days, bool exact,
			int (*fn)(void *ud, const struct kl_store_dayrow *row), void *ud);

/** Keep the end (wall-clock ms) of the exchange's ban; @p reason is borrowed. @return 0 or -EIO. */
int kl_store_put_ban(struct kl_store *st, int64_t until_ms, const char *reason);

/**
 * Read the kept ban: *until_ms (0 when none), @p reason (room for @p n).
 * @return 0 or -EIO.
 */
int kl_store_get_ban(struct kl_store *st, int64_t *until_ms, char *reason, size_t n);
