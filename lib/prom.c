/*
 * Prometheus text format. Numbers: counters print as integers; other
 * values in the shortest %g form that reads back as the same double
 * (0.00025, not 0.00025000000000000001), and "+Inf", "-Inf", "NaN" as
 * the format spells them. Label values escape backslash,
 * double quote and newline, the only three the format requires.
 */
#include "prom.h"

#include <inttypes.h>
#include <stdbool.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kl_histo_init(struct kl_histo *h, const double *bounds, size_t n)
{
	memset(h, 0, sizeof(*h));
	h->bounds = bounds;
	h->nbounds = n < KL_HISTO_MAX_BUCKETS ? n : KL_HISTO_MAX_BUCKETS;
}

void kl_histo_observe(struct kl_histo *h, double v)
{
	size_t lo = 0, hi = h->nbounds;

	if (isnan(v))
		return;
	/* The first bound >= v; hi == nbounds is the +Inf bucket. */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (h->bounds[mid] >= v)
			hi = mid;
		else
			lo = mid + 1;
	}
	h->counts[lo]++;
	h->count++;
	h->sum += v;
}

static void put(struct kl_prom *p, const char *s, size_t n)
{
	if (p->failed)
		return;
	if (p->len + n + 1 > p->cap) {
		size_t cap = p->cap ? p->cap : 4096;
		char *b;
		while (cap < p->len + n + 1)
			cap *= 2;
		b = realloc(p->buf, cap);
		if (!b) {
			p->failed = true;
			return;
		}
		p->buf = b;
		p->cap = cap;
	}
	memcpy(p->buf + p->len, s, n);
	p->len += n;
	p->buf[p->len] = '\0';
}

static void puts_(struct kl_prom *p, const char *s)
{
	put(p, s, strlen(s));
}

static void printf_(struct kl_prom *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void printf_(struct kl_prom *p, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(p, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static bool round_trips(char *buf, size_t n, double v, int prec)
{
	snprintf(buf, n, "%.*g", prec, v);
	return strtod(buf, NULL) == v;
}

/*
 * The shortest "%.Ng" that round-trips @p v (finite). A scrape prints
 * thousands of 13-digit timestamps, so N is searched by halves: if N digits
 * round-trip so do N + 1 (the nearest N + 1 digits are no farther from v),
 * as long as v's rounding interval is symmetric, that is unless v is a power
 * of two, which climbs from 1.
 */
static void shortest(char *buf, size_t n, double v)
{
	int lo = 1, hi = 17, e;

	if (frexp(v, &e) == 0.5 || frexp(v, &e) == -0.5) {
		while (!round_trips(buf, n, v, lo) && lo < 17)
			lo++;
		return;
	}
	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (round_trips(buf, n, v, mid))
			hi = mid;
		else
			lo = mid + 1;
	}
	round_trips(buf, n, v, lo);
}

static void put_double(struct kl_prom *p, double v)
{
	char buf[40];

	if (isnan(v)) {
		puts_(p, "NaN");
	} else if (isinf(v)) {
		puts_(p, v > 0 ? "+Inf" : "-Inf");
	} else {
		shortest(buf, sizeof(buf), v);
		puts_(p, buf);
	}
}

/* "help" text escapes backslash and newline only. */
void kl_prom_family(struct kl_prom *p, const char *name, const char *type, const char *help)
{
	puts_(p, "# HELP ");
	puts_(p, name);
	put(p, " ", 1);
	for (const char *c = help; *c; c++) {
		if (*c == '\\')
			puts_(p, "\\\\");
		else if (*c == '\n')
			puts_(p, "\\n");
		else
			put(p, c, 1);
	}
	puts_(p, "\n# TYPE ");
	puts_(p, name);
	put(p, " ", 1);
	puts_(p, type);
	put(p, "\n", 1);
}

static void labels_(struct kl_prom *p, const char *const *labels, size_t n, const char *le)
{
	if (!n && !le)
		return;
	put(p, "{", 1);
	for (size_t i = 0; i < n; i++) {
		if (i)
			put(p, ",", 1);
		puts_(p, labels[2 * i]);
		puts_(p, "=\"");
		for (const char *c = labels[2 * i + 1]; *c; c++) {
			if (*c == '\\')
				puts_(p, "\\\\");
			else if (*c == '"')
				puts_(p, "\\\"");
			else if (*c == '\n')
				puts_(p, "\\n");
			else
				put(p, c, 1);
		}
		put(p, "\"", 1);
	}
	if (le) {
		if (n)
			put(p, ",", 1);
		puts_(p, "le=\"");
		puts_(p, le);
		put(p, "\"", 1);
	}
	put(p, "}", 1);
}

void kl_prom_sample(struct kl_prom *p, const char *name, const char *const *labels, size_t nlabels,
		    double value)
{
	puts_(p, name);
	labels_(p, labels, nlabels, NULL);
	put(p, " ", 1);
	put_double(p, value);
	put(p, "\n", 1);
}

void kl_prom_sample_ms(struct kl_prom *p, const char *name, const char *const *labels,
		       size_t nlabels, int64_t ms)
{
	char tmp[32];
	size_t i = sizeof(tmp);
	uint64_t u = ms < 0 ? (uint64_t) - (ms + 1) + 1 : (uint64_t)ms;
	unsigned frac = (unsigned)(u % 1000);
	int nfrac = frac ? 3 : 0;

	puts_(p, name);
	labels_(p, labels, nlabels, NULL);
	tmp[--i] = '\n';
	for (; nfrac && frac % 10 == 0; nfrac--)
		frac /= 10; /* the shortest: 1.5, not 1.500 */
	for (int d = 0; d < nfrac; d++, frac /= 10)
		tmp[--i] = (char)('0' + frac % 10);
	if (nfrac)
		tmp[--i] = '.';
	u /= 1000;
	do {
		tmp[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (ms < 0)
		tmp[--i] = '-';
	tmp[--i] = ' ';
	put(p, tmp + i, sizeof(tmp) - i);
}

void kl_prom_sample_u64(struct kl_prom *p, const char *name, const char *const *labels,
			size_t nlabels, uint64_t value)
{
	puts_(p, name);
	labels_(p, labels, nlabels, NULL);
	printf_(p, " %" PRIu64 "\n", value);
}

void kl_prom_histo(struct kl_prom *p, const char *name, const char *const *labels, size_t nlabels,
		   const struct kl_histo *h)
{
	uint64_t cum = 0;
	char le[40];

	for (size_t i = 0; i <= h->nbounds; i++) {
		cum += h->counts[i];
		if (i < h->nbounds)
			shortest(le, sizeof(le), h->bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		puts_(p, name);
		puts_(p, "_bucket");
		labels_(p, labels, nlabels, le);
		printf_(p, " %" PRIu64 "\n", cum);
	}
	puts_(p, name);
	puts_(p, "_sum");
	labels_(p, labels, nlabels, NULL);
	put(p, " ", 1);
	put_double(p, h->sum);
	put(p, "\n", 1);
	puts_(p, name);
	puts_(p, "_count");
	labels_(p, labels, nlabels, NULL);
	printf_(p, " %" PRIu64 "\n", h->count);
}

bool kl_prom_failed(const struct kl_prom *p)
{
	return p->failed;
}

char *kl_prom_take(struct kl_prom *p, size_t *len)
{
	char *b = p->failed ? NULL : p->buf;

	if (!b)
		free(p->buf);
	else if (len)
		*len = p->len;
	memset(p, 0, sizeof(*p));
	return b;
}

void kl_prom_clear(struct kl_prom *p)
{
	free(p->buf);
	memset(p, 0, sizeof(*p));
}
