/*
 * lib/dec beyond 64 bits (issue 12): included by test-dec.c. High-supply
 * coins print values of up to 20 integer digits; these tests pin the
 * limits, the nearest-double conversion against glibc's correctly rounded
 * strtod, and fuzz the parser with huge inputs against a string oracle.
 */
#include "day.h"

#include <stdlib.h>

static kl_i128 rand_wide(uint64_t *seed)
{
	kl_u128 r = ((kl_u128)lcg(seed) << 64) | lcg(seed);

	/* Spread over magnitudes, then keep within the accepted range. */
	r >>= lcg(seed) >> 57;
	return (kl_i128)(r % ((kl_u128)KL_DEC_MAX + 1));
}

static void wide_round_trip(void **state)
{
	uint64_t seed = 12;

	(void)state;
	for (int i = 0; i < 100000; i++) {
		kl_i128 v = rand_wide(&seed), back = -1;
		char buf[64];
		size_t n = kl_dec_format(v, buf, sizeof(buf));

		assert_int_equal(kl_dec_parse(buf, n, &back), 0);
		assert_true(back == v);
		n = kl_dec_format8(v, buf, sizeof(buf));
		back = -1;
		assert_int_equal(kl_dec_parse(buf, n, &back), 0);
		assert_true(back == v);
	}
}

/* Independent oracle on strings: valid iff digits with at most one point,
 * some digit, at most 20 significant integer digits and nothing but zeros
 * past the 8th decimal; then the canonical "I.FFFFFFFF" form. */
static bool oracle_canon(const char *s, size_t len, char *out)
{
	size_t pt = len, i, a = 0, nd = 0;
	char frac[9] = "00000000";

	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (pt != len)
				return false;
			pt = i;
		} else if (s[i] < '0' || s[i] > '9') {
			return false;
		} else {
			nd++;
		}
	}
	if (nd == 0)
		return false;
	while (a < pt && s[a] == '0')
		a++;
	if (pt - a > KL_DEC_INT_DIGITS)
		return false;
	for (i = pt + 1; i < len; i++) {
		if (i - pt - 1 < 8)
			frac[i - pt - 1] = s[i];
		else if (s[i] != '0')
			return false;
	}
	if (pt == a)
		sprintf(out, "0.%s", frac);
	else
		sprintf(out, "%.*s.%s", (int)(pt - a), s + a, frac);
	return true;
}

static void wide_fuzz(void **state)
{
	static const char alpha[] = "0123456789000000009.-+e x";
	static char s[20000];
	uint64_t seed = 99;

	(void)state;
	for (int i = 0; i < 300000; i++) {
		/* Mostly short, sometimes huge (thousands of digits). */
		size_t len = i % 100 == 0 ? lcg(&seed) % sizeof(s) : lcg(&seed) % 40;
		int junk = (int)(lcg(&seed) % 4);
		char want[64], got[64];
		kl_i128 v = -42;
		bool ok;
		int r;

		for (size_t j = 0; j < len; j++) {
			uint64_t x = lcg(&seed) >> 33;
			s[j] = junk ? alpha[x % (sizeof(alpha) - 1)] : alpha[x % 19];
		}
		ok = oracle_canon(s, len, want);
		r = kl_dec_parse(s, len, &v);
		if (ok != (r == 0))
			fail_msg("\"%.*s\": parser %d, oracle %s", (int)(len < 80 ? len : 80), s, r,
				 ok ? want : "refuses");
		if (!ok) {
			assert_true(v == -42);
			assert_true(r == -EINVAL || r == -ERANGE || r == -EDOM);
			continue;
		}
		kl_dec_format8(v, got, sizeof(got));
		assert_string_equal(got, want);
	}
}

