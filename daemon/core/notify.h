/*
 * systemd's notify protocol (libsystemd's sd_notify): READY=1 once the
 * store is open, STATUS= lines as the daemon works, WATCHDOG=1 from the
 * loop while WATCHDOG_USEC asks for it, STOPPING=1 on the way out. All
 * no-ops when NOTIFY_SOCKET is unset.
 */
#pragma once

#include <uv.h>

struct kl_notify;

/** Start the watchdog pings on @p loop if systemd asked for them. @return 0 or -ENOMEM. */
int kl_notify_new(uv_loop_t *loop, struct kl_notify **ret);

/** Send READY=1 with a status line (NULL @p n: nothing). */
void kl_notify_ready(struct kl_notify *n, const char *status);

/** Send RELOADING=1 (a SIGHUP is being applied; kl_notify_ready ends it). NULL is fine. */
void kl_notify_reloading(const struct kl_notify *n);

/** Send STATUS=@p fmt (printf-style), only when it changed. */
void kl_notify_status(struct kl_notify *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/**
 * Before READY=1, from work that blocks the start (a store upgrade): ask
 * for @p usec more start-up time from now (EXTEND_TIMEOUT_USEC, so that
 * systemd's start timeout does not kill it midway, again and again) and
 * say why in STATUS=@p fmt. Needs no struct kl_notify (no loop yet).
 */
void kl_notify_extend(uint64_t usec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Send STOPPING=1 and stop the watchdog; frees once the timer is closed. NULL is fine. */
void kl_notify_free(struct kl_notify *n);
