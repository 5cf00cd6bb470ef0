/*
 * lib/prom: Prometheus text exposition and histogram bucketing. The
 * daemon's /metrics is additionally checked by promtool in the
 * integration tests; these pin the exact text.
 */
#include "prom.h"

#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const double bounds[] = {0.001, 0.01, 0.1, 1};

static void histo_buckets(void **state)
{
	struct kl_histo h;

	(void)state;
	kl_histo_init(&h, bounds, 4);
	kl_histo_observe(&h, 0.0005); /* <= 0.001 */
	kl_histo_observe(&h, 0.001);  /* a bound belongs to its own bucket (le) */
	kl_histo_observe(&h, 0.05);   /* <= 0.1 */
	kl_histo_observe(&h, 2);      /* +Inf */
	kl_histo_observe(&h, NAN);    /* ignored */
	assert_int_equal(h.counts[0], 2);
	assert_int_equal(h.counts[1], 0);
	assert_int_equal(h.counts[2], 1);
	assert_int_equal(h.counts[3], 0);
	assert_int_equal(h.counts[4], 1);
	assert_int_equal(h.count, 4);
	assert_true(fabs(h.sum - 2.0515) < 1e-12);
}

/* The definition: the fewest %g digits that read back as the same double. */
static void shortest_ref(char *buf, size_t n, double v)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, n, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

static void xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
}

/* The searched form prints what the definition does: timestamps, powers of
 * two and their neighbours, random bit patterns. */
static void shortest_digits(void **state)
{
	uint64_t x = 0x9e3779b97f4a7c15u;

	(void)state;
	for (int i = 0; i < 30000; i++) {
		double v;
		char want[40], line[96];
		struct kl_prom p = {0};
		size_t len;
		char *s;

		xorshift(&x);
		if (i % 3 == 0) {
			v = (double)(1686441600000 + (int64_t)(x % 400000000000)) / 1000.0;
		} else if (i % 3 == 1) {
			v = ldexp(1.0, (int)(x % 200) - 100);
			v = i % 2 ? nextafter(v, 0) : v;
		} else {
			memcpy(&v, &x, sizeof(v));
			if (!isfinite(v))
				continue;
		}
		shortest_ref(want, sizeof(want), v);
		snprintf(line, sizeof(line), "g %s\n", want);
		kl_prom_sample(&p, "g", NULL, 0, v);
		s = kl_prom_take(&p, &len);
		assert_non_null(s);
		assert_string_equal(s, line);
		free(s);
	}
}

/* Whole milliseconds as seconds: the doubles' path's text, or (where %g would
 * take an exponent, 1.6864416e+09) the plain decimal of the same double. */
static void milliseconds(void **state)
{
	uint64_t x = 0x2545f4914f6cdd1du;
	const int64_t edges[] = {0,
				 1,
				 -1,
				 10,
				 100,
				 999,
				 1000,
				 1001,
				 -1000,
				 -1500,
				 1686441600000,
				 1686441600010,
				 1686441600100,
				 INT64_MAX / 2048,
				 -(INT64_MAX / 2048)};

	(void)state;
	for (int i = 0; i < 60000; i++) {
		int64_t ms;
		char want[40], line[96];
		struct kl_prom p = {0};
		size_t len;
		char *s;

		xorshift(&x);
		if (i < (int)(sizeof(edges) / sizeof(*edges)))
			ms = edges[i];
		else if (i % 2)
			ms = 1686441600000 + (int64_t)(x % 400000000000); /* event times */
		else
			ms = (int64_t)(x % 20000000) - 10000; /* ages, a few negative */
		shortest_ref(want, sizeof(want), (double)ms / 1000.0);
		snprintf(line, sizeof(line), "t{symbol=\"BTCUSDT\"} %s\n", want);
		kl_prom_sample_ms(&p, "t", (const char *const[]){"symbol", "BTCUSDT"}, 1, ms);
		s = kl_prom_take(&p, &len);
		assert_non_null(s);
		if (strcmp(s, line) != 0 &&
		    (strchr(want, 'e') == NULL ||
		     strtod(strchr(s, ' ') + 1, NULL) != (double)ms / 1000.0))
			fail_msg("%lld ms: %s, want %s", (long long)ms, s, line);
		assert_int_equal(len, strlen(s));
		free(s);
	}
}

static void text(void **state)
{
	struct kl_prom p = {0};
	struct kl_histo h;
	const char *const lab[] = {"symbol", "A\"B\\C\nD"};
	const char *const two[] = {"a", "1", "b", "2"};
	size_t len = 0;
	char *s;

	(void)state;
	kl_histo_init(&h, bounds, 2);
	kl_histo_observe(&h, 0.005);
	kl_prom_family(&p, "klined_x_total", "counter", "things\\done\nnow");
	kl_prom_sample_u64(&p, "klined_x_total", NULL, 0, 18446744073709551615u);
	kl_prom_sample_u64(&p, "klined_x_total", lab, 1, 3);
	kl_prom_sample(&p, "klined_g", two, 2, 0.25);
	kl_prom_sample(&p, "klined_g", NULL, 0, INFINITY);
	kl_prom_sample(&p, "klined_g", NULL, 0, NAN);
	kl_prom_sample(&p, "klined_g", NULL, 0, 0.1 + 0.2); /* needs all 17 digits */
	kl_prom_sample(&p, "klined_g", NULL, 0, 1e21);
	kl_prom_histo(&p, "klined_h_seconds", two, 1, &h);
	assert_false(kl_prom_failed(&p));
	s = kl_prom_take(&p, &len);
	assert_non_null(s);
	assert_string_equal(s, "# HELP klined_x_total things\\\\done\\nnow\n"
			       "# TYPE klined_x_total counter\n"
			       "klined_x_total 18446744073709551615\n"
			       "klined_x_total{symbol=\"A\\\"B\\\\C\\nD\"} 3\n"
			       "klined_g{a=\"1\",b=\"2\"} 0.25\n"
			       "klined_g +Inf\n"
			       "klined_g NaN\n"
			       "klined_g 0.30000000000000004\n"
			       "klined_g 1e+21\n"
			       "klined_h_seconds_bucket{a=\"1\",le=\"0.001\"} 0\n"
			       "klined_h_seconds_bucket{a=\"1\",le=\"0.01\"} 1\n"
			       "klined_h_seconds_bucket{a=\"1\",le=\"+Inf\"} 1\n"
			       "klined_h_seconds_sum{a=\"1\"} 0.005\n"
			       "klined_h_seconds_count{a=\"1\"} 1\n");
	assert_int_equal(len, strlen(s));
	free(s);
	assert_null(p.buf);
}

static void grows(void **state)
{
	struct kl_prom p = {0};
	char *s;

	(void)state;
	for (int i = 0; i < 10000; i++)
		kl_prom_sample_u64(&p, "klined_many_total", NULL, 0, (uint64_t)i);
	s = kl_prom_take(&p, NULL);
	assert_non_null(s);
	assert_non_null(strstr(s, "klined_many_total 9999\n"));
	free(s);
	kl_prom_clear(&p); /* after take: a no-op */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(histo_buckets),   cmocka_unit_test(text),
	    cmocka_unit_test(shortest_digits), cmocka_unit_test(milliseconds),
	    cmocka_unit_test(grows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
