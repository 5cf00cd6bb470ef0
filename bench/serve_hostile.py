#!/usr/bin/env python3
"""Latency of a well-behaved client of klined's HTTP server while hostile
local clients hold connections (issue 11, item 14).

    python3 bench/serve_hostile.py --port PORT [--mode idle|slowloris|reconnect]
        [--hostile 500] [--requests 400] [--interval 0.05] [--path /api/status] [--json]

idle:       N connections that send nothing (each reopened when the server drops it)
slowloris:  N connections that send a request line, then one header byte
            every second and never finish
reconnect:  like idle, but each connection is dropped and reopened at once
            when the server closes it (the "40 idle clients" of the issue)

The good client sends one GET per new connection (Connection: close), one
after the other, and the script prints count, p50, p99, max (ms) and how
many requests failed or took over 2 s.
"""
import argparse
import json
import socket
import sys
import threading
import time


def hostile(port, n, mode, stop):
    """Hold @n connections in @mode until @stop is set (one thread: selectless)."""
    socks = [None] * n

    def reopen(i):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.setblocking(False)
            if mode == "slowloris":
                s.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
            socks[i] = s
        except OSError:
            socks[i] = None

    for i in range(n):
        reopen(i)
    tick = 0
    while not stop.is_set():
        for i, s in enumerate(socks):
            if s is None:
                reopen(i)
                continue
            try:
                d = s.recv(4096)
                if d == b"":  # dropped by the server: come back
                    s.close()
                    reopen(i)
                    continue
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                reopen(i)
                continue
            if mode == "slowloris" and tick % 10 == 0:
                try:
                    s.send(b"X")
                except OSError:
                    pass
        tick += 1
        stop.wait(0.1)
    for s in socks:
        if s:
            s.close()


def good_request(port, path, timeout=10):
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            reply += d
    ms = (time.perf_counter() - t0) * 1000
    return ms, reply.split(b" ", 2)[1] if reply.startswith(b"HTTP/1.1 ") else b"-"


def measure(port, path, n, interval=0.0):
    lat, failed = [], 0
    for _ in range(n):
        time.sleep(interval)
        try:
            ms, status = good_request(port, path)
            if status != b"200":
                failed += 1
            lat.append(ms)
        except OSError:
            failed += 1
            lat.append(10000.0)
    lat.sort()
    return {"count": len(lat), "p50_ms": round(lat[len(lat) // 2], 2),
            "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2),
            "max_ms": round(lat[-1], 2), "failed": failed,
            "over_2s": sum(1 for x in lat if x > 2000)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", default="idle", choices=("idle", "slowloris", "reconnect"))
    ap.add_argument("--hostile", type=int, default=500)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--path", default="/api/status")
    ap.add_argument("--interval", type=float, default=0.05,
                    help="seconds between good requests (spans the server's timeouts)")
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    stop = threading.Event()
    t = threading.Thread(target=hostile, args=(a.port, a.hostile, a.mode, stop), daemon=True)
    t.start()
    time.sleep(a.settle)
    res = measure(a.port, a.path, a.requests, a.interval)
    stop.set()
    t.join()
    res.update(mode=a.mode, hostile=a.hostile, path=a.path)
    print(json.dumps(res) if a.json else
          " ".join(f"{k}={v}" for k, v in res.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
