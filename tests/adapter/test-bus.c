/*
 * daemon/speed/bus.c against librdkafka's mock cluster: the consumer freed from
 * inside its own batch callback (klined stops from there when a
 * certification fails), and a fatal producer error while the setup worker
 * uses the producer on the thread pool. Under ASan both were a use after
 * free (or a destroy waiting forever on the messages still held).
 */
#include "bus.h"
#include "log.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

struct fixture {
	rd_kafka_t *rk; /* owns the mock cluster */
	rd_kafka_mock_cluster_t *mc;
	struct kl_conf conf;
	uv_loop_t loop;
	uv_timer_t deadline;
	struct kl_bus *bus;
	int batches;
	size_t seen;
	uint64_t last_tick, max_gap; /* ns: the loop must never wait on Kafka */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];
	rd_kafka_conf_t *c = rd_kafka_conf_new();

	rd_kafka_conf_set(c, "log_level", "0", err, sizeof(err));
	f->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
	assert_non_null(f->rk);
	f->mc = rd_kafka_mock_cluster_new(f->rk, 1);
	assert_non_null(f->mc);
	rd_kafka_mock_topic_create(f->mc, "klines", 1, 1);
	f->conf.kafka_brokers = (char *)rd_kafka_mock_cluster_bootstraps(f->mc);
	f->conf.kafka_topic = "klines";
	f->conf.kafka_group = "klined-test";
	uv_loop_init(&f->loop);
	uv_timer_init(&f->loop, &f->deadline);
	f->deadline.data = f;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	uv_close((uv_handle_t *)&f->deadline, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	rd_kafka_mock_cluster_destroy(f->mc);
	rd_kafka_destroy(f->rk);
	free(f);
	return 0;
}

static void on_deadline(uv_timer_t *t)
{
	(void)t;
	fprintf(stderr, "the loop did not finish in time\n");
	abort();
}

static void produce(struct fixture *f, int n)
{
	for (int i = 0; i < n; i++) {
		char v[64];
		int len = snprintf(v, sizeof(v), "{\"E\":%d}", i);
		kl_bus_produce(f->bus, "BTCUSDT", 7, v, (size_t)len);
	}
}

/* klined's stop() runs inside the batch callback: the bus goes while the
 * consumer's messages are still held by on_cons_wake. */
static void free_in_batch(void *ud, const struct kl_bus_msg *m, size_t n)
{
	struct fixture *f = ud;

	(void)m;
	f->batches++;
	f->seen += n;
	kl_bus_free(f->bus);
	f->bus = NULL;
}

static void on_feed(uv_timer_t *t)
{
	struct fixture *f = t->data;

	if (!f->bus) {
		uv_close((uv_handle_t *)t, (uv_close_cb)free);
		return;
	}
	produce(f, 5); /* the consumer starts at the end of the log: feed it */
}

static void bus_freed_inside_its_batch_callback(void **state)
{
	struct fixture *f = *state;
	uv_timer_t *feed = calloc(1, sizeof(*feed));
	char err[256];

	assert_int_equal(kl_bus_new(&f->loop, &f->conf, &f->bus, err, sizeof(err)), 0);
	assert_int_equal(kl_bus_consume(f->bus, NULL, 0, free_in_batch, f), 0);
	uv_timer_init(&f->loop, feed);
	feed->data = f;
	uv_timer_start(feed, on_feed, 200, 200);
	uv_timer_start(&f->deadline, on_deadline, 30000, 0);
	uv_unref((uv_handle_t *)&f->deadline);
	/* The loop ends once the bus has closed every handle of its own. */
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(f->batches, 1);
	assert_true(f->seen >= 1);
	assert_null(f->bus);
}

static void count_batch(void *ud, const struct kl_bus_msg *m, size_t n)
{
	struct fixture *f = ud;

	(void)m;
	f->batches++;
	f->seen += n;
}

static void on_check(uv_timer_t *t)
{
	struct fixture *f = t->data;
	struct kl_bus_stats st;

	uint64_t now = uv_hrtime();

	if (f->last_tick && now - f->last_tick > f->max_gap)
		f->max_gap = now - f->last_tick;
	f->last_tick = now;
	kl_bus_stats(f->bus, &st);
	rd_kafka_mock_broker_set_rtt(f->mc, 1, 0); /* the race is over: let setup succeed */
	if (f->seen >= 20) {
		kl_bus_free(f->bus);
		f->bus = NULL;
		uv_close((uv_handle_t *)t, (uv_close_cb)free);
		return;
	}
	produce(f, 5);
}

/* A fatal producer error (the test hook fires at the 2nd event) while the
 * setup worker is in CreateTopics on the pool, slowed by the mock's RTT:
 * the producer is renewed only once the worker is back, then events flow. */
static void fatal_error_while_the_worker_uses_the_producer(void **state)
{
	struct fixture *f = *state;
	uv_timer_t *check = calloc(1, sizeof(*check));
	char err[256];

	setenv("KLINED_TEST_KAFKA_FATAL_AFTER", "1", 1);
	rd_kafka_mock_broker_set_rtt(f->mc, 1, 700);
	assert_int_equal(kl_bus_new(&f->loop, &f->conf, &f->bus, err, sizeof(err)), 0);
	unsetenv("KLINED_TEST_KAFKA_FATAL_AFTER");
	assert_int_equal(kl_bus_consume(f->bus, NULL, 0, count_batch, f), 0);
	produce(f, 3);
	uv_timer_init(&f->loop, check);
	check->data = f;
	uv_timer_start(check, on_check, 0, 100);
	uv_timer_start(&f->deadline, on_deadline, 40000, 0);
	uv_unref((uv_handle_t *)&f->deadline);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_null(f->bus);
	assert_true(f->seen >= 20);
	fprintf(stderr, "longest loop stall: %.0f ms\n", (double)f->max_gap / 1e6);
	assert_true(f->max_gap < 500 * 1000000ULL);
}

int main(void)
{
	kl_log_setup(getenv("KLINED_TEST_DEBUG") ? KL_LOG_DEBUG : KL_LOG_WARN, false);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(bus_freed_inside_its_batch_callback, setup, teardown),
	    cmocka_unit_test_setup_teardown(fatal_error_while_the_worker_uses_the_producer, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
