-- apikeyd schema, version 3. The whole current schema: a new database runs this file once
-- and sets PRAGMA user_version = 3. A database of an older version runs the numbered
-- migration steps in src/storage/sqlite/mod.rs instead, which produce exactly this.

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
    application_id  INTEGER REFERENCES applications (id), owner TEXT, meta TEXT,
    enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    rotated_from INTEGER REFERENCES api_keys (id), rotated_to INTEGER REFERENCES api_keys (id)
    -- owner: who the key belongs to in the caller's system; meta: a JSON object, as given;
    -- enabled: 0 while disabled (reversible, unlike revoked); rotated_from/rotated_to: the
    -- key this one replaced, and the one that replaced it.
) STRICT;

CREATE INDEX api_keys_by_application ON api_keys (application_id, id);

-- Every change to a key or an application writes one row here in the same transaction as
-- the change: the audit trail, and the change feed of keys (src/service/index.rs). `changes`
-- says what changed (JSON; never a hash or a plaintext key).
CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,
    action          TEXT    NOT NULL CHECK (action IN ('create', 'revoke', 'delete', 'update', 'disable',
                                                       'enable', 'rotate', 'import', 'create_application')),
    key_id          INTEGER REFERENCES api_keys (id),       -- NULL for an application's creation
    application_id  INTEGER REFERENCES applications (id),   -- the key's application, or the one made
    actor_key_id    INTEGER REFERENCES api_keys (id),       -- NULL: bootstrap or command line
    request_id      TEXT,                                   -- NULL outside HTTP
    changes         TEXT,
    CHECK (key_id IS NOT NULL OR action = 'create_application')
) STRICT;

CREATE INDEX audit_log_by_key ON audit_log (key_id);
CREATE INDEX audit_log_by_application ON audit_log (application_id, id);

-- When each key last authenticated, at one-minute resolution, written in batches (src/usage.rs).
-- Its own narrow table: at a million keys in use a flush rewrites up to one row per key, and
-- rewriting rows here touches a few thousand small pages where rewriting api_keys rows
-- touched most of that wide table. No REFERENCES clause: key rows are never removed, and the
-- foreign-key check would read api_keys on every write, which this table exists to avoid.
CREATE TABLE key_usage (
    key_id        INTEGER PRIMARY KEY,      -- api_keys.id
    last_used_at  INTEGER NOT NULL
) STRICT;

-- Server-side settings and secrets that must survive restarts (e.g. a signing secret).
CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  BLOB NOT NULL
) STRICT;
