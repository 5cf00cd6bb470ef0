"""The page in a real browser (playwright-core driving Debian's chromium:
tests/web/chart.mjs) against the real daemon: each interval draws as many
candles as the API serves, the crosshair readout shows the served values of
the hovered candle, symbol and interval round-trip through the URL (back,
forward, reload), the themes, range presets, the forecast dashed ahead of
the last day, an API failure said with a retry, a phone layout that leaves
the chart most of the screen; the failure states appear when the test stops
Kafka or the exchange; a page opened during the backfill fills in without a
reload. Screenshots go to tests/web/artifacts (CI) and docs/ (README)."""
import json
import shutil
import subprocess
import threading
import time

import pytest

from conftest import END, ROOT, query, read_log, stop, wait_for
from test_http import ARTIFACTS, BUILD_WEB, free_port, get_json, http_args, up

SCRIPT = ROOT / "tests" / "web" / "chart.mjs"
DATA = ROOT / "tests" / "data" / "binance"
SYMS = ("BTCUSDT", "ETHUSDT")


def node(*args, timeout=300):
    if not (ROOT / "tests" / "web" / "node_modules" / "playwright-core").exists():
        pytest.fail("playwright-core is missing: npm ci --prefix tests/web")
    p = subprocess.run(["node", str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, p.stderr[-4000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


class Watch:
    """chart.mjs watch in the background: the newest sample, and waiting on one."""

    def __init__(self, url, seconds=300):
        self.p = subprocess.Popen(["node", str(SCRIPT), "watch", url, str(seconds)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.samples = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            try:
                self.samples.append(json.loads(line))
            except ValueError:
                pass

    def until(self, pred, timeout=120):
        def ok():
            if self.p.poll() is not None and not self.samples:
                raise AssertionError(self.p.stderr.read()[-4000:])
            return self.samples and pred(self.samples[-1]) and self.samples[-1]
        return wait_for(ok, timeout=timeout, step=0.25)

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()


def alert(sample, kind):
    return next((a["text"] for a in sample["alerts"] if a["kind"] == kind), None)


def imported(klined):
    """A store of the recorded minutes (Jan-Mar 2023), imported by the real binary."""
    k = klined("http://127.0.0.1:9", "--symbols", ",".join(SYMS))
    r = k.cmd("import", *sorted(str(f) for f in DATA.glob("*-1m-2023-0*.csv.gz")))
    assert r.returncode == 0, r.stderr
    return k


def test_page_intervals_readout_url_themes_phone(replay, klined):
    assert (BUILD_WEB / "lightweight-charts.standalone.production.js").exists(), BUILD_WEB
    k = imported(klined)
    # A forecast as examples/forecast.py writes it (test_forecast.py runs the real one).
    for s in SYMS:
        last = query(k.db, "SELECT close FROM daily WHERE symbol = ? AND day = '2023-03-31'",
                     s)[0][0]
        for d in range(1, 8):
            y = last * (1 + d / 200)
            query(k.db, "INSERT INTO forecast VALUES (?, ?, ?, ?, ?, 1)",
                  s, f"2023-04-{d:02d}", y, y * 0.97, y * 1.03)
    srv = replay(start=END, speed=0)
    port = free_port()
    k.rest_url = srv.rest_url
    proc = k.start("--kafka-brokers", "off", *http_args(port))
    wait_for(lambda: up(port), timeout=60, step=0.2)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    page = node("views", f"http://127.0.0.1:{port}/", ARTIFACTS)
    print(f"browser run {time.monotonic() - t0:.1f} s")
    assert not page["errors"], page["errors"]
    assert page["first"]["search"] == "?symbol=BTCUSDT&interval=1d"
    # Every interval: the API's candles, and the hovered one's served values.
    days = get_json(port, "/api/daily?symbol=BTCUSDT&days=3660")[1]["days"]
    for i, got in page["intervals"].items():
        if i == "1d":
            want = [dict(r, time=r["day"]) for r in days]
        else:
            st, j = get_json(port, f"/api/klines?symbol=BTCUSDT&interval={i}&limit=1000")
            want = j["klines"]
            for c in want:
                c["time"] = str(c["open_time"] // 1000)
        assert got["candles"] == got["volumes"] == len(want), (i, got["candles"], len(want))
        h = got["hovered"]
        w = next(c for c in want if str(c["time"]) == h["time"])
        for f in ("open", "high", "low", "close", "volume"):
            assert float(h[f]) == w[f], (i, f, h, w)
        if i == "1d":
            assert float(h["ma7"]) == w["ma7"] and float(h["ma30"]) == w["ma30"], (h, w)
            assert "MA30" in h["text"]
            assert got["ma7"] == len(want) - 6
    # 2023-01-01 is a Sunday: its week began on Monday 2022-12-26.
    assert page["intervals"]["1w"]["first"] == 1672012800
    assert page["intervals"]["1d"]["candles"] == len(days) >= 90
    # The forecast, dashed from the last candle on.
    assert page["forecast"][0] == page["last_day"] and page["forecast"][-1] == "2023-04-07"
    # Presets: a month of days, three, then everything.
    assert 29 <= page["preset_1M"] <= 32 and 89 <= page["preset_3M"] <= 92
    assert page["preset_All"] >= len(days) - 1
    # URL: symbol and interval, back and forward, and a reload of a shared link.
    assert [(u["symbol"], u["interval"], u["search"]) for u in page["url"]] == [
        ("ETHUSDT", "1d", "?symbol=ETHUSDT&interval=1d"),
        ("ETHUSDT", "1h", "?symbol=ETHUSDT&interval=1h"),
        ("ETHUSDT", "1d", "?symbol=ETHUSDT&interval=1d"),
        ("BTCUSDT", "1d", "?symbol=BTCUSDT&interval=1d"),
        ("ETHUSDT", "1d", "?symbol=ETHUSDT&interval=1d")]
    assert page["reloaded"]["symbol"] == "ETHUSDT" and page["reloaded"]["interval"] == "15m"
    assert page["reloaded"]["candles"] == 1000
    # The API failure: said, with a retry that brings the candles.
    assert "HTTP 503" in page["api_error"] and "retry" in page["api_error"]
    assert "api" not in page["api_after"].split()
    # REST only: said, and never a green badge.
    assert page["badge"] == "REST only" and "on" not in page["badge_class"].split()
    assert any("REST only, updated every 60 s" in a for a in page["alerts"]), page["alerts"]
    # Themes: the system's (dark, light) and the switch.
    assert page["theme"]["dark"][0] == "dark"
    assert page["theme"]["chosen_light"][0] == "light"
    assert page["theme"]["chosen_light"][1] != page["theme"]["dark"][1]
    assert page["theme"]["chosen_dark"] == "dark"
    assert page["theme"]["system_light"] == page["theme"]["chosen_light"]
    # 420 x 860: the chart has the width and most of the height, nothing scrolls sideways.
    box = page["phone_chart"]
    assert box["width"] >= 400 and box["height"] >= 0.6 * 860, box
    assert page["phone_scroll_width"] <= 420
    assert page["phone_hovered"]["time"].startswith("2023-")
    for shot in ("page.png", "page-phone.png"):
        assert (ARTIFACTS / shot).stat().st_size > 10_000
        shutil.copy(ARTIFACTS / shot, ROOT / "docs" / shot)
    code, err = stop(proc)
    assert code == 0, err


def test_page_says_kafka_then_exchange_down(replay, klined, kafka_factory, kafka_topic):
    """Live and green, the 1m chart moving with the stream; Kafka killed: 'Kafka
    unreachable', REST only, never green; the exchange stopped too: 'stream down' and
    'exchange unreachable'. No reload."""
    broker = kafka_factory()
    srv = replay(start="2023-03-10T12:00:30Z", speed=30)
    port = free_port()
    k = klined(srv.rest_url, "--ws-url", srv.ws_url, "--kafka-brokers", broker.bootstrap,
               "--kafka-topic", kafka_topic, "--history-start", "2023-03-09",
               "--rest-timeout", "2s", *http_args(port))
    proc = k.start()
    wait_for(lambda: up(port), timeout=60, step=0.2)
    wait_for(lambda: "backfill: done" in read_log(proc), timeout=120, step=0.5)
    w = Watch(f"http://127.0.0.1:{port}/?symbol=BTCUSDT&interval=1m")
    try:
        s = w.until(lambda s: s["badge"] == "live", timeout=120)
        assert "on" in s["badge_class"].split() and not s["alerts"], s
        # The 1m chart moves with the stream: new minutes appear without a reload.
        w.until(lambda x: x["last"] is not None and x["last"] >= s["last"] + 180, timeout=60)
        t0 = time.monotonic()
        broker.kill()
        s = w.until(lambda s: s["badge"] == "Kafka unreachable", timeout=90)
        print(f"Kafka unreachable shown {time.monotonic() - t0:.1f} s after the kill")
        assert "REST only, updated every 60 s" in alert(s, "stream"), s
        assert "bad" in s["badge_class"].split()
        n = len(w.samples)
        t0 = time.monotonic()
        srv.stop()
        s = w.until(lambda s: s["badge"] == "stream down" and alert(s, "exchange"), timeout=120)
        print(f"stream down + exchange unreachable shown {time.monotonic() - t0:.1f} s after "
              "the exchange stopped")
        assert "Exchange unreachable" in alert(s, "exchange")
        assert "REST only, updated every 60 s" in alert(s, "stream")
        assert all(x["badge"] != "live" for x in w.samples[n:])
        assert all(x["same_document"] and x["errors"] == 0 for x in w.samples)
    finally:
        w.close()
    code, err = stop(proc, timeout=30)
    assert code == 0, err


def test_page_opened_during_backfill_fills_in(replay, klined):
    """Opened on an empty store while the backfill runs: the days appear as they are
    committed, the first day ends right, without a reload."""
    srv = replay(start=END, speed=0, latency_ms=400)  # a backfill of ~15 s
    port = free_port()
    k = klined(srv.rest_url, "--kafka-brokers", "off", "--history-start", "2023-01-01",
               "--rest-concurrency", "8", *http_args(port))
    proc = k.start()
    wait_for(lambda: up(port), timeout=60, step=0.2)
    w = Watch(f"http://127.0.0.1:{port}/")
    try:
        w.until(lambda s: True, timeout=60)
        # the page is open before the backfill is under way (planning takes a few
        # round trips of 400 ms): wait for it to run, and not to be over already
        wait_for(lambda: get_json(port, "/api/status")[1]["backfill"]["running"]
                 or "backfill: done" in read_log(proc), timeout=60, step=0.2)
        assert "backfill: done" not in read_log(proc), "backfill over already"
        wait_for(lambda: "backfill: done" in read_log(proc), timeout=240, step=0.5)
        rows = query(k.db, "SELECT count(*) FROM daily WHERE symbol = 'BTCUSDT'")[0][0]
        s = w.until(lambda s: s["candles"] == rows, timeout=60)
        assert s["first"] == "2023-01-01", s
        seen = sorted({x["candles"] for x in w.samples})
        print(f"candles seen while filling: {seen}")
        assert len([n for n in seen if 0 < n < rows]) >= 2, seen  # grew in steps
        assert all(x["same_document"] and x["errors"] == 0 for x in w.samples)
    finally:
        w.close()
    code, err = stop(proc)
    assert code == 0, err
