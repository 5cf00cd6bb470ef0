/*
 * A scripted HTTP/1.1 server for adapter tests: plain uv TCP on 127.0.0.1,
 * on the test's own loop. Each request (read up to its blank line) takes
 * the next reply of the script, in order of arrival; past the script it
 * gets 200 "[]". What arrived, and when (uv_now), is kept for asserts.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

enum act {
	ANSWER, /* the whole response, then close */
	DROP,	/* headers promise twice the body sent, then close */
	STALL,	/* read the request, never answer */
};

struct reply {
	enum act act;
	int status;
	const char *headers; /* extra "Name: value\r\n" lines, or NULL */
	const char *body;
};

struct conn;

struct server {
	uv_tcp_t tcp;
	int port;
	struct reply script[8];
	size_t nscript, next;
	char path[16][160];
	uint64_t at[16]; /* uv_now() each request arrived */
	size_t nseen;
	struct conn *conns;
};

/** Listen on 127.0.0.1 at a port the kernel picks (srv->port); @p srv zeroed by the caller. */
void server_open(uv_loop_t *loop, struct server *srv);

/** Close the listener and every connection; the loop must run on. */
void server_close(struct server *srv);

/** @return a port nothing listens on (bound, named, closed). */
int closed_port(void);
