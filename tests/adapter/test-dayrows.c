/*
 * The day rows' layout on a real SQLite file, with history (schema/
 * 009-dayorder.sql): the speed layer's checkpoint of every symbol's open
 * day writes a few pages to the WAL, not one per symbol, and a query of
 * one symbol's `daily` rows reads that symbol's rows, not every symbol's.
 * Both were linear in the number of symbols before.
 */
#include "store.h"

#include "day.h"

#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define NSYM	 300
#define NDAYS	 120
#define DAY0	 1678320000000LL /* 2023-03-09 */
#define TODAY	 (DAY0 + NDAYS * KL_DAY_MS)
#define UNIT	 100000000 /* 1e-8 */
#define ROW_SIZE 160	   /* bytes of a day row, about: 6 doubles, 6 decimals, the key */

static char dir[64], path[96];
static int64_t sids[NSYM];

static void exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

/* NSYM symbols with NDAYS batch days each, written by another connection. */
static int setup(void **state)
{
	struct kl_store *st = NULL;
	sqlite3 *db;
	sqlite3_stmt *s;
	char err[256];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test-dayrows-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/klined.db", dir);
	assert_int_equal(kl_store_open(path, false, &st, err, sizeof(err)), 0);
	assert_int_equal(kl_store_begin(st), 0);
	for (int i = 0; i < NSYM; i++) {
		char sym[16];
		int64_t start = DAY0;
		snprintf(sym, sizeof(sym), "S%04dUSDT", i);
		assert_int_equal(kl_store_symbol(st, sym, true, &start, &sids[i]), 0);
	}
	assert_int_equal(kl_store_commit(st), 0);
	kl_store_close(st);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	exec(db, "BEGIN");
	assert_int_equal(sqlite3_prepare_v2(db,
					    "INSERT INTO day VALUES (?1, date(?2, 'unixepoch'), "
					    "1.5, 2.5, 0.5, 1.5, 10, 20, 5, 1, '1.50000000', "
					    "'2.50000000', '0.50000000', '1.50000000', "
					    "'10.00000000', '20.00000000')",
					    -1, &s, NULL),
			 SQLITE_OK);
	for (int i = 0; i < NSYM; i++) {
		for (int d = 0; d < NDAYS; d++) {
			sqlite3_bind_int64(s, 1, sids[i]);
			sqlite3_bind_int64(s, 2, (DAY0 + d * KL_DAY_MS) / 1000);
			assert_int_equal(sqlite3_step(s), SQLITE_DONE);
			sqlite3_reset(s);
		}
	}
	sqlite3_finalize(s);
	exec(db, "COMMIT");
	assert_int_equal(sqlite3_close(db), SQLITE_OK); /* the last: checkpoints, drops the WAL */
	return 0;
}

static int teardown(void **state)
{
	char f[128];

	(void)state;
	for (int i = 0; i < 3; i++) {
		snprintf(f, sizeof(f), "%s/klined.db%s", dir,
			 (const char *[]){"", "-wal", "-shm"}[i]);
		unlink(f);
	}
	rmdir(dir);
	return 0;
}

static void speed_day(struct kl_day *d, int round, int i)
{
	kl_day_init(d, TODAY);
	d->open = (kl_i128)(100 + i) * UNIT;
	d->high = (kl_i128)(200 + i + round) * UNIT;
	d->low = (kl_i128)(50 + i) * UNIT;
	d->close = (kl_i128)(150 + i + round) * UNIT;
	d->volume = (kl_i128)(1000 + round) * UNIT;
	d->quote_volume = (kl_i128)(2000 + round) * UNIT;
	d->trades = 10 + round;
}

/* One checkpoint of the speed layer: every symbol's open day. @return WAL pages after it. */
static int checkpoint(struct kl_store *st, int round)
{
	struct kl_day d;

	assert_int_equal(kl_store_begin(st), 0);
	for (int i = 0; i < NSYM; i++) {
		speed_day(&d, round, i);
		assert_int_equal(kl_store_put_speed_day(st, sids[i], &d), 0);
	}
	assert_int_equal(kl_store_commit(st), 0);
	return kl_store_wal_pages(st);
}

/*
 * A burst's checkpoint rewrites NSYM rows: about NSYM * ROW_SIZE bytes of
 * pages, plus the tree's inner pages and the offsets. Keyed (sid, day), it
 * was one leaf page per symbol (NSYM pages: 300 here, 1,500 of 4 KiB at
 * every burst for the whole exchange).
 */
