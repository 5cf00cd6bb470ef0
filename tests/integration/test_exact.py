"""Issue 12: exact at any magnitude. Synthetic high-supply symbols, made
exactly from the recorded data by the replay exchange (--hisupply: prices
divided by 10^4..10^6, base volumes multiplied by 10^8..10^11, printed with
8 decimals, so single minutes pass 1e11 and days 1e14), are backfilled over
REST, streamed through Kafka and imported from dump files beside the real
symbols; every minute and every day is compared with Python's Decimal."""
import gzip
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest

import binance_replay as br
import oracle
from conftest import HALT, HALT_MS, query, read_log, stop, wait_for
from test_batch import stored_minutes
from test_speed import settle

# The newest schema: one numbered migration each (schema/meson.build).
SCHEMA = len(list((Path(__file__).resolve().parents[2] / "schema").glob("[0-9][0-9][0-9]-*.sql")))

HISUPPLY = ["PEPEUSDT=BTCUSDT/1e5/1e8", "SHIBUSDT=ETHUSDT/1e4/1e9", "BTTCUSDT=BTCUSDT/1e6/1e11"]
SPECS = {n: (s, a, b) for n, s, a, b in map(br.parse_hisupply, HISUPPLY)}
E8 = Decimal(100_000_000)
MAR1 = 1677628800000  # 2023-03-01
VALUES = ("open", "high", "low", "close", "volume", "quote_volume")


def hs_minutes(name):
    """{open_time: 12 exact strings} of a high-supply symbol, from the recorded source."""
    if name not in SPECS:
        return oracle.minutes(name)
    src, a, b = SPECS[name]
    return {ot: br.hisupply_fields(p, a, b) for ot, p in oracle.minutes(src).items()}


def in_range(name, since, until, skip):
    return {ot: p for ot, p in hs_minutes(name).items()
            if since <= ot < until and not any(x <= ot < y for x, y in skip)}


def exact_days(rows):
    """{day: {open.. quote_volume: Decimal, trades: int}} from minute rows."""
    out = {}
    for ot in sorted(rows):
        p = rows[ot]
        o, h, lo, c, v, q = (Decimal(p[i]) for i in (1, 2, 3, 4, 5, 7))
        d = oracle.day_of(ot)
        r = out.get(d)
        if r is None:
            out[d] = dict(open=o, high=h, low=lo, close=c, volume=v, quote_volume=q,
                          trades=int(p[8]))
        else:
            r["high"], r["low"], r["close"] = max(r["high"], h), min(r["low"], lo), c
            r["volume"] += v
            r["quote_volume"] += q
            r["trades"] += int(p[8])
    return out


def check_symbol(db, name, since=MAR1, until=1 << 62, skip=(HALT_MS,), days_until="9999",
                 source="batch", rejects=0):
    rows = in_range(name, since, until, skip)
    # Every minute, exactly, in the store.
    got = {r[0]: r[1:] for r in stored_minutes(db, name) if since <= r[0] < until}
    want = {ot: tuple(int(Decimal(p[i]) * E8) for i in (1, 2, 3, 4, 5, 7)) + (int(p[8]),)
            for ot, p in rows.items()}
    missing = sorted(set(want) - set(got))
    assert not missing, f"{name}: {len(missing)} minutes missing, first {missing[:3]}"
    bad = [t for t in want if want[t] != got[t]]
    assert not bad, f"{name}: {len(bad)} minutes differ, first {bad[:3]}"
    # kline_1m: every REAL is the double nearest to the exact value.
    view = {r[0]: r[1:] for r in query(
        db, "SELECT open_time, open, high, low, close, volume, quote_volume FROM kline_1m "
            "WHERE symbol = ? AND open_time >= ? AND open_time < ?", name, since, until)}
    off = [t for t, p in rows.items()
           if view[t] != tuple(float(Decimal(p[i])) for i in (1, 2, 3, 4, 5, 7))]
    assert not off, f"{name}: {len(off)} kline_1m rows not the nearest double, first {off[:3]}"
    # daily_exact: the Decimal aggregate, 8 decimals; daily: its nearest double.
    exp = {d: e for d, e in exact_days(rows).items() if d < days_until}
    ex = query(db, "SELECT day, source, open, high, low, close, volume, quote_volume, trades "
                   "FROM daily_exact WHERE symbol = ? AND day < ? ORDER BY day", name, days_until)
    assert [r[0] for r in ex] == sorted(exp), f"{name}: days differ"
    for r in ex:
        e = exp[r[0]]
        assert r[1] == source and r[8] == e["trades"], (name, r)
        assert r[2:8] == tuple(f"{e[k]:.8f}" for k in VALUES), (name, r, e)
    dl = query(db, "SELECT day, open, high, low, close, volume, quote_volume, trades, ma7, ma30, "
                   "typeof(volume) FROM daily WHERE symbol = ? AND day < ? ORDER BY day",
               name, days_until)
    closes = [exp[r[0]]["close"] for r in dl]
    ma7, ma30 = oracle.rolling_mean(closes, 7), oracle.rolling_mean(closes, 30)
    for i, r in enumerate(dl):
        e = exp[r[0]]
        assert r[1:7] == tuple(float(e[k]) for k in VALUES), (name, r)
        assert r[10] == "real"
        for got_ma, want_ma in ((r[8], ma7[i]), (r[9], ma30[i])):
            if want_ma is None:
                assert got_ma is None
            else:
                assert abs(Decimal(got_ma) - want_ma) <= want_ma * Decimal("1e-9"), (name, r[0])
    if rejects is not None:
        assert query(db, "SELECT count(*) FROM reject WHERE symbol = ?", name) == [(rejects,)]
    return exp


