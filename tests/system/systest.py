"""Fixtures of tests/system (imported by its tests: a conftest.py here would
shadow tests/integration's `conftest` module, which its tests import by
name): the Debian package built from this tree, a
Debian bookworm root for systemd-nspawn (made once, cached outside the
repository), and the host's replay exchange and Kafka broker that the
container reaches over 127.0.0.1 (it shares the host's network)."""
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "replay"))
sys.path.insert(0, str(ROOT / "tests" / "kafka"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import binance_replay as br  # noqa: E402
from conftest_kafka import kafka_broker  # noqa: E402,F401

CACHE = Path(os.environ.get("KLINED_NSPAWN_CACHE", "/var/cache/klined-nspawn"))
NSPAWN_ROOT = CACHE / "bookworm"
APT_CACHE = CACHE / "apt"
DEB_CACHE = CACHE / "deb"
READY = ".klined-root-ready"
MIRROR = os.environ.get("KLINED_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def say(msg):
    print(f"[system {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(argv, timeout=600, check=True, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))}: exit {p.returncode}\n"
                             f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


class cache_lock:
    """One writer of the cache at a time (parallel workers share it)."""

    def __enter__(self):
        CACHE.mkdir(parents=True, exist_ok=True)
        self.f = open(CACHE / ".lock", "w")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.f.close()


def need(cond, why):
    if not cond:
        pytest.skip(why)


@pytest.fixture
def replay():
    """Factory: replay(**ReplayServer kwargs) -> a started server, stopped at teardown."""
    started = []

    def make(**kw):
        srv = br.ReplayServer(**kw).start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


def _tree_files():
    """The files of this tree that a clone has (tracked or not ignored)."""
    out = run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"]).stdout
    return sorted(f for f in out.split("\0")
                  if f and not f.startswith("tests/web/node_modules/") and (ROOT / f).is_file())


@pytest.fixture(scope="session")
def klined_deb(tmp_path_factory):
    """The .deb of this tree: `dpkg-buildpackage -us -uc -b` in a copy of it
    (dpkg-buildpackage writes beside the source), cached by the tree's content;
    KLINED_DEB names a prebuilt one instead."""
    if os.environ.get("KLINED_DEB"):
        return Path(os.environ["KLINED_DEB"])
    need(shutil.which("dpkg-buildpackage") and shutil.which("dh"),
         "dpkg-buildpackage/debhelper are not installed (scripts/install-deps.sh)")
    files = _tree_files()
    h = hashlib.sha256()
    for f in files:
        h.update(f.encode() + b"\0" + (ROOT / f).read_bytes())
    key = h.hexdigest()[:16]
    with cache_lock():
        return _build_deb(DEB_CACHE / key, tmp_path_factory.mktemp("deb"), files)


def _build_deb(cached, work, files):
    debs = sorted(cached.glob("klined_*.deb")) if cached.is_dir() else []
    if debs:
        say(f"reusing {debs[0]}")
        return debs[0]
    src = work / "klined"
    with tarfile.open(work / "src.tar", "w") as t:
        for f in files:
            t.add(ROOT / f, arcname=f)
    with tarfile.open(work / "src.tar") as t:
        t.extractall(src)
    t0 = time.monotonic()
    p = run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, check=False, timeout=900,
            env=dict(os.environ, DEB_BUILD_OPTIONS="nocheck"))
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    say(f"dpkg-buildpackage: {time.monotonic() - t0:.0f} s")
    debs = sorted(work.glob("klined_*.deb"))
    assert debs, list(work.iterdir())
    # Packages of trees older than a day go (others may still be in use).
    for old in DEB_CACHE.glob("*"):
        if time.time() - old.stat().st_mtime > 86400:
            shutil.rmtree(old, ignore_errors=True)
    cached.mkdir(parents=True, exist_ok=True)
    for d in work.glob("*.deb"):
        shutil.copy2(d, cached)
    return cached / debs[0].name


@pytest.fixture(scope="session")
def nspawn_root():
    """A Debian bookworm root with systemd and apt's lists, made once with
    debootstrap (the first run on a clean machine pays for it) and never
    modified afterwards: each test boots an overlay of it."""
    need(os.geteuid() == 0, "systemd-nspawn needs root")
    for tool, pkg in (("systemd-nspawn", "systemd-container"), ("debootstrap", "debootstrap")):
        need(shutil.which(tool), f"{tool} is not installed (apt-get install {pkg})")
    with cache_lock():
        if not (NSPAWN_ROOT / READY).exists():
            _debootstrap()
    return NSPAWN_ROOT


def _debootstrap():
    tmp = CACHE / "bookworm.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.monotonic()
    run(["debootstrap", "--variant=minbase", "--include=systemd,systemd-sysv,dbus",
         "bookworm", str(tmp), MIRROR], timeout=1800)
    run(["chroot", str(tmp), "apt-get", "update", "-qq"], timeout=600)
    (tmp / READY).write_text(f"debootstrap {time.strftime('%Y-%m-%d')}\n")
    shutil.rmtree(NSPAWN_ROOT, ignore_errors=True)
    tmp.rename(NSPAWN_ROOT)
    say(f"debootstrap of {NSPAWN_ROOT}: {time.monotonic() - t0:.0f} s")
