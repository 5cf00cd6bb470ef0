"""Issue 11, items 2 and 3 (and the REST side of item 1), against a hostile replay:
start-up errors are waited out in-process (no exit 1, no systemd restart loop), a
ban's end outlives a restart, unknown symbols are named and left out, exchangeInfo
goes in chunks, and bad configuration exits 78 naming the key."""
import os
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import KLINED, RUNNING, query, read_log, stop, wait_for

# Refusals (403/451/-1003/-1008/TLS) pause every request 1 min doubling to 30 min by
# default; the tests shorten the first pause ([rest] refusal_pause) so they run in seconds.
FAST = ("--rest-refusal-pause", "300ms")
DAY = "2023-03-31"                 # one day of history: 1440 minutes per symbol
WAF = {"body": "<html><head><title>403 Forbidden</title></head><body><center><h1>403 "
               "Forbidden</h1></center><hr><center>CloudFront</center></body></html>",
       "content_type": "text/html"}


def start_env(k, *args, env=None):
    """Like Klined.start, with extra environment variables."""
    log = open(k.db.parent / f"klined-{time.monotonic_ns()}.log", "w+")
    proc = subprocess.Popen(k.argv(*args), stdout=subprocess.DEVNULL, stderr=log,
                            env=dict(os.environ, **(env or {})))
    proc.log = log
    RUNNING.append(proc)
    return proc


def once_env(k, *args, env=None, timeout=120):
    return subprocess.run(k.argv("--once", *args), capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, **(env or {})))


def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.05)
    return sock, path


def drain(sock):
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except socket.timeout:
            return out


