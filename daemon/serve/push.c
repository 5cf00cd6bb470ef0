/*
 * The live push: a websocket (protocol "klined-live") whose client sends
 * a symbol's name and then gets today's candle of that symbol each time
 * it changes. The tick timer looks after each commit of the consumer
 * (and every FORCE_TICKS ticks anyway); a frame is built once per change
 * and written to every subscriber that has not had it.
 */
#include "api.h"
#include "http_int.h"

#include "httpq.h"
#include "metrics.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FORCE_TICKS 8 /* re-read at least this often (REST-only days move too) */

/*
 * Today's row of symbol @p i as the page wants it, with the newest event
 * time and the backfill's progress: a new frame (generation) only when
 * any of them changed, with the lag since the event added at that moment.
 */
static void refresh(struct kl_http *http, size_t i)
{
	const char *sym = http->syms[i];
	struct live *l = &http->live[i];
	int64_t et = kl_metrics_event_time(sym);
	json_t *rows = NULL, *j;
	struct timespec ts;
	char *key, *s;

	if (kl_api_daily(http->st, sym, 1, false, &rows) < 0)
		return;
	j = json_pack("{s:s, s:O?, s:o, s:o}", "symbol", sym, "row", json_array_get(rows, 0),
		      "event_time", et < 0 ? json_null() : json_integer(et), "backfill",
		      kl__api_backfill_json());
	json_decref(rows);
	key = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
	if (!key || (l->key && !strcmp(l->key, key))) {
		free(key);
		json_decref(j);
		return;
	}
	free(l->key);
	l->key = key;
	clock_gettime(CLOCK_REALTIME, &ts);
	json_object_set_new(
	    j, "lag_ms",
	    et < 0 ? json_null()
		   : json_integer((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - et));
	s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15));
	json_decref(j);
	if (!s)
		return;
	free(l->frame);
	l->frame = s;
	l->len = strlen(s);
	l->gen++;
}

/* Found by name: the protocol table is http.c's. */
static const struct lws_protocols *live_protocol(struct kl_http *http)
{
	return lws_vhost_name_to_protocol(http->vhost, "klined-live");
}

void kl__push_tick(uv_timer_t *t)
{
	struct kl_http *http = t->data;
	uint64_t c = kl_metrics_commits();
	bool any = false;

	if (c == http->commits_seen && ++http->ticks < FORCE_TICKS)
		return;
	http->commits_seen = c;
	http->ticks = 0;
	for (size_t i = 0; i < http->nsyms; i++) {
		if (http->live[i].wanted) {
			refresh(http, i);
			any = true;
		}
	}
	if (any)
		lws_callback_on_writable_all_protocol(http->ctx, live_protocol(http));
}

static int live_send(struct lws *wsi, struct pss *pss, struct kl_http *http)
{
	struct live *l;
	uint8_t *buf;
	int n;

	if (pss->sub >= 0 && pss->symgen != http->symgen)
		pss->sub = -1; /* the list changed: the page subscribes again */
	if (pss->sub < 0)
		return 0;
	l = &http->live[pss->sub];
	if (!l->frame || pss->gen == l->gen)
		return 0;
	buf = malloc(LWS_PRE + l->len);
	if (!buf)
		return -1;
	memcpy(buf + LWS_PRE, l->frame, l->len);
	n = lws_write(wsi, buf + LWS_PRE, l->len, LWS_WRITE_TEXT);
	free(buf);
	if (n < (int)l->len)
		return -1;
	pss->gen = l->gen;
	return 0;
}

int kl__push_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		      size_t len)
{
	struct pss *pss = user;
	struct kl_http *http = lws_context_user(lws_get_context(wsi));
	int i;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		pss->sub = -1;
		break;
	case LWS_CALLBACK_RECEIVE:
		/* A subscription is the symbol's name: anything else is ignored. */
		if (!http || http->closing || len > LIVE_RX_MAX || lws_frame_is_binary(wsi))
			break;
		i = kl_httpq_symbol(in, len, http->syms, http->nsyms);
		if (i < 0)
			break;
		pss->sub = i;
		pss->symgen = http->symgen;
		pss->gen = 0;
		if (!http->live[i].wanted) {
			http->live[i].wanted = true;
			refresh(http, (size_t)i);
		}
		lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!http || http->closing)
			break;
		return live_send(wsi, pss, http);
	default:
		break;
	}
	return 0;
}
