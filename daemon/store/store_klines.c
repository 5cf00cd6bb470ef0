/*
 * Reads for /api/klines and /api/forecast on a read-only connection, folded
 * by lib/interval.c. Intervals under a day fold the minutes (one symbol's
 * primary-key range, at most KL_KLINES_SPAN_MAX), decoded as
 * kl_store_each_kline does (store_row.c: schema 7's dense form, or the
 * exact decimals in x). Days and weeks fold the `batch` day rows (a
 * complete day aggregated from its minutes by the same arithmetic, kept
 * exactly in the *_x columns) and the minutes of any other day (today,
 * a day with a hole): the same sums and extremes, a row instead of 1440.
 */
#include "store_klines.h"

#include "day.h"
#include "store_exact.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

enum stmt { S_BEGIN, S_END, S_SID, S_NEWEST, S_KLINES, S_DAYS, S_FORECAST, S_COUNT };

static const char *const sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN",
    [S_END] = "COMMIT",
    [S_SID] = "SELECT sid FROM symbol WHERE symbol = ?1",
    [S_NEWEST] = "SELECT max(open_time) FROM kline WHERE sid = ?1",
    [S_KLINES] = "SELECT open_time, o, h, l, c, v, q, trades, x, scale "
		 "FROM kline WHERE sid = ?1 AND open_time >= ?2 AND open_time < ?3 "
		 "ORDER BY open_time",
    [S_DAYS] = "SELECT day, open_x, high_x, low_x, close_x, volume_x, quote_volume_x, trades "
	       "FROM day WHERE sid = ?1 AND day >= ?2 AND day <= ?3 AND source = 1 ORDER BY day",
    [S_FORECAST] = "SELECT ds, yhat, yhat_lower, yhat_upper, made_at FROM forecast "
		   "WHERE symbol = ?1 ORDER BY ds LIMIT ?2",
};

struct kl_store_klines {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT];
};

static int err_of(int rc)
{
	return rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
}

int kl_store_klines_open(const char *path, struct kl_store_klines **ret, char *err, size_t n)
{
	struct kl_store_klines *sk = calloc(1, sizeof(*sk));
	int rc, r;

	if (!sk) {
		snprintf(err, n, "out of memory");
		return -ENOMEM;
	}
	rc = sqlite3_open_v2(path, &sk->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, n, "cannot open %s: %s", path,
			 sk->db ? sqlite3_errmsg(sk->db) : sqlite3_errstr(rc));
		r = err_of(rc);
		goto out;
	}
	/* A reader waits only on a checkpoint's brief lock: WAL never blocks it. */
	sqlite3_busy_timeout(sk->db, 1000);
	for (size_t i = 0; i < S_COUNT; i++) {
		rc = sqlite3_prepare_v3(sk->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &sk->stmt[i],
					NULL);
		if (rc != SQLITE_OK) {
			snprintf(err, n, "cannot prepare statement %zu: %s", i,
				 sqlite3_errmsg(sk->db));
			r = err_of(rc);
			goto out;
		}
	}
	*ret = sk;
	return 0;
out:
	kl_store_klines_close(sk);
	return r;
}

struct kl_store_klines *kl_store_klines_close(struct kl_store_klines *sk)
{
	if (!sk)
		return NULL;
	for (size_t i = 0; i < S_COUNT; i++)
		sqlite3_finalize(sk->stmt[i]);
	sqlite3_close(sk->db);
	free(sk);
	return NULL;
}

const char *kl_store_klines_errmsg(struct kl_store_klines *sk)
{
	return sqlite3_errmsg(sk->db);
}

static int step_done(struct kl_store_klines *sk, enum stmt s)
{
	int rc = sqlite3_step(sk->stmt[s]);

	sqlite3_reset(sk->stmt[s]);
	return rc == SQLITE_DONE ? 0 : err_of(rc);
}

/* The single int64 of a one-row statement: 1 with *ret, 0 for no row or NULL. */
static int one_int(struct kl_store_klines *sk, enum stmt s, int64_t *ret)
{
	sqlite3_stmt *q = sk->stmt[s];
	int rc = sqlite3_step(q), r = 0;

	if (rc == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL) {
		*ret = sqlite3_column_int64(q, 0);
		r = 1;
	} else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		r = err_of(rc);
	}
	sqlite3_reset(q);
	return r;
}

static int fold(struct kl_store_klines *sk, int64_t sid, int64_t from, int64_t to,
		struct kl_candles *c)
{
	sqlite3_stmt *s = sk->stmt[S_KLINES];
	struct kl_kline k = {0};
	int rc, r = 0;

