/*
 * lib/conf: the defaults are the contract's (CONTRACT.md, "Command line"),
 * every key parses from INI text and from its option, and every refusal
 * says where (file:line, or --option) and which key, and leaves the old
 * value in place.
 */
#include "conf.h"

#include "day.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define D0 1672531200000LL /* 2023-01-01 */

static int setup(void **state)
{
	struct kl_conf *c = NULL;

	if (kl_conf_new(&c) < 0 || !c)
		return -1;
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	assert_null(kl_conf_free(*state));
	return 0;
}

static int load(struct kl_conf *c, const char *text, char *err, size_t n)
{
	err[0] = '\0';
	return kl_conf_load_ini(c, text, "klined.conf", err, n);
}

static void load_ok(struct kl_conf *c, const char *text)
{
	char err[512];

	if (load(c, text, err, sizeof(err)) != 0)
		fail_msg("refused: %s\n%s", err, text);
}

static void option_ok(struct kl_conf *c, const char *option, const char *value)
{
	char err[512] = "";

	if (kl_conf_set_option(c, option, value, err, sizeof(err)) != 0)
		fail_msg("--%s=%s refused: %s", option, value, err);
}

static void assert_prefix(const char *s, const char *prefix)
{
	if (strncmp(s, prefix, strlen(prefix)) != 0)
		fail_msg("\"%s\" does not start with \"%s\"", s, prefix);
}

