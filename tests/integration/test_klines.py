"""/api/klines and the kline_1h / kline_5m views on the real daemon and a
store it backfilled from the replay exchange (recorded Binance minutes, with
the 2023-03-24 halt): every interval equals an independent exact aggregation
of the recorded CSV minutes (Decimal), weeks start on Monday, intervals
wholly inside the halt have no candle, the running one is marked open, bad
parameters get a 400 naming them, and one request's work is bounded."""
import time
from decimal import Decimal

import pytest

import oracle
from conftest import HALT, HALT_MS, query, read_log, stop, wait_for
from test_http import free_port, get_json, http_args, up

SYMS = ("BTCUSDT", "ETHUSDT")
START = "2023-03-13"          # a Monday
START_MS = 1678665600000
NOW_MS = 1679913000000        # 2023-03-27T10:30Z: the replay's clock, frozen
PERIODS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000,
           "4h": 14_400_000, "1d": 86_400_000, "1w": 604_800_000}
LIMIT = {n: 1000 for n in PERIODS}  # the largest limit per request, for every interval
FIELDS = ("open", "high", "low", "close", "volume", "quote_volume")


def expected(symbol, period, origin=0):
    """{open_time: candle} from the recorded minutes in [START, NOW) minus the
    halt, folded with Decimal; origin: where the periods are counted from."""
    out = {}
    for ot in sorted(oracle.minutes(symbol)):
        if not START_MS <= ot < NOW_MS or HALT_MS[0] <= ot < HALT_MS[1]:
            continue
        p = oracle.minutes(symbol)[ot]
        o, h, lo, c = (Decimal(x) for x in p[1:5])
        v, q, n = Decimal(p[5]), Decimal(p[7]), int(p[8])
        t = ot - (ot - origin) % period
        r = out.get(t)
        if r is None:
            out[t] = dict(open=o, high=h, low=lo, close=c, volume=v, quote_volume=q, trades=n)
        else:
            r["high"] = max(r["high"], h)
            r["low"] = min(r["low"], lo)
            r["close"] = c
            r["volume"] += v
            r["quote_volume"] += q
            r["trades"] += n
    return out


@pytest.fixture
def store(replay, klined):
    """A daemon (REST only) that backfilled START .. NOW for both symbols."""
    srv = replay(start="2023-03-27T10:30:30Z", speed=0, halts=["/".join(HALT)])
    port = free_port()
    k = klined(srv.rest_url, "--kafka-brokers", "off", "--history-start", START,
               *http_args(port))
    proc = k.start()
    wait_for(lambda: up(port), timeout=60, step=0.2)
    wait_for(lambda: "backfill: done" in read_log(proc), timeout=180, step=0.5)
    wait_for(lambda: query(k.db, "SELECT count(*) FROM outages") == [(2,)], timeout=60)
    yield k, port
    code, err = stop(proc)
    assert code == 0, err


def klines(port, q):
    st, j = get_json(port, "/api/klines?" + q)
    assert st == 200, (q, j)
    return j


def test_every_interval_is_exact(store):
    k, port = store
    took = {}
    for symbol in SYMS:
        for name, period in PERIODS.items():
            # Monday origin for weeks: 1970-01-05.
            want = expected(symbol, period, 4 * 86_400_000 if name == "1w" else 0)
            got, start = [], START_MS
            t0 = time.monotonic()
            while True:  # page through, as a client of Binance's klines does
                j = klines(port, f"symbol={symbol}&interval={name}&from={start}&limit={LIMIT[name]}")
                assert j["symbol"] == symbol and j["interval"] == name
                got += j["klines"]
                if len(j["klines"]) < LIMIT[name]:
                    break
                start = j["klines"][-1]["open_time"] + period
            took[name] = max(took.get(name, 0), time.monotonic() - t0)
            assert [c["open_time"] for c in got] == sorted(want), (symbol, name)
            for c in got:
                w = want[c["open_time"]]
                for f in FIELDS:  # the double nearest to the exact value
                    assert c[f] == float(w[f]), (symbol, name, c["open_time"], f, c[f], w[f])
                assert c["trades"] == w["trades"]
                assert c["closed"] == (c["open_time"] + period <= NOW_MS), (name, c)
            # 10:30 ends the 1m .. 30m intervals; the longer ones are running.
            assert got[-1]["closed"] == (period <= 1_800_000), (name, got[-1])
    print("slowest paging per interval (s):", {n: round(t, 3) for n, t in took.items()})


