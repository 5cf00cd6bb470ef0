/*
 * The day table: refresh_days rebuilds the day rows of a symbol from its
 * stale mark on, from the klines and outages (lib/day.c aggregates), in
 * its own transaction with the lowered mark (store.c, invariant 2).
 */
#include "store_int.h"

#include <errno.h>
#include <string.h>

static void day_add(void *ud, const struct kl_kline *k)
{
	kl_day_add(ud, k);
}

/* Aggregate one day from the store: its klines and the outages that cover it. */
static int load_day(struct kl_store *st, int64_t sid, struct kl_day *d)
{
	struct kl_ranges out = {0};
	int r = kl_store_each_kline(st, sid, d->start, d->start + KL_DAY_MS, day_add, d);

	if (r == 0)
		r = kl__store_outages(st, sid, d->start, d->start + KL_DAY_MS, &out);
	for (size_t i = 0; r == 0 && i < out.n; i++)
		kl_day_cover(d, out.v[i].from, out.v[i].to);
	kl_ranges_clear(&out);
	return r;
}

static int put_day(struct kl_store *st, int64_t sid, const struct kl_day *d, enum kl_day_source src)
{
	kl__store_bind_day(st->stmt[S_DAY_PUT], sid, d);
	sqlite3_bind_int(st->stmt[S_DAY_PUT], 10, (int)src);
	return kl__store_step_done(st, S_DAY_PUT);
}

static int del_day(struct kl_store *st, int64_t sid, int64_t start)
{
	char day[11];

	kl_day_format(start, day);
	sqlite3_bind_int64(st->stmt[S_DAY_DEL], 1, sid);
	sqlite3_bind_text(st->stmt[S_DAY_DEL], 2, day, -1, SQLITE_TRANSIENT);
	return kl__store_step_done(st, S_DAY_DEL);
}

static int prev_close(struct kl_store *st, int64_t sid, int64_t start, kl_i128 *ret)
{
	sqlite3_stmt *s = st->stmt[S_PREV_CLOSE];
	char day[11];
	int rc, r = 0;

	kl_day_format(start, day);
	sqlite3_bind_int64(s, 1, sid);
	sqlite3_bind_text(s, 2, day, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(s);
	*ret = -1;
	if (rc == SQLITE_ROW)
		r = kl_dec_parse((const char *)sqlite3_column_text(s, 0),
				 (size_t)sqlite3_column_bytes(s, 0), ret);
	sqlite3_reset(s);
	if (r < 0)
		return -EIO; /* not written by klined */
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : kl__store_err(rc);
}

/* The day of @p sid's newest kline, or -1 when it has none. */
static int last_day(struct kl_store *st, int64_t sid, int64_t *ret)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, "SELECT max(open_time) FROM kline WHERE sid = ?1", -1,
				    &s, NULL);

	*ret = -1;
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(s, 1, sid);
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
			*ret = kl_day_floor(sqlite3_column_int64(s, 0));
	}
	sqlite3_finalize(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : kl__store_err(rc);
}

/* No day rows after @p last (a day start; -1: none at all). */
static int del_days_after(struct kl_store *st, int64_t sid, int64_t last)
{
	sqlite3_stmt *s = NULL;
	char day[11] = "";
	int rc =
	    sqlite3_prepare_v2(st->db, "DELETE FROM day WHERE sid = ?1 AND day > ?2", -1, &s, NULL);

	if (last >= 0)
		kl_day_format(last, day);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(s, 1, sid);
		sqlite3_bind_text(s, 2, day, -1, SQLITE_TRANSIENT);
		rc = sqlite3_step(s);
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : kl__store_err(rc);
}

/*
 * Day states, for each day from the stale mark to today:
 *   complete, has klines      -> batch row
 *   complete, no kline        -> fill row (prev close), or no row before the first
 *                                or, while the symbol does not trade, after the last
 *   today (not complete)      -> speed row if it has klines
 *   past and not complete     -> no row; stays stale until its hole heals
 */
int kl_store_refresh_days(struct kl_store *st, int64_t sid, int64_t now_ms)
{
	sqlite3_stmt *s = st->stmt[S_SYM_STATE];
	int64_t dirty = -1, start = 0, today = kl_day_floor(now_ms), stale = -1, last = -1;
	kl_i128 close = -1;
	int r, rc, ndays = 0;
	bool stopped = false;
	struct kl_day d;

	r = kl_store_commit(st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, sid);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		dirty = sqlite3_column_int64(s, 0);
	if (rc == SQLITE_ROW)
		start = sqlite3_column_int64(s, 1);
	/* NULL: never asked (a store before schema 6), as good as trading. */
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 2) != SQLITE_NULL)
		stopped = strcmp((const char *)sqlite3_column_text(s, 2), "TRADING") != 0;
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return kl__store_err(rc);
	if (dirty < 0)
		return 0;
	if (dirty < kl_day_floor(start))
		dirty = kl_day_floor(start);
	/* A symbol that stopped trading may never trade again: days after its
	 * last kline would be invented. They are made if it comes back. */
	if (stopped && (r = last_day(st, sid, &last)) < 0)
		return r;
	r = kl_store_begin(st);
	if (r < 0)
		return r;
	r = prev_close(st, sid, dirty, &close);
	for (int64_t day = dirty; r == 0 && day <= (stopped && last < today ? last : today);
	     day += KL_DAY_MS) {
		kl_day_init(&d, day);
		r = load_day(st, sid, &d);
		if (r < 0)
			break;
		if (day + KL_DAY_MS > now_ms || !kl_day_complete(&d)) {
			if (day < today && stale < 0)
				stale = day;
			if (day == today && d.nklines) {
				r = put_day(st, sid, &d, KL_DAY_SPEED);
				close = d.close;
			} else {
				r = del_day(st, sid, day);
			}
		} else if (d.nklines) {
			r = put_day(st, sid, &d, KL_DAY_BATCH);
			close = d.close;
		} else if (close >= 0) {
			kl_day_fill(&d, close);
			r = put_day(st, sid, &d, KL_DAY_FILL);
		} else {
			r = del_day(st, sid, day);
		}
		ndays++;
	}
	if (r == 0 && stopped && last < today) {
		r = del_days_after(st, sid, last);
		if (stale < 0 || stale > last + KL_DAY_MS)
			stale = last < 0 ? dirty : last + KL_DAY_MS;
	}
	if (r == 0) {
		sqlite3_bind_int64(st->stmt[S_SYM_CLEAN], 1, sid);
		sqlite3_bind_int64(st->stmt[S_SYM_CLEAN], 2, stale >= 0 ? stale : today);
		r = kl__store_step_done(st, S_SYM_CLEAN);
	}
	if (r == 0)
		r = kl_store_commit(st);
	else
		kl_store_rollback(st);
	return r < 0 ? r : ndays;
}
