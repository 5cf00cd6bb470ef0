/*
 * lib/httpq: the HTTP API's inputs. Every accepted query names a
 * configured symbol and a bounded day count; everything else is refused
 * with a message, never passed on.
 */
#include "httpq.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static char *const syms[] = {"BTCUSDT", "ETHUSDT"};

static int parse(const char *q, struct kl_httpq_daily *ret)
{
	char err[128] = "";
	int r = kl_httpq_daily(q, syms, 2, ret, err, sizeof(err));

	if (r < 0)
		assert_true(err[0] != '\0');
	return r;
}

static void daily_ok(void **state)
{
	struct kl_httpq_daily q;

	(void)state;
	assert_int_equal(parse("symbol=ETHUSDT&days=30", &q), 0);
	assert_int_equal(q.symbol, 1);
	assert_int_equal(q.days, 30);
	assert_int_equal(parse("days=1&symbol=BTCUSDT", &q), 0);
	assert_int_equal(q.symbol, 0);
	assert_int_equal(q.days, 1);
	assert_int_equal(parse("symbol=btcusdt", &q), 0); /* case is ignored */
	assert_int_equal(q.days, KL_HTTPQ_DAYS_DEFAULT);
	assert_int_equal(parse("symbol=BTCUSDT&days=3660", &q), 0);
	assert_int_equal(q.days, KL_HTTPQ_DAYS_MAX);
}

static void daily_refused(void **state)
{
	static const char *const bad[] = {
	    NULL,
	    "",
	    "days=30",
	    "symbol=",
	    "symbol=XRPUSDT",
	    "symbol=BTCUSDT&symbol=ETHUSDT",
	    "symbol=BTCUSD",
	    "symbol=BTCUSDTT",
	    "symbol=BTCUSDT'--",
	    "symbol=BTC%55SDT",
	    "symbol=BTCUSDT&days=0",
	    "symbol=BTCUSDT&days=3661",
	    "symbol=BTCUSDT&days=-1",
	    "symbol=BTCUSDT&days=+5",
	    "symbol=BTCUSDT&days=05",
	    "symbol=BTCUSDT&days=1e3",
	    "symbol=BTCUSDT&days=99999999999999999999",
	    "symbol=BTCUSDT&days=",
	    "symbol=BTCUSDT&days=7&days=7",
	    "symbol=BTCUSDT&",
	    "symbol=BTCUSDT&&days=7",
	    "symbol=BTCUSDT&limit=5",
	    "symbol",
	    "=BTCUSDT",
	};
	struct kl_httpq_daily q = {.symbol = 99, .days = 99};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i], &q) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i] ? bad[i] : "(null)");
	}
	assert_int_equal(q.symbol, 99); /* untouched on failure */
	assert_int_equal(q.days, 99);
}

static void daily_long(void **state)
{
	char q[KL_HTTPQ_QUERY_MAX + 32];
	struct kl_httpq_daily r;

	(void)state;
	memset(q, 'a', sizeof(q) - 1);
	q[sizeof(q) - 1] = '\0';
	memcpy(q, "symbol=BTCUSDT&x=", 17);
	assert_int_equal(parse(q, &r), -EINVAL);
}

static void symbol_lookup(void **state)
{
	(void)state;
	assert_int_equal(kl_httpq_symbol("ETHUSDT", 7, syms, 2), 1);
	assert_int_equal(kl_httpq_symbol("ethusdtXX", 7, syms, 2), 1); /* only len bytes */
	assert_int_equal(kl_httpq_symbol("ETHUSD", 6, syms, 2), -ENOENT);
	assert_int_equal(kl_httpq_symbol("", 0, syms, 2), -ENOENT);
	assert_int_equal(kl_httpq_symbol("BTCUSDT", 7, syms, 0), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(daily_ok),
	    cmocka_unit_test(daily_refused),
	    cmocka_unit_test(daily_long),
	    cmocka_unit_test(symbol_lookup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
