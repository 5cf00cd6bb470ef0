/*
 * Dump import. A dump file covers a whole month or day (its name says
 * which). Minutes it lacks are holes, never outages: a truncated download
 * lacks minutes too, and only the exchange can say a minute does not exist
 * (backfill.c, invariant 1). The next run fetches them from REST, and a day
 * with holes is not certified until they are. A file is atomic: a damaged
 * file is rolled back whole.
 */
#include "import.h"

#include "day.h"
#include "gap.h"
#include "kline.h"
#include "log.h"
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>
#include <zlib.h>

#define LINE_MAX_LEN 4096

struct file {
	const char *path, *name;
	const void *data; /* an archive held in memory (kl_import_parse_zip), or NULL: path */
	size_t dlen;
	int64_t keep_from; /* klines before this are left out (an archive's part we have) */
	char symbol[24];
	int64_t from, to; /* the span the file covers */
	int64_t sid;
	struct kl_ranges holes;
	struct kl_gapscan scan;
	int64_t *times;
	size_t ntimes, cap;
	int64_t rows, rejects, lineno;
	struct kl_store *st; /* NULL: parse only (a thread), keeping klines and refusals */
	struct kl_kline *kv;
	size_t nk, capk;
	struct refused *rv;
	size_t nrv;
};

/* A kline refused while parsing off the loop, stored later with the rest. */
struct refused {
	char origin[300];
	const char *reason; /* static */
	char *raw;
};

/* SYMBOL-1m-YYYY-MM[-DD](.csv|.csv.gz|.zip) */
static int parse_name(struct file *f)
{
	const char *dash = strchr(f->name, '-');
	char date[11];
	size_t len;

	if (!dash || dash == f->name || (size_t)(dash - f->name) > 20 ||
	    strncmp(dash, "-1m-", 4) != 0)
		return -EINVAL;
	memcpy(f->symbol, f->name, (size_t)(dash - f->name));
	f->symbol[dash - f->name] = '\0';
	for (const char *p = f->symbol; *p; p++) {
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
			return -EINVAL;
	}
	dash += 4;
	len = strspn(dash, "0123456789-");
	if (len == 7 || (len == 8 && dash[7] == '-')) {
		snprintf(date, sizeof(date), "%.7s-01", dash);
		if (kl_day_parse(date, &f->from) < 0)
			return -EINVAL;
		/* The first day of the next month: 32 days on, then back to its 1st. */
		int64_t next = f->from + 32 * KL_DAY_MS;
		char nd[11];
		kl_day_format(next, nd);
		nd[8] = '0';
		nd[9] = '1';
		kl_day_parse(nd, &f->to);
	} else if (len >= 10) {
		snprintf(date, sizeof(date), "%.10s", dash);
		if (kl_day_parse(date, &f->from) < 0)
			return -EINVAL;
		f->to = f->from + KL_DAY_MS;
	} else {
		return -EINVAL;
	}
	return 0;
}

