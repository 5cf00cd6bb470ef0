/*
 * `klined import`: data.binance.vision kline dumps (CSV, .csv.gz, .zip)
 * into the store, validated exactly like REST pages, one transaction per
 * file, then the day rows brought up to date.
 */
#pragma once

#include "conf.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

/** Import @p files (borrowed). @return a process exit code: 0 when all loaded. */
int kl_import(const struct kl_conf *conf, char *const *files, int nfiles);

struct kl_import_batch;

/**
 * Parse one archive zip held in memory (@p data, @p len, borrowed for the
 * call only) named @p name (SYMBOL-1m-YYYY-MM[-DD].zip), from @p keep_from
 * on, validated as a file is: no store, safe on a worker thread. @return 0
 * with *ret owned by the caller (kl_import_batch_free); -ENODATA (no kline
 * from keep_from on), -EINVAL (not such a file, or not a zip), -ENOMEM.
 */
int kl_import_parse_zip(const char *name, const void *data, size_t len, int64_t keep_from,
			struct kl_import_batch **ret);

/**
 * Store a parsed file into symbol @p sid in one transaction (on the loop).
 * *@p rows gets the klines stored. @return 0, or -EIO, -EBUSY, -ENOSPC
 * (the store's: rolled back, nothing stored). @p b stays the caller's.
 */
int kl_import_store_batch(struct kl_store *st, int64_t sid, struct kl_import_batch *b,
			  int64_t *rows);

void kl_import_batch_free(struct kl_import_batch *b);
