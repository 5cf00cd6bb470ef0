/*
 * HTTP server: one lws context (its own, on the daemon's foreign libuv
 * loop; the stream's client context is untouched), one vhost on the
 * configured address. Request life:
 *
 *   HTTP (GET only; 405 otherwise) --route--> static file | dynamic body | 404
 *   dynamic body: headers with its length, then HTTP_WRITEABLE writes
 *   CHUNK bytes per callback, the last one FINAL, then keep-alive.
 *
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

#include "httplisten.h"
#include "health.h"
#include "httpq.h"
#include "klines.h"
#include "log.h"
#include "lwsctx.h"
#include "metrics.h"
#include "store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK	      16384
#define HEADER_MAX    4096 /* request line + headers */
#define TICK_MS	      250  /* how often the live candle is looked at */
#define FORCE_TICKS   8	   /* re-read at least this often (REST-only days move too) */
#define STATUS_TTL_MS 2000 /* /api/status walks every symbol's holes: cache it */
#define LIVE_RX_MAX   64

struct live {
	char *frame; /* the newest JSON pushed for the symbol, NUL-terminated */
	size_t len;
	uint64_t gen;
	char *key;   /* the frame without its lag: unchanged, no new frame */
	bool wanted; /* someone subscribed once: keep it fresh */
};

struct kl_http {
	uv_loop_t *loop;
	const struct kl_conf *conf;
	struct lws_context *ctx, **slot; /* slot: see lwsctx.h */
	struct lws_vhost *vhost;
	struct kl_httplisten *listener;
	struct kl_store *st;	  /* read-only */
	struct kl_klines *klines; /* /api/klines, /api/forecast: made at the first */
	uv_timer_t tick;
	struct live *live; /* per configured symbol */
	uint64_t commits_seen;
	unsigned ticks;
	char *status; /* cached /api/status body */
	size_t status_len;
	uint64_t status_at;
	char iface[64];
	int port, refs;
	bool closing;
};

/* Per connection: an HTTP transaction's body, or a live subscriber. */
struct pss {
	char *body;
	size_t len, off;
	int sub;
	uint64_t gen;
};

static const struct lws_protocols protocols[3];

static void unref(struct kl_http *http)
{
	if (--http->refs > 0)
		return;
	for (size_t i = 0; i < http->conf->nsymbols; i++) {
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

/* Headers and then the body from HTTP_WRITEABLE. @p body (malloc'd) is consumed. */
static int respond(struct lws *wsi, struct pss *pss, unsigned status, const char *ctype, char *body,
		   size_t len)
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

static int respond_error(struct lws *wsi, struct pss *pss, unsigned status, const char *msg)
{
	json_t *j = json_pack("{s:s}", "error", msg);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (!s)
		return -1;
	return respond(wsi, pss, status, "application/json", s, strlen(s));
}

static int respond_json(struct lws *wsi, struct pss *pss, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15));

	json_decref(j);
	if (!s)
		return respond_error(wsi, pss, 500, "out of memory");
	return respond(wsi, pss, 200, "application/json", s, strlen(s));
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
static int query_of(struct lws *wsi, char *q, size_t n)
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

static int api_daily(struct lws *wsi, struct pss *pss, struct kl_http *http)
{
	char q[KL_HTTPQ_QUERY_MAX + 2], err[128];
	struct kl_httpq_daily d;
	json_t *rows = NULL;
	const char *sym;
	int r;

	if (query_of(wsi, q, sizeof(q)) < 0)
		return respond_error(wsi, pss, 400, "query string too long");
	if (kl_httpq_daily(q, http->conf->symbols, http->conf->nsymbols, &d, err, sizeof(err)) < 0)
		return respond_error(wsi, pss, 400, err);
	sym = http->conf->symbols[d.symbol];
	r = kl_store_daily(http->st, sym, d.days, d.exact, &rows);
	if (r < 0) {
		kl_warn("http", "/api/daily: cannot read the store: %s", kl_store_errmsg(http->st));
		return respond_error(wsi, pss, 503, "cannot read the store");
	}
	return respond_json(wsi, pss, json_pack("{s:s, s:o}", "symbol", sym, "days", rows));
}

/* /api/klines and /api/forecast: daemon/serve/klines.c makes the body. */
static int api_klines(struct lws *wsi, struct pss *pss, struct kl_http *http, const char *uri)
{
	char q[KL_HTTPQ_QUERY_MAX + 2], *body;
	unsigned status;
	size_t len;

	if (query_of(wsi, q, sizeof(q)) < 0)
		return respond_error(wsi, pss, 400, "query string too long");
	if ((!http->klines && kl_klines_new(http->conf, &http->klines) < 0) ||
	    kl_klines_get(http->klines, uri, q, &status, &body, &len) < 0)
		return respond_error(wsi, pss, 500, "out of memory");
	return respond(wsi, pss, status, "application/json", body, len);
}

static json_t *backfill_json(void)
{
	int64_t done, total;
	double rate, eta;
	int running;

	kl_metrics_backfill_get(&done, &total, &rate, &eta, &running);
	return json_pack("{s:b, s:I, s:I, s:f, s:f}", "running", running, "done_minutes",
			 (json_int_t)done, "total_minutes", (json_int_t)total, "rows_per_second",
			 rate, "eta_seconds", eta);
}

/* What `klined status --json` prints, plus the configured symbols and the backfill. */
static int api_status(struct lws *wsi, struct pss *pss, struct kl_http *http)
{
	uint64_t now = uv_now(http->loop);
	json_t *j = NULL, *syms;
	char *s;

	if (!http->status || now - http->status_at >= STATUS_TTL_MS) {
		if (kl_store_status(http->st, &j) < 0) {
			kl_warn("http", "/api/status: cannot read the store: %s",
				kl_store_errmsg(http->st));
			return respond_error(wsi, pss, 503, "cannot read the store");
		}
		syms = json_array();
		for (size_t i = 0; syms && i < http->conf->nsymbols; i++)
			json_array_append_new(syms, json_string(http->conf->symbols[i]));
		json_object_set_new(j, "configured_symbols", syms);
		json_object_set_new(j, "backfill", backfill_json());
		json_object_set_new(j, "health", kl_health_json(http->conf));
		s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15));
		json_decref(j);
		if (!s)
			return respond_error(wsi, pss, 500, "out of memory");
		free(http->status);
		http->status = s;
		http->status_len = strlen(s);
		http->status_at = now;
	}
	s = strdup(http->status);
	if (!s)
		return respond_error(wsi, pss, 500, "out of memory");
	return respond(wsi, pss, 200, "application/json", s, http->status_len);
}

