/*
 * What the websocket client plans before any socket: the URL taken apart,
 * the symbols grouped into connections (by count and by URL length), and
 * the budget of connection attempts for the whole process: the exchange
 * allows 300 per 5 minutes per IP, and whatever the connections do,
 * klined makes at most lim.attempts of them in lim.attempts_window_ms.
 */
#include "ws_int.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct kl_ws_limits kl_ws_binance_limits = {
    .attempts = 100, /* a third of the exchange's 300 */
    .attempts_window_ms = 300000,
    .silence_ms = 90000, /* the exchange pings every 20 s */
    .backoff_first_ms = 500,
    .backoff_max_ms = 30000,
    .stable_ms = 60000,
};

int64_t kl__ws_budget_take(struct kl_ws *ws)
{
	int64_t wait = kl_attempts_take(&ws->budget, (int64_t)uv_now(ws->loop));
	int64_t window = ws->lim.attempts_window_ms;

	if (wait == 0) {
		ws->budget_said = false;
		return 0;
	}
	if (!ws->budget_said) {
		char span[32];
		if (window % 60000 == 0)
			snprintf(span, sizeof(span), "%lld minutes", (long long)(window / 60000));
		else
			snprintf(span, sizeof(span), "%.1f s", (double)window / 1000.0);
		kl_warn("ws",
			"%zu connection attempts in %s: waiting %.1f s before the next "
			"(the exchange allows 300 per 5 minutes per IP)",
			ws->budget.max, span, (double)wait / 1000.0);
	}
	ws->budget_said = true;
	return wait;
}

int kl__ws_parse_url(struct kl_ws *ws, const char *url)
{
	const char *p, *slash, *colon;

	if (!strncmp(url, "wss://", 6)) {
		ws->tls = true;
		p = url + 6;
		ws->port = 443;
	} else if (!strncmp(url, "ws://", 5)) {
		p = url + 5;
		ws->port = 80;
	} else {
		return -EINVAL;
	}
	slash = strchr(p, '/');
	if (!slash)
		slash = p + strlen(p);
	colon = memchr(p, ':', (size_t)(slash - p));
	if ((size_t)((colon ? colon : slash) - p) >= sizeof(ws->host))
		return -EINVAL;
	snprintf(ws->host, sizeof(ws->host), "%.*s", (int)((colon ? colon : slash) - p), p);
	if (colon)
		ws->port = atoi(colon + 1);
	snprintf(ws->prefix, sizeof(ws->prefix), "%s", slash);
	return ws->host[0] && ws->port > 0 && ws->port < 65536 ? 0 : -EINVAL;
}

/*
 * Streams are grouped into connections by URL length as well as count:
 * libwebsockets 4.1 cuts the request line at 2048 bytes, and a cut URL
 * would subscribe to fewer streams than asked (or be refused).
 */
#define URL_MAX 1800

static size_t stream_len(const char *symbol)
{
	return strlen(symbol) + sizeof("@kline_1m/") - 1;
}

static int add_slot(struct kl_ws *ws, char *const *symbols, size_t first, size_t last)
{
	struct slot *v = realloc(ws->slots, (ws->nslots + 1) * sizeof(*v)), *s;
	size_t cap = strlen(ws->prefix) + 32, len;

	if (!v)
		return -ENOMEM;
	ws->slots = v;
	s = memset(&v[ws->nslots], 0, sizeof(*s));
	for (size_t i = first; i < last; i++)
		cap += stream_len(symbols[i]);
	s->path = malloc(cap);
	if (!s->path)
		return -ENOMEM;
	ws->nslots++;
	len = (size_t)snprintf(s->path, cap, "%s/stream?streams=", ws->prefix);
	for (size_t i = first; i < last; i++) {
		if (i > first)
			s->path[len++] = '/';
		for (const char *q = symbols[i]; *q; q++)
			s->path[len++] = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q);
		len += (size_t)snprintf(s->path + len, cap - len, "@kline_1m");
	}
	return 0;
}

int kl__ws_make_slots(struct kl_ws *ws, char *const *symbols, size_t n)
{
	size_t first = 0, url = strlen(ws->prefix) + sizeof("/stream?streams=");

	for (size_t i = 0; i <= n; i++) {
		if (i < n && i - first < KL_WS_STREAMS_PER_CONN &&
		    url + stream_len(symbols[i]) <= URL_MAX) {
			url += stream_len(symbols[i]);
			continue;
		}
		if (i > first && add_slot(ws, symbols, first, i) < 0)
			return -ENOMEM;
		first = i;
		url = strlen(ws->prefix) + sizeof("/stream?streams=");
		if (i < n) {
			url += stream_len(symbols[i]);
		}
	}
	for (size_t k = 0; k < ws->nslots; k++) {
		struct slot *s = &ws->slots[k];
		s->ws = ws;
		uv_timer_init(ws->loop, &s->reconnect);
		uv_timer_init(ws->loop, &s->silence);
		s->reconnect.data = s->silence.data = s;
	}
	return 0;
}
