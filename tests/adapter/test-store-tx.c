/*
 * The store's transaction after a failed read: an I/O error in a SELECT
 * makes SQLite roll the whole transaction back by itself (sqlite3VdbeHalt's
 * "special errors"). The store must know it, so that the next writer's
 * kl_store_begin opens a transaction again, instead of its rows going out
 * one autocommit at a time, and so that the speed layer, whose rows went
 * with it, sees kl_store_lost_tx move.
 */
#include "faultvfs.h"
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
#define DAYS 20			      /* ~450 pages: more than one statement's reads */

static char path[64];

static struct kl_kline minute(int64_t t)
{
	return (struct kl_kline){.open_time = t,
				 .close_time = t + KL_MINUTE_MS - 1,
				 .open = 100000000,
				 .high = 200000000,
				 .low = 100000000,
				 .close = 150000000,
				 .volume = 123456789,
				 .trades = 7};
}

static void count(void *ud, const struct kl_kline *k)
{
	(void)k;
	(*(int64_t *)ud)++;
}

static int64_t stored(struct kl_store *st, int64_t sid)
{
	int64_t n = 0;

	assert_int_equal(
	    kl_store_each_kline(st, sid, DAY0, DAY0 + (DAYS + 2) * KL_DAY_MS, count, &n), 0);
	return n;
}

static void test_failed_read_drops_the_transaction(void **state)
{
	struct kl_store *st = NULL;
	struct kl_kline k;
	char err[256];
	int64_t start = DAY0, sid, end = DAY0 + DAYS * KL_DAY_MS, n = 0;
	uint64_t lost;
	int r;

	(void)state;
	fault_vfs_register();
	snprintf(path, sizeof(path), "/tmp/test-store-tx-%d.db", (int)getpid());
	assert_int_equal(kl_store_open(path, false, &st, err, sizeof(err)), 0);
	assert_int_equal(kl_store_symbol(st, "BTCUSDT", true, &start, &sid), 0);
	assert_int_equal(kl_store_begin(st), 0);
	for (int64_t t = DAY0; t < end; t += KL_MINUTE_MS) {
		k = minute(t);
		assert_int_equal(kl_store_put_kline(st, sid, &k, KL_SRC_REST), 0);
	}
	assert_int_equal(kl_store_commit(st), 0);
	kl_store_close(st);

	/* A cold cache: the scan below reads the file. */
	assert_int_equal(kl_store_open(path, false, &st, err, sizeof(err)), 0);
	assert_int_equal(kl_store_begin(st), 0);
	k = minute(end);
	assert_int_equal(kl_store_put_kline(st, sid, &k, KL_SRC_WS), 0);
	lost = kl_store_lost_tx(st);
	fault_arm(P_READ, 5, SQLITE_IOERR_READ, false);
	r = kl_store_each_kline(st, sid, DAY0, end + KL_DAY_MS, count, &n);
	fault.armed = false;
	assert_int_equal(fault.fired, 1);
	assert_true(r < 0);
	/* SQLite dropped the transaction, the minute written in it too. */
	assert_false(kl_store_in_tx(st));
	assert_int_equal(kl_store_lost_tx(st), lost + 1);

	/* The next writer's transaction is one again: its rollback leaves nothing. */
	assert_int_equal(kl_store_begin(st), 0);
	assert_true(kl_store_in_tx(st));
	k = minute(end + KL_MINUTE_MS);
	assert_int_equal(kl_store_put_kline(st, sid, &k, KL_SRC_WS), 0);
	kl_store_rollback(st);
	assert_int_equal(kl_store_lost_tx(st), lost + 2);
	assert_int_equal(stored(st, sid), DAYS * 1440);

	/* And its commit keeps what it wrote. */
	assert_int_equal(kl_store_begin(st), 0);
	assert_int_equal(kl_store_put_kline(st, sid, &k, KL_SRC_WS), 0);
	assert_int_equal(kl_store_commit(st), 0);
	assert_int_equal(kl_store_lost_tx(st), lost + 2);
	kl_store_close(st);
	assert_int_equal(kl_store_open(path, false, &st, err, sizeof(err)), 0);
	assert_int_equal(stored(st, sid), DAYS * 1440 + 1);
	kl_store_close(st);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_failed_read_drops_the_transaction, teardown),
	};

	kl_log_setup(KL_LOG_ERROR, false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
