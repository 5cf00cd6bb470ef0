"""The symbol set changing while klined runs (issue 14), by the real binary against
the replay exchange and a real Kafka broker: a listing picked up by the hourly
re-resolution (here every 5 virtual minutes), a delisting, and `systemctl reload`
(SIGHUP) adding and removing symbols on the live websocket connections."""
import signal
import time

from conftest import query, read_log, stop, wait_for
from test_http import free_port, metrics as scrape, sample

MIN = 60_000
DAY = 86_400_000


def ws_minutes(db, symbol):
    try:
        return query(db, "SELECT count(*) FROM kline_1m WHERE symbol = ? AND source = 'ws'",
                     symbol)[0][0]
    except Exception:
        return 0


def ledger(db, symbol):
    try:
        return [r[0] for r in query(db, "SELECT event FROM symbol_ledger WHERE symbol = ?",
                                    symbol)]
    except Exception:
        return []


def first(db, symbol):
    return query(db, "SELECT min(open_time) FROM kline_1m WHERE symbol = ?", symbol)[0][0]


def streams(srv):
    """The streams each live connection of the replay carries now."""
    return [set(c.get("streams", ())) for c in srv.ws_stats()["connections"]]


def streamed(srv, symbol):
    return any(f"{symbol.lower()}@kline_1m" in s for s in streams(srv))


def daemon(klined, srv, broker, topic, *extra):
    k = klined(srv.rest_url, "--ws-url", srv.ws_url, "--kafka-brokers", broker.bootstrap,
               "--kafka-topic", topic, "--history-start", "1d", "--http-listen",
               f"127.0.0.1:{free_port()}", *extra)
    k.port = int(k.extra[k.extra.index("--http-listen") + 1].rsplit(":", 1)[1])
    return k


def metrics(k, *names):
    text = scrape(k.port)
    return {n: sample(text, n) for n in names}


def test_a_listing_and_a_delisting_mid_run(replay, klined, kafka_broker, kafka_topic):
    srv = replay(start="2023-03-10T20:00:30Z", speed=60, gen_symbols=3)
    listed = srv.list_at("S0003USDT", srv.now_ms() + 12 * MIN)
    k = daemon(klined, srv, kafka_broker, kafka_topic, "--symbols", "S*USDT",
               "--symbols-refresh", "5m")
    proc = k.start()
    wait_for(lambda: ws_minutes(k.db, "S0001USDT") > 2, timeout=90, step=0.5)
    assert query(k.db, "SELECT count(*) FROM symbol WHERE symbol = 'S0003USDT'") == [(0,)]
    opened = srv.ws_stats()["connections_opened"]

    # Listed: the next resolution takes it, the heal backfills it from its listing,
    # the live connection subscribes it.
    wait_for(lambda: ws_minutes(k.db, "S0003USDT") > 2, timeout=90, step=0.5)
    wait_for(lambda: first(k.db, "S0003USDT") == listed, timeout=60, step=0.5)
    assert "followed" in ledger(k.db, "S0003USDT")
    assert streamed(srv, "S0003USDT")

    # Delisted (BREAK): no longer streamed, its ledger says so, the others go on.
    gone = srv.delist("S0002USDT")
    wait_for(lambda: "stopped" in ledger(k.db, "S0002USDT"), timeout=60, step=0.5)
    wait_for(lambda: not streamed(srv, "S0002USDT"), timeout=30, step=0.5)
    assert query(k.db, "SELECT status, followed FROM symbols WHERE symbol = 'S0002USDT'") == \
        [("BREAK", 1)]
    n1 = ws_minutes(k.db, "S0001USDT")
    wait_for(lambda: ws_minutes(k.db, "S0001USDT") > n1 + 2, timeout=60, step=0.5)
    # Every change went over the live connection: none was opened again.
    st = srv.ws_stats()
    assert st["connections_opened"] == opened, st["close_reasons"]
    m = metrics(k, "klined_symbols_followed", "klined_symbols_streamed",
                "klined_symbols_added_total", "klined_symbols_stopped_total")
    assert m["klined_symbols_followed"] == 3 and m["klined_symbols_streamed"] == 2, m
    assert m["klined_symbols_added_total"] == 1 and m["klined_symbols_stopped_total"] == 1, m
    code, err = stop(proc)
    assert code == 0, err[-3000:]
    assert "S0003USDT: followed from now on" in err
    assert "S0002USDT: the exchange reports status BREAK: no longer streamed" in err

    # Three days later: the delisted symbol's history ends with it, no fill day is
    # invented after its last kline, and a restart leaves its ledger as it was.
    srv.set_clock(now_ms=srv.now_ms() + 3 * DAY, speed=0)
    p = k.once("--symbols", "S*USDT", timeout=180)
    last = query(k.db, "SELECT max(open_time) FROM kline_1m WHERE symbol = 'S0002USDT'")[0][0]
    assert last == gone - MIN
    last_day = time.strftime("%Y-%m-%d", time.gmtime(last / 1000))
    days = query(k.db, "SELECT max(day), count(*) FILTER (WHERE source = 'fill') FROM daily "
                       "WHERE symbol = 'S0002USDT'")[0]
    assert days == (last_day, 0), days
    # the others have every day up to the exchange's today
    today = time.strftime("%Y-%m-%d", time.gmtime(srv.now_ms() / 1000))
    assert query(k.db, "SELECT max(day) FROM daily WHERE symbol = 'S0001USDT'") == [(today,)]
    assert ledger(k.db, "S0002USDT").count("stopped") == 1, p.stderr[-2000:]


