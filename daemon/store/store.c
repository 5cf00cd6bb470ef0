/*
 * The store's core: open (checked, migrated), the prepared statements,
 * transactions. Writes are in store_write.c, reads in store_read.c, the
 * day table in store_days.c. Invariants:
 *  1. A kline row exists only for a kline that passed kl_kline_check().
 *  2. symbol.dirty_from is lowered in the same transaction as any kline
 *     or outage write of that symbol, so a crash never leaves a day row
 *     stale without the mark that makes the next refresh redo it.
 *  3. A websocket kline never replaces a REST or imported one.
 *  4. Pending migrations run in one transaction together; user_version counts them.
 */
#include "store_int.h"

#include "log.h"
#include "store_exact.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char *const kl_schema[];
extern const size_t kl_schema_count;

static const char *const sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SYM_GET] = "SELECT sid, start_ms FROM symbol WHERE symbol = ?1",
    [S_SYM_STATE] = "SELECT dirty_from, start_ms, status FROM symbol WHERE sid = ?1",
    [S_SYM_ADD] = "INSERT INTO symbol(symbol, start_ms, dirty_from, followed) "
		  "VALUES (?1, ?2, ?2, 0)",
    [S_SYM_EXTEND] = "UPDATE symbol SET start_ms = ?2, dirty_from = ?2 "
		     "WHERE sid = ?1 AND start_ms > ?2",
    [S_SYM_DIRTY] = "UPDATE symbol SET dirty_from = min(coalesce(dirty_from, ?2), ?2) "
		    "WHERE sid = ?1",
    [S_SYM_CLEAN] = "UPDATE symbol SET dirty_from = ?2 WHERE sid = ?1",
    [S_KLINE_PUT] = "INSERT INTO kline VALUES "
		    "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15) "
		    "ON CONFLICT (sid, open_time) DO UPDATE SET close_time = excluded.close_time, "
		    "scale = excluded.scale, o = excluded.o, h = excluded.h, l = excluded.l, "
		    "c = excluded.c, v = excluded.v, q = excluded.q, tb = excluded.tb, "
		    "tq = excluded.tq, trades = excluded.trades, source = excluded.source, "
		    "x = excluded.x WHERE excluded.source <> 2 OR kline.source = 2",
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
    [S_DAY_KLINES] = "SELECT open_time, o, h, l, c, v, q, trades, x, scale "
		     "FROM kline WHERE sid = ?1 AND open_time >= ?2 AND open_time < ?3",
    [S_PREV_CLOSE] = "SELECT close_x FROM day WHERE sid = ?1 AND day < ?2 "
		     "ORDER BY day DESC LIMIT 1",
    [S_DAY_PUT] = "INSERT OR REPLACE INTO day "
		  "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)",
    [S_DAY_DEL] = "DELETE FROM day WHERE sid = ?1 AND day = ?2",
    [S_OFFSETS] = "SELECT part, next FROM consumer_offset WHERE topic = ?1 ORDER BY part",
    [S_OFFSET_PUT] = "INSERT OR REPLACE INTO consumer_offset VALUES (?1, ?2, ?3)",
    /* Nearly every call finds the row (the open day, rewritten at each
     * burst): one b-tree search for the update, not the upsert's two. */
    [S_SPEED_DAY] = "UPDATE day SET open = ?3, high = ?4, low = ?5, close = ?6, volume = ?7, "
		    "quote_volume = ?8, trades = ?9, open_x = ?11, high_x = ?12, low_x = ?13, "
		    "close_x = ?14, volume_x = ?15, quote_volume_x = ?16 "
		    "WHERE day = ?2 AND sid = ?1 AND source = 2",
    /* No speed row: a new day, or a batch or fill row, which stays. */
    [S_SPEED_DAY_NEW] = "INSERT INTO day VALUES "
			"(?1,?2,?3,?4,?5,?6,?7,?8,?9,2,?11,?12,?13,?14,?15,?16) "
			"ON CONFLICT (day, sid) DO NOTHING",
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
    /* store_holes.c: how far each symbol was searched, and what may be missing before. */
    [S_MARK_GET] = "SELECT s.start_ms, m.upto, "
		   "(SELECT max(open_time) FROM kline k WHERE k.sid = s.sid) "
		   "FROM symbol s LEFT JOIN hole_mark m ON m.sid = s.sid WHERE s.sid = ?1",
    [S_MARK_PUT] = "INSERT INTO hole_mark VALUES (?1, ?2) "
		   "ON CONFLICT (sid) DO UPDATE SET upto = excluded.upto",
    [S_SUSPECTS] = "SELECT from_ms, to_ms, new FROM hole_suspect WHERE sid = ?1 AND from_ms < ?3 "
		   "AND to_ms > ?2 ORDER BY from_ms",
    [S_SUSPECT_LIST] = "SELECT id, from_ms, to_ms, new FROM hole_suspect WHERE sid = ?1 "
		       "AND from_ms >= ?2 ORDER BY from_ms, id LIMIT ?3",
    [S_SUSPECT_ADD] = "INSERT INTO hole_suspect (sid, from_ms, to_ms, new) VALUES (?1, ?2, ?3, ?4)",
    [S_SUSPECT_DEL] = "DELETE FROM hole_suspect WHERE id = ?1",
    [S_SUSPECT_NEW] = "SELECT count(*) FROM hole_suspect WHERE sid = ?1 AND new",
    [S_SUSPECT_ANY_NEW] = "SELECT EXISTS (SELECT 1 FROM hole_suspect WHERE new)",
    [S_READ_BEGIN] = "BEGIN DEFERRED",
    [S_READ_END] = "COMMIT",
    [S_SUSPECT_SEEN] = "UPDATE hole_suspect SET new = 0 WHERE sid = ?1 AND new",
};

