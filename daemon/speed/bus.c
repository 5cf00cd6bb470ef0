/*
 * librdkafka adapter. Invariants:
 *  1. The loop never waits on Kafka: queue IO events wake uv_poll on a
 *     pipe, and the blocking calls (CreateTopics, metadata) run in a
 *     uv_work; its after-callback is the only place the assignment
 *     changes.
 *  2. The producer's queue is bounded; when full, events are dropped and
 *     counted: the batch layer heals those minutes from REST.
 *  3. Delivery reports free nothing of ours: librdkafka copies payloads.
 */
#include "bus.h"

#include "log.h"
#include "metrics.h"
#include "reap.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH_MAX      1000
#define SETUP_RETRY_MS 5000
#define SETUP_WAIT_MS  1500 /* each blocking call in the worker: bounds shutdown too */
#define FLUSH_MS       1500
#define PURGE_MS       500  /* to serve the purged events' delivery reports */
#define DESTROY_MS     1000 /* each client's destroy, at shutdown */
#define MAX_PARTITIONS 256

struct waker {
	int fd[2];
	uv_poll_t poll;
};

struct kl_bus {
	uv_loop_t *loop;
	const struct kl_conf *conf;
	rd_kafka_t *prod, *cons;
	rd_kafka_queue_t *prod_q, *cons_q;
	struct waker pw, cw;
	uv_work_t work;
	uv_timer_t retry;
	int64_t next[MAX_PARTITIONS]; /* where each partition resumes; -1: none yet */
	uint64_t fatal_after;	      /* test hook: a fatal producer error then */
	int32_t npartitions;	      /* from the worker */
	int64_t started_ms;	      /* wall clock: Kafka timestamps are the producer's */
	int64_t start_offset[MAX_PARTITIONS];
	char setup_err[256];
	kl_bus_batch_cb cb;
	void *ud;
	struct kl_bus_stats stats;
	bool working, assigned, closing, fatal;
	bool in_batch, teardown_due; /* inside the batch callback; kl_bus_free came from it */
	int nclosing;
};

static void on_rdk_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	/* Kafka's copy of the offsets is for lag tools only: its failures while a
	 * broker is away would fill the log once a second. */
	if (!strcmp(fac, "COMMITFAIL"))
		level = 7;
	kl_log(level <= 3   ? KL_LOG_ERROR
	       : level <= 5 ? KL_LOG_WARN
			    : KL_LOG_DEBUG,
	       "kafka", "%s: %s", fac, buf);
}

static void topic_lost(struct kl_bus *bus);
static void teardown(struct kl_bus *bus);
static void on_retry(uv_timer_t *t);
static void set_offsets(struct kl_bus *bus, const struct kl_bus_offset *offs, size_t n);

static bool topic_missing(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
	       err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
	       err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
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
	if (topic_missing(m->err))
		topic_lost(bus);
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

static rd_kafka_conf_t *make_conf(struct kl_bus *bus, bool producer, char *err, size_t n)
{
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	const struct kl_conf *kc = bus->conf;
	int r = 0;

	rd_kafka_conf_set_opaque(c, bus);
	rd_kafka_conf_set_log_cb(c, on_rdk_log);
	rd_kafka_conf_set_error_cb(c, on_error);
	r |= conf_set(c, "bootstrap.servers", kc->kafka_brokers, err, n);
	r |= conf_set(c, "client.id", "klined", err, n);
	if (producer) {
		rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
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
		if (!(c = make_conf(&probe, producer, err, errlen)))
			return -EINVAL;
		rd_kafka_conf_destroy(c);
	}
	return 0;
}

static void drain(int fd)
{
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0) {
	}
}

/* A fatal error leaves the producer unusable: replace it. What its queue held
 * is dropped; the REST heal fetches those minutes. */
static void renew_producer(struct kl_bus *bus)
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
	kl_metrics_add(KL_M_KAFKA_RENEWED, 1);
	c = make_conf(bus, true, err, sizeof(err));
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

static void on_prod_wake(uv_poll_t *h, int status, int events)
{
	struct kl_bus *bus = h->data;

	(void)status;
	(void)events;
	drain(bus->pw.fd[0]);
	rd_kafka_poll(bus->prod, 0);
	/* The worker uses the producer (CreateTopics): renew once it is back. */
	if (bus->fatal && !bus->working)
		renew_producer(bus);
}

