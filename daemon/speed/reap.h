/*
 * Shutdown of librdkafka clients in bounded time: with a broker gone or
 * hung, rd_kafka_destroy may wait on its threads for minutes, far past
 * systemd's stop timeout.
 */
#pragma once

#include <librdkafka/rdkafka.h>

/**
 * Destroy @p rk (taken) with rd_kafka_destroy_flags(@p flags), waiting at
 * most @p ms. If it takes longer it goes on on its own thread and the
 * process may stop without it: nothing of a Kafka client needs saving (the
 * offsets are in the store, what was not delivered is healed from REST).
 * @p what names it in the log.
 */
void kl_reap(rd_kafka_t *rk, int flags, int ms, const char *what);
