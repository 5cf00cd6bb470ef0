/* Query strings and websocket subscriptions through lib/httpq's validation. */
#include "fuzz.h"
#include "httpq.h"
#include "interval.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *const syms[] = {"BTCUSDT", "ETHUSDT", "S0001USDT"};
	char *q = malloc(size + 1), err[128];
	struct kl_httpq_daily d;
	struct kl_httpq_klines k;
	int64_t from, to;

	if (!q)
		return 0;
	memcpy(q, data, size);
	q[size] = '\0';
	if (kl_httpq_daily(q, syms, 3, &d, err, sizeof(err)) == 0 &&
	    (d.symbol >= 3 || d.days < 1 || d.days > KL_HTTPQ_DAYS_MAX))
		abort(); /* validation let something out of range through */
	if (kl_httpq_klines(q, syms, 3, &k, err, sizeof(err)) == 0) {
		if (k.symbol >= 3 || !kl_interval_name(k.period) || k.limit < 1 ||
		    k.limit > KL_KLINES_LIMIT_MAX)
			abort();
		/* The range read is bounded whatever was asked. */
		kl_httpq_klines_range(&k, (int64_t)size * KL_MINUTE_MS, &from, &to);
		if (to - from > kl_httpq_klines_span(k.period))
			abort();
	}
	kl_httpq_symbol(q, size, syms, 3);
	free(q);
	return 0;
}
