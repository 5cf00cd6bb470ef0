"""Integration fixtures: the real klined binary, the replay exchange (in this
process, on 127.0.0.1, port 0) and real SQLite files in a temporary directory."""
import fcntl
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "replay"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import binance_replay as br  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "kafka"))
from conftest_kafka import kafka_broker, kafka_factory, kafka_topic  # noqa: E402,F401

KLINED = Path(os.environ.get("KLINED_BIN", ROOT / "build" / "daemon" / "klined"))
HALT = ("2023-03-24T12:40:00Z", "2023-03-24T14:00:00Z")
HALT_MS = (1679661600000, 1679666400000)
END = "2023-04-01T00:00:30Z"


@pytest.fixture(scope="session")
def klined_bin():
    if not KLINED.exists():
        pytest.fail(f"{KLINED} is not built: run `meson setup build && ninja -C build`")
    return KLINED


@pytest.fixture
def replay():
    """Factory: replay(**ReplayServer kwargs) -> a started server, stopped at teardown."""
    started = []

    def make(**kw):
        kw.setdefault("start", END)
        kw.setdefault("speed", 0)
        srv = br.ReplayServer(**kw).start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


class Klined:
    """Runs the daemon binary against one store and one exchange."""

    def __init__(self, binary, db, rest_url, extra=()):
        self.binary, self.db, self.rest_url, self.extra = binary, db, rest_url, list(extra)

    def argv(self, *args, cmd="run"):
        return [str(self.binary), cmd, "--db", str(self.db), "--rest-url", self.rest_url,
                "--config", os.devnull, *self.extra, *args]

    def once(self, *args, timeout=120, check=True):
        p = subprocess.run(self.argv("--once", *args), capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"klined exited {p.returncode}:\n{p.stderr[-4000:]}")
        return p

    def start(self, *args):
        # stderr goes to a file: a pipe nobody reads would stall a chatty daemon.
        self.log = open(self.db.parent / f"klined-{time.monotonic_ns()}.log", "w+")
        proc = subprocess.Popen(self.argv(*args), stdout=subprocess.DEVNULL,
                                stderr=self.log, text=True)
        proc.log = self.log
        RUNNING.append(proc)
        return proc

    def cmd(self, cmd, *args, timeout=120):
        return subprocess.run(self.argv(*args, cmd=cmd), capture_output=True, text=True,
                              timeout=timeout)


@pytest.fixture
def klined(klined_bin, tmp_path):
    """Factory: klined(rest_url, *extra_args, db=None) -> Klined."""
    def make(rest_url, *extra, db=None):
        return Klined(klined_bin, db or tmp_path / "klined.db", rest_url,
                      ["--history-start", "2023-01-01", "--log-level", "info", *extra])
    return make


@pytest.fixture(scope="session")
def once_per_run(tmp_path_factory):
    """once_per_run(name, build) -> a directory that build(directory) filled,
    made once per test run: under pytest-xdist the workers share it (a file lock
    in the run's temporary directory), so several tests that check one run's
    result pay for that run once. Tests only read it: one that changes a file
    copies it first (copy_store)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the controller's: every worker's basetemp is under it

    def get(name, build):
        d = root / f"once-{name}"
        with open(root / f"once-{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (d / ".done").exists():
                shutil.rmtree(d, ignore_errors=True)
                d.mkdir()
                build(d)
                (d / ".done").touch()
        return d
    return get


def copy_store(src, dst):
    """Copies the SQLite store @src (and its -wal, -shm if any) to @dst; returns dst."""
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{src}{suffix}").exists():
            shutil.copy(f"{src}{suffix}", f"{dst}{suffix}")
    return dst


def query(db, sql, *args):
    with sqlite3.connect(db) as c:
        return c.execute(sql, args).fetchall()


def wait_for(pred, timeout=30, step=0.05):
    """pred() until it is true. A store the daemon has created but not yet
    migrated (no such table) or holds locked is "not yet", not a failure: on a
    loaded machine a test can look between the two."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            v = pred()
        except sqlite3.OperationalError as e:
            v, last = None, e
        if v:
            return v
        time.sleep(step)
    raise AssertionError("condition not met in time" + (f" (last: {last})" if last else ""))


RUNNING = []


def read_log(proc):
    proc.log.flush()
    proc.log.seek(0)
    return proc.log.read()


@pytest.fixture(autouse=True)
def _stop_daemons(request):
    """Every test stops what it started; a failing test shows the daemon's log."""
    yield
    failed = getattr(request.node, "rep_call", None)
    while RUNNING:
        proc = RUNNING.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if failed is not None and failed.failed:
            print(f"--- klined log (exit {proc.returncode}) ---\n{read_log(proc)[-6000:]}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    rep = (yield).get_result()
    setattr(item, "rep_" + rep.when, rep)


def stop(proc, sig=signal.SIGTERM, timeout=10):
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"klined did not stop within {timeout}s:\n{read_log(proc)[-3000:]}")
    return proc.returncode, read_log(proc)
