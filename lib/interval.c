/*
 * Interval candles from minute klines. One candle per interval that has
 * at least one kline: an interval wholly inside an outage (or before the
 * listing) has none, as on Binance. The fold is kl_day_add's, so a 1d
 * candle equals the day row's values exactly.
 */
#include "interval.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* 1970-01-01 was a Thursday: Monday 1970-01-05 starts the weeks. */
#define WEEK_ORIGIN ((int64_t)4 * KL_DAY_MS)

static const struct {
	const char *name;
	int64_t ms;
} intervals[] = {
    {"1m", KL_MINUTE_MS},	{"5m", 5 * KL_MINUTE_MS},  {"15m", 15 * KL_MINUTE_MS},
    {"30m", 30 * KL_MINUTE_MS}, {"1h", 60 * KL_MINUTE_MS}, {"4h", 240 * KL_MINUTE_MS},
    {"1d", KL_DAY_MS},		{"1w", KL_WEEK_MS},
};

#define NINTERVALS (sizeof(intervals) / sizeof(intervals[0]))

int kl_interval_parse(const char *s, size_t len, int64_t *period)
{
	for (size_t i = 0; i < NINTERVALS; i++) {
		if (strlen(intervals[i].name) == len && !memcmp(s, intervals[i].name, len)) {
			*period = intervals[i].ms;
			return 0;
		}
	}
	return -EINVAL;
}

const char *kl_interval_name(int64_t period)
{
	for (size_t i = 0; i < NINTERVALS; i++) {
		if (intervals[i].ms == period)
			return intervals[i].name;
	}
	return NULL;
}

int64_t kl_interval_floor(int64_t ms, int64_t period)
{
	int64_t origin = period == KL_WEEK_MS ? WEEK_ORIGIN : 0;
	int64_t r = (ms - origin) % period;

	return ms - (r < 0 ? r + period : r);
}

int kl_candles_init(struct kl_candles *c, int64_t period, size_t cap)
{
	memset(c, 0, sizeof(*c));
	if (!kl_interval_name(period) || cap == 0)
		return -EINVAL;
	c->v = calloc(cap, sizeof(*c->v));
	if (!c->v)
		return -ENOMEM;
	c->period = period;
	c->cap = cap;
	return 0;
}

void kl_candles_clear(struct kl_candles *c)
{
	if (!c)
		return;
	free(c->v);
	memset(c, 0, sizeof(*c));
}

int kl_candles_add(struct kl_candles *c, const struct kl_kline *k)
{
	int64_t start = kl_interval_floor(k->open_time, c->period);
	struct kl_candle *d = c->n ? &c->v[c->n - 1] : NULL;

	if (d && start < d->open_time)
		return -EINVAL;
	if (!d || start > d->open_time) {
		if (!c->v || c->n == c->cap)
			return -ENOSPC;
		d = &c->v[c->n++];
		*d = (struct kl_candle){.open_time = start,
					.open = k->open,
					.high = k->high,
					.low = k->low,
					.first_open_time = k->open_time};
	}
	/* Ascending order: the newest minute so far gives the close. */
	if (k->high > d->high)
		d->high = k->high;
	if (k->low < d->low)
		d->low = k->low;
	d->close = k->close;
	d->last_open_time = k->open_time;
	d->volume += k->volume;
	d->quote_volume += k->quote_volume;
	d->trades += k->trades;
	d->nklines++;
	return 0;
}

void kl_candles_mark(struct kl_candles *c, int64_t end_ms)
{
	for (size_t i = 0; i < c->n; i++)
		c->v[i].closed = c->v[i].open_time + c->period <= end_ms;
}
