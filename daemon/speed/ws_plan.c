/*
 * What the websocket client plans before any socket: the URL taken apart,
 * the symbols grouped into connections (by count, as the set changes; a
 * connection's URL carries what fits, ws_sub.c subscribes the rest), and
 * the budget of connection attempts for the whole process: the exchange
 * allows 300 per 5 minutes per IP, and whatever the connections do,
 * klined makes at most lim.attempts of them in lim.attempts_window_ms.
 */
#include "ws_int.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct kl_ws_limits kl_ws_binance_limits = {
    .attempts = 100, /* a third of the exchange's 300 */
    .attempts_window_ms = 300000,
    .silence_ms = 90000, /* the exchange pings every 20 s */
    .backoff_first_ms = 500,
    .backoff_max_ms = 30000,
    .stable_ms = 60000,
    .streams_per_conn = KL_WS_STREAMS_PER_CONN,
    /* 2.5 per second at most: with lws's pongs (one per 20 s) and a margin
     * for timers that fire late and then close together, still under 5. */
    .ctrl_gap_ms = 400,
    .ack_ms = 10000,
};

int64_t kl__ws_budget_take(struct kl_ws *ws)
{
	int64_t wait = kl_attempts_take(&ws->budget, (int64_t)uv_now(ws->loop));
	int64_t window = ws->lim.attempts_window_ms;

	if (wait == 0) {
		ws->budget_said = false;
		return 0;
	}
	if (!ws->budget_said) {
		char span[32];
		if (window % 60000 == 0)
			snprintf(span, sizeof(span), "%lld minutes", (long long)(window / 60000));
		else
			snprintf(span, sizeof(span), "%.1f s", (double)window / 1000.0);
		kl_warn("ws",
			"%zu connection attempts in %s: waiting %.1f s before the next "
			"(the exchange allows 300 per 5 minutes per IP)",
			ws->budget.max, span, (double)wait / 1000.0);
	}
	ws->budget_said = true;
	return wait;
}

int kl__ws_parse_url(struct kl_ws *ws, const char *url)
{
	const char *p, *slash, *colon;

	if (!strncmp(url, "wss://", 6)) {
		ws->tls = true;
		p = url + 6;
		ws->port = 443;
	} else if (!strncmp(url, "ws://", 5)) {
		p = url + 5;
		ws->port = 80;
	} else {
		return -EINVAL;
	}
	slash = strchr(p, '/');
	if (!slash)
		slash = p + strlen(p);
	colon = memchr(p, ':', (size_t)(slash - p));
	if ((size_t)((colon ? colon : slash) - p) >= sizeof(ws->host))
		return -EINVAL;
	snprintf(ws->host, sizeof(ws->host), "%.*s", (int)((colon ? colon : slash) - p), p);
	if (colon)
		ws->port = atoi(colon + 1);
	snprintf(ws->prefix, sizeof(ws->prefix), "%s", slash);
	return ws->host[0] && ws->port > 0 && ws->port < 65536 ? 0 : -EINVAL;
}

/*
 * A connection's URL carries as many streams as fit: libwebsockets 4.1
 * cuts the request line at 2048 bytes, and a cut URL would subscribe to
 * fewer streams than asked (or be refused); the rest are SUBSCRIBEd.
 */
#define URL_MAX 1800

static size_t stream_len(const char *symbol)
{
	return strlen(symbol) + sizeof("@kline_1m/") - 1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The index where @p x is or would go. */
static size_t strs_at(const struct kl__strs *s, const char *x, bool *found)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->v[mid], x);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

bool kl__strs_has(const struct kl__strs *s, const char *x)
{
	bool found;

	strs_at(s, x, &found);
	return found;
}

int kl__strs_add(struct kl__strs *s, const char *x)
{
	bool found;
	size_t at = strs_at(s, x, &found);
	char *dup;

	if (found)
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		char **v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	if (!(dup = strdup(x)))
		return -ENOMEM;
	memmove(s->v + at + 1, s->v + at, (s->n - at) * sizeof(*s->v));
	s->v[at] = dup;
	s->n++;
	return 0;
}

void kl__strs_del(struct kl__strs *s, const char *x)
{
	bool found;
	size_t at = strs_at(s, x, &found);

	if (!found)
		return;
	free(s->v[at]);
	memmove(s->v + at, s->v + at + 1, (s->n - at - 1) * sizeof(*s->v));
	s->n--;
}

void kl__strs_free(struct kl__strs *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	*s = (struct kl__strs){0};
}

size_t kl__ws_stream(char *out, const char *symbol)
{
	size_t len = 0;

	for (const char *q = symbol; *q; q++)
		out[len++] = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q);
	memcpy(out + len, "@kline_1m", sizeof("@kline_1m"));
	return len + sizeof("@kline_1m") - 1;
}

char *kl__ws_path(const struct kl_ws *ws, const struct slot *s, struct kl__strs *have)
{
	size_t cap = strlen(ws->prefix) + sizeof("/stream?streams=") + URL_MAX, len;
	char *path = malloc(cap);

	if (!path)
		return NULL;
	len = (size_t)snprintf(path, cap, "%s/stream?streams=", ws->prefix);
	for (size_t i = 0; i < s->want.n; i++) {
		const char *sym = s->want.v[i];
		if (kl__strs_has(&s->refused, sym))
			continue;
		if (len + stream_len(sym) > URL_MAX)
			break;
		if (kl__strs_add(have, sym) < 0) {
			free(path);
			return NULL;
		}
		if (have->n > 1)
			path[len++] = '/';
		len += kl__ws_stream(path + len, sym);
	}
	return path;
}

