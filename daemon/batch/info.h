/*
 * Which configured symbols the exchange lists: exchangeInfo asked in
 * chunks (a URL of any number of symbols would be cut or refused), a
 * chunk answered -1121 split in halves until each unknown symbol stands
 * alone. Also reads the published request weight limit into the client.
 */
#pragma once

#include "rest.h"

#include <stdbool.h>
#include <stddef.h>

struct kl_info_symbol {
	const char *symbol; /* borrowed */
	bool quiet;	    /* set by the caller: say nothing of it (its ledger will) */
	bool listed;	    /* set when the exchange lists it */
	bool not_trading;   /* listed with a status other than TRADING (BREAK, HALT...) */
	char status[16];    /* the exchange's word for it, when listed */
};

/** @p status: 0 (every symbol answered for), or -ENOMEM. */
typedef void (*kl_info_done_cb)(void *ud, int status);

/**
 * Ask about @p syms (borrowed; must outlive the check) through @p rest.
 * Unknown symbols are named in the log. @p done runs once, later, unless
 * @p rest is freed first (then never). @return 0 or -ENOMEM (then @p done never runs).
 */
int kl_info_check(struct kl_rest *rest, struct kl_info_symbol *syms, size_t n, kl_info_done_cb done,
		  void *ud);

/**
 * The exchange's TRADING symbols (exchangeInfo?symbolStatus=TRADING, one
 * request of weight 20, parsed on the thread pool): @p names is a new array
 * of new strings the callback owns (free each and the array), NULL with
 * @p status < 0. Runs once, later, unless cancelled first. The request
 * (*ret) is valid until then: it frees itself after the callback.
 */
typedef void (*kl_info_trading_cb)(void *ud, int status, char **names, size_t n);
struct kl_info_trading;

/** Ask for the TRADING symbols. @return 0 with *ret, or -ENOMEM (then @p cb never runs). */
int kl_info_trading(struct kl_rest *rest, kl_info_trading_cb cb, void *ud,
		    struct kl_info_trading **ret);

/**
 * No callback, ever; the request frees itself. Before @p rest is freed,
 * whenever one may be under way: a reply being parsed outlives the client.
 */
void kl_info_trading_cancel(struct kl_info_trading *t);
