#!/usr/bin/env python3
"""Cold start from the archives vs REST alone, on the replay exchange, same run.

    python3 bench/archive.py [--quick] [--symbols N] [--years Y] [--klined PATH]

The recorded 2023-Q1 klines tiled forward over Y years for N symbols (BTCUSDT,
ETHUSDT, then S0001USDT... serving the same data) into two empty stores, with
klined --once each time, under the real-network model:
  REST      100 ms per response, 6,000 request weight per minute (klines: weight 2
            per page of 1000 klines: at most 3,000 pages, 3 million klines a minute)
  archives  100 ms per answer, one 100 Mbit/s access link shared by all downloads
Run 1 uses the archives ([archive] url = the replay) and REST for the rest; run 2
REST only ([archive] url = off). Both stores are checked to hold the same klines
(count, per-symbol sums of trades and volumes). Prints the commands, a markdown
table with the weight-bound REST limit beside the measured REST run, and writes
bench/out/archive.json. --quick: 2 symbols x 1 year.
"""
import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "replay"))
import binance_replay as br  # noqa: E402

DAY = 86_400_000


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_klined(binary, srv, db, symbols, start, archive):
    argv = [str(binary), "run", "--once", "--config", os.devnull, "--db", str(db),
            "--rest-url", srv.rest_url, "--symbols", ",".join(symbols),
            "--history-start", start, "--kafka-brokers", "off", "--http-listen", "off",
            "--archive-url", srv.rest_url if archive else "off"]
    log("$ " + " ".join(shlex.quote(a) for a in argv))
    srv.reset_stats()
    srv.reset_limits()
    a0 = srv.archive_stats()
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"klined exited {p.returncode}:\n{p.stderr[-3000:]}")
    st, a1 = srv.stats(), srv.archive_stats()
    return {"wall_s": round(wall, 2),
            "klines_requests": st["requests"].get("/api/v3/klines", 0),
            "rest_klines": st.get("klines_served", 0),
            "archive_files": sum(a1["files"].values()) - sum(a0["files"].values()),
            "archive_mb": round((a1["bytes_sent"] - a0["bytes_sent"]) / 1e6, 1),
            "archive_klines": a1["klines_served"] - a0["klines_served"]}


def summary(db):
    with sqlite3.connect(db) as c:
        return c.execute("SELECT symbol, count(*), sum(trades), sum(volume), min(open_time), "
                         "max(open_time) FROM kline_1m GROUP BY symbol ORDER BY symbol"
                         ).fetchall()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 symbols x 1 year")
    ap.add_argument("--symbols", type=int, default=2)
    ap.add_argument("--years", type=int, default=9)
    ap.add_argument("--klined", default=str(REPO / "build" / "daemon" / "klined"))
    args = ap.parse_args()
    if args.quick:
        args.symbols, args.years = 2, 1
    end = dt.datetime(2023 + args.years, 1, 5, tzinfo=dt.timezone.utc)
    now = int(end.timestamp() * 1000) + 30_000
    start = "2023-01-01"
    syms = ["BTCUSDT", "ETHUSDT"] + [f"S{i:04d}USDT" for i in range(1, args.symbols - 1)]
    syms = syms[:args.symbols]
    srv = br.ReplayServer(start=now, speed=0, tile_until=now, latency_ms=100,
                          weight_limit=br.REAL_WEIGHT_LIMIT,
                          gen_symbols=max(0, args.symbols - 2),
                          archive_latency_ms=100, archive_bandwidth_bps=12_500_000).start()
    # A CDN serves files it already has: let the replay build and keep every zip first
    # (an untimed run), so the timed runs measure klined and the modelled network.
    srv.replay.archive._cache_files = 1 << 20
    work = Path(tempfile.mkdtemp(prefix="klined-bench-archive-"))
    try:
        res = {}
        log("warm-up: the replay builds its archive files")
        run_klined(args.klined, srv, work / "warm.db", syms, start, True)
        res["archives+rest"] = run_klined(args.klined, srv, work / "a.db", syms, start, True)
        log(f"archives + REST: {res['archives+rest']}")
        res["rest"] = run_klined(args.klined, srv, work / "r.db", syms, start, False)
        log(f"REST only: {res['rest']}")
        same = summary(work / "a.db") == summary(work / "r.db")
        klines = sum(r[1] for r in summary(work / "r.db"))
    finally:
        srv.stop()
    pages = -(-klines // 1000)
    bound = pages * 2 / br.REAL_WEIGHT_LIMIT * 60   # seconds at 6000 weight/min
    speedup = res["rest"]["wall_s"] / res["archives+rest"]["wall_s"]
    out = {"date": time.strftime("%Y-%m-%d"), "machine": platform.node(),
           "cpus": os.cpu_count(), "symbols": args.symbols, "years": args.years,
           "klines": klines, "stores_equal": same, "rest_weight_bound_s": round(bound, 1),
           "speedup": round(speedup, 2), "runs": res,
           "command": "python3 bench/archive.py" + (" --quick" if args.quick else
                                                    f" --symbols {args.symbols} --years {args.years}")}
    print(f"\n{args.symbols} symbols x {args.years} years: {klines:,} klines; "
          f"stores equal: {same}\n")
    print("| run | wall s | klines requests | archive files | archive MB |")
    print("|---|---|---|---|---|")
    for k, r in res.items():
        print(f"| {k} | {r['wall_s']} | {r['klines_requests']} | {r['archive_files']} | "
              f"{r['archive_mb']} |")
    print(f"| REST, weight-bound limit ({pages} pages x 2 / 6000 per min) | {bound:.1f} | "
          f"{pages} | | |")
    print(f"\narchives + REST is {speedup:.1f}x faster than REST alone (goal: 5x)")
    (REPO / "bench" / "out").mkdir(exist_ok=True)
    path = REPO / "bench" / "out" / "archive.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old["quick" if args.quick else "full"] = out
    path.write_text(json.dumps(old, indent=1) + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
