/*
 * lib/day: a UTC day aggregated from its minute klines, its 1440-slot
 * coverage, forward fill, and the calendar. The calendar is checked
 * against libc's gmtime_r over every day from 1970 to 2200.
 */
#include "day.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define D0 1672531200000LL /* 2023-01-01 */

/* A kline at minute @p m of day D0 whose prices are derived from @p p. */
static struct kl_kline kline(int64_t m, int64_t p)
{
	struct kl_kline k = {
	    .open_time = D0 + m * KL_MINUTE_MS,
	    .close_time = D0 + m * KL_MINUTE_MS + 59999,
	    .open = p,
	    .high = p + 300,
	    .low = p - 200,
	    .close = p + 100,
	    .volume = 1000 + m,
	    .quote_volume = p * 7,
	    .trades = 3 + m,
	};

	return k;
}

static void assert_same_day(const struct kl_day *a, const struct kl_day *b)
{
	assert_int_equal(a->start, b->start);
	assert_int_equal(a->open, b->open);
	assert_int_equal(a->high, b->high);
	assert_int_equal(a->low, b->low);
	assert_int_equal(a->close, b->close);
	assert_int_equal(a->volume, b->volume);
	assert_true(a->quote_volume == b->quote_volume);
	assert_int_equal(a->trades, b->trades);
	assert_int_equal(a->first_open_time, b->first_open_time);
	assert_int_equal(a->last_open_time, b->last_open_time);
	assert_int_equal(a->nklines, b->nklines);
	assert_memory_equal(a->slots, b->slots, sizeof(a->slots));
}

static void init(void **state)
{
	struct kl_day d;

	(void)state;
	memset(&d, 0xa5, sizeof(d));
	kl_day_init(&d, D0 + 12 * 3600000 + 5);
	assert_int_equal(d.start, D0);
	assert_int_equal(d.nklines, 0);
	assert_int_equal(d.volume, 0);
	assert_true(d.quote_volume == 0);
	assert_false(kl_day_complete(&d));
	for (size_t i = 0; i < sizeof(d.slots) / sizeof(d.slots[0]); i++)
		assert_int_equal(d.slots[i], 0);
}

static void aggregate(void **state)
{
	/* minute, base price: highest high at minute 30, lowest low at 700 */
	static const int64_t in[][2] = {{5, 1000000},	 {30, 5000000}, {700, 500000},
					{1439, 2000000}, {0, 1500000},	{900, 1200000}};
	struct kl_day d;
	int64_t trades = 0;
	kl_i128 vol = 0, qv = 0;

	(void)state;
	kl_day_init(&d, D0);
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		struct kl_kline k = kline(in[i][0], in[i][1]);

		assert_int_equal(kl_day_add(&d, &k), 0);
		vol += k.volume;
		qv += k.quote_volume;
		trades += k.trades;
	}
	assert_int_equal(d.nklines, 6);
	assert_int_equal(d.open, 1500000); /* minute 0, added fifth */
	assert_int_equal(d.first_open_time, D0);
	assert_int_equal(d.close, 2000000 + 100); /* minute 1439, added fourth */
	assert_int_equal(d.last_open_time, D0 + 1439 * KL_MINUTE_MS);
	assert_int_equal(d.high, 5000000 + 300);
	assert_int_equal(d.low, 500000 - 200);
	assert_true(d.volume == vol);
	assert_true(d.quote_volume == qv);
	assert_int_equal(d.trades, trades);
	assert_int_equal(d.slots[0], (1ULL << 0) | (1ULL << 5) | (1ULL << 30));
	assert_int_equal(d.slots[1439 / 64], 1ULL << (1439 % 64));
}

static uint64_t lcg(uint64_t *x)
{
	*x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
	return *x >> 33;
}

