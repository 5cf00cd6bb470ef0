/*
 * daemon/batch/rest.c against a scripted HTTP/1.1 server on the same loop
 * (plain uv TCP on 127.0.0.1): a closed port, a body cut short, a server
 * that never answers, 5xx, 429/418 with and without Retry-After, a WAF's
 * 403, 451 and -1003 bodies, final 4xx, bodies the caller finds bad, the
 * weight budget and a free from inside a callback. The intervals between
 * the requests the server sees are the backoff, the pause and the ban.
 * Every test ends with kl_rest_free and uv_loop_close(loop) == 0.
 */
#include "rest.h"

#include "httpd.h"

#include "conf.h"
#include "log.h"

#include <curl/curl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

struct fx {
	uv_loop_t loop;
	uv_timer_t deadline;
	bool expired;
	struct server srv;
	struct kl_conf *conf;
	struct kl_rest *rest;
	int calls, cancelled;
	int retry_first; /* the callback finds the first this many bodies bad */
	bool free_in_cb;
	long status[8];
	char body[8][64];
	int error_code;
	int bans;
	int64_t ban_until, ban_wall;
	char ban_why[192];
};

static void on_deadline(uv_timer_t *t)
{
	struct fx *f = t->data;

	f->expired = true;
}

static void option(struct fx *f, const char *name, const char *value)
{
	char err[256];

	if (kl_conf_set_option(f->conf, name, value, err, sizeof(err)) < 0)
		fail_msg("%s", err);
}

static void on_ban(void *ud, int64_t until_ms, const char *why)
{
	struct fx *f = ud;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	f->bans++;
	f->ban_until = until_ms;
	f->ban_wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	snprintf(f->ban_why, sizeof(f->ban_why), "%s", why);
}

/* The server listens; rest points at it, or at a closed @p port when > 0. */
static void start(struct fx *f, int port)
{
	char url[64];

	server_open(&f->loop, &f->srv);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port > 0 ? port : f->srv.port);
	option(f, "rest-url", url);
	assert_int_equal(kl_rest_new(&f->loop, f->conf, &f->rest), 0);
	kl_rest_on_ban(f->rest, on_ban, f);
}

static enum kl_rest_verdict on_reply(void *ud, const struct kl_rest_reply *r)
{
	struct fx *f = ud;

	if (r->cancelled) {
		f->cancelled++;
		return KL_REST_DONE;
	}
	if (f->calls < 8) {
		f->status[f->calls] = r->status;
		snprintf(f->body[f->calls], sizeof(f->body[0]), "%.*s", (int)r->len, r->body);
	}
	f->error_code = kl_rest_error_code(r, NULL, 0);
	if (f->calls++ < f->retry_first)
		return KL_REST_RETRY;
	if (f->free_in_cb)
		kl_rest_free(f->rest);
	return KL_REST_DONE;
}

/* Run the loop until @p calls answers arrived, or @p ms passed (then false). */
static bool run_until(struct fx *f, int calls, uint64_t ms)
{
	f->expired = false;
	uv_timer_start(&f->deadline, on_deadline, ms, 0);
	while (!f->expired && f->calls < calls)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_timer_stop(&f->deadline);
	return f->calls >= calls;
}

static void get(struct fx *f, const char *path, int weight)
{
	assert_int_equal(kl_rest_get(f->rest, path, weight, on_reply, f), 0);
}

static uint64_t gap(const struct fx *f, size_t i)
{
	return f->srv.at[i] - f->srv.at[i - 1];
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(kl_conf_new(&f->conf), 0);
	option(f, "rest-timeout", "300ms");
	option(f, "rest-refusal-pause", "200ms");
	uv_loop_init(&f->loop);
	uv_timer_init(&f->loop, &f->deadline);
	f->deadline.data = f;
	*state = f;
	return 0;
}

