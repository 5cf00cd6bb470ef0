"""Speed layer end to end: the replay exchange's websocket -> klined ->
a real Kafka broker -> klined's own consumer -> SQLite, in virtual time."""
import json
import signal
import time
from decimal import Decimal

import pytest

import oracle
from conftest import query, read_log, stop, wait_for
from test_batch import check_daily, check_minutes, expected_minutes, stored_minutes

SYMS = ("BTCUSDT", "ETHUSDT")
DAY = 86_400_000


def live(klined, srv, broker, topic, *extra):
    return klined(srv.rest_url, "--ws-url", srv.ws_url, "--kafka-brokers", broker.bootstrap,
                  "--kafka-topic", topic, "--history-start", "2023-03-09", *extra)


def vnow(srv):
    return srv.now_ms()


def newest(db):
    try:
        return query(db, "SELECT max(open_time) FROM kline")[0][0] or 0
    except Exception:
        return 0


def ws_minutes(db):
    try:
        return query(db, "SELECT count(*) FROM kline WHERE source = 2")[0][0]
    except Exception:
        return 0


def batch_days(db, day):
    try:
        return query(db, "SELECT count(*) FROM daily WHERE day = ? AND source = 'batch'", day)[0][0]
    except Exception:
        return 0


def holes(k):
    p = k.cmd("status", "--json")
    if p.returncode != 0:
        return None
    return sum(s["holes"] for s in json.loads(p.stdout)["symbols"])


def settle(srv, k=None):
    """Freeze the exchange's clock and let the daemon heal what the stream missed
    (it looks soon after a gap, and every 30 s)."""
    srv.set_clock(speed=0)
    time.sleep(3)
    if k is not None:
        wait_for(lambda: holes(k) == 0, timeout=45, step=1)


def check_history(db, upto_day, since=1678320000000, batch_before=None):
    """Every minute from @since (2023-03-09) to the newest stored one, and every complete day, exact."""
    last = newest(db)
    for s in SYMS:
        exp = {t: v for t, v in expected_minutes(s, skip=()).items() if since <= t <= last}
        got = stored_minutes(db, s)
        miss = sorted(set(exp) - {r[0] for r in got})
        assert not miss, f"{s}: {len(miss)} minutes missing: {miss[:5]} (newest {last})"
        assert {r[0]: tuple(r[1:]) for r in got} == exp, f"{s}: minutes differ"
        days = oracle.days(s)
        rows = query(db, "SELECT day, printf('%.8f', open), printf('%.8f', high), "
                         "printf('%.8f', low), printf('%.8f', close), printf('%.8f', volume), "
                         "trades, source FROM daily WHERE symbol = ? AND day < ? ORDER BY day",
                     s, upto_day)
        assert rows, s
        for r in rows:
            e = days[r[0]]
            assert r[1:7] == (oracle.fmt8(e["open"]), oracle.fmt8(e["high"]), oracle.fmt8(e["low"]),
                              oracle.fmt8(e["close"]), oracle.fmt8(e["volume"]), e["trades"]), r
            assert r[7] == "batch" or (batch_before and r[0] >= batch_before), r


