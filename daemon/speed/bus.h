/*
 * Kafka on the libuv loop (librdkafka): an idempotent producer of kline
 * events and klined's own consumer of them, both woken through queue IO
 * events (a pipe under uv_poll), never blocking the loop. Anything that
 * may block (topic creation, metadata) runs on libuv's thread pool.
 */
#pragma once

#include "conf.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct kl_bus;

struct kl_bus_msg {
	const char *key, *value; /* borrowed for the callback */
	size_t key_len, len;
	int32_t partition;
	int64_t offset;
	int64_t timestamp; /* Kafka's (the producer's wall clock, ms); -1 unknown */
};

/* A partition's next offset to read, as stored in SQLite. */
struct kl_bus_offset {
	int32_t partition;
	int64_t offset;
};

/** Messages consumed, in order per partition; pointers are borrowed. */
typedef void (*kl_bus_batch_cb)(void *ud, const struct kl_bus_msg *m, size_t n);

/**
 * Create the producer and consumer (nothing contacts the broker yet).
 * @return 0 with *ret owned by the caller; -EINVAL with a message naming
 *         the bad [kafka] key in @p err.
 */
int kl_bus_new(uv_loop_t *loop, const struct kl_conf *conf, struct kl_bus **ret, char *err,
	       size_t errlen);

/**
 * Check the [kafka] settings librdkafka will be given (the librdkafka.*
 * passthrough above all), without contacting anything.
 * @return 0, or -EINVAL with a message naming the key in @p err.
 */
int kl_bus_check_conf(const struct kl_conf *conf, char *err, size_t errlen);

/**
 * Start consuming every partition of the topic from @p offs (copied;
 * partitions not listed start at the end), creating the topic if missing.
 * Retries in the background until the broker answers. @return 0 or -ENOMEM.
 */
int kl_bus_consume(struct kl_bus *bus, const struct kl_bus_offset *offs, size_t n,
		   kl_bus_batch_cb cb, void *ud);

/**
 * Produce one event (key and value are copied). @return 0; -ENOBUFS when
 * the local queue is full (the event is dropped and counted).
 */
int kl_bus_produce(struct kl_bus *bus, const char *key, size_t key_len, const char *value,
		   size_t len);

/**
 * Forget what was consumed after @p offs (copied) and read again from
 * there: the consumer's caller lost the effects of those messages (a store
 * write failed). Nothing is delivered until the new assignment is in place.
 */
void kl_bus_rewind(struct kl_bus *bus, const struct kl_bus_offset *offs, size_t n);

/** Tell Kafka the offsets consumed (async, for lag tools; SQLite holds the real ones). */
void kl_bus_commit(struct kl_bus *bus, const struct kl_bus_offset *offs, size_t n);

struct kl_bus_stats {
	uint64_t produced, delivered, failed, dropped, consumed;
	int64_t lag; /* messages behind the partitions' ends; -1 unknown */
};
void kl_bus_stats(const struct kl_bus *bus, struct kl_bus_stats *ret);

/** Flush the producer (bounded), close both clients and free. NULL is fine. */
void kl_bus_free(struct kl_bus *bus);
