#!/usr/bin/env python3
"""cryptofeed's Binance feed with its Kafka backend, pointed at the replay exchange.

    python3 bench/peers/cryptofeed_kafka.py --rest-url URL --ws-url URL --bootstrap HOST:PORT
        --topic T --symbols BTCUSDT,ETHUSDT[,...]

The stock `cryptofeed.exchanges.Binance` feed and `cryptofeed.backends.kafka.CandlesKafka`
backend, configured as a user would for the job klined's stream-in does:

  * channel CANDLES, interval 1m, `candle_closed_only=False`: every kline update is
    delivered, like klined (cryptofeed's default, True, would forward only the one closed
    kline a minute, 1/30 of the events);
  * the exchange's URLs are class attributes in cryptofeed (`websocket_endpoints`,
    `rest_endpoints`), so a subclass points them at the replay; everything else (symbol
    mapping from /api/v3/exchangeInfo, 200 streams per connection, parsing into Decimal,
    normalisation into its Candle type, the JSON it writes) is cryptofeed's own;
  * Kafka: aiokafka with acks=all and idempotence (klined's producer settings); one topic
    (cryptofeed's default is one topic per symbol) by overriding `topic()`; the message key
    stays cryptofeed's ("candles"), the value its JSON candle with float numbers (its
    default `numeric_type`).

Runs until SIGTERM/SIGINT (cryptofeed's own handlers flush the backend and stop).
"""
import argparse
import asyncio
import logging
import sys

import cryptofeed.connection
from cryptofeed import FeedHandler
from cryptofeed.backends.kafka import CandlesKafka
from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint
from cryptofeed.defines import CANDLES
from cryptofeed.exchanges import Binance


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rest-url", required=True)
    ap.add_argument("--ws-url", required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--symbols", required=True, help="exchange symbols, e.g. BTCUSDT,ETHUSDT")
    ap.add_argument("--producer-defaults", action="store_true",
                    help="aiokafka's defaults (acks=1, no idempotence) instead of klined's settings")
    a = ap.parse_args()

    # cryptofeed accepts only wss:// addresses (WSAsyncConn); the replay, like klined's
    # connection to it, is plain ws:// on loopback: the feed gets a wss:// address and the
    # one call that opens the socket gets it back as ws://.  No TLS on either side.
    ws_connect = cryptofeed.connection.connect
    plain = a.ws_url.replace("ws://", "wss://", 1)

    def connect(address, **kw):
        return ws_connect(address.replace(plain, a.ws_url, 1), **kw)
    cryptofeed.connection.connect = connect

    class ReplayBinance(Binance):
        websocket_endpoints = [WebsocketEndpoint(plain)]
        rest_endpoints = [RestEndpoint(a.rest_url, routes=Routes("/api/v3/exchangeInfo"))]

    class OneTopic(CandlesKafka):
        def topic(self, data: dict) -> str:
            return a.topic

    wanted = set(a.symbols.split(","))
    # cryptofeed subscribes by its normalised names (BTC-USDT); map from the exchange's
    mapping = ReplayBinance.symbol_mapping()
    symbols = [std for std, exch in mapping.items() if exch in wanted]
    if len(symbols) != len(wanted):
        print("cryptofeed knows %d of the %d symbols" % (len(symbols), len(wanted)),
              file=sys.stderr)
        return 1
    producer = {} if a.producer_defaults else {"acks": "all", "enable_idempotence": True}
    fh = FeedHandler(config={"log": {"filename": "/dev/stderr", "level": "WARNING"},
                             "uvloop": True})
    fh.add_feed(ReplayBinance(
        symbols=symbols, channels=[CANDLES], candle_interval="1m", candle_closed_only=False,
        callbacks={CANDLES: OneTopic(bootstrap_servers=a.bootstrap, **producer)}))
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # cryptofeed (written for Python < 3.10) expects get_event_loop() to make one
    asyncio.set_event_loop(asyncio.new_event_loop())
    fh.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
