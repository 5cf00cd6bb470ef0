#!/usr/bin/env python3
"""What another instance's events cost a klined consumer on a shared topic (issue 14).

    python3 bench/shard.py [--events N] [--rate R] [--klined PATH]... [--unkeyed]

One Kafka 4 broker (tests/kafka/kafka.py) and a frozen replay exchange (REST only) are
started here. Per binary given with --klined (default build/daemon/klined): a klined that
follows BTCUSDT on a fresh store and a fresh topic; once it consumes, N kline events of
ETHUSDT (another instance's symbol, keyed by it as klined produces them: real-sized
payloads) are produced into the topic from this process (as fast as they go, or R a
second, as a live stream brings them), and the klined process's CPU time (utime + stime
of /proc/PID/stat) is read from before the first to after its stored consumer offset
passed the last. Its commit count comes from /metrics. --unkeyed also sends the same
events without a key (a producer that does not key: klined must then parse each value
to learn its symbol).

Prints, per binary and kind: events, CPU seconds, us of CPU per event, wall seconds,
SQLite commits.
"""
import argparse
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "replay"))
sys.path.insert(0, str(ROOT / "tests" / "kafka"))
import binance_replay as br  # noqa: E402
import kafka as kafka_mod  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(port, name):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    m = re.search("^" + re.escape(name) + r" (\S+)$", body, re.M)
    return float(m.group(1)) if m else 0.0


def next_offset(db, topic):
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            r = c.execute("SELECT next FROM consumer_offset WHERE topic = ?", (topic,)).fetchall()
            return r[0][0] if r else -1
    except sqlite3.OperationalError:
        return -1


def event(i, t0):
    t = t0 + (i // 30) * 60_000
    return json.dumps({"e": "kline", "E": t + 2000 * (i % 30), "s": "ETHUSDT", "k": {
        "t": t, "T": t + 59_999, "s": "ETHUSDT", "i": "1m", "f": 1000 + i, "L": 2000 + i,
        "o": "1563.45000000", "c": "1564.12000000", "h": "1565.00000000",
        "l": "1562.80000000", "v": "812.30450000", "n": 1021, "x": i % 30 == 29,
        "q": "1270123.45678900", "V": "402.11230000", "Q": "628901.12345600",
        "B": "0"}}).encode()


def run(binary, broker, srv, work, n, keyed, rate):
    from confluent_kafka import Producer
    topic = f"shard-bench-{os.getpid()}-{time.monotonic_ns()}"
    db, port = work / f"{topic}.db", free_port()
    log = open(work / f"{topic}.log", "w+")
    p = subprocess.Popen([str(binary), "run", "--config", os.devnull, "--db", str(db),
                          "--rest-url", srv.rest_url, "--ws-url", srv.ws_url,
                          "--symbols", "BTCUSDT", "--history-start", "2023-03-10",
                          "--kafka-brokers", broker.bootstrap, "--kafka-topic", topic,
                          "--http-listen", f"127.0.0.1:{port}"],
                         stdout=subprocess.DEVNULL, stderr=log)
    try:
        end = time.monotonic() + 60
        while "kafka: consuming" not in Path(log.name).read_text():
            assert time.monotonic() < end and p.poll() is None, Path(log.name).read_text()
            time.sleep(0.1)
        time.sleep(2)  # the backfill (one day, frozen exchange) is done by now
        commits0, c0, w0 = metric(port, "klined_window_commits_total"), cpu_s(p.pid), \
            time.monotonic()
        prod = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5 if rate else 20,
                         "queue.buffering.max.messages": 1_000_000})
        t0 = 1678492800000
        for i in range(n):
            if rate:  # a live stream's pace: one event at a time
                time.sleep(max(0.0, w0 + i / rate - time.monotonic()))
                prod.poll(0)
            while True:
                try:
                    prod.produce(topic, key=b"ETHUSDT" if keyed else None, value=event(i, t0))
                    break
                except BufferError:
                    prod.poll(0.05)
        assert prod.flush(60) == 0
        end = time.monotonic() + 300
        # A fresh topic: its offsets are 0..n-1, plus the few events of BTCUSDT klined
        # itself produced (the frozen exchange repeats its open minute now and then).
        while next_offset(db, topic) < n and time.monotonic() < end:
            time.sleep(0.05)
        c1, w1 = cpu_s(p.pid), time.monotonic()
        commits = metric(port, "klined_window_commits_total") - commits0
        return dict(events=n, cpu_s=round(c1 - c0, 3), us_per_event=round((c1 - c0) / n * 1e6, 2),
                    wall_s=round(w1 - w0, 2), commits=int(commits))
    finally:
        p.terminate()
        p.wait(10)
        log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--klined", action="append", type=Path)
    ap.add_argument("--unkeyed", action="store_true")
    ap.add_argument("--rate", type=float, default=0,
                    help="events per second (default: as fast as they go)")
    a = ap.parse_args()
    binaries = a.klined or [ROOT / "build" / "daemon" / "klined"]
    broker = kafka_mod.KafkaBroker().start()
    srv = br.ReplayServer(start="2023-03-11T00:00:30Z", speed=0).start()
    try:
        with tempfile.TemporaryDirectory(prefix="shard-bench-") as d:
            for b in binaries:
                for keyed in ([True, False] if a.unkeyed else [True]):
                    r = run(b, broker, srv, Path(d), a.events, keyed, a.rate)
                    print(json.dumps(dict(klined=str(b), keyed=keyed, **r)), flush=True)
    finally:
        srv.stop()
        broker.stop()


if __name__ == "__main__":
    main()
