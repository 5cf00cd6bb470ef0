/*
 * Logging: one line per event on stderr, gated by a global level.
 * Under systemd (JOURNAL_STREAM set) every line carries a "<N>" priority
 * prefix so journald files it at the right level. The level is the only
 * global state lib/ has.
 */
#pragma once

#include <stdbool.h>

enum kl_log_level {
	KL_LOG_ERROR = 3, /* syslog priorities, so the journal prefix is the level */
	KL_LOG_WARN = 4,
	KL_LOG_INFO = 6,
	KL_LOG_DEBUG = 7,
};

/** Set the level and whether lines get "<N>" journal prefixes. */
void kl_log_setup(enum kl_log_level level, bool journal);

/** @return true when a message at @p level would be written. */
bool kl_log_enabled(enum kl_log_level level);

/** Write one line "GROUP: message" (a trailing newline is added). */
void kl_log(enum kl_log_level level, const char *group, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Log at error level and return @p r, so callers log and fail in one step. */
int kl_log_errno(int r, const char *group, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Parse "error", "warn", "info", "debug". @return 0 or -EINVAL. */
int kl_log_level_parse(const char *s, enum kl_log_level *ret);

#define kl_err(g, ...)	 kl_log(KL_LOG_ERROR, g, __VA_ARGS__)
#define kl_warn(g, ...)	 kl_log(KL_LOG_WARN, g, __VA_ARGS__)
#define kl_info(g, ...)	 kl_log(KL_LOG_INFO, g, __VA_ARGS__)
#define kl_debug(g, ...) kl_log(KL_LOG_DEBUG, g, __VA_ARGS__)
