/*
 * The hole search (schema/008-holes.sql, lib/holemark.h). Each symbol's
 * mark says how far its history was searched; before it only the
 * suspect ranges the triggers (and the verifier) recorded are read. So a
 * search costs the rows written since the last one plus the suspects,
 * not the whole history. Invariant: every minute of [start_ms, upto) is
 * a kline, an outage, or inside a hole_suspect range; kl_store_verify
 * keeps it when it moves the mark, the triggers whenever a row goes.
 */
#include "store_int.h"

#include "holemark.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Unsearched rows spanning more than this wait for the verifier (about 0.15 ms of reading). */
#define DEFER_MS (1440 * KL_MINUTE_MS)

/* hole_suspect.new of a range nobody searched yet. */
#define UNSEARCHED 2

#define RECHECK KL_STORE_RECHECK

int64_t kl__store_scan_holes(struct kl_store *st, int64_t sid, int64_t from, int64_t to,
			     struct kl_ranges *out)
{
	sqlite3_stmt *s = st->stmt[S_TIMES];
	struct kl_ranges skip = {0};
	struct kl_gapscan scan;
	int64_t rows = 0;
	int rc, r = 0;

	if (to <= from)
		return 0;
	kl_gapscan_init(&scan, from, to, out);
	sqlite3_bind_int64(s, 1, sid);
	sqlite3_bind_int64(s, 2, from);
	sqlite3_bind_int64(s, 3, to);
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		r = kl_gapscan_feed(&scan, sqlite3_column_int64(s, 0));
		rows++;
	}
	sqlite3_reset(s);
	if (r == 0 && rc != SQLITE_DONE)
		r = kl__store_err(rc);
	if (r == 0)
		r = kl_gapscan_finish(&scan);
	if (r == 0)
		r = kl__store_outages(st, sid, from, to, &skip);
	if (r == 0)
		r = kl_ranges_subtract(out, &skip);
	kl_ranges_clear(&skip);
	return r < 0 ? r : rows;
}

/* The mark of @p sid: -ENOENT when the symbol is unknown. */
static int get_mark(struct kl_store *st, int64_t sid, struct kl_holemark *m)
{
	sqlite3_stmt *s = st->stmt[S_MARK_GET];
	int rc, r = 0;

	sqlite3_bind_int64(s, 1, sid);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		int64_t start = sqlite3_column_int64(s, 0);

		/* No mark: searched nowhere. */
		m->upto =
		    sqlite3_column_type(s, 1) == SQLITE_NULL ? start : sqlite3_column_int64(s, 1);
		m->rows_end = sqlite3_column_type(s, 2) == SQLITE_NULL
				  ? m->upto
				  : sqlite3_column_int64(s, 2) + KL_MINUTE_MS;
		m->defer_ms = st->holes_exact ? -1 : DEFER_MS;
	} else {
		r = rc == SQLITE_DONE ? -ENOENT : kl__store_err(rc);
	}
	sqlite3_reset(s);
	return r;
}

static int get_suspects(struct kl_store *st, int64_t sid, int64_t from, int64_t to,
			struct kl_ranges *out)
{
	sqlite3_stmt *s = st->stmt[S_SUSPECTS];
	int rc, r = 0;

	sqlite3_bind_int64(s, 1, sid);
	sqlite3_bind_int64(s, 2, from);
	sqlite3_bind_int64(s, 3, to);
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t a = sqlite3_column_int64(s, 0), b = sqlite3_column_int64(s, 1);

		/* Never searched and long (coverage extended over imported rows): the verifier's.
		 */
		if (sqlite3_column_int(s, 2) == UNSEARCHED && b - a > DEFER_MS && !st->holes_exact)
			continue;
		r = kl_ranges_add(out, a, b);
	}
	sqlite3_reset(s);
	if (r == 0 && rc != SQLITE_DONE)
		r = kl__store_err(rc);
	return r;
}

void kl_store_holes_exact(struct kl_store *st, bool exact)
{
	st->holes_exact = exact;
}

int kl_store_holes(struct kl_store *st, int64_t sid, int64_t from, int64_t to,
		   struct kl_ranges *out)
{
	struct kl_ranges sus = {0}, parts = {0};
	struct kl_holemark m = {0};
	int64_t n;
	int r;

