-- klined store, version 9: the day rows of one day side by side (issue 14).
-- The speed layer rewrites every followed symbol's open day at each burst
-- (1,500 rows every 2 s). Keyed (sid, day), each of those rows sits on its
-- own symbol's last leaf page once symbols have history, so a checkpoint
-- of 1,500 small rows wrote about 1,500 pages (6 MB) to the WAL, and a
-- year of history made each row's upsert 3 times dearer (bench/daycommit).
-- Keyed (day, sid), one day of every symbol fills a few dozen pages. The
-- index day_sid keeps every per-symbol read a range, in day order; an
-- update of a row's values leaves it untouched.
-- daily's windows are now partitioned by symbol, not sid (the same rows:
-- one symbol, one sid). SQLite pushes a WHERE on a view's partition
-- column into it, so `daily WHERE symbol = ?` reads that symbol's rows
-- (2 ms at 1,500 symbol-years) instead of every symbol's (1.2 s).
DROP VIEW prophet_input;
DROP VIEW daily_exact;
DROP VIEW daily;

CREATE TABLE day9 (
    sid            INTEGER NOT NULL REFERENCES symbol(sid),
    day            TEXT NOT NULL,
    open           REAL NOT NULL,
    high           REAL NOT NULL,
    low            REAL NOT NULL,
    close          REAL NOT NULL,
    volume         REAL NOT NULL,
    quote_volume   REAL NOT NULL,
    trades         INTEGER NOT NULL,
    source         INTEGER NOT NULL,
    open_x         TEXT NOT NULL,
    high_x         TEXT NOT NULL,
    low_x          TEXT NOT NULL,
    close_x        TEXT NOT NULL,
    volume_x       TEXT NOT NULL,
    quote_volume_x TEXT NOT NULL,
    PRIMARY KEY (day, sid)
) WITHOUT ROWID;
INSERT INTO day9 SELECT * FROM day ORDER BY day, sid;
DROP TABLE day;
ALTER TABLE day9 RENAME TO day;
CREATE INDEX day_sid ON day (sid, day);

CREATE VIEW daily AS
SELECT s.symbol, d.day, d.open, d.high, d.low, d.close, d.volume, d.quote_volume, d.trades,
       CASE d.source WHEN 1 THEN 'batch' WHEN 2 THEN 'speed' ELSE 'fill' END AS source,
       CASE WHEN count(*) OVER w7 = 7 THEN sum(d.close) OVER w7 / 7 END AS ma7,
       CASE WHEN count(*) OVER w30 = 30 THEN sum(d.close) OVER w30 / 30 END AS ma30
FROM day d JOIN symbol s USING (sid)
WINDOW w7 AS (PARTITION BY s.symbol ORDER BY d.day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW),
       w30 AS (PARTITION BY s.symbol ORDER BY d.day ROWS BETWEEN 29 PRECEDING AND CURRENT ROW);

CREATE VIEW daily_exact AS
SELECT s.symbol, d.day,
       CASE d.source WHEN 1 THEN 'batch' WHEN 2 THEN 'speed' ELSE 'fill' END AS source,
       d.open_x AS open, d.high_x AS high, d.low_x AS low, d.close_x AS close,
       d.volume_x AS volume, d.quote_volume_x AS quote_volume, d.trades
FROM day d JOIN symbol s USING (sid);

CREATE VIEW prophet_input AS
SELECT symbol, day AS ds, close AS y, source FROM daily;
