/*
 * The archive's files, one state machine each (archive.h):
 *
 *   CHECKSUM and ZIP, both asked at once (one round trip, not two), then:
 *   CHECKSUM 200, ZIP 200, sha256 matches--> parsed, loaded (load.c, off the loop)
 *      |                 \--sha256 differs--> ZIP again, once; then given up
 *      |--CHECKSUM 404, a month--> the month's days queued instead (a month not
 *      |                  out yet, a symbol listed late in it)
 *      |--CHECKSUM 404, a day----> missing: REST fills it
 *      \--other---------> given up: REST fills it
 *
 * Invariants:
 *   1. Nothing is stored from a file whose sha256 is not its CHECKSUM's.
 *   2. A file is loaded whole or not at all (import.c: one transaction), so
 *      a kill -9 mid-run loses a download, never a half of one.
 *   3. The archive never makes an outage: what it lacks stays a hole.
 *   4. A file tried once in this process (loaded, missing or given up) is
 *      not asked again: the heals that follow leave the rest to REST.
 *   5. An archive the network cannot reach (MAX_UNREACHABLE transport
 *      failures in a row) is switched off for the process, said once.
 */
#include "archive_int.h"

#include "archplan.h"
#include "day.h"
#include "load.h"
#include "log.h"
#include "metrics.h"
#include "rest.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void next(struct kl_archive *a);

static void on_days(void *ud, int status, int64_t days)
{
	struct kl_archive *a = ud;

	if (status == -ECANCELED)
		return; /* the archive is being freed */
	a->refreshing--;
	if (status < 0)
		kl_warn("archive", "cannot refresh the days loaded: %s; the loop does",
			strerror(-status));
	else
		kl_debug("archive", "%" PRId64 " days refreshed off the loop", days);
	next(a);
}

/*
 * A symbol's last file is done: its days are refreshed by the loader, off the
 * loop, up to the first day the archive does not have, so the loop's refresh
 * at the end of the fill only redoes the last days (or from a hole on).
 */
static void release(struct kl_archive *a, size_t sym)
{
	struct asym *s = &a->syms[sym];
	int64_t to = kl_day_floor(a->now_ms) - KL_ARCH_DAY_BEHIND_MS + KL_DAY_MS;

	if (--s->open || s->loaded_from < 0 || a->failed)
		return;
	if (kl_load_days(a->load, s->sid, s->loaded_from, to, on_days, a) == 0)
		a->refreshing++;
	s->loaded_from = -1;
}

/* The file is done with (loaded, missing or given up); the next one may start. */
static void done(struct afile *f, uint64_t *counter, enum kl_metric m)
{
	struct kl_archive *a = f->a;

	(*counter)++;
	kl_metrics_add(m, 1);
	a->active--;
	a->active_days -= f->days;
	a->run_done++;
	release(a, f->sym);
	free(f->zip);
	free(f);
	if (uv_now(a->loop) - a->said >= PROGRESS_MS && a->head) {
		double secs = (double)(uv_now(a->loop) - a->started) / 1000.0;

		a->said = uv_now(a->loop);
		kl_info("archive",
			"%" PRIu64 "/%" PRIu64 " files, %" PRIu64 " klines (%.0f/s), %.1f MB; "
			"%" PRIu64 " not there, %" PRIu64 " given up",
			a->run_done, a->run_files, a->stats.klines,
			secs > 0 ? (double)a->stats.klines / secs : 0.0,
			(double)a->stats.bytes / 1e6, a->stats.missing, a->stats.failed);
	}
	next(a);
}

static void unreachable(struct kl_archive *a, const char *why)
{
	struct afile *f;

	if (++a->unreachable < MAX_UNREACHABLE || a->off)
		return;
	a->off = true;
	kl_warn("archive",
		"%s is unreachable (%s): REST fills all history this run; [archive] url = off "
		"says so for good",
		a->url, why);
	while ((f = a->head)) {
		a->head = f->next;
		a->waiting--;
		a->stats.failed++;
		kl_metrics_add(KL_M_ARCHIVE_FAILED, 1);
		release(a, f->sym);
		free(f);
	}
	a->tail = NULL;
}

static int get(struct afile *f, bool checksum);

