/*
 * The symbol ledger (schema 6): the exchange's last known status of each
 * symbol, whether the configuration follows it, and a line per change.
 * These run a few times an hour, so their statements are prepared per
 * call rather than kept open with the hot ones in store.c.
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int prepare(struct kl_store *st, const char *text, sqlite3_stmt **s)
{
	int rc = sqlite3_prepare_v2(st->db, text, -1, s, NULL);

	return rc == SQLITE_OK ? 0 : kl__store_err(rc);
}

static int step_done(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : kl__store_err(rc);
}

static int event(struct kl_store *st, int64_t sid, int64_t at_ms, const char *what,
		 const char *detail)
{
	sqlite3_stmt *s = NULL;
	int r = prepare(st, "INSERT INTO symbol_event VALUES (?1, ?2, ?3, ?4)", &s);

	if (r == 0) {
		sqlite3_bind_int64(s, 1, sid);
		sqlite3_bind_int64(s, 2, at_ms);
		sqlite3_bind_text(s, 3, what, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 4, detail ? detail : "", -1, SQLITE_STATIC);
		r = step_done(s);
	}
	sqlite3_finalize(s);
	return r;
}

static int update(struct kl_store *st, int64_t sid, const char *status, int followed)
{
	sqlite3_stmt *s = NULL;
	int r = prepare(st,
			"UPDATE symbol SET status = coalesce(?2, status), "
			"followed = coalesce(?3, followed) WHERE sid = ?1",
			&s);

	if (r == 0) {
		sqlite3_bind_int64(s, 1, sid);
		if (status)
			sqlite3_bind_text(s, 2, status, -1, SQLITE_STATIC);
		if (followed >= 0)
			sqlite3_bind_int(s, 3, followed);
		r = step_done(s);
	}
	sqlite3_finalize(s);
	return r;
}

static bool is_trading(const char *status)
{
	return status && !strcmp(status, "TRADING");
}

/* The changes a new (status, followed) makes, as ledger lines. */
static int record(struct kl_store *st, int64_t sid, const char *old, int was, const char *status,
		  int followed, int64_t at_ms, const char *why)
{
	int r = 0, changes = 0;

	if (followed >= 0 && followed != was) {
		r = event(st, sid, at_ms, followed ? "followed" : "unfollowed", why);
		changes++;
	}
	/* NULL (a store before schema 6) counts as trading: nothing stopped then. */
	if (r == 0 && status && (old ? strcmp(old, status) != 0 : !is_trading(status))) {
		if (is_trading(status))
			r = event(st, sid, at_ms, "trading", status);
		else
			r = event(st, sid, at_ms, "stopped", status);
		changes++;
	}
	if (r == 0 && (changes || (status && !old)))
		r = update(st, sid, status, followed);
	return r < 0 ? r : changes > 0;
}

int kl_store_symbol_mark(struct kl_store *st, int64_t sid, const char *status, int followed,
			 int64_t at_ms, const char *why)
{
	sqlite3_stmt *s = NULL;
	char *old = NULL;
	int was = 1, rc, r;
	bool own = !st->in_tx;

	r = prepare(st, "SELECT status, followed FROM symbol WHERE sid = ?1", &s);
	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, sid);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 0);

		was = sqlite3_column_int(s, 1);
		if (t && !(old = strdup((const char *)t)))
			r = -ENOMEM;
	} else {
		r = rc == SQLITE_DONE ? -ENOENT : kl__store_err(rc);
	}
	sqlite3_finalize(s);
	/* Hourly the same answer, for every symbol: no transaction for it. */
	if (r == 0 && (followed < 0 || followed == was) &&
	    (!status || (old && !strcmp(old, status)))) {
		free(old);
		return 0;
	}
	/* Inside someone's transaction (the stream's checkpoint) the lines go
	 * with it: committing here would split what must commit together. */
	if (r == 0 && own)
		r = kl_store_begin(st);
	if (r == 0)
		r = record(st, sid, old, was, status, followed, at_ms, why);
	if (own && r >= 0) {
		int c = kl_store_commit(st);
		if (c < 0)
			r = c;
	} else if (own && st->in_tx) {
		kl_store_rollback(st);
	}
	free(old);
	return r;
}

int kl_store_followed_each(struct kl_store *st, void (*fn)(void *ud, const char *symbol), void *ud)
{
	sqlite3_stmt *s = NULL;
	int rc, r = prepare(st, "SELECT symbol FROM symbol WHERE followed ORDER BY symbol", &s);

	if (r < 0)
		return r;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		fn(ud, (const char *)sqlite3_column_text(s, 0));
	if (rc != SQLITE_DONE)
		r = kl__store_err(rc);
	sqlite3_finalize(s);
	return r;
}
