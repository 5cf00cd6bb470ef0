/*
 * Prometheus text exposition (format 0.0.4), without I/O: a growing
 * text buffer, metric families (# HELP / # TYPE), samples with escaped
 * label values, and fixed-bucket histograms. A buffer that failed to
 * grow stays failed: check kl_prom_failed() once at the end.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kl_prom {
	char *buf; /* NUL-terminated, owned; take it with kl_prom_take() */
	size_t len, cap;
	bool failed;
};

/* A histogram over fixed upper bounds (ascending, +Inf implied). */
#define KL_HISTO_MAX_BUCKETS 24
struct kl_histo {
	const double *bounds;			   /* borrowed, static */
	size_t nbounds;				   /* <= KL_HISTO_MAX_BUCKETS */
	uint64_t counts[KL_HISTO_MAX_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
	uint64_t count;
	double sum;
};

/** @p bounds must be ascending and outlive @p h; at most KL_HISTO_MAX_BUCKETS of them. */
void kl_histo_init(struct kl_histo *h, const double *bounds, size_t n);

/** Count @p v in the first bucket whose bound is >= v (NaN is ignored). */
void kl_histo_observe(struct kl_histo *h, double v);

/** Start a family: "# HELP name help" and "# TYPE name type". */
void kl_prom_family(struct kl_prom *p, const char *name, const char *type, const char *help);

/**
 * One sample: name{labels} value. @p labels holds @p nlabels name/value
 * pairs (values are escaped); 0 pairs writes no braces.
 */
void kl_prom_sample(struct kl_prom *p, const char *name, const char *const *labels, size_t nlabels,
		    double value);

/**
 * As kl_prom_sample of @p ms / 1000 (a time or age in seconds), written as the
 * exact decimal, without printf: the same double when parsed (both are the
 * nearest to ms / 1000, for |ms| < 2^53), and a scrape writes two per symbol.
 */
void kl_prom_sample_ms(struct kl_prom *p, const char *name, const char *const *labels,
		       size_t nlabels, int64_t ms);

/** As kl_prom_sample, for a counter or integer gauge (exact beyond 2^53). */
void kl_prom_sample_u64(struct kl_prom *p, const char *name, const char *const *labels,
			size_t nlabels, uint64_t value);

/** A histogram's _bucket (cumulative, with le), _sum and _count samples. */
void kl_prom_histo(struct kl_prom *p, const char *name, const char *const *labels, size_t nlabels,
		   const struct kl_histo *h);

/** @return true when an allocation failed along the way. */
bool kl_prom_failed(const struct kl_prom *p);

/** Hand the text over (caller frees); the buffer is reset. @return NULL if it failed. */
char *kl_prom_take(struct kl_prom *p, size_t *len);

/** Free the text (when not taken) and reset. */
void kl_prom_clear(struct kl_prom *p);
