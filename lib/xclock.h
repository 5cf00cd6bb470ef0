/*
 * The exchange's clock, sanity-checked. Binance's /api/v3/time can be wrong
 * for a while (a bad node behind the load balancer): a reading that jumps
 * far from what the clock's own progress (real time since the last believed
 * reading) and a witness (the stream's newest event time) allow is not
 * believed until a run of readings agrees with it for a while.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define KL_XCLOCK_JUMP_MS    INT64_C(21600000) /* 6 h beyond the believed clock's progress */
#define KL_XCLOCK_CONFIRM    3		       /* readings in a row ... */
#define KL_XCLOCK_CONFIRM_MS 120000	       /* ... over this much real time */

struct kl_xclock {
	int64_t ms;	     /* the last believed reading; 0 before the first */
	uint64_t at;	     /* monotonic ms it was read at */
	int64_t doubt_ms;    /* the last doubted reading */
	uint64_t doubt_at;   /* and when */
	uint64_t doubt_from; /* when the doubted run began */
	unsigned doubts;     /* doubted readings in a row that agree with each other */
};

/**
 * Offer @p server_ms, read at monotonic @p mono_ms; @p witness_ms is another
 * reading of the exchange's clock (the stream's newest event time), or -1.
 * @return true when believed (c->ms is then @p server_ms), false when doubted.
 */
bool kl_xclock_read(struct kl_xclock *c, int64_t server_ms, uint64_t mono_ms, int64_t witness_ms);
