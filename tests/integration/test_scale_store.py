"""A store of years while the daemon streams: the periodic hole search costs
what changed, not what is stored (issue 14). The store is made by `klined
import` of the recorded months tiled back over two years per symbol, so the
daemon has never searched it (as a store from before schema 8) and its
first search of the whole history runs while it streams. Then, with sqlite3
while it runs, a row is deleted and the search marks too (the whole history
is searched again), and the row comes back. From then on the loop's lag,
from the daemon's own histogram, stays within the goals (the start-up's own
lag, before the stream flows, is another matter: it is printed)."""
import calendar
import os
import gzip
import re
import sqlite3
import time
from datetime import datetime, timezone

import pytest

import oracle
from conftest import query, read_log, stop, wait_for
from test_http import free_port, metrics, sample
from test_speed import live

YEARS = (2021, 2022)  # tiled: with 2023-01 and -02 recorded, 4.4 symbol-years
JAN = 1672531200000  # 2023-01-01, the first recorded minute
DELETED = 1676032440000  # 2023-02-10T12:34:00Z: recorded, so REST has it again


def tiled_store(k, tmp_path):
    """Write SYMBOL-1m-YYYY-MM.csv for every month of YEARS from January 2023's
    rows (shifted; a month of D days takes the first D days), and import them
    with the recorded January and February."""
    files = []
    for s in ("BTCUSDT", "ETHUSDT"):
        rows = gzip.decompress((oracle.DATA / f"{s}-1m-2023-01.csv.gz").read_bytes()) \
            .decode().splitlines()
        cols = [r.split(",", 7) for r in rows]
        times = [(int(c[0]), int(c[6])) for c in cols]
        for y in YEARS:
            for m in range(1, 13):
                days = calendar.monthrange(y, m)[1]
                off = int(datetime(y, m, 1, tzinfo=timezone.utc).timestamp() * 1000) - JAN
                end = JAN + days * 86_400_000
                out = [f"{t + off},{c[1]},{c[2]},{c[3]},{c[4]},{c[5]},{ct + off},{c[7]}"
                       for (t, ct), c in zip(times, cols) if t < end]
                f = tmp_path / f"{s}-1m-{y}-{m:02d}.csv"
                f.write_text("\n".join(out) + "\n")
                files.append(str(f))
        files += [str(oracle.DATA / f"{s}-1m-2023-0{m}.csv.gz") for m in (1, 2)]
    p = k.cmd("import", *files, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    for f in files:
        if f.endswith(".csv"):
            os.remove(f)


def lag_buckets(port):
    """{le: cumulative count} of klined_loop_lag_seconds, and the max since the start."""
    text = metrics(port)
    buckets = {float(b): float(v) for b, v in re.findall(
        r'^klined_loop_lag_seconds_bucket\{le="([0-9.e+-]+)"\} (\S+)$', text, re.M)}
    buckets[float("inf")] = sample(text, "klined_loop_lag_seconds_count")
    return buckets, sample(text, "klined_loop_lag_max_seconds")


def window(a, b):
    """(p99 upper bound, samples above 100 ms, samples) of the lag between two readings."""
    d = {le: b[le] - a[le] for le in b}
    count = d[float("inf")]
    p99 = min(le for le, v in d.items() if v >= 0.99 * count)
    return p99, count - d[0.1], count


def row(db, t):
    return query(db, "SELECT open, high, low, close, volume, quote_volume, trades FROM kline_1m "
                     "WHERE symbol = 'BTCUSDT' AND open_time = ?", t)


@pytest.mark.timeout(180)
def test_loop_lag_with_years_stored_and_a_deleted_row_healed(replay, klined, kafka_broker,
                                                              kafka_topic, tmp_path):
    t0 = time.monotonic()
    srv = replay(start="2023-03-01T00:05:30Z", speed=60)
    port = free_port()
    k = live(klined, srv, kafka_broker, kafka_topic, "--http-listen", f"127.0.0.1:{port}")
    tiled_store(k, tmp_path)
    stored = query(k.db, "SELECT count(*) FROM kline")[0][0]
    assert stored >= 4 * 525_000
    built = time.monotonic() - t0
    before = row(k.db, DELETED)
    assert before
    proc = k.start()
    log = lambda: read_log(proc)  # noqa: E731
    wait_for(lambda: "kafka: consuming" in log(), timeout=60, step=0.2)
    wait_for(lambda: "history is searched for holes" in log(), timeout=60, step=0.2)
    # The machine's own noise (2 cores shared by many): 5 s of streaming and nothing else.
    idle, _ = lag_buckets(port)
    wait_for(lambda: lag_buckets(port)[0][float("inf")] - idle[float("inf")] >= 100,
             timeout=60, step=0.5)
    start, start_max = lag_buckets(port)
    idle_p99, idle_over, _ = window(idle, start)
    with sqlite3.connect(k.db) as c:
        c.execute("DELETE FROM hole_mark")
        c.execute("DELETE FROM kline WHERE sid = (SELECT sid FROM symbol WHERE symbol = "
                  "'BTCUSDT') AND open_time = ?", (DELETED,))
    assert row(k.db, DELETED) == []
    deleted_at = time.monotonic()
    wait_for(lambda: row(k.db, DELETED) == before, timeout=60, step=0.2)
    healed = time.monotonic() - deleted_at
    wait_for(lambda: log().count("history is searched for holes") >= 2, timeout=60, step=0.2)
    # At least 20 s of samples (20 a second): a p99 that a few samples cannot make. On a
    # CI machine running four such daemons under ASan, two preemptions of 20+ ms in 7.5 s
    # happened (a p99 of 158 samples is the second worst).
    wait_for(lambda: lag_buckets(port)[0][float("inf")] - start[float("inf")] >= 400,
             timeout=60, step=0.5)
    p99, over, count = window(start, lag_buckets(port)[0])
    code, err = stop(proc)
    assert code == 0, err[-3000:]
    print(f"{stored} klines built in {built:.1f} s; deleted row back in {healed:.1f} s; "
          f"loop lag p99 <= {p99 * 1e3:g} ms, {over:.0f} samples over 100 ms of {count:.0f} "
          f"(streaming alone: p99 <= {idle_p99 * 1e3:g} ms, {idle_over:.0f} over 100 ms; "
          f"start-up's max {start_max * 1e3:.0f} ms); run {time.monotonic() - t0:.1f} s")
    # The goals, p99 <= 20 ms and nothing over 100 ms, unless the machine alone misses them:
    # then the search must add nothing to its noise.
    assert p99 <= max(0.02, idle_p99), f"loop lag p99 {p99} s"
    assert over <= idle_over, f"{over} loop lags over 100 ms"
    # Found by the periodic search, not by a restart's.
    assert re.search(r"BTCUSDT: \d+ minutes? missing in \d+ ranges? from 2023-02-10T12:34:00Z",
                     err), err[-3000:]