static void order_independent(void **state)
{
	struct kl_kline k[KL_DAY_SLOTS];
	struct kl_day fwd, rev, shuf;
	size_t idx[KL_DAY_SLOTS];
	uint64_t seed = 42;

	(void)state;
	for (int64_t m = 0; m < KL_DAY_SLOTS; m++) {
		k[m] = kline(m, 1000000 + (int64_t)(lcg(&seed) % 100000));
		idx[m] = (size_t)m;
	}
	for (size_t i = KL_DAY_SLOTS - 1; i > 0; i--) {
		size_t j = (size_t)(lcg(&seed) % (i + 1)), t = idx[i];

		idx[i] = idx[j];
		idx[j] = t;
	}
	kl_day_init(&fwd, D0);
	kl_day_init(&rev, D0);
	kl_day_init(&shuf, D0);
	for (size_t i = 0; i < KL_DAY_SLOTS; i++) {
		assert_int_equal(kl_day_add(&fwd, &k[i]), 0);
		assert_int_equal(kl_day_add(&rev, &k[KL_DAY_SLOTS - 1 - i]), 0);
		assert_int_equal(kl_day_add(&shuf, &k[idx[i]]), 0);
	}
	assert_int_equal(fwd.open, k[0].open);
	assert_int_equal(fwd.close, k[KL_DAY_SLOTS - 1].close);
	assert_int_equal(fwd.nklines, KL_DAY_SLOTS);
	assert_true(kl_day_complete(&fwd));
	assert_same_day(&fwd, &rev);
	assert_same_day(&fwd, &shuf);
}

/* Off-minute open times order by the time itself, not the slot. */
static void off_minute(void **state)
{
	struct kl_kline a = kline(10, 1000000), b = kline(10, 2000000);
	struct kl_day d;

	(void)state;
	b.open_time += 30000;
	kl_day_init(&d, D0);
	assert_int_equal(kl_day_add(&d, &b), 0);
	assert_int_equal(kl_day_add(&d, &a), 0);
	assert_int_equal(d.open, a.open);
	assert_int_equal(d.close, b.close);
	assert_int_equal(d.slots[0], 1ULL << 10);
}

static void sums_beyond_int64(void **state)
{
	struct kl_day d;
	kl_i128 want = (kl_i128)(INT64_MAX / 2) * KL_DAY_SLOTS;
	char buf[64];

	(void)state;
	kl_day_init(&d, D0);
	for (int64_t m = 0; m < KL_DAY_SLOTS; m++) {
		struct kl_kline k = kline(m, 1000000);

		k.quote_volume = INT64_MAX / 2;
		assert_int_equal(kl_day_add(&d, &k), 0);
	}
	assert_true(d.quote_volume > INT64_MAX);
	assert_true(d.quote_volume == want);
	kl_dec_format(d.quote_volume, buf, sizeof(buf));
	assert_string_equal(buf, "66408278665354.3858032");
}

static void add_outside(void **state)
{
	struct kl_kline k = kline(0, 1000000);
	struct kl_day d, before;

	(void)state;
	kl_day_init(&d, D0);
	before = d;
	k.open_time = D0 - 1;
	assert_int_equal(kl_day_add(&d, &k), -EINVAL);
	k.open_time = D0 + KL_DAY_MS;
	assert_int_equal(kl_day_add(&d, &k), -EINVAL);
	k.open_time = D0 - KL_DAY_MS;
	assert_int_equal(kl_day_add(&d, &k), -EINVAL);
	assert_same_day(&d, &before);
	k.open_time = D0 + KL_DAY_MS - 1;
	assert_int_equal(kl_day_add(&d, &k), 0);
	assert_int_equal(d.slots[1439 / 64], 1ULL << (1439 % 64));
}

static void complete(void **state)
{
	/* Each single missing minute, including the first and the last
	 * (which sit at the edges of the slot words), leaves the day open. */
	static const int64_t missing[] = {0, 1, 63, 64, 127, 1407, 1408, 1438, 1439};

	(void)state;

	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
		struct kl_day d;

		kl_day_init(&d, D0);
		for (int64_t m = 0; m < KL_DAY_SLOTS; m++) {
			struct kl_kline k = kline(m, 1000000);

			if (m != missing[i])
				assert_int_equal(kl_day_add(&d, &k), 0);
		}
		if (kl_day_complete(&d))
			fail_msg("complete without minute %lld", (long long)missing[i]);
		kl_day_cover(&d, D0 + missing[i] * KL_MINUTE_MS,
			     D0 + (missing[i] + 1) * KL_MINUTE_MS);
		assert_true(kl_day_complete(&d));
		assert_int_equal(d.nklines, KL_DAY_SLOTS - 1);
	}
}

