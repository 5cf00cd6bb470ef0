/*
 * What the backfill does with answers other than 200 (rest.c retries 429,
 * 418, 5xx and transport errors itself): -1121 sets the symbol aside as
 * inactive until exchangeInfo lists it again; any other refusal is
 * transient, retried with a growing backoff while the other symbols go on.
 * And the answers to probes: is a range the exchange left empty an outage?
 */
#include "backfill_int.h"
#include "backoff.h"

#include "day.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

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

void bf_on_hold_timer(uv_timer_t *t)
{
	struct kl_backfill *bf = t->data;

	/* Between runs the held work waits for the next one (kl_backfill_run feeds it). */
	if (!bf->running || bf->closing)
		return;
	bf_feed(bf);
	bf_maybe_done(bf);
}

/*
 * A non-200 answer that rest.c passed on. -1121 makes the symbol inactive;
 * anything else (403 from a WAF, 451, a 400 nobody expected) is transient:
 * the page waits a growing backoff while the other symbols go on.
 */
void bf_refused(struct kl_backfill *bf, struct page *p, const struct kl_rest_reply *r)
{
	struct sym *s = &bf->syms[p->sym];
	int code = kl_rest_error_code(r, NULL, 0);
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
		bf_set_aside(bf, s);
		schedule_check(bf, p->sym);
		bf_page_done(bf, p);
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
		bf_set_aside(bf, s);
		bf_page_done(bf, p);
		return;
	}
	kl_warn("backfill",
		"%s: the exchange refused a klines page (HTTP %ld: %.200s); retrying in %.0f s, "
		"the other symbols go on",
		s->symbol, r->status, r->body, (double)delay / 1000.0);
	if (!bf_request_page(bf, p, delay)) {
		bf->failed = true;
		bf_page_done(bf, p);
	}
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

int kl_backfill_take_written(struct kl_backfill *bf, int64_t **sids)
{
	size_t n = 0;

	if (!(*sids = calloc(bf->nsyms + 1, sizeof(**sids))))
		return -ENOMEM;
	for (size_t i = 0; i < bf->nsyms; i++) {
		if (bf->syms[i].wrote)
			(*sids)[n++] = bf->syms[i].sid;
		bf->syms[i].wrote = false;
	}
	return (int)n;
}

/* The heal asks symbol after symbol in its own order, the same each time:
 * from the last one found, that is one step, not a search of 1,500. */
struct sym *bf_find(struct kl_backfill *bf, int64_t sid)
{
	for (size_t k = 0; k < bf->nsyms; k++) {
		size_t i = (bf->hint + k) % bf->nsyms;

		if (bf->syms[i].sid == sid) {
			bf->hint = i + 1;
			return &bf->syms[i];
		}
	}
	return NULL;
}

void kl_backfill_not_trading(struct kl_backfill *bf, int64_t sid, bool not_trading)
{
	struct sym *s = bf_find(bf, sid);

	if (s)
		s->not_trading = not_trading;
}

void bf_checks_close(struct kl_backfill *bf)
{
	for (size_t i = 0; i < bf->nsyms; i++) {
		if (bf->syms[i].check)
			uv_close((uv_handle_t *)&bf->syms[i].check->timer, check_closed);
		bf->syms[i].check = NULL;
	}
}

/* Small: parsed on the loop. */
bool bf_probe_answer(struct kl_backfill *bf, struct page *p, const struct kl_rest_reply *r)
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
	/* Empty although the exchange has served klines after the range: Binance answers a
	 * startTime with the oldest klines from it, so the empty page lied, like a short one. */
	if (json_array_size(j) || s->newest > p->r.to) {
		int64_t f =
		    json_array_size(j) ? kl_kline_slot(json_integer_value(first)) : p->r.from;
		int64_t l = json_array_size(j)
				? kl_kline_slot(json_integer_value(last)) + KL_MINUTE_MS
				: s->newest;
		if (l > s->newest)
			s->newest = l;
		if (f < p->r.to) {
			/* A short or empty page, not a halt: fetch the range again, later. */
			struct page *q = calloc(1, sizeof(*q));
			uint64_t delay =
			    kl_backoff_ms(BACKOFF_FIRST_MS, BACKOFF_MAX_MS, p->attempt, 0, 0);
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
				if (bf_request_page(bf, q, delay))
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
	bf_log_outage(s, p->r.from, p->r.to);
	s->wrote = true;
	if (kl_store_begin(bf->st) < 0 ||
	    kl_store_put_outage(bf->st, s->sid, p->r.from, p->r.to) < 0) {
		kl_err("backfill", "%s: cannot store an outage: %s", s->symbol,
		       kl_store_errmsg(bf->st));
		kl_store_rollback(bf->st);
		bf->failed = true;
	} else {
		bf_commit_soon(bf);
	}
	return true;
}
