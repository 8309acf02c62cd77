//! The `applications` table.

use rusqlite::{params, Connection, OptionalExtension, Row};
use uuid::Uuid;

use crate::model::{AppId, Application};
use crate::timestamp::Timestamp;

/// Inserts an application and returns it.
pub fn insert_application(conn: &Connection, uuid: Uuid, name: &str, at: Timestamp) -> rusqlite::Result<Application> {
    conn.prepare_cached("INSERT INTO applications (uuid, name, created_at) VALUES (?1, ?2, ?3)")?.execute(params![
        uuid.to_string(),
        name,
        at.millis()
    ])?;
    Ok(Application { id: AppId(conn.last_insert_rowid()), uuid, name: name.to_owned(), created_at: at })
}

/// The application with this UUID.
pub fn find_application_by_uuid(conn: &Connection, uuid: Uuid) -> rusqlite::Result<Option<Application>> {
    conn.prepare_cached("SELECT id, uuid, name, created_at FROM applications WHERE uuid = ?1")?
        .query_row([uuid.to_string()], from_row)
        .optional()
}

/// Every application, or only `only` when given, newest first.
pub fn list_applications(conn: &Connection, only: Option<AppId>) -> rusqlite::Result<Vec<Application>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, uuid, name, created_at FROM applications WHERE ?1 IS NULL OR id = ?1 ORDER BY id DESC",
    )?;
    let rows = stmt.query_map([only.map(|a| a.0)], from_row)?;
    rows.collect()
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
