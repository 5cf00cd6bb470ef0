/*
 * Minute ranges: what is missing between a coverage start and the
 * exchange's last closed minute, what a REST page left out, and how a
 * missing range splits into pages. All ranges are half-open [from, to)
 * in ms and minute-aligned.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct kl_range {
	int64_t from, to;
};

/* A growable, ordered list of disjoint ranges. */
struct kl_ranges {
	struct kl_range *v;
	size_t n, cap;
};

/** Append [from, to), merging with the last range when they touch. @return 0 or -ENOMEM. */
int kl_ranges_add(struct kl_ranges *r, int64_t from, int64_t to);

/** Free the ranges' memory (the struct itself is the caller's). */
void kl_ranges_clear(struct kl_ranges *r);

/** @return the number of minutes in all ranges. */
int64_t kl_ranges_minutes(const struct kl_ranges *r);

/**
 * Remove @p sub (ordered, disjoint) from @p r in place.
 * @return 0 or -ENOMEM.
 */
int kl_ranges_subtract(struct kl_ranges *r, const struct kl_ranges *sub);

/*
 * A scan over ascending open times that collects the minutes of
 * [from, to) no kline occupies. Off-minute open times occupy their
 * floor minute; repeated minutes are harmless.
 */
struct kl_gapscan {
	int64_t next, to;
	struct kl_ranges *out;
};

/** Start a scan of [from, to) appending holes to @p out (borrowed). */
void kl_gapscan_init(struct kl_gapscan *s, int64_t from, int64_t to, struct kl_ranges *out);

/** Feed the next open time (ascending). @return 0 or -ENOMEM. */
int kl_gapscan_feed(struct kl_gapscan *s, int64_t open_time);

/** Close the scan: the tail after the last kline is a hole too. @return 0 or -ENOMEM. */
int kl_gapscan_finish(struct kl_gapscan *s);

/**
 * The first page of at most @p limit minutes of @p r: [r.from, min(r.to,
 * r.from + limit minutes)).
 */
struct kl_range kl_range_page(struct kl_range r, int limit);
