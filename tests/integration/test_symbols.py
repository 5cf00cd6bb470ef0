"""[exchange] symbols with patterns (issue 14): names, all, globs and exclusions resolved
against the exchange's TRADING symbols at start, by the real binary."""
import pytest

from conftest import query

START = "2023-03-31T00:00:30Z"


@pytest.fixture
def market(replay):
    srv = replay(start=START, gen_symbols=4)   # S0001USDT..S0004USDT serve recorded data
    srv.delist("S0004USDT", srv.now_ms() - 6 * 3_600_000)   # BREAK since 18:00
    return srv


def stored(db):
    return sorted(r[0] for r in query(db, "SELECT symbol FROM symbol"))


def run(klined, srv, symbols, *extra):
    k = klined(srv.rest_url, "--symbols", symbols, "--history-start", "1d",
               "--kafka-brokers", "off", *extra)
    return k, k.once(check=False)


def test_patterns_and_exclusions(market, klined):
    k, p = run(klined, market, "*USDT,-S0002*")
    assert p.returncode == 0, p.stderr[-3000:]
    # the BREAK symbol is not TRADING: no pattern takes it
    assert stored(k.db) == ["BTCUSDT", "ETHUSDT", "S0001USDT", "S0003USDT"]
    assert "[exchange] symbols: 4 of the exchange's 5 TRADING symbols" in p.stderr
    req = market.stats()["requests"]
    # the TRADING list answers for every symbol it takes: no second request (weight 20 each)
    assert req.get("/api/v3/exchangeInfo") == 1
    # every resolved symbol has its day
    for s in stored(k.db):
        assert query(k.db, "SELECT count(*) FROM daily WHERE symbol = ? AND source = 'batch'",
                     s) == [(1,)], s


def test_all_and_a_plain_name_beside_it(market, klined):
    # a plain name is kept even when not TRADING (its history), a pattern never takes one
    k, p = run(klined, market, "all,-S000[13]USDT,S0004USDT")
    assert p.returncode == 0, p.stderr[-3000:]
    assert stored(k.db) == ["BTCUSDT", "ETHUSDT", "S0002USDT", "S0004USDT"]
    assert "S0004USDT: the exchange reports status BREAK" in p.stderr
    # only the name the TRADING list does not answer for is asked about
    infos = [e["query"] for e in market.stats(with_log=True)["log"]
             if e["path"] == "/api/v3/exchangeInfo"]
    assert len(infos) == 2 and "S0004USDT" in infos[1] and "BTCUSDT" not in infos[1], infos


def test_patterns_matching_nothing_exit_78(market, klined):
    k, p = run(klined, market, "*BUSD,XYZ?")
    assert p.returncode == 78
    assert "[exchange] symbols: the patterns match none of the exchange's 5 TRADING" in p.stderr


@pytest.mark.parametrize("bad, why", [
    ("-*USDT", "only exclusions"),
    ("*USDT,*USDT", "item *USDT given twice"),
    ("[BTC", "not a valid pattern"),
    ("-all", "excludes everything"),
    ("BTC/USDT", "'BTC/USDT' is not a symbol"),
])
def test_bad_items_exit_78_naming_them(klined, bad, why):
    k = klined("http://127.0.0.1:9", "--symbols", bad)
    p = k.once(check=False)
    assert p.returncode == 78
    assert "symbols" in p.stderr and why in p.stderr, p.stderr


def test_the_page_and_api_serve_the_resolved_symbols(market, klined):
    from test_http import free_port, get_json, metrics, sample, up
    from conftest import stop, wait_for
    port = free_port()
    k = klined(market.rest_url, "--symbols", "S*,-S0002USDT", "--history-start", "1d",
               "--kafka-brokers", "off", "--http-listen", f"127.0.0.1:{port}")
    proc = k.start()
    wait_for(lambda: up(port), timeout=60)

    def served():
        st, j = get_json(port, "/api/status")
        return st == 200 and j["configured_symbols"] == ["S0001USDT", "S0003USDT"] and j
    wait_for(served, timeout=60)
    wait_for(lambda: get_json(port, "/api/daily?symbol=S0003USDT&days=2")[1].get("days"),
             timeout=60)
    st, j = get_json(port, "/api/daily?symbol=S0003USDT&days=2")
    assert st == 200 and j["days"][-1]["source"] in ("batch", "speed")
    # a pattern is not a symbol, nor is an excluded one
    assert get_json(port, "/api/daily?symbol=S*")[0] == 400
    assert get_json(port, "/api/klines?symbol=S0002USDT&interval=1h")[0] == 400
    assert get_json(port, "/api/klines?symbol=S0001USDT&interval=1h&limit=3")[0] == 200
    text = metrics(port)
    assert 'symbol="S*' not in text   # per-symbol samples come with stream events
    stop(proc)
