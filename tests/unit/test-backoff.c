/* lib/backoff.c: doubling, the 64 x ceiling, the cap, and jitter after the cap. */
#include "backoff.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void doubles_up_to_64x(void **state)
{
	(void)state;
	assert_int_equal(kl_backoff_ms(500, UINT64_MAX, 0, 0, 0), 500);
	assert_int_equal(kl_backoff_ms(500, UINT64_MAX, 1, 0, 0), 1000);
	assert_int_equal(kl_backoff_ms(500, UINT64_MAX, 6, 0, 0), 32000);
	assert_int_equal(kl_backoff_ms(500, UINT64_MAX, 7, 0, 0), 32000);
	assert_int_equal(kl_backoff_ms(500, UINT64_MAX, 4000000000u, 0, 0), 32000);
}

static void capped(void **state)
{
	(void)state;
	assert_int_equal(kl_backoff_ms(60000, 1800000, 5, 0, 0), 1800000);
	assert_int_equal(kl_backoff_ms(500, 30000, 6, 0, 0.99), 30000);
}

static void jitter_after_the_cap(void **state)
{
	(void)state;
	/* +-50 %: u = 0 is the lower edge, u -> 1 the upper one. */
	assert_int_equal(kl_backoff_ms(500, 30000, 10, 0.5, 0), 15000);
	assert_int_equal(kl_backoff_ms(500, 30000, 10, 0.5, 0.5), 30000);
	assert_in_range(kl_backoff_ms(500, 30000, 10, 0.5, 0.999999), 44990, 45000);
	/* +-25 % on a refusal pause past its 30 min cap */
	assert_int_equal(kl_backoff_ms(60000, 1800000, 6, 0.25, 0), 1350000);
}

static void uniform_in_range(void **state)
{
	(void)state;
	for (int i = 0; i < 10000; i++) {
		double u = kl_backoff_uniform();
		assert_true(u >= 0.0 && u < 1.0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(doubles_up_to_64x),
	    cmocka_unit_test(capped),
	    cmocka_unit_test(jitter_after_the_cap),
	    cmocka_unit_test(uniform_in_range),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
