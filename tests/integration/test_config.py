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


# Every key, with a value it must refuse: (section, key, option, bad value).
EVERY_KEY = [
    ("store", "path", "--db", ""),
    ("exchange", "symbols", "--symbols", "BTCUSDT,BTCUSDT"),
    ("exchange", "rest_url", "--rest-url", "gopher://x"),
    ("exchange", "ws_url", "--ws-url", "https://x"),
    ("exchange", "history_start", "--history-start", "2023-02-30"),
    ("exchange", "ca_file", "--ca-file", "/nonexistent/ca.pem"),
    ("kafka", "brokers", "--kafka-brokers", "host-without-port"),
    ("kafka", "topic", "--kafka-topic", "bad topic"),
    ("kafka", "group", "--kafka-group", ""),
    ("stream", "watermark", "--watermark", "-5m"),
    ("log", "level", "--log-level", "verbose"),
    ("http", "listen", "--http-listen", "127.0.0.1:99999"),
    ("rest", "concurrency", "--rest-concurrency", "many"),
    ("rest", "timeout", "--rest-timeout", "0s"),
    ("rest", "weight_limit", "--rest-weight-limit", "-1"),
]


@pytest.mark.parametrize("section,key,option,value", EVERY_KEY,
                         ids=[f"{s}.{k}" for s, k, _, _ in EVERY_KEY])
def test_every_key_refuses_a_bad_value_in_file_and_option(section, key, option, value, tmp_path):
    db = tmp_path / "x.db"
    conf = tmp_path / "klined.conf"
    conf.write_text(f"[{section}]\n{key} = {value}\n")
    p = run("--once", "--config", str(conf), "--db", str(db))
    assert p.returncode == 78, p.stderr
    # A CA file is checked once the configuration is complete: by key, not line.
    where = f"[{section}] {key}" if key == "ca_file" else f"{conf}:2: [{section}] {key}"
    assert where in p.stderr, p.stderr
    p = run("--once", "--config", os.devnull, "--db", str(db), option, value)
    assert p.returncode == 78, p.stderr
    assert f"[{section}] {key}" in p.stderr and option in p.stderr, p.stderr
    assert not db.exists()


def test_unknown_librdkafka_property_is_refused(tmp_path):
    conf = tmp_path / "klined.conf"
    conf.write_text("[kafka]\nlibrdkafka.no.such.property = 1\n")
    p = run("--config", str(conf), "--db", str(tmp_path / "x.db"), "--rest-url",
            "http://127.0.0.1:9")
    assert p.returncode == 78 and "librdkafka.no.such.property" in p.stderr, p.stderr


def test_unreadable_config_file_names_it(tmp_path):
    # A directory where the file should be: unreadable even for root.
    conf = tmp_path / "klined.conf"
    conf.mkdir()
    p = run("--config", str(conf), "--db", str(tmp_path / "x.db"))
    assert p.returncode == 78 and str(conf) in p.stderr, p.stderr
    assert not (tmp_path / "x.db").exists()


def test_store_in_an_unwritable_place_exits_1_naming_it(tmp_path):
    p = run("--once", "--config", os.devnull, "--db", "/proc/klined.db", "--rest-url",
            "http://127.0.0.1:9")
    assert p.returncode == 1 and "/proc/klined.db" in p.stderr, p.stderr
