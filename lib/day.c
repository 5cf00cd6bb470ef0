/*
 * Day aggregation and UTC calendar arithmetic. The calendar uses Howard
 * Hinnant's days-from-civil algorithm so lib/ needs neither timegm() nor
 * the TZ environment.
 */
#include "day.h"

#include <errno.h>
#include <string.h>

int64_t kl_day_floor(int64_t ms)
{
	int64_t r = ms % KL_DAY_MS;

	return ms - (r < 0 ? r + KL_DAY_MS : r);
}

void kl_day_init(struct kl_day *d, int64_t start)
{
	memset(d, 0, sizeof(*d));
	d->start = kl_day_floor(start);
}

static void mark(struct kl_day *d, int64_t slot)
{
	d->slots[slot / 64] |= 1ULL << (slot % 64);
}

int kl_day_add(struct kl_day *d, const struct kl_kline *k)
{
	if (k->open_time < d->start || k->open_time >= d->start + KL_DAY_MS)
		return -EINVAL;
	if (d->nklines == 0) {
		d->open = k->open;
		d->high = k->high;
		d->low = k->low;
		d->close = k->close;
		d->first_open_time = d->last_open_time = k->open_time;
	} else {
		if (k->open_time < d->first_open_time) {
			d->open = k->open;
			d->first_open_time = k->open_time;
		}
		if (k->high > d->high)
			d->high = k->high;
		if (k->low < d->low)
			d->low = k->low;
		if (k->open_time >= d->last_open_time) {
			d->close = k->close;
			d->last_open_time = k->open_time;
		}
	}
	d->volume += k->volume;
	d->quote_volume += k->quote_volume;
	d->trades += k->trades;
	d->nklines++;
	mark(d, (k->open_time - d->start) / KL_MINUTE_MS);
	return 0;
}

void kl_day_cover(struct kl_day *d, int64_t from, int64_t to)
{
	int64_t end = d->start + KL_DAY_MS;

	if (from < d->start)
		from = d->start;
	if (to > end)
		to = end;
	/* A range that starts mid-minute still accounts for that minute. */
	for (int64_t t = kl_kline_slot(from - d->start); d->start + t < to; t += KL_MINUTE_MS)
		mark(d, t / KL_MINUTE_MS);
}

bool kl_day_complete(const struct kl_day *d)
{
	for (size_t i = 0; i < KL_DAY_SLOTS / 64; i++) {
		if (d->slots[i] != UINT64_MAX)
			return false;
	}
	return d->slots[KL_DAY_SLOTS / 64] == (1ULL << (KL_DAY_SLOTS % 64)) - 1;
}

void kl_day_fill(struct kl_day *d, kl_i128 prev_close)
{
	d->open = d->high = d->low = d->close = prev_close;
	d->volume = 0;
	d->quote_volume = 0;
	d->trades = 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t dd)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + dd - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void kl_day_format(int64_t ms, char buf[static 11])
{
	int64_t z = kl_day_floor(ms) / KL_DAY_MS + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int64_t d = doy - (153 * mp + 2) / 5 + 1;
	int64_t m = mp < 10 ? mp + 3 : mp - 9;
	int64_t y = yoe + era * 400 + (m <= 2);

	if (y < 0 || y > 9999)
		y = 0;
	buf[0] = (char)('0' + y / 1000);
	buf[1] = (char)('0' + y / 100 % 10);
	buf[2] = (char)('0' + y / 10 % 10);
	buf[3] = (char)('0' + y % 10);
	buf[4] = '-';
	buf[5] = (char)('0' + m / 10);
	buf[6] = (char)('0' + m % 10);
	buf[7] = '-';
	buf[8] = (char)('0' + d / 10);
	buf[9] = (char)('0' + d % 10);
	buf[10] = '\0';
}

int kl_day_parse(const char *s, int64_t *ret)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int64_t y, m, d;
	bool leap;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -EINVAL;
	for (int i = 0; i < 10; i++) {
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return -EINVAL;
	}
	y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	m = (s[5] - '0') * 10 + (s[6] - '0');
	d = (s[8] - '0') * 10 + (s[9] - '0');
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] ||
	    (m == 2 && d == 29 && !leap))
		return -EINVAL;
	*ret = days_from_civil(y, m, d) * KL_DAY_MS;
	return 0;
}

void kl_time_format(int64_t ms, char buf[static 21])
{
	int64_t s = (ms - kl_day_floor(ms)) / 1000;

	kl_day_format(ms, buf);
	buf[10] = 'T';
	buf[11] = (char)('0' + s / 36000);
	buf[12] = (char)('0' + s / 3600 % 10);
	buf[13] = ':';
	buf[14] = (char)('0' + s / 600 % 6);
	buf[15] = (char)('0' + s / 60 % 10);
	buf[16] = ':';
	buf[17] = (char)('0' + s % 60 / 10);
	buf[18] = (char)('0' + s % 10);
	buf[19] = 'Z';
	buf[20] = '\0';
}
