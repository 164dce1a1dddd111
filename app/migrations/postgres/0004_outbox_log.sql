-- The outbox as a log. An operation records one row per event (nothing per
-- plugin); each plugin keeps its position in the log (outbox_cursors), and
-- outbox_deliveries now holds what the worker settled: delivered events,
-- and failed ones parked for retry (pending) or dead.
DROP TRIGGER outbox_events_deliveries ON outbox_events;
DROP FUNCTION outbox_events_deliveries();
ALTER TABLE outbox_events DROP COLUMN plugins;
-- The recording transaction's id: the log's order is (txid, id), and a
-- plugin reads only below the oldest running transaction (xmin): every
-- transaction that could still commit an event has a txid at or above it,
-- so nothing ever appears behind a cursor. (Ids alone would not do: a
-- sequence hands them out at insert, not at commit.)
ALTER TABLE outbox_events
    ADD COLUMN txid BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);
-- When it was recorded, for the retention.
ALTER TABLE outbox_events ADD COLUMN recorded_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX outbox_events_log ON outbox_events (txid, id);

-- Each plugin's position: the last event it has handled (delivered, parked
-- or skipped), and the instance reading the log for it now, until when.
CREATE TABLE outbox_cursors (
    plugin TEXT PRIMARY KEY,
    txid BIGINT NOT NULL,
    event_id BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until_ms BIGINT NOT NULL DEFAULT 0
);
