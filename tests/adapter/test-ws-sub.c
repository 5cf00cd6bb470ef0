/*
 * kl_ws_set_symbols against the in-process exchange (ws_peer.c, SERVE): it
 * serves an event per stream every 50 ms, answers SUBSCRIBE/UNSUBSCRIBE as
 * Binance does, and records when each control message arrived, so the
 * tests see which connections were opened or closed, what was asked, and
 * that no connection ever sent more than 3 control messages in a second
 * (the exchange disconnects beyond 5, pongs included).
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
#include <unistd.h>

#include <cmocka.h>

enum { A, B, C, D, E, F, G, BAD, NSYM };
static char *names[NSYM] = {"AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT",
			    "EEEUSDT", "FFFUSDT", "GGGUSDT", "BADUSDT"};
static int phase;
static uint64_t phase_at;

static void on_event(void *ud, const char *symbol, const char *data, size_t len)
{
	struct fixture *f = ud;

	(void)data;
	(void)len;
	f->events++;
	for (int k = 0; k < NSYM; k++)
		if (!strcmp(symbol, names[k])) {
			f->by_sym[k]++;
			return;
		}
	f->bad++;
}

/* Stream the symbols of @p which (indices into names, -1 ends). */
static void set(struct fixture *f, const int *which)
{
	char *v[NSYM];
	size_t n = 0;

	for (; *which >= 0; which++)
		v[n++] = names[*which];
	assert_int_equal(kl_ws_set_symbols(f->ws, v, n), 0);
}

static void next_phase(struct fixture *f)
{
	phase++;
	phase_at = uv_now(&f->loop);
	memset(f->by_sym, 0, sizeof(f->by_sym));
}

static int setup(void **state)
{
	phase = 0;
	phase_at = 0;
	return peer_setup(state);
}

static void start(struct fixture *f, const int *which, int (*step)(struct fixture *f))
{
	char *v[NSYM];
	size_t n = 0;

	f->mode = SERVE;
	for (; *which >= 0; which++)
		v[n++] = names[*which];
	peer_run(f, v, n, on_event, step, 30000);
}

/* No connection received 4 control messages within a second. */
static void assert_paced(const struct fixture *f)
{
	for (int i = 0; i < f->nconns; i++) {
		const struct sconn *c = f->conns[i];
		for (int k = 0; k + 3 < c->nctrl && k + 3 < MAX_CTRL; k++)
			if (c->ctrl_at[k + 3] - c->ctrl_at[k] < 1000)
				fail_msg("connection %d: control messages %d..%d within %llu ms", i,
					 k, k + 3,
					 (unsigned long long)(c->ctrl_at[k + 3] - c->ctrl_at[k]));
	}
}

static bool carries(const struct sconn *c, const char *const *streams, int n)
{
	if (c->nstreams != n)
		return false;
	for (int k = 0; k < n; k++)
		if (!peer_has(c, streams[k]))
			return false;
	return true;
}

/* ---- symbols added and removed on two live connections ---------------------------- */

static struct kl_ws_stats last;
static bool any_closed; /* when the client was done */

static int add_remove(struct fixture *f)
{
	struct kl_ws_stats st = peer_stats(f);
	static const char *const c0[] = {"cccusdt@kline_1m"}, *const c1[] = {"fffusdt@kline_1m"};

	switch (phase) {
	case 0: /* (A B C) and (D), all delivering */
		if (f->nconns < 2 || !f->by_sym[A] || !f->by_sym[C] || !f->by_sym[D])
			return 0;
		set(f, (const int[]){A, C, D, E, F, -1});
		next_phase(f);
		return 0;
	case 1: /* B out, E and F in: (A C E) and (D F) */
		if (st.subscribed < 2 || st.unsubscribed < 1 || !f->by_sym[E] || !f->by_sym[F])
			return 0;
		set(f, (const int[]){C, F, -1});
		next_phase(f);
		return 0;
	case 2: /* A, E and D out: (C) and (F) */
		if (st.unsubscribed < 4)
			return 0;
		if (!carries(f->conns[0], c0, 1) || !carries(f->conns[1], c1, 1))
			return 0;
		last = st;
		any_closed = f->conns[0]->closed || f->conns[1]->closed;
		return 1;
	}
	return 0;
}

