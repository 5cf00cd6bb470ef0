"""The batch layer against a hostile exchange (issue 11, items 1, 4, 5, 9):
refused pages, short and empty pages, REST publication lag and corrupt
off-minute bars must neither stop a symbol nor invent outages."""
import time

from conftest import HALT_MS, query, read_log, stop, wait_for
from test_batch import check_minutes
from test_http import free_port, metrics, sample

SINCE = 1679270400000  # 2023-03-20
SKIP = ((0, SINCE), HALT_MS)
HTML_403 = "<html><head><title>403 Forbidden</title></head><body><h1>403 Forbidden</h1></body></html>"


def outages(db):
    return query(db, "SELECT symbol, from_ms, to_ms FROM outages ORDER BY symbol, from_ms")


def test_a_403_page_is_retried_not_given_up(replay, klined):
    # rest.c pauses every request after a 403 (1 min by default; 300 ms here).
    srv = replay(halts=[f"{HALT_MS[0]}/{HALT_MS[1]}"],
                 faults=[{"kind": "status", "status": 403, "symbol": "BTCUSDT", "after": 3,
                          "body": HTML_403, "content_type": "text/html"}])
    k = klined(srv.rest_url, "--history-start", "2023-03-20", "--rest-refusal-pause", "300ms")
    p = k.once(timeout=60)
    for s in ("BTCUSDT", "ETHUSDT"):
        check_minutes(k.db, s, skip=SKIP)
    assert outages(k.db) == [(s, *HALT_MS) for s in ("BTCUSDT", "ETHUSDT")]
    assert "HTTP 403" in p.stderr and "every request waits" in p.stderr


def test_an_invalid_symbol_answer_sets_it_aside_then_it_resumes(replay, klined):
    # ETHUSDT answers -1121 for its klines; BTCUSDT must not wait for it, and once
    # exchangeInfo lists ETHUSDT again (its check after 30 s) it is backfilled.
    srv = replay(start="2023-03-31T23:00:30Z",
                 faults=[{"kind": "status", "status": 400, "symbol": "ETHUSDT", "count": 2,
                          "after": 1, "code": -1121, "msg": "Invalid symbol."}])
    port = free_port()
    k = klined(srv.rest_url, "--history-start", "2023-03-29", "--kafka-brokers", "off",
               "--http-listen", f"127.0.0.1:{port}")
    proc = k.start()
    wait_for(lambda: "inactive" in read_log(proc), timeout=30)
    # Said on /metrics too (STATUS= is the same figure, from the same call).
    wait_for(lambda: sample(metrics(port), "klined_symbols_inactive") == 1, timeout=10)
    assert sample(metrics(port), "klined_backfill_pages_refused_total") >= 1
    wait_for(lambda: query(k.db, "SELECT count(*) FROM kline_1m WHERE symbol = 'BTCUSDT'")[0][0]
             >= 2 * 1440 + 1380, timeout=30)
    wait_for(lambda: query(k.db, "SELECT count(*) FROM kline_1m WHERE symbol = 'ETHUSDT'")[0][0]
             >= 2 * 1440 + 1380, timeout=60, step=0.5)
    wait_for(lambda: sample(metrics(port), "klined_symbols_inactive") == 0, timeout=10)
    code, err = stop(proc)
    assert code == 0, err[-3000:]
    assert "lists it again" in err
    assert "ETHUSDT: the exchange answers" in err
    for s in ("BTCUSDT", "ETHUSDT"):
        check_minutes(k.db, s, skip=((0, 1680048000000), (1680303600000, 1 << 62)))
    assert outages(k.db) == []


def test_short_and_empty_pages_are_not_outages(replay, klined):
    srv = replay(halts=[f"{HALT_MS[0]}/{HALT_MS[1]}"],
                 faults=[{"kind": "short_page", "keep": 300, "symbol": "BTCUSDT", "after": 2},
                         {"kind": "short_page", "keep": 0, "symbol": "ETHUSDT", "after": 4}])
    k = klined(srv.rest_url, "--history-start", "2023-03-20", "--rest-refusal-pause", "300ms")
    p = k.once(timeout=60)
    assert outages(k.db) == [(s, *HALT_MS) for s in ("BTCUSDT", "ETHUSDT")]
    for s in ("BTCUSDT", "ETHUSDT"):
        check_minutes(k.db, s, skip=SKIP)
    assert "not an outage" in p.stderr
    assert "recorded as an outage" in p.stderr  # the real halt still is


def test_rest_publication_lag_while_following_is_no_outage(replay, klined):
    # Ten virtual seconds per wall second: the 2 s clock polls land inside the lag.
    srv = replay(start="2023-03-31T20:00:30Z", speed=10)
    srv.replay.rest_lag_ms = 15_000
    k = klined(srv.rest_url, "--history-start", "2023-03-31", "--kafka-brokers", "off")
    proc = k.start()
    t0 = srv.replay.clock.now_ms()
    wait_for(lambda: srv.replay.clock.now_ms() > t0 + 6 * 60_000, timeout=45, step=0.5)
    code, err = stop(proc)
    assert code == 0, err[-3000:]
    assert outages(k.db) == []
    newest = query(k.db, "SELECT max(open_time) FROM kline")[0][0]
    assert newest >= t0 + 3 * 60_000
    for s in ("BTCUSDT", "ETHUSDT"):
        check_minutes(k.db, s, skip=((0, 1680220800000), (newest + 60_000, 1 << 62)))


