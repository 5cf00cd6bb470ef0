/*
 * Table-driven configuration (the Redis config.c shape): every key is one
 * row naming its section, key, option, default and setter, so the file,
 * the options and --help cannot disagree. Setters validate completely
 * and leave the old value in place on error.
 */
#include "conf.h"

#include "conf_int.h"
#include "symset.h"
#include "day.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct key;
typedef int (*setter_fn)(struct kl_conf *c, const struct key *k, const char *v, char *err,
			 size_t n);

struct key {
	struct kl_conf_info info;
	setter_fn set;
	size_t offset;
	int64_t min, max;
};

#define FIELD(f) offsetof(struct kl_conf, f)

#ifndef KL_WEB_DIR
#define KL_WEB_DIR "/usr/local/share/klined/web" /* meson passes the installed data dir */
#endif

static int set_str(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n);
static int set_path(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n);
static int set_symbols(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n);
static int set_url(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n);
static int set_history(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n);
static int set_duration(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n);
static int set_int(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n);
static int set_level(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n);
static int set_listen(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n);
static int set_brokers(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n);
static int set_topic(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n);
static int set_weight(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n);

/* The min of a URL key doubles as the scheme it accepts (set_url). */
static const struct key keys[] = {
    {{"store", "path", "db", "/var/lib/klined/klined.db", "SQLite database file", "PATH"},
     set_path,
     FIELD(db_path),
     0,
     0},
    {{"exchange", "symbols", "symbols", "BTCUSDT,ETHUSDT",
      "comma-separated symbols and patterns: BTCUSDT, all, *USDT, -*UPUSDT (in the file: "
      "continuation lines add more)",
      "LIST"},
     set_symbols,
     FIELD(symbols),
     0,
     0},
    {{"exchange", "symbols_refresh", "symbols-refresh", "1h",
      "how often (exchange time) the symbols are resolved again: listings, delistings", "DURATION"},
     set_duration,
     FIELD(symbols_refresh_ms),
     60000,
     7 * 86400000LL},
    {{"exchange", "rest_url", "rest-url", "https://api.binance.com", "REST base URL", "URL"},
     set_url,
     FIELD(rest_url),
     0,
     0},
    {{"exchange", "ws_url", "ws-url", "wss://stream.binance.com:9443", "websocket base URL", "URL"},
     set_url,
     FIELD(ws_url),
     1,
     0},
    {{"exchange", "history_start", "history-start", "365d",
      "where an empty store begins: YYYY-MM-DD, Nd or listing", "WHEN"},
     set_history,
     0,
     0,
     0},
    {{"exchange", "ca_file", "ca-file", "", "CA bundle for https/wss (default: system)", "PATH"},
     set_path,
     FIELD(ca_file),
     0,
     0},
    {{"kafka", "brokers", "kafka-brokers", "localhost:9092", "bootstrap brokers", "LIST"},
     set_brokers,
     FIELD(kafka_brokers),
     0,
     0},
    {{"kafka", "topic", "kafka-topic", "binance.kline.1m", "topic of kline events", "NAME"},
     set_topic,
     FIELD(kafka_topic),
     0,
     0},
    {{"kafka", "group", "kafka-group", "klined", "consumer group", "NAME"},
     set_str,
     FIELD(kafka_group),
     0,
     0},
    {{"stream", "watermark", "watermark", "1h", "event-time lateness allowed", "DURATION"},
     set_duration,
     FIELD(watermark_ms),
     0,
     7 * 86400000LL},
    {{"log", "level", "log-level", "info", "error, warn, info or debug", "LEVEL"},
     set_level,
     0,
     0,
     0},
    {{"http", "listen", "http-listen", "127.0.0.1:8642", "ADDR:PORT of the page, or off",
      "ADDR:PORT"},
     set_listen,
     FIELD(http_listen),
     0,
     0},
    {{"http", "assets", "http-assets", KL_WEB_DIR, "directory of the page's files", "DIR"},
     set_path,
     FIELD(http_assets),
     0,
     0},
    {{"rest", "concurrency", "rest-concurrency", "64", "REST requests in flight", "N"},
     set_int,
     FIELD(rest_concurrency),
     1,
     64},
    {{"rest", "timeout", "rest-timeout", "10s", "timeout of one REST request", "DURATION"},
     set_duration,
     FIELD(rest_timeout_ms),
     100,
     600000},
    {{"rest", "weight_limit", "rest-weight-limit", "0",
      "request weight per minute (0: the exchange's published limit)", "N"},
     set_weight,
     FIELD(rest_weight_limit),
     0,
     1000000},
    {{"archive", "url", "archive-url", "auto",
      "kline archives for history older than two days: a URL, off, or auto "
      "(https://data.binance.vision when rest_url is Binance's own, else off)",
      "URL"},
     set_url,
     FIELD(archive_url),
     2,
     0},
    {{"rest", "refusal_pause", "rest-refusal-pause", "60s",
      "first pause of every request after a refusal (403, 451, -1003, -1008, TLS); doubles",
      "DURATION"},
     set_duration,
     FIELD(rest_refusal_pause_ms),
     100,
     1800000},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

int kl__conf_fail(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static char **str_field(struct kl_conf *c, const struct key *k)
{
	return (char **)(void *)((char *)c + k->offset);
}

static int64_t *int_field(struct kl_conf *c, const struct key *k)
{
	return (int64_t *)(void *)((char *)c + k->offset);
}

static int replace_str(char **field, const char *v, char *err, size_t n)
{
	char *s = strdup(v);

	if (!s)
		return kl__conf_fail(err, n, "out of memory");
	free(*field);
	*field = s;
	return 0;
}

static int set_str(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n)
{
	if (!*v)
		return kl__conf_fail(err, n, "must not be empty");
	for (const char *p = v; *p; p++) {
		if ((unsigned char)*p < 0x20)
			return kl__conf_fail(err, n, "contains a control character");
	}
	return replace_str(str_field(c, k), v, err, n);
}

/* HOST:PORT[,HOST:PORT...] (librdkafka's bootstrap.servers), or off. */
static int set_brokers(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n)
{
	if (strcmp(v, "off") != 0 && kl__conf_check_brokers(v, err, n) < 0)
		return -EINVAL;
	return set_str(c, k, v, err, n);
}

static int set_topic(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n)
{
	if (kl__conf_check_topic(v, err, n) < 0)
		return -EINVAL;
	return set_str(c, k, v, err, n);
}

/* An empty path means "unset" for optional paths such as ca_file. */
static int set_path(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n)
{
	if (!*v) {
		if (k->offset == FIELD(db_path))
			return kl__conf_fail(err, n, "must not be empty");
		free(*str_field(c, k));
		*str_field(c, k) = NULL;
		return 0;
	}
	return set_str(c, k, v, err, n);
}

static void free_list(char **v, size_t nv)
{
	for (size_t i = 0; i < nv; i++)
		free(v[i]);
	free(v);
}

/*
 * @p append keeps the symbols already set: the file's continuation lines
 * (and repeated symbols keys) add to its first symbols line, so any
 * number of symbols fits in lines of inih's size.
 */
static int symbols_apply(struct kl_conf *c, const char *v, bool append, char *err, size_t n)
{
	char **list = NULL;
	size_t nlist = 0;
	const char *p = v;
	int r;

	if (append) {
		list = calloc(c->nsymbols ? c->nsymbols : 1, sizeof(*list));
		if (!list)
			return kl__conf_fail(err, n, "out of memory");
		for (; nlist < c->nsymbols; nlist++) {
			if (!(list[nlist] = strdup(c->symbols[nlist]))) {
				r = kl__conf_fail(err, n, "out of memory");
				goto out;
			}
		}
	}
	while (*p) {
		const char *e = p;
		char sym[KL_SYMSET_ITEM_MAX + 1];
		enum kl_sym_kind kind;
		bool exclude;

		while (*e && *e != ',')
			e++;
		if (kl_symset_item(p, (size_t)(e - p), sym, &kind, &exclude, err, n) < 0) {
			r = -EINVAL;
			goto out;
		}
		for (size_t i = 0; i < nlist; i++) {
			if (strcmp(list[i], sym) == 0) {
				r = kl__conf_fail(
				    err, n, "%s %s given twice",
				    kind == KL_SYM_NAME && !exclude ? "symbol" : "item", sym);
				goto out;
			}
		}
		char **grown = realloc(list, (nlist + 1) * sizeof(*list));
		if (!grown || !(grown[nlist] = strdup(sym))) {
			list = grown ? grown : list;
			r = kl__conf_fail(err, n, "out of memory");
			goto out;
		}
		list = grown;
		nlist++;
		p = *e ? e + 1 : e;
	}
	{
		bool included = false;
		for (size_t i = 0; i < nlist; i++)
			included |= list[i][0] != '-';
		if (nlist && !included) {
			r = kl__conf_fail(err, n,
					  "only exclusions: name symbols or patterns to "
					  "exclude from (all, *USDT...)");
			goto out;
		}
	}
	if (nlist == 0) {
		r = kl__conf_fail(err, n, "no symbol given");
		goto out;
	}
	free_list(c->symbols, c->nsymbols);
	c->symbols = list;
	c->nsymbols = nlist;
	return 0;
out:
	free_list(list, nlist);
	return r;
}

static int set_symbols(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n)
{
	(void)k;
	return symbols_apply(c, v, false, err, n);
}

/* The min of a URL key is the scheme it accepts: 0 http(s), 1 ws(s), 2 http(s), off or auto. */
static int set_url(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n)
{
	size_t len;
	char *s;

	if (k->min == 2 && (strcmp(v, "off") == 0 || strcmp(v, "auto") == 0))
		return replace_str(str_field(c, k), v, err, n);

	if (kl__conf_check_url(v, k->min == 1, &len, err, n) < 0)
		return -EINVAL;
	s = strndup(v, len);
	if (!s)
		return kl__conf_fail(err, n, "out of memory");
	free(*str_field(c, k));
	*str_field(c, k) = s;
	return 0;
}

static int set_history(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n)
{
	int64_t x;
	const char *end;

	(void)k;
	if (strcmp(v, "listing") == 0) {
		c->history_kind = KL_HISTORY_LISTING;
		c->history_value = 0;
		return 0;
	}
	if (kl_day_parse(v, &x) == 0) {
		c->history_kind = KL_HISTORY_DATE;
		c->history_value = x;
		return 0;
	}
	if (kl__conf_uint(v, 36500, &x, &end) == 0 && strcmp(end, "d") == 0) {
		c->history_kind = KL_HISTORY_DAYS;
		c->history_value = x;
		return 0;
	}
	return kl__conf_fail(err, n, "'%s' is not YYYY-MM-DD, Nd (N up to 36500) or listing", v);
}

static int set_duration(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"ms", 1},	   {"s", 1000},	   {"", 1000},
		     {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	int64_t x;
	const char *end;

	if (kl__conf_uint(v, INT32_MAX, &x, &end) == 0) {
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			if (strcmp(end, units[i].unit) != 0)
				continue;
			x *= units[i].ms;
			if (x < k->min || x > k->max)
				break;
			*int_field(c, k) = x;
			return 0;
		}
	}
	return kl__conf_fail(err, n,
			     "'%s' is not a duration between %lldms and %lldms (e.g. 90s, 30m, 1h)",
			     v, (long long)k->min, (long long)k->max);
}

static int set_int(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n)
{
	int64_t x;
	const char *end;

	if (kl__conf_uint(v, k->max, &x, &end) < 0 || *end || x < k->min)
		return kl__conf_fail(err, n, "'%s' is not an integer from %lld to %lld", v,
				     (long long)k->min, (long long)k->max);
	*int_field(c, k) = x;
	return 0;
}

/* exchangeInfo costs 20 and 5% of the limit is kept for other clients: below 21 nothing starts. */
static int set_weight(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n)
{
	int64_t x;
	const char *end;

	if (kl__conf_uint(v, k->max, &x, &end) < 0 || *end || (x != 0 && x < KL_CONF_WEIGHT_MIN))
		return kl__conf_fail(
		    err, n,
		    "'%s' is not 0 (the exchange's limit) or an integer from %d to %lld "
		    "(exchangeInfo alone costs 20)",
		    v, KL_CONF_WEIGHT_MIN, (long long)k->max);
	*int_field(c, k) = x;
	return 0;
}

static int set_level(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n)
{
	(void)k;
	if (kl_log_level_parse(v, &c->log_level) < 0)
		return kl__conf_fail(err, n, "'%s' is not one of error, warn, info, debug", v);
	return 0;
}

static int set_listen(struct kl_conf *c, const struct key *k, const char *v, char *err, size_t n)
{
	if (strcmp(v, "off") != 0 && kl__conf_check_listen(v, err, n) < 0)
		return -EINVAL;
	return replace_str(str_field(c, k), v, err, n);
}

int kl_conf_new(struct kl_conf **ret)
{
	struct kl_conf *c = calloc(1, sizeof(*c));
	char err[256];

	if (!c)
		return -ENOMEM;
	c->log_level = KL_LOG_INFO;
	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].set(c, &keys[i], keys[i].info.def, err, sizeof(err)) < 0) {
			kl_conf_free(c);
			return -ENOMEM;
		}
	}
	*ret = c;
	return 0;
}

