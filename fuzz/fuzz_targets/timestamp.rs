//! `Timestamp::parse_rfc3339` on arbitrary text: never panics; whatever it accepts formats as
//! RFC 3339 UTC with milliseconds, and that text parses back to the same instant.
#![no_main]

use apikeyd::domain::timestamp::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Ok(t) = Timestamp::parse_rfc3339(s) else { return };
    let shown = t.to_string();
    assert_eq!(Timestamp::parse_rfc3339(&shown), Ok(t), "{s:?} -> {t:?} shown as {shown:?}, which does not parse back");
    assert_eq!(shown.len(), 24, "{s:?} shown as {shown:?}");
    assert_eq!(Timestamp::parse_rfc3339(&shown).unwrap().to_string(), shown);
});
