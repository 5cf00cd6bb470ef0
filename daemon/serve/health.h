/*
 * What the page says about the pipeline's state, from the metrics
 * registry: how long since events were consumed, produced into Kafka,
 * klines stored, and REST answered well or badly. Ages are of the local
 * clock and only describe: nothing decides what is missing from them.
 */
#pragma once

#include "conf.h"

#include <jansson.h>

/* How often a REST-only daemon adds a minute: once it has closed. */
#define KL_HEALTH_REST_EVERY_S 60

/**
 * The "health" object of /api/status: {"kafka": "off"|"on",
 * "rest_every_s", and in seconds (null: never) "events_age_s",
 * "produced_age_s", "kafka_failed_age_s", "stored_age_s", "rest_ok_age_s",
 * "rest_fail_age_s", "uptime_s"}. @return a new reference, NULL when out
 * of memory.
 */
json_t *kl_health_json(const struct kl_conf *conf);
