/*
 * lib/kline's websocket side: a kline event from its JSON (kl_event_from_json,
 * every field Binance sends and what is refused), and the members of a
 * combined-stream frame found without parsing it (kl_json_member*).
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

/* A live BTCUSDT kline event as the stream sends it (the minute still
 * running), and a combined-stream frame carrying it. */
#define EVENT                                                                                      \
	"{\"e\":\"kline\",\"E\":1672515782136,\"s\":\"BTCUSDT\",\"k\":{\"t\":1672515780000,"       \
	"\"T\":1672515839999,\"s\":\"BTCUSDT\",\"i\":\"1m\",\"f\":100,\"L\":200,"                  \
	"\"o\":\"16537.50\",\"c\":\"16538.00\",\"h\":\"16538.00\",\"l\":\"16534.30\","             \
	"\"v\":\"170.576\",\"n\":946,\"x\":false,\"q\":\"2820697.45580\",\"V\":\"103.782\","       \
	"\"Q\":\"1716164.80590\",\"B\":\"123456\"}}"
#define FRAME_HEAD "{\"stream\":\"btcusdt@kline_1m\",\"data\":"
#define FRAME	   FRAME_HEAD EVENT "}"

#define E0 1672515780000LL

static enum kl_verdict event_from(const char *text, struct kl_event *ev)
{
	json_error_t jerr;
	json_t *data = json_loads(text, JSON_DECODE_ANY, &jerr);
	enum kl_verdict v;

	if (!data)
		fail_msg("bad test JSON %s: %s", text, jerr.text);
	v = kl_event_from_json(data, ev);
	json_decref(data);
	return v;
}

/* The event with member @p key ("k.x" for one of the kline object) set
 * to the JSON text @p value, or removed when @p value is NULL. */
static enum kl_verdict event_with(const char *key, const char *value, struct kl_event *ev)
{
	json_t *data = json_loads(EVENT, 0, NULL), *obj = data;
	enum kl_verdict r;

	assert_non_null(data);
	if (!strncmp(key, "k.", 2)) {
		obj = json_object_get(data, "k");
		key += 2;
	}
	if (value) {
		json_t *v = json_loads(value, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);

		assert_non_null(v);
		assert_int_equal(json_object_set_new(obj, key, v), 0);
	} else {
		assert_int_equal(json_object_del(obj, key), 0);
	}
	r = kl_event_from_json(data, ev);
	json_decref(data);
	return r;
}

static void event_parse(void **state)
{
	struct kl_event ev;

	(void)state;
	memset(&ev, 0xa5, sizeof(ev));
	assert_int_equal(event_from(EVENT, &ev), KL_KLINE_OK);
	assert_string_equal(ev.symbol, "BTCUSDT");
	assert_int_equal(ev.event_time, 1672515782136LL);
	assert_false(ev.closed);
	assert_int_equal(ev.k.open_time, E0);
	assert_int_equal(ev.k.close_time, E0 + 59999);
	assert_int_equal(ev.k.open, 1653750000000LL);
	assert_int_equal(ev.k.high, 1653800000000LL);
	assert_int_equal(ev.k.low, 1653430000000LL);
	assert_int_equal(ev.k.close, 1653800000000LL);
	assert_int_equal(ev.k.volume, 17057600000LL);
	assert_int_equal(ev.k.quote_volume, 282069745580000LL);
	assert_int_equal(ev.k.taker_base, 10378200000LL);
	assert_int_equal(ev.k.taker_quote, 171616480590000LL);
	assert_int_equal(ev.k.trades, 946);
	assert_int_equal(kl_kline_check(&ev.k, 0, INT64_MAX), KL_KLINE_OK);

	assert_int_equal(event_with("k.x", "true", &ev), KL_KLINE_OK);
	assert_true(ev.closed);
	assert_int_equal(event_with("k.x", "false", &ev), KL_KLINE_OK);
	assert_false(ev.closed);
	/* Members klined does not use may be anything, or absent. */
	assert_int_equal(event_with("k.B", NULL, &ev), KL_KLINE_OK);
	assert_int_equal(event_with("k.B", "\"junk\"", &ev), KL_KLINE_OK);
	assert_int_equal(event_with("k.f", NULL, &ev), KL_KLINE_OK);
	assert_int_equal(event_with("k.L", "-1", &ev), KL_KLINE_OK);
	assert_int_equal(event_with("k.s", NULL, &ev), KL_KLINE_OK);
	assert_int_equal(event_with("k.n", "0", &ev), KL_KLINE_OK);
	assert_int_equal(ev.k.trades, 0);
	/* Symbols are 2 to 20 upper-case letters and digits. */
	assert_int_equal(event_with("s", "\"ABCDEFGHIJ0123456789\"", &ev), KL_KLINE_OK);
	assert_string_equal(ev.symbol, "ABCDEFGHIJ0123456789");
	assert_int_equal(event_with("s", "\"1INCHBTC\"", &ev), KL_KLINE_OK);
	assert_string_equal(ev.symbol, "1INCHBTC");
}

