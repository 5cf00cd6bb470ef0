/*
 * Inputs of the read-only HTTP API, validated before anything else sees
 * them: query strings ("symbol=BTCUSDT&days=30") and websocket
 * subscriptions. Only names from the configured set and bounded numbers
 * come out; the caller binds them as SQL parameters, never as text.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KL_HTTPQ_DAYS_DEFAULT 365
#define KL_HTTPQ_DAYS_MAX     3660 /* ten years of days: more is never one chart */
#define KL_HTTPQ_QUERY_MAX    512  /* longer query strings are refused outright */

struct kl_httpq_daily {
	size_t symbol; /* index into the configured symbols */
	int64_t days;  /* 1 .. KL_HTTPQ_DAYS_MAX */
	bool exact;    /* exact=1: also the exact decimal strings */
};

/**
 * Find @p name (@p len bytes, not NUL-terminated; ASCII case ignored)
 * among @p symbols (@p n of them, borrowed).
 * @return its index, or -ENOENT.
 */
int kl_httpq_symbol(const char *name, size_t len, char *const *symbols, size_t n);

/**
 * Parse the query string of /api/daily: `symbol` (required, one of
 * @p symbols), `days` (optional, decimal, 1..KL_HTTPQ_DAYS_MAX) and
 * `exact` (optional, 0 or 1).
 * Unknown, repeated or empty parameters are refused. @p query may be
 * NULL (no query at all).
 * @return 0 with *ret; -EINVAL with a message for the client in @p err.
 */
int kl_httpq_daily(const char *query, char *const *symbols, size_t n, struct kl_httpq_daily *ret,
		   char *err, size_t errlen);

/* A validated /api/klines query (interval.h has the bounds). */
struct kl_httpq_klines {
	size_t symbol;	/* index into the configured symbols */
	int64_t period; /* ms, one of the intervals */
	int64_t from;	/* ms; -1: not given */
	int64_t to;	/* ms; -1: not given */
	int64_t limit;	/* 1 .. KL_KLINES_LIMIT_MAX */
};

/**
 * @return how far from `from` one request of @p period looks for its
 * candles: KL_KLINES_SPAN_MAX of minutes, or 1000 days or weeks.
 */
int64_t kl_httpq_klines_span(int64_t period);

/**
 * Parse the query string of /api/klines: `symbol` and `interval`
 * (required), `from`, `to` (ms, decimals, from < to) and `limit`
 * (1 .. KL_KLINES_LIMIT_MAX, default KL_KLINES_LIMIT_DEFAULT). Unknown, repeated or empty
 * parameters are refused. @return 0 with *ret; -EINVAL with a message naming the parameter in @p
 * err.
 */
int kl_httpq_klines(const char *query, char *const *symbols, size_t n, struct kl_httpq_klines *ret,
		    char *err, size_t errlen);

/**
 * The half-open range [*from, *to) of interval starts to read for @p q,
 * aligned to its period: when `from` is given, from there for at most
 * kl_httpq_klines_span() (and before `to`), of which the reader keeps the
 * first limit candles; else the last limit intervals before `to`, or up
 * to the interval holding the newest stored minute (@p newest_end, the
 * end of that minute) when neither is given.
 */
void kl_httpq_klines_range(const struct kl_httpq_klines *q, int64_t newest_end, int64_t *from,
			   int64_t *to);
