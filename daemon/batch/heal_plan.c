/*
 * PLAN (heal.h): where each symbol's coverage begins (history_start,
 * never before the listing: its first kline), registered in the store;
 * and later changes of the set (kl_heal_set): a symbol added is planned
 * the same way, then filled from its whole coverage by the next heal.
 */
#include "heal_int.h"

#include "day.h"
#include "exchange.h"
#include "log.h"
#include "xclock.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int history_start(struct kl_heal *h, int64_t *ret)
{
	switch (h->conf->history_kind) {
	case KL_HISTORY_DAYS:
		*ret = kl_day_floor(h->now_ms) - h->conf->history_value * KL_DAY_MS;
		return 0;
	case KL_HISTORY_DATE:
		*ret = h->conf->history_value;
		return 0;
	case KL_HISTORY_LISTING:
		break;
	}
	return -EAGAIN;
}

static void plan_symbol(struct kl_heal *h, struct hsym *s, int64_t start)
{
	int r;

	if (!s->known) {
		s->start = start;
		r = kl_store_symbol(h->st, s->symbol, true, &s->start, &s->sid);
		if (r == 0) {
			char t[21];

			kl_time_format(start, t);
			kl_info("run", "%s: new symbol, history from %s", s->symbol, t);
		}
	} else if (start < s->start) {
		kl_info("run", "%s: history_start moved earlier, extending coverage", s->symbol);
		r = kl_store_symbol_extend(h->st, s->sid, start);
		s->start = start;
	} else {
		r = 0;
	}
	if (r < 0) {
		kl_err("run", "%s: cannot register: %s", s->symbol, kl_store_errmsg(h->st));
		kl__heal_stop(h, 1);
	}
}

/* @p s is registered (or the first plan's count ran out): tell the owner. */
static void planned(struct kl_heal *h, struct hsym *s)
{
	if (s) {
		s->planned = true;
		if (h->started && !h->stopped && s->active) {
			/* Added while running: streamed from now, filled by the next heal. */
			s->fresh = true;
			if (h->added)
				h->added(h->added_ud, s->symbol, s->sid);
			kl__heal_fresh(h);
			return;
		}
	}
	if (h->started || --h->pending || h->stopped)
		return;
	h->cbs.planned(h->cbs.ud);
}

static enum kl_rest_verdict on_listing(void *ud, const struct kl_rest_reply *r)
{
	struct hsym *s = ud;
	struct kl_heal *h = s->h;
	char msg[256];
	int64_t from;
	int k;

	if (r->cancelled)
		return KL_REST_DONE;
	if (r->status != 200 && s->want >= 0) {
		/* Only a clamp: the backfill deals with the symbol's refusals (inactive). */
		kl_rest_error_code(r, msg, sizeof(msg));
		kl_warn("run", "%s: cannot find the listing (%s); history from history_start",
			s->symbol, msg);
		plan_symbol(h, s, s->want);
		planned(h, s);
		return KL_REST_DONE;
	}
	/* Never an exit: a restart would only ask again, costlier. */
	if (r->status != 200) {
		kl_rest_error_code(r, msg, sizeof(msg));
		kl_err("run", "%s: cannot find the listing: %s; asking again", s->symbol, msg);
		return KL_REST_RETRY;
	}
	k = kl_exchange_first_kline(r->body, r->len, &from);
	if (k == -EINVAL)
		return KL_REST_RETRY;
	if (k == -ENOENT) {
		/* Listed but never traded: waiting here would hold every other symbol's plan. */
		kl_warn("run", "%s: the exchange has no klines for it yet; history from %s",
			s->symbol, s->want >= 0 ? "history_start" : "today");
		plan_symbol(h, s, s->want >= 0 ? s->want : kl_day_floor(h->now_ms));
		planned(h, s);
		return KL_REST_DONE;
	}
	/* Never before the listing: time before it is neither a hole nor an outage. */
	from = kl_day_floor(from);
	if (s->want > from)
		from = s->want;
	plan_symbol(h, s, from);
	planned(h, s);
	return KL_REST_DONE;
}

