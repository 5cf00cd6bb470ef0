/*
 * The kline row of schema 7 (schema/007-dense.sql): values without the
 * decimal zeros they share, extremes and close as differences from the
 * open, close_time NULL when it is the minute's end; a kline past 2^53
 * units in schema 3's exact form (nearest doubles plus x). The one
 * encoder (the writer and the upgrade) and the one decoder (every read).
 */
#pragma once

#include "kline.h"
#include "store.h"

#include <sqlite3.h>
#include <stddef.h>

/**
 * Bind ?1 .. ?15 of an insert into kline (its columns in table order) to
 * kline @p k of symbol @p sid from source @p src. @p k is borrowed.
 */
void kl__store_bind_kline(sqlite3_stmt *s, int64_t sid, const struct kl_kline *k,
			  enum kl_source src);

/**
 * Schema 7's C part, in the open migration transaction of @p db: every
 * row of the old kline table into kline7, encoded; then the old table
 * dropped and kline7 renamed kline. @return 0, or -errno with @p err set.
 */
int kl__store_upgrade_dense(sqlite3 *db, char *err, size_t n);
