/* What the lib/kline tests share. */
#ifndef KL_TEST_KLINE_TEST_H
#define KL_TEST_KLINE_TEST_H

#include "kline.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* Field by field: 128-bit members leave padding that a memcmp would see. */
static inline void assert_kline_equal(const struct kl_kline *a, const struct kl_kline *b)
{
	assert_int_equal(a->open_time, b->open_time);
	assert_int_equal(a->close_time, b->close_time);
	assert_true(a->open == b->open && a->high == b->high && a->low == b->low &&
		    a->close == b->close);
	assert_true(a->volume == b->volume && a->quote_volume == b->quote_volume &&
		    a->taker_base == b->taker_base && a->taker_quote == b->taker_quote);
	assert_int_equal(a->trades, b->trades);
}

#endif
