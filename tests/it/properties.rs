//! Property tests (proptest) for the pure parts: the key format, grant containment (the
//! minting rule) and path normalisation. Case counts are kept small so the file runs in a
//! few seconds in debug mode. Failures are not persisted to disk (no proptest-regressions
//! file): a failing case is printed, shrunk, in the test output.
//!
//! Run: `cargo test --test it properties::`. Raise the case counts for one run with
//! `PROPTEST_CASES=5000 cargo test --test it properties::` (applies to every property here).

use apikeyd::config::MAX_PATH_LEN;
use apikeyd::domain::grants::{Access, GrantBody, GrantPath, Grants};
use apikeyd::domain::key_format::{redact, ApiKey, KEY_LEN, PREFIX};
use apikeyd::domain::timestamp::Timestamp;
use proptest::prelude::*;
use proptest::test_runner::Config;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `cases` unless PROPTEST_CASES overrides it, never writing a regressions file.
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    Config { cases, failure_persistence: None, ..Config::default() }
}

// ---------------------------------------------------------------------------------------------
// Key format
// ---------------------------------------------------------------------------------------------

/// An independent CRC-32 (IEEE, reflected, as zlib), bit by bit rather than table-driven like
/// the crate's, so the test does not merely repeat the code under test.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { 0xEDB8_8320 ^ (crc >> 1) } else { crc >> 1 };
        }
    }
    !crc
}

/// Six base62 digits, most significant first.
fn checksum(head: &str) -> String {
    let mut v = crc32(head.as_bytes());
    let mut out = [b'0'; 6];
    for d in out.iter_mut().rev() {
        *d = BASE62[(v % 62) as usize];
        v /= 62;
    }
    String::from_utf8(out.to_vec()).unwrap()
}

/// A well-formed key: either from `ApiKey::generate` or built from a proptest-chosen body with
/// the checksum computed here (so shrinking works and both sources are exercised).
fn key_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(()).prop_map(|_| ApiKey::generate().unwrap().expose().to_owned()),
        "[0-9A-Za-z]{43}".prop_map(|body| {
            let head = format!("{PREFIX}{body}");
            let sum = checksum(&head);
            format!("{head}{sum}")
        }),
    ]
}

