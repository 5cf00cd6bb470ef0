"""The speed layer against a hostile exchange and a hostile topic (issue 11,
items 10-13 and 17): absurd event times produced to the topic, quiet
connections that carry only pings, an exchange that drops every connection,
a connect() that fails at once (no route), a broker gone at shutdown."""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import KLINED, ROOT, query, read_log, stop, wait_for
from test_speed import live, vnow, ws_minutes

ASAN_ENV = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=66",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=67"}


def sanitizer_report(log):
    return [line for line in log.splitlines()
            if "ERROR: AddressSanitizer" in line or "runtime error:" in line
            or "double free" in line]


# ---- item 12: connect() failing synchronously --------------------------------------

NETNS_SCRIPT = textwrap.dedent("""
    import json, os, signal, subprocess, sys, time
    sys.path.insert(0, sys.argv[1])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    import binance_replay as br
    binary, db, seconds, mode = sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
    srv = br.ReplayServer(start="2023-03-10T22:00:30Z", speed=600).start()
    # No route to this address in a namespace with only lo: connect() fails at once
    # with ENETUNREACH, inside lws_client_connect_via_info.
    ws_url = "ws://192.0.2.1:9443"
    if mode == "rotate":
        # The live connection reaches the replay; its successors cannot: after the
        # first serverShutdown notice the route to the replay's port is removed.
        ws_url = srv.ws_url
    env = dict(os.environ)
    log = open(db + ".log", "w+")
    p = subprocess.Popen([binary, "run", "--db", db, "--rest-url", srv.rest_url,
                          "--config", os.devnull, "--history-start", "2023-03-10",
                          "--log-level", "info", "--ws-url", ws_url,
                          "--kafka-brokers", "127.0.0.1:1"], stdout=subprocess.DEVNULL,
                         stderr=log, env=env)
    out = {}
    if mode == "rotate":
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and srv.ws_stats()["connections_current"] < 1:
            time.sleep(0.1)
        time.sleep(1)
        # Local routes live in the local table: a rule ahead of it makes every new
        # connect() to the replay fail at once; the established connection goes on.
        for rule in (["add", "pref", "100", "lookup", "local"], ["del", "pref", "0"],
                     ["add", "pref", "1", "to", "127.0.0.1", "ipproto", "tcp", "dport",
                      str(srv.port), "prohibit"]):
            subprocess.run(["ip", "rule", *rule], check=True)
        srv.add_ws_faults([{"kind": "shutdown", "after": 0, "count": 5}])
        time.sleep(seconds)
        out["ws"] = srv.ws_stats()
        subprocess.run(["ip", "rule", "del", "pref", "1"], check=True)
    else:
        time.sleep(seconds)
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    log.seek(0)
    out.update({"code": p.returncode, "log": log.read()})
    srv.stop()
    print(json.dumps(out))
""")


def run_in_netns(tmp_path, binary, seconds, mode):
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip")
    env = dict(os.environ, **ASAN_ENV)
    p = subprocess.run(["unshare", "-rn", sys.executable, "-c", NETNS_SCRIPT,
                        str(ROOT / "tests" / "replay"), str(binary), str(tmp_path / "k.db"),
                        str(seconds), mode], capture_output=True, text=True, timeout=120,
                       env=env)
    if p.returncode != 0 and "unshare" in p.stderr and "Operation not permitted" in p.stderr:
        pytest.skip("no network namespaces here")
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def asan_binary():
    """The sanitizer build next to the tested one, if there is one: a double free is
    certain there, and only likely to crash a release build."""
    for cand in (os.environ.get("KLINED_ASAN_BIN"),
                 KLINED.parent.parent.parent / "build-asan" / "daemon" / "klined"):
        if cand and Path(cand).exists():
            return Path(cand)
    return KLINED