static void added_and_removed_on_live_connections(void **state)
{
	struct fixture *f = *state;

	f->lim.streams_per_conn = 3;
	start(f, (const int[]){A, B, C, D, -1}, add_remove);
	assert_string_equal(f->path, "/stream?streams=dddusdt@kline_1m");
	/* Neither opened nor closed: the two connections carried every change. */
	assert_int_equal(f->nconns, 2);
	assert_false(any_closed);
	assert_int_equal(last.connects, 2);
	assert_int_equal(last.reconnects, 0);
	/* (A B C): UNSUBSCRIBE B, SUBSCRIBE E, UNSUBSCRIBE A E; (D): SUBSCRIBE F, UNSUBSCRIBE D. */
	assert_int_equal(f->conns[0]->nctrl, 3);
	assert_int_equal(f->conns[1]->nctrl, 2);
	assert_int_equal(last.control_msgs, 5);
	assert_int_equal(last.subscribed, 2);
	assert_int_equal(last.unsubscribed, 4);
	assert_int_equal(f->subs, 2);
	assert_int_equal(f->unsubs, 4);
	assert_int_equal(f->bad, 0);
	assert_paced(f);
}

/* ---- a reconnect after a change ---------------------------------------------------- */

static int reconnect_after_change(struct fixture *f)
{
	struct kl_ws_stats st = peer_stats(f);

	switch (phase) {
	case 0:
		if (!f->by_sym[A] || !f->by_sym[B])
			return 0;
		set(f, (const int[]){A, C, -1});
		next_phase(f);
		return 0;
	case 1:
		if (st.subscribed < 1 || st.unsubscribed < 1)
			return 0;
		peer_end(f->conns[0]); /* the exchange drops it */
		next_phase(f);
		return 0;
	case 2:
		return f->nconns == 2 && f->by_sym[A] && f->by_sym[C];
	}
	return 0;
}

static void reconnect_after_a_change_carries_the_new_set(void **state)
{
	struct fixture *f = *state;

	f->lim.streams_per_conn = 3;
	start(f, (const int[]){A, B, -1}, reconnect_after_change);
	assert_string_equal(f->path, "/stream?streams=aaausdt@kline_1m/cccusdt@kline_1m");
	assert_int_equal(f->conns[1]->nctrl, 0); /* its URL carried it all */
	assert_int_equal(f->by_sym[B], 0);
	assert_int_equal(f->bad, 0);
}

/* ---- an error answer ----------------------------------------------------------------- */

static int refused_once(struct fixture *f)
{
	switch (phase) {
	case 0:
		if (!f->by_sym[A])
			return 0;
		set(f, (const int[]){A, BAD, C, -1});
		next_phase(f);
		return 0;
	case 1: /* then 3 s more: nothing is asked again */
		return f->by_sym[C] && uv_now(&f->loop) - phase_at >= 3000;
	}
	return 0;
}

static void refused_stream_is_logged_not_asked_again(void **state)
{
	struct fixture *f = *state;
	FILE *log = tmpfile();
	int saved = dup(2);
	char text[8192];
	size_t n;

	assert_non_null(log);
	f->refuse = "badusdt@kline_1m";
	f->lim.streams_per_conn = 3;
	fflush(stderr);
	dup2(fileno(log), 2);
	start(f, (const int[]){A, -1}, refused_once);
	last = (struct kl_ws_stats){0};
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(log);
	n = fread(text, 1, sizeof(text) - 1, log);
	text[n] = '\0';
	fclose(log);
	fputs(text, stderr);
	/* [bad, ccc] refused; then each alone: bad refused, ccc taken. Not once more. */
	assert_int_equal(f->refused, 2);
	assert_int_equal(f->ctrl, 3);
	assert_int_equal(f->nconns, 1);
	assert_non_null(strstr(text,
			       "refused SUBSCRIBE of badusdt@kline_1m, cccusdt@kline_1m: "
			       "Invalid request: invalid stream name; asking for each alone"));
	assert_non_null(strstr(text, "refused SUBSCRIBE of badusdt@kline_1m: Invalid request: "
				     "invalid stream name; not asking for it again"));
	assert_null(strstr(text, "of cccusdt@kline_1m:"));
	assert_true(peer_has(f->conns[0], "cccusdt@kline_1m"));
	assert_false(peer_has(f->conns[0], "badusdt@kline_1m"));
	assert_paced(f);
}

