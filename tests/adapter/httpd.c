/* The scripted server of httpd.h. */
#include "httpd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

struct conn {
	uv_tcp_t tcp;
	struct server *srv;
	struct conn *next;
	char buf[4096];
	size_t len;
	bool answered;
};

struct wr {
	uv_write_t req;
	struct conn *c;
	char data[];
};

static void on_conn_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	for (struct conn **pp = &c->srv->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	free(c);
}

static void conn_close(struct conn *c)
{
	if (!uv_is_closing((uv_handle_t *)&c->tcp))
		uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_written(uv_write_t *req, int status)
{
	struct wr *w = (struct wr *)(void *)req;

	(void)status;
	conn_close(w->c);
	free(w);
}

static void answer(struct conn *c, const struct reply *r)
{
	size_t blen = strlen(r->body ? r->body : "");
	size_t cap = blen + 512;
	struct wr *w = malloc(sizeof(*w) + cap);
	int n;
	uv_buf_t buf;

	assert_non_null(w);
	w->c = c;
	n = snprintf(w->data, cap,
		     "HTTP/1.1 %d Scripted\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\nConnection: close\r\n%s\r\n%s",
		     r->status, r->act == DROP ? 2 * blen + 10 : blen, r->headers ? r->headers : "",
		     r->body ? r->body : "");
	buf = uv_buf_init(w->data, (unsigned)n);
	assert_int_equal(uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written), 0);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct conn *c = h->data;

	(void)hint;
	*buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - 1 - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	struct server *srv = c->srv;
	static const struct reply unscripted = {ANSWER, 200, NULL, "[]"};
	const struct reply *r;

	(void)buf;
	if (n < 0) {
		conn_close(c); /* the client gave up (a stall's timeout) or is done */
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	if (c->answered || !strstr(c->buf, "\r\n\r\n"))
		return;
	c->answered = true;
	if (srv->nseen < 16) {
		sscanf(c->buf, "GET %159s", srv->path[srv->nseen]);
		srv->at[srv->nseen] = uv_now(s->loop);
	}
	srv->nseen++;
	r = srv->next < srv->nscript ? &srv->script[srv->next++] : &unscripted;
	if (r->act != STALL)
		answer(c, r);
}

static void on_connection(uv_stream_t *s, int status)
{
	struct server *srv = s->data;
	struct conn *c = calloc(1, sizeof(*c));

	assert_int_equal(status, 0);
	assert_non_null(c);
	c->srv = srv;
	uv_tcp_init(s->loop, &c->tcp);
	c->tcp.data = c;
	c->next = srv->conns;
	srv->conns = c;
	assert_int_equal(uv_accept(s, (uv_stream_t *)&c->tcp), 0);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

void server_open(uv_loop_t *loop, struct server *srv)
{
	struct sockaddr_in a;
	struct sockaddr_storage name;
	int len = sizeof(name);

	uv_ip4_addr("127.0.0.1", 0, &a);
	uv_tcp_init(loop, &srv->tcp);
	srv->tcp.data = srv;
	assert_int_equal(uv_tcp_bind(&srv->tcp, (const struct sockaddr *)&a, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&srv->tcp, 16, on_connection), 0);
	uv_tcp_getsockname(&srv->tcp, (struct sockaddr *)&name, &len);
	srv->port = ntohs(((struct sockaddr_in *)&name)->sin_port);
}

void server_close(struct server *srv)
{
	for (struct conn *c = srv->conns; c; c = c->next)
		conn_close(c);
	if (!uv_is_closing((uv_handle_t *)&srv->tcp))
		uv_close((uv_handle_t *)&srv->tcp, NULL);
}

int closed_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}
