/*
 * Websocket client. Each group of up to KL_WS_STREAMS_PER_CONN streams is
 * a "slot" with at most two connections: the live one and, during a
 * rotation, its successor. Connection states:
 *
 *   CONNECTING --established--> LIVE --first event--> DELIVERING
 *   any --error/close/silence--> (slot reconnects after backoff)
 *   DELIVERING --age >= ROTATE_MS or serverShutdown--> successor opened;
 *   the old one is closed when the successor delivers its first event and
 *   carries all its slot's streams, so no minute falls between them
 *   (duplicates are absorbed downstream).
 *
 * klined sends lws's automatic pongs and, when the symbol set changes or
 * a connection's URL could not carry all its streams, SUBSCRIBE and
 * UNSUBSCRIBE requests paced by ws_sub.c: far below the exchange's 5
 * messages per second.
 *
 * Liveness: the exchange sends kline updates only when something traded,
 * so a quiet connection may carry nothing but its pings (every 20 s) for
 * minutes. lws answers pings without telling us, so the socket's own
 * record of the last bytes received (TCP_INFO) is what shows the exchange
 * alive. Connection attempts are budgeted for the whole process: the
 * exchange allows 300 per 5 minutes per IP, and whatever the connections
 * do, klined makes at most lim.attempts of them in that time (ws_plan.c).
 */
#include "ws_int.h"

#include "backoff.h"
#include "kline.h"
#include "log.h"
#include "lwsctx.h"
#include "metrics.h"

#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void connect_slot(struct slot *s);
static void on_drain(uv_timer_t *t);
static void rotate(struct slot *s, const char *why);

static void on_reconnect(uv_timer_t *t)
{
	connect_slot(t->data);
}

static void schedule_reconnect(struct slot *s)
{
	uint64_t delay;

	if (s->ws->closing || !s->want.n)
		return;
	delay = kl_backoff_ms(s->ws->lim.backoff_first_ms, s->ws->lim.backoff_max_ms, s->attempts,
			      0.5, kl_backoff_uniform());
	s->attempts++;
	s->ws->stats.reconnects++;
	kl_metrics_add(KL_M_WS_RECONNECTS, 1);
	kl_warn("ws", "reconnecting in %.1f s (attempt %u)", (double)delay / 1000.0, s->attempts);
	uv_timer_start(&s->reconnect, on_reconnect, delay, 0);
}

/* Close from outside lws: it happens in the next WRITEABLE callback. */
static void close_conn(struct conn *c)
{
	if (!c || c->closing || !c->wsi)
		return;
	c->closing = true;
	lws_callback_on_writable(c->wsi);
}

void kl__ws_close(struct conn *c)
{
	close_conn(c);
}

/* ms since the socket last received bytes (frames or pings); -1 unknown. */
static int64_t quiet_ms(struct conn *c)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	lws_sockfd_type fd = c && c->wsi ? lws_get_socket_fd(c->wsi) : -1;

	if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
	    len < offsetof(struct tcp_info, tcpi_last_data_recv) + sizeof(ti.tcpi_last_data_recv))
		return -1;
	return (int64_t)ti.tcpi_last_data_recv;
}

static void on_silence(uv_timer_t *t)
{
	struct slot *s = t->data;
	int64_t quiet = s->live && s->live->established ? quiet_ms(s->live) : -1;

	if (quiet >= 0 && (uint64_t)quiet < s->ws->lim.silence_ms) {
		/* Pings (or a frame in the making) came: alive, only quiet. */
		uv_timer_start(&s->silence, on_silence, s->ws->lim.silence_ms - (uint64_t)quiet, 0);
		return;
	}
	if (s->live && s->live->wsi && !s->live->established && !s->live->closing) {
		/* Its upgrade is unanswered: lws's own timeout (20 s) ends that, and
		 * the silence counts from the answer (a close asked for now would
		 * wait for it anyway). */
		uv_timer_start(&s->silence, on_silence, s->ws->lim.silence_ms, 0);
		return;
	}
	kl_warn("ws", "no frame and no ping for %g s: dropping the connection",
		(double)s->ws->lim.silence_ms / 1000.0);
	if (s->live && s->live->wsi) {
		close_conn(s->live);
	} else if (!s->live && !uv_is_active((uv_handle_t *)&s->reconnect)) {
		schedule_reconnect(s);
	}
}

