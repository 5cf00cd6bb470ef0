/*
 * The exchange's policy, on top of libcurl multi driven by libuv
 * (rest_io.c):
 *
 *  1. No request is sent while a 429/418 Retry-After is in force.
 *  2. A request is sent only if the weight already used in this minute
 *     (the exchange's own X-MBX-USED-WEIGHT-1M, plus what is in flight)
 *     leaves room under the limit less a safety margin; otherwise it
 *     waits for the next minute window. The window is the wall clock's
 *     minute, as the exchange's is: a rate limit is about real time, not
 *     about the market's clock.
 *  3. Failures back off exponentially (0.5 s doubling to 30 s) with
 *     +-50% jitter, per request, forever: the daemon heals, it doesn't
 *     give up.
 *  4. Refusals only time cures (403 from the WAF, which may mean a rate
 *     limit was broken; 451 from a restricted region; -1003 "too many
 *     requests" and -1008 "server busy" bodies; a certificate that cannot
 *     be verified) pause every request, not just the one: 1 min doubling
 *     to 30 min with +-25% jitter, reset by the next 2xx. Hammering a WAF
 *     that already blocks us is how a 2-minute block becomes a 3-day ban.
 *     Pauses and Retry-After bans are reported to the owner (kl_rest_on_ban)
 *     so that they outlive a restart.
 */
#include "rest.h"

#include "rest_int.h"

#include "backoff.h"
#include "day.h"
#include "exchange.h"
#include "log.h"
#include "metrics.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static void dispatch(struct kl_rest *rest);

static int64_t wall_minute(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec / 60;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t ms_to_next_minute(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)(60 - ts.tv_sec % 60) * 1000 - (uint64_t)(ts.tv_nsec / 1000000) + 50;
}

static void req_free(struct req *q)
{
	if (!q)
		return;
	if (q->easy)
		curl_easy_cleanup(q->easy);
	free(q->body);
	free(q->path);
	free(q);
}

static void enqueue(struct kl_rest *rest, struct req *q, bool front)
{
	if (front) {
		q->next = rest->head;
		rest->head = q;
		if (!rest->tail)
			rest->tail = q;
	} else {
		q->next = NULL;
		if (rest->tail)
			rest->tail->next = q;
		else
			rest->head = q;
		rest->tail = q;
	}
	rest->stats.queued++;
}

void kl__rest_retry_later(struct kl_rest *rest, struct req *q, const char *why)
{
	uint64_t delay =
	    kl_backoff_ms(BACKOFF_FIRST_MS, BACKOFF_MAX_MS, q->attempt, 0.5, kl_backoff_uniform());

	q->attempt++;
	q->not_before = uv_now(rest->loop) + delay;
	rest->stats.retries++;
	kl_warn(rest->group, "GET %s: %s; retry %u in %.1f s", q->path, why, q->attempt,
		(double)delay / 1000.0);
	enqueue(rest, q, false);
}

/* Take a finished request off curl and decide its fate. */
static bool tls_refused(CURLcode res)
{
	return res == CURLE_PEER_FAILED_VERIFICATION || res == CURLE_SSL_CACERT_BADFILE ||
	       res == CURLE_SSL_CERTPROBLEM || res == CURLE_SSL_ISSUER_ERROR;
}

/* Stop every request for @p ms; the owner keeps the end across restarts. */
static void pause_all(struct kl_rest *rest, uint64_t ms, const char *why)
{
	uint64_t until;

	/* The loop's cached time may be stale by a page's parsing. */
	uv_update_time(rest->loop);
	until = uv_now(rest->loop) + ms;
	if (until <= rest->banned_until)
		return;
	rest->banned_until = until;
	rest->paused_wall = wall_ms() + (int64_t)ms;
	snprintf(rest->why, sizeof(rest->why), "%s", why);
	if (rest->on_ban)
		rest->on_ban(rest->ban_ud, rest->paused_wall, why);
}

int kl_rest_error_code(const struct kl_rest_reply *r, char *msg, size_t n)
{
	return kl_exchange_error(r->status, r->body, r->len, msg, n);
}

/* 403, 451, and 4xx bodies {"code":-1003} or {"code":-1008}: only time cures them. */
static bool refusal(long status, const char *body, size_t len, int *code)
{
	struct kl_rest_reply r = {.status = status, .body = body, .len = len};

	*code = 0;
	if (status == 403 || status == 451)
		return true;
	if (status < 400 || status >= 500 || !body)
		return false;
	*code = kl_rest_error_code(&r, NULL, 0);
	return *code == -1003 || *code == -1008;
}

