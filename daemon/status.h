/*
 * The STATUS= line systemctl status shows, once a second, and the gauges
 * read on the way (backfill progress, symbols set aside, consumer lag).
 */
#pragma once

#include "backfill.h"
#include "bus.h"
#include "notify.h"
#include "rest.h"
#include "speed.h"
#include "ws.h"

#include <stdbool.h>
#include <stddef.h>

/* What the line is made of; every pointer borrowed, NULL where absent. */
struct kl_status_in {
	struct kl_notify *notify;
	struct kl_rest *rest;
	struct kl_backfill *bf;
	struct kl_speed *speed; /* with bus and ws: streaming */
	struct kl_bus *bus;
	struct kl_ws *ws;
	const char *phase; /* of the start-up; NULL once planned */
	size_t nsyms;
	bool filling;
};

/**
 * Say what the daemon does now. @return true when a set-aside symbol came
 * back (kl_backfill_symbols' resumed): its holes are due.
 */
bool kl_status_report(const struct kl_status_in *in);
