/*
 * The archive's queue (archive_int.h): which files a symbol's holes need
 * (lib/archplan.c), each asked at most once in this process (invariant 4
 * of archive.c), waiting in order for a place among the files under way.
 */
#include "archive_int.h"

#include "archplan.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sym_of(struct kl_archive *a, const char *symbol, int64_t sid, size_t *ret)
{
	for (size_t i = 0; i < a->nsyms; i++) {
		if (a->syms[i].sid == sid) {
			*ret = i;
			return 0;
		}
	}
	if (a->nsyms == a->capsyms) {
		size_t cap = a->capsyms ? 2 * a->capsyms : 16;
		struct asym *v = realloc(a->syms, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		a->syms = v;
		a->capsyms = cap;
	}
	a->syms[a->nsyms] = (struct asym){.symbol = symbol, .sid = sid, .loaded_from = -1};
	*ret = a->nsyms++;
	return 0;
}

/* @return true if @p period was not tried yet, and remembers it (invariant 4). */
static bool first_try(struct asym *s, const char *period, bool *oom)
{
	for (size_t i = 0; i < s->ntried; i++)
		if (strcmp(s->tried[i], period) == 0)
			return false;
	if (s->ntried == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		char(*v)[11] = realloc(s->tried, cap * sizeof(*v));
		if (!v) {
			*oom = true;
			return false;
		}
		s->tried = v;
		s->cap = cap;
	}
	snprintf(s->tried[s->ntried++], sizeof(s->tried[0]), "%s", period);
	return true;
}

static void push(struct kl_archive *a, struct afile *f, bool front)
{
	if (front) {
		f->next = a->head;
		a->head = f;
		if (!a->tail)
			a->tail = f;
	} else {
		f->next = NULL;
		if (a->tail)
			a->tail->next = f;
		else
			a->head = f;
		a->tail = f;
	}
	a->waiting++;
	a->syms[f->sym].open++;
	if (a->running)
		a->run_files++;
}

/* Queue @p files (of symbol @p sym, for the hole [from, to)) not tried yet. @return how many. */
int kl__archive_queue(struct kl_archive *a, size_t sym, const struct kl_arch_file *files, size_t n,
		      int64_t from, int64_t to, bool front)
{
	struct asym *s = &a->syms[sym];
	int added = 0;
	bool oom = false;

	for (size_t i = n; i-- > 0;) {
		/* Back to front, so that pushing at the front keeps time order. */
		const struct kl_arch_file *file = front ? &files[i] : &files[n - 1 - i];
		struct afile *f;

		if (!first_try(s, file->period, &oom)) {
			if (oom)
				return -ENOMEM;
			continue;
		}
		if (!(f = calloc(1, sizeof(*f))))
			return -ENOMEM;
		f->a = a;
		f->sym = sym;
		f->f = *file;
		f->keep_from = from > file->from ? from : file->from;
		f->hole_to = to < file->to ? to : file->to;
		f->days = (unsigned)((file->to - file->from + KL_DAY_MS - 1) / KL_DAY_MS);
		snprintf(f->name, sizeof(f->name), "%s-1m-%s.zip", s->symbol, file->period);
		f->path[0] = '/';
		if (kl_arch_path(file, s->symbol, f->path + 1, sizeof(f->path) - 1) < 0) {
			free(f);
			continue;
		}
		push(a, f, front);
		added++;
	}
	return added;
}

int kl_archive_add(struct kl_archive *a, const char *symbol, int64_t sid,
		   const struct kl_ranges *holes, int64_t now_ms)
{
	struct kl_arch_file files[PLAN_CHUNK];
	size_t sym;
	int total = 0, r;

	if (a->off)
		return 0;
	a->now_ms = now_ms;
	if ((r = sym_of(a, symbol, sid, &sym)) < 0)
		return r;
	for (size_t i = 0; i < holes->n; i++) {
		int64_t from = holes->v[i].from, to = holes->v[i].to;
		size_t n;

		while ((n = kl_arch_plan(from, to, now_ms, files, PLAN_CHUNK)) > 0) {
			if ((r = kl__archive_queue(a, sym, files, n, holes->v[i].from, to, false)) <
			    0)
				return r;
			total += r;
			from = files[n - 1].to;
			if (n < PLAN_CHUNK)
				break;
		}
	}
	a->stats.queued = a->waiting + a->active;
	kl_metrics_archive_queued(a->stats.queued);
	return total;
}
