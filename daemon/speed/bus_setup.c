/*
 * The setup worker: on libuv's thread pool, create the topic if missing,
 * learn its partitions and where this process's own events begin; then, on
 * the loop, assign the partitions. Retried until the broker answers; the
 * producer is never renewed while the worker uses it.
 */
#include "bus_int.h"

#include "log.h"

#include <inttypes.h>
#include <stdio.h>

/* Thread pool: create the topic if needed, then learn its partitions. */
#define METADATA_TRIES	  5 /* at most ~1 s more, so a stop never waits long on this */
#define METADATA_PAUSE_MS 200

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
	/* A topic just created takes a moment to reach every broker's metadata:
	 * ask again briefly (this is the thread pool, not the loop) before a
	 * warning and a 5 s retry. */
	for (int tries = 0;; tries++) {
		err = rd_kafka_metadata(bus->cons, 0, rkt, &md, SETUP_WAIT_MS);
		if (err || tries >= METADATA_TRIES || (md->topic_cnt == 1 && !md->topics[0].err))
			break;
		rd_kafka_metadata_destroy(md);
		md = NULL;
		uv_sleep(METADATA_PAUSE_MS);
	}
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

void kl__bus_on_retry(uv_timer_t *t)
{
	kl__bus_start_setup(t->data);
}

static void setup_done(uv_work_t *w, int status)
{
	struct kl_bus *bus = w->data;
	rd_kafka_topic_partition_list_t *parts;
	rd_kafka_resp_err_t err;

	bus->working = false;
	if (bus->closing) {
		kl__bus_teardown(bus);
		return;
	}
	if (bus->fatal)
		kl__bus_renew_producer(bus);
	if (status < 0)
		return;
	if (bus->npartitions <= 0) {
		kl_warn("kafka", "topic %s not reachable (%s); retrying in %d s",
			bus->conf->kafka_topic, bus->setup_err, SETUP_RETRY_MS / 1000);
		uv_timer_start(&bus->retry, kl__bus_on_retry, SETUP_RETRY_MS, 0);
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
		uv_timer_start(&bus->retry, kl__bus_on_retry, SETUP_RETRY_MS, 0);
		return;
	}
	bus->assigned = true;
	kl_info("kafka", "consuming %s (%" PRId32 " partitions) from the offsets in the store",
		bus->conf->kafka_topic, bus->npartitions);
}

void kl__bus_start_setup(struct kl_bus *bus)
{
	if (bus->working || bus->closing)
		return;
	bus->working = true;
	bus->work.data = bus;
	uv_queue_work(bus->loop, &bus->work, setup_work, setup_done);
}

/* The topic vanished (a broker restarted empty, or someone deleted it): set it
 * up again; partitions whose stored offset lies past the new log's end start
 * over from its beginning (auto.offset.reset). */
void kl__bus_topic_lost(struct kl_bus *bus)
{
	if (bus->closing || bus->working || uv_is_active((uv_handle_t *)&bus->retry))
		return;
	kl_warn("kafka", "topic %s is gone; setting it up again", bus->conf->kafka_topic);
	uv_timer_start(&bus->retry, kl__bus_on_retry, SETUP_RETRY_MS / 5, 0);
}
