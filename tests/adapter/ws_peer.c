/*
 * The in-process exchange of the websocket adapter tests (see ws_peer.h).
 * Everything runs on the test's loop; connections are freed in teardown.
 */
#include "ws_peer.h"

#include "lwsctx.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- the server ------------------------------------------------------------------ */

static void on_tcp_closed(uv_handle_t *h)
{
	struct sconn *c = h->data;

	uv_close((uv_handle_t *)&c->feed, NULL); /* c itself is freed in teardown */
	uv_close((uv_handle_t *)&c->ack, NULL);
}

static void sconn_close(struct sconn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	c->closed_at = uv_now(&c->f->loop);
	if (c->id + 1 < c->f->nconns)
		c->next_streams = c->f->conns[c->id + 1]->nstreams;
	c->f->open--;
	uv_timer_stop(&c->feed);
	uv_timer_stop(&c->ack);
	uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
}

static void on_shut(uv_shutdown_t *req, int status)
{
	(void)status;
	sconn_close(req->data);
	free(req);
}

/* Close once what was written has gone out (a close right away would cancel it). */
void peer_end(struct sconn *c)
{
	uv_shutdown_t *req;

	if (c->closed)
		return;
	req = malloc(sizeof(*req));
	assert_non_null(req);
	req->data = c;
	uv_timer_stop(&c->feed);
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

void peer_event_data(char *out, size_t n, int i)
{
	snprintf(out, n,
		 "{\"e\":\"kline\",\"E\":%lld,\"s\":\"BTCUSDT\",\"k\":{\"t\":%lld,\"i\":\"1m\","
		 "\"o\":\"20000.00\",\"x\":false}}",
		 T0_E + i * 1000LL, T0_E);
}

static void send_event(struct sconn *c)
{
	char data[512], frame[600];

	peer_event_data(data, sizeof(data), c->sent);
	snprintf(frame, sizeof(frame), "{\"stream\":\"btcusdt@kline_1m\",\"data\":%s}", data);
	if (!c->sent)
		c->first_at = uv_now(&c->f->loop);
	c->sent++;
	send_text(c, frame);
}

/* SERVE: one event for each stream the connection carries. */
static void serve_round(struct sconn *c)
{
	char frame[600], sym[40];

	for (int k = 0; k < c->nstreams; k++) {
		size_t n = strcspn(c->streams[k], "@");
		for (size_t i = 0; i < n && i + 1 < sizeof(sym); i++)
			sym[i] = (char)(c->streams[k][i] - 32 * (c->streams[k][i] >= 'a'));
		sym[n < sizeof(sym) ? n : sizeof(sym) - 1] = '\0';
		snprintf(frame, sizeof(frame),
			 "{\"stream\":\"%s\",\"data\":{\"e\":\"kline\",\"E\":%lld,\"s\":\"%s\","
			 "\"k\":{\"t\":%lld,\"i\":\"1m\",\"x\":false}}}",
			 c->streams[k], T0_E + c->sent * 1000LL, sym, T0_E);
		if (!c->sent)
			c->first_at = uv_now(&c->f->loop);
		c->sent++;
		send_text(c, frame);
	}
	if (c->f->shutdown_first && c->id == 0 && c->sent == c->nstreams)
		send_text(c, "{\"stream\":\"!serverShutdown\",\"data\":{\"e\":"
			     "\"serverShutdown\",\"E\":1678489201000}}");
}

static void upgrade(struct sconn *c);

static void on_feed(uv_timer_t *t)
{
	struct sconn *c = t->data;

	if (c->f->mode == SERVE)
		serve_round(c);
	else if (c->f->mode == SLOW && !c->upgraded)
		upgrade(c);
	else if (c->f->mode != SLOW)
		send_event(c);
}

bool peer_has(const struct sconn *c, const char *stream)
{
	for (int k = 0; k < c->nstreams; k++)
		if (!strcmp(c->streams[k], stream))
			return true;
	return false;
}

static void add_stream(struct sconn *c, const char *stream)
{
	if (peer_has(c, stream))
		return;
	assert_true(c->nstreams < MAX_STREAMS && strlen(stream) < sizeof(c->streams[0]));
	snprintf(c->streams[c->nstreams++], sizeof(c->streams[0]), "%s", stream);
}

static void del_stream(struct sconn *c, const char *stream)
{
	for (int k = 0; k < c->nstreams; k++)
		if (!strcmp(c->streams[k], stream)) {
			memmove(c->streams[k], c->streams[k + 1],
				(size_t)(c->nstreams - k - 1) * sizeof(c->streams[0]));
			c->nstreams--;
			return;
		}
}

/* SERVE: a control message takes effect and is answered, as the exchange does. */
static void answer(struct sconn *c, const char *text, size_t n)
{
	struct fixture *f = c->f;
	json_t *req = json_loadb(text, n, 0, NULL), *params, *p;
	const char *method;
	char reply[256];
	size_t i;
	bool sub, refuse = false;

	assert_non_null(req);
	method = json_string_value(json_object_get(req, "method"));
	params = json_object_get(req, "params");
	assert_non_null(method);
	assert_true(json_is_integer(json_object_get(req, "id")));
	sub = !strcmp(method, "SUBSCRIBE");
	assert_true(sub || !strcmp(method, "UNSUBSCRIBE"));
	json_array_foreach(params, i, p)
	{
		if (f->refuse && !strcmp(json_string_value(p), f->refuse))
			refuse = true;
	}
	if (refuse) {
		f->refused++;
		snprintf(reply, sizeof(reply),
			 "{\"error\":{\"code\":2,\"msg\":\"Invalid request: invalid stream "
			 "name\"},\"id\":%lld}",
			 (long long)json_integer_value(json_object_get(req, "id")));
	} else {
		json_array_foreach(params, i, p)
		{
			if (sub)
				add_stream(c, json_string_value(p));
			else
				del_stream(c, json_string_value(p));
		}
		*(sub ? &f->subs : &f->unsubs) += (int)json_array_size(params);
		(*(sub ? &f->sub_msgs : &f->unsub_msgs))++;
		snprintf(reply, sizeof(reply), "{\"result\":null,\"id\":%lld}",
			 (long long)json_integer_value(json_object_get(req, "id")));
	}
	json_decref(req);
	send_text(c, reply);
}

static void on_ack(uv_timer_t *t)
{
	struct sconn *c = t->data;
	char *text = c->held;

	c->held = NULL;
	answer(c, text, strlen(text));
	free(text);
}

/* SERVE: a control message arrived: counted, then answered (ack_delay_ms later). */
static void control(struct sconn *c, const char *text, size_t n)
{
	struct fixture *f = c->f;

	f->ctrl++;
	if (c->nctrl < MAX_CTRL)
		c->ctrl_at[c->nctrl] = uv_now(&f->loop);
	c->nctrl++;
	if (!f->ack_delay_ms) {
		answer(c, text, n);
		return;
	}
	assert_null(c->held); /* the client waits for the answer before the next */
	assert_non_null(c->held = strndup(text, n));
	uv_timer_start(&c->ack, on_ack, f->ack_delay_ms, 0);
}

/* The client's frames (masked, RFC 6455 5.3): control messages, close. */
static void client_frames(struct sconn *c)
{
	while (c->rxlen >= 2) {
		unsigned char *b = c->rx;
		size_t len = b[1] & 0x7f, h = 2;
		int op = b[0] & 0x0f;

		if (len == 126) {
			if (c->rxlen < 4)
				return;
			len = (size_t)b[2] << 8 | b[3];
			h = 4;
		} else if (len == 127) {
			assert_true(false); /* nothing the client sends is that large */
		}
		if (b[1] & 0x80)
			h += 4;
		if (c->rxlen < h + len)
			return;
		for (size_t i = 0; i < len && (b[1] & 0x80); i++)
			b[h + i] ^= b[h - 4 + i % 4];
		if (op == 8) {
			send_bytes(c, "\x88\x00", 2);
			peer_end(c);
			c->rxlen = 0;
			return;
		}
		if (op == 1 && c->f->mode == SERVE)
			control(c, (const char *)b + h, len);
		memmove(c->rx, c->rx + h + len, c->rxlen - h - len);
		c->rxlen -= h + len;
	}
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

/* SERVE: the streams of the URL, /stream?streams=a@kline_1m/b@kline_1m. */
static void url_streams(struct sconn *c, const char *path)
{
	const char *p = strstr(path, "streams=");
	char one[40];

	for (p = p ? p + 8 : ""; *p;) {
		size_t n = strcspn(p, "/");
		if (n && n < sizeof(one)) {
			snprintf(one, sizeof(one), "%.*s", (int)n, p);
			add_stream(c, one);
		}
		p += n + (p[n] == '/');
	}
}

static void on_request(struct sconn *c)
{
	struct fixture *f = c->f;
	char resp[160];
	int n;

	sscanf(c->req, "GET %2047s", f->path);
	switch (f->mode) {
	case REFUSE:
		n = snprintf(resp, sizeof(resp), "HTTP/1.1 %s\r\nContent-Length: 0\r\n\r\n",
			     c->id % 2 ? "403 Forbidden" : "429 Too Many Requests");
		send_bytes(c, resp, (size_t)n);
		peer_end(c);
		return;
	case DROP:
		upgrade(c);
		for (int i = 0; i < f->frames; i++)
			send_event(c);
		peer_end(c); /* no close frame: the socket just goes */
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
	case SLOW:
		uv_timer_start(&c->feed, on_feed, c->f->upgrade_delay_ms, 0);
		return;
	case SERVE:
		upgrade(c);
		url_streams(c, f->path);
		uv_timer_start(&c->feed, on_feed, 0, f->pace_ms ? f->pace_ms : 50);
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
		unsigned char *rx = realloc(c->rx, c->rxlen + (size_t)n + 1);
		assert_non_null(rx);
		c->rx = rx;
		memcpy(c->rx + c->rxlen, b->base, (size_t)n);
		c->rxlen += (size_t)n;
		client_frames(c);
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
	uv_timer_init(&f->loop, &c->ack);
	c->tcp.data = c->feed.data = c->ack.data = c;
	assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
	f->conns[f->nconns] = c;
	f->accepted_at[f->nconns++] = uv_now(&f->loop);
	if (++f->open > f->max_open)
		f->max_open = f->open;
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- the client and the run -------------------------------------------------------- */

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

int peer_setup(void **state)
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
	f->lim = kl_ws_binance_limits;
	f->lim.silence_ms = 5000;
	f->lim.backoff_first_ms = 40;
	f->lim.backoff_max_ms = 5000;
	uv_timer_init(&f->loop, &f->tick);
	uv_timer_init(&f->loop, &f->deadline);
	f->tick.data = f->deadline.data = f;
	*state = f;
	return 0;
}

/* kl_ws_free, then the loop runs dry: every handle of lws and of kl_ws is closed. */
int peer_teardown(void **state)
{
	struct fixture *f = *state;

	/* Still armed (unreferenced): a handle that never closes aborts, not hangs. */
	uv_timer_start(&f->deadline, on_deadline, 10000, 0);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	kl_lwsctx_finish();
	uv_close((uv_handle_t *)&f->deadline, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	for (int i = 0; i < f->nconns; i++) {
		free(f->conns[i]->rx);
		free(f->conns[i]->held);
		free(f->conns[i]);
	}
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

void peer_run(struct fixture *f, char *const *symbols, size_t n, kl_ws_event_cb on_event,
	      int (*step)(struct fixture *f), uint64_t limit_ms)
{
	char err[256];

	f->step = step;
	f->t_start = uv_now(&f->loop);
	assert_int_equal(kl_ws_new(&f->loop, &f->conf, &f->lim, symbols, n, on_event, on_up, f,
				   &f->ws, err, sizeof(err)),
			 0);
	uv_timer_start(&f->tick, on_tick, 10, 10);
	uv_timer_start(&f->deadline, on_deadline, limit_ms, 0);
	uv_unref((uv_handle_t *)&f->deadline);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_true(f->done);
}

struct kl_ws_stats peer_stats(const struct fixture *f)
{
	struct kl_ws_stats st;

	kl_ws_stats(f->ws, &st);
	return st;
}
