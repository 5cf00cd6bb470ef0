/*
 * Consumer state machine, per event:
 *   parse/validate --bad--> reject (kept, logged)
 *   watermark observe; minute ended before the watermark --> late (counted)
 *   window of its day (opened from the store if new) --> apply:
 *      CLOSED: the minute goes to kline_1m (source ws) in the open transaction
 *      OPEN: the day's running row changes
 *   offset of the message noted
 * COMMIT_MS after a batch, or every COMMIT_EVENTS: day rows + offsets + COMMIT, one
 * transaction (invariant: the stored offsets never run ahead of the
 * stored effects of the events before them). Then windows the watermark
 * has passed are closed and reported final.
 */
#include "speed_int.h"

#include "day.h"
#include "event.h"
#include "log.h"
#include "metrics.h"
#include "window.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int kl_speed_new(uv_loop_t *loop, struct kl_store *st, struct kl_bus *bus,
		 const struct kl_conf *conf, const struct kl_speed_symbol *syms, size_t n,
		 kl_speed_final_cb on_final, kl_speed_gap_cb on_gap, void *ud,
		 struct kl_speed **ret)
{
	struct kl_speed *sp = calloc(1, sizeof(*sp));

	if (!sp || !(sp->syms = calloc(n ? n : 1, sizeof(*sp->syms)))) {
		free(sp);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		sp->syms[i].symbol = syms[i].symbol;
		sp->syms[i].sid = syms[i].sid;
		sp->syms[i].frontier = -1;
	}
	qsort(sp->syms, n, sizeof(*sp->syms), kl__speed_cmp_sym);
	sp->nsyms = n;
	sp->loop = loop;
	sp->st = st;
	sp->bus = bus;
	sp->conf = conf;
	sp->on_final = on_final;
	sp->on_gap = on_gap;
	sp->ud = ud;
	sp->final_upto = INT64_MIN;
	sp->clock_rate = 1;
	sp->stream_ms = -1;
	kl_watermark_init(&sp->wm, conf->watermark_ms);
	sp->wm_committed = sp->wm;
	sp->retry_ms = RETRY_FIRST_MS;
	uv_timer_init(loop, &sp->commit_timer);
	sp->commit_timer.data = sp;
	uv_timer_init(loop, &sp->retry_timer);
	sp->retry_timer.data = sp;
	uv_idle_init(loop, &sp->defer_idle);
	sp->defer_idle.data = sp;
	*ret = sp;
	return 0;
}

/* Before the first write of a checkpoint: the store's transaction is shared
 * with the batch layer, and a rollback of either loses both. */
int kl__speed_begin(struct kl_speed *sp)
{
	if (!sp->wrote) {
		sp->lost_tx = kl_store_lost_tx(sp->st);
		sp->wrote = true;
	}
	return kl_store_begin(sp->st);
}

static void on_retry(uv_timer_t *t);

/* A store write failed (disk full, a lock held too long, an I/O error): what
 * this process applied since the last checkpoint is gone from the store, so
 * it is forgotten here too, and read again from Kafka later. */
void kl__speed_fail(struct kl_speed *sp)
{
	if (sp->failed)
		return;
	sp->failed = true;
	sp->stats.store_failures++;
	kl_metrics_add(KL_M_STORE_FAILURES, 1);
	kl_err("speed",
	       "cannot write to the store: %s; consumer paused, resuming in %.0f s from the "
	       "stored offsets",
	       kl_store_errmsg(sp->st), (double)sp->retry_ms / 1000.0);
	kl_store_rollback(sp->st);
	kl__speed_defer_clear(sp); /* read again after the rewind */
	sp->pending = sp->skipped = 0;
	sp->wrote = false;
	uv_timer_stop(&sp->commit_timer);
	uv_timer_start(&sp->retry_timer, on_retry, sp->retry_ms, 0);
	sp->retry_ms = sp->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : sp->retry_ms * 2;
}

static void reject(struct kl_speed *sp, const char *symbol, const char *raw, size_t len,
		   enum kl_verdict v)
{
	char *text = strndup(raw, len < 2000 ? len : 2000);

