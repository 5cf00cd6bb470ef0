/*
 * lib/kline: one parser and one judge for klines from REST rows, CSV dump
 * lines and (through the same checks) websocket events. Every verdict is
 * reached from a real row with one field spoiled, and the oddities of
 * real history (off-minute open times, a close time cut short by a halt,
 * zero-volume minutes, microsecond dumps) must be accepted.
 */
#include "event.h"
#include "kline.h"
#include "kline_test.h"

#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* BTCUSDT 2023-01-01 00:00 from tests/data/binance, as a REST row. */
#define ROW                                                                                        \
	"[1672531200000,\"16537.50\",\"16538.00\",\"16534.30\",\"16538.00\",\"170.576\","          \
	"1672531259999,\"2820697.45580\",946,\"103.782\",\"1716164.80590\",\"0\"]"
#define CSV                                                                                        \
	"1672531200000,16537.50,16538.00,16534.30,16538.00,170.576,1672531259999,2820697.45580,"   \
	"946,103.782,1716164.80590,0"

#define T0 1672531200000LL

static void assert_row(const struct kl_kline *k)
{
	assert_int_equal(k->open_time, T0);
	assert_int_equal(k->close_time, T0 + 59999);
	assert_int_equal(k->open, 1653750000000LL);
	assert_int_equal(k->high, 1653800000000LL);
	assert_int_equal(k->low, 1653430000000LL);
	assert_int_equal(k->close, 1653800000000LL);
	assert_int_equal(k->volume, 17057600000LL);
	assert_int_equal(k->quote_volume, 282069745580000LL);
	assert_int_equal(k->trades, 946);
	assert_int_equal(k->taker_base, 10378200000LL);
	assert_int_equal(k->taker_quote, 171616480590000LL);
}

static enum kl_verdict from_json(const char *text, struct kl_kline *k)
{
	json_error_t jerr;
	json_t *row = json_loads(text, JSON_DECODE_ANY, &jerr);
	enum kl_verdict v;

	if (!row)
		fail_msg("bad test JSON %s: %s", text, jerr.text);
	v = kl_kline_from_json(row, k);
	json_decref(row);
	return v;
}

/* The REST row with field @p i replaced by the JSON text @p field. */
static enum kl_verdict json_with(size_t i, const char *field, struct kl_kline *k)
{
	json_t *row = json_loads(ROW, 0, NULL), *v = json_loads(field, JSON_DECODE_ANY, NULL);
	enum kl_verdict r;

	assert_non_null(row);
	assert_non_null(v);
	assert_int_equal(json_array_set_new(row, i, v), 0);
	r = kl_kline_from_json(row, k);
	json_decref(row);
	return r;
}

/* The CSV line with column @p i replaced by @p field. */
static enum kl_verdict csv_with(size_t i, const char *field, struct kl_kline *k)
{
	char line[512] = "";
	const char *p = CSV;

	for (size_t col = 0; col < 12; col++) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (col)
			strcat(line, ",");
		if (col == i)
			strcat(line, field);
		else
			strncat(line, p, len);
		p = e ? e + 1 : p + len;
	}
	return kl_kline_from_csv(line, strlen(line), k);
}

static struct kl_kline good(void)
{
	struct kl_kline k;

	assert_int_equal(from_json(ROW, &k), KL_KLINE_OK);
	return k;
}

static void json_row(void **state)
{
	struct kl_kline k;

	(void)state;
	memset(&k, 0, sizeof(k));
	assert_int_equal(from_json(ROW, &k), KL_KLINE_OK);
	assert_row(&k);
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_OK);
	/* 11 fields (no "ignore") is still a kline. */
	assert_int_equal(from_json("[1672531200000,\"1\",\"1\",\"1\",\"1\",\"0\",1672531259999,"
				   "\"0\",0,\"0\",\"0\"]",
				   &k),
			 KL_KLINE_OK);
}

static void json_shape(void **state)
{
	struct kl_kline k;

	(void)state;
	assert_int_equal(kl_kline_from_json(NULL, &k), KL_KLINE_SHAPE);
	assert_int_equal(from_json("{}", &k), KL_KLINE_SHAPE);
	assert_int_equal(from_json("\"16537.50\"", &k), KL_KLINE_SHAPE);
	assert_int_equal(from_json("[]", &k), KL_KLINE_SHAPE);
	assert_int_equal(from_json("[1672531200000,\"1\",\"1\",\"1\",\"1\",\"0\",1672531259999,"
				   "\"0\",0,\"0\"]",
				   &k),
			 KL_KLINE_SHAPE);
}

