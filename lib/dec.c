/*
 * Decimal string <-> scaled integer. Hand-written because strtod would
 * round, and exactness is the point: a day must print equal to Binance's
 * own 1d kline at 8 decimals.
 */
#include "dec.h"

#include <errno.h>
#include <stdbool.h>

/* 92233720368.54775807 is INT64_MAX in 1e-8 units: 11 integer digits. */
#define INT_DIGITS_MAX 11

int kl_dec_parse(const char *s, size_t len, int64_t *ret)
{
	int64_t ip = 0, fp = 0;
	size_t i, nint = 0, nfrac = 0;
	bool point = false, digits = false;

	for (i = 0; i < len; i++) {
		char c = s[i];
		if (c == '.') {
			if (point)
				return -EINVAL;
			point = true;
			continue;
		}
		if (c < '0' || c > '9')
			return -EINVAL;
		if (!point) {
			digits = true;
			if (ip == 0 && c == '0')
				continue; /* leading zeros are not significant */
			if (++nint > INT_DIGITS_MAX)
				return -ERANGE;
			ip = ip * 10 + (c - '0');
		} else {
			nfrac++;
			if (nfrac <= KL_DEC_DIGITS)
				fp = fp * 10 + (c - '0');
			else if (c != '0')
				return -ERANGE;
		}
	}
	if (!digits && nfrac == 0)
		return -EINVAL; /* "", "." */
	for (; nfrac < KL_DEC_DIGITS; nfrac++)
		fp *= 10;
	if (ip > (INT64_MAX - fp) / KL_DEC_SCALE)
		return -ERANGE;
	*ret = ip * KL_DEC_SCALE + fp;
	return 0;
}

size_t kl_dec_format(kl_i128 v, char *buf, size_t n)
{
	char tmp[64];
	size_t len = 0, i = 0, frac_end;
	bool neg = v < 0;
	kl_u128 u;

	if (n < 48) {
		if (n)
			buf[0] = '\0';
		return 0;
	}
	u = neg ? (kl_u128)(-(v + 1)) + 1 : (kl_u128)v;
	/* Digits in reverse: at least 9 so there is always an integer digit. */
	do {
		tmp[len++] = (char)('0' + (int)(u % 10));
		u /= 10;
	} while (u || len <= KL_DEC_DIGITS);
	if (neg)
		buf[i++] = '-';
	while (len > KL_DEC_DIGITS)
		buf[i++] = tmp[--len];
	buf[i++] = '.';
	frac_end = i;
	while (len > 0) {
		buf[i] = tmp[--len];
		if (buf[i] != '0')
			frac_end = i + 1;
		i++;
	}
	i = frac_end;
	if (buf[i - 1] == '.')
		i--;
	buf[i] = '\0';
	return i;
}
