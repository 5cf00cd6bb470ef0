/*
 * daemon/speed/bus*.c against librdkafka's mock cluster: the consumer freed
 * from inside its own batch callback (klined stops from there when a
 * certification fails); a real fatal error of the idempotent producer (the
 * broker answers a Produce with OUT_OF_ORDER_SEQUENCE_NUMBER) while the
 * setup worker uses the producer on the thread pool; the broker lost and
 * back while events are produced; the consumer rewound to stored offsets.
 * Under ASan the first two were a use after free (or a destroy waiting
 * forever on the messages still held). Each event carries its sequence
 * number, so what the consumer sees can be checked one by one.
 */
#include "bus.h"
#include "bus_int.h" /* the decisions: fatal, working, assigned, renewals */
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

/* Kafka protocol ApiKeys (librdkafka keeps its names private). */
#define API_PRODUCE	  0
#define API_CREATE_TOPICS 19
#define MAX_EVENTS	  4096

struct fixture {
	rd_kafka_t *rk; /* owns the mock cluster */
	rd_kafka_mock_cluster_t *mc;
	struct kl_conf conf;
	uv_loop_t loop;
	uv_timer_t deadline, tick;
	struct kl_bus *bus;
	int (*step)(struct fixture *f); /* each tick; 1: done, the bus is freed */
	int batches, phase;
	size_t seen;
	int next_seq;		 /* of the next event produced */
	bool queued[MAX_EVENTS]; /* kl_bus_produce took it */
	int got[MAX_EVENTS];	 /* sequence numbers consumed, in order */
	int64_t got_off[MAX_EVENTS];
	size_t ngot;
	int first_after;		 /* the first event produced by the new producer */
	bool saw_race;			 /* a fatal error seen while the worker ran */
	uint64_t t_phase;		 /* uv_now() when the phase began */
	struct kl_bus_stats st;		 /* the last step's */
	struct kl_bus_offset from_start; /* as a fresh store has it: partition 0 from 0 */
	uint64_t last_tick, max_gap;	 /* ns: the loop must never wait on Kafka */
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
	f->first_after = -1;
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
	for (int i = 0; i < n && f->next_seq < MAX_EVENTS; i++) {
		char v[64];
		int len = snprintf(v, sizeof(v), "{\"E\":%d}", f->next_seq);
		f->queued[f->next_seq++] =
		    kl_bus_produce(f->bus, "BTCUSDT", 7, v, (size_t)len) == 0;
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

/* Records every event consumed: its sequence number and offset. */
static void record_batch(void *ud, const struct kl_bus_msg *m, size_t n)
{
	struct fixture *f = ud;

	f->batches++;
	for (size_t i = 0; i < n && f->ngot < MAX_EVENTS; i++) {
		int seq = -1;
		char v[64];
		snprintf(v, sizeof(v), "%.*s", (int)m[i].len, m[i].value);
		assert_int_equal(sscanf(v, "{\"E\":%d}", &seq), 1);
		f->got_off[f->ngot] = m[i].offset;
		f->got[f->ngot++] = seq;
	}
	f->seen += n;
}

static void on_tick(uv_timer_t *t)
{
	struct fixture *f = t->data;
	uint64_t now = uv_hrtime();

	if (f->last_tick && now - f->last_tick > f->max_gap)
		f->max_gap = now - f->last_tick;
	f->last_tick = now;
	if (f->step(f)) {
		kl_bus_free(f->bus);
		f->bus = NULL;
		uv_close((uv_handle_t *)t, NULL);
	}
}

/* Runs the loop, calling @p step every 10 ms, until it says done and the bus is gone. */
static void run_steps(struct fixture *f, int (*step)(struct fixture *f), uint64_t limit_ms)
{
	f->step = step;
	f->tick.data = f;
	f->t_phase = uv_now(&f->loop);
	uv_timer_init(&f->loop, &f->tick);
	uv_timer_start(&f->tick, on_tick, 0, 10);
	uv_timer_start(&f->deadline, on_deadline, limit_ms, 0);
	uv_unref((uv_handle_t *)&f->deadline);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_null(f->bus);
	fprintf(stderr, "longest loop stall: %.0f ms\n", (double)f->max_gap / 1e6);
	assert_true(f->max_gap < 500 * 1000000ULL);
}

static bool consumed(const struct fixture *f, int seq)
{
	for (size_t i = 0; i < f->ngot; i++) {
		if (f->got[i] == seq)
			return true;
	}
	return false;
}

/* Nothing is seen twice, and the one partition is seen in order. */
static void assert_in_order_once(const struct fixture *f)
{
	for (size_t i = 1; i < f->ngot; i++) {
		if (f->got[i] <= f->got[i - 1])
			fail_msg("event %d consumed after %d", f->got[i], f->got[i - 1]);
	}
}

static int fatal_step(struct fixture *f)
{
	struct kl_bus *bus = f->bus;

	switch (f->phase) {
	case 0: /* a producer with an id and acknowledged sequence numbers */
		if (bus->stats.delivered < 5)
			return 0;
		/* The next Produce fails as if the broker had lost the sequence:
		 * the head-of-line request out of order is fatal (rdkafka_request.c). The
		 * worker's CreateTopics is answered late, so the error comes while the
		 * worker holds the producer. */
		rd_kafka_mock_push_request_errors(f->mc, API_PRODUCE, 1,
						  RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
		rd_kafka_mock_broker_push_request_error_rtts(f->mc, 1, API_CREATE_TOPICS, 1,
							     RD_KAFKA_RESP_ERR_NO_ERROR, 1200);
		assert_int_equal(kl_bus_consume(bus, &f->from_start, 1, record_batch, f), 0);
		produce(f, 3);
		f->phase = 1;
		return 0;
	case 1: /* the producer must not be replaced under the worker */
		if (bus->fatal && bus->working)
			f->saw_race = true;
		if (bus->working)
			assert_int_equal(bus->renewals, 0);
		if (!bus->renewals) {
			produce(f, 1); /* refused by the dead producer: dropped, counted */
			return 0;
		}
		f->first_after = f->next_seq;
		f->phase = 2;
		return 0;
	default: /* the new producer's events all arrive */
		if (f->next_seq < f->first_after + 20)
			produce(f, 2);
		return f->next_seq >= f->first_after + 20 && consumed(f, f->next_seq - 1);
	}
}

static void fatal_error_while_the_worker_uses_the_producer(void **state)
{
	struct fixture *f = *state;
	char err[256];

	assert_int_equal(kl_bus_new(&f->loop, &f->conf, &f->bus, err, sizeof(err)), 0);
	produce(f, 5);
	run_steps(f, fatal_step, 40000);
	assert_true(f->saw_race);
	assert_int_not_equal(f->first_after, -1);
	assert_in_order_once(f);
	/* What the old producer had acknowledged and all the new one took arrive;
	 * what the fatal error cut off is missing only (the REST heal's part). */
	for (int seq = 0; seq < f->next_seq; seq++) {
		if (seq < 5 || seq >= f->first_after) {
			assert_true(f->queued[seq]);
			if (!consumed(f, seq))
				fail_msg("event %d not consumed", seq);
		}
	}
	for (int seq = 5; seq < 8; seq++)
		assert_false(consumed(f, seq)); /* the batch the broker refused */
}

static int broker_step(struct fixture *f)
{
	struct kl_bus *bus = f->bus;
	uint64_t now = uv_now(&f->loop);

	switch (f->phase) {
	case 0:
		if (!bus->assigned)
			return 0;
		f->phase = 1;
		return 0;
	case 1: /* streaming normally */
		produce(f, 1);
		if (f->next_seq < 20)
			return 0;
		rd_kafka_mock_broker_set_down(f->mc, 1);
		f->t_phase = now;
		f->phase = 2;
		return 0;
	case 2: /* the broker away for 1.5 s: the producer queues */
		produce(f, 1);
		if (now - f->t_phase < 1500)
			return 0;
		rd_kafka_mock_broker_set_up(f->mc, 1);
		f->phase = 3;
		return 0;
	default:
		if (f->next_seq < 200)
			produce(f, 1);
		f->st = bus->stats;
		return f->next_seq >= 200 && f->ngot >= 200;
	}
}

static void broker_lost_and_back_while_producing(void **state)
{
	struct fixture *f = *state;
	char err[256];

	assert_int_equal(kl_bus_new(&f->loop, &f->conf, &f->bus, err, sizeof(err)), 0);
	assert_int_equal(kl_bus_consume(f->bus, NULL, 0, record_batch, f), 0);
	run_steps(f, broker_step, 60000);
	assert_int_equal(f->st.failed, 0);
	assert_int_equal(f->st.dropped, 0);
	/* Each event once, in order, none lost: the idempotent producer retried. */
	assert_int_equal(f->ngot, 200);
	for (size_t i = 0; i < f->ngot; i++)
		assert_int_equal(f->got[i], (int)i);
}

static int rewind_step(struct fixture *f)
{
	struct kl_bus_offset at = {0, 10};

	switch (f->phase) {
	case 0:
		produce(f, 30);
		f->phase = 1;
		return 0;
	case 1:
		if (f->ngot < 30)
			return 0;
		/* The store lost what 10..29 did: read again from 10. */
		kl_bus_rewind(f->bus, &at, 1);
		f->phase = 2;
		return 0;
	case 2:
		if (f->ngot < 50)
			return 0;
		produce(f, 5);
		f->phase = 3;
		return 0;
	default:
		return f->ngot >= 55;
	}
}

static int resume_step(struct fixture *f)
{
	return f->ngot >= 10;
}

static void rewind_reads_again_from_the_stored_offsets(void **state)
{
	struct fixture *f = *state;
	char err[256];
	struct kl_bus_offset stored = {0, 25};

	assert_int_equal(kl_bus_new(&f->loop, &f->conf, &f->bus, err, sizeof(err)), 0);
	assert_int_equal(kl_bus_consume(f->bus, &f->from_start, 1, record_batch, f), 0);
	run_steps(f, rewind_step, 40000);
	assert_int_equal(f->ngot, 55);
	for (size_t i = 0; i < 30; i++)
		assert_int_equal(f->got_off[i], (int64_t)i);
	/* After the rewind: 10..29 once more, then the new events, nothing else. */
	for (size_t i = 30; i < 55; i++)
		assert_int_equal(f->got_off[i], (int64_t)(i - 20));

	/* A new bus (klined restarted) resumes at the offset the store holds. */
	f->ngot = 0;
	assert_int_equal(kl_bus_new(&f->loop, &f->conf, &f->bus, err, sizeof(err)), 0);
	assert_int_equal(kl_bus_consume(f->bus, &stored, 1, record_batch, f), 0);
	f->max_gap = f->last_tick = 0;
	run_steps(f, resume_step, 40000);
	assert_int_equal(f->ngot, 10);
	assert_int_equal(f->got_off[0], 25);
}

int main(void)
{
	kl_log_setup(getenv("KLINED_TEST_DEBUG") ? KL_LOG_DEBUG : KL_LOG_WARN, false);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(bus_freed_inside_its_batch_callback, setup, teardown),
	    cmocka_unit_test_setup_teardown(fatal_error_while_the_worker_uses_the_producer, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(broker_lost_and_back_while_producing, setup, teardown),
	    cmocka_unit_test_setup_teardown(rewind_reads_again_from_the_stored_offsets, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
