/*
 * daemon/store/ under I/O faults, SQLite's own way (test_vfs.c,
 * test_devsym.c, do_faultsim_test): a VFS wrapping the default one fails
 * the Nth call of one of its methods (xRead, xWrite, a short xWrite,
 * xSync, xLock, xTruncate, xShmLock), for N = 1, 2, ... until a run finishes
 * before the Nth call. Each run does a fixed workload through store.h
 * (four transactions, the store opened afresh for each), stops at the
 * first error (rolled back, as the daemon does), closes, reopens without
 * faults, and then the store must be exactly what it was
 * before the failed transaction or after it, sound (integrity_check),
 * and every error a negative errno. Persistent faults (a full disk, a
 * dead device) keep failing through the close; transient ones (a lock
 * held a moment, the busy handler retries) fail once.
 */
#include "faultvfs.h"
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
#include <zlib.h>

#include <cmocka.h>

static const struct mode {
	const char *name;
	enum fault_point point;
	int rc;
	bool persistent;
} modes[] = {
    {"read EIO", P_READ, SQLITE_IOERR_READ, true},
    {"read EIO once", P_READ, SQLITE_IOERR_READ, false},
    {"write EIO", P_WRITE, SQLITE_IOERR_WRITE, true},
    {"write full", P_WRITE, SQLITE_FULL, true},
    {"write EIO once", P_WRITE, SQLITE_IOERR_WRITE, false},
    {"short write", P_SHORT_WRITE, SQLITE_FULL, true},
    {"sync EIO", P_SYNC, SQLITE_IOERR_FSYNC, true},
    {"sync EIO once", P_SYNC, SQLITE_IOERR_FSYNC, false},
    {"lock busy once", P_LOCK, SQLITE_BUSY, false},
    {"lock EIO", P_LOCK, SQLITE_IOERR_LOCK, true},
    {"truncate EIO", P_TRUNCATE, SQLITE_IOERR_TRUNCATE, true},
    {"shm lock busy once", P_SHM_LOCK, SQLITE_BUSY, false},
};

#define NMODES	 (sizeof(modes) / sizeof(modes[0]))
#define MAX_RUNS 5000 /* per mode: a workload makes far fewer calls */

/* ---- files ---- */

struct fixture {
	char dir[64], base[128], work[128];
};

