/*
 * SQLite adapter. Invariants:
 *  1. A kline row exists only for a kline that passed kl_kline_check().
 *  2. symbol.dirty_from is lowered in the same transaction as any kline
 *     or outage write of that symbol, so a crash never leaves a day row
 *     stale without the mark that makes the next refresh redo it.
 *  3. A websocket kline never replaces a REST or imported one.
 *  4. Pending migrations run in one transaction together; user_version counts them.
 */
#include "store.h"

#include "log.h"
#include "metrics.h"
#include "store_exact.h"
#include "storefile.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char *const kl_schema[];
extern const size_t kl_schema_count;

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
	S_UNCERTIFIED,
	S_DAILY,
	S_DAILY_EXACT,
	S_COUNT
};

static const char *const sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SYM_GET] = "SELECT sid, start_ms FROM symbol WHERE symbol = ?1",
    [S_SYM_STATE] = "SELECT dirty_from, start_ms FROM symbol WHERE sid = ?1",
    [S_SYM_ADD] = "INSERT INTO symbol(symbol, start_ms, dirty_from) VALUES (?1, ?2, ?2)",
    [S_SYM_EXTEND] = "UPDATE symbol SET start_ms = ?2, dirty_from = ?2 "
		     "WHERE sid = ?1 AND start_ms > ?2",
    [S_SYM_DIRTY] = "UPDATE symbol SET dirty_from = min(coalesce(dirty_from, ?2), ?2) "
		    "WHERE sid = ?1",
    [S_SYM_CLEAN] = "UPDATE symbol SET dirty_from = ?2 WHERE sid = ?1",
    [S_KLINE_PUT] = "INSERT INTO kline VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14) "
		    "ON CONFLICT (sid, open_time) DO UPDATE SET close_time = excluded.close_time, "
		    "open = excluded.open, high = excluded.high, low = excluded.low, "
		    "close = excluded.close, volume = excluded.volume, "
		    "quote_volume = excluded.quote_volume, taker_base = excluded.taker_base, "
		    "taker_quote = excluded.taker_quote, trades = excluded.trades, "
		    "source = excluded.source, x = excluded.x "
		    "WHERE excluded.source <> 2 OR kline.source = 2",
    [S_OUTAGE_EXTEND] = "UPDATE outage SET to_ms = max(to_ms, ?3) "
			"WHERE sid = ?1 AND from_ms <= ?2 AND to_ms >= ?2",
    [S_OUTAGE_ADD] = "INSERT OR IGNORE INTO outage VALUES (?1, ?2, ?3)",
    [S_REJECT_PUT] = "INSERT INTO reject(at_ms, symbol, origin, reason, raw) "
		     "VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_RUN_PUT] = "INSERT INTO run(started_ms, version) VALUES (?1, ?2)",
    [S_TIMES] = "SELECT open_time FROM kline WHERE sid = ?1 AND open_time >= ?2 "
		"AND open_time < ?3 ORDER BY open_time",
    [S_OUTAGES] = "SELECT from_ms, to_ms FROM outage WHERE sid = ?1 AND to_ms > ?2 "
		  "AND from_ms < ?3 ORDER BY from_ms",
    [S_DAY_KLINES] = "SELECT open_time, open, high, low, close, volume, quote_volume, trades, x "
		     "FROM kline WHERE sid = ?1 AND open_time >= ?2 AND open_time < ?3",
    [S_PREV_CLOSE] = "SELECT close_x FROM day WHERE sid = ?1 AND day < ?2 "
		     "ORDER BY day DESC LIMIT 1",
    [S_DAY_PUT] = "INSERT OR REPLACE INTO day "
		  "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)",
    [S_DAY_DEL] = "DELETE FROM day WHERE sid = ?1 AND day = ?2",
    [S_OFFSETS] = "SELECT part, next FROM consumer_offset WHERE topic = ?1 ORDER BY part",
    [S_OFFSET_PUT] = "INSERT OR REPLACE INTO consumer_offset VALUES (?1, ?2, ?3)",
    [S_SPEED_DAY] = "INSERT INTO day VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,2,?11,?12,?13,?14,?15,?16) "
		    "ON CONFLICT (sid, day) DO UPDATE SET open = excluded.open, "
		    "high = excluded.high, low = excluded.low, close = excluded.close, "
		    "volume = excluded.volume, quote_volume = excluded.quote_volume, "
		    "trades = excluded.trades, open_x = excluded.open_x, "
		    "high_x = excluded.high_x, low_x = excluded.low_x, close_x = excluded.close_x, "
		    "volume_x = excluded.volume_x, quote_volume_x = excluded.quote_volume_x "
		    "WHERE day.source = 2",
    [S_UNCERTIFIED] = "SELECT DISTINCT sid, open_time - open_time % 86400000 FROM kline "
		      "WHERE source = 2 AND open_time < ?1",
    [S_DAILY] = "SELECT * FROM (SELECT day, open, high, low, close, volume, quote_volume, "
		"trades, source, ma7, ma30 FROM daily WHERE symbol = ?1 "
		"ORDER BY day DESC LIMIT ?2) ORDER BY day",
    [S_DAILY_EXACT] = "SELECT * FROM (SELECT d.day, d.open, d.high, d.low, d.close, d.volume, "
		      "d.quote_volume, d.trades, d.source, d.ma7, d.ma30, e.open, e.high, e.low, "
		      "e.close, e.volume, e.quote_volume FROM daily d JOIN daily_exact e "
		      "USING (symbol, day) WHERE d.symbol = ?1 "
		      "ORDER BY d.day DESC LIMIT ?2) ORDER BY 1",
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
};

