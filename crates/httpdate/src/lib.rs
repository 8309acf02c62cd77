//! HTTP dates, as the `httpdate` crate's API has them (`HttpDate`, `fmt_http_date`,
//! `parse_http_date`, `Error`), written for apikeyd and put in place of crates.io's
//! `httpdate` 1.0.3 by `[patch.crates-io]`.
//!
//! Why: actix-http formats the `Date` header of every response from `SystemTime::now()`,
//! refreshed every 500 ms by a task on each worker (`actix-http/src/date.rs`), through
//! `httpdate::HttpDate::from(SystemTime)`. crates.io's version panics for a time at or after
//! year 10000 (and before 1970). A wall clock set that far (by mistake, by a bad time source,
//! or under libfaketime) therefore killed the task on every worker: the `Date` header froze,
//! and so did the instant actix-http computes its request and keep-alive deadlines from, so
//! every request after a few seconds was answered 408. Nothing outside actix-http can stop
//! that task from reading the system clock, so the conversion itself must not panic.
//!
//! The difference from crates.io's crate: a `SystemTime` outside 1970-01-01T00:00:00Z ..=
//! 9999-12-31T23:59:59Z is clamped to the nearest end of that range, as apikeyd's own clock
//! is (`src/domain/clock.rs`). Formatting and the three parsed formats (IMF-fixdate, RFC 850
//! with two-digit years read as 1970..=2069, asctime) follow RFC 9110, section 5.6.7.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// The last second an HTTP date can show: 9999-12-31T23:59:59Z.
const LATEST_SECS: u64 = 253_402_300_799;

/// A point in time as HTTP dates show it: whole seconds, years 1970..=9999.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HttpDate {
    secs: u64,
}

/// Occurs when a text is not an HTTP date in one of the three formats.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Error(());

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("string contains no or an invalid date")
    }
}

impl std::error::Error for Error {}

impl From<SystemTime> for HttpDate {
    /// Clamps: before 1970 is 1970-01-01T00:00:00Z, after 9999 is 9999-12-31T23:59:59Z.
    fn from(t: SystemTime) -> HttpDate {
        let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        HttpDate { secs: secs.min(LATEST_SECS) }
    }
}

impl From<HttpDate> for SystemTime {
    fn from(d: HttpDate) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(d.secs)
    }
}

impl fmt::Display for HttpDate {
    /// IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        );
        // In range by construction: both conversions succeed.
        let secs = i64::try_from(self.secs).map_err(|_| fmt::Error)?;
        let dt = OffsetDateTime::from_unix_timestamp(secs).map_err(|_| fmt::Error)?;
        f.write_str(&dt.format(&format).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for HttpDate {
    type Err = Error;

    fn from_str(s: &str) -> Result<HttpDate, Error> {
        let s = s.trim();
        let parsed = parse_imf_fixdate(s).or_else(|| parse_rfc850(s)).or_else(|| parse_asctime(s)).ok_or(Error(()))?;
        let secs = u64::try_from(parsed.assume_utc().unix_timestamp()).map_err(|_| Error(()))?;
        if secs > LATEST_SECS {
            return Err(Error(()));
        }
        Ok(HttpDate { secs })
    }
}

fn parse_imf_fixdate(s: &str) -> Option<PrimitiveDateTime> {
    let format =
        format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");
    parse_exact(s, format)
}

/// `text` in `format`, which must also say the right weekday: `time` parses the weekday but
/// does not hold it against the date, so the date is shown again and compared.
fn parse_exact(text: &str, format: &[time::format_description::BorrowedFormatItem<'_>]) -> Option<PrimitiveDateTime> {
    let parsed = PrimitiveDateTime::parse(text, &format).ok()?;
    (parsed.format(&format).ok()? == text).then_some(parsed)
}

/// `Sunday, 06-Nov-94 08:49:37 GMT`: the two-digit year is read within 1970..=2069.
fn parse_rfc850(s: &str) -> Option<PrimitiveDateTime> {
    let (weekday, rest) = s.split_once(", ")?;
    let (date, rest) = rest.split_once(' ')?;
    let mut parts = date.split('-');
    let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || year.len() != 2 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let yy: i32 = year.parse().ok()?;
    let full = if yy < 70 { 2000 + yy } else { 1900 + yy };
    let text = format!("{weekday}, {day}-{month}-{full} {rest}");
    let format =
        format_description!("[weekday repr:long], [day]-[month repr:short]-[year] [hour]:[minute]:[second] GMT");
    parse_exact(&text, format)
}

/// `Sun Nov  6 08:49:37 1994`.
fn parse_asctime(s: &str) -> Option<PrimitiveDateTime> {
    let format = format_description!(
        "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
    );
    parse_exact(s, format)
}

/// `t` as an IMF-fixdate (clamped as [`HttpDate::from`] clamps).
pub fn fmt_http_date(t: SystemTime) -> String {
    HttpDate::from(t).to_string()
}

/// An HTTP date in any of the three formats.
pub fn parse_http_date(s: &str) -> Result<SystemTime, Error> {
    HttpDate::from_str(s).map(SystemTime::from)
}
