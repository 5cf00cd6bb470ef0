/* Between conf.c (the keys' table) and conf_ini.c (the INI reader): not public. */
#pragma once

#include "conf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/**
 * Set [@p section] @p name (a table key or [kafka] librdkafka.*) from @p value.
 * @return 0; -ENOENT for an unknown key; -EINVAL with the problem in @p msg.
 */
int kl_conf_set_key(struct kl_conf *c, const char *section, const char *name, const char *value,
		    char *msg, size_t n);

/** Add the symbols of @p value to [exchange] symbols (a continuation line). @return as above. */
int kl_conf_add_symbols(struct kl_conf *c, const char *value, char *msg, size_t n);

/** Format the problem into @p err (room for @p n). @return -EINVAL, for `return
 * kl__conf_fail(...)`. */
int kl__conf_fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The validators (conf_check.c): 0, or -EINVAL with the problem in @p err. */

/** Digits of @p v up to @p max: @return 0 with *ret and *end (past the digits), -EINVAL, -ERANGE.
 */
int kl__conf_uint(const char *v, int64_t max, int64_t *ret, const char **end);

/** HOST:PORT[,HOST:PORT...] ("off" is the caller's). */
int kl__conf_check_brokers(const char *v, char *err, size_t n);

/** A Kafka topic name. */
int kl__conf_check_topic(const char *v, char *err, size_t n);

/** A bare http(s) (or ws(s) when @p ws) base URL; *len: its length without trailing '/'. */
int kl__conf_check_url(const char *v, bool ws, size_t *len, char *err, size_t n);

/** ADDR:PORT a listener binds ("off" is the caller's). */
int kl__conf_check_listen(const char *v, char *err, size_t n);
