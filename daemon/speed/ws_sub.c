/*
 * Live subscriptions: each connection is brought to its slot's wanted set
 * with UNSUBSCRIBE (first: it frees room) and SUBSCRIBE requests of up to
 * CTRL_MAX bytes. A connection has one request in flight at a time and
 * sends the next no sooner than lim.ctrl_gap_ms after the last: the
 * exchange counts pings, pongs and control messages together, at most 5
 * per second, and disconnects (then bans) a connection that sends more.
 * An error answer to a request of several streams has each asked alone
 * once more (one bad stream must not keep the others out); refused alone,
 * a stream is logged and not asked for again while it stays wanted. A
 * request unanswered for lim.ack_ms is given up the same way, so nothing
 * loops: a refused request of n streams costs at most n more messages.
 */
#include "ws_int.h"

#include "kline.h"
#include "log.h"
#include "metrics.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What @p c should ask next: CTRL_UNSUB (streams it carries and its slot no
 * longer wants), CTRL_SUB (wanted, not carried, not refused, while there is
 * room) or CTRL_NONE; with @p out, those streams up to CTRL_MAX bytes. */
static int todo(const struct conn *c, struct kl__strs *out, size_t *bytes)
{
	const struct slot *s = c->slot;
	size_t per = s->ws->lim.streams_per_conn, room;
	size_t len = 64;
	int op = CTRL_NONE;

	for (size_t i = 0; i < c->have.n; i++) {
		if (kl__strs_has(&s->want, c->have.v[i]))
			continue;
		op = CTRL_UNSUB;
		len += strlen(c->have.v[i]) + sizeof("\"@kline_1m\",");
		if (!out || len > CTRL_MAX)
			break;
		if (kl__strs_add(out, c->have.v[i]) < 0)
			return -1;
		*bytes = len;
	}
	if (op)
		return op;
	room = c->have.n < per ? per - c->have.n : 0;
	for (size_t i = 0; i < s->want.n && room; i++) {
		const char *x = s->want.v[i];
		bool alone = kl__strs_has(&s->single, x);
		if (kl__strs_has(&c->have, x) || kl__strs_has(&s->refused, x))
			continue;
		if (alone && op)
			continue; /* asked alone, in a request of its own */
		op = CTRL_SUB;
		len += strlen(x) + sizeof("\"@kline_1m\",");
		if (!out || len > CTRL_MAX)
			break;
		if (kl__strs_add(out, x) < 0)
			return -1;
		*bytes = len;
		room--;
		if (alone)
			break;
	}
	return op;
}

bool kl__ws_complete(const struct conn *c)
{
	return c->slot && !c->pend_op && todo(c, NULL, NULL) == CTRL_NONE;
}

/* Arm the slot's pace timer for @p ms from now unless it fires sooner. */
static void pace_in(struct slot *s, uint64_t ms)
{
	if (!uv_is_active((uv_handle_t *)&s->pace) || uv_timer_get_due_in(&s->pace) > ms)
		uv_timer_start(&s->pace, kl__ws_on_pace, ms, 0);
}

void kl__ws_pump(struct conn *c)
{
	struct slot *s = c ? c->slot : NULL;
	uint64_t now, due;

	if (!s || !c->wsi || !c->established || c->closing || s->ws->closing)
		return;
	if (c->pend_op || c->writing || todo(c, NULL, NULL) == CTRL_NONE)
		return;
	now = uv_now(s->ws->loop);
	due = c->ctrl_at ? c->ctrl_at + s->ws->lim.ctrl_gap_ms : now;
	if (due > now) {
		pace_in(s, due - now);
		return;
	}
	c->writing = true;
	lws_callback_on_writable(c->wsi);
}

/* Streams named for a log line: the first three and how many more. */
static void name_streams(const struct kl__strs *st, char *buf, size_t n)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < st->n && i < 3 && len + SYMBOL_MAX + 16 < n; i++) {
		if (i)
			len += (size_t)snprintf(buf + len, n - len, ", ");
		len += kl__ws_stream(buf + len, st->v[i]);
	}
	if (st->n > 3 && len < n)
		snprintf(buf + len, n - len, " (+%zu more)", st->n - 3);
}

