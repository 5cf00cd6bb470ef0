"""The original pipeline's three scenarios, end to end in virtual time, on
the real daemon, the real broker and the replay exchange: first setup, back
after three days off, final presentation twenty days later."""
import time

import oracle
from conftest import query, stop, wait_for
from test_batch import SYMS
from test_speed import check_history, holes, live, newest, vnow

DAY = 86_400_000
T0 = 1677974400000  # 2023-03-05T00:00:00Z


def run_for(k, srv, until_ms, extra=()):
    """Start the daemon, let virtual time reach @until_ms, let it heal, stop it cleanly."""
    proc = k.start(*extra)
    wait_for(lambda: vnow(srv) >= until_ms, timeout=120, step=0.5)
    srv.set_clock(speed=0)
    wait_for(lambda: holes(k) == 0 and newest(k.db) >= until_ms - 5 * 60_000,
             timeout=90, step=1)
    code, err = stop(proc)
    assert code == 0, err
    return err


def test_first_setup_then_three_days_off_then_twenty(replay, klined, kafka_broker, kafka_topic):
    srv = replay(start="2023-03-05T00:00:30Z", speed=1800)
    k = live(klined, srv, kafka_broker, kafka_topic)
    k.extra = [("60d" if prev == "--history-start" else a)
               for prev, a in zip([None] + k.extra[:-1], k.extra)]

    # 1. First setup: empty store, 60 days of history, a few hours of streaming.
    err = run_for(k, srv, T0 + 3 * 3_600_000)
    assert "ws: connected" in err and "kafka: consuming" in err
    first = query(k.db, "SELECT min(day) FROM daily")[0][0]
    assert first == "2023-01-04", first  # 60 days before 2023-03-05
    assert query(k.db, "SELECT count(*) FROM kline WHERE source = 2")[0][0] > 0

    # 2. Back after three days off: the gap heals by itself, streaming resumes.
    stopped_at = newest(k.db)
    srv.set_clock(now_ms=vnow(srv) + 3 * DAY, speed=1800)
    err = run_for(k, srv, T0 + 3 * DAY + 6 * 3_600_000)
    assert "minutes missing" in err
    assert newest(k.db) > stopped_at + 3 * DAY

    # 3. Final presentation twenty days later: one unbroken, exact timeline.
    srv.set_clock(now_ms=vnow(srv) + 20 * DAY, speed=1800)
    run_for(k, srv, T0 + 23 * DAY + 4 * 3_600_000)
    today = oracle.day_of(vnow(srv))
    check_history(k.db, today, since=1672790400000)
    for s in SYMS:
        days = [r[0] for r in query(k.db, "SELECT day FROM daily WHERE symbol = ? ORDER BY day", s)]
        assert days[0] == "2023-01-04" and days[-1] == today
        assert len(days) == len(set(days)) == (T0 + 23 * DAY - 1672790400000) // DAY + 1
        assert query(k.db, "SELECT source FROM daily WHERE symbol = ? AND day = ?", s, today) == [
            ("speed",)]
        assert query(k.db, "SELECT count(*) FROM prophet_input WHERE symbol = ?", s)[0][0] == len(days)
        assert query(k.db, "SELECT count(*) FROM daily WHERE symbol = ? AND ma30 IS NULL", s)[0][0] == 29


def test_adding_a_symbol_backfills_just_it_and_removing_keeps_history(replay, klined, kafka_broker,
                                                                    kafka_topic):
    srv = replay(start="2023-03-10T00:00:30Z", speed=0)
    k = live(klined, srv, kafka_broker, kafka_topic)
    k.once("--symbols", "BTCUSDT")
    assert query(k.db, "SELECT DISTINCT symbol FROM kline_1m") == [("BTCUSDT",)]
    srv.reset_stats()
    k.once("--symbols", "BTCUSDT,ETHUSDT")
    assert srv.stats()["klines_served"] <= 1440 * 2 + 1000, "only ETHUSDT was fetched"
    eth = query(k.db, "SELECT count(*) FROM kline_1m WHERE symbol = 'ETHUSDT'")[0][0]
    assert eth == query(k.db, "SELECT count(*) FROM kline_1m WHERE symbol = 'BTCUSDT'")[0][0]
    # Removing ETHUSDT: it is neither fetched nor streamed, its history stays.
    srv.set_clock(speed=600)
    proc = k.start("--symbols", "BTCUSDT")
    wait_for(lambda: "ws: connected" in open(proc.log.name).read(), timeout=60, step=0.5)
    time.sleep(3)
    code, err = stop(proc)
    assert code == 0, err
    assert "connected to /stream?streams=btcusdt@kline_1m\n" in err
    assert query(k.db, "SELECT count(*) FROM kline_1m WHERE symbol = 'ETHUSDT'")[0][0] == eth
    assert query(k.db, "SELECT count(*) FROM daily WHERE symbol = 'ETHUSDT'")[0][0] > 0