static int push_time(struct file *f, int64_t t)
{
	if (f->ntimes == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 65536;
		int64_t *v = realloc(f->times, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		f->times = v;
		f->cap = cap;
	}
	f->times[f->ntimes++] = t;
	return 0;
}

static int line(struct file *f, const char *s, size_t len)
{
	struct kl_kline k;
	enum kl_verdict v;
	char origin[300];

	f->lineno++;
	while (len && (s[len - 1] == '\n' || s[len - 1] == '\r'))
		len--;
	if (len == 0 || (s[0] < '0' || s[0] > '9')) /* blank or a header line */
		return 0;
	v = kl_kline_from_csv(s, len, &k);
	if (v == KL_KLINE_OK)
		v = kl_kline_check(&k, f->from, f->to);
	if (v == KL_KLINE_OK && k.open_time < f->keep_from)
		return 0;
	if (v != KL_KLINE_SHAPE && v != KL_KLINE_TIME && v != KL_KLINE_RANGE &&
	    push_time(f, k.open_time) < 0)
		return -ENOMEM;
	if (v != KL_KLINE_OK) {
		char raw[LINE_MAX_LEN];
		snprintf(raw, sizeof(raw), "%.*s", (int)len, s);
		snprintf(origin, sizeof(origin), "%s:%" PRId64, f->name, f->lineno);
		kl_warn("import", "%s: refused kline: %s", origin, kl_kline_reason(v));
		f->rejects++;
		if (!f->st) {
			struct refused *g = realloc(f->rv, (f->nrv + 1) * sizeof(*g));
			if (!g)
				return -ENOMEM;
			f->rv = g;
			snprintf(g[f->nrv].origin, sizeof(g[f->nrv].origin), "%s", origin);
			g[f->nrv].reason = kl_kline_reason(v);
			if (!(g[f->nrv].raw = strdup(raw)))
				return -ENOMEM;
			f->nrv++;
			return 0;
		}
		if (kl_store_put_reject(f->st, 0, f->symbol, origin, kl_kline_reason(v), raw) < 0)
			return kl_log_errno(-EIO, "import", "%s: cannot store: %s", f->name,
					    kl_store_errmsg(f->st));
		return 0;
	}
	f->rows++;
	if (!f->st) {
		if (f->nk == f->capk) {
			size_t cap = f->capk ? 2 * f->capk : 2048;
			struct kl_kline *g = realloc(f->kv, cap * sizeof(*g));
			if (!g)
				return -ENOMEM;
			f->kv = g;
			f->capk = cap;
		}
		f->kv[f->nk++] = k;
		return 0;
	}
	if (kl_store_put_kline(f->st, f->sid, &k, KL_SRC_IMPORT) < 0)
		return kl_log_errno(-EIO, "import", "%s: cannot store: %s", f->name,
				    kl_store_errmsg(f->st));
	return 0;
}

/* Feed a buffer of whole lines (the last may lack its newline). */
static int lines(struct file *f, const char *buf, size_t n)
{
	size_t start = 0;
	int r = 0;

	for (size_t i = 0; i <= n && r == 0; i++) {
		if (i == n || buf[i] == '\n') {
			if (i > start)
				r = line(f, buf + start, i - start);
			start = i + 1;
		}
	}
	return r;
}

static int read_gz(struct file *f)
{
	gzFile gz = gzopen(f->path, "rb"); /* reads plain files too */
	char buf[LINE_MAX_LEN];
	int r = 0;

	if (!gz)
		return errno ? -errno : -ENOMEM;
	while (r == 0 && gzgets(gz, buf, sizeof(buf))) {
		size_t len = strlen(buf);
		if (len == sizeof(buf) - 1 && buf[len - 1] != '\n') {
			kl_err("import", "%s:%" PRId64 ": line too long", f->name, f->lineno + 1);
			r = -EINVAL;
			break;
		}
		r = line(f, buf, len);
	}
	if (r == 0) {
		/* A truncated or corrupt gzip ends gzgets early: only the error tells. */
		int zerr = Z_OK;
		const char *msg = gzerror(gz, &zerr);
		if (zerr != Z_OK && zerr != Z_STREAM_END) {
			kl_err("import", "%s: %s", f->name,
			       zerr == Z_ERRNO ? strerror(errno) : msg);
			r = -EIO;
		}
	}
	gzclose(gz);
	return r;
}

static int read_zip(struct file *f)
{
	int zerr = 0, r = 0;
	zip_t *z = NULL;
	zip_int64_t n;

	if (f->data) {
		zip_error_t e;
		zip_source_t *src;

		zip_error_init(&e);
		src = zip_source_buffer_create(f->data, f->dlen, 0, &e);
		if (src && !(z = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &e)))
			zip_source_free(src);
		if (!z) {
			kl_err("import", "%s: %s", f->name, zip_error_strerror(&e));
			zip_error_fini(&e);
			return -EINVAL;
		}
		zip_error_fini(&e);
	} else if (!(z = zip_open(f->path, ZIP_RDONLY, &zerr))) {
		zip_error_t e;
		zip_error_init_with_code(&e, zerr);
		kl_err("import", "%s: %s", f->name, zip_error_strerror(&e));
		zip_error_fini(&e);
		return -EIO;
	}
	n = zip_get_num_entries(z, 0);
	for (zip_int64_t i = 0; i < n && r == 0; i++) {
		zip_stat_t zs;
		zip_file_t *zf;
		char *buf;

		if (zip_stat_index(z, (zip_uint64_t)i, 0, &zs) < 0 || !(zs.valid & ZIP_STAT_SIZE))
			continue;
		if (zs.size > (256u << 20)) {
			kl_err("import", "%s: entry %s is too large", f->name, zs.name);
			r = -EFBIG;
			break;
		}
		buf = malloc(zs.size + 1);
		zf = zip_fopen_index(z, (zip_uint64_t)i, 0);
		if (!buf || !zf || zip_fread(zf, buf, zs.size) != (zip_int64_t)zs.size) {
			kl_err("import", "%s: cannot read entry %s: %s", f->name, zs.name,
			       zf ? zip_file_strerror(zf) : zip_strerror(z));
			r = -EIO;
		} else {
			r = lines(f, buf, zs.size);
		}
		if (zf)
			zip_fclose(zf);
		free(buf);
	}
	zip_discard(z);
	return r;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The minutes a file lacks: holes for REST, never outages. */
static void say_holes(const struct file *f)
{
	char t[21];

	if (!f->holes.n)
		return;
	kl_time_format(f->holes.v[0].from, t);
	kl_warn("import",
		"%s: %" PRId64 " minutes missing in %zu ranges from %s: holes, fetched from REST "
		"by the next run (a file cannot prove an outage)",
		f->name, kl_ranges_minutes(&f->holes), f->holes.n, t);
}

static int import_file(struct kl_store *st, struct file *f)
{
	size_t len = strlen(f->name);
	int64_t start = f->from;
	int r;

	r = kl_store_begin(st);
	if (r == 0)
		r = kl_store_symbol(st, f->symbol, true, &start, &f->sid);
	if (r == 0 && f->from < start)
		r = kl_store_symbol_extend(st, f->sid, f->from);
	if (r < 0) {
		kl_err("import", "%s: %s", f->name, kl_store_errmsg(st));
		goto out;
	}
	if (f->data || (len > 4 && strcmp(f->name + len - 4, ".zip") == 0))
		r = read_zip(f);
	else
		r = read_gz(f);
	if (r < 0)
		goto out;
	qsort(f->times, f->ntimes, sizeof(*f->times), cmp_i64);
	kl_gapscan_init(&f->scan, f->keep_from > f->from ? f->keep_from : f->from, f->to,
			&f->holes);
	for (size_t i = 0; i < f->ntimes && r == 0; i++)
		r = kl_gapscan_feed(&f->scan, f->times[i]);
	if (r == 0)
		r = kl_gapscan_finish(&f->scan);
	if (r == 0 && f->rows == 0) {
		kl_err("import", "%s: no kline in the file", f->name);
		r = -ENODATA;
	}
	if (r == 0) {
		say_holes(f);
		r = kl_store_commit(st);
	}
	if (r == -EIO || r == -EBUSY || r == -ENOSPC)
		kl_err("import", "%s: %s", f->name, kl_store_errmsg(st));
out:
	if (r < 0) {
		kl_store_rollback(st);
		kl_err("import", "%s: not imported (nothing of it was stored)", f->name);
	} else {
		kl_info("import", "%s: %" PRId64 " klines, %" PRId64 " refused, %zu holes", f->name,
			f->rows, f->rejects, f->holes.n);
	}
	return r;
}

struct kl_import_batch {
	struct file f;
};

void kl_import_batch_free(struct kl_import_batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->f.nrv; i++)
		free(b->f.rv[i].raw);
	free(b->f.rv);
	free(b->f.kv);
	free(b->f.times);
	kl_ranges_clear(&b->f.holes);
	free(b);
}

