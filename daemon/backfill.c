/*
 * Backfill state machine, per symbol:
 *   QUEUED ranges --page--> IN FLIGHT --200--> STORED (+ outages, rejects)
 *                              |  \--5xx/429/timeout/bad body--> retried by rest.c
 *                              \--other 4xx--> symbol FAILED (logged, rest dropped)
 * Invariants:
 *  1. A minute is recorded as an outage only when a 200 page for a range
 *     wholly in the past did not contain it; a minute whose kline was
 *     refused is neither data nor outage, so the next start refetches it.
 *  2. Pages land in large transactions (COMMIT_ROWS or COMMIT_MS); a
 *     SIGTERM commits what was fetched before the process exits.
 *  3. At most PAGES_AHEAD pages are handed to rest.c at a time, so memory
 *     stays flat however large the gap is.
 */
#include "backfill.h"

#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_LIMIT	 1000
#define PAGE_WEIGHT	 2
#define PAGES_AHEAD	 64 /* pages handed to rest.c at once: > any sane concurrency */
#define COMMIT_ROWS	 100000
#define COMMIT_MS	 1000
#define PROGRESS_MS	 5000
#define BACKOFF_FIRST_MS 500
#define BACKOFF_MAX_MS	 30000
#define QUIET_MINUTES	 1440 /* smaller runs log progress only at debug level */

struct sym {
	const char *symbol;
	int64_t sid;
	struct kl_ranges todo; /* still to fetch, in order */
	size_t next;	       /* first range of todo not fully handed out */
	bool failed;
};

struct prej {
	enum kl_verdict v;
	char *raw;
};

/* A page of klines: requested, then parsed on the thread pool, then stored. */
struct page {
	struct kl_backfill *bf;
	size_t sym;
	struct kl_range r;
	unsigned attempt;
	uv_work_t work;
	char *body; /* the response, owned while parsing */
	size_t len;
	/* Parse results (worker thread), consumed on the loop. */
	struct kl_kline *k;
	size_t nk;
	int64_t *t; /* occupied minutes, sorted: valid and refused-in-range klines */
	size_t nt, nrows;
	struct prej *rej;
	size_t nrej;
	char err[200]; /* non-empty: the body was malformed */
};

struct kl_backfill {
	uv_loop_t *loop;
	struct kl_rest *rest;
	struct kl_store *st;
	struct sym *syms;
	size_t nsyms, rr; /* rr: next symbol to hand a page out for */
	size_t outstanding;
	int64_t now_ms, done, total, rows, rows_pending;
	uint64_t started;
	uv_timer_t commit_timer, progress_timer;
	kl_backfill_cb cb;
	void *ud;
	size_t nworking; /* pages on the thread pool */
	int nclosed;	 /* timers closed, once freeing */
	bool running, failed, finished, closing;
};

static void feed(struct kl_backfill *bf);
static void maybe_done(struct kl_backfill *bf);

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
	bf->commit_timer.data = bf;
	bf->progress_timer.data = bf;
	*ret = bf;
	return 0;
}

