#!/usr/bin/env python3
"""Batch-backfill benchmark: klined vs the original Python pipeline, on the replay exchange.

    python3 bench/backfill.py [--quick] [--sweep] [--repeat N] [--wait-idle S]
                              [--regimes loopback,network,sustained] [--klined PATH | --no-build]

One year of 1m klines for BTCUSDT and ETHUSDT (the recorded 2023-Q1 data tiled
forward: 365 days x 1440 x 2 = 1,051,200 klines, 1052 pages of 1000) from the
replay exchange into empty stores.  Every regime gets its own replay exchange,
started here on port 0 with a frozen clock at 2024-01-01T00:00:30Z, and on that
one server, in the same run, one after the other:

  serve    bench/serve_rate.py, a trivial aiohttp client (no parsing, no storage):
           the replay's own serving rate, at concurrency 1 and at klined's 8
  klined   build/daemon/klined --once into a fresh store, its default settings
  python   bench/reference_backfill.py (requests + pandas + to_sql) into a fresh file

The replay's weight counter and statistics are reset before each client, so
each starts with a fresh budget and its own request/429 counts.

Regimes:
  loopback   no added latency, no weight limit: CPU-bound
  network    --latency-ms 100 --weight-limit 6000: the real-network model
  sustained  (not with --quick or --no-sustained) the network model, klined only,
             over 9 years (9,466,560 klines) so that the 6000/min weight limit binds
             for several wall-clock minutes: klined's steady rate vs 50 pages/s

klined and tests/replay/binance_replay.py are copied into the work directory
first ($WORK in the printed commands), so a rebuild or an edit of the tree
during the run cannot change what is measured.

Peak RSS comes from /usr/bin/time -v when it exists, else from polling
/proc/PID/status VmHWM.  Both stores are checked to hold the expected number of
klines, the same per-symbol counts, time ranges and trade sums, and equal
values on a few sampled rows.

Prints the machine, the commands, a markdown table, and writes
bench/out/backfill.json (key "full" or "quick", the other kept).
--quick: 30 days (86,400 klines), no sustained regime: a smoke test.
--sweep: also run klined on loopback at --rest-concurrency 1, 2, 4, 8, 16.
"""
import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import random
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
REPLAY = REPO / "tests" / "replay" / "binance_replay.py"
DATA = (REPO / "tests" / "data" / "binance").resolve()
KLINED = REPO / "build" / "daemon" / "klined"
OUT = BENCH / "out" / "backfill.json"
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
MINUTE_MS = 60_000
DAY_MS = 86_400_000
PAGE = 1000
CLOCK = "T00:00:30Z"  # the replay's frozen clock: 30 s into the end date
WEIGHT_LIMIT = 6000
LATENCY_MS = 100
CEILING_PAGES_S = WEIGHT_LIMIT / 2 / 60  # klines weight 2: 50 pages/s
TIME_BIN = "/usr/bin/time"


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------

def ms(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc).timestamp() * 1000)


def day_str(ms_: int) -> str:
    return dt.datetime.fromtimestamp(ms_ / 1000, dt.timezone.utc).strftime("%Y-%m-%d")


def cmdline(cmd) -> str:
    return " ".join(shlex.quote(str(c)) for c in cmd)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def machine_cpu():
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def proc_cpu_s(pid: int) -> float:
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def machine_info() -> dict:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    ver = subprocess.run([str(KLINED), "--version"], capture_output=True, text=True)
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "mem_total_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite_python": sqlite3.sqlite_version,
        "klined": (ver.stdout or ver.stderr).strip(),
        "git": git + (" (work tree has uncommitted changes)" if dirty else ""),
        "loadavg_start": os.getloadavg(),
        "time_source": "/usr/bin/time -v" if os.path.exists(TIME_BIN) else "/proc/PID/status VmHWM",
    }


