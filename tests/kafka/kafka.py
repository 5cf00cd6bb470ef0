#!/usr/bin/env python3
"""A real Apache Kafka broker for klined's tests and benchmarks, without Docker.

The broker's jars come from Maven Central (tests/kafka/pom.xml, resolved by
`mvn dependency:copy-dependencies` into tests/kafka/lib/, again only when the
pom changes). A broker is one JVM in KRaft combined mode (broker+controller,
node 1) listening on 127.0.0.1 only, with its storage formatted in a temporary
directory.

As a module (the standard library only):

    import kafka                      # tests/kafka on sys.path
    with kafka.KafkaBroker() as b:    # fetch() + start(); stop() at the end
        b.bootstrap                   # "127.0.0.1:PORT"
        b.kill(); b.start()           # crash, then back with the same ports and data
        b.restart(down=30)            # SIGTERM, 30 s away, back with its data
        b.restart(wipe=True)          # back empty: every topic and offset gone

As a command:

    python3 tests/kafka/kafka.py fetch            # resolve the jars (cached)
    python3 tests/kafka/kafka.py run --port 9092  # foreground until SIGINT/SIGTERM;
                                                  # prints {"bootstrap": ...} when ready

Environment: JAVA_HOME (else `java` on PATH), MVN (else `mvn` on PATH),
KLINED_KAFKA_MVN_ARGS (extra mvn arguments, e.g. -Dmaven.repo.local=DIR),
KLINED_KAFKA_HEAP (default -Xmx512m), KLINED_KAFKA_KEEP=1 (stop() keeps the
work directory, for post-mortems).
"""
import argparse
import atexit
import base64
import ctypes
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from pathlib import Path

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LIB = HERE / "lib"
STAMP = LIB / ".stamp"
HOST = "127.0.0.1"
NODE_ID = 1

__all__ = ["fetch", "KafkaBroker", "KafkaError", "free_ports", "metadata_brokers", "LIB"]


class KafkaError(RuntimeError):
    pass