def test_an_off_minute_open_time_is_refused_and_refetched(replay, klined):
    srv = replay(halts=[f"{HALT_MS[0]}/{HALT_MS[1]}"],
                 faults=[{"kind": "bad_kline", "field": "open_time", "offset": 1234,
                          "symbol": "BTCUSDT", "after": 2}])
    k = klined(srv.rest_url, "--history-start", "2023-03-20")
    k.once(timeout=60)
    assert query(k.db, "SELECT count(*) FROM kline WHERE open_time % 60000 != 0") == [(0,)]
    assert query(k.db, "SELECT count(*) FROM outages WHERE to_ms - from_ms = 60000") == [(0,)]
    rej = query(k.db, "SELECT reason FROM reject")
    assert len(rej) == 1 and "off the minute" in rej[0][0], rej
    # The minute is a hole, neither data nor outage: the next run refetches it.
    k.once(timeout=60)
    for s in ("BTCUSDT", "ETHUSDT"):
        check_minutes(k.db, s, skip=SKIP)
    assert outages(k.db) == [(s, *HALT_MS) for s in ("BTCUSDT", "ETHUSDT")]


def test_an_imported_file_missing_rows_leaves_holes_for_rest(replay, klined, tmp_path):
    import gzip
    import oracle
    from test_batch import check_daily
    lines = gzip.decompress((oracle.DATA / "BTCUSDT-1m-2023-03.csv.gz").read_bytes()).splitlines()
    cut = tmp_path / "BTCUSDT-1m-2023-03.csv"
    cut.write_bytes(b"\n".join(lines[:-100]) + b"\n")  # a truncated download
    srv = replay()
    k = klined(srv.rest_url, "--symbols", "BTCUSDT", "--history-start", "2023-03-01")
    p = k.cmd("import", str(cut))
    assert p.returncode == 0, p.stderr
    assert outages(k.db) == []
    assert query(k.db, "SELECT count(*) FROM daily WHERE day = '2023-03-31'") == [(0,)]
    assert "100 minutes missing" in p.stderr
    # The next run fetches the 100 minutes from REST; the day is then exact.
    k.once(timeout=60)
    check_minutes(k.db, "BTCUSDT", skip=((0, 1677628800000),))
    check_daily(k.db, "BTCUSDT", skip=((0, 1677628800000),))
    assert outages(k.db) == []


def test_history_start_before_the_listing_is_clamped(replay, klined):
    # An existing store, then a start with the default 365d: a year before the
    # first kline the exchange has (2023-01-01). Nothing before it is a hole or
    # an outage, and nothing is logged as one.
    srv = replay(start="2023-01-10T00:00:30Z")
    k = klined(srv.rest_url, "--history-start", "2023-01-05")
    k.once(timeout=60)
    p = k.once("--history-start", "365d", timeout=60)
    assert query(k.db, "SELECT coalesce(sum(to_ms - from_ms), 0) / 60000 FROM outages") == [(0,)]
    assert "recorded as an outage" not in p.stderr
    assert query(k.db, "SELECT min(day) FROM daily") == [("2023-01-01",)]
    for s in ("BTCUSDT", "ETHUSDT"):
        check_minutes(k.db, s, skip=((1673308800000, 1 << 62),))


def test_a_clock_a_day_ahead_for_a_while_is_not_believed(replay, klined):
    # /api/v3/time answers a day ahead six times in a row (12 s of polls) while
    # klined follows over REST: no outage, and the following goes on.
    srv = replay(start="2023-03-31T20:00:30Z", speed=10)
    k = klined(srv.rest_url, "--history-start", "2023-03-31", "--kafka-brokers", "off")
    proc = k.start()
    wait_for(lambda: "backfill: done" in read_log(proc), timeout=30)
    srv.add_faults([{"kind": "time_skew", "offset_ms": 86_400_000, "count": 6}])
    wait_for(lambda: srv.stats()["faults"][-1]["fired"] == 6, timeout=40, step=0.5)
    t1 = srv.replay.clock.now_ms()
    wait_for(lambda: srv.replay.clock.now_ms() > t1 + 3 * 60_000, timeout=40, step=0.5)
    code, err = stop(proc)
    assert code == 0, err[-3000:]
    assert query(k.db, "SELECT coalesce(sum(to_ms - from_ms), 0) / 60000 FROM outages") == [(0,)]
    newest = query(k.db, "SELECT max(open_time) FROM kline")[0][0]
    assert newest >= t1 + 60_000, (newest, t1)
    assert "not believed" in err
    for s in ("BTCUSDT", "ETHUSDT"):
        check_minutes(k.db, s, skip=((0, 1680220800000), (newest + 60_000, 1 << 62)))
