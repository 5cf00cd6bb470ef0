/*
 * The websocket client's insides, shared by ws.c (the lws callback and the
 * connection state machine), ws_plan.c (the URL, the grouping of streams
 * into connections, the budget of connection attempts) and ws_sub.c (live
 * SUBSCRIBE/UNSUBSCRIBE, paced). Not for other modules.
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

#define CTRL_MAX   4096 /* bytes of one control message: far below any frame limit */
#define SYMBOL_MAX 32	/* bytes with the NUL: longer ones are not streamed */

struct slot;

/* A sorted set of owned strings: symbols as the caller spells them. */
struct kl__strs {
	char **v;
	size_t n, cap;
};

enum { CTRL_NONE, CTRL_SUB, CTRL_UNSUB };

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
	char *path;		    /* of its request (owned) */
	/* Its streams: its URL's, plus those SUBSCRIBEd and acknowledged, minus
	 * those UNSUBSCRIBEd; pend: those of the one request in flight. */
	struct kl__strs have, pend;
	int pend_op; /* CTRL_* */
	int64_t pend_id;
	uint64_t ctrl_at; /* uv_now() of its last control message; 0 none */
	bool writing;	  /* a control message waits for WRITEABLE */
};

struct slot {
	struct kl_ws *ws;
	struct kl__strs want;	 /* its symbols; none: no connection (dormant) */
	struct kl__strs refused; /* wanted, refused by the exchange: not asked again */
	struct kl__strs single;	 /* in a refused request: each asked alone once */
	struct conn *live, *next;
	uv_timer_t reconnect, silence,
	    pace; /* pace: the next control message, or its answer's deadline */
	unsigned attempts;
	uint64_t rotate_at; /* uv_now() before which no rotation is tried (one failed) */
	uint64_t heard_at;  /* uv_now() when a frame last restarted the silence timer */
};

struct kl_ws {
	uv_loop_t *loop;
	struct lws_context *ctx, **slot; /* slot: see lwsctx.h */
	struct slot **slots;		 /* pointers: connections and timers point at their slot */
	size_t nslots;
	int64_t next_id; /* of control messages */
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

/** @return true when @p x is in @p s. */
bool kl__strs_has(const struct kl__strs *s, const char *x);
/** Add a copy of @p x (kept sorted; no duplicate). @return 0 or -ENOMEM. */
int kl__strs_add(struct kl__strs *s, const char *x);
/** Remove @p x if there. */
void kl__strs_del(struct kl__strs *s, const char *x);
/** Free the strings and the array; @p s is then empty (and may be reused). */
void kl__strs_free(struct kl__strs *s);

/** Write @p symbol's stream name ("btcusdt@kline_1m", NUL-terminated; room for
 * SYMBOL_MAX + 10 bytes) to @p out. @return its length. */
size_t kl__ws_stream(char *out, const char *symbol);

/**
 * The request path of a new connection of @p s: as many of its wanted and
 * not refused streams as fit the request line, each also added to @p have.
 * @return the path (owned by the caller) or NULL (out of memory).
 */
char *kl__ws_path(const struct kl_ws *ws, const struct slot *s, struct kl__strs *have);

/** Free a connection lws let go of (or never took). */
void kl__ws_conn_free(struct conn *c);

/* ws.c */
void kl__ws_connect(struct slot *s);
void kl__ws_close(struct conn *c);
/** The successor delivers and carries all its slot's streams: the old connection goes. */
void kl__ws_take_over(struct slot *s);

/* ws_sub.c */
/** Send @p c's next control message when the pace allows (or arm the slot's pace timer). */
void kl__ws_pump(struct conn *c);
/** WRITEABLE: write the control message kl__ws_pump asked for. @return 0, or -1 to close. */
int kl__ws_write_ctrl(struct conn *c);
/** The exchange answered a control message (c->buf holds the answer). */
void kl__ws_reply(struct conn *c);
/** @return true when @p c carries every stream its slot wants and asks for nothing. */
bool kl__ws_complete(const struct conn *c);
/** Bring @p s's connections to its (new) wanted set: connect, close, or pump. */
void kl__ws_sync(struct slot *s);
void kl__ws_on_pace(uv_timer_t *t);

/**
 * Take one connection attempt from the process-wide budget.
 * @return 0 when it may go now; else the ms until one would (said once per refusal run).
 */
int64_t kl__ws_budget_take(struct kl_ws *ws);