static void on_cons_wake(uv_poll_t *h, int status, int events)
{
	struct kl_bus *bus = h->data;
	rd_kafka_message_t *msgs[BATCH_MAX];
	struct kl_bus_msg out[BATCH_MAX];
	ssize_t n;

	(void)status;
	(void)events;
	drain(bus->cw.fd[0]);
	/* The IO event fires only when the queue turns non-empty: empty it. */
	while ((n = rd_kafka_consume_batch_queue(bus->cons_q, 0, msgs, BATCH_MAX)) > 0) {
		size_t k = 0;
		for (ssize_t i = 0; i < n; i++) {
			rd_kafka_message_t *m = msgs[i];
			if (m->err) {
				if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
					kl_warn("kafka", "consumer: %s",
						rd_kafka_message_errstr(m));
				if (topic_missing(m->err))
					topic_lost(bus);
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
		teardown(bus);
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
	const char *fatal_after;
	struct timespec ts;
	char msg[256];
	int r = -EINVAL;

	if (!bus)
		return -ENOMEM;
	bus->loop = loop;
	bus->conf = conf;
	bus->stats.lag = -1;
	set_offsets(bus, NULL, 0);
	if ((fatal_after = getenv("KLINED_TEST_KAFKA_FATAL_AFTER")))
		bus->fatal_after = strtoull(fatal_after, NULL, 10);
	clock_gettime(CLOCK_REALTIME, &ts);
	bus->started_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - 60000;
	pc = make_conf(bus, true, err, errlen);
	cc = pc ? make_conf(bus, false, err, errlen) : NULL;
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
	r = waker_init(bus, &bus->pw, bus->prod_q, on_prod_wake);
	if (r == 0)
		r = waker_init(bus, &bus->cw, bus->cons_q, on_cons_wake);
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

/* Thread pool: create the topic if needed, then learn its partitions. */
static void setup_work(uv_work_t *w)
{
	struct kl_bus *bus = w->data;
	const char *topic = bus->conf->kafka_topic;
	rd_kafka_NewTopic_t *nt;
	rd_kafka_queue_t *q = rd_kafka_queue_new(bus->prod);
	rd_kafka_event_t *ev;
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt;
	rd_kafka_resp_err_t err;

	bus->npartitions = 0;
	bus->setup_err[0] = '\0';
	nt = rd_kafka_NewTopic_new(topic, 1, -1, bus->setup_err, sizeof(bus->setup_err));
	if (nt) {
		rd_kafka_CreateTopics(bus->prod, &nt, 1, NULL, q);
		ev = rd_kafka_queue_poll(q, SETUP_WAIT_MS);
		if (ev)
			rd_kafka_event_destroy(ev); /* "already exists" is the usual answer */
		rd_kafka_NewTopic_destroy(nt);
	}
	rd_kafka_queue_destroy(q);
	rkt = rd_kafka_topic_new(bus->cons, topic, NULL);
	err = rd_kafka_metadata(bus->cons, 0, rkt, &md, SETUP_WAIT_MS);
	if (err) {
		snprintf(bus->setup_err, sizeof(bus->setup_err), "%s", rd_kafka_err2str(err));
	} else if (md->topic_cnt == 1 && !md->topics[0].err) {
		bus->npartitions = md->topics[0].partition_cnt;
	} else {
		snprintf(bus->setup_err, sizeof(bus->setup_err), "%s",
			 md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "no such topic");
	}
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	/* Partitions with no offset in the store start at what this process may
	 * have produced already (from its start, by timestamp), not at the end. */
	for (int32_t p = 0; p < bus->npartitions && p < MAX_PARTITIONS; p++) {
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
		rd_kafka_topic_partition_list_add(l, topic, p)->offset = bus->started_ms;
		bus->start_offset[p] = RD_KAFKA_OFFSET_END;
		if (!rd_kafka_offsets_for_times(bus->cons, l, SETUP_WAIT_MS) && !l->elems[0].err)
			bus->start_offset[p] =
			    l->elems[0].offset >= 0 ? l->elems[0].offset : RD_KAFKA_OFFSET_END;
		rd_kafka_topic_partition_list_destroy(l);
	}
}

static void start_setup(struct kl_bus *bus);

static void on_retry(uv_timer_t *t)
{
	start_setup(t->data);
}

static void setup_done(uv_work_t *w, int status)
{
	struct kl_bus *bus = w->data;
	rd_kafka_topic_partition_list_t *parts;
	rd_kafka_resp_err_t err;

	bus->working = false;
	if (bus->closing) {
		teardown(bus);
		return;
	}
	if (bus->fatal)
		renew_producer(bus);
	if (status < 0)
		return;
	if (bus->npartitions <= 0) {
		kl_warn("kafka", "topic %s not reachable (%s); retrying in %d s",
			bus->conf->kafka_topic, bus->setup_err, SETUP_RETRY_MS / 1000);
		uv_timer_start(&bus->retry, on_retry, SETUP_RETRY_MS, 0);
		return;
	}
	parts = rd_kafka_topic_partition_list_new(bus->npartitions);
	for (int32_t p = 0; p < bus->npartitions; p++) {
		int64_t off = p < MAX_PARTITIONS ? bus->start_offset[p] : RD_KAFKA_OFFSET_END;
		if (p < MAX_PARTITIONS && bus->next[p] >= 0)
			off = bus->next[p];
		rd_kafka_topic_partition_list_add(parts, bus->conf->kafka_topic, p)->offset = off;
	}
	err = rd_kafka_assign(bus->cons, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	if (err) {
		kl_warn("kafka", "cannot assign %s: %s; retrying", bus->conf->kafka_topic,
			rd_kafka_err2str(err));
		uv_timer_start(&bus->retry, on_retry, SETUP_RETRY_MS, 0);
		return;
	}
	bus->assigned = true;
	kl_info("kafka", "consuming %s (%" PRId32 " partitions) from the offsets in the store",
		bus->conf->kafka_topic, bus->npartitions);
}

static void start_setup(struct kl_bus *bus)
{
	if (bus->working || bus->closing)
		return;
	bus->working = true;
	bus->work.data = bus;
	uv_queue_work(bus->loop, &bus->work, setup_work, setup_done);
}

static void set_offsets(struct kl_bus *bus, const struct kl_bus_offset *offs, size_t n)
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
	set_offsets(bus, offs, n);
	bus->cb = cb;
	bus->ud = ud;
	start_setup(bus);
	return 0;
}

void kl_bus_rewind(struct kl_bus *bus, const struct kl_bus_offset *offs, size_t n)
{
	if (bus->closing)
		return;
	set_offsets(bus, offs, n);
	if (bus->assigned) {
		rd_kafka_assign(bus->cons, NULL);
		bus->assigned = false;
	}
	uv_timer_stop(&bus->retry);
	start_setup(bus); /* a setup under way assigns from the new offsets */
}

/* The topic vanished (a broker restarted empty, or someone deleted it): set it
 * up again; partitions whose stored offset lies past the new log's end start
 * over from its beginning (auto.offset.reset). */
static void topic_lost(struct kl_bus *bus)
{
	if (bus->closing || bus->working || uv_is_active((uv_handle_t *)&bus->retry))
		return;
	kl_warn("kafka", "topic %s is gone; setting it up again", bus->conf->kafka_topic);
	uv_timer_start(&bus->retry, on_retry, SETUP_RETRY_MS / 5, 0);
}

int kl_bus_produce(struct kl_bus *bus, const char *key, size_t key_len, const char *value,
		   size_t len)
{
	rd_kafka_resp_err_t err;

	if (!bus->prod) {
		bus->stats.dropped++;
		return -ENOBUFS;
	}
	if (bus->fatal_after && bus->stats.produced == bus->fatal_after) {
		bus->fatal_after = 0;
		rd_kafka_test_fatal_error(bus->prod, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
					  "KLINED_TEST_KAFKA_FATAL_AFTER");
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
		if (topic_missing(err))
			topic_lost(bus);
		return -ENOBUFS;
	}
	bus->stats.produced++;
	kl_metrics_add(KL_M_KAFKA_PRODUCED, 1);
	return 0;
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

static void teardown(struct kl_bus *bus)
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
		teardown(bus);
}
