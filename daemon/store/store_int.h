/*
 * Inside the store (daemon/store/ only): the statements prepared at open, the
 * struct, and the helpers every part uses. Nothing outside daemon/store/
 * includes this; the rest of the daemon sees store.h.
 */
#pragma once

#include "store.h"
#include "storefile.h"

#include <sqlite3.h>

enum stmt {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_SYM_GET,
	S_SYM_STATE,
	S_SYM_ADD,
	S_SYM_EXTEND,
	S_SYM_DIRTY,
	S_SYM_CLEAN,
	S_KLINE_PUT,
	S_OUTAGE_EXTEND,
	S_OUTAGE_ADD,
	S_REJECT_PUT,
	S_RUN_PUT,
	S_TIMES,
	S_OUTAGES,
	S_DAY_KLINES,
	S_PREV_CLOSE,
	S_DAY_PUT,
	S_DAY_DEL,
	S_OFFSETS,
	S_OFFSET_PUT,
	S_SPEED_DAY,
	S_SPEED_DAY_NEW,
	S_UNCERTIFIED,
	S_DAILY,
	S_DAILY_EXACT,
	S_MARK_GET,
	S_MARK_PUT,
	S_SUSPECTS,
	S_SUSPECT_LIST,
	S_SUSPECT_ADD,
	S_SUSPECT_DEL,
	S_SUSPECT_NEW,
	S_SUSPECT_ANY_NEW,
	S_READ_BEGIN,
	S_READ_END,
	S_SUSPECT_SEEN,
	S_COUNT
};

struct dirty {
	int64_t sid, from;
};

struct kl_store {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT];
	bool in_tx;
	uint64_t lost_tx;    /* transactions rolled back: writers compare it to know theirs went */
	struct dirty *dirty; /* lowest touched day per symbol in the open transaction */
	size_t ndirty, cap_dirty;
	char *path;		   /* a writer's: kl_store_file_check() */
	struct kl_storefile_id id; /* its files as they were after open */
	bool holes_exact;	   /* kl_store_holes reads all it needs (store_holes.c) */
	int wal_pages;		   /* after this connection's last commit (store_wal.c) */
	bool wal_deferred;	   /* its checkpoints are a checkpointer's (kl_store_wal_defer) */
};

/** Count a writer's WAL pages, checkpointing inline only past a backstop (store_wal.c). */
void kl__store_wal_hook(struct kl_store *st);

/** @return the negative errno for SQLite result code @p rc. */
int kl__store_err(int rc);

/**
 * Run statement @p s (no rows wanted) and reset it; notes a transaction
 * SQLite rolled back by itself. @return 0 or -errno.
 */
int kl__store_step_done(struct kl_store *st, enum stmt s);

/** @return 0 with the schema version in *ret, or -errno. */
int kl__store_user_version(sqlite3 *db, int *ret);

/** Append the outages of @p sid overlapping [from, to) to @p out (caller's). @return 0 or -errno.
 */
int kl__store_outages(struct kl_store *st, int64_t sid, int64_t from, int64_t to,
		      struct kl_ranges *out);

/**
 * Append the minutes of [from, to) with neither a kline nor an outage to
 * @p out (the caller's), reading every row in between.
 * @return the number of rows read, or -errno.
 */
int64_t kl__store_scan_holes(struct kl_store *st, int64_t sid, int64_t from, int64_t to,
			     struct kl_ranges *out);

/** Bind (sid, day, six nearest doubles, trades, _, six exact texts) of a day statement. */
void kl__store_bind_day(sqlite3_stmt *s, int64_t sid, const struct kl_day *d);