static void format8_values(void **state)
{
	char buf[64];

	(void)state;
	kl_dec_format8(0, buf, sizeof(buf));
	assert_string_equal(buf, "0.00000000");
	kl_dec_format8(1, buf, sizeof(buf));
	assert_string_equal(buf, "0.00000001");
	kl_dec_format8((kl_i128)14198087800000LL * KL_DEC_SCALE, buf, sizeof(buf));
	assert_string_equal(buf, "14198087800000.00000000");
	kl_dec_format8(KL_DEC_MAX, buf, sizeof(buf));
	assert_string_equal(buf, "99999999999999999999.99999999");
	assert_int_equal(kl_dec_format8(1, buf, 47), 0);
}

/* Digits come in 64-bit chunks of 19 (lib/dec.c): each side of a chunk's
 * edge, and zeros inside the low chunk, against printf of the two halves. */
static void format8_chunks(void **state)
{
	const uint64_t e19 = 10000000000000000000ULL;
	const uint64_t hi[] = {1, 2, 9, 10, 1844674407, 9999999999};
	const uint64_t lo[] = {0, 1, 99999999, 100000000, 1000000000000000000ULL, e19 - 1};
	uint64_t seed = 19;

	(void)state;
	for (size_t i = 0; i < sizeof(hi) / sizeof(*hi) + 200; i++)
		for (size_t j = 0; j < sizeof(lo) / sizeof(*lo); j++) {
			uint64_t h =
			    i < sizeof(hi) / sizeof(*hi) ? hi[i] : lcg(&seed) % 9999999999ULL + 1;
			uint64_t l = i < sizeof(hi) / sizeof(*hi) ? lo[j] : lcg(&seed) % e19;
			kl_i128 v = (kl_i128)((kl_u128)h * e19 + l);
			char digits[48], want[64], got[64];
			size_t n = (size_t)snprintf(digits, sizeof(digits), "%llu%019llu",
						    (unsigned long long)h, (unsigned long long)l);

			snprintf(want, sizeof(want), "%.*s.%s", (int)(n - 8), digits,
				 digits + n - 8);
			assert_int_equal(kl_dec_format8(v, got, sizeof(got)), strlen(want));
			assert_string_equal(got, want);
			kl_dec_format8(-v, got, sizeof(got));
			assert_int_equal(got[0], '-');
			assert_string_equal(got + 1, want);
		}
	/* The last value below the first chunk's edge. */
	char got[64];
	kl_dec_format8((kl_i128)(e19 - 1), got, sizeof(got));
	assert_string_equal(got, "99999999999.99999999");
}

static void assert_nearest(kl_i128 v)
{
	char buf[64];
	double want, got = kl_dec_double(v);

	kl_dec_format8(v, buf, sizeof(buf));
	want = strtod(buf, NULL); /* glibc rounds correctly, ties to even */
	if (got != want)
		fail_msg("%s: %.17g, want %.17g", buf, got, want);
}

static void nearest_double(void **state)
{
	const kl_i128 two53 = (kl_i128)1 << 53, e8 = KL_DEC_SCALE;

	(void)state;
	assert_true(kl_dec_double(0) == 0.0);
	assert_true(kl_dec_double(1) == 1e-8);
	assert_true(kl_dec_double(1653750000000LL) == 16537.5);
	assert_true(kl_dec_double(-1653750000000LL) == -16537.5);
	/* Ties go to even: 2^53 + 1 lies halfway between 2^53 and 2^53 + 2. */
	assert_true(kl_dec_double((two53 + 1) * e8) == 9007199254740992.0);
	assert_true(kl_dec_double((two53 + 3) * e8) == 9007199254740996.0);
	/* Just past a tie rounds up, just below rounds down. */
	assert_true(kl_dec_double((two53 + 1) * e8 + 1) == 9007199254740994.0);
	assert_true(kl_dec_double((two53 + 1) * e8 - 1) == 9007199254740992.0);
	for (kl_i128 d = -3; d <= 3; d++) {
		assert_nearest(two53 + d);
		assert_nearest(two53 * e8 + d);
		assert_nearest((kl_i128)INT64_MAX + d);
		assert_nearest(KL_DEC_MAX + d);
		assert_nearest(KL_DEC_MAX * 1440 + d);
	}
	assert_nearest((kl_i128)14198087800000LL * e8);
	assert_nearest((kl_i128)1000000000000000LL * e8 + 12345678);
}

