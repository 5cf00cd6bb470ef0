"""The tests' own truth: days computed from the recorded minutes with exact
decimal arithmetic, independently of klined's code (which is what Binance's
1d kline is), and MA7/MA30 the way pandas' rolling(n).mean() defines them."""
import functools
import gzip
import os
from decimal import Decimal
from pathlib import Path

DATA = Path(os.environ.get("KLINED_DATA",
                           Path(__file__).resolve().parents[1] / "data" / "binance"))
DAY_MS = 86_400_000
MIN_MS = 60_000


def day_of(ms):
    import datetime
    return datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc).strftime("%Y-%m-%d")


@functools.lru_cache(maxsize=None)
def minutes(symbol):
    """{open_time: row of exact strings} for one symbol, all recorded months."""
    rows = {}
    for f in sorted(DATA.glob(f"{symbol}-1m-*.csv.gz")):
        with gzip.open(f, "rt") as fh:
            for line in fh:
                p = line.rstrip("\n").split(",")
                rows[int(p[0])] = p
    return rows


def symbols():
    return sorted({f.name.split("-")[0] for f in DATA.glob("*-1m-*.csv.gz")})


def days(symbol, skip=()):
    """{day: dict(open, high, low, close, volume, quote_volume, trades)} with
    Decimal values; @skip is a list of (from_ms, to_ms) minutes that the
    exchange does not have (halts)."""
    out = {}
    for ot in sorted(minutes(symbol)):
        if any(a <= ot < b for a, b in skip):
            continue
        p = minutes(symbol)[ot]
        d = day_of(ot)
        o, h, l, c = (Decimal(x) for x in p[1:5])
        v, q, n = Decimal(p[5]), Decimal(p[7]), int(p[8])
        if d not in out:
            out[d] = dict(open=o, high=h, low=l, close=c, volume=v, quote_volume=q, trades=n)
        else:
            r = out[d]
            r["high"] = max(r["high"], h)
            r["low"] = min(r["low"], l)
            r["close"] = c
            r["volume"] += v
            r["quote_volume"] += q
            r["trades"] += n
    return out


def rolling_mean(closes, n):
    """pandas rolling(n).mean(): None until n values exist."""
    return [None if i + 1 < n else sum(closes[i + 1 - n:i + 1]) / n for i in range(len(closes))]


def fmt8(x):
    return f"{Decimal(x):.8f}"