static void unlink_db(const char *path)
{
	char p[160];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

/* Copy a closed store (no -wal left: the close checkpointed it). */
static void copy_db(const char *from, const char *to)
{
	char buf[65536];
	FILE *in = fopen(from, "rb"), *out;
	size_t n;

	assert_non_null(in);
	unlink_db(to);
	out = fopen(to, "wb");
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

static void gunzip(const char *from, const char *to)
{
	char buf[65536];
	gzFile in = gzopen(from, "rb");
	FILE *out;
	int n;

	assert_non_null(in);
	unlink_db(to);
	out = fopen(to, "wb");
	assert_non_null(out);
	while ((n = gzread(in, buf, sizeof(buf))) > 0)
		assert_int_equal(fwrite(buf, 1, (size_t)n, out), (size_t)n);
	assert_int_equal(n, 0);
	gzclose(in);
	assert_int_equal(fclose(out), 0);
}

/* ---- canonical dump ---- */

struct buf {
	char *s;
	size_t len, cap;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->s = realloc(b->s, b->cap);
		assert_non_null(b->s);
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

/* The views users read (schema 7: and every kline as schema 3 kept it), in key order. */
static const char *const view_q[] = {
    "SELECT * FROM kline_units ORDER BY sid, open_time",
    "SELECT * FROM kline_1m ORDER BY symbol, open_time",
    "SELECT * FROM kline_5m ORDER BY symbol, open_time",
    "SELECT * FROM kline_1h ORDER BY symbol, open_time",
    "SELECT * FROM daily_exact ORDER BY symbol, day",
    "SELECT * FROM daily ORDER BY symbol, day",
    "SELECT * FROM prophet_input ORDER BY symbol, ds",
    "SELECT * FROM outages ORDER BY symbol, from_ms",
};
#define NVIEW_Q (sizeof(view_q) / sizeof(view_q[0]))

/* The rows of queries @p q (those valid in the store's schema), one line each. */
static char *dump_q(const char *path, int *version, const char *const *q, size_t nq)
{
	struct buf b = {0};
	sqlite3_stmt *s;
	sqlite3 *db;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "ok");
	sqlite3_finalize(s);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	*version = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	put(&b, "", 0);
	for (size_t i = 0; i < nq; i++) {
		if (sqlite3_prepare_v2(db, q[i], -1, &s, NULL) != SQLITE_OK)
			continue; /* not in this schema version */
		put(&b, q[i], strlen(q[i]));
		put(&b, "\n", 1);
		while (sqlite3_step(s) == SQLITE_ROW) {
			for (int c = 0; c < sqlite3_column_count(s); c++) {
				const char *t = (const char *)sqlite3_column_text(s, c);
				put(&b, t ? t : "NULL", t ? strlen(t) : 4);
				put(&b, "|", 1);
			}
			put(&b, "\n", 1);
		}
		sqlite3_finalize(s);
	}
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	return b.s;
}

/* Every row of every table the store keeps (and the daily view), in key order. */
static char *dump(const char *path, int *version)
{
	static const char *const q[] = {
	    "SELECT * FROM symbol ORDER BY sid",
	    "SELECT * FROM kline ORDER BY sid, open_time",
	    "SELECT * FROM outage ORDER BY sid, from_ms",
	    "SELECT * FROM day ORDER BY sid, day",
	    "SELECT * FROM daily ORDER BY symbol, day",
	    "SELECT at_ms, symbol, origin, reason, raw FROM reject ORDER BY 1, 2, 5",
	    "SELECT * FROM consumer_offset ORDER BY 1, 2",
	};

	return dump_q(path, version, q, sizeof(q) / sizeof(q[0]));
}

/* ---- the workload ---- */

#define DAY0   ((int64_t)1704067200000) /* 2024-01-01 */
#define NSTEPS 4

static struct kl_kline kline_at(int64_t t, bool big)
{
	kl_i128 p = 4200000000000 + (t / KL_MINUTE_MS % 97) * 100000000;

	return (struct kl_kline){
	    .open_time = t,
	    .close_time = t + KL_MINUTE_MS - 1,
	    .open = p,
	    .high = p + 500000000,
	    .low = p - 500000000,
	    .close = p + 100000000,
	    /* One kline past 2^53 units: the exact (x) form of schema 3. */
	    .volume = big ? (kl_i128)1 << 70 : 123456789,
	    .quote_volume = 98765432100,
	    .taker_base = 61728394,
	    .taker_quote = 49382716050,
	    .trades = 17,
	};
}

static int put_klines(struct kl_store *st, int64_t sid, int64_t from, int n, bool big)
{
	int r = 0;

	for (int i = 0; i < n && r == 0; i++) {
		struct kl_kline k = kline_at(from + i * KL_MINUTE_MS, big && i == n / 2);
		r = kl_store_put_kline(st, sid, &k, i % 3 ? KL_SRC_REST : KL_SRC_WS);
	}
	return r;
}

/*
 * Step i of the workload, one transaction each: the store after step i is
 * state i + 1. @return 0 or the store's error.
 */
static int step(struct kl_store *st, int i)
{
	int64_t sid, start = DAY0;
	int r = kl_store_begin(st);

	/* The symbol is created inside the first transaction, so it goes with it. */
	if (r == 0)
		r = kl_store_symbol(st, "BTCUSDT", true, &start, &sid);
	if (r == 0 && i % 2)
		r = kl_store_commit(st); /* refresh_days runs its own transaction */
	if (r < 0)
		return r;
	switch (i) {
	case 0: /* day 0 covered by two touching outages (merged) and klines into day 1 */
		r = kl_store_put_outage(st, sid, DAY0, DAY0 + 600 * KL_MINUTE_MS);
		if (r == 0)
			r = kl_store_put_outage(st, sid, DAY0 + 600 * KL_MINUTE_MS,
						DAY0 + 1410 * KL_MINUTE_MS);
		if (r == 0)
			r = put_klines(st, sid, DAY0 + 1410 * KL_MINUTE_MS, 60, true);
		return r < 0 ? r : kl_store_commit(st);
	case 1: /* the day rows: day 0 complete (batch), day 1 today (speed) */
		r = kl_store_refresh_days(st, sid, DAY0 + KL_DAY_MS + 30 * KL_MINUTE_MS);
		return r < 0 ? r : 0;
	case 2: /* a second transaction: the rest of day 1, a reject, an offset */
		r = put_klines(st, sid, DAY0 + KL_DAY_MS + 30 * KL_MINUTE_MS, 30, false);
		if (r == 0)
			r = kl_store_put_outage(st, sid, DAY0 + KL_DAY_MS + 60 * KL_MINUTE_MS,
						DAY0 + 2 * KL_DAY_MS);
		if (r == 0)
			r = kl_store_put_reject(st, DAY0, "BTCUSDT", "rest", "high below low",
						"[1,2,3]");
		if (r == 0)
			r = kl_store_put_offset(st, "klines", 0, 42);
		return r < 0 ? r : kl_store_commit(st);
	default: /* day 1 complete now (batch), day 2 today without klines (no row) */
		r = kl_store_refresh_days(st, sid, DAY0 + 2 * KL_DAY_MS + 10 * KL_MINUTE_MS);
		return r < 0 ? r : 0;
	}
}

static void make_base(struct fixture *f)
{
	struct kl_store *st = NULL;
	char err[256];
	int r = kl_store_open(f->base, false, &st, err, sizeof(err));

	if (r < 0)
		fail_msg("open %s: %s", f->base, err);
	kl_store_close(st);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/klined-test-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->base, sizeof(f->base), "%s/base.db", f->dir);
	snprintf(f->work, sizeof(f->work), "%s/work.db", f->dir);
	fault_vfs_register();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	unlink_db(f->base);
	unlink_db(f->work);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void assert_errno(int r, const char *what)
{
	if (r >= 0 || r < -4095)
		fail_msg("%s: %d is not a negative errno", what, r);
}

/* The store at @p path reopens through the daemon's own open, then dumps. */
static char *reopen_dump(const char *path, int *version)
{
	struct kl_store *st = NULL;
	char err[256];
	int r;

	fault.armed = false;
	r = kl_store_open(path, false, &st, err, sizeof(err));
	if (r < 0)
		fail_msg("reopen after a fault: %s", err);
	kl_store_close(st);
	return dump(path, version);
}

enum outcome { O_BEFORE, O_AFTER, O_RETRIED, O_NONE }; /* O_NONE: the fault never came */

/* One faulted run of the workload; the store must end in state i or i + 1. */
static enum outcome run_once(struct fixture *f, const struct mode *m, int n, char **expect)
{
	struct kl_store *st;
	char err[256], *got;
	int i, v, r = 0;
	enum outcome o = O_NONE;

	copy_db(f->base, f->work);
	fault_arm(m->point, n, m->rc, m->persistent);
	/* A restart before each step: its reads meet a cold cache, so they
	 * fail in the middle of its statements, not only at open. */
	for (i = 0; i < NSTEPS; i++) {
		st = NULL;
		r = kl_store_open(f->work, false, &st, err, sizeof(err));
		if (r == 0)
			r = step(st, i);
		if (r < 0 && st)
			kl_store_rollback(st); /* what the daemon's writers do */
		kl_store_close(st);	       /* under the fault still, if persistent */
		if (r < 0) {
			assert_errno(r, m->name);
			break;
		}
	}
	if (!fault.fired) {
		assert_int_equal(i, NSTEPS);
		fault.armed = false;
		return O_NONE;
	}
	got = reopen_dump(f->work, &v);
	/* Failed in step i: state i or i + 1; no failure: the last. */
	if (!strcmp(got, expect[i]))
		o = i == NSTEPS ? O_RETRIED : O_BEFORE;
	else if (i < NSTEPS && !strcmp(got, expect[i + 1]))
		o = O_AFTER;
	else
		fail_msg("%s, call %d: step %d left the store neither before nor after it:\n%s",
			 m->name, n, i, got);
	free(got);
	return o;
}

static void test_faults_keep_transactions_whole(void **state)
{
	struct fixture *f = *state;
	char *expect[NSTEPS + 1];
	struct kl_store *st;
	char err[256];
	int v, total = 0;

	make_base(f);
	/* The states between the steps, without faults. */
	copy_db(f->base, f->work);
	expect[0] = dump(f->work, &v);
	for (int i = 0; i < NSTEPS; i++) {
		assert_int_equal(kl_store_open(f->work, false, &st, err, sizeof(err)), 0);
		assert_int_equal(step(st, i), 0);
		kl_store_close(st);
		expect[i + 1] = dump(f->work, &v);
		assert_string_not_equal(expect[i], expect[i + 1]);
	}
	print_message("%-20s %5s %7s %6s %8s\n", "fault", "runs", "before", "after", "retried");
	for (size_t m = 0; m < NMODES; m++) {
		int n, count[O_NONE + 1] = {0};
		enum outcome o = O_BEFORE;

		for (n = 1; n <= MAX_RUNS && o != O_NONE; n++)
			count[o = run_once(f, &modes[m], n, expect)]++;
		assert_int_equal(o, O_NONE);
		total += n - 1;
		print_message("%-20s %5d %7d %6d %8d\n", modes[m].name, n - 1, count[O_BEFORE],
			      count[O_AFTER], count[O_RETRIED]);
	}
	print_message("%d runs in all\n", total);
	for (int i = 0; i <= NSTEPS; i++)
		free(expect[i]);
}

/*
 * The fixture less most of its klines (the upgrade's cases stay: values
 * past 2^53, a day volume that wrapped): a fault at each of its writes
 * then takes seconds, not minutes.
 */
static void trim(const char *path)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "DELETE FROM kline WHERE open_time % 86400000 "
				      "BETWEEN 1800000 AND 84600000; VACUUM",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* A fault during the migration of a schema-2 store leaves it at schema 2, intact. */
static void test_faults_in_migration(void **state)
{
	struct fixture *f = *state;
	char *old, *new, *got;
	struct kl_store *st;
	char err[256];
	int v, vold, vnew;

	gunzip(FIXTURES "/schema2.db.gz", f->base);
	trim(f->base);
	old = dump(f->base, &vold);
	assert_int_equal(vold, 2);
	copy_db(f->base, f->work);
	assert_int_equal(kl_store_open(f->work, false, &st, err, sizeof(err)), 0);
	kl_store_close(st);
	new = dump(f->work, &vnew);
	assert_true(vnew > vold);
	for (size_t m = 0; m < NMODES; m++) {
		int n, r;

		for (n = 1; n <= MAX_RUNS; n++) {
			copy_db(f->base, f->work);
			st = NULL;
			fault_arm(modes[m].point, n, modes[m].rc, modes[m].persistent);
			r = kl_store_open(f->work, false, &st, err, sizeof(err));
			if (r < 0)
				assert_errno(r, modes[m].name);
			kl_store_close(st);
			fault.armed = false;
			if (!fault.fired) {
				assert_int_equal(r, 0);
				break;
			}
			got = dump(f->work, &v);
			if (!(v == vold && !strcmp(got, old)) && !(v == vnew && !strcmp(got, new)))
				fail_msg("%s, call %d: migration left schema %d:\n%.2000s",
					 modes[m].name, n, v, got);
			if (r == 0 && v != vnew)
				fail_msg("%s, call %d: open succeeded at schema %d", modes[m].name,
					 n, v);
			free(got);
			/* And the daemon's next start migrates it. */
			free(reopen_dump(f->work, &v));
			assert_int_equal(v, vnew);
		}
		assert_true(n <= MAX_RUNS);
		print_message("%-20s %4d runs\n", modes[m].name, n);
	}
	free(old);
	free(new);
}

/*
 * A store of the release before schema 7 (tests/integration/fixtures/
 * make_schema5.py: klines past 2^53 units, a 2017 maintenance bar, every
 * source) reads the same after the upgrade, view by view, and its klines
 * are what its kline table held (kline_units).
 */
static void test_upgrade_keeps_views(void **state)
{
	struct fixture *f = *state;
	struct kl_store *st = NULL;
	char *old, *new, err[256];
	const char *q[NVIEW_Q];
	int v;

	gunzip(FIXTURES "/schema5.db.gz", f->base);
	memcpy(q, view_q, sizeof(q));
	q[0] = "SELECT * FROM kline ORDER BY sid, open_time";
	old = dump_q(f->base, &v, q, NVIEW_Q);
	assert_int_equal(v, 5);
	assert_int_equal(kl_store_open(f->base, false, &st, err, sizeof(err)), 0);
	kl_store_close(st);
	new = dump_q(f->base, &v, view_q, NVIEW_Q);
	assert_true(v >= 7);
	/* The same rows under the same query text, but the first. */
	assert_string_equal(strchr(old, '\n'), strchr(new, '\n'));
	assert_true(strlen(new) > 1000000);
	free(old);
	free(new);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_faults_keep_transactions_whole, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_faults_in_migration, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_upgrade_keeps_views, setup, teardown),
	};

	kl_log_setup(KL_LOG_ERROR, false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