/* The last path checked sound in this process: the HTTP server's read-only
 * connection to the store the run just checked need not wait for it again. */
static char checked[4096];

static int err_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	default:
		return -EIO;
	}
}

const char *kl_store_errmsg(struct kl_store *st)
{
	return sqlite3_errmsg(st->db);
}

/* Run a prepared statement that returns no rows and reset it. */
static int step_done(struct kl_store *st, enum stmt s)
{
	int rc = sqlite3_step(st->stmt[s]);

	sqlite3_reset(st->stmt[s]);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		/* SQLite may have rolled the transaction back by itself (disk full,
		 * I/O error): what follows must not run in autocommit mode unawares. */
		if (st->in_tx && sqlite3_get_autocommit(st->db)) {
			st->in_tx = false;
			st->ndirty = 0;
			st->lost_tx++;
		}
		return err_of(rc);
	}
	return 0;
}

static int exec(sqlite3 *db, const char *text, char *err, size_t n)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, text, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		snprintf(err, n, "%s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return err_of(rc);
	}
	return 0;
}

static int user_version(sqlite3 *db, int *ret)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);

	if (rc != SQLITE_OK)
		return err_of(rc);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : err_of(rc);
}

/* Called before anything writes, so a store from a newer klined stays untouched. */
static int check_version(sqlite3 *db, bool readonly, char *err, size_t n)
{
	int v, r;

	r = user_version(db, &v);
	if (r < 0) {
		snprintf(err, n, "cannot read the schema version: %s", sqlite3_errmsg(db));
		return r;
	}
	if ((size_t)v > kl_schema_count) {
		snprintf(err, n,
			 "the store has schema version %d, newer than this klined knows (%zu); "
			 "upgrade klined (nothing was changed)",
			 v, kl_schema_count);
		return -EPROTO;
	}
	if ((size_t)v < kl_schema_count && readonly) {
		snprintf(err, n,
			 "the store has schema version %d, older than %zu: run the daemon "
			 "once to migrate it",
			 v, kl_schema_count);
		return -EPROTO;
	}
	return 0;
}

static int migrate(sqlite3 *db, char *err, size_t n)
{
	int v, r;
	char text[64];

	r = user_version(db, &v);
	if (r < 0 || (size_t)v >= kl_schema_count)
		return r;
	/* Every pending step in one transaction: a store killed mid-upgrade is the old one or
	 * the newest, never one in between that no release wrote. */
	r = exec(db, "BEGIN IMMEDIATE", err, n);
	if (r < 0)
		return r;
	for (size_t i = (size_t)v; i < kl_schema_count && r == 0; i++) {
		r = exec(db, kl_schema[i], err, n);
		if (r == 0)
			r = kl_store_upgrade(db, i + 1, err, n);
	}
	snprintf(text, sizeof(text), "PRAGMA user_version = %zu", kl_schema_count);
	if (r == 0)
		r = exec(db, text, err, n);
	if (r == 0)
		r = exec(db, "COMMIT", err, n);
	if (r < 0)
		exec(db, "ROLLBACK", text, sizeof(text));
	return r;
}

