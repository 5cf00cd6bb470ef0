"""Issue 11, items 14, 16, 18: the HTTP server under idle and slow local
connections, the store deleted under the running daemon, a corrupt store at
start. The real binary, the replay exchange, real SQLite files."""
import json
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import RUNNING, query, read_log, stop, wait_for
from test_http import free_port, get, http_args, raw_request, up

SYMS = ("BTCUSDT", "ETHUSDT")


def hostile(port, n, slow, halt):
    """@n connections that send nothing (or, @slow, a never-ending request
    head a byte a second), each reopened as soon as the server drops it."""
    socks = [None] * n

    def reopen(i):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.setblocking(False)
            if slow:
                s.send(b"GET /api/status HTTP/1.1\r\nHost: x\r\n")
            socks[i] = s
        except OSError:
            socks[i] = None

    for i in range(n):
        reopen(i)
    tick = 0
    while not halt.is_set():
        for i, s in enumerate(socks):
            try:
                if s is None or s.recv(4096) == b"":
                    raise ConnectionResetError
                if slow and tick % 10 == 0:
                    s.send(b"X")
            except BlockingIOError:
                pass
            except OSError:
                if s:
                    s.close()
                reopen(i)
        tick += 1
        halt.wait(0.1)
    for s in socks:
        if s:
            s.close()


def timed_get(port, path):
    t0 = time.monotonic()
    st, _, body = get(port, path, timeout=10)
    return time.monotonic() - t0, st, body


@pytest.mark.serial  # measures time: alone, after the parallel part
def test_idle_and_slow_connections_do_not_block_the_api(replay, klined):
    srv = replay(start="2023-03-05T06:00:30Z", speed=0)
    port = free_port()
    k = klined(srv.rest_url, "--kafka-brokers", "off", "--history-start", "2023-03-04",
               *http_args(port))
    proc = k.start()
    wait_for(lambda: up(port), timeout=60, step=0.2)
    wait_for(lambda: "backfill: done" in read_log(proc), timeout=60, step=0.2)
    for n, slow in ((40, False), (250, False), (250, True)):
        halt = threading.Event()
        t = threading.Thread(target=hostile, args=(port, n, slow, halt), daemon=True)
        t.start()
        time.sleep(0.5)
        worst = 0.0
        # 12 s: past lws's 10 s idle timeout, so the drops and reconnections are in it.
        end = time.monotonic() + 12
        while time.monotonic() < end:
            for path in ("/api/status", "/api/daily?symbol=BTCUSDT&days=2", "/"):
                dt, st, _ = timed_get(port, path)
                assert st == 200, (n, slow, path, st)
                worst = max(worst, dt)
            time.sleep(0.1)
        halt.set()
        t.join()
        # Generous on a shared 2-core box: before the fix one request took ~9 s.
        assert worst < 2.0, (n, slow, worst)
    assert proc.poll() is None
    code, err = stop(proc)
    assert code == 0, err


