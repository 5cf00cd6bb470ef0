/*
 * daemon/batch/walck.c on a real SQLite file: once the loop's writer
 * leaves its checkpoints to the checkpointer, its commits no longer copy
 * the WAL (it grows past SQLite's 1,000 pages), and the checkpointer's
 * PASSIVE checkpoint on the thread pool lets the WAL start over, with
 * every row still there.
 */
#include "walck.h"

#include "log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define DAY0 ((int64_t)1704067200000) /* 2024-01-01 */

static char path[64];

/* 80 days are ~1,800 WAL pages, in commits of a day each. */
static void write_days(struct kl_store *st, int64_t sid, int from, int days)
{
	for (int d = from; d < from + days; d++) {
		assert_int_equal(kl_store_begin(st), 0);
		for (int64_t i = 0; i < 1440; i++) {
			int64_t t = DAY0 + ((int64_t)d * 1440 + i) * KL_MINUTE_MS;
			struct kl_kline k = {.open_time = t,
					     .close_time = t + KL_MINUTE_MS - 1,
					     .open = 100000000 + i,
					     .high = 200000000 + i,
					     .low = 100000000,
					     .close = 150000000 + i,
					     .volume = 123456789 * i,
					     .trades = 1 + i};
			assert_int_equal(kl_store_put_kline(st, sid, &k, KL_SRC_REST), 0);
		}
		assert_int_equal(kl_store_commit(st), 0);
	}
}

static int64_t rows(struct kl_store *st, int64_t sid)
{
	struct kl_ranges holes = {0};
	int64_t n;

	assert_int_equal(kl_store_holes(st, sid, DAY0, DAY0 + 100 * KL_DAY_MS, &holes), 0);
	n = 100 * 1440 - kl_ranges_minutes(&holes);
	kl_ranges_clear(&holes);
	return n;
}

static void run_for(uv_loop_t *loop, uint64_t ms)
{
	uint64_t end = uv_now(loop) + ms;

	while (uv_now(loop) < end) {
		uv_run(loop, UV_RUN_NOWAIT);
		usleep(10000);
		uv_update_time(loop);
	}
}

static void test_checkpoints_off_the_writer(void **state)
{
	char err[256];
	struct kl_store *st;
	struct kl_walck *w = NULL;
	uv_loop_t loop;
	int64_t start = DAY0, sid;
	int grown, tries = 0;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/test-walck-%d.db", (int)getpid());
	unlink(path);
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(kl_store_open(path, false, &st, err, sizeof(err)), 0);
	assert_int_equal(kl_store_symbol(st, "BTCUSDT", true, &start, &sid), 0);
	assert_int_equal(kl_walck_new(&loop, st, path, &w), 0);
	/* Deferred: past SQLite's threshold the writer's commits copy nothing. */
	write_days(st, sid, 0, 80);
	grown = kl_store_wal_pages(st);
	assert_true(grown > 1000);
	/* The checkpointer's second: the WAL is copied, and the next commit starts it over.
	 * Its copy runs on the pool: under ASan, beside the other suites, it may take more
	 * than the second after it (a day more a try). */
	do {
		run_for(&loop, 1500);
		write_days(st, sid, 80 + tries, 1);
	} while (kl_store_wal_pages(st) >= grown / 4 && ++tries < 8);
	assert_true(kl_store_wal_pages(st) < grown / 4);
	assert_int_equal(rows(st, sid), (81 + tries) * 1440);
	kl_walck_stop(w);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	kl_store_close(st);
}

/* Without a checkpointer a writer checkpoints itself, as SQLite does. */
static void test_without_it_the_writer_checkpoints(void **state)
{
	char err[256];
	struct kl_store *st;
	int64_t start = DAY0, sid;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/test-walck-%d.db", (int)getpid());
	unlink(path);
	assert_int_equal(kl_store_open(path, false, &st, err, sizeof(err)), 0);
	assert_int_equal(kl_store_symbol(st, "BTCUSDT", true, &start, &sid), 0);
	write_days(st, sid, 0, 80);
	assert_true(kl_store_wal_pages(st) <= 1100);
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
	    cmocka_unit_test_teardown(test_checkpoints_off_the_writer, teardown),
	    cmocka_unit_test_teardown(test_without_it_the_writer_checkpoints, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
