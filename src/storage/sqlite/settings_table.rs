//! The `settings` table: small named values that must survive restarts (the JWT secret).

use rusqlite::{params, Connection};

use crate::storage::{SettingStore, StoreError};

impl SettingStore for Connection {
    /// Two processes racing on first start therefore agree on one value.
    fn insert_setting_once(&self, name: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.execute("INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)", params![name, value])?;
        Ok(self.query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| r.get(0))?)
    }
}