static void json_time(void **state)
{
	struct kl_kline k;

	(void)state;
	assert_int_equal(json_with(0, "\"1672531200000\"", &k), KL_KLINE_TIME);
	assert_int_equal(json_with(0, "-60000", &k), KL_KLINE_TIME);
	assert_int_equal(json_with(0, "1672531200000.0", &k), KL_KLINE_TIME);
	assert_int_equal(json_with(0, "null", &k), KL_KLINE_TIME);
	assert_int_equal(json_with(6, "\"1672531259999\"", &k), KL_KLINE_TIME);
	assert_int_equal(json_with(6, "-1", &k), KL_KLINE_TIME);
	assert_int_equal(json_with(6, "true", &k), KL_KLINE_TIME);
}

static void json_decimal(void **state)
{
	static const size_t cols[] = {1, 2, 3, 4, 5, 7, 9, 10};
	struct kl_kline k;

	(void)state;
	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
		assert_int_equal(json_with(cols[i], "16537.5", &k), KL_KLINE_DECIMAL);
		assert_int_equal(json_with(cols[i], "\"abc\"", &k), KL_KLINE_DECIMAL);
		assert_int_equal(json_with(cols[i], "\"1e5\"", &k), KL_KLINE_DECIMAL);
		assert_int_equal(json_with(cols[i], "\"\"", &k), KL_KLINE_DECIMAL);
		assert_int_equal(json_with(cols[i], "null", &k), KL_KLINE_DECIMAL);
		assert_int_equal(json_with(cols[i], "\"0.000000001\"", &k), KL_KLINE_FINE);
		assert_int_equal(json_with(cols[i], "\"100000000000000000000\"", &k),
				 KL_KLINE_HUGE);
		assert_int_equal(json_with(cols[i], "\"+1\"", &k), KL_KLINE_DECIMAL);
		assert_int_equal(json_with(cols[i], "\" 1\"", &k), KL_KLINE_DECIMAL);
		assert_int_equal(json_with(cols[i], "\"-1\"", &k), KL_KLINE_NEGATIVE);
	}
	/* The ignore column is ignored. */
	assert_int_equal(json_with(11, "null", &k), KL_KLINE_OK);
}

static void json_negative(void **state)
{
	struct kl_kline k;

	(void)state;
	assert_int_equal(json_with(5, "\"-170.576\"", &k), KL_KLINE_NEGATIVE);
	assert_int_equal(json_with(7, "\"-2820697.45580\"", &k), KL_KLINE_NEGATIVE);
}

static void json_trades(void **state)
{
	struct kl_kline k;

	(void)state;
	assert_int_equal(json_with(8, "\"946\"", &k), KL_KLINE_TRADES);
	assert_int_equal(json_with(8, "-1", &k), KL_KLINE_TRADES);
	assert_int_equal(json_with(8, "946.0", &k), KL_KLINE_TRADES);
	assert_int_equal(json_with(8, "null", &k), KL_KLINE_TRADES);
	assert_int_equal(json_with(8, "0", &k), KL_KLINE_OK);
	assert_int_equal(k.trades, 0);
}

static void check_range(void **state)
{
	struct kl_kline k = good();

	(void)state;
	assert_int_equal(kl_kline_check(&k, T0, T0 + KL_MINUTE_MS), KL_KLINE_OK);
	assert_int_equal(kl_kline_check(&k, T0 + KL_MINUTE_MS, INT64_MAX), KL_KLINE_RANGE);
	assert_int_equal(kl_kline_check(&k, 0, T0), KL_KLINE_RANGE); /* half-open */
	assert_int_equal(kl_kline_check(&k, T0 + 1, T0 + 2), KL_KLINE_RANGE);
}

static void check_close(void **state)
{
	struct kl_kline k = good();

	(void)state;
	k.close_time = k.open_time;
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_CLOSE);
	k.close_time = k.open_time - 1;
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_CLOSE);
	k.close_time = k.open_time + KL_MINUTE_MS;
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_CLOSE);
	k.close_time = k.open_time + 2 * KL_MINUTE_MS - 1;
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_CLOSE);
	/* The last bar before a halt closes early and is real. */
	k.close_time = k.open_time + 41646;
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_OK);
	k.close_time = k.open_time + 1;
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_OK);
}

