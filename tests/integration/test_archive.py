"""History from the archives (issue 14): the real klined binary downloads the replay's
data.binance.vision files (tests/replay/replay_archive.py), checks every CHECKSUM, loads
each file in one transaction and leaves what the archive lacks to REST; every minute and
day is checked against the tests' own exact computation."""
import re
import sqlite3
import time

import pytest

import oracle
from conftest import HALT, HALT_MS, query, read_log, wait_for
from test_batch import check_daily, check_minutes

SYMS = ("BTCUSDT", "ETHUSDT")
MAR31 = 1680220800000  # 2023-03-31: the last day, too recent for the archive


@pytest.fixture
def halted(replay):
    return replay(halts=["/".join(HALT)])


def klines_requests(srv):
    return srv.stats()["requests"].get("/api/v3/klines", 0)


def sources(db, symbol):
    return dict(query(db, "SELECT source, count(*) FROM kline_1m WHERE symbol = ? "
                          "GROUP BY source", symbol))


def test_cold_start_comes_from_the_archives_and_is_exact(halted, klined):
    k = klined(halted.rest_url, "--archive-url", halted.rest_url)
    p = k.once()
    st = halted.archive_stats()
    # Jan and Feb whole; March, whose monthly file is not out before April's first
    # Monday, as the 30 days the archive has; March 31 is REST's
    for s in SYMS:
        assert st["files"][f"{s}-1m-2023-01.zip"] == 1
        assert st["files"][f"{s}-1m-2023-02.zip"] == 1
        assert all(st["files"][f"{s}-1m-2023-03-{d:02d}.zip"] == 1 for d in range(1, 31))
        assert f"{s}-1m-2023-03-31.zip" not in st["files"]
    assert len(st["files"]) == 64
    assert "64 files loaded" in p.stderr
    # REST only for the last day and the halt's probe: a few pages, not 130
    assert klines_requests(halted) <= 16, halted.stats()["requests"]
    for s in SYMS:
        check_minutes(k.db, s)
        check_daily(k.db, s)
        src = sources(k.db, s)
        assert src["rest"] >= 1440 and src["import"] > 80 * 1440, src
    # the halt is missing from the day's file: a hole that only REST may call an outage
    assert query(k.db, "SELECT symbol, from_ms, to_ms FROM outages ORDER BY symbol") == [
        (s, *HALT_MS) for s in SYMS]
    assert query(k.db, "SELECT count(*) FROM reject") == [(0,)]
    # a second run asks the archive nothing: nothing is a hole any more
    halted.reset_stats()
    before = halted.archive_stats()["requests"]
    k.once()
    assert halted.archive_stats()["requests"] == before
    assert klines_requests(halted) == 0


def test_bad_files_fall_back_to_rest(halted, klined):
    halted.add_archive_faults([
        {"kind": "corrupt", "symbol": "BTCUSDT", "period": "2023-02"},       # always
        {"kind": "missing", "symbol": "ETHUSDT", "period": "2023-01*"},      # month and days
        {"kind": "no_checksum", "symbol": "BTCUSDT", "period": "2023-03-05"},
        {"kind": "bad_checksum", "symbol": "ETHUSDT", "period": "2023-03-06"},
        {"kind": "status", "status": 503, "symbol": "ETHUSDT", "period": "2023-03-10"},
        {"kind": "drop", "after_bytes": 20000, "times": 1, "symbol": "BTCUSDT",
         "period": "2023-03-12"},
    ])
    k = klined(halted.rest_url, "--archive-url", halted.rest_url)
    p = k.once(timeout=240)
    st = halted.archive_stats()
    # a checksum that does not match is fetched once more, then given up
    assert st["files"].get("BTCUSDT-1m-2023-02.zip") == 2
    assert re.search(r"BTCUSDT-1m-2023-02\.zip: sha256 \w+… is not the CHECKSUM's", p.stderr)
    # the month is not there: its days are asked, not there either
    assert "ETHUSDT-1m-2023-01.zip: not there; its 31 days instead" in p.stderr
    # a download cut short is retried and loaded
    assert st["files"]["BTCUSDT-1m-2023-03-12.zip"] == 1
    for s in SYMS:
        check_minutes(k.db, s)
        check_daily(k.db, s)
    assert query(k.db, "SELECT count(*) FROM reject") == [(0,)]
    # what the archive could not give came from REST
    feb = query(k.db, "SELECT DISTINCT source FROM kline_1m WHERE symbol = 'BTCUSDT' AND "
                      "open_time >= 1675209600000 AND open_time < 1677628800000")
    assert feb == [("rest",)]
    jan = query(k.db, "SELECT DISTINCT source FROM kline_1m WHERE symbol = 'ETHUSDT' AND "
                      "open_time < 1675209600000")
    assert jan == [("rest",)]
    for day, sym in (("2023-03-05", "BTCUSDT"), ("2023-03-06", "ETHUSDT"),
                     ("2023-03-10", "ETHUSDT")):
        assert query(k.db, "SELECT DISTINCT source FROM kline_1m WHERE symbol = ? AND "
                           "date(open_time / 1000, 'unixepoch') = ?", sym, day) == [("rest",)]


