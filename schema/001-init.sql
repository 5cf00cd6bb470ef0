-- klined store, version 1. Values are kept exactly: prices and volumes as
-- INTEGER counts of 1e-8 (daily quote volume as exact decimal TEXT, since
-- it can exceed 64 bits); the contract's views present them as REAL.

CREATE TABLE symbol (
    sid        INTEGER PRIMARY KEY,
    symbol     TEXT NOT NULL UNIQUE,
    start_ms   INTEGER NOT NULL,  -- where coverage begins (day-aligned)
    dirty_from INTEGER            -- earliest day whose aggregate is stale; NULL: none
);

-- source: 1 rest, 2 ws, 3 import. A REST kline replaces a websocket one.
CREATE TABLE kline (
    sid          INTEGER NOT NULL REFERENCES symbol(sid),
    open_time    INTEGER NOT NULL,
    close_time   INTEGER NOT NULL,
    open         INTEGER NOT NULL,
    high         INTEGER NOT NULL,
    low          INTEGER NOT NULL,
    close        INTEGER NOT NULL,
    volume       INTEGER NOT NULL,
    quote_volume INTEGER NOT NULL,
    taker_base   INTEGER NOT NULL,
    taker_quote  INTEGER NOT NULL,
    trades       INTEGER NOT NULL,
    source       INTEGER NOT NULL,
    PRIMARY KEY (sid, open_time)
) WITHOUT ROWID;

-- Minutes the exchange has no kline for, half-open, merged when adjacent.
CREATE TABLE outage (
    sid     INTEGER NOT NULL REFERENCES symbol(sid),
    from_ms INTEGER NOT NULL,
    to_ms   INTEGER NOT NULL,
    PRIMARY KEY (sid, from_ms)
) WITHOUT ROWID;

-- One row per symbol and day; source: 1 batch, 2 speed, 3 fill.
CREATE TABLE day (
    sid          INTEGER NOT NULL REFERENCES symbol(sid),
    day          TEXT NOT NULL,
    open         INTEGER NOT NULL,
    high         INTEGER NOT NULL,
    low          INTEGER NOT NULL,
    close        INTEGER NOT NULL,
    volume       INTEGER NOT NULL,
    quote_volume TEXT NOT NULL,
    trades       INTEGER NOT NULL,
    source       INTEGER NOT NULL,
    PRIMARY KEY (sid, day)
) WITHOUT ROWID;

-- Klines that failed validation: never data, kept for the operator.
CREATE TABLE reject (
    id       INTEGER PRIMARY KEY,
    at_ms    INTEGER NOT NULL,    -- the exchange's time when seen
    symbol   TEXT NOT NULL,
    origin   TEXT NOT NULL,       -- rest, ws or the dump file name
    reason   TEXT NOT NULL,
    raw      TEXT NOT NULL
);

-- Each daemon start, for status and post-mortems.
CREATE TABLE run (
    id         INTEGER PRIMARY KEY,
    started_ms INTEGER NOT NULL,  -- the exchange's time
    version    TEXT NOT NULL,
    note       TEXT
);

CREATE VIEW kline_1m AS
SELECT s.symbol, k.open_time,
       k.open / 1e8 AS open, k.high / 1e8 AS high, k.low / 1e8 AS low, k.close / 1e8 AS close,
       k.volume / 1e8 AS volume, k.quote_volume / 1e8 AS quote_volume, k.trades,
       CASE k.source WHEN 1 THEN 'rest' WHEN 2 THEN 'ws' ELSE 'import' END AS source
FROM kline k JOIN symbol s USING (sid);

-- MA7/MA30 are means of the exact closes, NULL until 7/30 rows exist,
-- recomputed over whatever timeline the rows form (pandas rolling().mean()).
CREATE VIEW daily AS
SELECT s.symbol, d.day,
       d.open / 1e8 AS open, d.high / 1e8 AS high, d.low / 1e8 AS low, d.close / 1e8 AS close,
       d.volume / 1e8 AS volume, CAST(d.quote_volume AS REAL) AS quote_volume, d.trades,
       CASE d.source WHEN 1 THEN 'batch' WHEN 2 THEN 'speed' ELSE 'fill' END AS source,
       CASE WHEN count(*) OVER w7 = 7 THEN sum(d.close) OVER w7 / 700000000.0 END AS ma7,
       CASE WHEN count(*) OVER w30 = 30 THEN sum(d.close) OVER w30 / 3000000000.0 END AS ma30
FROM day d JOIN symbol s USING (sid)
WINDOW w7 AS (PARTITION BY d.sid ORDER BY d.day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW),
       w30 AS (PARTITION BY d.sid ORDER BY d.day ROWS BETWEEN 29 PRECEDING AND CURRENT ROW);

CREATE VIEW prophet_input AS
SELECT symbol, day AS ds, close AS y FROM daily;

CREATE VIEW outages AS
SELECT s.symbol, o.from_ms, o.to_ms FROM outage o JOIN symbol s USING (sid);
