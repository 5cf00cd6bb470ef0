-- klined store, version 3: exact values of any magnitude. A kline whose
-- values all fit 2^53 units of 1e-8 (every BTC- or ETH-sized one) stays
-- as it was: INTEGER units, x NULL, one byte more. A larger one (PEPE,
-- SHIB, BTTC volumes) keeps in its value columns the double nearest to
-- each value, and in x the exact decimals, space-separated, in column
-- order (open high low close volume quote_volume taker_base taker_quote).
-- Days keep both forms for every value. klined (daemon/upgrade.c) then
-- rewrites, in this same transaction, the klines past 2^53 units and the
-- days' doubles, and marks stale the days whose int64 sum could wrap.

-- Schema 2 summed a day's base volume in int64, which wrapped past 9.2e18
-- units (92 billion): such days are marked stale, to be recomputed.
UPDATE symbol SET dirty_from = min(coalesce(dirty_from, w.d), w.d)
FROM (SELECT sid, min(d) AS d
      FROM (SELECT sid, open_time - open_time % 86400000 AS d FROM kline
            GROUP BY sid, d HAVING total(volume) >= 9.2e18)
      GROUP BY sid) AS w
WHERE symbol.sid = w.sid;

ALTER TABLE kline ADD COLUMN x TEXT;

DROP VIEW kline_1m;
DROP VIEW prophet_input;
DROP VIEW daily;

CREATE TABLE day3 (
    sid            INTEGER NOT NULL REFERENCES symbol(sid),
    day            TEXT NOT NULL,
    open           REAL NOT NULL,  -- the double nearest to the exact value
    high           REAL NOT NULL,
    low            REAL NOT NULL,
    close          REAL NOT NULL,
    volume         REAL NOT NULL,
    quote_volume   REAL NOT NULL,
    trades         INTEGER NOT NULL,
    source         INTEGER NOT NULL,
    open_x         TEXT NOT NULL,  -- the exact value, 8 decimals
    high_x         TEXT NOT NULL,
    low_x          TEXT NOT NULL,
    close_x        TEXT NOT NULL,
    volume_x       TEXT NOT NULL,
    quote_volume_x TEXT NOT NULL,
    PRIMARY KEY (sid, day)
) WITHOUT ROWID;

-- Schema 2 kept INTEGER units and the quote volume as trimmed decimal text.
INSERT INTO day3
SELECT sid, day, open / 1e8, high / 1e8, low / 1e8, close / 1e8, volume / 1e8,
       CAST(quote_volume AS REAL), trades, source,
       printf('%d.%08d', open / 100000000, open % 100000000),
       printf('%d.%08d', high / 100000000, high % 100000000),
       printf('%d.%08d', low / 100000000, low % 100000000),
       printf('%d.%08d', close / 100000000, close % 100000000),
       printf('%d.%08d', volume / 100000000, volume % 100000000),
       CASE WHEN instr(quote_volume, '.') = 0 THEN quote_volume || '.00000000'
            ELSE quote_volume || substr('00000000', 1, 8 - length(quote_volume)
                                                         + instr(quote_volume, '.')) END
FROM day;
DROP TABLE day;
ALTER TABLE day3 RENAME TO day;

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
FROM kline k JOIN symbol s USING (sid);

-- MA7/MA30 are means of the closes, NULL until 7/30 rows exist, recomputed
-- over whatever timeline the rows form (pandas rolling().mean()).
CREATE VIEW daily AS
SELECT s.symbol, d.day, d.open, d.high, d.low, d.close, d.volume, d.quote_volume, d.trades,
       CASE d.source WHEN 1 THEN 'batch' WHEN 2 THEN 'speed' ELSE 'fill' END AS source,
       CASE WHEN count(*) OVER w7 = 7 THEN sum(d.close) OVER w7 / 7 END AS ma7,
       CASE WHEN count(*) OVER w30 = 30 THEN sum(d.close) OVER w30 / 30 END AS ma30
FROM day d JOIN symbol s USING (sid)
WINDOW w7 AS (PARTITION BY d.sid ORDER BY d.day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW),
       w30 AS (PARTITION BY d.sid ORDER BY d.day ROWS BETWEEN 29 PRECEDING AND CURRENT ROW);

-- For auditors, and for magnitudes a double cannot hold exactly.
CREATE VIEW daily_exact AS
SELECT s.symbol, d.day,
       CASE d.source WHEN 1 THEN 'batch' WHEN 2 THEN 'speed' ELSE 'fill' END AS source,
       d.open_x AS open, d.high_x AS high, d.low_x AS low, d.close_x AS close,
       d.volume_x AS volume, d.quote_volume_x AS quote_volume, d.trades
FROM day d JOIN symbol s USING (sid);

CREATE VIEW prophet_input AS
SELECT symbol, day AS ds, close AS y, source FROM daily;
