/*
 * sd_notify adapter. The watchdog ping rides on a loop timer at half the
 * period systemd asked for, so a stuck loop stops the pings and gets the
 * daemon restarted: that is the point of pinging from the loop.
 */
#include "notify.h"

#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

struct kl_notify {
	uv_timer_t watchdog;
	char last[256];
};

static void on_watchdog(uv_timer_t *t)
{
	(void)t;
	sd_notify(0, "WATCHDOG=1");
}

int kl_notify_new(uv_loop_t *loop, struct kl_notify **ret)
{
	struct kl_notify *n = calloc(1, sizeof(*n));
	uint64_t usec = 0;

	if (!n)
		return -ENOMEM;
	uv_timer_init(loop, &n->watchdog);
	n->watchdog.data = n;
	if (sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000) {
		kl_debug("notify", "watchdog every %.1f s", (double)usec / 2e6);
		uv_timer_start(&n->watchdog, on_watchdog, 0, usec / 2000);
	}
	*ret = n;
	return 0;
}

void kl_notify_ready(struct kl_notify *n, const char *status)
{
	if (!n)
		return;
	snprintf(n->last, sizeof(n->last), "%s", status);
	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void kl_notify_reloading(const struct kl_notify *n)
{
	if (n)
		sd_notify(0, "RELOADING=1");
}

void kl_notify_status(struct kl_notify *n, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (!n)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (!strcmp(line, n->last))
		return;
	memcpy(n->last, line, sizeof(line));
	sd_notifyf(0, "STATUS=%s", line);
}

void kl_notify_extend(uint64_t usec, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu\nSTATUS=%s", (unsigned long long)usec, line);
}

static void on_closed(uv_handle_t *h)
{
	free(h->data);
}

void kl_notify_free(struct kl_notify *n)
{
	if (!n)
		return;
	sd_notify(0, "STOPPING=1");
	uv_close((uv_handle_t *)&n->watchdog, on_closed);
}