def minutes(db, sym=None):
    if sym is None:
        return query(db, "SELECT count(*) FROM kline")[0][0]
    return query(db, "SELECT count(*) FROM kline JOIN symbol USING (sid) WHERE symbol = ?",
                 sym)[0][0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ item 2: start-up


def test_startup_refusals_are_waited_out_in_process(replay, klined, tmp_path):
    """403 (WAF, HTML body), 451, 503 on exchangeInfo and 503/-1003 on /time at start:
    before, klined exited 1 at the first of them (systemd restarts it every 5 s, each
    start costing weight 20); now it waits in-process, says why in STATUS=, and runs."""
    srv = replay(faults=[
        {"kind": "status", "status": 403, "path": "/api/v3/exchangeInfo", "count": 1, **WAF},
        {"kind": "status", "status": 451, "path": "/api/v3/exchangeInfo", "after": 1,
         "count": 1},
        {"kind": "status", "status": 503, "path": "/api/v3/exchangeInfo", "after": 2,
         "count": 1},
        {"kind": "status", "status": 503, "path": "/api/v3/time", "count": 1},
        {"kind": "status", "status": 400, "path": "/api/v3/time", "after": 1, "count": 1,
         "body": {"code": -1003, "msg": "Too many requests; current limit is 6000."}},
    ])
    sock, path = notify_socket(tmp_path)
    k = klined(srv.rest_url, "--history-start", DAY, "--kafka-brokers", "off")
    p = once_env(k, *FAST, env=dict(NOTIFY_SOCKET=path))
    msgs = drain(sock)
    assert p.returncode == 0, p.stderr[-3000:]
    st = srv.stats()
    assert st["responses"].get("403") == 1 and st["responses"].get("451") == 1, st["responses"]
    assert st["responses"].get("503") == 2 and st["responses"].get("400") == 1
    assert "every request waits" in p.stderr and "next attempt at" in p.stderr, p.stderr
    assert "HTTP 451 (a restricted location)" in p.stderr
    assert minutes(k.db) == 2 * 1440
    waits = [m for m in msgs if "STATUS=" in m and "waiting" in m]
    assert waits and any("HTTP 403" in m or "HTTP 451" in m or "-1003" in m for m in waits), msgs


def test_listing_probe_refused_is_retried(replay, klined):
    """history_start = listing: the probe for the first kline answered 403 then 503.
    Before: exit 1; now the probe is asked again and the symbols are registered."""
    srv = replay(faults=[
        {"kind": "status", "status": 403, "path": "/api/v3/klines", "count": 1},
        {"kind": "status", "status": 503, "path": "/api/v3/klines", "after": 1, "count": 1},
    ])
    k = klined(srv.rest_url, "--history-start", "listing", "--kafka-brokers", "off")
    proc = start_env(k, *FAST)
    wait_for(lambda: os.path.exists(k.db) and
             query(k.db, "SELECT count(*) FROM symbol")[0][0] == 2, timeout=30, step=0.2)
    assert proc.poll() is None
    code, err = stop(proc)
    assert code == 0, err
    assert query(k.db, "SELECT min(start_ms) FROM symbol")[0][0] == 1672531200000, err


def test_ban_end_is_kept_across_a_restart(replay, klined, tmp_path):
    """A 418 with Retry-After at start; klined is restarted during the ban. With the
    replay's escalating bans (as Binance: asking while banned lengthens the ban), the
    restarted klined must send nothing at all until the ban ends. Before: it asked at
    once (requests counted), and each restart made the ban longer."""
    ban_s = 6
    srv = replay(ban_escalation=30, faults=[
        {"kind": "status", "status": 418, "path": "/api/v3/exchangeInfo", "count": 1,
         "retry_after": ban_s}])
    k = klined(srv.rest_url, "--history-start", DAY, "--kafka-brokers", "off")
    t0 = time.monotonic()
    first = start_env(k)
    wait_for(lambda: "Retry-After" in read_log(first), timeout=10)
    code, err = stop(first)
    assert code == 0, err
    assert srv.stats()["requests_total"] == 1
    second = start_env(k, "--once")
    # Until the ban's end (less a margin for the test's own timing), nothing is asked.
    while time.monotonic() - t0 < ban_s - 1:
        assert srv.stats()["requests_total"] == 1, read_log(second)
        assert second.poll() is None, read_log(second)
        time.sleep(0.1)
    second.wait(timeout=60)
    log = read_log(second)
    assert second.returncode == 0, log
    assert "no request before" in log, log
    st = srv.stats()
    assert st["violations"] == 0 and not st["ip_bans"], st
    assert minutes(k.db) == 2 * 1440


# ------------------------------------------------------------- item 2: unknown symbols


def test_unknown_symbol_is_named_and_the_others_run(replay, klined):
    srv = replay()
    k = klined(srv.rest_url, "--history-start", DAY, "--kafka-brokers", "off",
               "--symbols", "BTCUSDT,NOPEUSDT,ETHUSDT")
    p = k.once(check=False, timeout=60)
    assert p.returncode == 0, p.stderr[-3000:]
    named = [ln for ln in p.stderr.splitlines() if "does not list" in ln]
    assert len(named) == 1 and "NOPEUSDT" in named[0], named
    assert "BTCUSDT" not in named[0] and "ETHUSDT" not in named[0]
    assert minutes(k.db, "BTCUSDT") == 1440 and minutes(k.db, "ETHUSDT") == 1440
    assert query(k.db, "SELECT count(*) FROM symbol WHERE symbol = 'NOPEUSDT'")[0][0] == 0
    klines_asked = [e for e in srv.stats(with_log=True)["log"] if "NOPEUSDT" in e["query"]
                    and e["path"] == "/api/v3/klines"]
    assert not klines_asked


def test_no_valid_symbol_exits_78(replay, klined):
    srv = replay()
    k = klined(srv.rest_url, "--symbols", "NOPEUSDT,FOOBARUSDT", "--kafka-brokers", "off")
    p = k.once(check=False, timeout=30)
    assert p.returncode == 78, p.stderr
    assert "[exchange] symbols" in p.stderr
    assert "NOPEUSDT" in p.stderr and "FOOBARUSDT" in p.stderr
    assert srv.stats()["requests"].get("/api/v3/klines", 0) == 0


def test_many_symbols_in_the_file_are_asked_in_chunks(replay, klined, tmp_path):
    """332 symbols listed over continuation lines of the file, the last one unknown.
    Before: the file's line was too long, and on the command line the 4 KiB
    exchangeInfo URL silently dropped the symbols after ~250 (the unknown one was
    never checked). Now every symbol is asked, in chunks, and the unknown is named."""
    n = 330
    srv = replay(gen_symbols=n, start="2023-03-31T00:02:30Z")
    syms = ["BTCUSDT", "ETHUSDT"] + ["S%04dUSDT" % i for i in range(1, n + 1)] + ["NOPEUSDT"]
    lines = ["symbols = " + ",".join(syms[:10]) + ","]
    for i in range(10, len(syms), 10):
        lines.append("    " + ", ".join(syms[i:i + 10]) + ("," if i + 10 < len(syms) else ""))
    conf = tmp_path / "klined.conf"
    conf.write_text("[exchange]\n" + "\n".join(lines) + "\n")
    k = klined(srv.rest_url, "--history-start", DAY, "--kafka-brokers", "off")
    argv = k.argv("--once")
    argv[argv.index("--config") + 1] = str(conf)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    named = [ln for ln in p.stderr.splitlines() if "does not list" in ln]
    assert len(named) == 1 and "NOPEUSDT" in named[0], named
    st = srv.stats(with_log=True)
    infos = [e for e in st["log"] if e["path"] == "/api/v3/exchangeInfo"]
    asked = "".join(e["query"] for e in infos).replace("%22", '"')
    assert all(f'"{s}"' in asked for s in syms), "a symbol was never checked"
    assert len(infos) >= 4 and all(len(e["query"]) < 4000 for e in infos)
    assert query(k.db, "SELECT count(*) FROM symbol")[0][0] == len(syms) - 1
    assert minutes(k.db) == 2 * (len(syms) - 1)


# ------------------------------------------------------- item 1, REST side: klines pages


def test_refused_pages_are_retried_inside_rest(replay, klined, tmp_path):
    """403 (HTML), 451, a 400 with -1003 and one with -1008 on klines pages: before,
    each marked its symbol failed and the backfill lost it; now rest.c pauses every
    request (growing), callers see only the final answers, and /metrics counts them."""
    srv = replay(faults=[
        {"kind": "status", "status": 403, "symbol": "BTCUSDT", "count": 1, **WAF},
        {"kind": "status", "status": 451, "symbol": "ETHUSDT", "count": 1},
        {"kind": "status", "status": 400, "symbol": "BTCUSDT", "after": 1, "count": 1,
         "body": {"code": -1003, "msg": "Too many requests."}},
        {"kind": "status", "status": 400, "symbol": "ETHUSDT", "after": 1, "count": 1,
         "body": {"code": -1008, "msg": "Server is currently overloaded with other requests."}},
    ])
    port = free_port()
    k = klined(srv.rest_url, "--history-start", "2023-03-29", "--kafka-brokers", "off",
               "--http-listen", f"127.0.0.1:{port}")
    proc = start_env(k, *FAST)
    wait_for(lambda: os.path.exists(k.db) and minutes(k.db) == 2 * 3 * 1440, timeout=60,
             step=0.3)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        metrics = r.read().decode()
    code, err = stop(proc)
    assert code == 0, err
    refused = [ln for ln in metrics.splitlines() if ln.startswith("klined_rest_refused_total")]
    assert refused and int(float(refused[0].split()[-1])) == 4, refused
    assert "klined_rest_paused_until_seconds" in metrics
    assert err.count("every request waits") >= 1 and "code -1008" in err, err
    assert minutes(k.db, "BTCUSDT") == 3 * 1440 and minutes(k.db, "ETHUSDT") == 3 * 1440


# ------------------------------------------------------------ item 3: bad configuration


def run78(tmp_path, *args, conf=None):
    cfg = os.devnull
    if conf is not None:
        cfg = tmp_path / "klined.conf"
        cfg.write_text(conf)
    p = subprocess.run([str(KLINED), "--once", "--config", str(cfg), "--db",
                        str(tmp_path / "x.db"), *args], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 78, (p.returncode, p.stderr)
    assert not (tmp_path / "x.db").exists()
    return p.stderr


@pytest.mark.parametrize("option,value,key", [
    ("--rest-url", "http://127.0.0.1:99999", "[exchange] rest_url"),
    ("--rest-url", "http://[::1", "[exchange] rest_url"),
    ("--rest-url", "http://:80", "[exchange] rest_url"),
    ("--rest-url", "http://127.0.0.1:0", "[exchange] rest_url"),
    ("--ws-url", "ws://host:65536", "[exchange] ws_url"),
    ("--rest-weight-limit", "1", "[rest] weight_limit"),
    ("--rest-weight-limit", "19", "[rest] weight_limit"),
    ("--rest-weight-limit", "20", "[rest] weight_limit"),
    ("--rest-refusal-pause", "50ms", "[rest] refusal_pause"),
    ("--rest-refusal-pause", "31m", "[rest] refusal_pause"),
    ("--rest-refusal-pause", "-1", "[rest] refusal_pause"),
])
def test_bad_value_exits_78_instead_of_hanging(option, value, key, tmp_path):
    err = run78(tmp_path, option, value)
    assert key in err and option in err, err


def test_good_urls_are_still_taken(tmp_path):
    for url in ("http://[::1]:9", "https://api.binance.com", "http://localhost:9/prefix"):
        p = subprocess.run([str(KLINED), "status", "--config", os.devnull, "--db",
                            str(tmp_path / "none.db"), "--rest-url", url],
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 1 and "rest_url" not in p.stderr, p.stderr


def test_ca_file_naming_a_directory_exits_78(tmp_path):
    err = run78(tmp_path, "--ca-file", str(tmp_path))
    assert "[exchange] ca_file" in err and "not a file" in err


def test_key_given_twice_exits_78_naming_both_lines(tmp_path):
    err = run78(tmp_path, conf="[rest]\nconcurrency = 4\n\n[log]\nlevel = info\n"
                               "[rest]\nconcurrency = 8\n")
    assert "klined.conf:7: [rest] concurrency: given twice (lines 2 and 7)" in err, err
    err = run78(tmp_path, conf="[exchange]\nsymbols = BTCUSDT\nsymbols = ETHUSDT\n")
    assert "[exchange] symbols: given twice (lines 2 and 3)" in err, err
    err = run78(tmp_path, conf="[log]\nlevel = info\n  debug\n")
    assert "[log] level: continuation line" in err, err
    err = run78(tmp_path, conf="[exchange]\nsymbols = BTCUSDT,\n  ETHUSDT,\n  btcusdt\n")
    assert "klined.conf:4: [exchange] symbols: symbol BTCUSDT given twice" in err, err
