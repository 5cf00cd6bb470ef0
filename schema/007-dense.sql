-- klined store, version 7: a minute in about 55 bytes instead of 86 (issue
-- 14), every view's rows unchanged. A kline of schema 3's INTEGER form
-- (x NULL: every value at most 2^53 units of 1e-8) keeps its values
-- without the decimal zeros they share and its extremes and close as
-- differences from its open:
--   scale  three decimal digits p v q (0-9 each): the prices are multiples
--          of 10^p units, the base volumes of 10^v, the quote volumes of
--          10^q (a BTCUSDT price of 0.01 USDT ticks has p = 6); NULL when
--          x holds the values
--   o      open / 10^p;  h, l, c: (high, low, close - open) / 10^p
--   v, tb  volume, taker_base / 10^v;  q, tq: quote_volume, taker_quote / 10^q
--   source 1 rest, 2 ws, 3 import (as before)
-- so a price takes 3 bytes instead of 6 and an extreme one. close_time is
-- NULL when it is open_time + 59999 (all but a few 2017-2018 bars around
-- exchange maintenance, which keep theirs). A kline past 2^53 units keeps
-- schema 3's form: scale NULL, the nearest doubles in o .. tq, the exact
-- decimals in x. kline_units presents every row as schema 3 kept it (the
-- old kline table's columns, values and order), and the views read it.
-- klined (daemon/store/store_row.c) then copies every kline into this
-- table, drops the old one and renames kline7 to kline, in this same
-- transaction.

DROP VIEW kline_1m;
DROP VIEW kline_1h;
DROP VIEW kline_5m;
DROP INDEX kline_ws;

CREATE TABLE kline7 (
    sid INTEGER NOT NULL REFERENCES symbol(sid),
    open_time INTEGER NOT NULL,
    close_time INTEGER,
    scale INTEGER,
    o INTEGER NOT NULL, h INTEGER NOT NULL, l INTEGER NOT NULL, c INTEGER NOT NULL,
    v INTEGER NOT NULL, q INTEGER NOT NULL, tb INTEGER NOT NULL, tq INTEGER NOT NULL,
    trades INTEGER NOT NULL,
    source INTEGER NOT NULL,
    x TEXT,
    PRIMARY KEY (sid, open_time)
) WITHOUT ROWID;

CREATE INDEX kline_ws ON kline7 (sid, open_time) WHERE source = 2;

-- 10^p, 10^v, 10^q: the digits of scale as powers of ten, NULL when it is
-- (a CASE: twice as fast as substr('1000000000', 1, 1 + d) + 0).
CREATE VIEW kline_units AS
SELECT sid, open_time, coalesce(close_time, open_time + 59999) AS close_time,
       coalesce(o * p, o) AS open, coalesce((o + h) * p, h) AS high,
       coalesce((o + l) * p, l) AS low, coalesce((o + c) * p, c) AS close,
       coalesce(v * pv, v) AS volume, coalesce(q * pq, q) AS quote_volume,
       coalesce(tb * pv, tb) AS taker_base, coalesce(tq * pq, tq) AS taker_quote,
       trades, source, x
FROM (SELECT *, CASE scale / 100 WHEN 0 THEN 1 WHEN 1 THEN 10 WHEN 2 THEN 100 WHEN 3 THEN 1000
                  WHEN 4 THEN 10000 WHEN 5 THEN 100000 WHEN 6 THEN 1000000 WHEN 7 THEN 10000000
                  WHEN 8 THEN 100000000 WHEN 9 THEN 1000000000 END AS p,
             CASE scale / 10 % 10 WHEN 0 THEN 1 WHEN 1 THEN 10 WHEN 2 THEN 100 WHEN 3 THEN 1000
                  WHEN 4 THEN 10000 WHEN 5 THEN 100000 WHEN 6 THEN 1000000 WHEN 7 THEN 10000000
                  WHEN 8 THEN 100000000 WHEN 9 THEN 1000000000 END AS pv,
             CASE scale % 10 WHEN 0 THEN 1 WHEN 1 THEN 10 WHEN 2 THEN 100 WHEN 3 THEN 1000
                  WHEN 4 THEN 10000 WHEN 5 THEN 100000 WHEN 6 THEN 1000000 WHEN 7 THEN 10000000
                  WHEN 8 THEN 100000000 WHEN 9 THEN 1000000000 END AS pq
      FROM kline7);

-- The views of schema 3 and 5, as they were, on kline_units.
CREATE VIEW kline_1m AS
SELECT s.symbol, k.open_time,
       CASE WHEN k.x IS NULL THEN k.open / 1e8 ELSE CAST(k.open AS REAL) END AS open,
       CASE WHEN k.x IS NULL THEN k.high / 1e8 ELSE CAST(k.high AS REAL) END AS high,
       CASE WHEN k.x IS NULL THEN k.low / 1e8 ELSE CAST(k.low AS REAL) END AS low,
       CASE WHEN k.x IS NULL THEN k.close / 1e8 ELSE CAST(k.close AS REAL) END AS close,
       CASE WHEN k.x IS NULL THEN k.volume / 1e8 ELSE CAST(k.volume AS REAL) END AS volume,
       CASE WHEN k.x IS NULL THEN k.quote_volume / 1e8
            ELSE CAST(k.quote_volume AS REAL) END AS quote_volume,
       k.trades,
       CASE k.source WHEN 1 THEN 'rest' WHEN 2 THEN 'ws' ELSE 'import' END AS source
FROM kline_units k JOIN symbol s USING (sid);

CREATE VIEW kline_1h AS
SELECT s.symbol, h.open_time,
       CASE WHEN o.x IS NULL THEN o.open / 1e8 ELSE CAST(o.open AS REAL) END AS open,
       h.high, h.low,
       CASE WHEN c.x IS NULL THEN c.close / 1e8 ELSE CAST(c.close AS REAL) END AS close,
       h.volume / 1e8 AS volume, h.quote_volume / 1e8 AS quote_volume, h.trades
FROM (SELECT sid, open_time - open_time % 3600000 AS open_time,
       min(open_time) AS first, max(open_time) AS last,
       max(CASE WHEN x IS NULL THEN high / 1e8 ELSE high END) AS high,
       min(CASE WHEN x IS NULL THEN low / 1e8 ELSE low END) AS low,
       sum(CASE WHEN x IS NULL THEN volume ELSE volume * 1e8 END) AS volume,
       sum(CASE WHEN x IS NULL THEN quote_volume ELSE quote_volume * 1e8 END)
           AS quote_volume,
       sum(trades) AS trades
      FROM kline_units GROUP BY sid, open_time - open_time % 3600000) h
JOIN kline_units o ON o.sid = h.sid AND o.open_time = h.first
JOIN kline_units c ON c.sid = h.sid AND c.open_time = h.last
JOIN symbol s ON s.sid = h.sid;

CREATE VIEW kline_5m AS
SELECT s.symbol, h.open_time,
       CASE WHEN o.x IS NULL THEN o.open / 1e8 ELSE CAST(o.open AS REAL) END AS open,
       h.high, h.low,
       CASE WHEN c.x IS NULL THEN c.close / 1e8 ELSE CAST(c.close AS REAL) END AS close,
       h.volume / 1e8 AS volume, h.quote_volume / 1e8 AS quote_volume, h.trades
FROM (SELECT sid, open_time - open_time % 300000 AS open_time,
       min(open_time) AS first, max(open_time) AS last,
       max(CASE WHEN x IS NULL THEN high / 1e8 ELSE high END) AS high,
       min(CASE WHEN x IS NULL THEN low / 1e8 ELSE low END) AS low,
       sum(CASE WHEN x IS NULL THEN volume ELSE volume * 1e8 END) AS volume,
       sum(CASE WHEN x IS NULL THEN quote_volume ELSE quote_volume * 1e8 END)
           AS quote_volume,
       sum(trades) AS trades
      FROM kline_units GROUP BY sid, open_time - open_time % 300000) h
JOIN kline_units o ON o.sid = h.sid AND o.open_time = h.first
JOIN kline_units c ON c.sid = h.sid AND c.open_time = h.last
JOIN symbol s ON s.sid = h.sid;