	sp->stats.bad++;
	if (sp->stats.bad == 1 || sp->stats.bad % 1000 == 0)
		kl_warn("speed", "refused event (%" PRIu64 " so far): %s: %.200s", sp->stats.bad,
			kl_kline_reason(v), text ? text : "");
	kl_store_put_reject(sp->st, sp->wm.max_event < 0 ? 0 : sp->wm.max_event,
			    symbol ? symbol : "?", "ws", kl_kline_reason(v), text ? text : "");
	free(text);
}

/* Another instance's event (shards share the topic): every instance reads every
 * event, so one of a symbol not followed here is skipped by its key, unparsed
 * and unjudged. Unkeyed events are parsed: their symbol is in the value. */
static bool foreign_key(struct kl_speed *sp, const struct kl_bus_msg *m)
{
	char key[32]; /* longer than any symbol: not one of ours */

	if (!m->key || !m->key_len)
		return false;
	if (m->key_len < sizeof(key)) {
		memcpy(key, m->key, m->key_len);
		key[m->key_len] = '\0';
		if (kl__speed_find(sp, key))
			return false;
	}
	return true;
}

static void apply(struct kl_speed *sp, const struct kl_bus_msg *m)
{
	struct kl_event ev;
	enum kl_verdict v;
	struct ssym *s;
	struct swin *w;

	sp->stats.events++;
	if (foreign_key(sp, m)) {
		sp->stats.unknown++;
		kl_metrics_add(KL_M_FOREIGN, 1);
		return;
	}
	v = kl_event_parse(m->value, m->len, &ev);
	if (v == KL_KLINE_OK)
		v = kl_kline_check(&ev.k, 0, TIME_MAX);
	if (v == KL_KLINE_OK && (ev.event_time < 0 || ev.event_time >= TIME_MAX))
		v = KL_KLINE_FUTURE;
	if (v != KL_KLINE_OK) {
		reject(sp, NULL, m->value, m->len, v);
		return;
	}
	s = kl__speed_find(sp, ev.symbol);
	if (!s) {
		sp->stats.unknown++;
		kl_metrics_add(KL_M_FOREIGN, 1);
		return;
	}
	if (sp->clock_ms) {
		/* The exchange's clock extrapolated from REST readings at the rate it has
		 * been seen to run (a replay runs fast). An event beyond it plus the
		 * tolerance is refused, however many come: anyone who can produce to
		 * the topic could send them, and the watermark they would move makes
		 * every real event late. Only the clock moves the cap, never the events
		 * (else each accepted one would let the next go a tolerance further).
		 * When many come in a row, the clock may be what lags (a replay's jump):
		 * ask for a heal, which reads it again first. */
		double wall = (double)(uv_now(sp->loop) - sp->clock_at);
		int64_t now = sp->clock_ms + (int64_t)(wall * sp->clock_rate);
		int64_t slack = FUTURE_MS + (int64_t)(FUTURE_WALL_MS * sp->clock_rate);
		if (sp->stream_ms > now)
			now = sp->stream_ms; /* what our own connection saw, not the topic */
		if (ev.event_time > now + slack || ev.k.open_time > now + slack) {
			sp->stats.future++;
			if (++sp->ahead % JUMP_EVENTS == 0) {
				kl_warn(
				    "speed",
				    "%u events in a row beyond the exchange's clock (by %" PRId64
				    " s and more): refused; reading the clock again",
				    sp->ahead, (ev.event_time - now) / 1000);
				if (sp->on_gap)
					sp->on_gap(sp->ud);
			}
			reject(sp, ev.symbol, m->value, m->len, KL_KLINE_FUTURE);
			return;
		}
		sp->ahead = 0;
	}
	kl_watermark_observe(&sp->wm, ev.event_time);
	sp->stats.last_event_time = sp->wm.max_event;
	kl_metrics_event(s->symbol, ev.event_time, m->timestamp);
	if (kl_watermark_late(&sp->wm, &ev.k) ||
	    !(w = kl__speed_window(sp, s, kl_day_floor(ev.k.open_time)))) {
		sp->stats.late++;
		kl_metrics_add(KL_M_LATE, 1);
		return;
	}
	sp->stats.last_symbol = s->symbol;
	sp->stats.last_close = kl_dec_double(ev.k.close);
	switch (kl_window_apply(&w->w, &ev)) {
	case KL_APPLY_CLOSED:
		if (kl__speed_begin(sp) < 0 ||
		    kl_store_put_kline(sp->st, s->sid, &ev.k, KL_SRC_WS) < 0) {
			kl__speed_fail(sp);
			return;
		}
		sp->stats.closed++;
		if (ev.k.open_time > s->frontier && sp->on_gap)
			sp->on_gap(sp->ud); /* a first minute, or minutes the stream skipped */
		if (ev.k.open_time + KL_MINUTE_MS > s->frontier)
			s->frontier = ev.k.open_time + KL_MINUTE_MS;
		s->frontier_at = uv_now(sp->loop);
		w->dirty = true;
		break;
	case KL_APPLY_OPEN:
		w->dirty = true;
		break;
	case KL_APPLY_DUPLICATE:
		sp->stats.duplicates++;
		kl_metrics_add(KL_M_DUPLICATES, 1);
		break;
	case KL_APPLY_STALE:
	case KL_APPLY_WRONG_DAY:
		sp->stats.stale++;
		break;
	}
}

