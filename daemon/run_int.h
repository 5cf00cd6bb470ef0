/*
 * Inside `klined run` (run.c: lifecycle; follow.c: the symbol set over
 * time). Nothing else includes this.
 */
#pragma once

#include "backfill.h"
#include "bus.h"
#include "heal.h"
#include "http.h"
#include "looplag.h"
#include "notify.h"
#include "resolve.h"
#include "rest.h"
#include "run.h"
#include "speed.h"
#include "store.h"
#include "verify.h"
#include "ws.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* A followed symbol. */
struct rsym {
	const char *symbol; /* interned by the resolver */
	const char *status; /* the exchange's word, interned */
	int64_t sid;	    /* once planned */
	bool trading, planned;
};

struct run {
	uv_loop_t loop;
	const struct kl_conf *conf;
	const struct kl_run_reload *reload; /* NULL: SIGHUP only says so */
	struct kl_store *st;
	struct kl_rest *rest;
	struct kl_backfill *bf;
	struct kl_heal *heal;
	struct kl_bus *bus;
	struct kl_speed *speed;
	struct kl_ws *ws;
	struct kl_notify *notify;
	struct kl_http *http;
	struct kl_looplag *lag;
	struct kl_resolve *resolve;
	struct kl_verify *verify;     /* the hole search's marks; NULL with --once */
	struct kl_walck *walck;	      /* the WAL's checkpoints off the loop; NULL: inline */
	struct kl_heal_stream stream; /* the speed layer, as the heal sees it */
	uv_timer_t status_timer;
	uv_signal_t sigterm, sigint, sighup;
	char **items; /* [exchange] symbols as now configured (owned; a reload replaces it) */
	size_t nitems;
	struct rsym *rs; /* the followed symbols (owned array) */
	size_t nrs;
	const char **syms; /* their names, for the page and the metrics (owned array) */
	size_t nsyms;
	const char **streamed; /* the trading ones planned: the websocket's (owned array) */
	size_t nstreamed;
	const char *phase;   /* of the start-up, NULL once planned */
	int64_t now_ms;	     /* the exchange's /time at start-up */
	int64_t resolved_at; /* exchange time of the last resolution */
	int exit_code;
	bool once, stopping, started, resolving, reload_due;
	bool reloading; /* RELOADING=1 sent: READY=1 once the set is resolved */
};

/** Stop everything and exit with @p code (once). */
void kl__run_stop(struct run *run, int code);

/** The set is known: ask the exchange for its clock, then PLAN (run.c). */
void kl__run_clock(struct run *run);

/** Start-up: resolve [exchange] symbols, then kl__run_clock. @return 0 or -ENOMEM. */
int kl__follow_start(struct run *run);

/** PLAN is done: the store ids are known, the ledger gets the set. */
void kl__follow_planned(struct run *run);

/** Once a second: resolve again when symbols_refresh has passed (exchange time). */
void kl__follow_tick(struct run *run);

/** SIGHUP: re-read the configuration and apply a changed symbol set. */
void kl__follow_reload(struct run *run);

/** Rebuild the arrays the layers borrow and hand them over. @return 0 or -ENOMEM. */
int kl__follow_publish(struct run *run);

void kl__follow_free(struct run *run);
