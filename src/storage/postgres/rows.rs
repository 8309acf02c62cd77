//! Row images: how a change travels between a node's SQLite replica and PostgreSQL. A write
//! runs the core's own statements on the replica (caught up, under the fleet's write lock);
//! TEMP triggers on the writer's connection note which rows it touched; each touched row's
//! final state (or its absence) becomes one JSON image `{"t": table, "k": key, "r": {column:
//! value} | null}`. Images are applied to PostgreSQL's tables, carried in the change log, and
//! applied to every other replica, column by column, whatever the statement was.

use std::collections::HashSet;

use base64::Engine;
use rusqlite::types::Value;
use rusqlite::Connection;
use serde_json::{json, Map, Value as Json};

use crate::storage::StoreError;

/// The replicated tables and their primary keys, parents first.
pub(crate) const REPLICATED: [(&str, &str); 5] =
    [("applications", "id"), ("api_keys", "id"), ("audit_log", "id"), ("key_usage", "key_id"), ("settings", "name")];

/// A column's storage class (every replicated table is STRICT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// INTEGER (PostgreSQL BIGINT).
    Integer,
    /// TEXT.
    Text,
    /// BLOB (PostgreSQL BYTEA).
    Blob,
}

/// One replicated table, as this binary's schema has it.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    /// Its name.
    pub name: &'static str,
    /// Its primary key column.
    pub key: &'static str,
    /// Every column, in schema order, with its kind.
    pub columns: Vec<(String, Kind)>,
}

impl Table {
    /// The kind of the primary key.
    pub fn key_kind(&self) -> Kind {
        self.columns.iter().find(|(c, _)| c == self.key).map_or(Kind::Integer, |(_, k)| *k)
    }

