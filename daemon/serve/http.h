/*
 * The read-only HTTP endpoint on the daemon's libuv loop: its own
 * libwebsockets server context beside the stream's client context. It
 * serves the page's files from the assets directory, /api/daily,
 * /api/status, /metrics, and a websocket (protocol "klined-live") that
 * pushes today's candle of the subscribed symbol as the consumer
 * commits it. It reads the store through its own read-only connection,
 * so it sees committed state only and never holds the writer up.
 */
#pragma once

#include "conf.h"

#include <uv.h>

struct kl_http;

/**
 * Listen on conf->http_listen (must not be "off") for the store at
 * conf->db_path (which must exist). @p conf is borrowed and must outlive
 * the server. @return 0 with *ret owned by the caller (kl_http_close);
 * -EINVAL (bad address), -ENOMEM or -EIO (cannot open the store or
 * listen), with a message in @p err.
 */
int kl_http_open(uv_loop_t *loop, const struct kl_conf *conf, struct kl_http **ret, char *err,
		 size_t errlen);

/**
 * Stop serving: close every connection and the listener (their handles
 * close as the loop runs on). Idempotent; NULL is fine.
 */
/**
 * The symbols served from now on (borrowed; they must outlive the server or
 * the next call): the exchange's list once patterns are resolved and unknown
 * names left out. Live subscriptions to the old list end. @return 0 or
 * -ENOMEM (the old list stays). NULL is fine.
 */
int kl_http_symbols(struct kl_http *http, char *const *symbols, size_t n);

void kl_http_close(struct kl_http *http);

/**
 * Free the server (closing it first if needed). Call once the loop has
 * run dry after kl_http_close(), after kl_lwsctx_finish(). NULL is fine.
 */
void kl_http_free(struct kl_http *http);