def test_hisupply_values_are_big_enough():
    """The synthetic symbols really are past what int64 at 1e-8 and doubles hold."""
    rows = hs_minutes("BTTCUSDT")
    vmax = max(Decimal(p[5]) for p in rows.values())
    assert vmax > Decimal("1e13")
    days = exact_days(in_range("SHIBUSDT", MAR1, 1 << 62, ()))
    assert max(d["volume"] for d in days.values()) > Decimal("1e14")
    assert min(Decimal(p[1]) for p in hs_minutes("PEPEUSDT").values()) < 1


def test_rest_backfill_exact(replay, klined):
    srv = replay(halts=["/".join(HALT)], hisupply=HISUPPLY)
    k = klined(srv.rest_url, "--symbols", "BTCUSDT," + ",".join(SPECS),
               "--history-start", "2023-03-01")
    p = k.once()
    assert "backfill: done" in p.stderr
    for name in ("BTCUSDT", *SPECS):
        check_symbol(k.db, name)
    # 1440 minutes of BTTC are a day of 1e16 units: far past int64 at 1e-8.
    assert query(k.db, "SELECT max(length(volume)) FROM daily_exact WHERE symbol = 'BTTCUSDT'"
                 )[0][0] >= 26
    st = json.loads(k.cmd("status", "--json").stdout)
    bttc = [s for s in st["symbols"] if s["symbol"] == "BTTCUSDT"][0]
    assert bttc["holes"] == 0 and bttc["rejects"] == 0
    assert st["schema_version"] == SCHEMA
    last = query(k.db, "SELECT volume FROM daily_exact WHERE symbol = 'BTTCUSDT' "
                       "ORDER BY day DESC LIMIT 1")[0][0]
    assert bttc["last_day"]["volume_exact"] == last
    assert bttc["last_day"]["volume"] == float(Decimal(last))
    close = query(k.db, "SELECT close FROM daily_exact WHERE symbol = 'PEPEUSDT' "
                        "ORDER BY day DESC LIMIT 1")[0][0]
    assert f"close {close}\n" in k.cmd("status").stdout
    # A second run finds nothing to refetch: nothing was refused, nothing is a hole.
    srv.reset_stats()
    k.once()
    assert srv.stats()["requests"].get("/api/v3/klines", 0) == 0


def write_dump(path, rows):
    with open(path, "w") as f:
        for ot in sorted(rows):
            f.write(",".join(str(x) for x in rows[ot]) + "\n")


def test_import_dump_files_exact(klined, tmp_path):
    files = []
    for name in SPECS:
        for month in ("2023-02", "2023-03"):
            rows = {ot: p for ot, p in hs_minutes(name).items() if oracle.day_of(ot)[:7] == month}
            f = tmp_path / f"{name}-1m-{month}.csv"
            write_dump(f, rows)
            files.append(str(f))
    k = klined("http://127.0.0.1:9", db=tmp_path / "i.db")
    p = k.cmd("import", *files, timeout=300)
    assert p.returncode == 0, p.stderr
    for name in SPECS:
        assert query(k.db, "SELECT DISTINCT source FROM kline_1m WHERE symbol = ?", name) == [
            ("import",)]
        check_symbol(k.db, name, since=1675209600000, skip=())


