#include "symset.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool globby(int c)
{
	return c == '*' || c == '?' || c == '[' || c == ']' || c == '!';
}

int kl_symset_item(const char *item, size_t len, char *out, enum kl_sym_kind *kind, bool *exclude,
		   char *err, size_t n)
{
	size_t o = 0, letters = 0;
	bool glob = false, neg = false;
	int depth = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)item[i];

		if (isspace(c))
			continue;
		if (c == '-' && o == 0 && !neg) {
			neg = true;
			out[o++] = '-';
			continue;
		}
		if (o >= KL_SYMSET_ITEM_MAX)
			return fail(err, n, "'%.*s' is longer than %d characters", (int)len, item,
				    KL_SYMSET_ITEM_MAX);
		if (isalnum(c)) {
			letters++;
		} else if (globby(c)) {
			glob = true;
			depth += c == '[' ? 1 : c == ']' ? -1 : 0;
			if (depth < 0 || depth > 1 || (c == '!' && (o == 0 || out[o - 1] != '[')))
				return fail(err, n, "'%.*s' is not a valid pattern", (int)len,
					    item);
		} else {
			return fail(err, n,
				    "'%.*s' is not a symbol (2 to 20 letters or digits), a "
				    "pattern (* ? [...]) or all",
				    (int)len, item);
		}
		out[o++] = (char)toupper(c);
	}
	out[o] = '\0';
	if (depth)
		return fail(err, n, "'%.*s' is not a valid pattern (unclosed [)", (int)len, item);
	*exclude = neg;
	if (strcmp(out + neg, "ALL") == 0) {
		if (neg)
			return fail(err, n, "'-all' excludes everything");
		*kind = KL_SYM_ALL;
		return 0;
	}
	if (glob) {
		*kind = KL_SYM_PATTERN;
		return 0;
	}
	if (letters < 2 || letters > 20)
		return fail(err, n, "'%.*s' is not a symbol (2 to 20 letters or digits)", (int)len,
			    item);
	*kind = KL_SYM_NAME;
	return 0;
}

enum kl_sym_kind kl_symset_kind(const char *item)
{
	item += *item == '-';
	if (strcmp(item, "ALL") == 0)
		return KL_SYM_ALL;
	return strpbrk(item, "*?[") ? KL_SYM_PATTERN : KL_SYM_NAME;
}

bool kl_symset_dynamic(char *const *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (items[i][0] == '-' || kl_symset_kind(items[i]) != KL_SYM_NAME)
			return true;
	return false;
}

static bool matches(const char *item, const char *symbol)
{
	switch (kl_symset_kind(item)) {
	case KL_SYM_ALL:
		return true;
	case KL_SYM_PATTERN:
		return fnmatch(item, symbol, 0) == 0;
	case KL_SYM_NAME:
		break;
	}
	return strcmp(item, symbol) == 0;
}

static bool excluded(char *const *items, size_t n, const char *symbol)
{
	for (size_t i = 0; i < n; i++)
		if (items[i][0] == '-' && matches(items[i] + 1, symbol))
			return true;
	return false;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool listed(char **list, size_t n, const char *symbol)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], symbol) == 0)
			return true;
	return false;
}

static int add(char ***list, size_t *n, size_t *cap, const char *symbol)
{
	if (*n == *cap) {
		size_t c = *cap ? 2 * *cap : 16;
		char **grown = realloc(*list, c * sizeof(**list));

		if (!grown)
			return -ENOMEM;
		*list = grown;
		*cap = c;
	}
	if (!((*list)[*n] = strdup(symbol)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

int kl_symset_resolve(char *const *items, size_t nitems, char *const *trading, size_t ntrading,
		      char ***ret, size_t *nret)
{
	char **list = NULL, **sorted = NULL;
	size_t n = 0, cap = 0, names;
	int r = 0;

	for (size_t i = 0; i < nitems; i++) {
		if (items[i][0] == '-' || kl_symset_kind(items[i]) != KL_SYM_NAME ||
		    excluded(items, nitems, items[i]) || listed(list, n, items[i]))
			continue;
		if ((r = add(&list, &n, &cap, items[i])))
			goto out;
	}
	names = n;
	if (ntrading && !(sorted = malloc(ntrading * sizeof(*sorted)))) {
		r = -ENOMEM;
		goto out;
	}
	if (ntrading) {
		memcpy(sorted, trading, ntrading * sizeof(*sorted));
		qsort(sorted, ntrading, sizeof(*sorted), by_name);
	}
	for (size_t t = 0; t < ntrading; t++) {
		bool want = false;

		if (t && strcmp(sorted[t], sorted[t - 1]) == 0)
			continue;
		for (size_t i = 0; i < nitems && !want; i++)
			want = items[i][0] != '-' && kl_symset_kind(items[i]) != KL_SYM_NAME &&
			       matches(items[i], sorted[t]);
		if (!want || excluded(items, nitems, sorted[t]) || listed(list, names, sorted[t]))
			continue;
		if ((r = add(&list, &n, &cap, sorted[t])))
			goto out;
	}
	*ret = list;
	*nret = n;
	list = NULL;
out:
	free(sorted);
	if (r)
		kl_symset_free(list, n);
	return r;
}

void kl_symset_free(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}
