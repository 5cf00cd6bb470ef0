"""klined's Debian package under a real systemd: the .deb built from this tree
is installed (apt, with its dependencies) in an overlay of a cached Debian
bookworm root, which systemd-nspawn boots sharing the host's network, so the
daemon reaches the host's replay exchange and Kafka broker on 127.0.0.1.

One test walks the service's life, in order, because every step needs the
previous one's state: installed and enabled -> started at boot, active with a
STATUS= line and no warning in the journal -> stopped (Result=success) -> the
exchange moves 3 days, started again -> the gap heals and every day equals
the oracle's -> frozen with SIGSTOP, the watchdog restarts it -> the sandbox
scores <= 2.0 -> purged, nothing left. Skipped (with the reason) only where
systemd-nspawn cannot run: not root, the tools missing, no overlayfs."""
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from systest import APT_CACHE, run, say  # (puts tests/integration and tests/kafka on sys.path)
from systest import kafka_broker, klined_deb, nspawn_root, replay  # noqa: F401 (fixtures)

import oracle  # noqa: E402
from conftest_kafka import ready_topic  # noqa: E402

DAY_MS = 86_400_000
START = "2023-03-20T00:00:30Z"  # the replay exchange's virtual now (its clock stands still)
HISTORY = "2023-03-12"
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(pred, timeout, what, step=0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"not in {timeout} s: {what}")


class Container:
    """An overlay of the cached root (the root itself is never written),
    booted with systemd-nspawn; commands enter it with nsenter (with
    --register=no there is no machined to ask)."""

    # nspawn here runs outside any systemd: no registration, no scope of its
    # own, and its propagation directory must be a tmpfs it may clean.
    NSPAWN = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit"]

    def __init__(self, lower, work):
        self.work = Path(work)
        self.root = self.work / "merged"
        for d in ("upper", "ovwork", "merged"):
            (self.work / d).mkdir()
        p = run(["mount", "-t", "overlay", "overlay", "-o",
                 f"lowerdir={lower},upperdir={self.work}/upper,workdir={self.work}/ovwork",
                 str(self.root)], check=False)
        if p.returncode != 0:
            pytest.skip(f"systemd-nspawn's root needs overlayfs, which fails here: {p.stderr}")
        self.mounted, self.proc, self.leader = True, None, None
        nspawn_run = Path("/run/systemd/nspawn")
        nspawn_run.mkdir(parents=True, exist_ok=True)
        if run(["findmnt", "-n", "-o", "FSTYPE", str(nspawn_run)], check=False).stdout.strip() \
                != "tmpfs":
            run(["mount", "-t", "tmpfs", "tmpfs", str(nspawn_run)])

    def chroot_run(self, *argv, timeout=600, binds=()):
        """A command in the (not booted) container."""
        b = [f"--bind={h}:{c}" for h, c in binds]
        return run([*self.NSPAWN, "-D", str(self.root), *b, *argv], timeout=timeout, check=False)

    def boot(self):
        self.log = open(self.work / "boot.log", "w")
        self.proc = subprocess.Popen([*self.NSPAWN, "-D", str(self.root), "--boot",
                                      "--console=passive", "--machine=klined-test"],
                                     stdout=self.log, stderr=subprocess.STDOUT)

        def leader():
            if self.proc.poll() is not None:
                raise AssertionError(f"systemd-nspawn exited {self.proc.returncode}: "
                                     f"{(self.work / 'boot.log').read_text()[-3000:]}")
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
            pids = kids.read_text().split() if kids.exists() else []
            return int(pids[0]) if pids else None
        self.leader = wait(leader, 30, "the container's init")
        wait(lambda: self.sh("systemctl is-system-running", check=False).stdout.strip()
             in ("running", "degraded"), 90, "the container booted")

    def sh(self, cmd, check=True, timeout=60):
        return run(["nsenter", "-t", str(self.leader), "-a", "sh", "-c", cmd],
                   check=check, timeout=timeout)

    def show(self, *props):
        out = self.sh("systemctl show klined -p " + ",".join(props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn halts the container's systemd
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.mounted:
            run(["umount", "-l", str(self.root)], check=False)
            self.mounted = False


@pytest.fixture
def container(nspawn_root):
    work = tempfile.mkdtemp(prefix="klined-nspawn-")
    c = Container(nspawn_root, work)
    try:
        yield c
    finally:
        if c.leader:
            print("--- journal of klined ---\n" + c.sh(
                "journalctl -u klined --no-pager -o short-iso | tail -60", check=False).stdout)
        c.close()
        shutil.rmtree(work, ignore_errors=True)


def install(c, deb):
    """apt installs the .deb and its dependencies, downloads cached outside the
    repository; the lists are the root's (apt-get update only when they fail)."""
    APT_CACHE.joinpath("partial").mkdir(parents=True, exist_ok=True)
    binds = [(APT_CACHE, "/var/cache/apt/archives"), (deb.parent, "/mnt/deb")]
    cmd = f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q /mnt/deb/{deb.name}"
    p = c.chroot_run("sh", "-c", cmd, binds=binds)
    if p.returncode != 0:
        p = c.chroot_run("sh", "-c", f"apt-get update -qq && {cmd}", binds=binds)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]


def store_minutes(db):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return dict(con.execute("SELECT symbol, max(open_time) FROM kline_1m GROUP BY symbol"))


def check_days(db, last_day_ms):
    """Every day from HISTORY to the last complete one is there and exact."""
    want_days = [oracle.day_of(t) for t in range(oracle_ms(HISTORY), last_day_ms, DAY_MS)]
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        for sym in SYMBOLS:
            exp = oracle.days(sym)
            rows = con.execute("SELECT day, printf('%.8f', open), printf('%.8f', high), "
                               "printf('%.8f', low), printf('%.8f', close), "
                               "printf('%.8f', volume), quote_volume, trades FROM daily "
                               "WHERE symbol = ? AND day < ? ORDER BY day",
                               (sym, oracle.day_of(last_day_ms))).fetchall()
            assert [r[0] for r in rows] == want_days, (sym, [r[0] for r in rows])
            for r in rows:
                e = exp[r[0]]
                assert r[1:6] == tuple(oracle.fmt8(e[k]) for k in
                                       ("open", "high", "low", "close", "volume")), (sym, r)
                assert abs(Decimal(r[6]) - e["quote_volume"]) <= e["quote_volume"] * Decimal("1e-9")
                assert r[7] == e["trades"], (sym, r)


def oracle_ms(day):
    import datetime
    d = datetime.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=datetime.timezone.utc)
    return int(d.timestamp() * 1000)


