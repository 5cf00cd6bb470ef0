/*
 * lib/dec: decimal strings <-> 1e-8 integers. Exactness is the contract
 * (a day must print equal to Binance's own 1d kline), so these tests pin
 * every accepted spelling, every refusal and its errno, and a round trip
 * over many values checked against an independent printf-based oracle.
 */
#include "dec.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static int parse(const char *s, kl_i128 *ret)
{
	return kl_dec_parse(s, strlen(s), ret);
}

static void assert_parses(const char *s, kl_i128 want)
{
	kl_i128 v = -42;
	char got[64], exp[64];

	if (parse(s, &v) != 0)
		fail_msg("\"%s\" refused", s);
	kl_dec_format(v, got, sizeof(got));
	kl_dec_format(want, exp, sizeof(exp));
	if (v != want)
		fail_msg("\"%s\" gave %s, want %s", s, got, exp);
}

static void assert_refused(const char *s, int err)
{
	kl_i128 v = -42;
	int r = parse(s, &v);

	if (r != err)
		fail_msg("\"%s\" returned %d, want %d", s, r, err);
	assert_int_equal(v, -42); /* *ret untouched on error */
}

static void parse_binance_strings(void **state)
{
	(void)state;
	assert_parses("16537.50", 1653750000000LL);
	assert_parses("16537.50000000", 1653750000000LL);
	assert_parses("170.576", 17057600000LL);
	assert_parses("2820697.45580", 282069745580000LL);
	assert_parses("0", 0);
	assert_parses("0.00000000", 0);
	assert_parses("1", KL_DEC_SCALE);
	assert_parses("1.", KL_DEC_SCALE);
	assert_parses(".5", 50000000);
	assert_parses("000123.4500", 12345000000LL);
	assert_parses("0.00000001", 1);
	assert_parses("12.34567891", 1234567891);
	assert_parses("00000000000000000000007", 700000000); /* leading zeros never count */
}

static void parse_precision(void **state)
{
	(void)state;
	/* Exactly 8 decimals, then zeros beyond the 8th are harmless... */
	assert_parses("1.00000001", 100000001);
	assert_parses("1.000000010", 100000001);
	assert_parses("1.00000001000000000000", 100000001);
	assert_parses("0.000000000", 0);
	/* ...but a non-zero digit finer than 1e-8 cannot be kept exactly. */
	assert_refused("0.000000001", -EDOM);
	assert_refused("1.000000015", -EDOM);
	assert_refused("1.0000000000005", -EDOM);
}

static void parse_range(void **state)
{
	(void)state;
	/* The int64 limit of schema 2 is an ordinary value now (issue 12). */
	assert_parses("92233720368.54775807", INT64_MAX);
	assert_parses("92233720368.54775808", (kl_i128)INT64_MAX + 1);
	assert_parses("92233720369", (kl_i128)92233720369LL * KL_DEC_SCALE);
	assert_parses("1000000000000000", (kl_i128)1000000000000000LL * KL_DEC_SCALE);
	/* 19 and 20 integer digits: the wide path, and its edge. */
	assert_parses("9999999999999999999.99999999",
		      (kl_i128)9999999999999999999ULL * KL_DEC_SCALE + 99999999);
	assert_parses("10000000000000000000", (kl_i128)10000000000000000000ULL * KL_DEC_SCALE);
	assert_parses("99999999999999999999.99999999", KL_DEC_MAX);
	assert_parses("0000099999999999999999999.999999990000", KL_DEC_MAX);
	assert_parses("12345678901234567890.12345678",
		      (kl_i128)1234567890123456789ULL * 1000000000 + 12345678);
	/* Past 20 integer digits: refused, never wrapped. */
	assert_refused("100000000000000000000", -ERANGE);
	assert_refused("100000000000000000000.00000000", -ERANGE);
	assert_refused("340282366920938463463374607431768211456", -ERANGE);
	assert_refused("1000000000000000000000000", -ERANGE);
}