/// Every ASCII character (controls included) and a few multi-byte ones.
fn substitutes() -> impl Iterator<Item = char> {
    (0u8..128).map(char::from).chain(['é', 'ß', '€', '\u{0}', '\u{200b}', '𝟘'])
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn well_formed_keys_parse_and_round_trip(key in key_strategy()) {
        let parsed = ApiKey::parse(&key);
        prop_assert!(parsed.is_ok(), "{key} refused");
        let parsed = parsed.unwrap();
        prop_assert_eq!(parsed.expose(), key.as_str());
        prop_assert_eq!(parsed.expose().len(), KEY_LEN);
        prop_assert!(key.starts_with(&parsed.display_prefix()));
        prop_assert_eq!(ApiKey::parse(parsed.expose()).unwrap().hash(), parsed.hash());
        let shown = format!("{parsed:?}");
        prop_assert!(!shown.contains(&key), "Debug shows the key: {}", shown);
    }

    #[test]
    fn every_single_substitution_is_rejected(key in key_strategy()) {
        let chars: Vec<char> = key.chars().collect();
        for i in 0..chars.len() {
            for c in substitutes() {
                if c == chars[i] {
                    continue;
                }
                let mut changed = chars.clone();
                changed[i] = c;
                let s: String = changed.into_iter().collect();
                prop_assert!(ApiKey::parse(&s).is_err(), "substitution {:?} at {} accepted: {}", c, i, s);
            }
        }
    }

    #[test]
    fn every_adjacent_transposition_is_rejected(key in key_strategy()) {
        let bytes = key.as_bytes();
        for i in 0..bytes.len() - 1 {
            if bytes[i] == bytes[i + 1] {
                continue;
            }
            let mut swapped = bytes.to_vec();
            swapped.swap(i, i + 1);
            let s = String::from_utf8(swapped).unwrap();
            prop_assert!(ApiKey::parse(&s).is_err(), "transposition at {} accepted: {}", i, s);
        }
    }

    #[test]
    fn truncations_and_extensions_are_rejected(key in key_strategy(), extra in "[0-9A-Za-z_\\- ]{1,4}") {
        for n in 0..key.len() {
            prop_assert!(ApiKey::parse(&key[..n]).is_err(), "prefix of {} chars accepted", n);
            prop_assert!(ApiKey::parse(&key[key.len() - n..]).is_err(), "suffix of {} chars accepted", n);
        }
        let mid = key.len() / 2;
        let longer = [format!("{key}{extra}"), format!("{extra}{key}"), format!("{}{extra}{}", &key[..mid], &key[mid..])];
        for s in &longer {
            prop_assert!(ApiKey::parse(s).is_err(), "extension accepted: {:?}", s);
        }
        // Deleting one character anywhere.
        for i in 0..key.len() {
            let s = format!("{}{}", &key[..i], &key[i + 1..]);
            prop_assert!(ApiKey::parse(&s).is_err(), "deletion at {} accepted", i);
        }
    }

    /// Anything of the right shape is accepted exactly when the checksum matches.
    #[test]
    fn shape_with_checksum_is_the_whole_rule(s in "sk-[0-9A-Za-z]{49}|.{0,60}") {
        let shaped = s.len() == KEY_LEN
            && s.starts_with(PREFIX)
            && s[PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric());
        let expected = shaped && checksum(&s[..KEY_LEN - 6]) == s[KEY_LEN - 6..];
        prop_assert_eq!(ApiKey::parse(&s).is_ok(), expected, "{:?}", s);
    }

    /// A key standing alone or surrounded by non-alphanumeric text never survives `redact`.
    #[test]
    fn redact_hides_keys_between_separators(key in key_strategy(), before in "[ \"':=,{}a-z]{0,12}", after in "[ \"':=,{}]{0,12}") {
        let before = before.trim_end_matches(|c: char| c.is_ascii_alphanumeric());
        let text = format!("{before} {key}{after}");
        prop_assert!(!redact(&text).contains(&key), "{:?}", text);
    }
}

/// A key glued to text ending in "sk" (`"risk-sk-…"`, `"sk-sk-…"`) is still hidden: the
/// search examines every occurrence of the prefix, overlapping ones included (found by fuzzing).
#[test]
fn redact_hides_keys_glued_to_preceding_text() {
    proptest!(config(64), |(key in key_strategy(), before in "[a-z ]{0,6}")| {
        let text = format!("{before}sk-{key}");
        prop_assert!(!redact(&text).contains(&key), "{:?} -> {:?}", text, redact(&text));
    });
}

// ---------------------------------------------------------------------------------------------
// Grants: containment and the minting rule
// ---------------------------------------------------------------------------------------------

const GRANT_PATHS: &[&str] = &["/", "/a", "/a/", "/a/b", "/a/b/c", "/ab", "/a/c", "/b", "/b/a", "/c"];
/// Every normalised grant path, plus paths below, beside and between them.
const PROBES: &[&str] =
    &["/", "/a", "/a/b", "/a/b/c", "/a/b/c/d", "/ab", "/ab/c", "/a/c", "/a/bc", "/b", "/b/a", "/b/a/c", "/c", "/d"];
const ACCESSES: [Access; 3] = [Access::Read, Access::Write, Access::ReadWrite];

fn access_strategy() -> impl Strategy<Value = Access> {
    prop::sample::select(&ACCESSES[..])
}

fn grants_strategy() -> impl Strategy<Value = Grants> {
    prop::collection::vec((prop::sample::select(GRANT_PATHS), access_strategy()), 1..6).prop_map(|list| {
        let bodies: Vec<GrantBody> =
            list.into_iter().map(|(path, access)| GrantBody { path: path.to_owned(), access }).collect();
        Grants::from_bodies(&bodies).unwrap()
    })
}

fn probe(p: &str) -> GrantPath {
    GrantPath::parse(p).unwrap()
}

