/*
 * The idempotent producer of kline events: queueing, delivery reports, and
 * its replacement after a fatal error (the sequence broken, e.g. by a
 * broker whose log was wiped), which waits for the setup worker to let go.
 */
#include "bus_int.h"

#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

void kl__bus_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct kl_bus *bus = opaque;

	(void)rk;
	if (!m->err) {
		bus->stats.delivered++;
		kl_metrics_add(KL_M_KAFKA_DELIVERED, 1);
		return;
	}
	bus->stats.failed++;
	kl_metrics_add(KL_M_KAFKA_FAILED, 1);
	/* One line per thousand: a broker gone for minutes fails every event. */
	if (bus->stats.failed % 1000 == 1)
		kl_warn("kafka",
			"events not delivered: %s (%" PRIu64 " so far; the REST heal covers them)",
			rd_kafka_err2str(m->err), bus->stats.failed);
	if (kl__bus_topic_missing(m->err))
		kl__bus_topic_lost(bus);
}

/* A fatal error leaves the producer unusable: replace it. What its queue held
 * is dropped; the REST heal fetches those minutes. */
void kl__bus_renew_producer(struct kl_bus *bus)
{
	char why[512], err[256], msg[256];
	rd_kafka_conf_t *c;

	bus->fatal = false;
	rd_kafka_fatal_error(bus->prod, why, sizeof(why));
	kl_err("kafka", "producer: fatal error: %s; starting a new producer", why);
	rd_kafka_queue_io_event_enable(bus->prod_q, -1, NULL, 0);
	rd_kafka_queue_destroy(bus->prod_q);
	bus->prod_q = NULL;
	rd_kafka_purge(bus->prod, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_destroy(bus->prod);
	bus->prod = NULL;
	bus->renewals++;
	kl_metrics_add(KL_M_KAFKA_RENEWED, 1);
	c = kl__bus_make_conf(bus, true, err, sizeof(err));
	if (c && !(bus->prod = rd_kafka_new(RD_KAFKA_PRODUCER, c, msg, sizeof(msg)))) {
		rd_kafka_conf_destroy(c);
		snprintf(err, sizeof(err), "%s", msg);
	}
	if (!bus->prod) {
		kl_err("kafka", "cannot create a new producer: %s; events are dropped", err);
		return;
	}
	bus->prod_q = rd_kafka_queue_get_main(bus->prod);
	rd_kafka_queue_io_event_enable(bus->prod_q, bus->pw.fd[1], "1", 1);
}

void kl__bus_on_prod_wake(uv_poll_t *h, int status, int events)
{
	struct kl_bus *bus = h->data;

	(void)status;
	(void)events;
	kl__bus_drain(bus->pw.fd[0]);
	rd_kafka_poll(bus->prod, 0);
	/* The worker uses the producer (CreateTopics): renew once it is back. */
	if (bus->fatal && !bus->working)
		kl__bus_renew_producer(bus);
}

int kl_bus_produce(struct kl_bus *bus, const char *key, size_t key_len, const char *value,
		   size_t len)
{
	rd_kafka_resp_err_t err;

	if (!bus->prod) {
		bus->stats.dropped++;
		return -ENOBUFS;
	}
	err = rd_kafka_producev(bus->prod, RD_KAFKA_V_TOPIC(bus->conf->kafka_topic),
				RD_KAFKA_V_KEY(key, key_len),
				RD_KAFKA_V_VALUE((void *)(uintptr_t)value, len),
				RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
	if (err) {
		bus->stats.dropped++;
		kl_metrics_add(KL_M_KAFKA_DROPPED, 1);
		if (bus->stats.dropped == 1 || bus->stats.dropped % 10000 == 0)
			kl_warn("kafka",
				"cannot queue an event: %s (%" PRIu64 " dropped so far; "
				"the REST heal covers them)",
				rd_kafka_err2str(err), bus->stats.dropped);
		if (kl__bus_topic_missing(err))
			kl__bus_topic_lost(bus);
		return -ENOBUFS;
	}
	bus->stats.produced++;
	kl_metrics_add(KL_M_KAFKA_PRODUCED, 1);
	return 0;
}
