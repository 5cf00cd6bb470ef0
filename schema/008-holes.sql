-- klined store, version 8: a hole search that costs what changed, not what
-- is stored. hole_mark.upto says how far each symbol's history was searched:
-- every minute of [symbol.start_ms, upto) is a kline, an outage or inside a
-- hole_suspect range. A symbol without a mark was searched nowhere (a store
-- from before this version: its first search runs in slices, daemon/batch/
-- verify.c). The triggers keep that true whoever makes a hole: the daemon,
-- or a user's sqlite3 deleting rows while klined runs. They name only
-- kline's key (sid, open_time), whatever the table's other columns are.
CREATE TABLE hole_mark (
    sid  INTEGER PRIMARY KEY,  -- symbol(sid)
    upto INTEGER NOT NULL
);

-- Minutes before a mark that may be missing, half-open; new: not yet seen
-- by the daemon's search (a heal follows), 2: not even searched (it may
-- hold rows: coverage extended over imported months). Overlaps are harmless.
CREATE TABLE hole_suspect (
    id      INTEGER PRIMARY KEY,
    sid     INTEGER NOT NULL,
    from_ms INTEGER NOT NULL,
    to_ms   INTEGER NOT NULL,
    new     INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX hole_suspect_sid ON hole_suspect (sid, from_ms);
CREATE INDEX hole_suspect_new ON hole_suspect (sid) WHERE new;

CREATE TRIGGER hole_kline_delete AFTER DELETE ON kline BEGIN
    INSERT INTO hole_suspect (sid, from_ms, to_ms)
    VALUES (old.sid, old.open_time - old.open_time % 60000,
            old.open_time - old.open_time % 60000 + 60000);
END;

CREATE TRIGGER hole_kline_move AFTER UPDATE OF sid, open_time ON kline BEGIN
    INSERT INTO hole_suspect (sid, from_ms, to_ms)
    VALUES (old.sid, old.open_time - old.open_time % 60000,
            old.open_time - old.open_time % 60000 + 60000);
END;

-- An outage is not a hole; without its row its minutes are.
CREATE TRIGGER hole_outage_delete AFTER DELETE ON outage BEGIN
    INSERT INTO hole_suspect (sid, from_ms, to_ms) VALUES (old.sid, old.from_ms, old.to_ms);
END;

CREATE TRIGGER hole_outage_shrink AFTER UPDATE OF sid, from_ms, to_ms ON outage
WHEN new.sid <> old.sid OR new.from_ms > old.from_ms OR new.to_ms < old.to_ms BEGIN
    INSERT INTO hole_suspect (sid, from_ms, to_ms) VALUES (old.sid, old.from_ms, old.to_ms);
END;

-- history_start moved earlier (kl_store_symbol_extend): the new part is searched.
CREATE TRIGGER hole_symbol_extend AFTER UPDATE OF start_ms ON symbol
WHEN new.start_ms < old.start_ms BEGIN
    INSERT INTO hole_suspect (sid, from_ms, to_ms, new)
    VALUES (new.sid, new.start_ms, old.start_ms, 2);
END;
