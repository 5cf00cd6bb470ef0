/*
 * The symbol set's resolution (resolve.h): exchangeInfo?symbolStatus=TRADING
 * for the patterns (weight 20), then exchangeInfo in chunks for every
 * name (info.c). Names are interned, so that every layer may borrow them
 * for the daemon's lifetime however often the set changes.
 */
#include "resolve.h"

#include "info.h"
#include "symset.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kl_resolve {
	struct kl_rest *rest;
	char **names; /* interned, sorted */
	size_t nnames;
	char **items; /* of the run under way */
	size_t nitems;
	const char **keep;
	size_t nkeep;
	struct kl_info_symbol *info;
	struct kl_info_symbol *chk; /* the part of info exchangeInfo is asked about */
	size_t *chk_at;		    /* where each goes back in info */
	size_t nchk;
	struct kl_resolved *out;
	size_t n, ntrading;
	kl_resolve_cb cb;
	void *ud;
	struct kl_info_trading *trading; /* the request under way */
	bool busy, quiet;
};

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

const char *kl_resolve_intern(struct kl_resolve *rs, const char *name)
{
	char **v, *copy, **hit = NULL;
	size_t at = 0;

	if (rs->nnames) /* bsearch wants an array, even of none */
		hit = bsearch(&name, rs->names, rs->nnames, sizeof(*rs->names), cmp_name);

	if (hit)
		return *hit;
	v = realloc(rs->names, (rs->nnames + 1) * sizeof(*v));
	if (!v)
		return NULL;
	rs->names = v;
	if (!(copy = strdup(name)))
		return NULL;
	while (at < rs->nnames && strcmp(rs->names[at], name) < 0)
		at++;
	memmove(&rs->names[at + 1], &rs->names[at], (rs->nnames - at) * sizeof(*v));
	rs->names[at] = copy;
	rs->nnames++;
	return copy;
}

static void clear_run(struct kl_resolve *rs)
{
	kl_info_trading_cancel(rs->trading);
	rs->trading = NULL;
	kl_symset_free(rs->items, rs->nitems);
	rs->items = NULL;
	rs->nitems = 0;
	free(rs->keep);
	rs->keep = NULL;
	rs->nkeep = 0;
	free(rs->info);
	rs->info = NULL;
	free(rs->chk);
	rs->chk = NULL;
	free(rs->chk_at);
	rs->chk_at = NULL;
	rs->nchk = 0;
	free(rs->out);
	rs->out = NULL;
	rs->n = 0;
	rs->busy = false;
}

static void finish(struct kl_resolve *rs, int status)
{
	kl_resolve_cb cb = rs->cb;
	void *ud = rs->ud;
	struct kl_resolved *out = rs->out;
	size_t n = rs->n, ntrading = rs->ntrading;

	rs->out = NULL;
	clear_run(rs);
	cb(ud, status, status == 0 ? out : NULL, status == 0 ? n : 0, ntrading);
	free(out);
}

static void on_checked(void *ud, int status)
{
	struct kl_resolve *rs = ud;

	for (size_t i = 0; i < rs->nchk; i++)
		rs->info[rs->chk_at[i]] = rs->chk[i];

	if (status == 0 && !(rs->out = calloc(rs->n ? rs->n : 1, sizeof(*rs->out))))
		status = -ENOMEM;
	for (size_t i = 0; status == 0 && i < rs->n; i++) {
		const struct kl_info_symbol *s = &rs->info[i];

		const char *st = kl_resolve_intern(rs, s->listed ? s->status : "GONE");

		if (!st)
			status = -ENOMEM;
		rs->out[i] =
		    (struct kl_resolved){s->symbol, s->listed, s->listed && !s->not_trading, st};
	}
	finish(rs, status);
}

/*
 * Check @p names (interned here) with exchangeInfo, but for those in
 * @p trading (sorted; NULL: none): the TRADING list has answered for them.
 */