static void check_prices(void **state)
{
	struct kl_kline k;

	(void)state;
	k = good();
	k.high = k.open - 1; /* below open */
	k.low = k.high - 1;
	k.close = k.low;
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_HIGH);
	k = good();
	k.high = k.close - 1; /* below close, open and low fine */
	k.open = k.low;
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_HIGH);
	k = good();
	k.open = k.close = k.high; /* high below low only */
	k.low = k.high + 1;
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_HIGH);
	k = good();
	k.low = k.open + 1; /* above open */
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_LOW);
	k = good();
	k.open = k.high;
	k.close = 1653500000000LL;
	k.low = k.close + 1; /* above close only */
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_LOW);
	k = good();
	k.open = k.high = k.low = k.close; /* a flat bar is fine */
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_OK);
}

static void check_zero_price(void **state)
{
	struct kl_kline k;

	(void)state;
	assert_int_equal(json_with(1, "\"0.00\"", &k), KL_KLINE_OK);
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_PRICE);
	assert_int_equal(json_with(4, "\"0\"", &k), KL_KLINE_OK);
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_PRICE);
	k = good();
	k.open = k.high = k.low = k.close = 0;
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_PRICE);
}

static void zero_volume(void **state)
{
	struct kl_kline k;

	(void)state;
	/* A minute with no trade: prices repeat the last close, sums are 0. */
	assert_int_equal(from_json("[1672531200000,\"16538.00\",\"16538.00\",\"16538.00\","
				   "\"16538.00\",\"0.00000000\",1672531259999,\"0.00000000\",0,"
				   "\"0.00000000\",\"0.00000000\",\"0\"]",
				   &k),
			 KL_KLINE_OK);
	assert_int_equal(k.volume, 0);
	assert_int_equal(k.quote_volume, 0);
	assert_int_equal(k.trades, 0);
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_OK);
}

static void off_minute(void **state)
{
	struct kl_kline k;

	(void)state;
	/* 2018-02-08 maintenance: open times off the minute are real data. */
	assert_int_equal(from_json("[1518078449123,\"8100.00\",\"8200.00\",\"8050.00\","
				   "\"8150.00\",\"12.5\",1518078479999,\"101000.5\",40,\"6\","
				   "\"48000\",\"0\"]",
				   &k),
			 KL_KLINE_OK);
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_OK);
	assert_int_equal(kl_kline_slot(k.open_time), 1518078420000LL);
	assert_int_equal(kl_kline_slot(T0), T0);
	assert_int_equal(kl_kline_slot(T0 + 59999), T0);
	assert_int_equal(kl_kline_slot(T0 + 60000), T0 + KL_MINUTE_MS);
	assert_int_equal(kl_kline_slot(0), 0);
}

static void csv_line(void **state)
{
	struct kl_kline k, j;
	char buf[512];

	(void)state;
	memset(&k, 0, sizeof(k));
	assert_int_equal(kl_kline_from_csv(CSV, strlen(CSV), &k), KL_KLINE_OK);
	assert_row(&k);
	/* The CSV and the REST row of one minute are the same kline. */
	j = good();
	assert_kline_equal(&k, &j);
	snprintf(buf, sizeof(buf), "%s\r\n", CSV);
	assert_int_equal(kl_kline_from_csv(buf, strlen(buf), &k), KL_KLINE_OK);
	assert_row(&k);
	snprintf(buf, sizeof(buf), "%s\n", CSV);
	assert_int_equal(kl_kline_from_csv(buf, strlen(buf), &k), KL_KLINE_OK);
	/* Only len bytes count: the next line of a buffer is not read. */
	snprintf(buf, sizeof(buf), "%s\n%s", CSV, "garbage,garbage");
	assert_int_equal(kl_kline_from_csv(buf, strlen(CSV), &k), KL_KLINE_OK);
	assert_row(&k);
	assert_int_equal(kl_kline_from_csv(buf, strlen(CSV) + 1, &k), KL_KLINE_OK);
	/* Without the "ignore" column the line ends in a decimal: the line
	 * end must not stick to it. */
	snprintf(buf, sizeof(buf), "%.*s\r\n", (int)(strrchr(CSV, ',') - CSV), CSV);
	memset(&k, 0, sizeof(k));
	assert_int_equal(kl_kline_from_csv(buf, strlen(buf), &k), KL_KLINE_OK);
	assert_row(&k);
}