static void assert_str_or_null(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

/* Every field of two configurations equal. */
static void assert_conf_equal(const struct kl_conf *a, const struct kl_conf *b)
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

static void defaults(void **state)
{
	struct kl_conf *c = *state;

	assert_string_equal(c->db_path, "/var/lib/klined/klined.db");
	assert_int_equal(c->nsymbols, 2);
	assert_string_equal(c->symbols[0], "BTCUSDT");
	assert_string_equal(c->symbols[1], "ETHUSDT");
	assert_string_equal(c->rest_url, "https://api.binance.com");
	assert_string_equal(c->ws_url, "wss://stream.binance.com:9443");
	assert_null(c->ca_file);
	assert_int_equal(c->history_kind, KL_HISTORY_DAYS);
	assert_int_equal(c->history_value, 365);
	assert_string_equal(c->kafka_brokers, "localhost:9092");
	assert_string_equal(c->kafka_topic, "binance.kline.1m");
	assert_string_equal(c->kafka_group, "klined");
	assert_int_equal(c->nkafka_props, 0);
	assert_int_equal(c->watermark_ms, 3600000);
	assert_int_equal(c->log_level, KL_LOG_INFO);
	assert_string_equal(c->http_listen, "127.0.0.1:8642");
	assert_int_equal(c->rest_concurrency, 64);
	assert_int_equal(c->symbols_refresh_ms, 3600000);
	assert_int_equal(c->rest_timeout_ms, 10000);
	assert_int_equal(c->rest_weight_limit, 0);
	assert_int_equal(c->rest_refusal_pause_ms, 60000);
}

/* The table behind --help names the contract's options, keys and defaults. */
static void info_table(void **state)
{
	static const struct kl_conf_info contract[] = {
	    {"store", "path", "db", "/var/lib/klined/klined.db", NULL, NULL},
	    {"exchange", "symbols", "symbols", "BTCUSDT,ETHUSDT", NULL, NULL},
	    {"exchange", "rest_url", "rest-url", "https://api.binance.com", NULL, NULL},
	    {"exchange", "ws_url", "ws-url", "wss://stream.binance.com:9443", NULL, NULL},
	    {"exchange", "history_start", "history-start", "365d", NULL, NULL},
	    {"kafka", "brokers", "kafka-brokers", "localhost:9092", NULL, NULL},
	    {"kafka", "topic", "kafka-topic", "binance.kline.1m", NULL, NULL},
	    {"kafka", "group", "kafka-group", "klined", NULL, NULL},
	    {"stream", "watermark", "watermark", "1h", NULL, NULL},
	    {"log", "level", "log-level", "info", NULL, NULL},
	    {"http", "listen", "http-listen", "127.0.0.1:8642", NULL, NULL},
	};
	struct kl_conf *c = *state;
	size_t n = 0;

	for (const struct kl_conf_info *i; (i = kl_conf_info(n)); n++) {
		char err[256] = "";

		assert_non_null(i->section);
		assert_non_null(i->key);
		assert_non_null(i->option);
		assert_non_null(i->def);
		assert_non_null(i->help);
		assert_true(i->help[0] != '\0');
		assert_non_null(i->arg); /* --help's placeholder */
		assert_true(i->arg[0] >= 'A' && i->arg[0] <= 'Z');
		/* every default is valid as an option value */
		if (kl_conf_set_option(c, i->option, i->def, err, sizeof(err)) != 0)
			fail_msg("default of --%s refused: %s", i->option, err);
		for (size_t j = 0; j < n; j++)
			assert_string_not_equal(i->option, kl_conf_info(j)->option);
	}
	assert_true(n >= sizeof(contract) / sizeof(contract[0]));
	assert_null(kl_conf_info(n));
	assert_null(kl_conf_info(SIZE_MAX));
	for (size_t k = 0; k < sizeof(contract) / sizeof(contract[0]); k++) {
		size_t i = 0;

		while (i < n && strcmp(kl_conf_info(i)->option, contract[k].option) != 0)
			i++;
		if (i == n)
			fail_msg("no option --%s", contract[k].option);
		assert_string_equal(kl_conf_info(i)->section, contract[k].section);
		assert_string_equal(kl_conf_info(i)->key, contract[k].key);
		assert_string_equal(kl_conf_info(i)->def, contract[k].def);
	}
	/* Setting every default again changed nothing. */
	struct kl_conf *fresh;
	assert_int_equal(kl_conf_new(&fresh), 0);
	assert_conf_equal(c, fresh);
	kl_conf_free(fresh);
}

static void ini_every_key(void **state)
{
	struct kl_conf *c = *state;

	load_ok(c, "; klined.conf\n"
		   "# both comment styles\n"
		   "[store]\n"
		   "path = /srv/klined/k.db\n"
		   "\n"
		   "[exchange]\n"
		   "symbols = solusdt, BnbUsdt ,XRPUSDT\n"
		   "rest_url = http://127.0.0.1:8080/\n"
		   "ws_url = ws://127.0.0.1:9443/\n"
		   "history_start = 2023-01-01\n"
		   "ca_file = /etc/ssl/certs/ca.pem\n"
		   "[kafka]\n"
		   "brokers = k1:9092,k2:9092\n"
		   "topic = test.kline\n"
		   "group = g1\n"
		   "[stream]\n"
		   "watermark = 90s\n"
		   "[log]\n"
		   "level = debug\n"
		   "[http]\n"
		   "listen = 0.0.0.0:9000\n"
		   "[rest]\n"
		   "concurrency = 4\n"
		   "timeout = 30s\n"
		   "weight_limit = 1200\n"
		   "refusal_pause = 5s\n");
	assert_string_equal(c->db_path, "/srv/klined/k.db");
	assert_int_equal(c->nsymbols, 3);
	assert_string_equal(c->symbols[0], "SOLUSDT");
	assert_string_equal(c->symbols[1], "BNBUSDT");
	assert_string_equal(c->symbols[2], "XRPUSDT");
	assert_string_equal(c->rest_url, "http://127.0.0.1:8080");
	assert_string_equal(c->ws_url, "ws://127.0.0.1:9443");
	assert_int_equal(c->history_kind, KL_HISTORY_DATE);
	assert_int_equal(c->history_value, D0);
	assert_string_equal(c->ca_file, "/etc/ssl/certs/ca.pem");
	assert_string_equal(c->kafka_brokers, "k1:9092,k2:9092");
	assert_string_equal(c->kafka_topic, "test.kline");
	assert_string_equal(c->kafka_group, "g1");
	assert_int_equal(c->watermark_ms, 90000);
	assert_int_equal(c->log_level, KL_LOG_DEBUG);
	assert_string_equal(c->http_listen, "0.0.0.0:9000");
	assert_int_equal(c->rest_concurrency, 4);
	assert_int_equal(c->rest_timeout_ms, 30000);
	assert_int_equal(c->rest_weight_limit, 1200);
	assert_int_equal(c->rest_refusal_pause_ms, 5000);
	assert_int_equal(c->nkafka_props, 0);
}

static void ini_layout(void **state)
{
	struct kl_conf *c = *state;

	/* Empty text and comments only change nothing. */
	load_ok(c, "");
	load_ok(c, "# nothing\n\n; here\n");
	/* Whitespace around names and values, inline comments, CRLF, ':'. */
	load_ok(c, "[store]\r\n  path   =   /tmp/a.db   ; inline\r\n");
	assert_string_equal(c->db_path, "/tmp/a.db");
	load_ok(c, "[kafka]\ngroup: g2\n");
	assert_string_equal(c->kafka_group, "g2");
	/* Sections may repeat; a key given twice is refused, naming both lines. */
	load_ok(c, "[store]\npath = /b\n[log]\nlevel = warn\n[store]\n");
	assert_string_equal(c->db_path, "/b");
	assert_int_equal(c->log_level, KL_LOG_WARN);
	/* A second file overrides only what it names. */
	load_ok(c, "[log]\nlevel = error\n");
	assert_string_equal(c->db_path, "/b");
	assert_int_equal(c->log_level, KL_LOG_ERROR);
	{
		char err[512];
		assert_int_equal(load(c, "[log]\nlevel = info\n[store]\n[log]\nlevel = warn\n", err,
				      sizeof(err)),
				 -EINVAL);
		assert_string_equal(err, "klined.conf:5: [log] level: given twice (lines 2 and 5)");
		/* Continuation lines add symbols; for other keys they are refused. */
		load_ok(c, "[exchange]\nsymbols = btcusdt,\n  ETHUSDT, BNBUSDT\n\tSOLUSDT\n");
		assert_int_equal(c->nsymbols, 4);
		assert_string_equal(c->symbols[3], "SOLUSDT");
		assert_int_equal(load(c, "[store]\npath = /c\n  /d\n", err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "klined.conf:3: [store] path: continuation line"));
	}
}

struct bad {
	const char *section, *key, *value;
};

static const struct bad bad_values[] = {
    {"store", "path", ""},
    {"store", "path", "/tmp/a\001b"},
    {"exchange", "symbols", ""},
    {"exchange", "symbols", "BTC-USDT"},
    {"exchange", "symbols", "BTCUSDT,btcusdt"},
    {"exchange", "symbols", "B"},
    {"exchange", "symbols", "ABCDEFGHIJKLMNOPQRSTU"},
    {"exchange", "symbols", "BTCUSDT,,ETHUSDT"},
    {"exchange", "symbols", ",BTCUSDT"},
    {"exchange", "symbols", "BTC/USDT"},
    {"exchange", "rest_url", "api.binance.com"},
    {"exchange", "rest_url", "ftp://api.binance.com"},
    {"exchange", "rest_url", "wss://stream.binance.com:9443"},
    {"exchange", "rest_url", "https://"},
    {"exchange", "rest_url", "https:///"},
    {"exchange", "rest_url", "https://api binance.com"},
    {"exchange", "rest_url", "https://api.binance.com/?x=1"},
    {"exchange", "rest_url", "https://api.binance.com/#x"},
    {"exchange", "ws_url", "https://stream.binance.com:9443"},
    {"exchange", "ws_url", "ws://"},
    {"exchange", "ws_url", ""},
    {"exchange", "history_start", "2023-02-29"},
    {"exchange", "history_start", "2023-1-01"},
    {"exchange", "history_start", "1969-12-31"},
    {"exchange", "history_start", "36501d"},
    {"exchange", "history_start", "d"},
    {"exchange", "history_start", "-1d"},
    {"exchange", "history_start", "30"},
    {"exchange", "history_start", "30 d"},
    {"exchange", "history_start", "yesterday"},
    {"exchange", "history_start", ""},
    {"exchange", "ca_file", "/tmp/a\002b"},
    {"kafka", "brokers", ""},
    {"kafka", "brokers", "localhost"},
    {"kafka", "brokers", "localhost:"},
    {"kafka", "brokers", ":9092"},
    {"kafka", "brokers", "k1:9092,"},
    {"kafka", "brokers", "k1:9092,,k2:9092"},
    {"kafka", "brokers", "k1:99999"},
    {"kafka", "brokers", "k1:0"},
    {"kafka", "brokers", "k1 :9092"},
    {"kafka", "brokers", "OFF"},
    {"kafka", "topic", ""},
    {"kafka", "topic", "bad topic"},
    {"kafka", "topic", "a/b"},
    {"kafka", "topic", ".."},
    {"kafka", "group", ""},
    {"kafka", "group", "a\033b"},
    {"stream", "watermark", ""},
    {"stream", "watermark", "8d"},
    {"stream", "watermark", "1x"},
    {"stream", "watermark", "h"},
    {"stream", "watermark", "-1s"},
    {"stream", "watermark", "1.5h"},
    {"stream", "watermark", "1 h"},
    {"stream", "watermark", "1H"},
    {"stream", "watermark", "99999999999s"},
    {"log", "level", ""},
    {"log", "level", "verbose"},
    {"http", "listen", ""},
    {"http", "listen", "8642"},
    {"http", "listen", ":8642"},
    {"http", "listen", "localhost:"},
    {"http", "listen", "localhost:0"},
    {"http", "listen", "localhost:65536"},
    {"http", "listen", "localhost:86x"},
    {"http", "listen", "example.com:8642"},
    {"http", "listen", "eth0:8642"},
    {"http", "listen", "[127.0.0.1]x:8642"},
    {"http", "listen", "[]:8642"},
    {"http", "listen", "256.0.0.1:8642"},
    {"rest", "concurrency", ""},
    {"rest", "concurrency", "0"},
    {"rest", "concurrency", "65"},
    {"rest", "concurrency", "-1"},
    {"rest", "concurrency", "8x"},
    {"rest", "timeout", "99ms"},
    {"rest", "timeout", "601s"},
    {"rest", "timeout", "0"},
    {"rest", "weight_limit", "1000001"},
    {"rest", "weight_limit", "-1"},
    {"rest", "weight_limit", "many"},
    {"rest", "weight_limit", "1"},
    {"rest", "weight_limit", "20"},
};

/* A bad value of any key: -EINVAL, "file:line: [section] key: ...", no change. */
static void ini_bad_values(void **state)
{
	struct kl_conf *c = *state, *fresh;

	assert_int_equal(kl_conf_new(&fresh), 0);
	for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
		const struct bad *b = &bad_values[i];
		char text[256], err[512], want[128];

		snprintf(text, sizeof(text), "# line 1\n[%s]\n%s = %s\n", b->section, b->key,
			 b->value);
		if (load(c, text, err, sizeof(err)) != -EINVAL)
			fail_msg("[%s] %s = \"%s\" accepted", b->section, b->key, b->value);
		snprintf(want, sizeof(want), "klined.conf:3: [%s] %s: ", b->section, b->key);
		assert_prefix(err, want);
		assert_true(strlen(err) > strlen(want) + 5);
		assert_conf_equal(c, fresh);
	}
	kl_conf_free(fresh);
}