def test_stream_two_days_through_kafka(replay, klined, kafka_broker, kafka_topic):
    srv = replay(start="2023-03-10T00:00:30Z", speed=3600)
    k = live(klined, srv, kafka_broker, kafka_topic)
    proc = k.start()
    # Two virtual days and the watermark hour after them.
    wait_for(lambda: vnow(srv) >= 1678586400000 + 3_600_000 * 1.5, timeout=120, step=0.5)
    wait_for(lambda: query(k.db, "SELECT count(*) FROM daily WHERE day = '2023-03-11' "
                                 "AND source = 'batch'")[0][0] == 2, timeout=60, step=0.5)
    srv.set_clock(speed=0)
    time.sleep(1.5)
    code, err = stop(proc)
    assert code == 0, err
    assert "kafka: consuming" in err and "ws: connected" in err
    assert "certifying 2023-03-10" in err and "certifying 2023-03-11" in err
    check_history(k.db, "2023-03-12")
    for s in SYMS:
        check_minutes(k.db, s, skip=((0, 1678320000000), (newest(k.db) + 1, 1 << 62)))
    # Today is the speed layer's: its minutes came over the stream, its row is live.
    assert query(k.db, "SELECT count(*) FROM kline_1m WHERE source = 'ws' "
                       "AND open_time >= 1678579200000")[0][0] > 0
    last = newest(k.db)
    for s in SYMS:
        row = query(k.db, "SELECT printf('%.8f', open), high, low, printf('%.8f', close), volume, "
                          "trades, source FROM daily WHERE symbol = ? AND day = '2023-03-12'", s)
        assert row and row[0][6] == "speed", row
        mins = {t: p for t, p in oracle.minutes(s).items() if 1678579200000 <= t <= last}
        closed = oracle.days(s, skip=((last + 1, 1 << 62),))["2023-03-12"]
        nxt = oracle.minutes(s).get(last + 60_000)
        o, h, lo, c, v, n, _ = row[0]
        assert o == oracle.fmt8(closed["open"])
        assert Decimal(str(h)) >= closed["high"] and Decimal(str(lo)) <= closed["low"]
        # The open minute's running state may come on top of the closed minutes.
        extra_v = Decimal(nxt[5]) if nxt else Decimal(0)
        assert closed["volume"] - Decimal("1e-6") <= Decimal(str(v)) <= closed["volume"] + extra_v + Decimal("1e-6")
        assert closed["trades"] <= n <= closed["trades"] + (int(nxt[8]) if nxt else 0)
        assert len(mins) > 0
    # An independent client reads the topic: key = symbol, value = the exchange's event.
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": "test-reader",
                  "auto.offset.reset": "earliest"})
    c.subscribe([kafka_topic])
    seen, closed_seen = 0, 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and seen < 2000:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        ev = json.loads(m.value())
        assert m.key().decode() == ev["s"] and ev["e"] == "kline" and ev["k"]["i"] == "1m"
        seen += 1
        closed_seen += ev["k"]["x"]
    c.close()
    assert seen >= 2000 and closed_seen > 0
    off = query(k.db, "SELECT part, next FROM consumer_offset WHERE topic = ?", kafka_topic)
    assert off and off[0][1] > 2000


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_kill9_mid_stream_then_restart(replay, klined, kafka_broker, kafka_topic, seed):
    import random
    rnd = random.Random(seed)
    srv = replay(start="2023-03-10T20:00:30Z", speed=1800)
    k = live(klined, srv, kafka_broker, kafka_topic)
    for i in range(2):
        proc = k.start()
        time.sleep(rnd.uniform(4, 12))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    proc = k.start()
    wait_for(lambda: vnow(srv) >= 1678492800000 + 4 * 3_600_000, timeout=90, step=0.5)
    wait_for(lambda: query(k.db, "SELECT count(*) FROM daily WHERE day = '2023-03-10' "
                                 "AND source = 'batch'")[0][0] == 2, timeout=60, step=0.5)
    settle(srv, k)
    code, err = stop(proc)
    assert code == 0, err
    check_history(k.db, "2023-03-11")
    check_minutes_upto_newest(k.db)


def check_minutes_upto_newest(db):
    last = newest(db)
    for s in SYMS:
        check_minutes(db, s, skip=((0, 1678320000000), (last + 1, 1 << 62)))


def test_broker_down_30s_mid_stream(replay, klined, kafka_factory, kafka_topic):
    broker = kafka_factory()
    srv = replay(start="2023-03-10T22:00:30Z", speed=600)
    k = live(klined, srv, broker, kafka_topic)
    proc = k.start()
    wait_for(lambda: ws_minutes(k.db) > 20, timeout=60, step=0.5)
    broker.restart(down=30)
    t_back = vnow(srv)
    wait_for(lambda: newest(k.db) > t_back + 10 * 60_000, timeout=90, step=0.5)
    settle(srv, k)
    code, err = stop(proc)
    assert code == 0, err
    check_minutes_upto_newest(k.db)
    check_history(k.db, "2023-03-11")