def test_weeks_outage_and_open_interval(store):
    k, port = store
    weeks = klines(port, f"symbol=BTCUSDT&interval=1w&from={START_MS}")["klines"]
    assert [w["open_time"] for w in weeks] == [START_MS + i * 604_800_000 for i in range(3)]
    assert [w["closed"] for w in weeks] == [True, True, False]
    # The halt 12:40 .. 14:00: 12:00 has 40 minutes, 13:00 none, 14:00 all.
    h12 = 1679659200000
    hours = klines(port, f"symbol=ETHUSDT&interval=1h&from={h12}&to={h12 + 3 * 3_600_000}")
    assert [h["open_time"] for h in hours["klines"]] == [h12, h12 + 2 * 3_600_000]
    want = expected("ETHUSDT", 3_600_000)[h12]
    assert hours["klines"][0]["close"] == float(want["close"])
    assert hours["klines"][0]["trades"] == want["trades"]
    # No from/to: the last `limit` intervals, up to the running one.
    last = klines(port, "symbol=BTCUSDT&interval=15m&limit=3")["klines"]
    assert [c["open_time"] for c in last] == [NOW_MS - 3 * 900_000 + i * 900_000 for i in range(3)]
    assert [c["closed"] for c in last] == [True, True, True]
    last = klines(port, "symbol=BTCUSDT&interval=4h&limit=2")["klines"]
    assert [c["closed"] for c in last] == [True, False]
    assert last[-1]["open_time"] == NOW_MS - NOW_MS % 14_400_000
    # to only: the intervals starting before it.
    j = klines(port, f"symbol=BTCUSDT&interval=1d&to={START_MS + 2 * 86_400_000}&limit=5")
    assert [c["open_time"] for c in j["klines"]] == [START_MS, START_MS + 86_400_000]


BAD = [
    ("interval=1h", "symbol"),
    ("symbol=DOGEUSDT&interval=1h", "symbol"),
    ("symbol=BTCUSDT", "interval"),
    ("symbol=BTCUSDT&interval=3m", "interval"),
    ("symbol=BTCUSDT&interval=1h&from=yesterday", "from"),
    ("symbol=BTCUSDT&interval=1h&to=-1", "to"),
    ("symbol=BTCUSDT&interval=1h&from=5&to=5", "from"),
    ("symbol=BTCUSDT&interval=1m&limit=1001", "limit"),
    ("symbol=BTCUSDT&interval=1w&limit=1001", "limit"),
    ("symbol=BTCUSDT&interval=1h&symbol=ETHUSDT", "symbol"),
    ("symbol=BTCUSDT&interval=1h&foo=1", "parameter"),
]


def test_bad_parameters_are_refused_by_name(replay, klined):
    srv = replay(start="2023-03-01T00:10:30Z", speed=0)
    port = free_port()
    k = klined(srv.rest_url, "--kafka-brokers", "off", "--history-start", "2023-03-01",
               *http_args(port))
    proc = k.start()
    wait_for(lambda: up(port), timeout=60, step=0.2)
    for q, param in BAD:
        st, j = get_json(port, "/api/klines?" + q)
        assert st == 400 and param in j["error"], (q, st, j)
    # A configured symbol: candles once stored, and the forecast (none made yet).
    wait_for(lambda: len(get_json(port, "/api/klines?symbol=ETHUSDT&interval=1m")[1]["klines"])
             == 10, timeout=60)
    assert get_json(port, "/api/forecast?symbol=ETHUSDT") == (
        200, {"symbol": "ETHUSDT", "made_at": None, "forecast": []})
    code, err = stop(proc)
    assert code == 0, err


