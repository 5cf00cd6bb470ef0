/*
 * The store as a file: is it sound before anything writes to it, and is
 * the path still the file the daemon writes? Both guard against losing
 * data without a word: a corrupt page found only by a later write (after
 * the store was already modified), or a store deleted under the daemon,
 * which then writes on into an unlinked inode until it stops.
 */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define KL_STOREFILE_CHECK_MS 10000 /* longest quick_check at open: see operations.md */

/* The db, -wal and -shm files as they were when noted. */
struct kl_storefile_id {
	dev_t dev[3];
	ino_t ino[3];
	bool have[3];
};

/**
 * PRAGMA quick_check on @p db (open, nothing written yet), stopped after
 * @p budget_ms: a store too large to check in that time is checked that
 * far (logged). @p path (borrowed) is named in the message.
 * @return 0 when sound (or not fully checked), -EUCLEAN when corrupt
 *         ("database is corrupt" in @p err), other -errno when the check
 *         could not run.
 */
int kl_storefile_check(sqlite3 *db, const char *path, int budget_ms, char *err, size_t n);

/** Note the identity of @p path and its -wal and -shm files (those that exist). */
void kl_storefile_note(const char *path, struct kl_storefile_id *id);

/**
 * @return 0 while every noted file is still at its path, -ENOENT when one
 *         is gone, -ESTALE when one was replaced; @p err says which.
 */
int kl_storefile_same(const char *path, const struct kl_storefile_id *id, char *err, size_t n);