def write_conf(path, symbols):
    path.write_text(f"[exchange]\nsymbols = {symbols}\n")


def test_sighup_changes_the_symbols_on_the_live_connection(replay, klined, kafka_broker,
                                                           kafka_topic, tmp_path):
    srv = replay(start="2023-03-10T20:00:30Z", speed=60, gen_symbols=2)
    conf = tmp_path / "klined.conf"
    write_conf(conf, "BTCUSDT,ETHUSDT")
    k = daemon(klined, srv, kafka_broker, kafka_topic)
    argv = k.argv()
    argv[argv.index("--config") + 1] = str(conf)
    k.argv = lambda *a, cmd="run", _argv=argv: _argv + list(a)
    proc = k.start()
    wait_for(lambda: ws_minutes(k.db, "ETHUSDT") > 2, timeout=90, step=0.5)
    opened = srv.ws_stats()["connections_opened"]
    asked = srv.ws_stats()["client_messages"]

    write_conf(conf, "BTCUSDT, S0001USDT")
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: ws_minutes(k.db, "S0001USDT") > 2, timeout=90, step=0.5)
    wait_for(lambda: not streamed(srv, "ETHUSDT"), timeout=30, step=0.5)
    assert streamed(srv, "BTCUSDT") and streamed(srv, "S0001USDT")
    assert ledger(k.db, "ETHUSDT")[-1] == "unfollowed"
    # S0001USDT was backfilled from its coverage start (1d), not only streamed
    start = query(k.db, "SELECT start_ms FROM symbol WHERE symbol = 'S0001USDT'")[0][0]
    wait_for(lambda: first(k.db, "S0001USDT") == start, timeout=60, step=0.5)
    st = srv.ws_stats()
    assert st["connections_opened"] == opened, "a reload must not reconnect"
    assert st["client_messages"] > asked and st["rate_violations"] == 0
    m = metrics(k, "klined_ws_subscribed_total", "klined_ws_unsubscribed_total",
                "klined_ws_control_messages_total")
    assert m["klined_ws_subscribed_total"] >= 1 and m["klined_ws_unsubscribed_total"] >= 1, m
    assert 2 <= m["klined_ws_control_messages_total"] <= 6, m

    # A broken file: said, and the running set stays.
    conf.write_text("[exchange]\nsymbols = BTC/USDT\n")
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP: the configuration has errors" in read_log(proc), timeout=20)
    n = ws_minutes(k.db, "S0001USDT")
    wait_for(lambda: ws_minutes(k.db, "S0001USDT") > n + 1, timeout=60, step=0.5)
    assert proc.poll() is None
    code, err = stop(proc)
    assert code == 0, err[-3000:]
    assert "[exchange] symbols" in err and "BTC/USDT" in err