/* A BTTC-sized minute: 20 integer digits and 8 decimals, all exact (issue 12). */
static void huge_values(void **state)
{
	static const char line[] =
	    "1672531200000,0.00000001,0.00000002,0.00000001,0.00000002,"
	    "99999999999999999999.99999999,1672531259999,1234567890123.12345678,7,"
	    "50000000000000000000.00000001,617283945061.56172839,0";
	const kl_i128 big = (kl_i128)9999999999999999999ULL * 1000000000 + 999999999;
	struct kl_kline k;
	json_t *row;

	(void)state;
	assert_int_equal(kl_kline_from_csv(line, strlen(line), &k), KL_KLINE_OK);
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_OK);
	assert_true(k.volume == big && k.volume == KL_DEC_MAX);
	assert_true(k.taker_base == (kl_i128)5000000000000000000ULL * 1000000000 + 1);
	assert_true(k.quote_volume == (kl_i128)1234567890123LL * KL_DEC_SCALE + 12345678);
	assert_true(k.open == 1 && k.high == 2);
	row = json_loads("[1672531200000,\"0.00000001\",\"0.00000002\",\"0.00000001\","
			 "\"0.00000002\",\"99999999999999999999.99999999\",1672531259999,"
			 "\"1234567890123.12345678\",7,\"50000000000000000000.00000001\","
			 "\"617283945061.56172839\",\"0\"]",
			 0, NULL);
	assert_non_null(row);
	memset(&k, 0, sizeof(k));
	assert_int_equal(kl_kline_from_json(row, &k), KL_KLINE_OK);
	assert_true(k.volume == KL_DEC_MAX);
	json_decref(row);
}

static void csv_header_and_shape(void **state)
{
	static const char header[] =
	    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
	    "taker_buy_volume,taker_buy_quote_volume,ignore";
	struct kl_kline k;
	enum kl_verdict v;
	char buf[512];

	(void)state;
	v = kl_kline_from_csv(header, strlen(header), &k);
	assert_true(v == KL_KLINE_SHAPE || v == KL_KLINE_TIME);
	assert_int_equal(kl_kline_from_csv("", 0, &k), KL_KLINE_SHAPE);
	assert_int_equal(kl_kline_from_csv("\n", 1, &k), KL_KLINE_SHAPE);
	assert_int_equal(kl_kline_from_csv("1,2,3", 5, &k), KL_KLINE_SHAPE);
	snprintf(buf, sizeof(buf), "%s,0", CSV); /* 13 columns */
	assert_int_equal(kl_kline_from_csv(buf, strlen(buf), &k), KL_KLINE_SHAPE);
	snprintf(buf, sizeof(buf), "%s,0,0,0,0", CSV);
	assert_int_equal(kl_kline_from_csv(buf, strlen(buf), &k), KL_KLINE_SHAPE);
	/* 10 columns */
	snprintf(buf, sizeof(buf), "%.*s", (int)(strrchr(CSV, ',') - CSV), CSV);
	*strrchr(buf, ',') = '\0';
	assert_int_equal(kl_kline_from_csv(buf, strlen(buf), &k), KL_KLINE_SHAPE);
}

static void csv_fields(void **state)
{
	static const size_t cols[] = {1, 2, 3, 4, 5, 7, 9, 10};
	struct kl_kline k;

	(void)state;
	assert_int_equal(csv_with(0, "", &k), KL_KLINE_TIME);
	assert_int_equal(csv_with(0, "-1672531200000", &k), KL_KLINE_TIME);
	assert_int_equal(csv_with(0, "1672531200000.0", &k), KL_KLINE_TIME);
	assert_int_equal(csv_with(0, " 1672531200000", &k), KL_KLINE_TIME);
	assert_int_equal(csv_with(0, "1234567890123456789", &k), KL_KLINE_TIME);
	assert_int_equal(csv_with(6, "x", &k), KL_KLINE_TIME);
	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
		assert_int_equal(csv_with(cols[i], "", &k), KL_KLINE_DECIMAL);
		assert_int_equal(csv_with(cols[i], "1e5", &k), KL_KLINE_DECIMAL);
		assert_int_equal(csv_with(cols[i], "\"1.5\"", &k), KL_KLINE_DECIMAL);
		assert_int_equal(csv_with(cols[i], "-1.5", &k), KL_KLINE_NEGATIVE);
	}
	assert_int_equal(csv_with(8, "", &k), KL_KLINE_TRADES);
	assert_int_equal(csv_with(8, "-1", &k), KL_KLINE_TRADES);
	assert_int_equal(csv_with(8, "946.0", &k), KL_KLINE_TRADES);
	assert_int_equal(csv_with(8, "0", &k), KL_KLINE_OK);
	assert_int_equal(csv_with(11, "anything", &k), KL_KLINE_OK);
	/* Binance dumps may drop the point altogether. */
	assert_int_equal(csv_with(1, "16537", &k), KL_KLINE_OK);
	assert_int_equal(k.open, 1653700000000LL);
}

