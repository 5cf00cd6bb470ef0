/*
 * HTTP server: one lws context (its own, on the daemon's foreign libuv
 * loop; the stream's client context is untouched), one vhost on the
 * configured address. Request life:
 *
 *   HTTP (GET only; 405 otherwise) --route--> dynamic body | static file | 404
 *   dynamic body: headers with its length, then HTTP_WRITEABLE writes
 *   CHUNK bytes per callback, the last one FINAL, then keep-alive.
 *
 * This file holds the context, the routing and the answer helpers; the
 * JSON API is api.c, the page's files files.c, the live push push.c.
 * Invariants:
 *  1. Nothing from a request reaches SQL text: queries are validated by
 *     lib/httpq.c to a configured symbol index and a bounded day count,
 *     then bound as parameters of prepared statements.
 *  2. Static files come from a fixed table of names in the assets
 *     directory: no path from the request is ever opened.
 *  3. Headers beyond HEADER_MAX bytes are refused by lws itself; bodies
 *     are never read.
 *  4. kl_http_close() closes every connection and lws's handles on the
 *     loop; lws 4.1.6 on a foreign loop then leaves the server context
 *     allocated (no PROTOCOL_DESTROY, no vhost finalize either: checked
 *     under valgrind) until kl_lwsctx_finish() (lwsctx.h). The struct
 *     goes when both the tick timer's close and kl_http_free() are done.
 */
#include "http.h"

#include "http_int.h"
#include "httplisten.h"
#include "klines.h"
#include "log.h"
#include "lwsctx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK	   16384
#define HEADER_MAX 4096 /* request line + headers */
#define TICK_MS	   250	/* how often the live candle is looked at */

static const struct lws_protocols protocols[3];

static void unref(struct kl_http *http)
{
	if (--http->refs > 0)
		return;
	for (size_t i = 0; i < http->nsyms; i++) {
		free(http->live[i].frame);
		free(http->live[i].key);
	}
	free(http->live);
	free(http->status);
	kl_klines_free(http->klines);
	kl_store_close(http->st);
	free(http);
}

