"""The fault suite: the real daemon, real brokers, real SQLite files and the
replay exchange. Every scenario ends with the store compared to the recorded
data: every minute exact, no duplicate, nothing missing but the exchange's own
outages, and every complete day the exact aggregate of its minutes."""
import os
import random
import signal
import sqlite3
import subprocess
import time

import pytest

from conftest import query, read_log, stop, wait_for
from test_batch import check_minutes
from test_http import free_port, metrics, sample
from test_speed import DAY, check_history, holes, live, newest, settle, vnow, ws_minutes


def speed_stats(err):
    """The consumer's closing counters: "speed: stopped: events=…, late=…"."""
    lines = [l for l in err.splitlines() if "speed: stopped" in l]
    assert lines, err[-2000:]
    return {k: int(v) for k, v in
            (kv.split("=") for kv in lines[-1].split(": ", 2)[-1].split(", "))}


def today(srv):
    return time.strftime("%Y-%m-%d", time.gmtime(vnow(srv) / 1000))


def finish(k, srv, proc, since=1678320000000):
    """Let the daemon heal what is left, stop it cleanly, compare the store:
    every minute from @since, and every day before the exchange's today."""
    settle(srv, k)
    # Days the watermark has closed are certified by batch; a heal runs every 30 s.
    final = time.strftime("%Y-%m-%d", time.gmtime((vnow(srv) - 3_600_000) / 1000))
    wait_for(lambda: query(k.db, "SELECT count(*) FROM daily WHERE day < ? AND source = "
                                 "'speed'", final)[0][0] == 0, timeout=70, step=1)
    code, err = stop(proc)
    assert code == 0, err[-3000:]
    last = newest(k.db)
    for s in ("BTCUSDT", "ETHUSDT"):
        check_minutes(k.db, s, skip=((0, since), (last + 1, 1 << 62)))
    check_history(k.db, today(srv), since=since, batch_before=final)
    assert query(k.db, "SELECT count(*) FROM (SELECT symbol, day FROM daily "
                       "GROUP BY symbol, day HAVING count(*) > 1)")[0][0] == 0
    return err


# ---- crashes ------------------------------------------------------------------------