/* The connection is finished (error or close); the slot carries on without it. */
static void conn_gone(struct conn *c, const char *why)
{
	struct slot *s = c->slot;

	if (!s)
		return;
	c->slot = NULL;
	if (c->draining) {
		c->draining = false;
		if (--s->ws->draining == 0)
			uv_timer_start(&s->ws->drain, on_drain, 0, 0);
	}
	if (c->delivering && s->ws->stats.connected)
		s->ws->stats.connected--;
	/* Only a connection that lasted resets the backoff: one the exchange drops
	 * right after its first event must not turn into a reconnect storm. */
	if (c->established && uv_now(s->ws->loop) - c->up_at >= s->ws->lim.stable_ms)
		s->attempts = 0;
	if (s->next == c) {
		s->next = NULL;
		if (!c->delivering)
			s->rotate_at = uv_now(s->ws->loop) + s->ws->lim.backoff_max_ms;
		return;
	}
	if (s->live != c)
		return; /* an old connection closed after a rotation */
	s->live = s->next;
	s->next = NULL;
	if (s->live)
		return;
	if (!s->ws->closing && s->want.n) {
		kl_warn("ws", "connection lost: %s", why);
		schedule_reconnect(s);
	}
}

static void rotate(struct slot *s, const char *why)
{
	if (s->next || s->ws->closing || uv_now(s->ws->loop) < s->rotate_at)
		return;
	kl_info("ws", "rotating the connection (%s), make before break", why);
	s->ws->stats.rotations++;
	kl_metrics_add(KL_M_WS_ROTATIONS, 1);
	connect_slot(s);
}

/* A combined-stream frame: {"stream":…,"data":{"e":"kline","E":…,"s":…,…}}. Only
 * the members needed to route it are read, without building a tree: the
 * consumer parses and validates the event itself, once. */
static void frame(struct conn *c)
{
	struct kl_ws *ws = c->slot->ws;
	struct slot *s = c->slot;
	char sym[32], e[32];
	uint64_t now = uv_now(ws->loop);
	size_t off, len, o, l;
	bool data;
	int64_t t;

	ws->stats.frames++;
	ws->stats.last_frame_ms = (int64_t)now;
	/* Not at every frame (1,500 a burst, each a timer heap update): once
	 * every 1/16 of the limit at most. A connection whose frames stop is
	 * dropped that much later; one that only pings is told by on_silence. */
	if ((c == s->live || c == s->next) &&
	    now - s->heard_at >= (ws->lim.silence_ms < 16000 ? ws->lim.silence_ms / 16 : 1000)) {
		uv_timer_start(&s->silence, on_silence, ws->lim.silence_ms, 0);
		s->heard_at = now;
	}
	/* "data" is looked for once: finding it scans the whole event before it. */
	data = kl_json_member(c->buf, c->len, "data", &off, &len) == 0;
	if (!data) {
		off = 0;
		len = c->len;
	}
	if (kl_json_member_string(c->buf + off, len, "e", e, sizeof(e)) == 0 &&
	    !strcmp(e, "serverShutdown")) {
		rotate(s, "serverShutdown");
		return;
	}
	/* "stream" leads every event: the answer's "id" is looked for only without it. */
	if (kl_json_member(c->buf, c->len, "stream", &o, &l) < 0 &&
	    kl_json_member(c->buf, c->len, "id", &o, &l) == 0) {
		kl__ws_reply(c); /* an answer to a control message */
		return;
	}
	if (!data || kl_json_member_string(c->buf + off, len, "s", sym, sizeof(sym)) < 0) {
		ws->stats.bad_frames++;
		if (ws->stats.bad_frames == 1 || ws->stats.bad_frames % 1000 == 0)
			kl_warn("ws",
				"ignoring a frame that is not a combined-stream event "
				"(%llu so far): %.120s",
				(unsigned long long)ws->stats.bad_frames, c->buf);
		return;
	}
	if (!c->delivering) {
		c->delivering = true;
		ws->stats.connected++;
		if (c == s->next)
			kl__ws_take_over(s);
		if (ws->on_up)
			ws->on_up(ws->ud);
	}
	if (kl_json_member_int(c->buf + off, len, "E", &t) == 0) {
		ws->recent[ws->nrecent++ % STREAM_CLOCK_EVENTS] = t;
		if (c->first_event < 0)
			c->first_event = t;
		else if (t - c->first_event >= ROTATE_MS && c == s->live)
			rotate(s, "24 h connection limit ahead");
	}
	ws->on_event(ws->ud, sym, c->buf + off, len);
}