static int check(struct kl_resolve *rs, char *const *names, size_t n, char *const *trading,
		 size_t ntrading)
{
	rs->info = calloc(n + 1, sizeof(*rs->info));
	rs->chk = calloc(n + 1, sizeof(*rs->chk));
	rs->chk_at = calloc(n + 1, sizeof(*rs->chk_at));
	if (!rs->info || !rs->chk || !rs->chk_at)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *s = kl_resolve_intern(rs, names[i]);

		if (!s)
			return -ENOMEM;
		rs->info[i] = (struct kl_info_symbol){.symbol = s, .quiet = rs->quiet};
		if (ntrading && bsearch(&names[i], trading, ntrading, sizeof(*trading), cmp_name)) {
			rs->info[i].listed = true;
			snprintf(rs->info[i].status, sizeof(rs->info[i].status), "TRADING");
			continue;
		}
		rs->chk_at[rs->nchk] = i;
		rs->chk[rs->nchk++] = rs->info[i];
	}
	rs->n = n;
	if (rs->nchk == 0) {
		on_checked(rs, 0);
		return 0;
	}
	return kl_info_check(rs->rest, rs->chk, rs->nchk, on_checked, rs);
}

static void on_trading(void *ud, int status, char **names, size_t n)
{
	struct kl_resolve *rs = ud;
	char **all = NULL, **res = NULL;
	size_t nres = 0;

	rs->trading = NULL; /* it frees itself once this returns */
	rs->ntrading = n;
	/* The followed ones take part as if they traded: a pattern that takes
	 * one that stopped keeps it, to be told apart from one it excludes. */
	if (status == 0 && !(all = calloc(n + rs->nkeep + 1, sizeof(*all))))
		status = -ENOMEM;
	for (size_t i = 0; status == 0 && i < n; i++)
		all[i] = names[i];
	for (size_t i = 0; status == 0 && i < rs->nkeep; i++)
		all[n + i] = (char *)(uintptr_t)rs->keep[i];
	if (status == 0)
		status = kl_symset_resolve(rs->items, rs->nitems, all, n + rs->nkeep, &res, &nres);
	free(all);
	if (status == 0) {
		if (n)
			qsort(names, n, sizeof(*names), cmp_name);
		status = check(rs, res, nres, names, n);
	}
	kl_symset_free(names, n);
	kl_symset_free(res, nres);
	if (status < 0)
		finish(rs, status);
}

int kl_resolve_run(struct kl_resolve *rs, char *const *items, size_t nitems,
		   const char *const *keep, size_t nkeep, bool quiet, kl_resolve_cb cb, void *ud)
{
	int r = -ENOMEM;

	if (rs->busy)
		return -EBUSY;
	rs->cb = cb;
	rs->ud = ud;
	rs->quiet = quiet;
	rs->ntrading = 0;
	if (!(rs->items = calloc(nitems ? nitems : 1, sizeof(*rs->items))))
		goto out;
	for (; rs->nitems < nitems; rs->nitems++)
		if (!(rs->items[rs->nitems] = strdup(items[rs->nitems])))
			goto out;
	if (!(rs->keep = calloc(nkeep ? nkeep : 1, sizeof(*rs->keep))))
		goto out;
	for (; rs->nkeep < nkeep; rs->nkeep++)
		if (!(rs->keep[rs->nkeep] = kl_resolve_intern(rs, keep[rs->nkeep])))
			goto out;
	rs->busy = true;
	if (kl_symset_dynamic(items, nitems))
		r = kl_info_trading(rs->rest, on_trading, rs, &rs->trading);
	else
		r = check(rs, items, nitems, NULL, 0);
out:
	if (r < 0)
		clear_run(rs);
	return r;
}

int kl_resolve_new(struct kl_rest *rest, struct kl_resolve **ret)
{
	struct kl_resolve *rs = calloc(1, sizeof(*rs));

	if (!rs)
		return -ENOMEM;
	rs->rest = rest;
	*ret = rs;
	return 0;
}

void kl_resolve_stop(struct kl_resolve *rs)
{
	if (rs && rs->busy)
		clear_run(rs);
}

void kl_resolve_free(struct kl_resolve *rs)
{
	if (!rs)
		return;
	clear_run(rs);
	for (size_t i = 0; i < rs->nnames; i++)
		free(rs->names[i]);
	free(rs->names);
	free(rs);
}
