-- When an instance that has the plugin loaded last said so: the cursor of
-- a plugin no instance has loaded for longer than the retention is
-- forgotten (it would hold every later event in the log for ever), and the
-- plugin starts at the head of the log if it comes back. Existing cursors
-- count as seen now.
ALTER TABLE outbox_cursors ADD COLUMN seen_ms BIGINT NOT NULL DEFAULT 0;
UPDATE outbox_cursors SET seen_ms = (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
