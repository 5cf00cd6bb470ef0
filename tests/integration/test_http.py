"""The HTTP endpoint (page, JSON API, /metrics, live websocket) of the real
daemon, on the replay exchange and, for the live page, the real Kafka broker.
The page is loaded by Debian's headless chromium through playwright-core
(tests/web/page.mjs); /metrics is checked by promtool."""
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, query, read_log, stop, wait_for
from test_speed import live

BUILD_WEB = Path(os.environ.get("KLINED_WEB", ROOT / "build" / "web"))
ARTIFACTS = Path(os.environ.get("KLINED_ARTIFACTS", ROOT / "tests" / "web" / "artifacts"))
SYMS = ("BTCUSDT", "ETHUSDT")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, timeout=30):
    """(status, headers, body bytes) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def get_json(port, path):
    st, _, body = get(port, path)
    return st, json.loads(body)


def up(port):
    try:
        return get(port, "/api/status", timeout=5)[0] == 200
    except OSError:
        return False


def metrics(port):
    st, hdr, body = get(port, "/metrics")
    assert st == 200 and hdr["Content-Type"].startswith("text/plain; version=0.0.4")
    return body.decode()


def sample(text, name, **labels):
    """The value of one sample of the exposition text (None when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pat = "^" + re.escape(name) + (r"\{" + re.escape(want) + r"\}" if labels else "") + r" (\S+)$"
    m = re.search(pat, text, re.M)
    return float(m.group(1)) if m else None


def promtool(text):
    if not shutil.which("promtool"):
        pytest.fail("promtool is missing: scripts/install-deps.sh installs Debian's prometheus")
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


def listening(pid):
    """The TCP addresses (ip, port) process @pid listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            t = os.readlink(fd)
        except OSError:
            continue
        if t.startswith("socket:["):
            inodes.add(t[8:-1])
    out = []
    for table, v6 in (("tcp", False), ("tcp6", True)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:  # 0A: LISTEN
                continue
            addr, port = f[1].split(":")
            raw = bytes.fromhex(addr)
            if v6:
                ip = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1]
                                                               for i in range(0, 16, 4)))
            else:
                ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
            out.append((ip, int(port, 16)))
    return out


def http_args(port):
    return ("--http-listen", f"127.0.0.1:{port}", "--http-assets", str(BUILD_WEB))


def node_page(url, shot, watch=40):
    script = ROOT / "tests" / "web" / "page.mjs"
    if not (ROOT / "tests" / "web" / "node_modules" / "playwright-core").exists():
        pytest.fail("playwright-core is missing: scripts/install-deps.sh installs it "
                    "(npm ci --prefix tests/web)")
    p = subprocess.run(["node", str(script), url, str(shot), str(watch)], capture_output=True,
                       text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-4000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_page_live_through_kafka(replay, klined, kafka_broker, kafka_topic):
    """The page in a real browser: as many candles as `daily` has rows for each
    symbol, switching works, today's candle moves while events stream."""
    assert (BUILD_WEB / "lightweight-charts.standalone.production.js").exists(), BUILD_WEB
    srv = replay(start="2023-03-10T12:00:30Z", speed=30)
    port = free_port()
    k = live(klined, srv, kafka_broker, kafka_topic, "--history-start", "2023-01-20",
             *http_args(port))
    proc = k.start()
    wait_for(lambda: up(port), timeout=60, step=0.2)
    # Backfill done and the stream flowing into SQLite.
    wait_for(lambda: "backfill: done" in read_log(proc), timeout=120, step=0.5)
    wait_for(lambda: sample(metrics(port), "klined_klines_stored_total", source="ws"),
             timeout=120, step=0.5)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "page.png"
    t0 = time.monotonic()
    page = node_page(f"http://127.0.0.1:{port}/", shot)
    elapsed = time.monotonic() - t0
    for s in SYMS:
        rows = query(k.db, "SELECT count(*) FROM daily WHERE symbol = ?", s)[0][0]
        assert rows >= 49, rows  # 2023-01-20 .. 2023-03-10
        assert page["symbols"][s]["candles"] == rows, (s, page["symbols"][s], rows)
        assert page["symbols"][s]["first"] == "2023-01-20"
        assert page["symbols"][s]["ma7"] == rows - 6
    assert len(set(page["closes"])) >= 3, page["closes"]  # changed twice while watched
    assert page["frames"] >= 2, page
    assert not page["errors"], page["errors"]
    assert shot.stat().st_size > 10_000
    print(f"page load {page['load_ms']} ms, whole browser run {elapsed:.1f} s")
    # /metrics while streaming: valid, and moving.
    m1 = metrics(port)
    promtool(m1)
    wait_for(lambda: sample(metrics(port), "klined_events_consumed_total")
             > sample(m1, "klined_events_consumed_total"), timeout=30, step=0.5)
    # The rows first: the counter counts each minute when it is written, before its
    # commit, so a later reading covers every committed row (not the other way round).
    ws_rows = query(k.db, "SELECT count(*) FROM kline_1m WHERE source = 'ws'")[0][0]
    m2 = metrics(port)
    promtool(m2)
    for name in ("klined_kafka_produced_total", "klined_kafka_delivered_total",
                 "klined_window_commits_total", "klined_window_commit_seconds_count",
                 "klined_event_to_commit_seconds_count", "klined_ws_connects_total"):
        assert sample(m2, name) > 0, name
    # (A broker still loading may fail a few deliveries; REST heals them.)
    assert (sample(m2, "klined_kafka_delivered_total") + sample(m2, "klined_kafka_failed_total")
            <= sample(m2, "klined_kafka_produced_total"))
    assert sample(m2, "klined_consumer_position", partition="0") > 0
    for s in SYMS:
        assert sample(m2, "klined_newest_event_timestamp_seconds", symbol=s) > 1678449600
    assert 0 < ws_rows <= sample(m2, "klined_klines_stored_total", source="ws")
    print(f"/metrics: {len(m2)} bytes")
    code, err = stop(proc)
    assert code == 0, err


def test_metrics_agree_with_the_store(replay, klined):
    """REST only, fresh store: the stored-klines counter equals the rows once the
    backfill is done on a frozen clock, and both move as the exchange's clock does."""
    srv = replay(start="2023-03-05T06:00:30Z", speed=0)
    port = free_port()
    k = klined(srv.rest_url, "--kafka-brokers", "off", "--history-start", "2023-03-01",
               *http_args(port))
    proc = k.start()
    wait_for(lambda: up(port), timeout=60, step=0.2)
    wait_for(lambda: "backfill: done" in read_log(proc), timeout=120, step=0.5)
    time.sleep(2.5)  # a follow round on the frozen clock, which fetches nothing
    m = metrics(port)
    promtool(m)
    rows = query(k.db, "SELECT count(*) FROM kline_1m")[0][0]
    assert rows == 2 * (4 * 1440 + 360)
    assert sample(m, "klined_klines_stored_total", source="rest") == rows
    assert sample(m, "klined_klines_stored_total", source="ws") == 0
    assert sample(m, "klined_rest_requests_total", status="200") >= 2 + 2 * 7
    assert sample(m, "klined_rest_used_weight") > 0
    assert sample(m, "klined_backfill_running") == 0
    st, status = get_json(port, "/api/status")
    assert st == 200 and status["configured_symbols"] == list(SYMS)
    assert [s["klines"] for s in status["symbols"]] == [rows // 2] * 2
    cli = json.loads(k.cmd("status", "--json").stdout)
    assert [s["klines"] for s in cli["symbols"]] == [s["klines"] for s in status["symbols"]]
    srv.set_clock(speed=600)
    wait_for(lambda: query(k.db, "SELECT count(*) FROM kline_1m")[0][0] > rows + 20,
             timeout=60, step=0.5)
    srv.set_clock(speed=0)
    time.sleep(3)
    m2 = metrics(port)
    rows2 = query(k.db, "SELECT count(*) FROM kline_1m")[0][0]
    assert sample(m2, "klined_klines_stored_total", source="rest") >= rows2 > rows
    code, err = stop(proc)
    assert code == 0, err


def raw_request(port, data, timeout=10):
    """Send bytes, read until the server closes or goes quiet; (reply, closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            return b"", True
        reply = b""
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                return reply, True
            except socket.timeout:
                return reply, False
            if not d:
                return reply, True
            reply += d


def test_api_validates_and_refuses(replay, klined):
    srv = replay(start="2023-03-05T06:00:30Z", speed=0)
    port = free_port()
    k = klined(srv.rest_url, "--kafka-brokers", "off", "--history-start", "2023-02-20",
               *http_args(port))
    proc = k.start()
    wait_for(lambda: up(port), timeout=60, step=0.2)
    wait_for(lambda: "backfill: done" in read_log(proc), timeout=120, step=0.5)
    # Loopback only, as configured.
    assert listening(proc.pid) == [("127.0.0.1", port)]
    # The rows of `daily`, exactly, newest N.
    st, d = get_json(port, "/api/daily?symbol=ETHUSDT&days=5")
    assert st == 200 and d["symbol"] == "ETHUSDT"
    want = query(k.db, "SELECT day, open, high, low, close, volume, trades, source, ma7, ma30 "
                       "FROM daily WHERE symbol = 'ETHUSDT' ORDER BY day DESC LIMIT 5")[::-1]
    got = [(r["day"], r["open"], r["high"], r["low"], r["close"], r["volume"], r["trades"],
            r["source"], r["ma7"], r["ma30"]) for r in d["days"]]
    assert len(got) == 5
    for g, w in zip(got, want):
        assert g[0] == w[0] and g[6:8] == w[6:8]
        for a, b in zip(g[1:6] + g[8:], w[1:6] + w[8:]):
            assert (a is None and b is None) or abs(a - b) <= 1e-9 * abs(b), (g, w)
    st, d = get_json(port, "/api/daily?symbol=btcusdt")
    assert st == 200 and len(d["days"]) == query(
        k.db, "SELECT count(*) FROM daily WHERE symbol = 'BTCUSDT'")[0][0]
    before = query(k.db, "SELECT count(*) FROM kline")[0][0]
    for q in ("symbol=XRPUSDT", "symbol=BTCUSDT&days=0", "symbol=BTCUSDT&days=3661",
              "symbol=BTCUSDT&days=-1", "symbol=BTCUSDT%27%20OR%201%3D1--",
              "symbol=BTCUSDT'%20OR%20'1'='1", "symbol=BTCUSDT;DROP%20TABLE%20kline",
              "symbol=BTCUSDT&limit=1", "days=5", "", "symbol=BTCUSDT&symbol=ETHUSDT",
              "symbol=" + "A" * 600):
        st, d = get_json(port, "/api/daily?" + q)
        assert st == 400 and d["error"], (q, st, d)
    assert query(k.db, "SELECT count(*) FROM kline")[0][0] == before
    # Unknown paths, other methods, traversal attempts: refused, JSON.
    for path in ("/nope", "/api", "/api/daily/x", "/../../etc/passwd", "/app.js/../../../etc/passwd",
                 "/%2e%2e/%2e%2e/etc/passwd", "/index.html%00.js"):
        try:
            st, _, body = get(port, path)
        except ConnectionError:  # lws drops some outright (a NUL byte)
            continue
        assert st in (400, 403, 404), (path, st)
        assert b"root:" not in body
    reply, _ = raw_request(port, b"POST /api/status HTTP/1.1\r\nHost: x\r\n"
                                 b"Content-Length: 5\r\nConnection: close\r\n\r\nhello")
    assert reply.startswith(b"HTTP/1.1 405"), reply[:100]
    # Oversized request line and headers: the connection is dropped, nothing served.
    for data in (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                 b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 200000 + b"\r\n\r\n",
                 b"GET / HTTP/1.1\r\n" + b"X-H: v\r\n" * 5000 + b"\r\n"):
        reply, closed = raw_request(port, data)
        assert closed and not reply.startswith(b"HTTP/1.1 200"), reply[:100]
    # Garbage is answered or dropped, never crashes.
    raw_request(port, b"\x00\xff" * 1000 + b"\r\n\r\n")
    # Still serving, everything.
    assert get(port, "/")[0] == 200
    st, hdr, body = get(port, "/lightweight-charts.js")
    assert st == 200 and len(body) > 100_000
    assert "default-src 'none'" in hdr["content-security-policy"]
    assert proc.poll() is None
    code, err = stop(proc)
    assert code == 0, err


def test_listen_off_and_default_loopback(replay, klined, tmp_path):
    srv = replay(start="2023-03-05T06:00:30Z", speed=0)
    k = klined(srv.rest_url, "--kafka-brokers", "off", "--history-start", "2023-03-04",
               "--http-listen", "off")
    proc = k.start()
    wait_for(lambda: "backfill: done" in read_log(proc), timeout=60, step=0.2)
    assert listening(proc.pid) == []
    code, err = stop(proc)
    assert code == 0 and "http" not in err.split("run: Terminated")[0].replace("http://", ""), err
    # The default: 127.0.0.1:8642, never beyond loopback (another daemon on this
    # machine may hold the port: then klined says so and carries on).
    k = klined(srv.rest_url, "--kafka-brokers", "off", "--history-start", "2023-03-04",
               db=tmp_path / "default.db")
    proc = k.start()
    wait_for(lambda: "backfill: done" in read_log(proc), timeout=60, step=0.2)
    addrs = listening(proc.pid)
    assert addrs in ([("127.0.0.1", 8642)], []), addrs
    if not addrs:
        assert "cannot listen on 127.0.0.1:8642" in read_log(proc)
    code, err = stop(proc)
    assert code == 0, err
    # Beyond loopback only when configured so.
    port = free_port()
    k = klined(srv.rest_url, "--kafka-brokers", "off", "--history-start", "2023-03-04",
               "--http-listen", f"0.0.0.0:{port}", db=tmp_path / "any.db")
    proc = k.start()
    wait_for(lambda: "backfill: done" in read_log(proc), timeout=60, step=0.2)
    assert listening(proc.pid) == [("0.0.0.0", port)]
    assert up(port)
    code, err = stop(proc)
    assert code == 0, err


def test_meson_install_ships_the_page(tmp_path):
    dest = tmp_path / "dest"
    p = subprocess.run(["meson", "install", "-C", str(ROOT / "build"), "--destdir", str(dest),
                        "--quiet"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    web = [d for d in dest.rglob("klined/web") if d.is_dir()]
    assert len(web) == 1, web
    names = {f.name for f in web[0].iterdir()}
    assert {"index.html", "app.js", "app.css", "lightweight-charts.standalone.production.js",
            "LICENSE.lightweight-charts"} <= names, names
    # The binary's default [http] assets is that directory.
    h = subprocess.run([str(ROOT / "build" / "daemon" / "klined"), "--help"],
                       capture_output=True, text=True)
    assert "--http-assets" in h.stdout
    assert str(web[0].relative_to(dest)) in h.stdout.replace("\n", " "), h.stdout


def test_metrics_count_rest_statuses_and_retry_after(replay, klined):
    """Injected 429 (Retry-After 2 s) and 503s show in /metrics exactly."""
    srv = replay(start="2023-03-05T06:00:30Z", speed=0)
    srv.add_faults([
        {"kind": "status", "status": 429, "retry_after": 2, "after": 3, "count": 1},
        {"kind": "status", "status": 503, "after": 6, "count": 3},
    ])
    port = free_port()
    k = klined(srv.rest_url, "--kafka-brokers", "off", "--history-start", "2023-02-01",
               "--rest-concurrency", "1", *http_args(port))
    proc = k.start()
    wait_for(lambda: up(port), timeout=60, step=0.2)
    wait_for(lambda: "backfill: done" in read_log(proc), timeout=120, step=0.5)
    assert all(f["fired"] == f["count"] for f in srv.stats()["faults"])
    before = sum(srv.stats()["requests"].values())
    m = metrics(port)
    after = sum(srv.stats()["requests"].values())
    promtool(m)
    assert sample(m, "klined_rest_requests_total", status="429") == 1
    assert sample(m, "klined_rest_requests_total", status="503") == 3
    assert sample(m, "klined_rest_retry_after_waits_total") == 1
    assert sample(m, "klined_rest_retry_after_seconds_total") == 2
    ok = sample(m, "klined_rest_requests_total", status="200")
    assert before - 4 <= ok <= after - 4, (ok, before, after)
    code, err = stop(proc)
    assert code == 0, err


def test_port_taken_leaves_the_daemon_running(replay, klined, tmp_path):
    """A second daemon on the same address says so and does its real work anyway."""
    srv = replay(start="2023-03-05T06:00:30Z", speed=0)
    port = free_port()
    first = klined(srv.rest_url, "--kafka-brokers", "off", "--history-start", "2023-03-04",
                   *http_args(port)).start()
    wait_for(lambda: up(port), timeout=60, step=0.2)
    k = klined(srv.rest_url, "--kafka-brokers", "off", "--history-start", "2023-03-04",
               *http_args(port), db=tmp_path / "second.db")
    proc = k.start()
    wait_for(lambda: "backfill: done" in read_log(proc), timeout=60, step=0.2)
    time.sleep(2.5)  # a follow round: the loop must not trip over a dead listener
    assert proc.poll() is None
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in read_log(proc)
    assert listening(proc.pid) == []
    assert query(k.db, "SELECT count(*) FROM kline_1m")[0][0] == 2 * (1440 + 360)
    code, err = stop(proc)
    assert code == 0, err
    assert up(port)
    code, err = stop(first)
    assert code == 0, err
