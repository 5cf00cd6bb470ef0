/*
 * kline_live (schema 10) on a real file: the websocket's closed minutes wait
 * there, every read of the store sees them at once, kl_store_settle moves
 * them into kline a slice at a time, and a REST or imported kline always
 * wins over them (invariant 3), before the move and after it.
 */
#include "store.h"

#include "log.h"

#include <errno.h>
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
#define M    KL_MINUTE_MS

static char path[64];

static struct kl_kline minute(int64_t t, int64_t close)
{
	return (struct kl_kline){.open_time = t,
				 .close_time = t + M - 1,
				 .open = 100000000,
				 .high = 200000000,
				 .low = 100000000,
				 .close = close,
				 .volume = 123456789,
				 .trades = 7};
}

/* Rows of @p table (kline or kline_live) for @p sid, read past the store. */
static int64_t rows(const char *table, int64_t sid, const char *where)
{
	char q[256];
	sqlite3 *db;
	sqlite3_stmt *s;
	int64_t n;

	snprintf(q, sizeof(q), "SELECT count(*) FROM %s WHERE sid = %lld AND %s", table,
		 (long long)sid, where);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, q, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	return n;
}

struct seen {
	int64_t n, last, close_sum;
	bool ordered;
};

static void see(void *ud, const struct kl_kline *k)
{
	struct seen *s = ud;

	s->ordered = s->ordered && k->open_time > s->last;
	s->last = k->open_time;
	s->close_sum += (int64_t)k->close;
	s->n++;
}

static struct seen each(struct kl_store *st, int64_t sid)
{
	struct seen s = {.last = INT64_MIN, .ordered = true};

	assert_int_equal(kl_store_each_kline(st, sid, DAY0, DAY0 + KL_DAY_MS, see, &s), 0);
	return s;
}

static void put(struct kl_store *st, int64_t sid, int64_t t, int64_t close, enum kl_source src)
{
	struct kl_kline k = minute(t, close);

	assert_int_equal(kl_store_put_kline(st, sid, &k, src), 0);
}

static int setup(void **state)
{
	(void)state;
	snprintf(path, sizeof(path), "/tmp/test-live-%d.db", (int)getpid());
	return 0;
}

static int teardown(void **state)
{
	char p[80];

	(void)state;
	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
	return 0;
}

static void test_live_rows_read_move_and_yield(void **state)
{
	struct kl_store *st = NULL;
	struct kl_ranges holes = {0};
	int64_t start = DAY0, sid, *pairs = NULL;
	struct seen s;
	char err[256];

	(void)state;
	assert_int_equal(kl_store_open(path, false, &st, err, sizeof(err)), 0);
	assert_int_equal(kl_store_symbol(st, "BTCUSDT", true, &start, &sid), 0);
	assert_int_equal(kl_store_begin(st), 0);
	for (int i = 0; i < 10; i++) /* REST minutes 0-9, websocket 10-19 */
		put(st, sid, DAY0 + i * M, 150000000, KL_SRC_REST);
	for (int i = 10; i < 20; i++)
		put(st, sid, DAY0 + i * M, 150000000, KL_SRC_WS);
	/* Inside a transaction the move waits for its commit. */
	assert_int_equal(kl_store_settle(st, 100), -EAGAIN);
	assert_int_equal(kl_store_commit(st), 0);
	assert_int_equal(rows("kline", sid, "source = 2"), 0);
	assert_int_equal(rows("kline_live", sid, "1"), 10);

	/* Every read sees them: in order, no hole, the days to certify. */
	s = each(st, sid);
	assert_int_equal(s.n, 20);
	assert_true(s.ordered);
	assert_int_equal(kl_store_holes(st, sid, DAY0, DAY0 + 20 * M, &holes), 0);
	assert_int_equal(holes.n, 0);
	assert_int_equal(kl_store_uncertified(st, DAY0 + KL_DAY_MS, &pairs), 1);
	assert_true(pairs[0] == sid && pairs[1] == DAY0);
	free(pairs);

	/* A REST kline takes its minute's row away; a websocket one after a REST one
	 * is read as the REST one, and the move keeps the REST one. */
	assert_int_equal(kl_store_begin(st), 0);
	put(st, sid, DAY0 + 10 * M, 160000000, KL_SRC_REST);
	put(st, sid, DAY0 + 5 * M, 170000000, KL_SRC_WS);
	assert_int_equal(kl_store_commit(st), 0);
	assert_int_equal(rows("kline_live", sid, "1"), 10); /* 11-19 and 5 */
	s = each(st, sid);
	assert_int_equal(s.n, 20);
	assert_int_equal(s.close_sum, 19 * 150000000LL + 160000000LL);

	assert_int_equal(kl_store_settle(st, 100), 0);
	assert_int_equal(rows("kline_live", sid, "1"), 0);
	assert_int_equal(rows("kline", sid, "source = 2"), 9);
	assert_int_equal(rows("kline", sid, "open_time = 1704067500000 AND source = 1"), 1);
	s = each(st, sid);
	assert_int_equal(s.n, 20);
	assert_int_equal(s.close_sum, 19 * 150000000LL + 160000000LL);

	/* A websocket minute again after its move replaces the websocket row. */
	assert_int_equal(kl_store_begin(st), 0);
	put(st, sid, DAY0 + 15 * M, 180000000, KL_SRC_WS);
	assert_int_equal(kl_store_commit(st), 0);
	assert_int_equal(kl_store_settle(st, 100), 0);
	s = each(st, sid);
	assert_int_equal(s.n, 20);
	assert_int_equal(s.close_sum, 18 * 150000000LL + 160000000LL + 180000000LL);
	kl_ranges_clear(&holes);
	kl_store_close(st);
}