def test_late_events_dropped_and_counted_day_still_exact(replay, klined, kafka_broker,
                                                          kafka_topic):
    srv = replay(start="2023-03-10T23:30:30Z", speed=600)
    srv.add_ws_faults([{"kind": "past", "after": 50, "count": 5},
                       {"kind": "future", "after": 80, "count": 2},
                       {"kind": "malformed", "after": 100, "count": 3},
                       {"kind": "duplicate", "final": True, "after": 10, "count": 5},
                       {"kind": "reorder", "after": 200, "count": 20}])
    k = live(klined, srv, kafka_broker, kafka_topic)
    proc = k.start()
    wait_for(lambda: batch_days(k.db, "2023-03-10") == 2 and
             vnow(srv) > 1678496400000 + 600_000, timeout=120, step=0.5)
    settle(srv, k)
    code, err = stop(proc)
    assert code == 0, err
    stats = [l for l in err.splitlines() if "speed: stopped" in l]
    assert stats, err[-2000:]
    fields = dict(kv.split("=") for kv in stats[-1].split(": ", 2)[-1].split(", "))
    assert int(fields["late"]) >= 5, stats
    assert int(fields["future"]) >= 2, stats
    assert int(fields["duplicates"]) >= 1, stats
    assert query(k.db, "SELECT count(*) FROM reject WHERE origin = 'ws'")[0][0] >= 2
    check_history(k.db, "2023-03-11")
    check_minutes_upto_newest(k.db)


def test_ws_drop_and_rotation_lose_no_minute(replay, klined, kafka_broker, kafka_topic):
    # A virtual day passes in 40 s: the exchange closes connections at 24 h of
    # virtual time; klined must rotate before, and survive a drop.
    srv = replay(start="2023-03-10T00:00:30Z", speed=2160)
    srv.add_ws_faults([{"kind": "drop", "after": 200, "count": 1}])
    k = live(klined, srv, kafka_broker, kafka_topic)
    proc = k.start()
    wait_for(lambda: vnow(srv) > 1678406400000 + 26 * 3_600_000, timeout=150, step=0.5)
    settle(srv, k)
    code, err = stop(proc)
    assert code == 0, err
    assert err.count("ws: connected") >= 3, err[-3000:]
    assert "rotating the connection (24 h connection limit ahead)" in err
    check_minutes_upto_newest(k.db)
    check_history(k.db, "2023-03-11")


# Pure waiting: 95 s of wall-clock silence before klined may call the connection dead
# (pings alone keep it alive: test_hostile_speed.py). Run by `scripts/test --full`.
@pytest.mark.full
def test_ws_silence_reconnects_and_heals(replay, klined, kafka_broker, kafka_topic):
    srv = replay(start="2023-03-10T23:00:30Z", speed=30)
    # Silence is no frame and no ping (the replay's silence stops both) for 90 s.
    srv.add_ws_faults([{"kind": "silence", "seconds": 95, "after": 100, "count": 1}])
    k = live(klined, srv, kafka_broker, kafka_topic)
    proc = k.start()
    wait_for(lambda: "no frame and no ping for 90 s" in read_log(proc), timeout=150, step=0.5)
    wait_for(lambda: read_log(proc).count("ws: connected") >= 2, timeout=60, step=0.5)
    time.sleep(5)
    settle(srv, k)
    code, err = stop(proc)
    assert code == 0, err
    check_minutes_upto_newest(k.db)


def test_sigterm_with_kafka_down_stops_within_seconds(replay, klined, tmp_path):
    # No broker at all: the daemon streams into its local queue, heals over REST,
    # and a SIGTERM still ends it promptly and cleanly.
    srv = replay(start="2023-03-10T23:00:30Z", speed=60)
    k = klined(srv.rest_url, "--ws-url", srv.ws_url, "--kafka-brokers", "127.0.0.1:9",
               "--history-start", "2023-03-10")
    proc = k.start()
    wait_for(lambda: "ws: connected" in read_log(proc), timeout=60, step=0.5)
    time.sleep(3)
    t0 = time.monotonic()
    code, err = stop(proc)
    assert code == 0, err
    assert time.monotonic() - t0 < 6
    assert query(k.db, "SELECT count(*) FROM kline")[0][0] >= 1380 * 2
