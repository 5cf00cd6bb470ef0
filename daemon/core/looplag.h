/*
 * The event loop's lag: a timer that asks to run every period and records,
 * in the metrics registry, how late it ran. Everything in klined shares one
 * loop, so a long callback anywhere (a big SQLite read, a heavy parse)
 * shows up here before Binance's pong deadline or systemd's watchdog.
 */
#pragma once

#include <stdint.h>
#include <uv.h>

struct kl_looplag;

/**
 * Start measuring on @p loop every @p period_ms. @return 0 with *ret owned
 * by the caller (kl_looplag_free), or a negative errno.
 */
int kl_looplag_start(uv_loop_t *loop, uint64_t period_ms, struct kl_looplag **ret);

/** Stop; the memory goes once the loop has run the handle's close. NULL is fine. */
void kl_looplag_free(struct kl_looplag *ll);