int kl_store_open(const char *path, bool readonly, struct kl_store **ret, char *err, size_t n)
{
	struct kl_store *st = calloc(1, sizeof(*st));
	int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	int rc, r;

	if (!st)
		return -ENOMEM;
	rc = sqlite3_open_v2(path, &st->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, n, "cannot open %s: %s", path,
			 st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		r = err_of(rc);
		goto out;
	}
	/* Users run sqlite3 beside the daemon. Their write locks are waited for a
	 * second at most, because the wait blocks the loop; past that the writer
	 * backs off and retries (the speed layer rewinds to its stored offsets). */
	sqlite3_busy_timeout(st->db, 1000);
	if (strcmp(checked, path) != 0) {
		r = kl_storefile_check(st->db, path, KL_STOREFILE_CHECK_MS, err, n);
		if (r < 0)
			goto out;
		snprintf(checked, sizeof(checked), "%s", path);
	}
	r = check_version(st->db, readonly, err, n);
	if (r < 0)
		goto out;
	if (!readonly) {
		r = exec(st->db,
			 /* Foreign keys stay documentation: every sid comes from our own
			  * symbol table, and a check per kline would cost the bulk path. */
			 "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
			 "PRAGMA cache_size = -8192",
			 err, n);
		if (r < 0)
			goto out;
	}
	r = readonly ? 0 : migrate(st->db, err, n);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < S_COUNT; i++) {
		rc = sqlite3_prepare_v3(st->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[i],
					NULL);
		if (rc != SQLITE_OK) {
			snprintf(err, n, "cannot prepare statement %zu: %s", i,
				 sqlite3_errmsg(st->db));
			r = err_of(rc);
			goto out;
		}
	}
	if (!readonly) {
		st->path = strdup(path);
		if (!st->path) {
			snprintf(err, n, "out of memory");
			r = -ENOMEM;
			goto out;
		}
		kl_storefile_note(path, &st->id);
	}
	*ret = st;
	return 0;
out:
	kl_store_close(st);
	return r;
}

struct kl_store *kl_store_close(struct kl_store *st)
{
	if (!st)
		return NULL;
	if (st->in_tx && kl_store_commit(st) < 0)
		kl_err("store", "final commit failed: %s", sqlite3_errmsg(st->db));
	for (size_t i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	sqlite3_close(st->db);
	free(st->dirty);
	free(st->path);
	free(st);
	return NULL;
}

int kl_store_file_check(struct kl_store *st, char *err, size_t n)
{
	return st && st->path ? kl_storefile_same(st->path, &st->id, err, n) : 0;
}

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
		return err_of(rc);
	if (!create)
		return -ENOENT;
	s = st->stmt[S_SYM_ADD];
	sqlite3_bind_text(s, 1, symbol, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, *start_ms);
	r = step_done(st, S_SYM_ADD);
	if (r < 0)
		return r;
	*sid = sqlite3_last_insert_rowid(st->db);
	return 0;
}

int kl_store_symbol_extend(struct kl_store *st, int64_t sid, int64_t start_ms)
{
	sqlite3_bind_int64(st->stmt[S_SYM_EXTEND], 1, sid);
	sqlite3_bind_int64(st->stmt[S_SYM_EXTEND], 2, start_ms);
	return step_done(st, S_SYM_EXTEND);
}

int kl_store_begin(struct kl_store *st)
{
	int r;

	if (st->in_tx)
		return 0;
	r = step_done(st, S_BEGIN);
	if (r == 0)
		st->in_tx = true;
	return r;
}

int kl_store_commit(struct kl_store *st)
{
	int r = 0;

	if (!st->in_tx)
		return 0;
	for (size_t i = 0; i < st->ndirty && r == 0; i++) {
		sqlite3_bind_int64(st->stmt[S_SYM_DIRTY], 1, st->dirty[i].sid);
		sqlite3_bind_int64(st->stmt[S_SYM_DIRTY], 2, st->dirty[i].from);
		r = step_done(st, S_SYM_DIRTY);
	}
	if (r == 0)
		r = step_done(st, S_COMMIT);
	if (r < 0 && st->in_tx) { /* keep invariant 2: drop the whole transaction, not half */
		step_done(st, S_ROLLBACK);
		st->lost_tx++;
	}
	st->in_tx = false;
	st->ndirty = 0;
	return r;
}

void kl_store_rollback(struct kl_store *st)
{
	if (!st->in_tx)
		return;
	step_done(st, S_ROLLBACK);
	st->in_tx = false;
	st->ndirty = 0;
	st->lost_tx++;
}

uint64_t kl_store_lost_tx(const struct kl_store *st)
{
	return st->lost_tx;
}

