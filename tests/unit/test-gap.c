/*
 * lib/gap: half-open minute ranges. Ranges are written in minutes here
 * (M(n) = n minutes after T0) so each expectation reads as a picture.
 */
#include "gap.h"

#include "kline.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define T0   1672531200000LL
#define M(n) (T0 + (int64_t)(n)*KL_MINUTE_MS)

/* Assert @p r holds exactly the minute ranges of @p want (pairs, n of them). */
static void assert_ranges(const struct kl_ranges *r, const int64_t *want, size_t n)
{
	char got[512] = "";

	for (size_t i = 0; i < r->n; i++) {
		size_t len = strlen(got);

		snprintf(got + len, sizeof(got) - len, "[%lld,%lld)",
			 (long long)((r->v[i].from - T0) / KL_MINUTE_MS),
			 (long long)((r->v[i].to - T0) / KL_MINUTE_MS));
	}
	if (r->n != n)
		fail_msg("%zu ranges %s, want %zu", r->n, got, n);
	for (size_t i = 0; i < n; i++) {
		if (r->v[i].from != M(want[2 * i]) || r->v[i].to != M(want[2 * i + 1]))
			fail_msg("range %zu of %s, want [%lld,%lld)", i, got,
				 (long long)want[2 * i], (long long)want[2 * i + 1]);
	}
}

#define ASSERT_RANGES(r, ...)                                                                      \
	do {                                                                                       \
		static const int64_t want_[] = {__VA_ARGS__};                                      \
		assert_ranges((r), want_, sizeof(want_) / sizeof(want_[0]) / 2);                   \
	} while (0)

static void add(struct kl_ranges *r, int64_t from, int64_t to)
{
	assert_int_equal(kl_ranges_add(r, M(from), M(to)), 0);
}

static void ranges_add(void **state)
{
	struct kl_ranges r = {0};

	(void)state;
	add(&r, 0, 10);
	add(&r, 10, 20); /* touching: merged */
	ASSERT_RANGES(&r, 0, 20);
	add(&r, 15, 18); /* inside the last: nothing new */
	ASSERT_RANGES(&r, 0, 20);
	add(&r, 19, 25); /* overlapping the end: extended */
	ASSERT_RANGES(&r, 0, 25);
	add(&r, 26, 30); /* a minute apart: a new range */
	ASSERT_RANGES(&r, 0, 25, 26, 30);
	add(&r, 30, 30); /* empty */
	add(&r, 40, 35); /* inverted */
	ASSERT_RANGES(&r, 0, 25, 26, 30);
	assert_int_equal(kl_ranges_minutes(&r), 29);
	kl_ranges_clear(&r);
	assert_null(r.v);
	assert_int_equal(r.n, 0);
	assert_int_equal(r.cap, 0);
	kl_ranges_clear(&r); /* twice is fine */
	assert_int_equal(kl_ranges_minutes(&r), 0);
}

static void ranges_grow(void **state)
{
	struct kl_ranges r = {0};

	(void)state;
	for (int64_t i = 0; i < 1000; i++)
		add(&r, 2 * i, 2 * i + 1);
	assert_int_equal(r.n, 1000);
	assert_true(r.cap >= 1000);
	for (size_t i = 0; i < r.n; i++) {
		assert_int_equal(r.v[i].from, M(2 * i));
		assert_int_equal(r.v[i].to, M(2 * i + 1));
	}
	assert_int_equal(kl_ranges_minutes(&r), 1000);
	kl_ranges_clear(&r);
}

static void ranges_minutes(void **state)
{
	struct kl_ranges r = {0};

	(void)state;
	add(&r, 0, 1440);
	add(&r, 2000, 2001);
	assert_int_equal(kl_ranges_minutes(&r), 1441);
	/* An unaligned tail still costs its minute. */
	assert_int_equal(kl_ranges_add(&r, M(3000), M(3000) + 1), 0);
	assert_int_equal(kl_ranges_minutes(&r), 1442);
	kl_ranges_clear(&r);
}

static void subtract(const int64_t *rv, size_t rn, const int64_t *sv, size_t sn,
		     const int64_t *want, size_t wn)
{
	struct kl_ranges r = {0}, sub = {0};

	for (size_t i = 0; i < rn; i++)
		add(&r, rv[2 * i], rv[2 * i + 1]);
	for (size_t i = 0; i < sn; i++)
		add(&sub, sv[2 * i], sv[2 * i + 1]);
	assert_int_equal(kl_ranges_subtract(&r, &sub), 0);
	assert_ranges(&r, want, wn);
	/* sub is left alone */
	assert_int_equal(sub.n, sn);
	kl_ranges_clear(&r);
	kl_ranges_clear(&sub);
}

#define SUB(r, s, ...)                                                                             \
	do {                                                                                       \
		static const int64_t r_[] = {0, 0, r}, s_[] = {0, 0, s};                           \
		static const int64_t w_[] = {0, 0, __VA_ARGS__};                                   \
		subtract(r_ + 2, sizeof(r_) / sizeof(r_[0]) / 2 - 1, s_ + 2,                       \
			 sizeof(s_) / sizeof(s_[0]) / 2 - 1, w_ + 2,                               \
			 sizeof(w_) / sizeof(w_[0]) / 2 - 1);                                      \
	} while (0)
#define L(...) __VA_ARGS__

