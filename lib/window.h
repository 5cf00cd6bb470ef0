/*
 * The speed layer's event-time logic: a watermark that trails the newest
 * event time by a fixed lateness, and a day window per symbol that
 * aggregates closed minutes (through kl_day, the batch layer's code) plus
 * the running state of the open minute. Kline events are cumulative per
 * minute, so duplicates and reordering are absorbed rather than summed.
 */
#pragma once

#include "day.h"
#include "kline.h"

#include <stdbool.h>
#include <stdint.h>

struct kl_watermark {
	int64_t max_event; /* newest event time seen; -1 before any */
	int64_t lateness;
};

/** Start a watermark allowing @p lateness_ms. */
void kl_watermark_init(struct kl_watermark *w, int64_t lateness_ms);

/** Advance with an event time. */
void kl_watermark_observe(struct kl_watermark *w, int64_t event_time);

/** @return the watermark (INT64_MIN before any event). */
int64_t kl_watermark_value(const struct kl_watermark *w);

/** @return true when the minute of @p k ended before the watermark: too late for the speed layer.
 */
bool kl_watermark_late(const struct kl_watermark *w, const struct kl_kline *k);

/** @return true when the day starting at @p day_start can no longer change in event time. */
bool kl_watermark_final(const struct kl_watermark *w, int64_t day_start);

/*
 * A sliding-window budget of attempts (connection attempts to the
 * exchange): at most @c max in any @c window milliseconds, whatever the
 * callers do. Times are the caller's monotonic milliseconds.
 */
#define KL_ATTEMPTS_CAP 512
struct kl_attempts {
	int64_t at[KL_ATTEMPTS_CAP]; /* ring of the newest attempts' times */
	size_t max, n, head;
	int64_t window;
};

/** Allow @p max (clamped to 1..KL_ATTEMPTS_CAP) attempts per @p window_ms. */
void kl_attempts_init(struct kl_attempts *a, size_t max, int64_t window_ms);

/** @return 0 when an attempt at @p now fits, and records it; else the ms until one would. */
int64_t kl_attempts_take(struct kl_attempts *a, int64_t now);

/* What applying an event did. */
enum kl_apply {
	KL_APPLY_CLOSED,    /* a minute closed: store it */
	KL_APPLY_OPEN,	    /* the open minute moved on */
	KL_APPLY_DUPLICATE, /* that minute is closed already */
	KL_APPLY_STALE,	    /* older than the state it would replace */
	KL_APPLY_WRONG_DAY, /* not an event of this window's day */
};

struct kl_window {
	struct kl_day closed; /* aggregate of the closed minutes */
	struct kl_kline open; /* latest state of the open minute */
	int64_t open_event;   /* its event time */
	bool has_open;
};

/** Start the window of the day containing @p day_start, empty. */
void kl_window_init(struct kl_window *w, int64_t day_start);

/**
 * Seed the window with a minute already stored (closed), e.g. when it is
 * reopened after a restart. @return as kl_window_apply.
 */
enum kl_apply kl_window_seed(struct kl_window *w, const struct kl_kline *k);

/** Apply one event. */
enum kl_apply kl_window_apply(struct kl_window *w, const struct kl_event *ev);

/**
 * The day as it stands: closed minutes plus the open minute, if any.
 * @return false when the window has seen nothing.
 */
bool kl_window_day(const struct kl_window *w, struct kl_day *ret);