/* ---- a burst of changes ------------------------------------------------------------ */

static int burst(struct fixture *f)
{
	static const char *const all[] = {
	    "aaausdt@kline_1m", "bbbusdt@kline_1m", "cccusdt@kline_1m", "dddusdt@kline_1m",
	    "eeeusdt@kline_1m", "fffusdt@kline_1m", "gggusdt@kline_1m"};
	struct kl_ws_stats st = peer_stats(f);

	if (phase == 0) {
		if (!f->by_sym[A])
			return 0;
		next_phase(f);
	}
	if (phase <= 20) {
		/* One call a tick, the set growing and shrinking: A and the first k of B..G. */
		int which[NSYM], k = (phase * 5) % 7, n = 0;
		which[n++] = A;
		for (int i = 0; i < k; i++)
			which[n++] = B + i;
		which[n] = -1;
		if (phase == 20)
			memcpy(which, (const int[]){A, B, C, D, E, F, G, -1}, sizeof(int) * 8);
		set(f, which);
		phase++;
		return 0;
	}
	if (!carries(f->conns[0], all, 7) || st.subscribed + 1 < (uint64_t)f->subs)
		return 0;
	last = st;
	return 1;
}

static void a_burst_of_changes_coalesces_within_the_pace(void **state)
{
	struct fixture *f = *state;

	f->lim.streams_per_conn = 10;
	start(f, (const int[]){A, -1}, burst);
	/* 20 changes in 200 ms: one request in flight, the next 400 ms later with
	 * whatever the set is then. */
	assert_true(f->ctrl <= 4);
	assert_int_equal(f->nconns, 1);
	assert_int_equal(last.control_msgs, (uint64_t)f->ctrl);
	assert_paced(f);
}

/* ---- a connection only when the live ones are full ------------------------------- */

static int grow_shrink(struct fixture *f)
{
	switch (phase) {
	case 0:
		if (!f->by_sym[A] || !f->by_sym[B])
			return 0;
		set(f, (const int[]){A, B, C, -1}); /* (A B) is full */
		next_phase(f);
		return 0;
	case 1:
		if (!f->by_sym[C])
			return 0;
		set(f, (const int[]){A, B, -1}); /* (C) has nothing left */
		next_phase(f);
		return 0;
	case 2:
		if (f->nconns < 2 || !f->conns[1]->closed)
			return 0;
		set(f, (const int[]){A, B, D, -1});
		next_phase(f);
		return 0;
	case 3:
		if (!f->by_sym[D])
			return 0;
		last = peer_stats(f);
		any_closed = f->conns[0]->closed;
		return 1;
	}
	return 0;
}

static void a_connection_only_when_the_live_ones_are_full(void **state)
{
	struct fixture *f = *state;

	f->lim.streams_per_conn = 2;
	start(f, (const int[]){A, B, -1}, grow_shrink);
	assert_int_equal(f->nconns, 3);
	assert_string_equal(f->path, "/stream?streams=dddusdt@kline_1m");
	assert_false(any_closed);
	assert_int_equal(f->conns[0]->nctrl, 0); /* (A B) never changed */
	assert_int_equal(f->ctrl, 0);
	assert_int_equal(last.reconnects, 0);
}

/* ---- more streams than a URL carries; a rotation ----------------------------------- */

#define MANY 150
static char many_names[MANY][16];

static int rotated(struct fixture *f)
{
	return f->nconns >= 2 && f->conns[0]->closed && f->conns[1]->nstreams == MANY &&
	       f->conns[1]->sent > MANY;
}

