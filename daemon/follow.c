/*
 * The symbol set over time (run_int.h): resolved at start, again every
 * [exchange] symbols_refresh of exchange time and after SIGHUP. A change
 * reaches each layer: the heal plans and fills a symbol added, the
 * consumer learns its store id, the websocket subscribes it once it is
 * planned; a symbol that leaves TRADING is unsubscribed but still healed
 * (its last minutes, its outages), one the configuration no longer takes
 * is left alone. The store's ledger (symbol_ledger) gets every change.
 */
#include "run_int.h"

#include "log.h"
#include "metrics.h"
#include "symset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct names {
	char **v;
	size_t n;
	int status;
};

static void add_name(void *ud, const char *symbol)
{
	struct names *ns = ud;
	char **v = realloc(ns->v, (ns->n + 1) * sizeof(*v));

	if (!v || !(v[ns->n] = strdup(symbol))) {
		if (v)
			ns->v = v;
		ns->status = -ENOMEM;
		return;
	}
	ns->v = v;
	ns->n++;
}

static void mark(struct run *run, int64_t sid, const char *status, int followed, const char *why)
{
	int64_t now = run->heal ? kl_heal_now(run->heal) : run->now_ms;

	if (kl_store_symbol_mark(run->st, sid, status, followed, now, why) < 0)
		kl_warn("run", "cannot write the symbol ledger: %s", kl_store_errmsg(run->st));
}

int kl__follow_publish(struct run *run)
{
	const char **syms = calloc(run->nrs + 1, sizeof(*syms));
	const char **streamed = calloc(run->nrs + 1, sizeof(*streamed));
	size_t ns = 0;

	if (!syms || !streamed) {
		free(syms);
		free(streamed);
		return -ENOMEM;
	}
	for (size_t i = 0; i < run->nrs; i++) {
		syms[i] = run->rs[i].symbol;
		if (run->rs[i].trading && run->rs[i].planned)
			streamed[ns++] = run->rs[i].symbol;
	}
	kl_metrics_symbol_set(run->nrs, ns);
	if (kl_metrics_symbols(syms, run->nrs) < 0)
		kl_warn("run", "out of memory: the per-symbol metrics keep the old set");
	/* The layers borrow the arrays: the old ones go once the new are in. */
	if (kl_http_symbols(run->http, (char *const *)(void *)syms, run->nrs) < 0)
		kl_warn("http", "out of memory: the page keeps the old symbols");
	if (run->ws && kl_ws_set_symbols(run->ws, (char *const *)(void *)streamed, ns) < 0) {
		kl_warn("ws", "out of memory: the stream keeps the old symbols");
		free(streamed);
		streamed = run->streamed;
		ns = run->nstreamed;
	} else {
		free(run->streamed);
	}
	free(run->syms);
	run->syms = syms;
	run->nsyms = run->nrs;
	run->streamed = streamed;
	run->nstreamed = ns;
	return 0;
}

/* ------------------------------------------------------------ start-up */

static void on_first(void *ud, int status, const struct kl_resolved *v, size_t n, size_t ntrading)
{
	struct run *run = ud;
	bool dyn = kl_symset_dynamic(run->items, run->nitems);
	size_t listed = 0;

	if (status < 0 || !(run->rs = calloc(n + 1, sizeof(*run->rs)))) {
		kl_err("run", "out of memory");
		kl__run_stop(run, 1);
		return;
	}
	if (dyn && n == 0) {
		fprintf(stderr,
			"klined: [exchange] symbols: the patterns match none of the exchange's %zu "
			"TRADING symbols\n",
			ntrading);
		kl__run_stop(run, 78);
		return;
	}
	if (dyn)
		kl_info("run", "[exchange] symbols: %zu of the exchange's %zu TRADING symbols", n,
			ntrading);
	for (size_t i = 0; i < n; i++) {
		if (!v[i].listed)
			continue;
		if (!v[i].trading)
			kl_warn("run", "%s: the exchange reports status %s; its history is kept",
				v[i].symbol, v[i].status);
		run->rs[listed++] = (struct rsym){
		    .symbol = v[i].symbol, .status = v[i].status, .trading = v[i].trading};
	}
	run->nrs = listed;
	if (listed == 0) {
		fprintf(stderr,
			"klined: [exchange] symbols: the exchange lists none of the %zu "
			"configured symbols\n",
			n);
		kl__run_stop(run, 78);
		return;
	}
	if (listed < n)
		kl_warn("run", "running with %zu of the %zu configured symbols", listed, n);
	if (kl__follow_publish(run) < 0) {
		kl_err("run", "out of memory");
		kl__run_stop(run, 1);
		return;
	}
	kl__run_clock(run);
}

