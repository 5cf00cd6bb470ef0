#!/usr/bin/env python3
"""Speed-layer benchmark: replay websocket -> klined -> Kafka -> klined's consumer -> SQLite.

    python3 bench/stream.py [--quick] [--commit-ms N] [--wait-idle S] [--keep]
                            [--klined PATH | --no-build] [--no-variant]

Everything runs on 127.0.0.1 and is started and stopped here: one Kafka 4.1 broker
(tests/kafka/kafka.py, JIT-warmed with 30,000 messages first), and per scenario a replay
exchange (tests/replay/binance_replay.py, in a subprocess, its clock frozen at
2023-06-10T00:02:30Z until the measurement starts) and klined in daemon mode on a fresh
store and a fresh topic (created by klined: one partition).  build/daemon/klined is rebuilt
with ninja (unless --no-build) and copied first, so a concurrent rebuild can't change what is
measured.

What is measured, per event (every event, not a sample):

  sent      the replay's wall time when it queued the event's frame.  The replay's per-frame
            log hook (WsHub.log.append, called for every frame just before it is written) is
            replaced, in the replay's process, by one that appends "time.time() stream E t x"
            to a file.  Nothing in binance_replay.py changes.
  produced  the Kafka message's CreateTime: set by librdkafka when klined produced it (ms).
            Events are matched to messages by (symbol, E, x), read back after the run.
  visible   the first time an observer in this process (its own read-only SQLite connection,
            polling `SELECT next FROM consumer_offset` every ~0.5 ms) sees the consumer's
            stored next offset pass the message's offset.  klined commits that offset in the
            same transaction as the event's effects (the day row; for an x:true event its
            kline row, source 2), so this is when the change is committed and visible.  For
            the first step's x:true events the appearance of the kline row itself is watched
            too, as a cross-check.

  latency = visible - sent; split into sent -> produced (websocket, klined's loop, producer)
  and produced -> visible (broker, consumer, commit policy).

Scenarios (offered rates; the replay's speed is set from the number of streaming symbols:
each symbol yields 0.5 events per virtual second, 29 x:false updates and 1 x:true a minute):

  2 symbols            BTCUSDT, ETHUSDT at 1,000 events/s (speed 1000).
  500 symbols          BTCUSDT, ETHUSDT + S0001USDT..S0498USDT (--gen-symbols 498) at
                       1,000 events/s, the tree's klined: how many symbols stream at all.
  500 symbols ws100    klined-ws100, the tree's sources with KL_WS_STREAMS_PER_CONN = 100
                       (libwebsockets 4.1 truncates a client request line at 2,048 bytes, so
                       200 streams per connection don't connect), built in $WORK: a ramp of
                       1k, 5k, 10k, 20k, 30k, 40k, 60k events/s.  Each step reports what the
                       replay sent, what klined committed, latency percentiles, the backlog
                       (Kafka end - committed) at its end, the replay's skipped updates
                       (it fell behind: its own CPU, or backpressure from klined's socket)
                       and each process's CPU.  After the last step the clock stops and
                       every frame already queued is let through and counted.
  drain                the tree's klined on a fresh store whose consumer offset is set to the
                       start of the ramp's topic, the replay frozen: the consumer alone
                       (Kafka -> SQLite) on the same events, as fast as it goes.
  --commit-ms N        also klined-commitN (ws100 + COMMIT_MS = N) at 1,000 events/s, 2 and
                       500 symbols: what the consumer's commit timer costs in latency.

Peak RSS: VmHWM from /proc of klined after the first step and at the end of each scenario;
the broker's VmRSS/VmHWM separately.  The machine is shared: before each scenario the bench
waits (at most --wait-idle s, default 60) until other processes use under 1/3 core, and
reports what they used during each step.

Prints the machine, a markdown table, the commands; writes bench/out/stream.json (key "full",
"quick", or with "+commitN").  --keep keeps $WORK: per step sent-NN.log (the replay's send
log), latency-NN.tsv (sent, produced, offset, visible per event), commits.tsv, the logs.
--quick: shorter and fewer steps (~3 min).
"""
import argparse
import bisect
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPLAY_SRC = REPO / "tests" / "replay" / "binance_replay.py"
KAFKA_DIR = REPO / "tests" / "kafka"
DATA = (REPO / "tests" / "data" / "binance").resolve()
KLINED = REPO / "build" / "daemon" / "klined"
OUT = REPO / "bench" / "out" / "stream.json"

DAY = "2023-06-10"              # a tiled day; the clock starts at 00:02:30 (2 minutes to backfill)
START = DAY + "T00:02:30Z"
TILE_UNTIL = "2024-01-01"
POLL_S = 0.0005                 # observer poll period
WAIT_IDLE_S = 60.0              # --wait-idle: longest wait for the rest of the machine


# ------------------------------------------------------------------------------------------
# the replay's process: binance_replay.ReplayServer plus a send-time log
# ------------------------------------------------------------------------------------------

class SendLog:
    """Stands in for WsHub.log (a deque of (wall_ms, conn, stream, E, t, x, fault, text)
    tuples): one line per frame, with a finer wall time; no memory kept."""
    __slots__ = ("fh",)

    def __init__(self):
        self.fh = None

    def append(self, e):
        fh = self.fh
        if fh is not None:
            fh.write("%.6f %s %d %d %d\n" % (time.time(), e[2], e[3], e[4], e[5]))

    def reopen(self, path):
        if self.fh is not None:
            self.fh.close()
        self.fh = None if path == "-" else open(path, "w", buffering=1 << 20)

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0


