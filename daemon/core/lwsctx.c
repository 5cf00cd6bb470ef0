/*
 * The slots: a context is "open" while its slot holds it and destroy has
 * not been called, "closing" after the first lws_context_destroy(), and
 * gone when lws cleared the slot (pcontext) or kl_lwsctx_finish() made
 * the second call. One loop, one thread: no locking.
 */
#include "lwsctx.h"

#include "log.h"

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#define SLOTS 8

static struct {
	struct lws_context *ctx;
	bool used, closing;
} slots[SLOTS];

struct lws_context **kl_lwsctx_slot(void)
{
	for (size_t i = 0; i < SLOTS; i++) {
		if (!slots[i].used) {
			slots[i].used = true;
			slots[i].closing = false;
			slots[i].ctx = NULL;
			return &slots[i].ctx;
		}
	}
	return NULL;
}

void kl_lwsctx_destroy(struct lws_context **slot)
{
	for (size_t i = 0; slot && i < SLOTS; i++) {
		if (&slots[i].ctx != slot || slots[i].closing)
			continue;
		slots[i].closing = true;
		if (slots[i].ctx)
			lws_context_destroy(slots[i].ctx);
	}
}

void kl_lwsctx_finish(void)
{
	for (size_t i = 0; i < SLOTS; i++) {
		if (!slots[i].used || !slots[i].closing)
			continue;
		/* lws clears the slot when it is done: only a context it kept is touched. */
		if (slots[i].ctx)
			lws_context_destroy(slots[i].ctx);
		slots[i].ctx = NULL;
		slots[i].used = false;
	}
}

static void on_lws_log(int level, const char *line)
{
	size_t n = strlen(line);

	while (n && line[n - 1] == '\n')
		n--;
	if (strstr(line, "adopt_socket_readbuf: "))
		level = LLL_DEBUG;
	kl_log((level & LLL_ERR)    ? KL_LOG_ERROR
	       : (level & LLL_WARN) ? KL_LOG_WARN
				    : KL_LOG_DEBUG,
	       "lws", "%.*s", (int)n, line);
}

void kl_lwsctx_log_init(void)
{
	lws_set_log_level(kl_log_enabled(KL_LOG_DEBUG) ? LLL_ERR | LLL_WARN | LLL_NOTICE
						       : LLL_ERR | LLL_WARN,
			  on_lws_log);
}
