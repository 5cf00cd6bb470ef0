/*
 * lib/conf from the command line: every option, the symbol lists and
 * patterns, URLs, durations, the history's start, the listen address and
 * log level, the archives' URL, and values longer than any INI line.
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