/* 2023-03-24: the spot halt, 12:40 to 14:00 without klines, confirmed. */
static void outage(void **state)
{
	const int64_t from = 12 * 60 + 40, to = 14 * 60;
	struct kl_day d;

	(void)state;
	kl_day_init(&d, D0);
	for (int64_t m = 0; m < KL_DAY_SLOTS; m++) {
		struct kl_kline k = kline(m, 1000000);

		if (m < from || m >= to)
			assert_int_equal(kl_day_add(&d, &k), 0);
	}
	assert_false(kl_day_complete(&d));
	/* An outage that ends early leaves minutes open. */
	kl_day_cover(&d, D0 + from * KL_MINUTE_MS, D0 + (to - 1) * KL_MINUTE_MS);
	assert_false(kl_day_complete(&d));
	/* One starting mid-minute still accounts for that minute. */
	kl_day_init(&d, D0);
	for (int64_t m = 0; m < KL_DAY_SLOTS; m++) {
		struct kl_kline k = kline(m, 1000000);

		if (m < from || m >= to)
			assert_int_equal(kl_day_add(&d, &k), 0);
	}
	kl_day_cover(&d, D0 + from * KL_MINUTE_MS + 41646, D0 + to * KL_MINUTE_MS);
	assert_true(kl_day_complete(&d));
	assert_int_equal(d.nklines, KL_DAY_SLOTS - (to - from));
}

static void cover_edges(void **state)
{
	struct kl_day d;

	(void)state;
	/* Ranges reaching past the day count only their part in it. */
	kl_day_init(&d, D0);
	kl_day_cover(&d, D0 - 5 * KL_DAY_MS, D0 + 5 * KL_DAY_MS);
	assert_true(kl_day_complete(&d));
	assert_int_equal(d.nklines, 0);

	kl_day_init(&d, D0);
	kl_day_cover(&d, D0 - KL_DAY_MS, D0 + KL_MINUTE_MS);
	assert_int_equal(d.slots[0], 1);
	kl_day_cover(&d, D0 + KL_DAY_MS - KL_MINUTE_MS, D0 + 2 * KL_DAY_MS);
	assert_int_equal(d.slots[1439 / 64], 1ULL << (1439 % 64));
	for (size_t i = 1; i < 1439 / 64; i++)
		assert_int_equal(d.slots[i], 0);

	/* Other days, and empty ranges, mark nothing. */
	kl_day_init(&d, D0);
	kl_day_cover(&d, D0 - KL_DAY_MS, D0);
	kl_day_cover(&d, D0 + KL_DAY_MS, D0 + 2 * KL_DAY_MS);
	kl_day_cover(&d, D0 + KL_MINUTE_MS, D0 + KL_MINUTE_MS);
	kl_day_cover(&d, D0 + 2 * KL_MINUTE_MS, D0 + KL_MINUTE_MS);
	for (size_t i = 0; i < sizeof(d.slots) / sizeof(d.slots[0]); i++)
		assert_int_equal(d.slots[i], 0);

	/* Two halves make a whole. */
	kl_day_init(&d, D0);
	kl_day_cover(&d, D0, D0 + 720 * KL_MINUTE_MS);
	assert_false(kl_day_complete(&d));
	kl_day_cover(&d, D0 + 720 * KL_MINUTE_MS, D0 + KL_DAY_MS);
	assert_true(kl_day_complete(&d));
}

static void fill(void **state)
{
	struct kl_day d;

	(void)state;
	kl_day_init(&d, D0);
	kl_day_cover(&d, D0, D0 + KL_DAY_MS);
	kl_day_fill(&d, 1653800000000LL);
	assert_int_equal(d.open, 1653800000000LL);
	assert_int_equal(d.high, 1653800000000LL);
	assert_int_equal(d.low, 1653800000000LL);
	assert_int_equal(d.close, 1653800000000LL);
	assert_int_equal(d.volume, 0);
	assert_true(d.quote_volume == 0);
	assert_int_equal(d.trades, 0);
	assert_int_equal(d.nklines, 0);
	assert_int_equal(d.start, D0);
	assert_true(kl_day_complete(&d));
}

static void floor_(void **state)
{
	(void)state;
	assert_int_equal(kl_day_floor(D0), D0);
	assert_int_equal(kl_day_floor(D0 + 1), D0);
	assert_int_equal(kl_day_floor(D0 + KL_DAY_MS - 1), D0);
	assert_int_equal(kl_day_floor(D0 + KL_DAY_MS), D0 + KL_DAY_MS);
	assert_int_equal(kl_day_floor(0), 0);
	assert_int_equal(kl_day_floor(-1), -KL_DAY_MS);
	assert_int_equal(kl_day_floor(-KL_DAY_MS), -KL_DAY_MS);
}

static void assert_day(const char *s, int64_t ms)
{
	char buf[11];
	int64_t got = -1;

	if (kl_day_parse(s, &got) != 0)
		fail_msg("\"%s\" refused", s);
	if (got != ms)
		fail_msg("\"%s\" parsed as %lld, want %lld", s, (long long)got, (long long)ms);
	kl_day_format(ms, buf);
	assert_string_equal(buf, s);
	kl_day_format(ms + KL_DAY_MS - 1, buf);
	assert_string_equal(buf, s);
}

