/*
 * Where a hole search reads (holemark.h). The mark makes the search cost
 * what changed since the last one: rows written past the mark, and the
 * suspects recorded by the store's triggers.
 */
#include "holemark.h"

#include "kline.h"

int kl_holemark_plan(const struct kl_holemark *m, int64_t from, int64_t to,
		     const struct kl_ranges *suspects, struct kl_ranges *out, bool *deferred)
{
	int64_t before = to < m->upto ? to : m->upto;
	int64_t after = from > m->upto ? from : m->upto;
	int r = 0;

	if (deferred)
		*deferred = false;
	for (size_t i = 0; r == 0 && suspects && i < suspects->n; i++) {
		int64_t a = suspects->v[i].from, b = suspects->v[i].to;

		if (a < from)
			a = from;
		if (b > before)
			b = before;
		r = kl_ranges_add(out, a, b);
	}
	if (r < 0 || after >= to)
		return r;
	if (m->defer_ms >= 0 && (m->rows_end < to ? m->rows_end : to) - after > m->defer_ms) {
		if (deferred)
			*deferred = true;
		after = m->rows_end;
	}
	return kl_ranges_add(out, after, to);
}

int64_t kl_holemark_slice(const struct kl_holemark *m, int64_t max_minutes)
{
	int64_t end = m->upto + max_minutes * KL_MINUTE_MS;

	if (m->rows_end <= m->upto)
		return m->upto;
	return end < m->rows_end ? end : m->rows_end;
}