static void ranges_subtract(void **state)
{
	(void)state;
	/* nothing to remove */
	SUB(L(10, 20), L(), L(10, 20));
	/* from nothing */
	SUB(L(), L(10, 20), L());
	/* disjoint, before and after */
	SUB(L(10, 20), L(0, 5, 25, 30), L(10, 20));
	/* touching both ends: half-open, nothing removed */
	SUB(L(10, 20), L(0, 10, 20, 30), L(10, 20));
	/* overlapping the start */
	SUB(L(10, 20), L(5, 12), L(12, 20));
	/* overlapping the end */
	SUB(L(10, 20), L(18, 25), L(10, 18));
	/* both ends */
	SUB(L(10, 20), L(5, 12, 18, 25), L(12, 18));
	/* inside: a hole splits the range */
	SUB(L(10, 20), L(14, 16), L(10, 14, 16, 20));
	/* exactly, and more than, the whole */
	SUB(L(10, 20), L(10, 20), L());
	SUB(L(10, 20), L(0, 30), L());
	/* several inside one */
	SUB(L(0, 100), L(10, 20, 30, 40, 50, 60), L(0, 10, 20, 30, 40, 50, 60, 100));
	/* one spanning several */
	SUB(L(0, 10, 20, 30, 40, 50), L(5, 45), L(0, 5, 45, 50));
	/* many against many, with some sub ranges between r ranges */
	SUB(L(0, 10, 20, 30, 40, 50, 60, 70), L(2, 3, 12, 15, 25, 45, 55, 58, 69, 80),
	    L(0, 2, 3, 10, 20, 25, 45, 50, 60, 69));
	/* a sub range ending where the next r range starts */
	SUB(L(0, 10, 20, 30), L(5, 20), L(0, 5, 20, 30));
}

static void gapscan(const int64_t *times, size_t n, int64_t from, int64_t to, const int64_t *want,
		    size_t wn)
{
	struct kl_ranges out = {0};
	struct kl_gapscan s;

	kl_gapscan_init(&s, from, to, &out);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(kl_gapscan_feed(&s, times[i]), 0);
	assert_int_equal(kl_gapscan_finish(&s), 0);
	assert_ranges(&out, want, wn);
	kl_ranges_clear(&out);
}

static void gapscan_holes(void **state)
{
	const int64_t all[] = {M(0), M(1), M(2), M(3), M(4)};
	const int64_t mid[] = {M(0), M(1), M(3), M(4)};
	const int64_t ends[] = {M(2), M(3)};
	const int64_t many[] = {M(1), M(3), M(5), M(6), M(9)};
	const int64_t none[1] = {0};

	(void)state;
	gapscan(all, 5, M(0), M(5), NULL, 0);
	gapscan(mid, 4, M(0), M(5), (const int64_t[]){2, 3}, 1);
	gapscan(ends, 2, M(0), M(5), (const int64_t[]){0, 2, 4, 5}, 2);
	gapscan(many, 5, M(0), M(10), (const int64_t[]){0, 1, 2, 3, 4, 5, 7, 9}, 4);
	gapscan(none, 0, M(0), M(1440), (const int64_t[]){0, 1440}, 1);
	/* an empty range has no hole */
	gapscan(none, 0, M(5), M(5), NULL, 0);
}

static void gapscan_odd_times(void **state)
{
	const int64_t dup[] = {M(0), M(0), M(1), M(1), M(1), M(3)};
	const int64_t off[] = {M(0) + 1, M(1) + 59999, M(2) + 30000, M(4) + 12};
	const int64_t before[] = {M(-5), M(-1), M(-1) + 59999, M(0), M(2)};
	const int64_t beyond[] = {M(0), M(1), M(7), M(100)};
	const int64_t only_beyond[] = {M(50)};

	(void)state;
	/* repeated minutes are harmless */
	gapscan(dup, 6, M(0), M(4), (const int64_t[]){2, 3}, 1);
	/* off-minute times occupy their floor minute */
	gapscan(off, 4, M(0), M(5), (const int64_t[]){3, 4}, 1);
	/* times before from make no hole */
	gapscan(before, 5, M(0), M(3), (const int64_t[]){1, 2}, 1);
	/* times at or past to close the scan at to */
	gapscan(beyond, 4, M(0), M(5), (const int64_t[]){2, 5}, 1);
	gapscan(only_beyond, 1, M(0), M(5), (const int64_t[]){0, 5}, 1);
}

static void range_page(void **state)
{
	struct kl_range r = {M(0), M(2500)}, p;

	(void)state;
	p = kl_range_page(r, 1000);
	assert_int_equal(p.from, M(0));
	assert_int_equal(p.to, M(1000));
	r.from = p.to;
	p = kl_range_page(r, 1000);
	assert_int_equal(p.from, M(1000));
	assert_int_equal(p.to, M(2000));
	r.from = p.to;
	p = kl_range_page(r, 1000);
	assert_int_equal(p.from, M(2000));
	assert_int_equal(p.to, M(2500)); /* the last page is short */
	p = kl_range_page((struct kl_range){M(0), M(1000)}, 1000);
	assert_int_equal(p.to, M(1000));
	p = kl_range_page((struct kl_range){M(0), M(1)}, 1000);
	assert_int_equal(p.to, M(1));
	p = kl_range_page((struct kl_range){M(0), M(1000)}, 1);
	assert_int_equal(p.to, M(1));
	/* 50000 minutes is more than 2^31 ms: no int overflow */
	p = kl_range_page((struct kl_range){M(0), M(100000)}, 50000);
	assert_int_equal(p.to, M(50000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(ranges_add),     cmocka_unit_test(ranges_grow),
	    cmocka_unit_test(ranges_minutes), cmocka_unit_test(ranges_subtract),
	    cmocka_unit_test(gapscan_holes),  cmocka_unit_test(gapscan_odd_times),
	    cmocka_unit_test(range_page),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
