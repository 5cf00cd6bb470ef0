"""Suite-wide hooks: `full` tests run only when asked for, and the whole
suite's wall time is printed just before pytest's closing line."""
import os
import time

import pytest


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true",
                     help="also run the tests marked `full` (pure waiting)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--full"):
        return
    skip = pytest.mark.skip(reason="pure waiting: run with --full (scripts/test --full)")
    for item in items:
        if "full" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    t0 = os.environ.get("KLINED_SUITE_T0")
    if t0:
        secs = time.time() - float(t0)
        terminalreporter.write_line(f"whole suite (scripts/test): {secs / 60:.1f} min wall time")
