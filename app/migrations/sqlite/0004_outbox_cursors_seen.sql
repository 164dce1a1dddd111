-- When an instance that has the plugin loaded last said so (see the
-- PostgreSQL migration). Existing cursors count as seen now.
ALTER TABLE outbox_cursors ADD COLUMN seen_ms INTEGER NOT NULL DEFAULT 0;
UPDATE outbox_cursors SET seen_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);
