/*
 * klined's command line: `run` (the default), `status`, `import`.
 * Configuration is layered defaults < file < options, all through the
 * one table in lib/conf.c; any bad value exits 78 naming its key.
 */
#include "api.h"
#include "assets.h"
#include "backfill.h"
#include "bus.h"
#include "conf.h"
#include "import.h"
#include "log.h"
#include "run.h"
#include "store.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef KL_CONF_PATH
#define KL_CONF_PATH "/usr/local/etc/klined/klined.conf" /* meson passes sysconfdir's */
#endif

#define EXIT_CONFIG	    78
#define DEFAULT_CONFIG_PATH KL_CONF_PATH
#define CONFIG_MAX	    (1u << 20)

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: klined [run] [--config FILE] [--once] [OPTIONS]\n"
		"       klined status [--config FILE] [OPTIONS] [--json]\n"
		"       klined import [--config FILE] [OPTIONS] FILE...\n"
		"       klined --help | --version\n\n"
		"Keeps a complete, exact history of Binance spot 1m klines in SQLite.\n\n"
		"  --config FILE   INI configuration (default %s; a missing default is fine)\n"
		"  --once          run: stop once the store is current (for cron and tests)\n"
		"  --json          status: print JSON\n\n"
		"Options (each overrides its configuration key):\n",
		DEFAULT_CONFIG_PATH);
	for (size_t i = 0; kl_conf_info(i); i++) {
		const struct kl_conf_info *k = kl_conf_info(i);
		fprintf(out, "  --%-19s [%s] %s: %s (default %s)\n", k->option, k->section, k->key,
			k->help, *k->def ? k->def : "none");
	}
}

static int load_file(struct kl_conf *c, const char *path, bool named)
{
	FILE *f = fopen(path, "rb");
	char *text = NULL, err[512];
	size_t n;
	int r = 0;

	if (!f) {
		if (!named && errno == ENOENT)
			return 0;
		fprintf(stderr, "klined: --config: cannot read %s: %s\n", path, strerror(errno));
		return -EINVAL;
	}
	text = malloc(CONFIG_MAX + 1);
	if (!text) {
		r = -ENOMEM;
		goto out;
	}
	n = fread(text, 1, CONFIG_MAX + 1, f);
	if (ferror(f) || n > CONFIG_MAX) {
		fprintf(stderr, "klined: --config: cannot read %s: %s\n", path,
			ferror(f) ? strerror(errno) : "larger than 1 MiB");
		r = -EINVAL;
		goto out;
	}
	text[n] = '\0';
	if (memchr(text, '\0', n)) {
		fprintf(stderr, "klined: %s: not a text file\n", path);
		r = -EINVAL;
		goto out;
	}
	r = kl_conf_load_ini(c, text, path, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "klined: %s\n", err);
out:
	free(text);
	fclose(f);
	return r;
}

enum cmd { CMD_RUN, CMD_STATUS, CMD_IMPORT };

struct args {
	enum cmd cmd;
	const char *config;
	bool once, json;
	char **files;
	int nfiles;
};