/* A file's end on the loader (load.c). */
static void on_loaded(void *ud, int e, int64_t rows)
{
	struct afile *f = ud;
	struct kl_archive *a = f->a;

	if (e == -ECANCELED) {
		free(f); /* the archive is being freed: nothing else */
		return;
	}
	if (e == -EIO || e == -EBUSY || e == -ENOSPC || e == -ENOMEM) {
		a->failed = e;
		done(f, &a->stats.failed, KL_M_ARCHIVE_FAILED);
		return;
	}
	if (e == -EBADMSG) {
		/* Invariant 1: a CDN edge may serve a stale or damaged copy; fetch once more. */
		if (++f->bad_sums < MAX_BAD_SUM && get(f, false) == 0) {
			kl_warn("archive", "%s: fetching it again", f->name);
			return;
		}
		kl_warn("archive", "%s: REST fills it", f->name);
		done(f, &a->stats.failed, KL_M_ARCHIVE_FAILED);
		return;
	}
	if (e < 0 && e != -ENODATA) {
		kl_warn("archive", "%s: %s: REST fills it", f->name,
			e == -EINVAL ? "not a kline zip" : strerror(-e));
		done(f, &a->stats.failed, KL_M_ARCHIVE_FAILED);
		return;
	}
	a->stats.klines += (uint64_t)rows; /* the store counts them in /metrics */
	if (a->syms[f->sym].loaded_from < 0 || f->keep_from < a->syms[f->sym].loaded_from)
		a->syms[f->sym].loaded_from = f->keep_from;
	done(f, &a->stats.loaded, KL_M_ARCHIVE_LOADED);
}

/* "<64 hex>  NAME\n", as sha256sum writes it. @return 0 with the digest in f->sha. */
static int parse_checksum(struct afile *f, const char *body, size_t len)
{
	size_t i = 0, n = strlen(f->name);

	for (; i < 64; i++) {
		if (i >= len || !isxdigit((unsigned char)body[i]))
			return -EINVAL;
		f->sha[i] = (char)tolower((unsigned char)body[i]);
	}
	f->sha[64] = '\0';
	while (i < len && (body[i] == ' ' || body[i] == '*'))
		i++;
	if (len - i < n || memcmp(body + i, f->name, n) != 0)
		return -EINVAL;
	return 0;
}

/* Parsing 44,640 lines and storing them is the costly part: the loader does both
 * off the loop (invariant 2: still one transaction). */
static void parse(struct afile *f)
{
	struct kl_archive *a = f->a;
	void *zip = f->zip;

	f->zip = NULL; /* the loader's now */
	if (kl_load_zip(a->load, f->name, zip, f->zlen, f->sha, f->keep_from, a->syms[f->sym].sid,
			on_loaded, f) < 0)
		done(f, &a->stats.failed, KL_M_ARCHIVE_FAILED);
}

/* Both answers are in: judge the file (the state machine at the top). */
static void settle(struct afile *f)
{
	struct kl_archive *a = f->a;
	if (f->sum_status == 404) {
		if (f->f.monthly) {
			/* Not out yet (the first Monday), or the symbol was listed late in it. */
			struct kl_arch_file days[31];
			size_t n =
			    kl_arch_days(&f->f, f->keep_from, f->hole_to, a->now_ms, days, 31);
			int q =
			    kl__archive_queue(a, f->sym, days, n, f->keep_from, f->hole_to, true);

			kl_info("archive", "%s: not there; its %d days instead", f->name,
				q > 0 ? q : 0);
		}
		a->unreachable = 0;
		done(f, &a->stats.missing, KL_M_ARCHIVE_MISSING);
		return;
	}
	if (f->sum_status != 200 || !f->sum_ok) {
		if (f->sum_status == 200)
			kl_warn("archive", "%s.CHECKSUM: not a sha256sum line: REST fills it",
				f->name);
		else if (f->sum_status)
			kl_warn("archive", "%s.CHECKSUM: HTTP %ld: REST fills it", f->name,
				f->sum_status);
		else
			kl_warn("archive", "%s.CHECKSUM: %s: REST fills it", f->name, f->why);
		if (!f->sum_status)
			unreachable(a, f->why);
		done(f, &a->stats.failed, KL_M_ARCHIVE_FAILED);
		return;
	}
	if (f->zip_status != 200) {
		if (f->zip_status)
			kl_warn("archive", "%s: HTTP %ld: REST fills it", f->name, f->zip_status);
		else
			kl_warn("archive", "%s: %s: REST fills it", f->name, f->why);
		if (!f->zip_status)
			unreachable(a, f->why);
		done(f, &a->stats.failed, KL_M_ARCHIVE_FAILED);
		return;
	}
	a->unreachable = 0;
	parse(f);
}

/* One of the two answers: kept until the other is in. A cancelled one touches only @p f. */
static enum kl_rest_verdict answer(struct afile *f, const struct kl_rest_reply *r, bool checksum)
{
	if (!r->cancelled) {
		if (checksum) {
			f->sum_status = r->status;
			f->sum_ok = r->status == 200 && parse_checksum(f, r->body, r->len) == 0;
		} else {
			f->zip_status = r->status;
			if (r->status == 200) {
				f->a->stats.bytes += r->len;
				kl_metrics_add(KL_M_ARCHIVE_BYTES, r->len);
				if ((f->zip = malloc(r->len ? r->len : 1))) {
					memcpy(f->zip, r->body, r->len);
					f->zlen = r->len;
				} else {
					f->zip_status = 0;
					snprintf(f->why, sizeof(f->why), "out of memory");
				}
			}
		}
		if (!r->status)
			snprintf(f->why, sizeof(f->why), "%s", r->body);
	} else {
		f->sum_status = -1; /* never settled: the archive is being freed */
	}
	if (--f->pending)
		return KL_REST_DONE;
	if (f->sum_status < 0) {
		free(f->zip);
		free(f);
		return KL_REST_DONE;
	}
	settle(f);
	return KL_REST_DONE;
}

