//! Helpers shared by the fuzz targets (each target includes this file with `mod common;`).
#![allow(dead_code)]

use apikeyd::domain::grants::{GrantPath, MAX_PATH_LEN};
use apikeyd::domain::key_format::PREFIX;

pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// CRC-32 (IEEE, reflected), written independently of the crate's.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        let mut c = (crc ^ u32::from(b)) & 0xFF;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
        crc = c ^ (crc >> 8);
    }
    !crc
}

/// A well-formed key whose 43 body characters are picked by `body` (each byte mod 62).
pub fn make_key(body: &[u8; 43]) -> String {
    let mut key = String::from(PREFIX);
    key.extend(body.iter().map(|b| char::from(BASE62[usize::from(*b) % 62])));
    let mut v = crc32(key.as_bytes());
    let mut sum = [b'0'; 6];
    for d in sum.iter_mut().rev() {
        *d = BASE62[(v % 62) as usize];
        v /= 62;
    }
    key.push_str(std::str::from_utf8(&sum).unwrap());
    key
}

/// Panics unless `p` has the normalised form `GrantPath` promises.
pub fn assert_normalised(p: &GrantPath) {
    let s = p.as_str();
    assert!(s.starts_with('/'), "{s:?}");
    for bad in ["//", "/./", "/../", "%", "\\"] {
        assert!(!s.contains(bad), "{s:?} contains {bad:?}");
    }
    assert!(s == "/" || !s.ends_with('/'), "{s:?} ends with /");
    assert!(!s.ends_with("/.") && !s.ends_with("/.."), "{s:?} ends with a dot segment");
    assert!(!s.chars().any(char::is_control), "{s:?} has a control character");
    assert!(s.len() <= MAX_PATH_LEN, "{s:?} too long");
    assert_eq!(GrantPath::parse(s).as_ref(), Ok(p), "parse is not idempotent on {s:?}");
}
