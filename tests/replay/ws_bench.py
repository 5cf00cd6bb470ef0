#!/usr/bin/env python3
"""Measures how many kline events/s one websocket connection of the replay exchange carries.

    python3 tests/replay/ws_bench.py --speed 3600 --symbols 2 --seconds 10
    python3 tests/replay/ws_bench.py --speed 3600 --symbols 500 --seconds 10

Starts binance_replay.py as a subprocess (with --gen-symbols when more than the recorded
symbols are asked for), connects one raw-socket client (a minimal frame parser, so the
client is not the bottleneck) to /stream?streams=..., counts frames and x:true finals, and
reads the server's ws stats (updates skipped, lag behind virtual time)."""

import argparse
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--speed", type=float, default=3600)
    ap.add_argument("--symbols", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--start", default="2023-01-10T00:00:00Z")
    ap.add_argument("--update-ms", type=int, default=2000)
    ap.add_argument("--max-age-ms", type=int, default=0, help="server --ws-max-age-ms (0 = none)")
    a = ap.parse_args()
    gen = max(0, a.symbols - 2)
    srv = subprocess.Popen([sys.executable, os.path.join(HERE, "binance_replay.py"), "--port", "0",
                            "--start", a.start, "--speed", "0", "--gen-symbols", str(gen),
                            "--ws-update-ms", str(a.update_ms), "--ws-max-age-ms", str(a.max_age_ms)],
                           stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(srv.stdout.readline())
        port = info["port"]
        syms = ["btcusdt", "ethusdt"] + ["s%04dusdt" % i for i in range(1, gen + 1)]
        syms = syms[: a.symbols]
        path = "/stream?streams=" + "/".join(s + "@kline_1m" for s in syms)
        sock = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                      % (path, port, key)).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
        head, buf = buf.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n", 1)[0], head
        # start the clock only now: the connection streams from the current virtual time
        req = urllib.request.Request(f"http://127.0.0.1:{port}/_replay/clock", method="POST",
                                     data=json.dumps({"speed": a.speed}).encode())
        urllib.request.urlopen(req).read()
        t0 = time.monotonic()
        frames = finals = nbytes = 0
        sock.settimeout(0.5)
        while time.monotonic() - t0 < a.seconds:
            try:
                chunk = sock.recv(1 << 20)
            except socket.timeout:
                continue
            if not chunk:
                break
            buf += chunk
            nbytes += len(chunk)
            finals += chunk.count(b'"x":true')   # may split across chunks: approximate
            pos, n = 0, len(buf)
            while n - pos >= 2:
                b1 = buf[pos + 1] & 0x7F
                hl = 2
                if b1 == 126:
                    if n - pos < 4:
                        break
                    b1 = struct.unpack_from("!H", buf, pos + 2)[0]
                    hl = 4
                elif b1 == 127:
                    if n - pos < 10:
                        break
                    b1 = struct.unpack_from("!Q", buf, pos + 2)[0]
                    hl = 10
                if n - pos < hl + b1:
                    break
                op = buf[pos] & 0x0F
                if op == 0x9:   # ping: answer with a (zero-)masked pong
                    payload = buf[pos + hl: pos + hl + b1]
                    sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
                elif op == 0x1:
                    frames += 1
                pos += hl + b1
            buf = buf[pos:]
        wall = time.monotonic() - t0
        st = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/_replay/stats").read())["ws"]
        clock = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/_replay/clock").read())
        conn = st["connections"][0] if st["connections"] else {}
        virt_min = a.speed * wall / 60.0
        print(json.dumps({
            "symbols": a.symbols, "speed": a.speed, "wall_s": round(wall, 2),
            "virtual_minutes": round(virt_min, 1),
            "frames": frames, "frames_per_s": round(frames / wall),
            "finals": finals, "finals_per_s": round(finals / wall),
            "finals_expected": int(virt_min) * a.symbols,
            "MB_per_s": round(nbytes / wall / 1e6, 2),
            "server_updates_skipped": st["updates_skipped"],
            "server_lag_ms_now": conn.get("lag_ms"), "server_max_lag_ms": st["max_lag_ms"],
            "virtual_now": clock["now_iso"],
        }, indent=1))
        sock.close()
    finally:
        srv.terminate()
        srv.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
