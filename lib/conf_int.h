/* Between conf.c (the keys' table) and conf_ini.c (the INI reader): not public. */
#pragma once

#include "conf.h"

#include <stddef.h>

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
