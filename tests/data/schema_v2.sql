-- apikeyd schema, version 2. The whole current schema: a new database runs this file once
-- and sets PRAGMA user_version = 2. A database of an older version runs the numbered
-- migration steps in src/db.rs instead, which produce exactly this.

-- Tenants. A key with an application sees and manages only that application's keys.
CREATE TABLE applications (
    id          INTEGER PRIMARY KEY,
    uuid        TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL              -- ms since the Unix epoch, UTC
) STRICT;

-- One row per key ever made. The plaintext is never stored: key_hash is SHA-256 of it.
-- Rows are never removed: revoked and deleted keys stay for the audit trail, and a
-- deleted key's hash stays so that its value can be reported as DELETED, never VALID.
CREATE TABLE api_keys (
    id              INTEGER PRIMARY KEY,
    uuid            TEXT    NOT NULL UNIQUE,
    title           TEXT    NOT NULL,
    prefix          TEXT    NOT NULL,
    key_hash        BLOB    NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    grants          TEXT    NOT NULL,         -- JSON list of {"path", "access"}
    status          TEXT    NOT NULL DEFAULT 'active'
                            CHECK (status IN ('active', 'revoked', 'deleted')),
    created_at      INTEGER NOT NULL,
    revoked_at      INTEGER,
    deleted_at      INTEGER,
    expires_at      INTEGER,
    created_by      INTEGER REFERENCES api_keys (id),
    application_id  INTEGER REFERENCES applications (id)
) STRICT;

CREATE INDEX api_keys_by_application ON api_keys (application_id, id);

-- Every create, revoke and delete writes one row here in the same transaction as the change.
CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    at            INTEGER NOT NULL,
    action        TEXT    NOT NULL CHECK (action IN ('create', 'revoke', 'delete')),
    key_id        INTEGER NOT NULL REFERENCES api_keys (id),
    actor_key_id  INTEGER REFERENCES api_keys (id),   -- NULL: bootstrap or offline CLI
    request_id    TEXT                                -- NULL outside HTTP
) STRICT;

CREATE INDEX audit_log_by_key ON audit_log (key_id);

-- When each key last authenticated, at one-minute resolution, written in batches (src/usage.rs).
-- Its own narrow table: at a million keys in use a flush rewrites up to one row per key, and
-- rewriting rows here touches a few thousand small pages where rewriting api_keys rows
-- touched most of that wide table. No REFERENCES clause: key rows are never removed, and the
-- foreign-key check would read api_keys on every write, which this table exists to avoid.
CREATE TABLE key_usage (
    key_id        INTEGER PRIMARY KEY,      -- api_keys.id
    last_used_at  INTEGER NOT NULL
) STRICT;

-- Every application made, in the same transaction as the application (who, when, which
-- request). Kept apart from audit_log, which is the change feed of keys (src/index.rs).
CREATE TABLE application_audit (
    id              INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,
    action          TEXT    NOT NULL CHECK (action IN ('create')),
    application_id  INTEGER NOT NULL REFERENCES applications (id),
    actor_key_id    INTEGER REFERENCES api_keys (id),
    request_id      TEXT
) STRICT;

-- Server-side settings and secrets that must survive restarts (e.g. a signing secret).
CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  BLOB NOT NULL
) STRICT;