/* Find @p s in the store, or ask the exchange where its history begins. @return 0 or -errno. */
static int plan_one(struct kl_heal *h, struct hsym *s)
{
	int64_t from;
	char path[128];
	int r = kl_store_symbol(h->st, s->symbol, false, &s->start, &s->sid);

	if (r < 0 && r != -ENOENT) {
		kl_err("run", "%s: cannot read the store: %s", s->symbol, kl_store_errmsg(h->st));
		kl__heal_stop(h, 1);
		return -EIO;
	}
	s->known = r == 0;
	s->want = history_start(h, &from) == 0 ? from : -1;
	if (s->known && (s->want < 0 || s->want >= s->start)) {
		/* Coverage unchanged. */
		if (h->started)
			planned(h, s);
		else
			s->planned = true;
		return 0;
	}
	/* New, or history_start moved earlier: never before the listing. */
	snprintf(path, sizeof(path), "/api/v3/klines?symbol=%s&interval=1m&startTime=0&limit=1",
		 s->symbol);
	if (!h->started)
		h->pending++;
	if (kl_rest_get(h->rest, path, 2, on_listing, s) < 0) {
		kl__heal_stop(h, 1);
		return -ENOMEM;
	}
	return 0;
}

static struct hsym *add_sym(struct kl_heal *h, const struct kl_heal_symbol *hs)
{
	struct hsym **v = realloc(h->syms, (h->nsyms + 1) * sizeof(struct hsym *));
	struct hsym *s;

	if (!v)
		return NULL;
	h->syms = v;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	*s = (struct hsym){
	    .h = h, .symbol = hs->symbol, .not_trading = hs->not_trading, .active = true};
	h->syms[h->nsyms++] = s;
	return s;
}

int kl_heal_plan(struct kl_heal *h, const struct kl_heal_symbol *syms, size_t n, int64_t now_ms)
{
	size_t first = h->nsyms;

	for (size_t i = 0; i < n; i++)
		if (!add_sym(h, &syms[i]))
			return -ENOMEM;
	h->now_ms = now_ms;
	h->closed_end = kl_kline_slot(now_ms);
	kl_xclock_read(&h->clock, now_ms, uv_now(h->loop), -1);
	h->pending = 1;
	for (size_t i = first; i < h->nsyms && !h->stopped; i++)
		if (plan_one(h, h->syms[i]) < 0)
			return 0;
	if (!h->stopped)
		planned(h, NULL);
	return 0;
}

int64_t kl_heal_sid(const struct kl_heal *h, size_t i)
{
	return i < h->nsyms ? h->syms[i]->sid : -1;
}

static struct hsym *find(struct kl_heal *h, const char *symbol)
{
	for (size_t i = 0; i < h->nsyms; i++)
		if (!strcmp(h->syms[i]->symbol, symbol))
			return h->syms[i];
	return NULL;
}

int kl_heal_set(struct kl_heal *h, const struct kl_heal_symbol *syms, size_t n,
		kl_heal_added_cb added, void *ud)
{
	size_t was = h->nsyms;
	bool *keep = calloc(was ? was : 1, sizeof(*keep));
	int r = 0;

	if (!keep)
		return -ENOMEM;
	h->added = added;
	h->added_ud = ud;
	for (size_t i = 0; i < n && r == 0; i++) {
		struct hsym *s = find(h, syms[i].symbol);

		if (!s) {
			if (!(s = add_sym(h, &syms[i])))
				r = -ENOMEM;
			else
				r = plan_one(h, s);
			continue;
		}
		for (size_t k = 0; k < was; k++)
			if (h->syms[k] == s)
				keep[k] = true;
		s->not_trading = syms[i].not_trading;
		if (!s->active && s->planned) {
			/* Back in the set: whatever it missed meanwhile is a hole now. */
			s->active = true;
			planned(h, s);
		}
		s->active = true; /* one still being planned is streamed once it is */
	}
	for (size_t k = 0; k < was && r == 0; k++)
		if (!keep[k] && h->syms[k]->active) {
			h->syms[k]->active = false;
			kl_info("run", "%s: no longer followed: neither healed nor refreshed",
				h->syms[k]->symbol);
		}
	free(keep);
	return r;
}
