"""Tests of the replay exchange (tests/replay/binance_replay.py)."""

import asyncio
import gzip
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from decimal import Decimal

import aiohttp
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import binance_replay as br  # noqa: E402

DATA = br.DEFAULT_DATA_DIR
M = 60_000
T0 = 1672531200000                     # 2023-01-01T00:00:00Z, first recorded minute
DAY = 86_400_000
PERIOD = 90 * DAY
HALT_FROM = br.parse_time_ms("2023-03-24T12:40:00Z")
HALT_TO = br.parse_time_ms("2023-03-24T14:00:00Z")

pytestmark = pytest.mark.skipif(not os.path.isdir(DATA), reason=f"no recorded data in {DATA}")


# ---------------------------------------------------------------------------- helpers

def http_get(srv, path, params=None, raw_query=None, timeout=5.0):
    """-> (status, headers dict (lower-case names), body bytes)."""
    q = raw_query if raw_query is not None else urllib.parse.urlencode(params or {})
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    try:
        conn.request("GET", path + ("?" + q if q else ""))
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        conn.close()


def http_json(srv, method, path, obj=None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        body = json.dumps(obj).encode() if obj is not None else None
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        conn.close()


def klines(srv, **params):
    params.setdefault("symbol", "BTCUSDT")
    params.setdefault("interval", "1m")
    st, hd, body = http_get(srv, "/api/v3/klines", params)
    assert st == 200, (st, body)
    return json.loads(body, parse_float=str)  # decimals are strings anyway


def err(srv, path, params=None, raw_query=None):
    st, hd, body = http_get(srv, path, params, raw_query)
    return st, json.loads(body)


def recorded_lines(symbol, month, n):
    with gzip.open(os.path.join(DATA, f"{symbol}-1m-2023-{month:02d}.csv.gz"), "rt") as fh:
        return [next(fh).rstrip("\n") for _ in range(n)]


def as_json_row(csv_line):
    f = csv_line.split(",")
    return '[%s,"%s","%s","%s","%s","%s",%s,"%s",%s,"%s","%s","%s"]' % tuple(f)


# ---------------------------------------------------------------------------- fixtures

START = br.parse_time_ms("2023-02-01T00:00:30Z")


@pytest.fixture(scope="module")
def srv():
    s = br.ReplayServer(data_dir=DATA, start=START, speed=0).start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def _clean(request):
    yield
    if "srv" in request.fixturenames:
        s = request.getfixturevalue("srv")
        s.clear_faults()
        s.set_clock(now_ms=START, speed=0)
        s.reset_limits()
        s.reset_stats()


# ---------------------------------------------------------------------------- clock

def test_time_follows_virtual_clock(srv):
    st, hd, body = http_get(srv, "/api/v3/time")
    assert st == 200 and json.loads(body) == {"serverTime": START}
    assert hd["content-type"] == "application/json;charset=UTF-8"
    assert http_get(srv, "/api/v3/ping")[2] == b"{}"

    st, c = http_json(srv, "GET", "/_replay/clock")
    assert c["now_ms"] == START and c["speed"] == 0
    st, c = http_json(srv, "POST", "/_replay/clock", {"advance_ms": 90_000})
    assert st == 200 and c["now_ms"] == START + 90_000
    assert json.loads(http_get(srv, "/api/v3/time")[2])["serverTime"] == START + 90_000
    st, c = http_json(srv, "POST", "/_replay/clock", {"now_ms": "2023-03-01T00:00:00Z"})
    assert c["now_ms"] == br.parse_time_ms("2023-03-01T00:00:00Z")

    # running clock: 1000 virtual seconds per wall second
    http_json(srv, "POST", "/_replay/clock", {"now_ms": START, "speed": 1000})
    time.sleep(0.2)
    t = json.loads(http_get(srv, "/api/v3/time")[2])["serverTime"]
    assert START + 150_000 <= t <= START + 2_000_000
    http_json(srv, "POST", "/_replay/clock", {"speed": 0})
    t1 = srv.now_ms()
    time.sleep(0.05)
    assert srv.now_ms() == t1


def test_open_minute_is_partial_and_monotone(srv):
    rec = json.loads(as_json_row(recorded_lines("BTCUSDT", 2, 1)[0]))
    ot = rec[0]
    prev = None
    for off in (0, 1, 15_000, 30_000, 59_999):
        srv.set_clock(now_ms=ot + off)
        rows = klines(srv, limit=2)
        last = rows[-1]
        assert last[0] == ot and last[6] == ot + 59999
        assert rows[0][0] == ot - M          # previous minute closed, recorded values
        o, h, l, c = (float(x) for x in last[1:5])
        assert last[1] == rec[1] and l <= min(o, c) and h >= max(o, c)
        if off == 0:
            assert last[5] == "0.000" and last[8] == 0
        if prev is not None:
            assert float(last[2]) >= float(prev[2]) and float(last[3]) <= float(prev[3])
            assert float(last[5]) >= float(prev[5]) and last[8] >= prev[8]
        prev = last
    srv.set_clock(now_ms=ot + 60_000)  # closed: exact recorded strings
    assert klines(srv, limit=2)[0] == rec
    # nothing after virtual now is served
    assert klines(srv, startTime=ot + 2 * M) == []


# ---------------------------------------------------------------------------- klines

def test_exact_strings_first_rows(srv):
    lines = recorded_lines("BTCUSDT", 1, 5)
    st, hd, body = http_get(srv, "/api/v3/klines",
                            {"symbol": "BTCUSDT", "interval": "1m", "startTime": T0, "limit": 5})
    assert st == 200
    assert body.decode() == "[" + ",".join(as_json_row(x) for x in lines) + "]"
    assert body.startswith(b'[[1672531200000,"16537.50","16538.00","16534.30","16538.00",'
                           b'"170.576",1672531259999,"2820697.45580",946,"103.782",'
                           b'"1716164.80590","0"]')
    eth = recorded_lines("ETHUSDT", 3, 1)[0]
    srv.set_clock(now_ms="2023-04-01T00:00:00Z")
    st, hd, body = http_get(srv, "/api/v3/klines", {"symbol": "ETHUSDT", "interval": "1m",
                                                    "startTime": int(eth.split(",")[0]), "limit": 1})
    assert body.decode() == "[" + as_json_row(eth) + "]"


def test_klines_paging_semantics(srv):
    now = START  # 2023-02-01T00:00:30Z: minute 00:00 is open
    open_min = now - 30_000
    # startTime + endTime: inclusive on open_time, ascending
    rows = klines(srv, startTime=T0, endTime=T0 + 9 * M)
    assert [r[0] for r in rows] == [T0 + i * M for i in range(10)]
    # endTime mid-minute: open_time <= endTime
    assert len(klines(srv, startTime=T0, endTime=T0 + 9 * M + 1)) == 10
    # startTime mid-minute: the first open_time >= startTime
    assert klines(srv, startTime=T0 + 1, limit=1)[0][0] == T0 + M
    # only startTime: default limit 500
    rows = klines(srv, startTime=T0)
    assert len(rows) == 500 and rows[-1][0] == T0 + 499 * M
    # limit 1000 max; consecutive pages are contiguous
    p1 = klines(srv, startTime=T0, limit=1000)
    p2 = klines(srv, startTime=p1[-1][0] + 1, limit=1000)
    ots = [r[0] for r in p1 + p2]
    assert ots == [T0 + i * M for i in range(2000)]
    # only endTime: the last `limit` with open_time <= endTime
    e = T0 + 5000 * M + 123
    rows = klines(srv, endTime=e, limit=7)
    assert [r[0] for r in rows] == [T0 + (4994 + i) * M for i in range(7)]
    assert len(klines(srv, endTime=e)) == 500
    # neither: the most recent `limit`, ending with the open minute
    rows = klines(srv, limit=3)
    assert [r[0] for r in rows] == [open_min - 2 * M, open_min - M, open_min]
    # the window is clipped at virtual now
    rows = klines(srv, startTime=open_min - 2 * M, endTime=open_min + 10 * M)
    assert [r[0] for r in rows] == [open_min - 2 * M, open_min - M, open_min]
    # before the data / empty windows
    assert klines(srv, endTime=T0 - 1) == []
    assert klines(srv, startTime=T0 + 10 * M, endTime=T0) == []
    # limit is honoured with startTime+endTime
    assert len(klines(srv, startTime=T0, endTime=T0 + 2000 * M, limit=3)) == 3


def test_errors(srv):
    st, e = err(srv, "/api/v3/klines", {"symbol": "NOPEUSDT", "interval": "1m"})
    assert st == 400 and e == {"code": -1121, "msg": "Invalid symbol."}
    st, e = err(srv, "/api/v3/klines", {"interval": "1m"})
    assert st == 400 and e["code"] == -1102 and "'symbol'" in e["msg"]
    st, e = err(srv, "/api/v3/klines", {"symbol": "BTCUSDT"})
    assert st == 400 and e["code"] == -1102 and "'interval'" in e["msg"]
    st, e = err(srv, "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "7m"})
    assert st == 400 and e == {"code": -1120, "msg": "Invalid interval."}
    st, e = err(srv, "/api/v3/klines", {"symbol": "btcusdt", "interval": "1m"})
    assert st == 400 and e["code"] == -1100
    st, e = err(srv, "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "startTime": "abc"})
    assert st == 400 and e["code"] == -1100 and "startTime" in e["msg"]
    st, e = err(srv, "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 1001})
    assert st == 400 and e["code"] == -1130
    st, e = err(srv, "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 0})
    assert st == 400 and e["code"] == -1130
    st, e = err(srv, "/api/v3/klines", raw_query="symbol=BTCUSDT&interval=1m&limit=5&limit=6")
    assert st == 400 and e["code"] == -1101
    st, e = err(srv, "/api/v3/exchangeInfo", {"symbol": "NOPEUSDT"})
    assert st == 400 and e == {"code": -1121, "msg": "Invalid symbol."}


def test_exchange_info(srv):
    st, hd, body = http_get(srv, "/api/v3/exchangeInfo")
    info = json.loads(body)
    assert st == 200 and info["timezone"] == "UTC" and info["serverTime"] == START
    assert info["exchangeFilters"] == []
    rl = {(r["rateLimitType"], r["interval"]): r for r in info["rateLimits"]}
    assert rl[("REQUEST_WEIGHT", "MINUTE")]["limit"] == 6000
    assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    s0 = info["symbols"][0]
    assert (s0["status"], s0["baseAsset"], s0["quoteAsset"]) == ("TRADING", "BTC", "USDT")
    assert s0["baseAssetPrecision"] == 8 and s0["quotePrecision"] == 8 and s0["filters"]
    one = json.loads(http_get(srv, "/api/v3/exchangeInfo", {"symbol": "ETHUSDT"})[2])
    assert [s["symbol"] for s in one["symbols"]] == ["ETHUSDT"]
    for q in ('symbols=["ETHUSDT","BTCUSDT"]',
              "symbols=" + urllib.parse.quote('["ETHUSDT","BTCUSDT"]')):
        st, hd, body = http_get(srv, "/api/v3/exchangeInfo", raw_query=q)
        assert st == 200, body
        assert [s["symbol"] for s in json.loads(body)["symbols"]] == ["ETHUSDT", "BTCUSDT"]
    st, e = err(srv, "/api/v3/exchangeInfo", raw_query='symbols=["ETHUSDT","NOPE"]')
    assert st == 400 and e["code"] == -1121


# ---------------------------------------------------------------------------- halts, tiling

def test_halt_and_missing():
    with br.ReplayServer(data_dir=DATA, start="2023-04-01T00:00:00Z", speed=0,
                         halts=["2023-03-24T12:40:00Z/2023-03-24T14:00:00Z"]) as s:
        for sym in ("BTCUSDT", "ETHUSDT"):
            rows = klines(s, symbol=sym, startTime=HALT_FROM - 10 * M, limit=20)
            ots = [r[0] for r in rows]
            assert ots == [HALT_FROM - (10 - i) * M for i in range(10)] + \
                          [HALT_TO + i * M for i in range(10)]
            assert rows[9][6] == HALT_FROM - M + 41646        # shortened close_time
            assert rows[8][6] == rows[8][0] + 59999
            # only endTime, across the halt
            rows = klines(s, symbol=sym, endTime=HALT_TO + M, limit=4)
            assert [r[0] for r in rows] == [HALT_FROM - 2 * M, HALT_FROM - M, HALT_TO, HALT_TO + M]
            # inside the halt
            assert klines(s, symbol=sym, startTime=HALT_FROM, endTime=HALT_TO - 1) == []
        # a month of spot-like data has 80 fewer rows
        n, t = 0, br.parse_time_ms("2023-03-01T00:00:00Z")
        while True:
            rows = klines(s, startTime=t, endTime=br.parse_time_ms("2023-04-01T00:00:00Z") - 1,
                          limit=1000)
            if not rows:
                break
            n += len(rows)
            t = rows[-1][0] + 1
        assert n == 44640 - 80

        # the `missing` fault: per symbol, counted in stats
        ids = s.add_faults({"kind": "missing", "symbol": "ETHUSDT",
                            "from_ms": T0 + 5 * M, "to_ms": T0 + 7 * M, "shorten": False})
        assert [r[0] for r in klines(s, symbol="ETHUSDT", startTime=T0, limit=7)] == \
               [T0 + i * M for i in (0, 1, 2, 3, 4, 7, 8)]
        assert klines(s, symbol="ETHUSDT", startTime=T0, limit=7)[4][6] == T0 + 4 * M + 59999
        assert len(klines(s, symbol="BTCUSDT", startTime=T0, endTime=T0 + 8 * M)) == 9
        fired = {f["id"]: f["fired"] for f in s.stats()["faults"]}
        assert fired[ids[0]] == 2


def test_tiling():
    with br.ReplayServer(data_dir=DATA, tile_until="2024-01-01", start="2024-01-01T00:00:00Z",
                         speed=0) as s:
        base = klines(s, startTime=T0, limit=1000)
        for k in (1, 3):
            tiled = klines(s, startTime=T0 + k * PERIOD, limit=1000)
            assert [r[0] - k * PERIOD for r in tiled] == [r[0] for r in base]
            assert [r[6] - k * PERIOD for r in tiled] == [r[6] for r in base]
            assert [r[1:6] + r[7:] for r in tiled] == [r[1:6] + r[7:] for r in base]
        # a page across a tile boundary is contiguous
        rows = klines(s, startTime=T0 + PERIOD - 3 * M, limit=6)
        assert [r[0] for r in rows] == [T0 + PERIOD + i * M for i in range(-3, 3)]
        assert rows[3][1:6] == base[0][1:6]
        # the last minute before tile-until, and nothing after
        end = br.parse_time_ms("2024-01-01T00:00:00Z")
        rows = klines(s, limit=2)
        assert [r[0] for r in rows] == [end - 2 * M, end - M]
        s.set_clock(now_ms=end + 10 * DAY)
        assert klines(s, startTime=end) == []


# ---------------------------------------------------------------------------- weights, limits

def test_weight_header():
    fake = [6_000_000.0 + 5]
    with br.ReplayServer(data_dir=DATA, start=START, speed=0, wall=lambda: fake[0]) as s:
        seen = []
        for path, params in (("/api/v3/ping", None), ("/api/v3/time", None),
                             ("/api/v3/exchangeInfo", None),
                             ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 1}),
                             ("/api/v3/klines", {"symbol": "NOPE", "interval": "1m"})):
            st, hd, body = http_get(s, path, params)
            seen.append(int(hd["x-mbx-used-weight-1m"]))
        # X-MBX-USED-WEIGHT-1M counts this request too; errors cost weight as well
        assert seen == [1, 2, 22, 24, 26]
        assert s.stats()["weight_used"] == 26
        fake[0] += 60  # the next wall-clock minute
        assert http_get(s, "/api/v3/ping")[1]["x-mbx-used-weight-1m"] == "1"


def test_429_then_418_violation():
    fake = [6_000_000.0]  # a minute boundary (100000 * 60)
    with br.ReplayServer(data_dir=DATA, start=START, speed=0, weight_limit=10,
                         wall=lambda: fake[0]) as s:
        fake[0] += 20.0
        p = {"symbol": "BTCUSDT", "interval": "1m", "limit": 1}
        for i in range(5):
            st, hd, _ = http_get(s, "/api/v3/klines", p)
            assert st == 200 and hd["x-mbx-used-weight-1m"] == str(2 * (i + 1))
        st, hd, body = http_get(s, "/api/v3/klines", p)
        assert st == 429 and hd["retry-after"] == "40" and json.loads(body)["code"] == -1003
        fake[0] += 1.5
        st, hd, body = http_get(s, "/api/v3/time")  # hammering while Retry-After is in force
        assert st == 418 and hd["retry-after"] == "39" and json.loads(body)["code"] == -1003
        st, hd, body = http_get(s, "/api/v3/ping")
        assert st == 418
        stt = s.stats()
        assert stt["violations"] == 2 and stt["rate_limited"] == 1
        assert stt["responses"] == {"200": 5, "429": 1, "418": 2}
        fake[0] += 40.0  # next window: budget and ban are reset
        st, hd, _ = http_get(s, "/api/v3/klines", p)
        assert st == 200 and hd["x-mbx-used-weight-1m"] == "2"
        st, info = http_json(s, "GET", "/_replay/limits")
        assert info["weight_limit"] == 10 and info["weight_used"] == 2


# ---------------------------------------------------------------------------- faults

def test_fault_status(srv):
    st, r = http_json(srv, "POST", "/_replay/faults",
                      {"rules": [{"kind": "status", "status": 503, "after": 1, "count": 2}]})
    assert st == 200
    p = {"symbol": "BTCUSDT", "interval": "1m", "limit": 1}
    got = [http_get(srv, "/api/v3/klines", p) for _ in range(4)]
    assert [g[0] for g in got] == [200, 503, 503, 200]
    assert got[1][1]["content-type"].startswith("text/html")
    assert http_get(srv, "/api/v3/time")[0] == 200  # default path filter: klines only
    st, body = http_json(srv, "GET", "/_replay/stats")
    assert body["faults"][0]["fired"] == 2 and body["faults"][0]["seen"] == 4
    assert body["responses"]["503"] == 2
    srv.reset_stats()  # resets counters, does not re-arm the rule
    assert http_get(srv, "/api/v3/klines", p)[0] == 200
    assert srv.stats()["faults"][0]["fired"] == 2


@pytest.mark.serial  # measures time: alone, after the parallel part
def test_latency_does_not_serialize():
    import concurrent.futures
    with br.ReplayServer(data_dir=DATA, start=START, speed=0, latency_ms=200) as s:
        t = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            sts = list(ex.map(lambda _: http_get(s, "/api/v3/ping")[0], range(4)))
        dt = time.monotonic() - t
        assert sts == [200] * 4 and 0.2 <= dt < 0.6


def test_fault_status_429_retry_after_ban():
    fake = [6_000_000.0]
    with br.ReplayServer(data_dir=DATA, start=START, speed=0, wall=lambda: fake[0]) as s:
        s.add_faults([{"kind": "status", "status": 429, "retry_after": 3, "path": "*"},
                      {"kind": "status", "status": 500, "symbol": "ETHUSDT", "count": -1}])
        st, hd, body = http_get(s, "/api/v3/ping")
        assert st == 429 and hd["retry-after"] == "3" and json.loads(body)["code"] == -1003
        fake[0] += 1.0
        st, hd, _ = http_get(s, "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"})
        assert st == 418 and hd["retry-after"] == "2"
        assert s.stats()["violations"] == 1
        fake[0] += 2.5
        assert http_get(s, "/api/v3/ping")[0] == 200
        for _ in range(3):  # count -1: forever, only for its symbol
            assert http_get(s, "/api/v3/klines", {"symbol": "ETHUSDT", "interval": "1m"})[0] == 500
        assert http_get(s, "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"})[0] == 200
        assert [f["fired"] for f in s.stats()["faults"]] == [1, 3]


@pytest.mark.serial  # measures time: alone, after the parallel part
def test_fault_slow(srv):
    srv.add_faults({"kind": "slow", "delay_ms": 400, "count": 1})
    p = {"symbol": "BTCUSDT", "interval": "1m", "limit": 1}
    with pytest.raises((socket.timeout, TimeoutError)):
        http_get(srv, "/api/v3/klines", p, timeout=0.15)
    t = time.monotonic()
    assert http_get(srv, "/api/v3/klines", p)[0] == 200
    assert time.monotonic() - t < 0.3


def test_fault_truncate(srv):
    srv.add_faults([{"kind": "truncate", "count": 1},
                    {"kind": "truncate", "mode": "short", "after": 1, "count": 1}])
    p = {"symbol": "BTCUSDT", "interval": "1m", "startTime": T0, "limit": 100}
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.request("GET", "/api/v3/klines?" + urllib.parse.urlencode(p))
    r = conn.getresponse()
    assert r.status == 200
    full_len = int(r.getheader("Content-Length"))
    with pytest.raises(http.client.IncompleteRead) as ei:
        r.read()
    assert 0 < len(ei.value.partial) < full_len
    conn.close()
    st, hd, body = http_get(srv, "/api/v3/klines", p)  # the "short" variant
    assert st == 200 and int(hd["content-length"]) == len(body)
    with pytest.raises(ValueError):
        json.loads(body)
    st, hd, body = http_get(srv, "/api/v3/klines", p)
    assert st == 200 and len(json.loads(body)) == 100 and int(hd["content-length"]) == full_len
    assert [f["fired"] for f in srv.stats()["faults"]] == [1, 1]


def test_fault_malformed(srv):
    srv.add_faults({"kind": "malformed", "count": 2})
    p = {"symbol": "BTCUSDT", "interval": "1m", "startTime": T0, "limit": 10}
    for _ in range(2):
        st, hd, body = http_get(srv, "/api/v3/klines", p)
        assert st == 200 and body.startswith(b"[[1672531200000,")
        with pytest.raises(ValueError):
            json.loads(body)
    assert len(klines(srv, **p)) == 10
    assert srv.stats()["faults"][0]["fired"] == 2


def test_fault_bad_kline(srv):
    p = dict(startTime=T0, limit=10)
    ref = klines(srv, **p)
    srv.add_faults([{"kind": "bad_kline", "field": "high", "value": "abc", "index": 0},
                    {"kind": "bad_kline", "field": "volume", "value": "-1.5", "after": 1},
                    {"kind": "bad_kline", "field": "open_time", "offset": -DAY, "index": -1,
                     "after": 2}])
    r1 = klines(srv, **p)
    assert r1[0][2] == "abc" and r1[1:] == ref[1:]
    r2 = klines(srv, **p)
    assert r2[5][5] == "-1.5" and r2[:5] == ref[:5] and r2[6:] == ref[6:]
    r3 = klines(srv, **p)
    assert r3[-1][0] == ref[-1][0] - DAY and r3[:-1] == ref[:-1]
    assert klines(srv, **p) == ref
    assert [f["fired"] for f in srv.stats()["faults"]] == [1, 1, 1]


def test_faults_api_clear_and_validation(srv):
    st, r = http_json(srv, "POST", "/_replay/faults", {"rules": [{"kind": "nope"}]})
    assert st == 400
    st, r = http_json(srv, "POST", "/_replay/faults", {"rules": [{"kind": "status", "status": 502}]})
    assert st == 200 and len(r["ids"]) == 1
    st, r = http_json(srv, "DELETE", "/_replay/faults")
    assert st == 200
    assert http_get(srv, "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"})[0] == 200
    st, s = http_json(srv, "GET", "/_replay/stats")
    assert s["requests"]["/api/v3/klines"] >= 1 and s["klines_served"] >= 1
    st, _ = http_json(srv, "POST", "/_replay/reset_stats")
    st, s = http_json(srv, "GET", "/_replay/stats")
    assert s["requests"] == {} and s["klines_served"] == 0 and s["faults"] == []


