//! The `applications` table and its audit trail, `application_audit`.

use rusqlite::{params, Connection, OptionalExtension, Row};
use uuid::Uuid;

use crate::domain::model::{AppId, Application};
use crate::domain::timestamp::Timestamp;
use crate::storage::{ApplicationStore, StoreError};

impl ApplicationStore for Connection {
    fn insert_application(&self, uuid: Uuid, name: &str, at: Timestamp) -> Result<Application, StoreError> {
        self.prepare_cached("INSERT INTO applications (uuid, name, created_at) VALUES (?1, ?2, ?3)")?
            .execute(params![uuid.to_string(), name, at.millis()])?;
        Ok(Application { id: AppId(self.last_insert_rowid()), uuid, name: name.to_owned(), created_at: at })
    }

    fn find_application_by_uuid(&self, uuid: Uuid) -> Result<Option<Application>, StoreError> {
        Ok(self
            .prepare_cached("SELECT id, uuid, name, created_at FROM applications WHERE uuid = ?1")?
            .query_row([uuid.to_string()], from_row)
            .optional()?)
    }

    fn list_applications(&self, only: Option<AppId>) -> Result<Vec<Application>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT id, uuid, name, created_at FROM applications WHERE ?1 IS NULL OR id = ?1 ORDER BY id DESC",
        )?;
        let rows = stmt.query_map([only.map(|a| a.0)], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Application> {
    let uuid: String = row.get(1)?;
    Ok(Application {
        id: AppId(row.get(0)?),
        uuid: Uuid::parse_str(&uuid)
            .map_err(|_| rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, "uuid".into()))?,
        name: row.get(2)?,
        created_at: Timestamp::from_millis(row.get(3)?),
    })
}
