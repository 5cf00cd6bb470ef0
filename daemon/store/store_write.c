/*
 * Writes: symbols, klines, outages, rejects, runs, consumer offsets,
 * speed days, the ban. Each kline or outage write also lowers its
 * symbol's stale mark in the open transaction (store.c, invariant 2).
 */
#include "store_int.h"

#include "metrics.h"
#include "store_row.h"

#include <errno.h>
#include <stdlib.h>

int kl_store_symbol(struct kl_store *st, const char *symbol, bool create, int64_t *start_ms,
		    int64_t *sid)
{
	sqlite3_stmt *s = st->stmt[S_SYM_GET];
	int rc, r;

	sqlite3_bind_text(s, 1, symbol, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*sid = sqlite3_column_int64(s, 0);
		*start_ms = sqlite3_column_int64(s, 1);
		sqlite3_reset(s);
		return 0;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return kl__store_err(rc);
	if (!create)
		return -ENOENT;
	s = st->stmt[S_SYM_ADD];
	sqlite3_bind_text(s, 1, symbol, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, *start_ms);
	r = kl__store_step_done(st, S_SYM_ADD);
	if (r < 0)
		return r;
	*sid = sqlite3_last_insert_rowid(st->db);
	return 0;
}

int kl_store_symbol_extend(struct kl_store *st, int64_t sid, int64_t start_ms)
{
	sqlite3_bind_int64(st->stmt[S_SYM_EXTEND], 1, sid);
	sqlite3_bind_int64(st->stmt[S_SYM_EXTEND], 2, start_ms);
	return kl__store_step_done(st, S_SYM_EXTEND);
}

static int mark_dirty(struct kl_store *st, int64_t sid, int64_t ms)
{
	int64_t day = kl_day_floor(ms);

	for (size_t i = 0; i < st->ndirty; i++) {
		if (st->dirty[i].sid == sid) {
			if (day < st->dirty[i].from)
				st->dirty[i].from = day;
			return 0;
		}
	}
	if (st->ndirty == st->cap_dirty) {
		size_t cap = st->cap_dirty ? st->cap_dirty * 2 : 8;
		struct dirty *d = realloc(st->dirty, cap * sizeof(*d));
		if (!d)
			return -ENOMEM;
		st->dirty = d;
		st->cap_dirty = cap;
	}
	st->dirty[st->ndirty++] = (struct dirty){sid, day};
	return 0;
}

int kl_store_put_kline(struct kl_store *st, int64_t sid, const struct kl_kline *k,
		       enum kl_source src)
{
	int r;

	kl__store_bind_kline(st->stmt[S_KLINE_PUT], sid, k, src);
	r = kl__store_step_done(st, S_KLINE_PUT);
	kl_metrics_add(KL_M_KLINES_REST + (src - KL_SRC_REST),
		       r < 0 ? 0 : (uint64_t)sqlite3_changes(st->db));
	return r < 0 ? r : mark_dirty(st, sid, k->open_time);
}

int kl_store_put_outage(struct kl_store *st, int64_t sid, int64_t from, int64_t to)
{
	sqlite3_stmt *s = st->stmt[S_OUTAGE_EXTEND];
	int r;

	sqlite3_bind_int64(s, 1, sid);
	sqlite3_bind_int64(s, 2, from);
	sqlite3_bind_int64(s, 3, to);
	r = kl__store_step_done(st, S_OUTAGE_EXTEND);
	if (r == 0 && sqlite3_changes(st->db) == 0) {
		s = st->stmt[S_OUTAGE_ADD];
		sqlite3_bind_int64(s, 1, sid);
		sqlite3_bind_int64(s, 2, from);
		sqlite3_bind_int64(s, 3, to);
		r = kl__store_step_done(st, S_OUTAGE_ADD);
	}
	return r < 0 ? r : mark_dirty(st, sid, from);
}

int kl_store_put_reject(struct kl_store *st, int64_t at_ms, const char *symbol, const char *origin,
			const char *reason, const char *raw)
{
	sqlite3_stmt *s = st->stmt[S_REJECT_PUT];

	sqlite3_bind_int64(s, 1, at_ms);
	sqlite3_bind_text(s, 2, symbol, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, origin, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, raw, -1, SQLITE_STATIC);
	return kl__store_step_done(st, S_REJECT_PUT);
}

int kl_store_put_run(struct kl_store *st, int64_t now_ms, const char *version)
{
	sqlite3_bind_int64(st->stmt[S_RUN_PUT], 1, now_ms);
	sqlite3_bind_text(st->stmt[S_RUN_PUT], 2, version, -1, SQLITE_STATIC);
	return kl__store_step_done(st, S_RUN_PUT);
}

/* Both day statements take (sid, day, six nearest doubles, trades, _, six exact texts). */
void kl__store_bind_day(sqlite3_stmt *s, int64_t sid, const struct kl_day *d)
{
	const kl_i128 v[] = {d->open, d->high, d->low, d->close, d->volume, d->quote_volume};
	char day[11], x[48];

	kl_day_format(d->start, day);
	sqlite3_bind_int64(s, 1, sid);
	sqlite3_bind_text(s, 2, day, -1, SQLITE_TRANSIENT);
	for (int i = 0; i < 6; i++) {
		sqlite3_bind_double(s, i + 3, kl_dec_double(v[i]));
		sqlite3_bind_text(s, i + 11, x, (int)kl_dec_format8(v[i], x, sizeof(x)),
				  SQLITE_TRANSIENT);
	}
	sqlite3_bind_int64(s, 9, d->trades);
}

int kl_store_put_offset(struct kl_store *st, const char *topic, int32_t part, int64_t next)
{
	sqlite3_stmt *s = st->stmt[S_OFFSET_PUT];

	sqlite3_bind_text(s, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, part);
	sqlite3_bind_int64(s, 3, next);
	return kl__store_step_done(st, S_OFFSET_PUT);
}

int kl_store_put_speed_day(struct kl_store *st, int64_t sid, const struct kl_day *d)
{
	int r;

	kl__store_bind_day(st->stmt[S_SPEED_DAY], sid, d);
	r = kl__store_step_done(st, S_SPEED_DAY);
	if (r < 0 || sqlite3_changes(st->db) > 0)
		return r;
	kl__store_bind_day(st->stmt[S_SPEED_DAY_NEW], sid, d);
	return kl__store_step_done(st, S_SPEED_DAY_NEW);
}

/* Rare (a ban or two a day at worst): prepared when needed, not at open. */
int kl_store_put_ban(struct kl_store *st, int64_t until_ms, const char *reason)
{
	sqlite3_stmt *s;
	int rc =
	    sqlite3_prepare_v2(st->db,
			       "INSERT INTO exchange_ban (id, until_ms, reason) VALUES (1, ?, ?) "
			       "ON CONFLICT (id) DO UPDATE SET until_ms = excluded.until_ms, "
			       "reason = excluded.reason",
			       -1, &s, NULL);

	if (rc != SQLITE_OK)
		return kl__store_err(rc);
	sqlite3_bind_int64(s, 1, until_ms);
	sqlite3_bind_text(s, 2, reason, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : kl__store_err(rc);
}