def test_kill9_mid_download_loses_and_duplicates_nothing(halted, klined):
    # ~1.8 MB months at 1 MB/s: the run is caught with files loaded and files under way
    halted.replay.archive.bandwidth_bps = 1_000_000
    k = klined(halted.rest_url, "--archive-url", halted.rest_url, "--log-level", "debug")
    proc = k.start()
    wait_for(lambda: re.search(r"import: \w+-1m-2023-01\.zip: \d+ klines", read_log(proc)),
             timeout=120)
    proc.kill()
    proc.wait()
    first = halted.archive_stats()["files"]
    # loaded = committed whole (the line follows the commit): a file received may still
    # have been on its way to the store, and one with a gap inside is asked again for it
    loaded = re.findall(r"import: (\w+-1m-[\d-]+\.zip): \d+ klines, \d+ refused, 0 holes",
                        read_log(proc))
    assert any(n.endswith("2023-01.zip") for n in loaded)
    with sqlite3.connect(k.db) as c:
        assert c.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    halted.replay.archive.bandwidth_bps = 0
    before = dict(first)
    k.once(timeout=240)
    after = halted.archive_stats()["files"]
    # what the first run loaded is not downloaded again
    for n in loaded:
        assert after[n] == before[n], n
    for s in SYMS:
        check_minutes(k.db, s)
        check_daily(k.db, s)


def test_unreachable_archive_is_switched_off(halted, klined):
    import socket
    with socket.socket() as sock:   # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    k = klined(halted.rest_url, "--archive-url", dead)
    t = time.monotonic()
    p = k.once(timeout=240)
    assert f"{dead} is unreachable" in p.stderr
    assert p.stderr.count("is unreachable") == 1
    for s in SYMS:
        check_minutes(k.db, s, source="rest")
    assert time.monotonic() - t < 120


def test_microsecond_files_load_like_rest(replay, klined, tmp_path):
    """2025 files carry microseconds: the store from the archive equals the store from
    REST (auto: a REST host that is not Binance's has no archive)."""
    srv = replay(start="2025-03-03T00:00:30Z", tile_until="2025-03-03T00:00:30Z")
    a = klined(srv.rest_url, "--archive-url", srv.rest_url, "--history-start", "2025-01-01",
               db=tmp_path / "archive.db")
    a.once(timeout=240)
    files = srv.archive_stats()["files"]
    assert "BTCUSDT-1m-2025-01.zip" in files and "ETHUSDT-1m-2025-02-28.zip" in files
    srv.reset_stats()
    requests = srv.archive_stats()["requests"]
    b = klined(srv.rest_url, "--history-start", "2025-01-01", db=tmp_path / "rest.db")
    b.once(timeout=240)
    assert srv.archive_stats()["requests"] == requests
    cols = ("open_time, open, high, low, close, volume, quote_volume, trades")
    for s in SYMS:
        qa = query(a.db, f"SELECT {cols} FROM kline_1m WHERE symbol = ? ORDER BY open_time", s)
        qb = query(b.db, f"SELECT {cols} FROM kline_1m WHERE symbol = ? ORDER BY open_time", s)
        assert len(qa) == len(qb) > 59 * 1440
        assert qa == qb
        da = query(a.db, "SELECT * FROM daily_exact WHERE symbol = ? ORDER BY day", s)
        db_ = query(b.db, "SELECT * FROM daily_exact WHERE symbol = ? ORDER BY day", s)
        assert da == db_
        assert sources(a.db, s)["import"] > 55 * 1440
