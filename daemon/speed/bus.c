/*
 * librdkafka adapter: its lifecycle. Invariants (for all of bus*.c):
 *  1. The loop never waits on Kafka: queue IO events wake uv_poll on a
 *     pipe, and the blocking calls (CreateTopics, metadata) run in a
 *     uv_work (bus_setup.c); its after-callback is the only place the
 *     assignment changes.
 *  2. The producer's queue is bounded; when full, events are dropped and
 *     counted: the batch layer heals those minutes from REST.
 *  3. Delivery reports free nothing of ours: librdkafka copies payloads.
 * Here: the clients' configuration, creation, and a bounded teardown.
 */
#include "bus_int.h"

#include "log.h"
#include "metrics.h"
#include "reap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void on_rdk_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	/* Kafka's copy of the offsets is for lag tools only: its failures while a
	 * broker is away would fill the log once a second. */
	if (!strcmp(fac, "COMMITFAIL"))
		level = 7;
	/* A broker that has just started loads its coordinator state: librdkafka
	 * waits and retries on its own, so it is not worth a warning. */
	if (strstr(buf, "Coordinator load in progress"))
		level = 7;
	kl_log(level <= 3   ? KL_LOG_ERROR
	       : level <= 5 ? KL_LOG_WARN
			    : KL_LOG_DEBUG,
	       "kafka", "%s: %s", fac, buf);
}

bool kl__bus_topic_missing(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
	       err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
	       err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
}

/* Fatal errors (the idempotent producer's sequence broken, e.g. by a broker
 * whose log was wiped) are dealt with on the loop: see on_prod_wake. */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct kl_bus *bus = opaque;

	(void)rk;
	if (err == RD_KAFKA_RESP_ERR__FATAL)
		bus->fatal = true;
	else if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		kl_warn("kafka", "%s", reason);
	else
		kl_debug("kafka", "%s: %s", rd_kafka_err2name(err), reason);
}

static int conf_set(rd_kafka_conf_t *c, const char *name, const char *value, char *err, size_t n)
{
	char msg[256];

	if (rd_kafka_conf_set(c, name, value, msg, sizeof(msg)) == RD_KAFKA_CONF_OK)
		return 0;
	snprintf(err, n, "[kafka] %s: %s", name, msg);
	return -EINVAL;
}

rd_kafka_conf_t *kl__bus_make_conf(struct kl_bus *bus, bool producer, char *err, size_t n)
{
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	const struct kl_conf *kc = bus->conf;
	int r = 0;

	rd_kafka_conf_set_opaque(c, bus);
	rd_kafka_conf_set_log_cb(c, on_rdk_log);
	rd_kafka_conf_set_error_cb(c, on_error);
	r |= conf_set(c, "bootstrap.servers", kc->kafka_brokers, err, n);
	r |= conf_set(c, "client.id", "klined", err, n);
	/* Small requests both ways (a burst's batches, the fetches): Nagle's wait
	 * for the ACK of the last one would be most of event -> committed. */
	r |= conf_set(c, "socket.nagle.disable", "true", err, n);
	if (producer) {
		rd_kafka_conf_set_dr_msg_cb(c, kl__bus_on_delivery);
		r |= conf_set(c, "enable.idempotence", "true", err, n);
		r |= conf_set(c, "acks", "all", err, n);
		r |= conf_set(c, "linger.ms", "5", err, n);
		r |= conf_set(c, "queue.buffering.max.messages", "200000", err, n);
		r |= conf_set(c, "message.timeout.ms", "300000", err, n);
	} else {
		r |= conf_set(c, "group.id", kc->kafka_group, err, n);
		r |= conf_set(c, "enable.auto.commit", "false", err, n);
		r |= conf_set(c, "enable.auto.offset.store", "false", err, n);
		r |= conf_set(c, "auto.offset.reset", "earliest", err, n);
		r |= conf_set(c, "enable.partition.eof", "false", err, n);
	}
	for (size_t i = 0; r == 0 && i < kc->nkafka_props; i++) {
		char name[256];
		const char *eq = strchr(kc->kafka_props[i], '=');
		snprintf(name, sizeof(name), "%.*s", (int)(eq - kc->kafka_props[i]),
			 kc->kafka_props[i]);
		if (rd_kafka_conf_set(c, name, eq + 1, err, n) != RD_KAFKA_CONF_OK) {
			char msg[256];
			snprintf(msg, sizeof(msg), "%s", err);
			snprintf(err, n, "[kafka] librdkafka.%s: %s", name, msg);
			r = -EINVAL;
		}
	}
	if (r) {
		rd_kafka_conf_destroy(c);
		return NULL;
	}
	return c;
}

int kl_bus_check_conf(const struct kl_conf *conf, char *err, size_t errlen)
{
	struct kl_bus probe = {.conf = conf};
	rd_kafka_conf_t *c;

	for (int producer = 0; producer < 2; producer++) {
		if (!(c = kl__bus_make_conf(&probe, producer, err, errlen)))
			return -EINVAL;
		rd_kafka_conf_destroy(c);
	}
	return 0;
}

void kl__bus_drain(int fd)
{
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0) {
	}
}

