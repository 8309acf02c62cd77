//! `GrantPath::parse` on arbitrary text: never panics; what it accepts is normalised, differs
//! from the input by at most one dropped trailing slash, and re-parses to itself.
#![no_main]

mod common;

use apikeyd::domain::grants::{GrantPath, MAX_PATH_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    match GrantPath::parse(s) {
        Ok(p) => {
            common::assert_normalised(&p);
            assert!(p.as_str() == s || format!("{}/", p.as_str()) == s, "{s:?} -> {p:?}");
            assert!(GrantPath::root().covers(&p));
            assert!(p.covers(&p));
        }
        Err(_) => {
            // Refused only for a documented reason.
            let reason = s.len() > MAX_PATH_LEN
                || match s.strip_prefix('/') {
                    None => true,
                    Some(rest) => {
                        let rest = rest.strip_suffix('/').unwrap_or(rest);
                        rest.split('/').any(|seg| {
                            seg.is_empty()
                                || seg == "."
                                || seg == ".."
                                || seg.chars().any(|c| c.is_control() || c == '\\' || c == '%')
                        })
                    }
                };
            assert!(reason, "{s:?} refused for no documented reason");
        }
    }
});
