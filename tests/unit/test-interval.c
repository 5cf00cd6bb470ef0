/*
 * lib/interval: candles of every interval from minute klines, folded as
 * the days are (a 1d candle equals kl_day's aggregate), UTC and Monday
 * boundaries; and /api/klines' query (lib/httpq), refused by parameter.
 */
#include "day.h"
#include "httpq.h"
#include "interval.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define JAN2 INT64_C(1672617600000) /* 2023-01-02T00:00Z, a Monday */

static struct kl_kline minute(int64_t t, int64_t price, int64_t volume)
{
	struct kl_kline k = {0};

	k.open_time = t;
	k.close_time = t + KL_MINUTE_MS - 1;
	k.open = price;
	k.high = price + 5;
	k.low = price - 3;
	k.close = price + 1;
	k.volume = volume;
	/* Past 2^64 units in a few minutes: the sums must be 128-bit. */
	k.quote_volume = (kl_i128)volume * INT64_C(4000000000000000000);
	k.trades = 7;
	return k;
}

static void names(void **state)
{
	static const char *const all[] = {"1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w"};
	int64_t p, prev = 0;

	(void)state;
	for (size_t i = 0; i < 8; i++) {
		assert_int_equal(kl_interval_parse(all[i], strlen(all[i]), &p), 0);
		assert_true(p > prev);
		assert_string_equal(kl_interval_name(p), all[i]);
		prev = p;
	}
	assert_int_equal(kl_interval_parse("1M", 2, &p), -EINVAL); /* months: not served */
	assert_int_equal(kl_interval_parse("2h", 2, &p), -EINVAL);
	assert_int_equal(kl_interval_parse("1h", 1, &p), -EINVAL);
	assert_int_equal(kl_interval_parse("", 0, &p), -EINVAL);
	assert_null(kl_interval_name(7));
}

static void boundaries(void **state)
{
	int64_t wed = JAN2 + 2 * KL_DAY_MS + 13 * 3600000 + 17 * 60000 + 5;

	(void)state;
	assert_int_equal(kl_interval_floor(wed, KL_WEEK_MS), JAN2);
	assert_int_equal(kl_interval_floor(JAN2, KL_WEEK_MS), JAN2);
	assert_int_equal(kl_interval_floor(JAN2 - 1, KL_WEEK_MS), JAN2 - KL_WEEK_MS);
	assert_int_equal(kl_interval_floor(wed, KL_DAY_MS), JAN2 + 2 * KL_DAY_MS);
	assert_int_equal(kl_interval_floor(wed, 4 * 3600000), JAN2 + 2 * KL_DAY_MS + 12 * 3600000);
	assert_int_equal(kl_interval_floor(wed, 15 * 60000),
			 JAN2 + 2 * KL_DAY_MS + 13 * 3600000 + 15 * 60000);
	assert_int_equal(kl_interval_floor(wed, 60000), wed - 5);
	/* Before the epoch, still floored (not truncated toward zero). */
	assert_int_equal(kl_interval_floor(-1, KL_DAY_MS), -KL_DAY_MS);
	assert_int_equal(kl_interval_floor(4 * KL_DAY_MS - 1, KL_WEEK_MS), -3 * KL_DAY_MS);
}

