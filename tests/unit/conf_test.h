/*
 * What the lib/conf tests share: a configuration per test, and loading
 * and comparing ones. Static inline: each test file uses some of them.
 */
#ifndef KL_TEST_CONF_TEST_H
#define KL_TEST_CONF_TEST_H

#include "conf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define D0 1672531200000LL /* 2023-01-01 */

static inline int setup(void **state)
{
	struct kl_conf *c = NULL;

	if (kl_conf_new(&c) < 0 || !c)
		return -1;
	*state = c;
	return 0;
}

static inline int teardown(void **state)
{
	assert_null(kl_conf_free(*state));
	return 0;
}

static inline int load(struct kl_conf *c, const char *text, char *err, size_t n)
{
	err[0] = '\0';
	return kl_conf_load_ini(c, text, "klined.conf", err, n);
}

static inline void load_ok(struct kl_conf *c, const char *text)
{
	char err[512];

	if (load(c, text, err, sizeof(err)) != 0)
		fail_msg("refused: %s\n%s", err, text);
}

static inline void option_ok(struct kl_conf *c, const char *option, const char *value)
{
	char err[512] = "";

	if (kl_conf_set_option(c, option, value, err, sizeof(err)) != 0)
		fail_msg("--%s=%s refused: %s", option, value, err);
}

static inline void assert_prefix(const char *s, const char *prefix)
{
	if (strncmp(s, prefix, strlen(prefix)) != 0)
		fail_msg("\"%s\" does not start with \"%s\"", s, prefix);
}

static inline void assert_str_or_null(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

/* Every field of two configurations equal. */
static inline void assert_conf_equal(const struct kl_conf *a, const struct kl_conf *b)
{
	assert_string_equal(a->db_path, b->db_path);
	assert_int_equal(a->nsymbols, b->nsymbols);
	for (size_t i = 0; i < a->nsymbols; i++)
		assert_string_equal(a->symbols[i], b->symbols[i]);
	assert_string_equal(a->rest_url, b->rest_url);
	assert_string_equal(a->ws_url, b->ws_url);
	assert_str_or_null(a->ca_file, b->ca_file);
	assert_int_equal(a->history_kind, b->history_kind);
	assert_int_equal(a->history_value, b->history_value);
	assert_string_equal(a->kafka_brokers, b->kafka_brokers);
	assert_string_equal(a->kafka_topic, b->kafka_topic);
	assert_string_equal(a->kafka_group, b->kafka_group);
	assert_int_equal(a->nkafka_props, b->nkafka_props);
	for (size_t i = 0; i < a->nkafka_props; i++)
		assert_string_equal(a->kafka_props[i], b->kafka_props[i]);
	assert_int_equal(a->watermark_ms, b->watermark_ms);
	assert_int_equal(a->log_level, b->log_level);
	assert_string_equal(a->http_listen, b->http_listen);
	assert_int_equal(a->rest_concurrency, b->rest_concurrency);
	assert_int_equal(a->rest_timeout_ms, b->rest_timeout_ms);
	assert_int_equal(a->rest_weight_limit, b->rest_weight_limit);
	assert_int_equal(a->rest_refusal_pause_ms, b->rest_refusal_pause_ms);
}

#endif
