/*
 * Candles of any Binance interval (1m .. 1w) aggregated exactly from
 * minute klines, with the arithmetic of the days (day.h): open of the
 * first minute, extremes, close of the last, 128-bit sums. UTC
 * boundaries; weeks start on Monday, as Binance's. Pure logic: the store
 * feeds the minutes.
 */
#pragma once

#include "dec.h"
#include "kline.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KL_WEEK_MS ((int64_t)7 * KL_DAY_MS)

/* Bounds of one /api/klines request: rows, like Binance's klines, and the
 * stored minutes one request may fold (1000 candles of 4h: 240,000 rows,
 * 0.4-0.8 s of the daemon's loop on the loaded 2-core test machine). Days
 * and weeks fold the stored day rows instead (a complete day is one row),
 * so they get 1000 candles too. */
#define KL_KLINES_LIMIT_DEFAULT 500
#define KL_KLINES_LIMIT_MAX	1000
#define KL_KLINES_SPAN_MAX	((int64_t)KL_KLINES_LIMIT_MAX * 4 * 3600000)

struct kl_candle {
	int64_t open_time; /* ms, the interval's start */
	kl_i128 open, high, low, close, volume, quote_volume;
	int64_t trades;
	int64_t first_open_time, last_open_time; /* of the minutes giving open, close */
	uint32_t nklines;
	bool closed; /* the interval has ended (see kl_candles_mark) */
};

/* The candles of one request, ascending, only intervals with a kline. */
struct kl_candles {
	int64_t period;
	struct kl_candle *v;
	size_t n, cap;
};

/**
 * Parse an interval name ("1m", "5m", "15m", "30m", "1h", "4h", "1d",
 * "1w") of @p len bytes. @return 0 with *period in ms, or -EINVAL.
 */
int kl_interval_parse(const char *s, size_t len, int64_t *period);

/** @return the name of @p period ("1h"), or NULL when not an interval. */
const char *kl_interval_name(int64_t period);

/** @return the start of the interval of @p period containing @p ms (UTC; weeks from Monday). */
int64_t kl_interval_floor(int64_t ms, int64_t period);

/**
 * Start empty candles of @p period with room for @p cap of them (malloc'd:
 * kl_candles_clear frees). @return 0, -EINVAL (bad period) or -ENOMEM.
 */
int kl_candles_init(struct kl_candles *c, int64_t period, size_t cap);

/** Free the candles' memory (the struct itself is the caller's). NULL-safe. */
void kl_candles_clear(struct kl_candles *c);

/**
 * Add a minute kline; klines come in ascending open_time (as the store
 * reads them). @return 0; -ENOSPC when it would start candle cap + 1;
 * -EINVAL when it is older than the last candle.
 */
int kl_candles_add(struct kl_candles *c, const struct kl_kline *k);

/**
 * Mark closed the candles whose interval ends at or before @p end_ms (the
 * end of the newest stored minute of the symbol): the one still running,
 * or the interval the store has not got past, stays open.
 */
void kl_candles_mark(struct kl_candles *c, int64_t end_ms);
