CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,
    display_name TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE spaces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    parent_id INTEGER REFERENCES spaces(id),
    access TEXT NOT NULL,
    default_role TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX spaces_parent ON spaces(parent_id);

CREATE TABLE memberships (
    space_id INTEGER NOT NULL REFERENCES spaces(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (space_id, user_id)
);
CREATE INDEX memberships_user ON memberships(user_id);
