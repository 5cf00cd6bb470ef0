/*
 * The exchange's small answers, parsed: the clock (/api/v3/time), the
 * listing probe (/api/v3/klines?...&startTime=0&limit=1) and Binance's
 * error body. Pure: text in, values out; the daemon decides what a
 * wrong answer means (retry, clamp, refuse).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The latest time an answer may name: 9999-12-31T23:59:59.999Z. */
#define KL_EXCHANGE_TIME_MAX INT64_C(253402300799999)

/* An error body over this is not Binance's JSON (a WAF's HTML page, a proxy's). */
#define KL_EXCHANGE_ERROR_MAX 4096

/**
 * {"serverTime":1499827319559} from @p body (borrowed, @p len bytes).
 * @return 0 with *ms set; -EINVAL when not JSON, serverTime missing, not
 * an integer, negative or past KL_EXCHANGE_TIME_MAX (*ms untouched).
 */
int kl_exchange_time(const char *body, size_t len, int64_t *ms);

/**
 * The listing probe's answer: [[openTime, ...]] or [] (listed, never
 * traded). @return 0 with *open_ms the first kline's open time; -ENOENT
 * for []; -EINVAL for anything else (*open_ms untouched).
 */
int kl_exchange_first_kline(const char *body, size_t len, int64_t *open_ms);

/**
 * Binance's error body {"code":-1121,"msg":"Invalid symbol."} of an answer
 * with HTTP @p status. @return its code, or 0 (not such a body, or one over
 * KL_EXCHANGE_ERROR_MAX); @p msg (room for @p n, may be 0) gets
 * "text (code N)" or "HTTP S".
 */
int kl_exchange_error(long status, const char *body, size_t len, char *msg, size_t n);
