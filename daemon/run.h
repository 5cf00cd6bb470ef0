/*
 * `klined run`: the daemon. Start-up sequence and the life after it:
 * exchange info -> exchange time -> per-symbol coverage -> holes ->
 * backfill -> day refresh -> (follow the exchange's clock) until SIGTERM.
 */
#pragma once

#include "conf.h"

#include <stdbool.h>

/**
 * Run the daemon on @p conf (borrowed) until SIGTERM/SIGINT, or until the
 * store is current when @p once. @return a process exit code (0, 1, 78).
 */
int kl_run(const struct kl_conf *conf, bool once);
