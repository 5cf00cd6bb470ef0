/*
 * Parsers of the exchange's small answers (exchange.h). Anything not of
 * the expected shape is -EINVAL, never a guess: a caller retries.
 */
#include "exchange.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>

static int time_value(const json_t *t, int64_t *ms)
{
	json_int_t v;

	if (!json_is_integer(t))
		return -EINVAL;
	v = json_integer_value(t);
	if (v < 0 || v > KL_EXCHANGE_TIME_MAX)
		return -EINVAL;
	*ms = (int64_t)v;
	return 0;
}

int kl_exchange_time(const char *body, size_t len, int64_t *ms)
{
	json_t *j = json_loadb(body, len, 0, NULL);
	int r = time_value(json_object_get(j, "serverTime"), ms);

	json_decref(j);
	return r;
}

int kl_exchange_first_kline(const char *body, size_t len, int64_t *open_ms)
{
	json_t *j = json_loadb(body, len, 0, NULL);
	int r = -EINVAL;

	if (json_is_array(j) && json_array_size(j) == 0)
		r = -ENOENT;
	else if (json_is_array(j))
		r = time_value(json_array_get(json_array_get(j, 0), 0), open_ms);
	json_decref(j);
	return r;
}

int kl_exchange_error(long status, const char *body, size_t len, char *msg, size_t n)
{
	json_t *j = body && len <= KL_EXCHANGE_ERROR_MAX ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *c = json_object_get(j, "code");
	int code = 0;

	if (n)
		snprintf(msg, n, "HTTP %ld", status);
	/* A code out of int's range is not one of Binance's (they are small negatives). */
	if (json_is_integer(c) && json_integer_value(c) >= -1000000 &&
	    json_integer_value(c) <= 1000000) {
		const char *text = json_string_value(json_object_get(j, "msg"));
		code = (int)json_integer_value(c);
		if (n)
			snprintf(msg, n, "%s (code %d)", text ? text : "?", code);
	}
	json_decref(j);
	return code;
}
