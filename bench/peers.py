#!/usr/bin/env python3
"""klined side by side with the tools users would pick instead, in one run, on one machine,
the same replay exchange and the same Kafka broker.

    python3 bench/peers.py --setup          # install the peers: pip (bench/requirements-peers.txt),
                                            # Maven (bench/peers/pom.xml), the Kafka broker's jars
    python3 bench/peers.py                  # the whole comparison (~35 min), writes
                                            # bench/out/peers.json and docs/benchmarks.md
    python3 bench/peers.py --quick          # a smoke run (~8 min), docs untouched
    python3 bench/peers.py --only speed,stream-in,backfill   # a subset (docs untouched)
    python3 bench/peers.py --report         # rewrite the docs section from bench/out/peers.json

Three comparisons (each peer's configuration: bench/peers/*.py docstrings, docs/benchmarks.md):

  speed     klined's consumer vs Spark Structured Streaming (bench/peers/spark_daily.py, pyspark
            + spark-sql-kafka-0-10) reading the same topic at the same time: klined streams
            BTCUSDT and ETHUSDT from the replay (1,000 events/s, a whole virtual day and one
            hour past it, so the 1 h watermark closes the day) into Kafka; both consumers keep
            1-day windows.  Latency per event = visible in the consumer's store - sent by the
            replay (bench/stream.py's send log); the daily numbers of both are checked against
            the day aggregated from the replay's own klines.  Then the capacity: both drain the
            same backlog (500 symbols) from the start of a topic.
  stream-in klined's websocket -> Kafka vs cryptofeed's Binance feed + Kafka backend
            (bench/peers/cryptofeed_kafka.py), one after the other, each on a fresh replay and a
            fresh topic: 2 symbols at 1,000 events/s, 500 symbols ramped to 20,000 events/s.
            Delivered events/s, latency from the replay's send to the message being readable
            at the broker (a tail consumer here), CPU and peak RSS.
  backfill  klined --once vs bench/reference_backfill.py (requests + pandas, the original
            pipeline) vs freqtrade-style ccxt (bench/peers/ccxt_backfill.py), one year of two
            symbols, on loopback and under the network model (100 ms a response, 6000
            weight/min); bench/backfill.py's harness and store checks.

Peak RSS of a process tree: the driver samples /proc every 0.2 s, sums VmRSS over the
process and all its descendants (Spark: the Python driver and its JVM), keeps the maximum.
CPU of a tree: utime + stime of each process in it, as last sampled.

Everything listens on 127.0.0.1 and is stopped at the end; process trees are killed by pid.
"""
import argparse
import bisect
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
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
PEERS = BENCH / "peers"
JARS = PEERS / "jars"
OUT = BENCH / "out" / "peers.json"
DOC = REPO / "docs" / "benchmarks.md"
REQS = BENCH / "requirements-peers.txt"
KLINED_SRC = REPO / "build" / "daemon" / "klined"
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO / "tests" / "kafka"))
import backfill as bf  # noqa: E402  (bench/backfill.py)
import stream as sb  # noqa: E402    (bench/stream.py)
import kafka as kf  # noqa: E402     (tests/kafka/kafka.py)

DAY = "2023-06-10"
NEXT_DAY = "2023-06-11"
BEGIN = "<!-- peers:begin (written by bench/peers.py) -->"
END = "<!-- peers:end -->"
log = sb.log


# ------------------------------------------------------------------------------------------
# setup
# ------------------------------------------------------------------------------------------

def setup() -> int:
    """pip for the Python peers, Maven for Spark's Kafka connector, the broker's jars."""
    pip = [sys.executable, "-m", "pip", "install", "--break-system-packages", "-r", str(REQS)]
    log("$ " + sb.cmdline(pip))
    if subprocess.run(pip).returncode != 0:
        return 1
    ver = subprocess.run([sys.executable, "-c", "import pyspark; print(pyspark.__version__)"],
                         capture_output=True, text=True).stdout.strip()
    mvn = ["mvn", "-q", "-B", "-ntp", "-f", str(PEERS / "pom.xml"), "-Dspark.version=" + ver,
           "dependency:copy-dependencies"]
    log("$ " + sb.cmdline(mvn))
    if subprocess.run(mvn, stdin=subprocess.DEVNULL).returncode != 0:
        return 1
    kf.fetch()
    log("spark jars for the job: %s" % ", ".join(p.name for p in spark_jars()))
    return 0


