"""The replay's data.binance.vision (tests/replay/replay_archive.py): layout, checksums,
publication delays, microsecond timestamps from 2025, gaps, faults, resume, bandwidth."""

import hashlib
import http.client
import io
import json
import os
import sys
import time
import zipfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import binance_replay as br  # noqa: E402

M = 60_000
DAY = 86_400_000
MONTHLY = "/data/spot/monthly/klines/{s}/1m/{s}-1m-{p}.zip"
DAILY = "/data/spot/daily/klines/{s}/1m/{s}-1m-{p}.zip"


def get(srv, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        try:
            body = r.read()
        except http.client.IncompleteRead as e:
            body = e.partial
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


def rows_of(data):
    z = zipfile.ZipFile(io.BytesIO(data))
    (name,) = z.namelist()
    return name, z.read(name).decode().splitlines()


@pytest.fixture(scope="module")
def srv():
    # 2023-03-20 is a Monday: February's monthly file is out, March's is not.
    with br.ReplayServer(start="2023-03-20T07:00:00Z", speed=0,
                         halts=["2023-01-10T10:00:00Z/2023-01-10T11:00:00Z"]) as s:
        yield s


def test_monthly_file_is_the_rest_answer_as_csv_with_its_checksum(srv):
    st, h, data = get(srv, MONTHLY.format(s="BTCUSDT", p="2023-01"))
    assert st == 200 and h["content-type"] == "application/zip"
    name, rows = rows_of(data)
    assert name == "BTCUSDT-1m-2023-01.csv"
    # 31 days minus the one-hour halt: the gap is simply not in the file
    assert len(rows) == 31 * 1440 - 60
    f = rows[0].split(",")
    assert len(f) == 12 and f[0] == "1672531200000" and f[6] == "1672531259999"
    assert not any(r.startswith(str(br.parse_time_ms("2023-01-10T10:30:00Z"))) for r in rows)
    # the same klines, field for field, as /api/v3/klines serves them
    st, _, body = get(srv, "/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=3"
                           "&startTime=1672531200000")
    assert [",".join(str(x) for x in k) for k in json.loads(body)] == rows[:3]
    st, _, cs = get(srv, MONTHLY.format(s="BTCUSDT", p="2023-01") + ".CHECKSUM")
    assert st == 200
    assert cs.decode() == hashlib.sha256(data).hexdigest() + "  BTCUSDT-1m-2023-01.zip\n"


def test_publication_delays(srv):
    # daily: the day after, 6 h past midnight; monthly: the first Monday of the next month
    assert get(srv, DAILY.format(s="ETHUSDT", p="2023-03-18"))[0] == 200
    assert get(srv, DAILY.format(s="ETHUSDT", p="2023-03-19"))[0] == 200   # 07:00 > 06:00
    assert get(srv, DAILY.format(s="ETHUSDT", p="2023-03-20"))[0] == 404
    assert get(srv, MONTHLY.format(s="ETHUSDT", p="2023-02"))[0] == 200
    assert get(srv, MONTHLY.format(s="ETHUSDT", p="2023-03"))[0] == 404
    srv.set_clock("2023-03-06T00:00:00Z")   # the first Monday of March, 00:00
    try:
        assert get(srv, MONTHLY.format(s="ETHUSDT", p="2023-02"))[0] == 200
        srv.set_clock("2023-03-05T23:59:00Z")
        assert get(srv, MONTHLY.format(s="ETHUSDT", p="2023-02"))[0] == 404
        assert get(srv, DAILY.format(s="ETHUSDT", p="2023-02-28"))[0] == 200
    finally:
        srv.set_clock("2023-03-20T07:00:00Z")


def test_unknown_names_are_s3_404s(srv):
    for path in (MONTHLY.format(s="NOPEUSDT", p="2023-01"),          # no such symbol
                 MONTHLY.format(s="BTCUSDT", p="2022-12"),            # before the data
                 "/data/spot/monthly/klines/BTCUSDT/1m/ETHUSDT-1m-2023-01.zip",
                 "/data/spot/monthly/klines/BTCUSDT/5m/BTCUSDT-5m-2023-01.zip",
                 "/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2023-13.zip",
                 "/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2023-01.zip"):
        st, h, body = get(srv, path)
        assert st == 404, path
        assert b"<Code>NoSuchKey</Code>" in body and h["content-type"] == "application/xml"


def test_microseconds_from_2025():
    with br.ReplayServer(start="2025-02-10T00:00:00Z", tile_until="2025-02-10T00:00:00Z",
                         speed=0) as s:
        _, dec = rows_of(get(s, MONTHLY.format(s="BTCUSDT", p="2024-12"))[2])
        _, jan = rows_of(get(s, MONTHLY.format(s="BTCUSDT", p="2025-01"))[2])
    assert dec[-1].split(",")[0] == str(br.parse_time_ms("2024-12-31T23:59:00Z"))
    f = jan[0].split(",")
    assert f[0] == str(br.parse_time_ms("2025-01-01T00:00:00Z") * 1000)
    assert f[6] == str(br.parse_time_ms("2025-01-01T00:00:00Z") * 1000 + 59_999_999)


def test_faults(srv):
    p = "2023-02"
    path = MONTHLY.format(s="ETHUSDT", p=p)
    good = get(srv, path)[2]
    sha = hashlib.sha256(good).hexdigest()
    srv.add_archive_faults([{"kind": "corrupt", "symbol": "ETHUSDT", "period": p, "times": 1}])
    bad = get(srv, path)[2]
    assert len(bad) == len(good) and hashlib.sha256(bad).hexdigest() != sha
    assert get(srv, path)[2] == good                       # times: 1
    srv.add_archive_faults([{"kind": "missing", "symbol": "ETH*", "period": "2023-0[12]"}])
    assert get(srv, path)[0] == 404
    assert get(srv, MONTHLY.format(s="BTCUSDT", p=p))[0] == 200
    srv.clear_archive_faults()
    srv.add_archive_faults([{"kind": "bad_checksum", "times": 1}, {"kind": "no_checksum",
                                                                   "times": 1}])
    assert get(srv, path + ".CHECKSUM")[2] == b"not a checksum\n"
    assert get(srv, path + ".CHECKSUM")[0] == 404
    srv.add_archive_faults([{"kind": "status", "status": 503, "times": 1}])
    st, _, body = get(srv, path)
    assert st == 503 and b"cloudfront" in body.lower()
    srv.add_archive_faults([{"kind": "drop", "after_bytes": 100_000, "times": 1}])
    st, h, body = get(srv, path)
    assert st == 200 and int(h["content-length"]) == len(good) and len(body) == 100_000
    # S3 resumes a download from a byte offset
    st, h, rest = get(srv, path, {"Range": "bytes=100000-"})
    assert st == 206 and body + rest == good
    assert h["content-range"] == f"bytes 100000-{len(good) - 1}/{len(good)}"
    assert get(srv, path, {"Range": f"bytes={len(good)}-"})[0] == 416
    with pytest.raises(ValueError):
        srv.add_archive_faults([{"kind": "nonsense"}])
    srv.clear_archive_faults()


def test_bandwidth_is_shared_by_the_downloads_under_way():
    with br.ReplayServer(start="2023-03-20T07:00:00Z", speed=0,
                         archive_bandwidth_bps=400_000) as s:
        path = DAILY.format(s="BTCUSDT", p="2023-03-01")
        size = len(get(s, path)[2])             # ~60 kB: builds and caches the file
        t = time.monotonic()
        got = get(s, path)[2]
        took = time.monotonic() - t
        assert len(got) == size
        assert took >= size / 400_000 * 0.9
        st = s.archive_stats()
        assert st["files"]["BTCUSDT-1m-2023-03-01.zip"] == 2 and st["klines_served"] == 2 * 1440
