/*
 * daemon/speed/ws*.c against a hostile exchange on 127.0.0.1: a plain libuv
 * TCP server on the same loop that speaks just enough HTTP and RFC 6455 to
 * refuse the upgrade (429, 403), accept and drop after a few frames, accept
 * and stall (no frame, no ping), or announce serverShutdown. The limits are
 * shrunk (struct kl_ws_limits) so that backoff, silence and the attempt
 * budget show within seconds; times are the loop's, and only lower bounds
 * are asserted (a timer never fires early; a loaded machine only adds).
 */
#include "log.h"
#include "lwsctx.h"
#include "ws.h"

#include <libwebsockets.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MAX_CONNS 64
#define T0_E	  1678489200000LL /* 2023-03-10T23:00:00Z, an event time */

enum mode {
	REFUSE,	  /* answer the upgrade 429, then 403, alternately */
	DROP,	  /* accept, send `frames` events, close the socket */
	STALL,	  /* accept, then nothing at all */
	SHUTDOWN, /* accept; the first connection announces serverShutdown */
	HOLD,	  /* read the request, answer nothing */
};

struct fixture;

struct sconn {
	uv_tcp_t tcp;
	uv_timer_t feed; /* SHUTDOWN: the successor's events */
	struct fixture *f;
	int id;
	char req[4096];
	size_t len;
	bool upgraded, closed;
	int sent;		      /* events sent */
	uint64_t closed_at, first_at; /* uv_now(): gone; its first event sent */
};

struct fixture {
	uv_loop_t loop;
	uv_tcp_t listener;
	uv_timer_t tick, deadline;
	int port;
	enum mode mode;
	int frames;
	struct sconn *conns[MAX_CONNS];
	uint64_t accepted_at[MAX_CONNS];
	int nconns, open, max_open;
	char path[256]; /* of the last request */
	struct kl_conf conf;
	char url[64];
	struct kl_ws_limits lim;
	struct kl_ws *ws;
	int (*step)(struct fixture *f); /* each tick; 1: done */
	int events, ups, bad;
	bool done;
	uint64_t t_start; /* uv_now() at kl_ws_new */
};

static char *symbols[] = {"BTCUSDT"};

/* ---- the server ------------------------------------------------------------------ */

static void on_tcp_closed(uv_handle_t *h)
{
	struct sconn *c = h->data;

	uv_close((uv_handle_t *)&c->feed, NULL); /* c itself is freed in teardown */
}

static void sconn_close(struct sconn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	c->closed_at = uv_now(&c->f->loop);
	c->f->open--;
	uv_timer_stop(&c->feed);
	uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
}

static void on_shut(uv_shutdown_t *req, int status)
{
	(void)status;
	sconn_close(req->data);
	free(req);
}

/* Close once what was written has gone out (a close right away would cancel it). */
static void sconn_end(struct sconn *c)
{
	uv_shutdown_t *req = malloc(sizeof(*req));

	assert_non_null(req);
	req->data = c;
	if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shut) < 0) {
		free(req);
		sconn_close(c);
	}
}

static void on_written(uv_write_t *w, int status)
{
	(void)status;
	free(w);
}

static void send_bytes(struct sconn *c, const void *p, size_t n)
{
	uv_write_t *w;
	uv_buf_t b;

	if (c->closed)
		return;
	w = malloc(sizeof(*w) + n);
	assert_non_null(w);
	memcpy(w + 1, p, n);
	b = uv_buf_init((char *)(w + 1), (unsigned)n);
	uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_written);
}

/* A server's text frame: unmasked (RFC 6455 5.1). */
static void send_text(struct sconn *c, const char *text)
{
	size_t n = strlen(text), h = 2;
	unsigned char buf[1024];

	assert_true(n < 65536 && n + 4 <= sizeof(buf));
	buf[0] = 0x81;
	if (n < 126) {
		buf[1] = (unsigned char)n;
	} else {
		buf[1] = 126;
		buf[2] = (unsigned char)(n >> 8);
		buf[3] = (unsigned char)n;
		h = 4;
	}
	memcpy(buf + h, text, n);
	send_bytes(c, buf, h + n);
}

