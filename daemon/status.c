/*
 * One STATUS= line: the start-up phase (and why it waits), else the first
 * of symbols set aside, a long backfill's progress, the stream, or
 * following over REST. Symbols set aside come first: the operator must
 * see why some do not move.
 */
#include "status.h"

#include "metrics.h"

#include <inttypes.h>

static void phase(const struct kl_status_in *in)
{
	struct kl_rest_stats rs;

	kl_rest_stats(in->rest, &rs);
	if (rs.paused_ms)
		kl_notify_status(in->notify, "%s: waiting %.0f s for the exchange (%s)", in->phase,
				 (double)rs.paused_ms / 1000.0, rs.why);
	else if (rs.retries)
		kl_notify_status(in->notify, "%s: retrying (%" PRIu64 " retries so far)", in->phase,
				 rs.retries);
	else
		kl_notify_status(in->notify, "%s", in->phase);
}

static void streaming(const struct kl_status_in *in)
{
	struct kl_speed_stats ss;
	struct kl_bus_stats bs;
	struct kl_ws_stats ws;

	kl_speed_stats(in->speed, &ss);
	kl_bus_stats(in->bus, &bs);
	kl_ws_stats(in->ws, &ws);
	kl_metrics_consumer_lag(bs.lag);
	if (ss.last_symbol)
		kl_notify_status(in->notify,
				 "streaming %zu symbols on %zu connections, %s %.2f, "
				 "consumer lag %" PRId64 " events, %" PRIu64 " late",
				 in->nsyms, ws.connected, ss.last_symbol, ss.last_close,
				 bs.lag < 0 ? 0 : bs.lag, ss.late);
	else
		kl_notify_status(in->notify, "waiting for the stream (%zu symbols)", in->nsyms);
}

bool kl_status_report(const struct kl_status_in *in)
{
	int64_t done, total;
	double rate, eta;
	size_t inactive, held;
	bool resumed;

	if (in->phase) {
		phase(in);
		return false;
	}
	kl_backfill_progress(in->bf, &done, &total, &rate, &eta);
	kl_metrics_backfill(done, total, rate, eta, in->filling && total > 1440);
	kl_backfill_symbols(in->bf, &inactive, &held, &resumed);
	kl_metrics_symbols_waiting(inactive, held);
	if (inactive || held) {
		kl_notify_status(
		    in->notify,
		    "%zu of %zu symbols set aside: %zu inactive (the exchange does not "
		    "list them; checked again), %zu refused by the exchange (backing off)",
		    inactive + held, in->nsyms, inactive, held);
	} else if (in->filling && total > 1440) {
		struct kl_rest_stats rs;
		kl_rest_stats(in->rest, &rs);
		kl_notify_status(
		    in->notify,
		    "backfill: %zu symbols, %" PRId64 "/%" PRId64
		    " minutes (%.1f%%), %.0f rows/s, ETA %.0f s, weight %" PRId64 "/%" PRId64,
		    in->nsyms, done, total, total ? 100.0 * (double)done / (double)total : 100.0,
		    rate, eta, rs.used_weight, rs.weight_limit);
	} else if (in->speed) {
		streaming(in);
	} else {
		kl_notify_status(in->notify, "following the exchange over REST, %zu symbols",
				 in->nsyms);
	}
	return resumed;
}
