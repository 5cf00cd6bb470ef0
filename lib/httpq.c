/*
 * Query-string validation for the HTTP API. The parser never decodes
 * %-escapes: every accepted value is plain ASCII (a symbol from the
 * configured set, a decimal number), so an escaped byte can only be
 * refused, and nothing ambiguous reaches the daemon.
 */
#include "httpq.h"

#include "interval.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;

	if (n) {
		va_start(ap, fmt);
		vsnprintf(err, n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static char upper(char c)
{
	return (char)toupper((unsigned char)c);
}

int kl_httpq_symbol(const char *name, size_t len, char *const *symbols, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;

		if (strlen(symbols[i]) != len)
			continue;
		while (k < len && upper(name[k]) == symbols[i][k])
			k++;
		if (k == len)
			return (int)i;
	}
	return -ENOENT;
}

/* A decimal in [1, max] with no sign, no leading zero and no other byte. */
static bool parse_days(const char *v, size_t len, int64_t max, int64_t *ret)
{
	int64_t x = 0;

	if (len == 0 || len > 9 || v[0] == '0')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		x = x * 10 + (v[i] - '0');
	}
	if (x > max)
		return false;
	*ret = x;
	return true;
}

int kl_httpq_daily(const char *query, char *const *symbols, size_t n, struct kl_httpq_daily *ret,
		   char *err, size_t errlen)
{
	const char *p = query ? query : "";
	bool have_symbol = false, have_days = false, have_exact = false;
	struct kl_httpq_daily q = {0, KL_HTTPQ_DAYS_DEFAULT, false};
	size_t total = strlen(p);

	if (total > KL_HTTPQ_QUERY_MAX)
		return fail(err, errlen, "query string longer than %d bytes", KL_HTTPQ_QUERY_MAX);
	while (*p) {
		const char *amp = strchr(p, '&'), *eq;
		size_t len = amp ? (size_t)(amp - p) : strlen(p), klen, vlen;

		eq = memchr(p, '=', len);
		if (!eq)
			return fail(err, errlen, "parameter without a value");
		klen = (size_t)(eq - p);
		vlen = len - klen - 1;
		if (klen == 6 && !memcmp(p, "symbol", 6)) {
			int i = kl_httpq_symbol(eq + 1, vlen, symbols, n);
			if (have_symbol)
				return fail(err, errlen, "symbol given twice");
			if (i < 0)
				return fail(err, errlen,
					    "symbol is not one of the configured symbols");
			q.symbol = (size_t)i;
			have_symbol = true;
		} else if (klen == 4 && !memcmp(p, "days", 4)) {
			if (have_days)
				return fail(err, errlen, "days given twice");
			if (!parse_days(eq + 1, vlen, KL_HTTPQ_DAYS_MAX, &q.days))
				return fail(err, errlen, "days must be a whole number from 1 to %d",
					    KL_HTTPQ_DAYS_MAX);
			have_days = true;
		} else if (klen == 5 && !memcmp(p, "exact", 5)) {
			if (have_exact)
				return fail(err, errlen, "exact given twice");
			if (vlen != 1 || (eq[1] != '0' && eq[1] != '1'))
				return fail(err, errlen, "exact must be 0 or 1");
			q.exact = eq[1] == '1';
			have_exact = true;
		} else {
			return fail(err, errlen, "unknown parameter (only symbol, days and exact)");
		}
		p += len;
		if (*p == '&') {
			p++;
			if (!*p)
				return fail(err, errlen, "empty parameter");
		}
	}
	if (!have_symbol)
		return fail(err, errlen, "symbol is required");
	*ret = q;
	return 0;
}

/* A decimal of at most 15 digits (ms up to year 33658), no sign, no junk. */
static bool parse_ms(const char *v, size_t len, int64_t *ret)
{
	int64_t x = 0;

	if (len == 0 || len > 15 || (v[0] == '0' && len > 1))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		x = x * 10 + (v[i] - '0');
	}
	*ret = x;
	return true;
}

int64_t kl_httpq_klines_span(int64_t period)
{
	return period >= KL_DAY_MS ? KL_KLINES_LIMIT_MAX * period : KL_KLINES_SPAN_MAX;
}