int kl_import_parse_zip(const char *name, const void *data, size_t len, int64_t keep_from,
			struct kl_import_batch **ret)
{
	struct kl_import_batch *b = calloc(1, sizeof(*b));
	struct file *f;
	int r;

	if (!b)
		return -ENOMEM;
	f = &b->f;
	*f = (struct file){
	    .path = name, .name = name, .data = data, .dlen = len, .keep_from = keep_from};
	r = parse_name(f) < 0 ? -EINVAL : read_zip(f);
	if (r == 0) {
		qsort(f->times, f->ntimes, sizeof(*f->times), cmp_i64);
		kl_gapscan_init(&f->scan, f->keep_from > f->from ? f->keep_from : f->from, f->to,
				&f->holes);
		for (size_t i = 0; i < f->ntimes && r == 0; i++)
			r = kl_gapscan_feed(&f->scan, f->times[i]);
		if (r == 0)
			r = kl_gapscan_finish(&f->scan);
	}
	f->data = NULL; /* borrowed only for the parse */
	if (r == 0 && f->rows == 0)
		r = -ENODATA;
	if (r < 0) {
		kl_import_batch_free(b);
		return r;
	}
	*ret = b;
	return 0;
}

int kl_import_store_batch(struct kl_store *st, int64_t sid, struct kl_import_batch *b,
			  int64_t *rows)
{
	struct file *f = &b->f;
	int r = kl_store_begin(st);

	*rows = 0;
	for (size_t i = 0; r == 0 && i < f->nk; i++)
		r = kl_store_put_kline(st, sid, &f->kv[i], KL_SRC_IMPORT) < 0 ? -EIO : 0;
	for (size_t i = 0; r == 0 && i < f->nrv; i++)
		r = kl_store_put_reject(st, 0, f->symbol, f->rv[i].origin, f->rv[i].reason,
					f->rv[i].raw) < 0
			? -EIO
			: 0;
	if (r == 0)
		r = kl_store_commit(st);
	if (r < 0) {
		kl_err("import", "%s: %s; not imported (nothing of it was stored)", f->name,
		       kl_store_errmsg(st));
		kl_store_rollback(st);
		return r;
	}
	say_holes(f);
	kl_debug("import", "%s: %" PRId64 " klines, %" PRId64 " refused, %zu holes", f->name,
		 f->rows, f->rejects, f->holes.n);
	*rows = f->rows;
	return 0;
}