	sqlite3_bind_int64(s, 1, sid);
	sqlite3_bind_int64(s, 2, from);
	sqlite3_bind_int64(s, 3, to);
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (kl_store_row_kline(s, &k) < 0) {
			r = -EIO; /* x not written by klined */
			break;
		}
		r = kl_candles_add(c, &k);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = err_of(rc);
	sqlite3_reset(s);
	return r;
}

/* A batch day row as one kline of the whole day. @return 0 or -EIO. */
static int day_kline(sqlite3_stmt *s, struct kl_kline *k)
{
	kl_i128 v[6];

	if (sqlite3_column_type(s, 0) != SQLITE_TEXT ||
	    kl_day_parse((const char *)sqlite3_column_text(s, 0), &k->open_time) < 0)
		return -EIO;
	for (int i = 0; i < 6; i++) {
		if (sqlite3_column_type(s, i + 1) != SQLITE_TEXT ||
		    kl_dec_parse((const char *)sqlite3_column_text(s, i + 1),
				 (size_t)sqlite3_column_bytes(s, i + 1), &v[i]) < 0)
			return -EIO;
	}
	k->open = v[0];
	k->high = v[1];
	k->low = v[2];
	k->close = v[3];
	k->volume = v[4];
	k->quote_volume = v[5];
	k->trades = sqlite3_column_int64(s, 7);
	return 0;
}

/* Days and weeks: batch day rows, and the minutes of the days between them. */
static int fold_days(struct kl_store_klines *sk, int64_t sid, int64_t from, int64_t to,
		     struct kl_candles *c)
{
	sqlite3_stmt *s = sk->stmt[S_DAYS];
	struct kl_kline k = {0};
	int64_t cursor = from;
	char a[11], b[11];
	int rc = SQLITE_DONE, r = 0;

	if (to <= from)
		return 0;
	kl_day_format(from, a);
	kl_day_format(to - 1, b);
	sqlite3_bind_int64(s, 1, sid);
	sqlite3_bind_text(s, 2, a, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, b, -1, SQLITE_STATIC);
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		r = day_kline(s, &k);
		if (r == 0 && k.open_time > cursor)
			r = fold(sk, sid, cursor, k.open_time, c);
		if (r == 0)
			r = kl_candles_add(c, &k);
		cursor = k.open_time + KL_DAY_MS;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = err_of(rc);
	sqlite3_reset(s);
	return r == 0 ? fold(sk, sid, cursor, to, c) : r;
}

int kl_store_klines_read(struct kl_store_klines *sk, const char *symbol,
			 kl_store_klines_range_fn *range, void *ud, struct kl_candles *c,
			 int64_t *newest_end)
{
	int64_t sid = 0, newest = -KL_MINUTE_MS, from, to;
	int r = step_done(sk, S_BEGIN);

	if (r < 0)
		return r;
	sqlite3_bind_text(sk->stmt[S_SID], 1, symbol, -1, SQLITE_STATIC);
	r = one_int(sk, S_SID, &sid);
	if (r == 0)
		r = -ENOENT;
	if (r < 0)
		goto out;
	sqlite3_bind_int64(sk->stmt[S_NEWEST], 1, sid);
	r = one_int(sk, S_NEWEST, &newest);
	if (r < 0)
		goto out;
	*newest_end = newest + KL_MINUTE_MS;
	range(ud, *newest_end, &from, &to);
	r = c->period >= KL_DAY_MS ? fold_days(sk, sid, from, to, c) : fold(sk, sid, from, to, c);
	if (r == -ENOSPC) /* c is full: the candles asked for are all there */
		r = 0;
	if (r == 0)
		kl_candles_mark(c, *newest_end);
out:
	/* A read transaction: ending it cannot lose anything. */
	if (step_done(sk, S_END) < 0 && r == 0)
		r = -EIO;
	return r;
}

int kl_store_klines_forecast(struct kl_store_klines *sk, const char *symbol, size_t max,
			     void (*fn)(void *ud, const struct kl_forecast_row *row), void *ud)
{
	sqlite3_stmt *s = sk->stmt[S_FORECAST];
	struct kl_forecast_row row;
	int rc, n = 0;

	sqlite3_bind_text(s, 1, symbol, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (int64_t)max);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		row.ds = (const char *)sqlite3_column_text(s, 0);
		row.yhat = sqlite3_column_double(s, 1);
		row.yhat_lower = sqlite3_column_double(s, 2);
		row.yhat_upper = sqlite3_column_double(s, 3);
		row.made_at = sqlite3_column_int64(s, 4);
		if (!row.ds)
			continue;
		fn(ud, &row);
		n++;
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? n : err_of(rc);
}
