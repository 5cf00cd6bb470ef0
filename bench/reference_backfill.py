#!/usr/bin/env python3
"""Reference backfill: the way the original Python pipeline fetched klines.

It is the baseline klined is measured against, so it is written the way that
pipeline did it, and not made worse than that:

  * one requests.Session, reused (keep-alive), one GET at a time;
  * per symbol, pages of limit=1000 from the history start, the next page
    starting one minute after the last kline of the previous one, up to the
    last closed minute at the exchange's time (GET /api/v3/time), i.e. the
    same range klined fills;
  * each page becomes a pandas DataFrame with Binance's 12 columns; the
    decimal columns are converted to float, the times and trades to int64,
    the unused "ignore" column is dropped and a symbol column added;
  * each page is appended to SQLite with df.to_sql(..., if_exists="append")
    on a plain sqlite3 connection (pandas commits each call: one transaction
    per page, SQLite's defaults otherwise);
  * HTTP 429/418 is handled by sleeping for Retry-After and retrying.

    python3 bench/reference_backfill.py --rest-url URL --db FILE \
        [--symbols BTCUSDT,ETHUSDT] [--history-start 2023-01-01] [--until ISO] [--json]

--until stops at that time instead of the exchange's last closed minute (to
run a fixed sub-range).  Prints klines, seconds, klines/s, pages/s, the time
spent in HTTP+JSON, in pandas and in to_sql, and the 429/418 count; --json
prints it as one JSON object.
"""
import argparse
import datetime as dt
import json
import resource
import sqlite3
import sys
import time

T_START = time.perf_counter()

import pandas as pd  # noqa: E402  (import time is part of the end-to-end figure)
import requests  # noqa: E402

MINUTE_MS = 60_000
LIMIT = 1000
COLUMNS = ["open_time", "open", "high", "low", "close", "volume", "close_time",
           "quote_volume", "trades", "taker_buy_base_volume", "taker_buy_quote_volume", "ignore"]
FLOAT_COLUMNS = ["open", "high", "low", "close", "volume", "quote_volume",
                 "taker_buy_base_volume", "taker_buy_quote_volume"]
INT_COLUMNS = ["open_time", "close_time", "trades"]


def parse_ms(text: str) -> int:
    if text.isdigit():
        return int(text)
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp() * 1000)


class Backfill:
    def __init__(self, rest_url: str, con: sqlite3.Connection):
        self.base = rest_url.rstrip("/")
        self.session = requests.Session()
        self.con = con
        self.pages = self.klines = self.throttled = 0
        self.t_http = self.t_frame = self.t_sql = self.t_sleep = 0.0

    def get(self, path: str, params=None):
        while True:
            t = time.perf_counter()
            r = self.session.get(self.base + path, params=params, timeout=30)
            if r.status_code in (429, 418):
                wait = int(r.headers.get("Retry-After", "60"))
                self.throttled += 1
                print("HTTP %d, sleeping %d s (Retry-After)" % (r.status_code, wait),
                      file=sys.stderr)
                self.t_http += time.perf_counter() - t
                time.sleep(wait)
                self.t_sleep += wait
                continue
            r.raise_for_status()
            body = r.json()
            self.t_http += time.perf_counter() - t
            return body

    def server_time(self) -> int:
        return self.get("/api/v3/time")["serverTime"]

    def symbol(self, symbol: str, start_ms: int, end_ms: int) -> None:
        cursor = start_ms
        while cursor < end_ms:
            rows = self.get("/api/v3/klines", {"symbol": symbol, "interval": "1m",
                                               "startTime": cursor, "endTime": end_ms - 1,
                                               "limit": LIMIT})
            self.pages += 1
            if not rows:
                break
            t = time.perf_counter()
            df = pd.DataFrame(rows, columns=COLUMNS)
            df = df.drop(columns=["ignore"])
            df[FLOAT_COLUMNS] = df[FLOAT_COLUMNS].astype(float)
            df[INT_COLUMNS] = df[INT_COLUMNS].astype("int64")
            df.insert(0, "symbol", symbol)
            t2 = time.perf_counter()
            df.to_sql("klines", self.con, if_exists="append", index=False)
            t3 = time.perf_counter()
            self.t_frame += t2 - t
            self.t_sql += t3 - t2
            self.klines += len(df)
            cursor = int(rows[-1][0]) + MINUTE_MS


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rest-url", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--symbols", default="BTCUSDT,ETHUSDT")
    p.add_argument("--history-start", default="2023-01-01", help="YYYY-MM-DD (UTC)")
    p.add_argument("--until", default=None,
                   help="stop here (ISO UTC or ms) instead of the last closed minute")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    con = sqlite3.connect(a.db)
    bf = Backfill(a.rest_url, con)
    start_ms = parse_ms(a.history_start)
    end_ms = parse_ms(a.until) if a.until else bf.server_time() // MINUTE_MS * MINUTE_MS
    t0 = time.perf_counter()
    for sym in a.symbols.split(","):
        bf.symbol(sym, start_ms, end_ms)
    loop_s = time.perf_counter() - t0
    con.close()
    total_s = time.perf_counter() - T_START
    ru = resource.getrusage(resource.RUSAGE_SELF)
    res = {
        "klines": bf.klines, "pages": bf.pages, "throttled": bf.throttled,
        "from_ms": start_ms, "to_ms": end_ms,
        "seconds": round(total_s, 3), "loop_seconds": round(loop_s, 3),
        "klines_per_s": round(bf.klines / total_s), "pages_per_s": round(bf.pages / total_s, 2),
        "loop_klines_per_s": round(bf.klines / loop_s),
        "loop_pages_per_s": round(bf.pages / loop_s, 2),
        "http_json_s": round(bf.t_http, 3), "pandas_s": round(bf.t_frame, 3),
        "to_sql_s": round(bf.t_sql, 3), "retry_sleep_s": round(bf.t_sleep, 3),
        "maxrss_kb": ru.ru_maxrss,
        "versions": {"python": sys.version.split()[0], "pandas": pd.__version__,
                     "requests": requests.__version__, "sqlite": sqlite3.sqlite_version},
    }
    if a.json:
        print(json.dumps(res))
    else:
        print("%d klines, %d pages in %.2f s (loop %.2f s): %d klines/s, %.1f pages/s; "
              "HTTP+JSON %.2f s, pandas %.2f s, to_sql %.2f s; %d throttled"
              % (res["klines"], res["pages"], res["seconds"], res["loop_seconds"],
                 res["klines_per_s"], res["pages_per_s"], res["http_json_s"], res["pandas_s"],
                 res["to_sql_s"], res["throttled"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