/* The "data" of event @p i; the stream's frame wraps it. */
static void event_data(char *out, size_t n, int i)
{
	snprintf(out, n,
		 "{\"e\":\"kline\",\"E\":%lld,\"s\":\"BTCUSDT\",\"k\":{\"t\":%lld,\"i\":\"1m\","
		 "\"o\":\"20000.00\",\"x\":false}}",
		 T0_E + i * 1000LL, T0_E);
}

static void send_event(struct sconn *c)
{
	char data[512], frame[600];

	event_data(data, sizeof(data), c->sent);
	snprintf(frame, sizeof(frame), "{\"stream\":\"btcusdt@kline_1m\",\"data\":%s}", data);
	if (!c->sent)
		c->first_at = uv_now(&c->f->loop);
	c->sent++;
	send_text(c, frame);
}

static void on_feed(uv_timer_t *t)
{
	send_event(t->data);
}

static void upgrade(struct sconn *c)
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	char key[128], accept[64], resp[256];
	unsigned char sha[20];
	const char *k = strstr(c->req, "Sec-WebSocket-Key: ");
	int n;

	assert_non_null(k);
	k += strlen("Sec-WebSocket-Key: ");
	n = snprintf(key, sizeof(key), "%.*s%s", (int)strcspn(k, "\r\n"), k, guid);
	lws_SHA1((const unsigned char *)key, (size_t)n, sha);
	lws_b64_encode_string((const char *)sha, 20, accept, sizeof(accept));
	n = snprintf(resp, sizeof(resp),
		     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		     accept);
	send_bytes(c, resp, (size_t)n);
	c->upgraded = true;
}

