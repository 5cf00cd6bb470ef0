/*
 * lib/window: the speed layer's watermark and day window. Kline events
 * are cumulative per minute, so whatever duplicates and reorderings the
 * stream delivers (or a restart replays), the closed part of the day must
 * come out as kl_day_add of the final minutes, and the open minute must
 * only ever move forward.
 */
#include "window.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define D0 1672531200000LL /* 2023-01-01 */

/* Running updates per minute before its final event. */
#define STEPS 3

/*
 * The state of minute @p m of day D0 after @p step trades' worth of
 * updates (1..STEPS running, STEPS + 1 final): volume and trades grow,
 * the high only rises and the low only falls, the close moves.
 */
static struct kl_kline kline(int64_t m, int64_t step)
{
	int64_t p = 1000000000 + (m * 7919 % 1000) * 100000;
	struct kl_kline k = {
	    .open_time = D0 + m * KL_MINUTE_MS,
	    .close_time = D0 + m * KL_MINUTE_MS + 59999,
	    .open = p,
	    .high = p + 1000 * step,
	    .low = p - 700 * step,
	    .close = p + 300 * step - 500,
	    .volume = 100000000 * step + m,
	    .quote_volume = 1000000000000 * step + m,
	    .taker_base = 50000000 * step,
	    .taker_quote = 500000000000 * step,
	    .trades = 10 * step + m,
	};

	return k;
}

/* The event carrying that state: running ones during the minute, the
 * final one just after it. */
static struct kl_event event(int64_t m, int64_t step)
{
	struct kl_event ev = {
	    .symbol = "BTCUSDT",
	    .closed = step > STEPS,
	    .k = kline(m, step),
	};

	ev.event_time =
	    step > STEPS ? ev.k.open_time + KL_MINUTE_MS + 5 : ev.k.open_time + step * 15000 + 3;
	return ev;
}

static struct kl_event final(int64_t m)
{
	return event(m, STEPS + 1);
}

static void assert_same_day(const struct kl_day *a, const struct kl_day *b)
{
	assert_int_equal(a->start, b->start);
	assert_int_equal(a->open, b->open);
	assert_int_equal(a->high, b->high);
	assert_int_equal(a->low, b->low);
	assert_int_equal(a->close, b->close);
	assert_int_equal(a->volume, b->volume);
	assert_true(a->quote_volume == b->quote_volume);
	assert_int_equal(a->trades, b->trades);
	assert_int_equal(a->first_open_time, b->first_open_time);
	assert_int_equal(a->last_open_time, b->last_open_time);
	assert_int_equal(a->nklines, b->nklines);
	assert_memory_equal(a->slots, b->slots, sizeof(a->slots));
}

/* kl_window_day, which must succeed. */
static struct kl_day day_of(const struct kl_window *w)
{
	struct kl_day d;

	assert_true(kl_window_day(w, &d));
	return d;
}

