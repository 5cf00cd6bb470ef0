/*
 * Kline events (event.h). jansson allocates every member of every event
 * (~6-9 us each, the consumer's largest cost at 1,500 symbols); the scan
 * below reads the shape Binance sends in one pass without allocating, and
 * says "unsure" at anything it does not fully understand, which jansson
 * then reads, so the scan never has to be a JSON parser.
 */
#include "event.h"

#include <string.h>

static bool valid_symbol(const char *s, size_t n)
{
	if (n < 2 || n > 20)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
			return false;
	}
	return true;
}

/* As strcmp(v, lit) == 0 on jansson's NUL-terminated strings. */
static bool str_is(const struct kl_jval *v, const char *lit)
{
	size_t m;

	if (v->type != KL_J_STRING)
		return false;
	m = strnlen(v->s, v->len);
	return m == strlen(lit) && memcmp(v->s, lit, m) == 0;
}

enum kl_verdict kl_event_judge(const struct kl_evview *v, struct kl_event *ev)
{
	kl_i128 *const dec[KL_EV_NDEC] = {&ev->k.open,	     &ev->k.high,	&ev->k.low,
					  &ev->k.close,	     &ev->k.volume,	&ev->k.quote_volume,
					  &ev->k.taker_base, &ev->k.taker_quote};

	if (!v->object || !v->k_object || !str_is(&v->e, "kline") || v->s.type != KL_J_STRING ||
	    !valid_symbol(v->s.s, v->s.len) || !str_is(&v->i, "1m") ||
	    (v->x.type != KL_J_TRUE && v->x.type != KL_J_FALSE))
		return KL_KLINE_EVENT;
	if (v->t.type != KL_J_INT || v->T.type != KL_J_INT || v->E.type != KL_J_INT || v->t.i < 0 ||
	    v->E.i < 0)
		return KL_KLINE_TIME;
	memcpy(ev->symbol, v->s.s, v->s.len);
	ev->symbol[v->s.len] = '\0';
	ev->event_time = v->E.i;
	ev->closed = v->x.type == KL_J_TRUE;
	ev->k.open_time = v->t.i;
	ev->k.close_time = v->T.i;
	for (size_t j = 0; j < KL_EV_NDEC; j++) {
		enum kl_verdict r = v->dec[j].type == KL_J_STRING
					? kl_kline_dec_verdict(v->dec[j].s, v->dec[j].len, dec[j])
					: KL_KLINE_DECIMAL;
		if (r != KL_KLINE_OK)
			return r;
	}
	if (v->n.type != KL_J_INT || v->n.i < 0)
		return KL_KLINE_TRADES;
	ev->k.trades = v->n.i;
	return KL_KLINE_OK;
}

/* ---- jansson's road ---------------------------------------------------- */

static struct kl_jval jval(const json_t *j)
{
	struct kl_jval v = {.type = KL_J_NONE};

	if (!j)
		return v;
	if (json_is_string(j))
		v = (struct kl_jval){KL_J_STRING, json_string_value(j), json_string_length(j), 0};
	else if (json_is_integer(j))
		v = (struct kl_jval){KL_J_INT, NULL, 0, json_integer_value(j)};
	else if (json_is_true(j))
		v.type = KL_J_TRUE;
	else if (json_is_false(j))
		v.type = KL_J_FALSE;
	else
		v.type = KL_J_OTHER;
	return v;
}

static const char dec_keys[KL_EV_NDEC] = {'o', 'h', 'l', 'c', 'v', 'q', 'V', 'Q'};

enum kl_verdict kl_event_from_json(const json_t *data, struct kl_event *ev)
{
	const json_t *k = json_object_get(data, "k");
	struct kl_evview v = {.object = json_is_object(data), .k_object = json_is_object(k)};

	v.e = jval(json_object_get(data, "e"));
	v.E = jval(json_object_get(data, "E"));
	v.s = jval(json_object_get(data, "s"));
	v.t = jval(json_object_get(k, "t"));
	v.T = jval(json_object_get(k, "T"));
	v.i = jval(json_object_get(k, "i"));
	v.x = jval(json_object_get(k, "x"));
	v.n = jval(json_object_get(k, "n"));
	for (size_t j = 0; j < KL_EV_NDEC; j++) {
		char key[2] = {dec_keys[j], '\0'};
		v.dec[j] = jval(json_object_get(k, key));
	}
	return kl_event_judge(&v, ev);
}

/* ---- the scan ---------------------------------------------------------- */

struct scan {
	const char *t;
	size_t n, p;
	unsigned seen; /* members that matter, once each (jansson keeps the last) */
};

static void skip_ws(struct scan *sc)
{
	while (sc->p < sc->n && (sc->t[sc->p] == ' ' || sc->t[sc->p] == '\t' ||
				 sc->t[sc->p] == '\n' || sc->t[sc->p] == '\r'))
		sc->p++;
}

/* A string of printable ASCII without escapes; anything else is for jansson. */
static bool scan_string(struct scan *sc, const char **s, size_t *len)
{
	size_t a = ++sc->p;

	while (sc->p < sc->n) {
		unsigned char c = (unsigned char)sc->t[sc->p];
		if (c == '"') {
			*s = sc->t + a;
			*len = sc->p++ - a;
			return true;
		}
		if (c == '\\' || c < 0x20 || c >= 0x7f)
			return false;
		sc->p++;
	}
	return false;
}

