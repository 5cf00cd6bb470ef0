"""Batch layer end to end: the real klined binary backfills the replay
exchange's recorded months into a real SQLite file, and every minute and
every day is checked against the tests' own exact computation."""
import hashlib
import json
import os
import signal
import subprocess
import time
from decimal import Decimal

import pytest

import oracle
from conftest import HALT, HALT_MS, copy_store, query, stop, wait_for

SYMS = ("BTCUSDT", "ETHUSDT")
E8 = Decimal(100_000_000)


def expected_minutes(symbol, skip=(HALT_MS,)):
    out = {}
    for ot, p in oracle.minutes(symbol).items():
        if any(a <= ot < b for a, b in skip):
            continue
        out[ot] = tuple(int(Decimal(x) * E8) for x in (p[1], p[2], p[3], p[4], p[5], p[7])) + (
            int(p[8]),)
    return out


def stored_minutes(db, symbol):
    """[(open_time, open, high, low, close, volume, quote_volume, trades)] in 1e-8 units, exact:
    from the integer columns, or from x where a value passes 2^53 units (schema 3; schema 7
    keeps kline dense and presents it so in kline_units)."""
    rows = query(db, "SELECT k.open_time, k.open, k.high, k.low, k.close, k.volume, "
                     "k.quote_volume, k.trades, k.x FROM kline_units k JOIN symbol s USING (sid) "
                     "WHERE s.symbol = ? ORDER BY open_time", symbol)
    out = []
    for r in rows:
        if r[8] is None:
            out.append(tuple(r[:8]))
        else:
            x = [int(Decimal(v) * E8) for v in r[8].split(" ")]
            out.append((r[0], *x[:6], r[7]))
    return out


def check_minutes(db, symbol, skip=(HALT_MS,), source=None):
    rows = stored_minutes(db, symbol)
    got = {r[0]: tuple(r[1:]) for r in rows}
    assert len(rows) == len(got), "duplicate minutes"
    exp = expected_minutes(symbol, skip)
    missing = sorted(set(exp) - set(got))
    extra = sorted(set(got) - set(exp))
    assert not missing, f"{symbol}: {len(missing)} minutes missing, first {missing[:3]}"
    assert not extra, f"{symbol}: {len(extra)} unexpected minutes, first {extra[:3]}"
    bad = [t for t in exp if exp[t] != got[t]]
    assert not bad, f"{symbol}: {len(bad)} minutes differ, first {bad[:3]}"
    if source:
        srcs = query(db, "SELECT DISTINCT source FROM kline_1m WHERE symbol = ?", symbol)
        assert srcs == [(source,)]


def check_daily(db, symbol, skip=(HALT_MS,), source="batch"):
    exp = oracle.days(symbol, skip)
    rows = query(db, "SELECT day, printf('%.8f', open), printf('%.8f', high), printf('%.8f', low), "
                     "printf('%.8f', close), printf('%.8f', volume), quote_volume, trades, source, "
                     "ma7, ma30 FROM daily WHERE symbol = ? ORDER BY day", symbol)
    assert [r[0] for r in rows] == sorted(exp), f"{symbol}: days differ"
    closes = [exp[d]["close"] for d in sorted(exp)]
    ma7, ma30 = oracle.rolling_mean(closes, 7), oracle.rolling_mean(closes, 30)
    for i, r in enumerate(rows):
        e = exp[r[0]]
        assert r[1:6] == tuple(oracle.fmt8(e[k]) for k in
                               ("open", "high", "low", "close", "volume")), (symbol, r[0])
        assert abs(Decimal(r[6]) - e["quote_volume"]) <= e["quote_volume"] * Decimal("1e-9")
        assert r[7] == e["trades"]
        assert r[8] == source
        for got, want in ((r[9], ma7[i]), (r[10], ma30[i])):
            if want is None:
                assert got is None, (symbol, r[0])
            else:
                assert abs(Decimal(got) - want) <= want * Decimal("1e-12"), (symbol, r[0])
    prophet = query(db, "SELECT ds, y FROM prophet_input WHERE symbol = ? ORDER BY ds", symbol)
    assert prophet == [(r[0], float(r[4])) for r in rows]


def fingerprint(db):
    h = hashlib.sha256()
    for table in ("kline", "day", "outage", "symbol"):
        for row in query(db, f"SELECT * FROM {table} ORDER BY 1, 2"):
            h.update(repr(row).encode())
    return h.hexdigest()


@pytest.fixture
def halted(replay):
    return replay(halts=["/".join(HALT)])


