/*
 * Binance REST client on the libuv loop (libcurl multi). It owns the
 * exchange's rules so callers don't have to: request weight per minute
 * (X-MBX-USED-WEIGHT-1M against the limit), 429/418 Retry-After (no
 * request at all until it expires), and exponential backoff with jitter
 * for 5xx, timeouts, transport errors and bodies the caller finds bad.
 * 403, 451, -1003/-1008 bodies and unverifiable certificates pause every
 * request for minutes (growing), so callers only see final answers.
 */
#pragma once

#include "conf.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct kl_rest;

struct kl_rest_reply {
	long status;	  /* HTTP status; 0 after a transport error */
	const char *body; /* borrowed, NUL-terminated, valid during the callback */
	size_t len;
	bool cancelled; /* the client is being freed: release @p ud, nothing else */
};

/* What a callback tells the client to do with the request. */
enum kl_rest_verdict {
	KL_REST_DONE = 0,  /* finished, forget it */
	KL_REST_RETRY = 1, /* the body was bad: retry with backoff */
};

/**
 * Called once per request with a 2xx or a 4xx that retrying cannot fix
 * (-1121, -1100...): 429/418/403/451, -1003/-1008 bodies, 5xx, transport
 * and TLS errors are retried inside. @p r is borrowed.
 */
typedef enum kl_rest_verdict (*kl_rest_cb)(void *ud, const struct kl_rest_reply *r);

/**
 * Binance's error body {"code":-1121,"msg":"Invalid symbol."}: @return its
 * code, or 0; @p msg (room for @p n, may be 0) gets "text (code N)" or "HTTP S".
 */
int kl_rest_error_code(const struct kl_rest_reply *r, char *msg, size_t n);

/** @return 0 with *ret owned by the caller (kl_rest_free), or -errno. @p conf is borrowed. */
int kl_rest_new(uv_loop_t *loop, const struct kl_conf *conf, struct kl_rest **ret);

/**
 * A plain HTTP client on the same machinery, for another host (the
 * archives at @p base, copied): none of the exchange's policy (no weight,
 * no pauses); transport errors, 5xx and 429 are retried with backoff, at
 * most @p max_attempts times in all, then delivered (status 0 for a
 * transport error; the body is then the reason). Every other status is the
 * caller's to judge. At most @p concurrency requests at once; @p group
 * (static) names the log lines. @return as kl_rest_new.
 */
int kl_rest_new_plain(uv_loop_t *loop, const struct kl_conf *conf, const char *base,
		      const char *group, unsigned concurrency, unsigned max_attempts,
		      struct kl_rest **ret);

/**
 * Cancel every request (each callback runs once with cancelled set, so
 * it can free its @p ud) and free the client once its handles are closed
 * (the loop must run on). Safe from inside a callback. NULL is fine.
 */
void kl_rest_free(struct kl_rest *rest);

/** The loop @p rest runs on (borrowed). */
uv_loop_t *kl_rest_loop(const struct kl_rest *rest);

/** Set the request weight allowed per minute (the exchange's published limit). */
void kl_rest_set_weight_limit(struct kl_rest *rest, int64_t limit);

/**
 * Queue GET @p path (e.g. "/api/v3/klines?symbol=..."; copied) costing
 * @p weight. @p cb runs later, never from inside this call.
 * @return 0 or -ENOMEM.
 */
int kl_rest_get(struct kl_rest *rest, const char *path, int weight, kl_rest_cb cb, void *ud);

/** As kl_rest_get, but not sent before @p delay_ms from now (a caller's own backoff). */
int kl_rest_get_in(struct kl_rest *rest, const char *path, int weight, uint64_t delay_ms,
		   kl_rest_cb cb, void *ud);

/** Counters for progress lines and status. */
struct kl_rest_stats {
	uint64_t requests, retries, throttled; /* throttled: 429/418 answers */
	uint64_t refused;		       /* 403/451/-1003/-1008/TLS answers */
	int64_t used_weight, weight_limit;
	size_t queued, inflight;
	uint64_t paused_ms; /* left of a pause or ban: nothing is sent meanwhile */
	const char
	    *why; /* of the last pause or ban ("" none); borrowed, valid until the next call */
};
void kl_rest_stats(const struct kl_rest *rest, struct kl_rest_stats *ret);

/** A pause or ban began, ending at wall-clock @p until_ms; @p why is borrowed. */
typedef void (*kl_rest_ban_cb)(void *ud, int64_t until_ms, const char *why);

/** Tell @p cb about every pause or ban (to keep its end across a restart). */
void kl_rest_on_ban(struct kl_rest *rest, kl_rest_ban_cb cb, void *ud);

/** Send nothing before wall-clock @p until_ms (a ban kept from an earlier run). */
void kl_rest_pause_until(struct kl_rest *rest, int64_t wall_until_ms, const char *why);
