/*
 * daemon/speed/ws*.c against a hostile exchange on 127.0.0.1 (ws_peer.c): it
 * refuses the upgrade (429, 403), accepts and drops after a few frames,
 * accepts and stalls (no frame, no ping), or announces serverShutdown. The limits are
 * shrunk (struct kl_ws_limits) so that backoff, silence and the attempt
 * budget show within seconds; times are the loop's, and only lower bounds
 * are asserted (a timer never fires early; a loaded machine only adds).
 */
#include "log.h"
#include "ws_peer.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static char *symbols[] = {"BTCUSDT"};

static void on_event(void *ud, const char *symbol, const char *data, size_t len)
{
	struct fixture *f = ud;
	char want[512];

	/* Each connection's events count from 0: only the routing is checked here. */
	assert_string_equal(symbol, "BTCUSDT");
	for (int i = 0; i < 64; i++) {
		peer_event_data(want, sizeof(want), i);
		if (strlen(want) == len && !memcmp(want, data, len)) {
			f->events++;
			return;
		}
	}
	f->bad++;
}

static void run(struct fixture *f, int (*step)(struct fixture *f), uint64_t limit_ms)
{
	peer_run(f, symbols, 1, on_event, step, limit_ms);
}

static uint64_t gap(const struct fixture *f, int k)
{
	return f->accepted_at[k + 1] - f->accepted_at[k];
}

/* The backoff before retry @p k can be no shorter than this: first x 2^k x (1 - 50 % jitter). */
static uint64_t backoff_floor(const struct fixture *f, int k)
{
	uint64_t d = f->lim.backoff_first_ms << k;

	return (d < f->lim.backoff_max_ms ? d : f->lim.backoff_max_ms) / 2;
}

static struct kl_ws_stats stats(const struct fixture *f)
{
	return peer_stats(f);
}

/* ---- the cases --------------------------------------------------------------------- */

static int six_attempts(struct fixture *f)
{
	return f->nconns >= 6 && f->conns[5]->closed;
}

static void refused_upgrade_backs_off_growing(void **state)
{
	struct fixture *f = *state;

	f->mode = REFUSE;
	run(f, six_attempts, 30000);
	assert_string_equal(f->path, "/stream?streams=btcusdt@kline_1m");
	/* 40 ms doubled per refusal, +-50 %: never sooner than 20, 40, 80, 160, 320 ms. */
	for (int k = 0; k < 5; k++) {
		if (gap(f, k) < backoff_floor(f, k))
			fail_msg("retry %d after %llu ms, sooner than the backoff's %llu", k,
				 (unsigned long long)gap(f, k),
				 (unsigned long long)backoff_floor(f, k));
	}
	assert_int_equal(f->ups, 0);
	assert_int_equal(f->events, 0);
}

static struct kl_ws_stats last;

static int fifteen_events(struct fixture *f)
{
	if (f->events < 15)
		return 0;
	last = stats(f);
	return 1;
}

static void dropped_after_frames_delivers_and_reconnects(void **state)
{
	struct fixture *f = *state;

	f->mode = DROP;
	f->frames = 3;
	run(f, fifteen_events, 30000);
	assert_int_equal(f->bad, 0);
	assert_int_equal(f->events, 15); /* 5 connections x 3 frames, each delivered once */
	assert_int_equal(f->ups, 5);
	assert_int_equal(last.connects, 5);
	assert_int_equal(last.frames, 15);
	assert_true(last.reconnects >= 4);
	/* A connection dropped right after its events does not reset the backoff:
	 * it keeps growing (40 ms +-50 % each time if it did). */
	for (int k = 1; k < 4; k++)
		assert_true(gap(f, k) >= backoff_floor(f, k));
}

static int two_attempts(struct fixture *f)
{
	if (f->nconns < 2 || stats(f).connects < 2)
		return 0;
	last = stats(f);
	return 1;
}

static void stalled_connection_is_dropped_after_the_silence(void **state)
{
	struct fixture *f = *state;

	f->mode = STALL;
	f->lim.silence_ms = 300;
	run(f, two_attempts, 30000);
	/* The client let go of the silent one (a close frame, answered), then came back. */
	assert_true(f->conns[0]->closed);
	/* 300 ms after the upgrade's answer, as the socket's last reception
	 * (TCP_INFO, in jiffies) and the loop's cached clock can tell. */
	assert_true(f->conns[0]->closed_at - f->accepted_at[0] >= 250);
	assert_true(f->accepted_at[1] >= f->conns[0]->closed_at);
	assert_int_equal(last.connects, 2);
	assert_int_equal(last.frames, 0);
	assert_int_equal(f->ups, 0);
}

