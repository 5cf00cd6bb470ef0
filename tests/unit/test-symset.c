/* lib/symset.c: items (names, patterns, all, exclusions) and their resolution. */
#include "symset.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static const char *item(const char *s, enum kl_sym_kind *kind, bool *ex)
{
	static char out[KL_SYMSET_ITEM_MAX + 1];
	char err[160];

	if (kl_symset_item(s, strlen(s), out, kind, ex, err, sizeof(err)))
		return NULL;
	return out;
}

static void items(void **state)
{
	enum kl_sym_kind k;
	bool ex;

	(void)state;
	assert_string_equal(item(" btcusdt ", &k, &ex), "BTCUSDT");
	assert_int_equal(k, KL_SYM_NAME);
	assert_false(ex);
	assert_string_equal(item("All", &k, &ex), "ALL");
	assert_int_equal(k, KL_SYM_ALL);
	assert_string_equal(item("*usdt", &k, &ex), "*USDT");
	assert_int_equal(k, KL_SYM_PATTERN);
	assert_string_equal(item("-*UPUSDT", &k, &ex), "-*UPUSDT");
	assert_true(ex);
	assert_int_equal(k, KL_SYM_PATTERN);
	assert_string_equal(item("-BTCUSDT", &k, &ex), "-BTCUSDT");
	assert_int_equal(k, KL_SYM_NAME);
	assert_string_equal(item("[!B]?USDT", &k, &ex), "[!B]?USDT");
	assert_int_equal(k, KL_SYM_PATTERN);
}

static void bad_items(void **state)
{
	char out[KL_SYMSET_ITEM_MAX + 1], err[160];
	enum kl_sym_kind k;
	bool ex;
	const char *bad[] = {"B",    "BTC/USDT", "--BTC",
			     "-all", "[BTC",	 "BTC]",
			     "BT!C", "",	 "ABCDEFGHIJKLMNOPQRSTU",
			     "B-TC", "*USDT;rm", "[[A]]"};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		err[0] = '\0';
		assert_int_equal(
		    kl_symset_item(bad[i], strlen(bad[i]), out, &k, &ex, err, sizeof(err)),
		    -EINVAL);
		assert_non_null(strstr(err, "'"));
	}
	/* the item is named in the message */
	kl_symset_item("BTC/USDT", 8, out, &k, &ex, err, sizeof(err));
	assert_non_null(strstr(err, "'BTC/USDT'"));
	char longer[100];
	memset(longer, '*', sizeof(longer));
	assert_int_equal(kl_symset_item(longer, sizeof(longer), out, &k, &ex, err, sizeof(err)),
			 -EINVAL);
}

static char *trading[] = {"ETHUSDT", "BTCUSDT", "BNBUPUSDT", "BNBDOWNUSDT",
			  "ETHBTC",  "SOLUSDT", "BTCUSDT"};
#define NTRADING (sizeof(trading) / sizeof(*trading))

static void expect(char **items, size_t n, const char *want)
{
	char **got = NULL, joined[512] = "";
	size_t ngot = 0;

	assert_int_equal(kl_symset_resolve(items, n, trading, NTRADING, &got, &ngot), 0);
	for (size_t i = 0; i < ngot; i++) {
		if (i)
			strcat(joined, ",");
		strcat(joined, got[i]);
	}
	assert_string_equal(joined, want);
	kl_symset_free(got, ngot);
}

static void resolve(void **state)
{
	(void)state;
	/* plain names keep their order and need not trade (the caller checks them) */
	expect((char *[]){"SOLUSDT", "BTCUSDT", "OLDUSDT"}, 3, "SOLUSDT,BTCUSDT,OLDUSDT");
	/* patterns: trading symbols, sorted, once each */
	expect((char *[]){"*USDT"}, 1, "BNBDOWNUSDT,BNBUPUSDT,BTCUSDT,ETHUSDT,SOLUSDT");
	expect((char *[]){"*USDT", "-*UPUSDT", "-*DOWNUSDT"}, 3, "BTCUSDT,ETHUSDT,SOLUSDT");
	/* exclusions apply wherever they are, to names too */
	expect((char *[]){"-*DOWNUSDT", "-BTCUSDT", "*USDT", "BTCUSDT", "-*UPUSDT"}, 5,
	       "ETHUSDT,SOLUSDT");
	expect((char *[]){"ALL", "-ETH*"}, 2, "BNBDOWNUSDT,BNBUPUSDT,BTCUSDT,SOLUSDT");
	/* a name also matched by a pattern comes once, at its place */
	expect((char *[]){"SOLUSDT", "*USDT", "-BNB*"}, 3, "SOLUSDT,BTCUSDT,ETHUSDT");
	expect((char *[]){"XYZ*"}, 1, "");
	assert_true(kl_symset_dynamic((char *[]){"BTCUSDT", "*USDT"}, 2));
	assert_true(kl_symset_dynamic((char *[]){"BTCUSDT", "-ETHUSDT"}, 2));
	assert_false(kl_symset_dynamic((char *[]){"BTCUSDT", "ETHUSDT"}, 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(items),
	    cmocka_unit_test(bad_items),
	    cmocka_unit_test(resolve),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
