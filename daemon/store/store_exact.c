/*
 * Exact values in the store. Invariant (schema/003-exact.sql): a kline
 * row with x NULL has all its values as INTEGER units of at most 2^53, so
 * `v / 1e8` in SQL is already the nearest double; any other row has the
 * nearest doubles in its value columns and the exact decimals in x.
 */
#include "store_exact.h"

#include "store_row.h"

#include "day.h"
#include "dec.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

int kl_store_exact_kline(sqlite3_stmt *s, int col, struct kl_kline *k)
{
	kl_i128 v[8];
	int r = kl_dec_parse_list((const char *)sqlite3_column_text(s, col),
				  (size_t)sqlite3_column_bytes(s, col), v, 8);

	if (r < 0)
		return -EINVAL;
	k->open = v[0];
	k->high = v[1];
	k->low = v[2];
	k->close = v[3];
	k->volume = v[4];
	k->quote_volume = v[5];
	k->taker_base = v[6];
	k->taker_quote = v[7];
	return 0;
}

static int fail(sqlite3 *db, char *err, size_t n, const char *what)
{
	snprintf(err, n, "upgrade to schema 3: %s: %s", what, sqlite3_errmsg(db));
	return -EIO;
}

/* Klines of schema 2 past 2^53 units: to nearest doubles plus x. */
static int upgrade_klines(sqlite3 *db, char *err, size_t n)
{
	static const char q_text[] =
	    "SELECT sid, open_time, open, high, low, close, volume, quote_volume, taker_base, "
	    "taker_quote FROM kline WHERE x IS NULL AND max(open, high, low, close, volume, "
	    "quote_volume, taker_base, taker_quote) > 9007199254740992";
	static const char u_text[] = "UPDATE kline SET open = ?3, high = ?4, low = ?5, close = ?6, "
				     "volume = ?7, quote_volume = ?8, taker_base = ?9, "
				     "taker_quote = ?10, x = ?11 WHERE sid = ?1 AND open_time = ?2";
	sqlite3_stmt *q = NULL, *u = NULL;
	char x[48 * 8];
	int rc = SQLITE_DONE, r = 0;

	if (sqlite3_prepare_v2(db, q_text, -1, &q, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, u_text, -1, &u, NULL) != SQLITE_OK) {
		r = fail(db, err, n, "prepare");
		goto out;
	}
	/* The rows updated leave the WHERE (x is set), so stepping on is safe. */
	while (r == 0 && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		kl_i128 v[8];

		for (int i = 0; i < 8; i++) {
			v[i] = sqlite3_column_int64(q, i + 2);
			sqlite3_bind_double(u, i + 3, kl_dec_double(v[i]));
		}
		sqlite3_bind_int64(u, 1, sqlite3_column_int64(q, 0));
		sqlite3_bind_int64(u, 2, sqlite3_column_int64(q, 1));
		sqlite3_bind_text(u, 11, x, (int)kl_dec_format_list(v, 8, x, sizeof(x)),
				  SQLITE_TRANSIENT);
		if (sqlite3_step(u) != SQLITE_DONE)
			r = fail(db, err, n, "kline");
		sqlite3_reset(u);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = fail(db, err, n, "kline scan");
out:
	sqlite3_finalize(q);
	sqlite3_finalize(u);
	return r;
}

/* A day's base volume from its (schema 2, integer) klines, summed in 128 bits. */
static int day_volume(sqlite3_stmt *v, int64_t sid, const char *day, kl_i128 *ret)
{
	int64_t start;
	int rc;

	if (kl_day_parse(day, &start) < 0)
		return -EINVAL;
	*ret = 0;
	sqlite3_bind_int64(v, 1, sid);
	sqlite3_bind_int64(v, 2, start);
	sqlite3_bind_int64(v, 3, start + KL_DAY_MS);
	while ((rc = sqlite3_step(v)) == SQLITE_ROW)
		*ret += sqlite3_column_int64(v, 0);
	sqlite3_reset(v);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/*
 * Days, before the klines change form: the doubles SQL computed may be a
 * unit off past 2^53, and schema 2's int64 volume sum wrapped past 9.2e18
 * units (stored as garbage, even negative): such a volume is summed again.
 */
static int upgrade_days(sqlite3 *db, char *err, size_t n)
{
	static const char q_text[] = "SELECT sid, day, open_x, high_x, low_x, close_x, volume_x, "
				     "quote_volume_x FROM day";
	static const char u_text[] = "UPDATE day SET open = ?3, high = ?4, low = ?5, close = ?6, "
				     "volume = ?7, quote_volume = ?8, volume_x = ?9 "
				     "WHERE sid = ?1 AND day = ?2";
	static const char v_text[] = "SELECT volume FROM kline WHERE sid = ?1 AND open_time >= ?2 "
				     "AND open_time < ?3";
	sqlite3_stmt *q = NULL, *u = NULL, *v = NULL;
	int rc = SQLITE_DONE, r = 0;

	if (sqlite3_prepare_v2(db, q_text, -1, &q, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, u_text, -1, &u, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, v_text, -1, &v, NULL) != SQLITE_OK) {
		r = fail(db, err, n, "prepare");
		goto out;
	}
	while (r == 0 && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *day = (const char *)sqlite3_column_text(q, 1);
		kl_i128 x[6] = {0}, sum;
		bool garbage = false;
		char vx[48];

		for (int i = 0; i < 6 && r == 0; i++) {
			/* The volume text of a wrapped sum is garbage; it is redone below. */
			if (kl_dec_parse((const char *)sqlite3_column_text(q, i + 2),
					 (size_t)sqlite3_column_bytes(q, i + 2), &x[i]) < 0) {
				if (i == 4)
					garbage = true;
				else
					r = -EINVAL;
			}
		}
		if (r == 0)
			r = day_volume(v, sqlite3_column_int64(q, 0), day, &sum);
		if (r < 0) {
			snprintf(err, n, "upgrade to schema 3: day %s: not klined's", day);
			break;
		}
		if (garbage || sum > INT64_MAX)
			x[4] = sum;
		for (int i = 0; i < 6; i++)
			sqlite3_bind_double(u, i + 3, kl_dec_double(x[i]));
		sqlite3_bind_int64(u, 1, sqlite3_column_int64(q, 0));
		sqlite3_bind_value(u, 2, sqlite3_column_value(q, 1));
		sqlite3_bind_text(u, 9, vx, (int)kl_dec_format8(x[4], vx, sizeof(vx)),
				  SQLITE_TRANSIENT);
		if (sqlite3_step(u) != SQLITE_DONE)
			r = fail(db, err, n, "day");
		sqlite3_reset(u);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = fail(db, err, n, "day scan");
out:
	sqlite3_finalize(q);
	sqlite3_finalize(u);
	sqlite3_finalize(v);
	return r;
}

int kl_store_upgrade(sqlite3 *db, size_t version, char *err, size_t n)
{
	int r;

	if (version == 7)
		return kl__store_upgrade_dense(db, err, n);
	if (version != 3)
		return 0;
	r = upgrade_days(db, err, n);
	return r < 0 ? r : upgrade_klines(db, err, n);
}