/* One parameter "key=value" of /api/klines into @p q; @p seen has a bit per key. */
static int klines_param(struct kl_httpq_klines *q, unsigned *seen, const char *p, size_t klen,
			const char *v, size_t vlen, char *const *symbols, size_t n, char *err,
			size_t errlen)
{
	static const char *const keys[] = {"symbol", "interval", "from", "to", "limit"};
	size_t k = 0;
	int i;

	while (k < 5 && (strlen(keys[k]) != klen || memcmp(p, keys[k], klen) != 0))
		k++;
	if (k == 5)
		return fail(err, errlen,
			    "unknown parameter (only symbol, interval, from, to and limit)");
	if (*seen & (1u << k))
		return fail(err, errlen, "%s given twice", keys[k]);
	*seen |= 1u << k;
	switch (k) {
	case 0:
		i = kl_httpq_symbol(v, vlen, symbols, n);
		if (i < 0)
			return fail(err, errlen, "symbol is not one of the configured symbols");
		q->symbol = (size_t)i;
		return 0;
	case 1:
		if (kl_interval_parse(v, vlen, &q->period) < 0)
			return fail(err, errlen,
				    "interval must be one of 1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w");
		return 0;
	case 2:
	case 3:
		if (!parse_ms(v, vlen, k == 2 ? &q->from : &q->to))
			return fail(err, errlen, "%s must be a time in ms since the epoch",
				    keys[k]);
		return 0;
	default:
		if (!parse_days(v, vlen, KL_KLINES_LIMIT_MAX, &q->limit))
			return fail(err, errlen, "limit must be a whole number from 1 to %d",
				    KL_KLINES_LIMIT_MAX);
		return 0;
	}
}

int kl_httpq_klines(const char *query, char *const *symbols, size_t n, struct kl_httpq_klines *ret,
		    char *err, size_t errlen)
{
	struct kl_httpq_klines q = {0, 0, -1, -1, 0};
	const char *p = query ? query : "";
	unsigned seen = 0;
	int r;

	if (strlen(p) > KL_HTTPQ_QUERY_MAX)
		return fail(err, errlen, "query string longer than %d bytes", KL_HTTPQ_QUERY_MAX);
	while (*p) {
		const char *amp = strchr(p, '&'), *eq;
		size_t len = amp ? (size_t)(amp - p) : strlen(p), klen;

		eq = memchr(p, '=', len);
		if (!eq)
			return fail(err, errlen, "parameter without a value");
		klen = (size_t)(eq - p);
		r = klines_param(&q, &seen, p, klen, eq + 1, len - klen - 1, symbols, n, err,
				 errlen);
		if (r < 0)
			return r;
		p += len;
		if (*p == '&' && !*++p)
			return fail(err, errlen, "empty parameter");
	}
	if (!(seen & 1u))
		return fail(err, errlen, "symbol is required");
	if (!(seen & 2u))
		return fail(err, errlen, "interval is required");
	if (q.from >= 0 && q.to >= 0 && q.from >= q.to)
		return fail(err, errlen, "from must be before to");
	if (!q.limit)
		q.limit = KL_KLINES_LIMIT_DEFAULT;
	*ret = q;
	return 0;
}

void kl_httpq_klines_range(const struct kl_httpq_klines *q, int64_t newest_end, int64_t *from,
			   int64_t *to)
{
	int64_t span = q->limit * q->period, end;

	if (q->from >= 0) {
		/* From the first interval starting at or after from, the first
		 * limit candles (the reader stops there), as Binance's startTime:
		 * an outage does not shorten the page. The span bounds the scan. */
		*from = kl_interval_floor(q->from + q->period - 1, q->period);
		*to = *from + kl_httpq_klines_span(q->period);
		if (q->to >= 0 && q->to < *to)
			*to = q->to;
		return;
	}
	end = q->to >= 0 ? q->to : kl_interval_floor(newest_end - 1, q->period) + q->period;
	/* Intervals starting before end: the last one starts at floor(end - 1). */
	*to = end;
	*from = kl_interval_floor(end - 1, q->period) + q->period - span;
}
