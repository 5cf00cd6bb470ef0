/*
 * daemon/batch/hunt.c on a real SQLite file: the heal's hole search on
 * the thread pool finds what kl_store_holes finds on the writer, for many
 * symbols at once, while the loop goes on writing; a hunt stopped in the
 * middle of a search frees itself and its list once the search ends,
 * without calling back.
 */
#include "hunt.h"

#include "log.h"

#include <errno.h>
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
#define NSYM 40
#define DAYS 3
#define MINS (DAYS * 1440)

static char path[64];

struct fixture {
	uv_loop_t loop;
	struct kl_store *st;
	int64_t sids[NSYM];
	int calls;
	size_t n;
	struct kl_hunt_item *back;
};

/* Symbol i lacks minute m when (m + i) % (97 + i) == 0, and its last i minutes. */
static bool stored(int i, int64_t m)
{
	return (m + i) % (97 + i) != 0 && m < MINS - i;
}

static void fill(struct fixture *f)
{
	char err[256];

	assert_int_equal(kl_store_open(path, false, &f->st, err, sizeof(err)), 0);
	assert_int_equal(kl_store_begin(f->st), 0);
	for (int i = 0; i < NSYM; i++) {
		char name[16];
		int64_t start = DAY0;

		snprintf(name, sizeof(name), "S%03dUSDT", i);
		assert_int_equal(kl_store_symbol(f->st, name, true, &start, &f->sids[i]), 0);
		for (int64_t m = 0; m < MINS; m++) {
			int64_t t = DAY0 + m * KL_MINUTE_MS;
			struct kl_kline k = {.open_time = t,
					     .close_time = t + KL_MINUTE_MS - 1,
					     .open = 100000000,
					     .high = 200000000,
					     .low = 100000000,
					     .close = 150000000,
					     .volume = 1000,
					     .trades = 1};
			if (stored(i, m))
				assert_int_equal(
				    kl_store_put_kline(f->st, f->sids[i], &k, KL_SRC_REST), 0);
		}
	}
	assert_int_equal(kl_store_commit(f->st), 0);
}

static struct kl_hunt_item *items_for(struct fixture *f)
{
	struct kl_hunt_item *v = calloc(NSYM, sizeof(*v));

	assert_non_null(v);
	for (int i = 0; i < NSYM; i++)
		v[i] = (struct kl_hunt_item){.sid = f->sids[i],
					     .from = DAY0,
					     .to = DAY0 + MINS * KL_MINUTE_MS,
					     .tag = (size_t)i};
	return v;
}

static void on_done(void *ud, struct kl_hunt_item *items, size_t n)
{
	struct fixture *f = ud;

	f->calls++;
	f->back = items;
	f->n = n;
}

static void test_same_holes_as_the_writer(void **state)
{
	struct fixture f = {0};
	struct kl_hunt *hu = NULL;
	struct kl_hunt_item *items;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/test-hunt-%d.db", (int)getpid());
	assert_int_equal(uv_loop_init(&f.loop), 0);
	fill(&f);
	kl_store_holes_exact(f.st, true);
	assert_int_equal(kl_hunt_new(&f.loop, f.st, path, &hu), 0);
	items = items_for(&f);
	assert_int_equal(kl_hunt_run(hu, items, NSYM, on_done, &f), 0);
	assert_true(kl_hunt_busy(hu));
	assert_int_equal(kl_hunt_run(hu, items, NSYM, on_done, &f), -EBUSY);
	/* The loop's writer goes on meanwhile (WAL keeps the reader's snapshot apart):
	 * a minute written into a hole and rolled back. */
	{
		int64_t t = DAY0 + 97 * KL_MINUTE_MS; /* symbol 1's first hole */
		struct kl_kline k = {.open_time = t,
				     .close_time = t + KL_MINUTE_MS - 1,
				     .open = 1,
				     .high = 1,
				     .low = 1,
				     .close = 1,
				     .trades = 1};
		assert_false(stored(1, 97));
		assert_int_equal(kl_store_begin(f.st), 0);
		assert_int_equal(kl_store_put_kline(f.st, f.sids[1], &k, KL_SRC_WS), 0);
		kl_store_rollback(f.st);
	}
	uv_run(&f.loop, UV_RUN_DEFAULT);
	assert_int_equal(f.calls, 1);
	assert_ptr_equal(f.back, items);
	assert_int_equal(f.n, NSYM);
	for (int i = 0; i < NSYM; i++) {
		struct kl_ranges want = {0};
		int64_t missing = 0;

		assert_int_equal(items[i].r, 0);
		assert_int_equal(items[i].tag, (size_t)i);
		for (int64_t m = 0; m < MINS; m++)
			missing += !stored(i, m);
		assert_int_equal(kl_ranges_minutes(&items[i].holes), missing);
		assert_int_equal(kl_store_holes(f.st, f.sids[i], items[i].from, items[i].to, &want),
				 0);
		assert_int_equal(want.n, items[i].holes.n);
		for (size_t k = 0; k < want.n; k++) {
			assert_int_equal(want.v[k].from, items[i].holes.v[k].from);
			assert_int_equal(want.v[k].to, items[i].holes.v[k].to);
		}
		kl_ranges_clear(&want);
		kl_ranges_clear(&items[i].holes);
	}
	free(items);
	kl_hunt_stop(hu);
	kl_store_close(f.st);
	assert_int_equal(uv_loop_close(&f.loop), 0);
}

/* Stopped while the pool searches: no callback, the list freed with the hunt (ASan). */
static void test_stop_mid_search(void **state)
{
	struct fixture f = {0};
	struct kl_hunt *hu = NULL;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/test-hunt-%d.db", (int)getpid());
	assert_int_equal(uv_loop_init(&f.loop), 0);
	fill(&f);
	kl_store_holes_exact(f.st, true);
	assert_int_equal(kl_hunt_new(&f.loop, f.st, path, &hu), 0);
	assert_int_equal(kl_hunt_run(hu, items_for(&f), NSYM, on_done, &f), 0);
	kl_hunt_stop(hu);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	assert_int_equal(f.calls, 0);
	kl_store_close(f.st);
	assert_int_equal(uv_loop_close(&f.loop), 0);
}

/* A file that is not there: the run says so, the list stays the caller's. */
static void test_no_store(void **state)
{
	struct fixture f = {0};
	struct kl_hunt *hu = NULL;
	struct kl_hunt_item *items = calloc(1, sizeof(*items));
	char err[256];

	(void)state;
	snprintf(path, sizeof(path), "/tmp/test-hunt-%d.db", (int)getpid());
	assert_non_null(items);
	assert_int_equal(uv_loop_init(&f.loop), 0);
	assert_int_equal(kl_store_open(path, false, &f.st, err, sizeof(err)), 0);
	assert_int_equal(kl_hunt_new(&f.loop, f.st, "/nonexistent/klined.db", &hu), 0);
	assert_true(kl_hunt_run(hu, items, 1, on_done, &f) < 0);
	assert_false(kl_hunt_busy(hu));
	uv_run(&f.loop, UV_RUN_DEFAULT);
	assert_int_equal(f.calls, 0);
	free(items);
	kl_hunt_stop(hu);
	kl_store_close(f.st);
	assert_int_equal(uv_loop_close(&f.loop), 0);
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
	    cmocka_unit_test_teardown(test_same_holes_as_the_writer, teardown),
	    cmocka_unit_test_teardown(test_stop_mid_search, teardown),
	    cmocka_unit_test_teardown(test_no_store, teardown),
	};

	kl_log_setup(KL_LOG_ERROR, false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
