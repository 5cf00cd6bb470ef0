/*
 * daemon/store/store_holes.c on a real SQLite file: the search mark, the
 * suspects the triggers record when anyone (here a second connection,
 * as a user's sqlite3) deletes a row or an outage, coverage extended,
 * and a store from before marks searched in slices. Each answer of
 * kl_store_holes is compared with a plain scan of every row.
 */
#include "store.h"

#include "log.h"

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

#define DAY0 ((int64_t)1704067200000) /* 2024-01-01 */
#define M(n) (DAY0 + (int64_t)(n)*KL_MINUTE_MS)
#define DAYS 10 /* of klines per symbol */

static char path[64];

static void put(struct kl_store *st, int64_t sid, int64_t from, int64_t n)
{
	assert_int_equal(kl_store_begin(st), 0);
	for (int64_t i = 0; i < n; i++) {
		int64_t t = from + i * KL_MINUTE_MS;
		struct kl_kline k = {.open_time = t,
				     .close_time = t + KL_MINUTE_MS - 1,
				     .open = 100000000,
				     .high = 100000000,
				     .low = 100000000,
				     .close = 100000000,
				     .trades = 1};
		assert_int_equal(kl_store_put_kline(st, sid, &k, KL_SRC_REST), 0);
	}
	assert_int_equal(kl_store_commit(st), 0);
}

/* What another process does: sqlite3 on the same file. */
static void user_sql(const char *sql)
{
	sqlite3 *db;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(db);
}

static int64_t user_count(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *q;
	int64_t n;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	n = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return n;
}

/* Verify until done; @return the bits seen (NEWS) and the number of calls in *calls. */
static int verify_all(struct kl_store *st, int64_t sid, int64_t rows, int *calls)
{
	int64_t cursor = INT64_MIN;
	int r, seen = 0, n = 0;

	do {
		r = kl_store_verify(st, sid, rows, &cursor);
		assert_true(r >= 0);
		seen |= r;
		n++;
		assert_true(n < 100000);
	} while (r & KL_STORE_VERIFY_MORE);
	if (calls)
		*calls = n;
	return seen;
}

/* kl_store_holes of [from, to) as "[a,b)..." in minutes after DAY0. */
static const char *holes(struct kl_store *st, int64_t sid, int64_t from, int64_t to)
{
	static char buf[512];
	struct kl_ranges r = {0};

	buf[0] = '\0';
	assert_int_equal(kl_store_holes(st, sid, from, to, &r), 0);
	for (size_t i = 0; i < r.n; i++) {
		size_t len = strlen(buf);

		snprintf(buf + len, sizeof(buf) - len, "[%lld,%lld)",
			 (long long)((r.v[i].from - DAY0) / KL_MINUTE_MS),
			 (long long)((r.v[i].to - DAY0) / KL_MINUTE_MS));
	}
	kl_ranges_clear(&r);
	return buf;
}

static int setup(void **state)
{
	char err[256];
	struct kl_store *st;

	snprintf(path, sizeof(path), "/tmp/test-holes-%d.db", (int)getpid());
	unlink(path);
	assert_int_equal(kl_store_open(path, false, &st, err, sizeof(err)), 0);
	*state = st;
	return 0;
}

static int teardown(void **state)
{
	char p[80];

	kl_store_close(*state);
	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
	return 0;
}

static int64_t symbol(struct kl_store *st, const char *name, int64_t start)
{
	int64_t sid;

	assert_int_equal(kl_store_symbol(st, name, true, &start, &sid), 0);
	return sid;
}

/* A row deleted by another process after the search is found, and only its minute. */
static void test_deleted_row_is_found(void **state)
{
	struct kl_store *st = *state;
	int64_t sid = symbol(st, "BTCUSDT", DAY0);

	put(st, sid, M(0), DAYS * 1440);
	assert_int_equal(verify_all(st, sid, 5000, NULL) & KL_STORE_VERIFY_NEWS, 0);
	assert_string_equal(holes(st, sid, M(0), M(DAYS * 1440)), "");
	/* The tail past the newest row is a hole at once (the minutes not yet fetched). */
	assert_string_equal(holes(st, sid, M(0), M(DAYS * 1440 + 5)), "[14400,14405)");
	user_sql("DELETE FROM kline WHERE open_time IN (1704067200000 + 60000 * 77, "
		 "1704067200000 + 60000 * 78, 1704067200000 + 60000 * 9000)");
	assert_string_equal(holes(st, sid, M(0), M(DAYS * 1440)), "[77,79)[9000,9001)");
	assert_string_equal(holes(st, sid, M(100), M(DAYS * 1440)), "[9000,9001)");
	/* The verifier tells once (a heal follows), and the holes stay until filled. */
	assert_true(verify_all(st, sid, 5000, NULL) & KL_STORE_VERIFY_NEWS);
	assert_int_equal(verify_all(st, sid, 5000, NULL) & KL_STORE_VERIFY_NEWS, 0);
	assert_string_equal(holes(st, sid, M(0), M(DAYS * 1440)), "[77,79)[9000,9001)");
	put(st, sid, M(77), 2);
	put(st, sid, M(9000), 1);
	assert_string_equal(holes(st, sid, M(0), M(DAYS * 1440)), "");
	verify_all(st, sid, 5000, NULL);
	assert_string_equal(holes(st, sid, M(0), M(DAYS * 1440)), "");
	/* Filled suspects are gone: nothing left to read before the mark. */
	assert_int_equal(user_count("SELECT count(*) FROM hole_suspect"), 0);
}

