/*
 * Inside the speed layer's consumer (speed.c: events and checkpoints;
 * speed_win.c: symbols and their day windows). Nothing else includes this.
 */
#pragma once

#include "speed.h"
#include "window.h"

#include <stdbool.h>
#include <stdint.h>

#define COMMIT_MS	5 /* a burst gathers this long, then one transaction */
#define COMMIT_EVENTS	1000
#define TAKE_BUDGET_NS	5000000 /* of a consumer batch's events a loop turn */
#define KAFKA_COMMIT_MS 1000	/* Kafka's copy of the offsets, for lag tools */
#define FOREIGN_MS	1000	/* only other instances' events since: their offsets can wait */
#define MAX_PARTS	64
#define WINDOWS		3		  /* open days per symbol: today and late yesterday */
#define FUTURE_MS	600000		  /* events this far past the exchange's clock are bogus */
#define FUTURE_WALL_MS	10000		  /* plus this much wall time at the clock's rate */
#define JUMP_EVENTS	20		  /* this many in a row beyond it: read the clock again */
#define TIME_MAX	253402300800000LL /* 10000-01-01: any time past it is absurd */
#define RETRY_FIRST_MS	1000		  /* after a failed store write: back off, then rewind */
#define RETRY_MAX_MS	30000

struct swin {
	struct kl_window w;
	bool used, dirty;
};

struct ssym {
	const char *symbol;
	int64_t sid;
	struct swin win[WINDOWS];
	int64_t frontier;     /* end of the newest closed minute applied */
	uint64_t frontier_at; /* uv_now() then */
};

struct kl_speed {
	uv_loop_t *loop;
	struct kl_store *st;
	struct kl_bus *bus;
	const struct kl_conf *conf;
	struct ssym *syms; /* sorted by name */
	size_t nsyms;
	size_t hint; /* where kl_speed_frontier looks first */
	struct kl_watermark wm;
	struct kl_bus_offset offs[MAX_PARTS];
	size_t noffs;
	size_t pending;
	size_t skipped;	  /* other instances' events since the checkpoint (not in pending) */
	int64_t clock_ms; /* exchange time from REST; 0 unknown */
	uint64_t clock_at;
	double clock_rate; /* exchange ms per wall ms, 1 on a real exchange */
	unsigned ahead;	   /* consecutive events beyond the clock */
	int64_t stream_ms; /* the exchange's time per klined's own websocket; -1 unknown */
	uint64_t kafka_commit_at;
	int64_t final_upto;
	struct kl_watermark wm_committed; /* as of the last checkpoint: a rewind restores it */
	uint64_t lost_tx;		  /* the store's count when this batch first wrote */
	uint64_t retry_ms;
	uv_timer_t commit_timer, retry_timer;
	uv_idle_t defer_idle;			/* takes the deferred events, a budget a turn */
	struct sdefer *defer_head, *defer_tail; /* events past a batch's budget, in order */
	int nclosing;
	kl_speed_final_cb on_final;
	kl_speed_gap_cb on_gap;
	void *ud;
	struct kl_speed_stats stats;
	bool failed, wrote;
};

/** Apply one event and note its offset. @return false once the store failed (rewinding). */
bool kl__speed_take(struct kl_speed *sp, const struct kl_bus_msg *m);

/** Arm the checkpoint's timer for what was taken. */
void kl__speed_arm_commit(struct kl_speed *sp);

/** Keep a copy of @p m (borrowed) behind the deferred ones (speed_defer.c). @return 0 or -ENOMEM.
 */
int kl__speed_defer(struct kl_speed *sp, const struct kl_bus_msg *m);

/** Drop the deferred events: they are read again from Kafka. */
void kl__speed_defer_clear(struct kl_speed *sp);

/** Order of struct ssym by name. */
int kl__speed_cmp_sym(const void *a, const void *b);

/** The followed symbol @p symbol, or NULL. */
struct ssym *kl__speed_find(struct kl_speed *sp, const char *symbol);

/** The window of @p day for @p s, opened (or an old one evicted) if needed; NULL: late or a
 * store error (then the checkpoint failed). */
struct swin *kl__speed_window(struct kl_speed *sp, struct ssym *s, int64_t day);

/** (Re)build @p w from the minutes stored for @p day. @return 0 or -EIO. */
int kl__speed_load_window(struct kl_speed *sp, struct ssym *s, struct swin *w, int64_t day);

/** Open (or join) the checkpoint's transaction. @return 0 or -errno. */
int kl__speed_begin(struct kl_speed *sp);

/** A store write failed: forget the checkpoint, rewind later. */
void kl__speed_fail(struct kl_speed *sp);