static void calendar(void **state)
{
	(void)state;
	assert_day("1970-01-01", 0);
	assert_day("1970-01-02", KL_DAY_MS);
	assert_day("2023-01-01", D0);
	assert_day("2023-03-24", 1679616000000LL);
	assert_day("2000-02-29", 951782400000LL);
	assert_day("2024-02-29", 1709164800000LL);
	assert_day("2025-01-01", 1735689600000LL);
	assert_day("2038-01-19", 2147472000000LL);
	assert_day("2100-02-28", 4107456000000LL);
	assert_day("2100-03-01", 4107542400000LL);
	assert_day("9999-12-31", 253402214400000LL);
}

static void calendar_invalid(void **state)
{
	static const char *const bad[] = {
	    "2023-02-29", "2100-02-29",		  "1900-02-29",	 "2023-13-01",	"2023-00-10",
	    "2023-01-00", "2023-01-32",		  "2023-04-31",	 "2023-1-01",	"2023-01-1",
	    "23-01-01",	  "2023/01/01",		  "2023-01-01x", "2023-01-01 ", " 2023-01-01",
	    "",		  "abcd-ef-gh",		  "1969-12-31",	 "2023-0a-01",	"2023--1-01",
	    "-023-01-01", "2023-01-01T00:00:00Z",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t v = 12345;

		if (kl_day_parse(bad[i], &v) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_int_equal(v, 12345);
	}
}

/* Every day from 1970 to 2200 against libc, both ways. */
static void calendar_vs_libc(void **state)
{
	char prev[11] = "";

	(void)state;
	for (int64_t day = 0; day < 84000; day++) {
		int64_t ms = day * KL_DAY_MS, back = -1;
		time_t t = (time_t)(day * 86400);
		struct tm tm;
		char buf[11], want[48];

		assert_non_null(gmtime_r(&t, &tm));
		snprintf(want, sizeof(want), "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday);
		kl_day_format(ms + (day * 7919) % KL_DAY_MS, buf);
		if (strcmp(buf, want) != 0)
			fail_msg("day %lld: \"%s\", want \"%s\"", (long long)day, buf, want);
		assert_int_equal(kl_day_parse(buf, &back), 0);
		assert_int_equal(back, ms);
		assert_true(strcmp(prev, buf) < 0);
		memcpy(prev, buf, sizeof(prev));
	}
}

static void time_format(void **state)
{
	char buf[21];
	uint64_t seed = 1;

	(void)state;
	kl_time_format(0, buf);
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	kl_time_format(D0, buf);
	assert_string_equal(buf, "2023-01-01T00:00:00Z");
	kl_time_format(D0 + KL_DAY_MS - 1, buf);
	assert_string_equal(buf, "2023-01-01T23:59:59Z");
	kl_time_format(1679661646999LL, buf);
	assert_string_equal(buf, "2023-03-24T12:40:46Z");
	kl_time_format(1709251199000LL, buf);
	assert_string_equal(buf, "2024-02-29T23:59:59Z");
	kl_time_format(4107542400000LL + 45296000, buf);
	assert_string_equal(buf, "2100-03-01T12:34:56Z");
	for (int i = 0; i < 100000; i++) {
		uint64_t hi = lcg(&seed), lo = lcg(&seed);
		int64_t ms = (int64_t)((hi << 20 | lo) % 4102444800000ULL);
		time_t t = (time_t)(ms / 1000);
		struct tm tm;
		char want[32];

		assert_non_null(gmtime_r(&t, &tm));
		strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &tm);
		kl_time_format(ms, buf);
		if (strcmp(buf, want) != 0)
			fail_msg("%lld: \"%s\", want \"%s\"", (long long)ms, buf, want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(init),
	    cmocka_unit_test(aggregate),
	    cmocka_unit_test(order_independent),
	    cmocka_unit_test(off_minute),
	    cmocka_unit_test(sums_beyond_int64),
	    cmocka_unit_test(add_outside),
	    cmocka_unit_test(complete),
	    cmocka_unit_test(outage),
	    cmocka_unit_test(cover_edges),
	    cmocka_unit_test(fill),
	    cmocka_unit_test(floor_),
	    cmocka_unit_test(calendar),
	    cmocka_unit_test(calendar_invalid),
	    cmocka_unit_test(calendar_vs_libc),
	    cmocka_unit_test(time_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
