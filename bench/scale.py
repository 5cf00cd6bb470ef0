#!/usr/bin/env python3
"""1,500 symbols: start-up, steady streaming, loop lag under a heal and a certification.

    python3 bench/scale.py [--quick] [--symbols N] [--steady-s S] [--klined PATH | --no-build]
                           [--wait-idle S] [--keep]

Everything runs on 127.0.0.1 and is started and stopped here: one Kafka 4.1 broker
(tests/kafka/kafka.py), one replay exchange (tests/replay/binance_replay.py in a subprocess,
BTCUSDT, ETHUSDT and --gen-symbols N-2 copies S0001USDT..., all of them "*USDT") and klined
in daemon mode with `--symbols '*USDT'`, the archive on ([archive] url = the replay) and
/metrics on.  The steps, on one store and one topic:

  build     a cold start: klined --once fills the store from 00:00 of the day (2023-06-10)
            to 23:40, the replay's frozen clock, every symbol new (its listing probed, one
            request each).  Under the network model below (--cold-network, the default of a
            full run; --quick: on the loopback), with its phases and request counts.
  first run the daemon, still on the loopback, streams until every symbol has an event, and
            stops: the topic, the consumer's offsets and the store are a real installation's.
  restart   the clock moves on 3 minutes (the downtime), the real-network model is switched
            on (REST: 100 ms per response, 6,000 weight/min; archives: 100 ms, 100 Mbit/s),
            and klined starts again.  Measured: process start -> every symbol streaming
            (klined_newest_event_timestamp_seconds of every symbol past the restart) and the
            downtime healed (every symbol has every minute of the gap), with the phases from
            klined's log, each line time-stamped as it arrives: exchangeInfo resolved, /time,
            the plan, the first and last websocket connection; and the REST requests by path.
  steady    the clock at speed 1: Binance's rate, one kline event per symbol every 2 s.
            CPU % of one core (utime + stime from /proc) and RSS (VmRSS, sampled each second;
            VmHWM) over --steady-s seconds (default 300, --quick 60).
  e2c       event -> committed, as bench/stream.py measures it (the replay's send log, the
            Kafka CreateTime, an observer polling the consumer's committed offset): 30 s.
  heal+cert the websockets are dropped (POST /_replay/ws_disconnect) while the clock jumps
            over midnight to 01:02 on the next day: every symbol misses ~80 minutes (a heal
            over REST), and the watermark (1 h) makes 2023-06-10 final, so klined certifies
            every symbol's day over REST.  Loop lag p99 and max from klined_loop_lag_seconds
            (buckets at 1, 2, 5, 10, 20, 50, 100 ms ...: the difference of the histogram over
            the phase), until the day is certified for every symbol and the gap is healed.

--rest-concurrency N runs the restarted klined with that many REST requests in flight
(klined's default is 64).  --perf records the restarted klined with perf (call graphs) into
$WORK/perf.data and traces the loop lag each second into $WORK/lag.tsv: not for figures.

Prints the machine, a markdown table (goal / measured), the commands; writes
bench/out/scale.json (key "full" or "quick", "+cN" with --rest-concurrency N).
"""
import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests" / "kafka"))
import stream as sb  # noqa: E402  (bench/stream.py: the observer, the topic read-back, /proc)

REPLAY_SRC = REPO / "tests" / "replay" / "binance_replay.py"
DATA = (REPO / "tests" / "data" / "binance").resolve()
KLINED = REPO / "build" / "daemon" / "klined"
OUT = REPO / "bench" / "out" / "scale.json"

DAY = "2023-06-10"
MIN = 60_000
DAY_MS = 86_400_000
T_BUILD = sb.ms_of(DAY + "T23:40:00Z")       # the store is current up to here
DOWNTIME_MS = 180_000
T_JUMP = sb.ms_of("2023-06-11T01:02:00Z")    # past midnight + the 1 h watermark
TILE_UNTIL = "2024-01-01"
log = sb.log


# ------------------------------------------------------------------------------------------
# the replay's process
# ------------------------------------------------------------------------------------------