static void on_request(struct sconn *c)
{
	struct fixture *f = c->f;
	char resp[160];
	int n;

	sscanf(c->req, "GET %255s", f->path);
	switch (f->mode) {
	case REFUSE:
		n = snprintf(resp, sizeof(resp), "HTTP/1.1 %s\r\nContent-Length: 0\r\n\r\n",
			     c->id % 2 ? "403 Forbidden" : "429 Too Many Requests");
		send_bytes(c, resp, (size_t)n);
		sconn_end(c);
		return;
	case DROP:
		upgrade(c);
		for (int i = 0; i < f->frames; i++)
			send_event(c);
		sconn_end(c); /* no close frame: the socket just goes */
		return;
	case STALL:
		upgrade(c);
		return;
	case HOLD:
		return;
	case SHUTDOWN:
		upgrade(c);
		if (c->id == 0) {
			send_event(c);
			send_text(c, "{\"stream\":\"btcusdt@kline_1m\",\"data\":{\"e\":"
				     "\"serverShutdown\",\"E\":1678489201000}}");
		} else {
			/* The successor's first event only later: the old one must stay
			 * until then (make before break). */
			uv_timer_start(&c->feed, on_feed, 300, 50);
		}
		return;
	}
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *b)
{
	static char buf[4096];

	(void)h;
	(void)size;
	*b = uv_buf_init(buf, sizeof(buf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct sconn *c = s->data;

	if (n < 0) {
		sconn_close(c);
		return;
	}
	if (c->upgraded) {
		/* The client's frames are masked; a close (opcode 8) is answered and ends it. */
		if (n > 0 && (b->base[0] & 0x0f) == 8) {
			send_bytes(c, "\x88\x00", 2);
			sconn_end(c);
		}
		return;
	}
	if (c->len + (size_t)n >= sizeof(c->req)) {
		sconn_close(c);
		return;
	}
	memcpy(c->req + c->len, b->base, (size_t)n);
	c->len += (size_t)n;
	c->req[c->len] = '\0';
	if (strstr(c->req, "\r\n\r\n"))
		on_request(c);
}

static void on_connection(uv_stream_t *l, int status)
{
	struct fixture *f = l->data;
	struct sconn *c = calloc(1, sizeof(*c));

	assert_int_equal(status, 0);
	assert_non_null(c);
	assert_true(f->nconns < MAX_CONNS);
	c->f = f;
	c->id = f->nconns;
	uv_tcp_init(&f->loop, &c->tcp);
	uv_timer_init(&f->loop, &c->feed);
	c->tcp.data = c->feed.data = c;
	assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
	f->conns[f->nconns] = c;
	f->accepted_at[f->nconns++] = uv_now(&f->loop);
	if (++f->open > f->max_open)
		f->max_open = f->open;
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- the client and the run -------------------------------------------------------- */

static void on_event(void *ud, const char *symbol, const char *data, size_t len)
{
	struct fixture *f = ud;
	char want[512];

	/* Each connection's events count from 0: only the routing is checked here. */
	assert_string_equal(symbol, "BTCUSDT");
	for (int i = 0; i < 64; i++) {
		event_data(want, sizeof(want), i);
		if (strlen(want) == len && !memcmp(want, data, len)) {
			f->events++;
			return;
		}
	}
	f->bad++;
}

static void on_up(void *ud)
{
	((struct fixture *)ud)->ups++;
}

static void on_deadline(uv_timer_t *t)
{
	(void)t;
	fprintf(stderr, "the loop did not finish in time\n");
	abort();
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sockaddr_in sa;
	struct sockaddr_storage bound;
	int len = sizeof(bound);

	assert_non_null(f);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	uv_tcp_init(&f->loop, &f->listener);
	f->listener.data = f;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	assert_int_equal(uv_tcp_bind(&f->listener, (const struct sockaddr *)&sa, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&f->listener, 16, on_connection), 0);
	uv_tcp_getsockname(&f->listener, (struct sockaddr *)&bound, &len);
	f->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
	snprintf(f->url, sizeof(f->url), "ws://127.0.0.1:%d", f->port);
	f->conf.ws_url = f->url;
	f->lim = (struct kl_ws_limits){.attempts = 100,
				       .attempts_window_ms = 300000,
				       .silence_ms = 5000,
				       .backoff_first_ms = 40,
				       .backoff_max_ms = 5000,
				       .stable_ms = 60000};
	uv_timer_init(&f->loop, &f->tick);
	uv_timer_init(&f->loop, &f->deadline);
	f->tick.data = f->deadline.data = f;
	*state = f;
	return 0;
}

/* kl_ws_free, then the loop runs dry: every handle of lws and of kl_ws is closed. */
static int teardown(void **state)
{
	struct fixture *f = *state;

	/* Still armed (unreferenced): a handle that never closes aborts, not hangs. */
	uv_timer_start(&f->deadline, on_deadline, 10000, 0);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	kl_lwsctx_finish();
	uv_close((uv_handle_t *)&f->deadline, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	for (int i = 0; i < f->nconns; i++)
		free(f->conns[i]);
	free(f);
	return 0;
}

static void on_tick(uv_timer_t *t)
{
	struct fixture *f = t->data;

	if (!f->step(f))
		return;
	f->done = true;
	kl_ws_free(f->ws);
	f->ws = NULL;
	uv_close((uv_handle_t *)&f->tick, NULL);
	uv_close((uv_handle_t *)&f->listener, NULL);
	for (int i = 0; i < f->nconns; i++)
		sconn_close(f->conns[i]);
}

/* Connect, call @p step every 10 ms until it says done, then free the client. */
static void run(struct fixture *f, int (*step)(struct fixture *f), uint64_t limit_ms)
{
	char err[256];

	f->step = step;
	f->t_start = uv_now(&f->loop);
	assert_int_equal(kl_ws_new(&f->loop, &f->conf, &f->lim, symbols, 1, on_event, on_up, f,
				   &f->ws, err, sizeof(err)),
			 0);
	uv_timer_start(&f->tick, on_tick, 10, 10);
	uv_timer_start(&f->deadline, on_deadline, limit_ms, 0);
	uv_unref((uv_handle_t *)&f->deadline);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_true(f->done);
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
	struct kl_ws_stats st;

	kl_ws_stats(f->ws, &st);
	return st;
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
	    cmocka_unit_test_setup_teardown(refused_upgrade_backs_off_growing, setup, teardown),
	    cmocka_unit_test_setup_teardown(dropped_after_frames_delivers_and_reconnects, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(stalled_connection_is_dropped_after_the_silence, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(attempts_never_exceed_the_budget, setup, teardown),
	    cmocka_unit_test_setup_teardown(server_shutdown_rotates_make_before_break, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(freed_while_the_upgrade_is_unanswered, setup, teardown),
	    cmocka_unit_test_setup_teardown(freed_right_after_the_accept, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
