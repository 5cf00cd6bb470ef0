/*
 * The JSON of the HTTP API and of `klined status --json`, built from the
 * store's plain reads (store.h): the store knows rows, this file knows
 * the contract's names and types (../shared/CONTRACT.md).
 */
#pragma once

#include "store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/**
 * The status report (what `klined status --json` prints), with the
 * consumer's stored positions on Kafka topic @p topic (NULL: no stream;
 * borrowed); its "lag" is null here, /api/status fills it in live.
 * @return 0 with *ret (a new reference, caller owns), -ENOMEM or -EIO.
 */
int kl_api_status(struct kl_store *st, const char *topic, json_t **ret);

/**
 * The newest @p days rows of `daily` for @p symbol, oldest first, as a
 * JSON array of objects; with @p exact each row also has "exact": its
 * values as the exact decimal strings of `daily_exact`.
 * @return 0 with *ret (a new reference, caller owns), -ENOMEM or -EIO.
 */
int kl_api_daily(struct kl_store *st, const char *symbol, int64_t days, bool exact, json_t **ret);
