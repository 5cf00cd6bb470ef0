/*
 * A UTC day of one symbol: the aggregate of its minute klines (first
 * open, highest high, lowest low, last close, exact sums) and which of
 * its 1440 minute slots are accounted for (a kline, or a confirmed
 * outage). Batch and speed layers both aggregate through here.
 */
#pragma once

#include "dec.h"
#include "kline.h"

#include <stdbool.h>
#include <stdint.h>

#define KL_DAY_SLOTS 1440

enum kl_day_source {
	KL_DAY_BATCH = 1, /* a complete day from minute klines */
	KL_DAY_SPEED = 2, /* not yet complete or certified */
	KL_DAY_FILL = 3,  /* complete, and the exchange has no kline at all */
};

struct kl_day {
	int64_t start; /* ms, a multiple of KL_DAY_MS */
	kl_i128 open, high, low, close, volume, quote_volume;
	int64_t trades;
	int64_t first_open_time, last_open_time; /* of the klines giving open, close */
	uint32_t nklines;
	uint64_t slots[(KL_DAY_SLOTS + 63) / 64];
};

/** Start an empty day beginning at @p start (floored to the day). */
void kl_day_init(struct kl_day *d, int64_t start);

/**
 * Add a kline of this day; order does not matter (open and close follow
 * open_time). @return 0, or -EINVAL if the kline is not in this day.
 */
int kl_day_add(struct kl_day *d, const struct kl_kline *k);

/** Mark the minutes of [from, to) that fall in this day as accounted for. */
void kl_day_cover(struct kl_day *d, int64_t from, int64_t to);

/** @return true when all 1440 minutes are accounted for. */
bool kl_day_complete(const struct kl_day *d);

/** Turn a day with no kline into a forward-filled one at @p prev_close. */
void kl_day_fill(struct kl_day *d, kl_i128 prev_close);

/** @return the start of the UTC day containing @p ms. */
int64_t kl_day_floor(int64_t ms);

/** Write "YYYY-MM-DD" for the day containing @p ms into @p buf (>= 11 bytes). */
void kl_day_format(int64_t ms, char buf[static 11]);

/** Write "YYYY-MM-DDTHH:MM:SSZ" for @p ms into @p buf (>= 21 bytes). */
void kl_time_format(int64_t ms, char buf[static 21]);

/** Parse "YYYY-MM-DD" (UTC). @return 0 with *ret the day's start ms, or -EINVAL. */
int kl_day_parse(const char *s, int64_t *ret);
