#!/usr/bin/env python3
"""freqtrade-style history download: ccxt's async `fetch_ohlcv` pagination into SQLite.

    python3 bench/peers/ccxt_backfill.py --rest-url URL --db FILE
        [--symbols BTCUSDT,ETHUSDT] [--history-start 2023-01-01] [--no-rate-limit] [--json]

What freqtrade's `download-data` does for one pair (freqtrade/exchange/exchange.py,
`_async_get_historic_ohlcv`), on the stock `ccxt.async_support.binance`:

  * the range [history start, the exchange's last closed minute) is cut into pages of
    1000 one-minute candles; one `fetch_ohlcv(symbol, "1m", since=..., limit=1000)`
    coroutine per page, gathered in chunks of 100, one symbol after the other;
  * ccxt's own rate limiter on (`enableRateLimit`, ccxt's and freqtrade's default; it
    spaces requests by ccxt's cost table for Binance) unless --no-rate-limit;
  * the candles become a pandas DataFrame (freqtrade's `ohlcv_to_dataframe`: six columns,
    sorted, duplicates dropped), stored per symbol with `to_sql` (freqtrade writes one
    file per pair; here a SQLite table so the stores can be compared).

ccxt's OHLCV has six fields: it drops the quote volume, the trade count and the taker
volumes from every row.  The replay's URLs replace Binance's in `urls["api"]` (the spot
`public` API only: markets come from /api/v3/exchangeInfo, spot only).
"""
import argparse
import asyncio
import datetime as dt
import json
import resource
import sqlite3
import sys
import time

T_START = time.perf_counter()

import ccxt  # noqa: E402
import ccxt.async_support as ccxta  # noqa: E402
import pandas as pd  # noqa: E402

MINUTE_MS = 60_000
PAGE = 1000
CHUNK = 100     # freqtrade: "Calls are split into chunks of 100"


def parse_day_ms(text: str) -> int:
    t = dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp() * 1000)


async def download(ex, symbol: str, start: int, end: int, stats: dict) -> pd.DataFrame:
    since = list(range(start, end, PAGE * MINUTE_MS))
    candles = []
    for i in range(0, len(since), CHUNK):
        pages = await asyncio.gather(*(ex.fetch_ohlcv(symbol, "1m", since=s, limit=PAGE)
                                       for s in since[i:i + CHUNK]))
        stats["pages"] += len(pages)
        for p in pages:
            candles.extend(c for c in p if c[0] < end)
    t = time.perf_counter()
    df = pd.DataFrame(candles, columns=["open_time", "open", "high", "low", "close", "volume"])
    df = (df.astype({"open_time": "int64", "open": float, "high": float, "low": float,
                     "close": float, "volume": float})
          .sort_values("open_time").drop_duplicates("open_time", keep="first"))
    stats["pandas_s"] += time.perf_counter() - t
    return df


async def run(a) -> dict:
    ex = ccxta.binance({"enableRateLimit": not a.no_rate_limit,
                        "options": {"fetchMarkets": {"types": ["spot"]}}})
    base = a.rest_url.rstrip("/")
    ex.urls["api"]["public"] = base + "/api/v3"
    stats = {"pages": 0, "klines": 0, "pandas_s": 0.0, "to_sql_s": 0.0}
    con = sqlite3.connect(a.db)
    try:
        await ex.load_markets()
        now = (await ex.public_get_time())["serverTime"]
        end = int(now) // MINUTE_MS * MINUTE_MS
        start = parse_day_ms(a.history_start)
        for sym in a.symbols.split(","):
            market = ex.markets_by_id[sym][0]["symbol"]     # BTCUSDT -> BTC/USDT
            df = await download(ex, market, start, end, stats)
            df.insert(0, "symbol", sym)
            t = time.perf_counter()
            df.to_sql("klines", con, if_exists="append", index=False)
            stats["to_sql_s"] += time.perf_counter() - t
            stats["klines"] += len(df)
    finally:
        await ex.close()
        con.close()
    stats.update(from_ms=start, to_ms=end)
    return stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rest-url", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--symbols", default="BTCUSDT,ETHUSDT")
    ap.add_argument("--history-start", default="2023-01-01")
    ap.add_argument("--no-rate-limit", action="store_true",
                    help="enableRateLimit=False: as fast as the exchange answers")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res = asyncio.run(run(a))
    total = time.perf_counter() - T_START
    res.update(seconds=round(total, 3), klines_per_s=round(res["klines"] / total),
               pandas_s=round(res["pandas_s"], 3), to_sql_s=round(res["to_sql_s"], 3),
               rate_limit=not a.no_rate_limit,
               maxrss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               versions={"ccxt": ccxt.__version__, "pandas": pd.__version__,
                         "python": sys.version.split()[0]})
    print(json.dumps(res) if a.json else res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