struct kl_conf *kl_conf_free(struct kl_conf *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].set == set_str || keys[i].set == set_path || keys[i].set == set_url ||
		    keys[i].set == set_listen || keys[i].set == set_brokers ||
		    keys[i].set == set_topic)
			free(*str_field(c, &keys[i]));
	}
	free_list(c->symbols, c->nsymbols);
	free_list(c->kafka_props, c->nkafka_props);
	free(c);
	return NULL;
}

/* librdkafka properties pass through, kcat -X style. */
static int add_kafka_prop(struct kl_conf *c, const char *name, const char *v, char *err, size_t n)
{
	size_t len = strlen(name) + strlen(v) + 2;
	char **grown = realloc(c->kafka_props, (c->nkafka_props + 1) * sizeof(*grown));
	char *s;

	if (!grown)
		return kl__conf_fail(err, n, "out of memory");
	c->kafka_props = grown;
	s = malloc(len);
	if (!s)
		return kl__conf_fail(err, n, "out of memory");
	snprintf(s, len, "%s=%s", name, v);
	c->kafka_props[c->nkafka_props++] = s;
	return 0;
}

int kl_conf_set_key(struct kl_conf *c, const char *section, const char *name, const char *value,
		    char *msg, size_t n)
{
	if (strcmp(section, "kafka") == 0 && strncmp(name, "librdkafka.", 11) == 0)
		return add_kafka_prop(c, name + 11, value, msg, n);
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].info.section, section) != 0 ||
		    strcmp(keys[i].info.key, name) != 0)
			continue;
		return keys[i].set(c, &keys[i], value, msg, n);
	}
	return -ENOENT;
}

