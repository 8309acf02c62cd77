//! Path-scoped grants: which paths a key may read or write. Pure code, table-tested.
//!
//! A grant is `{path, access}`; it covers its path and everything below it (`/a` covers
//! `/a/b`, not `/ab`). Read and write are independent bits: write does not imply read, so
//! a write-only key is an upload-only key. The shard-node family writes access as the
//! bitmask 1 (read), 2 (write), 3 (both).

use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::config::{MAX_GRANTS, MAX_PATH_LEN};
/// What [`GrantPath::parse`] accepts, as an ECMA-262 regex for the OpenAPI document (with
/// [`MAX_PATH_LEN`] as `maxLength`, which counts characters where the parser counts bytes).
pub const PATH_PATTERN: &str =
    r"^/(?:(?!\.\.?(?:/|$))[^/\\%\x00-\x1F\x7F-\x9F]+(?:/(?!\.\.?(?:/|$))[^/\\%\x00-\x1F\x7F-\x9F]+)*/?)?$";

/// The OpenAPI schema of a grant path, as every request body that takes one documents it.
pub fn path_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_PATH_LEN))
        .pattern(Some(PATH_PATTERN))
        .description(Some("Absolute path; covers itself and everything below it, segment-wise."))
        .build()
}

/// What a grant allows on its subtree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Read only.
    Read,
    /// Write only (upload without listing or downloading).
    Write,
    /// Both.
    ReadWrite,
}

impl Access {
    /// The shard-node bitmask: 1 read, 2 write, 3 both.
    pub fn bits(self) -> u8 {
        match self {
            Access::Read => 1,
            Access::Write => 2,
            Access::ReadWrite => 3,
        }
    }

    /// The inverse of [`Access::bits`]; `None` for anything but 1, 2 and 3.
    pub fn from_bits(bits: u8) -> Option<Access> {
        match bits {
            1 => Some(Access::Read),
            2 => Some(Access::Write),
            3 => Some(Access::ReadWrite),
            _ => None,
        }
    }

    /// Parses the JSON spelling (`read`, `write`, `read_write`).
    pub fn parse(s: &str) -> Option<Access> {
        match s {
            "read" => Some(Access::Read),
            "write" => Some(Access::Write),
            "read_write" => Some(Access::ReadWrite),
            _ => None,
        }
    }

    /// What an HTTP method needs: GET, HEAD and OPTIONS read; every other method writes
    /// (an unknown method is treated as the stronger need).
    pub fn for_method(method: &str) -> Access {
        match method.trim().to_ascii_uppercase().as_str() {
            "GET" | "HEAD" | "OPTIONS" => Access::Read,
            _ => Access::Write,
        }
    }

    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::ReadWrite => "read_write",
        }
    }
}

/// Occurs when a path is not absolute, has an empty, `.` or `..` segment, a backslash,
/// a `%`, a control character, or is longer than [`MAX_PATH_LEN`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct PathError(&'static str);

/// A normalised absolute path: `/`, or `/seg/seg` with no trailing slash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantPath(String);

impl GrantPath {
    /// The root path `/`.
    pub fn root() -> GrantPath {
        GrantPath("/".to_owned())
    }

    /// Validates and normalises. One trailing slash is dropped (`/a/` is `/a`); anything
    /// that could mean two different paths to two different parsers is refused rather than
    /// guessed at: `//`, `.`, `..`, `\`, `%` and control characters.
    pub fn parse(s: &str) -> Result<GrantPath, PathError> {
        if s.len() > MAX_PATH_LEN {
            return Err(PathError("path is too long"));
        }
        let Some(rest) = s.strip_prefix('/') else {
            return Err(PathError("path must be absolute (start with /)"));
        };
        if rest.is_empty() {
            return Ok(GrantPath::root());
        }
        // One trailing slash is dropped; what remains must not be empty ("//" is not "/").
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        for segment in rest.split('/') {
            match segment {
                "" => return Err(PathError("path has an empty segment")),
                "." | ".." => return Err(PathError("path has a dot segment")),
                _ => {}
            }
            if segment.chars().any(|c| c.is_control() || c == '\\' || c == '%') {
                return Err(PathError("path has a forbidden character"));
            }
        }
        Ok(GrantPath(format!("/{rest}")))
    }

