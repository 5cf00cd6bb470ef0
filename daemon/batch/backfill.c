/*
 * Backfill state machine, per symbol:
 *   QUEUED ranges --page--> IN FLIGHT --200--> STORED (+ rejects)
 *                              |    \--lacks minutes--> PROBE --> outage | refetch | hole
 *                              |  \--5xx/429/timeout/bad body--> retried by rest.c
 *                              |--other refusal--> retried here, growing backoff; after
 *                              |                   REFUSALS_PER_RUN set aside for the run
 *                              \--  -1121 --> symbol INACTIVE (checked again, resumes)
 * Invariants:
 *  1. A missing range becomes an outage only when a request of its own,
 *     starting at the range's first minute, answered with a first kline
 *     beyond the range (Binance answers a startTime with the oldest klines
 *     from it: a halt is skipped over, a short or empty page is not), and
 *     the exchange has served a kline OUTAGE_MARGIN_MS after the range.
 *     For a symbol the exchange reports as not trading, an empty answer
 *     for a range older than the margin behind its clock is enough.
 *     Anything else stays a hole, fetched again later. A minute whose
 *     kline was refused is neither data nor outage: it is refetched.
 *  2. Pages land in large transactions (COMMIT_ROWS or COMMIT_MS); a
 *     SIGTERM commits what was fetched before the process exits.
 *  3. At most PAGES_AHEAD pages are handed to rest.c at a time, so memory
 *     stays flat however large the gap is.
 */
#include "backfill_int.h"
#include "backoff.h"

#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STORE_ROWS 250 /* of a page stored a loop turn */
#define NTIMERS	   4 /* commit, progress, hold timers and the store's idle: closed before the free */

int kl_backfill_new(uv_loop_t *loop, struct kl_rest *rest, struct kl_store *st,
		    struct kl_backfill **ret)
{
	struct kl_backfill *bf = calloc(1, sizeof(*bf));

	if (!bf)
		return -ENOMEM;
	bf->loop = loop;
	bf->rest = rest;
	bf->st = st;
	uv_timer_init(loop, &bf->commit_timer);
	uv_timer_init(loop, &bf->progress_timer);
	uv_timer_init(loop, &bf->hold_timer);
	uv_idle_init(loop, &bf->store_idle);
	bf->commit_timer.data = bf;
	bf->progress_timer.data = bf;
	bf->hold_timer.data = bf;
	bf->store_idle.data = bf;
	*ret = bf;
	return 0;
}

