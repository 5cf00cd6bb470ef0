"""Symbols that come and go on the replay exchange: a listing mid-run (list_at), a
delisting (delist), exchangeInfo's symbolStatus and showPermissionSets parameters."""

import json
import os
import sys
import urllib.error
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import binance_replay as br  # noqa: E402

M = 60_000


def get(srv, path):
    try:
        with urllib.request.urlopen(srv.rest_url + path, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def post(srv, path, obj):
    req = urllib.request.Request(srv.rest_url + path, data=json.dumps(obj).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture()
def srv():
    with br.ReplayServer(start="2023-03-10T00:00:00Z", speed=0, gen_symbols=3) as s:
        yield s


def symbols(srv, query=""):
    st, body = get(srv, "/api/v3/exchangeInfo" + query)
    assert st == 200
    return {i["symbol"]: i["status"] for i in body["symbols"]}


def test_a_listing_appears_at_its_time(srv):
    at = br.parse_time_ms("2023-03-10T06:00:00Z")
    assert srv.list_at("S0002USDT", at) == at
    assert "S0002USDT" not in symbols(srv)
    st, body = get(srv, "/api/v3/klines?symbol=S0002USDT&interval=1m")
    assert st == 400 and body["code"] == -1121
    st, body = get(srv, '/api/v3/exchangeInfo?symbols=["BTCUSDT","S0002USDT"]')
    assert st == 400 and body["code"] == -1121
    srv.set_clock(at + 30 * M)
    assert symbols(srv)["S0002USDT"] == "TRADING"
    # its history begins at the listing: asked from long before, the first kline is at it
    st, rows = get(srv, "/api/v3/klines?symbol=S0002USDT&interval=1m&startTime=0&limit=5")
    assert st == 200 and rows[0][0] == at
    # over the control API too
    post(srv, "/_replay/list", {"symbol": "S0003USDT", "at_ms": at + 60 * M})
    assert "S0003USDT" not in symbols(srv)


def test_symbol_status_and_permission_sets(srv):
    srv.delist("S0001USDT")
    assert symbols(srv)["S0001USDT"] == "BREAK"
    trading = symbols(srv, "?symbolStatus=TRADING")
    assert "S0001USDT" not in trading and trading["BTCUSDT"] == "TRADING"
    assert set(symbols(srv, "?symbolStatus=BREAK")) == {"S0001USDT"}
    st, body = get(srv, "/api/v3/exchangeInfo?symbolStatus=TRADING&symbol=BTCUSDT")
    assert st == 400 and body["code"] == -1128
    st, body = get(srv, "/api/v3/exchangeInfo?symbolStatus=DELISTED")
    assert st == 400 and body["code"] == -1130
    st, body = get(srv, "/api/v3/exchangeInfo?showPermissionSets=false")
    assert all(i["permissionSets"] == [] for i in body["symbols"])
    post(srv, "/_replay/delist", {"symbol": "S0002USDT"})
    assert symbols(srv)["S0002USDT"] == "BREAK"
