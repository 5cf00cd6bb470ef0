/*
 * One 1-minute kline as klined keeps it, and the single place where a
 * kline from any source (REST page row, websocket event, CSV dump line)
 * is parsed and judged. Decimals are 128-bit 1e-8 integers (see dec.h).
 */
#pragma once

#include "dec.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KL_MINUTE_MS ((int64_t)60000)
#define KL_DAY_MS    ((int64_t)86400000)

struct kl_kline {
	int64_t open_time; /* ms since the epoch, UTC */
	int64_t close_time;
	kl_i128 open, high, low, close;
	kl_i128 volume, quote_volume, taker_base, taker_quote;
	int64_t trades;
};

/* Why a kline was refused; 0 means it is valid. */
enum kl_verdict {
	KL_KLINE_OK = 0,
	KL_KLINE_SHAPE,	   /* not an array of 11+ fields / not 12 CSV columns */
	KL_KLINE_TIME,	   /* a time that is not a non-negative integer */
	KL_KLINE_DECIMAL,  /* a price or volume that is not a decimal string */
	KL_KLINE_TRADES,   /* trades not a non-negative integer */
	KL_KLINE_RANGE,	   /* open time outside the requested range */
	KL_KLINE_CLOSE,	   /* close_time not in (open_time, open_time + 1 min) */
	KL_KLINE_HIGH,	   /* high below open, close or low */
	KL_KLINE_LOW,	   /* low above open or close */
	KL_KLINE_PRICE,	   /* a price of zero */
	KL_KLINE_NEGATIVE, /* a negative volume */
	KL_KLINE_EVENT,	   /* not a 1m kline event of a valid symbol */
	KL_KLINE_FUTURE,   /* an event ahead of the exchange's clock */
	KL_KLINE_HUGE,	   /* a decimal of more than KL_DEC_INT_DIGITS integer digits */
	KL_KLINE_FINE,	   /* a decimal with a non-zero digit past the 8th decimal */
	KL_KLINE_MINUTE,   /* open time off the minute outside 2017-2018 */
};

/* 2019-01-01T00:00Z: before it, Binance's history has bars off the minute. */
#define KL_OFFMINUTE_UNTIL INT64_C(1546300800000)

/* A websocket kline event: the running state of one minute. */
struct kl_event {
	char symbol[24];
	int64_t event_time; /* E: when the exchange sent it */
	bool closed;	    /* k.x: the minute is final */
	struct kl_kline k;
};

/** @return a static human-readable reason for @p v. */
const char *kl_kline_reason(enum kl_verdict v);

/**
 * Parse one row of /api/v3/klines (a JSON array: times and trades as
 * integers, decimals as strings). @p row is borrowed.
 * @return KL_KLINE_OK with @p k filled, or the verdict (k is then partial).
 */
enum kl_verdict kl_kline_from_json(const json_t *row, struct kl_kline *k);

/**
 * Parse one data.binance.vision CSV line (12 columns, no trailing newline
 * needed). Timestamps in microseconds (dumps from 2025 on) become ms.
 * @return KL_KLINE_OK, or the verdict.
 */
enum kl_verdict kl_kline_from_csv(const char *line, size_t len, struct kl_kline *k);

/**
 * Parse decimal text @p s (@p len bytes) into @p ret. @return KL_KLINE_OK,
 * or why it was refused: a minus sign, a size, a precision or the spelling.
 */
enum kl_verdict kl_kline_dec_verdict(const char *s, size_t len, kl_i128 *ret);

/**
 * Find the raw text of the top-level member @p key of the JSON object in
 * @p text (already known to be valid JSON), so it can be passed on byte
 * for byte. @return 0 with *off, *len set; -ENOENT when absent; -EINVAL
 * when @p text is not an object.
 */
int kl_json_member(const char *text, size_t n, const char *key, size_t *off, size_t *len);

/**
 * The value of top-level member @p key when it is a plain string (no
 * escapes) that fits @p buf. @return 0, -ENOENT, or -EINVAL.
 */
int kl_json_member_string(const char *text, size_t n, const char *key, char *buf, size_t buflen);

/** The value of top-level member @p key when it is a non-negative integer. @return 0, -ENOENT,
 * -EINVAL. */
int kl_json_member_int(const char *text, size_t n, const char *key, int64_t *ret);

/**
 * The checks every parsed kline must pass before it is stored:
 * open_time within [from, to) (pass 0, INT64_MAX for no range), close
 * time, price ordering, non-zero prices.
 */
enum kl_verdict kl_kline_check(const struct kl_kline *k, int64_t from, int64_t to);

/** The minute slot a kline occupies (floor of open_time to the minute). */
static inline int64_t kl_kline_slot(int64_t open_time)
{
	return open_time - open_time % KL_MINUTE_MS;
}