def replay_child(argv) -> int:
    """`stream.py _replay --module-dir DIR --data DIR --start T --tile-until D --gen-symbols N`
    serves the replay exchange (binance_replay imported from DIR) and reads commands on
    stdin, each answered with one JSON line:
      speed X           set the clock's speed
      step PATH SPEED   send log to PATH (or '-' for none), then set the clock's speed
      clock MS          set the clock to MS, frozen
      stats             websocket stats (events sent, skipped updates, lag, streams) and
                        the REST request count
    EOF stops the server."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--module-dir", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--start", required=True)
    ap.add_argument("--tile-until", required=True)
    ap.add_argument("--gen-symbols", type=int, default=0)
    a = ap.parse_args(argv)
    sys.path.insert(0, a.module_dir)
    import binance_replay as br

    srv = br.ReplayServer(data_dir=a.data, start=a.start, speed=0, tile_until=a.tile_until,
                          gen_symbols=a.gen_symbols, ws_log_size=1)
    slog = SendLog()
    srv.replay.ws.log = slog
    srv.start()
    print(json.dumps(srv.info()), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "speed":
            out = srv.set_clock(speed=float(cmd[1]))
        elif cmd[0] == "step":
            path, speed = cmd[1], float(cmd[2])

            def go():
                slog.reopen(path)
                return srv.replay.clock.set(speed=speed)
            out = srv._call(go)
        elif cmd[0] == "clock":
            out = srv.set_clock(now_ms=int(cmd[1]), speed=0)
        elif cmd[0] == "stats":
            st = srv.ws_stats()
            out = {k: st[k] for k in ("events_sent", "updates_skipped", "max_lag_ms",
                                      "connections_current")}
            out["lag_ms"] = max([c["lag_ms"] for c in st["connections"]] or [0])
            out["streams"] = sum(len(c["streams"]) for c in st["connections"])
            out["rest_requests"] = srv.stats()["requests_total"]
            out["now_ms"] = srv.now_ms()
        else:
            out = {"error": "unknown command"}
        print(json.dumps(out), flush=True)
    srv._call(lambda: slog.reopen("-"))
    srv.stop()
    return 0


class Replay:
    def __init__(self, work: Path, nsym: int, errlog: Path):
        mod = work / "replay"
        mod.mkdir(exist_ok=True)
        shutil.copy2(REPLAY_SRC, mod / "binance_replay.py")
        shutil.copy2(REPLAY_SRC.parent / "replay_archive.py", mod / "replay_archive.py")
        self.cmd = [sys.executable, str(Path(__file__).resolve()), "_replay",
                    "--module-dir", str(mod), "--data", str(DATA), "--start", START,
                    "--tile-until", TILE_UNTIL, "--gen-symbols", str(max(0, nsym - 2))]
        self.err = open(errlog, "w")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the replay exchange did not start:\n" + errlog.read_text()[-2000:])
        self.info = json.loads(line)
        self.lock = threading.Lock()

    def cmd_(self, *words):
        with self.lock:
            self.proc.stdin.write(" ".join(str(w) for w in words) + "\n")
            self.proc.stdin.flush()
            return json.loads(self.proc.stdout.readline())

    def step(self, path, speed):
        return self.cmd_("step", path, speed)

    def stats(self):
        return self.cmd_("stats")

    def stop(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(15)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------

def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmdline(cmd) -> str:
    return " ".join(shlex.quote(str(c)) for c in cmd)


def short_cmd(cmd) -> str:
    """The command line, with a long --symbols list written as its first and last names."""
    out = []
    for c in map(str, cmd):
        names = c.split(",")
        if len(names) > 4 and all(re.fullmatch(r"[A-Z0-9]+", n) for n in names):
            c = "%s,%s,%s,...,%s" % (names[0], names[1], names[2], names[-1])
        out.append(c)
    return cmdline(out)


def other_cpu(pids, seconds=1.0) -> float:
    """Cores the rest of the machine (not pids, not this process) used over `seconds`."""
    m0, p0, s0 = machine_cpu(), sum(proc_cpu_s(p) for p in pids), time.process_time()
    time.sleep(seconds)
    m1, p1, s1 = machine_cpu(), sum(proc_cpu_s(p) for p in pids), time.process_time()
    busy = (m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * os.cpu_count() * seconds
    return max(0.0, (busy - (p1 - p0) - (s1 - s0)) / seconds)


def wait_idle(pids) -> dict:
    """Wait (at most WAIT_IDLE_S) until the rest of the machine uses under a third of a core
    over a second: other people's builds and tests share this machine."""
    t0 = time.monotonic()
    o = other_cpu(pids)
    while o >= 0.33 and time.monotonic() - t0 < WAIT_IDLE_S:
        o = other_cpu(pids)
    return {"waited_s": round(time.monotonic() - t0, 1), "other_cores": round(o, 2)}


def ms_of(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def proc_cpu_s(pid) -> float:
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, TypeError):
        return 0.0


def machine_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def proc_status(pid, keys=("VmRSS", "VmHWM")) -> dict:
    out = {}
    try:
        for line in Path("/proc/%d/status" % pid).read_text().splitlines():
            k = line.split(":", 1)[0]
            if k in keys:
                out[k] = int(line.split()[1])
    except OSError:
        pass
    return out


