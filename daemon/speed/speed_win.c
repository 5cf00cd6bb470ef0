/*
 * The speed layer's symbols and their day windows (speed_int.h): found by
 * name, added while running, each window opened from the minutes already
 * stored for its day and evicted oldest first.
 */
#include "speed_int.h"

#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int kl__speed_cmp_sym(const void *a, const void *b)
{
	return strcmp(((const struct ssym *)a)->symbol, ((const struct ssym *)b)->symbol);
}

static void seed(void *ud, const struct kl_kline *k)
{
	kl_window_seed(ud, k);
}

/* (Re)build a window from the minutes already stored for its day. */
int kl__speed_load_window(struct kl_speed *sp, struct ssym *s, struct swin *w, int64_t day)
{
	struct kl_kline open = w->w.open;
	int64_t open_event = w->w.open_event;
	bool had_open = w->used && w->w.has_open && w->w.closed.start == day;

	kl_window_init(&w->w, day);
	if (kl_store_each_kline(sp->st, s->sid, day, day + KL_DAY_MS, seed, &w->w) < 0)
		return kl_log_errno(-EIO, "speed", "%s: cannot read the store: %s", s->symbol,
				    kl_store_errmsg(sp->st));
	if (had_open) {
		struct kl_event ev = {.event_time = open_event, .k = open};
		kl_window_apply(&w->w, &ev);
	}
	w->used = true;
	w->dirty = true;
	return 0;
}

struct swin *kl__speed_window(struct kl_speed *sp, struct ssym *s, int64_t day)
{
	struct swin *victim = NULL;
	struct kl_day d;

	for (int i = 0; i < WINDOWS; i++) {
		if (s->win[i].used && s->win[i].w.closed.start == day)
			return &s->win[i];
	}
	for (int i = 0; i < WINDOWS && !victim; i++) {
		if (!s->win[i].used)
			victim = &s->win[i];
	}
	if (!victim) {
		victim = &s->win[0];
		for (int i = 1; i < WINDOWS; i++) {
			if (s->win[i].w.closed.start < victim->w.closed.start)
				victim = &s->win[i];
		}
		if (victim->w.closed.start > day)
			return NULL; /* older than every open window: late for the speed layer */
		if (victim->dirty && kl_window_day(&victim->w, &d) &&
		    (kl__speed_begin(sp) < 0 || kl_store_put_speed_day(sp->st, s->sid, &d) < 0)) {
			kl__speed_fail(sp);
			return NULL;
		}
		victim->used = false;
	}
	return kl__speed_load_window(sp, s, victim, day) < 0 ? NULL : victim;
}

struct ssym *kl__speed_find(struct kl_speed *sp, const char *symbol)
{
	struct ssym key = {.symbol = symbol};

	return bsearch(&key, sp->syms, sp->nsyms, sizeof(*sp->syms), kl__speed_cmp_sym);
}

int kl_speed_add(struct kl_speed *sp, const char *symbol, int64_t sid)
{
	struct ssym *v;
	size_t at = 0;

	if (kl__speed_find(sp, symbol))
		return 0;
	v = realloc(sp->syms, (sp->nsyms + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	sp->syms = v;
	while (at < sp->nsyms && strcmp(sp->syms[at].symbol, symbol) < 0)
		at++;
	memmove(&sp->syms[at + 1], &sp->syms[at], (sp->nsyms - at) * sizeof(*v));
	sp->syms[at] = (struct ssym){.symbol = symbol, .sid = sid, .frontier = -1};
	sp->nsyms++;
	return 0;
}

/* Asked symbol after symbol by the heal, in its order: from the last one found. */
int64_t kl_speed_frontier(struct kl_speed *sp, int64_t sid, uint64_t fresh_ms)
{
	for (size_t k = 0; k < sp->nsyms; k++) {
		size_t i = (sp->hint + k) % sp->nsyms;
		const struct ssym *s = &sp->syms[i];

		if (s->sid != sid)
			continue;
		sp->hint = i + 1;
		return s->frontier >= 0 && uv_now(sp->loop) - s->frontier_at <= fresh_ms
			   ? s->frontier
			   : -1;
	}
	return -1;
}
