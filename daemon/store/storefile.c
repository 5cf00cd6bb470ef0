/*
 * Invariants:
 *  1. The check only reads: it runs before the journal mode, migrations
 *     or the run row, and a store found corrupt is closed without the
 *     checkpoint SQLite would otherwise do on close (its bytes stay).
 *  2. The identity check is a stat() per file: cheap enough for every
 *     few seconds, and it sees deletion and replacement alike.
 */
#include "storefile.h"

#include "log.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *const suffix[3] = {"", "-wal", "-shm"};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Progress handler: interrupt the check once its deadline has passed. */
static int past_deadline(void *ud)
{
	return now_ms() >= *(const uint64_t *)ud;
}

static int is_corrupt(int rc)
{
	return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB;
}

int kl_storefile_check(sqlite3 *db, const char *path, int budget_ms, char *err, size_t n)
{
	uint64_t deadline = now_ms() + (uint64_t)budget_ms;
	sqlite3_stmt *s = NULL;
	const char *first;
	int rc, r = 0;

	/* A store that turns out corrupt is left as it was: no checkpoint on close. */
	sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &s, NULL);
	if (rc != SQLITE_OK)
		goto failed;
	sqlite3_progress_handler(db, 10000, past_deadline, &deadline);
	rc = sqlite3_step(s);
	sqlite3_progress_handler(db, 0, NULL, NULL);
	if (rc == SQLITE_INTERRUPT) {
		kl_warn("store",
			"%s: quick_check stopped after %d ms (a large store): checked in part",
			path, budget_ms);
		goto done;
	}
	if (rc != SQLITE_ROW)
		goto failed;
	first = (const char *)sqlite3_column_text(s, 0);
	if (first && !strcmp(first, "ok"))
		goto done;
	snprintf(err, n,
		 "database is corrupt: %s: %s; nothing was changed (restore a backup, or move it "
		 "away and let klined refetch the history)",
		 path, first ? first : "?");
	r = -EUCLEAN;
	goto out;
failed:
	if (is_corrupt(rc) || is_corrupt(sqlite3_extended_errcode(db))) {
		snprintf(err, n,
			 "database is corrupt: %s: %s; nothing was changed (restore a backup, "
			 "or move it away and let klined refetch the history)",
			 path, sqlite3_errmsg(db));
		r = -EUCLEAN;
	} else {
		snprintf(err, n, "cannot check %s: %s", path, sqlite3_errmsg(db));
		r = (rc & 0xff) == SQLITE_BUSY ? -EBUSY : -EIO;
	}
	goto out;
done:
	sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
out:
	sqlite3_finalize(s);
	return r;
}

void kl_storefile_note(const char *path, struct kl_storefile_id *id)
{
	char p[4096];
	struct stat sb;

	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
		id->have[i] = stat(p, &sb) == 0;
		id->dev[i] = id->have[i] ? sb.st_dev : 0;
		id->ino[i] = id->have[i] ? sb.st_ino : 0;
	}
}

int kl_storefile_same(const char *path, const struct kl_storefile_id *id, char *err, size_t n)
{
	char p[4096];
	struct stat sb;

	for (size_t i = 0; i < 3; i++) {
		if (!id->have[i])
			continue;
		snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
		if (stat(p, &sb) < 0) {
			snprintf(err, n, "%s: %s", p, strerror(errno));
			return -ENOENT;
		}
		if (sb.st_dev != id->dev[i] || sb.st_ino != id->ino[i]) {
			snprintf(err, n, "%s: another file is at this path now", p);
			return -ESTALE;
		}
	}
	return 0;
}