int kl_import(const struct kl_conf *conf, char *const *files, int nfiles)
{
	struct kl_store *st = NULL;
	char err[512];
	int64_t *sids = calloc((size_t)nfiles, sizeof(*sids)), now = 0;
	int code = 0, r;

	if (!sids)
		return 1;
	r = kl_store_open(conf->db_path, false, &st, err, sizeof(err));
	if (r < 0) {
		kl_err("store", "%s", err);
		free(sids);
		return 1;
	}
	for (int i = 0; i < nfiles; i++) {
		const char *slash = strrchr(files[i], '/');
		struct file f = {.path = files[i], .name = slash ? slash + 1 : files[i], .st = st};

		sids[i] = -1;
		if (parse_name(&f) < 0) {
			kl_err("import",
			       "%s: the name is not SYMBOL-1m-YYYY-MM[-DD].csv, .csv.gz "
			       "or .zip as data.binance.vision names 1m kline dumps",
			       files[i]);
			code = 1;
			continue;
		}
		if (import_file(st, &f) < 0)
			code = 1;
		else {
			sids[i] = f.sid;
			if (f.to > now)
				now = f.to;
		}
		kl_ranges_clear(&f.holes);
		free(f.times);
	}
	for (int i = 0; i < nfiles; i++) {
		bool seen = false;
		for (int j = 0; j < i; j++)
			seen |= sids[j] == sids[i];
		if (sids[i] < 0 || seen)
			continue;
		if (kl_store_refresh_days(st, sids[i], now) < 0) {
			kl_err("import", "cannot refresh days: %s", kl_store_errmsg(st));
			code = 1;
		}
	}
	kl_store_close(st);
	free(sids);
	return code;
}
