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
#include "backfill.h"

#include "log.h"
#include "metrics.h"

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
#define QUIET_MINUTES	 1440		    /* smaller runs log progress only at debug level */
#define OUTAGE_MARGIN_MS (5 * KL_MINUTE_MS) /* see docs/operations.md, "Outages" */
#define PROBE_LIMIT	 10		    /* klines of a probe: the margin's worth and more */
#define GLITCH_MAX	 5		    /* refetches of a range in one run before it waits */
#define REFUSED_FIRST_MS 10000		    /* a refused page: 10 s, doubling ... */
#define REFUSED_MAX_MS	 600000		    /* ... up to 10 min */
#define REFUSALS_PER_RUN 3		    /* then the symbol's work waits for a later run */
#define CHECK_FIRST_MS	 30000		    /* an inactive symbol: exchangeInfo after 30 s ... */
#define CHECK_MAX_MS	 600000		    /* ... doubling up to every 10 min */
#define CHECK_WEIGHT	 20

struct sym {
	const char *symbol;
	int64_t sid;
	struct kl_ranges todo; /* still to fetch, in order */
	size_t next;	       /* first range of todo not fully handed out */
	int64_t newest;	       /* end of the newest kline the exchange served for it */
	uint64_t hold_until;   /* uv_now(): refused pages wait until then */
	uint64_t check_ms;     /* inactive: the next exchangeInfo check's delay */
	unsigned refusals;     /* in a row, reset by a 200 */
	bool inactive;	       /* -1121: set aside until exchangeInfo lists it again */
	bool checking;	       /* an exchangeInfo check is queued */
	struct check *check;   /* its timer, while it waits (closed by kl_backfill_free) */
	bool not_trading;      /* the exchange reports another status than TRADING */
	bool resumed;	       /* listed again: its holes are due */
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
	bool probe; /* startTime=r.from&limit=PROBE_LIMIT: does r lie in an outage? */
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
	uv_timer_t commit_timer, progress_timer, hold_timer;
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
	uv_timer_init(loop, &bf->hold_timer);
	bf->commit_timer.data = bf;
	bf->progress_timer.data = bf;
	bf->hold_timer.data = bf;
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

static bool request_page(struct kl_backfill *bf, struct page *p, uint64_t delay_ms);

static void log_outage(const struct sym *s, int64_t from, int64_t to)
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
	if (!request_page(bf, q, 0)) {
		free(q);
		return -ENOMEM;
	}
	bf->outstanding++;
	return 0;
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
	if (p->nt && kl_kline_slot(p->t[p->nt - 1]) + KL_MINUTE_MS > s->newest)
		s->newest = kl_kline_slot(p->t[p->nt - 1]) + KL_MINUTE_MS;
	s->refusals = 0;
	for (size_t i = 0; i < holes.n && !bf->closing; i++) {
		struct kl_range h = holes.v[i];
		/* This page is that request when it began at the hole and found klines after. */
		if (h.from == p->r.from && p->nt && kl_kline_slot(p->t[0]) >= h.to &&
		    h.to + OUTAGE_MARGIN_MS <= s->newest) {
			log_outage(s, h.from, h.to);
			if (kl_store_put_outage(bf->st, s->sid, h.from, h.to) < 0)
				goto fail;
		} else if (probe(bf, p->sym, h, p->attempt) < 0) {
			goto fail;
		}
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

/* Drop what is left of @p s's work in this run: its holes stay in the store. */
static void set_aside(struct kl_backfill *bf, struct sym *s)
{
	for (size_t i = s->next; i < s->todo.n; i++)
		bf->done += (s->todo.v[i].to - s->todo.v[i].from) / KL_MINUTE_MS;
	kl_ranges_clear(&s->todo);
	s->next = 0;
}

static bool waiting(const struct kl_backfill *bf, const struct sym *s)
{
	return s->inactive || s->hold_until > uv_now(bf->loop);
}

static void maybe_done(struct kl_backfill *bf)
{
	if (!bf->running || bf->outstanding)
		return;
	for (size_t i = 0; i < bf->nsyms; i++) {
		/* A symbol on hold or inactive never keeps the others' run open. */
		if (bf->syms[i].next < bf->syms[i].todo.n && !bf->failed &&
		    !waiting(bf, &bf->syms[i]))
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
		if (!bf->nworking && bf->nclosed == 3)
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

/* Binance's error body {"code":-1121,"msg":"Invalid symbol."}; @return the code or 0. */
static int error_code(const struct kl_rest_reply *r)
{
	json_t *j = json_loadb(r->body, r->len, 0, NULL);
	int code = json_is_integer(json_object_get(j, "code"))
		       ? (int)json_integer_value(json_object_get(j, "code"))
		       : 0;

	json_decref(j);
	return code;
}

struct check {
	struct kl_backfill *bf;
	size_t sym;
	uv_timer_t timer;
};

static void check_closed(uv_handle_t *h)
{
	free(h->data);
}

static enum kl_rest_verdict on_check(void *ud, const struct kl_rest_reply *r);

static void on_check_timer(uv_timer_t *t)
{
	struct check *c = t->data;
	struct sym *s = &c->bf->syms[c->sym];
	char path[96];

	snprintf(path, sizeof(path), "/api/v3/exchangeInfo?symbol=%s", s->symbol);
	s->check = NULL; /* rest.c holds it now */
	if (kl_rest_get(c->bf->rest, path, CHECK_WEIGHT, on_check, c) < 0) {
		s->checking = false;
		uv_close((uv_handle_t *)&c->timer, check_closed);
	}
}

/* Ask again, after s->check_ms, whether the exchange lists an inactive symbol. */
static void schedule_check(struct kl_backfill *bf, size_t sym)
{
	struct sym *s = &bf->syms[sym];
	struct check *c;

	if (s->checking || bf->closing || !(c = calloc(1, sizeof(*c))))
		return;
	c->bf = bf;
	c->sym = sym;
	uv_timer_init(bf->loop, &c->timer);
	c->timer.data = c;
	s->checking = true;
	s->check = c;
	uv_timer_start(&c->timer, on_check_timer, s->check_ms, 0);
}

static enum kl_rest_verdict on_check(void *ud, const struct kl_rest_reply *r)
{
	struct check *c = ud;
	struct kl_backfill *bf = c->bf;
	struct sym *s;

	if (r->cancelled) {
		/* The backfill may be gone already: touch only the check. */
		uv_close((uv_handle_t *)&c->timer, check_closed);
		return KL_REST_DONE;
	}
	s = &bf->syms[c->sym];
	s->checking = false;
	s->check = NULL;
	if (r->status == 200) {
		kl_info("backfill",
			"%s: the exchange lists it again: active, its holes are fetched",
			s->symbol);
		s->inactive = false;
		s->resumed = true;
		s->refusals = 0;
		uv_close((uv_handle_t *)&c->timer, check_closed);
		return KL_REST_DONE;
	}
	s->check_ms = s->check_ms * 2 > CHECK_MAX_MS ? CHECK_MAX_MS : s->check_ms * 2;
	kl_info("backfill", "%s: still not listed (HTTP %ld); checked again in %" PRIu64 " s",
		s->symbol, r->status, s->check_ms / 1000);
	s->checking = true;
	s->check = c;
	uv_timer_start(&c->timer, on_check_timer, s->check_ms, 0);
	return KL_REST_DONE;
}

static void on_hold_timer(uv_timer_t *t)
{
	struct kl_backfill *bf = t->data;

	feed(bf);
	maybe_done(bf);
}

/*
 * A non-200 answer that rest.c passed on. -1121 makes the symbol inactive;
 * anything else (403 from a WAF, 451, a 400 nobody expected) is transient:
 * the page waits a growing backoff while the other symbols go on.
 */
static void refused(struct kl_backfill *bf, struct page *p, const struct kl_rest_reply *r)
{
	struct sym *s = &bf->syms[p->sym];
	int code = error_code(r);
	uint64_t delay;

	kl_metrics_add(KL_M_PAGES_REFUSED, 1);
	if (code == -1121) {
		if (!s->inactive)
			kl_warn("backfill",
				"%s: the exchange answers \"%.100s\" for its klines: inactive, the "
				"other symbols go on; exchangeInfo is asked again in %d s",
				s->symbol, r->body, CHECK_FIRST_MS / 1000);
		if (!s->inactive)
			s->check_ms = CHECK_FIRST_MS;
		s->inactive = true;
		set_aside(bf, s);
		schedule_check(bf, p->sym);
		page_done(bf, p);
		return;
	}
	s->refusals++;
	delay = (uint64_t)REFUSED_FIRST_MS << (s->refusals < 7 ? s->refusals - 1 : 6);
	if (delay > REFUSED_MAX_MS)
		delay = REFUSED_MAX_MS;
	s->hold_until = uv_now(bf->loop) + delay;
	if (s->refusals > REFUSALS_PER_RUN || bf->closing) {
		kl_warn("backfill",
			"%s: the exchange refused a klines page again (HTTP %ld: %.200s); its "
			"work waits %.0f s for a later run, the other symbols go on",
			s->symbol, r->status, r->body, (double)delay / 1000.0);
		/* The page goes back too: what was not stored is still a hole. */
		set_aside(bf, s);
		page_done(bf, p);
		return;
	}
	kl_warn("backfill",
		"%s: the exchange refused a klines page (HTTP %ld: %.200s); retrying in %.0f s, "
		"the other symbols go on",
		s->symbol, r->status, r->body, (double)delay / 1000.0);
	if (!request_page(bf, p, delay)) {
		bf->failed = true;
		page_done(bf, p);
	}
}

/* The answer to a probe (small: parsed on the loop). @return false if it is not klines. */
static bool probe_answer(struct kl_backfill *bf, struct page *p, const struct kl_rest_reply *r)
{
	struct sym *s = &bf->syms[p->sym];
	json_t *j = json_loadb(r->body, r->len, 0, NULL);
	json_t *first = json_array_get(json_array_get(j, 0), 0);
	json_t *last = json_array_get(json_array_get(j, json_array_size(j) - 1), 0);
	char a[21];
	bool outage = false;

	if (!json_is_array(j) ||
	    (json_array_size(j) && (!json_is_integer(first) || !json_is_integer(last)))) {
		json_decref(j);
		return false;
	}
	kl_time_format(p->r.from, a);
	if (json_array_size(j)) {
		int64_t f = kl_kline_slot(json_integer_value(first));
		int64_t l = kl_kline_slot(json_integer_value(last)) + KL_MINUTE_MS;
		if (l > s->newest)
			s->newest = l;
		if (f < p->r.to) {
			/* A short or empty page, not a halt: fetch the range again, later. */
			struct page *q = calloc(1, sizeof(*q));
			uint64_t delay = (uint64_t)BACKOFF_FIRST_MS
					 << (p->attempt < 6 ? p->attempt : 6);
			if (delay > BACKOFF_MAX_MS)
				delay = BACKOFF_MAX_MS;
			if (p->attempt >= GLITCH_MAX || bf->closing || !q) {
				free(q);
				kl_warn("backfill",
					"%s: the exchange keeps leaving out klines from %s it has; "
					"they stay a hole for a later run",
					s->symbol, a);
			} else {
				kl_warn("backfill",
					"%s: a page lacked %" PRId64
					" minutes from %s the exchange has: not an outage; "
					"fetched again in %.1f s",
					s->symbol, (p->r.to - p->r.from) / KL_MINUTE_MS, a,
					(double)delay / 1000.0);
				*q = (struct page){
				    .bf = bf, .sym = p->sym, .r = p->r, .attempt = p->attempt + 1};
				bf->done -= (p->r.to - p->r.from) / KL_MINUTE_MS;
				if (request_page(bf, q, delay))
					bf->outstanding++;
				else
					free(q);
			}
		} else {
			outage = p->r.to + OUTAGE_MARGIN_MS <= s->newest;
		}
	} else {
		/* Nothing from there on: a symbol that trades no more, or klines not yet published.
		 */
		outage = s->not_trading && p->r.to + OUTAGE_MARGIN_MS <= kl_kline_slot(bf->now_ms);
	}
	json_decref(j);
	if (!outage) {
		kl_debug("backfill",
			 "%s: %" PRId64 " minutes from %s missing: a hole, not an outage",
			 s->symbol, (p->r.to - p->r.from) / KL_MINUTE_MS, a);
		return true;
	}
	log_outage(s, p->r.from, p->r.to);
	if (kl_store_begin(bf->st) < 0 ||
	    kl_store_put_outage(bf->st, s->sid, p->r.from, p->r.to) < 0) {
		kl_err("backfill", "%s: cannot store an outage: %s", s->symbol,
		       kl_store_errmsg(bf->st));
		kl_store_rollback(bf->st);
		bf->failed = true;
	} else if (!uv_is_active((uv_handle_t *)&bf->commit_timer)) {
		uv_timer_start(&bf->commit_timer, on_commit_timer, COMMIT_MS, 0);
	}
	return true;
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
		refused(bf, p, r);
		return KL_REST_DONE;
	}
	if (p->probe) {
		if (!probe_answer(bf, p, r))
			return KL_REST_RETRY;
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

		if (waiting(bf, s) || s->next >= s->todo.n) {
			if (!s->inactive && s->next < s->todo.n && bf->running &&
			    (!uv_is_active((uv_handle_t *)&bf->hold_timer) ||
			     uv_timer_get_due_in(&bf->hold_timer) >
				 s->hold_until - uv_now(bf->loop)))
				uv_timer_start(&bf->hold_timer, on_hold_timer,
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

	if (++bf->nclosed == 3 && !bf->nworking)
		destroy(bf);
}

void kl_backfill_symbols(struct kl_backfill *bf, size_t *inactive, size_t *held, bool *resumed)
{
	uint64_t now = uv_now(bf->loop);

	*inactive = *held = 0;
	*resumed = false;
	for (size_t i = 0; i < bf->nsyms; i++) {
		*inactive += bf->syms[i].inactive;
		*held += !bf->syms[i].inactive && bf->syms[i].hold_until > now;
		*resumed |= bf->syms[i].resumed;
		bf->syms[i].resumed = false;
	}
}

void kl_backfill_not_trading(struct kl_backfill *bf, int64_t sid, bool not_trading)
{
	for (size_t i = 0; i < bf->nsyms; i++) {
		if (bf->syms[i].sid == sid)
			bf->syms[i].not_trading = not_trading;
	}
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
	uv_close((uv_handle_t *)&bf->hold_timer, on_closed);
	for (size_t i = 0; i < bf->nsyms; i++) {
		if (bf->syms[i].check)
			uv_close((uv_handle_t *)&bf->syms[i].check->timer, check_closed);
		bf->syms[i].check = NULL;
	}
}
