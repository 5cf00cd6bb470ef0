#!/usr/bin/env python3
"""Bytes per kline on disk (issue 14): `klined import` of the recorded monthly
dumps (tests/data/binance/, 259,200 klines) into a fresh store, then

  as written   the store's files after a WAL checkpoint, ÷ klines
  vacuumed     the same store after VACUUM, ÷ klines
  kline table  its pages (dbstat), payload and unused bytes per kline

and the projected store size for 1,500 symbols × 1 year of minutes at each.
With --before, the same for another binary (alternating runs, medians of the
import rate), e.g. the release before schema 7:

    git archive 9ddc9ce | tar -x -C /tmp/prev && meson setup /tmp/prev/build /tmp/prev \\
        && ninja -C /tmp/prev/build daemon/klined
    python3 bench/size.py --before /tmp/prev/build/daemon/klined [--after build/daemon/klined]
                          [--rounds 3] [--keep DIR]

Prints a markdown table. The import rate (klines/s, wall clock) is the bulk
insert path's (daemon/store/store_write.c), parsing included.
"""
import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "binance"
YEAR_KLINES = 1500 * 525_600


def files_size(db):
    return sum(f.stat().st_size for f in db.parent.glob(db.name + "*"))


def kline_pages(c):
    """(pages, payload, unused) of the kline table, from the dbstat virtual table."""
    try:
        return c.execute("SELECT count(*), sum(payload), sum(unused) FROM dbstat "
                         "WHERE name = 'kline'").fetchone()
    except sqlite3.OperationalError:  # an SQLite built without dbstat
        return None


def measure(db):
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        n = c.execute("SELECT count(*) FROM kline").fetchone()[0]
        written, pages = files_size(db), kline_pages(c)
    vac = db.with_name("vacuumed.db")
    with sqlite3.connect(db) as c:
        c.execute("VACUUM INTO ?", (str(vac),))
    with sqlite3.connect(vac) as c:
        vpages = kline_pages(c)
        page = c.execute("PRAGMA page_size").fetchone()[0]
        version = c.execute("PRAGMA user_version").fetchone()[0]
    out = {"klines": n, "written": written / n, "vacuumed": vac.stat().st_size / n,
           "page_size": page, "schema": version}
    for name, p in (("w", pages), ("v", vpages)):
        if p:
            out[name + "_table"] = p[0] * page / n
            out[name + "_payload"] = p[1] / n
            out[name + "_unused"] = p[2] / n
    vac.unlink()
    return out


def run(binary, tmp, files):
    d = Path(tempfile.mkdtemp(dir=tmp))
    db = d / "k.db"
    t0 = time.monotonic()
    p = subprocess.run([binary, "import", "--config", os.devnull, "--db", str(db), *files],
                       capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"{binary} import failed ({p.returncode}):\n{p.stderr[-3000:]}")
    m = measure(db)
    m["rate"] = m["klines"] / wall
    shutil.rmtree(d)
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--after", default=str(REPO / "build" / "daemon" / "klined"))
    ap.add_argument("--before")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", help="a folder for the stores (default: a temporary one)")
    a = ap.parse_args()
    files = [str(f) for f in sorted(DATA.glob("*-1m-*.csv.gz"))]
    bins = {"before": a.before, "after": a.after} if a.before else {"after": a.after}
    tmp = a.keep or tempfile.mkdtemp()
    load0 = os.getloadavg()
    res = {k: [] for k in bins}
    for _ in range(a.rounds):
        for k, b in bins.items():
            res[k].append(run(b, tmp, files))
    if not a.keep:
        shutil.rmtree(tmp)
    print(f"load average {load0[0]:.2f} -> {os.getloadavg()[0]:.2f}; "
          f"{len(files)} dumps, medians of {a.rounds} rounds\n")
    print("| binary | schema | klines | import klines/s | B/kline as written | B/kline vacuumed "
          "| kline table B/kline (payload, unused) vacuumed | 1,500 sym × 1 y as written "
          "| vacuumed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k, rs in res.items():
        m = rs[-1]
        rate = statistics.median(r["rate"] for r in rs)
        tab = (f"{m['v_table']:.1f} ({m['v_payload']:.1f}, {m['v_unused']:.1f})"
               if "v_table" in m else "–")
        print(f"| {k} | {m['schema']} | {m['klines']:,} | {rate:,.0f} | {m['written']:.1f} "
              f"| {m['vacuumed']:.1f} | {tab} | {m['written'] * YEAR_KLINES / 1e9:.1f} GB "
              f"| {m['vacuumed'] * YEAR_KLINES / 1e9:.1f} GB |")


if __name__ == "__main__":
    main()
