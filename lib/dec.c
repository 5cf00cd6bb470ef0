/*
 * Decimal string <-> scaled integer. Hand-written because strtod would
 * round, and exactness is the point: a day must print equal to Binance's
 * own 1d kline at 8 decimals.
 */
#include "dec.h"

#include <errno.h>

/* The integer part past 19 digits, where 64 bits end: rare, so kept apart. */
static int parse_wide_int(const char *s, size_t len, size_t *i, kl_u128 *ret)
{
	kl_u128 v = 0;
	size_t nint = 0;

	for (; *i < len && s[*i] != '.'; (*i)++) {
		unsigned c = (unsigned)(s[*i] - '0');
		if (c > 9)
			return -EINVAL;
		if (nint == 0 && c == 0)
			continue;
		if (++nint > KL_DEC_INT_DIGITS)
			return -ERANGE;
		v = v * 10 + c;
	}
	*ret = v;
	return 0;
}

int kl_dec_parse(const char *s, size_t len, kl_i128 *ret)
{
	/* Every field of every kline comes through here: the integer part
	 * accumulates in 64 bits unless it is longer than 19 digits. */
	uint64_t ip = 0, fp = 0;
	kl_u128 wide = 0;
	size_t i, nint = 0, nfrac = 0;
	bool digits = false, is_wide = false;
	int r;

	for (i = 0; i < len && s[i] != '.'; i++) {
		unsigned c = (unsigned)(s[i] - '0');
		if (c > 9)
			return -EINVAL;
		digits = true;
		if (nint == 0 && c == 0)
			continue; /* leading zeros are not significant */
		if (++nint > 19) {
			i = 0;
			r = parse_wide_int(s, len, &i, &wide);
			if (r < 0)
				return r;
			is_wide = true;
			break;
		}
		ip = ip * 10 + c;
	}
	if (i < len) {
		for (i++; i < len; i++) {
			unsigned c = (unsigned)(s[i] - '0');
			if (c > 9)
				return -EINVAL; /* also a second '.' */
			if (++nfrac <= KL_DEC_DIGITS)
				fp = fp * 10 + c;
			else if (c != 0)
				return -EDOM;
		}
	}
	if (!digits && nfrac == 0)
		return -EINVAL; /* "", "." */
	for (; nfrac < KL_DEC_DIGITS; nfrac++)
		fp *= 10;
	if (is_wide) {
		*ret = (kl_i128)(wide * KL_DEC_SCALE + fp);
	} else if (ip < 184467440737ULL) {
		uint64_t u = ip * KL_DEC_SCALE + fp; /* below 2^64: the common case */
		*ret = (kl_i128)u;
	} else {
		*ret = (kl_i128)((kl_u128)ip * KL_DEC_SCALE + fp);
	}
	return 0;
}

/* Digits of |v| in reverse into tmp, at least 9 so there is an integer digit.
 * A 128-bit division is a libgcc call of ~50 ns: the digits come from 64-bit
 * chunks of 19 (at most two such divisions, for values past 1e11), which
 * the compiler divides by 10 with a multiply. A stream commit formats six
 * values for each of hundreds of day rows. */
static size_t digits_rev(kl_i128 v, char tmp[static 64])
{
	const uint64_t chunk = 10000000000000000000ULL; /* 1e19 */
	kl_u128 u = v < 0 ? (kl_u128)(-(v + 1)) + 1 : (kl_u128)v;
	uint64_t part[3], x;
	size_t len = 0, np = 0;

	while (u >= chunk) {
		part[np++] = (uint64_t)(u % chunk);
		u /= chunk;
	}
	for (size_t i = 0; i < np; i++) /* low chunks: all 19 digits, zeros too */
		for (int d = 0; d < 19; d++) {
			tmp[len++] = (char)('0' + (int)(part[i] % 10));
			part[i] /= 10;
		}
	x = (uint64_t)u;
	do {
		tmp[len++] = (char)('0' + (int)(x % 10));
		x /= 10;
	} while (x || len <= KL_DEC_DIGITS);
	return len;
}

size_t kl_dec_format(kl_i128 v, char *buf, size_t n)
{
	size_t i = kl_dec_format8(v, buf, n);

	if (!i)
		return 0;
	/* The shortest form: trailing zeros, then a bare point, dropped. */
	while (i && buf[i - 1] == '0')
		i--;
	if (i && buf[i - 1] == '.')
		i--;
	buf[i] = '\0';
	return i;
}

size_t kl_dec_format8(kl_i128 v, char *buf, size_t n)
{
	char tmp[64];
	size_t len, i = 0;

	if (n < 48) {
		if (n)
			buf[0] = '\0';
		return 0;
	}
	len = digits_rev(v, tmp);
	if (v < 0)
		buf[i++] = '-';
	while (len > KL_DEC_DIGITS)
		buf[i++] = tmp[--len];
	buf[i++] = '.';
	while (len > 0)
		buf[i++] = tmp[--len];
	buf[i] = '\0';
	return i;
}

static int bit_length(kl_u128 u)
{
	int n = 0;

	while (u) {
		u >>= 1;
		n++;
	}
	return n;
}

/*
 * Round u / (1e8 * 2^-e) to an integer t of 53 bits, ties to even, in
 * exact integer arithmetic, then scale by 2^e (exact). A double division
 * of a value past 2^53 would round twice.
 */
double kl_dec_double(kl_i128 v)
{
	kl_u128 u = v < 0 ? (kl_u128)(-(v + 1)) + 1 : (kl_u128)v, num, den, t, rem;
	int k, e;
	double d;

	if (u <= (kl_u128)KL_DEC_SQL_EXACT) {
		d = (double)(uint64_t)u / (double)KL_DEC_SCALE;
		return v < 0 ? -d : d;
	}
	/* u / 1e8 lies in [2^k, 2^(k+1)) for k = floor(log2(u / 1e8)). */
	k = bit_length(u / KL_DEC_SCALE) - 1;
	e = k - 52;
	if (e <= 0) {
		num = u << -e; /* < 2^53 * 1e8 * 2: fits */
		den = KL_DEC_SCALE;
	} else {
		num = u;
		den = (kl_u128)KL_DEC_SCALE << e;
	}
	t = num / den;
	rem = num % den;
	if (rem * 2 > den || (rem * 2 == den && (t & 1)))
		t++;
	/* |e| < 64 for any u below 2^127 / 1e8: a power of two is exact. */
	if (e <= 0)
		d = (double)(uint64_t)t / (double)((uint64_t)1 << -e);
	else
		d = (double)(uint64_t)t * (double)((uint64_t)1 << e);
	return v < 0 ? -d : d;
}

size_t kl_dec_format_list(const kl_i128 *v, size_t nv, char *buf, size_t n)
{
	size_t len = 0;

	if (n < 48 * nv || nv == 0) {
		if (n)
			buf[0] = '\0';
		return 0;
	}
	for (size_t i = 0; i < nv; i++) {
		if (i)
			buf[len++] = ' ';
		len += kl_dec_format(v[i], buf + len, n - len);
	}
	return len;
}

int kl_dec_parse_list(const char *s, size_t len, kl_i128 *v, size_t nv)
{
	size_t start = 0, k = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != ' ')
			continue;
		if (k == nv)
			return -EINVAL;
		int r = kl_dec_parse(s + start, i - start, &v[k++]);
		if (r < 0)
			return r;
		start = i + 1;
	}
	return k == nv ? 0 : -EINVAL;
}