def _say(msg):
    print(f"kafka: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- jars

def _pom_hash():
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def _have_jars():
    return any(LIB.glob("kafka_2.13-*.jar")) and any(LIB.glob("log4j-slf4j*-impl-*.jar"))


def fetch(quiet=False):
    """Resolves kafka_2.13 and its runtime dependencies into tests/kafka/lib/.

    Does nothing when lib/.stamp holds the hash of the current pom.xml; else
    empties lib/ and runs `mvn -q -B dependency:copy-dependencies` (Maven's own
    cache, ~/.m2, makes a refetch cheap). Safe to call from several processes at
    once (a lock file in lib/). Returns the lib directory."""
    LIB.mkdir(parents=True, exist_ok=True)
    want = _pom_hash()
    with open(LIB / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if STAMP.exists() and STAMP.read_text().strip() == want and _have_jars():
            return LIB
        mvn = os.environ.get("MVN") or shutil.which("mvn")
        if not mvn:
            raise KafkaError("Maven (mvn) is not installed: run scripts/install-deps.sh")
        STAMP.unlink(missing_ok=True)
        for jar in LIB.glob("*.jar"):
            jar.unlink()
        cmd = [mvn, "-q", "-B", "-ntp", "-Dstyle.color=never", "-f", str(POM),
               *shlex.split(os.environ.get("KLINED_KAFKA_MVN_ARGS", "")),
               "dependency:copy-dependencies"]
        if not quiet:
            _say(f"resolving the broker's jars from Maven Central into {LIB} "
                 f"({' '.join(cmd[1:])})")
        t0 = time.monotonic()
        for attempt in (1, 2):
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=1200)
            if r.returncode == 0 and _have_jars():
                break
            if attempt == 2:
                out = (r.stdout + r.stderr).strip().splitlines()
                raise KafkaError(f"mvn dependency:copy-dependencies failed (exit {r.returncode}):\n"
                                 + "\n".join(out[-40:]))
            if not quiet:
                _say(f"mvn failed (exit {r.returncode}), retrying once")
            time.sleep(2)
        STAMP.write_text(want + "\n")
        if not quiet:
            jars = list(LIB.glob("*.jar"))
            mib = sum(j.stat().st_size for j in jars) / 2**20
            _say(f"{len(jars)} jars, {mib:.1f} MiB, in {time.monotonic() - t0:.1f} s")
    return LIB


def kafka_version():
    """The version of the fetched kafka_2.13 jar, e.g. '4.1.2' (None before fetch())."""
    for jar in LIB.glob("kafka_2.13-*.jar"):
        return jar.name[len("kafka_2.13-"):-len(".jar")]
    return None


# --------------------------------------------------------------------------- wire

def free_ports(n=1, host=HOST):
    """n distinct TCP ports that are free on host right now."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return bytes(buf)


def metadata_brokers(host, port, timeout=2.0):
    """Sends a Kafka Metadata request (v4, no topics) and returns the brokers
    it lists as [(node_id, host, port)]. A KRaft broker lists itself only once
    it is registered with the controller and unfenced, i.e. serving clients."""
    client_id = b"klined-tests"
    corr = 7
    # request header v1: api_key=3 (Metadata), api_version=4, correlation id, client id;
    # body: topics=[] (none), allow_auto_topic_creation=false
    body = struct.pack(">hhih", 3, 4, corr, len(client_id)) + client_id + struct.pack(">i?", 0, False)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(body)) + body)
        size, = struct.unpack(">i", _recv_exact(s, 4))
        resp = _recv_exact(s, size)
    got_corr, _throttle, nbrokers = struct.unpack_from(">iii", resp, 0)
    if got_corr != corr:
        raise ConnectionError(f"bad correlation id {got_corr}")
    off, brokers = 12, []
    for _ in range(nbrokers):
        node, hlen = struct.unpack_from(">ih", resp, off)
        off += 6
        bhost = resp[off:off + hlen].decode()
        off += hlen
        bport, rlen = struct.unpack_from(">ih", resp, off)
        off += 6 + max(rlen, 0)
        brokers.append((node, bhost, bport))
    return brokers


# --------------------------------------------------------------------------- broker

_LIVE = weakref.WeakSet()


@atexit.register
def _stop_all():
    for b in list(_LIVE):
        try:
            b.stop()
        except Exception:
            pass


def _java():
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if not java:
        raise KafkaError("Java (17+) is not installed: run scripts/install-deps.sh")
    return java


def _die_with_parent():
    # Runs in the child before exec: the JVM gets SIGKILL if the process that
    # started it dies (a pytest killed with -9 leaves no broker behind).
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _cluster_id():
    while True:  # a Kafka Uuid: 16 random bytes, base64url without padding
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


LOG4J2 = """\
# log4j2 for the test broker: everything to {log}, nothing on the console.
status = warn
name = klined-test-kafka
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = FILE
# the chattiest ones, at WARN whatever the level
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


class KafkaBroker:
    """One Kafka 4.x JVM: broker and controller of a one-node KRaft cluster on
    127.0.0.1.

    port / controller_port: 0 picks free ports at the first start(); a restart
    keeps them. workdir: None makes a temporary directory that stop() removes;
    a given directory is left in place (only its contents are used).
    properties: extra server.properties entries (they win).
    die_with_parent: the JVM gets SIGKILL if the thread that called start()
    exits (PR_SET_PDEATHSIG), so a killed test run leaves no broker behind;
    pass False to start it from a short-lived thread.

    Attributes after start(): bootstrap ("127.0.0.1:PORT"), port, controller_port,
    pid, workdir, log (the broker's log4j file), start_seconds, stop_seconds.
    """

    def __init__(self, port=0, workdir=None, *, controller_port=0, properties=None,
                 heap=None, log_level="INFO", start_timeout=60.0, stop_timeout=30.0,
                 die_with_parent=True):
        self.port, self.controller_port = int(port), int(controller_port)
        self._own_workdir = workdir is None
        self.workdir = None if workdir is None else Path(workdir)
        self.properties = dict(properties or {})
        self.heap = heap or os.environ.get("KLINED_KAFKA_HEAP", "-Xmx512m")
        self.log_level = log_level
        self.start_timeout, self.stop_timeout = start_timeout, stop_timeout
        self.cluster_id = _cluster_id()
        self.proc = None
        self.start_seconds = self.stop_seconds = None
        self._stdout = None
        self._auto = (self.port == 0, self.controller_port == 0)
        self.die_with_parent = die_with_parent

    # ---- paths and config

    @property
    def bootstrap(self):
        return f"{HOST}:{self.port}"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def data_dir(self):
        return self.workdir / "data"

    @property
    def log(self):
        return self.workdir / "server.log"

    def _config(self):
        p, c = self.port, self.controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": NODE_ID,
            "controller.quorum.bootstrap.servers": f"{HOST}:{c}",
            "listeners": f"PLAINTEXT://{HOST}:{p},CONTROLLER://{HOST}:{c}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{p},CONTROLLER://{HOST}:{c}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": 1,
            "auto.create.topics.enable": "true",
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            # After a kill the controller refuses the broker's new registration until
            # the old incarnation's session expires (9 s by default): shorter, so a
            # crashed broker is back in ~5 s instead of ~15 s.
            "broker.session.timeout.ms": 4000,
            "broker.heartbeat.interval.ms": 500,
            "num.network.threads": 2,
            "num.io.threads": 4,
            "num.recovery.threads.per.data.dir": 1,
            "log.retention.hours": 168,
        }
        props.update(self.properties)
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _jvm(self, main, *args, heap, extra=()):
        return [_java(), *shlex.split(heap), *extra, "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
                "-cp", str(LIB / "*"), main, *args]

    def _prepare(self):
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="klined-kafka-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        _LIVE.add(self)
        self._reuse_ports()
        if self.port == 0 or self.controller_port == 0:
            ports = free_ports(2)
            self.port = self.port or ports[0]
            self.controller_port = self.controller_port or (
                ports[1] if ports[1] != self.port else free_ports(1)[0])
        (self.workdir / "server.properties").write_text(self._config())
        (self.workdir / "log4j2.properties").write_text(
            LOG4J2.format(log=self.log, level=self.log_level))

    def _reuse_ports(self):
        # Formatted storage records the controller's endpoint (the voter set):
        # a workdir used again keeps the ports it was made with.
        conf = self.workdir / "server.properties"
        if not ((self.data_dir / "meta.properties").exists() and conf.exists()):
            return
        for line in conf.read_text().splitlines():
            if line.startswith("listeners="):
                for l in line.split("=", 1)[1].split(","):
                    name, port = l.split("://")[0], int(l.rsplit(":", 1)[1])
                    if name == "PLAINTEXT" and self.port == 0:
                        self.port = port
                    elif name == "CONTROLLER" and self.controller_port == 0:
                        self.controller_port = port

    def _format(self):
        cmd = self._jvm("kafka.tools.StorageTool", "format", "-t", self.cluster_id,
                        "-c", str(self.workdir / "server.properties"), "--standalone",
                        heap="-Xmx256m", extra=("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"))
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise KafkaError(f"kafka storage format failed (exit {r.returncode}):\n"
                             f"{r.stdout}{r.stderr}")

    def _tail(self, n=40):
        out = []
        for f in (self.workdir / "stdout.log", self.log):
            try:
                lines = f.read_text(errors="replace").splitlines()
            except OSError:
                continue
            out.append(f"--- {f} (last {n} lines)\n" + "\n".join(lines[-n:]))
        return "\n".join(out)

    # ---- lifecycle

    def start(self, timeout=None):
        """Formats the storage if it is empty, launches the JVM in its own process
        group and returns once a client gets this broker in a Metadata response.
        Raises KafkaError (with the log's tail) if it exits or times out."""
        if self.running:
            return self
        fetch()
        t0 = time.monotonic()
        for attempt in range(3):
            self._prepare()
            if not (self.data_dir / "meta.properties").exists():
                self._format()
            try:
                self._launch(timeout or self.start_timeout)
                break
            except KafkaError as e:
                # a port picked here was taken by someone else before the JVM bound it
                if (any(self._auto) and attempt < 2 and "Address already in use" in str(e)
                        and self.start_seconds is None):
                    self.port = 0 if self._auto[0] else self.port
                    self.controller_port = 0 if self._auto[1] else self.controller_port
                    shutil.rmtree(self.data_dir, ignore_errors=True)
                    (self.workdir / "server.properties").unlink(missing_ok=True)
                    continue
                raise
        self.start_seconds = time.monotonic() - t0
        return self

    def _launch(self, timeout):
        cmd = self._jvm("kafka.Kafka", str(self.workdir / "server.properties"), heap=self.heap,
                        extra=("-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                               "-XX:+ExitOnOutOfMemoryError"))
        self._stdout = open(self.workdir / "stdout.log", "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._stdout,
                                     stderr=subprocess.STDOUT, cwd=self.workdir,
                                     start_new_session=True,
                                     preexec_fn=_die_with_parent if self.die_with_parent else None)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self._reap()
                raise KafkaError(f"the Kafka broker exited ({rc}) while starting:\n{self._tail()}")
            try:
                if any(node == NODE_ID and port == self.port
                       for node, _h, port in metadata_brokers(HOST, self.port, timeout=1.0)):
                    return
            except (OSError, struct.error):
                pass
            if time.monotonic() > deadline:
                self._signal(signal.SIGKILL)
                self._reap()
                raise KafkaError(f"the Kafka broker was not ready within {timeout:.0f} s:\n"
                                 f"{self._tail()}")
            time.sleep(0.1)

    def _signal(self, sig):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def _reap(self):
        if self.proc:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if self._stdout:
            self._stdout.close()
            self._stdout = None

    def terminate(self, timeout=None):
        """Stops the JVM as an operator would (SIGTERM: controlled shutdown, logs
        flushed), SIGKILL after timeout seconds. Keeps ports and data: start()
        brings it back. Returns the exit code."""
        if not self.proc:
            return None
        t0 = time.monotonic()
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout or self.stop_timeout)
        except subprocess.TimeoutExpired:
            _say(f"broker {self.bootstrap} ignored SIGTERM for "
                 f"{timeout or self.stop_timeout:.0f} s: SIGKILL")
            self._signal(signal.SIGKILL)
            self.proc.wait(10)
        self.stop_seconds = time.monotonic() - t0
        rc = self.proc.returncode
        self._reap()
        self.proc = None
        return rc

    def kill(self):
        """SIGKILL, like a crash or an OOM kill. Keeps ports and data (start()
        recovers the log as after a power loss)."""
        if not self.proc:
            return None
        self._signal(signal.SIGKILL)
        self.proc.wait(10)
        rc = self.proc.returncode
        self._reap()
        self.proc = None
        return rc

    def pause(self):
        """SIGSTOP: the broker hangs (connections open, nothing answered)."""
        self._signal(signal.SIGSTOP)

    def resume(self):
        """SIGCONT after pause()."""
        self._signal(signal.SIGCONT)

    def restart(self, wipe=False, down=0.0, hard=False, timeout=None):
        """Stops the broker (SIGTERM, or SIGKILL if hard), stays down `down`
        seconds, starts it again on the same ports. wipe=True empties its
        storage first: every topic, record and committed offset is gone."""
        self.resume()
        self.kill() if hard else self.terminate()
        if wipe and self.workdir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        if down:
            time.sleep(down)
        return self.start(timeout)

    def stop(self, timeout=None):
        """terminate(), then removes the work directory if this object made it
        (unless KLINED_KAFKA_KEEP=1). Idempotent."""
        if self.proc:
            self.resume()
            self.terminate(timeout)
        _LIVE.discard(self)
        if (self._own_workdir and self.workdir is not None
                and os.environ.get("KLINED_KAFKA_KEEP") != "1"):
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    close = stop

    def rss_kib(self):
        """Resident memory of the broker JVM in KiB (None if not running)."""
        if not self.running:
            return None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return None

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        state = "running" if self.running else "stopped"
        return f"<KafkaBroker {self.bootstrap} {state} pid={self.pid} workdir={self.workdir}>"


# --------------------------------------------------------------------------- CLI

def _cmd_run(args):
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    broker = KafkaBroker(args.port, args.workdir, controller_port=args.controller_port,
                         heap=args.heap, log_level=args.log_level,
                         start_timeout=args.timeout)
    try:
        broker.start()
        print(json.dumps({"bootstrap": broker.bootstrap, "controller": f"{HOST}:{broker.controller_port}",
                          "pid": broker.pid, "workdir": str(broker.workdir), "log": str(broker.log),
                          "kafka": kafka_version(), "start_seconds": round(broker.start_seconds, 2)}),
              flush=True)
        while not stop.wait(0.5):
            if not broker.running:
                _say(f"the broker exited ({broker.proc.returncode}):\n{broker._tail()}")
                return 1
        return 0
    finally:
        broker.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="resolve the broker's jars into tests/kafka/lib/ (cached)")
    f.add_argument("--quiet", action="store_true")
    r = sub.add_parser("run", help="run a broker in the foreground until SIGINT/SIGTERM")
    r.add_argument("--port", type=int, default=0, help="client port on 127.0.0.1 (0: any free)")
    r.add_argument("--controller-port", type=int, default=0)
    r.add_argument("--workdir", help="keep storage and logs there (default: a temporary directory)")
    r.add_argument("--heap", default=None, help="JVM heap options (default -Xmx512m)")
    r.add_argument("--log-level", default="INFO")
    r.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for readiness")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "fetch":
            fetch(quiet=args.quiet)
            if not args.quiet:
                _say(f"kafka_2.13 {kafka_version()} in {LIB}")
            return 0
        return _cmd_run(args)
    except KafkaError as e:
        _say(str(e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
