/*
 * lib/conf: the defaults are the contract's (CONTRACT.md, "Command line"),
 * every key parses from INI text and from its option, and every refusal
 * says where (file:line, or --option) and which key, and leaves the old
 * value in place.
 */
#include "conf.h"
#include "conf_test.h"

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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
