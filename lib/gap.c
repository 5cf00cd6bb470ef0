/*
 * Range arithmetic for gap detection and paging. Pure and allocation-
 * light: a year of holes in a badly damaged store is a few thousand
 * ranges at most, because adjacent minutes always merge.
 */
#include "gap.h"

#include "kline.h"

#include <errno.h>
#include <stdlib.h>

int kl_ranges_add(struct kl_ranges *r, int64_t from, int64_t to)
{
	if (to <= from)
		return 0;
	if (r->n && r->v[r->n - 1].to >= from) {
		if (to > r->v[r->n - 1].to)
			r->v[r->n - 1].to = to;
		return 0;
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct kl_range *v = realloc(r->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = (struct kl_range){from, to};
	return 0;
}

void kl_ranges_clear(struct kl_ranges *r)
{
	free(r->v);
	*r = (struct kl_ranges){0};
}

int64_t kl_ranges_minutes(const struct kl_ranges *r)
{
	int64_t n = 0;

	for (size_t i = 0; i < r->n; i++)
		n += (r->v[i].to - r->v[i].from + KL_MINUTE_MS - 1) / KL_MINUTE_MS;
	return n;
}

int kl_ranges_subtract(struct kl_ranges *r, const struct kl_ranges *sub)
{
	struct kl_ranges out = {0};
	size_t j = 0;
	int ret;

	for (size_t i = 0; i < r->n; i++) {
		int64_t from = r->v[i].from, to = r->v[i].to;

		while (j < sub->n && sub->v[j].to <= from)
			j++;
		for (size_t k = j; k < sub->n && sub->v[k].from < to && from < to; k++) {
			if (sub->v[k].from > from) {
				ret = kl_ranges_add(&out, from, sub->v[k].from);
				if (ret < 0)
					goto out;
			}
			if (sub->v[k].to > from)
				from = sub->v[k].to;
		}
		ret = kl_ranges_add(&out, from, to);
		if (ret < 0)
			goto out;
	}
	kl_ranges_clear(r);
	*r = out;
	return 0;
out:
	kl_ranges_clear(&out);
	return ret;
}

void kl_gapscan_init(struct kl_gapscan *s, int64_t from, int64_t to, struct kl_ranges *out)
{
	s->next = from;
	s->to = to;
	s->out = out;
}

int kl_gapscan_feed(struct kl_gapscan *s, int64_t open_time)
{
	int64_t slot = kl_kline_slot(open_time);
	int r = 0;

	if (slot >= s->to)
		slot = s->to;
	if (slot > s->next)
		r = kl_ranges_add(s->out, s->next, slot);
	if (slot + KL_MINUTE_MS > s->next)
		s->next = slot + KL_MINUTE_MS;
	return r;
}

int kl_gapscan_finish(struct kl_gapscan *s)
{
	int r = 0;

	if (s->to > s->next)
		r = kl_ranges_add(s->out, s->next, s->to);
	s->next = s->to;
	return r;
}

struct kl_range kl_range_page(struct kl_range r, int limit)
{
	int64_t end = r.from + (int64_t)limit * KL_MINUTE_MS;

	return (struct kl_range){r.from, end < r.to ? end : r.to};
}