static void test_settle_slices_and_reopen(void **state)
{
	struct kl_store *st = NULL;
	int64_t sids[3], start = DAY0;
	const char *names[3] = {"AUSDT", "BUSDT", "CUSDT"};
	char err[256];

	(void)state;
	assert_int_equal(kl_store_open(path, false, &st, err, sizeof(err)), 0);
	assert_int_equal(kl_store_begin(st), 0);
	for (int j = 0; j < 3; j++) {
		assert_int_equal(kl_store_symbol(st, names[j], true, &start, &sids[j]), 0);
		for (int i = 0; i < 50; i++)
			put(st, sids[j], DAY0 + i * M, 150000000, KL_SRC_WS);
	}
	assert_int_equal(kl_store_commit(st), 0);
	/* 60 rows ahead ends in the second sid: the first one's 50 move. */
	assert_int_equal(kl_store_settle(st, 60), 100);
	assert_int_equal(rows("kline", sids[0], "1"), 50);
	assert_int_equal(rows("kline", sids[1], "1"), 0);
	/* Fewer than one sid holds: all of that sid, or it would never move. */
	assert_int_equal(kl_store_settle(st, 10), 50);
	assert_int_equal(rows("kline", sids[1], "1"), 50);
	assert_int_equal(rows("kline_live", sids[2], "1"), 50);
	kl_store_close(st);

	/* What a stop leaves is moved by the next open, before any view is read. */
	assert_int_equal(kl_store_open(path, false, &st, err, sizeof(err)), 0);
	assert_int_equal(rows("kline_live", sids[2], "1"), 0);
	assert_int_equal(rows("kline", sids[2], "source = 2"), 50);
	assert_int_equal(each(st, sids[2]).n, 50);
	kl_store_close(st);
}

/*
 * The minute's close with history: 300 symbols, 2 days of REST minutes each
 * (each symbol's newest rows on leaf pages of their own), then one closed
 * websocket minute per symbol in one transaction, as the consumer's
 * checkpoint at a burst of x:true events. In kline that was a page per
 * symbol and one more in kline_ws; in kline_live, a few.
 */
#define NSYM 300
static void test_minute_close_pages(void **state)
{
	struct kl_store *st = NULL;
	int64_t sids[NSYM], start = DAY0, end = DAY0 + 2 * KL_DAY_MS;
	char err[256], name[16];
	int before, closed, settled;

	(void)state;
	assert_int_equal(kl_store_open(path, false, &st, err, sizeof(err)), 0);
	assert_int_equal(kl_store_begin(st), 0);
	for (int j = 0; j < NSYM; j++) {
		snprintf(name, sizeof(name), "S%04dUSDT", j);
		assert_int_equal(kl_store_symbol(st, name, true, &start, &sids[j]), 0);
		for (int64_t t = DAY0; t < end; t += M)
			put(st, sids[j], t, 150000000, KL_SRC_REST);
	}
	assert_int_equal(kl_store_commit(st), 0);
	kl_store_close(st);
	assert_int_equal(kl_store_open(path, false, &st, err, sizeof(err)), 0);
	kl_store_wal_defer(st); /* no checkpoint in between: the WAL only grows */
	before = kl_store_wal_pages(st);
	assert_int_equal(kl_store_begin(st), 0);
	for (int j = 0; j < NSYM; j++)
		put(st, sids[j], end, 150000000, KL_SRC_WS);
	assert_int_equal(kl_store_commit(st), 0);
	closed = kl_store_wal_pages(st);
	while (kl_store_settle(st, 100) > 0)
		;
	settled = kl_store_wal_pages(st);
	print_message("WAL pages: %d for %d closed minutes, %d to move them into kline\n",
		      closed - before, NSYM, settled - closed);
	assert_true(closed - before <= 16);
	assert_true(settled - closed >= NSYM); /* the pages the close no longer waits for */
	assert_int_equal(rows("kline", sids[NSYM - 1], "source = 2"), 1);
	kl_store_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_live_rows_read_move_and_yield, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_settle_slices_and_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_minute_close_pages, setup, teardown),
	};

	kl_log_setup(KL_LOG_ERROR, false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