# ---------------------------------------------------------------------------- CLI

def test_cli_json_line_and_sigterm():
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "binance_replay.py"), "--port", "0",
                          "--start", "2023-01-01T00:10:30Z", "--speed", "0",
                          "--faults", json.dumps([{"kind": "status", "status": 502}]),
                          "--gen-symbols", "2", "--ws-ping-interval", "7", "--ws-pong-timeout", "9",
                          "--ws-max-age-ms", "3600000", "--ws-max-msgs-per-s", "4",
                          "--ws-faults", json.dumps([{"kind": "duplicate", "count": -1}])],
                         stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(p.stdout.readline())
        assert info["rest_url"] == "http://127.0.0.1:%d" % info["port"]
        assert info["ws_url"] == "ws://127.0.0.1:%d" % info["port"]

        class _S:
            port = info["port"]
        assert http_get(_S, "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"})[0] == 502
        rows = json.loads(http_get(_S, "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"})[2])
        assert len(rows) == 11 and rows[0][0] == T0
        info2 = json.loads(http_get(_S, "/api/v3/exchangeInfo")[2])
        assert [x["symbol"] for x in info2["symbols"]][2:] == ["S0001USDT", "S0002USDT"]
        st, cfg = http_json(_S, "GET", "/_replay/ws_config")
        assert (cfg["ping_interval_s"], cfg["pong_timeout_s"], cfg["max_age_ms"],
                cfg["max_msgs_per_s"]) == (7.0, 9.0, 3600000, 4)

        async def ws_roundtrip():
            async with aiohttp.ClientSession() as cs:
                async with cs.ws_connect(info["ws_url"] + "/ws/s0002usdt@kline_1m") as ws:
                    await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":1}')
                    return await ws_next(ws)
        assert asyncio.run(ws_roundtrip()) == {"result": ["s0002usdt@kline_1m"], "id": 1}
        assert http_json(_S, "GET", "/_replay/ws_faults")[1]["rules"][0]["kind"] == "duplicate"
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# ---------------------------------------------------------------------------- websocket

