/*
 * A Kafka client destroyed on a thread of its own and waited for a bounded
 * time: whoever of the waiter and the thread finishes last frees the
 * shared record.
 */
#include "reap.h"

#include "log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct reaper {
	rd_kafka_t *rk;
	int flags, refs;
	bool done;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static void reaper_put(struct reaper *r)
{
	int left;

	pthread_mutex_lock(&r->mu);
	left = --r->refs;
	pthread_mutex_unlock(&r->mu);
	if (left)
		return;
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r);
}

static void *reap(void *p)
{
	struct reaper *r = p;

	rd_kafka_destroy_flags(r->rk, r->flags);
	pthread_mutex_lock(&r->mu);
	r->done = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	reaper_put(r);
	return NULL;
}

void kl_reap(rd_kafka_t *rk, int flags, int ms, const char *what)
{
	struct reaper *r = calloc(1, sizeof(*r));
	struct timespec until;
	pthread_t t;
	bool done;

	if (!r) {
		rd_kafka_destroy_flags(rk, flags);
		return;
	}
	*r = (struct reaper){.rk = rk, .flags = flags, .refs = 2};
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	if (pthread_create(&t, NULL, reap, r) != 0) {
		r->refs = 1;
		reaper_put(r);
		rd_kafka_destroy_flags(rk, flags);
		return;
	}
	pthread_detach(t);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&r->mu);
	while (!r->done && pthread_cond_timedwait(&r->cv, &r->mu, &until) == 0) {
	}
	done = r->done;
	pthread_mutex_unlock(&r->mu);
	if (!done)
		kl_warn("kafka", "the %s did not stop within %d ms (broker away): leaving it", what,
			ms);
	reaper_put(r);
}