int kl__follow_start(struct run *run)
{
	struct names keep = {0};
	int r;

	if (kl_resolve_new(run->rest, &run->resolve) < 0)
		return -ENOMEM;
	/* What the last run followed takes part: one that stopped trading since
	 * is still healed up to its end, and its ledger says why. */
	if (kl_store_followed_each(run->st, add_name, &keep) < 0)
		kl_warn("run", "cannot read the followed symbols: %s", kl_store_errmsg(run->st));
	run->phase = kl_symset_dynamic(run->items, run->nitems)
			 ? "asking the exchange for its TRADING symbols"
			 : "asking the exchange for its symbols";
	r = keep.status;
	if (r == 0)
		r = kl_resolve_run(run->resolve, run->items, run->nitems,
				   (const char *const *)(void *)keep.v, keep.n, false, on_first,
				   run);
	kl_symset_free(keep.v, keep.n);
	return r;
}

static bool followed(const struct run *run, const char *symbol)
{
	for (size_t i = 0; i < run->nrs; i++)
		if (!strcmp(run->rs[i].symbol, symbol))
			return true;
	return false;
}

void kl__follow_planned(struct run *run)
{
	struct names was = {0};

	for (size_t i = 0; i < run->nrs; i++) {
		run->rs[i].sid = kl_heal_sid(run->heal, i);
		run->rs[i].planned = true;
		mark(run, run->rs[i].sid, run->rs[i].status, 1, "in [exchange] symbols");
	}
	if (kl_store_followed_each(run->st, add_name, &was) == 0 && was.status == 0) {
		for (size_t i = 0; i < was.n; i++) {
			int64_t sid, start;

			if (followed(run, was.v[i]) ||
			    kl_store_symbol(run->st, was.v[i], false, &start, &sid) < 0)
				continue;
			kl_info("run",
				"%s: no longer followed ([exchange] symbols does not take it)",
				was.v[i]);
			mark(run, sid, NULL, 0, "not in [exchange] symbols");
		}
	}
	kl_symset_free(was.v, was.n);
	run->resolved_at = run->now_ms;
	run->started = true;
	if (kl__follow_publish(run) < 0)
		kl_warn("run", "out of memory: the stream keeps the old symbols");
}

/* ------------------------------------------------------------ later on */

static struct rsym *find(struct run *run, const char *symbol)
{
	for (size_t i = 0; i < run->nrs; i++)
		if (run->rs[i].symbol == symbol) /* interned */
			return &run->rs[i];
	return NULL;
}

/* The heal registered a symbol added: consume and stream it. */
static void on_added(void *ud, const char *symbol, int64_t sid)
{
	struct run *run = ud;
	struct rsym *s = find(run, symbol);

	if (!s || run->stopping)
		return;
	s->sid = sid;
	s->planned = true;
	mark(run, sid, s->status, 1, "taken by [exchange] symbols");
	if (run->speed && kl_speed_add(run->speed, symbol, sid) < 0)
		kl_warn("run", "%s: out of memory: not consumed", symbol);
	if (kl__follow_publish(run) < 0)
		kl_warn("run", "out of memory: the stream keeps the old symbols");
}

static const struct kl_resolved *in(const struct kl_resolved *v, size_t n, const char *symbol)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].symbol == symbol)
			return &v[i];
	return NULL;
}

/* What became of a symbol followed so far, said once. */
static void compare(struct run *run, const struct rsym *old, const struct kl_resolved *now)
{
	if (!old->planned)
		return; /* added a moment ago: on_added writes its ledger */
	if (!now || !now->listed) {
		kl_info("run", "%s: no longer followed (%s)", old->symbol,
			now ? "the exchange no longer lists it"
			    : "[exchange] symbols does not take it");
		mark(run, old->sid, now ? "GONE" : NULL, 0,
		     now ? "no longer listed" : "not in [exchange] symbols");
		kl_metrics_add(KL_M_SYMBOLS_REMOVED, 1);
		return;
	}
	if (now->trading == old->trading && !strcmp(now->status, old->status))
		return;
	if (now->trading) {
		kl_info("run", "%s: trading again: streamed", old->symbol);
	} else {
		kl_metrics_add(KL_M_SYMBOLS_STOPPED, 1);
		kl_warn("run",
			"%s: the exchange reports status %s: no longer streamed; its history "
			"is kept",
			old->symbol, now->status);
	}
	mark(run, old->sid, now->status, -1, "exchangeInfo");
}

