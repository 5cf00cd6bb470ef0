-- klined store, version 10: the websocket's newest minutes apart (issue 14).
-- At each minute's close every followed symbol's stream closes a kline at
-- once (1,500 at the whole exchange). Keyed (sid, open_time), each of those
-- rows sits on its own symbol's last leaf page of kline, and kline_ws's: a
-- commit of ~3,000 pages (12 MB of WAL) and ~40 ms of the loop, on the path
-- of every event of that burst (bench/scale.py). kline_live holds those
-- rows for the moment: a few thousand rows at most, so a burst fills a few
-- dozen of its pages, in the transaction that stores the consumer offsets.
-- klined moves them into kline soon after, a few dozen symbols at a time
-- (kl_store_settle); what a stop leaves here is moved at the next open. The
-- views read kline: a websocket minute shows in kline_1m once moved (well
-- under a second), klined's own reads see both tables. Same columns as kline;
-- a REST or imported kline deletes the row here for its minute, and a row
-- here never replaces one of those in kline (invariant 3).
CREATE TABLE kline_live (
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
