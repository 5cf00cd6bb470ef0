/*
 * Exponential backoff with jitter: the one rule behind every retry (REST
 * requests, REST refusals, websocket reconnects, backfill pages).
 */
#ifndef KL_BACKOFF_H
#define KL_BACKOFF_H

#include <stdint.h>

/*
 * The delay before retry number @attempt (0 = the first retry): @first_ms
 * doubled per attempt up to 64 x, capped at @max_ms, then scaled by a factor
 * in [1 - @spread, 1 + @spread) chosen by @u in [0, 1). Jitter after the cap,
 * so that clients that all reached the cap still spread out.
 * @spread 0 (and any @u) gives the bare doubling.
 */
uint64_t kl_backoff_ms(uint64_t first_ms, uint64_t max_ms, unsigned attempt, double spread,
		       double u);

/* A uniform value in [0, 1) from random(): the @u of kl_backoff_ms. */
double kl_backoff_uniform(void);

#endif
