/*
 * The WAL's checkpoints (store.h). SQLite checkpoints inside the commit
 * that crosses 1,000 WAL pages: on the loop's connection that is a copy of
 * ~4 MB and a sync in the middle of the stream (25-50 ms at 1,500 symbols).
 * Every writer counts its WAL's pages and checkpoints inline at SQLite's
 * threshold, except the loop's once a checkpointer runs (kl_store_wal_defer):
 * its checkpoints run on a connection of their own, off the loop
 * (daemon/batch/walck.c), PASSIVE: never waiting for a writer or a reader.
 */
#include "store_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define WAL_CK_PAGES 1000 /* SQLite's default autocheckpoint */
/* Far past it: only if the checkpointer cannot keep up (a stuck thread pool)
 * does the deferring writer checkpoint itself. */
#define WAL_BACKSTOP_PAGES 20000

struct kl_store_ck {
	sqlite3 *db;
};

static int on_wal(void *ud, sqlite3 *db, const char *name, int pages)
{
	struct kl_store *st = ud;

	st->wal_pages = pages;
	if (pages >= (st->wal_deferred ? WAL_BACKSTOP_PAGES : WAL_CK_PAGES))
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return SQLITE_OK;
}

void kl__store_wal_hook(struct kl_store *st)
{
	sqlite3_wal_hook(st->db, on_wal, st);
}

void kl_store_wal_defer(struct kl_store *st)
{
	st->wal_deferred = true;
}

int kl_store_wal_pages(const struct kl_store *st)
{
	return st->wal_pages;
}

int kl_store_ck_open(const char *path, struct kl_store_ck **ret)
{
	struct kl_store_ck *ck = calloc(1, sizeof(*ck));
	int rc;

	if (!ck)
		return -ENOMEM;
	rc = sqlite3_open_v2(path, &ck->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_close(ck->db);
		free(ck);
		return kl__store_err(rc);
	}
	/* Its own checkpoints are the point; a user's lock is not waited for. */
	sqlite3_wal_autocheckpoint(ck->db, 0);
	/* A connection that has read nothing has not opened the WAL: its
	 * checkpoints would do nothing and say so only by -1 frames. */
	rc = sqlite3_exec(ck->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_close(ck->db);
		free(ck);
		return kl__store_err(rc);
	}
	*ret = ck;
	return 0;
}

int kl_store_ck_run(struct kl_store_ck *ck)
{
	/* What a reader's snapshot still needs stays: the writer's next commit
	 * appends, and the next run copies it. */
	int rc = sqlite3_wal_checkpoint_v2(ck->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);

	return rc == SQLITE_OK ? 0 : kl__store_err(rc);
}

void kl_store_ck_close(struct kl_store_ck *ck)
{
	if (!ck)
		return;
	sqlite3_close(ck->db);
	free(ck);
}
