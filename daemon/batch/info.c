/*
 * exchangeInfo in chunks of INFO_CHUNK symbols. Binance's -1121 ("Invalid
 * symbol.") names none, so a refused chunk is split in halves: about
 * 2*log2(INFO_CHUNK) requests find each unknown symbol, once per start,
 * where asking for the whole exchange would fetch ~5 MiB every start.
 */
#include "info.h"

#include "backoff.h"
#include "log.h"

#include <errno.h>
#include <jansson.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INFO_CHUNK	  100 /* symbols per request: a ~3 KiB URL, well under limits */
#define INFO_WEIGHT	  20
#define BAD_BODY_FIRST_MS 500 /* the REST client's own backoff for a bad body */
#define BAD_BODY_MAX_MS	  30000

struct check {
	struct kl_rest *rest;
	struct kl_info_symbol *syms;
	size_t pending; /* requests not answered yet, +1 while asking */
	kl_info_done_cb done;
	void *ud;
	int status;
	bool cancelled;
};

/* One request: syms[from, from + n). */
struct info_req {
	struct check *c;
	size_t from, n;
};

static void settle(struct check *c)
{
	if (--c->pending)
		return;
	if (!c->cancelled)
		c->done(c->ud, c->status);
	free(c);
}

static void unlisted(const struct kl_info_symbol *s, const char *why)
{
	if (!s->quiet)
		kl_err("run",
		       "%s: the exchange does not list this symbol (%s); [exchange] symbols "
		       "names it, klined runs without it",
		       s->symbol, why);
}

static int ask(struct check *c, size_t from, size_t n);

static int64_t weight_limit(json_t *j)
{
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(j, "rateLimits"), i, v)
	{
		const char *type = json_string_value(json_object_get(v, "rateLimitType"));
		const char *ival = json_string_value(json_object_get(v, "interval"));
		if (type && ival && !strcmp(type, "REQUEST_WEIGHT") && !strcmp(ival, "MINUTE") &&
		    json_integer_value(json_object_get(v, "intervalNum")) == 1)
			return json_integer_value(json_object_get(v, "limit"));
	}
	return 0;
}

static void read_limits(struct kl_rest *rest, json_t *j)
{
	int64_t limit = weight_limit(j);

	if (limit > 0)
		kl_rest_set_weight_limit(rest, limit);
}

static enum kl_rest_verdict on_info(void *ud, const struct kl_rest_reply *r)
{
	struct info_req *q = ud;
	struct check *c = q->c;
	json_t *j, *v;
	size_t i;
	char msg[256];

	if (r->cancelled) {
		c->cancelled = true;
		free(q);
		settle(c);
		return KL_REST_DONE;
	}
	if (r->status != 200) {
		if (kl_rest_error_code(r, msg, sizeof(msg)) != -1121) {
			/* A final 4xx we did not expect: our request's fault, not the user's.
			 * Retrying costs little; exiting would loop through systemd. */
			kl_err("run", "exchangeInfo refused: %s; asking again", msg);
			return KL_REST_RETRY;
		}
		if (q->n == 1)
			unlisted(&c->syms[q->from], msg);
		else if (ask(c, q->from, q->n / 2) < 0 ||
			 ask(c, q->from + q->n / 2, q->n - q->n / 2) < 0)
			c->status = -ENOMEM;
		free(q);
		settle(c);
		return KL_REST_DONE;
	}
	j = json_loadb(r->body, r->len, 0, NULL);
	if (!json_is_array(json_object_get(j, "symbols"))) {
		json_decref(j);
		return KL_REST_RETRY;
	}
	read_limits(c->rest, j);
	json_array_foreach(json_object_get(j, "symbols"), i, v)
	{
		const char *name = json_string_value(json_object_get(v, "symbol"));
		const char *status = json_string_value(json_object_get(v, "status"));
		for (size_t k = q->from; name && k < q->from + q->n; k++) {
			if (!strcmp(c->syms[k].symbol, name)) {
				c->syms[k].listed = true;
				c->syms[k].not_trading = status && strcmp(status, "TRADING") != 0;
				snprintf(c->syms[k].status, sizeof(c->syms[k].status), "%s",
					 status ? status : "TRADING");
			}
		}
	}
	json_decref(j);
	for (size_t k = q->from; k < q->from + q->n; k++) {
		if (!c->syms[k].listed)
			unlisted(&c->syms[k], "absent from exchangeInfo");
	}
	free(q);
	settle(c);
	return KL_REST_DONE;
}

