/*
 * Pages parsed on the thread pool: JSON into klines, each validated, the
 * refused ones kept with their reason, the occupied minutes sorted.
 */
#include "backfill_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void parse_rows(struct page *p, json_t *arr, const json_error_t *err);

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
void bf_parse_work(uv_work_t *w)
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