WS_T0 = br.parse_time_ms("2023-02-01T00:00:00Z")   # a minute boundary; Feb's first CSV row
K_KEYS = ["t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x", "q", "V", "Q", "B"]
WT = aiohttp.WSMsgType


def feb_rows(symbol, n):
    """The first n recorded rows of February as 12-string lists."""
    return [ln.split(",") for ln in recorded_lines(symbol, 2, n)]


def k_equals_row(k, row):
    """A final kline event's k against a recorded CSV row: every field, exact strings."""
    return (k["t"] == int(row[0]) and k["T"] == int(row[6]) and
            [k["o"], k["h"], k["l"], k["c"], k["v"], k["q"], k["V"], k["Q"], k["B"]] ==
            [row[1], row[2], row[3], row[4], row[5], row[7], row[9], row[10], row[11]] and
            k["n"] == int(row[8]))


async def ws_next(ws, timeout=3.0):
    """The next text frame (JSON if it parses, else the raw text); control frames skipped."""
    while True:
        m = await ws.receive(timeout=timeout)
        if m.type == WT.TEXT:
            try:
                return json.loads(m.data)
            except ValueError:
                return m.data
        if m.type in (WT.PING, WT.PONG):
            continue
        return m


async def ws_quiet(ws, seconds=0.2):
    """True if no text frame arrives within `seconds`."""
    try:
        m = await ws.receive(timeout=seconds)
    except asyncio.TimeoutError:
        return True
    return m.type not in (WT.TEXT, WT.BINARY)


