/*
 * Exact decimals: prices and volumes are kept as 128-bit counts of 1e-8
 * (Binance's finest precision), so any value Binance prints fits (up to
 * 20 integer digits: high-supply coins trade 1e15 units a day) and sums
 * over a day carry no float drift and cannot overflow.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KL_DEC_SCALE	  100000000LL
#define KL_DEC_DIGITS	  8
#define KL_DEC_INT_DIGITS 20 /* integer digits accepted: values below 1e20 */

__extension__ typedef __int128 kl_i128;
__extension__ typedef unsigned __int128 kl_u128;

/* The largest accepted value, 99999999999999999999.99999999, in 1e-8 units.
 * A day of 1440 of them is below 2^104, far inside kl_i128. */
#define KL_DEC_MAX ((kl_i128)10000000000000000000ULL * 1000000000 - 1)

/* Values up to 2^53 units convert to the nearest double as v / 1e8 even in
 * SQL (one correctly rounded division), so the store keeps those as plain
 * integers and only larger ones need the exact form beside a double. */
#define KL_DEC_SQL_EXACT ((kl_i128)1 << 53)

/**
 * Parse a non-negative decimal string ("16537.50", "0", "1.", ".5") of
 * @p len bytes into 1e-8 units. Digits beyond the 8th decimal must be 0.
 * @return 0; -EINVAL when not a decimal (sign, exponent, junk, empty);
 *         -ERANGE when more than KL_DEC_INT_DIGITS integer digits;
 *         -EDOM when finer than 1e-8. *ret is untouched on error.
 */
int kl_dec_parse(const char *s, size_t len, kl_i128 *ret);

/**
 * Format @p v (1e-8 units) as "I.FFFFFFFF" with trailing zeros of the
 * fraction trimmed (and the point, for integers) into @p buf.
 * @return the length written (buf is NUL-terminated); needs n >= 48.
 */
size_t kl_dec_format(kl_i128 v, char *buf, size_t n);

/**
 * Format @p v with exactly 8 decimals ("14198087800000.00000000"), the
 * form of the daily_exact view. @return the length; needs n >= 48.
 */
size_t kl_dec_format8(kl_i128 v, char *buf, size_t n);

/** @return the double nearest to @p v / 1e8 (ties to even), for any v. */
double kl_dec_double(kl_i128 v);

/**
 * Write the @p nv values of @p v trimmed (kl_dec_format), separated by one
 * space, into @p buf: the store's exact form of a large kline.
 * @return the length (buf NUL-terminated), or 0 when n < 48 * nv.
 */
size_t kl_dec_format_list(const kl_i128 *v, size_t nv, char *buf, size_t n);

/**
 * Parse exactly @p nv space-separated decimals from @p s (@p len bytes).
 * @return 0, or the first error of kl_dec_parse (-EINVAL also for a
 *         wrong count).
 */
int kl_dec_parse_list(const char *s, size_t len, kl_i128 *v, size_t nv);