static void watermark(void **state)
{
	struct kl_watermark w;
	struct kl_kline k = kline(0, 1), first = kline(0, 1);

	(void)state;
	kl_watermark_init(&w, 2000);
	assert_int_equal(kl_watermark_value(&w), INT64_MIN);
	/* Nothing is late or final before the first event, not even 1970. */
	first.open_time = 0;
	first.close_time = 59999;
	assert_false(kl_watermark_late(&w, &first));
	assert_false(kl_watermark_final(&w, 0));
	assert_false(kl_watermark_final(&w, D0));

	kl_watermark_observe(&w, D0 + 5000);
	assert_int_equal(kl_watermark_value(&w), D0 + 3000);
	/* Older events never move it back. */
	kl_watermark_observe(&w, D0 + 1000);
	assert_int_equal(kl_watermark_value(&w), D0 + 3000);
	kl_watermark_observe(&w, D0 + 5000);
	assert_int_equal(kl_watermark_value(&w), D0 + 3000);
	kl_watermark_observe(&w, 0);
	assert_int_equal(kl_watermark_value(&w), D0 + 3000);
	kl_watermark_observe(&w, D0 + 5001);
	assert_int_equal(kl_watermark_value(&w), D0 + 3001);

	/* A minute is late once its end is at or behind the watermark. */
	assert_false(kl_watermark_late(&w, &k));
	assert_true(kl_watermark_late(&w, &first));
	kl_watermark_observe(&w, D0 + KL_MINUTE_MS + 2000 - 1);
	assert_int_equal(kl_watermark_value(&w), D0 + KL_MINUTE_MS - 1);
	assert_false(kl_watermark_late(&w, &k));
	kl_watermark_observe(&w, D0 + KL_MINUTE_MS + 2000);
	assert_int_equal(kl_watermark_value(&w), D0 + KL_MINUTE_MS);
	assert_true(kl_watermark_late(&w, &k));
	k = kline(1, 1);
	assert_false(kl_watermark_late(&w, &k));

	/* A day is final once the watermark reaches its end. */
	assert_false(kl_watermark_final(&w, D0));
	assert_true(kl_watermark_final(&w, D0 - KL_DAY_MS));
	kl_watermark_observe(&w, D0 + KL_DAY_MS + 2000 - 1);
	assert_false(kl_watermark_final(&w, D0));
	assert_false(kl_watermark_final(&w, D0 + KL_DAY_MS));
	kl_watermark_observe(&w, D0 + KL_DAY_MS + 2000);
	assert_int_equal(kl_watermark_value(&w), D0 + KL_DAY_MS);
	assert_true(kl_watermark_final(&w, D0));
	assert_false(kl_watermark_final(&w, D0 + KL_DAY_MS));
	k = kline(1439, 1);
	assert_true(kl_watermark_late(&w, &k));

	/* Without lateness the watermark is the newest event time; an event
	 * at time 0 counts as an event. */
	kl_watermark_init(&w, 0);
	assert_int_equal(kl_watermark_value(&w), INT64_MIN);
	kl_watermark_observe(&w, 0);
	assert_int_equal(kl_watermark_value(&w), 0);
	kl_watermark_observe(&w, D0);
	assert_int_equal(kl_watermark_value(&w), D0);
}

static void window_empty(void **state)
{
	struct kl_window w;
	struct kl_day d;

	(void)state;
	memset(&w, 0xa5, sizeof(w));
	kl_window_init(&w, D0 + 12 * 3600000 + 17); /* floored to the day */
	assert_int_equal(w.closed.start, D0);
	assert_false(w.has_open);
	assert_false(kl_window_day(&w, &d));
	assert_int_equal(d.start, D0);
	assert_int_equal(d.nklines, 0);
}

static void window_running_and_final(void **state)
{
	struct kl_window w;
	struct kl_day want, got;
	struct kl_event ev;
	struct kl_kline k;

	(void)state;
	kl_window_init(&w, D0);

	ev = event(0, 1);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_OPEN);
	kl_day_init(&want, D0);
	k = kline(0, 1);
	kl_day_add(&want, &k);
	got = day_of(&w);
	assert_same_day(&got, &want);
	assert_int_equal(w.closed.nklines, 0);

	/* The open minute's newer state replaces the older: not summed. */
	ev = event(0, 2);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_OPEN);
	kl_day_init(&want, D0);
	k = kline(0, 2);
	kl_day_add(&want, &k);
	got = day_of(&w);
	assert_same_day(&got, &want);

	ev = final(0);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_CLOSED);
	assert_false(w.has_open);
	ev = event(1, 1);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_OPEN);
	ev = event(1, 3);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_OPEN);
	ev = final(1);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_CLOSED);
	ev = event(2, 1);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_OPEN);
	ev = event(2, 2);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_OPEN);

	kl_day_init(&want, D0);
	k = final(0).k;
	kl_day_add(&want, &k);
	k = final(1).k;
	kl_day_add(&want, &k);
	assert_same_day(&w.closed, &want);
	k = kline(2, 2);
	kl_day_add(&want, &k);
	got = day_of(&w);
	assert_same_day(&got, &want);
	assert_int_equal(got.nklines, 3);
	assert_int_equal(got.open, kline(0, 1).open);
	assert_int_equal(got.close, kline(2, 2).close);
	assert_int_equal(got.last_open_time, D0 + 2 * KL_MINUTE_MS);

	/* The final of the open minute takes its place, once. */
	ev = final(2);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_CLOSED);
	kl_day_init(&want, D0);
	for (int64_t m = 0; m < 3; m++) {
		k = final(m).k;
		kl_day_add(&want, &k);
	}
	got = day_of(&w);
	assert_same_day(&got, &want);
	assert_same_day(&w.closed, &want);

	/* A late final of an earlier minute leaves a later open minute open. */
	kl_window_init(&w, D0);
	ev = event(5, 2);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_OPEN);
	ev = final(4);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_CLOSED);
	assert_true(w.has_open);
	kl_day_init(&want, D0);
	k = final(4).k;
	kl_day_add(&want, &k);
	k = kline(5, 2);
	kl_day_add(&want, &k);
	got = day_of(&w);
	assert_same_day(&got, &want);
}