    /// The column names, comma-separated.
    pub fn column_list(&self) -> String {
        self.columns.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// The replicated tables, read from the replica's schema.
pub(crate) fn tables(conn: &Connection) -> Result<Vec<Table>, StoreError> {
    let mut out = Vec::new();
    for (name, key) in REPLICATED {
        let mut stmt = conn.prepare("SELECT name, type FROM pragma_table_info(?1) ORDER BY cid")?;
        let columns = stmt
            .query_map([name], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .map(|(c, t)| {
                let kind = match t.to_ascii_uppercase().as_str() {
                    "INTEGER" => Kind::Integer,
                    "BLOB" => Kind::Blob,
                    _ => Kind::Text,
                };
                (c, kind)
            })
            .collect::<Vec<_>>();
        if columns.is_empty() {
            return Err(StoreError::Malformed("a replicated table is missing from the replica"));
        }
        out.push(Table { name, key, columns });
    }
    Ok(out)
}

/// Installs the TEMP table and triggers that note every row the writer's connection touches.
/// They live on that connection only: no other process or connection sees them.
pub(crate) fn install_capture(conn: &Connection) -> Result<(), StoreError> {
    let mut sql = String::from("CREATE TEMP TABLE IF NOT EXISTS fleet_touched (tbl TEXT NOT NULL, k ANY);");
    for (table, key) in REPLICATED {
        for (event, row) in [("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")] {
            // Names and keys are this file's constants, never input.
            sql.push_str(&format!(
                "CREATE TEMP TRIGGER IF NOT EXISTS fleet_{table}_{event} AFTER {event} ON main.{table} \
                 BEGIN INSERT INTO fleet_touched (tbl, k) VALUES ('{table}', {row}.{key}); END;"
            ));
        }
    }
    conn.execute_batch(&sql)?;
    Ok(())
}

/// Forgets what was touched so far (before a group of writes).
pub(crate) fn clear_capture(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("DELETE FROM temp.fleet_touched")?;
    Ok(())
}

/// The images of every row touched since [`clear_capture`], in the order first touched.
pub(crate) fn captured(conn: &Connection, tables: &[Table]) -> Result<Vec<Json>, StoreError> {
    let touched: Vec<(String, Value)> = conn
        .prepare("SELECT tbl, k FROM temp.fleet_touched ORDER BY rowid")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut seen = HashSet::new();
    let mut images = Vec::new();
    for (name, key) in touched {
        let Some(table) = tables.iter().find(|t| t.name == name) else { continue };
        let json_key = to_json(key.clone());
        if !seen.insert((table.name, json_key.to_string())) {
            continue;
        }
        let row = read_row(conn, table, &key)?;
        images.push(json!({"t": table.name, "k": json_key, "r": row}));
    }
    Ok(images)
}

fn read_row(conn: &Connection, table: &Table, key: &Value) -> Result<Json, StoreError> {
    let sql = format!("SELECT {} FROM {} WHERE {} = ?1", table.column_list(), table.name, table.key);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query([key])?;
    let Some(row) = rows.next()? else { return Ok(Json::Null) };
    let mut out = Map::new();
    for (i, (column, _)) in table.columns.iter().enumerate() {
        out.insert(column.clone(), to_json(row.get::<_, Value>(i)?));
    }
    Ok(Json::Object(out))
}

/// Every row of `table` in the SQLite database on `conn`, as images.
pub(crate) fn read_all(conn: &Connection, table: &Table) -> Result<Vec<Json>, StoreError> {
    let sql = format!("SELECT {} FROM {} ORDER BY {}", table.column_list(), table.name, table.key);
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    let mut images = Vec::new();
    while let Some(row) = rows.next()? {
        let mut out = Map::new();
        let mut key = Json::Null;
        for (i, (column, _)) in table.columns.iter().enumerate() {
            let value = to_json(row.get::<_, Value>(i)?);
            if column == table.key {
                key = value.clone();
            }
            out.insert(column.clone(), value);
        }
        images.push(json!({"t": table.name, "k": key, "r": out}));
    }
    Ok(images)
}

/// The change that tells every replica to reload a snapshot (written by `fleet import`).
pub(crate) fn reload_marker() -> Json {
    json!({"reload": true})
}

/// True for [`reload_marker`].
pub(crate) fn is_reload_marker(image: &Json) -> bool {
    image.get("reload").and_then(Json::as_bool) == Some(true)
}

/// Applies images to the replica, inside the caller's transaction: each row is set to its
/// image (inserted or updated), or removed for a null image.
pub(crate) fn apply(conn: &Connection, tables: &[Table], images: &[Json]) -> Result<(), StoreError> {
    for image in images {
        let name = image.get("t").and_then(Json::as_str).ok_or(StoreError::Malformed("change without a table"))?;
        let table =
            tables.iter().find(|t| t.name == name).ok_or(StoreError::Malformed("change to an unknown table"))?;
        let key = image.get("k").map(from_json).ok_or(StoreError::Malformed("change without a key"))?;
        match image.get("r") {
            Some(Json::Object(row)) => upsert(conn, table, row)?,
            _ => {
                let sql = format!("DELETE FROM {} WHERE {} = ?1", table.name, table.key);
                conn.prepare_cached(&sql)?.execute([key])?;
            }
        }
    }
    Ok(())
}

fn upsert(conn: &Connection, table: &Table, row: &Map<String, Json>) -> Result<(), StoreError> {
    let columns = table.column_list();
    let marks = (1..=table.columns.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
    let set = table
        .columns
        .iter()
        .filter(|(c, _)| c != table.key)
        .map(|(c, _)| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO {} ({columns}) VALUES ({marks}) ON CONFLICT ({}) DO UPDATE SET {set}",
        table.name, table.key
    );
    let values: Vec<Value> = table.columns.iter().map(|(c, _)| row.get(c).map_or(Value::Null, from_json)).collect();
    conn.prepare_cached(&sql)?.execute(rusqlite::params_from_iter(values))?;
    Ok(())
}

/// Empties every replicated table (before a snapshot is loaded), children first.
pub(crate) fn clear_all(conn: &Connection) -> Result<(), StoreError> {
    for (table, _) in REPLICATED.iter().rev() {
        conn.execute_batch(&format!("DELETE FROM {table}"))?;
    }
    Ok(())
}

/// A SQLite value as JSON: a blob becomes `{"b": base64}`.
pub(crate) fn to_json(v: Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Integer(i) => Json::from(i),
        Value::Real(f) => Json::from(f),
        Value::Text(s) => Json::String(s),
        Value::Blob(b) => json!({"b": base64::engine::general_purpose::STANDARD.encode(b)}),
    }
}

/// JSON back to a SQLite value (the inverse of [`to_json`]).
pub(crate) fn from_json(v: &Json) -> Value {
    match v {
        Json::Null | Json::Bool(_) | Json::Array(_) => Value::Null,
        Json::Number(n) => n.as_i64().map_or_else(|| Value::Real(n.as_f64().unwrap_or(0.0)), Value::Integer),
        Json::String(s) => Value::Text(s.clone()),
        Json::Object(o) => o
            .get("b")
            .and_then(Json::as_str)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map_or(Value::Null, Value::Blob),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sqlite::open_connection;

    #[test]
    fn values_round_trip_through_json() {
        for v in [Value::Null, Value::Integer(i64::MAX), Value::Text("x{\"b\"".into()), Value::Blob(vec![0, 255, 7])] {
            assert_eq!(from_json(&to_json(v.clone())), v);
        }
    }

    /// What one replica's writes touched, applied to another replica, makes it equal.
    #[test]
    fn captured_images_applied_elsewhere_reproduce_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let a = open_connection(&dir.path().join("a.db")).unwrap();
        let b = open_connection(&dir.path().join("b.db")).unwrap();
        install_capture(&a).unwrap();
        let tables = tables(&a).unwrap();
        clear_capture(&a).unwrap();
        a.execute_batch(
            "INSERT INTO applications (uuid, name, created_at) VALUES ('u', 'A', 1);
             INSERT INTO api_keys (uuid, title, prefix, key_hash, grants, created_at, application_id)
                 VALUES ('k', 't', 'sk-x', randomblob(32), '[]', 2, 1);
             UPDATE api_keys SET status = 'revoked', revoked_at = 3 WHERE id = 1;
             INSERT INTO settings (name, value) VALUES ('s', x'0102');
             INSERT INTO settings (name, value) VALUES ('gone', x'00');
             DELETE FROM settings WHERE name = 'gone';",
        )
        .unwrap();
        let images = captured(&a, &tables).unwrap();
        assert_eq!(images.len(), 4, "each row once: {images:?}");
        b.execute_batch("INSERT INTO settings (name, value) VALUES ('gone', x'00')").unwrap();
        b.execute_batch("BEGIN; PRAGMA defer_foreign_keys = ON;").unwrap();
        apply(&b, &tables, &images).unwrap();
        b.execute_batch("COMMIT").unwrap();
        let dump = |c: &Connection| -> Vec<String> {
            let mut out = Vec::new();
            for t in &tables {
                let sql = format!("SELECT {} FROM {} ORDER BY 1", t.column_list(), t.name);
                let mut stmt = c.prepare(&sql).unwrap();
                let n = stmt.column_count();
                let rows = stmt
                    .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect::<rusqlite::Result<Vec<_>>>())
                    .unwrap();
                for r in rows {
                    out.push(format!("{} {:?}", t.name, r.unwrap()));
                }
            }
            out
        };
        assert_eq!(dump(&a), dump(&b));
    }
}
