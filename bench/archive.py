#!/usr/bin/env python3
"""Cold start from the archives vs REST alone, on the replay exchange, same run.

    python3 bench/archive.py [--quick] [--symbols N --years Y] [--klined PATH]

The recorded 2023-Q1 klines tiled forward over Y years for N symbols (BTCUSDT,
ETHUSDT, then S0001USDT... serving the same data) into two empty stores, with
klined --once each time, under the real-network model:
  REST      100 ms per response, 6,000 request weight per minute (klines: weight 2
            per page of 1000 klines: at most 3,000 pages, 3 million klines a minute,
            50,000 klines/s: the weight-bound REST limit)
  archives  100 ms per answer, one 100 Mbit/s access link shared by all downloads
            (the bandwidth ceiling: 12.5 MB/s over the zips' bytes per kline)
Run 1 uses the archives ([archive] url = the replay) and REST for the rest; run 2
REST only ([archive] url = off). Both stores are checked to hold the same klines
(count, per-symbol sums of trades and volumes). During run 1 klined's /metrics is
polled for klined_loop_lag_seconds (the loop's lag while it loads the archives).
Without --symbols/--years both of the issue's sizes run: 20 symbols x 2 years and
2 symbols x 9 years; --quick: 2 symbols x 1 year. Prints the commands and a markdown
table, and writes bench/out/archive.json.
"""
import argparse
import datetime as dt
import json
import os
import platform
import shlex
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "replay"))
import binance_replay as br  # noqa: E402

BANDWIDTH = 12_500_000          # bytes/s: 100 Mbit/s
PAGE = 1000                     # klines per REST page, weight 2
REST_LIMIT = br.REAL_WEIGHT_LIMIT / 2 * PAGE / 60   # klines/s: 50,000


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lag_of(text):
    """(count, p99 upper bound s, max s) of klined_loop_lag_seconds in a /metrics text."""
    buckets, count, mx = [], 0, 0.0
    for ln in text.splitlines():
        if ln.startswith("klined_loop_lag_seconds_bucket"):
            le = ln.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), int(ln.split()[-1])))
        elif ln.startswith("klined_loop_lag_seconds_count"):
            count = int(ln.split()[-1])
        elif ln.startswith("klined_loop_lag_max_seconds"):
            mx = float(ln.split()[-1])
    p99 = next((le for le, n in buckets if count and n >= 0.99 * count), None)
    return count, p99, mx


def run_klined(binary, srv, db, symbols, start, archive, watch=False):
    port = free_port()
    argv = [str(binary), "run", "--once", "--config", os.devnull, "--db", str(db),
            "--rest-url", srv.rest_url, "--symbols", ",".join(symbols),
            "--history-start", start, "--kafka-brokers", "off",
            "--http-listen", f"127.0.0.1:{port}" if watch else "off",
            "--archive-url", srv.rest_url if archive else "off"]
    log("$ " + " ".join(shlex.quote(a) for a in argv))
    srv.reset_stats()
    srv.reset_limits()
    a0 = srv.archive_stats()
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = [""]

    def poll():  # the histogram is cumulative: the last answer before the exit counts
        while p.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    last[0] = r.read().decode()
            except OSError:
                pass
            time.sleep(0.25)
    th = threading.Thread(target=poll, daemon=True)
    if watch:
        th.start()
    err = p.communicate()[1]
    wall = time.monotonic() - t0
    if watch:
        th.join()
    if p.returncode != 0:
        raise SystemExit(f"klined exited {p.returncode}:\n{err[-3000:]}")
    st, a1 = srv.stats(), srv.archive_stats()
    out = {"wall_s": round(wall, 2),
           "klines_requests": st["requests"].get("/api/v3/klines", 0),
           "rest_klines": st.get("klines_served", 0),
           "archive_files": sum(a1["files"].values()) - sum(a0["files"].values()),
           "archive_bytes": a1["bytes_sent"] - a0["bytes_sent"],
           "archive_klines": a1["klines_served"] - a0["klines_served"]}
    if watch:
        n, p99, mx = lag_of(last[0])
        out.update(loop_lag_samples=n, loop_lag_p99_le_s=p99, loop_lag_max_s=mx)
    return out


def summary(db):
    with sqlite3.connect(db) as c:
        return c.execute("SELECT symbol, count(*), sum(trades), sum(volume), min(open_time), "
                         "max(open_time) FROM kline_1m GROUP BY symbol ORDER BY symbol"
                         ).fetchall()