bool kl_store_in_tx(struct kl_store *st)
{
	return st->in_tx;
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
	sqlite3_stmt *s = st->stmt[S_KLINE_PUT];
	const kl_i128 v[] = {k->open,	k->high,	 k->low,	k->close,
			     k->volume, k->quote_volume, k->taker_base, k->taker_quote};
	bool big = false;
	char x[48 * 8];

	for (int i = 0; i < 8; i++)
		big |= v[i] > KL_DEC_SQL_EXACT;
	sqlite3_bind_int64(s, 1, sid);
	sqlite3_bind_int64(s, 2, k->open_time);
	sqlite3_bind_int64(s, 3, k->close_time);
	/* See schema/003-exact.sql: integer units, or nearest doubles plus x. */
	for (int i = 0; i < 8; i++) {
		if (big)
			sqlite3_bind_double(s, i + 4, kl_dec_double(v[i]));
		else
			sqlite3_bind_int64(s, i + 4, (int64_t)v[i]);
	}
	sqlite3_bind_int64(s, 12, k->trades);
	sqlite3_bind_int64(s, 13, (int64_t)src);
	if (big)
		sqlite3_bind_text(s, 14, x, (int)kl_dec_format_list(v, 8, x, sizeof(x)),
				  SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, 14);
	int r = step_done(st, S_KLINE_PUT);
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
	r = step_done(st, S_OUTAGE_EXTEND);
	if (r == 0 && sqlite3_changes(st->db) == 0) {
		s = st->stmt[S_OUTAGE_ADD];
		sqlite3_bind_int64(s, 1, sid);
		sqlite3_bind_int64(s, 2, from);
		sqlite3_bind_int64(s, 3, to);
		r = step_done(st, S_OUTAGE_ADD);
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
	return step_done(st, S_REJECT_PUT);
}

int kl_store_put_run(struct kl_store *st, int64_t now_ms, const char *version)
{
	sqlite3_bind_int64(st->stmt[S_RUN_PUT], 1, now_ms);
	sqlite3_bind_text(st->stmt[S_RUN_PUT], 2, version, -1, SQLITE_STATIC);
	return step_done(st, S_RUN_PUT);
}

static int outages(struct kl_store *st, int64_t sid, int64_t from, int64_t to,
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
		r = err_of(rc);
	return r;
}

int kl_store_holes(struct kl_store *st, int64_t sid, int64_t from, int64_t to,
		   struct kl_ranges *out)
{
	sqlite3_stmt *s = st->stmt[S_TIMES];
	struct kl_ranges skip = {0};
	struct kl_gapscan scan;
	int rc, r = 0;

	if (to <= from)
		return 0;
	kl_gapscan_init(&scan, from, to, out);
	sqlite3_bind_int64(s, 1, sid);
	sqlite3_bind_int64(s, 2, from);
	sqlite3_bind_int64(s, 3, to);
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW)
		r = kl_gapscan_feed(&scan, sqlite3_column_int64(s, 0));
	sqlite3_reset(s);
	if (r == 0 && rc != SQLITE_DONE)
		r = err_of(rc);
	if (r == 0)
		r = kl_gapscan_finish(&scan);
	if (r == 0)
		r = outages(st, sid, from, to, &skip);
	if (r == 0)
		r = kl_ranges_subtract(out, &skip);
	kl_ranges_clear(&skip);
	return r;
}

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
		r = outages(st, sid, d->start, d->start + KL_DAY_MS, &out);
	for (size_t i = 0; r == 0 && i < out.n; i++)
		kl_day_cover(d, out.v[i].from, out.v[i].to);
	kl_ranges_clear(&out);
	return r;
}

/* Both day statements take (sid, day, six nearest doubles, trades, _, six exact texts). */
static void bind_day(sqlite3_stmt *s, int64_t sid, const struct kl_day *d)
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

static int put_day(struct kl_store *st, int64_t sid, const struct kl_day *d, enum kl_day_source src)
{
	bind_day(st->stmt[S_DAY_PUT], sid, d);
	sqlite3_bind_int(st->stmt[S_DAY_PUT], 10, (int)src);
	return step_done(st, S_DAY_PUT);
}

static int del_day(struct kl_store *st, int64_t sid, int64_t start)
{
	char day[11];

	kl_day_format(start, day);
	sqlite3_bind_int64(st->stmt[S_DAY_DEL], 1, sid);
	sqlite3_bind_text(st->stmt[S_DAY_DEL], 2, day, -1, SQLITE_TRANSIENT);
	return step_done(st, S_DAY_DEL);
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
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : err_of(rc);
}

