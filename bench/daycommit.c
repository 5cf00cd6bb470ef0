/*
 * The speed layer's checkpoint and one symbol's `daily`, on a store with
 * history (docs/benchmarks.md, "Day rows with history"):
 *
 *     ninja -C build bench/daycommit && build/bench/daycommit [SYMBOLS [DAYS...]]
 *
 * For each history depth (days of batch rows per symbol, default 0 30 365),
 * a fresh store in $TMPDIR with SYMBOLS symbols (default 1,500) gets that
 * many day rows each, written by a second connection; then, through the
 * store's API as the consumer does it (daemon/speed/speed.c commit()),
 * 40 checkpoints each rewrite every symbol's open day (one transaction:
 * kl_store_put_speed_day per symbol, kl_store_commit), the WAL's checkpoints
 * deferred as on the daemon's loop. Reported: the checkpoint's time per row
 * and per checkpoint (median of the last 30), the WAL pages one checkpoint
 * adds, and the time of `SELECT * FROM daily WHERE symbol = ?` and of a
 * whole `SELECT count(*), sum(ma30) FROM daily` (median of 5). Not a test:
 * the figures depend on the machine.
 */
#include "store.h"

#include "day.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DAY0	1678320000000LL /* 2023-03-09 */
#define UNIT	100000000	/* 1e-8 */
#define ROUNDS	40
#define WARMUP	10
#define QUERIES 5

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

static int history(const char *path, int nsym, int days, int64_t *sids)
{
	struct kl_store *st = NULL;
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	char err[256];
	int r = -1;

	if (kl_store_open(path, false, &st, err, sizeof(err)) < 0) {
		fprintf(stderr, "daycommit: %s\n", err);
		return -1;
	}
	if (kl_store_begin(st) < 0)
		goto out;
	for (int i = 0; i < nsym; i++) {
		char sym[16];
		int64_t start = DAY0;
		snprintf(sym, sizeof(sym), "S%04dUSDT", i);
		if (kl_store_symbol(st, sym, true, &start, &sids[i]) < 0)
			goto out;
	}
	if (kl_store_commit(st) < 0)
		goto out;
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "INSERT INTO day VALUES (?1, date(?2, 'unixepoch'), 1.5, 2.5, 0.5, "
			       "1.5, 10, 20, 5, 1, '1.50000000', '2.50000000', '0.50000000', "
			       "'1.50000000', '10.00000000', '20.00000000')",
			       -1, &s, NULL) != SQLITE_OK)
		goto out;
	for (int i = 0; i < nsym; i++) {
		for (int d = 0; d < days; d++) {
			sqlite3_bind_int64(s, 1, sids[i]);
			sqlite3_bind_int64(s, 2, (DAY0 + d * KL_DAY_MS) / 1000);
			if (sqlite3_step(s) != SQLITE_DONE)
				goto out;
			sqlite3_reset(s);
		}
	}
	r = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
out:
	if (r < 0)
		fprintf(stderr, "daycommit: cannot write the history: %s\n",
			db ? sqlite3_errmsg(db) : kl_store_errmsg(st));
	sqlite3_finalize(s);
	sqlite3_close(db);
	kl_store_close(st);
	return r;
}

static double query_s(sqlite3 *db, const char *sql)
{
	double t[QUERIES];

	for (int q = 0; q < QUERIES; q++) {
		sqlite3_stmt *s;
		double t0 = now_s();
		if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
			return -1;
		while (sqlite3_step(s) == SQLITE_ROW)
			;
		sqlite3_finalize(s);
		t[q] = now_s() - t0;
	}
	return median(t, QUERIES);
}

static int run(const char *dir, int nsym, int days)
{
	char path[600], f[640];
	int64_t *sids = calloc((size_t)nsym, sizeof(*sids));
	double t[ROUNDS - WARMUP];
	struct kl_store *st = NULL;
	int pages[ROUNDS - WARMUP];
	int r = -1;
	sqlite3 *db;
	char err[256];

	snprintf(path, sizeof(path), "%s/daycommit.db", dir);
	if (!sids || history(path, nsym, days, sids) < 0)
		goto out;
	if (kl_store_open(path, false, &st, err, sizeof(err)) < 0) {
		fprintf(stderr, "daycommit: %s\n", err);
		goto out;
	}
	kl_store_wal_defer(st);
	for (int round = 0; round < ROUNDS; round++) {
		int before = kl_store_wal_pages(st);
		double t0 = now_s();
		if (kl_store_begin(st) < 0)
			goto out;
		for (int i = 0; i < nsym; i++) {
			struct kl_day d;
			kl_day_init(&d, DAY0 + days * KL_DAY_MS);
			d.open = (kl_i128)(100 + i) * UNIT;
			d.high = (kl_i128)(200 + i + round) * UNIT;
			d.low = (kl_i128)(50 + i) * UNIT;
			d.close = (kl_i128)(150 + i) * UNIT + round;
			d.volume = (kl_i128)(1000 + round) * UNIT + i;
			d.quote_volume = (kl_i128)(2000 + round) * UNIT + i;
			d.trades = 10 + round;
			if (kl_store_put_speed_day(st, sids[i], &d) < 0)
				goto out;
		}
		if (kl_store_commit(st) < 0)
			goto out;
		if (round >= WARMUP) {
			t[round - WARMUP] = now_s() - t0;
			pages[round - WARMUP] = kl_store_wal_pages(st) - before;
		}
	}
	st = kl_store_close(st);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		goto out;
	double one = query_s(db, "SELECT * FROM daily WHERE symbol = 'S0001USDT'");
	double all = query_s(db, "SELECT count(*), sum(ma30) FROM daily");
	sqlite3_close(db);
	double ck = median(t, ROUNDS - WARMUP);
	printf("| %d | %d | %.2f | %.2f | %d | %.1f | %.0f |\n", nsym, days, ck * 1e6 / nsym,
	       ck * 1e3, pages[ROUNDS - WARMUP - 1], one * 1e3, all * 1e3);
	fflush(stdout);
	r = 0;
out:
	if (st)
		fprintf(stderr, "daycommit: %s\n", kl_store_errmsg(st));
	kl_store_close(st);
	for (int i = 0; i < 3; i++) {
		snprintf(f, sizeof(f), "%s%s", path, (const char *[]){"", "-wal", "-shm"}[i]);
		unlink(f);
	}
	free(sids);
	return r;
}

int main(int argc, char **argv)
{
	const char *tmp = getenv("TMPDIR");
	char dir[512];
	int nsym = argc > 1 ? atoi(argv[1]) : 1500;
	int depth[] = {0, 30, 365}, ndepth = 3;

	snprintf(dir, sizeof(dir), "%s/daycommit-XXXXXX", tmp ? tmp : "/tmp");
	if (nsym <= 0 || !mkdtemp(dir)) {
		fprintf(stderr, "usage: daycommit [SYMBOLS [DAYS...]] (and a writable $TMPDIR)\n");
		return 2;
	}
	printf("| symbols | days of history each | checkpoint µs/row | checkpoint ms | WAL pages "
	       "per checkpoint | daily of one symbol ms | all of daily ms |\n"
	       "|--:|--:|--:|--:|--:|--:|--:|\n");
	for (int i = 0; i < (argc > 2 ? argc - 2 : ndepth); i++) {
		int days = argc > 2 ? atoi(argv[i + 2]) : depth[i];
		if (days < 0 || run(dir, nsym, days) < 0) {
			rmdir(dir);
			return 1;
		}
	}
	rmdir(dir);
	return 0;
}