static void note_offset(struct kl_speed *sp, int32_t part, int64_t next)
{
	for (size_t i = 0; i < sp->noffs; i++) {
		if (sp->offs[i].partition == part) {
			sp->offs[i].offset = next;
			return;
		}
	}
	if (sp->noffs < MAX_PARTS)
		sp->offs[sp->noffs++] = (struct kl_bus_offset){part, next};
}

/* Windows the watermark has passed: write their last row and report the day. */
static void close_final(struct kl_speed *sp)
{
	int64_t newest_final = INT64_MIN;

	for (size_t i = 0; i < sp->nsyms; i++) {
		for (int k = 0; k < WINDOWS; k++) {
			struct swin *w = &sp->syms[i].win[k];
			if (!w->used || !kl_watermark_final(&sp->wm, w->w.closed.start))
				continue;
			if (w->w.closed.start > newest_final)
				newest_final = w->w.closed.start;
			w->used = false;
		}
	}
	if (newest_final > sp->final_upto) {
		sp->final_upto = newest_final;
		char day[11];
		kl_day_format(newest_final, day);
		kl_info("speed", "day %s is final in event time (watermark passed its end)", day);
		if (sp->on_final)
			sp->on_final(sp->ud, newest_final);
	}
}

static void commit(struct kl_speed *sp)
{
	uint64_t t0 = uv_hrtime();
	int r;

	uv_timer_stop(&sp->commit_timer);
	if ((!sp->pending && !sp->skipped) || sp->failed)
		return;
	if (sp->wrote && kl_store_lost_tx(sp->st) != sp->lost_tx) {
		kl__speed_fail(sp); /* the batch layer's failed commit took our minutes along */
		return;
	}
	r = kl__speed_begin(sp);
	for (size_t i = 0; r == 0 && i < sp->nsyms; i++) {
		for (int k = 0; r == 0 && k < WINDOWS; k++) {
			struct swin *w = &sp->syms[i].win[k];
			struct kl_day d;
			if (!w->used || !w->dirty)
				continue;
			if (kl_window_day(&w->w, &d))
				r = kl_store_put_speed_day(sp->st, sp->syms[i].sid, &d);
			w->dirty = false;
		}
	}
	for (size_t i = 0; r == 0 && i < sp->noffs; i++)
		r = kl_store_put_offset(sp->st, sp->conf->kafka_topic, sp->offs[i].partition,
					sp->offs[i].offset);
	if (r == 0)
		r = kl_store_commit(sp->st);
	if (r < 0) {
		kl__speed_fail(sp);
		return;
	}
	sp->pending = sp->skipped = 0;
	sp->wrote = false;
	sp->wm_committed = sp->wm;
	sp->retry_ms = RETRY_FIRST_MS;
	sp->stats.commits++;
	double ms = (double)(uv_hrtime() - t0) / 1e6;
	kl_metrics_commit(ms / 1000.0);
	for (size_t i = 0; i < sp->noffs; i++)
		kl_metrics_consumer_position(sp->offs[i].partition, sp->offs[i].offset);
	if (ms > sp->stats.commit_ms_max)
		sp->stats.commit_ms_max = ms;
	/* Kafka's copy of the offsets is only for lag tools: once a second is plenty,
	 * and an OffsetCommit per SQLite commit would load the broker for nothing. */
	if (uv_now(sp->loop) >= sp->kafka_commit_at) {
		kl_bus_commit(sp->bus, sp->offs, sp->noffs);
		sp->kafka_commit_at = uv_now(sp->loop) + KAFKA_COMMIT_MS;
	}
	close_final(sp);
}