def test_refusals_keep_their_reason(klined, tmp_path):
    """Strict validation at the new limits: beyond 20 integer digits, finer than 1e-8,
    signs, exponents and spaces are refused with the reason in `reject`, never wrapped."""
    base = br.hisupply_fields(oracle.minutes("BTCUSDT")[1672531200000], 5, 8)
    cases = {5: "100000000000000000000.00000000", 7: "1.000000001", 9: "-1", 10: "1e5",
             1: "+0.1", 2: " 0.2"}
    lines = []
    for i in range(1440):
        p = list(base)
        p[0], p[6] = str(1672531200000 + i * 60000), str(1672531200000 + i * 60000 + 59999)
        p[5] = "99999999999999999999.99999999"  # the largest value is accepted
        if i in cases:
            p[i] = cases[i]
        lines.append(",".join(p))
    f = tmp_path / "PEPEUSDT-1m-2023-01-01.csv"
    f.write_text("\n".join(lines) + "\n")
    k = klined("http://127.0.0.1:9", db=tmp_path / "i.db")
    p = k.cmd("import", str(f))
    assert p.returncode == 0, p.stderr
    got = dict(query(k.db, "SELECT origin, reason FROM reject"))
    assert got == {
        "PEPEUSDT-1m-2023-01-01.csv:6": "price or volume beyond 20 integer digits",
        "PEPEUSDT-1m-2023-01-01.csv:8": "price or volume finer than 8 decimals",
        "PEPEUSDT-1m-2023-01-01.csv:10": "negative volume",
        "PEPEUSDT-1m-2023-01-01.csv:11": "price or volume is not a decimal string",
        "PEPEUSDT-1m-2023-01-01.csv:2": "price or volume is not a decimal string",
        "PEPEUSDT-1m-2023-01-01.csv:3": "price or volume is not a decimal string",
    }, got
    assert query(k.db, "SELECT count(*), max(volume) FROM kline_1m") == [(1434, 1e20)]


def test_stream_through_kafka_exact(replay, klined, kafka_broker, kafka_topic):
    srv = replay(start="2023-03-10T00:00:30Z", speed=3600, hisupply=HISUPPLY)
    syms = ["BTCUSDT", *SPECS]
    k = klined(srv.rest_url, "--ws-url", srv.ws_url, "--kafka-brokers", kafka_broker.bootstrap,
               "--kafka-topic", kafka_topic, "--history-start", "2023-03-09",
               "--symbols", ",".join(syms))
    proc = k.start()
    # A virtual day streamed, and the watermark hour after it: the day is certified.
    wait_for(lambda: srv.now_ms() >= 1678492800000 + 3_600_000 * 1.5, timeout=120, step=0.5)
    wait_for(lambda: query(k.db, "SELECT count(*) FROM daily WHERE day = '2023-03-10' "
                                 "AND source = 'batch'")[0][0] == len(syms), timeout=60, step=0.5)
    # The clock frozen, until the heal has filled what the stream missed: on a
    # loaded machine the stream can lag behind a day's rotation at 3600x.
    settle(srv, k)
    code, err = stop(proc)
    assert code == 0, err
    assert "kafka: consuming" in err
    newest = query(k.db, "SELECT max(open_time) FROM kline")[0][0]
    ws = query(k.db, "SELECT count(*) FROM kline_1m WHERE source = 'ws' AND symbol = 'BTTCUSDT'")
    assert ws[0][0] > 0, "no BTTC minute came over the stream"
    for name in syms:
        # Certified days and every minute up to the newest, over REST and the stream.
        check_symbol(k.db, name, since=1678320000000, until=newest + 1, skip=(),
                     days_until="2023-03-11")
        # Today's speed row: exact sums of the closed minutes (and maybe the open one).
        rows = in_range(name, 1678492800000, newest + 1, ())
        e = exact_days(rows).get("2023-03-11")
        r = query(k.db, "SELECT source, open, volume FROM daily_exact WHERE symbol = ? "
                        "AND day = '2023-03-11'", name)
        if e:
            assert r and r[0][0] == "speed" and r[0][1] == f"{e['open']:.8f}", (name, r)
            assert Decimal(r[0][2]) >= e["volume"], (name, r, e)
    assert "refused" not in err


