/*
 * Kline parsing and validation. Real data must never be refused: Binance
 * history has klines whose open time is off the minute (2017-2018
 * maintenance), bars with a shortened close time before a halt, and
 * zero-volume minutes, so those are accepted as they come.
 */
#include "kline.h"

#include "dec.h"

#include <errno.h>
#include <string.h>

const char *kl_kline_reason(enum kl_verdict v)
{
	switch (v) {
	case KL_KLINE_OK:
		return "ok";
	case KL_KLINE_SHAPE:
		return "not a kline (wrong number or type of fields)";
	case KL_KLINE_TIME:
		return "open or close time is not a non-negative integer";
	case KL_KLINE_DECIMAL:
		return "price or volume is not a decimal string";
	case KL_KLINE_TRADES:
		return "number of trades is not a non-negative integer";
	case KL_KLINE_RANGE:
		return "open time outside the requested range";
	case KL_KLINE_MINUTE:
		return "open time off the minute (only 2017-2018 maintenance bars may be)";
	case KL_KLINE_CLOSE:
		return "close time not within the open minute";
	case KL_KLINE_HIGH:
		return "high below open, close or low";
	case KL_KLINE_LOW:
		return "low above open or close";
	case KL_KLINE_PRICE:
		return "price of zero";
	case KL_KLINE_NEGATIVE:
		return "negative volume";
	case KL_KLINE_EVENT:
		return "not a 1m kline event of a valid symbol";
	case KL_KLINE_FUTURE:
		return "event time ahead of the exchange's clock";
	case KL_KLINE_HUGE:
		return "price or volume beyond 20 integer digits";
	case KL_KLINE_FINE:
		return "price or volume finer than 8 decimals";
	}
	return "unknown";
}

/* Why a decimal string was refused: a minus sign, a size, or the spelling. */
enum kl_verdict kl_kline_dec_verdict(const char *s, size_t len, kl_i128 *ret)
{
	int r = kl_dec_parse(s, len, ret);

	if (r == 0)
		return KL_KLINE_OK;
	if (len && s[0] == '-')
		return KL_KLINE_NEGATIVE;
	return r == -ERANGE ? KL_KLINE_HUGE : r == -EDOM ? KL_KLINE_FINE : KL_KLINE_DECIMAL;
}

static enum kl_verdict json_dec(const json_t *row, size_t i, kl_i128 *ret)
{
	const json_t *v = json_array_get(row, i);

	if (!json_is_string(v))
		return KL_KLINE_DECIMAL;
	return kl_kline_dec_verdict(json_string_value(v), json_string_length(v), ret);
}

static int json_time(const json_t *row, size_t i, int64_t *ret)
{
	const json_t *v = json_array_get(row, i);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*ret = json_integer_value(v);
	return 0;
}

enum kl_verdict kl_kline_from_json(const json_t *row, struct kl_kline *k)
{
	kl_i128 *const dec[] = {&k->open,   &k->high,	      &k->low,	      &k->close,
				&k->volume, &k->quote_volume, &k->taker_base, &k->taker_quote};
	static const size_t dec_col[] = {1, 2, 3, 4, 5, 7, 9, 10};
	const json_t *t;

	if (!json_is_array(row) || json_array_size(row) < 11)
		return KL_KLINE_SHAPE;
	if (json_time(row, 0, &k->open_time) < 0 || json_time(row, 6, &k->close_time) < 0)
		return KL_KLINE_TIME;
	for (size_t i = 0; i < sizeof(dec_col) / sizeof(dec_col[0]); i++) {
		enum kl_verdict v = json_dec(row, dec_col[i], dec[i]);
		if (v != KL_KLINE_OK)
			return v;
	}
	t = json_array_get(row, 8);
	if (!json_is_integer(t) || json_integer_value(t) < 0)
		return KL_KLINE_TRADES;
	k->trades = json_integer_value(t);
	return KL_KLINE_OK;
}

static int csv_int(const char *s, size_t len, int64_t *ret)
{
	int64_t v = 0;

	if (len == 0 || len > 18)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return 0;
}

/* Dumps switched to microseconds on 2025-01-01; ms values stay below 1e14
 * until the year 5138, so the magnitude tells the unit. */
static int64_t csv_ms(int64_t t)
{
	return t >= 100000000000000LL ? t / 1000 : t;
}

enum kl_verdict kl_kline_from_csv(const char *line, size_t len, struct kl_kline *k)
{
	const char *f[13];
	size_t fl[13], n = 0, start = 0;
	kl_i128 *const dec[] = {&k->open,   &k->high,	      &k->low,	      &k->close,
				&k->volume, &k->quote_volume, &k->taker_base, &k->taker_quote};
	static const size_t dec_col[] = {1, 2, 3, 4, 5, 7, 9, 10};

	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || line[i] == ',') {
			if (n == 13)
				return KL_KLINE_SHAPE;
			f[n] = line + start;
			fl[n++] = i - start;
			start = i + 1;
		}
	}
	if (n < 11 || n > 12)
		return KL_KLINE_SHAPE;
	if (csv_int(f[0], fl[0], &k->open_time) < 0 || csv_int(f[6], fl[6], &k->close_time) < 0)
		return KL_KLINE_TIME;
	k->open_time = csv_ms(k->open_time);
	k->close_time = csv_ms(k->close_time);
	for (size_t i = 0; i < sizeof(dec_col) / sizeof(dec_col[0]); i++) {
		enum kl_verdict v = kl_kline_dec_verdict(f[dec_col[i]], fl[dec_col[i]], dec[i]);
		if (v != KL_KLINE_OK)
			return v;
	}
	if (csv_int(f[8], fl[8], &k->trades) < 0)
		return KL_KLINE_TRADES;
	return KL_KLINE_OK;
}