/* kl_rest_free, the server closed: nothing may be left on the loop. */
static int teardown(void **state)
{
	struct fx *f = *state;

	kl_rest_free(f->rest);
	server_close(&f->srv);
	uv_close((uv_handle_t *)&f->deadline, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	kl_conf_free(f->conf);
	free(f);
	return 0;
}

static void script(struct fx *f, const struct reply *r, size_t n)
{
	memcpy(f->srv.script, r, n * sizeof(*r));
	f->srv.nscript = n;
}

static void an_answer_and_its_weight(void **state)
{
	struct fx *f = *state;
	const struct reply r[] = {
	    {ANSWER, 200, "X-MBX-USED-WEIGHT-1M: 42\r\n", "{\"serverTime\":1}"}};
	struct kl_rest_stats rs;

	script(f, r, 1);
	start(f, 0);
	get(f, "/api/v3/time", 1);
	assert_true(run_until(f, 1, 5000));
	assert_int_equal(f->status[0], 200);
	assert_string_equal(f->body[0], "{\"serverTime\":1}");
	assert_string_equal(f->srv.path[0], "/api/v3/time");
	kl_rest_stats(f->rest, &rs);
	assert_int_equal(rs.requests, 1);
	assert_int_equal(rs.retries, 0);
	assert_int_equal(rs.used_weight, 42);
	assert_int_equal(rs.weight_limit, 6000);
	kl_rest_set_weight_limit(f->rest, 1200);
	kl_rest_stats(f->rest, &rs);
	assert_int_equal(rs.weight_limit, 1200);
}

static void server_errors_are_retried_with_backoff(void **state)
{
	struct fx *f = *state;
	const struct reply r[] = {
	    {ANSWER, 503, NULL, "<html><body>503 Service Unavailable</body></html>"},
	    {ANSWER, 500, NULL, "{\"code\":-1000,\"msg\":\"An unknown error occurred.\"}"},
	    {ANSWER, 200, NULL, "[]"},
	};
	struct kl_rest_stats rs;

	script(f, r, 3);
	start(f, 0);
	get(f, "/api/v3/klines?symbol=BTCUSDT", 2);
	assert_true(run_until(f, 1, 10000));
	assert_int_equal(f->calls, 1);
	assert_int_equal(f->status[0], 200);
	assert_int_equal(f->srv.nseen, 3);
	/* 0.5 s then 1 s, each +-50% */
	assert_true(gap(f, 1) >= 250 && gap(f, 1) < 2000);
	assert_true(gap(f, 2) >= 500 && gap(f, 2) < 3000);
	kl_rest_stats(f->rest, &rs);
	assert_int_equal(rs.retries, 2);
	assert_int_equal(rs.refused, 0);
	assert_int_equal(f->bans, 0);
}

static void a_body_cut_short_is_retried(void **state)
{
	struct fx *f = *state;
	const struct reply r[] = {{DROP, 200, NULL, "[[1672531200000,\"16541.77\""},
				  {ANSWER, 200, NULL, "[]"}};
	struct kl_rest_stats rs;

	script(f, r, 2);
	start(f, 0);
	get(f, "/api/v3/klines?symbol=BTCUSDT", 2);
	assert_true(run_until(f, 1, 10000));
	assert_int_equal(f->calls, 1);
	assert_string_equal(f->body[0], "[]");
	kl_rest_stats(f->rest, &rs);
	assert_int_equal(rs.retries, 1);
}

static void a_stalled_server_times_out_and_is_retried(void **state)
{
	struct fx *f = *state;
	const struct reply r[] = {{STALL, 0, NULL, NULL}, {ANSWER, 200, NULL, "[]"}};
	struct kl_rest_stats rs;

	script(f, r, 2);
	start(f, 0);
	get(f, "/api/v3/time", 1);
	assert_true(run_until(f, 1, 10000));
	assert_int_equal(f->srv.nseen, 2);
	/* [rest] timeout 300 ms, then the first backoff (>= 250 ms) */
	assert_true(gap(f, 1) >= 300 + 250);
	kl_rest_stats(f->rest, &rs);
	assert_int_equal(rs.retries, 1);
}

static void a_closed_port_is_retried_until_freed(void **state)
{
	struct fx *f = *state;
	struct kl_rest_stats rs;

	start(f, closed_port());
	get(f, "/api/v3/time", 1);
	assert_false(run_until(f, 1, 1600));
	kl_rest_stats(f->rest, &rs);
	assert_true(rs.requests >= 2);
	assert_true(rs.retries >= 2);
	assert_int_equal(f->calls, 0);
	assert_int_equal(f->bans, 0);
	kl_rest_free(f->rest);
	f->rest = NULL;
	uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_int_equal(f->cancelled, 1);
}

static void retry_after_429_holds_every_request(void **state)
{
	struct fx *f = *state;
	const struct reply r[] = {
	    {ANSWER, 429, "Retry-After: 1\r\n", "{\"code\":-1003,\"msg\":\"Too many requests.\"}"},
	    {ANSWER, 200, NULL, "[1]"},
	    {ANSWER, 200, NULL, "[2]"},
	};
	struct kl_rest_stats rs;

	option(f, "rest-concurrency", "1");
	script(f, r, 3);
	start(f, 0);
	get(f, "/a", 1);
	get(f, "/b", 1);
	assert_true(run_until(f, 2, 10000));
	assert_int_equal(f->srv.nseen, 3);
	/* Retry-After plus the 250 ms margin; the other request waited too. */
	assert_true(gap(f, 1) >= 1250);
	assert_int_equal(f->bans, 1);
	assert_non_null(strstr(f->ban_why, "HTTP 429 Retry-After 1 s"));
	assert_true(f->ban_until - f->ban_wall > 1000 && f->ban_until - f->ban_wall <= 1300);
	kl_rest_stats(f->rest, &rs);
	assert_int_equal(rs.throttled, 1);
	assert_int_equal(rs.retries, 0);
	assert_int_equal(rs.paused_ms, 0);
}

static void a_ban_without_retry_after_is_a_minute(void **state)
{
	struct fx *f = *state;
	const struct reply r[] = {{ANSWER, 418, NULL, "{\"code\":-1003,\"msg\":\"banned\"}"}};
	struct kl_rest_stats rs;

	script(f, r, 1);
	start(f, 0);
	get(f, "/api/v3/time", 1);
	f->expired = false;
	uv_timer_start(&f->deadline, on_deadline, 5000, 0);
	while (!f->expired && !f->bans)
		uv_run(&f->loop, UV_RUN_ONCE);
	assert_int_equal(f->bans, 1);
	assert_non_null(strstr(f->ban_why, "HTTP 418 Retry-After 60 s"));
	kl_rest_stats(f->rest, &rs);
	assert_true(rs.paused_ms > 59000 && rs.paused_ms <= 60250);
	assert_int_equal(rs.throttled, 1);
	/* Freed during the ban: the request is cancelled, nothing more is sent. */
	kl_rest_free(f->rest);
	f->rest = NULL;
	uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_int_equal(f->cancelled, 1);
	assert_int_equal(f->calls, 0);
	assert_int_equal(f->srv.nseen, 1);
}

static void refusals_pause_everything_doubling_until_a_2xx(void **state)
{
	struct fx *f = *state;
	const struct reply r[] = {
	    {ANSWER, 403, NULL,
	     "<html><head><title>403 Forbidden</title></head><body><h1>403 Forbidden</h1>"
	     "</body></html>"},
	    {ANSWER, 451, NULL, "{\"code\":0,\"msg\":\"restricted location\"}"},
	    {ANSWER, 400, NULL, "{\"code\":-1003,\"msg\":\"Too many requests.\"}"},
	    {ANSWER, 200, NULL, "[1]"},
	    {ANSWER, 403, NULL, "Forbidden"},
	    {ANSWER, 200, NULL, "[2]"},
	};
	struct kl_rest_stats rs;

	script(f, r, 6);
	start(f, 0);
	get(f, "/a", 1);
	assert_true(run_until(f, 1, 10000));
	/* [rest] refusal_pause 200 ms, doubling, +-25% */
	assert_true(gap(f, 1) >= 150 && gap(f, 1) < 2000);
	assert_true(gap(f, 2) >= 300 && gap(f, 2) < 3000);
	assert_true(gap(f, 3) >= 600 && gap(f, 3) < 4000);
	assert_int_equal(f->bans, 3);
	assert_string_equal(f->body[0], "[1]");
	kl_rest_stats(f->rest, &rs);
	assert_int_equal(rs.refused, 3);
	assert_int_equal(rs.retries, 0);
	assert_non_null(strstr(rs.why, "code -1003"));
	/* The 2xx reset the doubling: the next refusal pauses 200 ms again. */
	get(f, "/b", 1);
	assert_true(run_until(f, 2, 10000));
	assert_int_equal(f->srv.nseen, 6);
	assert_true(gap(f, 5) >= 150 && gap(f, 5) < 300 + 2000);
	assert_non_null(strstr(f->ban_why, "the exchange's firewall"));
	assert_string_equal(f->body[1], "[2]");
}

static void a_final_4xx_goes_to_the_caller_once(void **state)
{
	struct fx *f = *state;
	const struct reply r[] = {
	    {ANSWER, 400, NULL, "{\"code\":-1121,\"msg\":\"Invalid symbol.\"}"}};
	struct kl_rest_stats rs;

	script(f, r, 1);
	start(f, 0);
	get(f, "/api/v3/klines?symbol=NOPE", 2);
	assert_true(run_until(f, 1, 5000));
	assert_int_equal(f->status[0], 400);
	assert_int_equal(f->error_code, -1121);
	kl_rest_stats(f->rest, &rs);
	assert_int_equal(rs.retries + rs.refused + rs.throttled, 0);
	assert_int_equal(f->srv.nseen, 1);
}

static void a_body_the_caller_refuses_is_retried(void **state)
{
	struct fx *f = *state;
	const struct reply r[] = {{ANSWER, 200, NULL, "[[1672531200000,\"1654"},
				  {ANSWER, 200, NULL, ""},
				  {ANSWER, 200, NULL, "[]"}};
	struct kl_rest_stats rs;

	f->retry_first = 2;
	script(f, r, 3);
	start(f, 0);
	get(f, "/api/v3/klines?symbol=BTCUSDT", 2);
	assert_true(run_until(f, 3, 10000));
	assert_string_equal(f->body[0], "[[1672531200000,\"1654");
	assert_string_equal(f->body[1], "");
	assert_string_equal(f->body[2], "[]");
	assert_true(gap(f, 1) >= 250 && gap(f, 2) >= 500);
	kl_rest_stats(f->rest, &rs);
	assert_int_equal(rs.retries, 2);
}

/* The minute window is the wall clock's: keep clear of its edge. */
static void away_from_a_minute_edge(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec % 60 >= 55)
		sleep((unsigned)(61 - ts.tv_sec % 60));
}

