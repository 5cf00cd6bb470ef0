/*
 * Invariants:
 *  1. After kl_httplisten_close() no callback runs: both handles are
 *     closed at once, and the struct goes with the second close callback.
 *  2. When the process is out of descriptors, accepting pauses for
 *     PAUSE_MS instead of spinning on a listener that stays readable.
 *  3. A connection waiting for its request line costs a HEAD_MAX buffer
 *     and two handles, and waits at most LINE_MS.
 */
#include "httplisten.h"

#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BACKLOG	 512
#define PAUSE_MS 100
#define HEAD_MAX 2048 /* lws takes at most this much already read (its rx buffer) */
#define LINE_MS	 10000
#define BAD_BODY "{\"error\":\"malformed URL (a NUL or a bad %-escape)\"}"

/* An accepted connection whose request line has not come yet. */
struct pending {
	uv_poll_t poll;
	uv_timer_t timer;
	struct kl_httplisten *l;
	struct pending *prev, *next; /* l->pending */
	int fd, closes;
	size_t len;
	char buf[HEAD_MAX];
};

struct kl_httplisten {
	uv_poll_t poll;
	uv_timer_t pause;
	int fd, closes;
	bool closing;
	struct pending *pending; /* waiting for their request lines */
	kl_httplisten_cb cb;
	void *ud;
};

static void free_if_done(struct kl_httplisten *l)
{
	if (l->closes == 2 && !l->pending) {
		close(l->fd);
		free(l);
	}
}

static void on_readable(uv_poll_t *p, int status, int events);

static int hex(char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* Would lws drop (a %00) or answer in HTML (an invalid %-escape) this request line? */
static bool refused_by_lws(const char *line, size_t n)
{
	const char *sp = memchr(line, ' ', n), *end;

	if (!sp)
		return false;
	end = memchr(sp + 1, ' ', n - (size_t)(sp + 1 - line));
	if (!end)
		end = line + n;
	for (const char *p = sp + 1; p < end; p++) {
		if (*p != '%')
			continue;
		if (p + 2 >= end || !hex(p[1]) || !hex(p[2]) || (p[1] == '0' && p[2] == '0'))
			return true;
	}
	return false;
}

static void pending_closed(uv_handle_t *h)
{
	struct pending *c = h->data;

	if (++c->closes == 2)
		free(c);
}

/* Stop waiting; the descriptor goes to lws (@p give) or is closed. */
static void pending_end(struct pending *c, bool give)
{
	struct kl_httplisten *l = c->l;

	if (c->prev)
		c->prev->next = c->next;
	else
		l->pending = c->next;
	if (c->next)
		c->next->prev = c->prev;
	uv_close((uv_handle_t *)&c->poll, pending_closed);
	uv_close((uv_handle_t *)&c->timer, pending_closed);
	if (give && !l->closing)
		l->cb(l->ud, c->fd, c->buf, c->len);
	else
		close(c->fd);
	free_if_done(l);
}

static void on_line_timeout(uv_timer_t *t)
{
	pending_end(t->data, false);
}

static void on_head(uv_poll_t *p, int status, int events)
{
	static const char bad[] = "HTTP/1.1 400 Bad Request\r\n"
				  "content-type: application/json\r\n"
				  "content-length: 51\r\n"
				  "cache-control: no-store\r\n"
				  "connection: close\r\n\r\n" BAD_BODY;
	_Static_assert(sizeof(BAD_BODY) - 1 == 51, "the content-length above");
	struct pending *c = p->data;
	const char *nl;
	ssize_t n;

	(void)events;
	if (status < 0) {
		pending_end(c, false);
		return;
	}
	n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		pending_end(c, false);
		return;
	}
	c->len += (size_t)n;
	nl = memchr(c->buf, '\n', c->len);
	if (!nl && c->len < sizeof(c->buf))
		return;
	if (refused_by_lws(c->buf, nl ? (size_t)(nl - c->buf) : c->len)) {
		/* A 200-byte answer fits any socket buffer: one send, then close. */
		if (send(c->fd, bad, sizeof(bad) - 1, MSG_NOSIGNAL) < 0)
			kl_debug("http", "cannot answer a malformed request: %s", strerror(errno));
		pending_end(c, false);
		return;
	}
	pending_end(c, true);
}

/* Wait for the request line of a new connection. */
static void pend(struct kl_httplisten *l, int fd)
{
	struct pending *c = malloc(sizeof(*c));

	if (!c || uv_poll_init(l->poll.loop, &c->poll, fd) < 0) {
		free(c);
		close(fd);
		return;
	}
	uv_timer_init(l->poll.loop, &c->timer);
	c->poll.data = c->timer.data = c;
	c->l = l;
	c->fd = fd;
	c->len = 0;
	c->closes = 0;
	c->prev = NULL;
	c->next = l->pending;
	if (c->next)
		c->next->prev = c;
	l->pending = c;
	uv_poll_start(&c->poll, UV_READABLE, on_head);
	uv_timer_start(&c->timer, on_line_timeout, LINE_MS, 0);
}

static void on_resume(uv_timer_t *t)
{
	struct kl_httplisten *l = t->data;

	uv_poll_start(&l->poll, UV_READABLE, on_readable);
}

static void on_readable(uv_poll_t *p, int status, int events)
{
	struct kl_httplisten *l = p->data;

	(void)events;
	if (status < 0)
		return;
	for (int i = 0; i < 64; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				kl_warn("http", "cannot accept a connection: %s (pausing %d ms)",
					strerror(errno), PAUSE_MS);
				uv_poll_stop(&l->poll);
				uv_timer_start(&l->pause, on_resume, PAUSE_MS, 0);
			}
			return; /* EAGAIN, or a connection that went before it came */
		}
		pend(l, fd);
	}
}

int kl_httplisten_open(uv_loop_t *loop, const char *addr, int port, kl_httplisten_cb cb, void *ud,
		       struct kl_httplisten **ret)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *v4 = (struct sockaddr_in *)(void *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)(void *)&ss;
	struct kl_httplisten *l = NULL;
	socklen_t len;
	int fd = -1, one = 1, r;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		len = sizeof(*v6);
	} else {
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, BACKLOG) < 0) {
		r = -errno;
		goto out;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		r = -ENOMEM;
		goto out;
	}
	r = uv_poll_init(loop, &l->poll, fd);
	if (r < 0)
		goto out;
	uv_timer_init(loop, &l->pause);
	l->poll.data = l->pause.data = l;
	l->fd = fd;
	l->cb = cb;
	l->ud = ud;
	uv_poll_start(&l->poll, UV_READABLE, on_readable);
	*ret = l;
	return 0;
out:
	free(l);
	close(fd);
	return r;
}

static void on_closed(uv_handle_t *h)
{
	struct kl_httplisten *l = h->data;

	l->closes++;
	free_if_done(l);
}

void kl_httplisten_close(struct kl_httplisten *l)
{
	if (!l || l->closing)
		return;
	l->closing = true;
	uv_close((uv_handle_t *)&l->poll, on_closed);
	uv_close((uv_handle_t *)&l->pause, on_closed);
	while (l->pending)
		pending_end(l->pending, false);
}
