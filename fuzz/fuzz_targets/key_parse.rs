//! `ApiKey::parse` on arbitrary text: never panics; whatever it accepts has the documented
//! shape and checksum, round-trips, and never shows up in `Debug`.
#![no_main]

mod common;

use apikeyd::domain::key_format::{redact, ApiKey, KEY_LEN, PREFIX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let parsed = ApiKey::parse(s);
    let shaped =
        s.len() == KEY_LEN && s.starts_with(PREFIX) && s.bytes().skip(PREFIX.len()).all(|b| b.is_ascii_alphanumeric());
    if shaped {
        // The oracle: accepted exactly when the independent checksum matches.
        let mut body = [0u8; 43];
        for (slot, b) in body.iter_mut().zip(s[PREFIX.len()..PREFIX.len() + 43].bytes()) {
            *slot = common::BASE62.iter().position(|&c| c == b).unwrap() as u8;
        }
        assert_eq!(parsed.is_ok(), common::make_key(&body) == s, "{s:?}");
    } else {
        assert!(parsed.is_err(), "accepted a mis-shaped key {s:?}");
    }
    if let Ok(key) = parsed {
        assert_eq!(key.expose(), s);
        assert_eq!(ApiKey::parse(key.expose()).as_ref(), Ok(&key));
        assert!(s.starts_with(&key.display_prefix()));
        assert!(!format!("{key:?}").contains(s));
        assert_eq!(redact(s), "[redacted]");
        let _ = key.hash();
    }
});