/*
 * Day states, for each day from the stale mark to today:
 *   complete, has klines      -> batch row
 *   complete, no kline        -> fill row (prev close), or no row before the first
 *   today (not complete)      -> speed row if it has klines
 *   past and not complete     -> no row; stays stale until its hole heals
 */
int kl_store_refresh_days(struct kl_store *st, int64_t sid, int64_t now_ms)
{
	sqlite3_stmt *s = st->stmt[S_SYM_STATE];
	int64_t dirty = -1, start = 0, today = kl_day_floor(now_ms), stale = -1;
	kl_i128 close = -1;
	int r, rc, ndays = 0;
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
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return err_of(rc);
	if (dirty < 0)
		return 0;
	if (dirty < kl_day_floor(start))
		dirty = kl_day_floor(start);
	r = kl_store_begin(st);
	if (r < 0)
		return r;
	r = prev_close(st, sid, dirty, &close);
	for (int64_t day = dirty; r == 0 && day <= today; day += KL_DAY_MS) {
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
	if (r == 0) {
		sqlite3_bind_int64(st->stmt[S_SYM_CLEAN], 1, sid);
		sqlite3_bind_int64(st->stmt[S_SYM_CLEAN], 2, stale >= 0 ? stale : today);
		r = step_done(st, S_SYM_CLEAN);
	}
	if (r == 0)
		r = kl_store_commit(st);
	else
		kl_store_rollback(st);
	return r < 0 ? r : ndays;
}

static json_t *time_json(int64_t ms)
{
	char buf[21];

	kl_time_format(ms, buf);
	return json_string(buf);
}

/* One symbol's part of the status report. */
static int status_symbol(struct kl_store *st, sqlite3_stmt *q, json_t *sym)
{
	int64_t sid = sqlite3_column_int64(q, 0), start = sqlite3_column_int64(q, 2);
	int64_t newest = sqlite3_column_type(q, 4) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, 4);
	struct kl_ranges holes = {0}, out = {0};
	char day[11];
	int r = 0;

	kl_day_format(start, day);
	json_object_set_new(sym, "symbol", json_string((const char *)sqlite3_column_text(q, 1)));
	json_object_set_new(sym, "history_start", json_string(day));
	json_object_set_new(sym, "klines", json_integer(sqlite3_column_int64(q, 3)));
	json_object_set_new(sym, "newest_minute", newest < 0 ? json_null() : time_json(newest));
	json_object_set_new(sym, "newest_minute_ms",
			    newest < 0 ? json_null() : json_integer(newest));
	if (newest >= 0)
		r = kl_store_holes(st, sid, start, newest, &holes);
	if (r == 0)
		r = outages(st, sid, INT64_MIN, INT64_MAX, &out);
	json_object_set_new(sym, "holes", json_integer((json_int_t)holes.n));
	json_object_set_new(sym, "hole_minutes", json_integer(kl_ranges_minutes(&holes)));
	json_object_set_new(sym, "outages", json_integer((json_int_t)out.n));
	json_object_set_new(sym, "outage_minutes", json_integer(kl_ranges_minutes(&out)));
	json_object_set_new(sym, "days", json_integer(sqlite3_column_int64(q, 5)));
	json_object_set_new(sym, "rejects", json_integer(sqlite3_column_int64(q, 6)));
	if (sqlite3_column_type(q, 7) != SQLITE_NULL) {
		json_t *t = json_pack(
		    "{s:s, s:f, s:f, s:s, s:s, s:s}", "day", sqlite3_column_text(q, 7), "close",
		    sqlite3_column_double(q, 8), "volume", sqlite3_column_double(q, 9), "source",
		    sqlite3_column_int(q, 10) == KL_DAY_BATCH	? "batch"
		    : sqlite3_column_int(q, 10) == KL_DAY_SPEED ? "speed"
								: "fill",
		    "close_exact", sqlite3_column_text(q, 11), "volume_exact",
		    sqlite3_column_text(q, 12));
		json_object_set_new(sym, "last_day", t);
	} else {
		json_object_set_new(sym, "last_day", json_null());
	}
	kl_ranges_clear(&holes);
	kl_ranges_clear(&out);
	return r;
}

