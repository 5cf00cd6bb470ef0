-- klined store, version 3: the end of the exchange's last ban or pause
-- (a 429/418 Retry-After, or the backoff after a 403/451), so that a
-- restart during a ban sends nothing until it ends: Binance lengthens a
-- ban each time a banned IP asks again.
CREATE TABLE exchange_ban (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    until_ms   INTEGER NOT NULL,  -- wall-clock (unix ms) end of the ban
    reason     TEXT NOT NULL
);
