#!/usr/bin/env python3
"""How fast can the replay exchange serve klines pages at all?

A deliberately trivial client: C concurrent aiohttp connections request the
same /api/v3/klines pages a backfill would (limit=1000, consecutive
startTime windows per symbol, symbols interleaved), read each body and count
its klines by counting the "],[" separators.  No JSON parsing, no storage.
Its figure is the ceiling the replay exchange puts on any client on this
machine; a backfill measured against the same server must stay below it for
the benchmark to be measuring the client and not the server.

    python3 bench/serve_rate.py --rest-url http://127.0.0.1:PORT \
        --from 2023-01-01 --to 2024-01-01 [--concurrency 8] [--pages N] [--json]

Prints a summary (or one JSON object with --json): pages, klines, seconds,
pages/s, klines/s, MB/s, statuses, and the client's own CPU seconds (if the
client's CPU time is close to the wall time, the client, not the server,
was the limit).
"""
import argparse
import asyncio
import datetime as dt
import json
import resource
import sys
import time

import aiohttp

MINUTE_MS = 60_000
PAGE = 1000


def parse_ms(text: str) -> int:
    if text.isdigit():
        return int(text)
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp() * 1000)


def plan(symbols, start_ms, end_ms, max_pages):
    """(symbol, startTime, endTime) of every page, symbols interleaved."""
    per_sym = [[(s, a, min(a + PAGE * MINUTE_MS, end_ms) - 1)
                for a in range(start_ms, end_ms, PAGE * MINUTE_MS)] for s in symbols]
    out = []
    for i in range(max(len(p) for p in per_sym)):
        for p in per_sym:
            if i < len(p):
                out.append(p[i])
    return out[:max_pages] if max_pages else out


async def run(args) -> dict:
    pages = plan(args.symbols.split(","), parse_ms(args.from_), parse_ms(args.to), args.pages)
    todo = iter(pages)
    res = {"pages": 0, "klines": 0, "bytes": 0, "status": {}}
    url = args.rest_url.rstrip("/") + "/api/v3/klines"
    conn = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=60)

    async def worker(session):
        for sym, a, b in todo:  # a shared iterator: each page once
            params = {"symbol": sym, "interval": "1m", "startTime": str(a), "endTime": str(b),
                      "limit": str(PAGE)}
            async with session.get(url, params=params) as r:
                body = await r.read()
                st = str(r.status)
                res["status"][st] = res["status"].get(st, 0) + 1
                if r.status == 200:
                    res["pages"] += 1
                    res["bytes"] += len(body)
                    if len(body) > 2:
                        res["klines"] += body.count(b"],[") + 1

    async with aiohttp.ClientSession(connector=conn, timeout=timeout,
                                     auto_decompress=False) as session:
        # one warm-up request (connection set-up, server caches) outside the timing
        async with session.get(args.rest_url.rstrip("/") + "/api/v3/time") as r:
            await r.read()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(args.concurrency)))
        secs = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
    res.update({
        "requests": len(pages),
        "concurrency": args.concurrency,
        "seconds": round(secs, 3),
        "pages_per_s": round(res["pages"] / secs, 1),
        "klines_per_s": round(res["klines"] / secs),
        "mb_per_s": round(res["bytes"] / secs / 1e6, 1),
        "client_cpu_s": round((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime), 3),
    })
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rest-url", required=True)
    p.add_argument("--symbols", default="BTCUSDT,ETHUSDT")
    p.add_argument("--from", dest="from_", default="2023-01-01", help="ISO UTC or epoch ms")
    p.add_argument("--to", default="2024-01-01", help="ISO UTC or epoch ms (exclusive)")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--pages", type=int, default=0, help="stop after N pages (0: the whole range)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    res = asyncio.run(run(args))
    if args.json:
        print(json.dumps(res))
    else:
        print("%d pages, %d klines in %.2f s: %.1f pages/s, %d klines/s, %.1f MB/s "
              "(concurrency %d, client CPU %.2f s, statuses %s)"
              % (res["pages"], res["klines"], res["seconds"], res["pages_per_s"],
                 res["klines_per_s"], res["mb_per_s"], res["concurrency"], res["client_cpu_s"],
                 res["status"]))
    return 0 if set(res["status"]) <= {"200"} else 1


if __name__ == "__main__":
    sys.exit(main())