static int metrics(struct lws *wsi, struct pss *pss)
{
	char *s;
	size_t len;

	if (kl_metrics_text(&s, &len) < 0)
		return respond_error(wsi, pss, 500, "out of memory");
	return respond(wsi, pss, 200, "text/plain; version=0.0.4; charset=utf-8", s, len);
}

/* Invariant 2: the only files ever served. */
static const struct {
	const char *path, *file, *mime;
} files[] = {
    {"/", "index.html", "text/html; charset=utf-8"},
    {"/index.html", "index.html", "text/html; charset=utf-8"},
    {"/app.js", "app.js", "text/javascript; charset=utf-8"},
    {"/app.css", "app.css", "text/css; charset=utf-8"},
    {"/lightweight-charts.js", "lightweight-charts.standalone.production.js",
     "text/javascript; charset=utf-8"},
};

/* Scripts only from here; styles may be inline because lightweight-charts
 * applies one (the page test fails on any CSP violation in the console). */
static const char csp[] = "content-security-policy: default-src 'none'; script-src 'self'; "
			  "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
			  "connect-src 'self'; frame-ancestors 'none'\r\n"
			  "x-content-type-options: nosniff\r\n";

static int serve_file(struct lws *wsi, struct pss *pss, struct kl_http *http, size_t i)
{
	char path[4096];
	int n;

	snprintf(path, sizeof(path), "%s/%s",
		 http->conf->http_assets ? http->conf->http_assets : "/nonexistent", files[i].file);
	if (access(path, R_OK) < 0)
		return respond_error(wsi, pss, 404, "page file missing from the assets directory");
	n = lws_serve_http_file(wsi, path, files[i].mime, csp, (int)strlen(csp));
	if (n < 0 || (n > 0 && lws_http_transaction_completed(wsi)))
		return -1;
	return 0;
}

static int route(struct lws *wsi, struct pss *pss, const char *uri)
{
	struct kl_http *http = http_of(wsi);

	if (!http || http->closing)
		return -1;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
		return respond_error(wsi, pss, 405, "only GET is served");
	if (!strcmp(uri, "/api/daily"))
		return api_daily(wsi, pss, http);
	if (!strcmp(uri, "/api/klines") || !strcmp(uri, "/api/forecast"))
		return api_klines(wsi, pss, http, uri);
	if (!strcmp(uri, "/api/status"))
		return api_status(wsi, pss, http);
	if (!strcmp(uri, "/metrics"))
		return metrics(wsi, pss);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (!strcmp(uri, files[i].path))
			return serve_file(wsi, pss, http, i);
	}
	return respond_error(wsi, pss, 404, "no such page");
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