static int ask(struct check *c, size_t from, size_t n)
{
	struct info_req *q = malloc(sizeof(*q));
	char path[64 + INFO_CHUNK * 32];
	size_t len;
	int r;

	if (!q)
		return -ENOMEM;
	*q = (struct info_req){c, from, n};
	len = (size_t)snprintf(path, sizeof(path), "/api/v3/exchangeInfo?symbols=%%5B");
	for (size_t i = from; i < from + n; i++)
		len += (size_t)snprintf(path + len, sizeof(path) - len, "%s%%22%s%%22",
					i > from ? "," : "", c->syms[i].symbol);
	snprintf(path + len, sizeof(path) - len, "%%5D");
	c->pending++;
	r = kl_rest_get(c->rest, path, INFO_WEIGHT, on_info, q);
	if (r < 0) {
		c->pending--;
		free(q);
	}
	return r;
}

int kl_info_check(struct kl_rest *rest, struct kl_info_symbol *syms, size_t n, kl_info_done_cb done,
		  void *ud)
{
	struct check *c = calloc(1, sizeof(*c));
	int r = 0;

	if (!c)
		return -ENOMEM;
	*c = (struct check){.rest = rest, .syms = syms, .done = done, .ud = ud};
	/* Held until every chunk is asked, so an early answer cannot finish the check. */
	c->pending = 1;
	for (size_t i = 0; i < n && r == 0; i += INFO_CHUNK)
		r = ask(c, i, n - i < INFO_CHUNK ? n - i : INFO_CHUNK);
	if (r < 0 && c->pending == 1) {
		free(c);
		return r;
	}
	if (r < 0)
		c->status = r;
	settle(c);
	return 0;
}

/*
 * The whole exchange's list is a few MiB of JSON: jansson takes 50-100 ms
 * over it, so it is parsed on the thread pool from a copy of the body. The
 * request is cancelled by its owner (kl_info_trading_cancel) before the
 * client goes: whichever phase it is in then frees it, without a call.
 */
struct kl_info_trading {
	struct kl_rest *rest;
	kl_info_trading_cb cb;
	void *ud;
	bool cancelled;
	uv_work_t work;
	char *body; /* the copy being parsed */
	size_t len;
	char **names; /* the parse's results */
	size_t n;
	int64_t limit;	     /* the weight per minute it gives, or 0 */
	int status;	     /* 0, -EAGAIN (a body without symbols: ask again), -ENOMEM */
	unsigned bad_bodies; /* in a row: the next ask's backoff */
};

static int ask_trading(struct kl_info_trading *t, uint64_t delay_ms);

static void free_names(char **names, size_t n)
{
	for (size_t k = 0; names && k < n; k++)
		free(names[k]);
	free(names);
}

static void trading_free(struct kl_info_trading *t)
{
	free_names(t->names, t->n);
	free(t->body);
	free(t);
}