/* Two days of minutes with a gap (an outage) in the middle of the first. */
static void day_equals_kl_day(void **state)
{
	struct kl_candles c;
	struct kl_day d[2];

	(void)state;
	assert_int_equal(kl_candles_init(&c, KL_DAY_MS, 4), 0);
	kl_day_init(&d[0], JAN2);
	kl_day_init(&d[1], JAN2 + KL_DAY_MS);
	for (int64_t t = JAN2; t < JAN2 + 2 * KL_DAY_MS; t += KL_MINUTE_MS) {
		struct kl_kline k = minute(t, 100000 + (t / 60000 * 7919) % 5000, t / 60000 % 97);
		if (t >= JAN2 + 600 * KL_MINUTE_MS && t < JAN2 + 700 * KL_MINUTE_MS)
			continue;
		assert_int_equal(kl_candles_add(&c, &k), 0);
		assert_int_equal(kl_day_add(&d[(t - JAN2) / KL_DAY_MS], &k), 0);
	}
	assert_int_equal(c.n, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(c.v[i].open_time, d[i].start);
		assert_true(c.v[i].open == d[i].open && c.v[i].high == d[i].high);
		assert_true(c.v[i].low == d[i].low && c.v[i].close == d[i].close);
		assert_true(c.v[i].volume == d[i].volume);
		assert_true(c.v[i].quote_volume == d[i].quote_volume);
		assert_true(c.v[i].quote_volume > (kl_i128)UINT64_MAX);
		assert_int_equal(c.v[i].trades, d[i].trades);
		assert_int_equal(c.v[i].nklines, d[i].nklines);
	}
	assert_int_equal(c.v[0].nklines, 1440 - 100);
	kl_candles_clear(&c);
	kl_candles_clear(&c); /* cleared twice is fine */
}

/* An interval wholly inside an outage has no candle; the open one is marked. */
static void skipped_and_marked(void **state)
{
	struct kl_candles c;
	struct kl_kline k;

	(void)state;
	assert_int_equal(kl_candles_init(&c, 3600000, 3), 0);
	k = minute(JAN2 + 59 * 60000, 500, 1); /* the first hour's last minute */
	assert_int_equal(kl_candles_add(&c, &k), 0);
	k = minute(JAN2 + 3 * 3600000, 900, 2); /* hours 1 and 2: no kline */
	assert_int_equal(kl_candles_add(&c, &k), 0);
	k = minute(JAN2 + 3 * 3600000 + 60000, 800, 3);
	assert_int_equal(kl_candles_add(&c, &k), 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.v[1].open_time, JAN2 + 3 * 3600000);
	assert_true(c.v[1].open == 900 && c.v[1].close == 801 && c.v[1].high == 905);
	assert_true(c.v[1].low == 797 && c.v[1].volume == 5 && c.v[1].trades == 14);
	kl_candles_mark(&c, JAN2 + 3 * 3600000 + 2 * 60000);
	assert_true(c.v[0].closed);
	assert_false(c.v[1].closed);
	kl_candles_mark(&c, JAN2 + 4 * 3600000);
	assert_true(c.v[1].closed);
	/* Older than the last candle: refused; a fourth candle: no room. */
	k = minute(JAN2, 1, 1);
	assert_int_equal(kl_candles_add(&c, &k), -EINVAL);
	k = minute(JAN2 + 5 * 3600000, 1, 1);
	assert_int_equal(kl_candles_add(&c, &k), 0);
	k = minute(JAN2 + 6 * 3600000, 1, 1);
	assert_int_equal(kl_candles_add(&c, &k), -ENOSPC);
	kl_candles_clear(&c);
	assert_int_equal(kl_candles_init(&c, 7, 3), -EINVAL);
	assert_int_equal(kl_candles_init(&c, 60000, 0), -EINVAL);
}

static char *const syms[] = {"BTCUSDT", "ETHUSDT"};

static void refused(const char *q, const char *names_param)
{
	struct kl_httpq_klines r;
	char err[128] = "";

	assert_int_equal(kl_httpq_klines(q, syms, 2, &r, err, sizeof(err)), -EINVAL);
	if (!strstr(err, names_param))
		fail_msg("%s: '%s' does not name %s", q, err, names_param);
}