static void parse_junk(void **state)
{
	static const char *const junk[] = {
	    "",	  ".",	 "-1",	 "+1",	"-0", "1e5", "1E5", "1.2.3", " 1",
	    "1 ", "abc", "0x10", "1,5", "..", "1..", "NaN", "inf",   "\t1",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		assert_refused(junk[i], -EINVAL);
}

static void parse_respects_len(void **state)
{
	const char *s = "16537.50,16538.00";
	kl_i128 v = 0;

	(void)state;
	assert_int_equal(kl_dec_parse(s, 8, &v), 0);
	assert_int_equal(v, 1653750000000LL);
	assert_int_equal(kl_dec_parse(s, 5, &v), 0);
	assert_int_equal(v, 1653700000000LL);
	assert_int_equal(kl_dec_parse(s, 0, &v), -EINVAL);
	assert_int_equal(kl_dec_parse(s, 9, &v), -EINVAL); /* includes the ',' */
	/* An embedded NUL inside len is junk, not an end. */
	assert_int_equal(kl_dec_parse("1\0002", 3, &v), -EINVAL);
}

static void assert_formats(kl_i128 v, const char *want)
{
	char buf[64];
	size_t n;

	memset(buf, 'x', sizeof(buf));
	n = kl_dec_format(v, buf, sizeof(buf));
	assert_string_equal(buf, want);
	assert_int_equal(n, strlen(want));
}

static void format_values(void **state)
{
	(void)state;
	assert_formats(0, "0");
	assert_formats(1, "0.00000001");
	assert_formats(10, "0.0000001");
	assert_formats(50000000, "0.5");
	assert_formats(KL_DEC_SCALE, "1");
	assert_formats(100 * KL_DEC_SCALE, "100");
	assert_formats(1653750000000LL, "16537.5");
	assert_formats(1653750000001LL, "16537.50000001");
	assert_formats(12345000000LL, "123.45");
	assert_formats(INT64_MAX, "92233720368.54775807");
	assert_formats(-1, "-0.00000001");
	assert_formats(-KL_DEC_SCALE, "-1");
	assert_formats(-1653750000000LL, "-16537.5");
	assert_formats(INT64_MIN, "-92233720368.54775808");
}

static void format_i128(void **state)
{
	kl_i128 max = (kl_i128)(((kl_u128)1 << 127) - 1);

	(void)state;
	/* A day's quote volume summed in 1e-8 goes past int64. */
	assert_formats((kl_i128)INT64_MAX + 1, "92233720368.54775808");
	assert_formats((kl_i128)1 << 64, "184467440737.09551616");
	assert_formats((kl_i128)INT64_MAX * 1440, "132816557330708.7716208");
	assert_formats((kl_i128)INT64_MAX * 1440 + 1, "132816557330708.77162081");
	assert_formats((kl_i128)1000000000000000000LL * 100000000 * 10000,
		       "10000000000000000000000");
	assert_formats(max, "1701411834604692317316873037158.84105727");
	assert_formats(-max - 1, "-1701411834604692317316873037158.84105728");
}

static void format_small_buffer(void **state)
{
	char buf[48];

	(void)state;
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(kl_dec_format(KL_DEC_SCALE, buf, 47), 0);
	assert_string_equal(buf, "");
	assert_int_equal(kl_dec_format(KL_DEC_SCALE, buf, 0), 0);
	assert_int_equal(buf[0], '\0');
	/* 48 is enough for the widest value. */
	assert_int_equal(kl_dec_format(-(kl_i128)(((kl_u128)1 << 127) - 1) - 1, buf, 48), 41);
}

/* Independent oracle: printf at 8 decimals, then trim zeros and point. */
static void oracle(int64_t v, char *buf, size_t n)
{
	size_t len;

	snprintf(buf, n, "%lld.%08lld", (long long)(v / KL_DEC_SCALE),
		 (long long)(v % KL_DEC_SCALE));
	len = strlen(buf);
	while (buf[len - 1] == '0')
		buf[--len] = '\0';
	if (buf[len - 1] == '.')
		buf[--len] = '\0';
}

static uint64_t lcg(uint64_t *x)
{
	*x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
	return *x;
}

static void round_trip(void **state)
{
	uint64_t seed = 20230101;

	(void)state;
	for (int i = 0; i < 200000; i++) {
		uint64_t r = lcg(&seed);
		/* Spread over magnitudes: shift away 0..62 high bits. */
		int64_t v = (int64_t)((r >> 1) >> (lcg(&seed) >> 58));
		char buf[64], want[64];
		kl_i128 back = -1;
		size_t n;

		if (i % 7 == 0)
			v -= v % KL_DEC_SCALE; /* integers */
		else if (i % 7 == 1)
			v -= v % 1000000; /* two decimals, like prices */
		n = kl_dec_format(v, buf, sizeof(buf));
		oracle(v, want, sizeof(want));
		if (strcmp(buf, want) != 0)
			fail_msg("%" PRId64 ": \"%s\", want \"%s\"", v, buf, want);
		assert_int_equal(n, strlen(buf));
		assert_int_equal(kl_dec_parse(buf, n, &back), 0);
		if (back != v)
			fail_msg("\"%s\" parsed back wrong, want %" PRId64, buf, v);
		/* A negative value prints as the positive one with a '-'. */
		if (v > 0) {
			char neg[64];
			kl_dec_format(-(kl_i128)v, neg, sizeof(neg));
			assert_int_equal(neg[0], '-');
			assert_string_equal(neg + 1, buf);
		}
	}
}

/* Binance pads to 8 decimals; both spellings must parse to the same value. */
static void round_trip_padded(void **state)
{
	uint64_t seed = 7;

	(void)state;
	for (int i = 0; i < 20000; i++) {
		int64_t v = (int64_t)(lcg(&seed) >> 1);
		kl_i128 back = -1;
		char buf[64];

		snprintf(buf, sizeof(buf), "%lld.%08lld000", (long long)(v / KL_DEC_SCALE),
			 (long long)(v % KL_DEC_SCALE));
		assert_int_equal(parse(buf, &back), 0);
		assert_true(back == v);
	}
}

#include "test-dec-wide.c"

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parse_binance_strings),
	    cmocka_unit_test(parse_precision),
	    cmocka_unit_test(parse_range),
	    cmocka_unit_test(parse_junk),
	    cmocka_unit_test(parse_respects_len),
	    cmocka_unit_test(format_values),
	    cmocka_unit_test(format_i128),
	    cmocka_unit_test(format_small_buffer),
	    cmocka_unit_test(round_trip),
	    cmocka_unit_test(round_trip_padded),
	    cmocka_unit_test(wide_round_trip),
	    cmocka_unit_test(wide_fuzz),
	    cmocka_unit_test(format8_values),
	    cmocka_unit_test(format8_chunks),
	    cmocka_unit_test(nearest_double),
	    cmocka_unit_test(nearest_double_random),
	    cmocka_unit_test(day_of_largest),
	    cmocka_unit_test(list_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