int kl_backfill_add(struct kl_backfill *bf, const char *symbol, int64_t sid,
		    const struct kl_ranges *ranges)
{
	struct sym *s;

	if (!bf->running && bf->finished) {
		/* A new run: progress counts from here. */
		bf->done = bf->total = 0;
		bf->finished = false;
	}
	if (!(s = bf_find(bf, sid))) {
		struct sym *v = realloc(bf->syms, (bf->nsyms + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		bf->syms = v;
		s = &v[bf->nsyms++];
		*s = (struct sym){.symbol = symbol, .sid = sid};
	}
	if (s->inactive)
		return 0; /* its holes stay in the store until it is listed again */
	if (s->next >= s->todo.n) {
		/* All handed out: start afresh, or new ranges would merge into spent ones. */
		kl_ranges_clear(&s->todo);
		s->next = 0;
	}
	for (size_t i = 0; i < ranges->n; i++) {
		if (kl_ranges_add(&s->todo, ranges->v[i].from, ranges->v[i].to) < 0)
			return -ENOMEM;
	}
	bf->total += kl_ranges_minutes(ranges);
	return 0;
}

static void commit(struct kl_backfill *bf)
{
	int r = kl_store_commit(bf->st);

	uv_timer_stop(&bf->commit_timer);
	bf->rows_pending = 0;
	if (r < 0) {
		kl_err("backfill", "commit failed: %s", kl_store_errmsg(bf->st));
		bf->failed = true;
	}
}

static void on_commit_timer(uv_timer_t *t)
{
	commit(t->data);
}

void bf_commit_soon(struct kl_backfill *bf)
{
	if (!uv_is_active((uv_handle_t *)&bf->commit_timer))
		uv_timer_start(&bf->commit_timer, on_commit_timer, COMMIT_MS, 0);
}

static void log_progress(struct kl_backfill *bf, const char *what)
{
	double secs = (double)(uv_now(bf->loop) - bf->started) / 1000.0;
	double rate = secs > 0 ? (double)bf->rows / secs : 0;
	double pct = bf->total ? 100.0 * (double)bf->done / (double)bf->total : 100.0;
	double mrate = secs > 0 ? (double)bf->done / secs : 0;
	double eta = mrate > 0 ? (double)(bf->total - bf->done) / mrate : 0;
	char left[48];

	/* No ETA before a page has come back: a guess from nothing is a lie. */
	if (bf->done >= bf->total)
		snprintf(left, sizeof(left), "took %.1f s", secs);
	else if (bf->done == 0 || mrate <= 0)
		snprintf(left, sizeof(left), "ETA unknown yet");
	else
		snprintf(left, sizeof(left), "ETA %.0f s", eta);
	kl_info("backfill",
		"%s: %zu symbols, %" PRId64 "/%" PRId64 " minutes (%.1f%%), %" PRId64
		" rows, %.0f rows/s, %s",
		what, bf->nsyms, bf->done, bf->total, pct, bf->rows, rate, left);
}

static void on_progress_timer(uv_timer_t *t)
{
	log_progress(t->data, "progress");
}

void bf_page_free(struct page *p)
{
	for (size_t i = 0; i < p->nrej; i++)
		free(p->rej[i].raw);
	free(p->rej);
	free(p->k);
	free(p->t);
	free(p->body);
	free(p);
}

void bf_log_outage(const struct sym *s, int64_t from, int64_t to)
{
	char a[21], b[21];

	kl_time_format(from, a);
	kl_time_format(to, b);
	kl_info("backfill",
		"%s: the exchange has no klines for [%s, %s) (%" PRId64
		" minutes): recorded as an outage",
		s->symbol, a, b, (to - from) / KL_MINUTE_MS);
}

/*
 * Ask whether @p r (a range a 200 page lacked) is an outage: a request of
 * its own from r's first minute (invariant 1). @return 0 or -ENOMEM.
 */
static int probe(struct kl_backfill *bf, size_t sym, struct kl_range r, unsigned attempt)
{
	struct page *q = calloc(1, sizeof(*q));

	if (!q)
		return -ENOMEM;
	*q = (struct page){.bf = bf, .sym = sym, .r = r, .attempt = attempt, .probe = true};
	if (!bf_request_page(bf, q, 0)) {
		free(q);
		return -ENOMEM;
	}
	bf->outstanding++;
	return 0;
}

/* Store one parsed page (on the loop). @return 0, or -EIO with the backfill failed. */
/*
 * Store up to @p max more of @p p's klines (the refused ones first).
 * @return 1 once all are in, 0 with more to go, -EIO on a store error
 * (said; the page's rows are given up).
 */
static int store_rows(struct kl_backfill *bf, struct page *p, size_t max)
{
	struct sym *s = &bf->syms[p->sym];
	size_t end = p->nk - p->stored > max ? p->stored + max : p->nk;

	if (kl_store_begin(bf->st) < 0)
		goto fail;
	for (size_t i = 0; p->stored == 0 && i < p->nrej; i++) {
		const char *raw = p->rej[i].raw ? p->rej[i].raw : "";
		kl_warn("backfill", "%s: refused kline %.200s: %s", s->symbol, raw,
			kl_kline_reason(p->rej[i].v));
		if (kl_store_put_reject(bf->st, bf->now_ms, s->symbol, "rest",
					kl_kline_reason(p->rej[i].v), raw) < 0)
			goto fail;
	}
	for (; p->stored < end; p->stored++) {
		if (kl_store_put_kline(bf->st, s->sid, &p->k[p->stored], KL_SRC_REST) < 0)
			goto fail;
	}
	return p->stored == p->nk;
fail:
	kl_err("backfill", "%s: cannot store a page: %s", s->symbol, kl_store_errmsg(bf->st));
	kl_store_rollback(bf->st);
	bf->failed = true;
	p->stored = p->nk;
	p->lost = true;
	return -EIO;
}

/* @p p's klines are stored (store_rows): its holes, outages and progress. */
static int store_page(struct kl_backfill *bf, struct page *p)
{
	struct sym *s = &bf->syms[p->sym];
	struct kl_ranges holes = {0};
	struct kl_gapscan scan;
	int64_t covered;

	if (p->lost || store_rows(bf, p, SIZE_MAX) < 0)
		return -EIO;
	/* A full page may stop short of the range; what follows is fetched next. */
	covered = p->nrows >= PAGE_LIMIT && p->nt ? kl_kline_slot(p->t[p->nt - 1]) + KL_MINUTE_MS
						  : p->r.to;
	if (covered > p->r.to)
		covered = p->r.to;
	kl_gapscan_init(&scan, p->r.from, covered, &holes);
	for (size_t i = 0; i < p->nt; i++)
		kl_gapscan_feed(&scan, p->t[i]);
	kl_gapscan_finish(&scan);
	if (p->nt && kl_kline_slot(p->t[p->nt - 1]) + KL_MINUTE_MS > s->newest)
		s->newest = kl_kline_slot(p->t[p->nt - 1]) + KL_MINUTE_MS;
	s->refusals = 0;
	for (size_t i = 0; i < holes.n && !bf->closing; i++) {
		struct kl_range h = holes.v[i];
		/* This page is that request when it began at the hole and found klines after. */
		if (h.from == p->r.from && p->nt && kl_kline_slot(p->t[0]) >= h.to &&
		    h.to + OUTAGE_MARGIN_MS <= s->newest) {
			bf_log_outage(s, h.from, h.to);
			s->wrote = true;
			if (kl_store_put_outage(bf->st, s->sid, h.from, h.to) < 0)
				goto fail;
		} else if (probe(bf, p->sym, h, p->attempt) < 0) {
			goto fail;
		}
	}
	kl_ranges_clear(&holes);
	if (p->nk)
		s->wrote = true;
	bf->rows += (int64_t)p->nk;
	bf->rows_pending += (int64_t)p->nk;
	bf->done += (covered - p->r.from) / KL_MINUTE_MS;
	if (covered < p->r.to && !bf->closing) {
		/* Put the rest back in front of this symbol's work. */
		struct kl_ranges rest = {0};
		if (kl_ranges_add(&rest, covered, p->r.to) < 0)
			goto fail;
		for (size_t i = s->next; i < s->todo.n; i++)
			kl_ranges_add(&rest, s->todo.v[i].from, s->todo.v[i].to);
		kl_ranges_clear(&s->todo);
		s->todo = rest;
		s->next = 0;
	}
	if (bf->rows_pending >= COMMIT_ROWS || bf->closing)
		commit(bf);
	else
		bf_commit_soon(bf);
	return 0;
fail:
	kl_ranges_clear(&holes);
	kl_err("backfill", "%s: cannot store a page: %s", s->symbol, kl_store_errmsg(bf->st));
	kl_store_rollback(bf->st);
	bf->failed = true;
	return -EIO;
}

/* Drop what is left of @p s's work in this run: its holes stay in the store. */
void bf_set_aside(struct kl_backfill *bf, struct sym *s)
{
	for (size_t i = s->next; i < s->todo.n; i++)
		bf->done += (s->todo.v[i].to - s->todo.v[i].from) / KL_MINUTE_MS;
	kl_ranges_clear(&s->todo);
	s->next = 0;
}

bool bf_waiting(const struct kl_backfill *bf, const struct sym *s)
{
	return s->inactive || s->hold_until > uv_now(bf->loop);
}

void bf_maybe_done(struct kl_backfill *bf)
{
	if (!bf->running || bf->outstanding)
		return;
	for (size_t i = 0; i < bf->nsyms; i++) {
		/* A symbol on hold or inactive never keeps the others' run open. */
		if (bf->syms[i].next < bf->syms[i].todo.n && !bf->failed &&
		    !bf_waiting(bf, &bf->syms[i]))
			return;
	}
	commit(bf);
	if (bf->failed) {
		/* What is left is planned again from the store's holes by the next run. */
		for (size_t i = 0; i < bf->nsyms; i++) {
			kl_ranges_clear(&bf->syms[i].todo);
			bf->syms[i].next = 0;
		}
	}
	uv_timer_stop(&bf->progress_timer);
	bf->running = false;
	bf->finished = true;
	/* Following the exchange minute by minute is routine, not news. */
	if (bf->total > QUIET_MINUTES || kl_log_enabled(KL_LOG_DEBUG))
		log_progress(bf, "done");
	bf->cb(bf->ud, bf->failed ? -EIO : 0);
}

static void destroy(struct kl_backfill *bf);

void bf_page_done(struct kl_backfill *bf, struct page *p)
{
	bf_page_free(p);
	bf->outstanding--;
	bf_feed(bf);
	bf_maybe_done(bf);
}

/* One parsed page a loop turn. libuv runs every finished work item's
 * callback in one go, and a page of 1,000 klines takes 5-10 ms to store:
 * four pages parsed together held the loop 20-40 ms (the websockets and
 * the stream's consumer waited). The next page waits for a 0 ms timer,
 * after the loop has polled. */
/* STORE_ROWS a loop turn: an idle handle, not a 0 ms timer, which libuv 1.44
 * runs again in the same pass (all the queue at once, 5-20 ms a page). */
static void on_store_idle(uv_idle_t *t)
{
	struct kl_backfill *bf = t->data;
	struct page *p = bf->ready;

	if (!p) {
		uv_idle_stop(t);
		return;
	}
	/* A page's thousand rows are 5-20 ms: a few hundred a turn. */
	if (store_rows(bf, p, STORE_ROWS) == 0)
		return;
	bf->ready = p->next_ready;
	if (!bf->ready) {
		bf->ready_tail = NULL;
		uv_idle_stop(t);
	}
	store_page(bf, p);
	bf_page_done(bf, p); /* may end the run: its callback may free bf, closing it */
}

/* Parsed before the stop: kept (invariant 2). */
static void store_ready(struct kl_backfill *bf)
{
	while (bf->ready) {
		struct page *p = bf->ready;
		bf->ready = p->next_ready;
		store_page(bf, p);
		bf_page_free(p);
	}
	bf->ready_tail = NULL;
}

static void parse_done(uv_work_t *w, int status)
{
	struct page *p = w->data;
	struct kl_backfill *bf = p->bf;

	bf->nworking--;
	if (bf->closing) {
		/* Fetched before the stop: keep it (invariant 2). */
		if (status == 0 && !p->err[0])
			store_page(bf, p);
		bf_page_free(p);
		if (!bf->nworking && bf->nclosed == NTIMERS)
			destroy(bf);
		return;
	}
	if (status < 0 || p->err[0]) {
		uint64_t delay = kl_backoff_ms(BACKOFF_FIRST_MS, BACKOFF_MAX_MS, p->attempt, 0, 0);
		kl_warn("backfill", "%s: malformed klines page (%zu bytes): %s; retry in %.1f s",
			bf->syms[p->sym].symbol, p->len, p->err, (double)delay / 1000.0);
		p->attempt++;
		free(p->body);
		p->body = NULL;
		p->err[0] = '\0';
		if (!bf_request_page(bf, p, delay)) {
			bf->failed = true;
			bf_page_done(bf, p);
		}
		return;
	}
	p->next_ready = NULL;
	if (bf->ready_tail)
		bf->ready_tail->next_ready = p;
	else
		bf->ready = p;
	bf->ready_tail = p;
	if (!uv_is_active((uv_handle_t *)&bf->store_idle))
		uv_idle_start(&bf->store_idle, on_store_idle);
}

static enum kl_rest_verdict on_page(void *ud, const struct kl_rest_reply *r)
{
	struct page *p = ud;
	struct kl_backfill *bf = p->bf;

	if (r->cancelled) {
		bf_page_free(p);
		return KL_REST_DONE;
	}
	if (r->status != 200) {
		bf_refused(bf, p, r);
		return KL_REST_DONE;
	}
	if (p->probe) {
		if (!bf_probe_answer(bf, p, r))
			return KL_REST_RETRY;
		bf_page_done(bf, p);
		return KL_REST_DONE;
	}
	p->body = malloc(r->len + 1);
	if (!p->body) {
		bf->failed = true;
		bf_page_done(bf, p);
		return KL_REST_DONE;
	}
	memcpy(p->body, r->body, r->len + 1);
	p->len = r->len;
	p->work.data = p;
	bf->nworking++;
	uv_queue_work(bf->loop, &p->work, bf_parse_work, parse_done);
	return KL_REST_DONE;
}

bool bf_request_page(struct kl_backfill *bf, struct page *p, uint64_t delay_ms)
{
	char path[160];

	if (p->probe)
		snprintf(path, sizeof(path),
			 "/api/v3/klines?symbol=%s&interval=1m&startTime=%" PRId64 "&limit=%d",
			 bf->syms[p->sym].symbol, p->r.from, PROBE_LIMIT);
	else
		snprintf(path, sizeof(path),
			 "/api/v3/klines?symbol=%s&interval=1m&startTime=%" PRId64
			 "&endTime=%" PRId64 "&limit=%d",
			 bf->syms[p->sym].symbol, p->r.from, p->r.to - 1, PAGE_LIMIT);
	return kl_rest_get_in(bf->rest, path, PAGE_WEIGHT, delay_ms, on_page, p) == 0;
}

/* Hand out the next page, round-robin over symbols. @return false when none is left. */
static bool next_page(struct kl_backfill *bf)
{
	for (size_t k = 0; k < bf->nsyms; k++) {
		size_t i = (bf->rr + k) % bf->nsyms;
		struct sym *s = &bf->syms[i];
		struct kl_range *r;
		struct page *p;

		if (bf_waiting(bf, s) || s->next >= s->todo.n) {
			if (!s->inactive && s->next < s->todo.n && bf->running &&
			    (!uv_is_active((uv_handle_t *)&bf->hold_timer) ||
			     uv_timer_get_due_in(&bf->hold_timer) >
				 s->hold_until - uv_now(bf->loop)))
				uv_timer_start(&bf->hold_timer, bf_on_hold_timer,
					       s->hold_until - uv_now(bf->loop), 0);
			continue;
		}
		r = &s->todo.v[s->next];
		p = calloc(1, sizeof(*p));
		if (!p)
			return false;
		p->bf = bf;
		p->sym = i;
		p->r = kl_range_page(*r, PAGE_LIMIT);
		if (!bf_request_page(bf, p, 0)) {
			free(p);
			return false;
		}
		r->from = p->r.to;
		if (r->from >= r->to)
			s->next++;
		bf->outstanding++;
		bf->rr = i + 1;
		return true;
	}
	return false;
}

void bf_feed(struct kl_backfill *bf)
{
	if (bf->failed)
		return;
	while (bf->outstanding < PAGES_AHEAD && next_page(bf)) {
	}
}

static void on_idle_done(uv_timer_t *t)
{
	bf_maybe_done(t->data);
}

int kl_backfill_run(struct kl_backfill *bf, int64_t now_ms, kl_backfill_cb cb, void *ud)
{
	if (bf->finished) {
		/* Nothing was added since the last run. */
		bf->done = bf->total = 0;
		bf->finished = false;
	}
	bf->now_ms = now_ms;
	bf->failed = false;
	bf->cb = cb;
	bf->ud = ud;
	bf->running = true;
	bf->started = uv_now(bf->loop);
	bf->rows = 0;
	if (bf->total > QUIET_MINUTES || (bf->total && kl_log_enabled(KL_LOG_DEBUG)))
		log_progress(bf, "start");
	uv_timer_start(&bf->progress_timer, on_progress_timer, PROGRESS_MS, PROGRESS_MS);
	bf_feed(bf);
	/* Nothing to fetch still finishes from the loop, never inside this call. */
	if (!bf->outstanding)
		uv_timer_start(&bf->commit_timer, on_idle_done, 0, 0);
	return 0;
}

void kl_backfill_progress(const struct kl_backfill *bf, int64_t *done, int64_t *total, double *rate,
			  double *eta)
{
	double secs = (double)(uv_now(bf->loop) - bf->started) / 1000.0;
	double minutes_per_s = secs > 0 ? (double)bf->done / secs : 0;

	*done = bf->done;
	*total = bf->total;
	*rate = secs > 0 ? (double)bf->rows / secs : 0;
	*eta = minutes_per_s > 0 ? (double)(bf->total - bf->done) / minutes_per_s : 0;
}

static void destroy(struct kl_backfill *bf)
{
	for (size_t i = 0; i < bf->nsyms; i++)
		kl_ranges_clear(&bf->syms[i].todo);
	free(bf->syms);
	free(bf);
}

static void on_closed(uv_handle_t *h)
{
	struct kl_backfill *bf = h->data;

	if (++bf->nclosed == NTIMERS && !bf->nworking)
		destroy(bf);
}

void kl_backfill_free(struct kl_backfill *bf)
{
	if (!bf)
		return;
	bf->closing = true;
	store_ready(bf);
	if (kl_store_in_tx(bf->st))
		commit(bf);
	uv_close((uv_handle_t *)&bf->commit_timer, on_closed);
	uv_close((uv_handle_t *)&bf->progress_timer, on_closed);
	uv_close((uv_handle_t *)&bf->hold_timer, on_closed);
	uv_close((uv_handle_t *)&bf->store_idle, on_closed);
	bf_checks_close(bf);
}
