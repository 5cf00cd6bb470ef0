"""Suite-wide hooks: `full` tests run only when asked for; `serial` tests run
last and alone under pytest-xdist; the whole suite's wall time is printed just
before pytest's closing line.

Under xdist (scripts/test: `-n N`) every worker is a process of its own: its
own session fixtures (one Kafka broker per worker that needs one), its own
temporary directories. A test marked `serial` measures time or latency, so it
must not share the machine with the other workers' tests: the serial tests are
collected last, and each holds a lock exclusively while every other test holds
it shared, so a serial test starts only once the tests in flight are done and
nothing starts beside it. (Not xdist_group: pytest-xdist 3.8's loadgroup does
not group under pytest 9, whose items keep their id in `_id`, not `_nodeid`.)"""
import fcntl
import os
import shutil
import tempfile
import time

import pytest


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true",
                     help="also run the tests marked `full` (pure waiting)")


def pytest_collection_modifyitems(config, items):
    # Last: the parallel part runs first, then the serial tests one by one.
    serial = [i for i in items if "serial" in i.keywords]
    items[:] = [i for i in items if "serial" not in i.keywords] + serial
    if config.getoption("--full"):
        return
    skip = pytest.mark.skip(reason="pure waiting: run with --full (scripts/test --full)")
    for item in items:
        if "full" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist's controller, for each worker: the lock of this run (two runs on
    one machine, from two worktrees, never wait for each other)."""
    cfg = node.config
    if not hasattr(cfg, "_klined_lockdir"):
        cfg._klined_lockdir = tempfile.mkdtemp(prefix="klined-pytest-")
    node.workerinput["klined_lock"] = os.path.join(cfg._klined_lockdir, "serial.lock")


def pytest_unconfigure(config):
    lockdir = getattr(config, "_klined_lockdir", None)
    if lockdir:  # the controller, once every worker has exited
        shutil.rmtree(lockdir, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # outermost: the wait is not in the timeout
def pytest_runtest_protocol(item):
    path = getattr(item.config, "workerinput", {}).get("klined_lock")
    if path is None:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if "serial" in item.keywords else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock, as a crashed worker's exit would


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter):
    # Outermost wrapper, printed after the short test summary: the line right
    # before pytest's closing line. Under xdist only the controller has a
    # terminal, so it is printed once.
    yield
    t0 = os.environ.get("KLINED_SUITE_T0")
    if t0:
        secs = time.time() - float(t0)
        terminalreporter.write_line(f"whole suite (scripts/test): {secs / 60:.1f} min wall time")