static void the_weight_budget_holds_a_request_to_the_next_minute(void **state)
{
	struct fx *f = *state;
	const struct reply r[] = {{ANSWER, 200, "X-MBX-USED-WEIGHT-1M: 15\r\n", "[]"}};
	struct kl_rest_stats rs;

	away_from_a_minute_edge();
	/* The loop was made before that sleep: its cached time would start every
	 * timer, the deadline's too, seconds in the past. */
	uv_update_time(&f->loop);
	option(f, "rest-weight-limit", "21"); /* 20 after the 5% kept for others */
	script(f, r, 1);
	start(f, 0);
	get(f, "/a", 5);
	assert_true(run_until(f, 1, 5000));
	get(f, "/b", 6); /* 15 + 6 > 20 */
	assert_false(run_until(f, 2, 500));
	kl_rest_stats(f->rest, &rs);
	assert_int_equal(rs.used_weight, 15);
	assert_int_equal(rs.queued, 1);
	assert_int_equal(rs.requests, 1);
	assert_int_equal(f->srv.nseen, 1);
	kl_rest_free(f->rest);
	f->rest = NULL;
	uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_int_equal(f->cancelled, 1);
}

static void freed_from_inside_a_callback(void **state)
{
	struct fx *f = *state;
	const struct reply r[] = {{ANSWER, 200, NULL, "[1]"}, {STALL, 0, NULL, NULL}};

	option(f, "rest-concurrency", "2");
	f->free_in_cb = true;
	script(f, r, 2);
	start(f, 0);
	get(f, "/a", 1);
	get(f, "/b", 1);
	get(f, "/c", 1);
	assert_true(run_until(f, 1, 5000));
	f->rest = NULL; /* freed by the callback */
	uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_int_equal(f->calls, 1);
	assert_int_equal(f->cancelled, 2); /* the stalled one in flight and the queued one */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(an_answer_and_its_weight, setup, teardown),
	    cmocka_unit_test_setup_teardown(server_errors_are_retried_with_backoff, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(a_body_cut_short_is_retried, setup, teardown),
	    cmocka_unit_test_setup_teardown(a_stalled_server_times_out_and_is_retried, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(a_closed_port_is_retried_until_freed, setup, teardown),
	    cmocka_unit_test_setup_teardown(retry_after_429_holds_every_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(a_ban_without_retry_after_is_a_minute, setup, teardown),
	    cmocka_unit_test_setup_teardown(refusals_pause_everything_doubling_until_a_2xx, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(a_final_4xx_goes_to_the_caller_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(a_body_the_caller_refuses_is_retried, setup, teardown),
	    cmocka_unit_test_setup_teardown(the_weight_budget_holds_a_request_to_the_next_minute,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(freed_from_inside_a_callback, setup, teardown),
	};
	int r;

	kl_log_setup(KL_LOG_WARN, false);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return r;
}
