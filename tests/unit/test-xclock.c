/* lib/xclock: a wrong /api/v3/time is not believed until it is consistent. */
#include "xclock.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define T0  1680220800000LL
#define DAY 86400000LL

static void a_day_ahead_for_35_s_is_not_believed(void **state)
{
	struct kl_xclock c = {0};

	(void)state;
	assert_true(kl_xclock_read(&c, T0, 1000, -1));
	for (uint64_t s = 2; s <= 36; s += 2)
		assert_false(kl_xclock_read(&c, T0 + DAY + (int64_t)s * 1000, 1000 + s * 1000, -1));
	assert_int_equal(c.ms, T0);
	assert_true(kl_xclock_read(&c, T0 + 38000, 39000, -1));
}

static void a_jump_that_stays_is_believed_after_two_minutes(void **state)
{
	struct kl_xclock c = {0};
	bool believed = false;
	uint64_t s;

	(void)state;
	assert_true(kl_xclock_read(&c, T0, 0, -1));
	for (s = 2; s <= 200 && !believed; s += 2)
		believed = kl_xclock_read(&c, T0 + DAY + (int64_t)s * 1000, s * 1000, -1);
	assert_true(believed);
	assert_true(s > 120);
	assert_int_equal(c.ms, T0 + DAY + (int64_t)(s - 2) * 1000);
}

static void the_stream_vouches_for_a_fast_clock(void **state)
{
	struct kl_xclock c = {0};

	(void)state;
	assert_true(kl_xclock_read(&c, T0, 0, -1));
	/* Virtual time at 3600x: 30 h in 30 s, with the stream's events to match. */
	assert_false(kl_xclock_read(&c, T0 + 30 * 3600000LL, 30000, -1));
	assert_true(kl_xclock_read(&c, T0 + 30 * 3600000LL, 30000, T0 + 30 * 3600000LL - 5000));
	/* Small steps are progress, backwards too (a frozen clock). */
	assert_true(kl_xclock_read(&c, T0 + 30 * 3600000LL + 3600000, 31000, -1));
	assert_true(kl_xclock_read(&c, T0 + 30 * 3600000LL, 32000, -1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_day_ahead_for_35_s_is_not_believed),
	    cmocka_unit_test(a_jump_that_stays_is_believed_after_two_minutes),
	    cmocka_unit_test(the_stream_vouches_for_a_fast_clock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