static void window_duplicate(void **state)
{
	struct kl_window w;
	struct kl_day before, after;
	struct kl_event ev, spoiled;

	(void)state;
	kl_window_init(&w, D0);
	ev = final(7);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_CLOSED);
	ev = event(8, 1);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_OPEN);
	before = day_of(&w);

	ev = final(7);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_DUPLICATE);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_DUPLICATE);
	/* A second final with other numbers (a replay from another source)
	 * is a duplicate all the same: the first one stands. */
	spoiled = final(7);
	spoiled.k.volume *= 2;
	spoiled.k.high += 1000000;
	spoiled.event_time += KL_MINUTE_MS;
	assert_int_equal(kl_window_apply(&w, &spoiled), KL_APPLY_DUPLICATE);
	assert_int_equal(kl_window_seed(&w, &spoiled.k), KL_APPLY_DUPLICATE);
	/* Same slot, off the minute (2018 maintenance style). */
	spoiled.k.open_time += 30000;
	spoiled.k.close_time += 30000;
	assert_int_equal(kl_window_apply(&w, &spoiled), KL_APPLY_DUPLICATE);
	after = day_of(&w);
	assert_same_day(&after, &before);
	assert_int_equal(w.closed.nklines, 1);
	assert_int_equal(w.open.open_time, D0 + 8 * KL_MINUTE_MS);
}

static void window_stale(void **state)
{
	struct kl_window w;
	struct kl_day before, after;
	struct kl_event ev;

	(void)state;
	kl_window_init(&w, D0);
	ev = final(3);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_CLOSED);
	before = day_of(&w);
	/* Running events of a closed minute, however new, are stale. */
	for (int64_t step = 1; step <= STEPS; step++) {
		ev = event(3, step);
		assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_STALE);
	}
	ev = event(3, STEPS);
	ev.event_time += 10 * KL_MINUTE_MS;
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_STALE);
	after = day_of(&w);
	assert_same_day(&after, &before);
	assert_false(w.has_open);

	ev = event(10, 2);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_OPEN);
	before = day_of(&w);
	/* An earlier minute, even with a newer event time. */
	ev = event(9, 3);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_STALE);
	ev.event_time = D0 + 20 * KL_MINUTE_MS;
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_STALE);
	/* The same minute with an earlier event time. */
	ev = event(10, 1);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_STALE);
	ev = event(10, 3);
	ev.event_time = event(10, 2).event_time - 1;
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_STALE);
	after = day_of(&w);
	assert_same_day(&after, &before);
	assert_int_equal(w.open.volume, kline(10, 2).volume);
	assert_int_equal(w.open_event, event(10, 2).event_time);

	/* An equal event time replaces (two events in one millisecond). */
	ev = event(10, 3);
	ev.event_time = event(10, 2).event_time;
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_OPEN);
	assert_int_equal(w.open.volume, kline(10, 3).volume);
	/* A later minute moves on, whatever its event time. */
	ev = event(11, 1);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_OPEN);
	assert_int_equal(w.open.open_time, D0 + 11 * KL_MINUTE_MS);
	/* And the earlier minute's final still closes it. */
	ev = final(10);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_CLOSED);
	assert_true(w.has_open);
	assert_int_equal(w.closed.nklines, 2);
}