def replay_child(argv) -> int:
    """`scale.py _replay --module-dir DIR --start MS --gen-symbols N`: the replay exchange
    with the archive model and stream.py's send log; stdin: `sendlog PATH|-`, answered with
    one JSON line. Everything else goes through its HTTP control API. EOF stops it."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--module-dir", required=True)
    ap.add_argument("--start", type=int, required=True)
    ap.add_argument("--gen-symbols", type=int, default=0)
    a = ap.parse_args(argv)
    sys.path.insert(0, a.module_dir)
    import binance_replay as br
    srv = br.ReplayServer(data_dir=str(DATA), start=a.start, speed=0, tile_until=TILE_UNTIL,
                          gen_symbols=a.gen_symbols, ws_log_size=1,
                          archive_latency_ms=100, archive_bandwidth_bps=12_500_000)
    slog = sb.SendLog()
    srv.replay.ws.log = slog
    srv.start()
    print(json.dumps(srv.info()), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if len(cmd) == 2 and cmd[0] == "sendlog":
            def hook(path=cmd[1]):
                srv.replay.ws.log = slog     # reset_stats replaces the hub's log
                slog.reopen(path)
            srv._call(hook)
            print(json.dumps({"ok": True}), flush=True)
        elif cmd:
            print(json.dumps({"error": "unknown command"}), flush=True)
    srv._call(lambda: slog.reopen("-"))
    srv.stop()
    return 0


class Replay:
    def __init__(self, work: Path, nsym: int):
        mod = work / "replay"
        mod.mkdir(exist_ok=True)
        for f in ("binance_replay.py", "replay_archive.py"):
            shutil.copy2(REPLAY_SRC.parent / f, mod / f)
        self.cmd = [sys.executable, str(Path(__file__).resolve()), "_replay", "--module-dir",
                    str(mod), "--start", str(T_BUILD), "--gen-symbols", str(max(0, nsym - 2))]
        self.err = open(work / "replay.err", "w")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the replay did not start:\n" + (work / "replay.err").read_text())
        self.url = json.loads(line)["rest_url"]
        self.ws_url = self.url.replace("http://", "ws://")

    def ctl(self, path, body=None):
        req = urllib.request.Request(self.url + path, method="GET" if body is None else "POST",
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"null")

    def clock(self, **kw):
        return self.ctl("/_replay/clock", kw)

    def sendlog(self, path):
        self.proc.stdin.write("sendlog %s\n" % path)
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stop(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(15)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


# ------------------------------------------------------------------------------------------
# klined: a process whose log lines are time-stamped as they arrive; its /metrics
# ------------------------------------------------------------------------------------------

class Klined:
    def __init__(self, binary, work: Path, name, args):
        self.cmd = [str(binary), "run", "--config", os.devnull] + args
        self.path = work / ("klined-%s.log" % name)
        self.lines = []              # (seconds since start, text)
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        with open(self.path, "w") as f:
            for raw in self.proc.stderr:
                t = time.monotonic() - self.t0
                s = raw.decode(errors="replace").rstrip("\n")
                self.lines.append((t, s))
                f.write("%.3f %s\n" % (t, s))

    def first(self, pat, after=0.0):
        r = re.compile(pat)
        return next((t for t, s in list(self.lines) if t >= after and r.search(s)), None)

    def last(self, pat, before=float("inf")):
        r = re.compile(pat)
        return next((t for t, s in reversed(list(self.lines)) if t <= before and r.search(s)),
                    None)

    def count(self, pat):
        r = re.compile(pat)
        return sum(1 for _, s in list(self.lines) if r.search(s))

    def alive(self):
        if self.proc.poll() is not None:
            tail = "\n".join(s for _, s in self.lines[-30:])
            raise RuntimeError("klined exited %s:\n%s" % (self.proc.returncode, tail))

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.reader.join(5)
        return code


_SAMPLE = re.compile(r'^([a-z_:]+)(?:\{([^}]*)\})? (\S+)$')


def scrape(port):
    """/metrics as {name: [(labels dict, value)]}."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=30) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out.setdefault(m.group(1), []).append((labels, float(m.group(3))))
    return out


def metric(m, name, default=0.0):
    v = m.get(name)
    return v[0][1] if v else default


def histo(m, name):
    """[(le, cumulative count)] of a histogram, +Inf last."""
    return [(float(lab["le"]), v) for lab, v in m.get(name + "_bucket", [])]


