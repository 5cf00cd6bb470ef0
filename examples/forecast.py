#!/usr/bin/env python3
"""The original pipeline's last step, against klined's store: read
`prophet_input` with pandas (complete days only: source = 'batch'), fit
Prophet per symbol, forecast N days past the last complete day, and write
the forecast to the `forecast` table (schema/005-intervals.sql), which the
page draws as a dashed line ahead of the last candle.

    pip install -r tests/requirements-forecast.txt   # prophet, pandas
    python3 examples/forecast.py --db /var/lib/klined/klined.db --days 30

Safe while klined runs: one short write transaction per symbol (WAL; klined
only reads this table). Each run replaces the symbol's previous forecast.
"""
import argparse
import logging
import sqlite3
import sys
import time

import pandas as pd
from prophet import Prophet

# The same table the migration creates, for a store older than schema 5.
DDL = """CREATE TABLE IF NOT EXISTS forecast (
    symbol TEXT NOT NULL, ds TEXT NOT NULL, yhat REAL NOT NULL,
    yhat_lower REAL NOT NULL, yhat_upper REAL NOT NULL, made_at INTEGER NOT NULL,
    PRIMARY KEY (symbol, ds)) WITHOUT ROWID"""


def history(db, symbol):
    """Complete days of @symbol as Prophet wants them: ds (datetime), y."""
    df = pd.read_sql_query(
        "SELECT ds, y FROM prophet_input WHERE symbol = ? AND source = 'batch' ORDER BY ds",
        db, params=(symbol,))
    df["ds"] = pd.to_datetime(df["ds"])
    return df


def forecast(df, days, interval_width=0.8):
    """The @days rows after the last day of @df: ds, yhat, yhat_lower, yhat_upper."""
    m = Prophet(interval_width=interval_width, daily_seasonality=False)
    m.fit(df)
    future = m.make_future_dataframe(periods=days, freq="D", include_history=False)
    return m.predict(future)[["ds", "yhat", "yhat_lower", "yhat_upper"]]


def write(db, symbol, fc, made_at):
    rows = [(symbol, d.strftime("%Y-%m-%d"), float(a), float(lo), float(hi), made_at)
            for d, a, lo, hi in fc.itertuples(index=False)]
    with db:  # one transaction: readers see the old forecast or the new one
        db.execute("DELETE FROM forecast WHERE symbol = ?", (symbol,))
        db.executemany("INSERT INTO forecast VALUES (?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True, help="klined's store (the [store] path)")
    ap.add_argument("--symbol", action="append",
                    help="symbol to forecast (repeatable; default: every symbol)")
    ap.add_argument("--days", type=int, default=30, help="days to forecast (default 30)")
    ap.add_argument("--min-days", type=int, default=30,
                    help="skip a symbol with fewer complete days (default 30)")
    a = ap.parse_args(argv)
    log = logging.getLogger("cmdstanpy")  # a line per chain otherwise
    log.setLevel(logging.WARNING)
    for h in log.handlers:
        h.setLevel(logging.WARNING)
    db = sqlite3.connect(a.db, timeout=10)
    db.execute(DDL)
    symbols = a.symbol or [r[0] for r in db.execute(
        "SELECT DISTINCT symbol FROM prophet_input ORDER BY 1")]
    made_at = int(time.time() * 1000)
    for s in symbols:
        df = history(db, s)
        if len(df) < a.min_days:
            print(f"{s}: {len(df)} complete days, fewer than {a.min_days}: skipped")
            continue
        t0 = time.monotonic()
        fc = forecast(df, a.days)
        n = write(db, s, fc, made_at)
        print(f"{s}: fitted on {len(df)} days ({df.ds.iloc[0]:%Y-%m-%d} .. "
              f"{df.ds.iloc[-1]:%Y-%m-%d}) in {time.monotonic() - t0:.1f} s; "
              f"wrote {n} days from {fc.ds.iloc[0]:%Y-%m-%d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