@pytest.mark.parametrize("binary", ["tested", "asan"])
def test_connect_fails_synchronously_no_double_free(tmp_path, binary):
    exe = KLINED if binary == "tested" else asan_binary()
    out = run_in_netns(tmp_path, exe, 8, "unreachable")
    log = out["log"]
    assert not sanitizer_report(log), log[-4000:]
    assert out["code"] == 0, log[-4000:]
    # It kept trying, with backoff, and said why.
    assert log.count("ws: reconnecting in") >= 2, log[-3000:]
    assert log.count("ws: reconnecting in") <= 12, log[-3000:]


def test_rotation_whose_successor_cannot_connect_keeps_the_live_one(tmp_path):
    out = run_in_netns(tmp_path, asan_binary(), 6, "rotate")
    log = out["log"]
    assert not sanitizer_report(log), log[-4000:]
    assert out["code"] == 0, log[-4000:]
    assert "rotating the connection (serverShutdown)" in log, log[-3000:]
    # The live connection stayed the slot's: no reconnect for it, no second one.
    assert "connection lost" not in log, log[-3000:]
    assert out["ws"]["connections_opened"] == 1, out["ws"]


# ---- item 10: absurd event times through the topic ---------------------------------

INT64_MAX = (1 << 63) - 1


def fake_event(sym, E, t):
    return json.dumps({"e": "kline", "E": E, "s": sym, "k": {
        "t": t, "T": t + 59_999, "s": sym, "i": "1m", "f": 1, "L": 2, "o": "1.0", "c": "1.0",
        "h": "1.0", "l": "1.0", "v": "1.0", "n": 1, "x": False, "q": "1.0", "V": "1.0",
        "Q": "1.0", "B": "0"}})


def start_logged(k, env_extra=None):
    """k.start() with extra environment (sanitizer options, test hooks)."""
    from conftest import RUNNING
    k.log = open(k.db.parent / f"klined-{time.monotonic_ns()}.log", "w+")
    proc = subprocess.Popen(k.argv(), stdout=subprocess.DEVNULL, stderr=k.log,
                            env=dict(os.environ, **ASAN_ENV, **(env_extra or {})))
    proc.log = k.log
    RUNNING.append(proc)
    return proc


def test_far_future_events_in_the_topic_do_not_move_the_watermark(replay, klined, kafka_broker,
                                                                   kafka_topic):
    from confluent_kafka import Producer
    from test_http import free_port, metrics, sample
    srv = replay(start="2023-03-10T22:00:30Z", speed=600)
    port = free_port()
    k = live(klined, srv, kafka_broker, kafka_topic, "--http-listen", f"127.0.0.1:{port}")
    proc = start_logged(k)
    wait_for(lambda: ws_minutes(k.db) > 10, timeout=60, step=0.5)
    # Anyone who can produce to the topic: a year ahead, more than 20 in a row, then
    # an open time whose minute end overflows int64, and an event time at INT64_MAX.
    p = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    year = vnow(srv) + 365 * 86_400_000
    for i in range(40):
        t = year // 60_000 * 60_000 + i * 60_000
        if i == 19:   # the 20th in a row used to be believed
            t = INT64_MAX - 59_999
        p.produce(kafka_topic, key=b"BTCUSDT", value=fake_event("BTCUSDT", t + 1000, t))
    p.produce(kafka_topic, key=b"ETHUSDT", value=fake_event("ETHUSDT", INT64_MAX, year))
    p.flush(10)
    wait_for(lambda: "beyond the exchange's clock" in read_log(proc) or
             "following it" in read_log(proc), timeout=30, step=0.5)
    def late_events():
        try:
            return sample(metrics(port), "klined_late_events_total") or 0
        except OSError:   # it died: the log says why
            return -1

    before, late0 = ws_minutes(k.db), late_events()
    # Real events go on landing: 10 virtual minutes per second, two symbols.
    time.sleep(4)
    grown, late = ws_minutes(k.db) - before, late_events() - late0
    srv.set_clock(speed=0)
    if proc.poll() is not None:
        err = read_log(proc)
        assert not sanitizer_report(err), err[-4000:]
        raise AssertionError(f"klined exited {proc.returncode}: {err[-3000:]}")
    code, err = stop(proc)
    assert not sanitizer_report(err), err[-4000:]
    assert code == 0, err[-3000:]
    assert grown >= 30 and late < 20, (grown, late, err[-3000:])
    assert "following it" not in err
    # The absurd minutes were refused, not stored, and the refusals are kept.
    assert query(k.db, "SELECT count(*) FROM kline WHERE open_time > ?", year - 86_400_000) \
        == [(0,)]


