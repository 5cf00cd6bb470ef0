/*
 * The store's reads for candles of any interval (/api/klines) and the
 * forecast rows a forecasting job wrote (/api/forecast): a read-only
 * connection of its own with its own prepared statements, so these
 * reads change nothing in the writer's or the day table's statements.
 */
#pragma once

#include "interval.h"

#include <stddef.h>
#include <stdint.h>

struct kl_store_klines;

/**
 * Open the store at @p path (already created and migrated by the daemon)
 * read-only. @return 0 with *ret owned by the caller
 * (kl_store_klines_close), or -errno with @p err set.
 */
int kl_store_klines_open(const char *path, struct kl_store_klines **ret, char *err, size_t n);

/** Close. NULL is fine. @return NULL. */
struct kl_store_klines *kl_store_klines_close(struct kl_store_klines *sk);

/** @return SQLite's last error message (borrowed). */
const char *kl_store_klines_errmsg(struct kl_store_klines *sk);

/*
 * Chooses the half-open range of open times to read, given the end of the
 * newest stored minute of the symbol (0: none). Called once, inside the
 * read transaction, so the range and the minutes agree.
 */
typedef void kl_store_klines_range_fn(void *ud, int64_t newest_end, int64_t *from, int64_t *to);

/**
 * Aggregate the stored minutes of @p symbol in the range @p range picks
 * into @p c (initialized by the caller), stopping when c is full, and
 * mark closed the intervals the newest minute has passed; *newest_end
 * gets that minute's end. All in one read transaction.
 * @return 0; -ENOENT for a symbol not in the store (c left empty);
 *         -EIO when the store cannot be read.
 */
int kl_store_klines_read(struct kl_store_klines *sk, const char *symbol,
			 kl_store_klines_range_fn *range, void *ud, struct kl_candles *c,
			 int64_t *newest_end);

/* One row of the forecast table; strings borrowed for the call only. */
struct kl_forecast_row {
	const char *ds;
	double yhat, yhat_lower, yhat_upper;
	int64_t made_at;
};

/**
 * Call @p fn for each forecast row of @p symbol, by day (at most
 * @p max rows). @p fn must not close @p sk. @return the row count, or -EIO.
 */
int kl_store_klines_forecast(struct kl_store_klines *sk, const char *symbol, size_t max,
			     void (*fn)(void *ud, const struct kl_forecast_row *row), void *ud);