static void window_wrong_day(void **state)
{
	struct kl_window w;
	struct kl_event ev;
	struct kl_kline k;
	struct kl_day d;

	(void)state;
	kl_window_init(&w, D0);
	ev = final(0);
	ev.k.open_time = D0 - KL_MINUTE_MS; /* 2022-12-31 23:59 */
	ev.k.close_time = D0 - 1;
	ev.event_time = D0 + 5;
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_WRONG_DAY);
	ev.closed = false;
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_WRONG_DAY);
	assert_int_equal(kl_window_seed(&w, &ev.k), KL_APPLY_WRONG_DAY);
	ev = final(1440); /* 2023-01-02 00:00 */
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_WRONG_DAY);
	ev.closed = false;
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_WRONG_DAY);
	assert_int_equal(kl_window_seed(&w, &ev.k), KL_APPLY_WRONG_DAY);
	ev = event(0, 1); /* off the minute, a millisecond before the day */
	ev.k.open_time = D0 - 1;
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_WRONG_DAY);
	ev = event(0, 1);
	ev.k.open_time -= KL_DAY_MS;
	ev.k.close_time -= KL_DAY_MS;
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_WRONG_DAY);
	assert_false(kl_window_day(&w, &d));
	assert_false(w.has_open);

	/* The first and last minutes are of the day. */
	ev = final(0);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_CLOSED);
	k = final(1439).k;
	assert_int_equal(kl_window_seed(&w, &k), KL_APPLY_CLOSED);
	ev = event(1439, 1);
	assert_int_equal(kl_window_apply(&w, &ev), KL_APPLY_STALE);
	d = day_of(&w);
	assert_int_equal(d.nklines, 2);
	assert_int_equal(d.first_open_time, D0);
	assert_int_equal(d.last_open_time, D0 + 1439 * KL_MINUTE_MS);
}

/* Every event of minutes [0, n): STEPS running updates then the final. */
static size_t sequence(int64_t n, struct kl_event *evs)
{
	size_t len = 0;

	for (int64_t m = 0; m < n; m++) {
		for (int64_t step = 1; step <= STEPS + 1; step++)
			evs[len++] = event(m, step);
	}
	return len;
}

static void window_seed_restart(void **state)
{
	enum { N = 20, STORED = 12 };
	struct kl_event evs[N * (STEPS + 1)];
	size_t len = sequence(N, evs);
	struct kl_window once, restarted;
	struct kl_day want, got;
	size_t cut = 0;

	(void)state;
	kl_window_init(&once, D0);
	for (size_t i = 0; i < len; i++)
		kl_window_apply(&once, &evs[i]);
	want = day_of(&once);
	assert_int_equal(want.nklines, N);

	/* Restart after minute STORED - 1 was stored, while minute STORED
	 * was running: seed from the store, then the stream replays from
	 * a little before the cut. */
	while (evs[cut].k.open_time < D0 + STORED * KL_MINUTE_MS || cut % (STEPS + 1) < 2)
		cut++;
	kl_window_init(&restarted, D0);
	for (int64_t m = STORED - 1; m >= 0; m--) { /* the store's order must not matter */
		struct kl_kline k = final(m).k;

		assert_int_equal(kl_window_seed(&restarted, &k), KL_APPLY_CLOSED);
	}
	for (size_t i = cut - 2 * (STEPS + 1); i < len; i++) {
		enum kl_apply r = kl_window_apply(&restarted, &evs[i]);

		if (evs[i].k.open_time < D0 + STORED * KL_MINUTE_MS)
			assert_int_equal(r, evs[i].closed ? KL_APPLY_DUPLICATE : KL_APPLY_STALE);
		else
			assert_int_equal(r, evs[i].closed ? KL_APPLY_CLOSED : KL_APPLY_OPEN);
	}
	got = day_of(&restarted);
	assert_same_day(&got, &want);
	assert_same_day(&restarted.closed, &once.closed);

	/* Mid-minute: the same day as a window that saw the same prefix. */
	kl_window_init(&once, D0);
	for (size_t i = 0; i < cut; i++)
		kl_window_apply(&once, &evs[i]);
	kl_window_init(&restarted, D0);
	for (int64_t m = 0; m < STORED; m++) {
		struct kl_kline k = final(m).k;

		kl_window_seed(&restarted, &k);
	}
	assert_int_equal(kl_window_apply(&restarted, &evs[cut - 1]), KL_APPLY_OPEN);
	want = day_of(&once);
	got = day_of(&restarted);
	assert_same_day(&got, &want);
	assert_int_equal(got.nklines, STORED + 1);

	/* Seeding the open minute's slot (stored by another path) closes it. */
	restarted = once;
	assert_true(restarted.has_open);
	{
		struct kl_kline k = final(STORED).k;

		assert_int_equal(kl_window_seed(&restarted, &k), KL_APPLY_CLOSED);
		assert_false(restarted.has_open);
		kl_day_add(&once.closed, &k);
	}
	got = day_of(&restarted);
	assert_same_day(&got, &once.closed);
	assert_int_equal(got.nklines, STORED + 1);
}

/* Numerical Recipes' 64-bit LCG; the high bits are the good ones. */
static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return *s >> 33;
}

