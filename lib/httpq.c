/*
 * Query-string validation for the HTTP API. The parser never decodes
 * %-escapes: every accepted value is plain ASCII (a symbol from the
 * configured set, a decimal number), so an escaped byte can only be
 * refused, and nothing ambiguous reaches the daemon.
 */
#include "httpq.h"

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
