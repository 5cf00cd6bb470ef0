/* lib/exchange: the clock, the listing probe and error bodies, including what a bad node sends. */
#include "exchange.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static int server_time(const char *body, int64_t *ms)
{
	return kl_exchange_time(body, strlen(body), ms);
}

static int first_kline(const char *body, int64_t *ms)
{
	return kl_exchange_first_kline(body, strlen(body), ms);
}

static void the_clock_is_read(void **state)
{
	int64_t ms = -1;

	(void)state;
	assert_int_equal(server_time("{\"serverTime\":1680220800123}", &ms), 0);
	assert_int_equal(ms, 1680220800123LL);
	assert_int_equal(server_time(" {\"other\":1, \"serverTime\": 0 } ", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(server_time("{\"serverTime\":253402300799999}", &ms), 0);
	assert_int_equal(ms, 253402300799999LL);
}

static void a_bad_clock_is_refused_untouched(void **state)
{
	static const char *const bad[] = {
	    "",
	    "{}",
	    "[]",
	    "null",
	    "{\"servertime\":1680220800123}",
	    "{\"serverTime\":\"1680220800123\"}",
	    "{\"serverTime\":1680220800123.5}",
	    "{\"serverTime\":null}",
	    "{\"serverTime\":true}",
	    "{\"serverTime\":-1}",
	    "{\"serverTime\":253402300800000}",
	    "{\"serverTime\":9223372036854775807}",
	    "{\"serverTime\":99999999999999999999999}",
	    "{\"serverTime\":16802208",
	    "{\"serverTime\":1680220800123",
	    "<html><body>502 Bad Gateway</body></html>",
	};
	int64_t ms = 42;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(server_time(bad[i], &ms), -EINVAL);
		assert_int_equal(ms, 42);
	}
}

static void only_len_bytes_are_read(void **state)
{
	const char *body = "{\"serverTime\":1680220800123}garbage";
	int64_t ms = 0;

	(void)state;
	assert_int_equal(kl_exchange_time(body, 28, &ms), 0);
	assert_int_equal(ms, 1680220800123LL);
	assert_int_equal(kl_exchange_time(body, 20, &ms), -EINVAL);
	assert_int_equal(kl_exchange_time(body, strlen(body), &ms), -EINVAL);
}

static void the_first_kline_is_read(void **state)
{
	int64_t ms = -1;

	(void)state;
	assert_int_equal(
	    first_kline("[[1502942400000,\"4261.48\",\"4261.48\",\"4261.48\",\"4261.48\","
			"\"1.775\",1502942459999,\"7564.9\",3,\"0.075\",\"320.0\",\"0\"]]",
			&ms),
	    0);
	assert_int_equal(ms, 1502942400000LL);
	assert_int_equal(first_kline("[[0]]", &ms), 0);
	assert_int_equal(ms, 0);
}

static void never_traded_is_enoent(void **state)
{
	int64_t ms = 42;

	(void)state;
	assert_int_equal(first_kline("[]", &ms), -ENOENT);
	assert_int_equal(first_kline(" [ ] ", &ms), -ENOENT);
	assert_int_equal(ms, 42);
}

static void a_bad_probe_answer_is_refused_untouched(void **state)
{
	static const char *const bad[] = {
	    "",
	    "{}",
	    "{\"code\":-1121,\"msg\":\"Invalid symbol.\"}",
	    "[1502942400000]",
	    "[[]]",
	    "[{}]",
	    "[[\"1502942400000\"]]",
	    "[[1502942400000.0]]",
	    "[[-60000]]",
	    "[[null]]",
	    "[[99999999999999999999]]",
	    "[[253402300800000]]",
	    "[[1502942400000,\"4261.48\"",
	    "[[15029",
	    "[",
	};
	int64_t ms = 42;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(first_kline(bad[i], &ms), -EINVAL);
		assert_int_equal(ms, 42);
	}
}

static void binance_error_bodies_are_named(void **state)
{
	const char *b = "{\"code\":-1121,\"msg\":\"Invalid symbol.\"}";
	char msg[64];

	(void)state;
	assert_int_equal(kl_exchange_error(400, b, strlen(b), msg, sizeof(msg)), -1121);
	assert_string_equal(msg, "Invalid symbol. (code -1121)");
	b = "{\"code\":-1003}";
	assert_int_equal(kl_exchange_error(429, b, strlen(b), msg, sizeof(msg)), -1003);
	assert_string_equal(msg, "? (code -1003)");
	assert_int_equal(kl_exchange_error(400, b, strlen(b), NULL, 0), -1003);
	/* Cut to the room given, still NUL-terminated. */
	b = "{\"code\":-1121,\"msg\":\"Invalid symbol.\"}";
	assert_int_equal(kl_exchange_error(400, b, strlen(b), msg, 8), -1121);
	assert_string_equal(msg, "Invalid");
}

static void other_bodies_are_their_status(void **state)
{
	static const char *const other[] = {
	    "",
	    "<html><head><title>403 Forbidden</title></head></html>",
	    "{\"code\":\"-1121\",\"msg\":\"Invalid symbol.\"}",
	    "{\"msg\":\"Invalid symbol.\"}",
	    "{\"code\":-1121,\"msg\":\"Invalid",
	    "{\"code\":-99999999999999}",
	    "{\"code\":99999999999999999999999}",
	    "[-1121]",
	};
	char msg[64], big[KL_EXCHANGE_ERROR_MAX + 64];
	int k;

	(void)state;
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		assert_int_equal(
		    kl_exchange_error(403, other[i], strlen(other[i]), msg, sizeof(msg)), 0);
		assert_string_equal(msg, "HTTP 403");
	}
	assert_int_equal(kl_exchange_error(502, NULL, 0, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "HTTP 502");
	/* Binance's body, padded past the bound: not parsed at all. */
	k = snprintf(big, sizeof(big), "{\"code\":-1003,\"msg\":\"%*s\"}", KL_EXCHANGE_ERROR_MAX,
		     "x");
	assert_true(k > KL_EXCHANGE_ERROR_MAX);
	assert_int_equal(kl_exchange_error(429, big, (size_t)k, msg, sizeof(msg)), 0);
	assert_int_equal(kl_exchange_error(429, big, 37, msg, sizeof(msg)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(the_clock_is_read),
	    cmocka_unit_test(a_bad_clock_is_refused_untouched),
	    cmocka_unit_test(only_len_bytes_are_read),
	    cmocka_unit_test(the_first_kline_is_read),
	    cmocka_unit_test(never_traded_is_enoent),
	    cmocka_unit_test(a_bad_probe_answer_is_refused_untouched),
	    cmocka_unit_test(binance_error_bodies_are_named),
	    cmocka_unit_test(other_bodies_are_their_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
