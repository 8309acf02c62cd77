//! Points in time as stored (milliseconds since the Unix epoch, UTC) and as shown
//! (RFC 3339 with milliseconds and a `Z`, e.g. `2026-03-12T09:50:00.000Z`).
//! Pure code: parsing and formatting only. The clock is read in one place, `Timestamp::now`,
//! which lives beside the one-way clock it reads (`domain::clock`).

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// Milliseconds since 1970-01-01T00:00:00Z. Stored as INTEGER in SQLite.
// Documented as what it serialises to (an RFC 3339 string), not what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, utoipa::ToSchema)]
#[schema(value_type = String, format = DateTime, example = "2026-03-12T09:50:00.000Z")]
pub struct Timestamp(i64);

/// Occurs when a timestamp is not RFC 3339, or lies outside years 1..=9999.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected an RFC 3339 timestamp such as 2026-03-12T09:50:00.000Z")]
pub struct TimestampError;

impl Timestamp {
    /// Wraps a stored millisecond value.
    pub const fn from_millis(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    /// The stored millisecond value.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// This time plus `ms` milliseconds, saturating.
    pub fn plus_millis(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }

    /// Parses RFC 3339 with any offset; sub-millisecond digits are truncated.
    pub fn parse_rfc3339(s: &str) -> Result<Timestamp, TimestampError> {
        if s.len() > crate::config::MAX_TIMESTAMP_LEN {
            return Err(TimestampError);
        }
        let dt = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| TimestampError)?;
        // The offset can carry a local year-9999 or year-0 time outside the range in UTC,
        // where it could not be shown again; refuse it rather than store it.
        let utc_year = dt.checked_to_offset(time::UtcOffset::UTC).map(|u| u.year());
        if !utc_year.is_some_and(|y| (1..=9999).contains(&y)) {
            return Err(TimestampError);
        }
        let ms = dt.unix_timestamp_nanos().div_euclid(1_000_000);
        i64::try_from(ms).map(Timestamp).map_err(|_| TimestampError)
    }

    fn to_datetime(self) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000).ok()
    }
}

/// Occurs when a duration is not a whole number followed by `s`, `m`, `h`, `d` or `w`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected a duration such as 90s, 30m, 12h, 7d or 2w")]
pub struct DurationError;

/// Milliseconds in a duration written `12h`, `7d`, `90s`, `30m` or `2w` (at most about 300
/// years: a bound no query needs to pass).
pub fn parse_duration(s: &str) -> Result<i64, DurationError> {
    // The unit is the last byte; a last character of several bytes (`"\u{80}"`) is no unit,
    // and splitting inside it would panic.
    let Some((number, unit)) = s.split_at_checked(s.len().saturating_sub(1)) else {
        return Err(DurationError);
    };
    let unit_ms: i64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return Err(DurationError),
    };
    if number.is_empty() || number.len() > 6 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DurationError);
    }
    // Six digits of weeks (about 19,000 years) still fit: every duration the documented
    // pattern allows is accepted, and callers add it with saturation.
    let n: i64 = number.parse().map_err(|_| DurationError)?;
    n.checked_mul(unit_ms).ok_or(DurationError)
}

impl fmt::Display for Timestamp {
    /// Always UTC with exactly three fractional digits, as every family documents them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
        match self.to_datetime().and_then(|dt| dt.format(&format).ok()) {
            Some(s) => f.write_str(&s),
            // Only reachable for values no parser here produces; show the raw number.
            None => write!(f, "@{}ms", self.0),
        }
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_ending_in_a_multibyte_character_is_refused_not_a_panic() {
        for bad in ["\u{80}", "1\u{80}", "7\u{e9}", "\u{1F600}", ""] {
            assert_eq!(parse_duration(bad), Err(DurationError), "{bad:?}");
        }
        assert_eq!(parse_duration("2w"), Ok(1_209_600_000));
    }

    #[test]
    fn formats_with_milliseconds_and_z() {
        let t = Timestamp::parse_rfc3339("2026-03-12T09:50:00Z").unwrap();
        assert_eq!(t.to_string(), "2026-03-12T09:50:00.000Z");
        let t = Timestamp::parse_rfc3339("2026-03-12T10:50:00.1234+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-03-12T09:50:00.123Z");
    }

    #[test]
    fn parses_year_one_sentinel() {
        let t = Timestamp::parse_rfc3339("0001-01-01T00:00:00Z").unwrap();
        assert_eq!(t.to_string(), "0001-01-01T00:00:00.000Z");
    }

    #[test]
    fn durations_table() {
        let rows = [
            ("90s", Ok(90_000)),
            ("30m", Ok(1_800_000)),
            ("12h", Ok(43_200_000)),
            ("7d", Ok(604_800_000)),
            ("2w", Ok(1_209_600_000)),
            ("0d", Ok(0)),
            ("999999w", Ok(999_999 * 604_800_000)),
        ];
        for (text, want) in rows {
            assert_eq!(parse_duration(text), want, "{text}");
        }
        for bad in ["", "d", "7", "7y", "-1d", "1.5h", "7 d", "9999999d", "+7d"] {
            assert_eq!(parse_duration(bad), Err(DurationError), "{bad}");
        }
    }

    #[test]
    fn rejects_non_rfc3339() {
        for bad in [
            "",
            "2026-03-12",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "1700000000",
            "9999-12-31T23:50:00-23:59",
            "0000-01-01T00:00:00+00:01",
            "0000-01-01T00:00:00Z",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(bad), Err(TimestampError), "{bad}");
        }
    }
}