/*
 * Today's row of symbol @p i as the page wants it, with the newest event
 * time and the backfill's progress: a new frame (generation) only when
 * any of them changed, with the lag since the event added at that moment.
 */
static void refresh(struct kl_http *http, size_t i)
{
	const char *sym = http->conf->symbols[i];
	struct live *l = &http->live[i];
	int64_t et = kl_metrics_event_time(sym);
	json_t *rows = NULL, *j;
	struct timespec ts;
	char *key, *s;

	if (kl_store_daily(http->st, sym, 1, false, &rows) < 0)
		return;
	j = json_pack("{s:s, s:O?, s:o, s:o}", "symbol", sym, "row", json_array_get(rows, 0),
		      "event_time", et < 0 ? json_null() : json_integer(et), "backfill",
		      backfill_json());
	json_decref(rows);
	key = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
	if (!key || (l->key && !strcmp(l->key, key))) {
		free(key);
		json_decref(j);
		return;
	}
	free(l->key);
	l->key = key;
	clock_gettime(CLOCK_REALTIME, &ts);
	json_object_set_new(
	    j, "lag_ms",
	    et < 0 ? json_null()
		   : json_integer((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - et));
	s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15));
	json_decref(j);
	if (!s)
		return;
	free(l->frame);
	l->frame = s;
	l->len = strlen(s);
	l->gen++;
}

static void on_tick(uv_timer_t *t)
{
	struct kl_http *http = t->data;
	uint64_t c = kl_metrics_commits();
	bool any = false;

	if (c == http->commits_seen && ++http->ticks < FORCE_TICKS)
		return;
	http->commits_seen = c;
	http->ticks = 0;
	for (size_t i = 0; i < http->conf->nsymbols; i++) {
		if (http->live[i].wanted) {
			refresh(http, i);
			any = true;
		}
	}
	if (any)
		lws_callback_on_writable_all_protocol(http->ctx, &protocols[1]);
}

static int live_send(struct lws *wsi, struct pss *pss, struct kl_http *http)
{
	struct live *l;
	uint8_t *buf;
	int n;

	if (pss->sub < 0)
		return 0;
	l = &http->live[pss->sub];
	if (!l->frame || pss->gen == l->gen)
		return 0;
	buf = malloc(LWS_PRE + l->len);
	if (!buf)
		return -1;
	memcpy(buf + LWS_PRE, l->frame, l->len);
	n = lws_write(wsi, buf + LWS_PRE, l->len, LWS_WRITE_TEXT);
	free(buf);
	if (n < (int)l->len)
		return -1;
	pss->gen = l->gen;
	return 0;
}

static int on_live(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		   size_t len)
{
	struct pss *pss = user;
	struct kl_http *http = lws_context_user(lws_get_context(wsi));
	int i;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		pss->sub = -1;
		break;
	case LWS_CALLBACK_RECEIVE:
		/* A subscription is the symbol's name: anything else is ignored. */
		if (!http || http->closing || len > LIVE_RX_MAX || lws_frame_is_binary(wsi))
			break;
		i = kl_httpq_symbol(in, len, http->conf->symbols, http->conf->nsymbols);
		if (i < 0)
			break;
		pss->sub = i;
		pss->gen = 0;
		if (!http->live[i].wanted) {
			http->live[i].wanted = true;
			refresh(http, (size_t)i);
		}
		lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!http || http->closing)
			break;
		return live_send(wsi, pss, http);
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[3] = {
    {"http", on_http, sizeof(struct pss), 0, 0, NULL, 0},
    {"klined-live", on_live, sizeof(struct pss), LIVE_RX_MAX, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void on_lws_log(int level, const char *line)
{
	size_t n = strlen(line);

	while (n && line[n - 1] == '\n')
		n--;
	/* lws 4.1.6 says how it serves every adopted connection at error level. */
	if (strstr(line, "adopt_socket_readbuf: "))
		level = LLL_DEBUG;
	kl_log((level & LLL_ERR) ? KL_LOG_ERROR : KL_LOG_DEBUG, "http", "%.*s", (int)n, line);
}

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
	lws_set_log_level(kl_log_enabled(KL_LOG_DEBUG) ? LLL_ERR | LLL_WARN | LLL_NOTICE : LLL_ERR,
			  on_lws_log);
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
	uv_timer_start(&http->tick, on_tick, TICK_MS, TICK_MS);
	kl_info("http", "serving http://%s/ (page, /api/daily, /api/status, /metrics)",
		conf->http_listen);
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
