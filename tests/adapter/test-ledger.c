/*
 * daemon/store/store_symbols.c and the day rule for symbols that stopped
 * trading (store_days.c) on a real SQLite file: the ledger gets a line per
 * change and none for a repeated status; a symbol that does not trade ends
 * its days with its last kline (no fill day invented after it), and gets
 * the days between as fill days when it trades again.
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

#define DAY0 1678320000000LL /* 2023-03-09 */

static char dir[64], path[96];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test-ledger-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/klined.db", dir);
	return 0;
}

static int teardown(void **state)
{
	char f[128];

	(void)state;
	for (const char *suf = ""; suf; suf = !*suf		     ? "-wal"
					      : !strcmp(suf, "-wal") ? "-shm"
								     : NULL) {
		snprintf(f, sizeof(f), "%s%s", path, suf);
		unlink(f);
	}
	rmdir(dir);
	return 0;
}

/* @p sql's first column of its first row, as an integer (-1: no row). */
static int64_t one(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int64_t v = -1;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void put_day(struct kl_store *st, int64_t sid, int64_t day)
{
	assert_int_equal(kl_store_begin(st), 0);
	for (int64_t t = day; t < day + KL_DAY_MS; t += KL_MINUTE_MS) {
		struct kl_kline k = {.open_time = t,
				     .close_time = t + KL_MINUTE_MS - 1,
				     .open = 100,
				     .high = 200,
				     .low = 50,
				     .close = 150,
				     .volume = 10,
				     .quote_volume = 1000,
				     .trades = 1};
		assert_int_equal(kl_store_put_kline(st, sid, &k, KL_SRC_REST), 0);
	}
	assert_int_equal(kl_store_commit(st), 0);
}

static void test_stopped_symbols_get_no_fill_days(void **state)
{
	struct kl_store *st;
	char err[256];
	int64_t sid, start = DAY0, now = DAY0 + 4 * KL_DAY_MS + 3600000; /* day 4, 01:00 */

	(void)state;
	assert_int_equal(kl_store_open(path, false, &st, err, sizeof(err)), 0);
	assert_int_equal(kl_store_symbol(st, "AAAUSDT", true, &start, &sid), 0);
	put_day(st, sid, DAY0);
	/* Days 1-3 the exchange had no kline (an outage): complete days. */
	assert_int_equal(kl_store_begin(st), 0);
	assert_int_equal(kl_store_put_outage(st, sid, DAY0 + KL_DAY_MS, DAY0 + 4 * KL_DAY_MS), 0);
	assert_int_equal(kl_store_commit(st), 0);

	assert_int_equal(kl_store_symbol_mark(st, sid, "TRADING", 1, DAY0, "configured"), 1);
	assert_int_equal(kl_store_symbol_mark(st, sid, "TRADING", 1, DAY0, "configured"), 0);
	assert_true(kl_store_refresh_days(st, sid, now) > 0);
	assert_int_equal(one("SELECT count(*) FROM daily WHERE source = 'fill'"), 3);

	/* It stops: the fill days after its last kline go. */
	assert_int_equal(kl_store_symbol_mark(st, sid, "BREAK", -1, now, "exchangeInfo"), 1);
	assert_int_equal(kl_store_symbol_mark(st, sid, "BREAK", -1, now, "exchangeInfo"), 0);
	assert_true(kl_store_refresh_days(st, sid, now) >= 0);
	assert_int_equal(one("SELECT count(*) FROM daily"), 1);
	assert_int_equal(one("SELECT count(*) FROM daily WHERE day = '2023-03-09' AND source = "
			     "'batch'"),
			 1);
	/* A refresh later changes nothing, and costs nothing for the days after. */
	assert_int_equal(kl_store_refresh_days(st, sid, now + 30 * KL_DAY_MS), 0);
	assert_int_equal(one("SELECT count(*) FROM daily"), 1);

	/* Trading again: the days between are the exchange's outage, filled. */
	assert_int_equal(kl_store_symbol_mark(st, sid, "TRADING", -1, now, "exchangeInfo"), 1);
	assert_true(kl_store_refresh_days(st, sid, now) > 0);
	assert_int_equal(one("SELECT count(*) FROM daily WHERE source = 'fill'"), 3);

	assert_int_equal(kl_store_symbol_mark(st, sid, "GONE", 0, now, "no longer listed"), 1);
	kl_store_close(st);
	{
		sqlite3 *db;
		sqlite3_stmt *s;

		assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
		assert_int_equal(
		    sqlite3_prepare_v2(db,
				       "SELECT group_concat(event || ':' || detail, ',') "
				       "FROM symbol_ledger",
				       -1, &s, NULL),
		    SQLITE_OK);
		assert_int_equal(sqlite3_step(s), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(s, 0),
				    "followed:configured,stopped:BREAK,trading:TRADING,"
				    "unfollowed:no longer listed,stopped:GONE");
		sqlite3_finalize(s);
		sqlite3_close(db);
	}
	assert_int_equal(one("SELECT followed FROM symbols WHERE status = 'GONE'"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_stopped_symbols_get_no_fill_days, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