def histo_quantiles(before, after, qs=(0.5, 0.99)):
    """From two scrapes of a cumulative histogram: the count in between and, per quantile,
    the upper bound of the bucket it falls in (None: past the last finite bound)."""
    d = [(le, a - b) for (le, a), (_, b) in zip(after, before)]
    n = d[-1][1] if d else 0
    out = {"n": int(n)}
    for q in qs:
        le = next((le for le, c in d if c >= q * n), None) if n else None
        out["p%g" % (q * 100)] = None if le is None or le == float("inf") else le
    # the bucket of the largest lag: it exceeded max_gt (None: none did) and is <= max_le
    top = next((i for i in range(len(d) - 2, -1, -1) if d[i][1] < n), None) if n else None
    out["max_gt"] = None if top is None else d[top][0]
    out["max_le"] = d[0][0] if top is None else d[top + 1][0]
    return out


def newest_events(m):
    return {lab.get("symbol"): v * 1000 for lab, v in
            m.get("klined_newest_event_timestamp_seconds", [])}


def gap_rows(db, lo, hi):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        con.execute("PRAGMA busy_timeout = 2000")
        return con.execute("SELECT count(*) FROM kline_1m WHERE open_time >= ? AND open_time < ?",
                           (lo, hi)).fetchone()[0]
    finally:
        con.close()


def uncertified(db, before):
    """(symbol, day) pairs before `before` with websocket minutes: what klined certifies."""
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        con.execute("PRAGMA busy_timeout = 2000")
        return con.execute("SELECT count(*) FROM (SELECT DISTINCT symbol FROM kline_1m "
                           "WHERE source = 'ws' AND open_time < ?)", (before,)).fetchone()[0]
    finally:
        con.close()


def lag_trace(k, port, path):
    """--perf: each second, the loop lag's count of samples over 20 ms and its max so far,
    to line stalls up with the log and the profile."""
    with open(path, "w", buffering=1) as f:
        while k.proc.poll() is None:
            try:
                m = scrape(port)
                h = dict(histo(m, "klined_loop_lag_seconds"))
                f.write("%.1f\t%d\t%d\t%.3f\n" % (time.monotonic() - k.t0, h.get(float("inf"), 0),
                        h.get(float("inf"), 0) - h.get(0.02, 0),
                        metric(m, "klined_loop_lag_max_seconds")))
            except (OSError, ValueError):
                pass
            time.sleep(1.0)


def wait_for(what, pred, timeout, k=None, every=0.2):
    t0 = time.monotonic()
    while True:
        if k is not None:
            k.alive()
        v = pred()
        if v:
            return v
        if time.monotonic() - t0 > timeout:
            raise RuntimeError("timeout (%d s) waiting for %s" % (timeout, what))
        time.sleep(every)


