/*
 * The kline row codec of schema 7 (schema/007-dense.sql). Invariants:
 *  1. scale NULL <=> x not NULL: a row is either the dense form (every
 *     value at most 2^53 units, KL_DEC_SQL_EXACT) or schema 3's exact one.
 *  2. Dense: each value is its group's column times 10^digit, the group's
 *     digit the most decimal zeros all its values share (at most 9):
 *     prices (open, high - open, low - open, close - open), base volumes,
 *     quote volumes. Zero shares any number of zeros.
 *  3. Decoding in C here and in SQL (the kline_units view) gives the same
 *     units; /api/klines and the day rows read through this file.
 */
#include "store_row.h"

#include "log.h"
#include "notify.h"
#include "store_exact.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

static const int64_t p10[10] = {1,	10,	 100,	   1000,      10000,
				100000, 1000000, 10000000, 100000000, 1000000000};

/* The most decimal zeros (at most 9) that all @p n values share: invariant 2. */
static int zeros(const int64_t *v, int n)
{
	int e = 9;

	for (int i = 0; i < n; i++) {
		while (e > 0 && v[i] % p10[e])
			e--;
	}
	return e;
}

/* Bind the dense form (x NULL) of values at most 2^53 units: ?4 .. ?12. */
static void bind_dense(sqlite3_stmt *s, const int64_t *u)
{
	const int64_t px[] = {u[0], u[1] - u[0], u[2] - u[0], u[3] - u[0]};
	const int64_t base[] = {u[4], u[6]}, quote[] = {u[5], u[7]};
	int p = zeros(px, 4), v = zeros(base, 2), q = zeros(quote, 2);

	sqlite3_bind_int(s, 4, p * 100 + v * 10 + q);
	for (int i = 0; i < 4; i++)
		sqlite3_bind_int64(s, 5 + i, px[i] / p10[p]);
	sqlite3_bind_int64(s, 9, u[4] / p10[v]);
	sqlite3_bind_int64(s, 10, u[5] / p10[q]);
	sqlite3_bind_int64(s, 11, u[6] / p10[v]);
	sqlite3_bind_int64(s, 12, u[7] / p10[q]);
	sqlite3_bind_null(s, 15);
}

void kl__store_bind_kline(sqlite3_stmt *s, int64_t sid, const struct kl_kline *k,
			  enum kl_source src)
{
	const kl_i128 v[] = {k->open,	k->high,	 k->low,	k->close,
			     k->volume, k->quote_volume, k->taker_base, k->taker_quote};
	bool big = false;
	char x[48 * 8];

	for (int i = 0; i < 8; i++)
		big |= v[i] > KL_DEC_SQL_EXACT;
	sqlite3_bind_int64(s, 1, sid);
	sqlite3_bind_int64(s, 2, k->open_time);
	if (k->close_time == k->open_time + KL_MINUTE_MS - 1)
		sqlite3_bind_null(s, 3);
	else
		sqlite3_bind_int64(s, 3, k->close_time);
	sqlite3_bind_int64(s, 13, k->trades);
	sqlite3_bind_int64(s, 14, (int64_t)src);
	if (!big) {
		int64_t u[8];

		for (int i = 0; i < 8; i++)
			u[i] = (int64_t)v[i];
		bind_dense(s, u);
		return;
	}
	/* Schema 3's exact form: nearest doubles plus the decimals. */
	sqlite3_bind_null(s, 4);
	for (int i = 0; i < 8; i++)
		sqlite3_bind_double(s, i + 5, kl_dec_double(v[i]));
	sqlite3_bind_text(s, 15, x, (int)kl_dec_format_list(v, 8, x, sizeof(x)), SQLITE_TRANSIENT);
}