def test_api_daily_exact(replay, klined):
    from test_http import free_port, get_json, http_args, up
    srv = replay(hisupply=HISUPPLY)
    port = free_port()
    k = klined(srv.rest_url, "--kafka-brokers", "off", "--history-start", "2023-03-20",
               "--symbols", "BTCUSDT,BTTCUSDT", *http_args(port))
    proc = k.start()
    wait_for(lambda: up(port), timeout=60, step=0.2)
    wait_for(lambda: "backfill: done" in read_log(proc), timeout=120, step=0.5)
    st, d = get_json(port, "/api/daily?symbol=BTTCUSDT&days=5&exact=1")
    assert st == 200 and len(d["days"]) == 5
    want = query(k.db, "SELECT day, open, high, low, close, volume, quote_volume FROM daily_exact "
                       "WHERE symbol = 'BTTCUSDT' ORDER BY day DESC LIMIT 5")[::-1]
    for row, w in zip(d["days"], want):
        assert row["day"] == w[0]
        assert tuple(row["exact"][c] for c in VALUES) == w[1:]
        # The numbers are the nearest doubles as the API prints reals: 15 digits.
        for c, x in zip(VALUES, w[1:]):
            assert abs(Decimal(row[c]) - Decimal(x)) <= Decimal(x) * Decimal("5e-15"), (c, x)
    st, d = get_json(port, "/api/daily?symbol=BTTCUSDT&days=2")
    assert st == 200 and "exact" not in d["days"][0]
    st, d = get_json(port, "/api/daily?symbol=BTTCUSDT&exact=2")
    assert st == 400
    code, _ = stop(proc)
    assert code == 0


# ---- upgrade of a store written by the previous release (schema 2) -------------------

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "schema2.db.gz"
UNITS_2_53 = 9007199254740992
# kline_units: schema 7's kline as schema 3 kept it (schema 2 had the kline table so).
BIG_ROWS = ("SELECT count(*) FROM kline_units WHERE x IS NULL AND max(open, high, low, close, "
            f"volume, quote_volume, taker_base, taker_quote) > {UNITS_2_53}")


def schema2_store(path):
    """The fixture (tests/integration/fixtures/make_schema2.py) as a fresh file."""
    path.write_bytes(gzip.decompress(FIXTURE.read_bytes()))
    return path


def fingerprint(db, tables=("kline", "day", "symbol", "outage")):
    h = hashlib.sha256()
    for t in tables:
        for row in query(db, f"SELECT * FROM {t} ORDER BY 1, 2"):
            h.update(repr(row).encode())
    return h.hexdigest()


def test_upgrade_schema2_store_in_place(replay, klined, tmp_path):
    db = schema2_store(tmp_path / "old.db")
    assert query(db, "PRAGMA user_version") == [(2,)]
    old = {r[0]: r[1:] for r in query(
        db, "SELECT s.symbol || ' ' || k.open_time, k.open, k.high, k.low, k.close, k.volume, "
            "k.quote_volume, k.trades FROM kline k JOIN symbol s USING (sid)")}
    # What schema 2 got wrong: a day whose volume wrapped, a minute it refused.
    assert query(db, "SELECT volume < 0 FROM daily WHERE symbol = 'MIDUSDT'") == [(1,)]
    assert query(db, "SELECT count(*) FROM reject") == [(1,)]
    assert query(db, BIG_ROWS.replace("x IS NULL AND ", "").replace("kline_units", "kline")
                 )[0][0] > 2000
    srv = replay(start="2023-03-03T00:00:30Z", hisupply=["MIDUSDT=BTCUSDT/1e5/1e7"])
    k = klined(srv.rest_url, "--symbols", "BTCUSDT,MIDUSDT", "--history-start", "2023-03-01",
               db=db)
    p = k.once()
    assert query(db, "PRAGMA user_version") == [(SCHEMA,)]
    # Nothing lost: every minute of the old store, exactly.
    new = {}
    for name in ("BTCUSDT", "MIDUSDT"):
        for r in stored_minutes(db, name):
            new[f"{name} {r[0]}"] = r[1:]
    assert {t: new[t] for t in old} == old
    assert query(db, BIG_ROWS) == [(0,)]
    # The refused minute healed from REST, the wrapped day recomputed: all exact.
    SPECS["MIDUSDT"] = ("BTCUSDT", 5, 7)
    try:
        for name in ("BTCUSDT", "MIDUSDT"):
            check_symbol(db, name, since=MAR1, until=MAR1 + 2 * 86_400_000, skip=(),
                         days_until="2023-03-03", rejects=None)
    finally:
        del SPECS["MIDUSDT"]
    assert "refused" not in p.stderr


