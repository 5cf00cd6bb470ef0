/*
 * The hole search's verifier: on the loop, in slices of a few ms, it
 * moves each symbol's search mark up to its newest kline and rechecks the
 * suspects (kl_store_verify), so that kl_store_holes costs what changed.
 * A store from before marks is searched here, a slice per loop turn,
 * never in one long statement. Holes it finds, and rows deleted by
 * anyone, are announced through on_news (the heal fetches them).
 */
#pragma once

#include "store.h"

#include <stdint.h>
#include <uv.h>

struct kl_verify;

struct kl_verify_cbs {
	/** The sid of symbol @p i, <= 0 while unknown, -1 past the last. */
	int64_t (*sid_at)(void *ud, size_t i);
	/** Suspects appeared (a hole found, a row deleted). Must not free the verifier. */
	void (*on_news)(void *ud);
	void *ud;
};

/** Start verifying @p st (borrowed). @return 0 with *ret, or -ENOMEM. */
int kl_verify_new(uv_loop_t *loop, struct kl_store *st, const struct kl_verify_cbs *cbs,
		  struct kl_verify **ret);

/** Stop; the memory goes when the loop has closed the timer. NULL is fine. */
void kl_verify_stop(struct kl_verify *v);
