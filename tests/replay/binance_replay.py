#!/usr/bin/env python3
"""Replay exchange: a Binance spot REST look-alike on 127.0.0.1 for klined's tests.

It serves recorded 1-minute klines (gzip CSV files, see ../shared/data/binance/README.md)
in *virtual time*, with Binance's request weights, rate limiting (429/418 + Retry-After)
and deterministic fault injection.  Every decimal field is served as the exact
recorded source string; only the timestamps are ever computed.

Usable two ways:

* CLI::

      python3 tests/replay/binance_replay.py --port 0 [--start 2023-04-01T00:00:30Z] ...

  prints one JSON line ``{"port": N, "rest_url": ..., "ws_url": ...}`` once listening
  and serves until SIGTERM/SIGINT (then exits 0).

* Python (pytest)::

      from binance_replay import ReplayServer
      with ReplayServer(start="2023-02-01T00:00:00Z", speed=0) as srv:
          srv.rest_url  # "http://127.0.0.1:N"
          srv.set_clock(advance_ms=60000)
          srv.add_faults([{"kind": "status", "status": 503}])
          srv.stats()

The pieces meant to be shared with a future websocket side are the
:class:`VirtualClock` and :class:`KlineStore` classes (``Replay.clock``/``Replay.store``):
``store.kline_fields(symbol, open_time, now_ms)`` yields one kline (running values for
the open minute) and ``store.query(...)`` pages of them.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import datetime as _dt
import gzip
import json
import math
import os
import re
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from aiohttp import web

MINUTE_MS = 60_000
HALT_CLOSE_OFFSET_MS = 41_646  # close_time - open_time of the bar just before a halt
JSON_CT = "application/json;charset=UTF-8"
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
REAL_WEIGHT_LIMIT = 6000

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DATA_DIR = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "data", "binance"))

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
            return {"now_ms": cur, "now_iso": iso_ms(cur), "speed": self._speed}

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

    @classmethod
    def load(cls, data_dir: str) -> "BaseData":
        key = os.path.realpath(data_dir)
        with cls._cache_lock:
            bd = cls._cache.get(key)
            if bd is None:
                bd = cls(key)
                cls._cache[key] = bd
            return bd


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


def partial_kline(fields: List[Any], elapsed: int, duration: int) -> List[Any]:
    """Running values of a kline `elapsed` ms into a bar of `duration` ms (0 <= elapsed < duration).

    open = recorded open; high/low/close move linearly from open towards the recorded
    values (truncated toward open, so low <= open,close <= high always holds and high is
    non-decreasing, low non-increasing); volumes and trades grow linearly from 0
    (truncated).  At elapsed == duration the recorded values would be reached exactly."""
    elapsed = max(0, min(elapsed, duration))
    out = list(fields)
    pp = max(_scaled(fields[j])[1] for j in (1, 2, 3, 4))
    o = _scaled(fields[1])
    o_int = o[0] * 10 ** (pp - o[1])
    for j in (2, 3, 4):
        x, p = _scaled(fields[j])
        x_int = x * 10 ** (pp - p)
        out[j] = _fmt_scaled(o_int + _frac_toward_zero(x_int - o_int, elapsed, duration), pp)
    out[1] = _fmt_scaled(o_int, pp)
    # volumes: common places for base volume / taker base, and for quote / taker quote
    for a, b in ((5, 9), (7, 10)):
        va, pa = _scaled(fields[a])
        vb, pb = _scaled(fields[b])
        p = max(pa, pb)
        out[a] = _fmt_scaled(_frac_toward_zero(va * 10 ** (p - pa), elapsed, duration), p)
        out[b] = _fmt_scaled(_frac_toward_zero(vb * 10 ** (p - pb), elapsed, duration), p)
    out[8] = (int(fields[8]) * elapsed) // duration
    return out


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

FAULT_KINDS = {"status", "slow", "truncate", "malformed", "bad_kline", "missing"}


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
                 log_size: int = 10000, wall: Callable[[], float] = time.time):
        self.base = BaseData.load(data_dir or DEFAULT_DATA_DIR)
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
        self.add_faults(list(faults))

    # ---- stats --------------------------------------------------------------------
    def reset_stats(self) -> None:
        self.req_by_path: Dict[str, int] = collections.Counter()
        self.resp_by_status: Dict[str, int] = collections.Counter()
        self.klines_served = 0
        self.violations = 0
        self.rate_limited = 0
        self.requests_total = 0
        self.log: collections.deque = collections.deque(maxlen=self._log_size)
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
            "faults": [_public_rule(r) for r in self._rules]
                      + [_public_rule(g["rule"]) for g in self.store.gap_rules() if g["rule"]],
            "clock": self.clock.state(),
        }
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
            if chosen is None and r["seen"] > r["after"] and (r["count"] < 0 or r["fired"] < r["count"]):
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

    def rest_exchange_info(self, symbols: Optional[List[str]]) -> Dict[str, Any]:
        syms = self.base.symbols if symbols is None else symbols
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
            "symbols": [_symbol_info(s) for s in syms],
        }


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
    if sym not in rp.base.mid:
        raise BinanceError(-1121, "Invalid symbol.")
    return sym


def ep_ping(rp: Replay, request: web.Request) -> _Result:
    return _Result(200, b"{}")


def ep_time(rp: Replay, request: web.Request) -> _Result:
    return _Result(200, b'{"serverTime":%d}' % rp.clock.now_ms())


def ep_exchange_info(rp: Replay, request: web.Request) -> _Result:
    params = _single_params(request)
    symbols: Optional[List[str]] = None
    if "symbol" in params and "symbols" in params:
        raise BinanceError(-1128, "Combination of optional parameters invalid.")
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
            if s not in rp.base.mid:
                raise BinanceError(-1121, "Invalid symbol.")
        symbols = lst
    body = json.dumps(rp.rest_exchange_info(symbols), separators=(",", ":")).encode()
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
    now = rp.clock.now_ms()
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


def _malformed_body(body: bytes) -> bytes:
    # a prefix of the real answer cut inside a kline, followed by junk: never valid JSON
    cut = body[: max(1, min(len(body) - 1, 40))]
    return cut + b'\x00garbage}{<html>not json'


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
        self.app = app

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

        if now < rp._ban_until:
            rp.violations += 1
            retry_after = max(1, math.ceil(rp._ban_until - now))
            res = _Result(418, _err_body(-1003, "Way too much request weight used; IP banned "
                                                "until %d. Please use WebSocket Streams for live "
                                                "updates to avoid bans." % int(rp._ban_until * 1000)))
        elif rp.weight_limit > 0 and rp._used + weight > rp.weight_limit:
            rp.rate_limited += 1
            reset_at = (rp._win + 1) * 60.0
            rp._ban_until = max(rp._ban_until, reset_at)
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

class ReplayServer:
    """Runs the replay exchange in a background thread (own asyncio loop).

    ReplayServer(data_dir=None, port=0, host="127.0.0.1", start=None, speed=1.0,
                 tile_until=None, weight_limit=0, latency_ms=0, halts=(), faults=(),
                 shutdown_timeout=1.0, wall=time.time)

    start() -> self (blocks until listening), stop(); usable as a context manager.
    Attributes after start: port, rest_url, ws_url, replay (the Replay core: .clock, .store).
    Control helpers (thread-safe, same effect as the /_replay/ API): now_ms(), set_clock(),
    add_faults(), clear_faults(), stats(), reset_stats(), reset_limits(), info()."""

    def __init__(self, data_dir: Optional[str] = None, port: int = 0, host: str = "127.0.0.1",
                 start: Any = None, speed: float = 1.0, tile_until: Any = None,
                 weight_limit: int = 0, latency_ms: int = 0, halts: Iterable[Any] = (),
                 faults: Iterable[Dict] = (), shutdown_timeout: float = 1.0,
                 wall: Callable[[], float] = time.time):
        # wall: the wall clock (epoch seconds) of the weight windows and bans; tests may
        # inject a fake one.  The virtual clock always runs on time.monotonic.
        self.replay = Replay(data_dir=data_dir, start=start, speed=speed, tile_until=tile_until,
                             weight_limit=weight_limit, latency_ms=latency_ms, halts=halts,
                             faults=faults, wall=wall)
        self.host = host
        self.requested_port = int(port)
        self.port: Optional[int] = None
        self.rest_url: Optional[str] = None
        self.ws_url: Optional[str] = None
        self._shutdown_timeout = shutdown_timeout
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._runner: Optional[web.AppRunner] = None

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
        self.rest_url = f"http://{self.host}:{self.port}"
        self.ws_url = f"ws://{self.host}:{self.port}"
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: List[BaseException] = []

        def run() -> None:
            loop = self._loop
            asyncio.set_event_loop(loop)
            try:
                self._runner = web.AppRunner(_App(self.replay).app, access_log=None,
                                             shutdown_timeout=self._shutdown_timeout)
                loop.run_until_complete(self._runner.setup())
                loop.run_until_complete(web.SockSite(self._runner, sock).start())
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


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------

def _parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Binance spot REST replay exchange (virtual time, faults).")
    p.add_argument("--host", default="127.0.0.1")
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
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    a = _parse_args(argv)
    faults: List[Dict] = []
    if a.faults:
        txt = a.faults
        if txt.startswith("@"):
            with open(txt[1:], encoding="utf-8") as fh:
                txt = fh.read()
        obj = json.loads(txt)
        faults = obj.get("rules", [obj]) if isinstance(obj, dict) else obj
    srv = ReplayServer(data_dir=a.data, port=a.port, host=a.host, start=a.start, speed=a.speed,
                       tile_until=a.tile_until, weight_limit=a.weight_limit,
                       latency_ms=a.latency_ms, halts=a.halt, faults=faults)
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
