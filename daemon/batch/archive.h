/*
 * History from data.binance.vision: the monthly and daily 1m kline zips that
 * cover a symbol's holes older than two days (lib/archplan.c says which),
 * each checked against its .CHECKSUM (sha256) and loaded in one transaction
 * through the import path (import.c), up to 32 downloads at a time on the
 * loop. What the archive does not have (a 404, a checksum that does not
 * match, a file the network keeps failing) is left as holes for REST; a
 * gap inside a file is a hole too, never an outage. A file loaded is no
 * longer a hole, so a restart goes on where the last run stopped.
 */
#pragma once

#include "conf.h"
#include "gap.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct kl_archive;

/** Called once when every queued file is done (status 0) or on a store failure (< 0). */
typedef void (*kl_archive_cb)(void *ud, int status);

/**
 * @return 0 with *ret owned by the caller (kl_archive_free), -ENOTSUP when
 * [archive] url is off, or -ENOMEM. All arguments are borrowed.
 */
int kl_archive_new(uv_loop_t *loop, const struct kl_conf *conf, struct kl_store *st,
		   struct kl_archive **ret);

/**
 * Queue the files covering @p holes (borrowed) of @p symbol (borrowed; must
 * outlive the archive) that the archive has at exchange time @p now_ms and
 * that this process has not tried yet. @return the number of files queued
 * (0: nothing for the archive), or -ENOMEM.
 */
int kl_archive_add(struct kl_archive *a, const char *symbol, int64_t sid,
		   const struct kl_ranges *holes, int64_t now_ms);

/** Fetch and load everything queued; @p cb runs from the loop once all is done. */
int kl_archive_run(struct kl_archive *a, kl_archive_cb cb, void *ud);

/** Whether the archive gave up for this process (unreachable); kl_archive_add then adds nothing. */
bool kl_archive_off(const struct kl_archive *a);

/** Whether a run is under way (kl_archive_run until its callback). */
bool kl_archive_running(const struct kl_archive *a);

/** Counters for progress lines and STATUS=. */
struct kl_archive_stats {
	uint64_t loaded, missing, failed, klines, bytes;
	size_t queued; /* files waiting or under way */
};
void kl_archive_stats(const struct kl_archive *a, struct kl_archive_stats *ret);

/**
 * Cancel what is queued (nothing half-loaded stays: a file is one
 * transaction) and free once the HTTP client's handles are closed (the loop
 * must run on). The callback of a run under way is not called. NULL is fine.
 */
void kl_archive_free(struct kl_archive *a);
