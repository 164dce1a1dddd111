-- Until when an instance that has the plugin loaded has promised to say so
-- again (its last mark and three of its pruning passes): another instance,
-- whatever its own passes, forgets the cursor only once that promise is
-- older than its retention.
ALTER TABLE outbox_cursors RENAME COLUMN seen_ms TO kept_ms;
-- The snapshot (`pg_snapshot` as text) taken when the cursor was put at the
-- head of the log. Events are read in (txid, id) order, and a transaction
-- that began before another may commit after it: an event of the log after
-- the cursor that this snapshot sees was committed before the plugin came,
-- and is skipped. NULL for the cursors before this column.
ALTER TABLE outbox_cursors ADD COLUMN born TEXT;