    /// The path a gateway reports for a request (nginx `$request_uri`, Traefik and Caddy
    /// `X-Forwarded-Uri`): the query is cut off, percent-escapes are decoded exactly once, and
    /// the result must pass [`GrantPath::from_request_path`]. Encoded slashes and backslashes
    /// (`%2F`, `%5C`) are refused outright: a backend may or may not decode them, so they could
    /// name a different path there than here. A `%` left after one decoding (double encoding)
    /// is refused by `parse`. A `#` anywhere is refused: a client never sends a fragment, so
    /// one here is an attempt to make this parser and a backend cut the path differently.
    /// Nothing that fails here can widen a grant.
    pub fn from_request_uri(uri: &str) -> Result<GrantPath, PathError> {
        if uri.contains('#') {
            return Err(PathError("request URI has a fragment"));
        }
        let raw = uri.split('?').next().unwrap_or("");
        let bytes = raw.as_bytes();
        let mut decoded = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = bytes.get(i + 1..i + 3).ok_or(PathError("truncated percent-escape"))?;
                let text = std::str::from_utf8(hex).map_err(|_| PathError("invalid percent-escape"))?;
                let b = u8::from_str_radix(text, 16).map_err(|_| PathError("invalid percent-escape"))?;
                if b == b'/' || b == b'\\' {
                    return Err(PathError("path has an encoded slash"));
                }
                decoded.push(b);
                i += 3;
            } else {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
        let text = String::from_utf8(decoded).map_err(|_| PathError("path is not UTF-8"))?;
        GrantPath::from_request_path(&text)
    }

    /// A request's path, already decoded (by [`GrantPath::from_request_uri`], or by the query
    /// parser for forward-auth's `?path=`), refusing what backends may read differently from
    /// `parse`: `;` path parameters (Tomcat and Spring drop `;…` from each segment, so
    /// `/data/..;/admin` reaches them as `/admin`), a `#`, and segments whose Unicode
    /// compatibility form (NFKC, which some backends and file systems apply) holds a `.`, `/`
    /// or `\` that the text itself does not (full-width dots `．．` become `..`).
    pub fn from_request_path(path: &str) -> Result<GrantPath, PathError> {
        if path.contains(';') {
            return Err(PathError("path has a ; parameter"));
        }
        if path.contains('#') {
            return Err(PathError("path has a #"));
        }
        if !path.is_ascii() {
            use unicode_normalization::UnicodeNormalization;
            let special = |c: char| matches!(c, '.' | '/' | '\\' | ';' | '%');
            for segment in path.split('/') {
                if segment.nfkc().filter(|c| special(*c)).count() != segment.chars().filter(|c| special(*c)).count() {
                    return Err(PathError("path has a character that normalises to a dot or slash"));
                }
            }
        }
        GrantPath::parse(path)
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `other` is this path or lies below it, segment-wise.
    pub fn covers(&self, other: &GrantPath) -> bool {
        if self.0 == "/" {
            return true;
        }
        match other.0.strip_prefix(&self.0) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

impl fmt::Display for GrantPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `{path, access}` pair.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Grant {
    /// The subtree it applies to.
    pub path: GrantPath,
    /// What it allows there.
    pub access: Access,
}

/// The JSON shape of a grant, before validation.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// Absolute path.
    #[schema(schema_with = path_schema)]
    pub path: String,
    /// `read`, `write` or `read_write`.
    pub access: Access,
}

/// Occurs when a grant list is empty, too long, or holds an invalid path.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrantError {
    /// A path failed [`GrantPath::parse`].
    #[error("grant path {index}: {source}")]
    Path {
        /// Position in the list.
        index: usize,
        /// Why.
        source: PathError,
    },
    /// More than [`MAX_GRANTS`].
    #[error("at most {MAX_GRANTS} grants are allowed")]
    TooMany,
    /// An empty list (a key that can do nothing is a mistake, not a request).
    #[error("grants must not be empty")]
    Empty,
}

/// How a [`Grant`] is written out: the [`GrantBody`] shape, borrowed.
#[derive(Serialize)]
struct GrantRef<'a> {
    path: &'a str,
    access: Access,
}

/// A key's grants, validated and de-duplicated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grants(Vec<Grant>);

/// Serialises as the list of [`GrantBody`] shapes, without building them: the verify
/// response writes a key's grants on every call.
impl Serialize for Grants {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|g| GrantRef { path: g.path.as_str(), access: g.access }))
    }
}

impl Grants {
    /// Read and write on `/`: what a root key holds.
    pub fn root() -> Grants {
        Grants(vec![Grant { path: GrantPath::root(), access: Access::ReadWrite }])
    }

    /// A single grant.
    pub fn single(path: GrantPath, access: Access) -> Grants {
        Grants(vec![Grant { path, access }])
    }

