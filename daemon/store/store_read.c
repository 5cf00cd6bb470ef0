/*
 * Reads: klines, uncertified days, consumer offsets, the ban, and
 * the rows of the status report and of `daily` as plain C for the
 * serving layer to present (daemon/serve/api.c).
 */
#include "store_int.h"

#include "store_exact.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kl__store_outages(struct kl_store *st, int64_t sid, int64_t from, int64_t to,
		      struct kl_ranges *out)
{
	sqlite3_stmt *s = st->stmt[S_OUTAGES];
	int rc, r = 0;

	sqlite3_bind_int64(s, 1, sid);
	sqlite3_bind_int64(s, 2, from);
	sqlite3_bind_int64(s, 3, to);
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW)
		r = kl_ranges_add(out, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1));
	sqlite3_reset(s);
	if (r == 0 && rc != SQLITE_DONE)
		r = kl__store_err(rc);
	return r;
}

int kl_store_get_offsets(struct kl_store *st, const char *topic, int32_t *parts, int64_t *next,
			 size_t max)
{
	sqlite3_stmt *s = st->stmt[S_OFFSETS];
	size_t n = 0;
	int rc;

	sqlite3_bind_text(s, 1, topic, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < max) {
		parts[n] = sqlite3_column_int(s, 0);
		next[n++] = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? (int)n : kl__store_err(rc);
}

int kl_store_each_kline(struct kl_store *st, int64_t sid, int64_t from, int64_t to,
			void (*fn)(void *ud, const struct kl_kline *k), void *ud)
{
	sqlite3_stmt *s = st->stmt[S_DAY_KLINES];
	struct kl_kline k = {0};
	int rc;

	sqlite3_bind_int64(s, 1, sid);
	sqlite3_bind_int64(s, 2, from);
	sqlite3_bind_int64(s, 3, to);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int e = kl_store_row_kline(s, &k);

		k.close_time = k.open_time + KL_MINUTE_MS - 1;
		if (e < 0) {
			sqlite3_reset(s);
			return -EIO; /* x not written by klined */
		}
		fn(ud, &k);
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : kl__store_err(rc);
}

int kl_store_uncertified(struct kl_store *st, int64_t before_ms, int64_t **pairs)
{
	sqlite3_stmt *s = st->stmt[S_UNCERTIFIED];
	int64_t *v = NULL;
	size_t n = 0, cap = 0;
	int rc;

	sqlite3_bind_int64(s, 1, before_ms);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n + 2 > cap) {
			int64_t *g = realloc(v, (cap = cap ? cap * 2 : 32) * sizeof(*v));
			if (!g) {
				sqlite3_reset(s);
				free(v);
				return -ENOMEM;
			}
			v = g;
		}
		v[n++] = sqlite3_column_int64(s, 0);
		v[n++] = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		free(v);
		return kl__store_err(rc);
	}
	*pairs = v;
	return (int)(n / 2);
}

int kl_store_get_ban(struct kl_store *st, int64_t *until_ms, char *reason, size_t n)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(
	    st->db, "SELECT until_ms, reason FROM exchange_ban WHERE id = 1", -1, &s, NULL);

	*until_ms = 0;
	if (n)
		reason[0] = '\0';
	if (rc != SQLITE_OK)
		return kl__store_err(rc);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 1);
		*until_ms = sqlite3_column_int64(s, 0);
		snprintf(reason, n, "%s", t ? (const char *)t : "");
	}
	sqlite3_finalize(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : kl__store_err(rc);
}

/* A text column, NULL as NULL. */
static const char *text_of(sqlite3_stmt *q, int col)
{
	return (const char *)sqlite3_column_text(q, col);
}