static void refuse(struct kl_rest *rest, struct req *q, const char *why, bool tls)
{
	uint64_t delay = kl_backoff_ms(rest->refused_first_ms, REFUSED_MAX_MS, rest->refusals, 0.25,
				       kl_backoff_uniform());
	char at[21], line[CURL_ERROR_SIZE + 160];

	rest->stats.refused++;
	if (q->epoch != rest->epoch) {
		/* Sent before the pause began: the same refusal, not a new one. */
		kl_metrics_rest_refused(1, 0, rest->paused_wall);
		kl_warn("rest", "GET %s: %s%s; waits for the pause under way", q->path, why,
			tls ? " (certificate)" : "");
		enqueue(rest, q, true);
		return;
	}
	rest->refusals++;
	rest->epoch++;
	snprintf(line, sizeof(line), "%s%s", why,
		 tls ? ": the exchange's certificate cannot be verified (a private CA goes in "
		       "[exchange] ca_file)"
		     : "");
	pause_all(rest, delay, line);
	kl_metrics_rest_refused(1, (double)delay / 1000.0, rest->paused_wall);
	kl_time_format(wall_ms() + (int64_t)delay, at);
	if (tls)
		kl_err("rest", "GET %s: %s; every request waits %.1f s, next attempt at %s",
		       q->path, line, (double)delay / 1000.0, at);
	else
		kl_warn("rest",
			"GET %s: %s; every request waits %.1f s (refusal %u in a row), next "
			"attempt at %s",
			q->path, line, (double)delay / 1000.0, rest->refusals, at);
	enqueue(rest, q, true);
}

void kl__rest_deliver(struct kl_rest *rest, struct req *q, const struct kl_rest_reply *reply)
{
	enum kl_rest_verdict v;

	rest->depth++;
	v = q->cb(q->ud, reply);
	rest->depth--;
	if (v == KL_REST_RETRY && !rest->closing)
		kl__rest_retry_later(rest, q, "bad response body");
	else
		req_free(q);
}

static void finish(struct kl_rest *rest, struct req *q, CURLcode res)
{
	struct kl_rest_reply reply = {0};
	long status = 0;
	char why[CURL_ERROR_SIZE + 64];

	for (struct req **pp = &rest->inflight; *pp; pp = &(*pp)->next) {
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	}
	rest->stats.inflight--;
	if (q->window == rest->used_window) {
		rest->inflight_weight -= q->weight;
		if (q->used_weight > rest->used)
			rest->used = q->used_weight;
	}
	curl_multi_remove_handle(rest->multi, q->easy);
	curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status);
	if (rest->plain) {
		kl__rest_plain_finish(rest, q, res, status);
		return;
	}
	kl_metrics_rest(res == CURLE_OK ? status : 0);
	kl_metrics_rest_weight(rest->used, rest->weight_limit);
	if (res != CURLE_OK) {
		if (q->too_large)
			snprintf(why, sizeof(why), "response body over %u MiB refused",
				 BODY_MAX >> 20);
		else
			snprintf(why, sizeof(why), "%s",
				 q->errbuf[0] ? q->errbuf : curl_easy_strerror(res));
		if (tls_refused(res)) {
			/* A certificate doesn't become trustworthy by retrying, but an operator
			 * fixes ca_file or a proxy without us exiting into a restart loop. */
			refuse(rest, q, why, true);
			return;
		}
		kl__rest_retry_later(rest, q, why);
		return;
	}
	if (status == 429 || status == 418) {
		uint64_t ban =
		    q->retry_after_ms >= 0 ? (uint64_t)q->retry_after_ms : BAN_DEFAULT_MS;
		/* A margin for the exchange's clock granularity. */
		snprintf(why, sizeof(why), "HTTP %ld Retry-After %.0f s", status,
			 (double)ban / 1000.0);
		pause_all(rest, ban + BAN_MARGIN_MS, why);
		rest->stats.throttled++;
		kl_metrics_retry_after((double)ban / 1000.0);
		kl_warn("rest", "GET %s: HTTP %ld, waiting %.1f s as Retry-After asks", q->path,
			status, (double)ban / 1000.0);
		enqueue(rest, q, true);
		return;
	}
	if (status >= 500 || status < 200) {
		snprintf(why, sizeof(why), "HTTP %ld", status);
		kl__rest_retry_later(rest, q, why);
		return;
	}
	{
		int code;
		if (refusal(status, q->body, q->len, &code)) {
			if (code)
				snprintf(why, sizeof(why), "HTTP %ld code %d", status, code);
			else
				snprintf(why, sizeof(why), "HTTP %ld%s", status,
					 status == 451 ? " (a restricted location)"
						       : " (the exchange's firewall)");
			refuse(rest, q, why, false);
			return;
		}
	}
	if (status < 300) {
		rest->refusals = 0;
		if (rest->paused_wall) {
			rest->paused_wall = 0;
			kl_metrics_rest_refused(0, 0, 0);
		}
	}
	reply.status = status;
	reply.body = q->body ? q->body : "";
	reply.len = q->len;
	kl__rest_deliver(rest, q, &reply);
}