static enum kl_rest_verdict on_checksum(void *ud, const struct kl_rest_reply *r)
{
	return answer(ud, r, true);
}

static enum kl_rest_verdict on_zip(void *ud, const struct kl_rest_reply *r)
{
	return answer(ud, r, false);
}

static int get(struct afile *f, bool checksum)
{
	char path[sizeof(f->path) + 10];
	int r;

	snprintf(path, sizeof(path), "%s%s", f->path, checksum ? ".CHECKSUM" : "");
	f->pending++;
	r = kl_rest_get(f->a->http, path, 0, checksum ? on_checksum : on_zip, f);
	if (r < 0)
		f->pending--;
	return r;
}

/* Ask for a file's CHECKSUM and zip at once: a 404 costs a small wasted answer, every
 * other file one round trip less. @return 0, or < 0 with nothing under way. */
static int start(struct afile *f)
{
	int r = get(f, true);

	if (r == 0 && get(f, false) < 0) {
		/* Settled by the CHECKSUM's answer, as a failure. */
		f->zip_status = 0;
		snprintf(f->why, sizeof(f->why), "cannot queue the request");
	}
	return r;
}

/* Start files up to MAX_FILES / MAX_DAYS; the run ends when none is left (the last thing it
 * does). */
static void next(struct kl_archive *a)
{
	while (a->running && !a->failed && a->head && a->active < MAX_FILES &&
	       (a->active == 0 || a->active_days + a->head->days <= MAX_DAYS)) {
		struct afile *f = a->head;

		a->head = f->next;
		if (!a->head)
			a->tail = NULL;
		a->waiting--;
		a->active++;
		a->active_days += f->days;
		if (start(f) < 0) {
			a->active--;
			a->active_days -= f->days;
			a->stats.failed++;
			release(a, f->sym);
			free(f);
		}
	}
	a->stats.queued = a->waiting + a->active;
	kl_metrics_archive_queued(a->stats.queued);
	if (a->running && a->active == 0 && !a->refreshing && (a->failed || !a->head)) {
		kl_archive_cb cb = a->cb;
		int status = a->failed;

		a->running = false;
		a->failed = 0;
		kl_info("archive",
			"%" PRIu64 " files loaded (%" PRIu64 " klines, %.1f MB), %" PRIu64
			" not there, %" PRIu64 " given up",
			a->stats.loaded, a->stats.klines, (double)a->stats.bytes / 1e6,
			a->stats.missing, a->stats.failed);
		cb(a->ud, status); /* last: the owner may free the archive */
	}
}

int kl_archive_run(struct kl_archive *a, kl_archive_cb cb, void *ud)
{
	if (a->running)
		return -EBUSY;
	a->cb = cb;
	a->ud = ud;
	a->running = true;
	a->started = a->said = uv_now(a->loop);
	a->run_files = a->waiting;
	a->run_done = 0;
	if (a->head)
		kl_info("archive", "%zu files to fetch from %s", a->waiting, a->url);
	next(a);
	return 0;
}

bool kl_archive_off(const struct kl_archive *a)
{
	return a->off;
}

bool kl_archive_running(const struct kl_archive *a)
{
	return a->running;
}

void kl_archive_stats(const struct kl_archive *a, struct kl_archive_stats *ret)
{
	*ret = a->stats;
}

int kl_archive_new(uv_loop_t *loop, const struct kl_conf *conf, struct kl_store *st,
		   struct kl_archive **ret)
{
	struct kl_archive *a;
	int r;
	const char *url = kl_conf_archive_url(conf);

	if (!url)
		return -ENOTSUP;
	if (!(a = calloc(1, sizeof(*a))))
		return -ENOMEM;
	a->loop = loop;
	a->conf = conf;
	a->url = url;
	(void)st; /* the loader writes on a connection of its own (load.h) */
	r = kl_rest_new_plain(loop, conf, url, "archive", 2 * MAX_FILES, MAX_ATTEMPTS, &a->http);
	if (r == 0 && (r = kl_load_new(loop, conf->db_path, &a->load)) < 0)
		kl_rest_free(a->http);
	if (r < 0) {
		free(a);
		return r;
	}
	*ret = a;
	return 0;
}

void kl_archive_free(struct kl_archive *a)
{
	struct afile *f;

	if (!a)
		return;
	while ((f = a->head)) {
		a->head = f->next;
		free(f);
	}
	a->running = false;
	/* The files under way are freed by their cancelled callbacks, which touch only them:
	 * the HTTP client's now, the loader's now or when its thread pool jobs end. */
	kl_rest_free(a->http);
	kl_load_free(a->load);
	for (size_t i = 0; i < a->nsyms; i++)
		free(a->syms[i].tried);
	free(a->syms);
	free(a);
}
