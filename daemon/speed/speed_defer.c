/*
 * The consumer's events past a batch's budget (speed_int.h): copied, since
 * the messages are librdkafka's only for the callback, and taken in order
 * on the next loop turns, TAKE_BUDGET_NS a turn. Their offsets are noted
 * only when taken, so a stop or a rewind that drops them loses nothing:
 * Kafka has them.
 */
#include "speed_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct sdefer {
	struct sdefer *next;
	struct kl_bus_msg m; /* key and value point into data */
	char data[];
};

static void on_drain(uv_idle_t *h)
{
	struct kl_speed *sp = h->data;
	uint64_t t0 = uv_hrtime();

	while (sp->defer_head && uv_hrtime() - t0 < TAKE_BUDGET_NS) {
		struct sdefer *d = sp->defer_head;
		bool ok;

		sp->defer_head = d->next;
		if (!sp->defer_head)
			sp->defer_tail = NULL;
		ok = kl__speed_take(sp, &d->m);
		free(d);
		if (!ok)
			return; /* kl__speed_fail dropped the rest */
	}
	if (!sp->defer_head)
		uv_idle_stop(h);
	kl__speed_arm_commit(sp);
}

int kl__speed_defer(struct kl_speed *sp, const struct kl_bus_msg *m)
{
	struct sdefer *d = malloc(sizeof(*d) + m->key_len + m->len + 1);

	if (!d)
		return -ENOMEM;
	d->next = NULL;
	d->m = *m;
	if (m->key_len)
		memcpy(d->data, m->key, m->key_len);
	memcpy(d->data + m->key_len, m->value, m->len);
	d->data[m->key_len + m->len] = '\0';
	d->m.key = m->key ? d->data : NULL;
	d->m.value = d->data + m->key_len;
	if (sp->defer_tail)
		sp->defer_tail->next = d;
	else
		sp->defer_head = d;
	sp->defer_tail = d;
	if (!uv_is_active((uv_handle_t *)&sp->defer_idle))
		uv_idle_start(&sp->defer_idle, on_drain);
	return 0;
}

void kl__speed_defer_clear(struct kl_speed *sp)
{
	while (sp->defer_head) {
		struct sdefer *d = sp->defer_head;

		sp->defer_head = d->next;
		free(d);
	}
	sp->defer_tail = NULL;
	uv_idle_stop(&sp->defer_idle);
}