static void event_refused(void **state)
{
	static const char *const decs[] = {"k.o", "k.h", "k.l", "k.c", "k.v", "k.q", "k.V", "k.Q"};
	struct kl_event ev;
	enum kl_verdict v;

	(void)state;
	assert_int_equal(kl_event_from_json(NULL, &ev), KL_KLINE_EVENT);
	assert_int_equal(event_from("[]", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_from("{}", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_from("\"kline\"", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_from("[[1672531200000,\"16537.50\"]]", &ev), KL_KLINE_EVENT);
	/* The combined-stream frame itself is not the event. */
	assert_int_equal(event_from(FRAME, &ev), KL_KLINE_EVENT);

	assert_int_equal(event_with("e", "\"trade\"", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("e", "\"Kline\"", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("e", "null", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("e", NULL, &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("k.i", "\"5m\"", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("k.i", "\"1M\"", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("k.i", "\"1m \"", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("k.i", NULL, &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("k", NULL, &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("k", "[]", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("k", "\"{}\"", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("k.x", NULL, &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("k.x", "\"true\"", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("k.x", "1", &ev), KL_KLINE_EVENT);

	assert_int_equal(event_with("s", "\"btcusdt\"", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("s", "\"BTCusdt\"", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("s", "\"ABCDEFGHIJ0123456789K\"", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("s", "\"ABCDEFGHIJ0123456789ABCDEFGHIJ\"", &ev),
			 KL_KLINE_EVENT);
	assert_int_equal(event_with("s", "\"B\"", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("s", "\"\"", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("s", "\"BTC-USDT\"", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("s", "\"BTC USDT\"", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("s", "\"BTC\\u0000USDT\"", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("s", "42", &ev), KL_KLINE_EVENT);
	assert_int_equal(event_with("s", NULL, &ev), KL_KLINE_EVENT);

	assert_int_equal(event_with("E", "\"1672515782136\"", &ev), KL_KLINE_TIME);
	assert_int_equal(event_with("E", "1672515782136.0", &ev), KL_KLINE_TIME);
	assert_int_equal(event_with("E", "-1", &ev), KL_KLINE_TIME);
	assert_int_equal(event_with("E", "null", &ev), KL_KLINE_TIME);
	assert_int_equal(event_with("E", NULL, &ev), KL_KLINE_TIME);
	assert_int_equal(event_with("k.t", "\"1672515780000\"", &ev), KL_KLINE_TIME);
	assert_int_equal(event_with("k.t", "1672515780000.5", &ev), KL_KLINE_TIME);
	assert_int_equal(event_with("k.t", "-60000", &ev), KL_KLINE_TIME);
	assert_int_equal(event_with("k.t", NULL, &ev), KL_KLINE_TIME);
	assert_int_equal(event_with("k.T", "\"1672515839999\"", &ev), KL_KLINE_TIME);
	assert_int_equal(event_with("k.T", "1672515839999.0", &ev), KL_KLINE_TIME);
	assert_int_equal(event_with("k.T", NULL, &ev), KL_KLINE_TIME);
	/* A negative close time gets through the parser (unlike a REST row's)
	 * but never past the check every kline passes before use. */
	v = event_with("k.T", "-1", &ev);
	assert_true(v == KL_KLINE_TIME ||
		    (v == KL_KLINE_OK && kl_kline_check(&ev.k, 0, INT64_MAX) == KL_KLINE_CLOSE));

	for (size_t i = 0; i < sizeof(decs) / sizeof(decs[0]); i++) {
		assert_int_equal(event_with(decs[i], "16537.5", &ev), KL_KLINE_DECIMAL);
		assert_int_equal(event_with(decs[i], "\"abc\"", &ev), KL_KLINE_DECIMAL);
		assert_int_equal(event_with(decs[i], "\"1e5\"", &ev), KL_KLINE_DECIMAL);
		assert_int_equal(event_with(decs[i], "\"\"", &ev), KL_KLINE_DECIMAL);
		assert_int_equal(event_with(decs[i], "\"0.000000001\"", &ev), KL_KLINE_FINE);
		assert_int_equal(event_with(decs[i], "\"123456789012345678901\"", &ev),
				 KL_KLINE_HUGE);
		assert_int_equal(event_with(decs[i], "null", &ev), KL_KLINE_DECIMAL);
		assert_int_equal(event_with(decs[i], NULL, &ev), KL_KLINE_DECIMAL);
		assert_int_equal(event_with(decs[i], "\"-1\"", &ev), KL_KLINE_NEGATIVE);
	}
	assert_int_equal(event_with("k.n", "-1", &ev), KL_KLINE_TRADES);
	assert_int_equal(event_with("k.n", "\"946\"", &ev), KL_KLINE_TRADES);
	assert_int_equal(event_with("k.n", "946.0", &ev), KL_KLINE_TRADES);
	assert_int_equal(event_with("k.n", "null", &ev), KL_KLINE_TRADES);
	assert_int_equal(event_with("k.n", NULL, &ev), KL_KLINE_TRADES);
}

static void json_member(void **state)
{
	static const char frame[] = FRAME;
	static const char spaced[] =
	    " \n{ \"stream\" : \"btcusdt@kline_1m\" ,\n\t\"data\" :\r\n " EVENT " \n}\n";
	/* Keys and look-alikes the scan must step over before the real one. */
	static const char tricky[] =
	    "{\"a\":{\"data\":1,\"b\":[1,{\"data\":2},\"data\"]},\"s\":\"x\\\"data\\\":{}}\","
	    "\"t\":\"\\\\\",\"u\":[[],{},\"]\"],\"v\":\"{\",\"w\":null,\"x\":-1.5e3,"
	    "\"data\":{\"x\":\"}\"},\"y\":\"a\\\\\\\"}\\\\\",\"z\":true}";
	size_t off = 99, len = 99;
	struct kl_event ev, direct;

	(void)state;
	assert_int_equal(kl_json_member(frame, strlen(frame), "data", &off, &len), 0);
	assert_int_equal(off, strlen(FRAME_HEAD));
	assert_int_equal(len, strlen(EVENT));
	assert_memory_equal(frame + off, EVENT, len);
	assert_int_equal(kl_json_member(frame, strlen(frame), "stream", &off, &len), 0);
	assert_int_equal(off, 10);
	assert_int_equal(len, strlen("\"btcusdt@kline_1m\""));
	/* The span is the event byte for byte. */
	assert_int_equal(kl_json_member(frame, strlen(frame), "data", &off, &len), 0);
	{
		json_t *data = json_loadb(frame + off, len, 0, NULL);

		assert_non_null(data);
		assert_int_equal(kl_event_from_json(data, &ev), KL_KLINE_OK);
		json_decref(data);
		assert_int_equal(event_from(EVENT, &direct), KL_KLINE_OK);
		assert_kline_equal(&ev.k, &direct.k);
		assert_int_equal(ev.event_time, direct.event_time);
	}

	assert_int_equal(kl_json_member(spaced, strlen(spaced), "data", &off, &len), 0);
	assert_int_equal(len, strlen(EVENT));
	assert_memory_equal(spaced + off, EVENT, len);
	assert_int_equal(kl_json_member(spaced, strlen(spaced), "stream", &off, &len), 0);
	assert_int_equal(len, strlen("\"btcusdt@kline_1m\""));
	assert_memory_equal(spaced + off, "\"btcusdt@kline_1m\"", len);

	assert_int_equal(kl_json_member(tricky, strlen(tricky), "data", &off, &len), 0);
	assert_int_equal(len, strlen("{\"x\":\"}\"}"));
	assert_memory_equal(tricky + off, "{\"x\":\"}\"}", len);
	assert_int_equal(kl_json_member(tricky, strlen(tricky), "z", &off, &len), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(tricky + off, "true", 4);
	assert_int_equal(kl_json_member(tricky, strlen(tricky), "x", &off, &len), 0);
	assert_memory_equal(tricky + off, "-1.5e3", len);
	assert_int_equal(kl_json_member(tricky, strlen(tricky), "w", &off, &len), 0);
	assert_memory_equal(tricky + off, "null", len);
	assert_int_equal(kl_json_member(tricky, strlen(tricky), "t", &off, &len), 0);
	assert_memory_equal(tricky + off, "\"\\\\\"", len);
	assert_int_equal(kl_json_member(tricky, strlen(tricky), "u", &off, &len), 0);
	assert_memory_equal(tricky + off, "[[],{},\"]\"]", len);
	/* An escaped backslash, then an escaped quote, then one more backslash. */
	assert_int_equal(kl_json_member(tricky, strlen(tricky), "y", &off, &len), 0);
	assert_memory_equal(tricky + off, "\"a\\\\\\\"}\\\\\"", len);
	assert_int_equal(len, 10);
	assert_int_equal(kl_json_member(tricky, strlen(tricky), "b", &off, &len), -ENOENT);

	/* Absent: only whole top-level keys count. */
	assert_int_equal(kl_json_member(frame, strlen(frame), "dat", &off, &len), -ENOENT);
	assert_int_equal(kl_json_member(frame, strlen(frame), "data2", &off, &len), -ENOENT);
	assert_int_equal(kl_json_member(frame, strlen(frame), "DATA", &off, &len), -ENOENT);
	assert_int_equal(kl_json_member(frame, strlen(frame), "k", &off, &len), -ENOENT);
	assert_int_equal(kl_json_member(frame, strlen(frame), "", &off, &len), -ENOENT);
	assert_int_equal(kl_json_member("{}", 2, "data", &off, &len), -ENOENT);
	assert_int_equal(kl_json_member("{ \n}", 4, "data", &off, &len), -ENOENT);
	/* Only n bytes count: the data span knows nothing of the frame. */
	assert_int_equal(kl_json_member(frame, strlen(frame), "data", &off, &len), 0);
	assert_int_equal(kl_json_member(frame + off, len, "stream", &off, &len), -ENOENT);
	assert_int_equal(kl_json_member(frame, 1, "stream", &off, &len), -ENOENT);

	/* Not an object. */
	assert_int_equal(kl_json_member("", 0, "data", &off, &len), -EINVAL);
	assert_int_equal(kl_json_member("  \n", 3, "data", &off, &len), -EINVAL);
	assert_int_equal(kl_json_member("[1,2]", 5, "data", &off, &len), -EINVAL);
	assert_int_equal(kl_json_member("[{\"data\":1}]", 12, "data", &off, &len), -EINVAL);
	assert_int_equal(kl_json_member("\"data\"", 6, "data", &off, &len), -EINVAL);
	assert_int_equal(kl_json_member("42", 2, "data", &off, &len), -EINVAL);
	assert_int_equal(kl_json_member("null", 4, "data", &off, &len), -EINVAL);
	assert_int_equal(kl_json_member(frame, 0, "data", &off, &len), -EINVAL);
}

static void json_member_string(void **state)
{
	static const char frame[] = FRAME;
	static const char odd[] =
	    "{\"empty\":\"\",\"esc\":\"a\\\"b\",\"uni\":\"\\u0041\","
	    "\"num\":12,\"obj\":{\"s\":\"X\"},\"nul\":null,\"s\" : \"ETHBTC\" }";
	char buf[32];
	size_t off, len;

	(void)state;
	assert_int_equal(kl_json_member_string(frame, strlen(frame), "stream", buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "btcusdt@kline_1m");
	/* What ws.c does: the symbol and event type inside the data span. */
	assert_int_equal(kl_json_member(frame, strlen(frame), "data", &off, &len), 0);
	assert_int_equal(kl_json_member_string(frame + off, len, "s", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "BTCUSDT");
	assert_int_equal(kl_json_member_string(frame + off, len, "e", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "kline");
	/* It must fit with its terminator. */
	assert_int_equal(kl_json_member_string(frame, strlen(frame), "stream", buf, 17), 0);
	assert_string_equal(buf, "btcusdt@kline_1m");
	assert_int_equal(kl_json_member_string(frame, strlen(frame), "stream", buf, 16), -EINVAL);
	assert_int_equal(kl_json_member_string(frame, strlen(frame), "stream", buf, 1), -EINVAL);

	assert_int_equal(kl_json_member_string(odd, strlen(odd), "empty", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	assert_int_equal(kl_json_member_string(odd, strlen(odd), "empty", buf, 1), 0);
	assert_int_equal(kl_json_member_string(odd, strlen(odd), "s", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "ETHBTC");
	assert_int_equal(kl_json_member_string(odd, strlen(odd), "esc", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(kl_json_member_string(odd, strlen(odd), "uni", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(kl_json_member_string(odd, strlen(odd), "num", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(kl_json_member_string(odd, strlen(odd), "obj", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(kl_json_member_string(odd, strlen(odd), "nul", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(kl_json_member_string(odd, strlen(odd), "X", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(kl_json_member_string("[\"s\"]", 5, "s", buf, sizeof(buf)), -EINVAL);
}

static void json_member_int(void **state)
{
	static const char frame[] = FRAME;
	static const char odd[] =
	    "{\"neg\":-1,\"plus\":+1,\"frac\":1.5,\"exp\":1e3,\"str\":\"12\","
	    "\"zero\":0,\"big\":123456789012345678,\"huge\":1234567890123456789,"
	    "\"arr\":[1],\"tab\":7\t,\"cr\":8\r\n,\"last\" :\t42\n}";
	size_t off, len;
	int64_t t = -7;

	(void)state;
	assert_int_equal(kl_json_member(frame, strlen(frame), "data", &off, &len), 0);
	assert_int_equal(kl_json_member_int(frame + off, len, "E", &t), 0);
	assert_int_equal(t, 1672515782136LL);
	assert_int_equal(kl_json_member_int(frame, strlen(frame), "E", &t), -ENOENT);
	assert_int_equal(kl_json_member_int(frame + off, len, "t", &t), -ENOENT); /* in k */
	assert_int_equal(kl_json_member_int(frame + off, len, "s", &t), -EINVAL);
	assert_int_equal(kl_json_member_int(frame + off, len, "k", &t), -EINVAL);

	assert_int_equal(kl_json_member_int(odd, strlen(odd), "zero", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(kl_json_member_int(odd, strlen(odd), "big", &t), 0);
	assert_int_equal(t, 123456789012345678LL);
	assert_int_equal(kl_json_member_int(odd, strlen(odd), "last", &t), 0);
	assert_int_equal(t, 42);
	assert_int_equal(kl_json_member_int(odd, strlen(odd), "tab", &t), 0);
	assert_int_equal(t, 7);
	assert_int_equal(kl_json_member_int(odd, strlen(odd), "cr", &t), 0);
	assert_int_equal(t, 8);
	t = -7;
	assert_int_equal(kl_json_member_int(odd, strlen(odd), "neg", &t), -EINVAL);
	assert_int_equal(kl_json_member_int(odd, strlen(odd), "plus", &t), -EINVAL);
	assert_int_equal(kl_json_member_int(odd, strlen(odd), "frac", &t), -EINVAL);
	assert_int_equal(kl_json_member_int(odd, strlen(odd), "exp", &t), -EINVAL);
	assert_int_equal(kl_json_member_int(odd, strlen(odd), "str", &t), -EINVAL);
	assert_int_equal(kl_json_member_int(odd, strlen(odd), "huge", &t), -EINVAL);
	assert_int_equal(kl_json_member_int(odd, strlen(odd), "arr", &t), -EINVAL);
	assert_int_equal(t, -7); /* untouched on failure */
	assert_int_equal(kl_json_member_int(odd, strlen(odd), "none", &t), -ENOENT);
	assert_int_equal(kl_json_member_int("[1]", 3, "E", &t), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(event_parse),     cmocka_unit_test(event_refused),
	    cmocka_unit_test(json_member),     cmocka_unit_test(json_member_string),
	    cmocka_unit_test(json_member_int),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
