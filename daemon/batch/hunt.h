/*
 * The heal's hole search off the loop: kl_store_holes for a list of
 * symbols, on libuv's thread pool, on a read-only connection of its own
 * (WAL lets it read while the loop writes). 1,500 symbols' searches are
 * 15-30 ms even when little changed; on the loop they delayed every
 * stream event of the moment by as much. What the loop's writer has not
 * yet committed is not seen: at worst a minute the stream just wrote is
 * asked from REST again, which the store takes as it takes any repeat.
 */
#pragma once

#include "store.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct kl_hunt;

/* One symbol's search: [from, to) of sid in, its holes out (r: 0 or -errno). */
struct kl_hunt_item {
	int64_t sid, from, to;
	size_t tag; /* the caller's, untouched */
	struct kl_ranges holes;
	int r;
};

/** The search is over: @p items is the caller's again. May not free the hunt. */
typedef void (*kl_hunt_cb)(void *ud, struct kl_hunt_item *items, size_t n);

/**
 * Search @p path (the file of @p st, the loop's writer: borrowed, for its
 * kl_store_holes_exact) on a connection of its own, opened at the first
 * run. @return 0 with *ret (kl_hunt_stop), or -ENOMEM.
 */
int kl_hunt_new(uv_loop_t *loop, struct kl_store *st, const char *path, struct kl_hunt **ret);

/**
 * Search @p items[0, n) (malloc'd: the hunt's until @p done hands it back,
 * each item's holes appended to; freed by the hunt, holes and all, if it
 * is stopped first). One search at a time: -EBUSY while one runs, -EIO
 * if the store cannot be opened (said); the items stay the caller's.
 * @return 0: @p done is called later, from the loop.
 */
int kl_hunt_run(struct kl_hunt *hu, struct kl_hunt_item *items, size_t n, kl_hunt_cb done,
		void *ud);

/** Whether a search runs. */
bool kl_hunt_busy(const struct kl_hunt *hu);

/** Stop: a search under way ends without its callback; the memory goes after it. NULL is fine. */
void kl_hunt_stop(struct kl_hunt *hu);
