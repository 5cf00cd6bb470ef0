"""Sharding (issue 14): two klined instances with their own stores, HTTP ports
and symbol sets share one real Kafka broker and one topic. Each reads every
event of the topic (its own and the other's), keeps only its own symbols, and
must not be disturbed by the other's events, its restarts, a shared consumer
group, or a symbol both follow by mistake."""
import json
import time

import pytest

import oracle
from conftest import query, read_log, stop, wait_for
from test_batch import check_minutes
from test_http import free_port, get, metrics, sample
from test_speed import holes, vnow, ws_minutes

START = "2023-03-10T23:20:30Z"
SINCE = 1678406400000          # 2023-03-10, the history start
FINAL = 1678492800000 + 1_200_000  # 2023-03-11 00:20: past the day and its 10 min watermark


class Shard:
    def __init__(self, klined, srv, broker, topic, tmp_path, name, symbols, group=None,
                 ws_url=None):
        self.name, self.symbols, self.port = name, symbols, free_port()
        extra = ["--kafka-group", group] if group else []
        self.k = klined(srv.rest_url, "--ws-url", ws_url or srv.ws_url, "--kafka-brokers",
                        broker.bootstrap, "--kafka-topic", topic, "--history-start",
                        "2023-03-10", "--watermark", "10m", "--symbols", ",".join(symbols),
                        "--http-listen", f"127.0.0.1:{self.port}", *extra,
                        db=tmp_path / f"{name}.db")
        self.db, self.proc = self.k.db, None

    def start(self):
        self.proc = self.k.start()
        return self

    def stop(self):
        code, err = stop(self.proc)
        assert code == 0, f"{self.name}: {err[-3000:]}"
        return err

    def metric(self, name):
        return sample(metrics(self.port), name) or 0

    def api(self, path):
        st, _, body = get(self.port, path)
        assert st == 200, (st, body)
        return json.loads(body)

    def certified(self, day):
        return query(self.db, "SELECT count(*) FROM daily WHERE day = ? AND source = 'batch'",
                     day)[0][0] == len(self.symbols)


def newest(db, symbol):
    return query(db, "SELECT max(open_time) FROM kline_1m WHERE symbol = ?", symbol)[0][0]


def check_store(sh):
    """Exactly its own symbols, every minute up to the newest exact, every complete day exact."""
    assert sorted(r[0] for r in query(sh.db, "SELECT DISTINCT symbol FROM kline_1m")) == \
        sorted(sh.symbols), sh.name
    assert sorted(r[0] for r in query(sh.db, "SELECT DISTINCT symbol FROM daily")) == \
        sorted(sh.symbols), sh.name
    for s in sh.symbols:
        last = newest(sh.db, s)
        assert last + 60_000 >= FINAL, (sh.name, s, last)
        check_minutes(sh.db, s, skip=((0, SINCE), (last + 1, 1 << 62)))
        e = oracle.days(s)["2023-03-10"]
        row = query(sh.db, "SELECT printf('%.8f', open), printf('%.8f', high), "
                           "printf('%.8f', low), printf('%.8f', close), printf('%.8f', volume), "
                           "trades, source FROM daily WHERE symbol = ? AND day = '2023-03-10'", s)
        assert row == [(oracle.fmt8(e["open"]), oracle.fmt8(e["high"]), oracle.fmt8(e["low"]),
                        oracle.fmt8(e["close"]), oracle.fmt8(e["volume"]), e["trades"],
                        "batch")], (sh.name, s)


def settle(srv, *shards):
    srv.set_clock(speed=0)
    for sh in shards:
        wait_for(lambda: holes(sh.k) == 0, timeout=45, step=1)