int kl_store_status(struct kl_store *st, json_t **ret)
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
	json_t *root = json_object(), *syms = json_array();
	sqlite3_stmt *q = NULL;
	int rc, r = 0, v = 0;

	if (!root || !syms) {
		r = -ENOMEM;
		goto out;
	}
	rc = sqlite3_prepare_v2(st->db, q_text, -1, &q, NULL);
	if (rc != SQLITE_OK) {
		r = err_of(rc);
		goto out;
	}
	while (r == 0 && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		json_t *sym = json_object();
		r = sym ? status_symbol(st, q, sym) : -ENOMEM;
		json_array_append_new(syms, sym);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = err_of(rc);
	user_version(st->db, &v);
	json_object_set_new(root, "schema_version", json_integer(v));
	json_object_set_new(root, "symbols", syms);
	syms = NULL;
out:
	sqlite3_finalize(q);
	json_decref(syms);
	if (r < 0)
		json_decref(root);
	else
		*ret = root;
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
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? (int)n : err_of(rc);
}

int kl_store_put_offset(struct kl_store *st, const char *topic, int32_t part, int64_t next)
{
	sqlite3_stmt *s = st->stmt[S_OFFSET_PUT];

	sqlite3_bind_text(s, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, part);
	sqlite3_bind_int64(s, 3, next);
	return step_done(st, S_OFFSET_PUT);
}

int kl_store_put_speed_day(struct kl_store *st, int64_t sid, const struct kl_day *d)
{
	bind_day(st->stmt[S_SPEED_DAY], sid, d);
	return step_done(st, S_SPEED_DAY);
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
		k.open_time = sqlite3_column_int64(s, 0);
		k.close_time = k.open_time + KL_MINUTE_MS - 1;
		k.trades = sqlite3_column_int64(s, 7);
		if (sqlite3_column_type(s, 8) == SQLITE_NULL) {
			k.open = sqlite3_column_int64(s, 1);
			k.high = sqlite3_column_int64(s, 2);
			k.low = sqlite3_column_int64(s, 3);
			k.close = sqlite3_column_int64(s, 4);
			k.volume = sqlite3_column_int64(s, 5);
			k.quote_volume = sqlite3_column_int64(s, 6);
		} else if (kl_store_exact_kline(s, 8, &k) < 0) {
			sqlite3_reset(s);
			return -EIO; /* x not written by klined */
		}
		fn(ud, &k);
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : err_of(rc);
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
		return err_of(rc);
	}
	*pairs = v;
	return (int)(n / 2);
}

/* A REAL column as a JSON number, NULL as null. */
static json_t *real_json(sqlite3_stmt *q, int col)
{
	return sqlite3_column_type(q, col) == SQLITE_NULL
		   ? json_null()
		   : json_real(sqlite3_column_double(q, col));
}

int kl_store_daily(struct kl_store *st, const char *symbol, int64_t days, bool exact, json_t **ret)
{
	static const char *const cols[] = {"open",  "high",   "low",
					   "close", "volume", "quote_volume"};
	sqlite3_stmt *q = st->stmt[exact ? S_DAILY_EXACT : S_DAILY];
	json_t *rows = json_array();
	int rc, r = 0;

	if (!rows)
		return -ENOMEM;
	sqlite3_bind_text(q, 1, symbol, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, days);
	while (r == 0 && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		json_t *row = json_object();
		if (!row || json_array_append_new(rows, row) < 0) {
			r = -ENOMEM;
			break;
		}
		json_object_set_new(row, "day",
				    json_string((const char *)sqlite3_column_text(q, 0)));
		for (int c = 0; c < 6; c++)
			json_object_set_new(row, cols[c], real_json(q, c + 1));
		json_object_set_new(row, "trades", json_integer(sqlite3_column_int64(q, 7)));
		json_object_set_new(row, "source",
				    json_string((const char *)sqlite3_column_text(q, 8)));
		json_object_set_new(row, "ma7", real_json(q, 9));
		json_object_set_new(row, "ma30", real_json(q, 10));
		if (exact)
			json_object_set_new(row, "exact", kl_store_exact_json(q, 11, cols, 6));
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = err_of(rc);
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	if (r < 0)
		json_decref(rows);
	else
		*ret = rows;
	return r;
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
		return err_of(rc);
	sqlite3_bind_int64(s, 1, until_ms);
	sqlite3_bind_text(s, 2, reason, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : err_of(rc);
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
		return err_of(rc);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 1);
		*until_ms = sqlite3_column_int64(s, 0);
		snprintf(reason, n, "%s", t ? (const char *)t : "");
	}
	sqlite3_finalize(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : err_of(rc);
}