int kl_backfill_add(struct kl_backfill *bf, const char *symbol, int64_t sid,
		    const struct kl_ranges *ranges)
{
	struct sym *s = NULL;

	if (!bf->running && bf->finished) {
		/* A new run: progress counts from here. */
		bf->done = bf->total = 0;
		bf->finished = false;
	}
	for (size_t i = 0; i < bf->nsyms; i++) {
		if (bf->syms[i].sid == sid)
			s = &bf->syms[i];
	}
	if (!s) {
		struct sym *v = realloc(bf->syms, (bf->nsyms + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		bf->syms = v;
		s = &v[bf->nsyms++];
		*s = (struct sym){.symbol = symbol, .sid = sid};
	}
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

static void log_progress(struct kl_backfill *bf, const char *what)
{
	double secs = (double)(uv_now(bf->loop) - bf->started) / 1000.0;
	double rate = secs > 0 ? (double)bf->rows / secs : 0;
	double pct = bf->total ? 100.0 * (double)bf->done / (double)bf->total : 100.0;
	double mrate = secs > 0 ? (double)bf->done / secs : 0;
	double eta = mrate > 0 ? (double)(bf->total - bf->done) / mrate : 0;

	kl_info("backfill",
		"%s: %zu symbols, %" PRId64 "/%" PRId64 " minutes (%.1f%%), %" PRId64
		" rows, %.0f rows/s, ETA %.0f s",
		what, bf->nsyms, bf->done, bf->total, pct, bf->rows, rate, eta);
}

static void on_progress_timer(uv_timer_t *t)
{
	log_progress(t->data, "progress");
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void parse_rows(struct page *p, json_t *arr, const json_error_t *err);

static void page_free(struct page *p)
{
	for (size_t i = 0; i < p->nrej; i++)
		free(p->rej[i].raw);
	free(p->rej);
	free(p->k);
	free(p->t);
	free(p->body);
	free(p);
}

/*
 * jansson allocates every value of a page separately; on the thread pool
 * those allocations come from a per-thread arena that is reset after the
 * page instead (no malloc/free per value, no tree walk to free it). Other
 * threads, and everything outside a page parse, use malloc as usual.
 */
#define ARENA_CHUNK (4u << 20)

struct arena {
	char *base;
	size_t used, size;
	bool active, overflowed;
};

static _Thread_local struct arena arena;

/* Every thread's arena, so that they are freed at exit, not lost with the
 * thread-local pointers (libuv's pool has at most 1024 threads). */
static uv_mutex_t arenas_lock;
static char *arenas[1024];
static size_t narenas;

static void *arena_malloc(size_t n)
{
	struct arena *a = &arena;

	n = (n + 15) & ~(size_t)15;
	if (!a->active)
		return malloc(n);
	if (a->used + n > a->size) {
		a->overflowed = true;
		return malloc(n);
	}
	a->used += n;
	return a->base + a->used - n;
}

static void arena_free(void *ptr)
{
	struct arena *a = &arena;

	if (a->base && (char *)ptr >= a->base && (char *)ptr < a->base + a->size)
		return; /* released wholesale when the page is done */
	free(ptr);
}

static bool arena_begin(void)
{
	if (!arena.base) {
		if (!(arena.base = malloc(ARENA_CHUNK)))
			return false;
		uv_mutex_lock(&arenas_lock);
		if (narenas < sizeof(arenas) / sizeof(*arenas))
			arenas[narenas++] = arena.base;
		uv_mutex_unlock(&arenas_lock);
	}
	arena.size = ARENA_CHUNK;
	arena.used = 0;
	arena.active = true;
	arena.overflowed = false;
	return true;
}

static void arena_end(void)
{
	arena.active = false;
	arena.used = 0;
}

void kl_backfill_global_init(void)
{
	uv_mutex_init(&arenas_lock);
	json_set_alloc_funcs(arena_malloc, arena_free);
}

void kl_backfill_global_cleanup(void)
{
	uv_mutex_lock(&arenas_lock);
	while (narenas)
		free(arenas[--narenas]);
	uv_mutex_unlock(&arenas_lock);
}

/* Thread pool: JSON parsing and validation, the costly half of a page. */
static void parse_work(uv_work_t *w)
{
	struct page *p = w->data;
	json_error_t e;
	json_t *arr;

	if (!arena_begin()) {
		snprintf(p->err, sizeof(p->err), "out of memory");
		return;
	}
	arr = json_loadb(p->body, p->len, 0, &e);
	parse_rows(p, arr, &e);
	/* Values in the arena need no decref; if some went to malloc, walk the tree. */
	if (arena.overflowed)
		json_decref(arr);
	arena_end();
}

static void parse_rows(struct page *p, json_t *arr, const json_error_t *err)
{
	json_error_t e = *err;
	size_t n;

	if (!arr || !json_is_array(arr) || json_array_size(arr) > PAGE_LIMIT) {
		snprintf(p->err, sizeof(p->err), "%s at line %d column %d",
			 arr ? "not an array of at most 1000 klines" : e.text, e.line, e.column);
		return;
	}
	n = p->nrows = json_array_size(arr);
	p->k = malloc((n ? n : 1) * sizeof(*p->k));
	p->t = malloc((n ? n : 1) * sizeof(*p->t));
	if (!p->k || !p->t) {
		snprintf(p->err, sizeof(p->err), "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const json_t *row = json_array_get(arr, i);
		struct kl_kline *k = &p->k[p->nk];
		enum kl_verdict v = kl_kline_from_json(row, k);

		if (v == KL_KLINE_OK)
			v = kl_kline_check(k, p->r.from, p->r.to);
		/* A refused kline still shows the exchange has that minute (invariant 1). */
		if (v != KL_KLINE_SHAPE && v != KL_KLINE_TIME && v != KL_KLINE_RANGE)
			p->t[p->nt++] = k->open_time;
		if (v == KL_KLINE_OK) {
			p->nk++;
			continue;
		}
		struct prej *grown = realloc(p->rej, (p->nrej + 1) * sizeof(*grown));
		if (grown) {
			p->rej = grown;
			/* The dump lives in the arena: keep a malloc'd copy. */
			char *raw = json_dumps(row, JSON_COMPACT | JSON_ENCODE_ANY);
			p->rej[p->nrej++] = (struct prej){v, raw ? strdup(raw) : NULL};
			arena_free(raw);
		}
	}
	qsort(p->t, p->nt, sizeof(*p->t), cmp_i64);
}

/* Store one parsed page (on the loop). @return 0, or -EIO with the backfill failed. */
static int store_page(struct kl_backfill *bf, struct page *p)
{
	struct sym *s = &bf->syms[p->sym];
	struct kl_ranges holes = {0};
	struct kl_gapscan scan;
	int64_t covered;

	if (kl_store_begin(bf->st) < 0)
		goto fail;
	for (size_t i = 0; i < p->nrej; i++) {
		const char *raw = p->rej[i].raw ? p->rej[i].raw : "";
		kl_warn("backfill", "%s: refused kline %.200s: %s", s->symbol, raw,
			kl_kline_reason(p->rej[i].v));
		if (kl_store_put_reject(bf->st, bf->now_ms, s->symbol, "rest",
					kl_kline_reason(p->rej[i].v), raw) < 0)
			goto fail;
	}
	for (size_t i = 0; i < p->nk; i++) {
		if (kl_store_put_kline(bf->st, s->sid, &p->k[i], KL_SRC_REST) < 0)
			goto fail;
	}
	/* A full page may stop short of the range; what follows is fetched next. */
	covered = p->nrows >= PAGE_LIMIT && p->nt ? kl_kline_slot(p->t[p->nt - 1]) + KL_MINUTE_MS
						  : p->r.to;
	if (covered > p->r.to)
		covered = p->r.to;
	kl_gapscan_init(&scan, p->r.from, covered, &holes);
	for (size_t i = 0; i < p->nt; i++)
		kl_gapscan_feed(&scan, p->t[i]);
	kl_gapscan_finish(&scan);
	for (size_t i = 0; i < holes.n; i++) {
		char a[21], b[21];
		kl_time_format(holes.v[i].from, a);
		kl_time_format(holes.v[i].to, b);
		kl_info("backfill",
			"%s: the exchange has no klines for [%s, %s) (%" PRId64
			" minutes): recorded as an outage",
			s->symbol, a, b, (holes.v[i].to - holes.v[i].from) / KL_MINUTE_MS);
		if (kl_store_put_outage(bf->st, s->sid, holes.v[i].from, holes.v[i].to) < 0)
			goto fail;
	}
	kl_ranges_clear(&holes);
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
	else if (!uv_is_active((uv_handle_t *)&bf->commit_timer))
		uv_timer_start(&bf->commit_timer, on_commit_timer, COMMIT_MS, 0);
	return 0;
fail:
	kl_ranges_clear(&holes);
	kl_err("backfill", "%s: cannot store a page: %s", s->symbol, kl_store_errmsg(bf->st));
	kl_store_rollback(bf->st);
	bf->failed = true;
	return -EIO;
}

static void symbol_failed(struct kl_backfill *bf, struct sym *s, const struct kl_rest_reply *r)
{
	kl_err("backfill",
	       "%s: the exchange refused the klines request (HTTP %ld: %.200s); "
	       "giving up on this symbol until the next start",
	       s->symbol, r->status, r->body);
	s->failed = true;
	for (size_t i = s->next; i < s->todo.n; i++)
		bf->done += (s->todo.v[i].to - s->todo.v[i].from) / KL_MINUTE_MS;
	s->next = s->todo.n;
}

static void maybe_done(struct kl_backfill *bf)
{
	if (!bf->running || bf->outstanding)
		return;
	for (size_t i = 0; i < bf->nsyms; i++) {
		if (bf->syms[i].next < bf->syms[i].todo.n && !bf->failed)
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
static bool request_page(struct kl_backfill *bf, struct page *p, uint64_t delay_ms);

static void page_done(struct kl_backfill *bf, struct page *p)
{
	page_free(p);
	bf->outstanding--;
	feed(bf);
	maybe_done(bf);
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
		page_free(p);
		if (!bf->nworking && bf->nclosed == 2)
			destroy(bf);
		return;
	}
	if (status < 0 || p->err[0]) {
		uint64_t delay = (uint64_t)BACKOFF_FIRST_MS << (p->attempt < 6 ? p->attempt : 6);
		if (delay > BACKOFF_MAX_MS)
			delay = BACKOFF_MAX_MS;
		kl_warn("backfill", "%s: malformed klines page (%zu bytes): %s; retry in %.1f s",
			bf->syms[p->sym].symbol, p->len, p->err, (double)delay / 1000.0);
		p->attempt++;
		free(p->body);
		p->body = NULL;
		p->err[0] = '\0';
		if (!request_page(bf, p, delay)) {
			bf->failed = true;
			page_done(bf, p);
		}
		return;
	}
	store_page(bf, p);
	page_done(bf, p);
}

static enum kl_rest_verdict on_page(void *ud, const struct kl_rest_reply *r)
{
	struct page *p = ud;
	struct kl_backfill *bf = p->bf;

	if (r->cancelled) {
		page_free(p);
		return KL_REST_DONE;
	}
	if (r->status != 200) {
		symbol_failed(bf, &bf->syms[p->sym], r);
		page_done(bf, p);
		return KL_REST_DONE;
	}
	p->body = malloc(r->len + 1);
	if (!p->body) {
		bf->failed = true;
		page_done(bf, p);
		return KL_REST_DONE;
	}
	memcpy(p->body, r->body, r->len + 1);
	p->len = r->len;
	p->work.data = p;
	bf->nworking++;
	uv_queue_work(bf->loop, &p->work, parse_work, parse_done);
	return KL_REST_DONE;
}

static bool request_page(struct kl_backfill *bf, struct page *p, uint64_t delay_ms)
{
	char path[160];

	snprintf(path, sizeof(path),
		 "/api/v3/klines?symbol=%s&interval=1m&startTime=%" PRId64 "&endTime=%" PRId64
		 "&limit=%d",
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

		if (s->failed || s->next >= s->todo.n)
			continue;
		r = &s->todo.v[s->next];
		p = calloc(1, sizeof(*p));
		if (!p)
			return false;
		p->bf = bf;
		p->sym = i;
		p->r = kl_range_page(*r, PAGE_LIMIT);
		if (!request_page(bf, p, 0)) {
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

static void feed(struct kl_backfill *bf)
{
	if (bf->failed)
		return;
	while (bf->outstanding < PAGES_AHEAD && next_page(bf)) {
	}
}

static void on_idle_done(uv_timer_t *t)
{
	maybe_done(t->data);
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
	feed(bf);
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

	if (++bf->nclosed == 2 && !bf->nworking)
		destroy(bf);
}

void kl_backfill_free(struct kl_backfill *bf)
{
	if (!bf)
		return;
	bf->closing = true;
	if (kl_store_in_tx(bf->st))
		commit(bf);
	uv_close((uv_handle_t *)&bf->commit_timer, on_closed);
	uv_close((uv_handle_t *)&bf->progress_timer, on_closed);
}