static void query(void **state)
{
	struct kl_httpq_klines q;
	char err[128];

	(void)state;
	assert_int_equal(kl_httpq_klines("symbol=ethusdt&interval=1h", syms, 2, &q, err, 128), 0);
	assert_int_equal(q.symbol, 1);
	assert_int_equal(q.period, 3600000);
	assert_int_equal(q.from, -1);
	assert_int_equal(q.to, -1);
	assert_int_equal(q.limit, KL_KLINES_LIMIT_DEFAULT);
	assert_int_equal(kl_httpq_klines("interval=1w&symbol=BTCUSDT&from=0&to=1672617600000", syms,
					 2, &q, err, 128),
			 0);
	assert_int_equal(q.from, 0);
	assert_int_equal(q.to, JAN2);
	assert_int_equal(q.limit, KL_KLINES_LIMIT_DEFAULT);
	assert_int_equal(kl_httpq_klines_span(60000), KL_KLINES_SPAN_MAX);
	assert_int_equal(kl_httpq_klines_span(KL_WEEK_MS), 1000 * KL_WEEK_MS);
	assert_int_equal(
	    kl_httpq_klines("symbol=BTCUSDT&interval=1m&limit=1000", syms, 2, &q, err, 128), 0);
	refused("interval=1h", "symbol");
	refused("symbol=XRPUSDT&interval=1h", "symbol");
	refused("symbol=BTCUSDT", "interval");
	refused("symbol=BTCUSDT&interval=2h", "interval");
	refused("symbol=BTCUSDT&interval=1h&interval=1h", "interval");
	refused("symbol=BTCUSDT&interval=1h&from=-5", "from");
	refused("symbol=BTCUSDT&interval=1h&from=1e9", "from");
	refused("symbol=BTCUSDT&interval=1h&to=", "to");
	refused("symbol=BTCUSDT&interval=1h&to=1234567890123456", "to");
	refused("symbol=BTCUSDT&interval=1h&from=10&to=10", "from");
	refused("symbol=BTCUSDT&interval=1h&limit=0", "limit");
	refused("symbol=BTCUSDT&interval=1h&limit=1001", "limit");
	refused("symbol=BTCUSDT&interval=1w&limit=1001", "limit");
	refused("symbol=BTCUSDT&interval=1h&days=3", "parameter");
	refused("symbol=BTCUSDT&interval=1h&", "parameter");
	refused("symbol=BTCUSDT&interval", "parameter");
}

static void range(void **state)
{
	struct kl_httpq_klines q = {0, 3600000, -1, -1, 3};
	int64_t from, to;

	(void)state;
	/* Neither given: up to the hour holding the newest minute (open). */
	kl_httpq_klines_range(&q, JAN2 + 5 * 3600000 + 60000, &from, &to);
	assert_int_equal(from, JAN2 + 3 * 3600000);
	assert_int_equal(to, JAN2 + 6 * 3600000);
	/* to only: the last three hours starting before it. */
	q.to = JAN2 + 5 * 3600000 + 1;
	kl_httpq_klines_range(&q, 0, &from, &to);
	assert_int_equal(from, JAN2 + 3 * 3600000);
	assert_int_equal(to, JAN2 + 5 * 3600000 + 1);
	/* from: from the first hour starting at or after it, the span at most
	 * (the reader keeps the first limit candles), within to. */
	q.from = JAN2 + 1;
	q.to = -1;
	kl_httpq_klines_range(&q, 0, &from, &to);
	assert_int_equal(from, JAN2 + 3600000);
	assert_int_equal(to, JAN2 + 3600000 + KL_KLINES_SPAN_MAX);
	q.to = JAN2 + 2 * 3600000;
	kl_httpq_klines_range(&q, 0, &from, &to);
	assert_int_equal(to, JAN2 + 2 * 3600000);
	/* Weeks start on Monday. */
	q = (struct kl_httpq_klines){0, KL_WEEK_MS, JAN2 - KL_DAY_MS, -1, 2};
	kl_httpq_klines_range(&q, 0, &from, &to);
	assert_int_equal(from, JAN2);
	assert_int_equal(to, JAN2 + 1000 * KL_WEEK_MS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(names),
	    cmocka_unit_test(boundaries),
	    cmocka_unit_test(day_equals_kl_day),
	    cmocka_unit_test(skipped_and_marked),
	    cmocka_unit_test(query),
	    cmocka_unit_test(range),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
