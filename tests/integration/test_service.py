"""klined as a systemd service: the unit verifies and is hardened, and the
daemon speaks the notify protocol (READY, STATUS, WATCHDOG, STOPPING) to a
real NOTIFY_SOCKET."""
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from conftest import KLINED, ROOT, stop, wait_for

UNIT = ROOT / "systemd" / "klined.service"
needs_systemd = pytest.mark.skipif(not shutil.which("systemd-analyze"),
                                   reason="systemd-analyze is not installed")


@pytest.fixture
def unit(tmp_path):
    text = UNIT.read_text().replace("@SBINDIR@", str(KLINED.parent)).replace(
        "@CONFFILE@", "/etc/klined/klined.conf")
    path = tmp_path / "klined.service"
    path.write_text(text)
    return path


@needs_systemd
def test_unit_verifies(unit):
    p = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "klined.service" not in p.stderr, p.stderr


@needs_systemd
def test_unit_exposure_at_most_2(unit):
    p = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for klined.service: ([0-9.]+)", p.stdout)
    assert m, p.stdout[-2000:] + p.stderr
    assert float(m.group(1)) <= 2.0, p.stdout


def test_unit_restart_policy_and_contract_paths():
    text = UNIT.read_text()
    for line in ("Type=notify", "Restart=on-failure", "RestartPreventExitStatus=78",
                 "StateDirectory=klined", "ConfigurationDirectory=klined",
                 "After=network-online.target", "WatchdogSec="):
        assert line in text


def test_notify_protocol_in_order(replay, klined, tmp_path):
    srv = replay(start="2023-03-10T00:00:30Z", speed=600)
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    k = klined(srv.rest_url, "--history-start", "2023-03-08", "--kafka-brokers", "off")
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000",
               WATCHDOG_PID=str(0))
    env.pop("WATCHDOG_PID")
    import conftest
    log = open(tmp_path / "d.log", "w+")
    proc = subprocess.Popen(k.argv(), stderr=log, stdout=subprocess.DEVNULL, env=env)
    proc.log = log
    conftest.RUNNING.append(proc)
    msgs = []
    end = time.monotonic() + 30
    while time.monotonic() < end and not (
            any("WATCHDOG=1" in m for m in msgs) and sum("STATUS=" in m for m in msgs) >= 2):
        try:
            msgs.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
    code, err = stop(proc)
    while True:
        try:
            msgs.append(sock.recv(4096).decode())
        except socket.timeout:
            break
    sock.close()
    assert code == 0, err
    ready = next(i for i, m in enumerate(msgs) if "READY=1" in m)
    watchdog = next(i for i, m in enumerate(msgs) if "WATCHDOG=1" in m)
    statuses = [i for i, m in enumerate(msgs) if "STATUS=" in m]
    assert statuses[0] == ready, "READY=1 carries the first status"
    assert watchdog > ready and len(statuses) >= 2
    assert "STOPPING=1" in msgs[-1] or any("STOPPING=1" in m for m in msgs[watchdog:])


def test_meson_install_destdir(tmp_path):
    dest = tmp_path / "dest"
    p = subprocess.run(["meson", "install", "-C", str(ROOT / "build"), "--destdir", str(dest),
                        "--quiet"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    files = {str(f.relative_to(dest)) for f in dest.rglob("*") if f.is_file()}
    assert any(f.endswith("sbin/klined") for f in files), files
    unit = [f for f in files if f.endswith("systemd/system/klined.service")]
    conf = [f for f in files if f.endswith("etc/klined/klined.conf")]
    assert unit and conf and any(f.endswith("klined/schema/001-init.sql") for f in files)
    if shutil.which("scdoc"):
        assert any(f.endswith("man8/klined.8") for f in files), files
    text = (dest / unit[0]).read_text()
    assert "@SBINDIR@" not in text and "/sbin/klined run" in text
    # The shipped default configuration is valid (a bad one would exit 78).
    r = subprocess.run([str(KLINED), "status", "--config", str(dest / conf[0]), "--db",
                        str(tmp_path / "none.db")], capture_output=True, text=True)
    assert r.returncode == 1 and "cannot open" in r.stderr, r.stderr