def loop_cpu_s(pid):
    """CPU seconds of klined's main thread (the loop), in ns from schedstat: the process's
    figure includes librdkafka's threads and the thread pool, and ticks at 10 ms."""
    try:
        with open("/proc/%d/task/%d/schedstat" % (pid, pid)) as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def cpu_rss(pid, seconds, k):
    """CPU % of one core (the process, and its loop thread alone) and RSS (MiB: mean, max of
    1 s samples, VmHWM) over `seconds`."""
    c0, m0, t0 = sb.proc_cpu_s(pid), sb.machine_cpu(), time.monotonic()
    l0 = loop_cpu_s(pid)
    rss = []
    while time.monotonic() - t0 < seconds:
        k.alive()
        rss.append(sb.proc_status(pid).get("VmRSS", 0) / 1024)
        time.sleep(1.0)
    wall = time.monotonic() - t0
    c1, m1 = sb.proc_cpu_s(pid), sb.machine_cpu()
    machine = (m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * os.cpu_count()
    cpu = (c1 - c0) / wall
    return {"seconds": round(wall, 1), "cpu_pct": round(cpu * 100, 2),
            "loop_cpu_pct": round((loop_cpu_s(pid) - l0) / wall * 100, 3),
            "rss_mib_mean": round(sum(rss) / len(rss), 1), "rss_mib_max": round(max(rss), 1),
            "hwm_mib": round(sb.proc_status(pid).get("VmHWM", 0) / 1024, 1),
            "other_cores": round(max(0.0, machine - cpu), 2)}


def e2c(replay, db, topic, boot, syms, seconds, work: Path):
    """Event -> committed over `seconds`, per event, as bench/stream.py measures it."""
    obs = sb.Observer(db, topic)
    path = work / "sent-e2c.log"
    replay.sendlog(str(path))
    obs.run_for(seconds)
    replay.sendlog("-")
    obs.run_for(3.0)                 # the last events' commits
    sym_index = {s.encode(): i for i, s in enumerate(syms)}
    msgs, _, _ = sb.read_topic(boot, topic, sym_index)
    tot, ws, cons, unmatched, invisible = [], [], [], 0, 0
    rows = []                        # sent, produced, offset, visible: a burst's timeline
    for key, ts, _t, _x, _si in sb.read_sendlog(path, sym_index):
        m = msgs.get(key)
        if m is None:
            unmatched += 1
            continue
        vis = obs.visible_at(m[0])
        if vis is None:
            invisible += 1
            continue
        rows.append("%.6f\t%.3f\t%d\t%.6f\n" % (ts, m[1] / 1000.0, m[0], vis))
        tot.append(vis - ts)
        ws.append(m[1] / 1000.0 - ts)
        cons.append(vis - m[1] / 1000.0)
    obs.close()
    with open(work / "latency-e2c.tsv", "w") as f:
        f.write("sent\tproduced\toffset\tvisible\n")
        f.writelines(rows)
    return {"latency": sb.summary_ms(tot), "to_kafka": sb.summary_ms(ws),
            "kafka_to_visible": sb.summary_ms(cons), "unmatched": unmatched,
            "not_visible": invisible}


# ------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------

def klined_args(replay, db, boot, topic, http_port):
    return ["--db", str(db), "--rest-url", replay.url, "--ws-url", replay.ws_url,
            "--symbols", "*USDT", "--history-start", DAY, "--archive-url", replay.url,
            "--kafka-brokers", boot, "--kafka-topic", topic, "--kafka-group", "klined",
            "--http-listen", "127.0.0.1:%d" % http_port]


def streaming(port, nsym, since_ms):
    try:
        ev = newest_events(scrape(port))
    except OSError:                  # not listening yet
        return False
    return sum(1 for v in ev.values() if v >= since_ms) >= nsym


def run(a, binary, boot, work: Path) -> dict:
    nsym = a.symbols
    syms = ["BTCUSDT", "ETHUSDT"] + ["S%04dUSDT" % i for i in range(1, nsym - 1)]
    db, topic = work / "klined.db", "bench.scale.%d" % int(time.time())
    http_port = sb_free_port()
    res = {"symbols": nsym, "topic": topic}
    replay = Replay(work, nsym)
    k = None
    try:
        # build: the store current up to T_BUILD, a cold start: every symbol new
        if a.cold_network:
            replay.ctl("/_replay/limits", {"reset": True, "weight_limit": 6000, "latency_ms": 100})
        log("build: klined --once, %d new symbols from %s to 23:40 (%s)"
            % (nsym, DAY, "network model" if a.cold_network else "loopback"))
        b = Klined(binary, work, "build", ["--once", "--db", str(db), "--rest-url", replay.url,
                                           "--symbols", "*USDT", "--history-start", DAY,
                                           "--archive-url", replay.url, "--kafka-brokers", "off",
                                           "--http-listen", "off"])
        code = b.proc.wait()
        b.reader.join(5)
        if code != 0:
            raise RuntimeError("build failed:\n" + "\n".join(s_ for _, s_ in b.lines[-30:]))
        st = replay.ctl("/_replay/stats")
        res["build"] = {
            "network_model": a.cold_network, "s": round(time.monotonic() - b.t0, 1),
            "requests": st["requests"], "status": st.get("responses"),
            "rate_limited": st.get("rate_limited"),
            "phases_s": {k_: None if v is None else round(v, 2) for k_, v in {
                "exchangeInfo": b.first(r"\[exchange\] symbols:"),
                "time": b.first(r"exchange time "),
                "listings_probed": b.last(r"new symbol, history"),
                "backfill_start": b.first(r"backfill: start"),
                "backfill_done": b.first(r"backfill: done")}.items()}}
        log("  %s" % res["build"])
        replay.ctl("/_replay/limits", {"reset": True, "weight_limit": 0, "latency_ms": 0})

        # first run: the daemon streams once, so the restart finds a topic and its offsets
        replay.clock(speed=1)
        k = Klined(binary, work, "first", klined_args(replay, db, boot, topic, http_port))
        wait_for("the first run to stream", lambda: streaming(http_port, nsym, T_BUILD), 180, k,
                 every=1.0)
        time.sleep(5)
        k.stop()
        k = None
        stop_ms = replay.clock(speed=0)["now_ms"]
        gap_lo = stop_ms - stop_ms % MIN     # the minute open at the stop: never final in ws
        if gap_rows(db, gap_lo - MIN, gap_lo) < nsym:
            gap_lo -= MIN
        log("first run stopped at %s" % replay.clock()["now_iso"])

        # restart after a downtime, under the network model, RESTART_S into a minute: the
        # minutes closed before it are settled (heal.c asks REST for a minute only 30 s
        # after it closed), the open one comes from the stream
        replay.clock(now_ms=stop_ms - stop_ms % MIN + DOWNTIME_MS + a.restart_s * 1000)
        replay.ctl("/_replay/limits", {"reset": True, "weight_limit": 6000, "latency_ms": 100})
        replay.ctl("/_replay/reset_stats", {})
        res["machine_before"] = sb.wait_idle([replay.proc.pid, BROKER.pid])
        restart_ms = replay.clock(speed=1)["now_ms"]
        gap_hi = restart_ms - restart_ms % MIN  # minutes closed before the restart
        check_lo = T_BUILD - 10 * MIN    # and the minutes before it: no hole anywhere near
        want = nsym * (gap_hi - check_lo) // MIN
        extra = ["--rest-concurrency", str(a.rest_concurrency)] if a.rest_concurrency else []
        k = Klined(binary, work, "restart", klined_args(replay, db, boot, topic, http_port) + extra)
        perf = None
        if a.perf:                   # where the loop's time goes: not for the figures
            perf = subprocess.Popen(["perf", "record", "-F", "199", "--call-graph",
                                     "dwarf,16384", "-p", str(k.proc.pid),
                                     "-o", str(work / "perf.data")], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            threading.Thread(target=lag_trace, args=(k, http_port, work / "lag.tsv"),
                             daemon=True).start()
        t_stream = wait_for("every symbol streaming",
                            lambda: streaming(http_port, nsym, restart_ms) and
                            time.monotonic() - k.t0, 120, k, every=0.1)
        t_gap = wait_for("the downtime healed",
                         lambda: gap_rows(db, check_lo, gap_hi) >= want and
                         time.monotonic() - k.t0, 180, k, every=0.1)
        st = replay.ctl("/_replay/stats")
        m = scrape(http_port)
        res["startup"] = {
            "gap_minutes": (gap_hi - gap_lo) // MIN, "gap_klines": nsym * (gap_hi - gap_lo) // MIN,
            "streaming_s": round(t_stream, 2), "no_gap_s": round(t_gap, 2),
            "done_s": round(max(t_stream, t_gap), 2),
            "phases_s": {k_: None if v is None else round(v, 2) for k_, v in {
                "exchangeInfo": k.first(r"\[exchange\] symbols:"),
                "time": k.first(r"exchange time "),
                # the start-up's plan (its slices let the stream connect meanwhile)
                "plan": k.first(r"minutes? missing|new symbol, history"),
                "first_connect": k.first(r"ws: connected"),
                "last_connect": k.last(r"ws: connected"),
                "kafka_consuming": k.first(r"kafka: consuming"),
                "backfill_done": k.first(r"backfill: done"),
            }.items()},
            "ws_connections": int(metric(m, "klined_ws_connects_total")),
            "requests": st["requests"], "weight": st.get("weight_used"),
            "loop_lag_max_s": metric(m, "klined_loop_lag_max_seconds"),
            "log_lines": len(k.lines),
        }
        log("start-up: %s" % res["startup"])

        # steady streaming at Binance's rate
        log("steady streaming for %d s" % a.steady_s)
        res["steady"] = cpu_rss(k.proc.pid, a.steady_s, k)
        log("  %s" % res["steady"])
        m0 = scrape(http_port)
        res["e2c"] = e2c(replay, db, topic, boot, syms, a.e2c_s, work)
        m1 = scrape(http_port)
        # where a tail comes from: the stream's commits and the loop over the same phase
        res["e2c"]["commit_s"] = histo_quantiles(histo(m0, "klined_window_commit_seconds"),
                                                 histo(m1, "klined_window_commit_seconds"))
        res["e2c"]["loop_lag"] = histo_quantiles(histo(m0, "klined_loop_lag_seconds"),
                                                 histo(m1, "klined_loop_lag_seconds"))
        log("event -> committed: %s" % res["e2c"])

        # a heal and a certification together
        m0 = scrape(http_port)
        lag0, max0 = histo(m0, "klined_loop_lag_seconds"), metric(m0, "klined_loop_lag_max_seconds")
        replay.ctl("/_replay/limits", {"reset": True})
        replay.clock(speed=0)
        jump_from = replay.clock()["now_ms"]
        replay.ctl("/_replay/ws_disconnect", {"code": 1001, "reason": "bench: heal"})
        replay.clock(now_ms=T_JUMP, speed=1)
        t0 = time.monotonic()
        h_lo, h_hi = jump_from - jump_from % MIN + MIN, T_JUMP
        h_want = nsym * (h_hi - h_lo) // MIN
        midnight = sb.ms_of("2023-06-11T00:00:00Z")
        c0 = cpu0 = sb.proc_cpu_s(k.proc.pid)
        t_heal = wait_for("the heal", lambda: gap_rows(db, h_lo, h_hi) >= h_want and
                          time.monotonic() - t0, 600, k, every=1.0)
        # Done when no websocket minute of the day is left: each was certified, or replaced
        # by the heal (REST wins); certify_lines says how many symbols were certified.
        t_cert = wait_for("the certification", lambda: uncertified(db, midnight) == 0 and
                          time.monotonic() - t0, 900, k, every=1.0)
        c0 = sb.proc_cpu_s(k.proc.pid)
        m1 = scrape(http_port)
        lag = histo_quantiles(lag0, histo(m1, "klined_loop_lag_seconds"))
        max1 = metric(m1, "klined_loop_lag_max_seconds")
        lag["max_s"] = max1 if max1 > max0 else None
        lag["max_before_s"] = max0
        res["heal_cert"] = {"heal_minutes": (h_hi - h_lo) // MIN, "heal_s": round(t_heal, 1),
                            "certified_s": round(t_cert, 1), "loop_lag": lag,
                            "cpu_s": round(c0 - cpu0, 1),
                            "certify_lines": k.count(r"certifying %s" % DAY)}
        log("heal + certification: %s" % res["heal_cert"])
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(120)
        res["klined_exit"] = k.stop()
        res["warnings"] = sorted({re.sub(r"\d+", "N", s)[:160] for _, s in k.lines
                                  if "[warn]" in s or "[error]" in s})[:12]
        k = None
        res["commands"] = {"replay": sb.cmdline(["python3", "bench/scale.py"] + replay.cmd[2:]),
                           "klined": sb.cmdline(["klined", "run", "--config", "/dev/null"] +
                                                klined_args(replay, db, boot, topic, http_port)
                                                + extra)}
    finally:
        if k is not None:
            k.stop()
        replay.stop()
    return res


def sb_free_port():
    import kafka as kf
    return kf.free_ports(1)[0]


GOALS = [  # (label, goal text, value of the result, test)
    ("start-up to streaming, no gap", "≤ 5 s", lambda r: r["startup"]["done_s"],
     lambda v: v <= 5),
    ("steady CPU, % of a core", "≤ 3 %", lambda r: r["steady"]["cpu_pct"], lambda v: v <= 3),
    ("steady RSS, MiB (max of samples)", "≤ 64", lambda r: r["steady"]["rss_mib_max"],
     lambda v: v <= 64),
    ("loop lag p99 during heal + certification, s", "≤ 0.020",
     lambda r: r["heal_cert"]["loop_lag"]["p99"], lambda v: v is not None and v <= 0.02),
    ("loop lag max during heal + certification, s", "≤ 0.100",
     lambda r: r["heal_cert"]["loop_lag"]["max_s"] or r["heal_cert"]["loop_lag"]["max_le"],
     lambda v: v <= 0.1),
    ("event → committed p99, ms", "≤ 20", lambda r: r["e2c"]["latency"]["p99"],
     lambda v: v is not None and v <= 20),
]


def report(r, machine, argv) -> str:
    s = r["startup"]
    L = ["## %s symbols (`python3 bench/scale.py%s`)" % (r["symbols"], " " + " ".join(argv)
                                                         if argv else ""), "",
         "Machine: %s, %d vCPU, %s GB, %s; load average at the start %s; klined %s (%s)."
         % (machine["cpu_model"], machine["nproc"], machine["mem_total_gb"], machine["kernel"],
            machine["loadavg_start"], machine["klined"], machine["git"]), "",
         "| measure | goal | measured | met |", "|---|---|---|---|"]
    for label, goal, get, ok in GOALS:
        try:
            v = get(r)
        except (KeyError, TypeError):
            v = None
        L.append("| %s | %s | %s | %s |" % (label, goal, v, "yes" if v is not None and ok(v)
                                                         else "**no**"))
    L += ["", "Start-up phases (s from process start): %s; every symbol streaming at %s s, "
          "the %d-minute downtime (%d klines) healed at %s s; %s websocket connections; "
          "REST requests %s; %d log lines."
          % (s["phases_s"], s["streaming_s"], s["gap_minutes"], s["gap_klines"], s["no_gap_s"],
             s["ws_connections"], s["requests"], s["log_lines"]),
          "", "Steady: %s." % r["steady"], "", "Event → committed: %s." % r["e2c"], "",
          "Heal + certification: %s." % r["heal_cert"], "",
          "Build (klined --once, a cold start of %d new symbols): %s." % (r["symbols"],
                                                                         r["build"]),
          "", "```", r["commands"]["replay"], r["commands"]["klined"], "```"]
    return "\n".join(L)


BROKER = None


def main(argv=None) -> int:
    global BROKER
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_replay":
        return replay_child(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="60 s of steady streaming (~6 min)")
    ap.add_argument("--symbols", type=int, default=1500)
    ap.add_argument("--steady-s", type=int, default=None, help="default 300, --quick 60")
    ap.add_argument("--e2c-s", type=int, default=30)
    ap.add_argument("--rest-concurrency", type=int, default=0, metavar="N",
                    help="the restarted klined's --rest-concurrency (default: klined's, 8)")
    ap.add_argument("--cold-network", action="store_true", default=None,
                    help="build the store under the network model too (default without "
                         "--quick): the cold start's listing probes, timed")
    ap.add_argument("--restart-s", type=int, default=35,
                    help="the restart's second in its minute (default %(default)s)")
    ap.add_argument("--klined", default=str(KLINED))
    ap.add_argument("--no-build", action="store_true", help="don't run ninja -C build first")
    ap.add_argument("--wait-idle", type=float, default=30.0, metavar="S")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--perf", action="store_true",
                    help="perf record the restarted klined into $WORK/perf.data (implies --keep)")
    a = ap.parse_args(argv)
    a.keep = a.keep or a.perf
    # SIGTERM (timeout, a CI runner) unwinds like ^C: klined, the replay and the broker stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if a.cold_network is None:
        a.cold_network = not a.quick
    if a.steady_s is None:
        a.steady_s = 60 if a.quick else 300
    sb.WAIT_IDLE_S = a.wait_idle
    import kafka as kf
    if not a.no_build and Path(a.klined) == KLINED:
        b = subprocess.run(["ninja", "-C", str(REPO / "build"), "daemon/klined"],
                           capture_output=True, text=True)
        if b.returncode != 0:
            log(b.stdout + b.stderr)
            return 2
    kf.fetch(quiet=True)
    work = Path(tempfile.mkdtemp(prefix="klined-scale-"))
    binary = work / "klined"
    shutil.copy2(a.klined, binary)
    sb.KLINED = binary
    machine = sb.machine_info()
    t0 = time.monotonic()
    BROKER = kf.KafkaBroker(port=0, workdir=work / "kafka")
    BROKER.start()
    try:
        res = run(a, binary, BROKER.bootstrap, work)
    finally:
        BROKER.stop()
    machine["total_s"] = round(time.monotonic() - t0)
    text = report(res, machine, argv).replace(str(work), "$WORK")
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)
    print(text)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    prev = {}
    if OUT.exists():
        try:
            prev = json.loads(OUT.read_text())
        except ValueError:
            prev = {}
    key = ("quick" if a.quick else "full") + ("+c%d" % a.rest_concurrency
                                              if a.rest_concurrency else "")
    prev[key] = {"machine": machine, "result": res, "argv": argv,
                                            "markdown": text}
    OUT.write_text(json.dumps(prev, indent=1, default=str).replace(str(work), "$WORK") + "\n")
    if a.keep:
        log("work directory kept: %s" % work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