def eventually(pred, timeout=3.0):
    """Polls pred() (server-side bookkeeping finishes just after the client sees a close)."""
    t = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > t:
            return False
        time.sleep(0.02)
    return True


def check_event_shape(d, sym):
    assert list(d) == ["e", "E", "s", "k"] and d["e"] == "kline" and d["s"] == sym
    k = d["k"]
    assert list(k) == K_KEYS
    assert k["s"] == sym and k["i"] == "1m" and k["B"] == "0" and isinstance(k["x"], bool)
    assert k["T"] == k["t"] + 59999 and k["t"] % M == 0
    for f in ("E",):
        assert isinstance(d[f], int)
    for f in ("t", "T", "f", "L", "n"):
        assert isinstance(k[f], int) and not isinstance(k[f], bool)
    for f in ("o", "c", "h", "l", "v", "q", "V", "Q"):
        assert isinstance(k[f], str) and Decimal(k[f]) >= 0
    if k["n"] > 0:
        assert k["L"] - k["f"] + 1 == k["n"]
    else:
        assert k["f"] == k["L"] == -1


def check_running(inter, final):
    """Intermediate (x:false) events of one minute against its final event."""
    fk = final["k"]
    prev = None
    for d in inter:
        k = d["k"]
        assert k["t"] == fk["t"] and not k["x"] and k["o"] == fk["o"] and k["f"] in (fk["f"], -1)
        assert k["t"] < d["E"] <= k["T"] and d["E"] % 2000 == 0
        h, l, v, q = (Decimal(k[x]) for x in ("h", "l", "v", "q"))
        assert Decimal(fk["l"]) <= l <= min(Decimal(k["o"]), Decimal(k["c"]))
        assert max(Decimal(k["o"]), Decimal(k["c"])) <= h <= Decimal(fk["h"])
        assert v <= Decimal(fk["v"]) and q <= Decimal(fk["q"]) and k["n"] <= fk["n"]
        if prev is not None:
            pk = prev["k"]
            assert d["E"] > prev["E"]
            assert h >= Decimal(pk["h"]) and l <= Decimal(pk["l"])
            assert v >= Decimal(pk["v"]) and q >= Decimal(pk["q"]) and k["n"] >= pk["n"]
            assert Decimal(k["V"]) >= Decimal(pk["V"]) and Decimal(k["Q"]) >= Decimal(pk["Q"])
        prev = d
    assert final["E"] == fk["T"] + 1 and fk["x"] is True


