/*
 * klined's own consumer: every partition assigned by klined itself (no
 * group rebalancing), from the offsets the store holds; batches delivered
 * to one callback, which may free the bus (the teardown then waits for it
 * to return: the messages are the consumer's).
 */
#include "bus_int.h"

#include "log.h"

void kl__bus_on_cons_wake(uv_poll_t *h, int status, int events)
{
	struct kl_bus *bus = h->data;
	rd_kafka_message_t *msgs[BATCH_MAX];
	struct kl_bus_msg out[BATCH_MAX];
	ssize_t n;

	(void)status;
	(void)events;
	kl__bus_drain(bus->cw.fd[0]);
	/* The IO event fires only when the queue turns non-empty: empty it. */
	while ((n = rd_kafka_consume_batch_queue(bus->cons_q, 0, msgs, BATCH_MAX)) > 0) {
		size_t k = 0;
		for (ssize_t i = 0; i < n; i++) {
			rd_kafka_message_t *m = msgs[i];
			if (m->err) {
				if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
					kl_warn("kafka", "consumer: %s",
						rd_kafka_message_errstr(m));
				if (kl__bus_topic_missing(m->err))
					kl__bus_topic_lost(bus);
				continue;
			}
			/* Between a rewind and its new assignment nothing is delivered. */
			if (!bus->assigned)
				continue;
			if (m->partition >= 0 && m->partition < MAX_PARTITIONS)
				bus->next[m->partition] = m->offset + 1;
			out[k++] = (struct kl_bus_msg){m->key,
						       m->payload,
						       m->key_len,
						       m->len,
						       m->partition,
						       m->offset,
						       rd_kafka_message_timestamp(m, NULL)};
		}
		bus->stats.consumed += k;
		bus->in_batch = true;
		if (k && bus->cb)
			bus->cb(bus->ud, out, k);
		bus->in_batch = false;
		for (ssize_t i = 0; i < n; i++)
			rd_kafka_message_destroy(msgs[i]);
		if (bus->closing)
			break;
	}
	/* Freed from inside the callback: the messages were the consumer's. */
	if (bus->teardown_due) {
		bus->teardown_due = false;
		kl__bus_teardown(bus);
	}
}

void kl__bus_set_offsets(struct kl_bus *bus, const struct kl_bus_offset *offs, size_t n)
{
	for (int p = 0; p < MAX_PARTITIONS; p++)
		bus->next[p] = -1;
	for (size_t i = 0; i < n; i++) {
		if (offs[i].partition >= 0 && offs[i].partition < MAX_PARTITIONS)
			bus->next[offs[i].partition] = offs[i].offset;
	}
}

int kl_bus_consume(struct kl_bus *bus, const struct kl_bus_offset *offs, size_t n,
		   kl_bus_batch_cb cb, void *ud)
{
	kl__bus_set_offsets(bus, offs, n);
	bus->cb = cb;
	bus->ud = ud;
	kl__bus_start_setup(bus);
	return 0;
}

void kl_bus_rewind(struct kl_bus *bus, const struct kl_bus_offset *offs, size_t n)
{
	if (bus->closing)
		return;
	kl__bus_set_offsets(bus, offs, n);
	if (bus->assigned) {
		rd_kafka_assign(bus->cons, NULL);
		bus->assigned = false;
	}
	uv_timer_stop(&bus->retry);
	kl__bus_start_setup(bus); /* a setup under way assigns from the new offsets */
}

void kl_bus_commit(struct kl_bus *bus, const struct kl_bus_offset *offs, size_t n)
{
	rd_kafka_topic_partition_list_t *parts;

	if (!bus->assigned || !n)
		return;
	parts = rd_kafka_topic_partition_list_new((int)n);
	for (size_t i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(parts, bus->conf->kafka_topic, offs[i].partition)
		    ->offset = offs[i].offset;
	rd_kafka_commit(bus->cons, parts, 1);
	rd_kafka_topic_partition_list_destroy(parts);
}

void kl_bus_stats(const struct kl_bus *bus, struct kl_bus_stats *ret)
{
	*ret = bus->stats;
	ret->lag = -1;
	if (bus->assigned) {
		int64_t lo, hi, lag = 0;
		rd_kafka_topic_partition_list_t *parts = NULL;
		if (rd_kafka_assignment(bus->cons, &parts) == 0 && parts) {
			rd_kafka_position(bus->cons, parts);
			for (int i = 0; i < parts->cnt; i++) {
				if (rd_kafka_get_watermark_offsets(bus->cons, parts->elems[i].topic,
								   parts->elems[i].partition, &lo,
								   &hi) == 0 &&
				    parts->elems[i].offset >= 0 && hi >= parts->elems[i].offset)
					lag += hi - parts->elems[i].offset;
			}
			rd_kafka_topic_partition_list_destroy(parts);
			ret->lag = lag;
		}
	}
}
