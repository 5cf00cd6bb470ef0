/*
 * Configuration: one table of keys drives the INI file, the command-line
 * options, the defaults and --help. A struct kl_conf is filled once at
 * start-up and read-only afterwards. Parsing works on text only; reading
 * the file is the daemon's business.
 */
#pragma once

#include "log.h"

#include <stddef.h>
#include <stdint.h>

enum kl_history_kind {
	KL_HISTORY_DAYS,    /* N days before the exchange's now (day-aligned) */
	KL_HISTORY_DATE,    /* a fixed UTC day */
	KL_HISTORY_LISTING, /* the symbol's first kline */
};

/* The smallest [rest] weight_limit: exchangeInfo (20) must fit under it less its 5% margin. */
#define KL_CONF_WEIGHT_MIN 21

struct kl_conf {
	char *db_path;
	char **symbols; /* items: names, patterns, ALL, -exclusions (lib/symset.h); upper case */
	size_t nsymbols;
	int64_t symbols_refresh_ms; /* exchange time between resolutions of the symbols */
	char *rest_url;		    /* without a trailing '/' */
	char *ws_url;
	char *ca_file; /* NULL: the system's CA store */
	enum kl_history_kind history_kind;
	int64_t history_value; /* days for KL_HISTORY_DAYS, day start ms for KL_HISTORY_DATE */
	char *kafka_brokers;
	char *kafka_topic;
	char *kafka_group;
	char **kafka_props; /* "name=value" pairs of [kafka] librdkafka.* keys */
	size_t nkafka_props;
	int64_t watermark_ms;
	enum kl_log_level log_level;
	char *http_listen; /* "off" or "ADDR:PORT" */
	char *http_assets; /* the page's files (installed data dir by default) */
	int64_t rest_concurrency;
	int64_t rest_timeout_ms;
	int64_t rest_weight_limit;     /* 0: the exchange's published limit */
	int64_t rest_refusal_pause_ms; /* the first pause after a refusal (it doubles) */
	char *archive_url; /* "off", "auto" or a base URL: read it with kl_conf_archive_url */
};

/** The archives' base URL in effect (auto resolved), or NULL: none. Borrowed from @p c. */
const char *kl_conf_archive_url(const struct kl_conf *c);

/** A key of the table, for --help and documentation. */
struct kl_conf_info {
	const char *section, *key, *option, *def, *help;
	const char *arg; /* the value's placeholder in --help: PATH, URL, DURATION... */
};

/** Allocate a configuration holding the defaults. @return 0 or -ENOMEM; *ret owned by caller. */
int kl_conf_new(struct kl_conf **ret);

/** Free @p c (NULL is fine). @return NULL. */
struct kl_conf *kl_conf_free(struct kl_conf *c);

/**
 * Apply INI @p text (borrowed), named @p filename in messages.
 * @return 0; -EINVAL with "FILE:LINE: [section] key: problem" in @p err.
 */
int kl_conf_load_ini(struct kl_conf *c, const char *text, const char *filename, char *err,
		     size_t errlen);

/**
 * Apply a command-line option by its long name without dashes ("db",
 * "history-start"). @return 0; -ENOENT for an unknown option; -EINVAL
 * with a message naming the option and its key in @p err.
 */
int kl_conf_set_option(struct kl_conf *c, const char *option, const char *value, char *err,
		       size_t errlen);

/** @return the i-th key of the table, or NULL past the end. */
const struct kl_conf_info *kl_conf_info(size_t i);