def test_ws_combined_stream_running_and_exact_finals():
    # 600 virtual seconds per wall second: a minute every 0.1 s, an update every 3.3 ms
    with br.ReplayServer(data_dir=DATA, start=WS_T0 - 5000, speed=0) as s:
        async def run():
            async with aiohttp.ClientSession() as cs:
                async with cs.ws_connect(s.ws_url + "/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m") as ws:
                    s.set_clock(speed=600)
                    got = {"BTCUSDT": [], "ETHUSDT": []}
                    finals = {"BTCUSDT": 0, "ETHUSDT": 0}
                    while min(finals.values()) < 5:
                        m = await ws_next(ws)
                        assert isinstance(m, dict) and list(m) == ["stream", "data"], m
                        d = m["data"]
                        assert m["stream"] == d["s"].lower() + "@kline_1m"
                        got[d["s"]].append(d)
                        finals[d["s"]] += d["k"]["x"]
                    return got
        got = asyncio.run(run())
        for sym, evs in got.items():
            rows = {int(r[0]): r for r in feb_rows(sym, 10)}
            for d in evs:
                check_event_shape(d, sym)
            assert [d["E"] for d in evs] == sorted(d["E"] for d in evs)   # in order
            fin = [d for d in evs if d["k"]["x"]]
            # the minute open at the start (Jan 31 23:59), then consecutive February minutes,
            # each final exactly the recorded row
            assert [d["k"]["t"] for d in fin] == [WS_T0 + i * M for i in range(-1, len(fin) - 1)]
            fin = fin[1:]
            for d in fin:
                assert k_equals_row(d["k"], rows[d["k"]["t"]]), (d, rows[d["k"]["t"]])
            # trade ids continue from one minute to the next
            for a, b in zip(fin, fin[1:]):
                assert b["k"]["f"] == a["k"]["L"] + 1
            for d in fin[1:4]:   # fully observed minutes
                inter = [e for e in evs if e["k"]["t"] == d["k"]["t"] and not e["k"]["x"]]
                assert 5 <= len(inter) <= 29
                check_running(inter, d)
        st = s.ws_stats()
        assert st["connections_opened"] == 1 and st["finals_sent"]["BTCUSDT"] >= 4


def test_ws_stepped_clock_matches_rest_and_skips():
    with br.ReplayServer(data_dir=DATA, start=WS_T0, speed=0) as s:
        async def run():
            async with aiohttp.ClientSession() as cs:
                async with cs.ws_connect(s.ws_url + "/ws/btcusdt@kline_1m") as ws:
                    evs = []
                    for i in range(1, 31):   # one 2-second update per step, then the final
                        s.set_clock(advance_ms=2000)
                        d = await ws_next(ws)
                        evs.append(d)
                        check_event_shape(d, "BTCUSDT")   # raw payload, no wrapper
                        assert d["E"] == WS_T0 + 2000 * i and d["k"]["x"] == (i == 30)
                        # the running values are what REST serves at that virtual time
                        row = klines(s, limit=2)[-1 if i < 30 else 0]
                        k = d["k"]
                        assert [k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["q"], k["n"],
                                k["V"], k["Q"]] == [row[0], row[1], row[2], row[3], row[4], row[5],
                                                    row[7], row[8], row[9], row[10]]
                    check_running(evs[:29], evs[29])
                    assert k_equals_row(evs[29]["k"], feb_rows("BTCUSDT", 1)[0])
                    # a jump of 20 minutes with few burst events allowed: the 20 finals only
                    s.ws_config(burst_events=10)
                    s.set_clock(advance_ms=20 * M)
                    fin = [await ws_next(ws) for _ in range(20)]
                    assert [d["k"]["t"] for d in fin] == [WS_T0 + i * M for i in range(1, 21)]
                    assert all(d["k"]["x"] for d in fin) and await ws_quiet(ws, 0.15)
                    assert s.ws_stats()["updates_skipped"] > 0
                    # a jump into a minute sends its latest update only
                    s.set_clock(advance_ms=M + 7000)
                    d1, d2 = await ws_next(ws), await ws_next(ws)
                    assert d1["k"]["x"] and d1["k"]["t"] == WS_T0 + 21 * M
                    assert not d2["k"]["x"] and d2["E"] == WS_T0 + 22 * M + 6000
                    # the clock going back: nothing replayed, streaming resumes from there
                    s.set_clock(now_ms=WS_T0 + 5 * M)
                    assert await ws_quiet(ws, 0.15)
                    s.set_clock(advance_ms=2000)
                    d = await ws_next(ws)
                    assert d["E"] == WS_T0 + 5 * M + 2000 and d["k"]["t"] == WS_T0 + 5 * M
                    # halted minutes produce nothing; the bar before it closes early
                    s.add_halt(WS_T0 + 7 * M, WS_T0 + 9 * M)
                    s.set_clock(now_ms=WS_T0 + 6 * M)   # forward: time passes, minute 5 closes
                    d = await ws_next(ws)
                    assert d["k"]["x"] and d["k"]["t"] == WS_T0 + 5 * M
                    s.set_clock(advance_ms=4 * M)
                    fin = [await ws_next(ws) for _ in range(2)]
                    assert [(d["k"]["t"], d["k"]["T"], d["E"]) for d in fin] == [
                        (WS_T0 + 6 * M, WS_T0 + 6 * M + 41646, WS_T0 + 6 * M + 41647),
                        (WS_T0 + 9 * M, WS_T0 + 10 * M - 1, WS_T0 + 10 * M)]
                    assert await ws_quiet(ws, 0.1)
        asyncio.run(run())
        log = s.ws_log(last=3)
        assert len(log) == 3 and log[-1]["stream"] == "btcusdt@kline_1m" and log[-1]["x"]
        assert json.loads(log[-1]["text"])["E"] == WS_T0 + 10 * M


