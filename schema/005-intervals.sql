-- klined store, version 5: hourly and 5-minute candles for sqlite3 users,
-- aggregated from the stored minutes as the days are (UTC boundaries;
-- open of the first minute, extremes, close of the last, sums), with the
-- columns of kline_1m but source. An interval with no kline (an outage)
-- has no row. Sums are exact integers in SQL (a minute's values are at
-- most 2^53 units of 1e-8 unless x holds them), so volumes print as the
-- exchange's to 8 decimals; /api/klines serves every interval and any
-- magnitude with 128-bit arithmetic (lib/interval.c).
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
      FROM kline GROUP BY sid, open_time - open_time % 3600000) h
JOIN kline o ON o.sid = h.sid AND o.open_time = h.first
JOIN kline c ON c.sid = h.sid AND c.open_time = h.last
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
      FROM kline GROUP BY sid, open_time - open_time % 300000) h
JOIN kline o ON o.sid = h.sid AND o.open_time = h.first
JOIN kline c ON c.sid = h.sid AND c.open_time = h.last
JOIN symbol s ON s.sid = h.sid;

-- What a forecasting job (examples/forecast.py: Prophet on prophet_input)
-- writes back; the page draws it ahead of the last candle. klined itself
-- only reads it. ds: 'YYYY-MM-DD' (UTC); made_at: ms since the epoch.
CREATE TABLE forecast (
    symbol     TEXT NOT NULL,
    ds         TEXT NOT NULL,
    yhat       REAL NOT NULL,
    yhat_lower REAL NOT NULL,
    yhat_upper REAL NOT NULL,
    made_at    INTEGER NOT NULL,
    PRIMARY KEY (symbol, ds)
) WITHOUT ROWID;
