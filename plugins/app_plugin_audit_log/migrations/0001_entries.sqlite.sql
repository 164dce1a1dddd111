CREATE TABLE plugin_audit_log_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    entity TEXT NOT NULL,
    actor TEXT,
    at TEXT NOT NULL
);
