/*
 * The JSON API (/api/daily, /api/status), /metrics, and the JSON of the
 * store's reports: the store hands rows over as plain C (store.h), their
 * names and types in JSON are decided here. Invariant 1 of http.c holds:
 * a query reaches the store only as a configured symbol and a bounded
 * day count, validated by lib/httpq.c.
 */
#include "api.h"

#include "health.h"
#include "http_int.h"
#include "httpq.h"
#include "klines.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_TTL_MS 2000 /* /api/status walks every symbol's holes: cache it */

static const char *const daycols[] = {"open", "high", "low", "close", "volume", "quote_volume"};

static json_t *time_json(int64_t ms)
{
	char buf[21];

	kl_time_format(ms, buf);
	return json_string(buf);
}

/* One symbol's part of the status report, appended to the array @p ud. */
static int status_symbol(void *ud, const struct kl_store_symstat *s)
{
	json_t *sym = json_object();
	char day[11];

	if (!sym || json_array_append_new(ud, sym) < 0)
		return -ENOMEM;
	kl_day_format(s->start_ms, day);
	json_object_set_new(sym, "symbol", json_string(s->symbol));
	json_object_set_new(sym, "history_start", json_string(day));
	json_object_set_new(sym, "klines", json_integer(s->klines));
	json_object_set_new(sym, "newest_minute",
			    s->newest_ms < 0 ? json_null() : time_json(s->newest_ms));
	json_object_set_new(sym, "newest_minute_ms",
			    s->newest_ms < 0 ? json_null() : json_integer(s->newest_ms));
	json_object_set_new(sym, "holes", json_integer((json_int_t)s->holes));
	json_object_set_new(sym, "hole_minutes", json_integer(s->hole_minutes));
	json_object_set_new(sym, "outages", json_integer((json_int_t)s->outages));
	json_object_set_new(sym, "outage_minutes", json_integer(s->outage_minutes));
	json_object_set_new(sym, "days", json_integer(s->days));
	json_object_set_new(sym, "rejects", json_integer(s->rejects));
	if (s->has_last_day) {
		json_t *t =
		    json_pack("{s:s, s:f, s:f, s:s, s:s, s:s}", "day", s->last_day, "close",
			      s->close, "volume", s->volume, "source",
			      s->source == KL_DAY_BATCH	  ? "batch"
			      : s->source == KL_DAY_SPEED ? "speed"
							  : "fill",
			      "close_exact", s->close_exact, "volume_exact", s->volume_exact);
		json_object_set_new(sym, "last_day", t);
	} else {
		json_object_set_new(sym, "last_day", json_null());
	}
	return 0;
}

/* The consumer's positions as stored with the windows (the lag needs the broker). */
static json_t *consumer_json(struct kl_store *st, const char *topic)
{
	int32_t parts[256];
	int64_t next[256];
	int n = topic ? kl_store_get_offsets(st, topic, parts, next, 256) : 0;
	json_t *v = json_array();

	for (int i = 0; v && i < n; i++)
		json_array_append_new(v, json_pack("{s:i, s:I}", "partition", (int)parts[i],
						   "next_offset", (json_int_t)next[i]));
	return json_pack("{s:s?, s:o, s:n}", "topic", topic, "partitions", v ? v : json_array(),
			 "lag");
}

int kl_api_status(struct kl_store *st, const char *topic, json_t **ret)
{
	json_t *root = json_object(), *syms = json_array();
	int r, v = 0;

	if (!root || !syms) {
		r = -ENOMEM;
		goto out;
	}
	r = kl_store_status_each(st, status_symbol, syms);
	if (r < 0)
		goto out;
	kl_store_schema_version(st, &v);
	json_object_set_new(root, "schema_version", json_integer(v));
	json_object_set_new(root, "symbols", syms);
	json_object_set_new(root, "consumer", consumer_json(st, topic));
	syms = NULL;
out:
	json_decref(syms);
	if (r < 0)
		json_decref(root);
	else
		*ret = root;
	return r;
}

/* A REAL column as a JSON number, NULL as null. */
static json_t *real_json(const struct kl_store_dayrow *row, enum kl_store_daycol c)
{
	return row->null[c] ? json_null() : json_real(row->real[c]);
}

/* One `daily` row, appended to the array @p ud; "exact" when the row has it. */
static int daily_row(void *ud, const struct kl_store_dayrow *d)
{
	json_t *row = json_object(), *x;

	if (!row || json_array_append_new(ud, row) < 0)
		return -ENOMEM;
	json_object_set_new(row, "day", json_string(d->day));
	for (int c = 0; c < 6; c++)
		json_object_set_new(row, daycols[c], real_json(d, (enum kl_store_daycol)c));
	json_object_set_new(row, "trades", json_integer(d->trades));
	json_object_set_new(row, "source", json_string(d->source));
	json_object_set_new(row, "ma7", real_json(d, KL_DAYCOL_MA7));
	json_object_set_new(row, "ma30", real_json(d, KL_DAYCOL_MA30));
	if (!d->has_exact)
		return 0;
	x = json_object();
	for (int c = 0; x && c < 6; c++)
		json_object_set_new(x, daycols[c], json_string(d->exact[c]));
	json_object_set_new(row, "exact", x ? x : json_null());
	return 0;
}