/* On the pool: no logging, nothing of the loop's. */
static void parse_trading(uv_work_t *w)
{
	struct kl_info_trading *t = w->data;
	json_t *j = json_loadb(t->body, t->len, 0, NULL), *v;
	size_t i;

	t->status = 0;
	if (!json_is_array(json_object_get(j, "symbols"))) {
		t->status = -EAGAIN;
		goto out;
	}
	t->limit = weight_limit(j);
	t->names = calloc(json_array_size(json_object_get(j, "symbols")) + 1, sizeof(*t->names));
	if (!t->names) {
		t->status = -ENOMEM;
		goto out;
	}
	json_array_foreach(json_object_get(j, "symbols"), i, v)
	{
		const char *name = json_string_value(json_object_get(v, "symbol"));
		const char *status = json_string_value(json_object_get(v, "status"));

		/* The filter is the exchange's; an older server may ignore it. */
		if (!name || !status || strcmp(status, "TRADING") != 0)
			continue;
		if (!(t->names[t->n] = strdup(name))) {
			t->status = -ENOMEM;
			goto out;
		}
		t->n++;
	}
out:
	json_decref(j);
	free(t->body);
	t->body = NULL;
#ifdef __GLIBC__
	/* The tree was this thread's arena's: given back, not kept as 15 MiB of RSS. */
	malloc_trim(0);
#endif
}

static void parsed_trading(uv_work_t *w, int status)
{
	struct kl_info_trading *t = w->data;
	char **names = t->names;

	(void)status; /* never cancelled: the parse runs to its end */
	if (t->cancelled) {
		trading_free(t);
		return;
	}
	if (t->status == -EAGAIN) {
		free_names(t->names, t->n);
		t->names = NULL;
		t->n = 0;
		/* As the REST client backs off a bad body, which it can no longer see. */
		uint64_t delay = kl_backoff_ms(BAD_BODY_FIRST_MS, BAD_BODY_MAX_MS, t->bad_bodies++,
					       0.5, kl_backoff_uniform());
		kl_err("run", "exchangeInfo without a symbol list; asking again in %.1f s",
		       (double)delay / 1000.0);
		if (ask_trading(t, delay) == 0)
			return;
		t->status = -ENOMEM;
	}
	if (t->limit > 0)
		kl_rest_set_weight_limit(t->rest, t->limit);
	if (t->status == 0) {
		t->names = NULL; /* the callback's */
		t->cb(t->ud, 0, names, t->n);
	} else {
		t->cb(t->ud, t->status, NULL, 0);
	}
	trading_free(t);
}

static enum kl_rest_verdict on_trading(void *ud, const struct kl_rest_reply *r)
{
	struct kl_info_trading *t = ud;
	char msg[256];
	int e;

	if (r->cancelled || t->cancelled) {
		trading_free(t);
		return KL_REST_DONE;
	}
	if (r->status != 200) {
		kl_rest_error_code(r, msg, sizeof(msg));
		kl_err("run", "exchangeInfo refused: %s; asking again", msg);
		return KL_REST_RETRY;
	}
	t->len = r->len;
	if (!(t->body = malloc(r->len + 1))) {
		t->cb(t->ud, -ENOMEM, NULL, 0);
		trading_free(t);
		return KL_REST_DONE;
	}
	memcpy(t->body, r->body, r->len + 1);
	t->work.data = t;
	e = uv_queue_work(kl_rest_loop(t->rest), &t->work, parse_trading, parsed_trading);
	if (e < 0) {
		/* No pool: here, as before it had one. */
		parse_trading(&t->work);
		parsed_trading(&t->work, 0);
	}
	return KL_REST_DONE;
}

static int ask_trading(struct kl_info_trading *t, uint64_t delay_ms)
{
	/* Weight 20 for the whole exchange; without permission sets it is a third the size. */
	return kl_rest_get_in(t->rest,
			      "/api/v3/exchangeInfo?symbolStatus=TRADING&showPermissionSets=false",
			      INFO_WEIGHT, delay_ms, on_trading, t);
}

int kl_info_trading(struct kl_rest *rest, kl_info_trading_cb cb, void *ud,
		    struct kl_info_trading **ret)
{
	struct kl_info_trading *t = calloc(1, sizeof(*t));
	int r;

	if (!t)
		return -ENOMEM;
	*t = (struct kl_info_trading){.rest = rest, .cb = cb, .ud = ud};
	r = ask_trading(t, 0);
	if (r < 0) {
		free(t);
		return r;
	}
	*ret = t;
	return 0;
}

void kl_info_trading_cancel(struct kl_info_trading *t)
{
	if (t)
		t->cancelled = true;
}
