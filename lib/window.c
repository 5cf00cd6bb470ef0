/*
 * Event-time windows. Rules for one minute slot of a day window:
 *  1. The first closed (x:true) event adds the minute to the day; later
 *     ones for that slot are duplicates.
 *  2. A running (x:false) event replaces the open-minute state only if it
 *     is for a later minute, or for the same minute with a later or equal
 *     event time; a running event of a closed slot is stale.
 * So the day is the same whatever duplicates and reorderings arrived.
 */
#include "window.h"

#include <string.h>

void kl_watermark_init(struct kl_watermark *w, int64_t lateness_ms)
{
	w->max_event = -1;
	w->lateness = lateness_ms;
}

void kl_watermark_observe(struct kl_watermark *w, int64_t event_time)
{
	if (event_time > w->max_event)
		w->max_event = event_time;
}

int64_t kl_watermark_value(const struct kl_watermark *w)
{
	return w->max_event < 0 ? INT64_MIN : w->max_event - w->lateness;
}

/* Written so that no time, however absurd, overflows: an open time near
 * INT64_MAX arrives from anyone who can produce to the topic. */
bool kl_watermark_late(const struct kl_watermark *w, const struct kl_kline *k)
{
	int64_t v = kl_watermark_value(w);

	return v != INT64_MIN && k->open_time <= v - KL_MINUTE_MS;
}

bool kl_watermark_final(const struct kl_watermark *w, int64_t day_start)
{
	int64_t v = kl_watermark_value(w);

	return v != INT64_MIN && day_start <= v - KL_DAY_MS;
}

void kl_attempts_init(struct kl_attempts *a, size_t max, int64_t window_ms)
{
	memset(a, 0, sizeof(*a));
	a->max = max < 1 ? 1 : max > KL_ATTEMPTS_CAP ? KL_ATTEMPTS_CAP : max;
	a->window = window_ms;
}

int64_t kl_attempts_take(struct kl_attempts *a, int64_t now)
{
	/* The oldest of the last max attempts decides: it must have left the window. */
	if (a->n == a->max) {
		int64_t oldest = a->at[a->head];
		if (now - oldest < a->window)
			return oldest + a->window - now;
		a->head = (a->head + 1) % a->max;
		a->n--;
	}
	a->at[(a->head + a->n) % a->max] = now;
	a->n++;
	return 0;
}

void kl_window_init(struct kl_window *w, int64_t day_start)
{
	memset(w, 0, sizeof(*w));
	kl_day_init(&w->closed, day_start);
}

static bool slot_closed(const struct kl_window *w, int64_t open_time)
{
	int64_t slot = (open_time - w->closed.start) / KL_MINUTE_MS;

	return w->closed.slots[slot / 64] & (1ULL << (slot % 64));
}

static bool in_day(const struct kl_window *w, int64_t t)
{
	return t >= w->closed.start && t < w->closed.start + KL_DAY_MS;
}

enum kl_apply kl_window_seed(struct kl_window *w, const struct kl_kline *k)
{
	if (!in_day(w, k->open_time))
		return KL_APPLY_WRONG_DAY;
	if (slot_closed(w, k->open_time))
		return KL_APPLY_DUPLICATE;
	kl_day_add(&w->closed, k);
	if (w->has_open && kl_kline_slot(w->open.open_time) == kl_kline_slot(k->open_time))
		w->has_open = false;
	return KL_APPLY_CLOSED;
}

enum kl_apply kl_window_apply(struct kl_window *w, const struct kl_event *ev)
{
	const struct kl_kline *k = &ev->k;

	if (!in_day(w, k->open_time))
		return KL_APPLY_WRONG_DAY;
	if (ev->closed)
		return kl_window_seed(w, k);
	if (slot_closed(w, k->open_time))
		return KL_APPLY_STALE;
	if (w->has_open && (k->open_time < w->open.open_time ||
			    (k->open_time == w->open.open_time && ev->event_time < w->open_event)))
		return KL_APPLY_STALE;
	w->open = *k;
	w->open_event = ev->event_time;
	w->has_open = true;
	return KL_APPLY_OPEN;
}

bool kl_window_day(const struct kl_window *w, struct kl_day *ret)
{
	*ret = w->closed;
	if (w->has_open && !slot_closed(w, w->open.open_time))
		kl_day_add(ret, &w->open);
	return ret->nklines > 0;
}
