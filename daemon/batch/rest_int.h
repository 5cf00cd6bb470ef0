/*
 * The REST client's insides, shared by rest.c (the exchange's policy) and
 * rest_io.c (libcurl multi driven by libuv). Not for other modules.
 */
#pragma once

#include "rest.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* BODY_MAX: a 1000-kline page is ~150 KiB, exchangeInfo of every symbol ~5 MiB. */
#define BODY_MAX	   (16u << 20)
#define BACKOFF_FIRST_MS   500
#define BACKOFF_MAX_MS	   30000
#define BAN_DEFAULT_MS	   60000
#define BAN_MARGIN_MS	   250
#define DEFAULT_WEIGHT_MAX 6000
#define REFUSED_FIRST_MS   60000   /* without [rest] refusal_pause */
#define REFUSED_MAX_MS	   1800000 /* 30 min */

struct req {
	struct req *next;
	char *path;
	int weight;
	kl_rest_cb cb;
	void *ud;
	unsigned attempt;
	uint64_t not_before; /* uv_now() ms */
	int64_t window;	     /* wall-clock minute it was sent in */
	CURL *easy;
	char *body;
	size_t len, cap;
	int64_t used_weight, retry_after_ms;
	uint64_t epoch; /* rest->epoch when sent: older refusals don't escalate */
	char errbuf[CURL_ERROR_SIZE];
	bool too_large;
};

struct sock {
	uv_poll_t poll;
	struct kl_rest *rest;
	curl_socket_t fd;
};

struct kl_rest {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t curl_timer, wake_timer;
	struct req *head, *tail; /* waiting requests, in order */
	struct req *inflight;	 /* singly linked via next */
	char *base;
	const struct kl_conf *conf;
	int64_t weight_limit, used, used_window, inflight_weight;
	uint64_t banned_until;
	uint64_t refused_first_ms;
	uint64_t epoch;	     /* pauses begun so far */
	unsigned refusals;   /* in a row since the last 2xx */
	int64_t paused_wall; /* wall-clock ms the last pause or ban ends */
	kl_rest_ban_cb on_ban;
	void *ban_ud;
	char why[192]; /* of the last pause or ban */
	struct kl_rest_stats stats;
	const char *group;		    /* of log lines: "rest", or the plain client's owner */
	unsigned max_attempts, concurrency; /* plain clients (kl_rest_new_plain) only */
	bool plain;
	int depth;    /* callbacks running: defer teardown past them */
	int nclosing; /* handles whose close callback is pending */
	bool closing;
};

/** Take finished transfers off curl, decide their fate, send what may go. */
void kl_rest_check(struct kl_rest *rest);

/* libcurl's callbacks (CURLMOPT_SOCKETFUNCTION, TIMERFUNCTION, WRITE/HEADERFUNCTION). */
int kl_rest_io_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp);
int kl_rest_io_timer(CURLM *multi, long timeout_ms, void *userp);
size_t kl_rest_io_body(char *data, size_t size, size_t nmemb, void *ud);
size_t kl_rest_io_header(char *data, size_t size, size_t nmemb, void *ud);

/** uv_close callback of the client's handles: frees the client after the last. */
void kl_rest_io_closed(uv_handle_t *h);

/* rest.c's steps that the plain client (rest_plain.c) shares. */
int kl__rest_new(uv_loop_t *loop, const struct kl_conf *conf, const char *base,
		 unsigned concurrency, struct kl_rest **ret);
void kl__rest_retry_later(struct kl_rest *rest, struct req *q, const char *why);
/** Hand @p reply to the request's callback; the request is freed or retried. */
void kl__rest_deliver(struct kl_rest *rest, struct req *q, const struct kl_rest_reply *reply);
/** A plain client's finished transfer (rest_plain.c). */
void kl__rest_plain_finish(struct kl_rest *rest, struct req *q, CURLcode res, long status);
