/*
 * The hole search's verifier: it moves each symbol's search mark up to
 * its newest kline and rechecks the suspects, so that kl_store_holes
 * costs what changed. The reading runs on libuv's thread pool, on a
 * read-only connection of its own (WAL lets it read while the loop
 * writes); the loop only writes what it found, a few rows a symbol. A
 * store from before marks is searched so, a slice at a time, never in
 * one long statement on the loop. Holes it finds, and rows deleted by
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

/**
 * Start verifying @p st (borrowed; the writer), reading @p path (the
 * same file) on a connection of its own. @return 0 with *ret, or -errno
 * with @p err set (the store cannot be opened again: read-only, gone).
 */
int kl_verify_new(uv_loop_t *loop, struct kl_store *st, const char *path,
		  const struct kl_verify_cbs *cbs, struct kl_verify **ret, char *err, size_t n);

/** Stop; the memory goes once the loop has run out what is under way. NULL is fine. */
void kl_verify_stop(struct kl_verify *v);
