/*
 * The WAL's checkpointer: every second, once the loop's connection has
 * 1,000 pages in the WAL (SQLite's own threshold), one PASSIVE checkpoint
 * on libuv's thread pool, on a connection of its own, so that no commit
 * of the stream copies the WAL into the database on the loop.
 */
#pragma once

#include "store.h"

#include <uv.h>

struct kl_walck;

/**
 * Start checkpointing the file @p path of @p st (borrowed: the loop's
 * writer, whose WAL size is watched). @return 0 with *ret, or -errno (the
 * store's commits then checkpoint inline, as SQLite does).
 */
int kl_walck_new(uv_loop_t *loop, struct kl_store *st, const char *path, struct kl_walck **ret);

/** Stop; the memory goes once a checkpoint under way has returned. NULL is fine. */
void kl_walck_stop(struct kl_walck *w);
