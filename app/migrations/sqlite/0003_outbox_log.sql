-- The outbox as a log (see the PostgreSQL migration): one row per event,
-- a cursor per plugin; outbox_deliveries holds what the worker settled.
DROP TRIGGER outbox_events_deliveries;
ALTER TABLE outbox_events DROP COLUMN plugins;
-- Ids are in commit order here (one writer at a time): txid stays 0.
ALTER TABLE outbox_events ADD COLUMN txid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox_events ADD COLUMN recorded_ms INTEGER NOT NULL DEFAULT 0;

CREATE TABLE outbox_cursors (
    plugin TEXT PRIMARY KEY,
    txid INTEGER NOT NULL,
    event_id INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until_ms INTEGER NOT NULL DEFAULT 0
);