/* -?(0|[1-9][0-9]*) of at most 18 digits; a fraction or exponent is jansson's (a real). */
static bool scan_int(struct scan *sc, int64_t *ret)
{
	bool neg = sc->t[sc->p] == '-';
	size_t a = sc->p += neg, digits = 0;
	int64_t v = 0;

	while (sc->p < sc->n && sc->t[sc->p] >= '0' && sc->t[sc->p] <= '9') {
		if (++digits > 18)
			return false;
		v = v * 10 + (sc->t[sc->p++] - '0');
	}
	if (!digits || (sc->t[a] == '0' && digits > 1))
		return false;
	if (sc->p < sc->n && (sc->t[sc->p] == '.' || sc->t[sc->p] == 'e' || sc->t[sc->p] == 'E'))
		return false;
	*ret = neg ? -v : v;
	return true;
}

static bool scan_word(struct scan *sc, const char *w)
{
	size_t m = strlen(w);

	if (sc->n - sc->p < m || memcmp(sc->t + sc->p, w, m) != 0)
		return false;
	sc->p += m;
	return true;
}

/* A scalar value; objects and arrays are not scalars. */
static bool scan_scalar(struct scan *sc, struct kl_jval *v)
{
	char c = '\0';

	if (sc->p < sc->n)
		c = sc->t[sc->p];
	*v = (struct kl_jval){.type = KL_J_OTHER};
	if (c == '"') {
		v->type = KL_J_STRING;
		return scan_string(sc, &v->s, &v->len);
	}
	if (c == '-' || (c >= '0' && c <= '9')) {
		v->type = KL_J_INT;
		return scan_int(sc, &v->i);
	}
	if (c == 't' && scan_word(sc, "true")) {
		v->type = KL_J_TRUE;
		return true;
	}
	if (c == 'f' && scan_word(sc, "false")) {
		v->type = KL_J_FALSE;
		return true;
	}
	return c == 'n' && scan_word(sc, "null");
}

/* The member @p key of the top level (@p in_k false) or of "k", or NULL. */
static struct kl_jval *slot(struct kl_evview *v, const char *key, size_t len, bool in_k,
			    unsigned *bit)
{
	static const char top[] = "eEsk", kk[] = "tTixnohlcvqVQ";
	const char *set = in_k ? kk : top;
	const char *at;

	if (len != 1 || !(at = strchr(set, key[0])) || !key[0])
		return NULL;
	*bit = 1u << ((unsigned)(at - set) + (in_k ? 4u : 0u));
	switch (in_k ? at - set + 4 : at - set) {
	case 0:
		return &v->e;
	case 1:
		return &v->E;
	case 2:
		return &v->s;
	case 3:
		return NULL; /* "k": an object, scan_member's */
	case 4:
		return &v->t;
	case 5:
		return &v->T;
	case 6:
		return &v->i;
	case 7:
		return &v->x;
	case 8:
		return &v->n;
	default:
		return &v->dec[at - set - 5];
	}
}

static bool scan_object(struct scan *sc, struct kl_evview *v, bool in_k);

static bool scan_member(struct scan *sc, struct kl_evview *v, bool in_k)
{
	const char *key;
	size_t len;
	unsigned bit = 0;
	struct kl_jval *dst, ignored;

	if (sc->p >= sc->n || sc->t[sc->p] != '"' || !scan_string(sc, &key, &len))
		return false;
	skip_ws(sc);
	if (sc->p >= sc->n || sc->t[sc->p++] != ':')
		return false;
	skip_ws(sc);
	dst = slot(v, key, len, in_k, &bit);
	if (bit && (sc->seen & bit))
		return false;
	sc->seen |= bit;
	if (!in_k && len == 1 && key[0] == 'k') {
		if (sc->p < sc->n && sc->t[sc->p] == '{')
			return scan_object(sc, v, true);
		v->k_object = false;
		return scan_scalar(sc, &ignored);
	}
	return scan_scalar(sc, dst ? dst : &ignored);
}

static bool scan_object(struct scan *sc, struct kl_evview *v, bool in_k)
{
	sc->p++; /* '{' */
	if (in_k)
		v->k_object = true;
	else
		v->object = true;
	skip_ws(sc);
	if (sc->p < sc->n && sc->t[sc->p] == '}') {
		sc->p++;
		return true;
	}
	for (;;) {
		if (!scan_member(sc, v, in_k))
			return false;
		skip_ws(sc);
		if (sc->p >= sc->n)
			return false;
		if (sc->t[sc->p] == '}') {
			sc->p++;
			return true;
		}
		if (sc->t[sc->p++] != ',')
			return false;
		skip_ws(sc);
	}
}

bool kl_event_scan(const char *text, size_t n, struct kl_evview *v)
{
	struct scan sc = {.t = text, .n = n};

	memset(v, 0, sizeof(*v));
	skip_ws(&sc);
	if (sc.p >= n || text[sc.p] != '{' || !scan_object(&sc, v, false))
		return false;
	skip_ws(&sc);
	return sc.p == n;
}

enum kl_verdict kl_event_parse(const char *text, size_t n, struct kl_event *ev)
{
	struct kl_evview v;
	json_t *j;
	enum kl_verdict r;

	if (kl_event_scan(text, n, &v))
		return kl_event_judge(&v, ev);
	j = json_loadb(text, n, 0, NULL);
	r = j ? kl_event_from_json(j, ev) : KL_KLINE_EVENT;
	json_decref(j);
	return r;
}
