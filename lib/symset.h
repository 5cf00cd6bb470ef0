/*
 * The symbols setting: names, patterns and exclusions, resolved against the
 * exchange's TRADING symbols.
 *
 *   BTCUSDT,ETHUSDT            two names
 *   all                        every TRADING symbol
 *   *USDT,-*UPUSDT,-*DOWNUSDT  globs (fnmatch: * ? [..]) and exclusions
 *
 * Exclusions apply to the whole list whatever their position, so the result
 * does not depend on the order of the items.
 */
#ifndef KL_SYMSET_H
#define KL_SYMSET_H

#include <stdbool.h>
#include <stddef.h>

#define KL_SYMSET_ITEM_MAX 64 /* longest item, '-' and pattern included */

enum kl_sym_kind {
	KL_SYM_NAME,	/* BTCUSDT */
	KL_SYM_PATTERN, /* *USDT */
	KL_SYM_ALL,	/* all */
};

/*
 * Check one item of the list (@len bytes at @item; blanks are ignored) and
 * write its normal form to @out (KL_SYMSET_ITEM_MAX + 1 bytes): upper case,
 * "ALL" for all, a leading '-' kept for an exclusion.
 * @return 0, or -EINVAL with the reason in @err naming the item.
 */
int kl_symset_item(const char *item, size_t len, char *out, enum kl_sym_kind *kind, bool *exclude,
		   char *err, size_t n);

/* The kind of a normal-form item (as kl_symset_item wrote it). */
enum kl_sym_kind kl_symset_kind(const char *item);

/* Whether the list needs the exchange's symbol list (a pattern, "all" or an exclusion). */
bool kl_symset_dynamic(char *const *items, size_t n);

/*
 * The symbols the list names: its plain names in their order (whether or not
 * they trade: the caller checks them against exchangeInfo and names the
 * unknown ones), then the TRADING symbols its patterns match, sorted, none
 * twice, without the excluded ones.
 * @items: normal-form items; @trading: the exchange's TRADING symbols.
 * @ret: a new array of new strings, the caller frees it with kl_symset_free.
 * @return 0 or -ENOMEM (nothing allocated then).
 */
int kl_symset_resolve(char *const *items, size_t nitems, char *const *trading, size_t ntrading,
		      char ***ret, size_t *nret);

void kl_symset_free(char **list, size_t n);

#endif
