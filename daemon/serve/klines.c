/*
 * Candles of any interval and the forecast, as JSON. Bounds per request
 * (interval.h): at most KL_KLINES_LIMIT_MAX candles and
 * KL_KLINES_SPAN_MAX of minutes read, so one request holds the daemon's
 * loop a bounded time whatever it asks. Values are the doubles nearest
 * to the exact 128-bit aggregates, printed with 17 digits (they round-trip).
 */
#include "klines.h"

#include "dec.h"
#include "httpq.h"
#include "interval.h"
#include "log.h"
#include "store_klines.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct kl_klines {
	const struct kl_conf *conf;
	struct kl_store_klines *sk; /* NULL until the first request that opens it */
	char *const *syms;	    /* the symbols served (borrowed: kl_klines_symbols) */
	size_t nsyms;
};

int kl_klines_new(const struct kl_conf *conf, struct kl_klines **ret)
{
	struct kl_klines *kk = calloc(1, sizeof(*kk));

	if (!kk)
		return -ENOMEM;
	kk->conf = conf;
	kk->syms = conf->symbols;
	kk->nsyms = conf->nsymbols;
	*ret = kk;
	return 0;
}

struct kl_klines *kl_klines_free(struct kl_klines *kk)
{
	if (kk) {
		kl_store_klines_close(kk->sk);
		free(kk);
	}
	return NULL;
}

/* *body = the compact dump of @p j (consumed). @return 0 or -ENOMEM. */
static int dump(json_t *j, unsigned status, unsigned *st, char **body, size_t *len)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;

	json_decref(j);
	if (!s)
		return -ENOMEM;
	*st = status;
	*body = s;
	*len = strlen(s);
	return 0;
}

static int error(unsigned status, const char *msg, unsigned *st, char **body, size_t *len)
{
	return dump(json_pack("{s:s}", "error", msg), status, st, body, len);
}

static int store(struct kl_klines *kk)
{
	char err[256];
	int r;

	if (kk->sk)
		return 0;
	r = kl_store_klines_open(kk->conf->db_path, &kk->sk, err, sizeof(err));
	if (r < 0)
		kl_warn("http", "/api/klines: %s", err);
	return r;
}

static json_t *candle_json(const struct kl_candle *c)
{
	return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:b}", "open_time",
			 (json_int_t)c->open_time, "open", kl_dec_double(c->open), "high",
			 kl_dec_double(c->high), "low", kl_dec_double(c->low), "close",
			 kl_dec_double(c->close), "volume", kl_dec_double(c->volume),
			 "quote_volume", kl_dec_double(c->quote_volume), "trades",
			 (json_int_t)c->trades, "closed", c->closed);
}

static void range(void *ud, int64_t newest_end, int64_t *from, int64_t *to)
{
	kl_httpq_klines_range(ud, newest_end, from, to);
}

static int klines(struct kl_klines *kk, const char *query, unsigned *st, char **body, size_t *len)
{
	struct kl_httpq_klines q;
	struct kl_candles c = {0};
	json_t *rows = NULL;
	int64_t newest_end;
	const char *sym;
	char err[128];
	int r;

	if (kl_httpq_klines(query, kk->syms, kk->nsyms, &q, err, sizeof(err)) < 0)
		return error(400, err, st, body, len);
	sym = kk->syms[q.symbol];
	if (kl_candles_init(&c, q.period, (size_t)q.limit) < 0)
		return -ENOMEM;
	r = store(kk);
	if (r == 0)
		r = kl_store_klines_read(kk->sk, sym, range, &q, &c, &newest_end);
	if (r < 0 && r != -ENOENT) {
		kl_warn("http", "/api/klines: cannot read the store: %s",
			kk->sk ? kl_store_klines_errmsg(kk->sk) : "not open");
		kl_candles_clear(&c);
		return error(503, "cannot read the store", st, body, len);
	}
	/* A configured symbol not stored yet (its backfill has not begun): no candles. */
	rows = json_array();
	for (size_t i = 0; rows && i < c.n; i++) {
		if (json_array_append_new(rows, candle_json(&c.v[i])) < 0) {
			json_decref(rows);
			rows = NULL;
		}
	}
	kl_candles_clear(&c);
	if (!rows)
		return -ENOMEM;
	return dump(json_pack("{s:s, s:s, s:o}", "symbol", sym, "interval",
			      kl_interval_name(q.period), "klines", rows),
		    200, st, body, len);
}

struct forecast_acc {
	json_t *rows;
	int64_t made_at;
};

static void forecast_row(void *ud, const struct kl_forecast_row *row)
{
	struct forecast_acc *a = ud;

	if (row->made_at > a->made_at)
		a->made_at = row->made_at;
	json_array_append_new(a->rows, json_pack("{s:s, s:f, s:f, s:f}", "ds", row->ds, "yhat",
						 row->yhat, "yhat_lower", row->yhat_lower,
						 "yhat_upper", row->yhat_upper));
}

/* /api/forecast?symbol=S&days=N: the first N rows of the forecast table (none: empty). */
static int forecast(struct kl_klines *kk, const char *query, unsigned *st, char **body, size_t *len)
{
	struct forecast_acc a = {NULL, 0};
	struct kl_httpq_daily q;
	const char *sym;
	char err[128];
	int r;

	if (kl_httpq_daily(query, kk->syms, kk->nsyms, &q, err, sizeof(err)) < 0)
		return error(400, err, st, body, len);
	sym = kk->syms[q.symbol];
	a.rows = json_array();
	if (!a.rows)
		return -ENOMEM;
	r = store(kk);
	if (r == 0)
		r = kl_store_klines_forecast(kk->sk, sym, (size_t)q.days, forecast_row, &a);
	if (r < 0) {
		json_decref(a.rows);
		kl_warn("http", "/api/forecast: cannot read the store: %s",
			kk->sk ? kl_store_klines_errmsg(kk->sk) : "not open");
		return error(503, "cannot read the store", st, body, len);
	}
	return dump(json_pack("{s:s, s:o, s:o}", "symbol", sym, "made_at",
			      a.made_at ? json_integer(a.made_at) : json_null(), "forecast",
			      a.rows),
		    200, st, body, len);
}

void kl_klines_symbols(struct kl_klines *kk, char *const *symbols, size_t n)
{
	kk->syms = symbols;
	kk->nsyms = n;
}

int kl_klines_get(struct kl_klines *kk, const char *uri, const char *query, unsigned *status,
		  char **body, size_t *len)
{
	if (!strcmp(uri, "/api/klines"))
		return klines(kk, query, status, body, len);
	if (!strcmp(uri, "/api/forecast"))
		return forecast(kk, query, status, body, len);
	return error(404, "no such page", status, body, len);
}
