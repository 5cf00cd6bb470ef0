/*
 * exchangeInfo in chunks of INFO_CHUNK symbols. Binance's -1121 ("Invalid
 * symbol.") names none, so a refused chunk is split in halves: about
 * 2*log2(INFO_CHUNK) requests find each unknown symbol, once per start,
 * where asking for the whole exchange would fetch ~5 MiB every start.
 */
#include "info.h"

#include "log.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INFO_CHUNK  100 /* symbols per request: a ~3 KiB URL, well under limits */
#define INFO_WEIGHT 20

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

static void read_limits(struct kl_rest *rest, json_t *j)
{
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(j, "rateLimits"), i, v)
	{
		const char *type = json_string_value(json_object_get(v, "rateLimitType"));
		const char *ival = json_string_value(json_object_get(v, "interval"));
		if (type && ival && !strcmp(type, "REQUEST_WEIGHT") && !strcmp(ival, "MINUTE") &&
		    json_integer_value(json_object_get(v, "intervalNum")) == 1)
			kl_rest_set_weight_limit(rest,
						 json_integer_value(json_object_get(v, "limit")));
	}
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

struct trading {
	struct kl_rest *rest;
	kl_info_trading_cb cb;
	void *ud;
};

static enum kl_rest_verdict on_trading(void *ud, const struct kl_rest_reply *r)
{
	struct trading *t = ud;
	json_t *j, *v;
	char **names = NULL;
	size_t i, n = 0;
	char msg[256];

	if (r->cancelled) {
		free(t);
		return KL_REST_DONE;
	}
	if (r->status != 200) {
		kl_rest_error_code(r, msg, sizeof(msg));
		kl_err("run", "exchangeInfo refused: %s; asking again", msg);
		return KL_REST_RETRY;
	}
	j = json_loadb(r->body, r->len, 0, NULL);
	if (!json_is_array(json_object_get(j, "symbols"))) {
		json_decref(j);
		return KL_REST_RETRY;
	}
	read_limits(t->rest, j);
	names = calloc(json_array_size(json_object_get(j, "symbols")) + 1, sizeof(*names));
	json_array_foreach(json_object_get(j, "symbols"), i, v)
	{
		const char *name = json_string_value(json_object_get(v, "symbol"));
		const char *status = json_string_value(json_object_get(v, "status"));

		/* The filter is the exchange's; an older server may ignore it. */
		if (!names || !name || !status || strcmp(status, "TRADING") != 0)
			continue;
		if (!(names[n] = strdup(name))) {
			for (size_t k = 0; k < n; k++)
				free(names[k]);
			free(names);
			names = NULL;
			break;
		}
		n++;
	}
	json_decref(j);
	if (names)
		t->cb(t->ud, 0, names, n);
	else
		t->cb(t->ud, -ENOMEM, NULL, 0);
	free(t);
	return KL_REST_DONE;
}

int kl_info_trading(struct kl_rest *rest, kl_info_trading_cb cb, void *ud)
{
	struct trading *t = malloc(sizeof(*t));
	int r;

	if (!t)
		return -ENOMEM;
	*t = (struct trading){rest, cb, ud};
	/* Weight 20 for the whole exchange; without permission sets it is a third the size. */
	r = kl_rest_get(rest, "/api/v3/exchangeInfo?symbolStatus=TRADING&showPermissionSets=false",
			INFO_WEIGHT, on_trading, t);
	if (r < 0)
		free(t);
	return r;
}