def machine_info() -> dict:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = next(int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines()
                  if l.startswith("MemTotal:"))
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    ver = subprocess.run([str(KLINED), "--version"], capture_output=True, text=True)
    import kafka as kf
    return {
        "nproc": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model, "mem_total_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(), "os": platform.freedesktop_os_release().get("PRETTY_NAME", "?"),
        "python": platform.python_version(), "sqlite_python": sqlite3.sqlite_version,
        "kafka": kf.kafka_version() if hasattr(kf, "kafka_version") else "?",
        "klined": (ver.stdout or ver.stderr).strip(),
        "git": git + (" (work tree has uncommitted changes)" if dirty else ""),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def pct(sorted_vals, q):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(q / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


def summary_ms(vals):
    v = sorted(vals)
    f = lambda x: None if x is None else round(x * 1000, 1)  # noqa: E731
    return {"n": len(v), "p50": f(pct(v, 50)), "p90": f(pct(v, 90)), "p99": f(pct(v, 99)),
            "max": f(v[-1] if v else None), "mean": f(sum(v) / len(v) if v else None)}


# ------------------------------------------------------------------------------------------
# klined, observer, Kafka read-back
# ------------------------------------------------------------------------------------------

class Klined:
    def __init__(self, binary, db: Path, rest_url, ws_url, boot, topic, symbols, errlog: Path,
                 group="klined", once=False):
        self.cmd = [str(binary), "--config", "/dev/null", "--db", str(db), "--rest-url", rest_url,
                    "--ws-url", ws_url, "--kafka-brokers", boot, "--kafka-topic", topic,
                    "--kafka-group", group, "--symbols", ",".join(symbols),
                    "--history-start", DAY]
        if once:
            self.cmd.append("--once")
        self.errlog = errlog
        self.err = open(errlog, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=self.err)

    @property
    def pid(self):
        return self.proc.pid

    def log_text(self) -> str:
        return self.errlog.read_text(errors="replace")

    def wait_log(self, pred, timeout, what):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            txt = self.log_text()
            if pred(txt):
                return
            if self.proc.poll() is not None:
                raise RuntimeError("klined exited (%s) while waiting for %s:\n%s"
                                   % (self.proc.returncode, what, txt[-3000:]))
            time.sleep(0.1)
        raise RuntimeError("timeout waiting for %s:\n%s" % (what, self.log_text()[-3000:]))

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.err.close()
        return code


class Observer:
    """Polls klined's store: the consumer's committed next offset (partition 0), and,
    when `rows` is set, the newest websocket minute per symbol."""

    def __init__(self, db: Path, topic: str):
        self.db, self.topic = db, topic
        self.con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, isolation_level=None,
                                   check_same_thread=False)
        self.con.execute("PRAGMA busy_timeout = 1000")
        self.times, self.nexts = [], []
        self.rows = False
        self.row_seen = {}      # (sid, open_time) -> first time seen
        self.row_max = {}
        self.last = -1

    def poll(self):
        t = time.time()
        r = self.con.execute("SELECT next FROM consumer_offset WHERE topic = ? AND part = 0",
                             (self.topic,)).fetchone()
        if r is not None and r[0] > self.last:
            self.last = r[0]
            self.times.append(t)
            self.nexts.append(r[0])
            if self.rows:
                for sid, mx in self.con.execute(
                        "SELECT sid, max(open_time) FROM kline WHERE source = 2 GROUP BY sid"):
                    prev = self.row_max.get(sid)
                    if prev is None:
                        self.row_seen[(sid, mx)] = t
                    else:
                        for ot in range(prev + 60_000, mx + 1, 60_000):
                            self.row_seen[(sid, ot)] = t
                    self.row_max[sid] = max(mx, prev or mx)
        return self.last

    def run_for(self, seconds, tick=None, tick_every=1.0):
        end = time.monotonic() + seconds
        next_tick = time.monotonic() + tick_every
        while True:
            now = time.monotonic()
            if now >= end:
                break
            self.poll()
            if tick is not None and now >= next_tick:
                tick()
                next_tick += tick_every
            time.sleep(POLL_S)

    def visible_at(self, offset):
        """Wall time at which a message at `offset` was first seen committed, or None."""
        i = bisect.bisect_right(self.nexts, offset)
        return self.times[i] if i < len(self.times) else None

    def sym_ids(self):
        return dict(self.con.execute("SELECT symbol, sid FROM symbol").fetchall())

    def close(self):
        self.con.close()


_E_RE = re.compile(rb'"E":(\d+)')


def read_topic(boot, topic, sym_index):
    """Every message of the topic: key (sym, E, x) -> (offset, CreateTime ms)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": boot, "group.id": "bench-reader", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "enable.partition.eof": True})
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    c.assign([TopicPartition(topic, 0, lo)])
    out = {}
    off = lo
    deadline = time.monotonic() + 300
    while off < hi and time.monotonic() < deadline:
        for m in c.consume(20000, 1.0):
            if m.error():
                continue
            off = m.offset() + 1
            v = m.value()
            e = _E_RE.search(v)
            si = sym_index.get(m.key())
            if e is None or si is None:
                continue
            x = 1 if b'"x":true' in v else 0
            out[((si << 44) | int(e.group(1))) << 1 | x] = (m.offset(), m.timestamp()[1])
    c.close()
    return out, lo, hi


def hwm(boot, topic):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": boot, "group.id": "bench-hwm"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


def read_sendlog(path: Path, sym_index):
    """[(key, sent, t_open, x)] of a step's send log."""
    out = []
    with open(path, "rb") as f:
        for line in f:
            p = line.split()
            if len(p) != 5:
                continue
            si = sym_index.get(p[1].split(b"@", 1)[0].upper())
            if si is None:
                continue
            x = int(p[4])
            out.append((((si << 44) | int(p[2])) << 1 | x, float(p[0]), int(p[3]), x, si))
    return out


# ------------------------------------------------------------------------------------------
# a scenario: one replay, one klined, a list of (events/s, seconds) steps
# ------------------------------------------------------------------------------------------

def symbols_for(n):
    return ["BTCUSDT", "ETHUSDT"] + ["S%04dUSDT" % i for i in range(1, n - 1)]


def speed_for(rate, streaming):
    """Replay speed at which `streaming` symbols yield `rate` events/s: per symbol, 29 x:false
    updates (every 2 virtual s) and one x:true per virtual minute = 0.5 events per virtual s."""
    return round(2.0 * rate / max(1, streaming), 3)


def run_scenario(sc, boot, work: Path):
    name, nsym, binary = sc["name"], sc["symbols"], sc["binary"]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    sdir = work / slug
    sdir.mkdir()
    syms = symbols_for(nsym)
    topic = "bench.%s.%d" % (slug, int(time.time()))
    res = {"name": name, "symbols": nsym, "binary": sc["label"], "topic": topic, "steps": []}
    log("== %s: %d symbols, %s, topic %s" % (name, nsym, sc["label"], topic))
    res["idle_before"] = wait_idle([BROKER.pid])
    log("   machine: %s" % res["idle_before"])
    replay = Replay(work, nsym, sdir / "replay.err")
    res["replay_cmd"] = cmdline(["python3"] + [a if a != str(Path(__file__).resolve())
                                               else "bench/stream.py" for a in replay.cmd[1:]])
    k = None
    try:
        db = sdir / "klined.db"
        k = Klined(binary, db, replay.info["rest_url"], replay.info["ws_url"], boot, topic, syms,
                   sdir / "klined.err")
        res["klined_cmd"] = short_cmd(k.cmd)
        nconn = (nsym + sc["per_conn"] - 1) // sc["per_conn"]
        t0 = time.monotonic()
        k.wait_log(lambda s: "kafka: consuming" in s and "ws: connected" in s, 120,
                   "the stream to start")
        # the backfill (two minutes per symbol) is done when every symbol has its klines
        while True:
            try:
                con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
                n = con.execute("SELECT count(DISTINCT sid) FROM kline").fetchone()[0]
                con.close()
            except sqlite3.Error:
                n = 0
            if n >= nsym:
                break
            if time.monotonic() - t0 > 180:
                raise RuntimeError("backfill did not finish:\n" + k.log_text()[-2000:])
            time.sleep(0.2)
        t1 = time.monotonic()
        while replay.stats()["connections_current"] < nconn and time.monotonic() - t1 < 5:
            time.sleep(0.2)
        st = replay.stats()
        res["startup_s"] = round(time.monotonic() - t0, 1)
        res["ws_connections"] = "%d of %d" % (st["connections_current"], nconn)
        streaming = st["streams"]
        res["streaming_symbols"] = streaming
        if streaming < nsym:
            bad = sum(l.startswith("aiohttp.http_exceptions.InvalidURLError")
                      for l in (sdir / "replay.err").read_text(errors="replace").splitlines())
            res["stream_problem"] = (
                "only %d of %d symbols stream: %d of klined's %d websocket connections are up "
                "(the replay refused %d handshakes: request path truncated)"
                % (streaming, nsym, st["connections_current"], nconn, bad))
            log("   !! " + res["stream_problem"])
        obs = Observer(db, topic)
        sym_ids = obs.sym_ids()
        sym_index = {s.encode(): i for i, s in enumerate(syms)}
        sid_of_index = {i: sym_ids[s] for i, s in enumerate(syms)}

        pids = {"klined": k.pid, "replay": replay.proc.pid, "broker": BROKER.pid}
        # warm-up: the first event of each symbol loads its day window from the store
        replay.cmd_("speed", speed_for(sc["steps"][0][0], streaming))
        obs.run_for(sc["warmup"])
        peak = {"klined_rss": 0, "broker_rss": 0}

        def sample():
            peak["klined_rss"] = max(peak["klined_rss"], proc_status(k.pid).get("VmRSS", 0))
            peak["broker_rss"] = max(peak["broker_rss"], BROKER.rss_kib() or 0)
        for i, (rate, secs) in enumerate(sc["steps"]):
            speed = speed_for(rate, streaming)
            obs.rows = i == 0
            path = sdir / ("sent-%02d.log" % i)
            st0 = replay.stats()
            n0, cpu0, m0 = obs.poll(), {p: proc_cpu_s(v) for p, v in pids.items()}, machine_cpu()
            self0, tw0 = time.process_time(), time.time()
            replay.step(path, speed)
            log("   step %d: %d events/s offered (speed %g) for %g s" % (i, rate, speed, secs))
            obs.run_for(secs, tick=sample)
            replay.step("-", speed)    # stop logging; the clock keeps its speed
            tw1 = time.time()
            st1 = replay.stats()
            n1 = obs.poll()
            cpu1, m1 = {p: proc_cpu_s(v) for p, v in pids.items()}, machine_cpu()
            self1 = time.process_time()
            high = hwm(boot, topic)
            wall = tw1 - tw0
            step = {
                "rate": rate, "speed": speed, "seconds": round(wall, 2),
                "sent": st1["events_sent"] - st0["events_sent"],
                "sent_per_s": round((st1["events_sent"] - st0["events_sent"]) / wall),
                "committed_per_s": round((n1 - n0) / wall),
                "backlog_end": high - n1,
                "replay_skipped": st1["updates_skipped"] - st0["updates_skipped"],
                "replay_lag_ms_end": st1["lag_ms"],
                "rest_requests": st1["rest_requests"] - st0["rest_requests"],
                "cpu": {p: round((cpu1[p] - cpu0[p]) / wall * 100) for p in pids},
                "cpu_observer": round((self1 - self0) / wall * 100),
                "cpu_machine": round((m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * os.cpu_count() * 100),
                "cpu_other": round((m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * os.cpu_count() * 100
                                   - sum(cpu1[p] - cpu0[p] for p in pids) / wall * 100
                                   - (self1 - self0) / wall * 100),
                "klined_status": proc_status(k.pid),
                "sendlog": str(path),
            }
            res["steps"].append(step)
            log("     sent %d/s, committed %d/s, backlog %d, skipped %d, cpu %s"
                % (step["sent_per_s"], step["committed_per_s"], step["backlog_end"],
                   step["replay_skipped"], step["cpu"]))
        # Stop the clock and let klined catch up: frames the replay has queued (its
        # transport buffer and the sockets hold thousands when klined reads slower than it
        # sends) still arrive; done when Kafka's end stops moving and all of it is committed.
        replay.step("-", 0)
        t_stop = time.monotonic()
        high, since = hwm(boot, topic), time.monotonic()
        while time.monotonic() - t_stop < 120:
            obs.run_for(0.25)
            h = hwm(boot, topic)
            if h != high:
                high, since = h, time.monotonic()
            elif obs.last >= high and time.monotonic() - since >= 1.5:
                break
        res["catchup_after_s"] = round(since - t_stop, 2)
        res["all_committed"] = obs.last >= high
        res["peak_rss_sampled_kib"] = peak
        res["klined_status_end"] = proc_status(k.pid)
        res["broker_status_end"] = proc_status(BROKER.pid)
        res["klined_exit"] = k.stop()
        lines = k.log_text().splitlines()
        res["klined_stopped"] = [l for l in lines if "speed: stopped" in l][-1:]
        res["klined_warnings"] = sorted({re.sub(r"\d+", "N", l)[:160] for l in lines
                                         if "[warn]" in l or "[error]" in l})[:12]
        k = None
        with open(sdir / "commits.tsv", "w") as f:
            f.writelines("%.6f\t%d\n" % tn for tn in zip(obs.times, obs.nexts))

        log("   reading the topic back")
        msgs, lo, hi = read_topic(boot, topic, sym_index)
        res["topic_messages"] = hi - lo
        for i, step in enumerate(res["steps"]):
            sent = read_sendlog(Path(step["sendlog"]), sym_index)
            tot, ws, cons, fin_row, fin_off = [], [], [], [], []
            unmatched = invisible = 0
            with open(sdir / ("latency-%02d.tsv" % i), "w") as trace:
                trace.write("sent\tproduced_ms\toffset\tvisible\tx\tsymbol\n")
                for key, ts, t_open, x, si in sent:
                    m = msgs.get(key)
                    if m is None:
                        unmatched += 1
                        continue
                    off, ct = m
                    vis = obs.visible_at(off)
                    if vis is None:
                        invisible += 1
                        continue
                    tot.append(vis - ts)
                    ws.append(ct / 1000.0 - ts)
                    cons.append(vis - ct / 1000.0)
                    trace.write("%.6f\t%d\t%d\t%.6f\t%d\t%s\n" % (ts, ct, off, vis, x, syms[si]))
                    if x and i == 0:
                        rv = obs.row_seen.get((sid_of_index[si], t_open))
                        if rv is not None:
                            fin_row.append(rv - ts)
                            fin_off.append(vis - ts)
            step.update({"events": len(sent), "unmatched": unmatched, "not_visible": invisible,
                         "latency": summary_ms(tot), "to_kafka": summary_ms(ws),
                         "kafka_to_visible": summary_ms(cons)})
            if fin_row:
                step["kline_row_check"] = {"finals": len(fin_row), "row": summary_ms(fin_row),
                                           "offset": summary_ms(fin_off)}
            log("     step %d: %d events, latency %s" % (i, len(sent), step["latency"]))
        obs.close()
        if sc.get("drain"):
            res["drain"] = run_drain(sc["drain"], replay, boot, topic, syms, sdir, lo, hi)
    finally:
        if k is not None:
            k.stop()
        replay.stop()
    return res


def run_drain(binary, replay, boot, topic, syms, sdir: Path, lo, hi):
    """A fresh klined whose consumer starts at the topic's first offset, the replay frozen."""
    log("== drain: a fresh klined (%s) consumes the %d recorded events" % (binary.name, hi - lo))
    replay.cmd_("clock", ms_of(START))
    idle = wait_idle([BROKER.pid, replay.proc.pid])
    db = sdir / "drain.db"
    once = Klined(binary, db, replay.info["rest_url"], replay.info["ws_url"], boot, topic, syms,
                  sdir / "drain-once.err", group="bench-drain", once=True)
    code = once.proc.wait(180)
    once.err.close()
    if code != 0:
        raise RuntimeError("klined --once failed:\n" + once.log_text()[-2000:])
    con = sqlite3.connect(db)
    con.execute("INSERT OR REPLACE INTO consumer_offset (topic, part, next) VALUES (?, 0, ?)",
                (topic, lo))
    con.commit()
    con.close()
    k = Klined(binary, db, replay.info["rest_url"], replay.info["ws_url"], boot, topic, syms,
               sdir / "drain.err", group="bench-drain")
    obs = Observer(db, topic)
    pids = {"klined": k.pid, "broker": BROKER.pid}
    c0 = {p: proc_cpu_s(v) for p, v in pids.items()}
    m0, self0 = machine_cpu(), time.process_time()
    t0 = time.time()
    first = None
    try:
        while time.time() - t0 < 300:
            n = obs.poll()
            if n > lo and first is None:
                first = (time.time(), n)
            if n >= hi:
                break
            if k.proc.poll() is not None:
                raise RuntimeError("klined exited during the drain:\n" + k.log_text()[-2000:])
            time.sleep(0.002)
        t1 = time.time()
        c1 = {p: proc_cpu_s(v) for p, v in pids.items()}
        m1, self1 = machine_cpu(), time.process_time()
        status = proc_status(k.pid)
    finally:
        code = k.stop()
        obs.close()
    times, nexts = obs.times, obs.nexts
    busy = (t1 - first[0]) if first else None
    per_s, j = [], 0
    for i in range(len(times)):
        while times[i] - times[j] > 1.0:
            j += 1
        if times[i] - times[j] > 0.5:
            per_s.append((nexts[i] - nexts[j]) / (times[i] - times[j]))
    out = {"events": hi - lo, "done": bool(nexts and nexts[-1] >= hi),
           "seconds": round(busy, 2) if busy else None,
           "events_per_s": round((nexts[-1] - first[1]) / busy) if busy else None,
           "best_1s_per_s": round(max(per_s)) if per_s else None,
           "startup_s": round(first[0] - t0, 2) if first else None,
           "commits": len(times),
           "cpu": {p: round((c1[p] - c0[p]) / (t1 - t0) * 100) for p in pids},
           "cpu_other": round((m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * os.cpu_count() * 100
                              - sum(c1[p] - c0[p] for p in pids) / (t1 - t0) * 100
                              - (self1 - self0) / (t1 - t0) * 100),
           "idle_before": idle, "klined_status": status, "exit": code,
           "stopped": [l for l in k.log_text().splitlines() if "speed: stopped" in l][-1:],
           "cmd": short_cmd(k.cmd)}
    log("   drained %s events/s (best 1 s: %s), cpu %s" % (out["events_per_s"],
                                                          out["best_1s_per_s"], out["cpu"]))
    return out


def warm_broker(boot, n=30000):
    """JIT-warm the broker's produce and fetch paths (a fresh JVM is much slower at first)."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    topic = "bench.warmup"
    p = Producer({"bootstrap.servers": boot, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5})
    payload = b"x" * 400
    for i in range(n):
        while True:
            try:
                p.produce(topic, payload, key=b"WARM")
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    p.flush(30)
    c = Consumer({"bootstrap.servers": boot, "group.id": "bench-warm",
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    got, deadline = 0, time.monotonic() + 30
    while got < n and time.monotonic() < deadline:
        got += len(c.consume(10000, 0.5))
    c.close()


# ------------------------------------------------------------------------------------------
# builds
# ------------------------------------------------------------------------------------------

WS_H = "daemon/speed/ws.h"
WS_DEFINE = re.compile(r"^#define KL_WS_STREAMS_PER_CONN\s+(\d+)", re.M)
COMMIT_DEFINE = re.compile(r"^#define COMMIT_MS(\s+)(\d+)", re.M)


def streams_per_conn(src: Path) -> int:
    m = WS_DEFINE.search((src / WS_H).read_text())
    return int(m.group(1)) if m else 200


def build_variant(work: Path, name: str, per_conn: int, commit_ms=None):
    """klined from a snapshot of this tree's sources (daemon, lib, schema, meson files) with
    KL_WS_STREAMS_PER_CONN set to per_conn (daemon/speed/ws.h) and, if given, COMMIT_MS
    (daemon/speed/speed.c); built in $WORK with the tree's build type.  Nothing in the tree is
    touched.  Returns (binary, description) or (None, why not)."""
    src = work / ("src-" + name)
    src.mkdir()
    for d in ("daemon", "lib", "schema"):
        shutil.copytree(REPO / d, src / d, ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("meson.build", "meson_options.txt"):
        shutil.copy2(REPO / f, src / f)
    changes = []
    ws = src / WS_H
    text = ws.read_text()
    m = WS_DEFINE.search(text)
    if not m:
        return None, "KL_WS_STREAMS_PER_CONN not found in daemon/speed/ws.h"
    if int(m.group(1)) != per_conn:
        ws.write_text(WS_DEFINE.sub("#define KL_WS_STREAMS_PER_CONN %d" % per_conn, text))
        changes.append("daemon/speed/ws.h: KL_WS_STREAMS_PER_CONN %s -> %d" % (m.group(1), per_conn))
    if commit_ms is not None:
        sp = src / "daemon" / "speed" / "speed.c"
        text = sp.read_text()
        m = COMMIT_DEFINE.search(text)
        if not m:
            return None, "COMMIT_MS not found in daemon/speed/speed.c"
        sp.write_text(COMMIT_DEFINE.sub(lambda x: "#define COMMIT_MS%s%d" % (x.group(1), commit_ms),
                                        text))
        changes.append("daemon/speed/speed.c: COMMIT_MS %s -> %d" % (m.group(2), commit_ms))
    b = subprocess.run(["meson", "setup", str(src / "build"), str(src), "-Dtests=false",
                        "--buildtype=debugoptimized"], capture_output=True, text=True)
    if b.returncode == 0:
        b = subprocess.run(["ninja", "-C", str(src / "build"), "daemon/klined"],
                           capture_output=True, text=True)
    if b.returncode != 0:
        return None, "build failed: " + (b.stdout + b.stderr)[-1000:]
    return src / "build" / "daemon" / "klined", "; ".join(changes) or "no change"


# ------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------

def fmt(v, nd=0):
    if v is None:
        return "–"
    if nd:
        return "%.*f" % (nd, v)
    return "{:,}".format(round(v))


def mib(kib):
    return fmt(kib / 1024.0, 1) if kib else "–"


def report(results, machine, argv) -> str:
    L = []
    m = machine
    L.append("Machine: %s, %d CPUs, %.1f GB RAM, %s, kernel %s; Python %s; Kafka %s (one broker, "
             "KRaft, JVM %s, -Xmx512m); %s, build type debugoptimized (-O2 -g), tree %s, "
             "binary sha256 %s."
             % (m["cpu_model"], m["nproc"], m["mem_total_gb"], m["os"], m["kernel"],
                m["python"], m["kafka"], m["java"], m["klined"], m["git"], m["klined_sha256"]))
    L.append("")
    L.append("Command: `%s` (%d s in all)" % (" ".join(["python3", "bench/stream.py"] + argv),
                                               m.get("total_s", 0)))
    L.append("")
    L.append("| klined | symbols (streaming) | offered ev/s | replay sent ev/s | committed ev/s "
             "| p50 ms | p90 ms | p99 ms | max ms | sent→produced p50 / p99 "
             "| produced→visible p50 / p99 | backlog at step end | replay skipped | REST req "
             "| CPU % klined / replay / broker / others |")
    L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in results:
        nstream = r.get("streaming_symbols", r["symbols"])
        syms = "%d" % r["symbols"] + (" (**%d**)" % nstream if nstream < r["symbols"] else "")
        for s in r["steps"]:
            lat, a, b = s["latency"], s["to_kafka"], s["kafka_to_visible"]
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s | %s | %s "
                     "| %s | %s / %s / %s / %s |"
                     % (r["binary"], syms, fmt(s["rate"]), fmt(s["sent_per_s"]),
                        fmt(s["committed_per_s"]), fmt(lat["p50"], 1), fmt(lat["p90"], 1),
                        fmt(lat["p99"], 1), fmt(lat["max"], 1), fmt(a["p50"], 1), fmt(a["p99"], 1),
                        fmt(b["p50"], 1), fmt(b["p99"], 1), fmt(s["backlog_end"]),
                        fmt(s["replay_skipped"]), fmt(s["rest_requests"]),
                        s["cpu"]["klined"], s["cpu"]["replay"],
                        s["cpu"]["broker"], max(0, s["cpu_other"])))
    L.append("")
    L.append("Latency = visible − sent, in ms, over every event the replay sent during the step "
             "(matched to its Kafka message and to the commit of its offset). \"REST req\": requests "
             "klined made to the replay during the step (its periodic heal). \"others\" is the "
             "machine's busy time minus klined, the replay, the broker and the observer: other "
             "people's processes on this shared machine.")
    L.append("")
    for r in results:
        st = r.get("klined_status_end", {})
        s0 = r["steps"][0]
        L.append("- **%s, %d symbols**: klined VmHWM %s MiB after the %s events/s step, %s MiB "
                 "at the end; broker VmRSS %s MiB (VmHWM %s MiB). %s of %s events matched and "
                 "seen committed; all produced messages committed at the end: %s."
                 % (r["binary"], r["symbols"], mib(s0["klined_status"].get("VmHWM")),
                    fmt(s0["rate"]), mib(st.get("VmHWM")),
                    mib(r.get("broker_status_end", {}).get("VmRSS")),
                    mib(r.get("broker_status_end", {}).get("VmHWM")),
                    fmt(sum(s["latency"]["n"] for s in r["steps"])),
                    fmt(sum(s["events"] for s in r["steps"])),
                    "yes" if r["all_committed"] else "NO"))
        if r.get("stream_problem"):
            L.append("  **%s.**" % r["stream_problem"])
        chk = s0.get("kline_row_check")
        if chk:
            L.append("  Cross-check on the first step's x:true events (%d): their kline row "
                     "appears at p50 %s / p99 %s ms, their offset's commit at p50 %s / p99 %s ms."
                     % (chk["finals"], chk["row"]["p50"], chk["row"]["p99"],
                        chk["offset"]["p50"], chk["offset"]["p99"]))
        if r.get("klined_stopped"):
            L.append("  klined's last line: `%s`" % r["klined_stopped"][0].split("speed: ", 1)[-1])
        d = r.get("drain")
        if d:
            L.append("- **drain** (klined, fresh store, consumer offset set to the start of the "
                     "topic above, replay frozen): %s events in %s s = **%s events/s** (best 1 s: "
                     "%s/s), %d commits; CPU %% klined %s / broker %s / others %s; klined VmHWM "
                     "%s MiB; all consumed: %s."
                     % (fmt(d["events"]), d["seconds"], fmt(d["events_per_s"]),
                        fmt(d["best_1s_per_s"]), d["commits"], d["cpu"]["klined"],
                        d["cpu"]["broker"], max(0, d["cpu_other"]),
                        mib(d["klined_status"].get("VmHWM")), "yes" if d["done"] else "NO"))
    L.append("")
    if m.get("variants"):
        L.append("Variants (built by the bench from a snapshot of the tree, nothing in the tree "
                 "changed):")
        L.append("")
        for k, v in m["variants"].items():
            L.append("- %s: %s" % (k, v))
        L.append("")
    L.append("Commands as run ($WORK: the run's temporary directory; ports are ephemeral; "
             "`--symbols` lists BTCUSDT, ETHUSDT, S0001USDT ... S0498USDT):")
    L.append("")
    L.append("```")
    seen = set()
    for r in results:
        for c in (r["replay_cmd"], r["klined_cmd"], (r.get("drain") or {}).get("cmd")):
            c = c and re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", c)
            c = c and re.sub(r"bench\.[a-z0-9-]+\.\d+", "TOPIC", c)
            if c and c not in seen:
                seen.add(c)
                L.append(c)
    L.append("```")
    return "\n".join(L)


BROKER = None


def main(argv=None) -> int:
    global BROKER, WAIT_IDLE_S
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_replay":
        return replay_child(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter and fewer steps (~3 min)")
    ap.add_argument("--klined", default=str(KLINED))
    ap.add_argument("--no-build", action="store_true", help="don't run ninja -C build first")
    ap.add_argument("--no-variant", action="store_true",
                    help="skip the 100-streams-per-connection build (500 symbols then stream "
                         "only as far as the tree's klined manages)")
    ap.add_argument("--commit-ms", type=int, metavar="N",
                    help="also measure a build with COMMIT_MS = N at 1,000 events/s")
    ap.add_argument("--wait-idle", type=float, default=WAIT_IDLE_S, metavar="S",
                    help="before each scenario wait at most S s for the rest of the machine to "
                         "use under 1/3 core (default %(default)s)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(KAFKA_DIR))
    import kafka as kf
    WAIT_IDLE_S = a.wait_idle
    if not a.no_build and Path(a.klined) == KLINED:
        b = subprocess.run(["ninja", "-C", str(REPO / "build"), "daemon/klined"],
                           capture_output=True, text=True)
        if b.returncode != 0:
            log(b.stdout + b.stderr)
            return 2
    if not Path(a.klined).exists():
        log("no klined at %s: cd %s && ninja -C build" % (a.klined, REPO))
        return 2
    kf.fetch(quiet=True)
    work = Path(tempfile.mkdtemp(prefix="klined-stream-"))
    binary = work / "klined"
    shutil.copy2(a.klined, binary)
    machine = machine_info()
    machine["klined_sha256"] = subprocess.run(["sha256sum", str(binary)], capture_output=True,
                                              text=True).stdout.split()[0][:12]
    machine["java"] = subprocess.run([kf._java(), "-version"], capture_output=True,
                                     text=True).stderr.split("\n")[0].split('"')[1]
    per_conn = streams_per_conn(REPO)
    variants = {}
    ws100 = None
    if not a.no_variant and per_conn > 100:
        ws100, note = build_variant(work, "ws100", 100)
        variants["klined-ws100"] = note if ws100 else "not built: " + note
        log("variant klined-ws100: %s" % note)
    commit = None
    if a.commit_ms is not None:
        commit, note = build_variant(work, "commit", min(per_conn, 100), a.commit_ms)
        variants["klined-commit%d" % a.commit_ms] = note if commit else "not built: " + note
        log("variant commit: %s" % note)
    machine["variants"] = variants
    q = a.quick
    ramp = ([(1000, 15), (10000, 5), (20000, 5), (40000, 5)] if q else
            [(1000, 30), (5000, 10), (10000, 10), (20000, 10), (30000, 10), (40000, 10),
             (60000, 10)])
    warm = 2 if q else 5
    one = [(1000, 10 if q else 30)]

    def sc(name, nsym, b, label, pc, steps, **kw):
        return dict(name=name, symbols=nsym, binary=b, label=label, per_conn=pc, steps=steps,
                    warmup=warm, **kw)
    scenarios = [sc("2 symbols", 2, binary, "klined", per_conn, one)]
    if ws100:
        scenarios.append(sc("500 symbols", 500, binary, "klined", per_conn,
                            [(1000, 10 if q else 20)]))
        scenarios.append(sc("500 symbols ws100", 500, ws100, "klined-ws100", 100, ramp,
                            drain=binary))
    else:
        scenarios.append(sc("500 symbols", 500, binary, "klined", per_conn, ramp, drain=binary))
    if commit:
        lab = "klined-commit%d" % a.commit_ms
        scenarios.append(sc("2 symbols " + lab, 2, commit, lab, min(per_conn, 100), one))
        scenarios.append(sc("500 symbols " + lab, 500, commit, lab, min(per_conn, 100), one))
    results = []
    t0 = time.monotonic()
    BROKER = kf.KafkaBroker(port=0, workdir=work / "kafka")
    BROKER.start()
    log("broker %s (pid %d) up in %.1f s; warming it up" % (BROKER.bootstrap, BROKER.pid,
                                                             time.monotonic() - t0))
    try:
        warm_broker(BROKER.bootstrap)
        for s_ in scenarios:
            results.append(run_scenario(s_, BROKER.bootstrap, work))
    finally:
        BROKER.stop()
    machine["total_s"] = round(time.monotonic() - t0)
    text = report(results, machine, argv).replace(str(work), "$WORK")
    print(text)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    prev = {}
    if OUT.exists():
        try:
            prev = json.loads(OUT.read_text())
        except ValueError:
            prev = {}
    key = "quick" if q else "full"
    if a.commit_ms is not None:
        key += "+commit%d" % a.commit_ms
    prev[key] = {"machine": machine, "results": results, "markdown": text, "argv": argv}
    OUT.write_text(json.dumps(prev, indent=1, default=str).replace(str(work), "$WORK") + "\n")
    if a.keep:
        log("work directory kept: %s" % work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
