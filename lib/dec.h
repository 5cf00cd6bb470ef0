/*
 * Exact decimals: prices and volumes are kept as int64 counts of 1e-8
 * (Binance's finest precision), so sums over a day carry no float drift.
 * Daily quote volumes can exceed int64 at 1e-8, so sums use kl_i128.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define KL_DEC_SCALE  100000000LL
#define KL_DEC_DIGITS 8

__extension__ typedef __int128 kl_i128;
__extension__ typedef unsigned __int128 kl_u128;

/**
 * Parse a non-negative decimal string ("16537.50", "0", "1.", ".5") of
 * @p len bytes into 1e-8 units. Digits beyond the 8th decimal must be 0.
 * @return 0; -EINVAL when not a decimal (sign, exponent, junk, empty);
 *         -ERANGE when too large or finer than 1e-8.
 */
int kl_dec_parse(const char *s, size_t len, int64_t *ret);

/**
 * Format @p v (1e-8 units) as "I.FFFFFFFF" with trailing zeros of the
 * fraction trimmed (and the point, for integers) into @p buf.
 * @return the length written (buf is NUL-terminated); needs n >= 48.
 */
size_t kl_dec_format(kl_i128 v, char *buf, size_t n);