static void teardown(struct kl_rest *rest);

void kl_rest_check(struct kl_rest *rest)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(rest->multi, &left))) {
		struct req *q = NULL;
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&q);
		finish(rest, q, m->data.result);
		if (rest->closing) {
			if (rest->depth == 0)
				teardown(rest);
			return;
		}
	}
	dispatch(rest);
}

static int start(struct kl_rest *rest, struct req *q)
{
	size_t n = strlen(rest->base) + strlen(q->path) + 1;
	char *url = malloc(n);
	CURL *e;

	if (!url)
		return -ENOMEM;
	snprintf(url, n, "%s%s", rest->base, q->path);
	if (!q->easy && !(q->easy = curl_easy_init())) {
		free(url);
		return -ENOMEM;
	}
	e = q->easy;
	curl_easy_reset(e);
	q->len = 0;
	q->used_weight = -1;
	q->retry_after_ms = -1;
	q->errbuf[0] = '\0';
	q->too_large = false;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, q);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, kl_rest_io_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, kl_rest_io_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, q);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, q->errbuf);
	if (rest->plain) {
		/* A file takes as long as the link needs; a stalled one is given up. */
		long secs = (long)(rest->conf->rest_timeout_ms / 1000);
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1024L);
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, secs > 0 ? secs : 1L);
	} else {
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)rest->conf->rest_timeout_ms);
	}
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)rest->conf->rest_timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_USERAGENT, "klined/" KLINED_VERSION);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (rest->conf->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, rest->conf->ca_file);
	free(url); /* curl copies the URL */
	q->window = wall_minute();
	q->epoch = rest->epoch;
	if (curl_multi_add_handle(rest->multi, e) != CURLM_OK)
		return -EIO;
	q->next = rest->inflight;
	rest->inflight = q;
	rest->stats.inflight++;
	rest->stats.requests++;
	rest->inflight_weight += q->weight;
	return 0;
}

static void on_wake(uv_timer_t *t)
{
	dispatch(t->data);
}

static void dispatch(struct kl_rest *rest)
{
	uint64_t now = uv_now(rest->loop), wake = UINT64_MAX;
	int64_t window = wall_minute(), budget;
	struct req **pp = &rest->head, *prev = NULL;

	if (rest->closing)
		return;
	if (window != rest->used_window) {
		rest->used_window = window;
		rest->used = 0;
		rest->inflight_weight = 0;
	}
	/* Keep 5% of the limit for requests we can't see (other clients on this IP). */
	budget = rest->weight_limit - rest->weight_limit / 20;
	if (rest->banned_until > now) {
		wake = rest->banned_until;
		goto arm;
	}
	while (*pp && rest->stats.inflight < (size_t)rest->concurrency) {
		struct req *q = *pp;
		if (q->not_before > now) {
			if (q->not_before < wake)
				wake = q->not_before;
			prev = q;
			pp = &q->next;
			continue;
		}
		if (rest->used + rest->inflight_weight + q->weight > budget) {
			uint64_t w = now + ms_to_next_minute();
			if (w < wake)
				wake = w;
			break;
		}
		*pp = q->next;
		if (rest->tail == q)
			rest->tail = prev;
		rest->stats.queued--;
		if (start(rest, q) < 0) {
			kl_err("rest", "GET %s: cannot start request", q->path);
			kl__rest_retry_later(rest, q, "cannot start request");
		}
	}
arm:
	if (wake != UINT64_MAX)
		uv_timer_start(&rest->wake_timer, on_wake, wake > now ? wake - now : 0, 0);
}

int kl_rest_new(uv_loop_t *loop, const struct kl_conf *conf, struct kl_rest **ret)
{
	return kl__rest_new(loop, conf, conf->rest_url, (unsigned)conf->rest_concurrency, ret);
}