/* Split "--name=value" or "--name value"; @return the value or NULL. */
static const char *opt_value(int argc, char **argv, int *i, char *name, size_t n)
{
	const char *a = argv[*i] + 2, *eq = strchr(a, '=');

	if (eq) {
		snprintf(name, n, "%.*s", (int)(eq - a), a);
		return eq + 1;
	}
	snprintf(name, n, "%s", a);
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

/* Pass 1 finds the command, --config and the flags; pass 2 applies options. */
static int parse_args(int argc, char **argv, struct kl_conf *c, struct args *a, bool apply)
{
	for (int i = 1; i < argc; i++) {
		char name[64], err[512];
		const char *v;
		int r;

		if (strcmp(argv[i], "--") == 0) {
			for (i++; i < argc; i++)
				a->files[a->nfiles++] = argv[i];
			break;
		}
		if (strncmp(argv[i], "--", 2) != 0) {
			if (i == 1 && !strcmp(argv[i], "run"))
				a->cmd = CMD_RUN;
			else if (i == 1 && !strcmp(argv[i], "status"))
				a->cmd = CMD_STATUS;
			else if (i == 1 && !strcmp(argv[i], "import"))
				a->cmd = CMD_IMPORT;
			else if (a->cmd == CMD_IMPORT)
				a->files[a->nfiles++] = argv[i];
			else {
				fprintf(stderr, "klined: unexpected argument '%s' (see --help)\n",
					argv[i]);
				return -EINVAL;
			}
			continue;
		}
		if (!strcmp(argv[i], "--once") || !strcmp(argv[i], "--json")) {
			a->once |= !strcmp(argv[i], "--once");
			a->json |= !strcmp(argv[i], "--json");
			continue;
		}
		v = opt_value(argc, argv, &i, name, sizeof(name));
		if (!v) {
			fprintf(stderr, "klined: --%s needs a value\n", name);
			return -EINVAL;
		}
		if (!strcmp(name, "config")) {
			a->config = v;
			continue;
		}
		if (!apply)
			continue;
		r = kl_conf_set_option(c, name, v, err, sizeof(err));
		if (r == -ENOENT) {
			fprintf(stderr, "klined: unknown option --%s (see --help)\n", name);
			return -EINVAL;
		}
		if (r < 0) {
			fprintf(stderr, "klined: %s\n", err);
			return -EINVAL;
		}
	}
	return 0;
}

static int status(const struct kl_conf *c, bool json)
{
	struct kl_store *st = NULL;
	json_t *j = NULL, *s;
	char err[512];
	size_t i;
	int r;

	r = kl_store_open(c->db_path, true, &st, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "klined: status: %s\n", err);
		return 1;
	}
	r = kl_api_status(st, &j);
	kl_store_close(st);
	if (r < 0) {
		fprintf(stderr, "klined: status: cannot read the store: %s\n", strerror(-r));
		return 1;
	}
	json_object_set_new(j, "db", json_string(c->db_path));
	if (json) {
		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(j);
		return 0;
	}
	printf("store %s (schema %lld)\n", c->db_path,
	       (long long)json_integer_value(json_object_get(j, "schema_version")));
	printf("%-12s %-10s %-20s %10s %7s %12s %7s %6s  %s\n", "symbol", "from", "newest minute",
	       "klines", "holes", "outage min", "days", "refused", "last day");
	json_array_foreach(json_object_get(j, "symbols"), i, s)
	{
		json_t *d = json_object_get(s, "last_day");
		const char *newest = json_string_value(json_object_get(s, "newest_minute"));
		printf("%-12s %-10s %-20s %10lld %7lld %12lld %7lld %6lld  ",
		       json_string_value(json_object_get(s, "symbol")),
		       json_string_value(json_object_get(s, "history_start")),
		       newest ? newest : "-",
		       (long long)json_integer_value(json_object_get(s, "klines")),
		       (long long)json_integer_value(json_object_get(s, "holes")),
		       (long long)json_integer_value(json_object_get(s, "outage_minutes")),
		       (long long)json_integer_value(json_object_get(s, "days")),
		       (long long)json_integer_value(json_object_get(s, "rejects")));
		if (json_is_object(d))
			printf("%s %s close %s\n", json_string_value(json_object_get(d, "day")),
			       json_string_value(json_object_get(d, "source")),
			       json_string_value(json_object_get(d, "close_exact")));
		else
			printf("-\n");
	}
	json_decref(j);
	return 0;
}

/* What the table's syntax checks can't see: files and librdkafka's own rules. */
static int check_run_conf(const struct kl_conf *c)
{
	char err[512];
	FILE *f;

	if (c->ca_file) {
		struct stat sb;
		/* fopen() opens a directory for reading; curl would then fail every request. */
		if (stat(c->ca_file, &sb) == 0 && !S_ISREG(sb.st_mode)) {
			fprintf(stderr,
				"klined: [exchange] ca_file (--ca-file): %s is not a file of "
				"PEM certificates\n",
				c->ca_file);
			return -EINVAL;
		}
		if (!(f = fopen(c->ca_file, "r"))) {
			fprintf(stderr,
				"klined: [exchange] ca_file (--ca-file): cannot read %s: %s\n",
				c->ca_file, strerror(errno));
			return -EINVAL;
		}
		fclose(f);
	}
	if (strcmp(c->kafka_brokers, "off") != 0 && kl_bus_check_conf(c, err, sizeof(err)) < 0) {
		fprintf(stderr, "klined: %s\n", err);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct kl_conf *c = NULL;
	struct args a = {0};
	int code = EXIT_CONFIG;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(argv[i], "--version")) {
			printf("klined %s\n", KLINED_VERSION);
			return 0;
		}
	}
	a.files = calloc((size_t)argc, sizeof(*a.files));
	if (!a.files || kl_conf_new(&c) < 0) {
		fprintf(stderr, "klined: out of memory\n");
		free(a.files);
		return 1;
	}
	if (parse_args(argc, argv, c, &a, false) < 0)
		goto out;
	if (load_file(c, a.config ? a.config : DEFAULT_CONFIG_PATH, a.config != NULL) < 0)
		goto out;
	a.nfiles = 0;
	if (parse_args(argc, argv, c, &a, true) < 0)
		goto out;
	if (a.cmd == CMD_IMPORT && a.nfiles == 0) {
		fprintf(stderr, "klined: import: no FILE given\n");
		goto out;
	}
	if (a.cmd == CMD_RUN && check_run_conf(c) < 0)
		goto out;
	kl_log_setup(c->log_level, getenv("JOURNAL_STREAM") != NULL);
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	curl_global_init(CURL_GLOBAL_DEFAULT);
	kl_backfill_global_init();
	switch (a.cmd) {
	case CMD_RUN:
		code = kl_assets_resolve(c) < 0 ? 1 : kl_run(c, a.once);
		break;
	case CMD_STATUS:
		code = status(c, a.json);
		break;
	case CMD_IMPORT:
		code = kl_import(c, a.files, a.nfiles);
		break;
	}
	kl_backfill_global_cleanup();
	curl_global_cleanup();
out:
	kl_conf_free(c);
	free(a.files);
	return code;
}