static void window_reorder_property(void **state)
{
	enum { N = 40, ROUNDS = 300 };
	static struct kl_event seq[N * (STEPS + 1)], evs[4 * N * (STEPS + 1)];
	size_t len = sequence(N, seq);
	struct kl_window w;
	struct kl_day want, batch, got;
	uint64_t seed = 20230101;

	(void)state;
	kl_window_init(&w, D0);
	for (size_t i = 0; i < len; i++)
		kl_window_apply(&w, &seq[i]);
	want = w.closed;
	/* In order, the closed aggregate is the batch aggregate of the finals. */
	kl_day_init(&batch, D0);
	for (int64_t m = 0; m < N; m++) {
		struct kl_kline k = final(m).k;

		kl_day_add(&batch, &k);
	}
	assert_same_day(&want, &batch);

	for (int round = 0; round < ROUNDS; round++) {
		size_t n = 0, closed = 0;

		/* Every event at least once, some up to four times. */
		for (size_t i = 0; i < len; i++) {
			uint64_t copies = 1 + (lcg(&seed) % 4 == 0 ? 1 + lcg(&seed) % 3 : 0);

			for (uint64_t c = 0; c < copies; c++)
				evs[n++] = seq[i];
		}
		for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
			size_t j = (size_t)(lcg(&seed) % (i + 1));
			struct kl_event t = evs[i];

			evs[i] = evs[j];
			evs[j] = t;
		}
		kl_window_init(&w, D0);
		for (size_t i = 0; i < n; i++) {
			enum kl_apply r = kl_window_apply(&w, &evs[i]);

			assert_true(r != KL_APPLY_WRONG_DAY);
			assert_true(evs[i].closed ? r == KL_APPLY_CLOSED || r == KL_APPLY_DUPLICATE
						  : r == KL_APPLY_OPEN || r == KL_APPLY_STALE);
			if (r == KL_APPLY_CLOSED)
				closed++;
		}
		assert_int_equal(closed, N);
		assert_same_day(&w.closed, &want);
		got = day_of(&w);
		assert_same_day(&got, &want);
	}
}

/* An absurd open time (anyone can produce to the topic) is neither late nor
 * makes the watermark arithmetic overflow (UBSan watches). */
static void watermark_absurd_times(void **state)
{
	struct kl_watermark w;
	struct kl_kline k = {.open_time = INT64_MAX - 1};

	(void)state;
	kl_watermark_init(&w, 60000);
	assert_false(kl_watermark_late(&w, &k));
	assert_false(kl_watermark_final(&w, INT64_MAX - 10));
	kl_watermark_observe(&w, D0);
	assert_false(kl_watermark_late(&w, &k));
	assert_false(kl_watermark_final(&w, INT64_MAX - 10));
	kl_watermark_observe(&w, INT64_MAX);
	assert_false(kl_watermark_late(&w, &k));
	k.open_time = D0;
	assert_true(kl_watermark_late(&w, &k));
}

/* Never more than max attempts in any window, whatever the rate asked. */
static void attempts_budget(void **state)
{
	struct kl_attempts a;
	int64_t t = 1000, taken[1000];
	size_t n = 0;

	(void)state;
	kl_attempts_init(&a, 300, 300000);
	/* A caller that asks every 100 ms for 11 minutes, and waits when told. */
	while (t < 700000 && n < 1000) {
		int64_t wait = kl_attempts_take(&a, t);
		if (wait == 0)
			taken[n++] = t;
		else
			assert_true(wait > 0 && wait <= 300000);
		t += 100;
	}
	assert_int_equal(n, 900); /* 300 at once, then 300 per window */
	for (size_t i = 300; i < n; i++)
		assert_true(taken[i] - taken[i - 300] >= 300000);
	kl_attempts_init(&a, 0, 1000);
	assert_int_equal(kl_attempts_take(&a, 0), 0);
	assert_int_equal(kl_attempts_take(&a, 10), 990);
	assert_int_equal(kl_attempts_take(&a, 1000), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(watermark),
	    cmocka_unit_test(window_empty),
	    cmocka_unit_test(window_running_and_final),
	    cmocka_unit_test(window_duplicate),
	    cmocka_unit_test(window_stale),
	    cmocka_unit_test(window_wrong_day),
	    cmocka_unit_test(window_seed_restart),
	    cmocka_unit_test(window_reorder_property),
	    cmocka_unit_test(watermark_absurd_times),
	    cmocka_unit_test(attempts_budget),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
