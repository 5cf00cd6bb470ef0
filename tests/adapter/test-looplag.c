/*
 * daemon/core/looplag.c on a real libuv loop: a callback that blocks the loop
 * shows up as lag in the metrics, an idle loop shows none, and the handle
 * leaves nothing behind (uv_loop_close() == 0).
 */
#include "looplag.h"
#include "metrics.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

struct run {
	struct kl_looplag *ll;
	uv_timer_t block, stop;
	unsigned block_ms;
};

static void on_block(uv_timer_t *t)
{
	struct run *r = t->data;
	struct timespec ts = {0, (long)r->block_ms * 1000000L};

	nanosleep(&ts, NULL); /* a callback that hogs the loop */
}

static void on_stop(uv_timer_t *t)
{
	struct run *r = t->data;

	kl_looplag_free(r->ll);
	uv_close((uv_handle_t *)&r->block, NULL);
	uv_close((uv_handle_t *)&r->stop, NULL);
}

static void measure(unsigned block_ms, uint64_t *count, double *max)
{
	uv_loop_t loop;
	struct run r = {.block_ms = block_ms};

	assert_int_equal(kl_metrics_init(NULL, 0), 0);
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(kl_looplag_start(&loop, 10, &r.ll), 0);
	uv_timer_init(&loop, &r.block);
	uv_timer_init(&loop, &r.stop);
	r.block.data = r.stop.data = &r;
	if (block_ms)
		uv_timer_start(&r.block, on_block, 55, 0);
	uv_timer_start(&r.stop, on_stop, 400, 0);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	kl_metrics_loop_lag_get(count, max);
}

static void blocked_loop_shows(void **state)
{
	uint64_t count;
	double max;
	char *text;
	size_t len;

	(void)state;
	measure(150, &count, &max);
	assert_true(count >= 5);
	/* the tick due during the 150 ms block ran late by most of it */
	assert_true(max >= 0.1);
	assert_true(max < 5.0);
	assert_int_equal(kl_metrics_text(&text, &len), 0);
	assert_non_null(strstr(text, "klined_loop_lag_seconds_bucket{le=\"0.25\"}"));
	assert_non_null(strstr(text, "klined_loop_lag_max_seconds "));
	free(text);
	kl_metrics_free();
}

static void idle_loop_does_not(void **state)
{
	uint64_t count;
	double max;

	(void)state;
	measure(0, &count, &max);
	assert_true(count >= 10);
	assert_true(max < 0.1); /* generous: the machine may be busy, never 100 ms idle */
	kl_metrics_free();
}

static void freed_before_running(void **state)
{
	uv_loop_t loop;
	struct kl_looplag *ll;

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(kl_looplag_start(&loop, 1000, &ll), 0);
	/* unref'd: an idle loop with only the measuring timer exits at once */
	assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
	kl_looplag_free(ll);
	kl_looplag_free(NULL);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(blocked_loop_shows),
	    cmocka_unit_test(idle_loop_does_not),
	    cmocka_unit_test(freed_before_running),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