static void nearest_double_random(void **state)
{
	uint64_t seed = 5;

	(void)state;
	for (int i = 0; i < 300000; i++) {
		kl_i128 v = rand_wide(&seed);
		if (i % 5 == 0)
			v -= v % KL_DEC_SCALE; /* integers: many exact ties past 2^53 */
		assert_nearest(v);
		assert_nearest(v * 1440);
	}
}

/* A day of 1440 minutes of the largest value: exact, and no overflow. */
static void day_of_largest(void **state)
{
	struct kl_day d;
	char buf[64];

	(void)state;
	kl_day_init(&d, 0);
	for (int64_t m = 0; m < KL_DAY_SLOTS; m++) {
		struct kl_kline k = {.open_time = m * KL_MINUTE_MS,
				     .close_time = m * KL_MINUTE_MS + 59999,
				     .open = KL_DEC_MAX,
				     .high = KL_DEC_MAX,
				     .low = KL_DEC_MAX,
				     .close = KL_DEC_MAX,
				     .volume = KL_DEC_MAX,
				     .quote_volume = KL_DEC_MAX,
				     .trades = INT64_MAX / 1440};
		assert_int_equal(kl_day_add(&d, &k), 0);
	}
	assert_true(kl_day_complete(&d));
	kl_dec_format8(d.volume, buf, sizeof(buf));
	assert_string_equal(buf, "143999999999999999999999.99998560");
	kl_dec_format8(d.quote_volume, buf, sizeof(buf));
	assert_string_equal(buf, "143999999999999999999999.99998560");
	assert_true(d.high == KL_DEC_MAX && d.close == KL_DEC_MAX);
	assert_nearest(d.volume);
	/* The case: 1440 minutes of 5e10 are 7.2e13, not garbage. */
	kl_day_init(&d, 0);
	for (int64_t m = 0; m < KL_DAY_SLOTS; m++) {
		struct kl_kline k = {.open_time = m * KL_MINUTE_MS,
				     .close_time = m * KL_MINUTE_MS + 59999,
				     .open = 1,
				     .high = 1,
				     .low = 1,
				     .close = 1,
				     .volume = (kl_i128)50000000000LL * KL_DEC_SCALE};
		kl_day_add(&d, &k);
	}
	kl_dec_format8(d.volume, buf, sizeof(buf));
	assert_string_equal(buf, "72000000000000.00000000");
	assert_true(kl_dec_double(d.volume) == 72000000000000.0);
}

static void list_round_trip(void **state)
{
	const kl_i128 v[8] = {1, KL_DEC_MAX, 0, 1653750000000LL, (kl_i128)1 << 100, 7, 8, 9};
	kl_i128 back[8];
	char buf[48 * 8];
	size_t n = kl_dec_format_list(v, 8, buf, sizeof(buf));

	(void)state;
	assert_string_equal(buf,
			    "0.00000001 99999999999999999999.99999999 0 16537.5 "
			    "12676506002282294014967.03205376 0.00000007 0.00000008 0.00000009");
	assert_int_equal(kl_dec_parse_list(buf, n, back, 8), -ERANGE); /* 2^100 is too large */
	n = kl_dec_format_list(v, 4, buf, sizeof(buf));
	assert_int_equal(kl_dec_parse_list(buf, n, back, 4), 0);
	assert_memory_equal(back, v, 4 * sizeof(v[0]));
	assert_int_equal(kl_dec_parse_list(buf, n, back, 3), -EINVAL);
	assert_int_equal(kl_dec_parse_list(buf, n, back, 5), -EINVAL);
	assert_int_equal(kl_dec_parse_list("1  2", 4, back, 2), -EINVAL);
	assert_int_equal(kl_dec_format_list(v, 8, buf, 100), 0);
}
