/*
 * The HTTP server's listening socket, owned by klined rather than lws:
 * lws 4.1.6 resolves its listen address through getifaddrs(), which needs
 * an AF_NETLINK socket that the unit's RestrictAddressFamilies refuses
 * (a warning at every start). Accepted connections are handed to lws
 * once their request line has come, and only if lws would not drop it
 * without an answer: lws 4.1.6 closes a connection whose URL decodes to a
 * NUL and answers an invalid %-escape with an HTML 403; such a request
 * gets a JSON 400 here instead. (Only the first request of a connection
 * passes this gate: a later one on a kept-alive connection goes to lws.)
 */
#pragma once

#include <uv.h>

struct kl_httplisten;

/**
 * Takes a new connection: @p fd (non-blocking) is the callee's to close;
 * @p head (@p len bytes, borrowed: copy it) is what was read from it.
 */
typedef void (*kl_httplisten_cb)(void *ud, int fd, const char *head, size_t len);

/**
 * Listen on IP address @p addr (v4 or v6 literal, borrowed), @p port, with
 * SO_REUSEADDR. @return 0 with *ret, -EINVAL for something that is not an
 * IP address, or the socket's -errno (e.g. -EADDRINUSE).
 */
int kl_httplisten_open(uv_loop_t *loop, const char *addr, int port, kl_httplisten_cb cb, void *ud,
		       struct kl_httplisten **ret);

/** Stop accepting and close; freed as the loop runs on. NULL is fine. */
void kl_httplisten_close(struct kl_httplisten *l);