static void csv_microseconds(void **state)
{
	static const char line[] = "1735689600000000,93576.00,93610.93,93537.50,93610.93,8.21827,"
				   "1735689659999999,768978.49300,1963,5.42696,507832.41320,0";
	struct kl_kline k;

	(void)state;
	assert_int_equal(kl_kline_from_csv(line, strlen(line), &k), KL_KLINE_OK);
	assert_int_equal(k.open_time, 1735689600000LL);
	assert_int_equal(k.close_time, 1735689659999LL);
	assert_int_equal(k.open, 9357600000000LL);
	assert_int_equal(k.trades, 1963);
	assert_int_equal(kl_kline_check(&k, 1735689600000LL, 1735689660000LL), KL_KLINE_OK);
	/* Milliseconds of the same minute are left alone. */
	assert_int_equal(csv_with(0, "1735689600000", &k), KL_KLINE_OK);
	assert_int_equal(k.open_time, 1735689600000LL);
}

static void csv_halt_and_off_minute(void **state)
{
	struct kl_kline k;
	char t[32];

	(void)state;
	snprintf(t, sizeof(t), "%lld", T0 + 41646);
	assert_int_equal(csv_with(6, t, &k), KL_KLINE_OK);
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_OK);
	/* Off the minute after 2018: corrupt (issue 11 item 9), the minute is refetched. */
	snprintf(t, sizeof(t), "%lld", T0 + 1234);
	assert_int_equal(csv_with(0, t, &k), KL_KLINE_OK);
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_MINUTE);
	assert_int_equal(kl_kline_slot(k.open_time), T0);
	/* ...but the close must stay within a minute of the open. */
	snprintf(t, sizeof(t), "%lld", T0 + 60000);
	assert_int_equal(csv_with(6, t, &k), KL_KLINE_OK);
	assert_int_equal(kl_kline_check(&k, 0, INT64_MAX), KL_KLINE_CLOSE);
}

static void reasons(void **state)
{
	(void)state;
	assert_string_equal(kl_kline_reason(KL_KLINE_OK), "ok");
	for (int v = KL_KLINE_SHAPE; v <= KL_KLINE_MINUTE; v++) {
		const char *r = kl_kline_reason((enum kl_verdict)v);

		assert_non_null(r);
		assert_string_not_equal(r, "ok");
		assert_string_not_equal(r, "unknown");
		for (int w = KL_KLINE_SHAPE; w < v; w++)
			assert_string_not_equal(r, kl_kline_reason((enum kl_verdict)w));
	}
	assert_string_equal(kl_kline_reason((enum kl_verdict)99), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(json_row),
	    cmocka_unit_test(json_shape),
	    cmocka_unit_test(json_time),
	    cmocka_unit_test(json_decimal),
	    cmocka_unit_test(json_negative),
	    cmocka_unit_test(json_trades),
	    cmocka_unit_test(check_range),
	    cmocka_unit_test(check_close),
	    cmocka_unit_test(check_prices),
	    cmocka_unit_test(check_zero_price),
	    cmocka_unit_test(zero_volume),
	    cmocka_unit_test(off_minute),
	    cmocka_unit_test(csv_line),
	    cmocka_unit_test(huge_values),
	    cmocka_unit_test(csv_header_and_shape),
	    cmocka_unit_test(csv_fields),
	    cmocka_unit_test(csv_microseconds),
	    cmocka_unit_test(csv_halt_and_off_minute),
	    cmocka_unit_test(reasons),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