static void on_commit_timer(uv_timer_t *t)
{
	commit(t->data);
}

bool kl__speed_take(struct kl_speed *sp, const struct kl_bus_msg *m)
{
	uint64_t foreign = sp->stats.unknown;

	apply(sp, m);
	if (sp->failed)
		return false; /* this message is read again after the rewind */
	note_offset(sp, m->partition, m->offset + 1);
	/* Another instance's events change nothing here: their offsets ride
	 * along with our next checkpoint, or wait FOREIGN_MS (a shard whose own
	 * symbols are few would otherwise commit every few ms for the others). */
	if (sp->stats.unknown != foreign)
		sp->skipped++;
	else if (++sp->pending >= COMMIT_EVENTS)
		commit(sp);
	return !sp->failed;
}

void kl__speed_arm_commit(struct kl_speed *sp)
{
	if (sp->failed)
		return;
	if (sp->pending && (!uv_is_active((uv_handle_t *)&sp->commit_timer) ||
			    uv_timer_get_due_in(&sp->commit_timer) > COMMIT_MS))
		uv_timer_start(&sp->commit_timer, on_commit_timer, COMMIT_MS, 0);
	else if (sp->skipped && !uv_is_active((uv_handle_t *)&sp->commit_timer))
		uv_timer_start(&sp->commit_timer, on_commit_timer, FOREIGN_MS, 0);
}

static void on_batch(void *ud, const struct kl_bus_msg *m, size_t n)
{
	struct kl_speed *sp = ud;
	uint64_t t0 = uv_hrtime();
	size_t i = 0;

	if (sp->failed)
		return; /* paused: read again after the rewind */
	/* A batch's first events of each symbol open windows from the store (a
	 * restart: 1,000 of them are half a second), a minute's close commits
	 * 1,500 rows: what is past TAKE_BUDGET_NS waits for the next loop turns,
	 * in order, and so does everything behind it. */
	for (; i < n && !sp->defer_head && uv_hrtime() - t0 < TAKE_BUDGET_NS; i++)
		if (!kl__speed_take(sp, &m[i]))
			return;
	for (; i < n; i++)
		if (kl__speed_defer(sp, &m[i]) < 0) {
			kl_err("speed", "out of memory: consumer paused, resuming from the stored "
					"offsets");
			kl__speed_fail(sp);
			return;
		}
	kl__speed_arm_commit(sp);
}

static int load_offsets(struct kl_speed *sp)
{
	int32_t parts[MAX_PARTS];
	int64_t next[MAX_PARTS];
	int n = kl_store_get_offsets(sp->st, sp->conf->kafka_topic, parts, next, MAX_PARTS);

	if (n < 0)
		return n;
	sp->noffs = 0;
	for (int i = 0; i < n; i++)
		note_offset(sp, parts[i], next[i]);
	return 0;
}

int kl_speed_start(struct kl_speed *sp)
{
	int r = load_offsets(sp);

	return r < 0 ? r : kl_bus_consume(sp->bus, sp->offs, sp->noffs, on_batch, sp);
}