	if (to <= from)
		return 0;
	r = get_mark(st, sid, &m);
	if (r == -ENOENT) {
		/* Not a symbol of ours: nothing is known, all is read. */
		n = kl__store_scan_holes(st, sid, from, to, out);
		return n < 0 ? (int)n : 0;
	}
	if (r == 0 && from < m.upto)
		r = get_suspects(st, sid, from, m.upto < to ? m.upto : to, &sus);
	if (r == 0)
		r = kl_holemark_plan(&m, from, to, &sus, &parts, NULL);
	for (size_t i = 0; r == 0 && i < parts.n; i++) {
		n = kl__store_scan_holes(st, sid, parts.v[i].from, parts.v[i].to, out);
		r = n < 0 ? (int)n : 0;
	}
	kl_ranges_clear(&sus);
	kl_ranges_clear(&parts);
	return r;
}

static int add_piece(struct kl_store_verdict *v, int64_t from, int64_t to, int new)
{
	if (to <= from)
		return 0;
	if (v->nadds == v->cap) {
		size_t cap = v->cap ? 2 * v->cap : 16;
		struct kl_store_piece *g = realloc(v->adds, cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		v->adds = g;
		v->cap = cap;
	}
	v->adds[v->nadds++] = (struct kl_store_piece){from, to, new};
	return 0;
}

/* Search the next slice past the mark; its holes are to become new suspects. @return rows read. */
static int64_t advance(struct kl_store *st, const struct kl_holemark *m, int64_t max_rows,
		       struct kl_store_verdict *v)
{
	struct kl_ranges holes = {0};
	int64_t end = kl_holemark_slice(m, max_rows), n;
	int r = 0;

	if (end <= m->upto)
		return 0;
	n = kl__store_scan_holes(st, v->sid, m->upto, end, &holes);
	for (size_t i = 0; n >= 0 && r == 0 && i < holes.n; i++)
		r = add_piece(v, holes.v[i].from, holes.v[i].to, 1);
	kl_ranges_clear(&holes);
	v->upto = end;
	if (end < m->rows_end)
		v->bits |= KL_STORE_VERIFY_MORE | KL_STORE_VERIFY_BEHIND;
	return n < 0 ? n : r < 0 ? r : n;
}

struct suspect {
	int64_t id, from, to;
	int new; /* 0 seen, 1 new, UNSEARCHED */
};

/*
 * Read the (first part of the) suspect again: a filled one is to go, a
 * part filled to shrink it; one still wholly missing stays as it is (no
 * write). Suspects are deleted by id, so a row deleted meanwhile (a new
 * suspect from the trigger) is never lost. @return rows read.
 */
static int64_t recheck(struct kl_store *st, const struct suspect *u, int64_t max_rows,
		       struct kl_store_verdict *v)
{
	struct kl_ranges holes = {0};
	int64_t end = u->from + max_rows * KL_MINUTE_MS, n;
	int r = 0;

	if (end > u->to)
		end = u->to;
	n = kl__store_scan_holes(st, v->sid, u->from, end, &holes);
	if (n < 0 || (end == u->to && u->new != UNSEARCHED &&holes.n == 1 &&
		      holes.v[0].from == u->from &&holes.v[0].to == u->to))
		goto out;
	v->dels[v->ndels++] = u->id;
	/* What was searched is a plain suspect now; the rest stays as it was. */
	for (size_t i = 0; r == 0 && i < holes.n; i++)
		r = add_piece(v, holes.v[i].from, holes.v[i].to, u->new ? 1 : 0);
	if (r == 0)
		r = add_piece(v, end, u->to, u->new);
out:
	kl_ranges_clear(&holes);
	return n < 0 ? n : r < 0 ? r : n;
}

/* Up to RECHECK suspects from *cursor on; the cursor wraps after the last. */
static int list_suspects(struct kl_store *st, int64_t sid, int64_t *cursor, struct suspect *v,
			 size_t *n, bool *news)
{
	sqlite3_stmt *s = st->stmt[S_SUSPECT_LIST];
	int rc;

	*n = 0;
	sqlite3_bind_int64(s, 1, sid);
	sqlite3_bind_int64(s, 2, *cursor);
	sqlite3_bind_int(s, 3, RECHECK);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		v[*n] = (struct suspect){sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
					 sqlite3_column_int64(s, 2), sqlite3_column_int(s, 3)};
		*news |= v[(*n)++].new != 0;
	}
	sqlite3_reset(s);
	*cursor = *n == RECHECK ? v[*n - 1].from + 1 : INT64_MIN;
	return rc == SQLITE_DONE ? 0 : kl__store_err(rc);
}

/* Any suspect not yet announced? */
static int any_new(struct kl_store *st, int64_t sid, bool *news)
{
	sqlite3_stmt *s = st->stmt[S_SUSPECT_NEW];
	int rc;

	sqlite3_bind_int64(s, 1, sid);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && sqlite3_column_int64(s, 0) > 0)
		*news = true;
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : kl__store_err(rc);
}

