"""pytest fixtures for a real Kafka broker (tests/kafka/kafka.py). No mock.

Use from any conftest.py of the suite:

    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kafka"))
    from conftest_kafka import kafka_broker, kafka_factory, kafka_topic  # noqa: E402,F401

or register it once as a plugin (pytest.ini: `pythonpath = tests/kafka` and
`addopts = -p conftest_kafka`).

Fixtures:

  kafka_broker   session: one broker shared by the whole run, started on first
                 use (the jars fetched first if needed, ~50 s cold, then ~7-10 s
                 per start), stopped when the run ends. Under pytest-xdist each
                 worker is a session of its own, so each worker that needs it
                 gets its own broker (free ports, its own temporary directory,
                 ~1 GB of memory): no topic, offset or restart() of one worker
                 reaches another's tests. `.bootstrap` is
                 "127.0.0.1:PORT". Several conftest files importing it still get
                 the same broker. Tests may restart() it (same ports, it comes
                 back); tests that kill it, pause it or wipe it must use
                 kafka_factory instead, and should use their own topics
                 (kafka_topic) since topics outlive tests.
  kafka_factory  function: kafka_factory(**KafkaBroker kwargs) -> a started
                 private KafkaBroker, stopped (and its storage removed) at the
                 end of the test. For fault tests: .kill(), .terminate(),
                 .start(), .restart(down=30), .restart(wipe=True), .pause().
  kafka_topic    function: a topic name unique to the test (not created: the
                 broker auto-creates it, 1 partition, when a producer asks for
                 its metadata).

KafkaBroker, KafkaError, fetch and the module itself (kafka_mod) are
re-exported from here.
"""
import importlib.util
import re
import sys
import time
import uuid
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def _load():
    # Loaded by path under its own name, so a `kafka` package installed
    # in site-packages (kafka-python) can neither shadow it nor be shadowed.
    name = "klined_test_kafka"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _HERE / "kafka.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


kafka_mod = _load()
KafkaBroker, KafkaError, fetch = kafka_mod.KafkaBroker, kafka_mod.KafkaError, kafka_mod.fetch

_shared = {"broker": None, "users": 0}


@pytest.fixture(scope="session")
def kafka_broker():
    """The broker shared by the whole test run (see the module's doc)."""
    b = _shared["broker"]
    if b is None:
        b = KafkaBroker()
        _shared["broker"] = b
    if not b.running:
        b.start()
    _shared["users"] += 1
    try:
        yield b
    finally:
        _shared["users"] -= 1
        if _shared["users"] == 0:
            _shared["broker"] = None
            b.stop()


@pytest.fixture
def kafka_factory():
    """kafka_factory(**kwargs) -> a started private KafkaBroker, stopped after the test."""
    started = []

    def make(**kw):
        b = KafkaBroker(**kw)
        started.append(b)
        return b.start()

    yield make
    for b in started:
        b.stop()


@pytest.fixture
def kafka_topic(request):
    """A topic name of its own for this test: klined-test-<test name>-<random>."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", request.node.name)[:120]
    return f"klined-test-{name}-{uuid.uuid4().hex[:8]}"




def ready_topic(broker, topic):
    """What a daemon's clean start (no warning logged) presumes of the broker:
    it is past its own start, and the topic exists with a leader. A broker
    just started answers the first idempotent producer with 'Coordinator
    load in progress' (librdkafka retries, at warning level), and a topic
    just created may be 'unknown' to a metadata request for a moment (klined
    then warns and retries in 5 s): both are the broker's, before ours."""
    from confluent_kafka import KafkaException, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    warm = "klined-warm-up"
    for name, f in admin.create_topics([NewTopic(topic, 1, 1), NewTopic(warm, 1, 1)]).items():
        try:
            f.result(60)
        except KafkaException as e:
            if name != warm or "already exists" not in str(e).lower():
                raise
    end = time.monotonic() + 60
    while True:
        md = admin.list_topics(timeout=10).topics
        if all(t in md and not md[t].error and md[t].partitions and
               all(p.leader >= 0 for p in md[t].partitions.values()) for t in (topic, warm)):
            break
        assert time.monotonic() < end, f"topics {topic}, {warm} have no leader after 60 s"
        time.sleep(0.1)
    errors = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    p.produce(warm, b"x", on_delivery=lambda err, msg: err and errors.append(err))
    assert p.flush(60) == 0 and not errors, errors or "the broker took no message in 60 s"