/* The slot (an index into want[]) that takes a new symbol: one whose
 * connection is up or coming first, then a dormant one, then a new one. */
static size_t pick_slot(const struct kl_ws *ws, const struct kl__strs *want, size_t nwant,
			size_t per)
{
	for (int pass = 0; pass < 2; pass++)
		for (size_t k = 0; k < nwant; k++) {
			bool active = k < ws->nslots && ws->slots[k]->want.n;
			if (want[k].n < per && active == (pass == 0))
				return k;
		}
	return nwant;
}

static void free_plan(struct kl__strs *want, size_t nwant, struct slot **fresh, size_t nfresh)
{
	for (size_t k = 0; k < nwant; k++)
		kl__strs_free(&want[k]);
	free(want);
	for (size_t k = 0; k < nfresh; k++)
		free(fresh[k]);
	free(fresh);
}

/* The new wanted set of every slot, existing ones first: [0, *nwant). */
static int plan(struct kl_ws *ws, const char **sorted, size_t m, struct kl__strs **ret,
		size_t *nwant)
{
	size_t per = ws->lim.streams_per_conn ? ws->lim.streams_per_conn : 1, n = ws->nslots;
	struct kl__strs *want = calloc(ws->nslots + m / per + 1, sizeof(*want));

	if (!want)
		return -ENOMEM;
	for (size_t k = 0; k < ws->nslots; k++)
		for (size_t i = 0; i < ws->slots[k]->want.n; i++) {
			const char *x = ws->slots[k]->want.v[i];
			if (bsearch(&x, sorted, m, sizeof(*sorted), cmp_str) &&
			    kl__strs_add(&want[k], x) < 0)
				goto oom;
		}
	for (size_t i = 0; i < m; i++) {
		bool known = false;
		size_t k;
		for (k = 0; k < ws->nslots && !known; k++)
			known = kl__strs_has(&ws->slots[k]->want, sorted[i]);
		if (known)
			continue;
		k = pick_slot(ws, want, n, per);
		n += k == n;
		if (kl__strs_add(&want[k], sorted[i]) < 0)
			goto oom;
	}
	*ret = want;
	*nwant = n;
	return 0;
oom:
	free_plan(want, ws->nslots + m / per + 1, NULL, 0);
	return -ENOMEM;
}

int kl_ws_set_symbols(struct kl_ws *ws, char *const *symbols, size_t n)
{
	const char **sorted = malloc((n ? n : 1) * sizeof(*sorted));
	struct kl__strs *want = NULL;
	struct slot **fresh = NULL, **v;
	size_t m = 0, nwant = 0, nfresh = 0;
	int r = -ENOMEM;

	if (!sorted)
		return -ENOMEM;
	if (ws->closing)
		goto done;
	for (size_t i = 0; i < n; i++)
		sorted[i] = symbols[i];
	qsort(sorted, n, sizeof(*sorted), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (strlen(sorted[i]) >= SYMBOL_MAX) {
			kl_warn("ws", "not streaming '%.40s...': no symbol is that long",
				sorted[i]);
			continue;
		}
		if (!m || strcmp(sorted[m - 1], sorted[i]) != 0)
			sorted[m++] = sorted[i];
	}
	if (plan(ws, sorted, m, &want, &nwant) < 0)
		goto out;
	/* Everything that can fail comes before the first change. */
	if (nwant > ws->nslots) {
		if (!(fresh = calloc(nwant - ws->nslots, sizeof(struct slot *))))
			goto fail;
		nfresh = nwant - ws->nslots;
	}
	for (size_t k = 0; k < nfresh; k++)
		if (!(fresh[k] = calloc(1, sizeof(struct slot))))
			goto fail;
	if (nfresh && !(v = realloc(ws->slots, nwant * sizeof(struct slot *))))
		goto fail;
	if (nfresh)
		ws->slots = v;
	for (size_t k = 0; k < nfresh; k++) {
		struct slot *s = fresh[k];
		s->ws = ws;
		uv_timer_init(ws->loop, &s->reconnect);
		uv_timer_init(ws->loop, &s->silence);
		uv_timer_init(ws->loop, &s->pace);
		s->reconnect.data = s->silence.data = s->pace.data = s;
		ws->slots[ws->nslots + k] = s;
	}
	for (size_t k = 0; k < nwant; k++) {
		struct slot *s = ws->slots[k];
		kl__strs_free(&s->want);
		s->want = want[k];
		want[k] = (struct kl__strs){0};
		for (size_t i = s->refused.n; i-- > 0;)
			if (!kl__strs_has(&s->want, s->refused.v[i]))
				kl__strs_del(&s->refused, s->refused.v[i]);
		for (size_t i = s->single.n; i-- > 0;)
			if (!kl__strs_has(&s->want, s->single.v[i]))
				kl__strs_del(&s->single, s->single.v[i]);
	}
	ws->nslots = nwant;
	free(fresh);
	fresh = NULL;
	nfresh = 0;
	for (size_t k = 0; k < ws->nslots; k++)
		kl__ws_sync(ws->slots[k]);
done:
	r = 0;
fail:
	free_plan(want, nwant, fresh, nfresh);
out:
	free(sorted);
	return r;
}