def test_ws_subscribe_list_unsubscribe_and_errors():
    with br.ReplayServer(data_dir=DATA, start=WS_T0, speed=0, ws_max_msgs_per_s=0) as s:
        async def run():
            async with aiohttp.ClientSession() as cs:
                async with cs.ws_connect(s.ws_url + "/ws") as ws:
                    await ws.send_str(json.dumps({"method": "SUBSCRIBE", "id": 1, "params": [
                        "btcusdt@kline_1m", "nopeusdt@kline_1m", "ethusdt@kline_5m"]}))
                    assert await ws_next(ws) == {"result": None, "id": 1}
                    await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":"ab2"}')
                    assert await ws_next(ws) == {"result": ["btcusdt@kline_1m", "nopeusdt@kline_1m",
                                                            "ethusdt@kline_5m"], "id": "ab2"}
                    s.set_clock(advance_ms=2000)   # only btcusdt has data at 1m
                    d = await ws_next(ws)
                    assert d["s"] == "BTCUSDT" and "stream" not in d and await ws_quiet(ws, 0.15)
                    await ws.send_str('{"method":"SET_PROPERTY","params":["combined",true],"id":3}')
                    assert await ws_next(ws) == {"result": None, "id": 3}
                    await ws.send_str('{"method":"GET_PROPERTY","params":["combined"],"id":4}')
                    assert await ws_next(ws) == {"result": True, "id": 4}
                    s.set_clock(advance_ms=2000)
                    d = await ws_next(ws)
                    assert d["stream"] == "btcusdt@kline_1m" and d["data"]["E"] == WS_T0 + 4000
                    await ws.send_str('{"method":"UNSUBSCRIBE","params":["btcusdt@kline_1m"],"id":5}')
                    assert await ws_next(ws) == {"result": None, "id": 5}
                    s.set_clock(advance_ms=2000)
                    assert await ws_quiet(ws, 0.2)
                    await ws.send_str("{not json")
                    assert (await ws_next(ws))["error"]["code"] == 3
                    await ws.send_str('{"method":"FOO","id":6}')
                    e = await ws_next(ws)
                    assert e["error"]["code"] == 2 and e["id"] == 6 and "FOO" in e["error"]["msg"]
                    await ws.send_str('{"method":"SUBSCRIBE","params":["BTCUSDT@kline_1m"],"id":7}')
                    assert (await ws_next(ws))["error"]["code"] == 2
                    await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":8}')
                    assert await ws_next(ws) == {"result": ["nopeusdt@kline_1m", "ethusdt@kline_5m"],
                                                 "id": 8}
                # an unknown symbol: the connection is accepted and stays silent
                async with cs.ws_connect(s.ws_url + "/ws/nopeusdt@kline_1m") as ws:
                    s.set_clock(advance_ms=M)
                    assert await ws_quiet(ws, 0.2) and not ws.closed
        asyncio.run(run())
        st, hd, body = http_get(s, "/ws/btcusdt@kline_1m")   # not an upgrade
        assert st == 400
        assert s.ws_stats()["requests"] == 9


def test_ws_ping_pong_timeout():
    # pongs count as incoming messages: a ping every 0.25 s stays under 5 per second
    with br.ReplayServer(data_dir=DATA, start=WS_T0, speed=0, ws_ping_interval=0.25,
                         ws_pong_timeout=0.6) as s:
        async def run():
            async with aiohttp.ClientSession() as cs:
                good = await cs.ws_connect(s.ws_url + "/ws/btcusdt@kline_1m")   # autoping: answers
                bad = await cs.ws_connect(s.ws_url + "/ws/btcusdt@kline_1m", autoping=False)

                async def drain_good():   # (each auto-answered ping restarts receive's timeout)
                    try:
                        await asyncio.wait_for(good.receive(), 1.3)
                    except asyncio.TimeoutError:
                        pass

                async def drain_bad():
                    t0 = time.monotonic()
                    pings = 0
                    while True:
                        m = await bad.receive(timeout=3)
                        if m.type == WT.PING:
                            pings += 1   # never answered
                            continue
                        return m, time.monotonic() - t0, pings
                _, (m, dt, pings) = await asyncio.gather(drain_good(), drain_bad())
                assert m.type == WT.CLOSE and m.data == 1008 and m.extra == "Pong timeout", m
                assert 0.6 <= dt <= 1.3 and pings >= 2
                assert not good.closed
                # a client ping is answered with a pong carrying its payload
                await bad.close()
                c = await cs.ws_connect(s.ws_url + "/ws", autoping=False)
                await c.ping(b"hello")
                m = await c.receive(timeout=2)
                while m.type == WT.PING:
                    await c.pong(m.data)
                    m = await c.receive(timeout=2)
                assert m.type == WT.PONG and m.data == b"hello"
                await c.close()
                await good.close()
        asyncio.run(run())
        assert eventually(lambda: s.ws_stats()["connections_current"] == 0)
        st = s.ws_stats()
        assert st["pong_timeouts"] == 1 and st["pings_sent"] >= 7 and st["pongs_received"] >= 4
        assert st["pings_received"] == 1 and st["close_reasons"]["pong_timeout"] == 1


def test_ws_incoming_message_rate_limit():
    with br.ReplayServer(data_dir=DATA, start=WS_T0, speed=0) as s:
        async def run():
            async with aiohttp.ClientSession() as cs:
                async with cs.ws_connect(s.ws_url + "/ws/btcusdt@kline_1m") as ws:
                    for i in range(5):   # 5 per second are fine
                        await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":%d}' % i)
                    for i in range(5):
                        assert (await ws_next(ws))["id"] == i
                    await asyncio.sleep(1.05)
                    for i in range(4):
                        await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":%d}' % i)
                    await ws.ping()   # pings count too: the 6th message in a second
                    await ws.pong()
                    for i in range(4):
                        assert (await ws_next(ws))["id"] == i
                    m = await ws_next(ws)
                    assert m.type == WT.CLOSE and m.data == 1008 and m.extra == "Too many requests"
        asyncio.run(run())
        assert eventually(lambda: s.ws_stats()["connections_closed"] == 1)
        stt = s.stats()
        assert stt["ws_rate_violations"] == 1 and stt["ws"]["rate_violations"] == 1
        assert stt["ws"]["client_messages"] == 11 and stt["ws"]["connections_current"] == 0
        assert stt["ws"]["close_reasons"] == {"rate_violation": 1}


def test_ws_repeated_rate_violations_ban_the_ip():
    # "IPs that are repeatedly disconnected may be banned": pongs alone are enough
    with br.ReplayServer(data_dir=DATA, start=WS_T0, speed=0) as s:
        s.ws_config(rate_ban_after=2, rate_ban_s=1.0)

        async def run():
            async with aiohttp.ClientSession() as cs:
                for _ in range(2):
                    async with cs.ws_connect(s.ws_url + "/ws/btcusdt@kline_1m") as ws:
                        for _ in range(6):
                            await ws.pong()
                        m = await ws_next(ws)
                        assert m.type == WT.CLOSE and m.data == 1008
                with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                    await cs.ws_connect(s.ws_url + "/ws/btcusdt@kline_1m")
                assert e.value.status == 418
                await asyncio.sleep(1.05)   # (wall seconds: the ban is the exchange's)
                async with cs.ws_connect(s.ws_url + "/ws/btcusdt@kline_1m") as ws:
                    assert await ws_quiet(ws, 0.1) and not ws.closed
        asyncio.run(run())
        st = s.ws_stats()
        assert st["rate_violations"] == 2 and st["rate_bans"] == 1 and st["banned_refused"] == 1
        assert st["connection_attempts"] == 4 and st["connections_opened"] == 3