int kl__rest_new(uv_loop_t *loop, const struct kl_conf *conf, const char *base,
		 unsigned concurrency, struct kl_rest **ret)
{
	struct kl_rest *rest = calloc(1, sizeof(*rest));

	if (!rest)
		return -ENOMEM;
	rest->loop = loop;
	rest->conf = conf;
	rest->group = "rest";
	rest->concurrency = concurrency;
	rest->weight_limit = conf->rest_weight_limit ? conf->rest_weight_limit : DEFAULT_WEIGHT_MAX;
	rest->used_window = wall_minute();
	rest->refused_first_ms = conf->rest_refusal_pause_ms > 0
				     ? (uint64_t)conf->rest_refusal_pause_ms
				     : REFUSED_FIRST_MS;
	rest->base = strdup(base);
	rest->multi = curl_multi_init();
	if (!rest->base || !rest->multi) {
		curl_multi_cleanup(rest->multi);
		free(rest->base);
		free(rest);
		return -ENOMEM;
	}
	curl_multi_setopt(rest->multi, CURLMOPT_SOCKETFUNCTION, kl_rest_io_socket);
	curl_multi_setopt(rest->multi, CURLMOPT_SOCKETDATA, rest);
	curl_multi_setopt(rest->multi, CURLMOPT_TIMERFUNCTION, kl_rest_io_timer);
	curl_multi_setopt(rest->multi, CURLMOPT_TIMERDATA, rest);
	curl_multi_setopt(rest->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)concurrency);
	uv_timer_init(loop, &rest->curl_timer);
	uv_timer_init(loop, &rest->wake_timer);
	rest->curl_timer.data = rest;
	rest->wake_timer.data = rest;
	*ret = rest;
	return 0;
}

static void drop_list(struct kl_rest *rest, struct req *q, bool inflight)
{
	while (q) {
		struct req *next = q->next;
		struct kl_rest_reply cancelled = {.cancelled = true, .body = ""};
		if (inflight)
			curl_multi_remove_handle(rest->multi, q->easy);
		q->cb(q->ud, &cancelled);
		req_free(q);
		q = next;
	}
}

static void teardown(struct kl_rest *rest)
{
	drop_list(rest, rest->inflight, true);
	drop_list(rest, rest->head, false);
	rest->inflight = rest->head = rest->tail = NULL;
	curl_multi_cleanup(rest->multi); /* may close sockets through kl_rest_io_socket */
	rest->multi = NULL;
	rest->nclosing += 2;
	uv_close((uv_handle_t *)&rest->curl_timer, kl_rest_io_closed);
	uv_close((uv_handle_t *)&rest->wake_timer, kl_rest_io_closed);
}

void kl_rest_free(struct kl_rest *rest)
{
	if (!rest || rest->closing)
		return;
	rest->closing = true;
	if (rest->depth == 0)
		teardown(rest);
}

uv_loop_t *kl_rest_loop(const struct kl_rest *rest)
{
	return rest->loop;
}

void kl_rest_set_weight_limit(struct kl_rest *rest, int64_t limit)
{
	if (!rest->conf->rest_weight_limit && limit > 0)
		rest->weight_limit = limit;
}

int kl_rest_get_in(struct kl_rest *rest, const char *path, int weight, uint64_t delay_ms,
		   kl_rest_cb cb, void *ud)
{
	struct req *q = calloc(1, sizeof(*q));

	if (!q || !(q->path = strdup(path))) {
		free(q);
		return -ENOMEM;
	}
	q->weight = weight;
	q->cb = cb;
	q->ud = ud;
	q->not_before = uv_now(rest->loop) + delay_ms;
	enqueue(rest, q, false);
	/* Dispatch from the loop, never from inside the caller. */
	uv_timer_start(&rest->wake_timer, on_wake, 0, 0);
	return 0;
}

int kl_rest_get(struct kl_rest *rest, const char *path, int weight, kl_rest_cb cb, void *ud)
{
	return kl_rest_get_in(rest, path, weight, 0, cb, ud);
}

void kl_rest_stats(const struct kl_rest *rest, struct kl_rest_stats *ret)
{
	uint64_t now = uv_now(rest->loop);

	*ret = rest->stats;
	ret->used_weight = rest->used;
	ret->weight_limit = rest->weight_limit;
	ret->paused_ms = rest->banned_until > now ? rest->banned_until - now : 0;
	ret->why = rest->why;
}

void kl_rest_on_ban(struct kl_rest *rest, kl_rest_ban_cb cb, void *ud)
{
	rest->on_ban = cb;
	rest->ban_ud = ud;
}

void kl_rest_pause_until(struct kl_rest *rest, int64_t wall_until_ms, const char *why)
{
	int64_t left = wall_until_ms - wall_ms();
	char at[21];

	if (left <= 0)
		return;
	if (left > 3 * 86400000LL) /* Binance's longest ban; a clock jumped back otherwise */
		left = 3 * 86400000LL;
	uv_update_time(rest->loop);
	rest->banned_until = uv_now(rest->loop) + (uint64_t)left;
	rest->paused_wall = wall_ms() + left;
	snprintf(rest->why, sizeof(rest->why), "%s", why);
	kl_metrics_rest_refused(0, 0, rest->paused_wall);
	kl_time_format(rest->paused_wall, at);
	kl_warn("rest", "%s: no request before %s (%.0f s)", why, at, (double)left / 1000.0);
}
