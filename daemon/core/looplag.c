#include "looplag.h"

#include "metrics.h"

#include <errno.h>
#include <stdlib.h>

struct kl_looplag {
	uv_timer_t timer;
	uint64_t period_ms;
	uint64_t due_ms; /* the loop time the timer is due */
};

static void on_tick(uv_timer_t *t)
{
	struct kl_looplag *ll = t->data;
	uint64_t now;

	/* The loop's cached time is from before the callbacks that ran ahead of this one:
	 * refresh it, on the clock libuv schedules timers with. */
	uv_update_time(t->loop);
	now = uv_now(t->loop);
	kl_metrics_loop_lag(now > ll->due_ms ? (double)(now - ll->due_ms) / 1e3 : 0.0);
	ll->due_ms = now + ll->period_ms;
	uv_timer_start(t, on_tick, ll->period_ms, 0);
}

int kl_looplag_start(uv_loop_t *loop, uint64_t period_ms, struct kl_looplag **ret)
{
	struct kl_looplag *ll = calloc(1, sizeof(*ll));
	int r;

	if (!ll)
		return -ENOMEM;
	if ((r = uv_timer_init(loop, &ll->timer)) < 0) {
		free(ll);
		return r;
	}
	ll->timer.data = ll;
	ll->period_ms = period_ms ? period_ms : 1;
	ll->due_ms = uv_now(loop) + ll->period_ms;
	uv_timer_start(&ll->timer, on_tick, ll->period_ms, 0);
	/* A measuring timer must not keep the loop alive on its own. */
	uv_unref((uv_handle_t *)&ll->timer);
	*ret = ll;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	free(h->data);
}

void kl_looplag_free(struct kl_looplag *ll)
{
	if (ll)
		uv_close((uv_handle_t *)&ll->timer, on_closed);
}
