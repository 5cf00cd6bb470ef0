/* Query strings and websocket subscriptions through lib/httpq's validation. */
#include "fuzz.h"
#include "httpq.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *const syms[] = {"BTCUSDT", "ETHUSDT", "S0001USDT"};
	char *q = malloc(size + 1), err[128];
	struct kl_httpq_daily d;

	if (!q)
		return 0;
	memcpy(q, data, size);
	q[size] = '\0';
	if (kl_httpq_daily(q, syms, 3, &d, err, sizeof(err)) == 0 &&
	    (d.symbol >= 3 || d.days < 1 || d.days > KL_HTTPQ_DAYS_MAX))
		abort(); /* validation let something out of range through */
	kl_httpq_symbol(q, size, syms, 3);
	free(q);
	return 0;
}