static void a_rotation_subscribes_what_the_url_cannot_carry_before_the_break(void **state)
{
	struct fixture *f = *state;
	char *v[MANY];

	for (int i = 0; i < MANY; i++) {
		snprintf(many_names[i], sizeof(many_names[i]), "S%03dUSDT", i);
		v[i] = many_names[i];
	}
	f->mode = SERVE;
	f->shutdown_first = true;
	f->ack_delay_ms = 300; /* the successor delivers its URL's streams long before */
	peer_run(f, v, MANY, on_event, rotated, 30000);
	/* 99 streams in each URL (1,800 bytes), the other 51 in one SUBSCRIBE. */
	assert_int_equal(f->nconns, 2);
	assert_int_equal(f->max_open, 2);
	assert_int_equal(f->conns[0]->nctrl, 1);
	assert_int_equal(f->conns[1]->nctrl, 1);
	assert_int_equal(f->subs, 2 * (MANY - 99));
	assert_true(strlen(f->path) <= 1800);
	/* The old connection went only once its successor carried every stream. */
	assert_int_equal(f->conns[0]->next_streams, MANY);
	assert_true(f->conns[0]->closed_at >= f->conns[1]->ctrl_at[0]);
	assert_paced(f);
}

/* ---- a request never answered ------------------------------------------------------ */

static int unanswered(struct fixture *f)
{
	switch (phase) {
	case 0:
		if (!f->by_sym[A])
			return 0;
		set(f, (const int[]){A, C, -1});
		next_phase(f);
		return 0;
	case 1: /* its answer would come after 100 s; 2 s are enough */
		if (uv_now(&f->loop) - phase_at < 2000)
			return 0;
		last = peer_stats(f);
		return 1;
	}
	return 0;
}

static void an_unanswered_request_is_given_up_not_repeated(void **state)
{
	struct fixture *f = *state;

	f->lim.ack_ms = 300;
	f->ack_delay_ms = 100000;
	start(f, (const int[]){A, -1}, unanswered);
	assert_int_equal(f->ctrl, 1);
	assert_int_equal(last.control_msgs, 1);
	assert_int_equal(last.refused, 1);
	assert_int_equal(last.subscribed, 0);
	assert_int_equal(f->nconns, 1);
}

/* ---- emptied while its upgrade is unanswered ---------------------------------------- */

static int emptied_while_connecting(struct fixture *f)
{
	switch (phase) {
	case 0:
		if (f->nconns < 1)
			return 0;
		assert_int_equal(kl_ws_set_symbols(f->ws, NULL, 0), 0);
		next_phase(f);
		return 0;
	case 1: /* the upgrade's answer comes 300 ms later: then the connection must go */
		if (!f->conns[0]->closed)
			return 0;
		last = peer_stats(f);
		return 1;
	}
	return 0;
}

static void emptied_while_connecting_closes_once_upgraded(void **state)
{
	struct fixture *f = *state;

	f->mode = SLOW;
	f->upgrade_delay_ms = 300;
	peer_run(f, (char *[]){names[A]}, 1, on_event, emptied_while_connecting, 30000);
	assert_int_equal(f->nconns, 1);
	assert_true(f->conns[0]->upgraded);
	assert_int_equal(last.reconnects, 0);
	assert_int_equal(f->ctrl, 0);
}

int main(void)
{
	kl_log_setup(getenv("KLINED_TEST_DEBUG") ? KL_LOG_DEBUG : KL_LOG_WARN, false);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(added_and_removed_on_live_connections, setup,
					    peer_teardown),
	    cmocka_unit_test_setup_teardown(reconnect_after_a_change_carries_the_new_set, setup,
					    peer_teardown),
	    cmocka_unit_test_setup_teardown(refused_stream_is_logged_not_asked_again, setup,
					    peer_teardown),
	    cmocka_unit_test_setup_teardown(a_burst_of_changes_coalesces_within_the_pace, setup,
					    peer_teardown),
	    cmocka_unit_test_setup_teardown(a_connection_only_when_the_live_ones_are_full, setup,
					    peer_teardown),
	    cmocka_unit_test_setup_teardown(
		a_rotation_subscribes_what_the_url_cannot_carry_before_the_break, setup,
		peer_teardown),
	    cmocka_unit_test_setup_teardown(an_unanswered_request_is_given_up_not_repeated, setup,
					    peer_teardown),
	    cmocka_unit_test_setup_teardown(emptied_while_connecting_closes_once_upgraded, setup,
					    peer_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
