"""Issue 14: at most 64 bytes per kline on disk (schema 7, schema/007-dense.sql), what
sqlite3 users see unchanged. The six recorded monthly dumps (259,200 klines of BTCUSDT
and ETHUSDT futures: large volumes, 0.6 % of minutes past 2^53 units) imported into a
fresh store by the real binary, as bench/size.py measures them."""
import os
import sqlite3
import subprocess
from decimal import Decimal

import oracle
from conftest import query


def test_at_most_64_bytes_per_kline(klined_bin, tmp_path):
    db = tmp_path / "k.db"
    files = sorted(str(f) for f in oracle.DATA.glob("*-1m-*.csv.gz"))
    p = subprocess.run([str(klined_bin), "import", "--config", os.devnull, "--db", str(db),
                        *files], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    n = query(db, "SELECT count(*) FROM kline")[0][0]
    assert n == 259_200
    written = sum(f.stat().st_size for f in tmp_path.glob("k.db*")) / n
    vac = tmp_path / "v.db"
    with sqlite3.connect(db) as c:
        c.execute("VACUUM INTO ?", (str(vac),))
    vacuumed = vac.stat().st_size / n
    print(f"{written:.1f} bytes per kline as written, {vacuumed:.1f} vacuumed")
    assert written <= 64 and vacuumed <= 58
    # And what users read of them is the recorded data, exactly (a sample of minutes).
    for sym in ("BTCUSDT", "ETHUSDT"):
        rows = oracle.minutes(sym)
        for ot in sorted(rows)[::997]:
            r = rows[ot]
            got = query(db, "SELECT open, high, low, close, volume, quote_volume, trades "
                            "FROM kline_1m WHERE symbol = ? AND open_time = ?", sym, ot)
            want = tuple(float(Decimal(r[i])) for i in (1, 2, 3, 4, 5, 7)) + (int(r[8]),)
            assert got == [want], (sym, ot)