void kl__ws_take_over(struct slot *s)
{
	struct conn *c = s->next;

	if (!c || !c->delivering || !kl__ws_complete(c))
		return;
	/* The successor delivers all the streams: now the old one may go. */
	close_conn(s->live);
	s->live = c;
	s->next = NULL;
}

static int on_lws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		  size_t len)
{
	struct conn *c = user;

	switch (reason) {
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (c)
			conn_gone(c, in ? (const char *)in : "connection error");
		break;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (c && c->slot) {
			c->established = true;
			c->up_at = uv_now(c->slot->ws->loop);
			c->slot->ws->stats.connects++;
			kl_metrics_add(KL_M_WS_CONNECTS, 1);
			if (strlen(c->path) <= 200)
				kl_info("ws", "connected to %s", c->path);
			else
				kl_info(
				    "ws",
				    "connected to %.160s... (%zu streams, %zu more to subscribe)",
				    c->path, c->have.n, c->slot->want.n - c->have.n);
			if (c == c->slot->live)
				uv_timer_start(&c->slot->silence, on_silence,
					       c->slot->ws->lim.silence_ms, 0);
			kl__ws_pump(c); /* the streams its URL could not carry */
			/* Closed (its slot emptied) while its upgrade was unanswered: lws
			 * ignored that writable request, so the close would never happen. */
			if (c->closing)
				lws_callback_on_writable(wsi);
		}
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (!c || !c->slot || c->slot->ws->closing)
			break;
		if (c->len + len + 1 > FRAME_MAX) {
			kl_warn("ws", "frame larger than %u bytes: dropping the connection",
				FRAME_MAX);
			return -1;
		}
		if (c->len + len + 1 > c->cap) {
			size_t cap = c->cap ? c->cap : 4096;
			while (cap < c->len + len + 1)
				cap *= 2;
			char *b = realloc(c->buf, cap);
			if (!b)
				return -1;
			c->buf = b;
			c->cap = cap;
		}
		memcpy(c->buf + c->len, in, len);
		c->len += len;
		c->buf[c->len] = '\0';
		if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
			frame(c);
			c->len = 0;
		}
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (c && c->closing) {
			lws_close_reason(wsi, LWS_CLOSE_STATUS_GOINGAWAY, NULL, 0);
			return -1;
		}
		if (c && c->slot && c->writing)
			return kl__ws_write_ctrl(c);
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (c)
			conn_gone(c, "closed");
		break;
	case LWS_CALLBACK_WSI_DESTROY:
		if (c) {
			conn_gone(c, "gone");
			/* A connect that failed synchronously: connect_slot frees it. */
			if (c->connecting) {
				c->destroyed = true;
				break;
			}
			kl__ws_conn_free(c);
		}
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
    {"klined", on_lws, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* No lws pings and no idle hangup: the exchange pings us, and we watch silence. */
static const lws_retry_bo_t retry_policy = {
    .secs_since_valid_ping = 65000,
    .secs_since_valid_hangup = 65500,
};

/* @return true when the process-wide budget of connection attempts allows one now. */
static bool budget_allows(struct slot *s)
{
	struct kl_ws *ws = s->ws;
	int64_t wait = kl__ws_budget_take(ws);

	if (wait == 0)
		return true;
	if (s->live) {
		s->rotate_at = uv_now(ws->loop) + (uint64_t)wait;
	} else {
		ws->stats.reconnects++;
		kl_metrics_add(KL_M_WS_RECONNECTS, 1);
		uv_timer_start(&s->reconnect, on_reconnect, (uint64_t)wait, 0);
	}
	return false;
}

void kl__ws_conn_free(struct conn *c)
{
	free(c->buf);
	free(c->path);
	kl__strs_free(&c->have);
	kl__strs_free(&c->pend);
	free(c);
}

static void connect_slot(struct slot *s)
{
	struct kl_ws *ws = s->ws;
	struct lws_client_connect_info i;
	struct conn *c;
	struct lws *wsi;

	if (!s->want.n || !budget_allows(s))
		return;
	if (!(c = calloc(1, sizeof(*c))) || !(c->path = kl__ws_path(ws, s, &c->have))) {
		if (c)
			kl__ws_conn_free(c);
		schedule_reconnect(s);
		return;
	}
	c->slot = s;
	c->first_event = -1;
	memset(&i, 0, sizeof(i));
	i.context = ws->ctx;
	i.address = ws->host;
	i.port = ws->port;
	i.path = c->path;
	i.host = ws->host;
	i.origin = ws->host;
	i.ssl_connection = ws->tls ? LCCSCF_USE_SSL : 0;
	i.local_protocol_name = "klined";
	i.userdata = c;
	i.pwsi = &c->wsi;
	i.retry_and_idle_policy = &retry_policy;
	if (s->live)
		s->next = c;
	else
		s->live = c;
	uv_timer_start(&s->silence, on_silence, ws->lim.silence_ms, 0);
	/* A connect() that fails at once (no route, the network down after a
	 * resume) runs lws's error and destroy callbacks before this returns:
	 * c stays ours until then, and only c leaves the slot, never the live
	 * connection a rotation was replacing. */
	c->connecting = true;
	wsi = lws_client_connect_via_info(&i);
	c->connecting = false;
	if (!wsi || c->destroyed) {
		if (c->slot)
			conn_gone(c, "cannot connect");
		kl__ws_conn_free(c);
	}
}

void kl__ws_connect(struct slot *s)
{
	connect_slot(s);
}

int kl_ws_new(uv_loop_t *loop, const struct kl_conf *conf, const struct kl_ws_limits *lim,
	      char *const *symbols, size_t n, kl_ws_event_cb on_event, kl_ws_up_cb on_up, void *ud,
	      struct kl_ws **ret, char *err, size_t errlen)
{
	struct kl_ws *ws = calloc(1, sizeof(*ws));
	struct lws_context_creation_info info;
	void *loops[1] = {loop};

	if (!ws)
		return -ENOMEM;
	ws->loop = loop;
	ws->conf = conf;
	ws->on_event = on_event;
	ws->on_up = on_up;
	ws->ud = ud;
	ws->lim = *lim;
	if (!ws->lim.streams_per_conn || ws->lim.streams_per_conn > 1024)
		ws->lim.streams_per_conn = KL_WS_STREAMS_PER_CONN;
	if (!ws->lim.ack_ms)
		ws->lim.ack_ms = kl_ws_binance_limits.ack_ms;
	kl_attempts_init(&ws->budget, lim->attempts, lim->attempts_window_ms);
	if (kl__ws_parse_url(ws, conf->ws_url) < 0) {
		snprintf(err, errlen, "[exchange] ws_url: cannot use '%s'", conf->ws_url);
		free(ws);
		return -EINVAL;
	}
	kl_lwsctx_log_init();
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.foreign_loops = loops;
	info.client_ssl_ca_filepath = conf->ca_file;
	ws->slot = kl_lwsctx_slot();
	info.pcontext = ws->slot;
	ws->ctx = lws_create_context(&info);
	if (ws->slot)
		*ws->slot = ws->ctx;
	if (!ws->ctx) {
		snprintf(err, errlen, "cannot create the websocket context (libuv event lib)");
		kl_lwsctx_destroy(ws->slot);
		free(ws);
		return -EIO;
	}
	uv_timer_init(loop, &ws->drain);
	ws->drain.data = ws;
	if (kl_ws_set_symbols(ws, symbols, n) < 0) {
		/* Nothing changed: no slot, no connection; the drain timer frees ws. */
		snprintf(err, errlen, "out of memory");
		kl_ws_free(ws);
		return -ENOMEM;
	}
	*ret = ws;
	return 0;
}

int64_t kl_ws_exchange_time(const struct kl_ws *ws)
{
	int64_t t = INT64_MAX;

	if (!ws || ws->nrecent < STREAM_CLOCK_EVENTS)
		return -1;
	for (size_t i = 0; i < STREAM_CLOCK_EVENTS; i++)
		t = ws->recent[i] < t ? ws->recent[i] : t;
	return t;
}

void kl_ws_stats(const struct kl_ws *ws, struct kl_ws_stats *ret)
{
	*ret = ws->stats;
}

static void release(struct kl_ws *ws)
{
	if (--ws->nclosing == 0) {
		for (size_t k = 0; k < ws->nslots; k++) {
			kl__strs_free(&ws->slots[k]->want);
			kl__strs_free(&ws->slots[k]->refused);
			kl__strs_free(&ws->slots[k]->single);
			free(ws->slots[k]);
		}
		free(ws->slots);
		free(ws);
	}
}

static void on_timer_closed(uv_handle_t *h)
{
	release(((struct slot *)h->data)->ws);
}

static void on_drain_closed(uv_handle_t *h)
{
	release(h->data);
}

/* The connections are gone (or DRAIN_MS passed): destroy the context. Never
 * from inside an lws callback: always from the drain timer. */
static void on_drain(uv_timer_t *t)
{
	struct kl_ws *ws = t->data;

	if (!ws->ctx)
		return;
	/* lws closes the connections left and its own handles on the loop. */
	kl_lwsctx_destroy(ws->slot);
	ws->ctx = NULL;
	ws->nclosing = (int)(3 * ws->nslots) + 1;
	uv_close((uv_handle_t *)&ws->drain, on_drain_closed);
	for (size_t k = 0; k < ws->nslots; k++) {
		uv_close((uv_handle_t *)&ws->slots[k]->reconnect, on_timer_closed);
		uv_close((uv_handle_t *)&ws->slots[k]->silence, on_timer_closed);
		uv_close((uv_handle_t *)&ws->slots[k]->pace, on_timer_closed);
	}
}

/*
 * lws 4.1.6 never lets go of a client connection whose upgrade is still
 * unanswered when its context is destroyed: the connection's poll handle
 * and lws's timer stay on the loop, which then never ends (klined would
 * hang at stop). Those sockets are shut down first; lws closes them as it
 * services the hang-up, and the context goes once they are gone.
 */
void kl_ws_free(struct kl_ws *ws)
{
	if (!ws || ws->closing)
		return;
	ws->closing = true;
	for (size_t k = 0; k < ws->nslots; k++) {
		struct conn *cs[2] = {ws->slots[k]->live, ws->slots[k]->next};
		/* Nothing reconnects, and nothing reaches the caller from now on. */
		uv_timer_stop(&ws->slots[k]->reconnect);
		uv_timer_stop(&ws->slots[k]->silence);
		uv_timer_stop(&ws->slots[k]->pace);
		for (int i = 0; i < 2; i++) {
			struct conn *c = cs[i];
			lws_sockfd_type fd = c && c->wsi ? lws_get_socket_fd(c->wsi) : -1;
			if (c && !c->established && fd >= 0 && shutdown(fd, SHUT_RDWR) == 0) {
				c->draining = true;
				ws->draining++;
			}
		}
	}
	uv_timer_start(&ws->drain, on_drain, ws->draining ? DRAIN_MS : 0, 0);
}