int kl_store_any_new_suspect(struct kl_store *st)
{
	sqlite3_stmt *s = st->stmt[S_SUSPECT_ANY_NEW];
	int rc = sqlite3_step(s), r;

	r = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) != 0 : kl__store_err(rc);
	sqlite3_reset(s);
	return r;
}

int kl_store_read_begin(struct kl_store *st)
{
	return kl__store_step_done(st, S_READ_BEGIN);
}

void kl_store_read_end(struct kl_store *st)
{
	kl__store_step_done(st, S_READ_END);
}

int kl_store_verify_read(struct kl_store *st, int64_t sid, int64_t max_rows, int64_t *cursor,
			 struct kl_store_verdict *v)
{
	struct suspect u[RECHECK];
	struct kl_holemark m = {0};
	int64_t n = 0;
	size_t k = 0;
	int r;

	v->sid = sid;
	v->upto = -1;
	v->ndels = v->nadds = 0;
	v->news = false;
	v->bits = 0;
	r = get_mark(st, sid, &m);
	if (r == 0)
		n = advance(st, &m, max_rows, v);
	if (r == 0 && n >= 0)
		r = list_suspects(st, sid, cursor, u, &k, &v->news);
	for (size_t i = 0; r == 0 && n >= 0 && i < k; i++) {
		if (n >= max_rows) {
			/* Out of budget: the cursor comes back here. */
			*cursor = u[i].from;
			break;
		}
		int64_t got = recheck(st, &u[i], max_rows - n, v);
		n = got < 0 ? got : n + (got ? got : 1);
	}
	if (r == 0 && n >= 0 && !v->news)
		r = any_new(st, sid, &v->news);
	if (r == 0 && n < 0)
		r = (int)n;
	if (*cursor != INT64_MIN)
		v->bits |= KL_STORE_VERIFY_MORE;
	return r;
}

static int put_suspect(struct kl_store *st, int64_t sid, const struct kl_store_piece *p)
{
	sqlite3_stmt *s = st->stmt[S_SUSPECT_ADD];

	sqlite3_bind_int64(s, 1, sid);
	sqlite3_bind_int64(s, 2, p->from);
	sqlite3_bind_int64(s, 3, p->to);
	sqlite3_bind_int(s, 4, p->new);
	return kl__store_step_done(st, S_SUSPECT_ADD);
}

int kl_store_verify_apply(struct kl_store *st, const struct kl_store_verdict *v)
{
	bool own = !st->in_tx, news = v->news;
	int r = 0, changed = 0;

	if (v->upto < 0 && !v->ndels && !v->nadds && !news)
		return v->bits;
	r = kl_store_begin(st); /* a no-op in the caller's transaction */
	for (size_t i = 0; r == 0 && i < v->ndels; i++) {
		sqlite3_bind_int64(st->stmt[S_SUSPECT_DEL], 1, v->dels[i]);
		r = kl__store_step_done(st, S_SUSPECT_DEL);
	}
	for (size_t i = 0; r == 0 && i < v->nadds; i++) {
		r = put_suspect(st, v->sid, &v->adds[i]);
		news |= v->adds[i].new == 1;
	}
	if (r == 0 && v->upto >= 0) {
		sqlite3_bind_int64(st->stmt[S_MARK_PUT], 1, v->sid);
		sqlite3_bind_int64(st->stmt[S_MARK_PUT], 2, v->upto);
		r = kl__store_step_done(st, S_MARK_PUT);
	}
	if (r == 0 && news) {
		/* Counted here, on the writer: a suspect the read missed is told next time. */
		sqlite3_bind_int64(st->stmt[S_SUSPECT_SEEN], 1, v->sid);
		r = kl__store_step_done(st, S_SUSPECT_SEEN);
		changed = sqlite3_changes(st->db);
	}
	if (own && r == 0)
		r = kl_store_commit(st);
	else if (own)
		kl_store_rollback(st);
	if (r < 0)
		return r;
	return v->bits | (changed > 0 ? KL_STORE_VERIFY_NEWS : 0);
}

void kl_store_verdict_clear(struct kl_store_verdict *v)
{
	free(v->adds);
	memset(v, 0, sizeof(*v));
}

int kl_store_verify(struct kl_store *st, int64_t sid, int64_t max_rows, int64_t *cursor)
{
	struct kl_store_verdict v = {0};
	int r = kl_store_verify_read(st, sid, max_rows, cursor, &v);

	if (r == 0)
		r = kl_store_verify_apply(st, &v);
	kl_store_verdict_clear(&v);
	return r;
}
