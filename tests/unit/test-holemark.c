/*
 * lib/holemark: where a hole search reads, given how far the store
 * searched. Minutes after T0 as in test-gap.c.
 */
#include "holemark.h"

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

static void suspects(struct kl_ranges *s, const int64_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		assert_int_equal(kl_ranges_add(s, M(v[2 * i]), M(v[2 * i + 1])), 0);
}

/* Searched up to 1000: before it only the suspects, clipped; after it all. */
static void test_only_suspects_before_the_mark(void **state)
{
	struct kl_holemark m = {.upto = M(1000), .rows_end = M(1005), .defer_ms = -1};
	struct kl_ranges s = {0}, out = {0};
	bool deferred = true;

	(void)state;
	suspects(&s, (int64_t[]){5, 7, 20, 30, 990, 1002}, 3);
	assert_int_equal(kl_holemark_plan(&m, M(10), M(1010), &s, &out, &deferred), 0);
	/* [5,7) is before from; [990,1002) runs into the unsearched part and merges. */
	assert_ranges(&out, (int64_t[]){20, 30, 990, 1010}, 2);
	assert_false(deferred);
	kl_ranges_clear(&out);
	kl_ranges_clear(&s);
}

/* Overlapping suspects (a row deleted twice, a hole found inside a deletion) merge. */
static void test_overlapping_suspects_merge(void **state)
{
	struct kl_holemark m = {.upto = M(100), .rows_end = M(100), .defer_ms = 0};
	struct kl_ranges s = {0}, out = {0};

	(void)state;
	suspects(&s, (int64_t[]){10, 20, 15, 18, 19, 25}, 3);
	assert_int_equal(kl_holemark_plan(&m, M(0), M(100), &s, &out, NULL), 0);
	assert_ranges(&out, (int64_t[]){10, 25}, 1);
	kl_ranges_clear(&out);
	kl_ranges_clear(&s);
}

/* A whole search of a store that was never searched reads everything... */
static void test_no_mark_reads_everything(void **state)
{
	struct kl_holemark m = {.upto = M(0), .rows_end = M(500000), .defer_ms = -1};
	struct kl_ranges out = {0};

	(void)state;
	assert_int_equal(kl_holemark_plan(&m, M(0), M(500100), NULL, &out, NULL), 0);
	assert_ranges(&out, (int64_t[]){0, 500100}, 1);
	kl_ranges_clear(&out);
}

/* ...unless that would read more than defer_ms of rows: then only what lies past the newest
 * row (a symbol's recent gap is still found at once), and the caller is told. */
static void test_long_unsearched_rows_are_deferred(void **state)
{
	struct kl_holemark m = {
	    .upto = M(0), .rows_end = M(500000), .defer_ms = 1440 * KL_MINUTE_MS};
	struct kl_ranges out = {0};
	bool deferred = false;

	(void)state;
	assert_int_equal(kl_holemark_plan(&m, M(0), M(500100), NULL, &out, &deferred), 0);
	assert_ranges(&out, (int64_t[]){500000, 500100}, 1);
	assert_true(deferred);
	kl_ranges_clear(&out);
	/* Asked for the last day only: a day of rows is read, nothing deferred. */
	assert_int_equal(kl_holemark_plan(&m, M(500000 - 1440), M(500100), NULL, &out, &deferred),
			 0);
	assert_ranges(&out, (int64_t[]){500000 - 1440, 500100}, 1);
	assert_false(deferred);
	kl_ranges_clear(&out);
}

/* A new symbol: no rows, nothing searched: its whole coverage is to be read (it is empty). */
static void test_new_symbol(void **state)
{
	struct kl_holemark m = {.upto = M(0), .rows_end = M(0), .defer_ms = 0};
	struct kl_ranges out = {0};

	(void)state;
	assert_int_equal(kl_holemark_plan(&m, M(0), M(9000), NULL, &out, NULL), 0);
	assert_ranges(&out, (int64_t[]){0, 9000}, 1);
	kl_ranges_clear(&out);
}

static void test_slices(void **state)
{
	struct kl_holemark m = {.upto = M(100), .rows_end = M(350)};

	(void)state;
	assert_int_equal(kl_holemark_slice(&m, 100), M(200));
	m.upto = M(300);
	assert_int_equal(kl_holemark_slice(&m, 100), M(350));
	m.upto = M(350);
	assert_int_equal(kl_holemark_slice(&m, 100), M(350));
	m.rows_end = M(10); /* rows deleted after the search: nothing new to read */
	assert_int_equal(kl_holemark_slice(&m, 100), M(350));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_only_suspects_before_the_mark),
	    cmocka_unit_test(test_overlapping_suspects_merge),
	    cmocka_unit_test(test_no_mark_reads_everything),
	    cmocka_unit_test(test_long_unsearched_rows_are_deferred),
	    cmocka_unit_test(test_new_symbol),
	    cmocka_unit_test(test_slices),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