def spark_jars():
    """The connector's jars that pyspark does not ship already (one copy of each class)."""
    import pyspark
    shipped = {re.sub(r"[-_][0-9][^/]*\.jar$", "", p.name)
               for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    jars = sorted(p for p in JARS.glob("*.jar")
                  if re.sub(r"[-_][0-9][^/]*\.jar$", "", p.name) not in shipped)
    if not any(p.name.startswith("spark-sql-kafka") for p in jars):
        raise SystemExit("no spark-sql-kafka jar in %s: python3 bench/peers.py --setup" % JARS)
    return jars


# ------------------------------------------------------------------------------------------
# process trees
# ------------------------------------------------------------------------------------------

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
TCK = os.sysconf("SC_CLK_TCK")


def _children():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return kids


def tree_pids(root: int):
    kids, out, todo = _children(), [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


class Tree:
    """Samples a process tree every 0.2 s: peak of the summed VmRSS, CPU seconds per pid."""

    def __init__(self, root: int):
        self.root, self.peak_kib, self.cpu = root, 0, {}
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def sample(self):
        rss = 0
        for p in tree_pids(self.root):
            try:
                with open("/proc/%d/statm" % p) as f:
                    rss += int(f.read().split()[1]) * PAGE_KB
                with open("/proc/%d/stat" % p) as f:
                    v = f.read().rsplit(")", 1)[1].split()
                self.cpu[p] = (int(v[11]) + int(v[12])) / TCK
            except (OSError, ValueError, IndexError):
                pass
        self.peak_kib = max(self.peak_kib, rss)
        return rss

    def _run(self):
        while not self.stop_ev.wait(0.2):
            self.sample()

    def cpu_s(self) -> float:
        self.sample()
        return sum(self.cpu.values())

    def close(self):
        self.stop_ev.set()
        self.th.join(2)


def kill_tree(proc, grace=30.0):
    """SIGTERM the root, wait; then SIGKILL whatever of its tree is left (a JVM that hangs)."""
    pids = tree_pids(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


# ------------------------------------------------------------------------------------------
# the processes
# ------------------------------------------------------------------------------------------

class Klined(sb.Klined):
    """bench/stream.py's klined, without its HTTP page (port 8642 may be someone else's)."""

    def __init__(self, binary, db, rest_url, ws_url, boot, topic, symbols, errlog, **kw):
        orig = subprocess.Popen

        def popen(cmd, *a, **k):
            return orig(list(cmd) + ["--http-listen", "off"], *a, **k)
        subprocess.Popen = popen
        try:
            super().__init__(binary, db, rest_url, ws_url, boot, topic, symbols, errlog, **kw)
        finally:
            subprocess.Popen = orig
        self.cmd = list(self.cmd) + ["--http-listen", "off"]


sb.Klined = Klined      # bench/stream.py's run_drain starts its klined through this name

class Spark:
    """bench/peers/spark_daily.py in its own process (a Python driver and its JVM)."""

    def __init__(self, boot, topic, sdir: Path, starting="earliest"):
        self.out = sdir / "spark.db"
        self.cmd = [sys.executable, str(PEERS / "spark_daily.py"), "--bootstrap", boot,
                    "--topic", topic, "--out", str(self.out),
                    "--checkpoint", str(sdir / "spark-checkpoint"),
                    "--jars", ",".join(str(j) for j in spark_jars()),
                    "--starting-offsets", starting]
        self.errlog = sdir / "spark.err"
        self.err = open(self.errlog, "w")
        self.t_launch = time.time()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self.err, text=True,
                                     cwd=sdir)
        self.tree = Tree(self.proc.pid)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the Spark job did not start:\n" + self.errlog.read_text()[-3000:])
        self.started = json.loads(line)["t"]

    def progress(self):
        """[(t_start, t_visible, max_offset)] of the committed micro-batches, in order."""
        if not self.out.exists():
            return []
        con = sqlite3.connect("file:%s?mode=ro" % self.out, uri=True)
        con.execute("PRAGMA busy_timeout = 2000")
        try:
            return con.execute("SELECT t_start, t_visible, max_offset FROM progress "
                               "ORDER BY t_visible").fetchall()
        except sqlite3.Error:
            return []
        finally:
            con.close()

    def done_offset(self):
        return max((p[2] for p in self.progress() if p[2] is not None), default=-1)

    def stop(self):
        kill_tree(self.proc)
        self.tree.close()
        self.err.close()


class Visible:
    """When the consumer's store first covered an offset: from (time, next-offset) pairs."""

    def __init__(self, pairs):
        self.times, self.nexts, high = [], [], -1
        for t, n in sorted(pairs):
            if n is not None and n > high:
                high = n
                self.times.append(t)
                self.nexts.append(n)

    def at(self, offset):
        i = bisect.bisect_right(self.nexts, offset)
        return self.times[i] if i < len(self.times) else None


def cmd_shown(cmd, work):
    """A command as the docs show it: no temporary paths, ports or long symbol lists."""
    c = cmd if isinstance(cmd, str) else sb.short_cmd(cmd)
    c = c.replace(str(work), "$WORK").replace(str(REPO) + "/", "")
    c = c.replace(sys.executable, "python3").replace(str(sb.DATA), "tests/data/binance")
    c = re.sub(r"--jars \S+", "--jars $(bench/peers/jars: the connector's jars)", c)
    c = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", c)
    return re.sub(r"peers\.[a-z0-9.-]+\.\d{9,}", "TOPIC", c)


# ------------------------------------------------------------------------------------------
# the replay's own day: what both consumers must arrive at
# ------------------------------------------------------------------------------------------

def oracle_day(rest_url, symbol, day):
    start = sb.ms_of(day + "T00:00:00Z")
    rows = []
    for s in (start, start + 1000 * 60_000):
        url = ("%s/api/v3/klines?symbol=%s&interval=1m&startTime=%d&endTime=%d&limit=1000"
               % (rest_url, symbol, s, start + 86_400_000 - 1))
        with urllib.request.urlopen(url, timeout=30) as r:
            rows += json.loads(r.read())
    assert len(rows) == 1440, len(rows)
    d = lambda i: [Decimal(r[i]) for r in rows]  # noqa: E731
    return fmt_day(rows[0][1], max(d(2)), min(d(3)), rows[-1][4], sum(d(5)), sum(d(7)),
                   sum(int(r[8]) for r in rows))


def fmt_day(o, h, l, c, v, q, n):
    f = lambda x: "%.8f" % Decimal(str(x))  # noqa: E731
    return {"open": f(o), "high": f(h), "low": f(l), "close": f(c), "volume": f(v),
            "quote_volume": "%.6f" % Decimal(str(q)), "trades": int(n)}


def klined_day(db, symbol, day):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    r = con.execute("SELECT printf('%.8f', open), printf('%.8f', high), printf('%.8f', low), "
                    "printf('%.8f', close), printf('%.8f', volume), quote_volume, trades, source "
                    "FROM daily WHERE symbol = ? AND day = ?", (symbol, day)).fetchone()
    con.close()
    if r is None:
        return None
    out = fmt_day(*r[:7])
    out["source"] = r[7]
    return out


def spark_day(db, symbol, day):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    r = con.execute("SELECT open, high, low, close, volume, quote_volume, trades, events "
                    "FROM daily WHERE symbol = ? AND day = ?", (symbol, day)).fetchone()
    con.close()
    if r is None:
        return None
    out = fmt_day(*r[:7])
    out["events"] = r[7]
    return out


def same_day(a, b):
    """Equal at 8 decimals, trades exactly, quote volume within 1e-9 relative (the contract)."""
    if a is None or b is None:
        return False
    keys = ("open", "high", "low", "close", "volume", "trades")
    qa, qb = Decimal(a["quote_volume"]), Decimal(b["quote_volume"])
    return (all(a[k] == b[k] for k in keys)
            and abs(qa - qb) <= Decimal("1e-9") * max(abs(qa), abs(qb), Decimal(1)))


# ------------------------------------------------------------------------------------------
# 1. speed layer: klined's consumer vs Spark, the same topic at the same time
# ------------------------------------------------------------------------------------------

def run_speed(work, boot, binary, quick, with_spark=True):
    """One virtual day through klined into Kafka; klined's consumer, and Spark's if
    with_spark, read it.  Run twice: klined alone, then with Spark beside it (the JVM's CPU
    would otherwise be part of klined's latency)."""
    rate = 3000 if quick else 1000
    syms = ["BTCUSDT", "ETHUSDT"]
    sdir = work / ("speed-spark" if with_spark else "speed-alone")
    sdir.mkdir()
    sb.START = DAY + "T00:00:00Z"     # nothing to backfill: the whole day comes by the stream
    topic = "peers.speed.%d" % time.time()
    res = {"rate": rate, "symbols": syms, "topic": topic, "with_spark": with_spark}
    log("== speed layer: klined%s, %d events/s, %s 00:00 .. %s 01:01"
        % (" and Spark on one topic" if with_spark else " alone", rate, DAY, NEXT_DAY))
    res["idle_before"] = sb.wait_idle([BROKER.pid])
    replay = sb.Replay(work, 2, sdir / "replay.err")
    res["replay_cmd"] = cmd_shown(["python3", "bench/stream.py"] + replay.cmd[2:], work)
    k = sp = None
    try:
        t0 = time.time()
        k = Klined(binary, sdir / "klined.db", replay.info["rest_url"], replay.info["ws_url"],
                   boot, topic, syms, sdir / "klined.err")
        ktree = Tree(k.pid)
        k.wait_log(lambda s: "kafka: consuming" in s and "ws: connected" in s, 120, "klined")
        res["klined_startup_s"] = round(time.time() - t0, 2)
        res["klined_cmd"] = cmd_shown(k.cmd, work)
        names = ["klined"]
        if with_spark:
            sp = Spark(boot, topic, sdir, "earliest")
            res["spark_startup_s"] = round(sp.started - sp.t_launch, 2)
            res["spark_cmd"] = cmd_shown(sp.cmd, work)
            names.append("spark")
            time.sleep(3)   # its first trigger: reads the (still empty) topic
        trees = {"klined": ktree, "spark": sp and sp.tree}
        obs = sb.Observer(sdir / "klined.db", topic)
        end_ms = sb.ms_of(NEXT_DAY + "T01:01:00Z")
        cpu0 = {n: trees[n].cpu_s() for n in names}
        cpu0.update(broker=sb.proc_cpu_s(BROKER.pid), replay=sb.proc_cpu_s(replay.proc.pid))
        m0, tw0 = sb.machine_cpu(), time.time()
        replay.step(sdir / "sent.log", sb.speed_for(rate, 2))
        while replay.stats()["now_ms"] < end_ms:
            obs.run_for(1.0)
        replay.step("-", 0)
        tw1 = time.time()
        cpu1 = {n: trees[n].cpu_s() for n in names}
        cpu1.update(broker=sb.proc_cpu_s(BROKER.pid), replay=sb.proc_cpu_s(replay.proc.pid))
        m1 = sb.machine_cpu()
        wall = tw1 - tw0
        res["seconds"] = round(wall, 1)
        res["cpu_pct"] = {p: round((cpu1[p] - cpu0[p]) / wall * 100) for p in cpu0}
        busy = (m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * os.cpu_count() * 100
        res["cpu_pct"]["others"] = max(0, round(busy - sum(res["cpu_pct"].values())))
        # catch up: everything produced is committed by both (Spark may be seconds behind)
        high = sb.hwm(boot, topic)
        t_stop = time.time()
        while time.time() - t_stop < 180:
            obs.run_for(0.5)
            if obs.last >= high and (sp is None or sp.done_offset() >= high - 1):
                break
        res["klined_caught_up"] = obs.last >= high
        res["catchup_s"] = round(time.time() - t_stop, 1)
        res["rss_peak_mib"] = {n: round(trees[n].peak_kib / 1024, 1) for n in names}
        res["broker_status"] = sb.proc_status(BROKER.pid)
        prog = []
        if sp is not None:
            res["spark_caught_up"] = sp.done_offset() >= high - 1
            prog = sp.progress()
            sp.stop()
            sp = None
        k.stop()
        lines = k.log_text().splitlines()
        res["klined_warnings"] = sorted({re.sub(r"\d+", "N", l)[:200] for l in lines
                                         if "[warn]" in l or "[error]" in l})[:20]
        res["klined_stopped"] = [l for l in lines if "speed: stopped" in l][-1:]
        k = None
        ktree.close()
        res["spark_batches"] = len(prog)

        # latency per event: sent (replay) -> visible (each consumer's store)
        sym_index = {s.encode(): i for i, s in enumerate(syms)}
        msgs, lo, hi = sb.read_topic(boot, topic, sym_index)
        res["topic_messages"] = hi - lo
        kvis = Visible(zip(obs.times, obs.nexts))
        svis = Visible((t1, (mo + 1) if mo is not None else None) for _, t1, mo in prog)
        sent = sb.read_sendlog(sdir / "sent.log", sym_index)
        lat = {n: [] for n in names}
        steady = {n: [] for n in names}
        missing = dict({n: 0 for n in names}, unmatched=0)
        t_first = sent[0][1] if sent else 0
        for key, ts, _t_open, _x, _si in sent:
            m = msgs.get(key)
            if m is None:
                missing["unmatched"] += 1
                continue
            for name, vis in (("klined", kvis), ("spark", svis))[:len(names)]:
                v = vis.at(m[0])
                if v is None:
                    missing[name] += 1
                    continue
                lat[name].append(v - ts)
                if ts - t_first >= 10:
                    steady[name].append(v - ts)
        res["events_sent"] = len(sent)
        res["missing"] = missing
        res["latency"] = {n: sb.summary_ms(v) for n, v in lat.items()}
        res["latency_after_10s"] = {n: sb.summary_ms(v) for n, v in steady.items()}
        res["events_per_s"] = round(len(sent) / wall)
        obs.close()

        # the day both consumers closed, against the replay's own klines
        agree = {}
        for s in syms:
            o = oracle_day(replay.info["rest_url"], s, DAY)
            kd = klined_day(sdir / "klined.db", s, DAY)
            agree[s] = {"replay": o, "klined": kd, "klined_ok": same_day(o, kd)}
            if with_spark:
                sd = spark_day(sdir / "spark.db", s, DAY)
                agree[s].update(spark=sd, spark_ok=same_day(o, sd))
                # the next day's first hour: still open, both rows are the stream's
                kn = klined_day(sdir / "klined.db", s, NEXT_DAY)
                sn = spark_day(sdir / "spark.db", s, NEXT_DAY)
                agree[s]["next_day"] = {"klined": kn, "spark": sn, "same": same_day(kn, sn)}
        res["agreement"] = agree
        log("   latency %s; rss %s; agree %s" % (
            {n: (v["p50"], v["p99"]) for n, v in res["latency"].items()}, res["rss_peak_mib"],
            {s: (a["klined_ok"], a.get("spark_ok")) for s, a in agree.items()}))
    finally:
        if sp is not None:
            sp.stop()
        if k is not None:
            k.stop()
        replay.stop()
    return res


def run_capacity(work, boot, binary, quick):
    """Both consumers drain the same backlog from the start of a topic, as fast as they go."""
    nsym, rate, secs = (500, 10000, 10) if quick else (500, 20000, 30)
    syms = sb.symbols_for(nsym)
    sdir = work / "capacity"
    sdir.mkdir()
    sb.START = DAY + "T00:00:00Z"
    topic = "peers.capacity.%d" % time.time()
    log("== capacity: a backlog of %d symbols x %d s at %d events/s, drained by each"
        % (nsym, secs, rate))
    replay = sb.Replay(work, nsym, sdir / "replay.err")
    res = {"symbols": nsym, "rate": rate, "seconds": secs}
    k = sp = None
    try:
        k = Klined(binary, sdir / "klined.db", replay.info["rest_url"], replay.info["ws_url"], boot,
                   topic, syms, sdir / "klined.err")
        k.wait_log(lambda s: "kafka: consuming" in s and "ws: connected" in s, 120, "klined")
        t0 = time.time()
        while replay.stats()["streams"] < nsym and time.time() - t0 < 60:
            time.sleep(0.5)
        replay.cmd_("speed", sb.speed_for(rate, nsym))
        time.sleep(secs)
        replay.cmd_("speed", 0)
        high, since = sb.hwm(boot, topic), time.time()
        while time.time() - since < 3:
            time.sleep(0.5)
            h = sb.hwm(boot, topic)
            if h != high:
                high, since = h, time.time()
        k.stop()
        k = None
        res["events"] = high
        sb.BROKER = BROKER
        res["klined"] = sb.run_drain(binary, replay, boot, topic, syms, sdir, 0, high)
        res["klined"]["cmd"] = cmd_shown(res["klined"]["cmd"], work)
        log("== capacity: Spark drains the same %d events" % high)
        res["spark_idle_before"] = sb.wait_idle([BROKER.pid, replay.proc.pid])
        sdir2 = sdir / "spark"
        sdir2.mkdir()
        cpu_b0, tw0 = sb.proc_cpu_s(BROKER.pid), time.time()
        sp = Spark(boot, topic, sdir2, "earliest")
        cpu0 = sp.tree.cpu_s()
        while time.time() - tw0 < (300 if quick else 900):
            if sp.done_offset() >= high - 1:
                break
            if sp.proc.poll() is not None:
                raise RuntimeError("Spark exited:\n" + sp.errlog.read_text()[-3000:])
            time.sleep(0.5)
        prog = sp.progress()
        tw1 = time.time()
        cpu1 = sp.tree.cpu_s()
        done = sp.done_offset() >= high - 1
        busy = [p for p in prog if p[2] is not None]
        first_start = busy[0][0] if busy else None
        res["spark"] = {
            "done": done, "batches": len(prog), "startup_s": round(sp.started - sp.t_launch, 2),
            "launch_to_done_s": round(tw1 - sp.t_launch, 1),
            "seconds": round(busy[-1][1] - first_start, 2) if busy else None,
            "events_per_s": round(high / (busy[-1][1] - first_start)) if busy and done else None,
            "cpu_pct": round((cpu1 - cpu0) / (tw1 - tw0) * 100),
            "broker_cpu_pct": round((sb.proc_cpu_s(BROKER.pid) - cpu_b0) / (tw1 - tw0) * 100),
            "rss_peak_mib": round(sp.tree.peak_kib / 1024, 1),
            "cmd": cmd_shown(sp.cmd, work)}
        sp.stop()
        sp = None
        # both stores' day rows for a few symbols must agree (the backlog is one open day)
        diff = 0
        for s in syms[:20]:
            a = klined_day(sdir / "drain.db", s, DAY)
            b = spark_day(sdir2 / "spark.db", s, DAY)
            diff += not same_day(a, b)
        res["rows_compared"], res["rows_differing"] = 20, diff
        log("   klined %s events/s, Spark %s events/s; %d of 20 day rows differ"
            % (res["klined"]["events_per_s"], res["spark"]["events_per_s"], diff))
    finally:
        if sp is not None:
            sp.stop()
        if k is not None:
            k.stop()
        replay.stop()
    return res


# ------------------------------------------------------------------------------------------
# 2. stream in: klined vs cryptofeed, websocket -> Kafka
# ------------------------------------------------------------------------------------------

_E = re.compile(rb'"E":(\d+)')
_CF_SYM = re.compile(rb'"symbol":"([A-Z0-9-]+)"')
_CF_TS = re.compile(rb'"timestamp":([0-9.eE+]+)')


class Tail:
    """Reads the topic as it grows; notes when each message became readable at the broker."""

    def __init__(self, boot, topic, fmt):
        from confluent_kafka import Consumer, TopicPartition
        self.c = Consumer({"bootstrap.servers": boot, "group.id": "peers-tail",
                           "enable.auto.commit": False, "fetch.wait.max.ms": 5,
                           "fetch.min.bytes": 1})
        self.c.assign([TopicPartition(topic, 0, 0)])
        self.fmt, self.seen, self.count = fmt, {}, 0
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def key(self, m):
        v = m.value()
        if self.fmt == "klined":
            e = _E.search(v)
            return None if e is None else (m.key(), int(e.group(1)), int(b'"x":true' in v))
        s, t = _CF_SYM.search(v), _CF_TS.search(v)
        if s is None or t is None:
            return None
        return (s.group(1).replace(b"-", b""), round(float(t.group(1)) * 1000),
                int(b'"closed":true' in v))

    def _run(self):
        while not self.stop_ev.is_set():
            # wait for the next message, then take whatever else is queued already: a
            # consume(n, timeout) would hold early messages until n arrive or it times out
            first = self.c.poll(0.05)
            if first is None:
                continue
            t = time.time()
            for m in [first] + self.c.consume(10000, 0):
                if m.error():
                    continue
                self.count += 1
                k = self.key(m)
                if k is not None and k not in self.seen:
                    self.seen[k] = (t, m.timestamp()[1] / 1000.0)

    def close(self):
        self.stop_ev.set()
        self.th.join(5)
        self.c.close()


def create_topic(boot, topic):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": boot})     # must outlive the futures
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result(30)


def run_stream_in(work, boot, binary, quick):
    scen = ([("2 symbols", 2, [(1000, 10)]), ("500 symbols", 500, [(1000, 8), (10000, 8)])]
            if quick else
            [("2 symbols", 2, [(1000, 30)]),
             ("500 symbols", 500, [(1000, 10), (5000, 10), (10000, 10), (20000, 10)])])
    sb.START = DAY + "T00:00:00Z"
    out = []
    for client in ("klined", "cryptofeed"):
        for name, nsym, steps in scen:
            out.append(stream_in_one(work, boot, binary, client, name, nsym, steps))
    # is it the acknowledgement it waits for on every message?  aiokafka's own defaults
    out.append(stream_in_one(work, boot, binary, "cryptofeed", scen[0][0], 2, scen[0][2],
                             producer_defaults=True))
    return out


def stream_in_one(work, boot, binary, client, name, nsym, steps, producer_defaults=False):
    syms = sb.symbols_for(nsym)
    slug = "%s-%d%s" % (client, nsym, "-defaults" if producer_defaults else "")
    sdir = work / ("in-" + slug)
    sdir.mkdir()
    topic = "peers.in-%s.%d" % (slug, time.time())
    log("== stream in: %s, %s" % (client, name))
    res = {"client": client, "scenario": name, "symbols": nsym, "steps": [],
           "producer_defaults": producer_defaults}
    res["idle_before"] = sb.wait_idle([BROKER.pid])
    replay = sb.Replay(work, nsym, sdir / "replay.err")
    proc = k = tail = tree = None
    try:
        t0 = time.time()
        if client == "klined":
            k = Klined(binary, sdir / "klined.db", replay.info["rest_url"], replay.info["ws_url"],
                       boot, topic, syms, sdir / "klined.err")
            proc, res["cmd"] = k.proc, cmd_shown(k.cmd, work)
            k.wait_log(lambda s: "kafka: consuming" in s, 120, "klined")
        else:
            create_topic(boot, topic)
            cmd = [sys.executable, str(PEERS / "cryptofeed_kafka.py"), "--rest-url",
                   replay.info["rest_url"], "--ws-url", replay.info["ws_url"], "--bootstrap", boot,
                   "--topic", topic, "--symbols", ",".join(syms)]
            if producer_defaults:
                cmd.append("--producer-defaults")
            errf = open(sdir / "cryptofeed.err", "w")
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf, cwd=sdir)
            res["cmd"] = cmd_shown(cmd, work)
        tree = Tree(proc.pid)
        while replay.stats()["streams"] < nsym:
            if proc.poll() is not None or time.time() - t0 > 120:
                raise RuntimeError("%s did not subscribe to all %d streams" % (client, nsym))
            time.sleep(0.1)
        res["startup_s"] = round(time.time() - t0, 2)
        tail = Tail(boot, topic, client)
        replay.cmd_("speed", sb.speed_for(steps[0][0], nsym))
        time.sleep(3)   # warm-up
        for i, (rate, secs) in enumerate(steps):
            st0, c0, b0 = replay.stats(), tree.cpu_s(), sb.proc_cpu_s(BROKER.pid)
            r0, s0 = sb.proc_cpu_s(replay.proc.pid), time.process_time()
            m0, tw0 = sb.machine_cpu(), time.time()
            replay.step(sdir / ("sent-%d.log" % i), sb.speed_for(rate, nsym))
            time.sleep(secs)
            replay.step("-", sb.speed_for(rate, nsym))
            tw1 = time.time()
            st1, c1, b1 = replay.stats(), tree.cpu_s(), sb.proc_cpu_s(BROKER.pid)
            m1 = sb.machine_cpu()
            r1, s1 = sb.proc_cpu_s(replay.proc.pid), time.process_time()
            wall = tw1 - tw0
            busy = (m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * os.cpu_count() * 100
            mine = (c1 - c0) + (b1 - b0) + (r1 - r0) + (s1 - s0)   # s: this driver, the tail
            res["steps"].append({
                "rate": rate, "seconds": round(wall, 2), "t0": tw0, "t1": tw1,
                "sent_per_s": round((st1["events_sent"] - st0["events_sent"]) / wall),
                "replay_skipped": st1["updates_skipped"] - st0["updates_skipped"],
                "cpu_pct": round((c1 - c0) / wall * 100),
                "broker_cpu_pct": round((b1 - b0) / wall * 100),
                "replay_cpu_pct": round((r1 - r0) / wall * 100),
                "others_pct": max(0, round(busy - mine / wall * 100)),
                "machine_busy_pct": round(busy)})
            log("   step %d: %d events/s offered, sent %d/s, %s CPU %d%%" % (
                i, rate, res["steps"][-1]["sent_per_s"], client, res["steps"][-1]["cpu_pct"]))
        replay.step("-", 0)
        # let the client deliver what it still holds (it may be far behind)
        n, since, t_stop = tail.count, time.time(), time.time()
        while time.time() - since < 3 and time.time() - t_stop < 120:
            time.sleep(0.5)
            if tail.count != n:
                n, since = tail.count, time.time()
        res["drain_after_stop_s"] = round(since - t_stop, 1)
        res["rss_peak_mib"] = round(tree.peak_kib / 1024, 1)
    finally:
        if tail is not None:
            tail.close()
        if tree is not None:
            tree.close()
        if k is not None:
            k.stop()
        elif proc is not None:
            kill_tree(proc, 20)
        replay.stop()
    for i, step in enumerate(res["steps"]):
        lat, ct, delivered_in_step, lost = [], [], 0, 0
        sent = sb.read_sendlog(sdir / ("sent-%d.log" % i),
                               {s.encode(): j for j, s in enumerate(syms)})
        for _key, ts, _t_open, x, si in sent:
            e = tail.seen.get((syms[si].encode(), _key >> 1 & ((1 << 44) - 1), x))
            if e is None:
                lost += 1
                continue
            lat.append(e[0] - ts)
            ct.append(e[1] - ts)
            delivered_in_step += e[0] <= step["t1"]
        step.update({"events": len(sent), "delivered": len(lat), "not_delivered": lost,
                     "delivered_in_step_per_s": round(delivered_in_step / step["seconds"]),
                     "latency": sb.summary_ms(lat), "sent_to_createtime": sb.summary_ms(ct)})
        log("   step %d: %d sent, %d delivered (%d/s within the step), latency %s" % (
            i, len(sent), len(lat), step["delivered_in_step_per_s"], step["latency"]))
    return res


# ------------------------------------------------------------------------------------------
# 3. backfill: klined vs the Python reference vs ccxt
# ------------------------------------------------------------------------------------------

def run_ccxt(replay, hist, work, tag, rate_limit=True):
    replay.fresh()
    db = work / ("ccxt-%s.db" % tag)
    cmd = [sys.executable, str(PEERS / "ccxt_backfill.py"), "--rest-url", replay.url,
           "--db", str(db), "--symbols", ",".join(bf.SYMBOLS), "--history-start", hist, "--json"]
    if not rate_limit:
        cmd.append("--no-rate-limit")
    r = bf.measure(cmd, replay, work / ("ccxt-%s.err" % tag))
    r["inner"] = json.loads(r.pop("stdout"))
    r.update(bf.summarize_stats(replay.stats()))
    with sqlite3.connect(db) as con:
        r["klines"] = con.execute("SELECT count(*) FROM klines").fetchone()[0]
    r["db"] = str(db)
    r["client"] = "ccxt fetch_ohlcv, freqtrade-style" + ("" if rate_limit else ", rate limiter off")
    bf.rate(r)
    log("  %s: %d klines in %.2f s: %d klines/s, peak RSS %.1f MB, %d x 429"
        % (r["client"], r["klines"], r["wall_s"], r["klines_per_s"], r["maxrss_kb"] / 1024,
           r["http_429"]))
    return r


def verify_ccxt(cdb, rdb, expected):
    """ccxt keeps six fields: compare counts, ranges and every kline's OHLCV with the reference."""
    c, p = sqlite3.connect(cdb), sqlite3.connect(rdb)
    q = ("SELECT symbol, count(*), count(DISTINCT open_time), min(open_time), max(open_time), "
         "total(open), total(high), total(low), total(close), total(volume) FROM klines "
         "GROUP BY symbol")
    a = {r[0]: r[1:] for r in c.execute(q)}
    b = {r[0]: r[1:] for r in p.execute(q)}
    c.close()
    p.close()
    n = sum(v[0] for v in a.values())
    problems = []
    if n != expected:
        problems.append("ccxt holds %d klines, expected %d" % (n, expected))
    if a != b:
        problems.append("per-symbol counts, ranges or OHLCV sums differ: %s vs %s" % (a, b))
    return {"ok": not problems, "problems": problems, "klines": n}


def run_backfill(work, binary, quick, repeat):
    bf.KLINED = binary
    shutil.copy2(bf.REPLAY, work / "binance_replay.py")
    shutil.copy2(bf.REPLAY.parent / "replay_archive.py", work / "replay_archive.py")
    bf.REPLAY = work / "binance_replay.py"
    conf = work / "empty.conf"
    conf.write_text("")
    end_day = "2024-01-01"
    days = 30 if quick else 365
    start, end = bf.ms(end_day) - days * bf.DAY_MS, bf.ms(end_day)
    hist = bf.day_str(start)
    expected = days * 1440 * len(bf.SYMBOLS)
    out = {"range": {"from": hist, "to": end_day, "klines": expected}, "regimes": {}}
    for regime, lat, wl, n in (("loopback", 0, 0, repeat),
                               ("network", bf.LATENCY_MS, bf.WEIGHT_LIMIT, 1)):
        log("== backfill, %s: klined, Python reference, ccxt (x%d)" % (regime, n))
        rp = bf.Replay(end_day, lat, wl, errlog=work / ("replay-%s.err" % regime))
        runs = {"klined": [], "python": [], "ccxt": [], "ccxt_unthrottled": []}
        if regime == "network":
            runs["klined_c64"] = []
        checks = []
        try:
            for i in range(n):
                tag = "%s%d" % (regime, i)
                k = bf.run_klined(rp, hist, work, tag, conf)
                k.pop("log", None)
                p = bf.run_reference(rp, hist, work, tag)
                c = run_ccxt(rp, hist, work, tag)
                cu = run_ccxt(rp, hist, work, tag + "u", rate_limit=False)
                v = bf.verify(k["db"], p["db"], start, end, expected)
                checks.append({"klined_vs_python": v,
                               "ccxt_vs_python": verify_ccxt(c["db"], p["db"], expected),
                               "ccxt_unthrottled_vs_python": verify_ccxt(cu["db"], p["db"], expected)})
                for name, r in (("klined", k), ("python", p), ("ccxt", c), ("ccxt_unthrottled", cu)):
                    runs[name].append(r)
                if "klined_c64" in runs:
                    # like for like with ccxt's 100 requests in flight: klined's own knob
                    k64 = bf.run_klined(rp, hist, work, tag + "c64", conf, concurrency=64)
                    k64.pop("log", None)
                    v64 = bf.verify(k64["db"], p["db"], start, end, expected)
                    checks[-1]["klined_c64_vs_python"] = v64
                    runs["klined_c64"].append(k64)
                for f in work.glob("*-%s*.db*" % tag):
                    f.unlink()
        finally:
            rp.stop()
        med = {name: sorted(rs, key=lambda r: r["wall_s"])[len(rs) // 2] for name, rs in runs.items()}
        for name, r in med.items():
            r["runs_wall_s"] = [x["wall_s"] for x in runs[name]]
            r["cmd"] = cmd_shown(r["cmd"], work)
        ok = all(c[x]["ok"] for c in checks for x in c)
        out["regimes"][regime] = {"replay": cmd_shown(rp.cmd, work),
                                  "median": med, "checks": checks, "ok": ok}
        log("   stores agree: %s" % ok)
    return out


# ------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------

def f0(v):
    return "–" if v is None else "{:,}".format(round(v))


def f1(v):
    return "–" if v is None else "%.1f" % v


def ratio(a, b):
    return None if not a or not b else a / b


def report(R) -> str:
    m = R["machine"]
    L = ["## Side by side with the alternatives (`python3 bench/peers.py`)", ""]
    L.append("klined against the tools a user would pick instead, on the same replay exchange "
             "and the same Kafka broker, in one run of one command. Raw results: "
             "`bench/out/peers.json`.")
    L.append("")
    L += ["```sh",
          "python3 bench/peers.py --setup    # once: pip install -r bench/requirements-peers.txt,",
          "                                  # mvn (bench/peers/pom.xml: spark-sql-kafka into "
          "bench/peers/jars/), the broker's jars",
          "python3 bench/peers.py            # everything (~35 min): this section, "
          "bench/out/peers.json",
          "python3 bench/peers.py --quick    # a smoke run (~8 min), docs untouched",
          "python3 bench/peers.py --report   # rewrite this section from bench/out/peers.json",
          "```", ""]
    L.append("- Run: `%s`, %s, %d s in all." % (R["command"], R["when"], R["total_s"]))
    L.append("- Machine: %s, %d vCPU, %.1f GB, %s, kernel %s; Python %s; Java %s; Kafka %s "
             "(one broker, KRaft, -Xmx512m); %s (debugoptimized), tree %s." % (
                 m["cpu_model"], m["nproc"], m["mem_total_gb"], m["os"], m["kernel"], m["python"],
                 m.get("java", "?"), m["kafka"], m["klined"], m["git"]))
    L.append("- Peers: %s." % ", ".join("%s %s" % kv for kv in sorted(m["peers"].items())))
    L.append("- Load: the machine is shared with other engineers' builds and tests. Load average "
             "%s at the start, %s at the end; before each measurement the driver waited (at most "
             "%d s) for the rest of the machine to use under 1/3 core."
             % (" / ".join("%.2f" % x for x in m["loadavg_start"]),
                " / ".join("%.2f" % x for x in m["loadavg_end"]), R["wait_idle"]))
    L.append("- Peak RSS is the sum of VmRSS over the process and all its descendants, sampled "
             "from /proc every 0.2 s (shared pages count once per process).")
    L.append("")
    rows, verdicts = [], []
    S, A = R.get("speed"), R.get("speed_alone")
    if S and A:
        L += ["### Speed layer: klined's consumer vs Spark Structured Streaming", ""]
        L.append("klined streams BTCUSDT and ETHUSDT from the replay (%s events/s: virtual speed "
                 "%s, %s 00:00 to %s 01:01, so the 1 h watermark closes the day) into a fresh "
                 "topic. Twice: first klined alone, then klined with the Spark job reading the "
                 "same topic at the same time (klined's consumer can't be switched off, so its "
                 "figures from the second pass are shown too). Latency per event = visible in "
                 "the consumer's store − sent by the replay, over every event (%s a pass)."
                 % (f0(S["rate"]), f0(S["rate"] * 2), DAY, NEXT_DAY, f0(S["events_sent"])))
        L.append("")
        C = R.get("capacity", {})
        L.append("| consumer | p50 ms | p90 ms | p99 ms | max ms | p99 after the first 10 s | "
                 "peak RSS MiB (process tree) | CPU %% at %s ev/s | start-up s | drain events/s "
                 "(capacity) | drain peak RSS MiB | day = replay's klines? |" % f0(S["rate"]))
        L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
        spark_label = "Spark %s" % m["peers"].get("pyspark", "")
        for run, name, label in ((A, "klined", "**klined** (alone)"),
                                 (S, "klined", "klined, with Spark beside it"),
                                 (S, "spark", spark_label)):
            lat, st = run["latency"][name], run["latency_after_10s"][name]
            ok = all(a["%s_ok" % name] for a in run["agreement"].values())
            cap = C.get(name, {}) if run is not S or name == "spark" else {}
            cap_rss = (cap.get("klined_status", {}).get("VmHWM", 0) / 1024 if name == "klined"
                       else cap.get("rss_peak_mib"))
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                label, f1(lat["p50"]), f1(lat["p90"]), f1(lat["p99"]), f1(lat["max"]),
                f1(st["p99"]), f1(run["rss_peak_mib"][name]), run["cpu_pct"][name],
                run["%s_startup_s" % name], f0(cap.get("events_per_s")), f1(cap_rss) if cap else "",
                "yes, both symbols" if ok else "**no**"))
        L.append("")
        L.append("- CPU %% of a core during the day: alone klined %s (its websocket, producer and "
                 "consumer), broker %s, replay %s, others %s; with Spark: klined %s, Spark %s, "
                 "broker %s, replay %s, others %s. Spark ran %d micro-batches and had committed "
                 "everything %.1f s after the clock stopped."
                 % (A["cpu_pct"]["klined"], A["cpu_pct"]["broker"], A["cpu_pct"]["replay"],
                    A["cpu_pct"]["others"], S["cpu_pct"]["klined"], S["cpu_pct"]["spark"],
                    S["cpu_pct"]["broker"], S["cpu_pct"]["replay"], S["cpu_pct"]["others"],
                    S["spark_batches"], S["catchup_s"]))
        L.append("- Start-up: process launch to ready to consume (klined: its `kafka: consuming` "
                 "and `ws: connected` log lines, so opening the store, the producer and the "
                 "websocket are in it; Spark: `writeStream.start()` returned, the JVM and the "
                 "SparkSession included).")
        for s, a in S["agreement"].items():
            L.append("- %s %s: replay %s; klined (`daily`, source %s) %s, alone %s; Spark %s. "
                     "First hour of %s (window still open): klined's and Spark's rows %s." % (
                         s, DAY, day_str(a["replay"]), (a["klined"] or {}).get("source"),
                         "equal" if a["klined_ok"] else "DIFFERENT: " + day_str(a["klined"]),
                         "equal" if A["agreement"][s]["klined_ok"] else "DIFFERENT",
                         "equal" if a["spark_ok"] else "DIFFERENT: " + day_str(a["spark"]),
                         NEXT_DAY, "equal" if a["next_day"]["same"] else "differ (%s vs %s)" % (
                             day_str(a["next_day"]["klined"]), day_str(a["next_day"]["spark"]))))
        for run in (A, S):
            if any(run["missing"].values()):
                L.append("- Events not matched to a message or never visible: %s." % run["missing"])
        if C:
            L.append("- Capacity (drain): %s events of %d symbols recorded on one topic (%d s "
                     "at %s events/s), then each consumer reads it from the start on a fresh "
                     "store, nothing else running: klined %s events/s (%s %% CPU), Spark %s "
                     "events/s over its busy time (micro-batches: %s, %s %% CPU of its tree, "
                     "launch to done %s s). Day rows of 20 symbols compared between the two: %d "
                     "differ." % (
                         f0(C["events"]), C["symbols"], C["seconds"], f0(C["rate"]),
                         f0(C["klined"]["events_per_s"]), C["klined"]["cpu"]["klined"],
                         f0(C["spark"]["events_per_s"]), C["spark"]["batches"],
                         C["spark"]["cpu_pct"], C["spark"]["launch_to_done_s"], C["rows_differing"]))
        L.append("")
        L.append("How Spark was configured (`bench/peers/spark_daily.py`): pyspark from PyPI, "
                 "`local[2]` (the machine's cores), `spark-sql-kafka-0-10` of the same Spark "
                 "version from Maven Central (`bench/peers/pom.xml`), `startingOffsets=earliest` "
                 "on the fresh topic, event time = the kline's open time `k.t` (an event's `E` "
                 "comes after its minute: the final update of 23:59 would land in the next day), "
                 "`withWatermark(\"1 hour\")`, `window(ts, \"1 day\")` per symbol; open = "
                 "`min_by(o, t)`, high/low = max/min over every event, close = `max_by(c, (t, E))`, "
                 "volume/quote volume/trades = sums over closed minutes plus the running minute, "
                 "all in DECIMAL(38,8); `outputMode(\"update\")`, the default trigger (the next "
                 "micro-batch as soon as the previous ends), `foreachBatch` upserting into SQLite "
                 "with one commit per batch; `spark.sql.shuffle.partitions=2` (the default 200 "
                 "would be 200 state-store tasks per batch on 2 cores), UI off, driver memory at "
                 "its 1 GiB default. A batch's visible time is taken right after its SQLite "
                 "commit, inside the job; klined's by an observer polling its store every 0.5 ms.")
        L.append("")
        k, s = A["latency"]["klined"], S["latency"]["spark"]
        k2 = S["latency"]["klined"]
        rows.append(("speed: p99 latency ≥ 10× lower than Spark", "klined %s ms alone (%s ms beside "
                     "Spark), Spark %s ms: %s× (%s×)"
                     % (f1(k["p99"]), f1(k2["p99"]), f1(s["p99"]), f1(ratio(s["p99"], k["p99"])),
                        f1(ratio(s["p99"], k2["p99"]))),
                     (ratio(s["p99"], k["p99"]) or 0) >= 10))
        rm = ratio(S["rss_peak_mib"]["spark"], S["rss_peak_mib"]["klined"])
        rows.append(("speed: ≥ 10× less memory than Spark", "peak RSS klined %s MiB, Spark %s MiB: "
                     "%s×" % (f1(S["rss_peak_mib"]["klined"]), f1(S["rss_peak_mib"]["spark"]), f1(rm)),
                     (rm or 0) >= 10))
        ok = all(a["klined_ok"] and a["spark_ok"] for a in S["agreement"].values())
        rows.append(("speed: the daily numbers agree", "klined, Spark and the replay's klines: %s"
                     % ("equal" if ok else "see above"), ok))
    I = R.get("stream_in")
    if I:
        L += ["### Stream in: klined vs cryptofeed (websocket → Kafka)", ""]
        L.append("Each client on a fresh replay and a fresh one-partition topic, one after the "
                 "other. \"delivered\": events readable at the broker (a tail consumer, 5 ms "
                 "fetch wait), matched to the replay's send log by (symbol, E, x). Latency = "
                 "readable at the broker − sent by the replay. CPU % of the client's process "
                 "tree (klined's includes its own consumer writing SQLite, cryptofeed has no "
                 "consumer).")
        L.append("")
        L.append("| client | symbols | offered ev/s | replay sent ev/s | delivered within the "
                 "step ev/s | delivered in all | p50 ms | p99 ms | sent→CreateTime p99 ms | "
                 "CPU % client | CPU % broker | CPU % others | peak RSS MiB | start-up s |")
        L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for r in I:
            for st in r["steps"]:
                L.append("| %s | %d | %s | %s | %s | %s of %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    "**klined**" if r["client"] == "klined" else
                    "cryptofeed, aiokafka defaults (acks=1)" if r.get("producer_defaults") else
                    "cryptofeed", r["symbols"],
                    f0(st["rate"]), f0(st["sent_per_s"]), f0(st["delivered_in_step_per_s"]),
                    f0(st["delivered"]), f0(st["events"]), f1(st["latency"]["p50"]),
                    f1(st["latency"]["p99"]), f1(st["sent_to_createtime"]["p99"]), st["cpu_pct"],
                    st["broker_cpu_pct"], st.get("others_pct", "–"), f1(r["rss_peak_mib"]),
                    r["startup_s"]))
        L.append("")
        L.append("How cryptofeed was configured (`bench/peers/cryptofeed_kafka.py`): cryptofeed "
                 "%s from PyPI, its stock `Binance` feed and `CandlesKafka` backend (aiokafka %s), "
                 "channel CANDLES 1m with `candle_closed_only=False` so every update is delivered "
                 "as klined does (its default forwards only closed candles, 1/30 of the events); "
                 "the exchange URLs (class attributes) pointed at the replay by a subclass; "
                 "cryptofeed accepts only `wss://` addresses, so the socket-opening call gets the "
                 "replay's plain `ws://` back (no TLS on either side, like klined's); aiokafka with "
                 "`acks=all` and idempotence (klined's producer settings); one topic instead of "
                 "its default topic per symbol; uvloop on (cryptofeed's default). Its message is "
                 "its normalised JSON candle (floats), klined's the exchange's event unchanged."
                 % (m["peers"].get("cryptofeed", "?"), m["peers"].get("aiokafka", "?")))
        L.append("")
        best = {}
        for r in I:
            for st in r["steps"]:
                best[r["client"]] = max(best.get(r["client"], 0), st["delivered_in_step_per_s"])
        cpu = {}
        for r in I:
            if r["symbols"] == 2 and not r.get("producer_defaults"):
                cpu[r["client"]] = r["steps"][0]["cpu_pct"]
        kb, cb = best.get("klined"), best.get("cryptofeed")
        rows.append(("stream in: ≥ cryptofeed's throughput", "most events/s delivered to the "
                     "broker within a step: klined %s, cryptofeed %s (its best configuration)"
                     % (f0(kb), f0(cb)),
                     (kb or 0) >= (cb or 0) and kb is not None))
        rows.append(("stream in: at a fraction of its CPU", "at 1,000 ev/s, 2 symbols: klined %s %%, "
                     "cryptofeed %s %% of a core" % (cpu.get("klined"), cpu.get("cryptofeed")),
                     (cpu.get("klined") or 99) < (cpu.get("cryptofeed") or 0)))
    B = R.get("backfill")
    if B:
        L += ["### Backfill: klined vs the original pipeline's Python and freqtrade-style ccxt", ""]
        L.append("One year (%s .. %s) of BTCUSDT and ETHUSDT, %s klines, from the replay into "
                 "an empty store; bench/backfill.py's harness (fresh weight budget and statistics "
                 "per client, `/usr/bin/time -v`, `--wait-idle`). Loopback: median of %d runs "
                 "each; network (100 ms per response, 6000 weight/min): one run each."
                 % (B["range"]["from"], B["range"]["to"], f0(B["range"]["klines"]),
                    len(B["regimes"]["loopback"]["checks"])))
        L.append("")
        L.append("| regime | client | klines/s | wall s (runs) | peak RSS MB | CPU s | requests | "
                 "429 | other load (cores) | stores agree |")
        L.append("|---|---|--:|--:|--:|--:|--:|--:|--:|---|")
        for regime, g in B["regimes"].items():
            for name in ("klined", "klined_c64", "python", "ccxt", "ccxt_unthrottled"):
                if name not in g["median"]:
                    continue
                r = g["median"][name]
                label = {"klined": "**klined**", "klined_c64": "klined `--rest-concurrency 64`",
                         "python": "Python reference (requests + pandas)",
                         "ccxt": "ccxt, freqtrade-style (rate limiter on)",
                         "ccxt_unthrottled": "ccxt, rate limiter off"}[name]
                chk = {"klined": "klined_vs_python", "python": "klined_vs_python",
                       "klined_c64": "klined_c64_vs_python",
                       "ccxt": "ccxt_vs_python", "ccxt_unthrottled": "ccxt_unthrottled_vs_python"}[name]
                L.append("| %s | %s | %s | %s (%s) | %s | %s | %d | %d | %s | %s |" % (
                    regime, label, f0(r["klines_per_s"]), "%.2f" % r["wall_s"],
                    " / ".join("%.1f" % x for x in r["runs_wall_s"]), f1(r["maxrss_kb"] / 1024),
                    r.get("cpu_s"), r["klines_requests"], r["http_429"],
                    r.get("other_busy_cores", "–"),
                    "yes" if all(c[chk]["ok"] for c in g["checks"]) else "**no**"))
        L.append("")
        L.append("\"stores agree\": klined and the reference hold the same klines (count, range, "
                 "trade sums, sampled rows: bench/backfill.py's check); ccxt's store has the same "
                 "count, range and sums of open/high/low/close/volume as the reference's (ccxt "
                 "keeps only those six fields of each kline). The Python reference is "
                 "bench/reference_backfill.py, unchanged (see above); ccxt "
                 "(`bench/peers/ccxt_backfill.py`, ccxt %s) does what freqtrade's `download-data` "
                 "does: `ccxt.async_support.binance`, one `fetch_ohlcv(symbol, \"1m\", since, "
                 "limit=1000)` coroutine per page gathered in chunks of 100, ccxt's rate limiter "
                 "on (its default), a six-column DataFrame sorted and deduplicated, `to_sql` per "
                 "symbol; its `urls[\"api\"][\"public\"]` points at the replay. The second ccxt "
                 "row turns the rate limiter off." % m["peers"].get("ccxt", "?"))
        L.append("")
        for regime, need in (("loopback", 2), ("network", 5)):
            g = B["regimes"][regime]["median"]
            k = g["klined"]["klines_per_s"]
            for name, label in (("python", "the original pipeline's Python (reference)"),
                                ("ccxt", "freqtrade-style ccxt"),
                                ("ccxt_unthrottled", "ccxt with its rate limiter off")):
                x = g[name]["klines_per_s"]
                rows.append(("backfill %s: ≥ %d× %s" % (regime, need, label),
                             "klined %s klines/s (default settings), %s %s: %s×" % (
                                 f0(k), label.split(" (")[0], f0(x), f1(ratio(k, x))),
                             (ratio(k, x) or 0) >= need))
    if rows:
        L += ["### Against the targets", "", "| target | result | met? |", "|---|---|---|"]
        for t, r, ok in rows:
            L.append("| %s | %s | %s |" % (t, r, "**yes**" if ok else "**no**"))
        L.append("")
    L.append("Commands as run ($WORK: the run's temporary directory; ports and topic names vary):")
    L.append("")
    L.append("```")
    for c in R.get("commands", []):
        L.append(c)
    L.append("```")
    return "\n".join(L) + "\n"


def day_str(d):
    if not d:
        return "none"
    return "O %s H %s L %s C %s V %s Q %s N %s" % (d["open"], d["high"], d["low"], d["close"],
                                                   d["volume"], d["quote_volume"], d["trades"])


def write_docs(text: str) -> None:
    doc = DOC.read_text()
    block = BEGIN + "\n" + text + END + "\n"
    if BEGIN in doc and END in doc:
        doc = doc[:doc.index(BEGIN)] + block + doc[doc.index(END) + len(END) + 1:]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block
    DOC.write_text(doc)


def commands_of(R):
    out = []
    S = R.get("speed")
    if S:
        out += [S["replay_cmd"], S["klined_cmd"], S["spark_cmd"]]
    C = R.get("capacity")
    if C:
        out += [C["klined"]["cmd"], C["spark"]["cmd"]]
    for r in R.get("stream_in", []):
        out.append(r["cmd"])
    B = R.get("backfill")
    if B:
        for regime, g in B["regimes"].items():
            out.append(g["replay"])
            out += [g["median"][n]["cmd"] for n in ("klined", "python", "ccxt", "ccxt_unthrottled")]
    seen, res = set(), []
    for c in out:
        c = re.sub(r"(klined|python|ccxt)-[a-z]+\d+u?\.db", r"\1.db", c)
        if c not in seen:
            seen.add(c)
            res.append(c)
    return res


# ------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------

BROKER = None


def peer_versions():
    out = {}
    from importlib.metadata import PackageNotFoundError, version
    for mod in ("pyspark", "cryptofeed", "ccxt", "aiokafka", "pandas", "requests"):
        try:
            out[mod] = version(mod)
        except PackageNotFoundError:
            out[mod] = "not installed"
    return out


def main() -> int:
    global BROKER
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--setup", action="store_true", help="install the peers (pip, Maven), then exit")
    ap.add_argument("--quick", action="store_true", help="a smoke run (~8 min); docs untouched")
    ap.add_argument("--only", default="speed,stream-in,backfill",
                    help="comma-separated subset of speed,stream-in,backfill (docs untouched "
                         "unless all three)")
    ap.add_argument("--wait-idle", type=float, default=60, metavar="S",
                    help="before each measurement wait at most S s for the rest of the machine "
                         "to use under 1/3 core (default %(default)s)")
    ap.add_argument("--repeat", type=int, default=3, help="loopback backfill runs per client")
    ap.add_argument("--no-build", action="store_true", help="don't run ninja -C build first")
    ap.add_argument("--no-docs", action="store_true", help="don't rewrite docs/benchmarks.md")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--report", action="store_true",
                    help="run nothing: rewrite the docs section from bench/out/peers.json")
    a = ap.parse_args()
    if a.setup:
        return setup()
    if a.report:
        R = json.loads(OUT.read_text())["full"]
        text = report(R)
        write_docs(text)
        print(text)
        return 0
    parts = [p.strip() for p in a.only.split(",") if p.strip()]
    if not a.no_build:
        b = subprocess.run(["ninja", "-C", str(REPO / "build"), "daemon/klined"],
                           capture_output=True, text=True)
        if b.returncode != 0:
            log(b.stdout + b.stderr)
            return 2
    spark_jars()
    kf.fetch(quiet=True)
    sb.WAIT_IDLE_S = bf.WAIT_IDLE_S = a.wait_idle
    work = Path(tempfile.mkdtemp(prefix="klined-peers-"))
    binary = work / "klined"
    shutil.copy2(KLINED_SRC, binary)
    sb.KLINED = binary
    machine = sb.machine_info()
    machine["java"] = subprocess.run([kf._java(), "-version"], capture_output=True,
                                     text=True).stderr.split("\n")[0].split('"')[1]
    machine["peers"] = peer_versions()
    command = " ".join(["python3", "bench/peers.py"] + sys.argv[1:])
    R = {"command": command, "when": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
         "machine": machine, "wait_idle": a.wait_idle, "quick": a.quick}
    t0 = time.monotonic()
    try:
        if "speed" in parts or "stream-in" in parts:
            BROKER = kf.KafkaBroker(port=0, workdir=work / "kafka")
            BROKER.start()
            log("broker %s (pid %d); warming it up" % (BROKER.bootstrap, BROKER.pid))
            sb.warm_broker(BROKER.bootstrap)
            boot = BROKER.bootstrap
            try:
                if "speed" in parts:
                    R["speed_alone"] = run_speed(work, boot, binary, a.quick, with_spark=False)
                    R["speed"] = run_speed(work, boot, binary, a.quick)
                    R["capacity"] = run_capacity(work, boot, binary, a.quick)
                if "stream-in" in parts:
                    R["stream_in"] = run_stream_in(work, boot, binary, a.quick)
            finally:
                BROKER.stop()
        if "backfill" in parts:
            R["backfill"] = run_backfill(work, binary, a.quick, 1 if a.quick else a.repeat)
    finally:
        R["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        R["total_s"] = round(time.monotonic() - t0)
        R["commands"] = commands_of(R) if "speed" in R or "stream_in" in R or "backfill" in R else []
        OUT.parent.mkdir(parents=True, exist_ok=True)
        try:
            saved = json.loads(OUT.read_text())
        except (OSError, ValueError):
            saved = {}
        key = "quick" if a.quick else "full" if len(parts) == 3 else "partial"
        saved[key] = R
        OUT.write_text(json.dumps(saved, indent=1, default=str).replace(str(work), "$WORK") + "\n")
        if a.keep:
            log("work directory kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    text = report(json.loads(json.dumps(R, default=str).replace(str(work), "$WORK")))
    print(text)
    if key == "full" and not a.no_docs:
        write_docs(text)
        log("wrote the section of %s" % DOC.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