def test_ws_subscribe_counters_stream_limit_and_request_size():
    with br.ReplayServer(data_dir=DATA, start=WS_T0, speed=0, ws_max_msgs_per_s=0) as s:
        def sub(method, rid, streams):
            return json.dumps({"method": method, "params": streams, "id": rid})

        async def run():
            async with aiohttp.ClientSession() as cs:
                url = s.ws_url + "/stream?streams=" + "/".join("u%d@kline_1m" % i for i in range(100))
                async with cs.ws_connect(url) as ws:
                    # 100 in the URL + 4 x 231: 1,024 streams, the most a connection carries
                    for k in range(4):
                        await ws.send_str(sub("SUBSCRIBE", k, ["s%d@kline_1m" % (231 * k + i)
                                                               for i in range(231)]))
                        assert await ws_next(ws) == {"result": None, "id": k}
                    await ws.send_str(sub("SUBSCRIBE", 9, ["btcusdt@kline_1m"]))
                    e = await ws_next(ws)
                    assert e["id"] == 9 and "too many streams (max 1024)" in e["error"]["msg"]
                    await ws.send_str(sub("UNSUBSCRIBE", 10, ["u0@kline_1m", "u1@kline_1m",
                                                              "nope@kline_1m"]))
                    assert await ws_next(ws) == {"result": None, "id": 10}
                    await ws.send_str(sub("SUBSCRIBE", 11, ["btcusdt@kline_1m"]))
                    assert await ws_next(ws) == {"result": None, "id": 11}
                    st = s.ws_stats()
                    assert len(st["connections"][0]["streams"]) == 1023
                    assert st["connections"][0]["requests"] == 7
                    # one message of 8,193 bytes: closed, as too big
                    big = sub("SUBSCRIBE", 12, ["x" * 90 + "@kline_1m"] * 1)
                    big = big.replace('"id"', " " * (8193 - len(big)) + '"id"')
                    await ws.send_str(big)
                    m = await ws_next(ws)
                    assert m.type == WT.CLOSE and m.data == 1009
        asyncio.run(run())
        st = s.ws_stats()
        assert (st["subscribe_requests"], st["unsubscribe_requests"]) == (5, 1)
        assert (st["streams_subscribed"], st["streams_unsubscribed"]) == (925, 2)
        assert st["request_errors"] == 1 and st["oversize_requests"] == 1
        assert st["requests"] == 8 and st["close_reasons"] == {"oversize_request": 1}


def test_ws_faults():
    with br.ReplayServer(data_dir=DATA, start=WS_T0, speed=0) as s:
        url = s.ws_url + "/ws/btcusdt@kline_1m"

        async def scenario(rules, steps, n_frames):
            """Adds the rules, connects, advances the clock by 2 s `steps` times and returns
            the next n_frames messages (text frames parsed) with their arrival times."""
            s.clear_ws_faults()
            ids = s.add_ws_faults(rules)
            async with aiohttp.ClientSession() as cs:
                async with cs.ws_connect(url) as ws:
                    t0 = time.monotonic()
                    for _ in range(steps):
                        s.set_clock(advance_ms=2000)
                        await asyncio.sleep(0.01)
                    out = []
                    for _ in range(n_frames):
                        m = await ws_next(ws)
                        out.append((m, time.monotonic() - t0))
            assert [r["fired"] for r in s.ws_faults() if r["id"] in ids] == [1] * len(ids)
            return [m for m, _ in out], [t for _, t in out]

        async def run():
            base = s.now_ms()
            # duplicate: the 2nd event twice
            (a, b, c), _ = await scenario([{"kind": "duplicate", "after": 1}], 2, 3)
            assert a["E"] == base + 2000 and b == c and b["E"] == base + 4000
            # reorder: two consecutive events of a symbol swapped
            (a, b), _ = await scenario([{"kind": "reorder", "symbol": "btcusdt"}], 2, 2)
            assert (a["E"], b["E"]) == (base + 8000, base + 6000)
            # future: an extra event 30 days ahead
            (a, b), _ = await scenario([{"kind": "future", "days": 30}], 1, 2)
            assert a["k"]["t"] - b["k"]["t"] == 30 * DAY and a["E"] - b["E"] == 30 * DAY
            assert {k: v for k, v in a["k"].items() if k not in "tT"} == \
                   {k: v for k, v in b["k"].items() if k not in "tT"}
            # past: the final of a minute 3 days back, then the real event
            (a, b), _ = await scenario([{"kind": "past", "days": 3}], 1, 2)
            assert a["k"]["t"] == b["k"]["t"] - 3 * DAY and a["k"]["x"] and a["E"] == b["E"]
            row = klines(s, startTime=a["k"]["t"], limit=1)[0]
            assert [a["k"][f] for f in ("o", "h", "l", "c", "v", "n")] == \
                   [row[1], row[2], row[3], row[4], row[5], row[8]]
            # malformed: a frame that isn't JSON, then one missing fields; then the event
            (a, b, c, d), _ = await scenario([{"kind": "malformed"},
                                              {"kind": "malformed", "mode": "missing", "after": 1}],
                                             2, 4)
            assert isinstance(a, str) and b["e"] == "kline" and "c" not in c["k"] and \
                "x" not in c["k"] and d["E"] == b["E"] + 2000
            # shutdown: a serverShutdown event
            (a, b), _ = await scenario([{"kind": "shutdown"}], 1, 2)
            assert a == {"e": "serverShutdown", "E": s.now_ms()} and b["e"] == "kline"
            # silence: nothing (not even pongs) for 0.4 s
            (a, b), ts = await scenario([{"kind": "silence", "seconds": 0.4, "after": 1}], 2, 2)
            assert b["E"] == a["E"] + 2000 and ts[1] - ts[0] >= 0.35
            # close: a clean close frame 1001
            (a, b), _ = await scenario([{"kind": "close", "after": 1}], 2, 2)
            assert a["e"] == "kline" and b.type == WT.CLOSE and b.data == 1001
            # drop: the TCP connection ends without a close frame
            (a, b), _ = await scenario([{"kind": "drop", "after": 1}], 2, 2)
            assert a["e"] == "kline" and b.type in (WT.CLOSED, WT.ERROR)
        asyncio.run(run())
        assert eventually(lambda: s.ws_stats()["connections_current"] == 0)
        st = s.ws_stats()
        assert st["close_reasons"]["close_fault"] == 1 and st["close_reasons"]["drop_fault"] == 1
        assert st["fault_frames"] >= 7 and st["shutdown_notices"] == 1
        # the control API
        s.clear_ws_faults()
        code, r = http_json(s, "POST", "/_replay/ws_faults", {"rules": [{"kind": "duplicate",
                                                                        "count": -1}]})
        assert code == 200 and len(r["ids"]) == 1
        assert http_json(s, "POST", "/_replay/ws_faults", {"kind": "nope"})[0] == 400
        assert http_json(s, "GET", "/_replay/ws_faults")[1]["rules"][0]["kind"] == "duplicate"
        assert http_json(s, "DELETE", "/_replay/ws_faults")[0] == 200 and s.ws_faults() == []
        assert http_json(s, "GET", "/_replay/stats")[1]["ws"]["faults_fired"] == 0
        code, cfg = http_json(s, "POST", "/_replay/ws_config", {"ping_interval_s": 5})
        assert code == 200 and cfg["ping_interval_s"] == 5.0
        assert len(http_json(s, "GET", "/_replay/ws_log?last=2")[1]) == 2


def test_ws_age_limit_with_shutdown_notice():
    with br.ReplayServer(data_dir=DATA, start=WS_T0, speed=0, ws_max_age_ms=5 * M,
                         ws_shutdown_notice_ms=M, ws_burst_events=1) as s:
        async def run():
            async with aiohttp.ClientSession() as cs:
                async with cs.ws_connect(s.ws_url + "/ws/ethusdt@kline_1m") as ws:
                    got = []
                    for _ in range(5):
                        s.set_clock(advance_ms=M)
                        await asyncio.sleep(0.02)
                    while True:
                        m = await ws_next(ws)
                        got.append(m)
                        if not isinstance(m, dict):
                            break
                    return got
        got = asyncio.run(run())
        assert eventually(lambda: s.ws_stats()["connections_current"] == 0)
        assert [g["k"]["t"] for g in got[:4]] == [WS_T0 + i * M for i in range(4)]
        assert got[4] == {"e": "serverShutdown", "E": WS_T0 + 4 * M}
        assert got[5]["k"]["t"] == WS_T0 + 4 * M and got[5]["k"]["x"]
        assert got[6].type == WT.CLOSE and got[6].data == 1000
        st = s.ws_stats()
        assert st["age_closes"] == 1 and st["close_reasons"] == {"max_age": 1}


