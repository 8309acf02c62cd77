//! The log's two formats: `text` (`[time level target] message`) and `json` (one object per
//! line: `time`, `level`, `target`, `message`, and whatever fields the record carries; the
//! access log's lines carry `request_id`, `method`, `route`, `status`, `duration_ms`). Both
//! stamp lines with the server's own clock (one-way, within years 1970..=9999): env_logger's
//! own timestamp fails to format a system clock past year 9999, and a failed format panics
//! the thread that logs. What reaches the log is chosen by its callers: never a query
//! string, a header or a body (see `http::middleware`).

use std::io::Write;

use log::kv::{Key, Value, VisitSource};

use crate::config::LogFormat;
use crate::domain::timestamp::Timestamp;

/// Installs the logger (level from `RUST_LOG`, `info` by default) in `format`.
pub fn init(format: LogFormat) {
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    match format {
        LogFormat::Text => builder.format(|buf, record| {
            writeln!(buf, "[{} {:<5} {}] {}", Timestamp::now(), record.level(), record.target(), record.args())
        }),
        LogFormat::Json => builder.format(|buf, record| writeln!(buf, "{}", json_line(record))),
    };
    builder.init();
}

/// One record as one JSON object (no newline inside: serde_json escapes them).
pub fn json_line(record: &log::Record<'_>) -> String {
    let mut object = serde_json::Map::new();
    object.insert("time".into(), Timestamp::now().to_string().into());
    object.insert("level".into(), record.level().as_str().into());
    object.insert("target".into(), record.target().into());
    object.insert("message".into(), record.args().to_string().into());
    let mut fields = Fields(&mut object);
    // A field that cannot be visited is left out; the line itself is still written.
    let _ = record.key_values().visit(&mut fields);
    serde_json::Value::Object(object).to_string()
}

struct Fields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let json = if let Some(n) = value.to_u64() {
            n.into()
        } else if let Some(n) = value.to_i64() {
            n.into()
        } else if let Some(x) = value.to_f64() {
            serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
        } else {
            value.to_string().into()
        };
        self.0.insert(key.as_str().to_owned(), json);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_becomes_one_json_object_with_its_fields() {
        let kvs: [(&str, Value<'_>); 2] =
            [("status", Value::from(404u16)), ("route", Value::from("/api/v1/keys/{id}"))];
        let record = log::Record::builder()
            .args(format_args!("a \"quoted\"\nmessage"))
            .level(log::Level::Info)
            .target("apikeyd::access")
            .key_values(&kvs)
            .build();
        let line = json_line(&record);
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "apikeyd::access");
        assert_eq!(v["message"], "a \"quoted\"\nmessage");
        assert_eq!(v["status"], 404);
        assert_eq!(v["route"], "/api/v1/keys/{id}");
        assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}
