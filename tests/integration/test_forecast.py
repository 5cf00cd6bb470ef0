"""examples/forecast.py with the real Prophet (tests/requirements-forecast.txt)
on a store the real binary imports from the recorded minutes: it fits the
complete days only (a `speed` row, however wild, changes nothing), writes
the `forecast` table, and the daemon serves it at /api/forecast."""
import subprocess
import sys
import time

import pytest

from conftest import ROOT, query, stop, wait_for
from test_http import free_port, get_json, http_args, up

DATA = ROOT / "tests" / "data" / "binance"
SYMS = ("BTCUSDT", "ETHUSDT")


def test_prophet_forecast_written_and_served(klined, replay, tmp_path):
    p = subprocess.run([sys.executable, "-c", "import prophet, pandas"], capture_output=True,
                       text=True)
    assert p.returncode == 0, ("pip install -r tests/requirements-forecast.txt\n" + p.stderr)
    k = klined("http://127.0.0.1:9", "--symbols", ",".join(SYMS))
    r = k.cmd("import", *sorted(str(f) for f in DATA.glob("*-1m-2023-0*.csv.gz")))
    assert r.returncode == 0, r.stderr
    assert query(k.db, "SELECT source, count(*) FROM prophet_input GROUP BY 1") == [("batch", 180)]
    # Today's unfinished row, as the speed layer writes it: not a complete day.
    query(k.db, "INSERT INTO day SELECT sid, '2023-04-01', 1e9, 1e9, 1e9, 1e9, 0, 0, 0, 2, "
                "'1000000000.00000000', '1000000000.00000000', '1000000000.00000000', "
                "'1000000000.00000000', '0.00000000', '0.00000000' FROM symbol")
    assert query(k.db, "SELECT count(*) FROM prophet_input WHERE source = 'speed'") == [(2,)]
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, str(ROOT / "examples" / "forecast.py"), "--db",
                        str(k.db), "--days", "14"], capture_output=True, text=True, timeout=300)
    took = time.monotonic() - t0
    assert p.returncode == 0, p.stderr[-4000:]
    print(p.stdout, f"forecast.py took {took:.1f} s")
    for s in SYMS:
        rows = query(k.db, "SELECT ds, yhat, yhat_lower, yhat_upper, made_at FROM forecast "
                     "WHERE symbol = ? ORDER BY ds", s)
        assert [r[0] for r in rows] == [f"2023-04-{d:02d}" for d in range(1, 15)], s
        last = query(k.db, "SELECT y FROM prophet_input WHERE symbol = ? AND ds = '2023-03-31'",
                     s)[0][0]
        for ds, yhat, lo, hi, made_at in rows:
            assert lo <= yhat <= hi, (s, ds)
            # Fitted on the closes, not the 1e9 speed row: near the last close.
            assert 0.5 * last < yhat < 1.5 * last, (s, ds, yhat, last)
            assert made_at == rows[0][4] > 1_600_000_000_000
    # A second run replaces the forecast, never doubles it.
    p = subprocess.run([sys.executable, str(ROOT / "examples" / "forecast.py"), "--db",
                        str(k.db), "--days", "7", "--symbol", "ETHUSDT"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-4000:]
    assert query(k.db, "SELECT symbol, count(*) FROM forecast GROUP BY 1") == [
        ("BTCUSDT", 14), ("ETHUSDT", 7)]
    # The daemon serves it as it is in the table.
    srv = replay(start="2023-04-01T00:00:30Z", speed=0)
    port = free_port()
    k.rest_url = srv.rest_url
    proc = k.start("--kafka-brokers", "off", *http_args(port))
    wait_for(lambda: up(port), timeout=60, step=0.2)
    st, j = get_json(port, "/api/forecast?symbol=BTCUSDT")
    assert st == 200 and j["symbol"] == "BTCUSDT"
    rows = query(k.db, "SELECT ds, yhat, yhat_lower, yhat_upper, made_at FROM forecast "
                 "WHERE symbol = 'BTCUSDT' ORDER BY ds")
    assert [(f["ds"], f["yhat"], f["yhat_lower"], f["yhat_upper"]) for f in j["forecast"]] == [
        r[:4] for r in rows]
    assert j["made_at"] == rows[0][4]
    st, j = get_json(port, "/api/forecast?symbol=BTCUSDT&days=3")
    assert st == 200 and len(j["forecast"]) == 3
    st, j = get_json(port, "/api/forecast?symbol=NOPE")
    assert st == 400 and "symbol" in j["error"]
    code, err = stop(proc)
    assert code == 0, err