/* The last path checked sound in this process: the HTTP server's read-only
 * connection to the store the run just checked need not wait for it again. */
static char checked[4096];

int kl__store_err(int rc)
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
int kl__store_step_done(struct kl_store *st, enum stmt s)
{
	int rc = sqlite3_step(st->stmt[s]);

	sqlite3_reset(st->stmt[s]);
	return rc != SQLITE_DONE && rc != SQLITE_ROW ? kl__store_err(rc) : 0;
}

/* Every rollback, ours or SQLite's own: an I/O error or a full disk during any
 * statement, a read too, may roll the whole transaction back, and what follows
 * must not run in autocommit mode unawares. Runs inside SQLite: no calls back. */
static void on_rollback(void *ud)
{
	struct kl_store *st = ud;

	st->in_tx = false;
	st->ndirty = 0;
	st->lost_tx++;
}

static int exec(sqlite3 *db, const char *text, char *err, size_t n)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, text, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		snprintf(err, n, "%s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return kl__store_err(rc);
	}
	return 0;
}

int kl__store_user_version(sqlite3 *db, int *ret)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);

	if (rc != SQLITE_OK)
		return kl__store_err(rc);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : kl__store_err(rc);
}

/* Called before anything writes, so a store from a newer klined stays untouched. */
static int check_version(sqlite3 *db, bool readonly, char *err, size_t n)
{
	int v, r;

	r = kl__store_user_version(db, &v);
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

	r = kl__store_user_version(db, &v);
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
		r = kl__store_err(rc);
		goto out;
	}
	/* Users run sqlite3 beside the daemon. Their write locks are waited for a
	 * second at most, because the wait blocks the loop; past that the writer
	 * backs off and retries (the speed layer rewinds to its stored offsets). */
	sqlite3_busy_timeout(st->db, 1000);
	sqlite3_rollback_hook(st->db, on_rollback, st);
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
			r = kl__store_err(rc);
			goto out;
		}
	}
	/* A reader (klined status, the page's API) has no verifier to wait for. */
	st->holes_exact = readonly;
	if (!readonly) {
		st->path = strdup(path);
		if (!st->path) {
			snprintf(err, n, "out of memory");
			r = -ENOMEM;
			goto out;
		}
		kl_storefile_note(path, &st->id);
		kl__store_wal_hook(st);
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

int kl_store_begin(struct kl_store *st)
{
	int r;

	if (st->in_tx)
		return 0;
	r = kl__store_step_done(st, S_BEGIN);
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
		r = kl__store_step_done(st, S_SYM_DIRTY);
	}
	if (r == 0)
		r = kl__store_step_done(st, S_COMMIT);
	/* Keep invariant 2: drop the whole transaction, not half. SQLite may have
	 * dropped it already (on_rollback). */
	if (r < 0 && !sqlite3_get_autocommit(st->db))
		kl__store_step_done(st, S_ROLLBACK);
	st->in_tx = false;
	st->ndirty = 0;
	return r;
}

void kl_store_rollback(struct kl_store *st)
{
	if (!st->in_tx)
		return;
	kl__store_step_done(st, S_ROLLBACK); /* on_rollback counts it */
	st->in_tx = false;
	st->ndirty = 0;
}

uint64_t kl_store_lost_tx(const struct kl_store *st)
{
	return st->lost_tx;
}

bool kl_store_in_tx(struct kl_store *st)
{
	return st->in_tx;
}