/* An outage is not a hole; deleted by a user, its minutes are. */
static void test_deleted_outage_is_found(void **state)
{
	struct kl_store *st = *state;
	int64_t sid = symbol(st, "BTCUSDT", DAY0);

	put(st, sid, M(0), 100);
	put(st, sid, M(200), 100);
	assert_int_equal(kl_store_begin(st), 0);
	assert_int_equal(kl_store_put_outage(st, sid, M(100), M(200)), 0);
	assert_int_equal(kl_store_commit(st), 0);
	verify_all(st, sid, 5000, NULL);
	assert_string_equal(holes(st, sid, M(0), M(300)), "");
	user_sql("DELETE FROM outage");
	assert_string_equal(holes(st, sid, M(0), M(300)), "[100,200)");
}

/* history_start moved earlier: the new part is searched, though the mark is past it. */
static void test_extended_coverage_is_searched(void **state)
{
	struct kl_store *st = *state;
	int64_t sid = symbol(st, "BTCUSDT", M(1440));

	put(st, sid, M(1440), 1440);
	verify_all(st, sid, 5000, NULL);
	assert_int_equal(kl_store_symbol_extend(st, sid, M(0)), 0);
	/* A day of nothing: read at once (it spans no more than a day). */
	assert_string_equal(holes(st, sid, M(0), M(2880)), "[0,1440)");
	put(st, sid, M(0), 1000);
	assert_string_equal(holes(st, sid, M(0), M(2880)), "[1000,1440)");
}

/* Coverage extended over months already imported: searched by the verifier, in slices. */
static void test_extension_over_rows_is_deferred(void **state)
{
	struct kl_store *st = *state;
	int64_t sid = symbol(st, "BTCUSDT", M(5 * 1440));

	put(st, sid, M(5 * 1440), 1440);
	verify_all(st, sid, 5000, NULL);
	put(st, sid, M(0), 5 * 1440 - 10); /* imported: ten minutes short */
	assert_int_equal(kl_store_symbol_extend(st, sid, M(0)), 0);
	assert_string_equal(holes(st, sid, M(0), M(6 * 1440)), "");
	kl_store_holes_exact(st, true);
	assert_string_equal(holes(st, sid, M(0), M(6 * 1440)), "[7190,7200)");
	kl_store_holes_exact(st, false);
	assert_true(verify_all(st, sid, 1000, NULL) & KL_STORE_VERIFY_NEWS);
	assert_string_equal(holes(st, sid, M(0), M(6 * 1440)), "[7190,7200)");
}

/*
 * A store from before marks (as schema 8 leaves one): kl_store_holes reads
 * only what lies past the newest row and the last day asked for; the
 * verifier searches the rest in slices of the size asked, and then every
 * hole is known.
 */
static void test_old_store_is_searched_in_slices(void **state)
{
	struct kl_store *st = *state;
	int64_t sid = symbol(st, "BTCUSDT", DAY0);
	int calls;

	put(st, sid, M(0), 500);
	put(st, sid, M(501), DAYS * 1440 - 501);
	user_sql("DELETE FROM hole_mark; DELETE FROM hole_suspect");
	assert_string_equal(holes(st, sid, M(0), M(DAYS * 1440 + 3)), "[14400,14403)");
	kl_store_holes_exact(st, true);
	assert_string_equal(holes(st, sid, M(0), M(DAYS * 1440 + 3)), "[500,501)[14400,14403)");
	kl_store_holes_exact(st, false);
	assert_true(verify_all(st, sid, 1000, &calls) & KL_STORE_VERIFY_NEWS);
	assert_true(calls >= DAYS * 1440 / 1000);
	assert_string_equal(holes(st, sid, M(0), M(DAYS * 1440 + 3)), "[500,501)[14400,14403)");
}

/* Symbols are searched each on its own; a verifier inside an open transaction never commits it.
 */
static void test_in_transaction_and_two_symbols(void **state)
{
	struct kl_store *st = *state;
	int64_t a = symbol(st, "BTCUSDT", DAY0), b = symbol(st, "ETHUSDT", DAY0);
	int64_t cursor = INT64_MIN;

	put(st, a, M(0), 300);
	put(st, b, M(0), 300);
	verify_all(st, a, 5000, NULL);
	verify_all(st, b, 5000, NULL);
	user_sql("DELETE FROM kline WHERE sid = 2 AND open_time = 1704067200000 + 60000 * 10");
	assert_string_equal(holes(st, a, M(0), M(300)), "");
	assert_string_equal(holes(st, b, M(0), M(300)), "[10,11)");
	assert_int_equal(kl_store_begin(st), 0);
	assert_true(kl_store_verify(st, b, 5000, &cursor) & KL_STORE_VERIFY_NEWS);
	assert_true(kl_store_in_tx(st));
	kl_store_rollback(st);
	/* Rolled back with the transaction it joined: told again. */
	assert_true(verify_all(st, b, 5000, NULL) & KL_STORE_VERIFY_NEWS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_deleted_row_is_found, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deleted_outage_is_found, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_extended_coverage_is_searched, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_extension_over_rows_is_deferred, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_old_store_is_searched_in_slices, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_in_transaction_and_two_symbols, setup, teardown),
	};
	kl_log_setup(KL_LOG_ERROR, false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
