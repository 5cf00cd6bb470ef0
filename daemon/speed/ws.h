/*
 * The exchange's kline stream (libwebsockets client on the daemon's libuv
 * loop): combined streams of up to KL_WS_STREAMS_PER_CONN symbols per
 * connection, reconnect with backoff and jitter on close, error or
 * silence, and make-before-break rotation before the exchange's 24 h
 * limit or on a serverShutdown event.
 */
#pragma once

#include "conf.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define KL_WS_STREAMS_PER_CONN 200

struct kl_ws;

/** One event: its symbol and the raw text of a combined frame's "data" (borrowed). */
typedef void (*kl_ws_event_cb)(void *ud, const char *symbol, const char *data, size_t len);

/** A connection came up (a window the stream did not see may lie behind it). */
typedef void (*kl_ws_up_cb)(void *ud);

/* The exchange's limits and klined's answers to them (tests shrink them). */
struct kl_ws_limits {
	size_t attempts; /* connection attempts per attempts_window_ms, all slots */
	int64_t attempts_window_ms;
	uint64_t silence_ms;	   /* no frame and no ping for this long: the connection is dead */
	uint64_t backoff_first_ms; /* reconnect backoff, doubled per attempt, with jitter */
	uint64_t backoff_max_ms;
	uint64_t stable_ms; /* a connection that delivered this long resets the backoff */
};

/* Binance's: 300 attempts per 5 minutes per IP, a ping every 20 s. */
extern const struct kl_ws_limits kl_ws_binance_limits;

/**
 * Connect for @p symbols (borrowed, must outlive the stream), within
 * @p lim (copied).
 * @return 0 with *ret owned by the caller, or -errno with @p err set.
 */
int kl_ws_new(uv_loop_t *loop, const struct kl_conf *conf, const struct kl_ws_limits *lim,
	      char *const *symbols, size_t n, kl_ws_event_cb on_event, kl_ws_up_cb on_up, void *ud,
	      struct kl_ws **ret, char *err, size_t errlen);

struct kl_ws_stats {
	uint64_t connects, reconnects, rotations, frames, bad_frames;
	size_t connected;      /* connections currently delivering */
	int64_t last_frame_ms; /* uv_now() of the newest frame */
};
void kl_ws_stats(const struct kl_ws *ws, struct kl_ws_stats *ret);

/**
 * The exchange's time as its own stream tells it: the oldest event time of
 * the newest events received over the websocket (so a few absurd frames do
 * not move it). -1 before enough events. NULL is fine.
 */
int64_t kl_ws_exchange_time(const struct kl_ws *ws);

/** Close every connection and free once lws has let go (the loop must run on). NULL is fine. */
void kl_ws_free(struct kl_ws *ws);