static struct kl_http *http_of(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

int kl__http_respond(struct lws *wsi, struct pss *pss, unsigned status, const char *ctype,
		     char *body, size_t len)
{
	uint8_t buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
				     *end = buf + sizeof(buf) - 1;

	free(pss->body);
	pss->body = body;
	pss->len = len;
	pss->off = 0;
	if (lws_add_http_common_headers(wsi, status, ctype, len, &p, end) ||
	    lws_add_http_header_by_name(
		wsi, (const uint8_t *)"cache-control:", (const uint8_t *)"no-store", 8, &p, end) ||
	    lws_add_http_header_by_name(wsi, (const uint8_t *)"x-content-type-options:",
					(const uint8_t *)"nosniff", 7, &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	lws_callback_on_writable(wsi);
	return 0;
}

int kl__http_respond_error(struct lws *wsi, struct pss *pss, unsigned status, const char *msg)
{
	json_t *j = json_pack("{s:s}", "error", msg);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (!s)
		return -1;
	return kl__http_respond(wsi, pss, status, "application/json", s, strlen(s));
}

int kl__http_respond_json(struct lws *wsi, struct pss *pss, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15));

	json_decref(j);
	if (!s)
		return kl__http_respond_error(wsi, pss, 500, "out of memory");
	return kl__http_respond(wsi, pss, 200, "application/json", s, strlen(s));
}

static int write_body(struct lws *wsi, struct pss *pss)
{
	uint8_t buf[LWS_PRE + CHUNK];
	size_t n;

	if (!pss->body)
		return 0;
	n = pss->len - pss->off < CHUNK ? pss->len - pss->off : CHUNK;
	memcpy(buf + LWS_PRE, pss->body + pss->off, n);
	pss->off += n;
	if (lws_write(wsi, buf + LWS_PRE, n,
		      pss->off == pss->len ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
		return -1;
	if (pss->off < pss->len) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	free(pss->body);
	pss->body = NULL;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* The query string as "a=b&c=d" (lws keeps each argument as a fragment). */
int kl__http_query(struct lws *wsi, char *q, size_t n)
{
	size_t len = 0;

	q[0] = '\0';
	for (int i = 0;; i++) {
		int f = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
		if (f <= 0)
			return 0;
		if (len + (size_t)f + 2 > n)
			return -E2BIG;
		if (i)
			q[len++] = '&';
		if (lws_hdr_copy_fragment(wsi, q + len, (int)(n - len), WSI_TOKEN_HTTP_URI_ARGS,
					  i) < 0)
			return -E2BIG;
		len += strlen(q + len);
	}
}

/*
 * The dynamic routes, by exact path (the query string is not part of it).
 * A new one is a line here and its handler (http_int.h's signature).
 */
static const struct {
	const char *path;
	kl__http_route_fn fn;
} routes[] = {
    {"/api/daily", kl__api_daily},	 {"/api/klines", kl__api_klines},
    {"/api/forecast", kl__api_forecast}, {"/api/status", kl__api_status},
    {"/metrics", kl__api_metrics},
};

static int route(struct lws *wsi, struct pss *pss, const char *uri)
{
	struct kl_http *http = http_of(wsi);
	int i;

	if (!http || http->closing)
		return -1;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
		return kl__http_respond_error(wsi, pss, 405, "only GET is served");
	for (size_t r = 0; r < sizeof(routes) / sizeof(routes[0]); r++) {
		if (!strcmp(uri, routes[r].path))
			return routes[r].fn(wsi, pss, http);
	}
	i = kl__files_find(uri);
	if (i >= 0)
		return kl__files_serve(wsi, pss, http, i);
	return kl__http_respond_error(wsi, pss, 404, "no such page");
}

static int on_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		   size_t len)
{
	struct pss *pss = user;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return route(wsi, pss, in ? (const char *)in : "");
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return write_body(wsi, pss);
	case LWS_CALLBACK_HTTP_FILE_COMPLETION:
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if (pss) {
			free(pss->body);
			pss->body = NULL;
		}
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[3] = {
    {"http", on_http, sizeof(struct pss), 0, 0, NULL, 0},
    {"klined-live", kl__push_callback, sizeof(struct pss), LIVE_RX_MAX, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* "ADDR:PORT", the port after the last ':'; "[v6]" loses its brackets;
 * "localhost" is 127.0.0.1. Only IP addresses: lws reads anything else as
 * an interface name. */
static int parse_listen(struct kl_http *http, const char *s)
{
	const char *colon = strrchr(s, ':');
	size_t alen;
	char *end;
	long port;

	if (!colon || colon == s)
		return -EINVAL;
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 1 || port > 65535)
		return -EINVAL;
	alen = (size_t)(colon - s);
	if (s[0] == '[' && alen >= 2 && s[alen - 1] == ']') {
		s++;
		alen -= 2;
	}
	if (alen == 0 || alen >= sizeof(http->iface))
		return -EINVAL;
	memcpy(http->iface, s, alen);
	http->iface[alen] = '\0';
	http->port = (int)port;
	if (!strcmp(http->iface, "localhost"))
		snprintf(http->iface, sizeof(http->iface), "127.0.0.1");
	return 0;
}

/* A connection from our listener (httplisten.h): lws takes it, and closes it if it cannot. */
static void on_accept(void *ud, int fd, const char *head, size_t len)
{
	struct kl_http *http = ud;

	if (!http->vhost || http->closing ||
	    !lws_adopt_socket_vhost_readbuf(http->vhost, fd, head, len))
		kl_debug("http", "a connection could not be taken (fd %d)", fd);
}

int kl_http_open(uv_loop_t *loop, const struct kl_conf *conf, struct kl_http **ret, char *err,
		 size_t errlen)
{
	struct kl_http *http = calloc(1, sizeof(*http));
	struct lws_context_creation_info info;
	void *loops[1] = {loop};
	int r;

	if (!http ||
	    !(http->live = calloc(conf->nsymbols ? conf->nsymbols : 1, sizeof(*http->live)))) {
		snprintf(err, errlen, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	http->loop = loop;
	http->conf = conf;
	/* Until run.c has the exchange's list (kl_http_symbols): the configured names. */
	http->syms = conf->symbols;
	http->nsyms = conf->nsymbols;
	if (parse_listen(http, conf->http_listen) < 0) {
		snprintf(err, errlen, "[http] listen: cannot use '%s'", conf->http_listen);
		r = -EINVAL;
		goto out;
	}
	/* Our own listener, not lws's: see httplisten.h. It also fails here,
	 * with the reason, where lws 4.1.6 would return a context whose dead
	 * listener makes libuv abort later. */
	r = kl_httplisten_open(loop, http->iface, http->port, on_accept, http, &http->listener);
	if (r < 0) {
		snprintf(err, errlen, "[http] listen: cannot listen on %s: %s", conf->http_listen,
			 r == -EINVAL ? "not an IP address (e.g. 127.0.0.1, ::1, 0.0.0.0)"
				      : strerror(-r));
		goto out;
	}
	r = kl_store_open(conf->db_path, true, &http->st, err, errlen);
	if (r < 0)
		goto out;
	kl_lwsctx_log_init();
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 |
		       LWS_SERVER_OPTION_DISABLE_IPV6 * (strchr(http->iface, ':') == NULL);
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* connections come from http->listener */
	info.vhost_name = "klined";
	info.protocols = protocols;
	info.foreign_loops = loops;
	info.user = http;
	info.max_http_header_data = HEADER_MAX;
	/* One header table per connection lws can hold at all (0: its fd
	 * limit): with a fixed pool, that many clients sending nothing made
	 * every other request wait for their timeout. A table is ~5 KiB and
	 * exists only while a request head is being read. */
	info.max_http_header_pool = 0;
	info.timeout_secs = 10;
	info.keepalive_timeout = 5;
	info.server_string = "klined";
	http->slot = kl_lwsctx_slot();
	info.pcontext = http->slot;
	http->ctx = lws_create_context(&info);
	if (http->slot)
		*http->slot = http->ctx;
	if (http->ctx)
		http->vhost = lws_get_vhost_by_name(http->ctx, "klined");
	if (!http->vhost) {
		snprintf(err, errlen, "[http] listen: cannot listen on %s", conf->http_listen);
		r = -EIO;
		goto out;
	}
	uv_timer_init(loop, &http->tick);
	http->tick.data = http;
	uv_timer_start(&http->tick, kl__push_tick, TICK_MS, TICK_MS);
	kl_info("http", "serving http://%s/ (page from %s, /api/daily, /api/status, /metrics)",
		conf->http_listen, conf->http_assets ? conf->http_assets : "(none)");
	*ret = http;
	return 0;
out:
	if (http) {
		kl_lwsctx_destroy(http->slot); /* no context: frees the slot at the end */
		kl_httplisten_close(http->listener);
		kl_store_close(http->st);
		free(http->live);
		free(http);
	}
	return r;
}

static void on_tick_closed(uv_handle_t *h)
{
	unref(h->data);
}

int kl_http_symbols(struct kl_http *http, char *const *symbols, size_t n)
{
	struct live *live;

	if (!http || http->closing)
		return 0;
	if (!(live = calloc(n ? n : 1, sizeof(*live))))
		return -ENOMEM;
	for (size_t i = 0; i < http->nsyms; i++) {
		free(http->live[i].frame);
		free(http->live[i].key);
	}
	free(http->live);
	http->live = live;
	http->syms = symbols;
	http->nsyms = n;
	http->symgen++;
	free(http->status); /* /api/status names the symbols */
	http->status = NULL;
	if (http->klines)
		kl_klines_symbols(http->klines, symbols, n);
	return 0;
}

void kl_http_close(struct kl_http *http)
{
	if (!http || http->closing)
		return;
	http->closing = true;
	http->refs = 2; /* the timer's close callback and kl_http_free() */
	uv_close((uv_handle_t *)&http->tick, on_tick_closed);
	kl_httplisten_close(http->listener);
	http->listener = NULL;
	kl_lwsctx_destroy(http->slot);
}

void kl_http_free(struct kl_http *http)
{
	if (!http)
		return;
	kl_http_close(http);
	unref(http);
}