#include "archplan.h"

#include "day.h"
#include "kline.h"

#include <errno.h>
#include <stdio.h>

void kl_arch_month(int64_t ms, int64_t *from, int64_t *to)
{
	char d[11];
	int y, m;

	kl_day_format(ms, d);
	y = (d[0] - '0') * 1000 + (d[1] - '0') * 100 + (d[2] - '0') * 10 + (d[3] - '0');
	m = (d[5] - '0') * 10 + (d[6] - '0');
	d[8] = '0';
	d[9] = '1';
	if (kl_day_parse(d, from) < 0)
		*from = kl_day_floor(ms);
	if (++m > 12) {
		m = 1;
		y++;
	}
	d[0] = (char)('0' + y / 1000 % 10);
	d[1] = (char)('0' + y / 100 % 10);
	d[2] = (char)('0' + y / 10 % 10);
	d[3] = (char)('0' + y % 10);
	d[5] = (char)('0' + m / 10);
	d[6] = (char)('0' + m % 10);
	if (kl_day_parse(d, to) < 0)
		*to = *from + 31 * KL_DAY_MS;
}

static void day_file(int64_t start, struct kl_arch_file *f)
{
	f->from = start;
	f->to = start + KL_DAY_MS;
	f->monthly = false;
	kl_day_format(start, f->period);
}

static size_t days(int64_t from, int64_t to, int64_t last, struct kl_arch_file *out, size_t max,
		   size_t n)
{
	for (int64_t d = kl_day_floor(from); d < to && d < last && n < max; d += KL_DAY_MS)
		day_file(d, &out[n++]);
	return n;
}

int64_t kl_arch_end(int64_t now)
{
	return kl_day_floor(now) - KL_ARCH_DAY_BEHIND_MS + KL_DAY_MS;
}

size_t kl_arch_plan(int64_t from, int64_t to, int64_t now, struct kl_arch_file *out, size_t max)
{
	int64_t today = kl_day_floor(now);
	int64_t last_day = kl_arch_end(now); /* days before this */
	size_t n = 0;

	if (from < 0)
		from = 0;
	while (from < to && from < last_day && n < max) {
		int64_t ms, me;

		kl_arch_month(from, &ms, &me);
		int64_t a = from, b = to < me ? to : me;
		int64_t need = (kl_day_floor(b - 1) - kl_day_floor(a)) / KL_DAY_MS + 1;

		if (me + KL_ARCH_MONTH_BEHIND_MS <= today && need >= KL_ARCH_MONTH_MIN_DAYS) {
			out[n].from = ms;
			out[n].to = me;
			out[n].monthly = true;
			kl_day_format(ms, out[n].period);
			out[n].period[7] = '\0';
			n++;
		} else {
			n = days(a, b, last_day, out, max, n);
		}
		if (n == max)
			break; /* the caller goes on from out[max - 1].to */
		from = me;
	}
	return n;
}

size_t kl_arch_days(const struct kl_arch_file *month, int64_t from, int64_t to, int64_t now,
		    struct kl_arch_file *out, size_t max)
{
	int64_t last_day = kl_day_floor(now) - KL_ARCH_DAY_BEHIND_MS + KL_DAY_MS;

	if (from < month->from)
		from = month->from;
	if (to > month->to)
		to = month->to;
	return days(from, to, last_day, out, max, 0);
}

int kl_arch_path(const struct kl_arch_file *f, const char *symbol, char *buf, size_t n)
{
	int len = snprintf(buf, n, "data/spot/%s/klines/%s/1m/%s-1m-%s.zip",
			   f->monthly ? "monthly" : "daily", symbol, symbol, f->period);

	return len < 0 || (size_t)len >= n ? -ENOSPC : len;
}