# ---- item 17: SIGTERM while the broker is gone --------------------------------------

@pytest.mark.parametrize("how", ["kill", "pause"])
def test_sigterm_with_the_broker_gone_mid_stream_stops_within_seconds(
        replay, klined, kafka_factory, kafka_topic, how):
    from test_speed import check_minutes_upto_newest, settle
    broker = kafka_factory()
    srv = replay(start="2023-03-10T22:00:30Z", speed=600)
    k = live(klined, srv, broker, kafka_topic, "--http-listen", "off")
    proc = start_logged(k)
    wait_for(lambda: ws_minutes(k.db) > 10, timeout=60, step=0.5)
    # Killed (connections refused) or hung (SIGSTOP: connections open, nothing
    # answered); the stream goes on queueing thousands of idempotent events.
    broker.kill() if how == "kill" else broker.pause()
    time.sleep(15)
    t0 = time.monotonic()
    code, err = stop(proc, timeout=30)
    took = time.monotonic() - t0
    assert not sanitizer_report(err), err[-4000:]
    assert code == 0, err[-3000:]
    assert took < 6, (took, err[-3000:])
    assert "not delivered at shutdown" in err, err[-3000:]
    # The broker back, the next start heals from REST what Kafka never got.
    broker.resume() if how == "pause" else broker.start()
    proc = start_logged(k)
    wait_for(lambda: "kafka: consuming" in read_log(proc), timeout=60, step=0.5)
    settle(srv, k)
    code, err = stop(proc)
    assert code == 0, err[-3000:]
    check_minutes_upto_newest(k.db)


# ---- item 11: quiet connections, connection attempts --------------------------------

def stream_only(klined, srv, *extra):
    """The stream without a broker (events queue locally): the websocket is under test."""
    return klined(srv.rest_url, "--ws-url", srv.ws_url, "--kafka-brokers", "127.0.0.1:9",
                  "--history-start", "2023-03-10", "--http-listen", "off", *extra)


def test_quiet_connection_kept_alive_by_pings(replay, klined):
    # Binance sends kline updates only when something traded: a connection of
    # illiquid (or halted) symbols carries nothing but the exchange's pings, every 20 s.
    srv = replay(start="2023-03-10T23:00:30Z", speed=60, ws_ping_interval=20.0,
                 ws_quiet_symbols="BTCUSDT,ETHUSDT")
    k = stream_only(klined, srv)
    proc = start_logged(k)
    wait_for(lambda: "ws: connected" in read_log(proc), timeout=60, step=0.5)
    time.sleep(45)
    ws = srv.ws_stats()
    code, err = stop(proc)
    assert code == 0, err[-3000:]
    assert ws["pings_sent"] >= 2 and ws["events_sent"] == 0, ws
    assert "dropping the connection" not in err, err[-3000:]
    assert ws["connection_attempts"] == 1 and ws["connections_opened"] == 1, ws


def test_exchange_dropping_every_connection_gets_few_attempts(replay, klined):
    # Every connection is closed right after its first event: the backoff must grow
    # (it used to restart at 0.5 s after each first event: ~2 attempts a second).
    srv = replay(start="2023-03-10T23:00:30Z", speed=60, ws_drop_after_frames=1,
                 ws_conn_limit_5min=300)
    k = stream_only(klined, srv)
    proc = start_logged(k)
    wait_for(lambda: "ws: connected" in read_log(proc), timeout=60, step=0.5)
    time.sleep(30)
    attempts = srv.ws_stats()["connection_attempts"]
    code, err = stop(proc)
    assert code == 0, err[-3000:]
    # 0.5, 1, 2, 4, 8, 16 s (+-50 %): at most 8 in 30 s, a tenth of the 5-minute limit.
    assert 3 <= attempts <= 10, (attempts, err[-2000:])
