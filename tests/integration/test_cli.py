"""The command line as people expect (issue 15): getopt_long, placeholders in --help,
per-command help, ISO 8601 times in the log, no ETA before the first page."""
import json
import re
import subprocess

from conftest import KLINED


def cli(*args):
    return subprocess.run([str(KLINED), *args], capture_output=True, text=True, timeout=30)


def test_help_names_placeholders_and_commands():
    p = cli("--help")
    assert p.returncode == 0
    for s in ("--db PATH", "--symbols LIST", "--rest-url URL", "--watermark DURATION",
              "--http-listen ADDR:PORT", "klined import [--config FILE] [OPTIONS] FILE...",
              "klined help [COMMAND]"):
        assert s in p.stdout, s
    st = cli("status", "--help")
    assert st.returncode == 0 and "--json" in st.stdout and "--once" not in st.stdout
    assert "klined import" not in st.stdout
    assert cli("help", "import").stdout.startswith("Usage:  klined import")
    assert cli("import", "-h").stdout == cli("help", "import").stdout


def test_bad_command_lines_exit_78_naming_what():
    for args, msg in ((["frobnicate"], "unknown command 'frobnicate'"),
                      (["--bogus"], "unknown option --bogus"),
                      (["status", "--db"], "--db needs a value"),
                      (["run", "extra"], "unexpected argument 'extra'"),
                      (["help", "nope"], "no command 'nope'"),
                      (["import", "--config", "/dev/null"], "import: no FILE given")):
        p = cli(*args)
        assert p.returncode == 78, (args, p.stderr)
        assert msg in p.stderr, (args, p.stderr)
    # --name=value and a unique prefix, as getopt_long takes them
    p = cli("status", "--config=/dev/null", "--db=/nonexistent/x.db")
    assert p.returncode == 1 and "/nonexistent/x.db" in p.stderr


def test_log_times_are_iso_and_no_eta_before_a_page(replay, klined, tmp_path):
    srv = replay()
    k = klined(srv.rest_url, "--kafka-brokers", "off", "--history-start", "2023-03-25")
    p = k.once()
    info = [l for l in p.stderr.splitlines() if "[info]" in l]
    epoch = [l for l in info if re.search(r"(?<![\d=])1[5-9]\d{11}(?!\d)", l)]
    assert not epoch, epoch
    assert any(re.search(r"exchange time 2023-04-01T00:00:30Z", l) for l in info), info[:5]
    assert any("history from 2023-03-25T00:00:00Z" in l for l in info)
    assert not any("ETA 0 s" in l for l in info)
    start = next(l for l in info if "backfill: start" in l)
    assert "ETA unknown yet" in start
    assert re.search(r"backfill: done: .* took \d+\.\d s", p.stderr)
    assert not re.search(r"\b1 minutes\b|\b1 ranges\b", p.stderr)
    st = json.loads(k.cmd("status", "--json").stdout)
    assert st["consumer"] == {"topic": None, "partitions": [], "lag": None}