int kl_store_row_kline(sqlite3_stmt *s, struct kl_kline *k)
{
	int64_t e, p, pv, pq;
	kl_i128 o;

	k->open_time = sqlite3_column_int64(s, 0);
	k->trades = sqlite3_column_int64(s, 7);
	if (sqlite3_column_type(s, 8) != SQLITE_NULL)
		return kl_store_exact_kline(s, 8, k) < 0 ? -EIO : 0;
	/* The type first: reading the value could convert it. */
	if (sqlite3_column_type(s, 9) != SQLITE_INTEGER)
		return -EIO;
	e = sqlite3_column_int64(s, 9);
	if (e < 0 || e > 999)
		return -EIO;
	p = p10[e / 100];
	pv = p10[e / 10 % 10];
	pq = p10[e % 10];
	o = sqlite3_column_int64(s, 1);
	/* 128 bits: a row not klined's cannot overflow, only read wrong. */
	k->open = o * p;
	k->high = (o + sqlite3_column_int64(s, 2)) * p;
	k->low = (o + sqlite3_column_int64(s, 3)) * p;
	k->close = (o + sqlite3_column_int64(s, 4)) * p;
	k->volume = (kl_i128)sqlite3_column_int64(s, 5) * pv;
	k->quote_volume = (kl_i128)sqlite3_column_int64(s, 6) * pq;
	return 0;
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/*
 * Progress of a long upgrade (about 2.5 s per million klines; half an hour
 * for 1,500 symbol-years): every 5 s more start-up time from systemd (its
 * start timeout would kill the upgrade, rolled back, at every restart),
 * every 30 s a log line.
 */
static void progress(uint64_t rows, double t0, double *noted, double *logged)
{
	double t = now_s();

	if (t - *noted < 5)
		return;
	*noted = t;
	kl_notify_extend(60000000, "upgrading the store to schema 7: %llu klines rewritten",
			 (unsigned long long)rows);
	if (t - *logged < 30)
		return;
	*logged = t;
	kl_info("store", "upgrade to schema 7: %llu klines rewritten, %.0f/s",
		(unsigned long long)rows, (double)rows / (t - t0));
}

static int fail(sqlite3 *db, char *err, size_t n, const char *what)
{
	snprintf(err, n, "upgrade to schema 7: %s: %s", what, sqlite3_errmsg(db));
	return -EIO;
}

/* One old row (schema 3's columns, @p q) bound as an insert of the new form. */
static void copy_row(sqlite3_stmt *q, sqlite3_stmt *u)
{
	int64_t ot = sqlite3_column_int64(q, 1), ct = sqlite3_column_int64(q, 2);

	sqlite3_bind_value(u, 1, sqlite3_column_value(q, 0));
	sqlite3_bind_int64(u, 2, ot);
	if (ct == ot + KL_MINUTE_MS - 1)
		sqlite3_bind_null(u, 3);
	else
		sqlite3_bind_int64(u, 3, ct);
	sqlite3_bind_value(u, 13, sqlite3_column_value(q, 11));
	sqlite3_bind_value(u, 14, sqlite3_column_value(q, 12));
	if (sqlite3_column_type(q, 13) == SQLITE_NULL) {
		int64_t v[8];

		for (int i = 0; i < 8; i++)
			v[i] = sqlite3_column_int64(q, 3 + i);
		bind_dense(u, v);
		return;
	}
	/* Already the exact form: its doubles and decimals as they are. */
	sqlite3_bind_null(u, 4);
	for (int i = 0; i < 8; i++)
		sqlite3_bind_value(u, 5 + i, sqlite3_column_value(q, 3 + i));
	sqlite3_bind_value(u, 15, sqlite3_column_value(q, 13));
}

/*
 * The old table dropped, kline7 renamed kline. Debian's SQLite zeroes freed
 * pages (SQLITE_SECURE_DELETE): for the old table, a copy of what the new
 * one holds, that would write all of it to the WAL once more, so the drop
 * runs with secure_delete FAST (no extra I/O) and the setting comes back.
 */
static int swap(sqlite3 *db, char *err, size_t n)
{
	sqlite3_stmt *s = NULL;
	int mode = 1, r = 0;
	char text[48];

	if (sqlite3_prepare_v2(db, "PRAGMA secure_delete", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		mode = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	if (sqlite3_exec(db,
			 "PRAGMA secure_delete = FAST; DROP TABLE kline; "
			 "ALTER TABLE kline7 RENAME TO kline",
			 NULL, NULL, NULL) != SQLITE_OK)
		r = fail(db, err, n, "rename");
	snprintf(text, sizeof(text), "PRAGMA secure_delete = %d", mode);
	sqlite3_exec(db, text, NULL, NULL, NULL);
	return r;
}

int kl__store_upgrade_dense(sqlite3 *db, char *err, size_t n)
{
	static const char q_text[] =
	    "SELECT sid, open_time, close_time, open, high, low, close, volume, quote_volume, "
	    "taker_base, taker_quote, trades, source, x FROM kline";
	static const char u_text[] = "INSERT INTO kline7 VALUES "
				     "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)";
	sqlite3_stmt *q = NULL, *u = NULL;
	/* The first note at once: a restart loop cannot outrun the first 5 s. */
	double t0 = now_s(), noted = t0 - 5, logged = t0;
	int rc = SQLITE_DONE, r = 0;
	uint64_t rows = 0;

	if (sqlite3_prepare_v2(db, q_text, -1, &q, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, u_text, -1, &u, NULL) != SQLITE_OK) {
		r = fail(db, err, n, "prepare");
		goto out;
	}
	/* In key order: the new table fills its pages as a VACUUM would. */
	while (r == 0 && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		/* An old value not an integer (x NULL) is not klined's: refuse it. */
		for (int i = 3; i < 11 && sqlite3_column_type(q, 13) == SQLITE_NULL; i++) {
			if (sqlite3_column_type(q, i) != SQLITE_INTEGER ||
			    sqlite3_column_int64(q, i) > KL_DEC_SQL_EXACT) {
				snprintf(err, n,
					 "upgrade to schema 7: kline %lld of symbol %lld "
					 "is not klined's",
					 (long long)sqlite3_column_int64(q, 1),
					 (long long)sqlite3_column_int64(q, 0));
				r = -EIO;
			}
		}
		if (r < 0)
			break;
		copy_row(q, u);
		if (sqlite3_step(u) != SQLITE_DONE)
			r = fail(db, err, n, "kline");
		sqlite3_reset(u);
		if (++rows % 65536 == 0)
			progress(rows, t0, &noted, &logged);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = fail(db, err, n, "kline scan");
out:
	sqlite3_finalize(q);
	sqlite3_finalize(u);
	if (r == 0 && rows >= 65536)
		kl_info("store", "upgrade to schema 7: %llu klines rewritten in %.1f s",
			(unsigned long long)rows, now_s() - t0);
	return r < 0 ? r : swap(db, err, n);
}
