/*
 * The Kafka adapter's insides, shared by bus.c (lifecycle, configuration,
 * teardown), bus_produce.c (the producer), bus_consume.c (the consumer)
 * and bus_setup.c (the topic/metadata worker on the thread pool). Not for
 * other modules; tests/adapter/test-bus.c reads the struct to see what
 * the bus decided.
 */
#pragma once

#include "bus.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

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
	uint64_t renewals;	      /* producers replaced after a fatal error */
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

/* bus.c */

/** A new librdkafka configuration for @p bus. @return it (caller owns), or NULL with @p err set. */
rd_kafka_conf_t *kl__bus_make_conf(struct kl_bus *bus, bool producer, char *err, size_t n);

/** Empty a waker's pipe. */
void kl__bus_drain(int fd);

/** Flush (bounded), destroy both clients, close the handles; frees @p bus from the last close. */
void kl__bus_teardown(struct kl_bus *bus);

/** @return true when @p err says the topic (or a partition of it) does not exist. */
bool kl__bus_topic_missing(rd_kafka_resp_err_t err);

/* bus_produce.c */

/** The delivery report: counts, and notices a topic gone. */
void kl__bus_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);

/** Replace a producer left unusable by a fatal error (never while the worker runs). */
void kl__bus_renew_producer(struct kl_bus *bus);

/** The producer's queue IO event. */
void kl__bus_on_prod_wake(uv_poll_t *h, int status, int events);

/* bus_consume.c */

/** The consumer's queue IO event: delivers batches to the callback. */
void kl__bus_on_cons_wake(uv_poll_t *h, int status, int events);

/** Where each partition resumes: @p offs (copied); the others have none. */
void kl__bus_set_offsets(struct kl_bus *bus, const struct kl_bus_offset *offs, size_t n);

/* bus_setup.c */

/** Create the topic if needed, learn its partitions and assign them (in a uv_work). */
void kl__bus_start_setup(struct kl_bus *bus);

/** The topic vanished: set it up again soon (once). */
void kl__bus_topic_lost(struct kl_bus *bus);

/** The retry timer's callback: set up again. */
void kl__bus_on_retry(uv_timer_t *t);