int kl_conf_add_symbols(struct kl_conf *c, const char *value, char *msg, size_t n)
{
	return symbols_apply(c, value, true, msg, n);
}

int kl_conf_set_option(struct kl_conf *c, const char *option, const char *value, char *err,
		       size_t errlen)
{
	char msg[256];

	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].info.option, option) != 0)
			continue;
		if (keys[i].set(c, &keys[i], value, msg, sizeof(msg)) == 0)
			return 0;
		snprintf(err, errlen, "--%s ([%s] %s): %s", option, keys[i].info.section,
			 keys[i].info.key, msg);
		return -EINVAL;
	}
	return -ENOENT;
}

/*
 * data.binance.vision holds binance.com's spot klines: right for Binance's own
 * API hosts, wrong for another exchange's (api.binance.us) or a mirror with
 * other data, where "auto" means no archive.
 */
const char *kl_conf_archive_url(const struct kl_conf *c)
{
	static const char *const binance[] = {
	    "https://api.binance.com",	      "https://api1.binance.com",
	    "https://api2.binance.com",	      "https://api3.binance.com",
	    "https://api4.binance.com",	      "https://api-gcp.binance.com",
	    "https://data-api.binance.vision"};

	if (!c->archive_url || strcmp(c->archive_url, "off") == 0)
		return NULL;
	if (strcmp(c->archive_url, "auto") != 0)
		return c->archive_url;
	for (size_t i = 0; i < sizeof(binance) / sizeof(*binance); i++)
		if (c->rest_url && strcmp(c->rest_url, binance[i]) == 0)
			return "https://data.binance.vision";
	return NULL;
}

const struct kl_conf_info *kl_conf_info(size_t i)
{
	return i < NKEYS ? &keys[i].info : NULL;
}
