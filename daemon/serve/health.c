/*
 * The page's health object. The page derives its states from it (see
 * web/app.js health()): live while events are consumed; Kafka unreachable
 * while the stream is received but nothing comes back; stream down; the
 * exchange unreachable when REST last failed and has not answered well
 * since; data older than expected when nothing was stored for minutes.
 */
#include "health.h"

#include "metrics.h"

#include <string.h>
#include <time.h>

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_t *age(int64_t now, int64_t at)
{
	return at > 0 ? json_real((double)(now - at) / 1000.0) : json_null();
}

static int64_t newest(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

json_t *kl_health_json(const struct kl_conf *conf)
{
	int64_t now = now_ms(), ok, fail, stored;

	kl_metrics_rest_last(&ok, &fail);
	stored = newest(
	    newest(kl_metrics_changed_at(KL_M_KLINES_REST), kl_metrics_changed_at(KL_M_KLINES_WS)),
	    kl_metrics_changed_at(KL_M_KLINES_IMPORT));
	return json_pack("{s:s, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "kafka",
			 strcmp(conf->kafka_brokers, "off") ? "on" : "off", "rest_every_s",
			 KL_HEALTH_REST_EVERY_S, "events_age_s",
			 age(now, kl_metrics_changed_at(KL_M_EVENTS)), "produced_age_s",
			 age(now, kl_metrics_changed_at(KL_M_KAFKA_PRODUCED)), "kafka_failed_age_s",
			 age(now, kl_metrics_changed_at(KL_M_KAFKA_FAILED)), "stored_age_s",
			 age(now, stored), "rest_ok_age_s", age(now, ok), "rest_fail_age_s",
			 age(now, fail), "uptime_s", age(now, kl_metrics_started()));
}