static void ini_errors(void **state)
{
	struct kl_conf *c = *state;
	char err[512];

	assert_int_equal(load(c, "[store]\npaht = /x\n", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "klined.conf:2: [store] paht: unknown key");
	assert_int_equal(load(c, "[storage]\n\npath = /x\n", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "klined.conf:3: [storage] path: unknown key");
	assert_int_equal(load(c, "path = /x\n", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "klined.conf:1: [] path: unknown key");
	/* librdkafka.* passes through from [kafka] only */
	assert_int_equal(load(c, "[exchange]\nlibrdkafka.acks = all\n", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "klined.conf:2: [exchange] librdkafka.acks: unknown key");
	assert_int_equal(c->nkafka_props, 0);

	assert_int_equal(load(c, "[store]\npath\n", err, sizeof(err)), -EINVAL);
	assert_prefix(err, "klined.conf:2: syntax error");
	assert_int_equal(load(c, "[store\npath = /x\n", err, sizeof(err)), -EINVAL);
	assert_prefix(err, "klined.conf:1: syntax error");
	assert_string_equal(c->db_path, "/var/lib/klined/klined.db");

	/* A short buffer gets a truncated, terminated message. */
	memset(err, 'x', sizeof(err));
	assert_int_equal(kl_conf_load_ini(c, "[store]\npath =\n", "klined.conf", err, 12), -EINVAL);
	assert_string_equal(err, "klined.conf");
	assert_int_equal(err[12], 'x');
}

/* With several problems, the message is about the first one, at its line. */
static void ini_first_error(void **state)
{
	struct kl_conf *c = *state;
	char err[512];

	assert_int_equal(load(c, "[store]\nfoo = 1\nbar = 2\n", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "klined.conf:2: [store] foo: unknown key");
	assert_int_equal(
	    load(c, "[log]\nlevel = loud\n[rest]\nconcurrency = 0\n", err, sizeof(err)), -EINVAL);
	assert_prefix(err, "klined.conf:2: [log] level: ");
	/* a syntax error before a bad key */
	assert_int_equal(load(c, "[store]\npath\nfoo = 1\n", err, sizeof(err)), -EINVAL);
	assert_prefix(err, "klined.conf:2: syntax error");
	/* a bad key before a syntax error */
	assert_int_equal(load(c, "[store]\nfoo = 1\npath\n", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "klined.conf:2: [store] foo: unknown key");
}

static void kafka_props(void **state)
{
	struct kl_conf *c = *state;

	load_ok(c, "[kafka]\n"
		   "brokers = b:9092\n"
		   "librdkafka.security.protocol = SASL_SSL\n"
		   "librdkafka.sasl.mechanisms=PLAIN\n"
		   "librdkafka.queue.buffering.max.ms = 5\n");
	assert_string_equal(c->kafka_brokers, "b:9092");
	assert_int_equal(c->nkafka_props, 3);
	assert_string_equal(c->kafka_props[0], "security.protocol=SASL_SSL");
	assert_string_equal(c->kafka_props[1], "sasl.mechanisms=PLAIN");
	assert_string_equal(c->kafka_props[2], "queue.buffering.max.ms=5");
}

static void options(void **state)
{
	struct kl_conf *c = *state, *fresh;
	char err[512] = "";

	option_ok(c, "db", "/tmp/k.db");
	assert_string_equal(c->db_path, "/tmp/k.db");
	option_ok(c, "symbols", "btcusdt");
	assert_int_equal(c->nsymbols, 1);
	assert_string_equal(c->symbols[0], "BTCUSDT");
	option_ok(c, "rest-url", "http://localhost:8080/");
	assert_string_equal(c->rest_url, "http://localhost:8080");
	option_ok(c, "ws-url", "ws://localhost:9443");
	assert_string_equal(c->ws_url, "ws://localhost:9443");
	option_ok(c, "history-start", "listing");
	assert_int_equal(c->history_kind, KL_HISTORY_LISTING);
	option_ok(c, "ca-file", "/ca.pem");
	assert_string_equal(c->ca_file, "/ca.pem");
	option_ok(c, "ca-file", "");
	assert_null(c->ca_file);
	option_ok(c, "kafka-brokers", "k:1");
	assert_string_equal(c->kafka_brokers, "k:1");
	option_ok(c, "kafka-topic", "t");
	assert_string_equal(c->kafka_topic, "t");
	option_ok(c, "kafka-group", "g");
	assert_string_equal(c->kafka_group, "g");
	option_ok(c, "watermark", "30m");
	assert_int_equal(c->watermark_ms, 1800000);
	option_ok(c, "log-level", "warn");
	assert_int_equal(c->log_level, KL_LOG_WARN);
	option_ok(c, "http-listen", "off");
	assert_string_equal(c->http_listen, "off");
	option_ok(c, "rest-concurrency", "64");
	assert_int_equal(c->rest_concurrency, 64);
	option_ok(c, "rest-timeout", "100ms");
	assert_int_equal(c->rest_timeout_ms, 100);
	option_ok(c, "rest-weight-limit", "6000");
	assert_int_equal(c->rest_weight_limit, 6000);

	assert_int_equal(kl_conf_new(&fresh), 0);
	assert_int_equal(kl_conf_set_option(fresh, "history-start", "2023-02-29", err, sizeof(err)),
			 -EINVAL);
	assert_prefix(err, "--history-start ([exchange] history_start): ");
	assert_non_null(strstr(err, "2023-02-29"));
	assert_int_equal(kl_conf_set_option(fresh, "rest-concurrency", "0", err, sizeof(err)),
			 -EINVAL);
	assert_prefix(err, "--rest-concurrency ([rest] concurrency): ");
	/* Unknown options, and names with their dashes, are not options. */
	assert_int_equal(kl_conf_set_option(fresh, "history_start", "30d", err, sizeof(err)),
			 -ENOENT);
	assert_int_equal(kl_conf_set_option(fresh, "--db", "/x", err, sizeof(err)), -ENOENT);
	assert_int_equal(kl_conf_set_option(fresh, "", "/x", err, sizeof(err)), -ENOENT);
	assert_int_equal(kl_conf_set_option(fresh, "config", "/x", err, sizeof(err)), -ENOENT);
	struct kl_conf *ref;
	assert_int_equal(kl_conf_new(&ref), 0);
	assert_conf_equal(fresh, ref);
	kl_conf_free(ref);
	kl_conf_free(fresh);
}

static void symbols(void **state)
{
	struct kl_conf *c = *state;
	char err[256];

	option_ok(c, "symbols", " btcusdt , EthUsdt,1000SATSUSDT ");
	assert_int_equal(c->nsymbols, 3);
	assert_string_equal(c->symbols[0], "BTCUSDT");
	assert_string_equal(c->symbols[1], "ETHUSDT");
	assert_string_equal(c->symbols[2], "1000SATSUSDT");
	option_ok(c, "symbols", "ABCDEFGHIJKLMNOPQRST"); /* 20: the longest */
	assert_int_equal(c->nsymbols, 1);
	assert_string_equal(c->symbols[0], "ABCDEFGHIJKLMNOPQRST");
	option_ok(c, "symbols", "AB");
	assert_string_equal(c->symbols[0], "AB");

	assert_int_equal(
	    kl_conf_set_option(c, "symbols", "BTCUSDT,ethusdt,btcusdt", err, sizeof(err)), -EINVAL);
	assert_prefix(err, "--symbols ([exchange] symbols): ");
	assert_non_null(strstr(err, "BTCUSDT"));
	assert_int_equal(kl_conf_set_option(c, "symbols", "BTCUSDT,ETH_USDT", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "ETH_USDT"));
	assert_int_equal(
	    kl_conf_set_option(c, "symbols", "BTCUSDT,ETHUSDT\xc3\xa9", err, sizeof(err)), -EINVAL);
	assert_int_equal(kl_conf_set_option(c, "symbols", "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGH", err,
					    sizeof(err)),
			 -EINVAL);
	/* refused lists leave the previous one */
	assert_int_equal(c->nsymbols, 1);
	assert_string_equal(c->symbols[0], "AB");
}

static void urls(void **state)
{
	struct kl_conf *c = *state;
	char err[256];

	option_ok(c, "rest-url", "https://api.binance.com/");
	assert_string_equal(c->rest_url, "https://api.binance.com");
	option_ok(c, "rest-url", "https://api.binance.com///");
	assert_string_equal(c->rest_url, "https://api.binance.com");
	option_ok(c, "rest-url", "https://api1.binance.com/base/");
	assert_string_equal(c->rest_url, "https://api1.binance.com/base");
	option_ok(c, "rest-url", "http://127.0.0.1:8080");
	assert_string_equal(c->rest_url, "http://127.0.0.1:8080");
	option_ok(c, "ws-url", "wss://stream.binance.com:9443/");
	assert_string_equal(c->ws_url, "wss://stream.binance.com:9443");
	option_ok(c, "ws-url", "ws://[::1]:9443");
	assert_string_equal(c->ws_url, "ws://[::1]:9443");

	assert_int_equal(kl_conf_set_option(c, "rest-url", "ws://127.0.0.1", err, sizeof(err)),
			 -EINVAL);
	assert_prefix(err, "--rest-url ([exchange] rest_url): ");
	assert_int_equal(kl_conf_set_option(c, "ws-url", "http://127.0.0.1", err, sizeof(err)),
			 -EINVAL);
	assert_prefix(err, "--ws-url ([exchange] ws_url): ");
	assert_int_equal(kl_conf_set_option(c, "rest-url", "HTTPS://x", err, sizeof(err)), -EINVAL);
	assert_int_equal(kl_conf_set_option(c, "ws-url", "wss:///", err, sizeof(err)), -EINVAL);
	/* Ports out of range, an unclosed or bad IPv6, no host: refused, not retried forever. */
	static const char *const bad[] = {
	    "http://127.0.0.1:99999", "http://127.0.0.1:0", "http://[::1",
	    "http://[zz]:80",	      "http://:80",	    "http://host:",
	    "http://u@host",	      "http://ho st"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (kl_conf_set_option(c, "rest-url", bad[i], err, sizeof(err)) != -EINVAL)
			fail_msg("%s taken", bad[i]);
	}
	option_ok(c, "rest-url", "http://localhost:65535/x");
	option_ok(c, "rest-url", "http://127.0.0.1:8080");
	assert_string_equal(c->rest_url, "http://127.0.0.1:8080");
	assert_string_equal(c->ws_url, "ws://[::1]:9443");
}

static void durations(void **state)
{
	static const struct {
		const char *v;
		int64_t ms;
	} ok[] = {{"90s", 90000},      {"30m", 1800000},	  {"1h", 3600000},
		  {"500ms", 500},      {"120", 120000},		  {"0", 0},
		  {"0ms", 0},	       {"1d", 86400000},	  {"7d", 604800000},
		  {"168h", 604800000}, {"604800000ms", 604800000}};
	struct kl_conf *c = *state;
	char err[256];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		option_ok(c, "watermark", ok[i].v);
		assert_int_equal(c->watermark_ms, ok[i].ms);
	}
	assert_int_equal(kl_conf_set_option(c, "watermark", "604800001ms", err, sizeof(err)),
			 -EINVAL);
	assert_prefix(err, "--watermark ([stream] watermark): '604800001ms' ");
	assert_int_equal(kl_conf_set_option(c, "watermark", "5y", err, sizeof(err)), -EINVAL);
	assert_int_equal(kl_conf_set_option(c, "watermark", "ms", err, sizeof(err)), -EINVAL);
	assert_int_equal(kl_conf_set_option(c, "watermark", "1hh", err, sizeof(err)), -EINVAL);
	assert_int_equal(kl_conf_set_option(c, "watermark", "1h30m", err, sizeof(err)), -EINVAL);
	assert_int_equal(c->watermark_ms, 604800000);

	option_ok(c, "rest-timeout", "10m");
	assert_int_equal(c->rest_timeout_ms, 600000);
	option_ok(c, "rest-timeout", "1");
	assert_int_equal(c->rest_timeout_ms, 1000);
	assert_int_equal(kl_conf_set_option(c, "rest-timeout", "99ms", err, sizeof(err)), -EINVAL);
	assert_int_equal(c->rest_timeout_ms, 1000);

	/* A private mirror may refuse for a moment; 30 min is where the doubling stops. */
	option_ok(c, "rest-refusal-pause", "100ms");
	assert_int_equal(c->rest_refusal_pause_ms, 100);
	option_ok(c, "rest-refusal-pause", "30m");
	assert_int_equal(c->rest_refusal_pause_ms, 1800000);
	option_ok(c, "rest-refusal-pause", "2");
	assert_int_equal(c->rest_refusal_pause_ms, 2000);
	assert_int_equal(kl_conf_set_option(c, "rest-refusal-pause", "99ms", err, sizeof(err)),
			 -EINVAL);
	assert_prefix(err, "--rest-refusal-pause ([rest] refusal_pause): '99ms' ");
	assert_int_equal(kl_conf_set_option(c, "rest-refusal-pause", "1801s", err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(kl_conf_set_option(c, "rest-refusal-pause", "0", err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(c->rest_refusal_pause_ms, 2000);
}

static void history(void **state)
{
	struct kl_conf *c = *state;

	option_ok(c, "history-start", "2024-02-29");
	assert_int_equal(c->history_kind, KL_HISTORY_DATE);
	assert_int_equal(c->history_value, 1709164800000LL);
	option_ok(c, "history-start", "30d");
	assert_int_equal(c->history_kind, KL_HISTORY_DAYS);
	assert_int_equal(c->history_value, 30);
	option_ok(c, "history-start", "36500d");
	assert_int_equal(c->history_value, 36500);
	option_ok(c, "history-start", "listing");
	assert_int_equal(c->history_kind, KL_HISTORY_LISTING);
	option_ok(c, "history-start", "1970-01-01");
	assert_int_equal(c->history_kind, KL_HISTORY_DATE);
	assert_int_equal(c->history_value, 0);
}

static void listen_and_level(void **state)
{
	static const char *const listen[] = {
	    "off", "0.0.0.0:80", "[::1]:8642", "localhost:65535", "127.0.0.1:1", "[::]:8642"};
	static const struct {
		const char *v;
		enum kl_log_level l;
	} levels[] = {{"error", KL_LOG_ERROR},
		      {"warn", KL_LOG_WARN},
		      {"warning", KL_LOG_WARN},
		      {"info", KL_LOG_INFO},
		      {"debug", KL_LOG_DEBUG}};
	struct kl_conf *c = *state;

	for (size_t i = 0; i < sizeof(listen) / sizeof(listen[0]); i++) {
		option_ok(c, "http-listen", listen[i]);
		assert_string_equal(c->http_listen, listen[i]);
	}
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		option_ok(c, "log-level", levels[i].v);
		assert_int_equal(c->log_level, levels[i].l);
	}
}

/* auto: Binance's archives only for Binance's own REST hosts. */
static void archive_url(void **state)
{
	struct kl_conf *c = *state;
	char err[256];

	assert_string_equal(c->archive_url, "auto");
	assert_string_equal(kl_conf_archive_url(c), "https://data.binance.vision");
	option_ok(c, "rest-url", "https://api3.binance.com/");
	assert_string_equal(kl_conf_archive_url(c), "https://data.binance.vision");
	option_ok(c, "rest-url", "https://api.binance.us");
	assert_null(kl_conf_archive_url(c));
	option_ok(c, "rest-url", "http://127.0.0.1:9000");
	assert_null(kl_conf_archive_url(c));
	option_ok(c, "archive-url", "http://127.0.0.1:9000/");
	assert_string_equal(kl_conf_archive_url(c), "http://127.0.0.1:9000");
	option_ok(c, "rest-url", "https://api.binance.com");
	load_ok(c, "[archive]\nurl = off\n");
	assert_null(kl_conf_archive_url(c));
	assert_int_equal(kl_conf_set_option(c, "archive-url", "ftp://x", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "archive-url"));
	assert_int_equal(load(c, "[archive]\nurl = sometimes\n", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "[archive] url"));
}

/* Long INI values (many symbols) must not be cut or misread. */
static void long_line(void **state)
{
	struct kl_conf *c = *state;
	char text[2048] = "[exchange]\nsymbols = ";
	char err[512];
	int r;

	for (int i = 0; i < 40; i++) {
		char sym[16];

		snprintf(sym, sizeof(sym), "%sSYM%02dUSDT", i ? "," : "", i);
		strcat(text, sym);
	}
	strcat(text, "\n");
	r = load(c, text, err, sizeof(err));
	if (r == 0) {
		assert_int_equal(c->nsymbols, 40);
		assert_string_equal(c->symbols[39], "SYM39USDT");
	} else {
		/* refusing is acceptable, silently dropping symbols is not */
		assert_int_equal(r, -EINVAL);
		assert_string_equal(err, "klined.conf:2: line too long");
		assert_int_equal(c->nsymbols, 2);
		/* an earlier problem is still the one reported */
		char both[2100];

		snprintf(both, sizeof(both), "[log]\nlevel = loud\n%s", text);
		assert_int_equal(load(c, both, err, sizeof(err)), -EINVAL);
		assert_prefix(err, "klined.conf:2: [log] level: ");
	}
	/* a line of ordinary length is fine */
	load_ok(c, "# a comment of a hundred and fifty characters, give or take a few: "
		   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
		   "[exchange]\n"
		   "symbols = BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,XRPUSDT,ADAUSDT,DOGEUSDT,TRXUSDT,"
		   "DOTUSDT,LTCUSDT,LINKUSDT\n");
	assert_int_equal(c->nsymbols, 11);
}

static void free_null(void **state)
{
	struct kl_conf *c = NULL;

	(void)state;
	assert_null(kl_conf_free(NULL));
	assert_int_equal(kl_conf_new(&c), 0);
	assert_non_null(c);
	/* A configuration with every optional field allocated frees cleanly. */
	load_ok(c, "[exchange]\nca_file = /ca.pem\n[kafka]\nlibrdkafka.a = 1\nlibrdkafka.b = 2\n");
	assert_null(kl_conf_free(c));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(info_table, setup, teardown),
	    cmocka_unit_test_setup_teardown(ini_every_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(ini_layout, setup, teardown),
	    cmocka_unit_test_setup_teardown(ini_bad_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(ini_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(ini_first_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(kafka_props, setup, teardown),
	    cmocka_unit_test_setup_teardown(options, setup, teardown),
	    cmocka_unit_test_setup_teardown(symbols, setup, teardown),
	    cmocka_unit_test_setup_teardown(urls, setup, teardown),
	    cmocka_unit_test_setup_teardown(durations, setup, teardown),
	    cmocka_unit_test_setup_teardown(history, setup, teardown),
	    cmocka_unit_test_setup_teardown(listen_and_level, setup, teardown),
	    cmocka_unit_test_setup_teardown(long_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(archive_url, setup, teardown),
	    cmocka_unit_test(free_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
