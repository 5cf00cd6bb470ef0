/*
 * The in-process exchange of the websocket adapter tests (test-ws.c,
 * test-ws-sub.c): a plain libuv TCP server on the test's loop that speaks
 * just enough HTTP and RFC 6455 to refuse the upgrade, accept and drop,
 * stall, announce serverShutdown, or serve kline events for the streams of
 * its URL and of live SUBSCRIBE/UNSUBSCRIBE requests, counting every
 * connection and every control message the client sends.
 */
#pragma once

#include "conf.h"
#include "ws.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define MAX_CONNS   64
#define MAX_STREAMS 256
#define MAX_CTRL    64
#define T0_E	    1678489200000LL /* 2023-03-10T23:00:00Z, an event time */

enum mode {
	REFUSE,	  /* answer the upgrade 429, then 403, alternately */
	DROP,	  /* accept, send `frames` events, close the socket */
	STALL,	  /* accept, then nothing at all */
	SHUTDOWN, /* accept; the first connection announces serverShutdown */
	HOLD,	  /* read the request, answer nothing */
	SERVE,	  /* accept; an event per stream every 50 ms; answer control messages */
	SLOW,	  /* answer the upgrade after upgrade_delay_ms, then nothing */
};

struct fixture;

struct sconn {
	uv_tcp_t tcp;
	uv_timer_t feed; /* SHUTDOWN: the successor's events; SERVE: every stream's */
	uv_timer_t ack;	 /* SERVE with ack_delay_ms: the held control message's turn */
	char *held;	 /* that message */
	struct fixture *f;
	int id;
	char req[4096];
	size_t len;
	bool upgraded, closed;
	int sent;		      /* events sent */
	uint64_t closed_at, first_at; /* uv_now(): gone; its first event sent */
	unsigned char *rx;	      /* SERVE: the client's frames not yet parsed */
	size_t rxlen;
	char streams[MAX_STREAMS][40]; /* SERVE: what it carries now */
	int nstreams;
	uint64_t ctrl_at[MAX_CTRL]; /* uv_now() of each control message */
	int nctrl;
	int next_streams; /* when it closed: how many streams the next connection carried */
};

struct fixture {
	uv_loop_t loop;
	uv_tcp_t listener;
	uv_timer_t tick, deadline;
	int port;
	enum mode mode;
	int frames;
	struct sconn *conns[MAX_CONNS];
	uint64_t accepted_at[MAX_CONNS];
	int nconns, open, max_open;
	char path[2048]; /* of the last request */
	struct kl_conf conf;
	char url[64];
	struct kl_ws_limits lim;
	struct kl_ws *ws;
	int (*step)(struct fixture *f); /* each tick; 1: done */
	int events, ups, bad;
	bool done;
	uint64_t t_start; /* uv_now() at kl_ws_new */
	/* SERVE */
	const char *refuse;	   /* a stream whose SUBSCRIBE is answered with an error */
	int ctrl, subs, unsubs;	   /* control messages; streams they (un)subscribed */
	int sub_msgs, unsub_msgs;  /* SUBSCRIBE and UNSUBSCRIBE messages */
	int refused;		   /* error answers sent */
	char last_sym[32];	   /* symbol of the newest event delivered */
	int by_sym[8];		   /* test-ws-sub.c: events delivered per symbol index */
	uint64_t pace_ms;	   /* SERVE: ms between the feed's rounds */
	uint64_t upgrade_delay_ms; /* SLOW */
	bool shutdown_first;	   /* SERVE: the first connection announces serverShutdown */
	uint64_t
	    ack_delay_ms; /* SERVE: control messages take effect (and are answered) this late */
};

int peer_setup(void **state);
int peer_teardown(void **state);

/**
 * Connect for @p symbols (borrowed) with @p on_event, call @p step every
 * 10 ms until it says done, then free the client from that tick.
 */
void peer_run(struct fixture *f, char *const *symbols, size_t n, kl_ws_event_cb on_event,
	      int (*step)(struct fixture *f), uint64_t limit_ms);

/** The "data" of BTCUSDT's event @p i; the stream's frame wraps it. */
void peer_event_data(char *out, size_t n, int i);

/** SERVE: does connection @p c carry @p stream now? */
bool peer_has(const struct sconn *c, const char *stream);

/** The client's stats. */
struct kl_ws_stats peer_stats(const struct fixture *f);

/** Close the server's side of @p c once what was written went out. */
void peer_end(struct sconn *c);
