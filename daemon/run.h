/*
 * `klined run`: the daemon. Start-up sequence and the life after it:
 * exchange info -> exchange time -> per-symbol coverage -> holes ->
 * backfill -> day refresh -> (follow the exchange's clock) until SIGTERM.
 */
#pragma once

#include "conf.h"

#include <stdbool.h>

/* How SIGHUP reads the configuration again: the command line's layers. */
struct kl_run_reload {
	/**
	 * A new configuration as at start (defaults < file < options), *ret
	 * owned by the caller (kl_conf_free); the problems already printed.
	 * @return 0 or -EINVAL.
	 */
	int (*load)(void *ud, struct kl_conf **ret);
	void *ud;
};

/**
 * Run the daemon on @p conf (borrowed) until SIGTERM/SIGINT, or until the
 * store is current when @p once. @p reload (borrowed; NULL: none) serves
 * SIGHUP. @return a process exit code (0, 1, 78).
 */
int kl_run(const struct kl_conf *conf, bool once, const struct kl_run_reload *reload);