@pytest.mark.serial  # measures time: alone, after the parallel part
def test_upgrade_killed_is_old_or_new(klined_bin, tmp_path):
    """kill -9 at any moment of the upgrade leaves either the old store or the new one."""
    import random
    import sqlite3
    base = schema2_store(tmp_path / "base.db")
    # A longer store of the same rows (schema 2's own format): 60 more 2-day copies of
    # MIDUSDT, all past 2^53 units, so the upgrade takes a measurable while.
    with sqlite3.connect(base) as c:
        for i in range(1, 61):
            c.execute("INSERT INTO kline SELECT sid, open_time - ?1, close_time - ?1, open, high, "
                      "low, close, volume, quote_volume, taker_base, taker_quote, trades, source "
                      "FROM kline WHERE sid = (SELECT sid FROM symbol WHERE symbol = 'MIDUSDT') "
                      "AND open_time >= 1677628800000", (i * 172_800_000,))
    old_print, n = fingerprint(base), query(base, "SELECT count(*) FROM kline")[0][0]

    def upgrade(db, kill_after=None):
        argv = [str(klined_bin), "run", "--once", "--config", os.devnull, "--db", str(db),
                "--rest-url", "http://127.0.0.1:9", "--symbols", "BTCUSDT", "--http-listen", "off"]
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if kill_after is not None:
                time.sleep(kill_after)
            else:
                wait_for(lambda: query(db, "PRAGMA user_version")[0][0] == SCHEMA, timeout=120,
                         step=0.01)
            return time.monotonic() - t0
        finally:
            proc.kill()
            proc.wait()

    full = tmp_path / "full.db"
    shutil.copy(base, full)
    took = upgrade(full)
    seen = {2: 0, SCHEMA: 0}
    rnd = random.Random(12)
    kills = [took * (0.1 + 1.4 * i / 7) * rnd.uniform(0.9, 1.1) for i in range(8)]
    for i in range(16):
        if i >= 8:
            if seen[2] and seen[SCHEMA]:
                break
            # A loaded machine made this upgrade slower (or faster) than the one
            # measured: kill later until one lands after it, earlier until one
            # lands before it.
            extra = i - 7
            kills.append(took * 1.5 * (1 + extra) if not seen[SCHEMA]
                         else took * 0.1 / 2 ** extra)
        db = tmp_path / f"k{i}.db"
        shutil.copy(base, db)
        upgrade(db, kill_after=kills[i])
        assert query(db, "PRAGMA integrity_check") == [("ok",)]
        v = query(db, "PRAGMA user_version")[0][0]
        seen[v] += 1
        if v == 2:
            assert fingerprint(db) == old_print, f"kill {i}: schema 2 but changed"
        else:
            assert v == SCHEMA
            assert query(db, "SELECT count(*) FROM kline") == [(n,)]
            assert query(db, BIG_ROWS) == [(0,)]
            assert query(db, "SELECT count(*) FROM daily_exact") == query(
                full, "SELECT count(*) FROM daily_exact")
            assert fingerprint(db, ("kline", "outage")) == fingerprint(full, ("kline", "outage"))
    print(f"upgrade of {n} klines took {took:.2f} s; kills: {seen}")
    assert seen[2] and seen[SCHEMA], (seen, took)


# ---- upgrade of a store written by the release before the dense row (schema 5) ------

FIXTURE5 = Path(__file__).resolve().parent / "fixtures" / "schema5.db.gz"
VIEWS = ("kline_1m", "kline_5m", "kline_1h", "daily", "daily_exact", "prophet_input", "outages")