KILL_PHASES = ("backfill", "stream", "final", "certify")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", [7])
def test_kill9_at_twenty_seeded_moments(replay, klined, kafka_broker, kafka_topic, seed):
    """SIGKILL five times in each phase: during a REST backfill, mid-stream,
    around a day window's finalisation (the watermark passing a midnight), and
    while a final day is being certified from REST; restart after each."""
    rnd = random.Random(seed)
    speed = 3600  # a virtual day in 24 s
    srv = replay(start="2023-03-16T21:00:30Z", speed=speed, latency_ms=15)
    k = live(klined, srv, kafka_broker, kafka_topic, "--rest-concurrency", "2")
    kills = []
    proc = None
    for n in range(20):
        phase = KILL_PHASES[n % 4]
        if phase == "backfill" and n:
            # Cut a fresh hole of a day or two: the restart backfills it from REST.
            srv.set_clock(speed=0)
            cut = vnow(srv) - rnd.randint(4, 7) * DAY
            with sqlite3.connect(k.db) as c:
                c.execute("DELETE FROM kline WHERE open_time >= ? AND open_time < ?",
                          (cut, cut + 3 * DAY))
            srv.set_clock(speed=speed)
        proc = k.start()
        log = lambda: read_log(proc)  # noqa: E731
        if phase == "backfill":
            wait_for(lambda: "backfill" in log() or "minutes missing" in log(), timeout=60,
                     step=0.01)
            time.sleep(rnd.uniform(0.01, 0.25))
        elif phase == "stream":
            wait_for(lambda: "kafka: consuming" in log(), timeout=60, step=0.1)
            time.sleep(rnd.uniform(0.5, 4))
        elif phase == "final":
            # Just before, at, or after the watermark makes the newest midnight final.
            now = vnow(srv)
            final_at = ((now - 3_600_000) // DAY + 1) * DAY + 3_600_000
            target = final_at + rnd.randint(-20, 20) * 60_000
            time.sleep(max(0.0, (target - now) / speed / 1000))
        else:
            wait_for(lambda: "certifying" in log(), timeout=60, step=0.01)
            time.sleep(rnd.uniform(0, 0.3))
        at = log().splitlines()[-1][:120] if log() else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append((phase, vnow(srv), at))
        print(f"kill {n}: {phase} {time.monotonic():.1f}")
    assert len(kills) >= 20
    proc = k.start()
    wait_for(lambda: "kafka: consuming" in read_log(proc), timeout=60, step=0.2)
    time.sleep(5)
    finish(k, srv, proc)
    for phase, at, line in kills:
        print(f"kill9 {phase:8} at {time.strftime('%m-%dT%H:%M', time.gmtime(at / 1000))}: {line}")


# ---- Kafka ----------------------------------------------------------------------------

@pytest.mark.parametrize("down", [30, pytest.param(300, marks=[pytest.mark.timeout(900),
                                                                pytest.mark.full])],
                         ids=["30s", "5min"])
def test_broker_down_mid_stream(replay, klined, kafka_factory, kafka_topic, down):
    broker = kafka_factory()
    srv = replay(start="2023-03-10T12:00:30Z", speed=600 if down == 30 else 120)
    k = live(klined, srv, broker, kafka_topic)
    proc = k.start()
    wait_for(lambda: ws_minutes(k.db) > 20, timeout=60, step=0.5)
    broker.restart(down=down, hard=True)
    t_back = vnow(srv)
    before = ws_minutes(k.db)
    # Streaming resumes through the broker, not only through the REST heal.
    wait_for(lambda: ws_minutes(k.db) > before + 20 and newest(k.db) > t_back + 10 * 60_000,
             timeout=120, step=0.5)
    finish(k, srv, proc)


def test_broker_wiped_topic_gone_mid_stream(replay, klined, kafka_factory, kafka_topic):
    # No auto-creation: klined itself must notice the topic is gone and create it again.
    broker = kafka_factory(properties={"auto.create.topics.enable": "false"})
    srv = replay(start="2023-03-10T22:00:30Z", speed=600)
    k = live(klined, srv, broker, kafka_topic)
    proc = k.start()
    wait_for(lambda: ws_minutes(k.db) > 20, timeout=60, step=0.5)
    broker.restart(wipe=True, down=5)
    t_back = vnow(srv)
    before = ws_minutes(k.db)
    wait_for(lambda: ws_minutes(k.db) > before + 40 and newest(k.db) > t_back + 10 * 60_000,
             timeout=120, step=0.5)
    err = finish(k, srv, proc)
    assert f"topic {kafka_topic} is gone" in err
    assert err.count("events not delivered") < 50, "undelivered events are summarised"
    # The stored offsets now count in the new topic, not past its end.
    off = query(k.db, "SELECT next FROM consumer_offset WHERE topic = ?", kafka_topic)[0][0]
    assert 0 < off < 10_000


# ---- SQLite ---------------------------------------------------------------------------

def test_sqlite_write_lock_held_10s(replay, klined, kafka_broker, kafka_topic):
    """A user's sqlite3 holds the write lock for 10 s: klined pauses its writes,
    keeps streaming into Kafka, and catches up from its stored offsets."""
    srv = replay(start="2023-03-10T22:00:30Z", speed=600)
    port = free_port()
    k = live(klined, srv, kafka_broker, kafka_topic, "--http-listen", f"127.0.0.1:{port}")
    proc = k.start()
    wait_for(lambda: ws_minutes(k.db) > 20, timeout=60, step=0.5)
    assert sample(metrics(port), "klined_store_write_failures_total") == 0
    c = sqlite3.connect(k.db, timeout=30, isolation_level=None)
    c.execute("BEGIN IMMEDIATE")
    c.execute("UPDATE run SET version = version WHERE 0")
    t_locked = vnow(srv)
    time.sleep(10)
    c.execute("ROLLBACK")
    c.close()
    assert proc.poll() is None, read_log(proc)[-3000:]
    failures = sample(metrics(port), "klined_store_write_failures_total")
    wait_for(lambda: newest(k.db) > t_locked + 100 * 60_000, timeout=90, step=0.5)
    err = finish(k, srv, proc)
    assert "consumer paused" in err and "resuming from the stored offsets" in err
    assert speed_stats(err)["store_failures"] >= failures >= 1


@pytest.fixture
def small_fs(tmp_path):
    """A 24 MiB tmpfs of its own, unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root (CI runs as root)")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill_up(path):
    """Write zeros into @path until the filesystem refuses: @return bytes written."""
    n = 0
    with open(path, "wb", buffering=0) as f:   # unbuffered: close() has nothing left to fail
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
                n += 65536
        except OSError:
            pass
    return n


def test_disk_full_pauses_then_resumes(replay, klined, kafka_broker, kafka_topic, small_fs):
    srv = replay(start="2023-03-10T22:00:30Z", speed=600)
    k = live(klined, srv, kafka_broker, kafka_topic)
    k.db = small_fs / "klined.db"
    proc = k.start()
    wait_for(lambda: ws_minutes(k.db) > 20, timeout=60, step=0.5)
    filler = small_fs / "filler"
    fill_up(filler)
    wait_for(lambda: "disk is full" in read_log(proc), timeout=90, step=0.5)
    time.sleep(5)
    assert proc.poll() is None, read_log(proc)[-3000:]
    t_freed = vnow(srv)
    filler.unlink()
    wait_for(lambda: newest(k.db) > t_freed + 60 * 60_000, timeout=120, step=0.5)
    err = finish(k, srv, proc)
    assert "resuming from the stored offsets" in err
    with sqlite3.connect(k.db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ---- the exchange ---------------------------------------------------------------------

def test_exchange_storms_while_streaming(replay, klined, kafka_broker, kafka_topic):
    """429 and 418 storms with Retry-After, 5xx bursts, answers slower than the
    timeout, cut and malformed bodies and a kline that fails validation, all
    hitting the heals and certifications of a running daemon."""
    srv = replay(start="2023-03-10T23:00:30Z", speed=600)
    srv.add_faults([
        {"kind": "status", "status": 429, "retry_after": 1, "after": 2, "count": 5},
        {"kind": "status", "status": 418, "retry_after": 2, "after": 6, "count": 2},
        {"kind": "status", "status": 503, "after": 9, "count": 6},
        {"kind": "status", "status": 500, "path": "/api/v3/time", "after": 2, "count": 3},
        {"kind": "slow", "delay_ms": 3000, "after": 12, "count": 3},
        {"kind": "truncate", "after": 14, "count": 2},
        {"kind": "malformed", "after": 16, "count": 2},
        {"kind": "bad_kline", "field": "low", "value": "999999", "after": 18, "count": 1},
    ])
    # Forty days to backfill while the stream runs: the storm has requests to hit.
    # One request in flight: every request the exchange sees after a 429/418 was
    # sent after klined learnt of it.
    k = live(klined, srv, kafka_broker, kafka_topic, "--rest-timeout", "1s",
             "--history-start", "2023-02-01", "--rest-concurrency", "1")
    proc = k.start()
    wait_for(lambda: all(f["fired"] == f["count"] for f in srv.stats()["faults"]),
             timeout=200, step=1)
    wait_for(lambda: query(k.db, "SELECT count(*) FROM daily WHERE day = '2023-03-10' "
                                 "AND source = 'batch'")[0][0] == 2, timeout=120, step=1)
    # The refused kline's minute is fetched again by the heal of the whole history.
    srv.set_clock(speed=0)
    wait_for(lambda: holes(k) == 0, timeout=200, step=2)
    err = finish(k, srv, proc, since=1675209600000)
    st = srv.stats()
    assert st["violations"] == 0, "a request went out while Retry-After was running"
    assert "Retry-After" in err
    assert query(k.db, "SELECT count(*) FROM reject WHERE origin = 'rest'")[0][0] >= 1


def test_symbol_delisted_mid_run(replay, klined, kafka_broker, kafka_topic):
    """ETHUSDT stops trading mid-stream: its history up to then stays exact, the
    minutes after are confirmed outages, its days end with its last kline (no
    fill day is invented after it),
    BTCUSDT is untouched, and a restart carries on (status BREAK is no error)."""
    srv = replay(start="2023-03-10T22:00:30Z", speed=600)
    k = live(klined, srv, kafka_broker, kafka_topic)
    proc = k.start()
    wait_for(lambda: ws_minutes(k.db) > 20, timeout=60, step=0.5)
    at = srv.delist("ETHUSDT")
    wait_for(lambda: vnow(srv) > at + 3 * 3_600_000, timeout=120, step=0.5)
    code, err = stop(proc)
    assert code == 0, err[-3000:]
    # Two days later: the restart heals them, ETHUSDT's as confirmed outages.
    srv.set_clock(now_ms=vnow(srv) + 2 * DAY, speed=600)
    proc = k.start()
    wait_for(lambda: "kafka: consuming" in read_log(proc), timeout=60, step=0.5)
    settle(srv, k)
    # `holes` counts only up to what is stored: the outage reaches the frozen
    # clock with the heal of ETHUSDT's range, which a loaded machine runs later.
    wait_for(lambda: (query(k.db, "SELECT max(to_ms) FROM outages WHERE symbol = 'ETHUSDT'")[0][0]
                      or 0) >= at + 2 * DAY, timeout=90, step=1)
    code, err = stop(proc)
    assert code == 0, err[-3000:]
    assert "ETHUSDT: the exchange reports status BREAK" in err
    eth_last = query(k.db, "SELECT max(open_time) FROM kline_1m WHERE symbol = 'ETHUSDT'")[0][0]
    assert eth_last == at - 60_000
    out = query(k.db, "SELECT min(from_ms), max(to_ms) FROM outages WHERE symbol = 'ETHUSDT'")[0]
    assert out[0] == at and out[1] >= at + 2 * DAY, out
    check_minutes(k.db, "ETHUSDT", skip=((0, 1678320000000), (at, 1 << 62)))
    check_minutes(k.db, "BTCUSDT", skip=((0, 1678320000000), (newest(k.db) + 1, 1 << 62)))
    # No day is invented after it stopped trading (it may never trade again).
    days = query(k.db, "SELECT day, source FROM daily WHERE symbol = 'ETHUSDT' "
                       "AND day >= '2023-03-10' ORDER BY day")
    assert days == [("2023-03-10", "batch")], days
    assert query(k.db, "SELECT status FROM symbols WHERE symbol = 'ETHUSDT'") == [("BREAK",)]