static void test_speed_checkpoint_pages(void **state)
{
	struct kl_store *st = NULL;
	char err[256];
	int before, opened, updated;

	(void)state;
	assert_int_equal(kl_store_open(path, false, &st, err, sizeof(err)), 0);
	kl_store_wal_defer(st); /* no checkpoint in between: the WAL only grows */
	before = kl_store_wal_pages(st);
	opened = checkpoint(st, 0); /* the day's first rows: inserts */
	updated = checkpoint(st, 1);
	print_message("WAL pages: %d to open %d days, %d to update them\n", opened - before, NSYM,
		      updated - opened);
	assert_true(updated - opened > 0);
	assert_true(updated - opened <= NSYM * ROW_SIZE / 4096 + 16);
	/* Opening a day adds each symbol's (sid, day) to the index day_sid: a
	 * page per symbol, once a day, not at every burst. */
	assert_true(opened - before <= NSYM + 32);
	kl_store_close(st);
}

/* VM steps of one statement run to its end. */
static int steps(sqlite3 *db, const char *sql, const char *symbol, int *rows)
{
	sqlite3_stmt *s;
	int rc, n;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	sqlite3_bind_text(s, 1, symbol, -1, SQLITE_STATIC);
	for (*rows = 0; (rc = sqlite3_step(s)) == SQLITE_ROW;)
		++*rows;
	assert_int_equal(rc, SQLITE_DONE);
	n = sqlite3_stmt_status(s, SQLITE_STMTSTATUS_VM_STEP, 0);
	sqlite3_finalize(s);
	return n;
}

/*
 * `SELECT ... FROM daily WHERE symbol = ?` (the HTTP API's /api/daily, a
 * pandas user's query) costs that symbol's rows: partitioned by sid, the
 * view computed every symbol's moving averages first (1.2 s at 1,500
 * symbol-years). Measured in SQLite's VM steps, as a multiple of the
 * steps that read the symbol's rows from the table alone.
 */
static void test_daily_of_one_symbol(void **state)
{
	struct kl_store *st = NULL;
	char err[256];
	sqlite3 *db;
	int rows, table_rows, view, table;

	(void)state;
	assert_int_equal(kl_store_open(path, false, &st, err, sizeof(err)), 0);
	kl_store_close(st);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	view = steps(db, "SELECT day, close, ma7, ma30 FROM daily WHERE symbol = ?1", "S0150USDT",
		     &rows);
	table = steps(db,
		      "SELECT day, close FROM day WHERE sid = (SELECT sid FROM symbol WHERE "
		      "symbol = ?1)",
		      "S0150USDT", &table_rows);
	print_message("daily of one symbol: %d rows, %d VM steps (the table's rows: %d)\n", rows,
		      view, table);
	assert_int_equal(rows, NDAYS);
	assert_int_equal(table_rows, NDAYS);
	assert_true(view < 40 * table);
	/* The averages are those of that symbol: 1.5 every day, from the 7th / 30th on. */
	assert_int_equal(steps(db,
			       "SELECT 1 FROM daily WHERE symbol = ?1 AND ((ma7 IS NULL) != "
			       "(day < date(" /* the 7th day */
			       "1678838400, 'unixepoch')) OR ma7 != 1.5 OR (ma30 IS NULL) != "
			       "(day < date(1680825600, 'unixepoch')) OR ma30 != 1.5)",
			       "S0299USDT", &rows) > 0,
			 1);
	assert_int_equal(rows, 0);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static int64_t one(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* A speed row is written, then rewritten; a batch row (the history's) is never touched. */
static void test_speed_day_keeps_batch_rows(void **state)
{
	struct kl_store *st = NULL;
	struct kl_day d;
	char err[256];
	sqlite3 *db;

	(void)state;
	assert_int_equal(kl_store_open(path, false, &st, err, sizeof(err)), 0);
	assert_int_equal(kl_store_begin(st), 0);
	speed_day(&d, 1, 0);
	assert_int_equal(kl_store_put_speed_day(st, sids[0], &d), 0); /* new */
	speed_day(&d, 2, 0);
	assert_int_equal(kl_store_put_speed_day(st, sids[0], &d), 0); /* rewritten */
	speed_day(&d, 3, 1);
	d.start = DAY0 + 5 * KL_DAY_MS; /* a batch day of the history */
	assert_int_equal(kl_store_put_speed_day(st, sids[1], &d), 0);
	assert_int_equal(kl_store_commit(st), 0);
	kl_store_close(st);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(one(db, "SELECT count(*) FROM daily_exact WHERE symbol = 'S0000USDT' "
				 "AND day = '2023-07-07' AND source = 'speed' AND trades = 12 "
				 "AND high = '202.00000000' AND close = '152.00000000'"),
			 1);
	assert_int_equal(one(db, "SELECT count(*) FROM daily_exact WHERE symbol = 'S0001USDT' "
				 "AND day = '2023-03-14' AND source = 'batch' AND trades = 5 "
				 "AND close = '1.50000000'"),
			 1);
	assert_int_equal(one(db, "SELECT count(*) FROM day"), NSYM * NDAYS + 1);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_speed_checkpoint_pages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_daily_of_one_symbol, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_speed_day_keeps_batch_rows, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