/* The silence counts from the upgrade's answer, however late (lws's own
 * timeout ends an upgrade that is never answered). */
static void silence_counts_from_a_late_upgrade_answer(void **state)
{
	struct fixture *f = *state;

	f->mode = SLOW;
	f->lim.silence_ms = 200;
	f->upgrade_delay_ms = 500;
	run(f, two_attempts, 30000);
	assert_true(f->conns[0]->closed);
	assert_true(f->conns[0]->closed_at - f->accepted_at[0] >= 500 + 150);
	assert_int_equal(last.frames, 0);
}

static int seven_attempts(struct fixture *f)
{
	return f->nconns >= 7 && f->conns[6]->closed;
}

static void attempts_never_exceed_the_budget(void **state)
{
	struct fixture *f = *state;

	f->mode = DROP;
	f->frames = 1;
	f->lim.attempts = 3;
	f->lim.attempts_window_ms = 1000;
	f->lim.backoff_first_ms = 10;
	run(f, seven_attempts, 30000);
	/* Any 4 attempts span the window. The budget counts when the client
	 * starts an attempt, the server sees it later; attempt i starts after
	 * attempt i-1 was accepted (it reconnects once that one dropped), the
	 * first after kl_ws_new. The backoff alone would put attempts 0..3
	 * within 10+20+40 ms (+50 %). */
	for (int i = 0; i + 3 < f->nconns; i++) {
		uint64_t begun = i ? f->accepted_at[i - 1] : f->t_start;
		if (f->accepted_at[i + 3] < begun + 1000)
			fail_msg("attempts %d..%d within %llu ms", i, i + 3,
				 (unsigned long long)(f->accepted_at[i + 3] - begun));
	}
	assert_true(f->events >= 6);
}

static int rotated(struct fixture *f)
{
	if (!(f->nconns >= 2 && f->conns[0]->closed && f->events >= 3))
		return 0;
	last = stats(f);
	return 1;
}

static void server_shutdown_rotates_make_before_break(void **state)
{
	struct fixture *f = *state;

	f->mode = SHUTDOWN;
	run(f, rotated, 30000);
	/* The successor came while the old one was open, and the old one went only
	 * once the successor had delivered. */
	assert_int_equal(f->max_open, 2);
	assert_true(f->conns[1]->sent >= 1);
	assert_true(f->conns[0]->closed_at >= f->conns[1]->first_at);
	assert_int_equal(last.rotations, 1);
	assert_int_equal(last.reconnects, 0);
	assert_int_equal(f->nconns, 2);
	assert_int_equal(f->bad, 0);
}

static int request_seen(struct fixture *f)
{
	return f->nconns >= 1 && f->conns[0]->len > 0;
}

/* klined stops while the exchange has not answered the upgrade: lws 4.1.6
 * alone then kept the connection and a timer on the loop for ever. */
static void freed_while_the_upgrade_is_unanswered(void **state)
{
	struct fixture *f = *state;

	f->mode = HOLD;
	run(f, request_seen, 30000);
	assert_int_equal(f->nconns, 1);
}

static int accepted(struct fixture *f)
{
	return f->nconns >= 1;
}

/* ... or as soon as the connection is accepted, the request maybe not sent. */
static void freed_right_after_the_accept(void **state)
{
	struct fixture *f = *state;

	f->mode = HOLD;
	run(f, accepted, 30000);
}

int main(void)
{
	kl_log_setup(getenv("KLINED_TEST_DEBUG") ? KL_LOG_DEBUG : KL_LOG_WARN, false);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(refused_upgrade_backs_off_growing, peer_setup,
					    peer_teardown),
	    cmocka_unit_test_setup_teardown(dropped_after_frames_delivers_and_reconnects,
					    peer_setup, peer_teardown),
	    cmocka_unit_test_setup_teardown(stalled_connection_is_dropped_after_the_silence,
					    peer_setup, peer_teardown),
	    cmocka_unit_test_setup_teardown(silence_counts_from_a_late_upgrade_answer, peer_setup,
					    peer_teardown),
	    cmocka_unit_test_setup_teardown(attempts_never_exceed_the_budget, peer_setup,
					    peer_teardown),
	    cmocka_unit_test_setup_teardown(server_shutdown_rotates_make_before_break, peer_setup,
					    peer_teardown),
	    cmocka_unit_test_setup_teardown(freed_while_the_upgrade_is_unanswered, peer_setup,
					    peer_teardown),
	    cmocka_unit_test_setup_teardown(freed_right_after_the_accept, peer_setup,
					    peer_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