    /// Validates a list from JSON.
    pub fn from_bodies(bodies: &[GrantBody]) -> Result<Grants, GrantError> {
        if bodies.is_empty() {
            return Err(GrantError::Empty);
        }
        if bodies.len() > MAX_GRANTS {
            return Err(GrantError::TooMany);
        }
        let mut grants: Vec<Grant> = Vec::with_capacity(bodies.len());
        for (index, body) in bodies.iter().enumerate() {
            let path = GrantPath::parse(&body.path).map_err(|source| GrantError::Path { index, source })?;
            let grant = Grant { path, access: body.access };
            if !grants.contains(&grant) {
                grants.push(grant);
            }
        }
        Ok(Grants(grants))
    }

    /// The JSON shape, for responses and storage.
    pub fn to_bodies(&self) -> Vec<GrantBody> {
        self.0.iter().map(|g| GrantBody { path: g.path.as_str().to_owned(), access: g.access }).collect()
    }

    /// The grants themselves.
    pub fn iter(&self) -> impl Iterator<Item = &Grant> {
        self.0.iter()
    }

    /// True when every bit of `access` is given on `path` by some grant covering it.
    /// Bits may come from different grants (read on `/a` and write on `/a/b` together
    /// allow read_write on `/a/b`).
    pub fn allows(&self, path: &GrantPath, access: Access) -> bool {
        let held = self.0.iter().filter(|g| g.path.covers(path)).fold(0u8, |bits, g| bits | g.access.bits());
        held & access.bits() == access.bits()
    }

    /// True when these grants allow nothing `creator` does not: the minting rule.
    pub fn within(&self, creator: &Grants) -> bool {
        self.0.iter().all(|g| creator.allows(&g.path, g.access))
    }

    /// Read and write on `/`.
    pub fn is_root(&self) -> bool {
        self.allows(&GrantPath::root(), Access::ReadWrite)
    }

    /// Write on `/`: what managing keys requires.
    pub fn can_manage(&self) -> bool {
        self.allows(&GrantPath::root(), Access::Write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> GrantPath {
        GrantPath::parse(s).unwrap()
    }

    fn grants(list: &[(&str, Access)]) -> Grants {
        let bodies: Vec<GrantBody> =
            list.iter().map(|(path, access)| GrantBody { path: (*path).to_owned(), access: *access }).collect();
        Grants::from_bodies(&bodies).unwrap()
    }

    #[test]
    fn grants_serialise_exactly_as_their_bodies() {
        let g = grants(&[("/a", Access::Read), ("/b/c", Access::ReadWrite), ("/", Access::Write)]);
        let direct = serde_json::to_string(&g).unwrap();
        assert_eq!(direct, serde_json::to_string(&g.to_bodies()).unwrap());
        assert_eq!(
            direct,
            r#"[{"path":"/a","access":"read"},{"path":"/b/c","access":"read_write"},{"path":"/","access":"write"}]"#
        );
    }

    #[test]
    fn path_normalisation_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("/", Some("/")),
            ("/a", Some("/a")),
            ("/a/", Some("/a")),
            ("/a/b/c", Some("/a/b/c")),
            ("/données/é", Some("/données/é")),
            ("", None),
            ("a", None),
            ("a/b", None),
            ("//", None),
            ("/a//b", None),
            ("/a/b//", None),
            ("/a/./b", None),
            ("/a/../b", None),
            ("/..", None),
            ("/.", None),
            ("/a\\b", None),
            ("/a%2Fb", None),
            ("/a\nb", None),
            ("/a\0", None),
        ];
        for (input, expected) in cases {
            let got = GrantPath::parse(input).ok();
            assert_eq!(got.as_ref().map(GrantPath::as_str), *expected, "input {input:?}");
        }
        assert!(GrantPath::parse(&format!("/{}", "a".repeat(MAX_PATH_LEN))).is_err());
    }

