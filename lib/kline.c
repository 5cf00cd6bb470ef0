/*
 * Kline parsing and validation. Real data must never be refused: Binance
 * history has klines whose open time is off the minute (2017-2018
 * maintenance), bars with a shortened close time before a halt, and
 * zero-volume minutes, so those are accepted as they come.
 */
#include "kline.h"

#include "dec.h"

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
	}
	return "unknown";
}

static int json_dec(const json_t *row, size_t i, int64_t *ret)
{
	const json_t *v = json_array_get(row, i);

	if (!json_is_string(v))
		return -1;
	return kl_dec_parse(json_string_value(v), json_string_length(v), ret);
}

static int json_time(const json_t *row, size_t i, int64_t *ret)
{
	const json_t *v = json_array_get(row, i);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*ret = json_integer_value(v);
	return 0;
}

/* A volume written with a minus sign deserves its own reason. */
static enum kl_verdict negative_or_decimal(const char *s)
{
	return s && s[0] == '-' ? KL_KLINE_NEGATIVE : KL_KLINE_DECIMAL;
}

enum kl_verdict kl_kline_from_json(const json_t *row, struct kl_kline *k)
{
	int64_t *const dec[] = {&k->open,   &k->high,	      &k->low,	      &k->close,
				&k->volume, &k->quote_volume, &k->taker_base, &k->taker_quote};
	static const size_t dec_col[] = {1, 2, 3, 4, 5, 7, 9, 10};
	const json_t *t;

	if (!json_is_array(row) || json_array_size(row) < 11)
		return KL_KLINE_SHAPE;
	if (json_time(row, 0, &k->open_time) < 0 || json_time(row, 6, &k->close_time) < 0)
		return KL_KLINE_TIME;
	for (size_t i = 0; i < sizeof(dec_col) / sizeof(dec_col[0]); i++) {
		if (json_dec(row, dec_col[i], dec[i]) < 0)
			return negative_or_decimal(
			    json_string_value(json_array_get(row, dec_col[i])));
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
	int64_t *const dec[] = {&k->open,   &k->high,	      &k->low,	      &k->close,
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
		if (kl_dec_parse(f[dec_col[i]], fl[dec_col[i]], dec[i]) < 0)
			return fl[dec_col[i]] && f[dec_col[i]][0] == '-' ? KL_KLINE_NEGATIVE
									 : KL_KLINE_DECIMAL;
	}
	if (csv_int(f[8], fl[8], &k->trades) < 0)
		return KL_KLINE_TRADES;
	return KL_KLINE_OK;
}

enum kl_verdict kl_kline_check(const struct kl_kline *k, int64_t from, int64_t to)
{
	if (k->open_time < from || k->open_time >= to)
		return KL_KLINE_RANGE;
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