/* The request in flight is over: acknowledged (@p ok) or refused because @p why. */
static void settle(struct conn *c, bool ok, const char *why)
{
	struct slot *s = c->slot;
	struct kl_ws *ws = s->ws;
	bool sub = c->pend_op == CTRL_SUB;
	char names[256];

	for (size_t i = 0; i < c->pend.n; i++) {
		const char *x = c->pend.v[i];
		if (sub && ok) {
			(void)kl__strs_add(&c->have, x); /* lost: asked again */
			kl__strs_del(&s->single, x);	 /* taken: batched again */
		} else if (sub && c->pend.n > 1 && !kl__strs_has(&s->single, x))
			(void)kl__strs_add(&s->single, x); /* lost: refused at once */
		else if (sub)
			(void)kl__strs_add(&s->refused, x); /* lost: asked again */
		else
			kl__strs_del(&c->have, x); /* refused or not: it is not there */
	}
	if (ok) {
		*(sub ? &ws->stats.subscribed : &ws->stats.unsubscribed) += c->pend.n;
		kl_metrics_add(sub ? KL_M_WS_SUBSCRIBED : KL_M_WS_UNSUBSCRIBED, c->pend.n);
	} else {
		bool retry = sub && c->pend.n > 1;
		name_streams(&c->pend, names, sizeof(names));
		if (sub && !retry)
			ws->stats.refused += c->pend.n;
		kl_warn("ws", "the exchange %s %s of %s: %s%s", sub ? "refused" : "did not confirm",
			sub ? "SUBSCRIBE" : "UNSUBSCRIBE", names, why,
			retry ? "; asking for each alone"
			: sub ? "; not asking for it again while it is wanted"
			      : "");
	}
	kl__strs_free(&c->pend);
	c->pend_op = CTRL_NONE;
	if (c == s->next)
		kl__ws_take_over(s);
	kl__ws_pump(c);
}

int kl__ws_write_ctrl(struct conn *c)
{
	struct kl_ws *ws = c->slot->ws;
	unsigned char buf[LWS_PRE + CTRL_MAX + 64];
	char *p = (char *)buf + LWS_PRE;
	size_t len = 0, bytes = 0;
	int op;

	c->writing = false;
	if (c->pend_op || ws->closing)
		return 0;
	op = todo(c, &c->pend, &bytes);
	if (op < 0 || op == CTRL_NONE) {
		kl__strs_free(&c->pend); /* out of memory: the pace timer tries again */
		if (op < 0)
			pace_in(c->slot, ws->lim.ctrl_gap_ms);
		return 0;
	}
	len = (size_t)snprintf(p, CTRL_MAX + 64, "{\"method\":\"%s\",\"params\":[",
			       op == CTRL_SUB ? "SUBSCRIBE" : "UNSUBSCRIBE");
	for (size_t i = 0; i < c->pend.n; i++) {
		if (i)
			p[len++] = ',';
		p[len++] = '"';
		len += kl__ws_stream(p + len, c->pend.v[i]);
		p[len++] = '"';
	}
	c->pend_id = ++ws->next_id;
	len +=
	    (size_t)snprintf(p + len, CTRL_MAX + 64 - len, "],\"id\":%lld}", (long long)c->pend_id);
	c->pend_op = op;
	c->ctrl_at = uv_now(ws->loop);
	ws->stats.control_msgs++;
	kl_metrics_add(KL_M_WS_CONTROL, 1);
	pace_in(c->slot, ws->lim.ack_ms);
	kl_debug("ws", "%.*s", (int)(len < 200 ? len : 200), p);
	if (lws_write(c->wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT) < (int)len)
		return -1;
	return 0;
}

void kl__ws_reply(struct conn *c)
{
	char msg[160] = "no reason given";
	size_t off, len;
	int64_t id;

	if (kl_json_member_int(c->buf, c->len, "id", &id) < 0 || !c->pend_op || id != c->pend_id)
		return; /* not an answer to the request in flight */
	if (kl_json_member(c->buf, c->len, "result", &off, &len) == 0) {
		settle(c, true, NULL);
		return;
	}
	if (kl_json_member(c->buf, c->len, "error", &off, &len) == 0)
		kl_json_member_string(c->buf + off, len, "msg", msg, sizeof(msg));
	else
		kl_json_member_string(c->buf, c->len, "msg", msg, sizeof(msg));
	settle(c, false, msg);
}

void kl__ws_on_pace(uv_timer_t *t)
{
	struct slot *s = t->data;
	struct conn *cs[2] = {s->live, s->next};
	uint64_t now = uv_now(s->ws->loop);

	for (int i = 0; i < 2; i++) {
		struct conn *c = cs[i];
		if (!c || c->slot != s)
			continue;
		if (c->pend_op && now >= c->ctrl_at + s->ws->lim.ack_ms) {
			settle(c, false, "no answer");
			continue;
		}
		if (c->pend_op)
			pace_in(s, c->ctrl_at + s->ws->lim.ack_ms - now);
		kl__ws_pump(c);
	}
}

void kl__ws_sync(struct slot *s)
{
	if (s->ws->closing)
		return;
	if (!s->want.n) {
		/* Nothing left to stream here: the slot sleeps until symbols come. */
		uv_timer_stop(&s->reconnect);
		uv_timer_stop(&s->silence);
		uv_timer_stop(&s->pace);
		kl__ws_close(s->live);
		kl__ws_close(s->next);
		return;
	}
	if (!s->live && !uv_is_active((uv_handle_t *)&s->reconnect)) {
		kl__ws_connect(s);
		return;
	}
	kl__ws_pump(s->live);
	kl__ws_pump(s->next);
}
