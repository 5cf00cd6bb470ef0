/*
 * stderr logger. Lines are formatted into one buffer and written with a
 * single fwrite so concurrent writers (the daemon and its children, tests
 * reading the pipe) never see interleaved halves of a line.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static enum kl_log_level log_level = KL_LOG_INFO;
static bool log_journal;

void kl_log_setup(enum kl_log_level level, bool journal)
{
	log_level = level;
	log_journal = journal;
}

bool kl_log_enabled(enum kl_log_level level)
{
	return level <= log_level;
}

static void log_v(enum kl_log_level level, const char *group, const char *fmt, va_list ap)
{
	static const char *const names[] = {[KL_LOG_ERROR] = "error",
					    [KL_LOG_WARN] = "warn",
					    [KL_LOG_INFO] = "info",
					    [KL_LOG_DEBUG] = "debug"};
	char line[2048];
	int n;

	if (!kl_log_enabled(level))
		return;
	if (log_journal)
		n = snprintf(line, sizeof(line), "<%d>%s: ", (int)level, group);
	else
		n = snprintf(line, sizeof(line), "klined[%s] %s: ", names[level], group);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(line)) {
		int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
		if (m > 0)
			n += m;
	}
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	fwrite(line, 1, (size_t)n, stderr);
	fflush(stderr);
}

void kl_log(enum kl_log_level level, const char *group, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_v(level, group, fmt, ap);
	va_end(ap);
}

int kl_log_errno(int r, const char *group, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_v(KL_LOG_ERROR, group, fmt, ap);
	va_end(ap);
	return r;
}

int kl_log_level_parse(const char *s, enum kl_log_level *ret)
{
	static const struct {
		const char *name;
		enum kl_log_level level;
	} levels[] = {{"error", KL_LOG_ERROR},
		      {"warn", KL_LOG_WARN},
		      {"warning", KL_LOG_WARN},
		      {"info", KL_LOG_INFO},
		      {"debug", KL_LOG_DEBUG}};

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (strcmp(s, levels[i].name) == 0) {
			*ret = levels[i].level;
			return 0;
		}
	}
	return -EINVAL;
}