def test_bad_queries_get_json_errors(replay, klined):
    srv = replay(start="2023-03-05T06:00:30Z", speed=0)
    port = free_port()
    k = klined(srv.rest_url, "--kafka-brokers", "off", "--history-start", "2023-03-04",
               *http_args(port))
    proc = k.start()
    wait_for(lambda: up(port), timeout=60, step=0.2)
    for q in ("symbol=BTC%00USDT", "symbol=BTCUSDT%00", "symbol=BTCUSDT&days=%00",
              "symbol=BTCUSDT&days=1%00", "symbol=%ZZ", "symbol=%", "symbol=BTC%2",
              "symbol=" + "A" * 33, "symbol=" + "A" * 32, "symbol=BTC%FFUSDT",
              "symbol=%E2%82%AC", "symbol=BTC%20USDT", "symbol&days", "=&=",
              "symbol=BTCUSDT&days=" + "9" * 40):
        reply, _ = raw_request(port, f"GET /api/daily?{q} HTTP/1.1\r\nHost: x\r\n"
                                     "Connection: close\r\n\r\n".encode())
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), (q, reply[:200])
        assert json.loads(body)["error"], (q, body)
    reply, _ = raw_request(port, b"GET /index.html%00.js HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)
    assert reply.startswith(b"HTTP/1.1 400") and b'"error"' in reply, reply[:200]
    # Still serving, the good and the page.
    assert get(port, "/api/daily?symbol=BTCUSDT&days=1")[0] == 200
    assert get(port, "/")[0] == 200
    assert proc.poll() is None
    code, err = stop(proc)
    assert code == 0, err


def test_store_deleted_while_running_is_noticed(replay, klined):
    srv = replay(start="2023-03-05T06:00:30Z", speed=0)
    k = klined(srv.rest_url, "--kafka-brokers", "off", "--history-start", "2023-03-04",
               "--http-listen", "off")
    proc = k.start()
    wait_for(lambda: "backfill: done" in read_log(proc), timeout=60, step=0.2)
    rows = query(k.db, "SELECT count(*) FROM kline_1m")[0][0]
    assert rows == 2 * (1440 + 360)
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(f"{k.db}{suffix}")
        except FileNotFoundError:
            pass
    t0 = time.monotonic()
    try:
        proc.wait(timeout=15)
    except Exception:
        raise AssertionError("klined went on writing into a deleted store:\n"
                             + read_log(proc)[-2000:])
    log = read_log(proc)
    assert proc.returncode == 1, log[-2000:]
    assert time.monotonic() - t0 < 10
    assert "store" in log and str(k.db) in log and "deleted or replaced" in log, log[-2000:]
    # What systemd's Restart=on-failure does next heals it from REST.
    proc = k.start()
    wait_for(lambda: "backfill: done" in read_log(proc), timeout=60, step=0.2)
    assert query(k.db, "SELECT count(*) FROM kline_1m")[0][0] == rows
    code, err = stop(proc)
    assert code == 0, err


def corrupt_store(replay, klined):
    """A store whose klines table has a page overwritten by garbage."""
    srv = replay(start="2023-03-05T06:00:30Z", speed=0)
    k = klined(srv.rest_url, "--kafka-brokers", "off", "--history-start", "2023-03-01",
               "--http-listen", "off")
    k.once()
    assert not os.path.exists(f"{k.db}-wal")
    size = os.path.getsize(k.db)
    with open(k.db, "r+b") as f:
        f.seek(size // 2 // 4096 * 4096)
        f.write(b"\xa5" * 4096)
    return srv, k


def snapshot(path):
    st = os.stat(path)
    with open(path, "rb") as f:
        return f.read(), st.st_mtime_ns, st.st_size


def test_corrupt_store_refused_untouched(replay, klined):
    srv, k = corrupt_store(replay, klined)
    before = snapshot(k.db)
    requests = srv.stats()["requests_total"]
    p = k.once(check=False, timeout=60)
    assert p.returncode == 1, p.stderr[-2000:]
    assert "database is corrupt" in p.stderr and str(k.db) in p.stderr, p.stderr[-2000:]
    assert snapshot(k.db) == before, "the corrupt store was modified"
    assert srv.stats()["requests_total"] == requests, "the exchange was asked before the check"
    s = k.cmd("status")
    assert s.returncode == 1 and "database is corrupt" in s.stderr, s.stderr
    assert snapshot(k.db) == before


def restrict_address_families():
    """preexec_fn: what the unit's RestrictAddressFamilies=AF_UNIX AF_INET
    AF_INET6 does (systemd installs the same seccomp filter): socket() of
    any other family fails with EAFNOSUPPORT. Here: AF_NETLINK, which
    getifaddrs() needs."""
    import ctypes
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)

    class Cmp(ctypes.Structure):
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                    ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]

    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(Cmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(0x7FFF0000)  # SCMP_ACT_ALLOW
    nr = lib.seccomp_syscall_resolve_name(b"socket")
    cmp = Cmp(0, 4, 16, 0)  # arg 0 (family) == AF_NETLINK (SCMP_CMP_EQ)
    if lib.seccomp_rule_add_array(ctx, 0x00050000 | 97, nr, 1, ctypes.byref(cmp)) < 0 or \
            lib.seccomp_load(ctx) < 0:
        os._exit(99)


def test_no_netlink_needed_under_restrict_address_families(replay, klined):
    srv = replay(start="2023-03-05T06:00:30Z", speed=0)
    port = free_port()
    k = klined(srv.rest_url, "--kafka-brokers", "off", "--history-start", "2023-03-04",
               *http_args(port))
    log = open(k.db.parent / "klined-seccomp.log", "w+")
    proc = subprocess.Popen(k.argv(), stdout=subprocess.DEVNULL, stderr=log,
                            preexec_fn=restrict_address_families)
    proc.log = log
    RUNNING.append(proc)
    wait_for(lambda: up(port) or proc.poll() is not None, timeout=60, step=0.2)
    assert proc.poll() is None, read_log(proc)
    wait_for(lambda: "backfill: done" in read_log(proc), timeout=60, step=0.2)
    with open(f"/proc/{proc.pid}/status") as f:
        assert "Seccomp:\t2" in f.read(), "the filter is not in place"
    code, text = stop(proc)
    assert code == 0, text
    assert "getifaddrs" not in text and "errno 97" not in text, text
    assert "[warn" not in text and "[error" not in text, text
