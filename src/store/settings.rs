//! The `settings` table: small named values that must survive restarts (the JWT secret).

use rusqlite::{params, Connection};

/// Stores `value` under `name` unless something is already there; returns what is stored.
/// Two processes racing on first start therefore agree on one value.
pub fn insert_setting_once(conn: &Connection, name: &str, value: &[u8]) -> rusqlite::Result<Vec<u8>> {
    conn.execute("INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)", params![name, value])?;
    conn.query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| r.get(0))
}
