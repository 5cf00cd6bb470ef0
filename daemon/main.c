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
#include <getopt.h>
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

static const struct {
	const char *name, *synopsis, *what;
} commands[] = {
    {"run", "[--config FILE] [--once] [OPTIONS]",
     "Keep the store current: backfill, then follow the exchange (the default command)."},
    {"status", "[--config FILE] [--json] [OPTIONS]",
     "Print what the store holds per symbol: newest minute, holes, outages, the last day."},
    {"import", "[--config FILE] [OPTIONS] FILE...",
     "Load data.binance.vision 1m kline dumps (.csv, .csv.gz, .zip) into the store."},
    {"help", "[COMMAND]", "Print this help, or a command's."},
};

/* @p cmd: a command's own help, or NULL for all of them. */
static void usage(FILE *out, const char *cmd)
{
	fprintf(out, "Usage:");
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		if (!cmd || !strcmp(cmd, commands[i].name))
			fprintf(out, "%s klined %s %s\n", i && !cmd ? "      " : " ",
				commands[i].name, commands[i].synopsis);
	if (!cmd)
		fprintf(out,
			"       klined --help | --version\n\n"
			"Keeps a complete, exact history of Binance spot 1m klines in SQLite.\n");
	for (size_t i = 0; cmd && i < sizeof(commands) / sizeof(*commands); i++)
		if (!strcmp(cmd, commands[i].name))
			fprintf(out, "\n%s\n", commands[i].what);
	fprintf(out,
		"\n  --config FILE            INI configuration (default %s;\n"
		"                           a missing default is fine)\n",
		DEFAULT_CONFIG_PATH);
	if (!cmd || !strcmp(cmd, "run"))
		fprintf(out, "  --once                   run: stop once the store is current\n");
	if (!cmd || !strcmp(cmd, "status"))
		fprintf(out, "  --json                   status: print JSON\n");
	fprintf(out, "  -h, --help               this help\n\n"
		     "Options (each overrides its configuration key):\n");
	for (size_t i = 0; kl_conf_info(i); i++) {
		const struct kl_conf_info *k = kl_conf_info(i);
		char opt[64];

		snprintf(opt, sizeof(opt), "--%s %s", k->option, k->arg);
		fprintf(out, "  %-24s [%s] %s: %s (default %s)\n", opt, k->section, k->key, k->help,
			*k->def ? k->def : "none");
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

enum cmd { CMD_RUN, CMD_STATUS, CMD_IMPORT, CMD_HELP };

struct args {
	enum cmd cmd;
	const char *cmdname; /* as given, for its help */
	const char *config;
	bool once, json, help;
	char **files;
	int nfiles;
};

/* Above any character, so that no key is taken for a short option such as -h. */
enum { OPT_CONFIG = 256, OPT_ONCE, OPT_JSON, OPT_HELP, OPT_VERSION, OPT_KEY = 1024 };

/* getopt_long's table: the fixed options, then one per configuration key. */
static struct option *long_options(void)
{
	static const struct option fixed[] = {
	    {"config", required_argument, NULL, OPT_CONFIG}, {"once", no_argument, NULL, OPT_ONCE},
	    {"json", no_argument, NULL, OPT_JSON},	     {"help", no_argument, NULL, OPT_HELP},
	    {"version", no_argument, NULL, OPT_VERSION},
	};
	size_t nfixed = sizeof(fixed) / sizeof(*fixed), n = 0;
	struct option *v;

	while (kl_conf_info(n))
		n++;
	if (!(v = calloc(nfixed + n + 1, sizeof(*v))))
		return NULL;
	memcpy(v, fixed, sizeof(fixed));
	for (size_t i = 0; i < n; i++)
		v[nfixed + i] = (struct option){kl_conf_info(i)->option, required_argument, NULL,
						OPT_KEY + (int)i};
	return v;
}

/*
 * The command is the first word (run when there is none); getopt_long does
 * the rest. Pass 1 (@p apply false) finds --config, the flags and the files;
 * pass 2 applies the options over the file's values.
 */
static int parse_args(int argc, char **argv, const struct option *opts, struct kl_conf *c,
		      struct args *a, bool apply)
{
	int first = 1, o;

	a->cmd = CMD_RUN;
	if (argc > 1 && argv[1][0] != '-') {
		static const char *const names[] = {"run", "status", "import", "help"};
		size_t i = 0;

		while (i < 4 && strcmp(argv[1], names[i]) != 0)
			i++;
		if (i == 4) {
			fprintf(stderr, "klined: unknown command '%s' (see --help)\n", argv[1]);
			return -EINVAL;
		}
		a->cmd = (enum cmd)i;
		a->cmdname = names[i];
		first = 2;
	}
	optind = 0; /* GNU: start over, as for a new argv */
	opterr = 0;
	while ((o = getopt_long(argc - first + 1, argv + first - 1, ":h", opts, NULL)) != -1) {
		char err[512];
		int r;

		switch (o) {
		case OPT_CONFIG:
			a->config = optarg;
			continue;
		case OPT_ONCE:
			a->once = true;
			continue;
		case OPT_JSON:
			a->json = true;
			continue;
		case 'h':
		case OPT_HELP:
			a->help = true;
			continue;
		case OPT_VERSION:
			printf("klined %s\n", KLINED_VERSION);
			exit(0);
		case ':':
			fprintf(stderr, "klined: %s needs a value (see --help)\n",
				argv[first - 1 + optind - 1]);
			return -EINVAL;
		case '?':
			fprintf(stderr, "klined: unknown option %s (see --help)\n",
				argv[first - 1 + optind - 1]);
			return -EINVAL;
		default:
			break;
		}
		if (!apply)
			continue;
		r = kl_conf_set_option(c, kl_conf_info((size_t)(o - OPT_KEY))->option, optarg, err,
				       sizeof(err));
		if (r < 0) {
			fprintf(stderr, "klined: %s\n", err);
			return -EINVAL;
		}
	}
	a->nfiles = 0;
	for (int i = first - 1 + optind; i < argc; i++) {
		if (a->cmd == CMD_IMPORT || a->cmd == CMD_HELP) {
			a->files[a->nfiles++] = argv[i];
			continue;
		}
		fprintf(stderr, "klined: unexpected argument '%s' (see --help)\n", argv[i]);
		return -EINVAL;
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
	r = kl_api_status(st, strcmp(c->kafka_brokers, "off") ? c->kafka_topic : NULL, &j);
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
	{
		json_t *cons = json_object_get(j, "consumer");
		json_t *parts = json_object_get(cons, "partitions");

		for (size_t k = 0; k < json_array_size(parts); k++) {
			json_t *p = json_array_get(parts, k);
			printf("consumer %s partition %lld: next offset %lld (the lag, which needs "
			       "the broker, is in /api/status and /metrics)\n",
			       json_string_value(json_object_get(cons, "topic")),
			       (long long)json_integer_value(json_object_get(p, "partition")),
			       (long long)json_integer_value(json_object_get(p, "next_offset")));
		}
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

/* SIGHUP's configuration: the same layers from the same command line. */
struct reload {
	int argc;
	char **argv;
	const struct option *opts;
};

static int reload_conf(void *ud, struct kl_conf **ret)
{
	const struct reload *x = ud;
	struct args a = {0};
	struct kl_conf *c = NULL;
	int r = -ENOMEM;

	*ret = NULL;
	a.files = calloc((size_t)x->argc, sizeof(*a.files));
	if (!a.files || kl_conf_new(&c) < 0)
		goto out;
	r = parse_args(x->argc, x->argv, x->opts, c, &a, false);
	if (r == 0)
		r = load_file(c, a.config ? a.config : DEFAULT_CONFIG_PATH, a.config != NULL);
	if (r == 0)
		r = parse_args(x->argc, x->argv, x->opts, c, &a, true);
	if (r == 0)
		r = check_run_conf(c);
out:
	free(a.files);
	if (r < 0)
		kl_conf_free(c);
	else
		*ret = c;
	return r < 0 ? r : 0;
}

int main(int argc, char **argv)
{
	struct kl_conf *c = NULL;
	struct args a = {0};
	struct option *opts = long_options();
	int code = EXIT_CONFIG;

	a.files = calloc((size_t)argc, sizeof(*a.files));
	if (!opts || !a.files || kl_conf_new(&c) < 0) {
		fprintf(stderr, "klined: out of memory\n");
		code = 1;
		goto out;
	}
	if (parse_args(argc, argv, opts, c, &a, false) < 0)
		goto out;
	if (a.help || a.cmd == CMD_HELP) {
		const char *cmd = a.cmd == CMD_HELP ? (a.nfiles ? a.files[0] : NULL) : a.cmdname;

		if (cmd && strcmp(cmd, "run") != 0 && strcmp(cmd, "status") != 0 &&
		    strcmp(cmd, "import") != 0 && strcmp(cmd, "help") != 0) {
			fprintf(stderr, "klined: help: no command '%s'\n", cmd);
			goto out;
		}
		usage(stdout, cmd);
		code = 0;
		goto out;
	}
	if (load_file(c, a.config ? a.config : DEFAULT_CONFIG_PATH, a.config != NULL) < 0)
		goto out;
	if (parse_args(argc, argv, opts, c, &a, true) < 0)
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
	case CMD_RUN: {
		struct reload x = {argc, argv, opts};
		struct kl_run_reload rl = {reload_conf, &x};

		code = kl_assets_resolve(c) < 0 ? 1 : kl_run(c, a.once, &rl);
		break;
	}
	case CMD_STATUS:
		code = status(c, a.json);
		break;
	case CMD_IMPORT:
		code = kl_import(c, a.files, a.nfiles);
		break;
	case CMD_HELP:
		break;
	}
	kl_backfill_global_cleanup();
	curl_global_cleanup();
out:
	kl_conf_free(c);
	free(a.files);
	free(opts);
	return code;
}