/* One symbol's line of the status report from the row of @p q. */
static int status_symbol(struct kl_store *st, sqlite3_stmt *q, struct kl_store_symstat *sym)
{
	int64_t sid = sqlite3_column_int64(q, 0);
	struct kl_ranges holes = {0}, out = {0};
	int r = 0;

	*sym = (struct kl_store_symstat){
	    .symbol = text_of(q, 1),
	    .start_ms = sqlite3_column_int64(q, 2),
	    .klines = sqlite3_column_int64(q, 3),
	    .newest_ms = sqlite3_column_type(q, 4) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, 4),
	    .days = sqlite3_column_int64(q, 5),
	    .rejects = sqlite3_column_int64(q, 6),
	    .has_last_day = sqlite3_column_type(q, 7) != SQLITE_NULL,
	};
	if (sym->newest_ms >= 0)
		r = kl_store_holes(st, sid, sym->start_ms, sym->newest_ms, &holes);
	if (r == 0)
		r = kl__store_outages(st, sid, INT64_MIN, INT64_MAX, &out);
	sym->holes = holes.n;
	sym->hole_minutes = kl_ranges_minutes(&holes);
	sym->outages = out.n;
	sym->outage_minutes = kl_ranges_minutes(&out);
	if (sym->has_last_day) {
		sym->last_day = text_of(q, 7);
		sym->close = sqlite3_column_double(q, 8);
		sym->volume = sqlite3_column_double(q, 9);
		sym->source = (enum kl_day_source)sqlite3_column_int(q, 10);
		sym->close_exact = text_of(q, 11);
		sym->volume_exact = text_of(q, 12);
	}
	kl_ranges_clear(&holes);
	kl_ranges_clear(&out);
	return r;
}

int kl_store_status_each(struct kl_store *st,
			 int (*fn)(void *ud, const struct kl_store_symstat *sym), void *ud)
{
	static const char q_text[] =
	    "SELECT s.sid, s.symbol, s.start_ms, "
	    "(SELECT count(*) FROM kline k WHERE k.sid = s.sid), "
	    "(SELECT max(open_time) FROM kline k WHERE k.sid = s.sid), "
	    "(SELECT count(*) FROM day d WHERE d.sid = s.sid), "
	    "(SELECT count(*) FROM reject j WHERE j.symbol = s.symbol), "
	    "d.day, d.close, d.volume, d.source, d.close_x, d.volume_x "
	    "FROM symbol s LEFT JOIN day d ON d.sid = s.sid AND d.day = "
	    "(SELECT max(day) FROM day WHERE sid = s.sid) ORDER BY s.symbol";
	struct kl_store_symstat sym;
	sqlite3_stmt *q = NULL;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(st->db, q_text, -1, &q, NULL);
	if (rc != SQLITE_OK)
		return kl__store_err(rc);
	while (r == 0 && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		r = status_symbol(st, q, &sym);
		if (r == 0)
			r = fn(ud, &sym);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = kl__store_err(rc);
	sqlite3_finalize(q);
	return r;
}

int kl_store_schema_version(struct kl_store *st, int *ret)
{
	return kl__store_user_version(st->db, ret);
}

int kl_store_daily_each(struct kl_store *st, const char *symbol, int64_t days, bool exact,
			int (*fn)(void *ud, const struct kl_store_dayrow *row), void *ud)
{
	sqlite3_stmt *q = st->stmt[exact ? S_DAILY_EXACT : S_DAILY];
	struct kl_store_dayrow row;
	int rc, r = 0;

	sqlite3_bind_text(q, 1, symbol, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, days);
	while (r == 0 && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		/* Columns: day, open .. quote_volume, trades, source, ma7, ma30, exact .. */
		static const int real_col[KL_DAYCOL_COUNT] = {1, 2, 3, 4, 5, 6, 9, 10};

		memset(&row, 0, sizeof(row));
		row.day = text_of(q, 0);
		row.trades = sqlite3_column_int64(q, 7);
		row.source = text_of(q, 8);
		for (int c = 0; c < KL_DAYCOL_COUNT; c++) {
			row.null[c] = sqlite3_column_type(q, real_col[c]) == SQLITE_NULL;
			if (!row.null[c])
				row.real[c] = sqlite3_column_double(q, real_col[c]);
		}
		row.has_exact = exact;
		for (int c = 0; exact && c < 6; c++)
			row.exact[c] = text_of(q, 11 + c);
		r = fn(ud, &row);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = kl__store_err(rc);
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return r;
}