def bench(binary, nsym, years):
    end = dt.datetime(2023 + years, 1, 5, tzinfo=dt.timezone.utc)
    now = int(end.timestamp() * 1000) + 30_000
    start = "2023-01-01"
    syms = (["BTCUSDT", "ETHUSDT"] + [f"S{i:04d}USDT" for i in range(1, nsym - 1)])[:nsym]
    srv = br.ReplayServer(start=now, speed=0, tile_until=now, latency_ms=100,
                          weight_limit=br.REAL_WEIGHT_LIMIT, gen_symbols=max(0, nsym - 2),
                          archive_latency_ms=100, archive_bandwidth_bps=BANDWIDTH).start()
    # A CDN serves files it already has: let the replay build and keep every zip first
    # (an untimed run, on an unlimited link), so the timed runs measure klined and the
    # modelled network.
    arch = srv.replay.archive
    arch._cache_files = 1 << 20
    work = Path(tempfile.mkdtemp(prefix="klined-bench-archive-"))
    try:
        res = {}
        log(f"{nsym} x {years}: warm-up: the replay builds its archive files")
        arch.bandwidth_bps, arch.latency_ms = 0, 0
        run_klined(binary, srv, work / "warm.db", syms, start, True)
        arch.bandwidth_bps, arch.latency_ms = BANDWIDTH, 100
        (work / "warm.db").unlink()
        res["archives+rest"] = run_klined(binary, srv, work / "a.db", syms, start, True, True)
        log(f"archives + REST: {res['archives+rest']}")
        res["rest"] = run_klined(binary, srv, work / "r.db", syms, start, False)
        log(f"REST only: {res['rest']}")
        same = summary(work / "a.db") == summary(work / "r.db")
        klines = sum(r[1] for r in summary(work / "r.db"))
    finally:
        srv.stop()
        for f in work.glob("*"):
            f.unlink()
        work.rmdir()
    a = res["archives+rest"]
    pages = -(-klines // PAGE)
    bpk = a["archive_bytes"] / max(1, a["archive_klines"])
    ceiling = BANDWIDTH / bpk if bpk else 0.0
    link_s = a["archive_bytes"] / BANDWIDTH
    return {"symbols": nsym, "years": years, "klines": klines, "stores_equal": same,
            "rest_weight_bound_s": round(pages * 2 / br.REAL_WEIGHT_LIMIT * 60, 1),
            "rest_limit_klines_s": round(REST_LIMIT), "archive_bytes_per_kline": round(bpk, 1),
            "bandwidth_ceiling_klines_s": round(ceiling), "archive_link_s": round(link_s, 1),
            "speedup": round(res["rest"]["wall_s"] / a["wall_s"], 2),
            "speedup_ceiling": round(res["rest"]["wall_s"] / link_s, 2) if link_s else None,
            "runs": res}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 symbols x 1 year")
    ap.add_argument("--symbols", type=int)
    ap.add_argument("--years", type=int)
    ap.add_argument("--klined", default=str(REPO / "build" / "daemon" / "klined"))
    args = ap.parse_args()
    if args.quick:
        sizes = [(2, 1)]
    elif args.symbols or args.years:
        sizes = [(args.symbols or 2, args.years or 9)]
    else:
        sizes = [(20, 2), (2, 9)]
    outs = [bench(args.klined, n, y) for n, y in sizes]
    print("\n| size | klines | archives + REST s | REST only s | speedup | REST weight-bound "
          "limit | archive MB (B/kline) | bandwidth ceiling | loop lag p99 / max (archives) "
          "| stores equal |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for o in outs:
        a, r = o["runs"]["archives+rest"], o["runs"]["rest"]
        p99 = a.get("loop_lag_p99_le_s")
        print(f"| {o['symbols']} x {o['years']} y | {o['klines']:,} | {a['wall_s']} | "
              f"{r['wall_s']} | {o['speedup']}x | {o['rest_limit_klines_s']:,} klines/s "
              f"({o['rest_weight_bound_s']} s) | {a['archive_bytes'] / 1e6:.1f} "
              f"({o['archive_bytes_per_kline']}) | {o['bandwidth_ceiling_klines_s']:,} "
              f"klines/s ({o['archive_link_s']} s: at most {o['speedup_ceiling']}x) | "
              f"≤ {p99 * 1000 if p99 is not None else '?'} ms / "
              f"{a.get('loop_lag_max_s', 0) * 1000:.0f} ms | {o['stores_equal']} |")
    print("\n(goal: archives + REST at least 5x faster than REST alone)")
    (REPO / "bench" / "out").mkdir(exist_ok=True)
    path = REPO / "bench" / "out" / "archive.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    for o in outs:
        o.update(date=time.strftime("%Y-%m-%d %H:%M"), machine=platform.node(),
                 cpus=os.cpu_count(), command="python3 bench/archive.py " +
                 ("--quick" if args.quick else f"--symbols {o['symbols']} --years {o['years']}"))
        old["quick" if args.quick else f"{o['symbols']}x{o['years']}"] = o
    path.write_text(json.dumps(old, indent=1) + "\n")
    return 0 if all(o["stores_equal"] for o in outs) else 1


if __name__ == "__main__":
    sys.exit(main())
