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

/**
 * Load one archive zip held in memory (@p data, @p len, borrowed) named
 * @p name (SYMBOL-1m-YYYY-MM[-DD].zip) into symbol @p sid, from @p keep_from
 * on, in one transaction, validated as a file is. *@p rows gets the klines
 * stored. @return 0; -ENODATA (no kline from keep_from on); -EINVAL (not
 * such a file, or not a zip); -EIO, -EBUSY, -ENOSPC (the store's: rolled back).
 */
int kl_import_zip(struct kl_store *st, int64_t sid, const char *name, const void *data, size_t len,
		  int64_t keep_from, int64_t *rows);