static void on_later(void *ud, int status, const struct kl_resolved *v, size_t n, size_t ntrading)
{
	struct run *run = ud;
	struct rsym *rs = NULL;
	struct kl_heal_symbol *hs = NULL;
	size_t nrs = 0, added = 0;

	(void)ntrading;
	run->resolving = false;
	run->resolved_at = kl_heal_now(run->heal);
	if (run->reloading) /* only a reload told systemd RELOADING=1 */
		kl_notify_ready(run->notify, "symbols resolved");
	run->reloading = false;
	if (status == 0 &&
	    (!(rs = calloc(n + 1, sizeof(*rs))) || !(hs = calloc(n + 1, sizeof(*hs)))))
		status = -ENOMEM;
	for (size_t i = 0; status == 0 && i < n; i++)
		nrs += v[i].listed;
	if (status < 0 || nrs == 0) {
		if (status < 0)
			kl_warn("run",
				"cannot resolve [exchange] symbols: out of memory; the %zu "
				"followed stay",
				run->nrs);
		else
			kl_warn("run",
				"[exchange] symbols takes no listed symbol now; the %zu "
				"followed stay",
				run->nrs);
		free(rs);
		free(hs);
		return;
	}
	for (size_t i = 0; i < run->nrs; i++)
		compare(run, &run->rs[i], in(v, n, run->rs[i].symbol));
	nrs = 0;
	for (size_t i = 0; i < n; i++) {
		const struct rsym *old = find(run, v[i].symbol);

		if (!v[i].listed)
			continue;
		rs[nrs] = old ? *old : (struct rsym){.symbol = v[i].symbol};
		rs[nrs].status = v[i].status;
		rs[nrs].trading = v[i].trading;
		hs[nrs] = (struct kl_heal_symbol){v[i].symbol, !v[i].trading};
		if (!old) {
			kl_info("run", "%s: followed from now on (%s)", v[i].symbol,
				v[i].trading ? "TRADING" : v[i].status);
			kl_metrics_add(KL_M_SYMBOLS_ADDED, 1);
			added++;
		}
		nrs++;
	}
	/* Before kl_heal_set: its added callback looks the symbol up here. */
	free(run->rs);
	run->rs = rs;
	run->nrs = nrs;
	if (kl_heal_set(run->heal, hs, nrs, on_added, run) < 0)
		kl_warn("run", "out of memory: some added symbols are not healed");
	free(hs);
	if (kl__follow_publish(run) < 0)
		kl_warn("run", "out of memory: the stream keeps the old symbols");
	if (added)
		kl_info("run", "[exchange] symbols: %zu followed, %zu added", nrs, added);
}

void kl__follow_tick(struct run *run)
{
	const char **keep;
	int r;

	if (!run->started || run->once || run->resolving || run->stopping)
		return;
	if (!run->reload_due &&
	    kl_heal_now(run->heal) - run->resolved_at < run->conf->symbols_refresh_ms)
		return;
	if (!(keep = calloc(run->nrs + 1, sizeof(*keep))))
		return;
	for (size_t i = 0; i < run->nrs; i++)
		keep[i] = run->rs[i].symbol;
	r = kl_resolve_run(run->resolve, run->items, run->nitems, keep, run->nrs, true, on_later,
			   run);
	free(keep);
	if (r < 0) {
		kl_warn("run", "cannot resolve [exchange] symbols: %s", strerror(-r));
		if (run->reloading)
			kl_notify_ready(run->notify, "symbols not resolved");
		run->reloading = false;
		return;
	}
	run->resolving = true;
	run->reload_due = false;
}

static bool same_items(char *const *a, size_t na, char *const *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

void kl__follow_reload(struct run *run)
{
	struct kl_conf *c = NULL;
	char **items;
	size_t nitems;

	if (!run->reload || run->reload->load(run->reload->ud, &c) < 0) {
		kl_err("run", "SIGHUP: %s; klined goes on as configured before",
		       run->reload ? "the configuration has errors (above)" : "nothing to re-read");
		kl_conf_free(c);
		return;
	}
	kl_notify_reloading(run->notify);
	if (same_items(run->items, run->nitems, c->symbols, c->nsymbols)) {
		kl_info("run", "SIGHUP: [exchange] symbols unchanged (other keys take effect at "
			       "the next restart)");
		kl_conf_free(c);
		kl_notify_ready(run->notify, "configuration re-read");
		return;
	}
	/* The new list is taken over whole; the rest of the new conf goes. */
	items = run->items;
	nitems = run->nitems;
	run->items = c->symbols;
	run->nitems = c->nsymbols;
	c->symbols = items;
	c->nsymbols = nitems;
	kl_conf_free(c);
	kl_info("run", "SIGHUP: [exchange] symbols changed: resolving it again (other keys take "
		       "effect at the next restart)");
	run->reload_due = run->reloading = true;
	kl__follow_tick(run);
}

void kl__follow_free(struct run *run)
{
	kl_resolve_free(run->resolve);
	run->resolve = NULL;
	free(run->rs);
	free(run->syms);
	free(run->streamed);
}