@pytest.fixture
def backfilled(once_per_run, replay, klined, tmp_path):
    """(db, stderr): this test's own copy of the store that `klined run --once`
    backfilled from the halted replay, and that run's stderr. The backfill is
    made once per test run: several tests check the same run's result."""
    def build(d):
        srv = replay(halts=["/".join(HALT)])
        (d / "stderr").write_text(klined(srv.rest_url, db=d / "klined.db").once().stderr)
    d = once_per_run("halted-backfill", build)
    return copy_store(d / "klined.db", tmp_path / "klined.db"), (d / "stderr").read_text()


def test_backfill_every_minute_and_day_exact(backfilled):
    db, stderr = backfilled
    assert "backfill: done" in stderr
    for s in SYMS:
        check_minutes(db, s, source="rest")
        check_daily(db, s)
    assert query(db, "SELECT symbol, from_ms, to_ms FROM outages ORDER BY symbol") == [
        (s, *HALT_MS) for s in SYMS]
    # The bar before the halt has its shortened close time, as Binance's does.
    assert query(db, "SELECT close_time - open_time FROM kline_units WHERE open_time = ?",
                 HALT_MS[0] - 60000) == [(41646,), (41646,)]
    assert query(db, "PRAGMA journal_mode") == [("wal",)]
    assert query(db, "SELECT count(*) FROM reject") == [(0,)]