int kl_api_daily(struct kl_store *st, const char *symbol, int64_t days, bool exact, json_t **ret)
{
	json_t *rows = json_array();
	int r;

	if (!rows)
		return -ENOMEM;
	r = kl_store_daily_each(st, symbol, days, exact, daily_row, rows);
	if (r < 0)
		json_decref(rows);
	else
		*ret = rows;
	return r;
}

int kl__api_daily(struct lws *wsi, struct pss *pss, struct kl_http *http)
{
	char q[KL_HTTPQ_QUERY_MAX + 2], err[128];
	struct kl_httpq_daily d;
	json_t *rows = NULL;
	const char *sym;
	int r;

	if (kl__http_query(wsi, q, sizeof(q)) < 0)
		return kl__http_respond_error(wsi, pss, 400, "query string too long");
	if (kl_httpq_daily(q, http->syms, http->nsyms, &d, err, sizeof(err)) < 0)
		return kl__http_respond_error(wsi, pss, 400, err);
	sym = http->syms[d.symbol];
	r = kl_api_daily(http->st, sym, d.days, d.exact, &rows);
	if (r < 0) {
		kl_warn("http", "/api/daily: cannot read the store: %s", kl_store_errmsg(http->st));
		return kl__http_respond_error(wsi, pss, 503, "cannot read the store");
	}
	return kl__http_respond_json(wsi, pss,
				     json_pack("{s:s, s:o}", "symbol", sym, "days", rows));
}

json_t *kl__api_backfill_json(void)
{
	int64_t done, total;
	double rate, eta;
	int running;

	kl_metrics_backfill_get(&done, &total, &rate, &eta, &running);
	return json_pack("{s:b, s:I, s:I, s:f, s:f}", "running", running, "done_minutes",
			 (json_int_t)done, "total_minutes", (json_int_t)total, "rows_per_second",
			 rate, "eta_seconds", eta);
}

/* What `klined status --json` prints, plus the configured symbols and the backfill. */
int kl__api_status(struct lws *wsi, struct pss *pss, struct kl_http *http)
{
	uint64_t now = uv_now(http->loop);
	json_t *j = NULL, *syms;
	char *s;

	if (!http->status || now - http->status_at >= STATUS_TTL_MS) {
		if (kl_api_status(http->st, http->conf->kafka_topic, &j) < 0) {
			kl_warn("http", "/api/status: cannot read the store: %s",
				kl_store_errmsg(http->st));
			return kl__http_respond_error(wsi, pss, 503, "cannot read the store");
		}
		syms = json_array();
		for (size_t i = 0; syms && i < http->nsyms; i++)
			json_array_append_new(syms, json_string(http->syms[i]));
		json_object_set_new(j, "configured_symbols", syms);
		json_object_set_new(j, "backfill", kl__api_backfill_json());
		{
			/* Live, from the running consumer: what the CLI cannot know. */
			int64_t lag = kl_metrics_consumer_lag_get();
			json_object_set_new(json_object_get(j, "consumer"), "lag",
					    lag < 0 ? json_null() : json_integer(lag));
		}
		json_object_set_new(j, "health", kl_health_json(http->conf));
		s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15));
		json_decref(j);
		if (!s)
			return kl__http_respond_error(wsi, pss, 500, "out of memory");
		free(http->status);
		http->status = s;
		http->status_len = strlen(s);
		http->status_at = now;
	}
	s = strdup(http->status);
	if (!s)
		return kl__http_respond_error(wsi, pss, 500, "out of memory");
	return kl__http_respond(wsi, pss, 200, "application/json", s, http->status_len);
}

int kl__api_metrics(struct lws *wsi, struct pss *pss, struct kl_http *http)
{
	char *s;
	size_t len;

	(void)http;
	if (kl_metrics_text(&s, &len) < 0)
		return kl__http_respond_error(wsi, pss, 500, "out of memory");
	return kl__http_respond(wsi, pss, 200, "text/plain; version=0.0.4; charset=utf-8", s, len);
}

static int klines_body(struct lws *wsi, struct pss *pss, struct kl_http *http, const char *uri)
{
	char q[KL_HTTPQ_QUERY_MAX + 2], *body;
	unsigned status;
	size_t len;

	if (kl__http_query(wsi, q, sizeof(q)) < 0)
		return kl__http_respond_error(wsi, pss, 400, "query string too long");
	if (!http->klines && kl_klines_new(http->conf, &http->klines) == 0)
		kl_klines_symbols(http->klines, http->syms, http->nsyms);
	if (!http->klines || kl_klines_get(http->klines, uri, q, &status, &body, &len) < 0)
		return kl__http_respond_error(wsi, pss, 500, "out of memory");
	return kl__http_respond(wsi, pss, status, "application/json", body, len);
}

int kl__api_klines(struct lws *wsi, struct pss *pss, struct kl_http *http)
{
	return klines_body(wsi, pss, http, "/api/klines");
}

int kl__api_forecast(struct lws *wsi, struct pss *pss, struct kl_http *http)
{
	return klines_body(wsi, pss, http, "/api/forecast");
}
