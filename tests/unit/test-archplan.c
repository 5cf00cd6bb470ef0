/* lib/archplan.c: which archive files cover a hole at a given exchange time. */
#include "archplan.h"
#include "day.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static int64_t at(const char *day)
{
	int64_t ms = 0;

	assert_int_equal(kl_day_parse(day, &ms), 0);
	return ms;
}

static void names(const struct kl_arch_file *f, size_t n, char *buf)
{
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(buf, " ");
		strcat(buf, f[i].period);
	}
}

static void months(void **state)
{
	int64_t a, b;

	(void)state;
	kl_arch_month(at("2023-02-14") + 5000, &a, &b);
	assert_int_equal(a, at("2023-02-01"));
	assert_int_equal(b, at("2023-03-01"));
	kl_arch_month(at("2024-12-31"), &a, &b);
	assert_int_equal(b, at("2025-01-01"));
	kl_arch_month(at("2024-02-29"), &a, &b);
	assert_int_equal(b - a, 29 * 86400000LL);
}

static void plan(void **state)
{
	struct kl_arch_file f[64];
	char buf[1024];
	int64_t now = at("2023-03-20") + 12 * 3600000LL;
	size_t n;

	(void)state;
	/* whole published months, then the days REST need not fetch */
	n = kl_arch_plan(at("2023-01-01"), now, now, f, 64);
	names(f, n, buf);
	assert_string_equal(buf, "2023-01 2023-02 2023-03-01 2023-03-02 2023-03-03 2023-03-04 "
				 "2023-03-05 2023-03-06 2023-03-07 2023-03-08 2023-03-09 "
				 "2023-03-10 2023-03-11 2023-03-12 2023-03-13 2023-03-14 "
				 "2023-03-15 2023-03-16 2023-03-17 2023-03-18");
	assert_true(f[0].monthly && !f[2].monthly);
	assert_int_equal(f[1].to, at("2023-03-01"));
	assert_int_equal(f[19].to, at("2023-03-19"));
	/* an hour's hole: its day */
	n = kl_arch_plan(at("2023-01-10") + 36000000, at("2023-01-10") + 39600000, now, f, 64);
	assert_int_equal(n, 1);
	assert_string_equal(f[0].period, "2023-01-10");
	/* most of a month: the month; a few days: the days */
	n = kl_arch_plan(at("2023-01-05") + 1, at("2023-01-12") + 1, now, f, 64);
	assert_int_equal(n, 1);
	assert_true(f[0].monthly);
	n = kl_arch_plan(at("2023-01-05"), at("2023-01-12"), now, f, 64);
	assert_int_equal(n, 7);
	/* too recent for the archive: nothing, REST fills it */
	assert_int_equal(kl_arch_plan(at("2023-03-19"), now, now, f, 64), 0);
	/* a month not surely published yet (first Monday): its days */
	n = kl_arch_plan(at("2023-02-01"), at("2023-03-01"), at("2023-03-05"), f, 64);
	assert_int_equal(n, 28);
	assert_false(f[0].monthly);
	/* at most max, to go on from the last one's end */
	n = kl_arch_plan(at("2023-03-01"), now, now, f, 5);
	assert_int_equal(n, 5);
	n = kl_arch_plan(f[4].to, now, now, f, 64);
	assert_int_equal(n, 13);
	assert_string_equal(f[0].period, "2023-03-06");
	n = kl_arch_plan(at("2023-01-01"), now, now, f, 1);
	assert_int_equal(n, 1);
	assert_int_equal(kl_arch_plan(now, now, now, f, 64), 0);
	/* kl_arch_end: the last file planned ends there, and nothing starts at it. */
	assert_int_equal(kl_arch_end(now), at("2023-03-19"));
	assert_int_equal(kl_arch_end(at("2023-03-20")), at("2023-03-19"));
	assert_int_equal(kl_arch_plan(kl_arch_end(now), now, now, f, 64), 0);
	n = kl_arch_plan(kl_arch_end(now) - 1, now, now, f, 64);
	assert_int_equal(n, 1);
	assert_int_equal(f[0].to, kl_arch_end(now));
}

static void fallback_days(void **state)
{
	struct kl_arch_file m, f[40];
	int64_t now = at("2023-03-20");

	(void)state;
	assert_int_equal(kl_arch_plan(at("2023-01-01"), at("2023-02-01"), now, &m, 1), 1);
	assert_int_equal(kl_arch_days(&m, at("2022-12-01"), at("2023-02-10"), now, f, 40), 31);
	assert_int_equal(kl_arch_days(&m, at("2023-01-30"), now, now, f, 40), 2);
	assert_string_equal(f[1].period, "2023-01-31");
}

static void paths(void **state)
{
	struct kl_arch_file f[2];
	char buf[128];
	int64_t now = at("2023-03-20");

	(void)state;
	assert_int_equal(kl_arch_plan(at("2023-01-01"), at("2023-01-02"), now, f, 2), 1);
	assert_int_equal(kl_arch_path(&f[0], "BTCUSDT", buf, sizeof(buf)), 59);
	assert_string_equal(buf, "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2023-01-01.zip");
	assert_int_equal(kl_arch_plan(at("2023-01-01"), at("2023-02-01"), now, f, 2), 1);
	assert_int_equal(kl_arch_path(&f[0], "ETHUSDT", buf, sizeof(buf)), 58);
	assert_string_equal(buf, "data/spot/monthly/klines/ETHUSDT/1m/ETHUSDT-1m-2023-01.zip");
	assert_int_equal(kl_arch_path(&f[0], "ETHUSDT", buf, 20), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(months),
	    cmocka_unit_test(plan),
	    cmocka_unit_test(fallback_days),
	    cmocka_unit_test(paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