def view_rows(db, table="kline"):
    """Every row users see, and every kline as schema 3 kept it (kline_units since 7)."""
    out = {v: [repr(r) for r in query(db, f"SELECT * FROM {v} WHERE symbol <> 'NEWUSDT' "
                                          "ORDER BY 1, 2")] for v in VIEWS}
    out["kline"] = [repr(r) for r in query(
        db, f"SELECT * FROM {table} WHERE sid IN (SELECT sid FROM symbol "
            "WHERE symbol <> 'NEWUSDT') ORDER BY 1, 2")]
    return out


def test_upgrade_schema5_store_keeps_every_view(klined_bin, tmp_path):
    """klined's first write to a store of the previous release (here: an import of one
    more symbol) converts its klines to schema 7's dense row; kline_1m, kline_5m,
    kline_1h, daily, daily_exact... give the same rows, byte for byte, including minutes
    past 2^53 units and a 2017 maintenance bar off the minute with its close time."""
    db = tmp_path / "old.db"
    db.write_bytes(gzip.decompress(FIXTURE5.read_bytes()))
    assert query(db, "PRAGMA user_version") == [(5,)]
    before = view_rows(db)
    assert query(db, "SELECT count(*) FROM kline WHERE x IS NOT NULL")[0][0] > 1440
    assert query(db, "SELECT open_time % 60000, close_time - open_time FROM kline "
                     "WHERE close_time - open_time <> 59999 ORDER BY 1") == [(0, 41646),
                                                                             (17000, 42999)]
    new = tmp_path / "NEWUSDT-1m-2023-03-02.csv"
    new.write_text("".join(",".join(p) + "\n" for ot, p in sorted(
        oracle.minutes("ETHUSDT").items()) if oracle.day_of(ot) == "2023-03-02"))
    p = subprocess.run([str(klined_bin), "import", "--config", os.devnull, "--db", str(db),
                        str(new)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert query(db, "PRAGMA user_version") == [(SCHEMA,)]
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    after = view_rows(db, "kline_units")
    for v in before:
        assert after[v] == before[v], v
    # Dense: only the minutes past 2^53 units keep the exact form; close_time only where
    # it is not the minute's end.
    assert query(db, "SELECT count(*) FROM kline WHERE (scale IS NULL) <> (x IS NOT NULL)"
                 ) == [(0,)]
    assert query(db, "SELECT count(*) FROM kline WHERE close_time IS NOT NULL") == [(2,)]


def test_long_upgrade_asks_systemd_for_time(klined_bin, tmp_path):
    """Schema 7 rewrites every kline before READY=1 (about 2.5 s per million): under
    systemd, the start timeout (90 s by default) would kill a large store's upgrade,
    rolled back, at every restart. The upgrade sends EXTEND_TIMEOUT_USEC= as it goes."""
    import socket
    db = tmp_path / "old.db"
    db.write_bytes(gzip.decompress(FIXTURE5.read_bytes()))
    with closing(sqlite3.connect(db)) as c, c:
        # 70,000 klines in schema 5's own layout: the fixture's days copied back in time.
        for i in range(1, 16):
            c.execute("INSERT INTO kline SELECT sid, open_time - ?1, close_time - ?1, open, high, "
                      "low, close, volume, quote_volume, taker_base, taker_quote, trades, source, "
                      "x FROM kline WHERE open_time >= 1677628800000", (i * 86_400_000,))
    old = query(db, "SELECT * FROM kline ORDER BY 1, 2")
    assert len(old) > 65536
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.05)
    new = tmp_path / "NEWUSDT-1m-2023-03-02.csv"
    new.write_text("".join(",".join(p) + "\n" for ot, p in sorted(
        oracle.minutes("ETHUSDT").items()) if oracle.day_of(ot) == "2023-03-02"))
    p = subprocess.run([str(klined_bin), "import", "--config", os.devnull, "--db", str(db),
                        str(new)], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, NOTIFY_SOCKET=path))
    msgs = []
    while True:
        try:
            msgs.append(sock.recv(4096).decode())
        except socket.timeout:
            break
    assert p.returncode == 0, p.stderr
    assert any(m.startswith("EXTEND_TIMEOUT_USEC=60000000\nSTATUS=upgrading the store to "
                            "schema 7") for m in msgs), msgs
    assert "upgrade to schema 7: " in p.stderr
    assert query(db, "SELECT * FROM kline_units WHERE sid IN (SELECT sid FROM symbol WHERE "
                     "symbol <> 'NEWUSDT') ORDER BY 1, 2") == old
