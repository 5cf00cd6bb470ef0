/*
 * lib/log: the level gate, the two line formats (plain and journald
 * "<N>" prefixes), one write per line, and level names. stderr is
 * pointed at a temporary file for each capture.
 */
#include "log.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static FILE *capture;
static int saved_fd = -1;

static void capture_start(void)
{
	fflush(stderr);
	capture = tmpfile();
	assert_non_null(capture);
	saved_fd = dup(STDERR_FILENO);
	assert_true(saved_fd >= 0);
	assert_int_equal(dup2(fileno(capture), STDERR_FILENO), STDERR_FILENO);
}

/* Stop capturing and return what was written (static buffer). */
static const char *capture_end(size_t *len)
{
	static char buf[8192];
	size_t n;

	fflush(stderr);
	assert_int_equal(dup2(saved_fd, STDERR_FILENO), STDERR_FILENO);
	close(saved_fd);
	saved_fd = -1;
	rewind(capture);
	n = fread(buf, 1, sizeof(buf) - 1, capture);
	buf[n] = '\0';
	fclose(capture);
	capture = NULL;
	if (len)
		*len = n;
	return buf;
}

static int reset(void **state)
{
	(void)state;
	if (saved_fd >= 0) /* a failed test left stderr captured: show it */
		fputs(capture_end(NULL), stderr);
	kl_log_setup(KL_LOG_INFO, false);
	return 0;
}

static void levels(void **state)
{
	(void)state;
	/* info is the default */
	assert_true(kl_log_enabled(KL_LOG_ERROR));
	assert_true(kl_log_enabled(KL_LOG_WARN));
	assert_true(kl_log_enabled(KL_LOG_INFO));
	assert_false(kl_log_enabled(KL_LOG_DEBUG));
	kl_log_setup(KL_LOG_ERROR, false);
	assert_true(kl_log_enabled(KL_LOG_ERROR));
	assert_false(kl_log_enabled(KL_LOG_WARN));
	kl_log_setup(KL_LOG_DEBUG, false);
	assert_true(kl_log_enabled(KL_LOG_DEBUG));
}

static void plain_lines(void **state)
{
	(void)state;
	capture_start();
	kl_info("STORE", "opened %s (%d rows)", "k.db", 42);
	kl_warn("REST", "retry in %ds", 5);
	kl_err("WS", "closed");
	kl_debug("WS", "not shown");
	assert_string_equal(capture_end(NULL), "klined[info] STORE: opened k.db (42 rows)\n"
					       "klined[warn] REST: retry in 5s\n"
					       "klined[error] WS: closed\n");
}

static void journal_lines(void **state)
{
	(void)state;
	kl_log_setup(KL_LOG_DEBUG, true);
	capture_start();
	kl_err("A", "e");
	kl_warn("B", "w");
	kl_info("C", "i");
	kl_debug("D", "d");
	assert_string_equal(capture_end(NULL), "<3>A: e\n<4>B: w\n<6>C: i\n<7>D: d\n");
}

static void log_errno(void **state)
{
	(void)state;
	capture_start();
	assert_int_equal(kl_log_errno(-ENOSPC, "STORE", "commit failed: %s", "disk full"), -ENOSPC);
	assert_string_equal(capture_end(NULL), "klined[error] STORE: commit failed: disk full\n");
	/* error level is never gated off */
	kl_log_setup(KL_LOG_ERROR, false);
	capture_start();
	assert_int_equal(kl_log_errno(-EIO, "X", "y"), -EIO);
	kl_info("X", "gated");
	assert_string_equal(capture_end(NULL), "klined[error] X: y\n");
}

static void long_line(void **state)
{
	static char big[5000];
	const char *out;
	size_t len;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	capture_start();
	kl_info("G", "%s", big);
	out = capture_end(&len);
	/* cut, but still one whole line */
	assert_true(len > 1000 && len < sizeof(big));
	assert_int_equal(out[len - 1], '\n');
	assert_null(memchr(out, '\n', len - 1));
	assert_int_equal(strncmp(out, "klined[info] G: xxx", 19), 0);
}

static void level_names(void **state)
{
	static const struct {
		const char *s;
		enum kl_log_level l;
	} ok[] = {{"error", KL_LOG_ERROR},
		  {"warn", KL_LOG_WARN},
		  {"warning", KL_LOG_WARN},
		  {"info", KL_LOG_INFO},
		  {"debug", KL_LOG_DEBUG}};
	static const char *const bad[] = {"", "trace", "err", "infos", "3"};
	enum kl_log_level l;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		l = KL_LOG_ERROR;
		assert_int_equal(kl_log_level_parse(ok[i].s, &l), 0);
		assert_int_equal(l, ok[i].l);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		l = KL_LOG_DEBUG;
		assert_int_equal(kl_log_level_parse(bad[i], &l), -EINVAL);
		assert_int_equal(l, KL_LOG_DEBUG);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(levels, reset, reset),
	    cmocka_unit_test_setup_teardown(plain_lines, reset, reset),
	    cmocka_unit_test_setup_teardown(journal_lines, reset, reset),
	    cmocka_unit_test_setup_teardown(log_errno, reset, reset),
	    cmocka_unit_test_setup_teardown(long_line, reset, reset),
	    cmocka_unit_test_setup_teardown(level_names, reset, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
