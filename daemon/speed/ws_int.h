/*
 * The websocket client's insides, shared by ws.c (the lws callback and the
 * connection state machine) and ws_plan.c (the URL, the grouping of
 * streams into connections, the budget of connection attempts). Not for
 * other modules.
 */
#pragma once

#include "ws.h"
#include "window.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define FRAME_MAX	    (1u << 20)
#define ROTATE_MS	    ((23LL * 60 + 30) * 60 * 1000) /* exchange time */
#define STREAM_CLOCK_EVENTS 16	 /* the stream's clock: the oldest of this many newest events */
#define DRAIN_MS	    1000 /* kl_ws_free: the longest wait for half-open connections */

struct slot;

struct conn {
	struct slot *slot;
	struct lws *wsi;
	char *buf;
	size_t len, cap;
	int64_t first_event; /* exchange time of its first event; -1 none */
	uint64_t up_at;	     /* uv_now() when it was established */
	bool established, delivering, closing;
	bool connecting, destroyed; /* inside lws_client_connect_via_info; lws let go of it */
	bool draining;		    /* kl_ws_free shut its socket: the context waits for it */
};

struct slot {
	struct kl_ws *ws;
	char *path;
	struct conn *live, *next;
	uv_timer_t reconnect, silence;
	unsigned attempts;
	uint64_t rotate_at; /* uv_now() before which no rotation is tried (one failed) */
};

struct kl_ws {
	uv_loop_t *loop;
	struct lws_context *ctx, **slot; /* slot: see lwsctx.h */
	struct slot *slots;
	size_t nslots;
	char host[256], prefix[256];
	int port;
	bool tls, closing;
	const struct kl_conf *conf;
	struct kl_ws_limits lim;
	kl_ws_event_cb on_event;
	kl_ws_up_cb on_up;
	void *ud;
	struct kl_ws_stats stats;
	struct kl_attempts budget;
	int64_t recent[STREAM_CLOCK_EVENTS]; /* event times of the newest events received */
	size_t nrecent;
	bool budget_said;
	int nclosing;
	uv_timer_t drain; /* kl_ws_free: destroys the context once connections drained */
	size_t draining;  /* connections kl_ws_free waits for */
};

/** Take @p ws's host, port, TLS and path prefix from @p url. @return 0 or -EINVAL. */
int kl__ws_parse_url(struct kl_ws *ws, const char *url);

/**
 * Group @p symbols (borrowed) into slots of one connection each; their
 * timers are initialised. @return 0, or -ENOMEM with no handle initialised
 * (the paths made so far are in ws->slots[0..nslots) for the caller to free).
 */
int kl__ws_make_slots(struct kl_ws *ws, char *const *symbols, size_t n);

/**
 * Take one connection attempt from the process-wide budget.
 * @return 0 when it may go now; else the ms until one would (said once per refusal run).
 */
int64_t kl__ws_budget_take(struct kl_ws *ws);