def test_generated_symbols_rest_and_ws():
    with br.ReplayServer(data_dir=DATA, start=WS_T0, speed=0, gen_symbols=3) as s:
        info = json.loads(http_get(s, "/api/v3/exchangeInfo")[2])
        assert [x["symbol"] for x in info["symbols"]] == ["BTCUSDT", "ETHUSDT", "S0001USDT",
                                                          "S0002USDT", "S0003USDT"]
        assert info["symbols"][2]["baseAsset"] == "S0001"
        for g, src in (("S0001USDT", "BTCUSDT"), ("S0002USDT", "ETHUSDT"), ("S0003USDT", "BTCUSDT")):
            assert klines(s, symbol=g, startTime=T0, limit=50) == klines(s, symbol=src, startTime=T0,
                                                                          limit=50)

        async def run():
            async with aiohttp.ClientSession() as cs:
                async with cs.ws_connect(s.ws_url + "/stream?streams=s0002usdt@kline_1m/"
                                                    "ethusdt@kline_1m") as ws:
                    s.set_clock(advance_ms=M)
                    evs = [await ws_next(ws) for _ in range(60)]
                    return evs
        evs = asyncio.run(run())
        by = {}
        for m in evs:
            by.setdefault(m["data"]["s"], []).append(m["data"])
        assert len(by["S0002USDT"]) == len(by["ETHUSDT"]) == 30
        for a, b in zip(by["S0002USDT"], by["ETHUSDT"]):
            assert json.dumps(a).replace("S0002USDT", "ETHUSDT") == json.dumps(b)
        assert k_equals_row(by["S0002USDT"][-1]["k"], feb_rows("ETHUSDT", 1)[0])


def test_ban_escalation_grows_per_ip_and_outlives_the_client():
    """--ban-escalation: asking while banned lengthens the ban (S, 2S, 4S...), per IP;
    a new connection (a restarted client) is still banned."""
    with br.ReplayServer(ban_escalation=10, speed=0,
                         faults=[{"kind": "status", "status": 418, "retry_after": 1,
                                  "path": "/api/v3/time"}]) as srv:
        st, hd, _ = http_get(srv, "/api/v3/time")
        assert st == 418 and hd["retry-after"] == "1"
        waits = []
        for _ in range(3):
            time.sleep(0.6)  # sooner, it was in flight when the ban began: no violation
            st, hd, _ = http_get(srv, "/api/v3/ping")   # a new connection each time
            assert st == 418
            waits.append(int(hd["retry-after"]))
        assert waits == [10, 20, 40]
        bans = srv.stats()["ip_bans"]
        assert bans["127.0.0.1"]["level"] == 3 and bans["127.0.0.1"]["banned_for_s"] > 35
        assert srv.stats()["violations"] == 3


def test_ws_hostile_quiet_symbols_limit_and_drop():
    """Issue 11 behaviours: quiet symbols send nothing, connection attempts per IP are
    limited (429 beyond), and drop_after_frames closes each connection after N frames."""
    with br.ReplayServer(data_dir=DATA, start=WS_T0 - 5000, speed=600,
                         ws_quiet_symbols="ethusdt", ws_conn_limit_5min=3,
                         ws_drop_after_frames=4) as s:
        async def run():
            got, statuses = [], []
            async with aiohttp.ClientSession() as cs:
                for _ in range(2):
                    async with cs.ws_connect(s.ws_url + "/stream?streams=btcusdt@kline_1m/"
                                             "ethusdt@kline_1m") as ws:
                        while True:
                            m = await ws_next(ws)
                            if not isinstance(m, dict):
                                break
                            got.append(m["data"]["s"])
                for _ in range(2):
                    try:
                        async with cs.ws_connect(s.ws_url + "/ws/btcusdt@kline_1m"):
                            statuses.append(101)
                    except aiohttp.WSServerHandshakeError as e:
                        statuses.append(e.status)
            return got, statuses
        got, statuses = asyncio.run(run())
        assert got == ["BTCUSDT"] * 8, got
        assert statuses == [101, 429], statuses
        st = s.ws_stats()
        assert st["connection_attempts"] == 4 and st["attempts_refused"] == 1, st

def test_fault_short_page_time_skew_and_rest_lag():
    with br.ReplayServer(data_dir=DATA, start=START, speed=0) as s:
        s.add_faults([{"kind": "short_page", "keep": 3, "count": 1},
                      {"kind": "short_page", "count": 1},
                      {"kind": "time_skew", "offset_ms": 86_400_000, "count": 1}])
        p = {"symbol": "BTCUSDT", "interval": "1m", "startTime": START - 3_600_000, "limit": 10}
        assert len(json.loads(http_get(s, "/api/v3/klines", p)[2])) == 3
        assert json.loads(http_get(s, "/api/v3/klines", p)[2]) == []
        assert len(json.loads(http_get(s, "/api/v3/klines", p)[2])) == 10
        t = json.loads(http_get(s, "/api/v3/time")[2])["serverTime"]
        assert t == s.replay.clock.now_ms() + 86_400_000
        assert json.loads(http_get(s, "/api/v3/time")[2])["serverTime"] == s.replay.clock.now_ms()
        q = {"symbol": "BTCUSDT", "interval": "1m", "limit": 1}
        last = json.loads(http_get(s, "/api/v3/klines", q)[2])[0][0]
        s.replay.rest_lag_ms = 60_000
        assert json.loads(http_get(s, "/api/v3/klines", q)[2])[0][0] == last - 60_000

# ---- high-supply symbols (--hisupply, issue 12) ----------------------------------------

def test_hisupply_symbol_is_an_exact_rescaled_copy():
    from decimal import Decimal as D
    with br.ReplayServer(start="2023-01-02T00:00:30Z", speed=0,
                         hisupply=["PEPEUSDT=BTCUSDT/1e5/1e8"]) as s:
        def page(sym):
            q = urllib.parse.urlencode({"symbol": sym, "interval": "1m", "startTime": T0,
                                        "limit": 1000})
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
            c.request("GET", "/api/v3/klines?" + q)
            return json.loads(c.getresponse().read())
        btc, pepe = page("BTCUSDT"), page("PEPEUSDT")
        assert len(btc) == len(pepe) == 1000
        for b, p in zip(btc, pepe):
            assert p[0] == b[0] and p[6] == b[6] and p[8] == b[8]
            for j in (1, 2, 3, 4):
                assert D(p[j]) == D(b[j]) / 10 ** 5 and len(p[j].split(".")[1]) == 8
            for j in (5, 9):
                assert D(p[j]) == D(b[j]) * 10 ** 8
            for j in (7, 10):
                assert D(p[j]) == D(b[j]) * 10 ** 3
    with pytest.raises(ValueError):
        br.parse_hisupply("PEPEUSDT=BTCUSDT/5/8")
    with pytest.raises(ValueError):
        br.rescale8("0.00000001", -1)  # would need 9 decimals