class Replay:
    """A replay exchange in its own process, stopped with SIGTERM."""

    def __init__(self, until_day: str, latency_ms: int = 0, weight_limit: int = 0,
                 errlog: Path = None):
        self.cmd = [sys.executable, str(REPLAY), "--port", "0", "--data", str(DATA),
                    "--start", until_day + CLOCK, "--speed", "0", "--tile-until", until_day]
        if latency_ms:
            self.cmd += ["--latency-ms", str(latency_ms)]
        if weight_limit:
            self.cmd += ["--weight-limit", str(weight_limit)]
        self.err = open(errlog, "w") if errlog else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self.err, text=True)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            tail = Path(errlog).read_text()[-2000:] if errlog else ""
            raise RuntimeError("the replay exchange did not start: %s\n%s"
                               % (cmdline(self.cmd), tail))
        self.info = json.loads(line)
        self.url = self.info["rest_url"]

    def _req(self, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data,
                                     method="GET" if body is None else "POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def stats(self, with_log=False) -> dict:
        return self._req("/_replay/stats" + ("?log=1" if with_log else ""))

    def fresh(self) -> None:
        """Zero the used weight (and any ban) and the statistics before the next client."""
        self._req("/_replay/limits", {"reset": True})
        self._req("/_replay/reset_stats", {})

    def cpu_s(self) -> float:
        return proc_cpu_s(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.err is not subprocess.DEVNULL:
            self.err.close()


def summarize_stats(st: dict) -> dict:
    resp = st.get("responses", {})
    return {
        "klines_requests": st.get("requests", {}).get("/api/v3/klines", 0),
        "requests_total": st.get("requests_total", 0),
        "klines_served": st.get("klines_served", 0),
        "http_429": resp.get("429", 0),
        "http_418": resp.get("418", 0),
        "violations": st.get("violations", 0),
        "responses": resp,
    }


WAIT_IDLE_S = 0.0


def wait_idle(replay: Replay) -> float:
    """With --wait-idle: wait (at most WAIT_IDLE_S) until the rest of the machine uses less than
    a third of a core over a second.  @return the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < WAIT_IDLE_S:
        m0, r0 = machine_cpu(), replay.cpu_s()
        time.sleep(1.0)
        m1, r1 = machine_cpu(), replay.cpu_s()
        other = (m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * os.cpu_count() - (r1 - r0)
        if other < 0.33:
            break
    return round(time.perf_counter() - t0, 1)


def measure(cmd, replay: Replay, stderr_path: Path) -> dict:
    """Run cmd to completion: wall time, peak RSS, CPU, and what the machine did meanwhile."""
    waited = wait_idle(replay) if WAIT_IDLE_S > 0 else 0.0
    use_time = os.path.exists(TIME_BIN)
    tfile = stderr_path.with_suffix(".time")
    full = [TIME_BIN, "-v", "-o", str(tfile)] + list(cmd) if use_time else list(cmd)
    hwm = [0]
    la0 = os.getloadavg()
    m0 = machine_cpu()
    r0 = replay.cpu_s()
    with open(stderr_path, "w") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=err, text=True)
        if not use_time:
            def poll():
                while p.poll() is None:
                    try:
                        with open("/proc/%d/status" % p.pid) as f:
                            for line in f:
                                if line.startswith("VmHWM:"):
                                    hwm[0] = max(hwm[0], int(line.split()[1]))
                    except OSError:
                        pass
                    time.sleep(0.01)
            th = threading.Thread(target=poll, daemon=True)
            th.start()
        out, _ = p.communicate()
        wall = time.perf_counter() - t0
    m1 = machine_cpu()
    r1 = replay.cpu_s()
    res = {"cmd": cmdline(cmd), "rc": p.returncode, "wall_s": round(wall, 3), "stdout": out,
           "replay_cpu_s": round(r1 - r0, 2),
           "machine_busy_cores": round((m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * os.cpu_count(), 2),
           "loadavg_before": la0, "loadavg_after": os.getloadavg(), "waited_idle_s": waited}
    if use_time:
        txt = tfile.read_text()
        def field(name):
            m = re.search(re.escape(name) + r":\s*([0-9.]+)", txt)
            return float(m.group(1)) if m else None
        res["maxrss_kb"] = int(field("Maximum resident set size (kbytes)") or 0)
        res["cpu_s"] = round((field("User time (seconds)") or 0) + (field("System time (seconds)") or 0), 2)
    else:
        res["maxrss_kb"] = hwm[0]
        res["cpu_s"] = None
    # Everything on the machine that was neither the client nor the replay (other work).
    if res["cpu_s"] is not None:
        res["other_busy_cores"] = max(0.0, round(res["machine_busy_cores"]
                                                 - (res["cpu_s"] + res["replay_cpu_s"]) / wall, 2))
    if res["rc"] != 0:
        tail = stderr_path.read_text()[-3000:]
        raise RuntimeError("%s exited %d:\n%s" % (res["cmd"], res["rc"], tail))
    return res


# ------------------------------------------------------------------------------------------
# the three clients
# ------------------------------------------------------------------------------------------

def run_serve(replay: Replay, frm: int, to: int, concurrency: int, pages: int, work: Path,
              tag: str) -> dict:
    replay.fresh()
    cmd = [sys.executable, str(BENCH / "serve_rate.py"), "--rest-url", replay.url,
           "--symbols", ",".join(SYMBOLS), "--from", str(frm), "--to", str(to),
           "--concurrency", str(concurrency), "--json"]
    if pages:
        cmd += ["--pages", str(pages)]
    r = measure(cmd, replay, work / ("serve-%s.err" % tag))
    r.update(json.loads(r.pop("stdout")))
    r.update(summarize_stats(replay.stats()))
    r["client"] = "replay serving rate (trivial client, concurrency %d)" % concurrency
    log("  serve c=%d: %d pages in %.2f s: %.1f pages/s, %d klines/s (replay CPU %.2f s)"
        % (concurrency, r["pages"], r["seconds"], r["pages_per_s"], r["klines_per_s"],
           r["replay_cpu_s"]))
    return r


def run_klined(replay: Replay, history_start: str, work: Path, tag: str, conf: Path,
               concurrency: int = None) -> dict:
    replay.fresh()
    db = work / ("klined-%s.db" % tag)
    cmd = [str(KLINED), "--once", "--config", str(conf), "--db", str(db),
           "--rest-url", replay.url, "--symbols", ",".join(SYMBOLS),
           "--history-start", history_start, "--http-listen", "off"]
    if concurrency:
        cmd += ["--rest-concurrency", str(concurrency)]
    errp = work / ("klined-%s.err" % tag)
    r = measure(cmd, replay, errp)
    r.pop("stdout")
    st = replay.stats(with_log=True)
    r.update(summarize_stats(st))
    r["log"] = st.get("log", [])
    with sqlite3.connect(db) as con:
        r["klines"] = con.execute("SELECT count(*) FROM kline").fetchone()[0]
    m = re.search(r"backfill: done: .* (\d+) rows, (\d+) rows/s", errp.read_text())
    r["backfill_phase_rows_per_s"] = int(m.group(2)) if m else None
    r["db"] = str(db)
    r["db_mb"] = round(sum(f.stat().st_size for f in work.glob(db.name + "*")) / 1e6, 1)
    r["client"] = "klined" + (" (--rest-concurrency %d)" % concurrency if concurrency else "")
    rate(r)
    log("  klined%s: %d klines in %.2f s: %d klines/s, %.1f pages/s, peak RSS %.1f MB, "
        "%d x 429 (backfill phase %s rows/s)"
        % (" c=%d" % concurrency if concurrency else "", r["klines"], r["wall_s"],
           r["klines_per_s"], r["pages_per_s"], r["maxrss_kb"] / 1024, r["http_429"],
           r["backfill_phase_rows_per_s"]))
    return r


def run_reference(replay: Replay, history_start: str, work: Path, tag: str,
                  until: str = None) -> dict:
    replay.fresh()
    db = work / ("python-%s.db" % tag)
    cmd = [sys.executable, str(BENCH / "reference_backfill.py"), "--rest-url", replay.url,
           "--db", str(db), "--symbols", ",".join(SYMBOLS), "--history-start", history_start,
           "--json"]
    if until:
        cmd += ["--until", until]
    r = measure(cmd, replay, work / ("python-%s.err" % tag))
    inner = json.loads(r.pop("stdout"))
    r["inner"] = inner
    r.update(summarize_stats(replay.stats()))
    with sqlite3.connect(db) as con:
        r["klines"] = con.execute("SELECT count(*) FROM klines").fetchone()[0]
    r["db"] = str(db)
    r["client"] = "Python reference (requests + pandas + to_sql)"
    rate(r)
    log("  python: %d klines in %.2f s: %d klines/s, %.1f pages/s, peak RSS %.1f MB, %d x 429 "
        "(HTTP+JSON %.1f s, pandas %.1f s, to_sql %.1f s)"
        % (r["klines"], r["wall_s"], r["klines_per_s"], r["pages_per_s"], r["maxrss_kb"] / 1024,
           r["http_429"], inner["http_json_s"], inner["pandas_s"], inner["to_sql_s"]))
    return r


def rate(r: dict) -> None:
    r["klines_per_s"] = round(r["klines"] / r["wall_s"])
    # load-independent: what one core does per second of its own CPU time
    r["klines_per_cpu_s"] = round(r["klines"] / r["cpu_s"]) if r.get("cpu_s") else None
    r["pages_per_s"] = round(r["klines_requests"] / r["wall_s"], 1)


# ------------------------------------------------------------------------------------------
# checks
# ------------------------------------------------------------------------------------------

def verify(kdb: str, rdb: str, start: int, end: int, expected: int) -> dict:
    k = sqlite3.connect(kdb)
    p = sqlite3.connect(rdb)
    ks = {row[0]: row[1:] for row in k.execute(
        "SELECT symbol, count(*), count(*), min(open_time), max(open_time), sum(trades) "
        "FROM kline_1m GROUP BY symbol")}
    ps = {row[0]: row[1:] for row in p.execute(
        "SELECT symbol, count(*), count(DISTINCT open_time), min(open_time), max(open_time), "
        "sum(trades) FROM klines GROUP BY symbol")}
    problems = []
    ktotal = sum(v[0] for v in ks.values())
    ptotal = sum(v[0] for v in ps.values())
    if ktotal != expected:
        problems.append("klined holds %d klines, expected %d" % (ktotal, expected))
    if ptotal != expected:
        problems.append("the reference holds %d klines, expected %d" % (ptotal, expected))
    if ks != ps:
        problems.append("per-symbol (count, distinct, min, max, sum(trades)) differ: %s vs %s"
                        % (ks, ps))
    rng = random.Random(20240101)
    minutes = (end - start) // MINUTE_MS
    samples = []
    for sym in SYMBOLS:
        picks = {0, minutes - 1} | {rng.randrange(minutes) for _ in range(4)}
        samples += [(sym, start + i * MINUTE_MS) for i in sorted(picks)]
    cols = "open, high, low, close, volume, quote_volume, trades"
    checked = 0
    for sym, ot in samples:
        a = k.execute("SELECT %s FROM kline_1m WHERE symbol = ? AND open_time = ?" % cols,
                      (sym, ot)).fetchall()
        b = p.execute("SELECT %s FROM klines WHERE symbol = ? AND open_time = ?" % cols,
                      (sym, ot)).fetchall()
        checked += 1
        if len(a) != 1 or a != b:
            problems.append("%s %d: klined %s, reference %s" % (sym, ot, a, b))
    k.close()
    p.close()
    return {"ok": not problems, "problems": problems, "klined": ktotal, "reference": ptotal,
            "expected": expected, "rows_compared": checked,
            "per_symbol": {s: list(v) for s, v in ks.items()}}


def minute_profile(log_entries) -> dict:
    """Klines pages per wall-clock minute from the replay's request log."""
    per = {}
    for e in log_entries:
        if e["path"] == "/api/v3/klines":
            per.setdefault(e["t_ms"] // 60000, [0, 0])
            per[e["t_ms"] // 60000][0 if e["status"] == 200 else 1] += 1
    keys = sorted(per)
    full = keys[1:-1]  # minutes wholly inside the run
    pages_full = [per[k][0] for k in full]
    return {
        "pages_per_wall_minute": [per[k][0] for k in keys],
        "non_200_per_wall_minute": [per[k][1] for k in keys],
        "full_minutes": len(full),
        "steady_pages_per_s": round(sum(pages_full) / (60 * len(full)), 2) if full else None,
    }


# ------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------

def mb(kb):
    return "%.1f" % (kb / 1024) if kb else "n/a"


def table(results: dict) -> str:
    lines = ["| regime | client | klines | wall s | klines/s | pages/s | peak RSS MB | CPU s "
             "| klines per CPU s | replay CPU s | other load | 429 / 418 |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, reg in results["regimes"].items():
        for r in reg["rows"]:
            wall = r.get("seconds", r["wall_s"])
            lines.append("| %s | %s | %s | %.2f | %s | %.1f | %s | %s | %s | %.2f | %s | %d / %d |" % (
                name, r["client"], format(r["klines"], ","), wall,
                format(r["klines_per_s"], ","), r["pages_per_s"],
                mb(r["maxrss_kb"]) if "serving" not in r["client"] else "-",
                r["cpu_s"] if "serving" not in r["client"] else "-",
                format(r["klines_per_cpu_s"], ",") if r.get("klines_per_cpu_s") else "-",
                r["replay_cpu_s"], "%.2f" % r["other_busy_cores"]
                if r.get("other_busy_cores") is not None else "-", r["http_429"], r["http_418"]))
    return "\n".join(lines)


def verdicts(results: dict) -> list:
    out = []
    regs = results["regimes"]
    if "loopback" in regs:
        g = regs["loopback"]
        k, p = g["klined"], g["python"]
        if len(k.get("runs_wall_s", [])) > 1:
            out.append("loopback: median of %d runs each; klined walls %s s, reference walls %s s"
                       % (len(k["runs_wall_s"]), k["runs_wall_s"], p["runs_wall_s"]))
        out.append("loopback: klined %s klines/s (target >= 200,000: %s), peak RSS %s MB "
                   "(target < 50: %s), %.2fx the Python reference (target > 2x: %s); "
                   "replay serves %s klines/s at concurrency 8"
                   % (format(k["klines_per_s"], ","), "met" if k["klines_per_s"] >= 200_000 else "NOT met",
                      mb(k["maxrss_kb"]), "met" if k["maxrss_kb"] < 50 * 1024 else "NOT met",
                      k["klines_per_s"] / p["klines_per_s"],
                      "met" if k["klines_per_s"] > 2 * p["klines_per_s"] else "NOT met",
                      format(g["serve_c8"]["klines_per_s"], ",")))
    if "network" in regs:
        g = regs["network"]
        k, p = g["klined"], g["python"]
        out.append("network: klined %.1f pages/s = %.0f%% of the %d pages/s ceiling (target >= 90%%: "
                   "%s), %d x 429 (target 0: %s), %.1fx the Python reference's %.1f pages/s "
                   "(target >= 5x: %s); the range's %d pages need only %d weight, under one "
                   "minute's %d, so the limit does not bind here: see sustained"
                   % (k["pages_per_s"], 100 * k["pages_per_s"] / CEILING_PAGES_S, CEILING_PAGES_S,
                      "met" if k["pages_per_s"] >= 0.9 * CEILING_PAGES_S else "NOT met",
                      k["http_429"], "met" if k["http_429"] == 0 else "NOT met",
                      k["pages_per_s"] / p["pages_per_s"], p["pages_per_s"],
                      "met" if k["pages_per_s"] >= 5 * p["pages_per_s"] else "NOT met",
                      k["klines_requests"], 2 * k["klines_requests"], WEIGHT_LIMIT))
    if "sustained" in regs:
        g = regs["sustained"]
        k = g["klined"]
        prof = k["minutes"]
        sp = prof["steady_pages_per_s"]
        out.append("sustained: klined %.1f pages/s over the whole run, %s pages/s in the %d "
                   "wall-clock minutes wholly inside it (%s of the %d pages/s ceiling), pages per "
                   "minute %s, %d x 429"
                   % (k["pages_per_s"], sp, prof["full_minutes"],
                      "%.0f%%" % (100 * sp / CEILING_PAGES_S) if sp else "n/a", CEILING_PAGES_S,
                      prof["pages_per_wall_minute"], k["http_429"]))
    return out


def measured_pair(rp, hist, work, tag, conf, start, end, expected, repeat, keep):
    """klined then the reference, `repeat` times; the median run of each is reported
    (all walls are kept), every pair of stores is verified and then deleted."""
    ks, ps, vs = [], [], []
    for i in range(repeat):
        t = tag if repeat == 1 else "%s%d" % (tag, i + 1)
        k = run_klined(rp, hist, work, t, conf)
        p = run_reference(rp, hist, work, t)
        v = verify(k["db"], p["db"], start, end, expected)
        if not v["ok"]:
            log("  verify %s: %s" % (t, v["problems"]))
        ks.append(k)
        ps.append(p)
        vs.append(v)
        if not keep:
            for f in (k["db"], p["db"]):
                for x in work.glob(Path(f).name + "*"):
                    x.unlink()
    med = lambda rs: sorted(rs, key=lambda r: r["wall_s"])[len(rs) // 2]
    k, p = med(ks), med(ps)
    k["runs_wall_s"] = [r["wall_s"] for r in ks]
    p["runs_wall_s"] = [r["wall_s"] for r in ps]
    v = dict(vs[-1])
    v["ok"] = all(x["ok"] for x in vs)
    v["problems"] = [q for x in vs for q in x["problems"]]
    v["pairs_verified"] = len(vs)
    return k, p, v


# ------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="30 days, no sustained regime")
    ap.add_argument("--no-build", action="store_true", help="don't run ninja -C build first")
    ap.add_argument("--klined", default=None,
                    help="benchmark this klined binary instead of building build/daemon/klined "
                         "(implies --no-build)")
    ap.add_argument("--no-sustained", action="store_true")
    ap.add_argument("--sweep", action="store_true",
                    help="also klined on loopback at --rest-concurrency 1,2,4,8,16")
    ap.add_argument("--repeat", type=int, default=3,
                    help="loopback: run klined and the reference N times each, report the median")
    ap.add_argument("--rev", default=None,
                    help="benchmark the klined and replay exchange of this commit (git archive, "
                         "built in the work directory), not the work tree's")
    ap.add_argument("--replay", default=None,
                    help="use this binance_replay.py instead of tests/replay/binance_replay.py")
    ap.add_argument("--regimes", default="loopback,network,sustained",
                    help="comma-separated subset of loopback,network,sustained")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="S",
                    help="before each measured run, wait up to S seconds for the rest of the "
                         "machine to go quiet (< 1/3 core busy); for shared machines")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (stores, logs)")
    ap.add_argument("--report", nargs="?", const="full", metavar="KEY",
                    help="run nothing: print the saved results of bench/out/backfill.json "
                         "(KEY full, quick or partial; default full)")
    args = ap.parse_args()
    if args.report:
        saved = json.loads(OUT.read_text())
        if args.report not in saved:
            log("no %r results in %s (have: %s)" % (args.report, OUT, ", ".join(saved)))
            return 1
        return 0 if report(saved[args.report]) else 1
    command = "python3 bench/backfill.py" + "".join(" " + a for a in sys.argv[1:])

    work = Path(tempfile.mkdtemp(prefix="klined-bench-"))
    try:
        return run(args, command, work)
    finally:
        if args.keep:
            log("work directory kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(args, command: str, work: Path) -> int:
    global KLINED, WAIT_IDLE_S, REPLAY
    WAIT_IDLE_S = args.wait_idle
    source = "work tree of %s" % REPO
    if args.rev:
        sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.rev],
                             capture_output=True, text=True, check=True).stdout.strip()
        src = work / ("src-" + sha)
        src.mkdir()
        log("building klined %s in %s" % (sha, src))
        subprocess.run("git -C %s archive %s | tar -x -C %s" % (shlex.quote(str(REPO)), sha,
                                                               shlex.quote(str(src))),
                       shell=True, check=True)
        b = subprocess.run("meson setup build -Dtests=false >/dev/null && ninja -C build "
                           "daemon/klined", shell=True, cwd=src, capture_output=True, text=True)
        if b.returncode != 0:
            log(b.stdout[-3000:] + b.stderr[-3000:])
            log("cannot build %s" % sha)
            return 1
        args.klined = str(src / "build" / "daemon" / "klined")
        args.replay = args.replay or str(src / "tests" / "replay" / "binance_replay.py")
        source = "commit %s" % sha
    if args.replay:
        REPLAY = Path(args.replay).resolve()
    if args.klined:
        KLINED = Path(args.klined).resolve()
    elif not args.no_build:
        if not (REPO / "build").is_dir():
            subprocess.run(["meson", "setup", "build"], cwd=REPO, check=True,
                           stdout=subprocess.DEVNULL)
        b = subprocess.run(["ninja", "-C", "build"], cwd=REPO, capture_output=True, text=True)
        if b.returncode != 0:
            log(b.stdout[-3000:] + b.stderr[-3000:])
            log("the build failed; fix it or pass --no-build to use the existing binary")
            return 1
    if not KLINED.exists():
        log("%s is missing: build it first" % KLINED)
        return 1

    end_day = "2024-01-01"
    days = 30 if args.quick else 365
    start = ms(end_day) - days * DAY_MS
    end = ms(end_day)
    hist = day_str(start)
    expected = days * 1440 * len(SYMBOLS)
    # a private copy: a rebuild of the tree during the run must not change what is measured
    shutil.copy2(KLINED, work / "klined")
    src_klined = KLINED
    KLINED = work / "klined"
    shutil.copy2(REPLAY, work / REPLAY.name)  # likewise the replay exchange
    if (REPLAY.parent / "replay_archive.py").exists():  # and its archive half, where it has one
        shutil.copy2(REPLAY.parent / "replay_archive.py", work / "replay_archive.py")
    src_replay = REPLAY
    REPLAY = work / REPLAY.name
    conf = work / "empty.conf"
    conf.write_text("")  # keep a stray /etc/klined/klined.conf out of the figures

    info = machine_info()
    info["klined_source"] = source if not args.klined or args.rev else "given binary"
    info["klined_binary"] = str(src_klined)
    info["klined_sha256"] = hashlib.sha256(src_klined.read_bytes()).hexdigest()[:16]
    info["replay"] = str(src_replay)
    info["replay_sha256"] = hashlib.sha256(src_replay.read_bytes()).hexdigest()[:16]
    results = {"command": command, "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "machine": info, "range": {"symbols": SYMBOLS, "from": hist, "to": end_day,
                                          "klines": expected,
                                          "pages": len(SYMBOLS) * -(-days * 1440 // PAGE)},
               "regimes": {}}
    log("machine: %s, %d CPUs, %.1f GB; klined %s (%s); load %s"
        % (info["cpu_model"], info["nproc"], info["mem_total_gb"], info["klined_sha256"],
           info["klined_source"], info["loadavg_start"]))

    regimes = [r.strip() for r in args.regimes.split(",") if r.strip()]
    if args.quick or args.no_sustained:
        regimes = [r for r in regimes if r != "sustained"]
    commands = {}
    # ---- 1. loopback ---------------------------------------------------------------
    if "loopback" in regimes:
        log("loopback: no added latency, no weight limit")
        rp = Replay(end_day, errlog=work / "replay-loopback.err")
        commands["replay loopback"] = cmdline(rp.cmd)
        sweep = []
        try:
            s1 = run_serve(rp, start, end, 1, 0, work, "loop-c1")
            s8 = run_serve(rp, start, end, 8, 0, work, "loop-c8")
            k, p, v = measured_pair(rp, hist, work, "loop", conf, start, end, expected,
                                    args.repeat, args.keep)
            if args.sweep:
                for c in (1, 2, 4, 8, 16):
                    sw = run_klined(rp, hist, work, "loop-c%d" % c, conf, concurrency=c)
                    sweep.append({kk: sw[kk] for kk in (
                        "client", "klines", "wall_s", "klines_per_s", "pages_per_s", "cpu_s",
                        "maxrss_kb", "replay_cpu_s", "other_busy_cores",
                        "backfill_phase_rows_per_s")})
                    for x in work.glob(Path(sw["db"]).name + "*"):
                        x.unlink()
        finally:
            rp.stop()
        commands["serve loopback"] = s8["cmd"]
        commands["klined loopback"] = k["cmd"]
        commands["python loopback"] = p["cmd"]
        k.pop("log")
        results["regimes"]["loopback"] = {"replay": rp.cmd[2:], "serve_c1": s1,
                                          "serve_c8": s8, "klined": k, "python": p,
                                          "verify": v, "sweep": sweep}
        log("  verify: %s" % ("ok" if v["ok"] else v["problems"]))

    # ---- 2. real-network model -----------------------------------------------------
    if "network" in regimes:
        log("network: --latency-ms %d --weight-limit %d" % (LATENCY_MS, WEIGHT_LIMIT))
        rp = Replay(end_day, LATENCY_MS, WEIGHT_LIMIT, errlog=work / "replay-network.err")
        commands["replay network"] = cmdline(rp.cmd)
        try:
            pages = results["range"]["pages"]
            # bounded: each stays far under one minute's weight (and the weight is reset)
            s1 = run_serve(rp, start, end, 1, min(pages, 100), work, "net-c1")
            s8 = run_serve(rp, start, end, 8, min(pages, 400), work, "net-c8")
            s64 = run_serve(rp, start, end, 64, min(pages, 1000), work, "net-c64")
            k, p, v = measured_pair(rp, hist, work, "net", conf, start, end, expected, 1,
                                    args.keep)
        finally:
            rp.stop()
        commands["serve network"] = s8["cmd"]
        commands["klined network"] = k["cmd"]
        commands["python network"] = p["cmd"]
        k["minutes"] = minute_profile(k.pop("log"))
        results["regimes"]["network"] = {"replay": rp.cmd[2:], "serve_c1": s1,
                                         "serve_c8": s8, "serve_c64": s64, "klined": k,
                                         "python": p, "verify": v}
        log("  verify: %s" % ("ok" if v["ok"] else v["problems"]))

    # ---- 3. sustained: the weight limit binds ---------------------------------------
    if "sustained" in regimes:
        s_end = "2032-01-01"
        s_hist = "2023-01-01"
        s_days = (ms(s_end) - ms(s_hist)) // DAY_MS
        s_expected = s_days * 1440 * len(SYMBOLS)
        log("sustained: klined only, %s .. %s (%s klines), --latency-ms %d --weight-limit %d"
            % (s_hist, s_end, format(s_expected, ","), LATENCY_MS, WEIGHT_LIMIT))
        rp = Replay(s_end, LATENCY_MS, WEIGHT_LIMIT, errlog=work / "replay-sustained.err")
        commands["replay sustained"] = cmdline(rp.cmd)
        try:
            k = run_klined(rp, s_hist, work, "sustained", conf)
        finally:
            rp.stop()
        commands["klined sustained"] = k["cmd"]
        k["minutes"] = minute_profile(k.pop("log"))
        v = {"ok": k["klines"] == s_expected, "klined": k["klines"], "expected": s_expected,
             "problems": [] if k["klines"] == s_expected else
             ["klined holds %d klines, expected %d" % (k["klines"], s_expected)]}
        results["regimes"]["sustained"] = {"replay": rp.cmd[2:], "klined": k, "verify": v,
                                           "range": {"from": s_hist, "to": s_end,
                                                     "klines": s_expected,
                                                     "pages": k["klines_requests"]}}
        log("  verify: %s" % ("ok" if v["ok"] else v["problems"]))
        if not args.keep:
            for x in work.glob("klined-sustained.db*"):
                x.unlink()

    results["machine"]["loadavg_end"] = os.getloadavg()
    shown = {}
    for name, c in commands.items():
        c = c.replace(str(work) + "/", "$WORK/").replace(str(DATA), "tests/data/binance")
        shown[name] = c.replace(str(REPO) + "/", "").replace(sys.executable, "python3")
    results["commands"] = shown
    results["verdicts"] = verdicts(results)
    ok = report(results)

    OUT.parent.mkdir(parents=True, exist_ok=True)
    try:
        saved = json.loads(OUT.read_text())
    except (OSError, ValueError):
        saved = {}
    full = {"loopback", "network", "sustained"} <= set(regimes)
    results["regimes_run"] = regimes
    key = "quick" if args.quick else "full" if full else "partial"
    saved[key] = results
    OUT.write_text(json.dumps(saved, indent=1, default=str) + "\n")
    print("\nwrote %s" % OUT.relative_to(REPO))
    return 0 if ok else 1


def report(results: dict) -> bool:
    """Print a run's results as markdown; @return whether every store check passed."""
    info = results["machine"]
    print("## machine\n")
    for key in ("cpu_model", "nproc", "cpus_usable", "mem_total_gb", "kernel", "python",
                "sqlite_python", "klined", "klined_source", "klined_binary", "klined_sha256",
                "replay", "replay_sha256", "git", "time_source", "loadavg_start", "loadavg_end"):
        print("- %s: %s" % (key, info.get(key)))
    rg = results["range"]
    print("\ncommand: %s (%s)\nrange: %s, %s .. %s (exclusive): %s klines, %d pages\n"
          % (results["command"], results["when"], ",".join(rg["symbols"]), rg["from"], rg["to"],
             format(rg["klines"], ","), rg["pages"]))
    print("## commands ($WORK: the run's temporary directory; ports vary per run)\n")
    for name, c in results["commands"].items():
        print("- %s: `%s`" % (name, c))
    print()
    tab = {"regimes": {}}
    for name, reg in results["regimes"].items():
        rows = [reg[x] for x in ("serve_c1", "serve_c8", "serve_c64", "klined", "python") if x in reg]
        tab["regimes"][name] = {"rows": rows}
    print(table(tab))
    print()
    if results["regimes"].get("loopback", {}).get("sweep"):
        print("klined on loopback by --rest-concurrency:\n")
        print("| concurrency | klines/s | backfill phase rows/s | wall s | CPU s | replay CPU s "
              "| other load | peak RSS MB |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s in results["regimes"]["loopback"]["sweep"]:
            print("| %s | %s | %s | %.2f | %s | %.2f | %s | %s |" % (
                s["client"].split()[-1].rstrip(")"), format(s["klines_per_s"], ","),
                format(s["backfill_phase_rows_per_s"] or 0, ","), s["wall_s"], s["cpu_s"],
                s["replay_cpu_s"], s.get("other_busy_cores"), mb(s["maxrss_kb"])))
        print()
    for line in results["verdicts"]:
        print("- " + line)
    ok = all(reg["verify"]["ok"] for reg in results["regimes"].values())
    print("- stores checked: %s" % ("klined and the reference hold the expected klines, with equal "
                                     "per-symbol counts, ranges, trade sums and sampled rows"
                                     if ok else "MISMATCH, see bench/out/backfill.json"))
    print("- loadavg at start %s, at end %s" % (info["loadavg_start"], info.get("loadavg_end")))
    return ok


if __name__ == "__main__":
    sys.exit(main())