/// Every (probe, access) that `a` allows, `b` allows too.
fn allows_no_more(a: &Grants, b: &Grants) -> Result<(), String> {
    for p in PROBES {
        for access in ACCESSES {
            if a.allows(&probe(p), access) && !b.allows(&probe(p), access) {
                return Err(format!("{p} {access:?}"));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    /// The minting rule never escalates, and (since every grant path is a probe) it is exact:
    /// `within` holds precisely when nothing allowed by A is refused by B.
    #[test]
    fn within_means_allows_no_more(a in grants_strategy(), b in grants_strategy()) {
        let within = a.within(&b);
        let semantic = allows_no_more(&a, &b);
        if within {
            prop_assert!(semantic.is_ok(), "A within B, but A allows {} and B does not; A={:?} B={:?}", semantic.unwrap_err(), a, b);
        } else {
            prop_assert!(semantic.is_err(), "A allows nothing more than B but is not within it; A={:?} B={:?}", a, b);
        }
    }

    #[test]
    fn within_is_reflexive_and_transitive(a in grants_strategy(), b in grants_strategy(), c in grants_strategy()) {
        prop_assert!(a.within(&a));
        prop_assert!(a.within(&Grants::root()));
        if a.within(&b) && b.within(&c) {
            prop_assert!(a.within(&c));
        }
    }

    /// Bits combine across grants: allows(p, ReadWrite) == allows(p, Read) && allows(p, Write),
    /// and a grant's subtree is segment-wise.
    #[test]
    fn allows_is_bitwise_and_segment_wise(g in grants_strategy()) {
        for p in PROBES {
            let p = probe(p);
            prop_assert_eq!(
                g.allows(&p, Access::ReadWrite),
                g.allows(&p, Access::Read) && g.allows(&p, Access::Write)
            );
            for access in ACCESSES {
                let expected = access.bits()
                    & g.iter()
                        .filter(|grant| {
                            let (gp, pp) = (grant.path.as_str(), p.as_str());
                            gp == "/" || pp == gp || pp.starts_with(&format!("{gp}/"))
                        })
                        .fold(0, |bits, grant| bits | grant.access.bits())
                    == access.bits();
                prop_assert_eq!(g.allows(&p, access), expected, "{} {:?} {:?}", p, access, g);
            }
        }
    }

    /// Serialising to bodies and back is the identity.
    #[test]
    fn grants_round_trip_through_bodies(g in grants_strategy()) {
        prop_assert_eq!(Grants::from_bodies(&g.to_bodies()).unwrap(), g);
    }
}

// ---------------------------------------------------------------------------------------------
// Path normalisation
// ---------------------------------------------------------------------------------------------

const PATH_ALPHABET: &[char] =
    &['/', '/', '/', '.', '.', '%', '2', 'e', 'E', 'F', 'f', '5', 'C', 'a', '\\', '?', '#', '0', 'é', '\n'];

/// Strings over PATH_ALPHABET, usually (not always) starting with `/`.
fn path_like() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(prop::sample::select(PATH_ALPHABET), 0..20)).prop_map(|(slash, chars)| {
        let body: String = chars.into_iter().collect();
        if slash {
            format!("/{body}")
        } else {
            body
        }
    })
}

/// What every accepted path must look like.
fn check_normalised(p: &GrantPath) -> Result<(), TestCaseError> {
    let s = p.as_str();
    prop_assert!(s.starts_with('/'), "{:?}", s);
    for bad in ["//", "/./", "/../", "%", "\\"] {
        prop_assert!(!s.contains(bad), "{:?} contains {:?}", s, bad);
    }
    prop_assert!(s == "/" || !s.ends_with('/'), "{:?}", s);
    prop_assert!(!s.ends_with("/.") && !s.ends_with("/.."), "{:?}", s);
    prop_assert!(!s.chars().any(char::is_control), "{:?}", s);
    prop_assert!(s.len() <= MAX_PATH_LEN);
    prop_assert_eq!(&GrantPath::parse(s).unwrap(), p, "not idempotent");
    Ok(())
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn parse_output_is_normalised(s in path_like()) {
        if let Ok(p) = GrantPath::parse(&s) {
            check_normalised(&p)?;
            // The only rewrite is dropping one trailing slash.
            prop_assert!(p.as_str() == s || format!("{}/", p.as_str()) == s, "{:?} -> {:?}", s, p);
        }
    }

    /// Whatever is refused breaks one of the documented rules.
    #[test]
    fn parse_refuses_only_for_a_reason(s in path_like()) {
        if GrantPath::parse(&s).is_err() {
            let rest = s.strip_prefix('/');
            let reason = match rest {
                None => true,
                Some(rest) => {
                    let rest = rest.strip_suffix('/').unwrap_or(rest);
                    rest.split('/').any(|seg| {
                        seg.is_empty() || seg == "." || seg == ".." || seg.chars().any(|c| c.is_control() || c == '\\' || c == '%')
                    })
                }
            };
            prop_assert!(reason || s.len() > MAX_PATH_LEN, "{:?} refused for no reason", s);
        }
    }

    #[test]
    fn request_uri_output_is_normalised(s in path_like()) {
        if let Ok(p) = GrantPath::from_request_uri(&s) {
            check_normalised(&p)?;
            let raw = s.split(['?', '#']).next().unwrap();
            let lower = raw.to_ascii_lowercase();
            prop_assert!(!lower.contains("%2f") && !lower.contains("%5c"), "encoded slash accepted: {:?}", s);
            // Decoding once: a path with no escapes is accepted exactly as parse accepts it.
            if !raw.contains('%') {
                prop_assert_eq!(GrantPath::parse(raw).ok(), Some(p.clone()));
            }
            // And the normalised form, fed back as a request URI, names the same path.
            if !p.as_str().contains(['?', '#']) {
                prop_assert_eq!(GrantPath::from_request_uri(p.as_str()).ok(), Some(p));
            }
        } else if !s.contains('%') {
            // Without escapes, decoding changes nothing: a refusal is a fragment, or a path that
            // the request-path rules (parse, plus the ambiguous forms) refuse.
            let raw = s.split('?').next().unwrap();
            prop_assert!(
                s.contains('#') || GrantPath::from_request_path(raw).is_err(),
                "{:?} refused as a URI but its path is accepted", s
            );
        }
    }

    /// Percent-encoding any characters of an accepted path (other than `/`) leaves the
    /// request-URI reading unchanged: decoding happens exactly once.
    #[test]
    fn request_uri_decodes_exactly_once(s in path_like(), mask in prop::collection::vec(any::<bool>(), 32)) {
        if let Ok(p) = GrantPath::parse(&s) {
            if p.as_str().contains(['?', '#']) {
                return Ok(());
            }
            let mut encoded = String::new();
            for (i, ch) in p.as_str().chars().enumerate() {
                if ch != '/' && mask[i % mask.len()] {
                    let mut buf = [0u8; 4];
                    for b in ch.encode_utf8(&mut buf).bytes() {
                        encoded.push_str(&format!("%{b:02X}"));
                    }
                } else {
                    encoded.push(ch);
                }
            }
            prop_assert_eq!(GrantPath::from_request_uri(&encoded).ok(), Some(p.clone()), "{:?}", encoded);
            // Encoded once more, it must not come back as the same path (no double decoding).
            let twice = encoded.replace('%', "%25");
            if twice != encoded {
                prop_assert!(GrantPath::from_request_uri(&twice).is_err(), "{:?} double-decoded", twice);
            }
        }
    }

    #[test]
    fn covers_is_a_segment_wise_partial_order(a in path_like(), b in path_like(), c in path_like()) {
        let (Ok(a), Ok(b), Ok(c)) = (GrantPath::parse(&a), GrantPath::parse(&b), GrantPath::parse(&c)) else {
            return Ok(());
        };
        prop_assert!(a.covers(&a));
        if a.covers(&b) && b.covers(&a) {
            prop_assert_eq!(&a, &b);
        }
        if a.covers(&b) && b.covers(&c) {
            prop_assert!(a.covers(&c));
        }
        let expected = a.as_str() == "/" || b.as_str() == a.as_str() || b.as_str().starts_with(&format!("{}/", a.as_str()));
        prop_assert_eq!(a.covers(&b), expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Timestamps
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    /// Every instant of years 1..=9999 formats and re-parses to itself.
    #[test]
    fn timestamps_round_trip(ms in -62_135_596_800_000i64..253_402_300_800_000i64) {
        let t = Timestamp::from_millis(ms);
        let shown = t.to_string();
        prop_assert_eq!(shown.len(), 24, "{}", shown);
        prop_assert_eq!(Timestamp::parse_rfc3339(&shown), Ok(t));
    }
}

/// Fixed inputs that once leaked: a key right after `risk-`, right after `sk-`, and right
/// after a long `sk-` run.
#[test]
fn redact_known_leaks() {
    let key = ApiKey::generate().unwrap();
    let body = &key.expose()[PREFIX.len()..];
    let mut leaks = Vec::new();
    for text in [
        format!("risk-{}", key.expose()),
        format!("sk-{}", key.expose()),
        format!("sk-0123456789abcdef{}", key.expose()),
    ] {
        let out = redact(&text);
        if out.contains(body) {
            leaks.push(format!("{text:?} -> {out:?}"));
        }
    }
    assert!(leaks.is_empty(), "key bodies survived redact:\n{}", leaks.join("\n"));
}

/// An offset can carry a year-9999 or year-0 local time outside years 1..=9999 in UTC; such
/// times are refused, so everything accepted shows and parses back (found by fuzzing).
#[test]
fn timestamps_near_the_ends_round_trip() {
    let mut bad = Vec::new();
    for s in ["9999-12-31T23:50:00-23:59", "0000-01-01T00:00:00+00:01", "0000-01-01T00:00:00Z"] {
        if let Ok(t) = Timestamp::parse_rfc3339(s) {
            let shown = t.to_string();
            if Timestamp::parse_rfc3339(&shown) != Ok(t) || s.starts_with("0000") {
                bad.push(format!("{s:?} accepted as {t:?}, shown as {shown:?}"));
            }
        }
    }
    assert!(bad.is_empty(), "\n{}", bad.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The one-way clock
// ---------------------------------------------------------------------------------------------

/// One event the clock's sources may see: real time passing, or the wall clock stepped.
#[derive(Clone, Debug)]
enum Tick {
    /// `ms` of real time pass (both clocks move).
    Pass(i64),
    /// The wall clock jumps by `ms`, Jepsen-style (±2^2..2^18 ms, or an hour or a day).
    Step(i64),
}

fn tick_strategy() -> impl Strategy<Value = Tick> {
    prop_oneof![
        (0i64..2_000).prop_map(Tick::Pass),
        (2u32..=18, any::<bool>()).prop_map(|(e, neg)| Tick::Step(if neg { -(1i64 << e) } else { 1i64 << e })),
        prop_oneof![Just(3_600_000i64), Just(-3_600_000), Just(86_400_000), Just(-86_400_000)].prop_map(Tick::Step),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// Whatever the wall clock does: the clock never goes back; between two readings it moves
    /// at least as far as real time did; it is never behind the wall clock; and it shows
    /// within the formats' range.
    #[test]
    fn the_clock_never_goes_back_and_never_loses_real_time(
        start in 0i64..4_000_000_000_000,
        ticks in proptest::collection::vec(tick_strategy(), 1..60),
    ) {
        use apikeyd::domain::clock::{Clock, ManualSource, LATEST_MS};
        let clock = Clock::new(ManualSource::at(start));
        let mut last = clock.now().millis();
        for tick in ticks {
            let passed = match tick {
                Tick::Pass(ms) => { clock.source().advance(ms); ms }
                Tick::Step(ms) => { clock.source().step(ms); 0 }
            };
            let now = clock.now().millis();
            prop_assert!(now >= last, "went back from {} to {}", last, now);
            prop_assert!(now >= (last + passed).min(LATEST_MS), "lost real time: {} + {} > {}", last, passed, now);
            let wall = apikeyd::domain::clock::Source::wall_millis(clock.source()).clamp(0, LATEST_MS);
            prop_assert!(now >= wall, "behind the wall clock: {} < {}", now, wall);
            prop_assert!(Timestamp::parse_rfc3339(&clock.now().to_string()).is_ok());
            last = now;
        }
    }
}
