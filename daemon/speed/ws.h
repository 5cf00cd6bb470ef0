/*
 * The exchange's kline stream (libwebsockets client on the daemon's libuv
 * loop): combined streams of up to KL_WS_STREAMS_PER_CONN symbols per
 * connection, reconnect with backoff and jitter on close, error or
 * silence, and make-before-break rotation before the exchange's 24 h
 * limit or on a serverShutdown event. The symbol set may change at run
 * time: live connections SUBSCRIBE and UNSUBSCRIBE, paced well under the
 * exchange's 5 incoming messages per second.
 */
#pragma once

#include "conf.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* The exchange allows 1,024 streams per connection; a connection's URL
 * carries what fits in lws 4.1's request line and SUBSCRIBE the rest, ~150
 * a message at 2.5 messages a second per connection. At 500 a connection
 * subscribes in three messages (0.8 s), where 1,000 took seven (2.4 s):
 * the start-up of 1,500 symbols waits for its slowest connection. */
#define KL_WS_STREAMS_PER_CONN 500

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
	uint64_t stable_ms;	 /* a connection that delivered this long resets the backoff */
	size_t streams_per_conn; /* at most; the exchange's limit is 1,024 */
	uint64_t ctrl_gap_ms;	 /* between two control messages on one connection */
	uint64_t ack_ms;	 /* a control message unanswered this long is given up */
};

/* Binance's: 300 attempts per 5 minutes per IP, a ping every 20 s, 5
 * incoming messages per second per connection (pongs included). */
extern const struct kl_ws_limits kl_ws_binance_limits;

/**
 * Connect for @p symbols (borrowed for the call: they are copied), within
 * @p lim (copied).
 * @return 0 with *ret owned by the caller, or -errno with @p err set.
 */
int kl_ws_new(uv_loop_t *loop, const struct kl_conf *conf, const struct kl_ws_limits *lim,
	      char *const *symbols, size_t n, kl_ws_event_cb on_event, kl_ws_up_cb on_up, void *ud,
	      struct kl_ws **ret, char *err, size_t errlen);

/**
 * From now on stream @p symbols (borrowed: must outlive the stream or the
 * next call; the old array may be freed once this returns). Streams no longer
 * wanted are UNSUBSCRIBEd and new ones SUBSCRIBEd on the live connections,
 * within the exchange's limits; the connections of the other symbols are
 * neither closed nor reopened. New connections are opened only when the
 * live ones are full. @return 0 or -ENOMEM (then nothing changed).
 *
 * A connection left with no symbol is closed. Frames of a stream just
 * unsubscribed that arrive before the exchange's answer are delivered like
 * any other (the consumer ignores the symbols it no longer follows, and a
 * removed symbol's last minute may still close). A stream the exchange
 * refuses is logged and not asked for again while it stays in the set.
 * Safe from inside the event and up callbacks.
 */
int kl_ws_set_symbols(struct kl_ws *ws, char *const *symbols, size_t n);

struct kl_ws_stats {
	uint64_t connects, reconnects, rotations, frames, bad_frames;
	uint64_t subscribed, unsubscribed; /* streams, as the exchange acknowledged them */
	uint64_t control_msgs;		   /* SUBSCRIBE/UNSUBSCRIBE messages sent */
	uint64_t refused;		   /* streams the exchange refused (or never answered) */
	size_t connected;		   /* connections currently delivering */
	int64_t last_frame_ms;		   /* uv_now() of the newest frame */
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
