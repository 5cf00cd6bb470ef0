#!/usr/bin/env python3
"""Replay exchange: a Binance spot REST + websocket look-alike on 127.0.0.1 for klined's tests.

It serves recorded 1-minute klines (gzip CSV files, see tests/data/binance/README.md)
in *virtual time*, with Binance's request weights, rate limiting (429/418 + Retry-After)
and deterministic fault injection.  Every decimal field is served as the exact
recorded source string; only the timestamps are ever computed.  The same port also
serves the kline websocket streams (/ws/<stream>, /stream?streams=a/b), driven by the
same virtual clock, with Binance's pings, 5 messages/s limit, 24 h connection age and
websocket faults (drop, close, silence, malformed, duplicate, reorder, future, past,
shutdown).

Usable two ways:

* CLI::

      python3 tests/replay/binance_replay.py --port 0 [--start 2023-04-01T00:00:30Z] ...

  prints one JSON line ``{"port": N, "rest_url": ..., "ws_url": ...}`` once listening
  and serves until SIGTERM/SIGINT (then exits 0).

* Python (pytest)::

      from binance_replay import ReplayServer
      with ReplayServer(start="2023-02-01T00:00:00Z", speed=0) as srv:
          srv.rest_url  # "http://127.0.0.1:N"
          srv.ws_url    # "ws://127.0.0.1:N"  (+ "/stream?streams=btcusdt@kline_1m")
          srv.set_clock(advance_ms=60000)
          srv.add_faults([{"kind": "status", "status": 503}])
          srv.add_ws_faults([{"kind": "drop", "after": 10}])
          srv.stats(); srv.ws_stats(); srv.ws_log(last=5)

:class:`VirtualClock` and :class:`KlineStore` (``Replay.clock``/``Replay.store``) are
shared by both sides: ``store.kline_fields(symbol, open_time, now_ms)`` yields one kline
(running values for the open minute), ``store.query(...)`` pages of them; the websocket
side (:class:`WsHub`, :class:`WsConn`) sends the same running values every 2 virtual
seconds and the recorded row when the minute closes.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import copy
import datetime as _dt
import gzip
import json
import math
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from aiohttp import web

try:  # as a module of tests/replay or as the script itself
    from replay_archive import Archive
except ImportError:  # pragma: no cover
    from .replay_archive import Archive

MINUTE_MS = 60_000
DAY_MS = 86_400_000
HALT_CLOSE_OFFSET_MS = 41_646  # close_time - open_time of the bar just before a halt
JSON_CT = "application/json;charset=UTF-8"
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
REAL_WEIGHT_LIMIT = 6000

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DATA_DIR = os.path.join(REPO_ROOT, "tests", "data", "binance")

# Binance's interval enum (case-sensitive). Only 1m carries data here.
BINANCE_INTERVALS = {"1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h",
                     "12h", "1d", "3d", "1w", "1M"}
SUPPORTED_INTERVALS = {"1m"}

WEIGHTS = {
    "/api/v3/ping": 1,
    "/api/v3/time": 1,
    "/api/v3/exchangeInfo": 20,
    "/api/v3/klines": 2,
}

KLINE_FIELDS = ["open_time", "open", "high", "low", "close", "volume", "close_time",
                "quote_volume", "trades", "taker_buy_base_volume", "taker_buy_quote_volume",
                "ignore"]
_FIELD_ALIASES = {
    "quote_asset_volume": 7, "number_of_trades": 8, "taker_buy_base": 9,
    "taker_buy_quote": 10, "taker_buy_base_asset_volume": 9,
    "taker_buy_quote_asset_volume": 10, "unused": 11,
}

_DECIMAL_RE = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
_INT_RE = re.compile(r"^[0-9]+$")
_SYMBOL_RE = re.compile(r"^[A-Z0-9\-_.]{1,20}$")
_SYMBOLS_RE = re.compile(r'^\[("[A-Z0-9\-_.]{1,20}"(,"[A-Z0-9\-_.]{1,20}")*)?\]$')
_TZ_RE = re.compile(r"^[+-]?[0-9]{1,2}(:[0-9]{2})?$")
_DEC = r"-?[0-9]+(?:\.[0-9]+)?"
_LINE_RE = re.compile(r"^([0-9]+),((?:%s,){4}%s),([0-9]+),(%s),([0-9]+),(%s),(%s),(%s)$"
                      % ((_DEC,) * 6))
_FILE_RE = re.compile(r"^([A-Z0-9]+)-1m-(\d{4})-(\d{2})\.csv\.gz$")

SYMBOL_RE_TEXT = "^[A-Z0-9-_.]{1,20}$"
SYMBOLS_RE_TEXT = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'
LONG_RE_TEXT = "^[0-9]{1,20}$"


# --------------------------------------------------------------------------------------
# time helpers
# --------------------------------------------------------------------------------------

def parse_time_ms(value: Any) -> int:
    """ms integer, digit string, or ISO-8601 (UTC if no offset; 'Z' accepted) -> epoch ms."""
    if isinstance(value, bool):
        raise ValueError(f"bad time {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    s = str(value).strip()
    if re.fullmatch(r"-?[0-9]+", s):
        return int(s)
    if s.endswith("Z") or s.endswith("z"):
        s = s[:-1] + "+00:00"
    d = _dt.datetime.fromisoformat(s)
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return int(round(d.timestamp() * 1000))


def iso_ms(ms: int) -> str:
    d = _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _floor_min(ms: int) -> int:
    return (ms // MINUTE_MS) * MINUTE_MS


def _ceil_min(ms: int) -> int:
    return -((-ms) // MINUTE_MS) * MINUTE_MS


# --------------------------------------------------------------------------------------
# virtual clock
# --------------------------------------------------------------------------------------

class VirtualClock:
    """virtual_now = anchor_virtual + (wall_elapsed_since_anchor * speed). Thread-safe."""

    def __init__(self, start_ms: int, speed: float = 1.0,
                 wall: Callable[[], float] = time.monotonic):
        self._wall = wall
        self._lock = threading.Lock()
        self._anchor_v = int(start_ms)
        self._anchor_w = wall()
        self._speed = float(speed)
        self._listeners: List[Callable[[], None]] = []

    def add_listener(self, fn: Callable[[], None]) -> None:
        """fn() is called (in the caller's thread) after every set(); the websocket side
        uses it to wake its stream generators."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[], None]) -> None:
        try:
            self._listeners.remove(fn)
        except ValueError:
            pass

    def now_ms(self) -> int:
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> int:
        if self._speed == 0.0:
            return self._anchor_v
        return self._anchor_v + int(math.floor((self._wall() - self._anchor_w) * self._speed * 1000.0))

    @property
    def speed(self) -> float:
        return self._speed

    def set(self, now_ms: Optional[int] = None, speed: Optional[float] = None,
            advance_ms: Optional[int] = None) -> Dict[str, Any]:
        """Apply now_ms, then advance_ms, then speed (each optional); returns state()."""
        with self._lock:
            cur = self._now_locked()
            if now_ms is not None:
                cur = int(now_ms)
            if advance_ms is not None:
                cur += int(advance_ms)
            if speed is not None:
                if speed < 0:
                    raise ValueError("speed must be >= 0")
                self._speed = float(speed)
            self._anchor_v = cur
            self._anchor_w = self._wall()
            st = {"now_ms": cur, "now_iso": iso_ms(cur), "speed": self._speed}
        for fn in list(self._listeners):
            fn()
        return st

    def state(self) -> Dict[str, Any]:
        with self._lock:
            n = self._now_locked()
            return {"now_ms": n, "now_iso": iso_ms(n), "speed": self._speed}

    def wall_seconds_until(self, virtual_ms: int) -> Optional[float]:
        """Wall seconds until the clock reaches virtual_ms (None if frozen); for stream pacing."""
        with self._lock:
            n = self._now_locked()
            if virtual_ms <= n:
                return 0.0
            if self._speed == 0.0:
                return None
            return (virtual_ms - n) / 1000.0 / self._speed


# --------------------------------------------------------------------------------------
# recorded data
# --------------------------------------------------------------------------------------

class BaseData:
    """The recorded period, stored once: per symbol, per minute index, two pre-rendered
    JSON fragments around the timestamps:  mid = '"o","h","l","c","v",'  and
    tail = '"qv",trades,"tbb","tbq","ignore"]'.  Missing recorded minutes are None."""

    _cache: Dict[str, "BaseData"] = {}
    _cache_lock = threading.Lock()

    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        files = sorted(f for f in os.listdir(data_dir) if _FILE_RE.match(f))
        if not files:
            raise FileNotFoundError(f"no SYMBOL-1m-YYYY-MM.csv.gz files in {data_dir}")
        # per symbol: open times, the two fragments, and close offsets that aren't 59999
        ots: Dict[str, List[int]] = collections.defaultdict(list)
        mids_raw: Dict[str, List[str]] = collections.defaultdict(list)
        tails_raw: Dict[str, List[str]] = collections.defaultdict(list)
        odd_close: Dict[str, Dict[int, int]] = collections.defaultdict(dict)
        for fname in files:
            sym = _FILE_RE.match(fname).group(1)
            with gzip.open(os.path.join(data_dir, fname), "rb") as fh:
                text = fh.read().decode("ascii")
            o_app, m_app, t_app = ots[sym].append, mids_raw[sym].append, tails_raw[sym].append
            for lineno, line in enumerate(text.splitlines(), 1):
                if not line:
                    continue
                m = _LINE_RE.match(line)
                if m is None:
                    raise ValueError(f"{fname}:{lineno}: not a 12-field kline row: {line[:80]!r}")
                ot = int(m.group(1))
                if ot % MINUTE_MS:
                    raise ValueError(f"{fname}:{lineno}: open_time not minute aligned")
                coff = int(m.group(3)) - ot
                if coff != MINUTE_MS - 1:
                    odd_close[sym][ot] = coff
                o_app(ot)
                # mid = '"o","h","l","c","v",'   tail = '"qv",trades,"tbb","tbq","ignore"]'
                m_app('"%s",' % m.group(2).replace(",", '","'))
                t_app('"%s",%s,"%s","%s","%s"]' % m.group(4, 5, 6, 7, 8))
            del text
        self.symbols: List[str] = sorted(ots)
        first = min(min(v) for v in ots.values() if v)
        last = max(max(v) for v in ots.values() if v)
        # the base period starts at the UTC midnight of the first minute
        self.origin_ms: int = (first // 86_400_000) * 86_400_000
        self.n_minutes: int = (last + MINUTE_MS - self.origin_ms) // MINUTE_MS
        self.period_ms: int = self.n_minutes * MINUTE_MS
        self.mid: Dict[str, List[Optional[str]]] = {}
        self.tail: Dict[str, List[Optional[str]]] = {}
        self.close_off: Dict[str, Dict[int, int]] = {}   # index -> close_time-open_time (if != 59999)
        self.has_holes: Dict[str, bool] = {}
        for sym in self.symbols:
            mids: List[Optional[str]] = [None] * self.n_minutes
            tails: List[Optional[str]] = [None] * self.n_minutes
            for ot, mid, tail in zip(ots[sym], mids_raw[sym], tails_raw[sym]):
                i = (ot - self.origin_ms) // MINUTE_MS
                if mids[i] is not None:
                    raise ValueError(f"{sym}: duplicate open_time {ot}")
                mids[i] = mid
                tails[i] = tail
            del ots[sym][:], mids_raw[sym][:], tails_raw[sym][:]
            self.mid[sym] = mids
            self.tail[sym] = tails
            self.close_off[sym] = {(ot - self.origin_ms) // MINUTE_MS: c
                                   for ot, c in odd_close[sym].items()}
            self.has_holes[sym] = any(m is None for m in mids)
        # symbol -> the recorded symbol whose data it serves (itself; see with_generated)
        self.source: Dict[str, str] = {s: s for s in self.symbols}
        self._trade_prefix: Dict[str, List[int]] = {}   # shared by generated views
        self.hisupply: frozenset = frozenset()   # symbols with their own data (with_hisupply)

    def with_generated(self, n: int) -> "BaseData":
        """A view with n synthetic symbols S0001USDT, S0002USDT, ... added, each serving the
        recorded data of the base symbols in turn (S0001 = 1st, S0002 = 2nd, ...).  The lists
        are shared, so this costs no memory; the cached BaseData itself is not modified."""
        if n <= 0:
            return self
        v = copy.copy(self)
        v.mid, v.tail = dict(self.mid), dict(self.tail)
        v.close_off, v.has_holes, v.source = dict(self.close_off), dict(self.has_holes), dict(self.source)
        names = []
        for i in range(1, int(n) + 1):
            name = "S%04dUSDT" % i
            src = self.symbols[(i - 1) % len(self.symbols)]
            if name in self.mid:
                raise ValueError(f"generated symbol {name} clashes with a recorded one")
            v.mid[name], v.tail[name] = self.mid[src], self.tail[src]
            v.close_off[name], v.has_holes[name] = self.close_off[src], self.has_holes[src]
            v.source[name] = src
            names.append(name)
        v.symbols = list(self.symbols) + names
        return v

    # ---- high-supply symbols (issue 12) ----------------------------------------------
    def with_hisupply(self, specs: Iterable[str]) -> "BaseData":
        """A view with synthetic high-supply symbols added, each made exactly from a recorded
        one: spec ``NAME=SRC/1eA/1eB`` divides SRC's prices by 10^A, multiplies its base
        volumes by 10^B and so its quote volumes by 10^(B-A), all printed spot-style with 8
        decimals (PEPE, SHIB, BTTC: minutes past 1e11, days past 1e14).  Trades and times
        are SRC's.  A value that would need more than 8 decimals is an error."""
        specs = [x for x in specs if x]
        if not specs:
            return self
        v = copy.copy(self)
        v.mid, v.tail = dict(self.mid), dict(self.tail)
        v.close_off, v.has_holes, v.source = dict(self.close_off), dict(self.has_holes), dict(self.source)
        v.symbols = list(self.symbols)
        hs = set(self.hisupply)
        for spec in specs:
            name, src, a, b = parse_hisupply(spec)
            if name in v.mid:
                raise ValueError(f"high-supply symbol {name} clashes with an existing one")
            if src not in self.mid:
                raise ValueError(f"high-supply symbol {name}: no recorded symbol {src}")
            # keyed by the source list, which the entry keeps alive (so its id is not reused)
            key = (id(self.mid[src]), a, b)
            cached = _HISUPPLY_CACHE.get(key)
            if cached is None:
                mids = [None if m is None else hisupply_mid(m, a, b) for m in self.mid[src]]
                tails = [None if t is None else hisupply_tail(t, a, b) for t in self.tail[src]]
                cached = _HISUPPLY_CACHE[key] = (self.mid[src], mids, tails)
            v.mid[name], v.tail[name] = cached[1], cached[2]
            v.close_off[name], v.has_holes[name] = self.close_off[src], self.has_holes[src]
            v.source[name] = src  # trades and trade ids are the source's
            v.symbols.append(name)
            hs.add(name)
        v.hisupply = frozenset(hs)
        return v

    def trade_prefix(self, symbol: str) -> List[int]:
        """prefix[i] = trades in the base period's minutes before index i (len n+1)."""
        src = self.source.get(symbol, symbol)
        p = self._trade_prefix.get(src)
        if p is None:
            acc, p = 0, [0]
            for t in self.tail[src]:
                if t is not None:
                    acc += int(t.split(",", 2)[1])
                p.append(acc)
            self._trade_prefix[src] = p
        return p

    @classmethod
    def load(cls, data_dir: str) -> "BaseData":
        key = os.path.realpath(data_dir)
        with cls._cache_lock:
            bd = cls._cache.get(key)
            if bd is None:
                bd = cls(key)
                cls._cache[key] = bd
            return bd


# ---- high-supply symbols (issue 12): exact rescaling of recorded decimals -------------

_HISUPPLY_CACHE: Dict[Any, Tuple[List[Optional[str]], ...]] = {}
_HISUPPLY_RE = re.compile(r"^([A-Z0-9]{2,20})=([A-Z0-9]{2,20})/1e([0-9]{1,2})/1e([0-9]{1,2})$")


def parse_hisupply(spec: str) -> Tuple[str, str, int, int]:
    """'PEPEUSDT=BTCUSDT/1e5/1e8' -> ('PEPEUSDT', 'BTCUSDT', 5, 8)."""
    m = _HISUPPLY_RE.match(spec.strip())
    if not m:
        raise ValueError(f"bad high-supply spec {spec!r} (want NAME=SRC/1eA/1eB)")
    return m.group(1), m.group(2), int(m.group(3)), int(m.group(4))


def rescale8(s: str, shift: int) -> str:
    """Decimal string times 10^shift, exactly, printed with 8 decimals."""
    v, p = _scaled(s)
    v *= 10 ** (8 - p) if p <= 8 else 1
    if p > 8:
        raise ValueError(f"{s!r}: more than 8 decimals")
    if shift >= 0:
        v *= 10 ** shift
    else:
        q, r = divmod(v, 10 ** -shift)
        if r:
            raise ValueError(f"{s!r} / 1e{-shift} needs more than 8 decimals")
        v = q
    return _fmt_scaled(v, 8)


def hisupply_fields(f: Sequence[Any], a: int, b: int) -> List[Any]:
    """A 12-field kline (REST order) of the high-supply copy: prices / 10^a, base volumes
    * 10^b, quote volumes * 10^(b - a)."""
    out = list(f)
    for j in (1, 2, 3, 4):
        out[j] = rescale8(f[j], -a)
    for j in (5, 9):
        out[j] = rescale8(f[j], b)
    for j in (7, 10):
        out[j] = rescale8(f[j], b - a)
    return out


def hisupply_mid(mid: str, a: int, b: int) -> str:
    o, h, l, c, v = mid[1:-2].split('","')
    return '"%s","%s","%s","%s","%s",' % (rescale8(o, -a), rescale8(h, -a), rescale8(l, -a),
                                          rescale8(c, -a), rescale8(v, b))


def hisupply_tail(tail: str, a: int, b: int) -> str:
    q, n, tb, tq, ig = json.loads("[" + tail)
    return '"%s",%s,"%s","%s","%s"]' % (rescale8(q, b - a), n, rescale8(tb, b),
                                        rescale8(tq, b - a), ig)


def _scaled(s: str) -> Tuple[int, int]:
    """decimal string -> (integer, places)."""
    neg = s.startswith("-")
    if neg:
        s = s[1:]
    if "." in s:
        a, b = s.split(".", 1)
        v, p = int(a + b), len(b)
    else:
        v, p = int(s), 0
    return (-v if neg else v), p


def _fmt_scaled(v: int, p: int) -> str:
    neg = v < 0
    s = str(-v if neg else v)
    if p:
        s = s.rjust(p + 1, "0")
        s = s[:-p] + "." + s[-p:]
    return ("-" if neg else "") + s


def _frac_toward_zero(delta: int, num: int, den: int) -> int:
    q = (abs(delta) * num) // den
    return -q if delta < 0 else q


def partial_plan(fields: List[Any]) -> Tuple:
    """The integer form of a recorded kline that partial_kline() interpolates (computed once
    per minute by the websocket side, which sends ~30 running updates of each minute)."""
    pp = max(_scaled(fields[j])[1] for j in (1, 2, 3, 4))
    o = _scaled(fields[1])
    o_int = o[0] * 10 ** (pp - o[1])
    deltas = []
    for j in (2, 3, 4):
        x, p = _scaled(fields[j])
        deltas.append(x * 10 ** (pp - p) - o_int)
    vols = []
    # volumes: common places for base volume / taker base, and for quote / taker quote
    for a, b in ((5, 9), (7, 10)):
        va, pa = _scaled(fields[a])
        vb, pb = _scaled(fields[b])
        p = max(pa, pb)
        vols.append((a, va * 10 ** (p - pa), b, vb * 10 ** (p - pb), p))
    return (list(fields), pp, o_int, _fmt_scaled(o_int, pp), deltas, vols, int(fields[8]))


def partial_from_plan(plan: Tuple, elapsed: int, duration: int) -> List[Any]:
    fields, pp, o_int, o_str, deltas, vols, trades = plan
    elapsed = max(0, min(elapsed, duration))
    out = list(fields)
    out[1] = o_str
    for j, d in zip((2, 3, 4), deltas):
        out[j] = _fmt_scaled(o_int + _frac_toward_zero(d, elapsed, duration), pp)
    for a, va, b, vb, p in vols:
        out[a] = _fmt_scaled(_frac_toward_zero(va, elapsed, duration), p)
        out[b] = _fmt_scaled(_frac_toward_zero(vb, elapsed, duration), p)
    out[8] = (trades * elapsed) // duration
    return out


def partial_kline(fields: List[Any], elapsed: int, duration: int) -> List[Any]:
    """Running values of a kline `elapsed` ms into a bar of `duration` ms (0 <= elapsed < duration).

    open = recorded open; high/low/close move linearly from open towards the recorded
    values (truncated toward open, so low <= open,close <= high always holds and high is
    non-decreasing, low non-increasing); volumes and trades grow linearly from 0
    (truncated).  At elapsed == duration the recorded values would be reached exactly."""
    return partial_from_plan(partial_plan(fields), elapsed, duration)


def render_kline(fields: Sequence[Any]) -> str:
    return json.dumps(list(fields), separators=(",", ":"))


class KlineStore:
    """Recorded data tiled forward in time, minus halts/missing ranges, seen at a virtual time."""

    def __init__(self, base: BaseData, tile_until_ms: Optional[int] = None):
        self.base = base
        self.symbols = list(base.symbols)
        self.origin_ms = base.origin_ms
        self.period_ms = base.period_ms
        self.n = base.n_minutes
        if tile_until_ms is None:
            self.data_end_ms = base.origin_ms + base.period_ms
        else:
            self.data_end_ms = max(base.origin_ms, _floor_min(int(tile_until_ms)))
        self._lock = threading.Lock()
        self._gap_rules: List[Dict[str, Any]] = []
        self._gaps: Dict[str, Tuple[List[int], List[Tuple[int, int]], List[int]]] = {}
        self._rebuild_gaps()

    # ---- gaps (halts and `missing` faults) ---------------------------------------
    def add_gap(self, from_ms: int, to_ms: int, symbol: Optional[str] = None,
                shorten: bool = True, source: str = "halt", rule: Optional[Dict] = None) -> Dict:
        g = {"from_ms": _ceil_min(int(from_ms)), "to_ms": _ceil_min(int(to_ms)),
             "symbol": symbol, "shorten": bool(shorten), "source": source, "rule": rule}
        with self._lock:
            self._gap_rules.append(g)
            self._rebuild_gaps()
        return g

    def clear_gaps(self, source: Optional[str] = None) -> None:
        with self._lock:
            self._gap_rules = [g for g in self._gap_rules
                               if source is not None and g["source"] != source]
            self._rebuild_gaps()

    def gap_rules(self) -> List[Dict]:
        with self._lock:
            return list(self._gap_rules)

    def _rebuild_gaps(self) -> None:
        gaps = {}
        for sym in self.symbols:
            ivs = sorted((g["from_ms"], g["to_ms"], g["shorten"]) for g in self._gap_rules
                         if (g["symbol"] in (None, sym)) and g["to_ms"] > g["from_ms"])
            merged: List[List[Any]] = []
            for a, b, sh in ivs:
                if merged and a <= merged[-1][1]:
                    if a == merged[-1][0]:
                        merged[-1][2] = merged[-1][2] or sh
                    merged[-1][1] = max(merged[-1][1], b)
                else:
                    merged.append([a, b, sh])
            starts = [m[0] for m in merged]
            shortened = [m[0] - MINUTE_MS for m in merged if m[2]]
            gaps[sym] = (starts, [(m[0], m[1]) for m in merged], shortened)
        self._gaps = gaps

    def _in_gap(self, symbol: str, ot: int) -> bool:
        starts, ivs, _ = self._gaps[symbol]
        k = bisect.bisect_right(starts, ot) - 1
        return k >= 0 and ivs[k][0] <= ot < ivs[k][1]

    # ---- single kline -------------------------------------------------------------
    def _index(self, ot: int) -> Optional[Tuple[int, int]]:
        if ot < self.origin_ms or ot >= self.data_end_ms or ot % MINUTE_MS:
            return None
        return divmod((ot - self.origin_ms) // MINUTE_MS, self.n)

    def exists(self, symbol: str, ot: int) -> bool:
        ki = self._index(ot)
        if ki is None or symbol not in self.base.mid:
            return False
        return self.base.mid[symbol][ki[1]] is not None and not self._in_gap(symbol, ot)

    FIRST_TRADE_ID = 100_000_000

    def first_trade_id(self, symbol: str, ot: int) -> int:
        """A synthetic, consistent trade id of the minute's first trade (ids of consecutive
        minutes are contiguous; tiles continue the count)."""
        k, i = self._index(ot)
        p = self.base.trade_prefix(symbol)
        return self.FIRST_TRADE_ID + k * p[-1] + p[i]

    def close_offset(self, symbol: str, ot: int) -> int:
        shortened = self._gaps[symbol][2]
        k = bisect.bisect_left(shortened, ot)
        if k < len(shortened) and shortened[k] == ot:
            return HALT_CLOSE_OFFSET_MS
        ki = self._index(ot)
        return self.base.close_off[symbol].get(ki[1], MINUTE_MS - 1) if ki else MINUTE_MS - 1

    def recorded_fields(self, symbol: str, ot: int) -> Optional[List[Any]]:
        """The 12 fields of the (closed) kline at open_time ot, or None if it doesn't exist."""
        if not self.exists(symbol, ot):
            return None
        i = self._index(ot)[1]
        s = "[%d,%s%d,%s" % (ot, self.base.mid[symbol][i], ot + self.close_offset(symbol, ot),
                             self.base.tail[symbol][i])
        return json.loads(s)

    def kline_fields(self, symbol: str, ot: int, now_ms: int) -> Optional[Tuple[List[Any], bool]]:
        """(fields, is_closed) of the kline at ot as seen at virtual time now_ms; None if the
        kline doesn't exist or hasn't opened yet.  Running values for the open minute."""
        if ot > now_ms:
            return None
        f = self.recorded_fields(symbol, ot)
        if f is None:
            return None
        if f[6] < now_ms:
            return f, True
        return partial_kline(f, now_ms - ot, f[6] - ot + 1), False

    def _render_partial(self, symbol: str, ot: int, now_ms: int) -> str:
        kf = self.kline_fields(symbol, ot, now_ms)
        return render_kline(kf[0])

    # ---- pages ----------------------------------------------------------------------
    def _segment(self, symbol: str, a: int, b: int) -> List[str]:
        """Rendered closed klines with open_time in [a, b) (no gaps inside), ascending."""
        mids, tails = self.base.mid[symbol], self.base.tail[symbol]
        out: List[str] = []
        n, M = self.n, MINUTE_MS
        while a < b:
            k, i0 = divmod((a - self.origin_ms) // M, n)
            i1 = min(n, i0 + (b - a) // M)
            base_ot = self.origin_ms + k * self.period_ms
            if self.base.has_holes[symbol]:
                out.extend("[%d,%s%d,%s" % (base_ot + i * M, mids[i], base_ot + i * M + 59999, tails[i])
                           for i in range(i0, i1) if mids[i] is not None)
            else:
                out.extend(["[%d,%s%d,%s" % (t, m, t + 59999, tl) for t, m, tl in
                            zip(range(base_ot + i0 * M, base_ot + i1 * M, M),
                                mids[i0:i1], tails[i0:i1])])
            a = base_ot + i1 * M
        return out

    def query(self, symbol: str, start: Optional[int], end: Optional[int], limit: int,
              now_ms: int) -> Tuple[List[str], int, int]:
        """Binance /api/v3/klines semantics for 1m.  Returns (rendered rows, scan_lo, scan_hi):
        rows are JSON texts of the klines with open_time in [start, end] that exist and have
        opened by now_ms (the open minute with running values), ascending, at most `limit`;
        with start: the first `limit` from start; without start: the last `limit` up to end
        (or up to now).  [scan_lo, scan_hi] is the open_time range the answer covers."""
        M = MINUTE_MS
        with self._lock:
            starts, ivs, shortened = self._gaps[symbol]
        hi = min(self.data_end_ms - M, _floor_min(now_ms))
        if end is not None:
            hi = min(hi, _floor_min(end))
        lo = self.origin_ms if start is None else max(self.origin_ms, _ceil_min(start))
        if lo > hi or limit <= 0:
            return [], lo, hi
        rows: List[str] = []
        need = limit
        if start is not None:
            cur = lo
            gi = bisect.bisect_right(starts, cur) - 1
            if gi < 0 or ivs[gi][1] <= cur:
                gi += 1
            while need > 0 and cur <= hi:
                if gi < len(ivs) and ivs[gi][0] <= cur:
                    cur = max(cur, ivs[gi][1])
                    gi += 1
                    continue
                seg_end = hi + M
                if gi < len(ivs):
                    seg_end = min(seg_end, ivs[gi][0])
                b = min(seg_end, cur + need * M)
                seg = self._segment(symbol, cur, b)
                rows.extend(seg)
                need -= len(seg)
                cur = b
            scan_lo, scan_hi = lo, (cur - M if need == 0 else hi)
        else:
            chunks: List[List[str]] = []
            cur = hi + M  # exclusive upper end
            gi = bisect.bisect_right(starts, hi) - 1
            while need > 0 and cur > lo:
                if gi >= 0 and ivs[gi][1] >= cur:
                    cur = min(cur, ivs[gi][0])
                    gi -= 1
                    continue
                seg_start = lo
                if gi >= 0:
                    seg_start = max(seg_start, ivs[gi][1])
                a = max(seg_start, cur - need * M)
                seg = self._segment(symbol, a, cur)
                if len(seg) > need:  # only possible with holes in the recorded data
                    seg = seg[len(seg) - need:]
                chunks.append(seg)
                need -= len(seg)
                cur = a
            for c in reversed(chunks):
                rows.extend(c)
            scan_lo, scan_hi = (cur if need == 0 else lo), hi
        if rows:
            first_ot = int(rows[0][1:rows[0].index(",")])
            last_ot = int(rows[-1][1:rows[-1].index(",")])
            # bars just before a halt: shortened close_time
            k = bisect.bisect_left(shortened, first_ot)
            while k < len(shortened) and shortened[k] <= last_ot:
                sot = shortened[k]
                pos = self._pos(rows, sot, first_ot)
                if pos is not None:
                    rows[pos] = render_kline(self.recorded_fields(symbol, sot))
                k += 1
            if self.base.close_off[symbol]:
                for pos, r in enumerate(rows):
                    ot = int(r[1:r.index(",")])
                    if self._index(ot)[1] in self.base.close_off[symbol]:
                        rows[pos] = render_kline(self.recorded_fields(symbol, ot))
            # the open (running) minute
            if int(json.loads(rows[-1])[6]) >= now_ms:
                rows[-1] = self._render_partial(symbol, last_ot, now_ms)
        return rows, scan_lo, scan_hi

    @staticmethod
    def _pos(rows: List[str], ot: int, first_ot: int) -> Optional[int]:
        # rows are ascending by minute; gaps only make the index smaller than the offset
        guess = min(len(rows) - 1, (ot - first_ot) // MINUTE_MS)
        for p in range(guess, -1, -1):
            rot = int(rows[p][1:rows[p].index(",")])
            if rot == ot:
                return p
            if rot < ot:
                return None
        return None


# --------------------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------------------

FAULT_KINDS = {"status", "slow", "truncate", "malformed", "bad_kline", "missing", "oversize",
               "short_page", "time_skew"}


def normalize_rule(rule: Dict[str, Any], rule_id: int) -> Dict[str, Any]:
    if not isinstance(rule, dict):
        raise ValueError("a fault rule must be a JSON object")
    kind = rule.get("kind")
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; kinds: {sorted(FAULT_KINDS)}")
    r = dict(rule)
    r["id"] = rule_id
    r.setdefault("path", "/api/v3/klines")
    r.setdefault("symbol", None)
    r["after"] = int(r.get("after", 0))
    r["count"] = int(r.get("count", 1))
    # every: fire on every N-th matching request after `after` (1 = each one), so that a
    # long run meets the fault again and again, as it meets Binance's.
    r["every"] = int(r.get("every", 1))
    if r["every"] < 1:
        raise ValueError("every must be >= 1")
    r["seen"] = 0
    r["fired"] = 0
    if kind == "status":
        r["status"] = int(r.get("status", 503))
        if "retry_after" in r and r["retry_after"] is not None:
            r["retry_after"] = int(r["retry_after"])
    elif kind == "slow":
        r["delay_ms"] = int(r.get("delay_ms", 5000))
    elif kind == "truncate":
        r["mode"] = r.get("mode", "close")
        if r["mode"] not in ("close", "short"):
            raise ValueError("truncate mode must be 'close' or 'short'")
    elif kind == "bad_kline":
        fld = r.get("field")
        if isinstance(fld, int) and 0 <= fld < 12:
            r["field_index"] = fld
        elif fld in KLINE_FIELDS:
            r["field_index"] = KLINE_FIELDS.index(fld)
        elif fld in _FIELD_ALIASES:
            r["field_index"] = _FIELD_ALIASES[fld]
        else:
            raise ValueError(f"bad_kline needs 'field' (0..11 or one of {KLINE_FIELDS})")
        if "value" not in r and "offset" not in r:
            raise ValueError("bad_kline needs 'value' (or a numeric 'offset')")
    elif kind == "oversize":
        r["bytes"] = int(r.get("bytes", 80 << 20))
    elif kind == "short_page":
        # A CDN or a lagging replica: a 200 page holding only its first `keep` klines.
        r["keep"] = int(r.get("keep", 0))
    elif kind == "time_skew":
        # /api/v3/time wrong by offset_ms, for `count` answers.
        if "path" not in rule:
            r["path"] = "/api/v3/time"
        r["offset_ms"] = int(r.get("offset_ms", 86_400_000))
    elif kind == "missing":
        if "from_ms" not in r or "to_ms" not in r:
            raise ValueError("missing needs from_ms and to_ms")
        r["from_ms"] = parse_time_ms(r["from_ms"])
        r["to_ms"] = parse_time_ms(r["to_ms"])
        r["shorten"] = bool(r.get("shorten", True))
    return r


def _public_rule(r: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in r.items() if not k.startswith("_")}


_HTML_5XX = {
    500: "<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n"
         "<center><h1>500 Internal Server Error</h1></center>\r\n</body>\r\n</html>\r\n",
    502: "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
         "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n",
    503: "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
         "<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n",
    504: "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
         "<center><h1>504 Gateway Time-out</h1></center>\r\n</body>\r\n</html>\r\n",
}


# --------------------------------------------------------------------------------------
# the replay core (loop-agnostic state) and the aiohttp app
# --------------------------------------------------------------------------------------

class BinanceError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400):
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def _err_body(code: int, msg: str) -> bytes:
    return json.dumps({"code": code, "msg": msg}, separators=(",", ":")).encode()


class Replay:
    """State of one replay exchange: clock, data, rate limiter, faults, statistics."""

    def __init__(self, data_dir: Optional[str] = None, start: Any = None, speed: float = 1.0,
                 tile_until: Any = None, weight_limit: int = 0, latency_ms: int = 0,
                 halts: Iterable[Any] = (), faults: Iterable[Dict] = (),
                 log_size: int = 10000, wall: Callable[[], float] = time.time,
                 gen_symbols: int = 0, ws_config: Optional[Dict[str, Any]] = None,
                 ws_faults: Iterable[Dict] = (), ws_log_size: int = 10000,
                 ban_escalation: float = 0.0, hisupply: Iterable[str] = (),
                 archive: Optional[Dict[str, Any]] = None):
        self.base = (BaseData.load(data_dir or DEFAULT_DATA_DIR).with_generated(int(gen_symbols))
                     .with_hisupply(hisupply))
        self.ws: Optional["WsHub"] = None
        tu = None
        if tile_until is not None:
            tu = parse_time_ms(tile_until)
        self.store = KlineStore(self.base, tu)
        start_ms = self.store.data_end_ms if start is None else parse_time_ms(start)
        self.clock = VirtualClock(start_ms, speed)
        self.weight_limit = int(weight_limit)
        self.latency_ms = int(latency_ms)
        self._wall = wall
        self._win = -1
        self._used = 0
        self._ban_until = 0.0
        self._ban_issued = 0.0
        self.ban_escalation = float(ban_escalation)
        self._ip_bans: Dict[str, List[float]] = {}
        self._rules: List[Dict[str, Any]] = []
        self._next_rule_id = 1
        self._log_size = log_size
        self.reset_stats()
        for h in halts:
            if isinstance(h, str):
                a, b = h.split("/", 1)
                self.store.add_gap(parse_time_ms(a), parse_time_ms(b), None, True, "halt")
            else:
                a, b = h
                self.store.add_gap(parse_time_ms(a), parse_time_ms(b), None, True, "halt")
        self.delisted: Dict[str, int] = {}
        self.listing: Dict[str, int] = {}   # symbol -> virtual ms it is listed (list_at)
        # REST publication lag: a minute is served over REST only this many virtual ms
        # after it closes (Binance: klines come from a database; "some delay is normal").
        self.rest_lag_ms = 0
        self.add_faults(list(faults))
        self.ws = WsHub(self, ws_config or {}, ws_log_size)
        self.ws.add_faults(list(ws_faults))
        # data.binance.vision's files over the same klines (replay_archive.py)
        archive = dict(archive or {})
        archive_faults = archive.pop("faults", ())
        self.archive = Archive(self, **archive)
        self.archive.add_faults(list(archive_faults))

    # ---- stats --------------------------------------------------------------------
    def reset_stats(self) -> None:
        self.req_by_path: Dict[str, int] = collections.Counter()
        self.resp_by_status: Dict[str, int] = collections.Counter()
        self.klines_served = 0
        self.violations = 0
        self.rate_limited = 0
        self.requests_total = 0
        self.log: collections.deque = collections.deque(maxlen=self._log_size)
        if getattr(self, "ws", None) is not None:
            self.ws.reset_stats()
        # fault rules keep their seen/fired counters: resetting them would re-arm them

    def stats(self, with_log: bool = False) -> Dict[str, Any]:
        now = self._wall()
        self._roll_window(now)
        st = {
            "requests": dict(self.req_by_path),
            "requests_total": self.requests_total,
            "responses": dict(self.resp_by_status),
            "klines_served": self.klines_served,
            "weight_used": self._used,
            "weight_limit": self.weight_limit,
            "weight_window_reset_in_s": round((self._win + 1) * 60 - now, 3),
            "rate_limited": self.rate_limited,
            "violations": self.violations,
            "banned_for_s": round(max(0.0, self._ban_until - now), 3),
            "ip_bans": {ip: {"banned_for_s": round(max(0.0, b[0] - now), 3), "level": int(b[1])}
                        for ip, b in self._ip_bans.items()},
            "faults": [_public_rule(r) for r in self._rules]
                      + [_public_rule(g["rule"]) for g in self.store.gap_rules() if g["rule"]],
            "clock": self.clock.state(),
        }
        if self.ws is not None:
            st["ws"] = self.ws.stats()
            st["ws_rate_violations"] = st["ws"]["rate_violations"]
        if with_log:
            st["log"] = list(self.log)
        return st

    # ---- faults -------------------------------------------------------------------
    def add_faults(self, rules: List[Dict[str, Any]]) -> List[int]:
        normalized = []
        for rule in rules:
            normalized.append(normalize_rule(rule, self._next_rule_id + len(normalized)))
        ids = []
        for r in normalized:
            self._next_rule_id = max(self._next_rule_id, r["id"] + 1)
            ids.append(r["id"])
            if r["kind"] == "missing":
                self.store.add_gap(r["from_ms"], r["to_ms"], r["symbol"], r["shorten"], "fault", r)
            else:
                self._rules.append(r)
        return ids

    def clear_faults(self) -> None:
        self._rules = []
        self.store.clear_gaps("fault")

    def fault_rules(self) -> List[Dict[str, Any]]:
        return [_public_rule(r) for r in self._rules] + \
               [_public_rule(g["rule"]) for g in self.store.gap_rules() if g["rule"]]

    def pick_fault(self, path: str, symbol: Optional[str]) -> Optional[Dict[str, Any]]:
        chosen = None
        for r in self._rules:
            if r["path"] not in ("*", path):
                continue
            if r["symbol"] is not None and r["symbol"] != symbol:
                continue
            r["seen"] += 1
            if (chosen is None and r["seen"] > r["after"]
                    and (r["seen"] - r["after"] - 1) % r["every"] == 0
                    and (r["count"] < 0 or r["fired"] < r["count"])):
                r["fired"] += 1
                chosen = r
        return chosen

    def note_missing_hits(self, symbol: str, lo: int, hi: int) -> None:
        for g in self.store.gap_rules():
            r = g["rule"]
            if r is None or g["symbol"] not in (None, symbol):
                continue
            if g["from_ms"] <= hi and g["to_ms"] > lo:
                r["fired"] += 1

    # ---- weight / bans -------------------------------------------------------------
    def _roll_window(self, now: float) -> None:
        w = int(now // 60)
        if w != self._win:
            self._win = w
            self._used = 0

    def reset_limits(self, weight_limit: Optional[int] = None) -> None:
        self._used = 0
        self._ban_until = 0.0
        if weight_limit is not None:
            self.weight_limit = int(weight_limit)

    def ban(self, seconds: float) -> None:
        self._ban_until = max(self._ban_until, self._wall() + seconds)
        self._ban_issued = self._wall()

    def in_flight(self, issued: float, now: float) -> bool:
        """A request that reaches the exchange this soon after a ban was issued left the
        client before the client could know of it (it had several in flight): it is
        refused like any other, but it is no violation, and it does not lengthen a ban."""
        return now - issued < 0.5 + 2 * self.latency_ms / 1000.0

    # ---- escalating per-IP bans (ban_escalation=SECONDS, --ban-escalation) -----------
    # Binance: "IP bans are tracked and scale in duration for repeat offenders, from 2
    # minutes to 3 days". With ban_escalation > 0, every request that arrives while its IP
    # is banned (a 429 window, a 418 ban, an injected ban) is a violation: the IP gets a
    # fresh 418 ban of ban_escalation * 2**(n-1) seconds (n: its violations so far), capped
    # at 3 days. The state is per IP and lives as long as the replay does, so a client
    # that restarts is still banned, as on Binance.
    BAN_MAX_S = 3 * 86400.0

    def ip_banned_until(self, ip: str) -> float:
        b = self._ip_bans.get(ip)
        return max(self._ban_until, b[0] if b else 0.0)

    def ip_ban_issued(self, ip: str) -> float:
        b = self._ip_bans.get(ip)
        return max(self._ban_issued, b[2] if b else 0.0)

    def escalate_ban(self, ip: str, now: float) -> float:
        b = self._ip_bans.setdefault(ip, [0.0, 0, 0.0])
        b[1] += 1
        b[2] = now
        b[0] = max(b[0], now + min(self.BAN_MAX_S, self.ban_escalation * 2 ** (b[1] - 1)))
        return b[0]

    def known(self, sym: str) -> bool:
        """Whether the exchange knows @sym now (it has data and is listed by now)."""
        return sym in self.base.mid and self.clock.now_ms() >= self.listing.get(sym, -1)

    def rest_exchange_info(self, symbols: Optional[List[str]],
                           status: Optional[str] = None,
                           permission_sets: bool = True) -> Dict[str, Any]:
        syms = [s for s in self.base.symbols if self.known(s)] if symbols is None else symbols
        infos = [self._listed_info(s) for s in syms]
        if status is not None:
            infos = [i for i in infos if i["status"] == status]
        if not permission_sets:
            for i in infos:
                i["permissionSets"] = []
        return {
            "timezone": "UTC",
            "serverTime": self.clock.now_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": self.weight_limit or REAL_WEIGHT_LIMIT},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": infos,
        }

    def _listed_info(self, sym: str) -> Dict[str, Any]:
        info = _symbol_info(sym)
        at = self.delisted.get(sym)
        if at is not None and self.clock.now_ms() >= at:
            info["status"] = "BREAK"
        return info

    def list_at(self, symbol: str, at_ms: Optional[int] = None) -> int:
        """@symbol is listed at @at_ms (default: now): before it the exchange does not know
        it (absent from exchangeInfo, -1121 for klines, no stream events) and its history
        begins there; from it on it trades as usual. A new listing, as klined must pick up."""
        at = _ceil_min(self.clock.now_ms() if at_ms is None else int(at_ms))
        self.listing[symbol] = at
        self.store.add_gap(0, at, symbol, False, "listing")
        return at

    def delist(self, symbol: str, at_ms: Optional[int] = None) -> int:
        """From @at_ms (default: now) on, @symbol trades no more: no kline, no event,
        status BREAK in exchangeInfo; its history stays served, as on Binance."""
        at = _ceil_min(self.clock.now_ms() if at_ms is None else int(at_ms))
        self.delisted[symbol] = at
        self.store.add_gap(at, 1 << 62, symbol, True, "delist")
        return at


_QUOTES = ("USDT", "FDUSD", "BUSD", "USDC", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY")


def _symbol_info(sym: str) -> Dict[str, Any]:
    base, quote = sym, ""
    for q in _QUOTES:
        if sym.endswith(q) and len(sym) > len(q):
            base, quote = sym[: -len(q)], q
            break
    return {
        "symbol": sym,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT",
                       "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01000000",
             "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000",
             "stepSize": "0.00001000"},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "100.00000000",
             "stepSize": "0.00000000"},
            {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10,
             "maxTrailingAboveDelta": 2000, "minTrailingBelowDelta": 10,
             "maxTrailingBelowDelta": 2000},
            {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5",
             "bidMultiplierDown": "0.2", "askMultiplierUp": "5", "askMultiplierDown": "0.2",
             "avgPriceMins": 5},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


class _Result:
    __slots__ = ("status", "body", "content_type", "rows", "extra_headers")

    def __init__(self, status: int, body: bytes, content_type: str = JSON_CT,
                 rows: Optional[List[str]] = None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.rows = rows
        self.extra_headers: Dict[str, str] = {}


def _single_params(request: web.Request) -> Dict[str, str]:
    q = request.query
    params: Dict[str, str] = {}
    for k in q.keys():
        vals = q.getall(k)
        if len(vals) > 1:
            raise BinanceError(-1101, "Duplicate values for a parameter detected.")
        params[k] = vals[0]
    return params


def _opt_long(params: Dict[str, str], name: str) -> Optional[int]:
    if name not in params:
        return None
    v = params[name]
    if v == "":
        raise BinanceError(-1105, f"Parameter '{name}' was empty.")
    if not _INT_RE.match(v) or len(v) > 20:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; "
                                  f"legal range is '{LONG_RE_TEXT}'.")
    return int(v)


def _mandatory(params: Dict[str, str], name: str) -> str:
    v = params.get(name)
    if v is None or v == "":
        raise BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, "
                                  f"or malformed.")
    return v


def _check_symbol(rp: Replay, sym: str) -> str:
    if not _SYMBOL_RE.match(sym):
        raise BinanceError(-1100, f"Illegal characters found in parameter 'symbol'; "
                                  f"legal range is '{SYMBOL_RE_TEXT}'.")
    if not rp.known(sym):
        raise BinanceError(-1121, "Invalid symbol.")
    return sym


def ep_ping(rp: Replay, request: web.Request) -> _Result:
    return _Result(200, b"{}")


def ep_time(rp: Replay, request: web.Request) -> _Result:
    return _Result(200, b'{"serverTime":%d}' % rp.clock.now_ms())


def ep_exchange_info(rp: Replay, request: web.Request) -> _Result:
    params = _single_params(request)
    symbols: Optional[List[str]] = None
    status = params.get("symbolStatus")
    if ("symbol" in params and "symbols" in params) or (
            status is not None and ("symbol" in params or "symbols" in params)):
        raise BinanceError(-1128, "Combination of optional parameters invalid.")
    if status is not None and status not in ("TRADING", "HALT", "BREAK"):
        raise BinanceError(-1130, "Data sent for parameter 'symbolStatus' is not valid.")
    if "symbol" in params:
        if params["symbol"] == "":
            raise BinanceError(-1105, "Parameter 'symbol' was empty.")
        symbols = [_check_symbol(rp, params["symbol"])]
    elif "symbols" in params:
        raw = params["symbols"]
        if raw == "":
            raise BinanceError(-1105, "Parameter 'symbols' was empty.")
        if not _SYMBOLS_RE.match(raw):
            raise BinanceError(-1100, f"Illegal characters found in parameter 'symbols'; "
                                      f"legal range is '{SYMBOLS_RE_TEXT}'.")
        lst = json.loads(raw)
        if not lst:
            raise BinanceError(-1102, "Mandatory parameter 'symbols' was not sent, was "
                                      "empty/null, or malformed.")
        if len(set(lst)) != len(lst):
            raise BinanceError(-1151, "Symbol is present multiple times in the list.")
        for s in lst:
            if not rp.known(s):
                raise BinanceError(-1121, "Invalid symbol.")
        symbols = lst
    perms = params.get("showPermissionSets", "true").lower() != "false"
    body = json.dumps(rp.rest_exchange_info(symbols, status, perms),
                      separators=(",", ":")).encode()
    return _Result(200, body)


def ep_klines(rp: Replay, request: web.Request) -> _Result:
    params = _single_params(request)
    sym = _mandatory(params, "symbol")
    interval = _mandatory(params, "interval")
    _check_symbol(rp, sym)
    if interval not in BINANCE_INTERVALS or interval not in SUPPORTED_INTERVALS:
        raise BinanceError(-1120, "Invalid interval.")
    start = _opt_long(params, "startTime")
    end = _opt_long(params, "endTime")
    limit = _opt_long(params, "limit")
    if limit is None:
        limit = 500
    elif limit < 1 or limit > 1000:
        raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
    tz = params.get("timeZone")
    if tz is not None:
        ok = bool(_TZ_RE.match(tz))
        if ok:
            sign = -1 if tz.startswith("-") else 1
            hh, _, mm = tz.lstrip("+-").partition(":")
            minutes = sign * (int(hh) * 60 + (int(mm) if mm else 0))
            ok = -12 * 60 <= minutes <= 14 * 60 and (not mm or int(mm) < 60)
        if not ok:
            raise BinanceError(-1130, "Data sent for parameter 'timeZone' is not valid.")
        # a whole-minute offset does not change 1m klines
    now = rp.clock.now_ms() - rp.rest_lag_ms
    rows, lo, hi = rp.store.query(sym, start, end, limit, now)
    rp.note_missing_hits(sym, lo, hi)
    body = ("[" + ",".join(rows) + "]").encode()
    return _Result(200, body, rows=rows)


ENDPOINTS = {
    "/api/v3/ping": ep_ping,
    "/api/v3/time": ep_time,
    "/api/v3/exchangeInfo": ep_exchange_info,
    "/api/v3/klines": ep_klines,
}


def _apply_bad_kline(rule: Dict[str, Any], res: _Result) -> None:
    if res.status != 200 or not res.rows:
        return
    rows = list(res.rows)
    idx = rule.get("index")
    if idx is None:
        idx = len(rows) // 2
    idx = int(idx)
    if idx < 0:
        idx += len(rows)
    idx = max(0, min(len(rows) - 1, idx))
    fields = json.loads(rows[idx])
    j = rule["field_index"]
    if "value" in rule:
        fields[j] = rule["value"]
    else:
        off = rule["offset"]
        if isinstance(fields[j], str):
            v, p = _scaled(fields[j])
            d, dp = _scaled(str(off))
            pp = max(p, dp)
            fields[j] = _fmt_scaled(v * 10 ** (pp - p) + d * 10 ** (pp - dp), pp)
        else:
            fields[j] = fields[j] + int(off)
    rows[idx] = render_kline(fields)
    res.rows = rows
    res.body = ("[" + ",".join(rows) + "]").encode()


def _apply_short_page(rule: Dict[str, Any], res: _Result) -> None:
    if res.status != 200 or res.rows is None:
        return
    res.rows = list(res.rows)[: rule["keep"]]
    res.body = ("[" + ",".join(res.rows) + "]").encode()


def _malformed_body(body: bytes) -> bytes:
    # a prefix of the real answer cut inside a kline, followed by junk: never valid JSON
    cut = body[: max(1, min(len(body) - 1, 40))]
    return cut + b'\x00garbage}{<html>not json'


# --------------------------------------------------------------------------------------
# websocket streams (<symbol>@kline_1m), on the same server, port and virtual clock
# --------------------------------------------------------------------------------------

WS_DEFAULTS: Dict[str, Any] = {
    "ping_interval_s": 20.0,      # server ping frame every N wall seconds (0 = never)
    "pong_timeout_s": 60.0,       # close if a ping stays unanswered this long (wall)
    "max_age_ms": 86_400_000,     # close after this much virtual time (0 = never)
    "shutdown_notice_ms": 0,      # serverShutdown event this long (virtual) before max_age
    "max_msgs_per_s": 5,          # incoming messages per connection per second (0 = no limit):
                                  # pings, pongs and JSON control messages all count; beyond it
                                  # the connection is closed 1008 "Too many requests"
    "rate_ban_after": 3,          # "IPs that are repeatedly disconnected may be banned": this many
                                  # rate violations from one IP in 5 wall minutes (0 = never) ...
    "rate_ban_s": 120.0,          # ... refuse its upgrades (418) for this many wall seconds
    "max_request_bytes": 8192,    # a longer client text message closes the connection 1009
                                  # (Binance documents no limit; one SUBSCRIBE of ~440 streams
                                  # is reported to fail; 0 = aiohttp's 1 MiB only)
    "update_ms": 2000,            # virtual ms between running (x:false) updates
    "max_streams": 1024,          # per connection
    "burst_events": 512,          # more updates than this due at once: send only the latest
    # ---- hostile behaviours (issue 11; see README "Quiet streams and connection limits") ----
    "quiet_symbols": "",          # comma-separated: no kline event at all for these (illiquid,
                                  # halted): their connection carries only pings
    "conn_limit_5min": 0,         # connection attempts per client IP per 5 wall minutes; beyond
                                  # it the upgrade is refused with 429 (Binance: 300; 0 = off)
    "drop_after_frames": 0,       # close every connection right after this many kline frames
                                  # (an exchange dropping connections at once; 0 = never)
    "trade_driven": 0,            # 1: a running update only when a trade happened since the
                                  # last tick (Binance sends a kline event only on a change)
}
WS_FAULT_KINDS = {"drop", "close", "silence", "malformed", "duplicate", "reorder", "future",
                  "past", "shutdown", "oversize"}
_WS_STREAM_RE = re.compile(r"^([a-z0-9]+)@kline_1m$")
_WS_STREAM_NAME_RE = re.compile(r"^[a-z0-9!@_.\-]{1,100}$")
_WS_ID_RE = re.compile(r"^[A-Za-z0-9]{1,36}$")
_WS_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_FRAME1 = struct.Struct("!BB").pack
_FRAME2 = struct.Struct("!BBH").pack
_FRAME3 = struct.Struct("!BBQ").pack
_K_TAIL = ('"i":"1m","f":%d,"L":%d,"o":"%s","c":"%s","h":"%s","l":"%s","v":"%s","n":%d,"x":%s,'
           '"q":"%s","V":"%s","Q":"%s","B":"%s"}}')
_K_HEAD = '{"e":"kline","E":%d,"s":"%s","k":{"t":%d,"T":%d,"s":"%s",'


def _text_frame(text: str) -> bytes:
    """An unmasked, unfragmented server text frame (no extensions are negotiated)."""
    b = text.encode()
    n = len(b)
    if n < 126:
        return _FRAME1(0x81, n) + b
    if n < 65536:
        return _FRAME2(0x81, 126, n) + b
    return _FRAME3(0x81, 127, n) + b


def normalize_ws_rule(rule: Dict[str, Any], rule_id: int) -> Dict[str, Any]:
    if not isinstance(rule, dict):
        raise ValueError("a ws fault rule must be a JSON object")
    kind = rule.get("kind")
    if kind not in WS_FAULT_KINDS:
        raise ValueError(f"unknown ws fault kind {kind!r}; kinds: {sorted(WS_FAULT_KINDS)}")
    r = dict(rule)
    r["id"] = rule_id
    sym = r.get("symbol")
    r["symbol"] = sym.upper() if isinstance(sym, str) else None
    if r.get("final") is not None:
        r["final"] = bool(r["final"])
    else:
        r["final"] = None
    r["conn"] = int(r["conn"]) if r.get("conn") is not None else None
    r["after"] = int(r.get("after", 0))
    r["count"] = int(r.get("count", 1))
    r["seen"] = 0
    r["fired"] = 0
    if kind == "silence":
        r["seconds"] = float(r.get("seconds", 5.0))
    elif kind == "oversize":
        r["bytes"] = int(r.get("bytes", 4 << 20))
    elif kind == "malformed":
        r["mode"] = r.get("mode", "junk")
        if r["mode"] not in ("junk", "truncated", "missing"):
            raise ValueError("malformed mode must be 'junk', 'truncated' or 'missing'")
    elif kind == "future":
        r["days"] = float(r.get("days", 30))
    elif kind == "past":
        r["days"] = float(r.get("days", 3))
    elif kind == "close":
        r["code"] = int(r.get("code", 1001))
        r["reason"] = str(r.get("reason", "Going away"))
    elif kind == "shutdown":
        if r.get("close_after_s") is not None:
            r["close_after_s"] = float(r["close_after_s"])
    return r


class _Ev:
    """One kline event about to be sent."""
    __slots__ = ("sym", "stream", "ot", "close", "E", "final", "raw")

    def __init__(self, sym, stream, ot, close, E, final, raw):
        self.sym, self.stream, self.ot, self.close = sym, stream, ot, close
        self.E, self.final, self.raw = E, final, raw


class WsHub:
    """Loop-side state of the websocket streams: config, connections, fault rules, stats, log."""

    def __init__(self, rp: "Replay", config: Dict[str, Any], log_size: int = 10000):
        self.rp = rp
        self.cfg: Dict[str, Any] = dict(WS_DEFAULTS)
        self.set_config(config)
        self.conns: Dict[int, "WsConn"] = {}
        self._next_conn = 1
        self.rules: List[Dict[str, Any]] = []
        self._next_rule = 1
        self._cache: Dict[Tuple, str] = {}
        self._minute: Dict[Tuple, Tuple] = {}
        self._log_size = int(log_size)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self.attempts_by_ip: Dict[str, collections.deque] = {}
        self.violations_by_ip: Dict[str, collections.deque] = {}
        self.banned_until: Dict[str, float] = {}   # ip -> time.monotonic()
        self.reset_stats()

    # ---- config / loop ------------------------------------------------------------
    def set_config(self, cfg: Dict[str, Any]) -> Dict[str, Any]:
        for k, v in cfg.items():
            if v is None:
                continue
            if k not in WS_DEFAULTS:
                raise ValueError(f"unknown ws config key {k!r}; keys: {sorted(WS_DEFAULTS)}")
            if isinstance(WS_DEFAULTS[k], str):
                self.cfg[k] = str(v)
                continue
            v = type(WS_DEFAULTS[k])(v)
            if v < 0 or (k == "update_ms" and v <= 0):
                raise ValueError(f"bad value for {k}: {v}")
            self.cfg[k] = v
        for c in getattr(self, "conns", {}).values():
            c.wake()
        return dict(self.cfg)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is None:
            self._loop = loop
            self.rp.clock.add_listener(self._on_clock)

    def _on_clock(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.wake_all)
            except RuntimeError:
                pass

    def wake_all(self) -> None:
        for c in list(self.conns.values()):
            c.wake()

    # ---- hostile behaviours: quiet symbols, connection-attempt limit ----------------
    def quiet(self) -> set:
        return {x.strip().upper() for x in self.cfg["quiet_symbols"].split(",") if x.strip()}

    def admit(self, ip: str) -> bool:
        """Count a connection attempt from ip; False beyond conn_limit_5min in 5 wall minutes
        (Binance: 300 per IP). Attempts are counted whether or not they are refused."""
        self.c["attempts"] += 1
        now = time.monotonic()
        q = self.attempts_by_ip.setdefault(ip, collections.deque())
        q.append(now)
        while q and q[0] <= now - 300.0:
            q.popleft()
        limit = self.cfg["conn_limit_5min"]
        if limit and len(q) > limit:
            self.c["attempts_refused"] += 1
            return False
        return True

    def rate_violation(self, ip: str) -> None:
        """A connection of ip went beyond max_msgs_per_s; rate_ban_after of them in 5 wall
        minutes ban the IP's upgrades for rate_ban_s."""
        self.c["rate_violations"] += 1
        after = self.cfg["rate_ban_after"]
        if not after:
            return
        now = time.monotonic()
        q = self.violations_by_ip.setdefault(ip, collections.deque())
        q.append(now)
        while q and q[0] <= now - 300.0:
            q.popleft()
        if len(q) >= after:
            q.clear()
            self.c["rate_bans"] += 1
            self.banned_until[ip] = now + float(self.cfg["rate_ban_s"])

    def is_banned(self, ip: str) -> bool:
        return self.banned_until.get(ip, 0.0) > time.monotonic()

    def attempts_in_5min(self, ip: str = "127.0.0.1") -> int:
        now = time.monotonic()
        return sum(1 for t in self.attempts_by_ip.get(ip, ()) if t > now - 300.0)

    # ---- stats --------------------------------------------------------------------
    def reset_stats(self) -> None:
        self.c: Dict[str, int] = collections.Counter()
        self.finals_sent: Dict[str, int] = collections.Counter()
        self.events_by_symbol: Dict[str, int] = collections.Counter()
        self.close_reasons: Dict[str, int] = collections.Counter()
        self.max_lag_ms = 0
        self.log: collections.deque = collections.deque(maxlen=self._log_size)
        for conn in getattr(self, "conns", {}).values():
            conn.max_lag_ms = 0

    def stats(self) -> Dict[str, Any]:
        c = self.c
        return {
            "connections_opened": c["opened"],
            "connections_closed": c["closed"],
            "connections_current": len(self.conns),
            "connections": [conn.info() for conn in self.conns.values()],
            "events_sent": c["events"],
            "finals_sent": dict(self.finals_sent),
            "events_by_symbol": dict(self.events_by_symbol),
            "fault_frames": c["fault_frames"],
            "updates_skipped": c["skipped"],
            "max_lag_ms": self.max_lag_ms,
            "pings_sent": c["pings_sent"],
            "pongs_received": c["pongs_received"],
            "pings_received": c["pings_received"],
            "client_messages": c["client_messages"],
            "requests": c["requests"],
            "subscribe_requests": c["subscribe_requests"],
            "unsubscribe_requests": c["unsubscribe_requests"],
            "streams_subscribed": c["streams_subscribed"],
            "streams_unsubscribed": c["streams_unsubscribed"],
            "request_errors": c["request_errors"],
            "oversize_requests": c["oversize_requests"],
            "rate_violations": c["rate_violations"],
            "rate_bans": c["rate_bans"],
            "banned_refused": c["banned_refused"],
            "pong_timeouts": c["pong_timeouts"],
            "age_closes": c["age_closes"],
            "shutdown_notices": c["shutdown_notices"],
            "connection_attempts": c["attempts"],
            "attempts_refused": c["attempts_refused"],
            "close_reasons": dict(self.close_reasons),
            "faults": [_public_rule(r) for r in self.rules],
            "faults_fired": sum(r["fired"] for r in self.rules),
            "config": dict(self.cfg),
        }

    def log_entries(self, last: Optional[int] = None) -> List[Dict[str, Any]]:
        items = list(self.log)
        if last is not None:
            items = items[-int(last):] if int(last) > 0 else []
        return [{"wall_ms": w, "conn": cid, "stream": st, "E": E, "t": t, "x": x, "fault": f,
                 "text": txt} for (w, cid, st, E, t, x, f, txt) in items]

    # ---- faults -------------------------------------------------------------------
    def add_faults(self, rules: List[Dict[str, Any]]) -> List[int]:
        normalized = [normalize_ws_rule(r, self._next_rule + i) for i, r in enumerate(rules)]
        self._next_rule += len(normalized)
        self.rules.extend(normalized)
        return [r["id"] for r in normalized]

    def clear_faults(self) -> None:
        self.rules = []

    def fault_rules(self) -> List[Dict[str, Any]]:
        return [_public_rule(r) for r in self.rules]

    def pick(self, conn: "WsConn", ev: _Ev) -> Optional[Dict[str, Any]]:
        chosen = None
        for r in self.rules:
            if r["symbol"] is not None and r["symbol"] != ev.sym:
                continue
            if r["final"] is not None and r["final"] != ev.final:
                continue
            if r["conn"] is not None and r["conn"] != conn.id:
                continue
            r["seen"] += 1
            if chosen is None and r["seen"] > r["after"] and (r["count"] < 0 or r["fired"] < r["count"]):
                r["fired"] += 1
                chosen = r
        return chosen

    # ---- events -------------------------------------------------------------------
    def render(self, sym: str, stream: str, ot: int, close: int, when: int, final: bool) -> _Ev:
        """The kline event of sym's minute ot: running values at virtual time `when`
        (x:false, the same values REST serves at that time), or the recorded row (x:true,
        when = close + 1).  Generated symbols share the cache with their source symbol."""
        store = self.rp.store
        # (a high-supply copy has values of its own: it keys the caches by itself)
        src = sym if sym in store.base.hisupply else store.base.source[sym]
        key = (src, ot, close, when, final)
        tail = self._cache.get(key)
        if tail is None:
            mk = (src, ot, close)
            mi = self._minute.get(mk)
            if mi is None:
                rec = store.recorded_fields(sym, ot)
                mi = (rec, partial_plan(rec), store.first_trade_id(sym, ot))
                if len(self._minute) > 100_000:
                    self._minute.clear()
                self._minute[mk] = mi
            f = mi[0] if final else partial_from_plan(mi[1], when - ot, close - ot + 1)
            n = f[8]
            first, last = (mi[2], mi[2] + n - 1) if n > 0 else (-1, -1)
            tail = _K_TAIL % (first, last, f[1], f[4], f[2], f[3], f[5], n,
                              "true" if final else "false", f[7], f[9], f[10], f[11])
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[key] = tail
        raw = _K_HEAD % (when, sym, ot, close, sym) + tail
        return _Ev(sym, stream, ot, close, when, final, raw)

    def disconnect_all(self, code: int = 1001, reason: str = "Server closing") -> int:
        n = 0
        for conn in list(self.conns.values()):
            if not conn.closing:
                n += 1
                conn.spawn(conn.close(code, reason, "disconnect_all"))
        return n


class WsConn:
    """One websocket connection: a reader (client messages, rate limit), a pinger, and a
    generator that walks virtual time from the connection's cursor and sends kline events."""

    def __init__(self, hub: WsHub, ws: web.WebSocketResponse, request: web.Request,
                 writer: Any, combined: bool, streams: List[str], start_v: int):
        self.hub = hub
        self.rp = hub.rp
        self.ws = ws
        self.request = request
        self.writer = writer
        self.combined = combined
        self.id = hub._next_conn
        hub._next_conn += 1
        self.path = request.path_qs if len(request.path_qs) <= 200 else request.path_qs[:200] + "..."
        self.streams: List[str] = []
        self.active: List[Tuple[str, str]] = []
        self.cur = start_v                         # events up to this virtual time are sent
        self.opened_v = self.cur
        self.age_ms = 0                            # virtual time walked by the generator
        self.notice_sent = False
        self.closing = False
        self.close_reason: Optional[str] = None
        self.held: Dict[str, str] = {}            # reorder fault: symbol -> frame text
        self.silent_until = 0.0
        self.msg_times: collections.deque = collections.deque()
        self.requests = 0                          # its JSON control messages
        self.pings_out: Dict[bytes, float] = {}
        self.ping_seq = 0
        self.events_sent = 0
        self.max_lag_ms = 0
        self._wake_fut: Optional[asyncio.Future] = None
        self._tasks: List[asyncio.Task] = []
        self._closer: Optional[asyncio.Task] = None
        self._loop = asyncio.get_running_loop()
        self.set_streams(streams)

    # ---- subscriptions ------------------------------------------------------------
    def set_streams(self, streams: List[str]) -> None:
        seen = set()
        self.streams = [s for s in streams if not (s in seen or seen.add(s))]
        act = []
        for s in self.streams:
            m = _WS_STREAM_RE.match(s)
            if m is not None:
                sym = m.group(1).upper()
                if sym in self.rp.base.mid:
                    act.append((s, sym))
        self.active = act
        self.wake()

    def info(self) -> Dict[str, Any]:
        return {"id": self.id, "path": self.path, "combined": self.combined,
                "streams": list(self.streams), "opened_ms": self.opened_v, "cursor_ms": self.cur,
                "age_ms": self.age_ms, "events_sent": self.events_sent, "requests": self.requests,
                "lag_ms": max(0, self.rp.clock.now_ms() - self.cur), "max_lag_ms": self.max_lag_ms,
                "closing": self.closing}

    # ---- plumbing -----------------------------------------------------------------
    def spawn(self, coro) -> asyncio.Task:
        t = self._loop.create_task(coro)
        self._tasks.append(t)
        return t

    def wake(self) -> None:
        f = self._wake_fut
        if f is not None and not f.done():
            f.set_result(None)

    async def _sleep(self, seconds: Optional[float]) -> None:
        """Wall sleep that wake() (clock change, subscription, config) cuts short."""
        if seconds is not None and seconds <= 0:
            await asyncio.sleep(0)
            return
        fut = self._loop.create_future()
        self._wake_fut = fut
        h = None
        if seconds is not None:
            h = self._loop.call_later(seconds, lambda: fut.done() or fut.set_result(None))
        try:
            await fut
        finally:
            self._wake_fut = None
            if h is not None:
                h.cancel()

    async def _wait_silence(self) -> None:
        while not self.closing:
            d = self.silent_until - self._loop.time()
            if d <= 0:
                return
            await asyncio.sleep(d)

    def _silent(self) -> bool:
        return self._loop.time() < self.silent_until

    async def close(self, code: int, reason: str, why: str) -> None:
        if self.closing:
            return
        self.closing = True
        self.close_reason = why
        self.hub.close_reasons[why] += 1
        self._closer = asyncio.current_task()
        self.wake()
        try:
            await self.ws.close(code=code, message=reason.encode())
        except Exception:
            pass

    def abort(self, why: str) -> None:
        if self.closing:
            return
        self.closing = True
        self.close_reason = why
        self.hub.close_reasons[why] += 1
        tr = self.request.transport
        if tr is not None:
            tr.abort()
        self.wake()

    async def _write(self, frames: List[str]) -> None:
        tr = self.request.transport
        if self.closing or self.ws.closed or tr is None or tr.is_closing():
            raise ConnectionResetError("websocket closed")
        tr.write(b"".join([_text_frame(f) for f in frames]))
        await self.writer.drain()

    async def send_json_text(self, text: str) -> None:
        if self._silent():
            await self._wait_silence()
        if not self.closing and not self.ws.closed:
            await self._write([text])

    # ---- reader -------------------------------------------------------------------
    async def read_loop(self) -> None:
        ws, hub = self.ws, self.hub
        T = web.WSMsgType
        while True:
            msg = await ws.receive()
            t = msg.type
            if t in (T.CLOSE, T.CLOSING, T.CLOSED, T.ERROR):
                if self.close_reason is None:
                    self.close_reason = "client_close" if t in (T.CLOSE, T.CLOSING) else "connection_lost"
                    hub.close_reasons[self.close_reason] += 1
                return
            hub.c["client_messages"] += 1
            if not self._count_incoming():
                hub.rate_violation(self.request.remote or "?")
                await self.close(1008, "Too many requests", "rate_violation")
                return
            if t == T.PING:
                hub.c["pings_received"] += 1
                if not self._silent() and not self.closing:
                    try:
                        await ws.pong(msg.data)
                    except Exception:
                        pass
            elif t == T.PONG:
                hub.c["pongs_received"] += 1
                sent = self.pings_out.get(bytes(msg.data))
                if sent is not None:   # answers this ping and every earlier one
                    self.pings_out = {p: w for p, w in self.pings_out.items() if w > sent}
            elif t == T.TEXT:
                hub.c["requests"] += 1
                self.requests += 1
                limit = hub.cfg["max_request_bytes"]
                if limit and len(msg.data.encode()) > limit:
                    hub.c["oversize_requests"] += 1
                    await self.close(1009, "Message too big", "oversize_request")
                    return
                reply = self._handle_request(msg.data)
                if reply is not None and reply.startswith('{"error"'):
                    hub.c["request_errors"] += 1
                if reply is not None:
                    if self._silent():
                        self.spawn(self.send_json_text(reply))
                    else:
                        try:
                            await self._write([reply])
                        except Exception:
                            pass

    def _count_incoming(self) -> bool:
        lim = self.hub.cfg["max_msgs_per_s"]
        if lim <= 0:
            return True
        now = self._loop.time()
        dq = self.msg_times
        dq.append(now)
        while dq and dq[0] <= now - 1.0:
            dq.popleft()
        return len(dq) <= lim

    def _handle_request(self, text: str) -> Optional[str]:
        def err(code: int, msg: str, rid: Any = None) -> str:
            return json.dumps({"error": {"code": code, "msg": msg}, "id": rid}, separators=(",", ":"))
        try:
            req = json.loads(text)
        except ValueError as e:
            return err(3, f"Invalid JSON: {e}")
        if not isinstance(req, dict):
            return err(2, "Invalid request: expected a JSON object")
        rid = req.get("id")
        if not (rid is None or (isinstance(rid, int) and not isinstance(rid, bool)
                                and -2**63 <= rid < 2**63)
                or (isinstance(rid, str) and _WS_ID_RE.match(rid))):
            return err(2, "Invalid request: request ID must be an unsigned integer")
        if "method" not in req:
            return err(2, "Invalid request: missing field `method`", rid)
        method = req["method"]
        if method not in _WS_METHODS:
            return err(2, "Invalid request: unknown variant `%s`, expected one of `SUBSCRIBE`, "
                          "`UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"
                       % method, rid)
        params = req.get("params", [])
        if not isinstance(params, list):
            return err(2, "Invalid request: params must be an array", rid)

        def ok(result: Any) -> str:
            return json.dumps({"result": result, "id": rid}, separators=(",", ":"))
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not params or not all(isinstance(p, str) and _WS_STREAM_NAME_RE.match(p) for p in params):
                return err(2, "Invalid request: invalid stream name", rid)
            c = self.hub.c
            if method == "SUBSCRIBE":
                new = self.streams + [p for p in params if p not in self.streams]
                if len(new) > self.hub.cfg["max_streams"]:
                    return err(2, "Invalid request: too many streams (max %d)"
                               % self.hub.cfg["max_streams"], rid)
                c["subscribe_requests"] += 1
                c["streams_subscribed"] += len(new) - len(self.streams)
                self.set_streams(new)
            else:
                drop = set(params)
                c["unsubscribe_requests"] += 1
                c["streams_unsubscribed"] += sum(1 for s in self.streams if s in drop)
                self.set_streams([s for s in self.streams if s not in drop])
            return ok(None)
        if method == "LIST_SUBSCRIPTIONS":
            return ok(list(self.streams))
        if not params or not isinstance(params[0], str):
            return err(2, "Invalid request: property name must be a string", rid)
        if params[0] != "combined":
            return json.dumps({"code": 0, "msg": "Unknown property", "id": rid}, separators=(",", ":"))
        if method == "GET_PROPERTY":
            return ok(self.combined)
        if len(params) != 2 or not isinstance(params[1], bool):
            return err(1, "Invalid value type: expected Boolean", rid)
        self.combined = params[1]
        return ok(None)

    # ---- pinger -------------------------------------------------------------------
    async def ping_loop(self) -> None:
        loop, hub = self._loop, self.hub
        next_ping = loop.time() + hub.cfg["ping_interval_s"]
        try:
            while not self.closing:
                now = loop.time()
                if now < self.silent_until:
                    await asyncio.sleep(self.silent_until - now)
                    continue
                cfg = hub.cfg
                if self.pings_out:
                    oldest = min(self.pings_out.values())
                    if now - oldest >= cfg["pong_timeout_s"]:
                        hub.c["pong_timeouts"] += 1
                        await self.close(1008, "Pong timeout", "pong_timeout")
                        return
                interval = cfg["ping_interval_s"]
                if interval > 0 and now >= next_ping:
                    self.ping_seq += 1
                    payload = b"%d" % self.ping_seq
                    await self.ws.ping(payload)
                    hub.c["pings_sent"] += 1
                    self.pings_out[payload] = now
                    next_ping = now + interval
                wake = next_ping if interval > 0 else now + 1.0
                if self.pings_out:
                    wake = min(wake, min(self.pings_out.values()) + cfg["pong_timeout_s"])
                await asyncio.sleep(min(1.0, max(0.0, wake - loop.time())))
        except (ConnectionError, RuntimeError):
            pass

    # ---- generator ----------------------------------------------------------------
    def _events(self, cur: int, target: int) -> Iterable[_Ev]:
        """Events due in the virtual interval (cur, target], each symbol's in time order.
        Per minute: the running (x:false) updates at the ticks ot+U, ot+2U, ... <= close, then
        the final (x:true, E = close+1).  When the interval holds more than `burst_events`
        updates (the server fell behind, or the clock jumped), only the last tick's update
        of the minute open at target is sent: intermediate updates are skipped, finals never."""
        store, hub, act = self.rp.store, self.hub, self.active
        quiet = hub.quiet()
        if quiet:
            act = [(stream, sym) for stream, sym in act if sym not in quiet]
        if not act:
            return
        U = hub.cfg["update_ms"]
        render = hub.render
        M = MINUTE_MS
        ot, last = _floor_min(cur), _floor_min(target)
        every_tick = ((target - cur) // U + 1) * len(act) <= hub.cfg["burst_events"]
        traded = bool(hub.cfg["trade_driven"])
        if not every_tick:
            hub.c["skipped"] += max(0, (target - cur) // U - 1) * len(act)
        while ot <= last:
            here = []
            for stream, sym in act:
                if store.exists(sym, ot):
                    here.append((stream, sym, ot + store.close_offset(sym, ot)))
            if here:
                if every_tick:
                    t0 = ot + max(1, (cur - ot) // U + 1) * U
                    t1 = min(target, ot + M - 1)
                    for tick in range(t0, t1 + 1, U):
                        for stream, sym, close in here:
                            if tick <= close and not (traded and self._no_trade(sym, ot, tick, U)):
                                yield render(sym, stream, ot, close, tick, False)
                elif ot == last:
                    tick = last + ((target - last) // U) * U
                    if tick > cur and tick - last >= U:
                        for stream, sym, close in here:
                            if tick <= close:
                                yield render(sym, stream, ot, close, tick, False)
                for stream, sym, close in here:
                    if cur < close + 1 <= target:
                        yield render(sym, stream, ot, close, close + 1, True)
            ot += M

    def _no_trade(self, sym: str, ot: int, tick: int, U: int) -> bool:
        """trade_driven: no trade in (tick - U, tick], so Binance would send nothing."""
        now = self.rp.store.kline_fields(sym, ot, tick)
        before = self.rp.store.kline_fields(sym, ot, tick - U) if tick - U >= ot else None
        return now is not None and int(now[0][8]) == (int(before[0][8]) if before else 0)

    def _frame(self, stream: str, raw: str) -> str:
        return '{"stream":"%s","data":%s}' % (stream, raw) if self.combined else raw

    def _note(self, ev: _Ev, text: str, fault: Optional[str] = None, extra: bool = False) -> None:
        hub = self.hub
        if extra:
            hub.c["fault_frames"] += 1
        else:
            hub.c["events"] += 1
            self.events_sent += 1
            hub.events_by_symbol[ev.sym] += 1
            if ev.final:
                hub.finals_sent[ev.sym] += 1
        hub.log.append((int(time.time() * 1000), self.id, ev.stream, ev.E, ev.ot, ev.final, fault, text))

    async def _deliver(self, events: Iterable[_Ev]) -> None:
        hub = self.hub
        out: List[str] = []
        drop_after = hub.cfg["drop_after_frames"]
        for ev in events:
            if self.closing:
                return
            if drop_after and self.events_sent >= drop_after:
                if out:
                    await self._write(out)
                self.abort("drop_after_frames")
                return
            rule = hub.pick(self, ev) if hub.rules else None
            text = self._frame(ev.stream, ev.raw)
            kind = rule["kind"] if rule is not None else None
            if kind is None:
                out.append(text)
                self._note(ev, text)
            elif kind == "duplicate":
                out += [text, text]
                self._note(ev, text)
                self._note(ev, text, "duplicate", extra=True)
            elif kind == "reorder":
                self._note(ev, text, "reorder")
                if ev.sym in self.held:
                    out.append(self.held.pop(ev.sym))
                self.held[ev.sym] = text
                continue
            elif kind in ("malformed", "future", "past", "shutdown", "oversize"):
                bad = self._fault_frame(rule, ev)
                out += [bad, text]
                self._note(ev, bad, kind, extra=True)
                self._note(ev, text)
                if kind == "shutdown":
                    hub.c["shutdown_notices"] += 1
                    if rule.get("close_after_s") is not None:
                        self._loop.call_later(rule["close_after_s"], lambda: self.spawn(
                            self.close(1001, "Server shutdown", "shutdown_fault")))
            elif kind == "drop":
                if out:
                    await self._write(out)
                self._note(ev, "", "drop", extra=True)
                self.abort("drop_fault")
                return
            elif kind == "close":
                if out:
                    await self._write(out)
                self._note(ev, "", "close", extra=True)
                await self.close(rule["code"], rule["reason"], "close_fault")
                return
            elif kind == "silence":
                if out:
                    await self._write(out)
                    out = []
                self.silent_until = self._loop.time() + rule["seconds"]
                await self._wait_silence()
                if self.closing:
                    return
                out.append(text)
                self._note(ev, text, "silence")
            if ev.sym in self.held and kind != "reorder":
                out.append(self.held.pop(ev.sym))
            if len(out) >= 128:
                await self._write(out)
                out = []
                await asyncio.sleep(0)   # let other connections and the control API run
        if out:
            await self._write(out)

    def _fault_frame(self, rule: Dict[str, Any], ev: _Ev) -> str:
        kind = rule["kind"]
        if kind == "shutdown":
            return '{"e":"serverShutdown","E":%d}' % self.rp.clock.now_ms()
        if kind == "oversize":
            # one text frame of valid JSON, padded far past any real event
            return '{"stream":"%s","data":{"pad":"%s"}}' % (ev.stream, "x" * rule["bytes"])
        if kind == "malformed":
            mode = rule["mode"]
            if rule.get("text") is not None:
                return str(rule["text"])
            if mode == "junk":
                return "\x00garbage}{<html>not json"
            if mode == "truncated":
                t = self._frame(ev.stream, ev.raw)
                return t[: len(t) // 2]
            d = json.loads(ev.raw)   # "missing": a JSON object without some required fields
            for k in ("c", "x", "T"):
                d["k"].pop(k, None)
            return self._frame(ev.stream, json.dumps(d, separators=(",", ":")))
        if kind == "future":
            shift = int(rule["days"] * DAY_MS)
            raw = (_K_HEAD % (ev.E + shift, ev.sym, ev.ot + shift, ev.close + shift, ev.sym)
                   + ev.raw[ev.raw.index('"i":"1m"'):])
            return self._frame(ev.stream, raw)
        # past: the final event of a minute `days` before (recorded values if it exists)
        pot = ev.ot - int(rule["days"] * DAY_MS)
        store = self.rp.store
        if store.exists(ev.sym, pot):
            pc = pot + store.close_offset(ev.sym, pot)
            pe = self.hub.render(ev.sym, ev.stream, pot, pc, pc + 1, True)
            raw = _K_HEAD % (ev.E, ev.sym, pot, pc, ev.sym) + pe.raw[pe.raw.index('"i":"1m"'):]
        else:
            raw = (_K_HEAD % (ev.E, ev.sym, pot, pot + MINUTE_MS - 1, ev.sym)
                   + ev.raw[ev.raw.index('"i":"1m"'):].replace('"x":false', '"x":true'))
        return self._frame(ev.stream, raw)

    async def gen_loop(self) -> None:
        clock, hub = self.rp.clock, self.hub
        try:
            while not self.closing:
                cfg = hub.cfg
                now = clock.now_ms()
                if now < self.cur:          # the clock went back: no replay, restart from now
                    self.cur = now
                max_age = cfg["max_age_ms"]
                notice = cfg["shutdown_notice_ms"]
                target = now
                if max_age > 0:   # stop at the age limit, and at the shutdown notice
                    target = min(target, self.cur + max(0, max_age - self.age_ms))
                    if notice > 0 and not self.notice_sent:
                        target = min(target, self.cur + max(0, max_age - notice - self.age_ms))
                if target > self.cur:
                    await self._deliver(self._events(self.cur, target))
                    if self.closing:
                        return
                    self.age_ms += target - self.cur
                    self.cur = target
                    lag = clock.now_ms() - target
                    if lag > self.max_lag_ms:
                        self.max_lag_ms = lag
                        hub.max_lag_ms = max(hub.max_lag_ms, lag)
                if (max_age > 0 and notice > 0 and not self.notice_sent
                        and self.age_ms >= max_age - notice):
                    self.notice_sent = True
                    hub.c["shutdown_notices"] += 1
                    await self._write(['{"e":"serverShutdown","E":%d}' % self.cur])
                if max_age > 0 and self.age_ms >= max_age:
                    hub.c["age_closes"] += 1
                    await self.close(1000, "Connection age limit reached", "max_age")
                    return
                # next virtual time something is due
                U = cfg["update_ms"]
                m0 = _floor_min(self.cur)
                nxt = min(m0 + ((self.cur - m0) // U + 1) * U, m0 + MINUTE_MS)
                if not self.active:
                    nxt = None
                if max_age > 0:
                    due = [self.cur + (max_age - self.age_ms)]
                    if notice > 0 and not self.notice_sent:
                        due.append(self.cur + max(1, max_age - notice - self.age_ms))
                    nxt = min(due) if nxt is None else min([nxt] + due)
                await self._sleep(None if nxt is None else clock.wall_seconds_until(nxt))
        except (ConnectionError, RuntimeError):
            pass
        except Exception:   # a bug: say so, and don't leave a silent connection behind
            import traceback
            traceback.print_exc(file=sys.stderr)
            await self.close(1011, "Internal error", "internal_error")


class _App:
    """The aiohttp application around a Replay."""

    def __init__(self, rp: Replay):
        self.rp = rp
        app = web.Application()
        for path in ENDPOINTS:
            app.router.add_route("GET", path, self.rest)
        app.router.add_route("*", "/api/{tail:.*}", self.rest)
        app.router.add_get("/_replay/clock", self.c_clock_get)
        app.router.add_post("/_replay/clock", self.c_clock_post)
        app.router.add_get("/_replay/stats", self.c_stats)
        app.router.add_get("/_replay/log", self.c_log)
        app.router.add_post("/_replay/reset_stats", self.c_reset_stats)
        app.router.add_get("/_replay/faults", self.c_faults_get)
        app.router.add_post("/_replay/faults", self.c_faults_post)
        app.router.add_delete("/_replay/faults", self.c_faults_delete)
        app.router.add_get("/_replay/limits", self.c_limits_get)
        app.router.add_post("/_replay/limits", self.c_limits_post)
        app.router.add_get("/_replay/info", self.c_info)
        app.router.add_get("/ws", self.ws_handler)
        app.router.add_get("/ws/{tail:.*}", self.ws_handler)
        app.router.add_get("/stream", self.ws_handler)
        app.router.add_get("/stream/", self.ws_handler)
        app.router.add_get("/_replay/ws_faults", self.c_ws_faults_get)
        app.router.add_post("/_replay/ws_faults", self.c_ws_faults_post)
        app.router.add_delete("/_replay/ws_faults", self.c_ws_faults_delete)
        app.router.add_get("/_replay/ws_log", self.c_ws_log)
        app.router.add_get("/_replay/ws_config", self.c_ws_config_get)
        app.router.add_post("/_replay/ws_config", self.c_ws_config_post)
        app.router.add_post("/_replay/ws_disconnect", self.c_ws_disconnect)
        rp.archive.attach(app)
        app.router.add_post("/_replay/list", self.c_list)
        app.router.add_post("/_replay/delist", self.c_delist)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        self.app = app

    async def _on_startup(self, app) -> None:
        self.rp.ws.attach(asyncio.get_running_loop())
        for sym in self.rp.base.symbols:   # trade id prefix sums (once per process)
            self.rp.base.trade_prefix(sym)

    async def _on_shutdown(self, app) -> None:
        hub = self.rp.ws
        conns = list(hub.conns.values())
        for c in conns:
            c.spawn(c.close(1001, "Server shutdown", "server_shutdown"))
        if conns:
            await asyncio.sleep(0.05)

    # ---- websocket streams ---------------------------------------------------------
    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        hub = self.rp.ws
        if request.path.startswith("/stream"):
            combined = True
            raw = request.query.get("streams", "")
        else:
            combined = False
            raw = request.path[len("/ws/"):] if request.path.startswith("/ws/") else ""
        streams = [x for x in raw.split("/") if x]
        if not hub.admit(request.remote or "?"):
            return web.Response(status=429, text="too many connection attempts")
        if hub.is_banned(request.remote or "?"):
            hub.c["banned_refused"] += 1
            return web.Response(status=418, text="IP banned: repeatedly disconnected for "
                                                 "sending too many messages")
        if len(streams) > hub.cfg["max_streams"]:
            return web.Response(status=400, text=f"too many streams (max {hub.cfg['max_streams']})")
        ws = web.WebSocketResponse(autoping=False, compress=False, timeout=2.0,
                                   max_msg_size=1 << 20)
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="websocket upgrade expected")
        start_v = self.rp.clock.now_ms()   # before the 101 reaches the client
        writer = await ws.prepare(request)
        conn = WsConn(hub, ws, request, writer, combined, streams, start_v)
        hub.conns[conn.id] = conn
        hub.c["opened"] += 1
        gen = conn.spawn(conn.gen_loop())
        pinger = conn.spawn(conn.ping_loop())
        try:
            await conn.read_loop()
        except (ConnectionError, RuntimeError, asyncio.TimeoutError):
            pass
        finally:
            conn.closing = True
            conn.wake()
            for t in (gen, pinger):   # a task inside close() finishes the close handshake
                if t is not conn._closer and not t.done():
                    t.cancel()
            try:
                await asyncio.wait_for(asyncio.gather(*conn._tasks, return_exceptions=True), 3.0)
            except asyncio.TimeoutError:
                pass
            hub.conns.pop(conn.id, None)
            hub.c["closed"] += 1
        return ws

    async def c_ws_faults_get(self, request):
        return self._json({"rules": self.rp.ws.fault_rules()})

    async def c_ws_faults_post(self, request):
        try:
            b = await self._body(request)
            rules = b.get("rules", [b]) if isinstance(b, dict) else b
            ids = self.rp.ws.add_faults(list(rules))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            return self._json({"error": str(e)}, 400)
        return self._json({"ids": ids, "rules": self.rp.ws.fault_rules()})

    async def c_ws_faults_delete(self, request):
        self.rp.ws.clear_faults()
        return self._json({"ok": True})

    async def c_ws_log(self, request):
        last = request.query.get("last")
        try:
            return self._json(self.rp.ws.log_entries(int(last) if last else None))
        except ValueError as e:
            return self._json({"error": str(e)}, 400)

    async def c_ws_config_get(self, request):
        return self._json(dict(self.rp.ws.cfg))

    async def c_ws_config_post(self, request):
        try:
            b = await self._body(request)
            return self._json(self.rp.ws.set_config(b))
        except (ValueError, TypeError, AttributeError) as e:
            return self._json({"error": str(e)}, 400)

    async def c_ws_disconnect(self, request):
        try:
            b = await self._body(request)
            n = self.rp.ws.disconnect_all(int(b.get("code", 1001)), str(b.get("reason", "Server closing")))
        except (ValueError, TypeError, AttributeError) as e:
            return self._json({"error": str(e)}, 400)
        return self._json({"closed": n})

    # ---- REST --------------------------------------------------------------------
    async def rest(self, request: web.Request) -> web.StreamResponse:
        rp = self.rp
        path = request.path
        rp.requests_total += 1
        rp.req_by_path[path] += 1
        now = rp._wall()
        rp._roll_window(now)
        weight = WEIGHTS.get(path, 1)
        fault: Optional[Dict[str, Any]] = None
        retry_after: Optional[int] = None
        nkl = 0

        if rp.latency_ms > 0:
            await asyncio.sleep(rp.latency_ms / 1000.0)

        ip = request.remote or "?"
        if rp.ban_escalation > 0 and now < rp.ip_banned_until(ip):
            if rp.in_flight(rp.ip_ban_issued(ip), now):
                until = rp.ip_banned_until(ip)
            else:
                rp.violations += 1
                until = rp.escalate_ban(ip, now)
            retry_after = max(1, math.ceil(until - now))
            res = _Result(418, _err_body(-1003, "Way too much request weight used; IP banned "
                                                "until %d. Please use WebSocket Streams for live "
                                                "updates to avoid bans." % int(until * 1000)))
        elif now < rp._ban_until:
            if not rp.in_flight(rp._ban_issued, now):
                rp.violations += 1
            retry_after = max(1, math.ceil(rp._ban_until - now))
            res = _Result(418, _err_body(-1003, "Way too much request weight used; IP banned "
                                                "until %d. Please use WebSocket Streams for live "
                                                "updates to avoid bans." % int(rp._ban_until * 1000)))
        elif rp.weight_limit > 0 and rp._used + weight > rp.weight_limit:
            rp.rate_limited += 1
            reset_at = (rp._win + 1) * 60.0
            rp._ban_until = max(rp._ban_until, reset_at)
            rp._ban_issued = now
            retry_after = max(1, math.ceil(reset_at - now))
            res = _Result(429, _err_body(-1003, "Too much request weight used; current limit is "
                                                "%d request weight per 1 MINUTE. Please use WebSocket "
                                                "Streams for live updates to avoid polling the API."
                                         % rp.weight_limit))
        else:
            rp._used += weight
            fault = rp.pick_fault(path, request.query.get("symbol"))
            res = None
            if fault is not None and fault["kind"] == "slow":
                await asyncio.sleep(fault["delay_ms"] / 1000.0)
            if fault is not None and fault["kind"] == "status":
                res = self._status_fault(fault)
                if "retry_after" in fault and fault["retry_after"] is not None:
                    retry_after = fault["retry_after"]
                    if fault["status"] in (418, 429):
                        rp.ban(retry_after)
            if res is None:
                ep = ENDPOINTS.get(path)
                if ep is None:
                    res = _Result(404, b"", "text/plain")
                else:
                    try:
                        res = ep(rp, request)
                    except BinanceError as e:
                        res = _Result(e.status, _err_body(e.code, e.msg))
                if fault is not None and fault["kind"] == "bad_kline":
                    _apply_bad_kline(fault, res)
                if fault is not None and fault["kind"] == "short_page":
                    _apply_short_page(fault, res)
                if fault is not None and fault["kind"] == "time_skew" and res.status == 200:
                    res = _Result(200, b'{"serverTime":%d}' % (rp.clock.now_ms()
                                                               + fault["offset_ms"]))

        headers = {"Content-Type": res.content_type, WEIGHT_HEADER: str(rp._used)}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        headers.update(res.extra_headers)
        kind = fault["kind"] if fault is not None else None
        if res.status == 200 and res.rows is not None and kind not in ("truncate", "malformed"):
            nkl = len(res.rows)
            rp.klines_served += nkl
        rp.resp_by_status[str(res.status)] += 1
        rp.log.append({"t_ms": int(now * 1000), "vt_ms": rp.clock.now_ms(), "method": request.method,
                       "path": path, "query": request.query_string, "status": res.status,
                       "klines": nkl, "weight": rp._used,
                       "fault": fault["id"] if fault is not None else None})

        if kind == "malformed":
            body = fault.get("body")
            body = body.encode() if isinstance(body, str) else _malformed_body(res.body)
            return web.Response(status=200, body=body, headers=headers)
        if kind == "oversize":
            # A hostile or broken server: a body far larger than any real answer,
            # streamed, so the server itself holds little of it.
            resp = web.StreamResponse(status=200, headers=headers)
            await resp.prepare(request)
            chunk, left = b" " * (1 << 20), fault["bytes"]
            await resp.write(b"[")
            try:
                while left > 0:
                    await resp.write(chunk[:left])
                    left -= len(chunk)
                await resp.write(b"]")
            except (ConnectionError, RuntimeError):
                pass  # the client hung up, as it should
            return resp
        if kind == "truncate":
            full = res.body
            half = full[: len(full) // 2]
            if fault["mode"] == "short":
                return web.Response(status=res.status, body=half, headers=headers)
            resp = web.StreamResponse(status=res.status, headers=headers)
            resp.content_length = len(full)
            await resp.prepare(request)
            if half:
                await resp.write(half)
            if request.transport is not None:
                request.transport.close()
            return resp
        return web.Response(status=res.status, body=res.body, headers=headers)

    @staticmethod
    def _status_fault(rule: Dict[str, Any]) -> _Result:
        st = rule["status"]
        if "body" in rule and rule["body"] is not None:
            b = rule["body"]
            body = b.encode() if isinstance(b, str) else json.dumps(b).encode()
            return _Result(st, body, rule.get("content_type", JSON_CT if st < 500 else "text/html"))
        if st == 429:
            return _Result(st, _err_body(-1003, "Too much request weight used; current limit is "
                                                "6000 request weight per 1 MINUTE. Please use "
                                                "WebSocket Streams for live updates to avoid polling "
                                                "the API."))
        if st == 418:
            return _Result(st, _err_body(-1003, "Way too much request weight used; IP banned until "
                                                "%d. Please use WebSocket Streams for live updates to "
                                                "avoid bans." % int((time.time() + (rule.get("retry_after") or 120)) * 1000)))
        if 400 <= st < 500:
            return _Result(st, _err_body(rule.get("code", -1000),
                                         rule.get("msg", "An unknown error occurred while "
                                                         "processing the request.")))
        html = _HTML_5XX.get(st, f"<html><body><h1>{st} Error</h1></body></html>\r\n")
        return _Result(st, html.encode(), "text/html")

    # ---- control -------------------------------------------------------------------
    @staticmethod
    def _json(obj: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, text=json.dumps(obj), content_type="application/json")

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw.strip():
            return {}
        return json.loads(raw)

    async def c_list(self, request):
        """{"symbol": S, "at_ms": T (default now)}: S is listed at T (Replay.list_at)."""
        body = await self._body(request)
        return self._json({"at_ms": self.rp.list_at(body["symbol"], body.get("at_ms"))})

    async def c_delist(self, request):
        """{"symbol": S, "at_ms": T (default now)}: S stops trading at T (Replay.delist)."""
        body = await self._body(request)
        return self._json({"at_ms": self.rp.delist(body["symbol"], body.get("at_ms"))})

    async def c_info(self, request):
        st = self.rp.store
        return self._json({"symbols": st.symbols, "data_start_ms": st.origin_ms,
                           "data_end_ms": st.data_end_ms, "period_ms": st.period_ms,
                           "clock": self.rp.clock.state(),
                           "gaps": [{k: g[k] for k in ("from_ms", "to_ms", "symbol", "shorten", "source")}
                                    for g in st.gap_rules()]})

    async def c_clock_get(self, request):
        return self._json(self.rp.clock.state())

    async def c_clock_post(self, request):
        try:
            b = await self._body(request)
            now_ms = parse_time_ms(b["now_ms"]) if b.get("now_ms") is not None else None
            st = self.rp.clock.set(now_ms=now_ms, speed=b.get("speed"), advance_ms=b.get("advance_ms"))
        except (ValueError, TypeError, KeyError) as e:
            return self._json({"error": str(e)}, 400)
        return self._json(st)

    async def c_stats(self, request):
        return self._json(self.rp.stats(with_log=request.query.get("log") in ("1", "true")))

    async def c_log(self, request):
        return self._json(list(self.rp.log))

    async def c_reset_stats(self, request):
        self.rp.reset_stats()
        return self._json({"ok": True})

    async def c_faults_get(self, request):
        return self._json({"rules": self.rp.fault_rules()})

    async def c_faults_post(self, request):
        try:
            b = await self._body(request)
            rules = b.get("rules", [b]) if isinstance(b, dict) else b
            ids = self.rp.add_faults(list(rules))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            return self._json({"error": str(e)}, 400)
        return self._json({"ids": ids, "rules": self.rp.fault_rules()})

    async def c_faults_delete(self, request):
        self.rp.clear_faults()
        return self._json({"ok": True})

    async def c_limits_get(self, request):
        st = self.rp.stats()
        return self._json({k: st[k] for k in ("weight_used", "weight_limit", "weight_window_reset_in_s",
                                              "banned_for_s", "violations", "rate_limited")})

    async def c_limits_post(self, request):
        try:
            b = await self._body(request)
            if b.get("reset", True):
                self.rp.reset_limits(b.get("weight_limit"))
            elif "weight_limit" in b:
                self.rp.weight_limit = int(b["weight_limit"])
            if "latency_ms" in b:
                self.rp.latency_ms = int(b["latency_ms"])
        except (ValueError, TypeError) as e:
            return self._json({"error": str(e)}, 400)
        return await self.c_limits_get(request)


# --------------------------------------------------------------------------------------
# server wrapper: background thread with its own event loop
# --------------------------------------------------------------------------------------

# --------------------------------------------------------------------------------------
# --profile binance: the real exchange's hostilities, together
# --------------------------------------------------------------------------------------

_WAF_403 = ("<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n"
            "<center><h1>403 Forbidden</h1></center>\r\n<hr><center>CloudFront</center>\r\n"
            "</body>\r\n</html>\r\n")

# Spaced by primes so they rarely meet on one request (the first matching rule wins);
# `every` makes a long run meet each of them again and again.
BINANCE_PROFILE_RULES: List[Dict[str, Any]] = [
    {"kind": "status", "status": 503, "after": 3, "every": 37, "count": -1},      # HTML 5xx
    {"kind": "short_page", "keep": 300, "after": 2, "every": 29, "count": -1},    # lagging replica
    {"kind": "status", "status": 503, "after": 5, "every": 43, "count": -1,
     "body": {"code": -1008, "msg": "Server is currently overloaded with other requests. "
                                    "Please try again in a few minutes."}},
    {"kind": "status", "status": 403, "after": 7, "every": 61, "count": -1,       # the WAF
     "body": _WAF_403, "content_type": "text/html"},
    {"kind": "status", "status": 429, "retry_after": 1, "after": 11, "every": 53, "count": -1},
    {"kind": "short_page", "keep": 0, "after": 13, "every": 41, "count": -1},     # an empty page
    {"kind": "time_skew", "offset_ms": DAY_MS, "after": 5, "every": 50, "count": -1},
]

BINANCE_PROFILE = {
    "weight_limit": REAL_WEIGHT_LIMIT,
    "ban_escalation": 120.0,        # "from 2 minutes to 3 days", per IP, outliving clients
    "rest_lag_ms": 3000,            # klines reach REST a little after their minute closes
    "ws_conn_limit_5min": 300,      # connection attempts per IP per 5 minutes
    "ws_ping_interval": 20.0,
    "ws_trade_driven": 1,           # kline events only when a trade happened
}


def profile_kwargs(name: Optional[str], kw: Dict[str, Any]) -> Dict[str, Any]:
    """ReplayServer keyword arguments with profile @name's defaults under @kw
    (what the caller gives wins; the profile's fault rules come first)."""
    if not name:
        return kw
    if name != "binance":
        raise ValueError(f"unknown profile {name!r}; profiles: ['binance']")
    out = dict(kw)
    for k, v in BINANCE_PROFILE.items():
        if not out.get(k):
            out[k] = v
    out["faults"] = [dict(r) for r in BINANCE_PROFILE_RULES] + list(kw.get("faults") or ())
    return out


class ReplayServer:
    """Runs the replay exchange in a background thread (own asyncio loop).

    ReplayServer(data_dir=None, port=0, host="127.0.0.1", start=None, speed=1.0,
                 tile_until=None, weight_limit=0, latency_ms=0, halts=(), faults=(),
                 shutdown_timeout=1.0, wall=time.time)

    Websocket and benchmark options: gen_symbols=0, ws_ping_interval=20.0 (s),
    ws_pong_timeout=60.0 (s), ws_max_age_ms=86400000, ws_shutdown_notice_ms=0,
    ws_max_msgs_per_s=5, ws_update_ms=2000, ws_max_streams=1024, ws_burst_events=512,
    ws_faults=(), ws_log_size=10000. Hostile options: ban_escalation=0.0 (s),
    rest_lag_ms=0, ws_quiet_symbols="", ws_conn_limit_5min=0, ws_drop_after_frames=0, and
    profile="binance" (all of the realistic ones together, see BINANCE_PROFILE).

    start() -> self (blocks until listening), stop(); usable as a context manager.
    Attributes after start: port, rest_url, ws_url, replay (the Replay core: .clock, .store,
    .ws).  Control helpers (thread-safe, same effect as the /_replay/ API): now_ms(),
    set_clock(), add_faults(), clear_faults(), stats(), reset_stats(), reset_limits(), info(),
    ws_stats(), add_ws_faults(), clear_ws_faults(), ws_faults(), ws_log(), ws_config(),
    ws_disconnect_all()."""

    def __init__(self, data_dir: Optional[str] = None, port: int = 0, host: str = "127.0.0.1",
                 start: Any = None, speed: float = 1.0, tile_until: Any = None,
                 weight_limit: int = 0, latency_ms: int = 0, halts: Iterable[Any] = (),
                 faults: Iterable[Dict] = (), shutdown_timeout: float = 1.0,
                 wall: Callable[[], float] = time.time, gen_symbols: int = 0,
                 ws_ping_interval: float = 20.0, ws_pong_timeout: float = 60.0,
                 ws_max_age_ms: int = 86_400_000, ws_shutdown_notice_ms: int = 0,
                 ws_max_msgs_per_s: int = 5, ws_update_ms: int = 2000,
                 ws_max_streams: int = 1024, ws_burst_events: int = 512,
                 ws_quiet_symbols: str = "", ws_conn_limit_5min: int = 0,
                 ws_drop_after_frames: int = 0, ws_trade_driven: int = 0,
                 ws_faults: Iterable[Dict] = (), ws_log_size: int = 10000,
                 ssl_context: Any = None, ban_escalation: float = 0.0,
                 hisupply: Iterable[str] = (),
                 rest_lag_ms: int = 0, profile: Optional[str] = None,
                 archive_bandwidth_bps: int = 0, archive_latency_ms: int = 0,
                 archive_faults: Iterable[Dict] = ()):
        if profile:
            kw = profile_kwargs(profile, {
                "weight_limit": weight_limit, "ban_escalation": ban_escalation,
                "rest_lag_ms": rest_lag_ms, "ws_conn_limit_5min": ws_conn_limit_5min,
                "ws_ping_interval": ws_ping_interval, "ws_trade_driven": ws_trade_driven,
                "faults": list(faults)})
            weight_limit, ban_escalation, rest_lag_ms = (kw["weight_limit"],
                                                         kw["ban_escalation"], kw["rest_lag_ms"])
            ws_conn_limit_5min, ws_ping_interval = kw["ws_conn_limit_5min"], kw["ws_ping_interval"]
            faults, ws_trade_driven = kw["faults"], kw["ws_trade_driven"]
        # ssl_context: an ssl.SSLContext to serve https:// and wss:// instead.
        # wall: the wall clock (epoch seconds) of the weight windows and bans; tests may
        # inject a fake one.  The virtual clock always runs on time.monotonic.
        ws_config = {"ping_interval_s": ws_ping_interval, "pong_timeout_s": ws_pong_timeout,
                     "max_age_ms": ws_max_age_ms, "shutdown_notice_ms": ws_shutdown_notice_ms,
                     "max_msgs_per_s": ws_max_msgs_per_s, "update_ms": ws_update_ms,
                     "max_streams": ws_max_streams, "burst_events": ws_burst_events,
                     "quiet_symbols": ws_quiet_symbols, "conn_limit_5min": ws_conn_limit_5min,
                     "drop_after_frames": ws_drop_after_frames,
                     "trade_driven": int(ws_trade_driven)}
        self.replay = Replay(data_dir=data_dir, start=start, speed=speed, tile_until=tile_until,
                             weight_limit=weight_limit, latency_ms=latency_ms, halts=halts,
                             faults=faults, wall=wall, gen_symbols=gen_symbols,
                             ws_config=ws_config, ws_faults=ws_faults, ws_log_size=ws_log_size,
                             ban_escalation=ban_escalation, hisupply=hisupply,
                             archive={"bandwidth_bps": archive_bandwidth_bps,
                                      "latency_ms": archive_latency_ms,
                                      "faults": list(archive_faults)})
        self.replay.rest_lag_ms = int(rest_lag_ms)
        self.host = host
        self.requested_port = int(port)
        self.port: Optional[int] = None
        self.rest_url: Optional[str] = None
        self.ws_url: Optional[str] = None
        self._shutdown_timeout = shutdown_timeout
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._runner: Optional[web.AppRunner] = None
        self._ssl = ssl_context

    # lifecycle
    def start(self) -> "ReplayServer":
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.requested_port))
        sock.listen(512)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        tls = "s" if self._ssl is not None else ""
        self.rest_url = f"http{tls}://{self.host}:{self.port}"
        self.ws_url = f"ws{tls}://{self.host}:{self.port}"
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: List[BaseException] = []

        def run() -> None:
            loop = self._loop
            asyncio.set_event_loop(loop)
            try:
                # long request lines: /stream?streams=... with hundreds of streams
                self._runner = web.AppRunner(_App(self.replay).app, access_log=None,
                                             shutdown_timeout=self._shutdown_timeout,
                                             max_line_size=65536, max_field_size=65536)
                loop.run_until_complete(self._runner.setup())
                loop.run_until_complete(web.SockSite(self._runner, sock, ssl_context=self._ssl).start())
            except BaseException as e:  # pragma: no cover
                failure.append(e)
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                try:
                    loop.run_until_complete(self._runner.cleanup())
                finally:
                    loop.close()

        self._thread = threading.Thread(target=run, name=f"binance-replay-{self.port}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> "ReplayServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def info(self) -> Dict[str, Any]:
        return {"port": self.port, "rest_url": self.rest_url, "ws_url": self.ws_url}

    # control helpers: run on the server loop so they never race a request
    def _call(self, fn: Callable[[], Any]) -> Any:
        if self._thread is None:
            return fn()

        async def wrapped():
            return fn()
        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout=10)

    def now_ms(self) -> int:
        return self.replay.clock.now_ms()

    def set_clock(self, now_ms: Any = None, speed: Optional[float] = None,
                  advance_ms: Optional[int] = None) -> Dict[str, Any]:
        n = parse_time_ms(now_ms) if now_ms is not None else None
        return self._call(lambda: self.replay.clock.set(now_ms=n, speed=speed, advance_ms=advance_ms))

    def add_faults(self, rules: Any) -> List[int]:
        if isinstance(rules, dict):
            rules = [rules]
        return self._call(lambda: self.replay.add_faults(list(rules)))

    def delist(self, symbol: str, at_ms: Optional[int] = None) -> int:
        return self._call(lambda: self.replay.delist(symbol, at_ms))

    def list_at(self, symbol: str, at_ms: Optional[int] = None) -> int:
        return self._call(lambda: self.replay.list_at(symbol, at_ms))

    # data.binance.vision (replay_archive.py): the same host serves /data/spot/...
    def archive_stats(self) -> Dict[str, Any]:
        return self._call(self.replay.archive.stats)

    def add_archive_faults(self, rules: Any) -> List[int]:
        if isinstance(rules, dict):
            rules = [rules]
        return self._call(lambda: self.replay.archive.add_faults(list(rules)))

    def clear_archive_faults(self) -> None:
        self._call(self.replay.archive.clear_faults)

    def clear_faults(self) -> None:
        self._call(self.replay.clear_faults)

    def faults(self) -> List[Dict[str, Any]]:
        return self._call(self.replay.fault_rules)

    def stats(self, with_log: bool = False) -> Dict[str, Any]:
        return self._call(lambda: json.loads(json.dumps(self.replay.stats(with_log))))

    def reset_stats(self) -> None:
        self._call(self.replay.reset_stats)

    def reset_limits(self, weight_limit: Optional[int] = None) -> None:
        self._call(lambda: self.replay.reset_limits(weight_limit))

    def add_halt(self, from_ms: Any, to_ms: Any, symbol: Optional[str] = None, shorten: bool = True):
        a, b = parse_time_ms(from_ms), parse_time_ms(to_ms)
        return self._call(lambda: self.replay.store.add_gap(a, b, symbol, shorten, "halt"))

    # websocket side
    def ws_stats(self) -> Dict[str, Any]:
        return self._call(lambda: json.loads(json.dumps(self.replay.ws.stats())))

    def add_ws_faults(self, rules: Any) -> List[int]:
        if isinstance(rules, dict):
            rules = [rules]
        return self._call(lambda: self.replay.ws.add_faults(list(rules)))

    def clear_ws_faults(self) -> None:
        self._call(self.replay.ws.clear_faults)

    def ws_faults(self) -> List[Dict[str, Any]]:
        return self._call(self.replay.ws.fault_rules)

    def ws_log(self, last: Optional[int] = None) -> List[Dict[str, Any]]:
        """The last kline frames sent (all connections): conn, stream, E, t, x, fault, text."""
        return self._call(lambda: self.replay.ws.log_entries(last))

    def ws_config(self, **changes: Any) -> Dict[str, Any]:
        """Read or change ping_interval_s, pong_timeout_s, max_age_ms, shutdown_notice_ms,
        max_msgs_per_s, rate_ban_after, rate_ban_s, max_request_bytes, update_ms, max_streams
        (applies to open connections too)."""
        return self._call(lambda: self.replay.ws.set_config(changes))

    def ws_disconnect_all(self, code: int = 1001, reason: str = "Server closing") -> int:
        return self._call(lambda: self.replay.ws.disconnect_all(code, reason))


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------

def _parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Binance spot REST + kline websocket replay exchange "
                                            "(virtual time, faults).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--profile", choices=["binance"], default=None,
                   help="turn on the real exchange's hostilities together (WAF 403s, -1003/-1008, "
                        "5xx, short and empty pages, a wrong /time now and then, REST "
                        "publication lag, the real weight limit, escalating per-IP bans, "
                        "connection-attempt limits); explicit options and --faults add to it")
    p.add_argument("--ws-trade-driven", action="store_true",
                   help="websocket: a running kline update only when a trade happened since "
                        "the last tick (as Binance: events only on a change)")
    p.add_argument("--rest-lag-ms", type=int, default=0,
                   help="serve a minute over REST only this many virtual ms after it closes")
    p.add_argument("--port", type=int, default=0, help="0 = any free port (printed)")
    p.add_argument("--data", default=DEFAULT_DATA_DIR, help="dir of SYMBOL-1m-YYYY-MM.csv.gz")
    p.add_argument("--start", default=None,
                   help="virtual start (ISO UTC or ms); default: end of data")
    p.add_argument("--speed", type=float, default=1.0,
                   help="virtual seconds per wall second (0 = frozen)")
    p.add_argument("--tile-until", default=None,
                   help="YYYY-MM-DD: repeat the recorded period forward up to this date (exclusive)")
    p.add_argument("--weight-limit", type=int, default=0,
                   help="request weight per wall-clock minute (0 = not enforced; Binance: 6000)")
    p.add_argument("--latency-ms", type=int, default=0, help="added to every REST response")
    p.add_argument("--halt", action="append", default=[],
                   help="FROM/TO (ISO UTC or ms, half-open): minutes missing for all symbols")
    p.add_argument("--faults", default=None,
                   help="JSON list of fault rules (or {\"rules\": [...]}, or @file)")
    p.add_argument("--gen-symbols", type=int, default=0,
                   help="add N synthetic symbols S0001USDT... (copies of the recorded ones, in turn)")
    p.add_argument("--hisupply", action="append", default=[],
                   help="NAME=SRC/1eA/1eB: add a high-supply copy of SRC (prices / 10^A, base "
                        "volumes * 10^B, 8 decimals), e.g. PEPEUSDT=BTCUSDT/1e5/1e8")
    p.add_argument("--ws-ping-interval", type=float, default=20.0,
                   help="websocket: server ping every N wall seconds (0 = never)")
    p.add_argument("--ws-pong-timeout", type=float, default=60.0,
                   help="websocket: close when a ping is unanswered for N wall seconds")
    p.add_argument("--ws-max-age-ms", type=int, default=86_400_000,
                   help="websocket: close after this much virtual time (0 = never)")
    p.add_argument("--ws-shutdown-notice-ms", type=int, default=0,
                   help="websocket: send serverShutdown this many virtual ms before the age limit")
    p.add_argument("--ws-max-msgs-per-s", type=int, default=5,
                   help="websocket: incoming messages per second before disconnecting (0 = no limit)")
    p.add_argument("--ws-update-ms", type=int, default=2000,
                   help="websocket: virtual ms between running kline updates")
    p.add_argument("--ws-max-streams", type=int, default=1024)
    p.add_argument("--ws-quiet-symbols", default="",
                   help="comma-separated symbols with no kline events (only pings)")
    p.add_argument("--ws-conn-limit-5min", type=int, default=0,
                   help="connection attempts per IP per 5 minutes, then 429 (Binance: 300)")
    p.add_argument("--ws-drop-after-frames", type=int, default=0,
                   help="close every connection after this many kline frames (0 = never)")
    p.add_argument("--ws-burst-events", type=int, default=512,
                   help="websocket: when more updates than this are due at once (server behind "
                        "or clock jump), send only the latest per symbol (finals always)")
    p.add_argument("--ban-escalation", type=float, default=0.0,
                   help="seconds of the first 418 ban of an IP that asks while banned; doubles on "
                        "each repetition up to 3 days, kept across client restarts (0 = off; "
                        "Binance: 120)")
    p.add_argument("--ws-faults", default=None,
                   help="JSON list of websocket fault rules (or {\"rules\": [...]}, or @file)")
    p.add_argument("--archive-bandwidth-mbit", type=float, default=0.0,
                   help="data.binance.vision: the access link shared by all downloads, Mbit/s "
                        "(0 = unlimited)")
    p.add_argument("--archive-latency-ms", type=int, default=0,
                   help="data.binance.vision: added before every archive answer")
    p.add_argument("--archive-faults", default=None,
                   help="JSON list of archive fault rules (replay_archive.py), or @file")
    return p.parse_args(argv)


def _load_rules(txt: Optional[str]) -> List[Dict]:
    if not txt:
        return []
    if txt.startswith("@"):
        with open(txt[1:], encoding="utf-8") as fh:
            txt = fh.read()
    obj = json.loads(txt)
    return obj.get("rules", [obj]) if isinstance(obj, dict) else obj


def main(argv: Optional[Sequence[str]] = None) -> int:
    a = _parse_args(argv)
    srv = ReplayServer(data_dir=a.data, port=a.port, host=a.host, start=a.start, speed=a.speed,
                       tile_until=a.tile_until, weight_limit=a.weight_limit,
                       latency_ms=a.latency_ms, halts=a.halt, faults=_load_rules(a.faults),
                       gen_symbols=a.gen_symbols, ws_ping_interval=a.ws_ping_interval,
                       ws_pong_timeout=a.ws_pong_timeout, ws_max_age_ms=a.ws_max_age_ms,
                       ws_shutdown_notice_ms=a.ws_shutdown_notice_ms,
                       ws_max_msgs_per_s=a.ws_max_msgs_per_s, ws_update_ms=a.ws_update_ms,
                       ws_max_streams=a.ws_max_streams, ws_burst_events=a.ws_burst_events,
                       ws_quiet_symbols=a.ws_quiet_symbols,
                       ws_conn_limit_5min=a.ws_conn_limit_5min,
                       ws_drop_after_frames=a.ws_drop_after_frames,
                       ws_trade_driven=int(a.ws_trade_driven),
                       ws_faults=_load_rules(a.ws_faults), ban_escalation=a.ban_escalation,
                       rest_lag_ms=a.rest_lag_ms, profile=a.profile, hisupply=a.hisupply,
                       archive_bandwidth_bps=int(a.archive_bandwidth_mbit * 125_000),
                       archive_latency_ms=a.archive_latency_ms,
                       archive_faults=_load_rules(a.archive_faults))
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    srv.start()
    sys.stdout.write(json.dumps(srv.info()) + "\n")
    sys.stdout.flush()
    while not stop.wait(0.2):
        pass
    srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