def test_second_run_changes_nothing(halted, klined, backfilled):
    k = klined(halted.rest_url, db=backfilled[0])
    before = fingerprint(k.db)
    halted.reset_stats()
    k.once()
    assert fingerprint(k.db) == before
    st = halted.stats()
    assert st["requests"].get("/api/v3/klines", 0) == 0, st["requests"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill9_mid_backfill_then_restart(replay, klined, seed):
    srv = replay(halts=["/".join(HALT)], latency_ms=30)
    k = klined(srv.rest_url, "--rest-concurrency", "2")
    proc = k.start("--once")
    # Seeded moments: after some klines are committed, at different depths.
    target = {1: 1, 2: 40_000, 3: 150_000}[seed]
    wait_for(lambda: os.path.exists(k.db) and _count(k.db) >= target, timeout=60)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _count(k.db) < 259_040, "killed too late to test anything"
    k.once()
    for s in SYMS:
        check_minutes(k.db, s)
        check_daily(k.db, s)


def _count(db):
    try:
        return query(db, "SELECT count(*) FROM kline")[0][0]
    except Exception:
        return 0


def test_sigterm_mid_backfill_keeps_what_was_fetched(replay, klined):
    srv = replay(halts=["/".join(HALT)], latency_ms=30)
    k = klined(srv.rest_url, "--rest-concurrency", "2", "--kafka-brokers", "off")
    proc = k.start()
    wait_for(lambda: _count(k.db) > 0, timeout=60)
    time.sleep(0.5)
    t0 = time.monotonic()
    code, err = stop(proc)
    assert code == 0, err
    assert time.monotonic() - t0 < 5
    fetched = query(k.db, "SELECT count(*) FROM kline")[0][0]
    served = srv.stats()["klines_served"]
    assert fetched > 0
    # Everything the exchange served was committed, minus at most the pages in flight
    # and the listing probe's kline per symbol (history is never before the listing).
    assert fetched >= served - 2 * 1000 - len(SYMS)
    k.once()
    for s in SYMS:
        check_minutes(k.db, s)


def test_hole_cut_into_the_store_heals(halted, klined, backfilled):
    k = klined(halted.rest_url, db=backfilled[0])
    before = fingerprint(k.db)
    # A hole inside one day of one symbol, and a whole day of the other.
    query(k.db, "DELETE FROM kline WHERE sid = 1 AND open_time BETWEEN 1675000000000 AND 1675090000000")
    query(k.db, "DELETE FROM kline WHERE sid = 2 AND open_time >= 1676505600000 "
                "AND open_time < 1676592000000")
    assert fingerprint(k.db) != before
    st = json.loads(k.cmd("status", "--json").stdout)
    assert [s["holes"] for s in st["symbols"]] == [1, 1]
    halted.reset_stats()
    k.once()
    assert fingerprint(k.db) == before
    # Only the hole was fetched: two or three pages, not the months around it.
    assert halted.stats()["requests"]["/api/v3/klines"] <= 4


def test_faults_are_retried_and_nothing_wrong_is_stored(replay, klined):
    srv = replay(halts=["/".join(HALT)])
    srv.add_faults([
        {"kind": "status", "status": 429, "retry_after": 2, "after": 5, "count": 1},
        {"kind": "status", "status": 503, "after": 10, "count": 3},
        {"kind": "malformed", "after": 20, "count": 2},
        {"kind": "truncate", "after": 30, "count": 1},
        {"kind": "truncate", "mode": "short", "after": 40, "count": 1},
        {"kind": "slow", "delay_ms": 4000, "after": 50, "count": 1},
        {"kind": "bad_kline", "field": "high", "value": "1", "after": 60, "count": 1},
    ])
    # One request in flight, so every request the exchange sees after the 429
    # was sent after klined learnt of it.
    k = klined(srv.rest_url, "--rest-timeout", "1s", "--rest-concurrency", "1")
    t0 = time.monotonic()
    p = k.once()
    took = time.monotonic() - t0
    st = srv.stats()
    assert st["violations"] == 0, "a request was sent before Retry-After expired"
    assert all(f["fired"] == f["count"] for f in st["faults"]), st["faults"]
    assert took >= 2, "Retry-After of 2 s cannot have been honoured"
    assert "Retry-After" in p.stderr and "retry" in p.stderr
    rejects = query(k.db, "SELECT symbol, origin, reason, raw FROM reject")
    assert len(rejects) == 1 and rejects[0][2].startswith("high below"), rejects
    bad_minute = json.loads(rejects[0][3])[0]
    # The refused minute is neither data nor an outage; the next start refetches it.
    assert query(k.db, "SELECT count(*) FROM kline WHERE open_time = ? AND sid = "
                       "(SELECT sid FROM symbol WHERE symbol = ?)", bad_minute, rejects[0][0]) == [(0,)]
    assert query(k.db, "SELECT count(*) FROM outage WHERE from_ms <= ? AND to_ms > ? "
                       "AND from_ms <> ?", bad_minute, bad_minute, HALT_MS[0]) == [(0,)]
    k.once()
    for s in SYMS:
        check_minutes(k.db, s)
        check_daily(k.db, s)


def test_weight_limit_is_obeyed(replay, klined):
    # A tight budget: 300 weight a minute, ~130 pages needed at 2 each would take
    # minutes, so fetch one month only and check no 429 ever comes back.
    srv = replay(weight_limit=300, start="2023-01-08T00:00:30Z")
    k = klined(srv.rest_url)
    k.once(timeout=150)
    st = srv.stats()
    assert st["rate_limited"] == 0 and st["violations"] == 0, st
    for s in SYMS:
        assert query(k.db, "SELECT count(*) FROM kline_1m WHERE symbol = ?", s) == [(7 * 1440,)]


def test_invalid_symbol_exits_78_naming_it(halted, klined):
    # Alone; among valid ones it is named and left out (test_hostile_start.py).
    k = klined(halted.rest_url, "--symbols", "NOSUCHCOIN")
    p = k.once(check=False)
    assert p.returncode == 78, p.stderr
    assert "NOSUCHCOIN" in p.stderr and "[exchange] symbols" in p.stderr
    assert query(k.db, "SELECT count(*) FROM kline") == [(0,)]


def test_listing_history_start(halted, klined):
    k = klined(halted.rest_url, "--symbols", "ETHUSDT", "--history-start", "listing")
    k.once()
    assert query(k.db, "SELECT min(day), max(day), count(*) FROM daily") == [
        ("2023-01-01", "2023-03-31", 90)]


def test_import_gives_the_same_daily_as_rest(replay, klined, tmp_path):
    srv = replay()
    rest = klined(srv.rest_url, db=tmp_path / "rest.db")
    rest.once()
    imp = klined(srv.rest_url, db=tmp_path / "import.db")
    files = sorted(str(f) for f in oracle.DATA.glob("*-1m-*.csv.gz"))
    p = imp.cmd("import", *files)
    assert p.returncode == 0, p.stderr
    for s in SYMS:
        check_minutes(imp.db, s, skip=(), source="import")
        check_daily(imp.db, s, skip=())
    daily = "SELECT * FROM daily ORDER BY symbol, day"
    assert query(imp.db, daily) == query(rest.db, daily)


def test_import_plain_zip_and_refuses_damaged_files(replay, klined, tmp_path):
    import gzip
    import zipfile
    src = oracle.DATA / "BTCUSDT-1m-2023-02.csv.gz"
    plain = tmp_path / "BTCUSDT-1m-2023-02.csv"
    plain.write_bytes(gzip.decompress(src.read_bytes()))
    z = tmp_path / "ETHUSDT-1m-2023-02.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ETHUSDT-1m-2023-02.csv", gzip.decompress(
            (oracle.DATA / "ETHUSDT-1m-2023-02.csv.gz").read_bytes()))
    broken = tmp_path / "BTCUSDT-1m-2023-03.csv.gz"
    broken.write_bytes((oracle.DATA / "BTCUSDT-1m-2023-03.csv.gz").read_bytes()[:100_000])
    badname = tmp_path / "klines.csv"
    badname.write_text("1,2,3\n")
    k = klined("http://127.0.0.1:9", db=tmp_path / "i.db")
    p = k.cmd("import", str(plain), str(z), str(broken), str(badname))
    assert p.returncode == 1
    assert "BTCUSDT-1m-2023-03.csv.gz: not imported" in p.stderr
    assert "klines.csv: the name is not" in p.stderr
    assert query(k.db, "SELECT symbol, count(*) FROM kline_1m GROUP BY symbol") == [
        ("BTCUSDT", 40320), ("ETHUSDT", 40320)]
    assert query(k.db, "SELECT count(*) FROM daily WHERE day >= '2023-03-01'") == [(0,)]


