"""The command line and configuration contract: bad values exit 78 naming the key."""
import os
import subprocess

import pytest

from conftest import KLINED


def run(*args, **kw):
    return subprocess.run([str(KLINED), *args], capture_output=True, text=True, timeout=30, **kw)


@pytest.mark.parametrize("option,value,key", [
    ("--history-start", "yesterday", "[exchange] history_start"),
    ("--symbols", "BTC-USDT", "[exchange] symbols"),
    ("--rest-url", "ftp://x", "[exchange] rest_url"),
    ("--ws-url", "http://x", "[exchange] ws_url"),
    ("--watermark", "1 hour", "[stream] watermark"),
    ("--log-level", "loud", "[log] level"),
    ("--http-listen", "8642", "[http] listen"),
    ("--rest-concurrency", "0", "[rest] concurrency"),
    ("--db", "", "[store] path"),
])
def test_bad_option_exits_78_naming_the_key(option, value, key, tmp_path):
    p = run("--once", "--config", os.devnull, "--db", str(tmp_path / "x.db"), option, value)
    assert p.returncode == 78, p.stderr
    assert key in p.stderr and option in p.stderr
    assert not (tmp_path / "x.db").exists()


def test_bad_config_file_value_names_file_line_and_key(tmp_path):
    conf = tmp_path / "klined.conf"
    conf.write_text("[store]\npath = /tmp/x.db\n\n[exchange]\nhistory_start = soon\n")
    p = run("--config", str(conf))
    assert p.returncode == 78
    assert f"{conf}:5: [exchange] history_start: 'soon'" in p.stderr


def test_unknown_key_and_missing_named_file(tmp_path):
    conf = tmp_path / "klined.conf"
    conf.write_text("[exchange]\nsymbol = BTCUSDT\n")
    p = run("--config", str(conf))
    assert p.returncode == 78 and "[exchange] symbol: unknown key" in p.stderr
    p = run("--config", str(tmp_path / "nope.conf"))
    assert p.returncode == 78 and "nope.conf" in p.stderr


def test_unknown_option_and_help_version():
    assert run("--frobnicate", "1").returncode == 78
    h = run("--help")
    assert h.returncode == 0
    for opt in ("--db", "--symbols", "--rest-url", "--ws-url", "--history-start",
                "--kafka-brokers", "--kafka-topic", "--kafka-group", "--watermark",
                "--log-level", "--http-listen"):
        assert opt in h.stdout
    assert run("--version").stdout.startswith("klined ")


def test_options_override_the_file(tmp_path):
    conf = tmp_path / "klined.conf"
    conf.write_text(f"[store]\npath = {tmp_path / 'from-file.db'}\n")
    db = tmp_path / "from-option.db"
    p = run("status", "--config", str(conf), "--db", str(db))
    # status on a missing store fails, naming the option's path, not the file's
    assert p.returncode == 1 and "from-option.db" in p.stderr


def test_newer_schema_is_refused_untouched(tmp_path):
    import sqlite3
    db = tmp_path / "new.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE future (x)")
        c.execute("PRAGMA user_version = 999")
    before = db.read_bytes()
    p = run("--once", "--config", os.devnull, "--db", str(db), "--rest-url", "http://127.0.0.1:9")
    assert p.returncode == 1 and "newer than this klined" in p.stderr
    assert db.read_bytes() == before
