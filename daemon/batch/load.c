/*
 * The loader (load.h). Files are parsed in parallel on the thread pool and
 * stored in arrival order, one store job at a time, so the loader's
 * connection is only ever used by one thread at once (libuv's work queue
 * orders the jobs' memory). The connection is opened by the first store job,
 * off the loop too.
 *
 * Invariant: a file is stored whole, in one transaction of the loader's
 * connection, or not at all (kill -9 included). A lock held by another
 * writer (the loop's connection, a user's sqlite3) past the busy timeout
 * is waited out by trying again, never a failure.
 */
#include "load.h"

#include "import.h"
#include "log.h"
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAYS_STEP_MS ((int64_t)32 * 86400000) /* days refreshed in one transaction */

struct file {
	uv_work_t work;
	struct file *next;
	struct kl_load *l;
	char name[48];
	char sha[65]; /* the CHECKSUM's */
	void *data;   /* the zip, until parsed */
	size_t len;
	int64_t keep_from, sid, rows;
	int64_t days_from, days_to; /* a day refresh (kl_load_days): no zip */
	struct kl_import_batch *batch;
	int r;
	unsigned busy; /* store attempts that found the store locked */
	kl_load_cb cb;
	void *ud;
};

struct kl_load {
	uv_loop_t *loop;
	char *db_path;
	struct kl_store *st;	  /* the loader's connection: used by store jobs only */
	struct file *head, *tail; /* parsed, waiting to be stored, in order */
	unsigned jobs;		  /* on the thread pool */
	bool storing, closing;
};

static void finish(struct kl_load *l)
{
	if (!l->closing || l->jobs)
		return;
	kl_store_close(l->st);
	free(l->db_path);
	free(l);
}

/* The end of a file: @p cb last, as it may free the loader. */
static void end(struct file *f, int status)
{
	kl_load_cb cb = f->cb;
	void *ud = f->ud;
	int64_t rows = f->rows;

	kl_import_batch_free(f->batch);
	free(f->data);
	free(f);
	cb(ud, status, rows);
}

static void store_work(uv_work_t *w)
{
	struct file *f = w->data;
	struct kl_load *l = f->l;
	char err[512];

	if (!l->st && kl_store_open(l->db_path, false, &l->st, err, sizeof(err)) < 0) {
		kl_err("archive", "%s: cannot open the store: %s", f->name, err);
		l->st = NULL;
		f->r = -EIO;
		return;
	}
	if (f->days_to) {
		f->r = 0;
		f->rows = 0;
		for (int64_t to = f->days_from; f->r == 0 && to < f->days_to;) {
			to = to + DAYS_STEP_MS < f->days_to ? to + DAYS_STEP_MS : f->days_to;
			int n = kl_store_refresh_days(l->st, f->sid, to);
			if (n < 0)
				f->r = n;
			else
				f->rows += n;
		}
		return;
	}
	f->r = kl_import_store_batch(l->st, f->sid, f->batch, &f->rows);
}

static void store_done(uv_work_t *w, int status);

static void kick(struct kl_load *l)
{
	struct file *f = l->head;

	if (l->storing || l->closing || !f)
		return;
	l->head = f->next;
	if (!l->head)
		l->tail = NULL;
	l->storing = true;
	l->jobs++;
	if (uv_queue_work(l->loop, &f->work, store_work, store_done) < 0) {
		l->jobs--;
		l->storing = false;
		end(f, -ENOMEM);
	}
}

/* Behind the files already waiting; the pool takes it when its turn comes. */
static void enqueue(struct kl_load *l, struct file *f)
{
	f->next = NULL;
	if (l->tail)
		l->tail->next = f;
	else
		l->head = f;
	l->tail = f;
	kick(l);
}

static void store_done(uv_work_t *w, int status)
{
	struct file *f = w->data;
	struct kl_load *l = f->l;

	l->jobs--;
	l->storing = false;
	if (l->closing) {
		end(f, -ECANCELED);
		finish(l);
		return;
	}
	if (status == 0 && f->r == -EBUSY) {
		/* The busy timeout (a second) ran out on the worker: the lock's holder
		 * is slow, not gone. Say so once per file and try again. */
		if (f->busy++ == 0)
			kl_warn("archive", "%s: the store is locked by another writer; waiting",
				f->name);
		f->next = l->head;
		l->head = f;
		if (!l->tail)
			l->tail = f;
		kick(l);
		return;
	}
	kick(l);
	end(f, status < 0 ? -ECANCELED : f->r);
}

static void parse_work(uv_work_t *w)
{
	struct file *f = w->data;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	char hex[65];

	if (!EVP_Digest(f->data, f->len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
		kl_err("archive", "%s: cannot compute sha256", f->name);
		f->r = -EBADMSG;
		goto out;
	}
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * (size_t)i, 3, "%02x", md[i]);
	if (strcmp(hex, f->sha) != 0) {
		kl_warn("archive", "%s: sha256 %.12s… is not the CHECKSUM's %.12s…", f->name, hex,
			f->sha);
		f->r = -EBADMSG;
		goto out;
	}
	f->r = kl_import_parse_zip(f->name, f->data, f->len, f->keep_from, &f->batch);
out:
	free(f->data);
	f->data = NULL;
}

static void parse_done(uv_work_t *w, int status)
{
	struct file *f = w->data;
	struct kl_load *l = f->l;

	l->jobs--;
	if (l->closing || status < 0) {
		end(f, -ECANCELED);
		finish(l);
		return;
	}
	if (f->r < 0) {
		end(f, f->r);
		return;
	}
	enqueue(l, f);
}

int kl_load_zip(struct kl_load *l, const char *name, void *data, size_t len, const char *sha256,
		int64_t keep_from, int64_t sid, kl_load_cb cb, void *ud)
{
	struct file *f = calloc(1, sizeof(*f));

	if (!f) {
		free(data);
		return -ENOMEM;
	}
	*f = (struct file){.l = l,
			   .data = data,
			   .len = len,
			   .keep_from = keep_from,
			   .sid = sid,
			   .cb = cb,
			   .ud = ud};
	snprintf(f->name, sizeof(f->name), "%s", name);
	snprintf(f->sha, sizeof(f->sha), "%s", sha256);
	f->work.data = f;
	l->jobs++;
	if (uv_queue_work(l->loop, &f->work, parse_work, parse_done) < 0) {
		l->jobs--;
		free(data);
		free(f);
		return -ENOMEM;
	}
	return 0;
}

int kl_load_days(struct kl_load *l, int64_t sid, int64_t from_ms, int64_t to_ms, kl_load_cb cb,
		 void *ud)
{
	struct file *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	*f = (struct file){
	    .l = l, .sid = sid, .days_from = from_ms, .days_to = to_ms, .cb = cb, .ud = ud};
	snprintf(f->name, sizeof(f->name), "days of symbol %" PRId64, sid);
	f->work.data = f;
	enqueue(l, f);
	return 0;
}

int kl_load_new(uv_loop_t *loop, const char *db_path, struct kl_load **ret)
{
	struct kl_load *l = calloc(1, sizeof(*l));

	if (!l || !(l->db_path = strdup(db_path))) {
		free(l);
		return -ENOMEM;
	}
	l->loop = loop;
	*ret = l;
	return 0;
}

void kl_load_free(struct kl_load *l)
{
	struct file *f;

	if (!l)
		return;
	l->closing = true;
	while ((f = l->head)) {
		l->head = f->next;
		end(f, -ECANCELED);
	}
	l->tail = NULL;
	finish(l);
}
