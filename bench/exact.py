#!/usr/bin/env python3
"""Issue 12's cost check: the previous release (int64 decimals, schema 2) against
this tree (128-bit decimals, schema 3) on ordinary symbols, in one run.

    git archive 4e89fc1 | tar -x -C /tmp/prev && meson setup /tmp/prev/build /tmp/prev \\
        && ninja -C /tmp/prev/build daemon/klined
    python3 bench/exact.py --before /tmp/prev/build/daemon/klined [--after build/daemon/klined]
                           [--rounds 3] [--days 365]

Two workloads, each run --rounds times per binary, alternating before/after so
a change of the machine's load hits both alike (the medians are reported):
  loopback  bench/backfill.py's loopback regime: `klined --once` backfills BTCUSDT
            and ETHUSDT (the recorded 2023-Q1 data tiled forward, --days days) from
            one replay exchange with a frozen clock, no latency, no weight limit
  import    `klined import` of the six recorded monthly dumps (259,200 klines)
Bytes per kline: the store's size after a WAL checkpoint over its klines.
Prints the load average before and after, and a markdown table.
"""
import argparse
import datetime
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPLAY = REPO / "tests" / "replay" / "binance_replay.py"
DATA = (REPO / "tests" / "data" / "binance").resolve()
SYMBOLS = "BTCUSDT,ETHUSDT"


def store_stats(db):
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        n = c.execute("SELECT count(*) FROM kline").fetchone()[0]
    size = sum(f.stat().st_size for f in db.parent.glob(db.name + "*"))
    return n, size


def timed(argv, db):
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"{argv[0]} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    n, size = store_stats(db)
    if n / wall < 100_000:
        print("slow run:\n" + p.stderr[-2500:], file=sys.stderr)
    return {"wall_s": wall, "klines": n, "bytes": size, "klines_per_s": n / wall,
            "bytes_per_kline": size / n}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", default=str(REPO / "build" / "daemon" / "klined"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--days", type=int, default=365)
    a = ap.parse_args()
    bins = {"before": a.before, "after": a.after}
    load0 = os.getloadavg()
    until = "2024-01-01"
    start = (datetime.date.fromisoformat(until) - datetime.timedelta(days=a.days)).isoformat()

    def replay():
        # A fresh exchange per run: a long-lived replay process sometimes stalls for
        # tens of seconds after a few million klines served (both binaries alike).
        rp = subprocess.Popen([sys.executable, str(REPLAY), "--port", "0", "--start",
                               until + "T00:00:30Z", "--speed", "0", "--tile-until", until],
                              stdout=subprocess.PIPE, text=True)
        url = json.loads(rp.stdout.readline())["rest_url"]
        # Drain what the replay prints later: a full pipe would stall it mid-run.
        threading.Thread(target=rp.stdout.read, daemon=True).start()
        return rp, url
    dumps = sorted(str(f) for f in DATA.glob("*-1m-*.csv.gz"))
    res = {(t, w): [] for t in bins for w in ("loopback", "import")}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for tag in (("before", "after") if r % 2 == 0 else ("after", "before")):
                db = Path(tmp) / f"{tag}-{r}.db"
                rp, url = replay()
                try:
                    res[(tag, "loopback")].append(timed(
                        [bins[tag], "--once", "--config", os.devnull, "--db", str(db),
                         "--rest-url", url, "--symbols", SYMBOLS, "--history-start",
                         start, "--http-listen", "off"], db))
                finally:
                    rp.terminate()
                    rp.wait()
                db2 = Path(tmp) / f"{tag}-{r}-import.db"
                res[(tag, "import")].append(timed(
                    [bins[tag], "import", "--config", os.devnull, "--db", str(db2), *dumps],
                    db2))
                for f in Path(tmp).glob(f"{tag}-{r}*"):
                    f.unlink()
                print(f"round {r + 1} {tag}: "
                      f"loopback {res[(tag, 'loopback')][-1]['klines_per_s']:.0f} klines/s, "
                      f"import {res[(tag, 'import')][-1]['klines_per_s']:.0f} klines/s",
                      file=sys.stderr)
    load1 = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores; load average before {load0[0]:.2f} "
          f"{load0[1]:.2f} {load0[2]:.2f}, after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    print(f"before: {a.before}\nafter: {a.after}\nrounds: {a.rounds} (medians), "
          f"loopback: {a.days} days x 2 symbols\n")
    print("| workload | klines | before klines/s | after klines/s | speed | "
          "before B/kline | after B/kline | size |")
    print("|---|---|---|---|---|---|---|---|")
    for w in ("loopback", "import"):
        b, f = res[("before", w)], res[("after", w)]
        sb = statistics.median(x["klines_per_s"] for x in b)
        sa = statistics.median(x["klines_per_s"] for x in f)
        bb = statistics.median(x["bytes_per_kline"] for x in b)
        ba = statistics.median(x["bytes_per_kline"] for x in f)
        print(f"| {w} | {b[0]['klines']:,} | {sb:,.0f} | {sa:,.0f} | {100 * (sa / sb - 1):+.1f} % "
              f"| {bb:.1f} | {ba:.1f} | {100 * (ba / bb - 1):+.1f} % |")


if __name__ == "__main__":
    main()
