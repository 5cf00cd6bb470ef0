/*
 * What a hole search must read when the store keeps, per symbol, how far
 * it was searched (schema/008-holes.sql): before the mark only the
 * suspect ranges (deleted rows, holes found and not yet filled), after it
 * everything. Pure: the store reads the rows, this says where.
 */
#pragma once

#include "gap.h"

#include <stdbool.h>
#include <stdint.h>

/* One symbol's search state. */
struct kl_holemark {
	int64_t upto;	  /* [coverage start, upto) was searched */
	int64_t rows_end; /* just after the newest kline; <= upto when none lies past it */
	int64_t defer_ms; /* unsearched rows spanning more wait for the verifier; <0: never */
};

/**
 * The parts of [@p from, @p to) to scan for holes, appended in order to
 * @p out (the caller's): @p suspects (ordered by start, may overlap)
 * clipped to before the mark, then [max(from, upto), to). Of the latter,
 * the part holding rows not yet searched, up to rows_end, is left out
 * when it spans more than defer_ms: scanning it would hold the caller for
 * as long as it has rows (a store from before marks), and the verifier
 * searches it in slices. @return 0, or -ENOMEM; *deferred (may be NULL)
 * is set when a part was left out.
 */
int kl_holemark_plan(const struct kl_holemark *m, int64_t from, int64_t to,
		     const struct kl_ranges *suspects, struct kl_ranges *out, bool *deferred);

/**
 * The next slice for the verifier: [upto, end) holding at most
 * @p max_minutes minutes, ending no later than rows_end.
 * @return end, or upto when nothing is left to search.
 */
int64_t kl_holemark_slice(const struct kl_holemark *m, int64_t max_minutes);