/* Back to the last checkpoint: its offsets, its watermark, windows reloaded
 * from the store as events need them. */
static void on_retry(uv_timer_t *t)
{
	struct kl_speed *sp = t->data;

	if (load_offsets(sp) < 0) {
		kl_err("speed", "cannot read the stored offsets: %s; retrying",
		       kl_store_errmsg(sp->st));
		uv_timer_start(&sp->retry_timer, on_retry, sp->retry_ms, 0);
		return;
	}
	for (size_t i = 0; i < sp->nsyms; i++) {
		for (int k = 0; k < WINDOWS; k++)
			sp->syms[i].win[k].used = sp->syms[i].win[k].dirty = false;
	}
	sp->wm = sp->wm_committed;
	sp->ahead = 0;
	sp->failed = false;
	kl_info("speed", "resuming from the stored offsets");
	kl_bus_rewind(sp->bus, sp->offs, sp->noffs);
}

void kl_speed_set_clock(struct kl_speed *sp, int64_t exchange_ms)
{
	uint64_t wall = uv_now(sp->loop) - sp->clock_at;

	if (sp->clock_ms && wall >= 1000 && exchange_ms > sp->clock_ms) {
		double rate = (double)(exchange_ms - sp->clock_ms) / (double)wall;
		sp->clock_rate = rate < 1 ? 1 : rate > 1e6 ? 1e6 : rate;
	}
	sp->clock_ms = exchange_ms;
	sp->clock_at = uv_now(sp->loop);
}

void kl_speed_set_stream_time(struct kl_speed *sp, int64_t exchange_ms)
{
	if (exchange_ms > sp->stream_ms)
		sp->stream_ms = exchange_ms;
}

void kl_speed_reload(struct kl_speed *sp, const int64_t *sids, size_t n)
{
	for (size_t i = 0; i < sp->nsyms; i++) {
		bool want = !sids;

		for (size_t k = 0; k < n && !want; k++)
			want = sids[k] == sp->syms[i].sid;
		for (int k = 0; want && k < WINDOWS; k++) {
			struct swin *w = &sp->syms[i].win[k];
			if (w->used)
				kl__speed_load_window(sp, &sp->syms[i], w, w->w.closed.start);
		}
	}
	/* The reloaded days go out with the next checkpoint, not one each: a
	 * fill's end reloads symbol by symbol. */
	sp->pending++;
	if (!uv_is_active((uv_handle_t *)&sp->commit_timer))
		uv_timer_start(&sp->commit_timer, on_commit_timer, COMMIT_MS, 0);
}

void kl_speed_stats(const struct kl_speed *sp, struct kl_speed_stats *ret)
{
	*ret = sp->stats;
	ret->watermark = kl_watermark_value(&sp->wm);
}

static void on_closed(uv_handle_t *h)
{
	struct kl_speed *sp = h->data;

	if (--sp->nclosing)
		return;
	free(sp->syms);
	free(sp);
}

void kl_speed_free(struct kl_speed *sp)
{
	if (!sp)
		return;
	sp->on_final = NULL;
	sp->on_gap = NULL;
	commit(sp);
	kl_info("speed",
		"stopped: events=%" PRIu64 ", closed=%" PRIu64 ", late=%" PRIu64 ", future=%" PRIu64
		", bad=%" PRIu64 ", duplicates=%" PRIu64 ", stale=%" PRIu64 ", foreign=%" PRIu64
		", commits=%" PRIu64 ", store_failures=%" PRIu64,
		sp->stats.events, sp->stats.closed, sp->stats.late, sp->stats.future, sp->stats.bad,
		sp->stats.duplicates, sp->stats.stale, sp->stats.unknown, sp->stats.commits,
		sp->stats.store_failures);
	kl__speed_defer_clear(sp); /* not applied: read again at the next start */
	sp->nclosing = 3;
	uv_close((uv_handle_t *)&sp->commit_timer, on_closed);
	uv_close((uv_handle_t *)&sp->retry_timer, on_closed);
	uv_close((uv_handle_t *)&sp->defer_idle, on_closed);
}
