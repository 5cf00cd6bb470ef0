/*
 * libcurl multi driven by libuv: curl tells us which sockets to watch
 * (kl_rest_io_socket) and when to time out (kl_rest_io_timer); the loop
 * tells curl what happened (on_poll, on_timeout). Bodies are buffered up
 * to BODY_MAX; the weight and Retry-After headers are read on the way.
 */
#include "rest_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void kl_rest_io_closed(uv_handle_t *h)
{
	struct kl_rest *rest = h->data;

	if (h->type == UV_POLL) {
		struct sock *sk = (struct sock *)(void *)h;
		rest = sk->rest;
		free(sk);
	}
	if (--rest->nclosing == 0 && rest->closing) {
		free(rest->base);
		free(rest);
	}
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct sock *sk = (struct sock *)(void *)h;
	int flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(sk->rest->multi, sk->fd, flags, &running);
	kl_rest_check(sk->rest);
}

int kl_rest_io_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct kl_rest *rest = userp;
	struct sock *sk = socketp;
	int ev = 0;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (sk) {
			uv_poll_stop(&sk->poll);
			rest->nclosing++;
			uv_close((uv_handle_t *)&sk->poll, kl_rest_io_closed);
			curl_multi_assign(rest->multi, fd, NULL);
		}
		return 0;
	}
	if (!sk) {
		sk = calloc(1, sizeof(*sk));
		if (!sk)
			return -1;
		sk->rest = rest;
		sk->fd = fd;
		if (uv_poll_init_socket(rest->loop, &sk->poll, fd) < 0) {
			free(sk);
			return -1;
		}
		curl_multi_assign(rest->multi, fd, sk);
	}
	if (what & CURL_POLL_IN)
		ev |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&sk->poll, ev, on_poll);
	return 0;
}

static void on_curl_timeout(uv_timer_t *t)
{
	struct kl_rest *rest = t->data;
	int running;

	curl_multi_socket_action(rest->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	kl_rest_check(rest);
}

int kl_rest_io_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct kl_rest *rest = userp;

	(void)multi;
	if (timeout_ms < 0)
		uv_timer_stop(&rest->curl_timer);
	else
		uv_timer_start(&rest->curl_timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
	return 0;
}

size_t kl_rest_io_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct req *q = ud;
	size_t n = size * nmemb;

	if (q->len + n + 1 > q->cap) {
		size_t cap = q->cap ? q->cap : 256 << 10;
		while (cap < q->len + n + 1)
			cap *= 2;
		if (cap > BODY_MAX) {
			/* Refuse, don't buffer a hostile body without limit. */
			q->too_large = true;
			return 0;
		}
		char *b = realloc(q->body, cap);
		if (!b)
			return 0;
		q->body = b;
		q->cap = cap;
	}
	memcpy(q->body + q->len, data, n);
	q->len += n;
	q->body[q->len] = '\0';
	return n;
}

static int64_t header_int(const char *h, size_t n, const char *name)
{
	size_t len = strlen(name);
	int64_t v = 0;

	if (n <= len || strncasecmp(h, name, len) != 0 || h[len] != ':')
		return -1;
	h += len + 1;
	n -= len + 1;
	while (n && (*h == ' ' || *h == '\t')) {
		h++;
		n--;
	}
	if (!n || *h < '0' || *h > '9')
		return -1;
	for (; n && *h >= '0' && *h <= '9' && v < INT64_MAX / 10 - 10; h++, n--)
		v = v * 10 + (*h - '0');
	return v;
}

size_t kl_rest_io_header(char *data, size_t size, size_t nmemb, void *ud)
{
	struct req *q = ud;
	size_t n = size * nmemb;
	int64_t v;

	if ((v = header_int(data, n, "x-mbx-used-weight-1m")) >= 0)
		q->used_weight = v;
	else if ((v = header_int(data, n, "retry-after")) >= 0)
		q->retry_after_ms = v * 1000;
	return n;
}
