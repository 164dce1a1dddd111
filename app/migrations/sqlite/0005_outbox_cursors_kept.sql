-- Until when an instance that has the plugin loaded has promised to say so
-- again (see the PostgreSQL migration). SQLite's cursors need no `born`:
-- its one writer at a time commits in id order.
ALTER TABLE outbox_cursors RENAME COLUMN seen_ms TO kept_ms;
