"""The replay's `--profile binance`: every realistic hostility of the real exchange at
once (WAF 403s with HTML bodies, -1003 429s with Retry-After, -1008 and HTML 5xx, short
and empty 200 pages, a /time a day off now and then, REST publication lag, the real
weight limit, escalating per-IP bans, connection-attempt limits), against the real
binary. The store must come out exact: every minute, every day, outages only where the
exchange really has none (the halt), and not one request sent during a ban."""
import pytest

from conftest import HALT, HALT_MS, query, read_log, stop, wait_for
from test_batch import check_daily, check_minutes
from test_speed import live, settle

SINCE = 1677715200000  # 2023-03-02
SYMS = ("BTCUSDT", "ETHUSDT")


# The 403 pause is minutes by default; the tests only need to see that it waits.
FAST = ("--rest-refusal-pause", "300ms")


@pytest.fixture
def hostile(replay):
    def make(**kw):
        return replay(profile="binance", halts=[f"{HALT[0]}/{HALT[1]}"], **kw)
    return make


def fired(srv):
    return {(r["kind"], r.get("status"), r.get("keep")): r["fired"] for r in srv.faults()}


def test_backfill_against_the_binance_profile(hostile, klined):
    srv = hostile()
    k = klined(srv.rest_url, "--history-start", "2023-03-02", *FAST)
    p = k.once(timeout=300)
    for s in SYMS:
        check_minutes(k.db, s, skip=((0, SINCE), HALT_MS))
        check_daily(k.db, s, skip=((0, SINCE), HALT_MS))
    assert query(k.db, "SELECT symbol, from_ms, to_ms FROM outages ORDER BY symbol") == \
        [(s, *HALT_MS) for s in SYMS]
    f = fired(srv)
    # Each kind of refusal was met at least once on the way, and none was fatal.
    for key in [("status", 503, None), ("short_page", None, 300), ("status", 403, None),
                ("status", 429, None), ("short_page", None, 0)]:
        assert f.get(key, 0) >= 1, (key, f)
    st = srv.stats()
    assert st["violations"] == 0, st
    assert "recorded as an outage" in p.stderr


def test_streaming_against_the_binance_profile(hostile, klined, kafka_broker, kafka_topic):
    # Four virtual hours at 600x through Kafka, on a store backfilled under the same
    # profile: the heals' /time polls meet the skewed clock, pages keep being refused.
    srv = hostile(start="2023-03-10T12:00:30Z", speed=600,
                  faults=[{"kind": "time_skew", "offset_ms": 86_400_000, "after": 1,
                           "count": 3}])
    k = live(klined, srv, kafka_broker, kafka_topic, *FAST)
    proc = k.start()
    wait_for(lambda: "kafka: consuming" in read_log(proc), timeout=120, step=0.5)
    t0 = srv.now_ms()
    wait_for(lambda: srv.now_ms() > t0 + 4 * 3600_000, timeout=60, step=0.5)
    settle(srv, k)
    code, err = stop(proc)
    assert code == 0, err[-3000:]
    last = query(k.db, "SELECT max(open_time) FROM kline")[0][0]
    for s in SYMS:
        check_minutes(k.db, s, skip=((0, 1678320000000), (last + 60_000, 1 << 62)))
    assert query(k.db, "SELECT count(*) FROM outages")[0][0] == 0
    assert srv.stats()["violations"] == 0
    ws = srv.ws_stats()
    assert ws["attempts_refused"] == 0 and ws["connection_attempts"] <= 10, ws
    assert "not believed" in err  # the day-ahead /time was seen and set aside
