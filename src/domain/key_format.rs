//! The key format: generation, checksum, parsing, hashing and redaction. Pure code, no I/O
//! beyond the operating system's random source.
//!
//! A key is a prefix (`sk-` unless the deployment chose another, see [`KeyPrefix`]), then 43
//! base62 characters drawn from getrandom (43 x log2(62) = 256 bits), then 6 base62
//! characters of CRC-32 over everything before them: with `sk-`, 52 characters matching
//! `\bsk-[0-9A-Za-z]{49}\b`. The checksum lets a mistyped or truncated key be refused without
//! a database look-up; it is not a secret and proves nothing about authenticity. Only the
//! SHA-256 of the whole key is stored. A plain hash (no salt, no KDF) is enough because the
//! input has 256 bits of entropy: there is no dictionary to precompute. Keys imported from
//! elsewhere ([`KeyHash::of_text`]) keep their own format and are found by hash alone.

use std::fmt;

use sha2::{Digest, Sha256};

/// The default prefix of new keys.
pub const PREFIX: &str = crate::config::DEFAULT_KEY_PREFIX;
const BODY_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6;
/// What follows the prefix: body and checksum.
const TAIL_LEN: usize = BODY_LEN + CHECKSUM_LEN;
/// Length of every well-formed key with the default prefix.
pub const KEY_LEN: usize = PREFIX.len() + TAIL_LEN;
/// Longest prefix a deployment may choose.
pub const MAX_PREFIX_LEN: usize = 16;
/// Characters of the body shown in lists: about 48 bits, enough to recognise a key,
/// leaving over 200 unknown bits, far from enough to use it.
const DISPLAY_BODY_CHARS: usize = 8;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Every well-formed key matches this (an ECMA-262 regex, for the OpenAPI document and for
/// secret scanners, which drop the anchors). The checksum is the one rule it cannot state.
pub const KEY_PATTERN: &str = "^sk-[0-9A-Za-z]{49}$";

/// What new keys start with: 2 to 16 ASCII characters, a letter, then letters and digits,
/// ending in `-` or `_` (`sk-`, `acme_live_`), so secret scanners can tell a deployment's keys
/// from other services' `sk-` keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPrefix(String);

impl Default for KeyPrefix {
    fn default() -> KeyPrefix {
        KeyPrefix(PREFIX.to_owned())
    }
}

impl KeyPrefix {
    /// Accepts a prefix of the documented shape.
    pub fn parse(s: &str) -> Result<KeyPrefix, KeyError> {
        if is_prefix(s.as_bytes()) {
            Ok(KeyPrefix(s.to_owned()))
        } else {
            Err(KeyError::Prefix)
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The regex a secret scanner matches keys of this prefix with.
    pub fn scanner_pattern(&self) -> String {
        let escaped: String = self.0.chars().map(|c| if c == '-' { "\\-".to_owned() } else { c.to_string() }).collect();
        format!("\\b{escaped}[0-9A-Za-z]{{{TAIL_LEN}}}\\b")
    }
}

/// A letter, letters and digits, a final `-` or `_`: 2 to [`MAX_PREFIX_LEN`] bytes.
fn is_prefix(p: &[u8]) -> bool {
    let Some((last, head)) = p.split_last() else { return false };
    p.len() >= 2
        && p.len() <= MAX_PREFIX_LEN
        && matches!(last, b'-' | b'_')
        && head[0].is_ascii_alphabetic()
        && head.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// A plaintext key. Its `Debug` and `Display` show only the display prefix, so it can
/// never reach a log by accident; [`ApiKey::expose`] is the one way to the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

/// The SHA-256 of a key: what the database stores and looks up.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// The hash of any credential text: how a key imported in another service's format is
    /// found, since it has no checksum of ours to parse.
    pub fn of_text(text: &str) -> KeyHash {
        KeyHash(Sha256::digest(text.as_bytes()).into())
    }
}

/// Occurs when a string is not a well-formed key (wrong length, prefix, alphabet or checksum),
/// or when the operating system's random source fails during generation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The string is not a well-formed key.
    #[error("not a well-formed API key")]
    Malformed,
    /// getrandom failed; no key was made.
    #[error("the system random source failed")]
    Random,
    /// A key prefix not of the documented shape.
    #[error("a key prefix is 2 to 16 characters: a letter, letters, digits or _, then - or _")]
    Prefix,
}

impl ApiKey {
    /// Makes a new key with the default prefix from the operating system's random source.
    pub fn generate() -> Result<ApiKey, KeyError> {
        ApiKey::generate_with(&KeyPrefix::default())
    }

    /// Makes a new key starting with `prefix`.
    pub fn generate_with(prefix: &KeyPrefix) -> Result<ApiKey, KeyError> {
        let head_len = prefix.0.len() + BODY_LEN;
        let mut body = String::with_capacity(head_len + CHECKSUM_LEN);
        body.push_str(&prefix.0);
        let mut buf = [0u8; 64];
        while body.len() < head_len {
            getrandom::fill(&mut buf).map_err(|_| KeyError::Random)?;
            // Rejection sampling: 248 = 4 x 62, so accepted bytes map uniformly onto the alphabet.
            for b in buf.iter().copied().filter(|b| *b < 248) {
                if body.len() == head_len {
                    break;
                }
                body.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
        let checksum = encode_checksum(crc32(body.as_bytes()));
        body.push_str(&checksum);
        Ok(ApiKey(body))
    }

    /// Accepts a string only if it is a well-formed key, with any prefix of the documented
    /// shape (so keys made under an earlier `--key-prefix` keep working), and a matching
    /// checksum.
    pub fn parse(s: &str) -> Result<ApiKey, KeyError> {
        if !looks_like_key(s.as_bytes()) {
            return Err(KeyError::Malformed);
        }
        let (head, checksum) = s.split_at(s.len() - CHECKSUM_LEN);
        if checksum_digits(crc32(head.as_bytes())) != checksum.as_bytes() {
            return Err(KeyError::Malformed);
        }
        Ok(ApiKey(s.to_owned()))
    }

    /// The plaintext. Call it only to put the key in the one response that creates it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the whole key.
    pub fn hash(&self) -> KeyHash {
        KeyHash(Sha256::digest(self.0.as_bytes()).into())
    }

    /// The prefix and the first characters of the body, for lists and logs.
    pub fn display_prefix(&self) -> String {
        self.0[..self.0.len() - TAIL_LEN + DISPLAY_BODY_CHARS].to_owned()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…)", self.display_prefix())
    }
}

impl fmt::Debug for KeyHash {
    /// Shows 8 bytes: enough to correlate in a debugger, and a hash is not a secret anyway.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// True when `s` has a key's shape (a prefix, then 49 characters of the alphabet, as
/// [`KEY_PATTERN`] states for `sk-`), whatever its checksum: text of this shape that fails
/// [`ApiKey::parse`] is a mistyped key, not garbage.
pub fn has_key_shape(s: &str) -> bool {
    looks_like_key(s.as_bytes())
}

/// A prefix of the documented shape, then body and checksum in the alphabet; checksum not
/// yet checked.
fn looks_like_key(s: &[u8]) -> bool {
    s.len() > TAIL_LEN && {
        let (prefix, tail) = s.split_at(s.len() - TAIL_LEN);
        tail.iter().all(u8::is_ascii_alphanumeric) && is_prefix(prefix)
    }
}

/// Where a session JWT starts: the base64url of `{"` that opens every JWT header.
pub const JWT_PREFIX: &str = "eyJ";

/// Replaces every well-formed-looking key and every JWT-shaped token in `text` with
/// `[redacted]`. Used on any text that echoes client input (parser messages, logged paths)
/// before it reaches a response or a log.
pub fn redact(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut hidden = vec![false; bytes.len()];
    // Every occurrence of a prefix is examined, overlapping ones included: a key can start
    // inside text that itself ends in "sk" ("risk-sk-…") or inside a run already being
    // hidden ("sk-…sk-<key>").
    let mut mark = |prefix: &str, part_of_run: fn(u8) -> bool, is_secret: &dyn Fn(&[u8]) -> bool| {
        let mut from = 0;
        while let Some(pos) = text[from..].find(prefix) {
            let start = from + pos;
            let mut end = start + prefix.len();
            while end < bytes.len() && part_of_run(bytes[end]) {
                end += 1;
            }
            if is_secret(&bytes[start + prefix.len()..end]) {
                hidden[start..end].iter_mut().for_each(|h| *h = true);
            }
            from = start + 1;
        }
    };
    // A key: anything with a long enough body is hidden, checksum or not: a near-miss of a
    // real key (a typo) is still mostly secret.
    mark(PREFIX, |b| b.is_ascii_alphanumeric(), &|body| body.len() >= 16);
    // A JWT: base64url segments joined by dots, at least two of them.
    mark(JWT_PREFIX, |b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.', &|rest| {
        rest.len() >= 16 && rest.contains(&b'.')
    });
    // A key with a prefix of a deployment's choosing (`acme_live_…`): a `-` or `_` followed by
    // a run of the alphabet nearly as long as a key's body and checksum, with the prefix-like
    // word before it.
    for sep in ["-", "_"] {
        let mut from = 0;
        while let Some(pos) = text[from..].find(sep) {
            let at = from + pos;
            let end = at + 1 + bytes[at + 1..].iter().take_while(|b| b.is_ascii_alphanumeric()).count();
            if end - at > TAIL_LEN - CHECKSUM_LEN {
                let start =
                    at - bytes[..at].iter().rev().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
                hidden[start..end].iter_mut().for_each(|h| *h = true);
            }
            from = at + 1;
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if hidden[i] {
            while i < bytes.len() && hidden[i] {
                i += 1;
            }
            out.push_str("[redacted]");
        } else {
            // Hidden spans start and end on ASCII bytes, so this slice is on char boundaries.
            let next = hidden[i..].iter().position(|h| *h).map_or(bytes.len(), |p| i + p);
            out.push_str(&text[i..next]);
            i = next;
        }
    }
    out
}

/// Shortest and longest text a key imported from another service may be.
pub const IMPORTED_KEY_LEN: std::ops::RangeInclusive<usize> = 16..=256;

/// True when `text` could be a key imported in another service's format: printable ASCII
/// without spaces, of a plausible length. Anything else names no key, with no look-up.
pub fn may_be_imported(text: &str) -> bool {
    IMPORTED_KEY_LEN.contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic())
}

/// True when `text` may hold something [`redact`] would hide: the cheap test before it.
pub fn may_hold_secret(text: &str) -> bool {
    text.contains(PREFIX) || text.contains(JWT_PREFIX)
}

/// CRC-32 (IEEE 802.3, reflected, as zlib): detects every error burst of up to 32 bits, so
/// every single-character substitution and every adjacent transposition in the body.
/// Byte-at-a-time through a table built at compile time: every verification checks one, and
/// the bitwise form cost about as much as the rest of parsing together (callgrind).
fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = i as u32;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    };
    !data.iter().fold(0xFFFF_FFFFu32, |crc, &b| (crc >> 8) ^ TABLE[usize::from((crc as u8) ^ b)])
}

/// Six base62 digits, most significant first (62^6 > 2^32, so every value fits).
fn checksum_digits(mut value: u32) -> [u8; CHECKSUM_LEN] {
    let mut digits = [b'0'; CHECKSUM_LEN];
    for d in digits.iter_mut().rev() {
        *d = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    digits
}

/// The checksum digits as text, for building a key.
fn encode_checksum(value: u32) -> String {
    checksum_digits(value).iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_differ() {
        let a = ApiKey::generate().unwrap();
        let b = ApiKey::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), KEY_LEN);
        assert!(a.expose().starts_with("sk-"));
        assert_eq!(ApiKey::parse(a.expose()).unwrap(), a);
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"The quick brown fox jumps over the lazy dog"), 0x414F_A339);
    }

    #[test]
    fn every_single_substitution_and_adjacent_transposition_is_rejected() {
        for _ in 0..20 {
            let key = ApiKey::generate().unwrap();
            let original = key.expose().as_bytes().to_vec();
            for i in 0..original.len() {
                for &c in ALPHABET.iter().chain(b"-_") {
                    if c == original[i] {
                        continue;
                    }
                    let mut changed = original.clone();
                    changed[i] = c;
                    let s = String::from_utf8(changed).unwrap();
                    assert!(ApiKey::parse(&s).is_err(), "substitution at {i} accepted");
                }
                if i + 1 < original.len() && original[i] != original[i + 1] {
                    let mut swapped = original.clone();
                    swapped.swap(i, i + 1);
                    let s = String::from_utf8(swapped).unwrap();
                    assert!(ApiKey::parse(&s).is_err(), "transposition at {i} accepted");
                }
            }
        }
    }

    #[test]
    fn the_documented_pattern_states_the_shape_rule() {
        assert_eq!(KEY_PATTERN, format!("^{PREFIX}[0-9A-Za-z]{{{}}}$", BODY_LEN + CHECKSUM_LEN));
        let key = ApiKey::generate().unwrap();
        assert!(has_key_shape(key.expose()));
        let mut typo = key.expose().to_owned();
        typo.replace_range(10..11, if &typo[10..11] == "a" { "b" } else { "a" });
        assert!(has_key_shape(&typo) && ApiKey::parse(&typo).is_err());
        for bad in [
            "",
            "sk-",
            &key.expose()[..KEY_LEN - 1],
            &format!("{}0", key.expose()),
            &key.expose().replace("sk-", "sk "),
        ] {
            assert!(!has_key_shape(bad), "{bad}");
        }
        // Another prefix of the allowed shape: a key's shape, but not this key.
        let other = key.expose().replace("sk-", "sk_");
        assert!(has_key_shape(&other) && ApiKey::parse(&other).is_err());
    }

    #[test]
    fn truncated_or_extended_keys_are_rejected() {
        let key = ApiKey::generate().unwrap();
        let s = key.expose();
        assert!(ApiKey::parse(&s[..s.len() - 1]).is_err());
        assert!(ApiKey::parse(&format!("{s}0")).is_err());
        assert!(ApiKey::parse("").is_err());
        assert!(ApiKey::parse(&format!(" {}", &s[1..])).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = ApiKey::generate().unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains(key.expose()));
        assert!(shown.contains(&key.display_prefix()));
        assert_eq!(key.display_prefix().len(), 11);
    }

    #[test]
    fn redact_hides_keys_inside_text() {
        let key = ApiKey::generate().unwrap();
        let text = format!("invalid type: string \"{}\", expected a sequence", key.expose());
        let clean = redact(&text);
        assert!(!clean.contains(key.expose()));
        assert_eq!(clean, "invalid type: string \"[redacted]\", expected a sequence");
        assert_eq!(redact("sk-short and task-list"), "sk-short and task-list");
        // Keys glued to text that ends in "sk", or inside a run already being hidden.
        for glued in [format!("risk-{}", key.expose()), format!("sk-0123456789abcdef{}", key.expose())] {
            let clean = redact(&glued);
            assert!(!clean.contains(&key.expose()[3..20]), "{clean}");
        }
    }

    #[test]
    fn keys_with_a_chosen_prefix_parse_hash_and_redact_like_sk_keys() {
        let prefix = KeyPrefix::parse("acme_live_").unwrap();
        let key = ApiKey::generate_with(&prefix).unwrap();
        assert!(key.expose().starts_with("acme_live_") && key.expose().len() == 10 + 49);
        assert_eq!(ApiKey::parse(key.expose()).unwrap(), key);
        assert_eq!(key.display_prefix(), &key.expose()[..18]);
        let mut typo = key.expose().to_owned();
        typo.replace_range(20..21, if &typo[20..21] == "a" { "b" } else { "a" });
        assert!(has_key_shape(&typo) && ApiKey::parse(&typo).is_err());
        // A default key made after a prefix change, and the other way round, both still parse.
        assert!(ApiKey::parse(ApiKey::generate().unwrap().expose()).is_ok());
        assert_eq!(redact(&format!("value \"{}\" bad", key.expose())), "value \"[redacted]\" bad");
        for bad in ["", "-", "a", "1a-", "ab", "a-b-", "toolongprefix_abc_", "a b-", "é-"] {
            assert_eq!(KeyPrefix::parse(bad), Err(KeyError::Prefix), "{bad:?}");
        }
        for good in ["sk-", "a_", "k9-", "acme_live_", "abcdefghijklmno_"] {
            assert!(KeyPrefix::parse(good).is_ok(), "{good:?}");
        }
        assert_eq!(KeyPrefix::default().scanner_pattern(), "\\bsk\\-[0-9A-Za-z]{49}\\b");
        assert_eq!(KeyHash::of_text(key.expose()), key.hash());
    }

    #[test]
    fn redact_hides_session_tokens_too() {
        let jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIiwia2lkIjoxfQ.c2lnbmF0dXJlX2hlcmU";
        let text = format!("unknown variant `{jwt}`, expected one of `read`");
        assert_eq!(redact(&text), "unknown variant `[redacted]`, expected one of `read`");
        assert_eq!(redact(&format!("/api/v1/keys/{jwt}/x")), "/api/v1/keys/[redacted]/x");
        assert!(may_hold_secret(jwt) && !may_hold_secret("/api/v1/keys/12"));
        // Base64 that merely starts like a JWT header, with no second segment, is left alone.
        assert_eq!(redact("eyJhbGciOiJIUzI1NiJ9"), "eyJhbGciOiJIUzI1NiJ9");
    }
}