def current(db, now_ms):
    """The store holds every closed minute up to the exchange's now."""
    last = now_ms // 60_000 * 60_000 - 60_000
    try:
        got = store_minutes(db)
    except sqlite3.Error:
        return False
    return all(got.get(s) == last for s in SYMBOLS)


def test_lintian_clean(klined_deb):
    if not shutil.which("lintian"):
        pytest.skip("lintian is not installed (scripts/install-deps.sh)")
    p = run(["lintian", "--fail-on", "error,warning", str(klined_deb)], check=False, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr


def test_service_lifecycle(klined_deb, container, replay, kafka_broker):
    c = container
    t0 = time.monotonic()
    install(c, klined_deb)
    say(f"installed {klined_deb.name}: {time.monotonic() - t0:.0f} s")
    # Debian policy: a daemon's package enables and starts it (dh_installsystemd).
    assert (c.root / "etc/systemd/system/multi-user.target.wants/klined.service").is_symlink()

    srv = replay(start=START, speed=0, gen_symbols=1)  # S0001USDT, for the reload
    port = free_port()
    topic = f"klined-system-{os.getpid()}-{port}"
    ready_topic(kafka_broker, topic)
    conf = c.root / "etc/klined/klined.conf"
    shipped = conf.read_text()
    assert ";assets = /usr/share/klined/web" in shipped
    conf.write_text(shipped + f"""
[exchange]
symbols = {",".join(SYMBOLS)}
rest_url = {srv.rest_url}
ws_url = {srv.ws_url}
history_start = {HISTORY}
[kafka]
brokers = {kafka_broker.bootstrap}
topic = {topic}
group = klined-system-{port}
[http]
listen = 127.0.0.1:{port}
""")
    # The test's own timings, in a drop-in: the shipped unit keeps WatchdogSec=60s.
    dropin = c.root / "etc/systemd/system/klined.service.d"
    dropin.mkdir(parents=True)
    (dropin / "test.conf").write_text("[Service]\nWatchdogSec=3s\nRestartSec=1s\n"
                                      "TimeoutAbortSec=5s\n")
    c.boot()
    say(f"booted: {time.monotonic() - t0:.0f} s")
    db = c.root / "var/lib/private/klined/klined.db"
    now = srv.now_ms()

    # 1. Started at boot: active, with a STATUS= line, and no warning on a clean start.
    wait(lambda: c.show("ActiveState")["ActiveState"] == "active", 60, "klined active")
    wait(lambda: c.show("StatusText")["StatusText"], 30, "a STATUS= line")
    wait(lambda: current(db, now), 120, "the backfill to the exchange's now")
    say(f"backfilled: {time.monotonic() - t0:.0f} s")
    check_days(db, now // DAY_MS * DAY_MS)
    # The page from the package's data directory (the container shares the host's network).
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
        assert r.status == 200 and b"<html" in r.read().lower()
    warnings = c.sh("journalctl -u klined -p warning --no-pager -q -o short-iso").stdout
    assert warnings.strip() == "", f"warnings on a clean start:\n{warnings}"

    # 2. systemctl reload: a symbol added to the file is followed, without a restart.
    assert c.show("CanReload")["CanReload"] == "yes"
    pid = c.show("MainPID")["MainPID"]
    listed = f"symbols = {','.join(SYMBOLS)}\n"
    conf.write_text(conf.read_text().replace(listed, listed[:-1] + ",S0001USDT\n"))
    c.sh("systemctl reload klined", timeout=60)
    assert c.show("MainPID", "ActiveState") == {"MainPID": pid, "ActiveState": "active"}
    wait(lambda: store_minutes(db).get("S0001USDT") == now // 60_000 * 60_000 - 60_000, 60,
         "the symbol added by the reload backfilled")
    log = c.sh("journalctl -u klined --no-pager -q").stdout
    assert "SIGHUP: [exchange] symbols changed" in log, log[-3000:]
    say(f"reloaded: {time.monotonic() - t0:.0f} s")

    # 3. A clean stop.
    c.sh("systemctl stop klined", timeout=60)
    st = c.show("Result", "ExecMainStatus", "ActiveState")
    assert st == {"Result": "success", "ExecMainStatus": "0", "ActiveState": "inactive"}, st

    # 4. Downtime: the exchange moves 3 days; the next start heals every minute.
    srv.set_clock(advance_ms=3 * DAY_MS)
    now = srv.now_ms()
    c.sh("systemctl start klined", timeout=60)
    assert c.show("ActiveState")["ActiveState"] == "active"
    wait(lambda: current(db, now), 120, "the 3 days' gap healed")
    check_days(db, now // DAY_MS * DAY_MS)
    say(f"healed 3 days: {time.monotonic() - t0:.0f} s")

    # 5. A daemon that stops answering: the watchdog kills it and systemd restarts it.
    st = c.show("MainPID", "NRestarts")
    c.sh(f"kill -STOP {st['MainPID']}")
    wait(lambda: (lambda s: s["NRestarts"] != st["NRestarts"] and s["MainPID"] not in
                  ("0", st["MainPID"]) and s["ActiveState"] == "active")(
        c.show("MainPID", "NRestarts", "ActiveState")), 60, "the watchdog's restart")
    log = c.sh("journalctl -u klined --no-pager -q").stdout
    assert "Watchdog timeout" in log, log[-3000:]
    say(f"watchdog restart: {time.monotonic() - t0:.0f} s")

    # 6. The sandbox, as this systemd sees the installed unit.
    sec = c.sh("systemd-analyze security klined --no-pager", check=False).stdout
    level = [ln for ln in sec.splitlines() if "Overall exposure level" in ln]
    assert level and float(level[0].split(":")[1].split()[0]) <= 2.0, sec[-2000:]

    # 7. Purge leaves nothing behind: binary, unit, configuration, store.
    p = c.sh("DEBIAN_FRONTEND=noninteractive apt-get purge -y -q klined", check=False,
             timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    left = [f for f in ("usr/sbin/klined", "lib/systemd/system/klined.service", "etc/klined",
                        "var/lib/klined", "var/lib/private/klined", "usr/share/klined",
                        "etc/systemd/system/multi-user.target.wants/klined.service")
            if os.path.lexists(c.root / f)]
    assert not left, left
    say(f"purged: {time.monotonic() - t0:.0f} s")
