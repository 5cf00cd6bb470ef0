/*
 * Inside the HTTP server (daemon/serve/ only): the server struct, the
 * per-connection state, and the helpers a route uses to answer. A route
 * handler answers through kl__http_respond*() and returns what an lws
 * callback returns (0, or -1 to close the connection).
 */
#pragma once

#include "http.h"
#include "store.h"

#include <jansson.h>
#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>

#define LIVE_RX_MAX 64 /* a live subscription is a symbol's name */

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
	char *const *syms; /* the symbols served (kl_http_symbols; borrowed) */
	size_t nsyms;
	uint64_t symgen;   /* bumped by each new list: older subscriptions end */
	struct live *live; /* per symbol served */
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
	uint64_t gen, symgen;
};

/* A dynamic route's handler (http.c's routes[]). A new route is a
 * handler of this type in its own file, declared here, and one line in
 * routes[]. It must answer (or return -1); the request is GET. */
typedef int (*kl__http_route_fn)(struct lws *wsi, struct pss *pss, struct kl_http *http);

/** Headers, then the body from HTTP_WRITEABLE. @p body (malloc'd) is consumed. */
int kl__http_respond(struct lws *wsi, struct pss *pss, unsigned status, const char *ctype,
		     char *body, size_t len);

/** {"error": msg} with @p status. */
int kl__http_respond_error(struct lws *wsi, struct pss *pss, unsigned status, const char *msg);

/** @p j (consumed) as a 200 application/json body. */
int kl__http_respond_json(struct lws *wsi, struct pss *pss, json_t *j);

/** The query string as "a=b&c=d" in @p q (room for @p n). @return 0 or -E2BIG. */
int kl__http_query(struct lws *wsi, char *q, size_t n);

/* api.c: the JSON API and /metrics. */
int kl__api_daily(struct lws *wsi, struct pss *pss, struct kl_http *http);
int kl__api_status(struct lws *wsi, struct pss *pss, struct kl_http *http);
int kl__api_metrics(struct lws *wsi, struct pss *pss, struct kl_http *http);
/* /api/klines and /api/forecast: daemon/serve/klines.c makes the body. */
int kl__api_klines(struct lws *wsi, struct pss *pss, struct kl_http *http);
int kl__api_forecast(struct lws *wsi, struct pss *pss, struct kl_http *http);
/** The backfill's progress as an object. @return a new reference, or NULL (out of memory). */
json_t *kl__api_backfill_json(void);

/* files.c: the page's files. */
/** @return the index of the page file served at @p uri, or -1. */
int kl__files_find(const char *uri);
/** Serve page file @p i (kl__files_find) from the assets directory. */
int kl__files_serve(struct lws *wsi, struct pss *pss, struct kl_http *http, int i);

/* push.c: the live candle over the "klined-live" websocket. */
/** The lws callback of the "klined-live" protocol. */
int kl__push_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		      size_t len);
/** The tick timer's callback (data: the server): refresh the wanted symbols' frames. */
void kl__push_tick(uv_timer_t *t);