def test_import_refuses_bad_lines_and_keeps_them(klined, tmp_path):
    lines = gzip_lines("BTCUSDT-1m-2023-01.csv.gz")[:1440]
    lines[100] = lines[100].replace(lines[100].split(",")[2], "abc", 1)
    f = tmp_path / "BTCUSDT-1m-2023-01-01.csv"
    f.write_text("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                 "taker_buy_volume,taker_buy_quote_volume,ignore\n" + "\n".join(lines) + "\n")
    k = klined("http://127.0.0.1:9", db=tmp_path / "i.db")
    p = k.cmd("import", str(f))
    assert p.returncode == 0, p.stderr
    assert "BTCUSDT-1m-2023-01-01.csv:102: refused kline" in p.stderr
    assert query(k.db, "SELECT origin, reason FROM reject") == [
        ("BTCUSDT-1m-2023-01-01.csv:102", "price or volume is not a decimal string")]
    assert query(k.db, "SELECT count(*) FROM kline") == [(1439,)]


def gzip_lines(name):
    import gzip
    return gzip.decompress((oracle.DATA / name).read_bytes()).decode().splitlines()


def test_status_reports_the_store(halted, klined, backfilled):
    k = klined(halted.rest_url, db=backfilled[0])
    p = k.cmd("status", "--json")
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    by = {s["symbol"]: s for s in st["symbols"]}
    assert set(by) == set(SYMS)
    for s in SYMS:
        assert by[s]["klines"] == 129_600 - 80
        assert by[s]["newest_minute"] == "2023-03-31T23:59:00Z"
        assert by[s]["holes"] == 0 and by[s]["outage_minutes"] == 80
        assert by[s]["days"] == 90 and by[s]["last_day"]["day"] == "2023-03-31"
    human = k.cmd("status")
    assert human.returncode == 0 and "BTCUSDT" in human.stdout and "2023-03-31" in human.stdout


def test_daemon_follows_the_exchange_clock(replay, klined):
    # Virtual time runs an hour per second: the daemon must keep fetching each
    # newly closed minute, keep complete days exact and today's row current.
    srv = replay(start="2023-03-10T22:00:30Z", speed=3600)
    k = klined(srv.rest_url, "--history-start", "2023-03-08", "--kafka-brokers", "off")
    proc = k.start()
    wait_for(lambda: _count(k.db) > 0 and query(
        k.db, "SELECT count(*) FROM daily WHERE day = '2023-03-11' AND source = 'speed'")[0][0],
        timeout=60)
    code, err = stop(proc)
    assert code == 0, err
    newest = query(k.db, "SELECT max(open_time) FROM kline")[0][0]
    assert newest >= 1678492800000  # into 2023-03-11
    for s in SYMS:
        exp = {t: v for t, v in expected_minutes(s, skip=()).items()
               if 1678233600000 <= t <= newest}
        got = query(k.db, "SELECT count(*) FROM kline_1m WHERE symbol = ?", s)[0][0]
        assert got == len(exp), "every closed minute up to the newest is stored"
        days = oracle.days(s)
        rows = query(k.db, "SELECT day, printf('%.8f', close), source FROM daily "
                           "WHERE symbol = ? ORDER BY day", s)
        assert [r[0] for r in rows][:3] == ["2023-03-08", "2023-03-09", "2023-03-10"]
        for day, close, source in rows[:3]:
            assert (close, source) == (oracle.fmt8(days[day]["close"]), "batch")
        today = rows[-1]
        assert today[2] == "speed"
        last = oracle.minutes(s)[max(t for t in exp)]
        assert today[1] == oracle.fmt8(last[4]), "today's close is the newest minute's"


def test_history_start_moved_earlier_extends_coverage(halted, klined):
    k = klined(halted.rest_url, "--history-start", "2023-03-01")
    k.once()
    assert query(k.db, "SELECT min(day) FROM daily") == [("2023-03-01",)]
    halted.reset_stats()
    k.once("--history-start", "2023-02-01")
    assert query(k.db, "SELECT min(day), count(*) FROM daily") == [("2023-02-01", 2 * 59)]
    for s in SYMS:
        check_daily(k.db, s, skip=(HALT_MS, (0, 1675209600000)))
