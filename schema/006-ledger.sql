-- klined store, version 6: the symbol set changes while klined runs
-- (patterns re-resolved hourly, listings, delistings, a reload). Each
-- symbol keeps the exchange's last known status and whether the
-- configuration still follows it; every change is a line of the ledger.
-- status: the exchange's word ('TRADING', 'BREAK', 'HALT'...), 'GONE' when
-- it no longer lists the symbol, NULL when never asked (stores before 6).
ALTER TABLE symbol ADD COLUMN status TEXT;
ALTER TABLE symbol ADD COLUMN followed INTEGER NOT NULL DEFAULT 1;

-- event: 'followed', 'unfollowed', 'stopped' (left TRADING; detail: the
-- status), 'trading' (TRADING again). at_ms: the exchange's time.
CREATE TABLE symbol_event (
    sid    INTEGER NOT NULL REFERENCES symbol(sid),
    at_ms  INTEGER NOT NULL,
    event  TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX symbol_event_sid ON symbol_event (sid, at_ms);

-- A symbol klined registers starts unfollowed (an import's stays so); the
-- daemon's first mark makes the 'followed' line. Those before are followed.
INSERT INTO symbol_event
SELECT sid, coalesce((SELECT min(started_ms) FROM run), 0), 'followed', 'before schema 6'
FROM symbol;

CREATE VIEW symbols AS
SELECT symbol, status, followed, start_ms FROM symbol;

CREATE VIEW symbol_ledger AS
SELECT s.symbol, e.at_ms, e.event, e.detail
FROM symbol_event e JOIN symbol s USING (sid)
ORDER BY e.at_ms, e.rowid;
