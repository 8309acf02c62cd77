-- apikeyd schema, version 1. The whole current schema: a new database runs this file once
-- and sets PRAGMA user_version = 1. Later versions add numbered migration steps in
-- src/db.rs and update this file to match what the steps produce.

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
    last_used_at    INTEGER,
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

-- Server-side settings and secrets that must survive restarts (e.g. a signing secret).
CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  BLOB NOT NULL
) STRICT;
