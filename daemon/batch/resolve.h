/*
 * What [exchange] symbols stands for now: its patterns resolved against
 * the exchange's TRADING symbols, then every name checked with
 * exchangeInfo for its status (info.h). klined asks at start, each hour,
 * and after a reload. Symbols already followed that still match the
 * patterns are checked too, so that one which stopped trading is told
 * apart from one the patterns no longer take.
 */
#pragma once

#include "rest.h"

#include <stdbool.h>
#include <stddef.h>

struct kl_resolve;

struct kl_resolved {
	const char *symbol; /* interned: valid until kl_resolve_free */
	bool listed;	    /* exchangeInfo lists it */
	bool trading;	    /* with status TRADING */
	const char *status; /* "TRADING", "BREAK"...; "GONE" when not listed; interned too */
};

/**
 * @p status 0 or -ENOMEM; @p v (valid during the call) the symbols in the
 * list's order, plain names first; @p ntrading: how many TRADING symbols the
 * exchange has (0 when the list has no pattern). The callback may free the
 * resolver.
 */
typedef void (*kl_resolve_cb)(void *ud, int status, const struct kl_resolved *v, size_t n,
			      size_t ntrading);

/** A resolver asking through @p rest (borrowed). @return 0 with *ret owned, or -ENOMEM. */
int kl_resolve_new(struct kl_rest *rest, struct kl_resolve **ret);

/**
 * Resolve the normal-form @p items (copied), keeping those of @p keep
 * (borrowed during the call) that the patterns match though they do not
 * trade. @p quiet: leave unknown names to the caller to report. @p cb runs
 * once, later, unless the rest client is freed first.
 * @return 0, -EBUSY while one runs, or -ENOMEM (then @p cb never runs).
 */
int kl_resolve_run(struct kl_resolve *rs, char *const *items, size_t nitems,
		   const char *const *keep, size_t nkeep, bool quiet, kl_resolve_cb cb, void *ud);

/** @return the interned copy of @p name (valid until kl_resolve_free), or NULL. */
const char *kl_resolve_intern(struct kl_resolve *rs, const char *name);

/**
 * Drop the run under way, without its callback: before the REST client is
 * freed (a reply may be parsing on the thread pool). NULL is fine.
 */
void kl_resolve_stop(struct kl_resolve *rs);

/** Free (a run under way is forgotten: kl_resolve_stop first). NULL is fine. */

void kl_resolve_free(struct kl_resolve *rs);
