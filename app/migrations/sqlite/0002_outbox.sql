-- After-commit events, recorded in the operation's own transaction. SQLite
-- takes one writer at a time, so id order is commit order.
CREATE TABLE outbox_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_key TEXT NOT NULL UNIQUE,
    event_name TEXT NOT NULL,
    change TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    -- JSON array: the plugins implementing its after-commit hook.
    plugins TEXT NOT NULL
);

-- One delivery per (event, plugin implementing its after-commit hook).
CREATE TABLE outbox_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id INTEGER NOT NULL REFERENCES outbox_events(id) ON DELETE CASCADE,
    plugin TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until_ms INTEGER NOT NULL DEFAULT 0,
    done_ms INTEGER,
    -- PostgreSQL orders by the recording transaction's id first; here ids
    -- are already in commit order.
    txid INTEGER NOT NULL DEFAULT 0,
    UNIQUE (event_id, plugin)
);
CREATE INDEX outbox_deliveries_queue ON outbox_deliveries (plugin, status, txid, event_id);
CREATE INDEX outbox_deliveries_status ON outbox_deliveries (status, id);

-- One delivery per plugin named in the event, made in the same statement.
CREATE TRIGGER outbox_events_deliveries AFTER INSERT ON outbox_events
BEGIN
    INSERT INTO outbox_deliveries (event_id, plugin)
    SELECT NEW.id, value FROM json_each(NEW.plugins);
END;
