/*
 * The exact side of the store (schema/003-exact.sql): decoding the exact
 * form of large klines and days, and the in-place upgrade of a schema-2
 * store, which needs arithmetic SQL lacks (nearest doubles of 128-bit
 * values). Split from store.c, which holds the statements.
 */
#pragma once

#include "kline.h"

#include <sqlite3.h>
#include <stddef.h>

/**
 * Run the C part of migration @p version (1-based) inside the open
 * migration transaction of @p db. @return 0, or -errno with @p err set.
 */
int kl_store_upgrade(sqlite3 *db, size_t version, char *err, size_t n);

/**
 * Fill open .. quote_volume of @p k from column @p col of @p s, the x
 * text of a large kline. @return 0, or -EINVAL when it is not klined's.
 */
int kl_store_exact_kline(sqlite3_stmt *s, int col, struct kl_kline *k);

/**
 * A kline row as the reads select it: open_time, o, h, l, c, v, q, trades,
 * x, scale (columns 0 to 9 of schema 7's table), decoded into @p k
 * (open .. quote_volume; the other fields untouched). In store_row.c.
 * @return 0, or -EIO when the row is not klined's.
 */
int kl_store_row_kline(sqlite3_stmt *s, struct kl_kline *k);
