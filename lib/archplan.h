/*
 * Which of data.binance.vision's files cover a hole: whole months where a
 * hole spans most of a month that is surely published, days otherwise, and
 * nothing the archive cannot have yet (REST fills that).
 */
#ifndef KL_ARCHPLAN_H
#define KL_ARCHPLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Daily files appear the next day; ask only for days this far behind today's start. */
#define KL_ARCH_DAY_BEHIND_MS (2 * (int64_t)86400000)
/* Monthly files appear on the first Monday of the next month: a week covers it. */
#define KL_ARCH_MONTH_BEHIND_MS (7 * (int64_t)86400000)
/* A month whose hole needs at least this many daily files is fetched whole. */
#define KL_ARCH_MONTH_MIN_DAYS 8

struct kl_arch_file {
	int64_t from, to; /* ms: the period the file holds, [from, to) */
	bool monthly;
	char period[11]; /* "YYYY-MM" or "YYYY-MM-DD": the name's date part */
};

/* [from, to) of the calendar month holding @ms (UTC). */
void kl_arch_month(int64_t ms, int64_t *from, int64_t *to);

/* The end of what the archive can hold at exchange time @now: nothing after it is
 * asked for (nor need the holes past it be looked for). */
int64_t kl_arch_end(int64_t now);

/*
 * The files covering [@from, @to) that the archive has at exchange time @now,
 * in time order, at most @max (the rest on a later call from the last file's
 * end). @return how many were written to @out.
 */
size_t kl_arch_plan(int64_t from, int64_t to, int64_t now, struct kl_arch_file *out, size_t max);

/*
 * The daily files of monthly file @month (a 404: a month not published yet,
 * or a symbol listed late in it) that overlap [@from, @to), as kl_arch_plan.
 */
size_t kl_arch_days(const struct kl_arch_file *month, int64_t from, int64_t to, int64_t now,
		    struct kl_arch_file *out, size_t max);

/*
 * The path of @f's zip below the archive's base URL, for @symbol:
 * "data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2023-01.zip".
 * @return the length, or -ENOSPC if @n is too small (then @buf is undefined).
 */
int kl_arch_path(const struct kl_arch_file *f, const char *symbol, char *buf, size_t n);

#endif
