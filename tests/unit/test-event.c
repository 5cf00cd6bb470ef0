/*
 * lib/event: the one-pass scan of kline events against jansson's road.
 * Whatever the scan settles must be what jansson and kl_event_from_json
 * say (verdict and fields), over Binance's shape and many mutations of it.
 */
#include "event.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char *const seeds[] = {
    "{\"e\":\"kline\",\"E\":1678496522000,\"s\":\"BTCUSDT\",\"k\":{\"t\":1678496520000,"
    "\"T\":1678496579999,\"s\":\"BTCUSDT\",\"i\":\"1m\",\"f\":316809996,\"L\":316810058,"
    "\"o\":\"20235.60000000\",\"c\":\"20235.94000000\",\"h\":\"20236.01000000\","
    "\"l\":\"20235.60000000\",\"v\":\"1.23456000\",\"n\":63,\"x\":false,"
    "\"q\":\"24981.12345678\",\"V\":\"0.61234000\",\"Q\":\"12390.12345678\",\"B\":\"0\"}}",
    "{ \"e\" : \"kline\" , \"E\" : 1 , \"s\" : \"S0001USDT\" , \"k\" : { \"t\" : 0 , \"T\" : "
    "59999 , \"i\" : \"1m\" , \"x\" : true , \"n\" : 0 , \"o\" : \"1\" , \"h\" : \"1\" , "
    "\"l\" : \"1\" , \"c\" : \"1\" , \"v\" : \"0\" , \"q\" : \"0\" , \"V\" : \"0\" , \"Q\" : "
    "\"0\" , \"B\" : null } }\n",
    "{\"e\":\"kline\",\"E\":2,\"s\":\"AB\",\"k\":{\"t\":60000,\"T\":119999,\"i\":\"1m\","
    "\"x\":true,\"n\":9,\"o\":\"0.00000001\",\"h\":\"99999999999999999999.99999999\","
    "\"l\":\"0.00000001\",\"c\":\"2\",\"v\":\"1000000000000000\",\"q\":\"3\",\"V\":\"4\","
    "\"Q\":\"5\"}}",
};

/* jansson's road, as the consumer took it before the scan. */
static enum kl_verdict by_jansson(const char *t, size_t n, struct kl_event *ev)
{
	json_t *j = json_loadb(t, n, 0, NULL);
	enum kl_verdict r = j ? kl_event_from_json(j, ev) : KL_KLINE_EVENT;

	json_decref(j);
	return r;
}

static void same(const char *t, size_t n)
{
	struct kl_evview v;
	struct kl_event a, b;
	enum kl_verdict ra, rb;

	if (!kl_event_scan(t, n, &v))
		return;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	ra = kl_event_judge(&v, &a);
	rb = by_jansson(t, n, &b);
	if (ra != rb)
		fail_msg("scan says %d, jansson %d: %.*s", ra, rb, (int)n, t);
	if (ra == KL_KLINE_OK && memcmp(&a, &b, sizeof(a)) != 0)
		fail_msg("fields differ: %.*s", (int)n, t);
}

static void seeds_are_scanned(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		struct kl_evview v;
		struct kl_event ev;

		assert_true(kl_event_scan(seeds[i], strlen(seeds[i]), &v));
		assert_int_equal(kl_event_judge(&v, &ev), KL_KLINE_OK);
		assert_int_equal(kl_event_parse(seeds[i], strlen(seeds[i]), &ev), KL_KLINE_OK);
		same(seeds[i], strlen(seeds[i]));
	}
}

/* What only a JSON parser can settle is left to jansson, which still judges it. */
static void unsure_goes_to_jansson(void **state)
{
	static const char *const odd[] = {
	    "{\"e\":\"kl\\u0069ne\",\"E\":1,\"s\":\"AB\",\"k\":{\"t\":0,\"T\":59999,\"i\":\"1m\","
	    "\"x\":true,\"n\":0,\"o\":\"1\",\"h\":\"1\",\"l\":\"1\",\"c\":\"1\",\"v\":\"0\","
	    "\"q\":\"0\",\"V\":\"0\",\"Q\":\"0\"}}",
	    "{\"e\":\"kline\",\"E\":1.5,\"s\":\"AB\",\"k\":{}}",
	    "{\"e\":\"kline\",\"E\":1,\"E\":2,\"s\":\"AB\",\"k\":{}}",
	    "{\"e\":\"kline\",\"z\":[1],\"s\":\"AB\",\"k\":{}}",
	    "{\"e\":\"kline\"} x",
	    "{\"e\":\"kline\",\"E\":0123}",
	    "[1,2]",
	};
	struct kl_evview v;
	struct kl_event ev;

	(void)state;
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
		assert_false(kl_event_scan(odd[i], strlen(odd[i]), &v));
	/* An escaped "kline" is a kline event to jansson, so to the consumer too. */
	assert_int_equal(kl_event_parse(odd[0], strlen(odd[0]), &ev), KL_KLINE_OK);
	assert_int_equal(kl_event_parse(odd[6], strlen(odd[6]), &ev), KL_KLINE_EVENT);
}

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Byte replacements, deletions, insertions and repeated spans of the seeds. */
static void mutations_agree(void **state)
{
	static const char pool[] = "\"\\{}[],: -01.eEtfnxkTsuV9\t\n\x01\x7f\x80";
	uint64_t x = 0x2545f4914f6cdd1du;
	char buf[1024];

	(void)state;
	for (int it = 0; it < 200000; it++) {
		const char *s = seeds[rnd(&x) % 3];
		size_t n = strlen(s), at, m;

		memcpy(buf, s, n);
		for (int k = 1 + (int)(rnd(&x) % 3); k > 0; k--) {
			at = n ? rnd(&x) % n : 0;
			switch (rnd(&x) % 4) {
			case 0:
				buf[at] = pool[rnd(&x) % (sizeof(pool) - 1)];
				break;
			case 1:
				memmove(buf + at, buf + at + 1, n - at - 1);
				n--;
				break;
			case 2:
				if (n + 1 < sizeof(buf)) {
					memmove(buf + at + 1, buf + at, n - at);
					buf[at] = pool[rnd(&x) % (sizeof(pool) - 1)];
					n++;
				}
				break;
			default:
				m = 1 + rnd(&x) % 24;
				if (at + m <= n && n + m < sizeof(buf)) {
					memmove(buf + at + m, buf + at, n - at);
					n += m;
				}
				break;
			}
		}
		same(buf, n);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(seeds_are_scanned),
	    cmocka_unit_test(unsure_goes_to_jansson),
	    cmocka_unit_test(mutations_agree),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