    #[test]
    fn request_uri_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("/data/file.txt", Some("/data/file.txt")),
            ("/data/file.txt?x=1&y=/../admin", Some("/data/file.txt")),
            ("/data/a#frag", None),
            ("/data#/../admin", None),
            ("/data/..;/admin", None),
            ("/data/%2e%2e;/admin", None),
            ("/data/x;jsessionid=1", None),
            ("/data/%3B/admin", None),
            ("/data/%EF%BC%8E%EF%BC%8E/admin", None),
            ("/data/\u{ff0e}\u{ff0e}/admin", None),
            ("/data/a\u{ff0f}b", None),
            ("/data/\u{2024}\u{2024}/admin", None),
            ("/data/\u{fe52}x", None),
            ("/data/\u{2025}/admin", None),
            ("/data/\u{ff3c}admin", None),
            ("/data/\u{ff05}2e", None),
            ("/data/%C3%A9t%C3%A9", Some("/data/été")),
            ("/data/\u{ff41}bc", Some("/data/\u{ff41}bc")),
            ("/data/caf%C3%A9", Some("/data/café")),
            ("/data/a%20b", Some("/data/a b")),
            ("/", Some("/")),
            ("/data/", Some("/data")),
            ("/data/../admin", None),
            ("/data/%2e%2e/admin", None),
            ("/data/%2E%2E/admin", None),
            ("/data/.%2e/admin", None),
            ("/data%2F..%2Fadmin", None),
            ("/data%2fsecret", None),
            ("/data%5C..%5Cadmin", None),
            ("/data/%252e%252e/admin", None),
            ("/data/%25", None),
            ("/data/%", None),
            ("/data/%4", None),
            ("/data/%zz", None),
            ("/data/%00", None),
            ("/data/%FF", None),
            ("/data//admin", None),
            ("/data/./x", None),
            ("data/x", None),
            ("http://evil/data", None),
            ("", None),
        ];
        for (input, expected) in cases {
            let got = GrantPath::from_request_uri(input).ok();
            assert_eq!(got.as_ref().map(GrantPath::as_str), *expected, "input {input:?}");
        }
    }

    #[test]
    fn methods_map_to_access() {
        for m in ["GET", "get", "HEAD", "OPTIONS"] {
            assert_eq!(Access::for_method(m), Access::Read, "{m}");
        }
        for m in ["POST", "PUT", "PATCH", "DELETE", "PROPFIND", ""] {
            assert_eq!(Access::for_method(m), Access::Write, "{m}");
        }
    }

    #[test]
    fn coverage_is_segment_wise() {
        let cases = [
            ("/", "/", true),
            ("/", "/a/b", true),
            ("/a", "/a", true),
            ("/a", "/a/b", true),
            ("/a", "/ab", false),
            ("/a/b", "/a", false),
            ("/a/b", "/a/bc/d", false),
        ];
        for (grant, path, expected) in cases {
            assert_eq!(p(grant).covers(&p(path)), expected, "{grant} covers {path}");
        }
    }

    #[test]
    fn write_does_not_imply_read() {
        let g = grants(&[("/up", Access::Write)]);
        assert!(g.allows(&p("/up/file"), Access::Write));
        assert!(!g.allows(&p("/up/file"), Access::Read));
        assert!(!g.allows(&p("/up/file"), Access::ReadWrite));
        assert!(!g.allows(&p("/other"), Access::Write));
    }

    #[test]
    fn bits_combine_across_grants() {
        let g = grants(&[("/a", Access::Read), ("/a/b", Access::Write)]);
        assert!(g.allows(&p("/a/b/c"), Access::ReadWrite));
        assert!(!g.allows(&p("/a/c"), Access::ReadWrite));
    }

    #[test]
    fn minting_never_escalates() {
        let creator = grants(&[("/data", Access::ReadWrite), ("/logs", Access::Read)]);
        let ok = [
            grants(&[("/data", Access::Read)]),
            grants(&[("/data/x", Access::ReadWrite), ("/logs/app", Access::Read)]),
        ];
        let too_much = [
            grants(&[("/", Access::Read)]),
            grants(&[("/logs", Access::Write)]),
            grants(&[("/datax", Access::Read)]),
            grants(&[("/data", Access::Read), ("/etc", Access::Read)]),
        ];
        for g in ok {
            assert!(g.within(&creator), "{g:?}");
        }
        for g in too_much {
            assert!(!g.within(&creator), "{g:?}");
        }
        assert!(creator.within(&Grants::root()));
        assert!(!Grants::root().within(&creator));
    }

    #[test]
    fn bitmask_round_trips() {
        for a in [Access::Read, Access::Write, Access::ReadWrite] {
            assert_eq!(Access::from_bits(a.bits()), Some(a));
            assert_eq!(Access::parse(a.as_str()), Some(a));
        }
        assert_eq!(Access::from_bits(0), None);
        assert_eq!(Access::from_bits(4), None);
    }

    #[test]
    fn grant_lists_are_bounded_and_deduplicated() {
        assert_eq!(Grants::from_bodies(&[]), Err(GrantError::Empty));
        let many: Vec<GrantBody> =
            (0..=MAX_GRANTS).map(|i| GrantBody { path: format!("/p{i}"), access: Access::Read }).collect();
        assert_eq!(Grants::from_bodies(&many), Err(GrantError::TooMany));
        let twice = grants(&[("/a", Access::Read), ("/a/", Access::Read)]);
        assert_eq!(twice.iter().count(), 1);
        assert!(Grants::root().is_root());
        assert!(grants(&[("/", Access::Write)]).can_manage());
        assert!(!grants(&[("/", Access::Read)]).can_manage());
    }
}
