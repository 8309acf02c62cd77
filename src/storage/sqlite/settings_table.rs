//! The `settings` table: small named values that must survive restarts (the JWT secret, the
//! one-way clock's high-water mark), and the look-up of the latest stored time.

use rusqlite::{params, Connection, OptionalExtension};

use crate::domain::timestamp::Timestamp;
use crate::storage::{ClockStore, SettingStore, StoreError};

/// The settings row holding the clock's high-water mark: 8 bytes, big-endian ms.
const CLOCK_MARK: &str = "clock_high_water_ms";

impl SettingStore for Connection {
    /// Two processes racing on first start therefore agree on one value.
    fn insert_setting_once(&self, name: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.execute("INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)", params![name, value])?;
        Ok(self.query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| r.get(0))?)
    }

    fn find_setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| r.get(0)).optional()?)
    }
}

fn clock_mark(conn: &Connection) -> Result<i64, StoreError> {
    let value: Option<Vec<u8>> =
        conn.query_row("SELECT value FROM settings WHERE name = ?1", [CLOCK_MARK], |r| r.get(0)).optional()?;
    // Anything but 8 bytes was not written here: no mark.
    Ok(value.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map_or(0, i64::from_be_bytes))
}

impl ClockStore for Connection {
    fn latest_time(&self) -> Result<i64, StoreError> {
        let stored: i64 = self.query_row(
            "SELECT max(coalesce((SELECT max(at) FROM audit_log), 0),
                        coalesce((SELECT max(created_at) FROM applications), 0),
                        coalesce((SELECT max(last_used_at) FROM key_usage), 0))",
            [],
            |r| r.get(0),
        )?;
        Ok(stored.max(clock_mark(self)?))
    }

    fn raise_clock_mark(&self, at: Timestamp) -> Result<i64, StoreError> {
        let mark = clock_mark(self)?.max(at.millis());
        self.execute(
            "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            params![CLOCK_MARK, mark.to_be_bytes().as_slice()],
        )?;
        Ok(mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sqlite::open_connection;

    #[test]
    fn the_mark_only_rises_and_the_latest_time_sees_it_and_the_audit_log() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_connection(&dir.path().join("c.db")).unwrap();
        assert_eq!(conn.latest_time().unwrap(), 0);
        assert_eq!(conn.raise_clock_mark(Timestamp::from_millis(5_000)).unwrap(), 5_000);
        assert_eq!(conn.raise_clock_mark(Timestamp::from_millis(4_000)).unwrap(), 5_000, "never lowered");
        assert_eq!(conn.latest_time().unwrap(), 5_000);
        conn.execute_batch(
            "INSERT INTO applications (uuid, name, created_at) VALUES ('a', 'a', 1);
             INSERT INTO audit_log (at, action, application_id) VALUES (9000, 'create_application', 1);",
        )
        .unwrap();
        assert_eq!(conn.latest_time().unwrap(), 9_000);
    }
}
