"""A short daemon run under valgrind's memcheck: backfill, stream through the
real broker, SIGTERM. 0 errors and 0 bytes definitely or indirectly lost."""
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import RUNNING, read_log, wait_for
from test_speed import live, ws_minutes


@pytest.mark.timeout(600)
def test_memcheck_backfill_stream_sigterm(replay, klined, kafka_broker, kafka_topic, tmp_path):
    if not shutil.which("valgrind"):
        pytest.fail("valgrind is not installed (scripts/install-deps.sh installs it)")
    srv = replay(start="2023-03-10T22:00:30Z", speed=300)
    k = live(klined, srv, kafka_broker, kafka_topic, "--history-start", "2023-03-10")
    vlog = tmp_path / "memcheck.txt"
    argv = ["valgrind", "--tool=memcheck", "--leak-check=full", "--show-leak-kinds=definite,indirect",
            "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
            "--track-origins=no", f"--log-file={vlog}", *k.argv()]
    log = open(tmp_path / "klined.log", "w+")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)
    proc.log = log
    RUNNING.append(proc)
    wait_for(lambda: ws_minutes(k.db) >= 4, timeout=400, step=1)
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    report = vlog.read_text()
    assert proc.returncode == 0, f"exit {proc.returncode}\n{report[-6000:]}\n{read_log(proc)[-2000:]}"
    summary = re.search(r"ERROR SUMMARY: (\d+) errors", report)
    assert summary and summary.group(1) == "0", report[-6000:]
    for kind in ("definitely", "indirectly"):
        m = re.search(kind + r" lost: ([\d,]+) bytes", report)
        assert m is None or m.group(1) == "0", report[-6000:]
    print(report[report.find("HEAP SUMMARY"):])
