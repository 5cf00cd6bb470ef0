/*
 * Archive zips loaded off the loop: each checked against its sha256 and
 * parsed on the thread pool (kl_import_parse_zip), then stored in one
 * transaction (kl_import_store_batch) on the loader's own connection to the
 * store, one file at a time, also on the thread pool. The loop only hands
 * files over and hears back, so a 44,640-row month never stalls it; a
 * writer on the loop's connection that comes while a file is being stored
 * waits for that file's commit (SQLite has one writer at a time), no longer.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct kl_load;

/**
 * Called on the loop with a file's end: 0 and the klines stored in @p rows;
 * -ENODATA (nothing from keep_from on), -EINVAL (not a kline zip), -EBADMSG
 * (not the sha256 asked for), -ENOMEM,
 * -EIO/-ENOSPC (the store's: nothing of the file stored); -ECANCELED when
 * the loader is being freed: release @p ud, touch nothing else. It may free
 * the loader.
 */
typedef void (*kl_load_cb)(void *ud, int status, int64_t rows);

/** @return 0 with *ret owned by the caller (kl_load_free), or -ENOMEM. @p db_path is copied. */
int kl_load_new(uv_loop_t *loop, const char *db_path, struct kl_load **ret);

/**
 * Load zip @p data (@p len bytes; taken: freed by the loader) named @p name
 * (SYMBOL-1m-PERIOD.zip, copied) into symbol @p sid from @p keep_from on,
 * if its sha256 is @p sha256 (64 lowercase hex digits, copied); if not,
 * the status is -EBADMSG (said in the log) and nothing is stored.
 * @p cb runs later on the loop, never from inside this call. @return 0, or
 * -ENOMEM (then @p data is freed and @p cb never runs).
 */
int kl_load_zip(struct kl_load *l, const char *name, void *data, size_t len, const char *sha256,
		int64_t keep_from, int64_t sid, kl_load_cb cb, void *ud);

/**
 * Bring the day rows of symbol @p sid up to date on the loader's connection,
 * off the loop; call it once the symbol's files are done (their callbacks
 * ran). kl_store_refresh_days up to @p to_ms (the end of what the files
 * cover: that day is left stale for the loop's own refresh), in transactions of about a month from
 * @p from_ms on, so a writer on the loop waits for a month of days at most. @p cb as for a file
 * (@p rows: the days written). @return 0 or -ENOMEM.
 */
int kl_load_days(struct kl_load *l, int64_t sid, int64_t from_ms, int64_t to_ms, kl_load_cb cb,
		 void *ud);

/**
 * Cancel what is not stored yet (the callbacks run with -ECANCELED, some
 * from inside this call) and free once the thread pool is done with the
 * loader (the loop must run on). NULL is fine.
 */
void kl_load_free(struct kl_load *l);