static int waker_init(struct kl_bus *bus, struct waker *w, rd_kafka_queue_t *q, uv_poll_cb cb)
{
	if (pipe2(w->fd, O_NONBLOCK | O_CLOEXEC) < 0)
		return -errno;
	rd_kafka_queue_io_event_enable(q, w->fd[1], "1", 1);
	uv_poll_init(bus->loop, &w->poll, w->fd[0]);
	w->poll.data = bus;
	uv_poll_start(&w->poll, UV_READABLE, cb);
	return 0;
}

int kl_bus_new(uv_loop_t *loop, const struct kl_conf *conf, struct kl_bus **ret, char *err,
	       size_t errlen)
{
	struct kl_bus *bus = calloc(1, sizeof(*bus));
	rd_kafka_conf_t *pc = NULL, *cc = NULL;
	struct timespec ts;
	char msg[256];
	int r = -EINVAL;

	if (!bus)
		return -ENOMEM;
	bus->loop = loop;
	bus->conf = conf;
	bus->stats.lag = -1;
	kl__bus_set_offsets(bus, NULL, 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	bus->started_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - 60000;
	pc = kl__bus_make_conf(bus, true, err, errlen);
	cc = pc ? kl__bus_make_conf(bus, false, err, errlen) : NULL;
	if (!pc || !cc)
		goto fail;
	bus->prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, msg, sizeof(msg));
	if (!bus->prod) {
		snprintf(err, errlen, "[kafka] cannot create the producer: %s", msg);
		goto fail;
	}
	pc = NULL;
	bus->cons = rd_kafka_new(RD_KAFKA_CONSUMER, cc, msg, sizeof(msg));
	if (!bus->cons) {
		snprintf(err, errlen, "[kafka] cannot create the consumer: %s", msg);
		goto fail;
	}
	cc = NULL;
	rd_kafka_poll_set_consumer(bus->cons);
	bus->prod_q = rd_kafka_queue_get_main(bus->prod);
	bus->cons_q = rd_kafka_queue_get_consumer(bus->cons);
	r = waker_init(bus, &bus->pw, bus->prod_q, kl__bus_on_prod_wake);
	if (r == 0)
		r = waker_init(bus, &bus->cw, bus->cons_q, kl__bus_on_cons_wake);
	if (r < 0) {
		snprintf(err, errlen, "cannot create a pipe: %s", strerror(-r));
		goto fail;
	}
	uv_timer_init(loop, &bus->retry);
	bus->retry.data = bus;
	*ret = bus;
	return 0;
fail:
	if (pc)
		rd_kafka_conf_destroy(pc);
	if (cc)
		rd_kafka_conf_destroy(cc);
	if (bus->prod)
		rd_kafka_destroy(bus->prod);
	if (bus->cons)
		rd_kafka_destroy(bus->cons);
	free(bus);
	return r;
}

static void on_closed(uv_handle_t *h)
{
	struct kl_bus *bus = h->data;

	if (--bus->nclosing == 0) {
		close(bus->pw.fd[0]);
		close(bus->pw.fd[1]);
		close(bus->cw.fd[0]);
		close(bus->cw.fd[1]);
		free(bus);
	}
}

void kl__bus_teardown(struct kl_bus *bus)
{
	/* A short, bounded wait: what isn't delivered now is healed from REST.
	 * What is left is purged: rd_kafka_destroy would otherwise wait for each
	 * queued idempotent event to time out (message.timeout.ms, minutes) while
	 * the broker is away, far past systemd's stop timeout. */
	if (bus->prod && rd_kafka_outq_len(bus->prod) &&
	    rd_kafka_flush(bus->prod, FLUSH_MS) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		kl_warn("kafka",
			"%d events not delivered at shutdown: dropped (the next start heals them "
			"from REST)",
			rd_kafka_outq_len(bus->prod));
		rd_kafka_purge(bus->prod, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_flush(bus->prod, PURGE_MS);
	}
	if (bus->prod) {
		rd_kafka_queue_io_event_enable(bus->prod_q, -1, NULL, 0);
		rd_kafka_queue_destroy(bus->prod_q);
		kl_reap(bus->prod, 0, DESTROY_MS, "producer");
	}
	rd_kafka_queue_io_event_enable(bus->cons_q, -1, NULL, 0);
	rd_kafka_queue_destroy(bus->cons_q);
	/* No group to leave (the assignment is klined's own, its offsets are in the
	 * store), and a consumer close waits on the coordinator, which may be gone
	 * or hung: unassign, then destroy without the close. */
	rd_kafka_assign(bus->cons, NULL);
	kl_reap(bus->cons, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE, DESTROY_MS, "consumer");
	bus->nclosing = 3;
	uv_close((uv_handle_t *)&bus->pw.poll, on_closed);
	uv_close((uv_handle_t *)&bus->cw.poll, on_closed);
	uv_close((uv_handle_t *)&bus->retry, on_closed);
}

void kl_bus_free(struct kl_bus *bus)
{
	if (!bus || bus->closing)
		return;
	bus->closing = true;
	/* The worker uses both clients: tear down once it is back (setup_done);
	 * the batch callback holds the consumer's messages: once it returns. */
	if (bus->working)
		uv_cancel((uv_req_t *)&bus->work);
	else if (bus->in_batch)
		bus->teardown_due = true;
	else
		kl__bus_teardown(bus);
}