enum kl_verdict kl_kline_check(const struct kl_kline *k, int64_t from, int64_t to)
{
	if (k->open_time < from || k->open_time >= to)
		return KL_KLINE_RANGE;
	/* Binance's 2017-2018 maintenance left bars off the minute; anywhere
	 * else an off-minute bar is corrupt, and its minute is refetched. */
	if (k->open_time % KL_MINUTE_MS && k->open_time >= KL_OFFMINUTE_UNTIL)
		return KL_KLINE_MINUTE;
	if (k->close_time <= k->open_time || k->close_time - k->open_time >= KL_MINUTE_MS)
		return KL_KLINE_CLOSE;
	if (k->open <= 0 || k->high <= 0 || k->low <= 0 || k->close <= 0)
		return KL_KLINE_PRICE;
	if (k->high < k->open || k->high < k->close || k->high < k->low)
		return KL_KLINE_HIGH;
	if (k->low > k->open || k->low > k->close)
		return KL_KLINE_LOW;
	return KL_KLINE_OK;
}

/* Past the string whose opening quote is at p - 1: memchr finds its quotes,
 * an odd run of backslashes before one escapes it. */
static size_t skip_string(const char *t, size_t p, size_t n)
{
	while (p < n) {
		const char *q = memchr(t + p, '"', n - p);
		size_t e, b;

		if (!q)
			return n;
		e = (size_t)(q - t);
		for (b = e; b > p && t[b - 1] == '\\'; b--)
			;
		if ((e - b) % 2 == 0)
			return e + 1;
		p = e + 1;
	}
	return n;
}

/* Skip one JSON value starting at p; the text is known to be valid JSON.
 * Every websocket frame passes here (its "data" is most of it), so the
 * bytes between structural ones are skipped in a tight loop. */
static size_t skip_value(const char *t, size_t p, size_t n)
{
	int depth = 0;

	while (p < n) {
		char c = t[p];
		if (c == '"') {
			p = skip_string(t, p + 1, n);
			if (depth == 0)
				return p;
			continue;
		}
		if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (depth == 0)
				return p; /* end of the enclosing object */
			if (--depth == 0)
				return p + 1;
		} else if (depth == 0 &&
			   (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
			return p;
		}
		p++;
	}
	return n;
}

static size_t skip_ws(const char *t, size_t p, size_t n)
{
	while (p < n && (t[p] == ' ' || t[p] == '\t' || t[p] == '\n' || t[p] == '\r'))
		p++;
	return p;
}

int kl_json_member(const char *text, size_t n, const char *key, size_t *off, size_t *len)
{
	size_t klen = strlen(key), p = skip_ws(text, 0, n);

	if (p >= n || text[p] != '{')
		return -EINVAL;
	p++;
	while (p < n) {
		size_t kstart, kend, vstart;

		p = skip_ws(text, p, n);
		if (p >= n || text[p] == '}')
			break;
		if (text[p] != '"')
			return -EINVAL;
		kstart = p + 1;
		kend = skip_value(text, p, n) - 1;
		p = skip_ws(text, kend + 1, n);
		if (p >= n || text[p] != ':')
			return -EINVAL;
		vstart = skip_ws(text, p + 1, n);
		p = skip_value(text, vstart, n);
		if (kend - kstart == klen && memcmp(text + kstart, key, klen) == 0) {
			*off = vstart;
			*len = p - vstart;
			return 0;
		}
		p = skip_ws(text, p, n);
		if (p < n && text[p] == ',')
			p++;
	}
	return -ENOENT;
}

int kl_json_member_string(const char *text, size_t n, const char *key, char *buf, size_t buflen)
{
	size_t off, len;
	int r = kl_json_member(text, n, key, &off, &len);

	if (r < 0)
		return r;
	if (len < 2 || text[off] != '"' || text[off + len - 1] != '"' || len - 2 >= buflen ||
	    memchr(text + off + 1, '\\', len - 2))
		return -EINVAL;
	memcpy(buf, text + off + 1, len - 2);
	buf[len - 2] = '\0';
	return 0;
}

int kl_json_member_int(const char *text, size_t n, const char *key, int64_t *ret)
{
	size_t off, len;
	int64_t v = 0;
	int r = kl_json_member(text, n, key, &off, &len);

	if (r < 0)
		return r;
	if (len == 0 || len > 18)
		return -EINVAL;
	for (size_t i = off; i < off + len; i++) {
		if (text[i] < '0' || text[i] > '9')
			return -EINVAL;
		v = v * 10 + (text[i] - '0');
	}
	*ret = v;
	return 0;
}
