/*
 * /api/klines (candles of any interval, aggregated exactly from the
 * stored minutes) and /api/forecast (the rows a forecasting job wrote to
 * the forecast table), answered as JSON bodies; http.c sends them.
 */
#pragma once

#include "conf.h"

#include <stddef.h>

struct kl_klines;

/**
 * Make the handler of @p conf's store (borrowed, outlives it); the store
 * is opened at the first request. @return 0 with *ret (kl_klines_free),
 * or -ENOMEM.
 */
int kl_klines_new(const struct kl_conf *conf, struct kl_klines **ret);

/** The symbols served from now on (borrowed; they must outlive the next call). */
void kl_klines_symbols(struct kl_klines *kk, char *const *symbols, size_t n);

/** Free. NULL is fine. @return NULL. */
struct kl_klines *kl_klines_free(struct kl_klines *kk);

/**
 * Answer GET @p uri ("/api/klines" or "/api/forecast") with query string
 * @p query ("a=b&c=d", may be NULL): *status (200, 400 with a JSON error
 * naming the parameter, 404, 503) and a JSON body *body of *len bytes
 * (malloc'd, the caller owns it). @return 0, or -ENOMEM (no body).
 */
int kl_klines_get(struct kl_klines *kk, const char *uri, const char *query, unsigned *status,
		  char **body, size_t *len);
