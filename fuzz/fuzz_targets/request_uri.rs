//! `GrantPath::from_request_uri` on arbitrary text: never panics; what it accepts is
//! normalised, never came from an encoded slash or backslash, agrees with
//! `from_request_path` (parse plus the ambiguous forms) when there is nothing to decode and
//! no fragment, and its result read again as a URI names the same path.
#![no_main]

mod common;

use apikeyd::domain::grants::GrantPath;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let raw = s.split('?').next().unwrap_or("");
    let result = GrantPath::from_request_uri(s);
    if s.contains('#') {
        assert!(result.is_err(), "{s:?}: a fragment accepted");
    } else if !raw.contains('%') {
        assert_eq!(result, GrantPath::from_request_path(raw), "{s:?}: nothing to decode, yet differs");
    }
    let Ok(p) = result else { return };
    common::assert_normalised(&p);
    let lower = raw.to_ascii_lowercase();
    assert!(!lower.contains("%2f") && !lower.contains("%5c"), "encoded slash accepted: {s:?}");
    // The normalised path, read again as a request URI, is the same path.
    if !p.as_str().contains(['?', '#']) {
        assert_eq!(GrantPath::from_request_uri(p.as_str()).as_ref(), Ok(&p));
    }
    // Encoding every `%` once more must never yield an accepted path (no double decoding).
    if raw.contains('%') {
        let twice = raw.replace('%', "%25");
        assert!(GrantPath::from_request_uri(&twice).is_err(), "{twice:?} decoded twice");
    }
});