def test_views_kline_1h_and_5m(store):
    """sqlite3 users: the views hold the API's candles (no `closed` column)."""
    k, port = store
    for view, name, period in (("kline_1h", "1h", 3_600_000), ("kline_5m", "5m", 300_000)):
        want = expected("ETHUSDT", period)
        rows = query(k.db, f"SELECT open_time, open, high, low, close, volume, quote_volume, "
                     f"trades FROM {view} WHERE symbol = 'ETHUSDT' ORDER BY open_time")
        assert [r[0] for r in rows] == sorted(want), view
        for r in rows:
            w = want[r[0]]
            for i, f in enumerate(FIELDS[:5], 1):
                assert f"{r[i]:.8f}" == f"{w[f]:.8f}", (view, r[0], f)
            assert abs(r[6] - float(w["quote_volume"])) <= 1e-12 * float(w["quote_volume"])
            assert r[7] == w["trades"]
        api = klines(port, f"symbol=ETHUSDT&interval={name}&from={START_MS}&limit=1000")
        for c, r in zip(api["klines"], rows):
            assert (c["open_time"], c["open"], c["close"], c["trades"]) == (r[0], r[1], r[4], r[7])
    cols = [c[1] for c in query(k.db, "PRAGMA table_info(kline_1h)")]
    assert cols == ["symbol", "open_time", "open", "high", "low", "close", "volume",
                    "quote_volume", "trades"]


def test_high_supply_intervals_exact(replay, klined):
    """PEPE-sized values (minutes past 2^53 units of 1e-8, stored as exact decimals in x;
    a week's volume past 1e14): every interval is still the double nearest to the exact
    fold, through the minutes (15m, 4h) and the day rows (1d, 1w)."""
    import binance_replay as br
    name, src, a, b = br.parse_hisupply("PEPEUSDT=BTCUSDT/1e5/1e8")
    srv = replay(start="2023-03-03T06:00:30Z", speed=0, hisupply=["PEPEUSDT=BTCUSDT/1e5/1e8"])
    port = free_port()
    k = klined(srv.rest_url, "--symbols", name, "--kafka-brokers", "off",
               "--history-start", "2023-03-01", *http_args(port))
    proc = k.start()
    wait_for(lambda: up(port), timeout=60, step=0.2)
    wait_for(lambda: "backfill: done" in read_log(proc), timeout=180, step=0.5)
    mar1, now = 1677628800000, 1677823200000  # 2023-03-01, 2023-03-03T06:00Z
    assert query(k.db, "SELECT count(*) FROM kline WHERE x IS NOT NULL")[0][0] > 1000
    rows = {ot: br.hisupply_fields(p, a, b) for ot, p in oracle.minutes(src).items()
            if mar1 <= ot < now}
    for iv in ("15m", "4h", "1d", "1w"):
        period = PERIODS[iv]
        origin = 4 * 86_400_000 if iv == "1w" else 0
        want = {}
        for ot in sorted(rows):
            p = rows[ot]
            o, h, lo, c, v, q = (Decimal(p[i]) for i in (1, 2, 3, 4, 5, 7))
            t = ot - (ot - origin) % period
            r = want.setdefault(t, dict(open=o, high=h, low=lo, close=c, volume=Decimal(0),
                                        quote_volume=Decimal(0), trades=0))
            r["high"], r["low"], r["close"] = max(r["high"], h), min(r["low"], lo), c
            r["volume"] += v
            r["quote_volume"] += q
            r["trades"] += int(p[8])
        start = mar1 - (mar1 - origin) % period  # the week of 2023-03-01 began on Monday
        got = klines(port, f"symbol={name}&interval={iv}&from={start}&limit=1000")["klines"]
        assert [c["open_time"] for c in got] == sorted(want), iv
        for c in got:
            w = want[c["open_time"]]
            for f in FIELDS:
                assert c[f] == float(w[f]), (iv, c["open_time"], f, c[f], w[f])
            assert c["trades"] == w["trades"]
    assert max(c["volume"] for c in got) > 1e14  # a week: past 1e22 units of 1e-8
    code, err = stop(proc)
    assert code == 0, err
