-- klined store, version 2: the speed layer's checkpoint. The consumer's
-- next offsets commit in the same transaction as the minutes and day rows
-- they produced, so after a crash the store is as if each event applied once.
CREATE TABLE consumer_offset (
    topic      TEXT NOT NULL,
    part       INTEGER NOT NULL,
    next       INTEGER NOT NULL,  -- the next offset to read
    PRIMARY KEY (topic, part)
) WITHOUT ROWID;

-- Websocket minutes are few (REST certification replaces them): find them fast.
CREATE INDEX kline_ws ON kline (sid, open_time) WHERE source = 2;