def committed(broker, group, topic):
    """The offset the consumer group @group committed to Kafka for partition 0 (lag tools)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])
    res = admin.list_consumer_group_offsets([req])[group].result(30)
    return res.topic_partitions[0].offset


@pytest.mark.parametrize("groups", [("klined", "klined"), ("shard-a", "shard-b")],
                         ids=["same-group", "own-groups"])
def test_two_instances_disjoint_symbols_one_topic(replay, klined, kafka_broker, kafka_topic,
                                                   tmp_path, groups):
    from confluent_kafka import Producer
    srv = replay(start=START, speed=600)
    # Both start at once on a topic that does not exist yet: both try to create it.
    a = Shard(klined, srv, kafka_broker, kafka_topic, tmp_path, "a", ("BTCUSDT",), groups[0])
    b = Shard(klined, srv, kafka_broker, kafka_topic, tmp_path, "b", ("ETHUSDT",), groups[1])
    a.start(), b.start()
    # Minutes come over the stream, through the shared topic (the certification later
    # replaces those of 2023-03-10 by REST's).
    wait_for(lambda: ws_minutes(a.db) > 10 and ws_minutes(b.db) > 10, timeout=60, step=0.2)

    # A broken event of B's symbol: B refuses it (and keeps it); A never even reads it.
    p = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    p.produce(kafka_topic, key=b"ETHUSDT", value=b'{"e":"kline","s":"ETHUSDT","k":{')
    p.flush(10)
    wait_for(lambda: query(b.db, "SELECT count(*) FROM reject WHERE origin = 'ws'")[0][0] == 1,
             timeout=30, step=0.2)

    # B stops and starts again: A streams on meanwhile, undisturbed.
    b.stop()
    n = ws_minutes(a.db)
    wait_for(lambda: ws_minutes(a.db) >= n + 20, timeout=30, step=0.2)
    b.start()
    wait_for(lambda: vnow(srv) >= FINAL and a.certified("2023-03-10") and
             b.certified("2023-03-10"), timeout=60, step=0.2)
    # The certification is REST's: the stream's minutes up to FINAL, and the restarted B's
    # first events from the topic, may still be on their way (at 600x a second of lag is
    # ten virtual minutes). Wait for them rather than read a race.
    wait_for(lambda: all((newest(sh.db, s) or 0) + 60_000 >= FINAL
                         for sh in (a, b) for s in sh.symbols), timeout=30, step=0.2)

    def counters(name):
        try:
            return {sh.name: sh.metric(name) for sh in (a, b)}
        except OSError:
            return None
    wait_for(lambda: all(v > 100 for v in (counters("klined_events_foreign_total") or {"": 0}).values())
             and all(v > 0 for v in (counters("klined_events_consumed_total") or {"": 0}).values()),
             timeout=30, step=0.2)
    foreign = counters("klined_events_foreign_total")
    consumed = counters("klined_events_consumed_total")
    late = {sh.name: sh.metric("klined_late_events_total") for sh in (a, b)}
    status = {sh.name: json.loads(sh.k.cmd("status", "--json").stdout) for sh in (a, b)}
    settle(srv, a, b)
    logs = {sh.name: sh.stop() for sh in (a, b)}

    for sh in (a, b):
        check_store(sh)
        err = logs[sh.name]
        # The other's events were read and skipped: counted as foreign, not as errors.
        # (B's counters restarted with it: its own events since then may be few.)
        assert foreign[sh.name] > 100 and consumed[sh.name] > 0, (foreign, consumed)
        assert late[sh.name] == 0, late
        assert "beyond the exchange's clock" not in err and "kafka: consumer:" not in err, \
            err[-3000:]
        assert [s["symbol"] for s in status[sh.name]["symbols"]] == list(sh.symbols)
        stats = [line for line in err.splitlines() if "speed: stopped" in line][-1]
        fields = dict(kv.split("=") for kv in stats.split(": ", 2)[-1].split(", "))
        assert int(fields["foreign"]) > 0 and int(fields["future"]) == 0, stats
    assert query(a.db, "SELECT count(*) FROM reject")[0][0] == 0
    assert "refused event" not in logs["a"]
    assert query(b.db, "SELECT count(*) FROM reject WHERE origin = 'ws'")[0][0] == 1
    # Kafka's copy of the offsets (lag tools only) is accepted for either setup.
    for g in set(groups):
        assert committed(kafka_broker, g, kafka_topic) > 0, g


def test_overlapping_symbols_double_nothing(replay, klined, kafka_broker, kafka_topic, tmp_path):
    """ETHUSDT in both sets by mistake: both produce its events, so each instance reads each
    of them twice; the copies are absorbed (a closed minute once, the open minute by event
    time), neither store counts anything twice."""
    srv = replay(start=START, speed=600)
    a = Shard(klined, srv, kafka_broker, kafka_topic, tmp_path, "a", ("BTCUSDT", "ETHUSDT"))
    b = Shard(klined, srv, kafka_broker, kafka_topic, tmp_path, "b", ("ETHUSDT",))
    a.start(), b.start()
    # Minutes come over the stream, through the shared topic (the certification later
    # replaces those of 2023-03-10 by REST's).
    wait_for(lambda: ws_minutes(a.db) > 10 and ws_minutes(b.db) > 10, timeout=60, step=0.2)
    wait_for(lambda: vnow(srv) >= FINAL and a.certified("2023-03-10") and
             b.certified("2023-03-10"), timeout=60, step=0.2)
    settle(srv, a, b)
    # Today's live rows (the speed layer's) must not have summed the copies either.
    today = {sh.name: query(sh.db, "SELECT printf('%.8f', volume), trades FROM daily "
                                   "WHERE symbol = 'ETHUSDT' AND day = '2023-03-11'")
             for sh in (a, b)}
    upto = {sh.name: newest(sh.db, "ETHUSDT") for sh in (a, b)}
    dup = {sh.name: sh.metric("klined_events_duplicate_total") for sh in (a, b)}
    logs = {sh.name: sh.stop() for sh in (a, b)}
    for sh in (a, b):
        check_store(sh)
        assert dup[sh.name] > 0, dup
        assert "refused event" not in logs[sh.name]
        e = oracle.days("ETHUSDT", skip=((upto[sh.name] + 60_000, 1 << 62),))["2023-03-11"]
        vol, trades = today[sh.name][0]
        nxt = oracle.minutes("ETHUSDT").get(upto[sh.name] + 60_000)
        # The closed minutes once, plus at most the open minute's running state.
        assert e["trades"] <= trades <= e["trades"] + (int(nxt[8]) if nxt else 0), \
            (sh.name, trades, e["trades"])
        assert float(vol) < float(e["volume"]) * 1.5 + 1, (sh.name, vol, e["volume"])


def test_the_others_events_alone_commit_little_and_are_not_health(replay, klined, kafka_broker,
                                                                  kafka_topic, tmp_path):
    """A's own stream is down (its websocket URL leads nowhere); B's events go on flowing
    through the topic. They must neither make A look live nor make it commit a SQLite
    transaction for each batch of them: their offsets wait for a checkpoint of A's own
    (at most one a second)."""
    srv = replay(start=START, speed=600)
    a = Shard(klined, srv, kafka_broker, kafka_topic, tmp_path, "a", ("BTCUSDT",),
              ws_url=f"ws://127.0.0.1:{free_port()}")
    b = Shard(klined, srv, kafka_broker, kafka_topic, tmp_path, "b", ("ETHUSDT",))
    a.start(), b.start()
    wait_for(lambda: "kafka: consuming" in read_log(a.proc) and ws_minutes(b.db) > 10,
             timeout=60, step=0.2)
    f0, c0, t0 = a.metric("klined_events_foreign_total"), \
        a.metric("klined_window_commits_total"), time.monotonic()
    wait_for(lambda: a.metric("klined_events_foreign_total") >= f0 + 1000, timeout=60, step=0.2)
    commits, secs = a.metric("klined_window_commits_total") - c0, time.monotonic() - t0
    health = {sh.name: sh.api("/api/status")["health"] for sh in (a, b)}
    srv.set_clock(speed=0)
    for sh in (a, b):
        sh.stop()
    # A REST heal reloads a window now and then (one commit each): a handful, not hundreds.
    assert commits <= 2 * secs + 10, (commits, secs)
    assert health["a"]["events_age_s"] is None, health
    assert health["b"]["events_age_s"] is not None and health["b"]["events_age_s"] < 30, health
    assert ws_minutes(a.db) == 0
    assert [r[0] for r in query(a.db, "SELECT DISTINCT symbol FROM kline_1m")] == ["BTCUSDT"]
    # What A did store of its offsets is B's progress too: read again after a restart, skipped.
    assert query(a.db, "SELECT next FROM consumer_offset WHERE topic = ?", kafka_topic)[0][0] > 0
